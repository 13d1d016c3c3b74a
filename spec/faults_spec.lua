-- The fault battery: the client against a fake QIWI served over real HTTPS
-- (nginx, test CA) that misbehaves on demand. Every fault must come back as
-- `nil, err` of the right kind, with a one-line message free of the token,
-- and leave the client able to make its next call.
local qiwi = require "qiwi"
local core = require "qiwi.core"
local https_fake = require "https_fake"
local blackhole = require "blackhole"
local util = require "util"

local TOKEN = "faults-secret-token-3c9e1f"
local WALLET = "79111234567"
local ACCOUNTS = "/funding%-sources/"
local PAYMENTS = "/sinap/api/v2/terms/%d+/payments$"

local function opts_with(base, extra)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function new_client(srv, extra)
  return assert(qiwi.new(opts_with({ token = TOKEN, wallet = WALLET, base_url = srv.base_url,
                                      ca_file = srv.ca_file, retries = 0, timeout = 5 }, extra)))
end

-- What every fault must give: the kind, a one-line non-empty message, the
-- token nowhere, and `retryable` as a retry policy needs it.
local function check_error(err, kind, retryable)
  assert.is_table(err)
  assert.equal(qiwi.error, getmetatable(err))
  assert.equal(kind, err.kind, tostring(err))
  assert.equal(retryable, err.retryable, tostring(err))
  local text = tostring(err)
  assert.is_string(err.message)
  assert.truthy(err.message:find("%S"), "empty message")
  assert.is_nil(text:find("[\r\n]"), text)
  assert.is_nil(text:find(TOKEN, 1, true), text)
  for k, v in pairs(err) do
    if type(v) == "string" then assert.is_nil(v:find(TOKEN, 1, true), k) end
  end
  return text
end

-- The fault was consumed; the same client (same libcurl handle, whatever
-- state the fault left its connection in) must work again.
local function still_works(c)
  local res, err = c:accounts()
  assert.is_nil(err and tostring(err))
  assert.is_table(res.accounts)
end

local function http_version(c)
  return c._transports.token.session:info().http_version
end

local function rub(srv) return srv:call("balance") end

local function outgoing_to(srv, account)
  local n = 0
  for _, p in ipairs(srv:call("history")) do
    if p.type == "OUT" and p.account == account then n = n + 1 end
  end
  return n
end

