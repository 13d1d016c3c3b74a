-- client:watch against the in-process fake: bursts bigger than a page,
-- payments of one second, status changes, failing handlers, two names on
-- one store, faults then recovery, the 90-day window, the lease, the pending
-- cap, and the ledger shared with webhooks (qiwi.events). Processes killed
-- mid-round are in watch_kill_spec.lua, nginx in watch_nginx_spec.lua.
local qiwi = require "qiwi"
local events = require "qiwi.events"
local fake_util = require "qiwi.fake.util"

local TOKEN, WALLET = "watch-test-token", "79111234567"
local DAY = 86400

local function setup(opts)
  opts = opts or {}
  local f = qiwi.fake.new { token = TOKEN, wallet = WALLET, history_rows = opts.seed or 3 }
  local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f, retries = 0,
                              store = opts.store or qiwi.store.memory() })
  return f, c
end

-- A handler that records what it got, and how often each txnId came.
local function recorder(behaviour)
  local r = { list = {}, times = {}, sources = {} }
  r.fn = function(p, source)
    local verdict = behaviour and behaviour(p, r)
    if verdict == "raise" then error("handler broke on " .. tostring(p.txnId)) end
    if verdict == false then return false end
    r.list[#r.list + 1] = p.txnId
    r.times[p.txnId] = (r.times[p.txnId] or 0) + 1
    r.sources[#r.sources + 1] = source
  end
  return r
end

local function no_repeats(r)
  for id, n in pairs(r.times) do
    assert(n == 1, "txnId " .. tostring(id) .. " delivered " .. n .. " times")
  end
end

local function statuses_seen(f)
  local seen = {}
  for _, req in ipairs(f.requests) do seen[req.status or 0] = (seen[req.status or 0] or 0) + 1 end
  return seen
end

local function history_calls(f)
  local n = 0
  for _, req in ipairs(f.requests) do
    if req.path:find("^/payment%-history/") then n = n + 1 end
  end
  return n
end

describe("client:watch", function()
  it("delivers 300 payments arriving over 20 rounds in bursts of 120, each once, oldest first", function()
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn })
    assert.equal(0, (w:poll())) -- a new cursor without since starts after what is there
    local sent, order = 0, {}
    local t0 = os.time() - 600 -- a second apart: one second's payments are the next case
    local plan = { [3] = 120, [9] = 120 } -- two bursts; the other 60 spread over the rest
    local delivered = 0
    for round = 1, 20 do
      local n = plan[round] or (round % 3 == 0 and 0 or 4)
      if round == 20 then n = 300 - sent end
      for _ = 1, n do
        sent = sent + 1
        order[#order + 1] = f:receive { from = "79260000000", amount = sent, comment = "order " .. sent,
                                        date = t0 + sent }
      end
      local got, err = w:poll()
      assert(got, tostring(err))
      delivered = delivered + got
    end
    assert.equal(300, sent)
    assert.equal(300, delivered)
    assert.same(order, r.list) -- oldest first: the order they arrived in
    no_repeats(r)
    assert.equal(300, #r.sources)
    for _, s in ipairs(r.sources) do assert.equal("poll", s) end
    assert.is_nil(statuses_seen(f)[423])
    -- three pages for each burst of 120, one for every other round
    assert.is_true(history_calls(f) <= 21 + 2 * 2 + 2)
    -- every history request named its period: without one QIWI answers for a day only
    for _, req in ipairs(f.requests) do
      if req.path:find("/payments$") then
        assert.is_string(req.params.startDate)
        assert.is_string(req.params.endDate)
      end
    end
  end)

  it("gives the payment the history item's keys, txnId an integer", function()
    local f, c = setup()
    local r = { }
    local w = assert(c:watch { on_payment = function(p, source) r.p, r.source = p, source end })
    w:poll()
    local id = f:receive { from = "79261112233", amount = "12.34", comment = "order 42" }
    assert.equal(1, (w:poll()))
    assert.equal(id, r.p.txnId)
    assert.equal(math.type and "integer" or "number", math.type and math.type(r.p.txnId) or type(r.p.txnId))
    assert.equal("IN", r.p.type)
    assert.equal("SUCCESS", r.p.status)
    assert.equal("order 42", r.p.comment)
    assert.equal(12.34, r.p.sum.amount)
    assert.equal(643, r.p.sum.currency)
    assert.equal("+79261112233", r.p.account)
    assert.equal("poll", r.source)
  end)

  it("starts at since (inclusive) for a new cursor, and never moves an existing one by since", function()
    local f, c = setup()
    local now = os.time()
    local old = f:receive { from = "1", amount = 1, date = now - 7200 }
    local at = f:receive { from = "1", amount = 2, date = now - 3600 }
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, since = now - 3600 })
    assert.equal(1, (w:poll()))
    assert.same({ at }, r.list)
    assert.is_nil(r.times[old])
    -- a new watcher object on the same cursor with an older since: nothing again
    local r2 = recorder()
    local w2 = assert(c:watch { on_payment = r2.fn, since = now - 8000 })
    assert.equal(0, (w2:poll()))
    assert.same({}, r2.list)
  end)

  it("delivers payments of one second that straddle two polls, and the rest of a second later", function()
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn })
    w:poll()
    local t = os.time() + 30
    local ids = {}
    for i = 1, 70 do ids[#ids + 1] = f:receive { from = "1", amount = i, date = t } end
    assert.equal(70, (w:poll()))
    -- more in the very same second as the cursor
    for i = 1, 5 do ids[#ids + 1] = f:receive { from = "1", amount = i, date = t } end
    assert.equal(5, (w:poll()))
    assert.same(ids, r.list)
    no_repeats(r)
  end)

  it("keeps working when QIWI's clock runs ahead of ours (a cursor in our future)", function()
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn })
    w:poll()
    local a = f:receive { from = "1", amount = 1, date = os.time() + 1800 }
    assert.equal(1, (w:poll()))
    local b = f:receive { from = "1", amount = 2, date = os.time() + 1801 }
    local got, err = w:poll()
    assert.equal(1, got, tostring(err))
    assert.same({ a, b }, r.list)
  end)

  it("delivers a WAITING payment when it becomes SUCCESS, once, and never one that fails", function()
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, recheck = 0 })
    w:poll()
    local waits = f:receive { from = "1", amount = 10, status = "WAITING" }
    local fails = f:receive { from = "1", amount = 11, status = "WAITING" }
    assert.equal(0, (w:poll()))
    -- newer payments arrive, the cursor moves past the waiting ones
    for i = 1, 60 do f:receive { from = "1", amount = i, date = os.time() + 60 } end
    assert.equal(60, (w:poll()))
    f:set_status(waits, "SUCCESS")
    f:set_status(fails, "ERROR")
    assert.equal(1, (w:poll()))
    assert.equal(waits, r.list[#r.list])
    assert.equal(0, (w:poll()))
    assert.is_nil(r.times[fails])
    no_repeats(r)
    -- the waiting ones behind the cursor were asked for by id
    local by_id = 0
    for _, req in ipairs(f.requests) do
      if req.path:find("/transactions/" .. waits, 1, true) then by_id = by_id + 1 end
    end
    assert.is_true(by_id >= 1)
  end)

  it("hands a payment that starts WAITING with statuses={'WAITING','SUCCESS'} once, on its first status", function()
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, statuses = { "WAITING", "SUCCESS" } })
    w:poll()
    local id = f:receive { from = "1", amount = 10, status = "WAITING" }
    assert.equal(1, (w:poll()))
    f:set_status(id, "SUCCESS")
    assert.equal(0, (w:poll()))
    assert.same({ id }, r.list)
  end)

  it("gives a payment whose handler raised or returned false again later, without holding back newer ones", function()
    local f, c = setup()
    local broken = {}
    local r = recorder(function(p)
      local b = broken[p.txnId]
      if b and b > 0 then
        broken[p.txnId] = b - 1
        return b % 2 == 0 and "raise" or false
      end
    end)
    local w = assert(c:watch { on_payment = r.fn })
    w:poll()
    local a = f:receive { from = "1", amount = 1 }
    local b = f:receive { from = "1", amount = 2 }
    local cc = f:receive { from = "1", amount = 3 }
    broken[a] = 3 -- raise, false, raise, then fine
    assert.equal(2, (w:poll()))
    assert.same({ b, cc }, r.list)
    assert.equal(1, w.stats.failed)
    assert.equal(0, (w:poll()))
    assert.equal(0, (w:poll()))
    assert.equal(1, (w:poll()))
    assert.same({ b, cc, a }, r.list)
    assert.equal(0, (w:poll()))
    no_repeats(r)
  end)

  it("keeps two names on one store apart: each delivers every payment once", function()
    local s = qiwi.store.memory()
    local f, c = setup { store = s }
    local r1, r2 = recorder(), recorder()
    local w1 = assert(c:watch { on_payment = r1.fn, name = "shop" })
    local w2 = assert(c:watch { on_payment = r2.fn, name = "accounting" })
    w1:poll() w2:poll()
    local ids = {}
    for i = 1, 55 do ids[i] = f:receive { from = "1", amount = i } end
    assert.equal(55, (w1:poll()))
    assert.equal(55, (w2:poll()))
    assert.same(ids, r1.list)
    assert.same(ids, r2.list)
  end)

  it("lets one poller of a wallet and name deliver; another takes over when it stops", function()
    local s = qiwi.store.memory()
    local f, c = setup { store = s }
    local r1, r2 = recorder(), recorder()
    local w1 = assert(c:watch { on_payment = r1.fn, interval = 5 })
    local w2 = assert(c:watch { on_payment = r2.fn, interval = 5 })
    assert.equal(0, (w1:poll()))
    assert.is_true(w1.active)
    f:receive { from = "1", amount = 1 }
    assert.equal(0, (w2:poll()))
    assert.is_false(w2.active)
    assert.equal(1, (w1:poll()))
    w1:stop()
    f:receive { from = "1", amount = 2 }
    assert.equal(1, (w2:poll()))
    assert.is_true(w2.active)
    assert.equal(1, #r1.list)
    assert.equal(1, #r2.list)
  end)

  it("takes the lease over when its holder dies (stops renewing it)", function()
    local s = qiwi.store.memory()
    local f, c = setup { store = s }
    local r1, r2 = recorder(), recorder()
    local w1 = assert(c:watch { on_payment = r1.fn, interval = 0.1, lease = 0.3 })
    local w2 = assert(c:watch { on_payment = r2.fn, interval = 0.1, lease = 0.3 })
    assert.equal(0, (w1:poll()))
    f:receive { from = "1", amount = 1 }
    assert.equal(0, (w2:poll()))
    -- w1 is gone without a word: no stop, no release
    require("qiwi.core").sleep(0.35)
    assert.equal(1, (w2:poll()))
    assert.is_true(w2.active)
    assert.same({}, r1.list)
  end)

  it("fails rounds while the server fails, moves nothing, and delivers everything once after", function()
    local f = qiwi.fake.new { token = TOKEN, wallet = WALLET, history_rows = 3 }
    local drop_pages = 0
    local wrapper = { request = function(_, method, url, ...)
      if drop_pages > 0 and url:find("nextTxnId", 1, true) then
        drop_pages = drop_pages - 1
        return nil, "network", "connection dropped"
      end
      return f:request(method, url, ...)
    end }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = wrapper, retries = 0,
                                store = qiwi.store.memory() })
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn })
    w:poll()
    local ids = {}
    for i = 1, 75 do ids[i] = f:receive { from = "1", amount = i } end
    f:fail_next { status = 500, count = -1, path_pattern = "payment%-history" }
    for _ = 1, 3 do
      local got, err = w:poll()
      assert.is_nil(got)
      assert.equal("api", err.kind)
      assert.equal(500, err.status)
    end
    -- a fault on the second page: the round fails after the first
    f:clear_faults()
    drop_pages = 1
    local got, err = w:poll()
    assert.is_nil(got)
    assert.equal("network", err.kind)
    assert.equal(0, drop_pages)
    assert.same({}, r.list)
    for i = 76, 80 do ids[i] = f:receive { from = "1", amount = i } end
    assert.equal(80, (w:poll()))
    assert.same(ids, r.list)
    no_repeats(r)
    assert.equal(4, w.stats.errors)
  end)

  it("fails a round with kind store when the store is down, and nothing is delivered", function()
    local broken = setmetatable({ name = "broken" }, { __index = function(_, k)
      if k == "close" then return function() return true end end
      return function()
        return nil, setmetatable({ kind = "store", message = "down", retryable = true }, qiwi.error)
      end
    end })
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, store = broken })
    f:receive { from = "1", amount = 1 }
    local got, err = w:poll()
    assert.is_nil(got)
    assert.equal("store", err.kind)
    assert.same({}, r.list)
  end)

  it("seeds a cursor older than QIWI's 90 days at the window's edge, and drops what left it", function()
    local f, c = setup()
    local now = os.time()
    local too_old = f:receive { from = "1", amount = 1, date = now - 95 * DAY }
    local inside = f:receive { from = "1", amount = 2, date = now - 80 * DAY }
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, since = now - 200 * DAY })
    local got, err = w:poll()
    assert(got, tostring(err))
    assert.same({ inside }, r.list)
    assert.is_nil(r.times[too_old])
    for _, req in ipairs(f.requests) do
      if req.path:find("/payments$") then
        -- the whole timestamp with its offset: the day alone (read at noon,
        -- as this did) failed every afternoon (UTC), the client's start being
        -- now - 90 days + 3 hours
        local start = assert(fake_util.parse_date(req.params.startDate))
        assert.is_true(now - start <= 90 * DAY, req.params.startDate)
      end
    end
    -- a waiting payment that leaves the window is dropped from the pending list
    local clock = now
    local w2 = assert(c:watch { on_payment = r.fn, name = "aging", since = now - DAY, recheck = 0,
                                clock = function() return clock end })
    local waits = f:receive { from = "1", amount = 3, status = "WAITING", date = now - 3600 }
    assert.equal(0, (w2:poll()))
    clock = now + 91 * DAY
    f:set_time(clock)
    assert(w2:poll())
    assert.equal(1, w2.stats.expired)
    f:set_status(waits, "SUCCESS")
    assert.equal(0, (w2:poll()))
  end)

  it("holds the cursor when the pending list is full instead of dropping payments", function()
    local f, c = setup()
    local fail = true
    local r = recorder(function() if fail then return false end end)
    local w = assert(c:watch { on_payment = r.fn, max_pending = 3 })
    w:poll()
    local ids = {}
    for i = 1, 6 do ids[i] = f:receive { from = "1", amount = i } end
    assert.equal(0, (w:poll()))
    assert.equal(0, (w:poll()))
    fail = false
    -- the three pending, then the three the cursor held, in one round
    assert.equal(6, (w:poll()))
    assert.equal(0, (w:poll()))
    assert.same(ids, r.list)
  end)

  it("de-duplicates with webhook deliveries on the same store and name", function()
    local s = qiwi.store.memory()
    local f, c = setup { store = s }
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn })
    w:poll()
    local a = f:receive { from = "1", amount = 1 }
    local b = f:receive { from = "1", amount = 2 }
    -- b came by webhook first (what webhook.handler{on_payment=} does)
    local key = events.key(WALLET, "default", b, "IN")
    assert.equal("done", (events.deliver(s, key, r.fn, { txnId = b, type = "IN" }, "webhook")))
    assert.equal(1, (w:poll()))
    assert.same({ b, a }, r.list)
    assert.same({ "webhook", "poll" }, r.sources)
    -- and a webhook after the watcher finds it delivered
    assert.equal("dup", (events.deliver(s, events.key(WALLET, "default", a, "IN"), r.fn, { txnId = a, type = "IN" },
                                        "webhook")))
    no_repeats(r)
  end)

  it("with operation ALL tells an incoming and an outgoing entry of one txnId apart", function()
    local f, c = setup()
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, operation = "ALL" })
    w:poll()
    local t = os.time() + 1
    local id = f:receive { from = "1", amount = 5, txn_id = 30000000001, date = t }
    f:add_payment { type = "OUT", amount = 5, txn_id = id, date = t }
    assert.equal(2, (w:poll()))
    assert.same({ id, id }, r.list)
    -- and the next entry of that second after both
    local later = f:receive { from = "1", amount = 6, txn_id = 30000000002, date = t }
    assert.equal(1, (w:poll()))
    assert.same({ id, id, later }, r.list)
  end)

  it("shapes a webhook notification's payment like a history item", function()
    local p = events.from_notification {
      txnId = "13117338074", errorCode = "0", provider = 25549, type = "IN", status = "SUCCESS",
      sum = { amount = 1.73, currency = 643 }, date = "2018-05-18T16:05:15+03:00", personId = 79254914194,
      signFields = "sum.currency,sum.amount,type,account,txnId", account = "79042426915",
    }
    assert.equal(13117338074, p.txnId)
    assert.equal("number", type(p.txnId))
    assert.equal(0, p.errorCode)
    assert.same({ id = 25549 }, p.provider)
    assert.is_nil(p.signFields)
    assert.equal("79042426915", p.account)
  end)

  it("run{rounds=} polls that many times, backing off after failures", function()
    local f, c = setup()
    local waits = {}
    local r = recorder()
    local w = assert(c:watch { on_payment = r.fn, interval = 2, sleep = function(s) waits[#waits + 1] = s end })
    f:receive { from = "1", amount = 1 }
    w:poll()
    f:receive { from = "1", amount = 2 }
    f:fail_next { status = 503, count = 2, path_pattern = "payment%-history" }
    local total, err = w:run { rounds = 4 }
    assert.equal(1, total)
    assert.is_nil(err)
    assert.equal(3, #waits)
    assert.is_true(waits[1] >= 2 * 2 * 0.75 and waits[2] >= 2 * 4 * 0.75, table.concat(waits, ","))
    assert.equal(2, waits[3])
  end)

  it("refuses bad options as argument errors and sends nothing", function()
    local f, c = setup()
    local fn = function() end
    local bad = {
      {}, { on_payment = 1 }, { on_payment = fn, operation = "SIDEWAYS" },
      { on_payment = fn, statuses = {} }, { on_payment = fn, statuses = { "PAID" } },
      { on_payment = fn, interval = 0 }, { on_payment = fn, interval = 0 / 0 },
      { on_payment = fn, name = "" }, { on_payment = fn, name = "a b" }, { on_payment = fn, name = ("x"):rep(101) },
      { on_payment = fn, since = "yesterday" }, { on_payment = fn, store = {} },
      { on_payment = fn, max_pending = 0 }, { on_payment = fn, lease = 1, interval = 10 },
      { on_payment = fn, unknown = true },
    }
    local before = #f.requests
    for i, o in ipairs(bad) do
      local w, err = c:watch(o)
      assert.is_nil(w, "case " .. i)
      assert.equal("argument", err.kind, "case " .. i)
    end
    local w, err = c:watch("x")
    assert.is_nil(w)
    assert.equal("argument", err.kind)
    assert.equal(before, #f.requests)
    local ok = assert(c:watch { on_payment = fn })
    local total, rerr = ok:run { rounds = 0 }
    assert.is_nil(total)
    assert.equal("argument", rerr.kind)
  end)

  it("refuses a cursor it cannot read instead of starting afresh", function()
    local s = qiwi.store.memory()
    local _, c = setup { store = s }
    assert(s:set("watch:" .. WALLET .. ":default:cursor", "{not json"))
    local w = assert(c:watch { on_payment = function() end })
    local got, err = w:poll()
    assert.is_nil(got)
    assert.equal("store", err.kind)
    assert.matches("delete the key", err.message)
  end)
end)

describe("client:watch on a real redis-server (two hosts)", function()
  local redis_harness = require "redis"
  local srv
  -- (the file's own setup() makes a fake and a client)
  lazy_setup(function() srv = redis_harness.start {} end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("one poller at a time, each payment once, the other taking over when it stops", function()
    local f = qiwi.fake.new { token = TOKEN, wallet = WALLET, history_rows = 3 }
    local function host()
      local s = assert(qiwi.store.redis { host = "127.0.0.1", port = srv.port, prefix = "watch-spec:" })
      local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f, retries = 0, store = s })
      return c
    end
    local got = {}
    local function fn(p, _) got[#got + 1] = p.txnId end
    local a = assert(host():watch { on_payment = fn, interval = 1 })
    local b = assert(host():watch { on_payment = fn, interval = 1 })
    assert.equal(0, (a:poll()))
    local ids = {}
    for i = 1, 60 do ids[i] = f:receive { from = "1", amount = i } end
    assert.equal(0, (b:poll()))
    assert.equal(60, (a:poll()))
    a:stop()
    for i = 61, 70 do ids[i] = f:receive { from = "1", amount = i } end
    assert.equal(10, (b:poll()))
    assert.equal(0, (a:poll())) -- b holds it now
    assert.same(ids, got)
  end)
end)
