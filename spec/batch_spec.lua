-- client:batch over real HTTPS (nginx, HTTP/2) and through the in-process fake.
local qiwi = require "qiwi"
local core = require "qiwi.core"
local https_fake = require "https_fake"
local util = require "util"

local TOKEN = "test-token"
local WALLET = "79111234567"

describe("client:batch over HTTPS", function()
  local srv

  setup(function()
    srv = https_fake.shared()
  end)

  before_each(function()
    srv:reset { token = TOKEN, wallet = WALLET, history_rows = 30 }
    srv:config { delay_ms = 0 }
  end)

  local function client(opts)
    local o = { token = TOKEN, wallet = WALLET, base_url = srv.base_url, ca_file = srv.ca_file, retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(qiwi.new(o))
  end

  it("returns every result in the order of the calls, failures in place", function()
    local c = client()
    local page = assert(c:history { rows = 5 })
    local txn = page.data[1]
    local res = assert(c:batch {
      { "accounts" },
      { "history", { rows = 3 } },
      { "transaction", txn.txnId, txn.type },
      { "transaction", 1, "OUT" },               -- no such payment: 404
      { "no_such_method" },
      { "history", { rows = "many" } },          -- argument error, never sent
      { "cross_rates" },
      "not a call",
    })
    assert.equal(8, #res)
    assert.is_table(res[1][1].accounts)
    assert.is_nil(res[1][2])
    assert.equal(3, #res[2][1].data)
    assert.equal(txn.txnId, res[3][1].txnId)
    -- 5.1/LuaJIT have no integer subtype: there an integral double
    if math.type then assert.equal("integer", math.type(res[3][1].txnId)) end
    assert.equal(math.floor(res[3][1].txnId), res[3][1].txnId)
    assert.is_nil(res[4][1])
    assert.equal("api", res[4][2].kind)
    assert.equal(404, res[4][2].status)
    assert.equal("argument", res[5][2].kind)
    assert.truthy(res[5][2].message:find("no_such_method", 1, true))
    assert.equal("argument", res[6][2].kind)
    assert.truthy(res[6][2].message:find("rows", 1, true))
    assert.is_table(res[7][1].result)
    assert.equal("argument", res[8][2].kind)
    for i = 1, 8 do assert.equal(2, res[i].n) end
    -- the refused calls never reached the server: the history page, then 5 batched calls
    assert.equal(1 + 5, #srv:requests())
    c:close()
  end)

  it("gives the same results as the calls made one by one", function()
    local c = client()
    local one = {
      assert(c:accounts()), assert(c:limits { "TURNOVER" }), assert(c:nickname()),
      assert(c:history_total { start_date = os.time() - 86400, end_date = os.time() }),
    }
    local res = c:batch { { "accounts" }, { "limits", { "TURNOVER" } }, { "nickname" },
                          { "history_total", { start_date = os.time() - 86400, end_date = os.time() } } }
    for i = 1, 4 do assert.same(one[i], res[i][1]) end
    assert.equal(qiwi.array_mt, getmetatable(res[1][1].accounts))
    c:close()
  end)

  it("runs 50 delayed calls concurrently over one reused connection", function()
    srv:config { delay_ms = 100 }
    local c = client()
    local calls = {}
    for i = 1, 50 do calls[i] = { "accounts" } end
    local t0 = core.monotonic()
    local res = assert(c:batch(calls))
    local first = core.monotonic() - t0
    t0 = core.monotonic()
    local res2 = assert(c:batch(calls))
    local second = core.monotonic() - t0
    for i = 1, 50 do
      assert.is_table(res[i][1], tostring(res[i][2]))
      assert.is_table(res2[i][1], tostring(res2[i][2]))
    end
    -- one after another these take 50 x 100 ms = 5 s; concurrently about one delay
    assert.is_true(first < 2.0, "first batch took " .. first .. " s")
    assert.is_true(second < 2.0, "second batch took " .. second .. " s")
    -- HTTP/2 multiplexes all of them on one connection, kept for the next batch
    assert.equal(1, util.connections(srv:requests()))
    local stats = c._transports.batch.multi:stats()
    assert.equal(50, stats.transfers)
    assert.equal(50, stats.http2)
    assert.equal(0, stats.connects)
    c:close()
  end)

  it("limits concurrency when asked", function()
    srv:config { delay_ms = 100 }
    local c = client()
    local calls = {}
    for i = 1, 6 do calls[i] = { "nickname" } end
    local t0 = core.monotonic()
    local res = assert(c:batch(calls, { concurrency = 2 }))
    local took = core.monotonic() - t0
    for i = 1, 6 do assert.is_table(res[i][1]) end
    -- three waves of 100 ms at the least
    assert.is_true(took >= 0.29, "took " .. took .. " s")
    c:close()
  end)

  it("keeps server errors to their own call and retries safe ones", function()
    local c = client { retries = 1 }
    srv:call("fail_next", { status = 503, count = 1, path_pattern = "/nickname$" })
    srv:call("fail_next", { status = 500, count = 5, path_pattern = "/crossRates$" })
    local res = c:batch { { "nickname" }, { "cross_rates" }, { "accounts" } }
    assert.is_table(res[1][1], tostring(res[1][2]))   -- 503 once, then the retry answered
    assert.is_nil(res[2][1])
    assert.equal(500, res[2][2].status)
    assert.is_true(res[2][2].retryable)
    assert.is_table(res[3][1])
    local cross = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == "/sinap/crossRates" then cross = cross + 1 end
    end
    assert.equal(2, cross)                           -- the first try and one retry
    c:close()
  end)

  it("does not retry a call that is unsafe to repeat", function()
    local c = client { retries = 2 }
    srv:call("fail_next", { status = 503, count = 1, path_pattern = "/accounts$", method = "POST" })
    local res = c:batch { { "create_account", "qw_wallet_eur" }, { "accounts" } }
    assert.equal(503, res[1][2].status)
    assert.is_table(res[2][1])
    local posts = 0
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" then posts = posts + 1 end
    end
    assert.equal(1, posts)
    c:close()
  end)

  it("sends a call that must not be repeated on a connection of its own", function()
    local c = client()
    assert.is_table(c:batch { { "accounts" } }[1][1])   -- the batch's connection, warm
    local res = c:batch { { "nickname" }, { "create_account", "qw_wallet_eur" }, { "cross_rates" } }
    for i = 1, 3 do assert.is_truthy(res[i][1], tostring(res[i][2])) end
    local post, gets = nil, {}
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" then post = r.connection else gets[r.connection] = true end
    end
    assert.equal(1, util.count(gets))
    assert.is_number(post)
    assert.is_nil(gets[post])
    c:close()
  end)

  it("reports a dropped connection as a network error of the calls on it, without raising", function()
    local c = client()
    srv:call("fail_next", { drop = true, count = 1, path_pattern = "/nickname$" })
    local res = c:batch { { "nickname" } }
    assert.is_nil(res[1][1])
    assert.equal("network", res[1][2].kind)
    -- the next batch reconnects
    res = c:batch { { "nickname" }, { "accounts" } }
    assert.is_table(res[1][1], tostring(res[1][2]))
    assert.is_table(res[2][1])
    c:close()
  end)

  it("gives every call a network error when nothing listens", function()
    local dead = https_fake.start {}
    local url, ca = dead.base_url, dead.ca_file
    dead:stop()
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = url, ca_file = ca, retries = 0 })
    local res = c:batch { { "accounts" }, { "nickname" } }
    for i = 1, 2 do
      assert.is_nil(res[i][1])
      assert.equal("network", res[i][2].kind)
      assert.is_nil(tostring(res[i][2]):find(TOKEN, 1, true))
    end
  end)

  it("gives every call a timeout error within the client's timeout", function()
    srv:config { delay_ms = 1500 }
    local c = client { timeout = 0.4 }
    local t0 = core.monotonic()
    local res = c:batch { { "accounts" }, { "nickname" }, { "cross_rates" } }
    local took = core.monotonic() - t0
    for i = 1, 3 do assert.equal("timeout", res[i][2].kind) end
    assert.is_true(took < 1.2, "took " .. took .. " s")
    c:close()
  end)

  it("repeats null balances like accounts(), concurrently", function()
    srv:reset { token = TOKEN, wallet = WALLET, accounts = { qw_wallet_usd = 10, qw_wallet_eur = 5 },
                null_balances = { "qw_wallet_usd", "qw_wallet_eur" } }
    local c = client()
    local res = c:batch { { "accounts" }, { "nickname" } }
    local by = {}
    for _, a in ipairs(res[1][1].accounts) do by[a.alias] = a end
    assert.equal(10, by.qw_wallet_usd.balance.amount)
    assert.equal(5, by.qw_wallet_eur.balance.amount)
    local repeats = 0
    for _, r in ipairs(srv:requests()) do
      if r.query:find("timeout=1000", 1, true) then repeats = repeats + 1 end
    end
    assert.equal(2, repeats)
    c:close()
  end)

  it("runs compositions after the concurrent calls and refuses what cannot be batched", function()
    local c = client()
    local res = c:batch {
      { "transfer", { to = "79990001122", amount = 1, comment = "batch" } },
      { "payments" },
      { "batch", {} },
      { "_call" },
      { "transfer", { to = "79990001122" } },
    }
    assert.equal("Accepted", res[1][1].transaction.state.code)
    assert.equal("argument", res[2][2].kind)
    assert.equal("argument", res[3][2].kind)
    assert.equal("argument", res[4][2].kind)
    assert.equal("argument", res[5][2].kind)
    assert.truthy(res[5][2].message:find("amount", 1, true))
    c:close()
  end)

  it("returns receipts as bytes and content type", function()
    local c = client()
    local page = assert(c:history { rows = 10, operation = "OUT" })
    local txn
    for _, p in ipairs(page.data) do if p.status == "SUCCESS" then txn = p break end end
    assert.is_table(txn)
    local res = c:batch { { "receipt", txn.txnId, { type = txn.type, format = "PDF" } } }
    assert.equal("%PDF", res[1][1]:sub(1, 4))
    assert.equal("application/pdf", res[1][2])
    c:close()
  end)

  it("authorises each call with its own key (token, P2P secret)", function()
    srv:reset { token = TOKEN, wallet = WALLET, p2p_secret_key = "p2p-secret" }
    local c = client { p2p_secret_key = "p2p-secret" }
    local res = c:batch { { "bills", { rows = 5 } }, { "accounts" } }
    assert.is_table(res[1][1], tostring(res[1][2]))
    assert.is_table(res[2][1], tostring(res[2][2]))
    local auth = {}
    for _, r in ipairs(srv:requests()) do auth[r.path] = r.headers.authorization end
    assert.equal("Bearer p2p-secret", auth["/checkout-api/api/bill/search"])
    assert.equal("Bearer " .. TOKEN, auth["/funding-sources/v2/persons/" .. WALLET .. "/accounts"])
    c:close()
  end)

  it("learns the wallet once before the calls go out", function()
    local c = assert(qiwi.new { token = TOKEN, base_url = srv.base_url, ca_file = srv.ca_file, retries = 0 })
    local res = c:batch { { "accounts" }, { "nickname" } }
    assert.is_table(res[1][1])
    assert.is_table(res[2][1])
    assert.equal(WALLET, c.wallet)
    c:close()
  end)

  it("reconnects after client:close()", function()
    local c = client()
    assert.is_table(c:batch { { "accounts" } }[1][1])
    c:close()
    assert.is_nil(c._transports.batch)
    assert.is_table(c:batch { { "accounts" } }[1][1])
    assert.equal(2, util.connections(srv:requests()))
    c:close()
  end)

  it("refuses a non-list and bad options with an argument error", function()
    local c = client()
    local res, err = c:batch("accounts")
    assert.is_nil(res)
    assert.equal("argument", err.kind)
    res, err = c:batch({}, { parallel = 3 })
    assert.is_nil(res)
    assert.truthy(err.message:find("parallel", 1, true))
    res, err = c:batch({}, { concurrency = 0 })
    assert.is_nil(res)
    assert.equal("argument", err.kind)
    assert.same({}, c:batch {})
    c:close()
  end)
end)

describe("client:batch through a custom transport", function()
  it("runs the calls one after another with the same result shapes", function()
    local f = qiwi.fake.new { token = TOKEN, wallet = WALLET }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f:transport() })
    local res = c:batch { { "accounts" }, { "transaction", 1, "OUT" }, { "nope" }, { "nickname" } }
    assert.is_table(res[1][1].accounts)
    assert.equal(404, res[2][2].status)
    assert.equal("argument", res[3][2].kind)
    assert.is_table(res[4][1])
    assert.equal(3, #f.requests)
  end)
end)

describe("core.multi", function()
  it("refuses requests it cannot send, per request", function()
    local m = core.multi {}
    local hl = assert(core.header_list { "Accept: application/json" })
    local res = m:send_all({ { "GET", "https://127.0.0.1:1/\r\nX: y", hl },
                             { "GET" },
                             { "GET", "https://127.0.0.1:1/", 99 },
                             "nothing" }, 1)
    for i = 1, 4 do
      assert.is_nil(res[i][1])
      assert.equal("argument", res[i][2])
    end
    local nothing, kind = core.header_list { "Bad: header\n" }
    assert.is_nil(nothing)
    assert.equal("argument", kind)
    m:close()
    assert.is_true(m:closed())
    m:close()
    local r, k = m:send_all({}, 1)
    assert.is_nil(r)
    assert.equal("argument", k)
  end)
end)