describe("fault battery over HTTPS", function()
  local h2, h1

  setup(function()
    h2 = https_fake.shared()
    h1 = https_fake.start { http2 = false }
  end)

  teardown(function()
    if h1 then h1:stop() end
  end)

  before_each(function()
    for _, srv in ipairs { h2, h1 } do
      srv:reset { token = TOKEN, wallet = WALLET, balance = 1000 }
      srv:config { delay_ms = 0 }
    end
  end)

  -- Faults of the connection itself, over both protocols: HTTP/2 turns a
  -- closed request into a stream reset, HTTP/1.1 into a closed connection.
  for _, proto in ipairs { { "HTTP/2", "2", function() return h2 end },
                           { "HTTP/1.1", "1.1", function() return h1 end } } do
    local name, version, server = proto[1], proto[2], proto[3]

    describe(name, function()
      local srv
      before_each(function() srv = server() end)

      -- On a fresh connection: on a reused one libcurl itself would repeat
      -- the GET on a new connection (see the POST case below).
      it("connection reset: network, retryable", function()
        local c = new_client(srv)
        srv:call("fail_next", { reset = true, path_pattern = ACCOUNTS })
        local res, err = c:accounts()
        assert.is_nil(res)
        check_error(err, "network", true)
        assert.matches("[Rr]eset", err.message)
        assert.is_nil(err.status)
        still_works(c)
        assert.equal(version, http_version(c))
      end)

      it("connection closed without an answer: network, retryable", function()
        local c = new_client(srv)
        srv:call("fail_next", { drop = true, path_pattern = ACCOUNTS })
        local res, err = c:accounts()
        assert.is_nil(res)
        check_error(err, "network", true)
        assert.is_nil(err.status)
        still_works(c)
      end)

      it("truncated body (Content-Length larger than what came): network, retryable", function()
        local c = new_client(srv)
        srv:call("fail_next", { truncate = 20, path_pattern = ACCOUNTS })
        local res, err = c:accounts()
        assert.is_nil(res)
        check_error(err, "network", true)
        assert.is_nil(err.status)
        still_works(c)
      end)

      for _, loss in ipairs { "drop", "reset" } do
        it("a POST that must not be repeated, its reused connection lost (" .. loss .. ") after the "
           .. "server acted: sent once, network error", function()
          local c = new_client(srv, { retries = 3 })
          still_works(c)
          srv:call("fail_next", { [loss] = true, served = true, method = "POST", path_pattern = ACCOUNTS })
          local res, err = c:create_account("qw_wallet_eur")
          assert.is_nil(res)
          check_error(err, "network", true)
          local posts = 0
          for _, r in ipairs(srv:requests()) do
            if r.method == "POST" then posts = posts + 1 end
          end
          assert.equal(1, posts)
          still_works(c)
        end)
      end

      it("a GET retried after a reset gets its answer", function()
        local c = new_client(srv, { retries = 2 })
        srv:call("fail_next", { reset = true, path_pattern = ACCOUNTS })
        still_works(c)
        assert.equal(2, #srv:requests())
      end)

      -- The answer is lost after the fake debited the wallet; the client
      -- repeats the POST with the same client id, and QIWI (the fake)
      -- answers a repeated id with the first payment.
      for _, loss in ipairs {
        { "dropped", { drop = true } },
        { "reset", { reset = true } },
        { "truncated", { truncate = 15 } },
        { "replaced by a 502", { status = 502, body = "<html>Bad Gateway</html>",
                                 headers = { ["Content-Type"] = "text/html" } } },
      } do
        it("payment answer " .. loss[1] .. " after the debit: retried with the same id, paid once", function()
          local c = new_client(srv, { retries = 2 })
          local spec = opts_with(loss[2], { served = true, method = "POST", path_pattern = PAYMENTS })
          srv:call("fail_next", spec)
          local res, err = c:transfer { to = "79990001122", amount = 100, comment = "retry proof" }
          assert.is_nil(err and tostring(err))
          assert.equal("Accepted", res.transaction.state.code)
          local posts = {}
          for _, r in ipairs(srv:requests()) do
            if r.method == "POST" then posts[#posts + 1] = r end
          end
          assert.equal(2, #posts)
          assert.equal(posts[1].body, posts[2].body)
          assert.equal(posts[1].json.id, res.id)
          assert.equal(900, rub(srv))
          assert.equal(1, outgoing_to(srv, "+79990001122"))
        end)
      end
    end)
  end

  it("a payment whose answer comes after the call's timeout: timeout; the same id again pays nothing more", function()
    local c = new_client(h2, { retries = 2, timeout = 0.5 })
    h2:call("fail_next", { served = true, delay_ms = 1500, method = "POST", path_pattern = PAYMENTS })
    local id = "1700000000000777"
    local res, err = c:transfer { to = "79990001122", amount = 100, id = id }
    assert.is_nil(res)
    check_error(err, "timeout", true)
    assert.equal(900, rub(h2))
    local again = assert(c:transfer { to = "79990001122", amount = 100, id = id })
    assert.equal(id, again.id)
    assert.equal(900, rub(h2))
    assert.equal(1, outgoing_to(h2, "+79990001122"))
  end)

  describe("answers that are not what they claim", function()
    it("invalid JSON under a JSON content type: decode, not retryable", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 200, body = '{"accounts": [{"alias": "qw_wallet_rub", ', path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "decode", false)
      assert.equal(200, err.status)
      still_works(c)
    end)

    -- QIWI answers some successes with 200 and no body (reject_bill): any
    -- 2xx without a body is success, whatever the content type says
    it("an empty 200 under a JSON content type: true, not an error", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 200, body = "", path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(err)
      assert.is_true(res)
      still_works(c)
    end)

    it("an HTML page where JSON is due: decode", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 200, body = "<html><body>maintenance</body></html>",
                             headers = { ["Content-Type"] = "text/html" }, path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "decode", false)
    end)

    it("invalid JSON in an error answer: http with the status", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 500, body = '{"errorCode": ', path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "http", true)
      assert.equal(500, err.status)
    end)
  end)

  describe("error statuses", function()
    for _, status in ipairs { 423, 500, 502, 503 } do
      it(status .. " with QIWI's error body: api, retryable, with code, description and trace id", function()
        local c = new_client(h2)
        h2:call("fail_next", { status = status, path_pattern = ACCOUNTS })
        local res, err = c:accounts()
        assert.is_nil(res)
        check_error(err, "api", true)
        assert.equal(status, err.status)
        assert.equal("fake.injected", err.code)
        assert.equal("failure injected by fail_next", err.description)
        assert.matches("^%x+$", err.trace_id)
        still_works(c)
      end)

      it(status .. " with a gateway's HTML page: http, retryable", function()
        local c = new_client(h2)
        h2:call("fail_next", { status = status, body = "<html><h1>" .. status .. "</h1>\r\n</html>",
                               headers = { ["Content-Type"] = "text/html" }, path_pattern = ACCOUNTS })
        local res, err = c:accounts()
        assert.is_nil(res)
        check_error(err, "http", true)
        assert.equal(status, err.status)
        assert.is_nil(err.code)
      end)
    end

    it("503 in the payment service's own shape (QWPRC code): api", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 503, body = { code = "QWPRC-220", message = "Недостаточно средств" },
                             method = "POST", path_pattern = PAYMENTS })
      local res, err = c:transfer { to = "79990001122", amount = 1 }
      assert.is_nil(res)
      check_error(err, "api", true)
      assert.equal("QWPRC-220", err.code)
      assert.equal(1000, rub(h2))
    end)

    it("honours Retry-After of a 423 before the retry", function()
      local c = new_client(h2, { retries = 1 })
      h2:call("fail_next", { status = 423, headers = { ["Retry-After"] = "1" }, path_pattern = ACCOUNTS })
      local t0 = core.monotonic()
      still_works(c)
      assert.is_true(core.monotonic() - t0 >= 0.95)
      assert.equal(2, #h2:requests())
    end)
  end)

  describe("slowness", function()
    it("an answer later than the timeout: timeout, retryable", function()
      local c = new_client(h2, { timeout = 0.3 })
      h2:call("fail_next", { delay_ms = 1500, path_pattern = ACCOUNTS })
      local t0 = core.monotonic()
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "timeout", true)
      assert.is_true(core.monotonic() - t0 < 1.2)
      still_works(c)
    end)

    it("a body that stalls halfway past the timeout: timeout", function()
      local c = new_client(h1, { timeout = 0.5 })
      h1:call("fail_next", { stall_ms = 2000, stall_after = 10, path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "timeout", true)
      still_works(c)
    end)

    it("retries never run past the call's timeout", function()
      local c = new_client(h2, { timeout = 0.6, retries = 5 })
      -- Retry-After: 0 makes the second attempt start at once, with 0.2 s left
      h2:call("fail_next", { status = 503, delay_ms = 400, count = 5, headers = { ["Retry-After"] = "0" },
                             path_pattern = ACCOUNTS })
      local t0 = core.monotonic()
      local res, err = c:accounts()
      local dt = core.monotonic() - t0
      assert.is_nil(res)
      check_error(err, "timeout", true)
      assert.is_true(dt >= 0.55 and dt < 1.0, dt)
      assert.equal(2, #h2:requests())
    end)

    it("a connect that never completes: timeout after connect_timeout", function()
      local bh = blackhole.start()
      local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = "https://127.0.0.1:" .. bh.port,
                                  ca_file = h2.ca_file, connect_timeout = 0.3, timeout = 5, retries = 0 })
      local t0 = core.monotonic()
      local res, err = c:accounts()
      local dt = core.monotonic() - t0
      bh.stop()
      assert.is_nil(res)
      check_error(err, "timeout", true)
      assert.is_true(dt >= 0.25 and dt < 2, dt)
    end)
  end)

  describe("TLS", function()
    it("a server certificate from another CA: tls, not retryable, nothing sent", function()
      local other = https_fake.start { cert = "other_ca", fake = { token = TOKEN } }
      local c = new_client(other, { ca_file = h2.ca_file, retries = 2 })
      local res, err = c:accounts()
      local seen = other:requests()
      other:stop()
      assert.is_nil(res)
      check_error(err, "tls", false)
      assert.equal(0, #seen)
    end)

    it("a certificate for another host name: tls, not retryable, nothing sent", function()
      local wrong = https_fake.start { cert = "wrong_host", fake = { token = TOKEN } }
      local c = new_client(wrong, { ca_file = h2.ca_file, retries = 2 })
      local res, err = c:accounts()
      local seen = wrong:requests()
      wrong:stop()
      assert.is_nil(res)
      check_error(err, "tls", false)
      assert.equal(0, #seen)
    end)
  end)

  describe("oversize answers", function()
    local MiB = 1024 * 1024

    it("a body over the default 10 MiB cap: http, not retryable, the cap named", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 200, body_bytes = 10 * MiB + 1, path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "http", false)
      assert.matches("10485760 byte cap", err.message, 1, true)
      still_works(c)
    end)

    it("a body of exactly 10 MiB is read", function()
      local c = new_client(h2)
      h2:call("fail_next", { status = 200, body_bytes = 10 * MiB, path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(err and tostring(err))
      assert.equal(10 * MiB - 10, #res.pad)
    end)

    it("max_body lowers the cap", function()
      local c = new_client(h1, { max_body = 64 * 1024 })
      h1:call("fail_next", { status = 200, body_bytes = 64 * 1024 + 1, path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "http", false)
      assert.matches("65536 byte cap", err.message, 1, true)
      h1:call("fail_next", { status = 200, body_bytes = 64 * 1024, path_pattern = ACCOUNTS })
      assert.equal(64 * 1024 - 10, #assert(c:accounts()).pad)
    end)

    it("an error answer over the cap is refused the same way", function()
      local c = new_client(h2, { max_body = 4096, retries = 2 })
      h2:call("fail_next", { status = 500, body_bytes = 5000, path_pattern = ACCOUNTS })
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, "http", false)
      assert.equal(1, #h2:requests())
    end)
  end)

  describe("redirects", function()
    local other
    setup(function() other = https_fake.start { fake = { token = TOKEN, wallet = WALLET } } end)
    teardown(function() if other then other:stop() end end)
    before_each(function() other:reset { token = TOKEN, wallet = WALLET } end)

    for _, status in ipairs { 301, 302, 307, 308 } do
      it(status .. " to another host is not followed and the other host gets nothing", function()
        local c = new_client(h2, { retries = 2 })
        local target = "https://localhost:" .. other.port .. "/funding-sources/v2/persons/" .. WALLET .. "/accounts"
        h2:call("fail_next", { status = status, body = "", headers = { Location = target }, path_pattern = ACCOUNTS })
        local res, err = c:accounts()
        assert.is_nil(res)
        local text = check_error(err, "http", false)
        assert.equal(status, err.status)
        assert.matches("redirect", text)
        assert.equal(1, #h2:requests())
        assert.equal(0, #other:requests())
      end)
    end

    it("a redirect of a payment to the same host is not followed either", function()
      local c = new_client(h2, { retries = 2 })
      h2:call("fail_next", { status = 307, body = "", method = "POST", path_pattern = PAYMENTS,
                             headers = { Location = h2.base_url .. "/sinap/api/v2/terms/99/payments" } })
      local res, err = c:transfer { to = "79990001122", amount = 100 }
      assert.is_nil(res)
      check_error(err, "http", false)
      assert.equal(1, #h2:requests())
      assert.equal(1000, rub(h2))
    end)
  end)

  describe("http:// base URLs", function()
    for _, case in ipairs {
      { "a remote host", { base_url = "http://edge.qiwi.com" } },
      { "a remote host even with allow_http", { base_url = "http://edge.qiwi.com", allow_http = true } },
      { "a private address with allow_http", { base_url = "http://10.0.0.1:8080", allow_http = true } },
      { "a host name that only starts like loopback", { base_url = "http://127.0.0.1.example.com", allow_http = true } },
      { "loopback without allow_http", { base_url = "http://127.0.0.1:8080" } },
      { "localhost without allow_http", { base_url = "http://localhost:8080" } },
      { "allow_http that is not true", { base_url = "http://127.0.0.1:8080", allow_http = "yes" } },
    } do
      it("refuses " .. case[1] .. " with an argument error", function()
        local c, err = qiwi.new(opts_with({ token = TOKEN, wallet = WALLET }, case[2]))
        assert.is_nil(c)
        check_error(err, "argument", false)
        assert.matches("https", err.message)
      end)
    end

    describe("on loopback with allow_http", function()
      local plain, port
      setup(function()
        for _ = 1, 5 do
          -- a free loopback port for a plain-HTTP listener beside the fake
          port = util.free_port()
          local ok, srv = pcall(https_fake.start, {
            fake = { token = TOKEN, wallet = WALLET },
            http_extra = "    server { listen 127.0.0.1:" .. port .. "; location / { content_by_lua_block { "
              .. 'require("qiwi.fake.nginx").serve() } } }',
          })
          if ok then plain = srv break end
        end
        assert(plain, "no plain-HTTP server could be started")
      end)
      teardown(function() if plain then plain:stop() end end)
      before_each(function() plain:reset { token = TOKEN, wallet = WALLET } end)

      it("talks plain HTTP", function()
        local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = "http://127.0.0.1:" .. port,
                                    allow_http = true, retries = 0 })
        still_works(c)
        assert.equal(1, #plain:requests())
      end)

      it("the core session refuses http:// unless the session allows it", function()
        local s = core.session {}
        local hl = assert(core.header_list { "Authorization: Bearer " .. TOKEN })
        local status, kind, message = s:send("GET", "http://127.0.0.1:" .. port .. "/funding-sources/v2/persons/"
                                             .. WALLET .. "/accounts", hl)
        s:close()
        assert.is_nil(status)
        assert.equal("network", kind)
        assert.matches("http", message)
        assert.equal(0, #plain:requests())
      end)
    end)
  end)
end)

-- The same faults through the in-process fake's transport, which users'
-- own suites run on: each must come back as the kind the network gives.
describe("fault injection of the in-process fake", function()
  local fake = require "qiwi.fake"

  local function setup_fake(extra)
    local f = fake.new(opts_with({ token = TOKEN, wallet = WALLET, balance = 1000 }, extra))
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f:transport(), retries = 0 })
    return f, c
  end

  for _, case in ipairs {
    { "reset", { reset = true }, "network", "reset" },
    { "drop", { drop = true }, "network", "dropped" },
    { "truncate", { truncate = 5 }, "network", "truncated" },
  } do
    it(case[1] .. " is a " .. case[3] .. " error and the request is logged", function()
      local f, c = setup_fake()
      f:fail_next(case[2])
      local res, err = c:accounts()
      assert.is_nil(res)
      check_error(err, case[3], true)
      assert.matches(case[4], err.message)
      assert.equal(1, #f.requests)
      still_works(c)
    end)
  end

  it("stall_ms past the timeout is a timeout (with a sleep option)", function()
    local slept = 0
    local f = fake.new { token = TOKEN, wallet = WALLET, sleep = function(s) slept = slept + s end }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f:transport(), retries = 0, timeout = 1 })
    f:fail_next { stall_ms = 5000 }
    local res, err = c:accounts()
    assert.is_nil(res)
    check_error(err, "timeout", true)
    assert.is_true(slept >= 0.99 and slept <= 1.01, slept)
  end)

  it("body_bytes makes a body of exactly that size", function()
    local f, c = setup_fake()
    f:fail_next { status = 200, body_bytes = 4096 }
    assert.equal(4096 - 10, #assert(c:accounts()).pad)
  end)

  it("without served the request never reaches the fake; with served it does", function()
    local f, c = setup_fake()
    f:fail_next { drop = true, method = "POST" }
    assert.is_nil((c:transfer { to = "79990001122", amount = 10 }))
    assert.equal(1000, f:balance())
    f:fail_next { drop = true, served = true, method = "POST" }
    assert.is_nil((c:transfer { to = "79990001122", amount = 10 }))
    assert.equal(990, f:balance())
  end)

  it("a payment answer lost after the debit is retried with the same id and paid once", function()
    local f = fake.new { token = TOKEN, wallet = WALLET, balance = 1000 }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f:transport(), retries = 2 })
    f:fail_next { reset = true, served = true, method = "POST" }
    local res, err = c:transfer { to = "79990001122", amount = 100 }
    assert.is_nil(err and tostring(err))
    assert.equal("Accepted", res.transaction.state.code)
    assert.equal(2, #f.requests)
    assert.equal(f.requests[1].body, f.requests[2].body)
    assert.equal(900, f:balance())
  end)

  it("served with a status replaces the answer of a handled request", function()
    local f, c = setup_fake()
    f:fail_next { status = 503, served = true, method = "POST" }
    local res, err = c:transfer { to = "79990001122", amount = 10 }
    assert.is_nil(res)
    check_error(err, "api", true)
    assert.equal(990, f:balance())
  end)
end)
