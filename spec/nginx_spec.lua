-- Our client inside a real nginx (Debian's nginx with libnginx-mod-http-lua,
-- so LuaJIT and cosockets), on loopback ports picked at run time. Three
-- servers of the https_fake harness: the fake QIWI, a "shapes" upstream whose
-- answers are written byte for byte (spec/support/nginx_client.lua), and the
-- app: one nginx process running examples/openresty's handlers plus test
-- locations. The app trusts the test CA through lua_ssl_trusted_certificate
-- and reaches the others as fake.qiwi.test (the name in their certificate)
-- through the client's `resolve`.
--
-- Tagged "nginx": `make test` runs it once, not under every interpreter,
-- since what it tests runs inside nginx's LuaJIT whatever drives it.
local qiwi = require "qiwi"
local https_fake = require "https_fake"
local util = require("pki").util

local shq = util.shq
local REPO = util.repo_root()
local TOKEN, WALLET = "test-token", "79111234567"
local KEY = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="

-- The docs' worked example of a notification; DOCS_HASH is its signature
-- under KEY, and messageId is not among the signed fields.
local function notification(message_id, hash)
  return '{"messageId":"' .. message_id .. '","hookId":"5e2027d1-f5f3-4ad1-b409-058b8b8a8c22",'
    .. '"payment":{"txnId":"13353941550","date":"2018-06-27T13:39:00+03:00","type":"IN","status":"SUCCESS",'
    .. '"errorCode":"0","personId":78000008000,"account":"+79161112233","comment":"","provider":7,'
    .. '"sum":{"amount":1,"currency":643},"commission":{"amount":0,"currency":643},'
    .. '"total":{"amount":1,"currency":643},"signFields":"sum.currency,sum.amount,type,account,txnId"},'
    .. '"hash":"' .. hash .. '","version":"1.0.0","test":false}'
end
local DOCS_HASH = "f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243"
local WRONG_HASH = "76687ffe5c516c793faa46fafba0994e7ca7a6d735966e0e0c0b65eaa43bdca0"

local function wait_until(timeout, fn) return util.wait_until(timeout, fn, 0.02) end

describe("inside nginx #nginx", function()
  local fake, shapes, other, app
  local FAKE_URL, SHAPES_URL

  setup(function()
    util.need_luajit_core()
    local support = https_fake.SUPPORT_PATH

    fake = https_fake.start { fake = { token = TOKEN, wallet = WALLET, balance = "1234.56" } }
    shapes = https_fake.start {
      location_lua = 'require("nginx_client").shapes()', lua_path = support, http2 = false,
      http_extra = https_fake.client_http() .. "\n    lua_shared_dict results 1m;",
      server_extra = '        location = /t/result { content_by_lua_block { require("nginx_client").result() } }',
    }
    other = https_fake.start { cert = "other_ca", location_lua = 'ngx.say("unreachable")' }
    FAKE_URL = "https://fake.qiwi.test:" .. fake.port
    SHAPES_URL = "https://fake.qiwi.test:" .. shapes.port

    local http = {
      https_fake.client_http(fake.ca_file),
      "    lua_shared_dict qiwi_webhooks 1m;",
      "    lua_shared_dict qiwi_payments 1m;",
      "    lua_shared_dict results 1m;",
      "    init_by_lua_block {",
      '        require("shop.qiwi").configure {',
      '            token = "' .. TOKEN .. '", wallet = "' .. WALLET .. '", retries = 0,',
      '            base_url = "' .. FAKE_URL .. '", resolve = { ["fake.qiwi.test"] = "127.0.0.1" },',
      '            webhook_key = "' .. KEY .. '", webhook_dict = "qiwi_webhooks",',
      '            on_notification = function(note) require("nginx_client").count_notification(note) end,',
      "        }",
      "    }",
      '    init_worker_by_lua_block { require("nginx_client").init_worker("' .. FAKE_URL .. '") }',
    }
    local server = {
      '        location = /balance { content_by_lua_block { require("shop.balance")() } }',
      '        location = /qiwi/webhook { content_by_lua_block { require("shop.webhook")() } }',
      '        location = /t/call { content_by_lua_block { require("nginx_client").call() } }',
      '        location = /t/result { content_by_lua_block { require("nginx_client").result() } }',
      '        location = /t/webhook-memory { content_by_lua_block { require("nginx_client").webhook_memory() } }',
      '        location = /t/payment { content_by_lua_block {',
      "            ngx.say(ngx.shared.qiwi_payments:get(ngx.var.arg_txn) or \"none\") } }",
      "        location = /t/log-phase {",
      '            content_by_lua_block { ngx.say("ok") }',
      '            log_by_lua_block { require("nginx_client").log_phase("' .. FAKE_URL .. '") }',
      "        }",
      '        location = /t/blocking { content_by_lua_block { require("nginx_client").blocking("'
        .. FAKE_URL .. '", ' .. fake.port .. ', "' .. fake.ca_file .. '") } }',
    }
    app = https_fake.start {
      lua_path = REPO .. "/examples/openresty/lua/?.lua;" .. support,
      location_lua = "ngx.exit(404)",
      http_extra = table.concat(http, "\n"), server_extra = table.concat(server, "\n"),
    }
  end)

  teardown(function()
    for _, srv in ipairs { app, other, shapes, fake } do
      if srv then srv:stop() end
    end
  end)

  before_each(function()
    fake:reset { token = TOKEN, wallet = WALLET, balance = "1234.56" }
    fake:config { delay_ms = 0 }
  end)

  -- GET on the app; the decoded JSON answer (or the raw body), the status.
  local function get(path)
    local status, body, cerr = app:curl("GET", path)
    assert(status ~= 0, "no answer from the app: " .. cerr .. "\n" .. app:error_log(20))
    local v = qiwi.json.decode(body)
    if v == nil then v = body end
    return v, status
  end

  -- A client call made inside the app; options as query arguments.
  local function call(args)
    local v, status = get("/t/call?" .. util.query(args))
    assert(status == 200, ("/t/call answered %s %s\n--- app error.log ---\n%s"):format(
      status, type(v) == "string" and v or "", app:error_log(20)))
    return v
  end

  local function shape(name, extra)
    local args = { base = SHAPES_URL, resolve = "fake.qiwi.test=127.0.0.1", token = "shape-" .. name }
    for k, v in pairs(extra or {}) do args[k] = v end
    return call(args)
  end

  -- n GETs of path at once (curl --parallel, one connection each); returns
  -- the statuses, the bodies and the wall-clock seconds for all of them.
  local function parallel_get(path, n)
    local dir = app.prefix .. "/tmp"
    local cmd = { "curl -sS --http1.1 --parallel --parallel-immediate --parallel-max", tostring(n),
                  "--max-time 20 --cacert", shq(app.ca_file), "-w '%{http_code}\\n'" }
    for i = 1, n do
      os.remove(dir .. "/par-" .. i)
      cmd[#cmd + 1] = "-o " .. shq(dir .. "/par-" .. i) .. " " .. shq(app:url(path))
    end
    cmd[#cmd + 1] = "2>&1 </dev/null"
    local t0 = util.now()
    local out = util.output(table.concat(cmd, " "))
    local elapsed = util.now() - t0
    local statuses, bodies = {}, {}
    for code in out:gmatch("(%d%d%d)\n") do statuses[#statuses + 1] = tonumber(code) end
    for i = 1, n do bodies[i] = util.read_file(dir .. "/par-" .. i) end
    return statuses, bodies, elapsed, out
  end

  describe("the balance location of examples/openresty", function()
    it("returns the fake's balance, fetched through our client over HTTPS", function()
      local v, status = get("/balance")
      assert.equal(200, status)
      assert.same({ amount = 1234.56, currency = 643 }, v.balances.qw_wallet_rub)
      local reqs = fake:requests()
      assert.equal(1, #reqs)
      assert.equal("/funding-sources/v2/persons/" .. WALLET .. "/accounts", reqs[1].path)
      assert.equal("Bearer " .. TOKEN, reqs[1].headers.authorization)
      assert.equal("lua-qiwi/0.1.0", reqs[1].headers["user-agent"])
      assert.equal("fake.qiwi.test:" .. fake.port, reqs[1].headers.host)
    end)

    it("answers 20 concurrent requests while the fake delays each by 200 ms", function()
      fake:config { delay_ms = 200 }
      local statuses, bodies, elapsed, out = parallel_get("/balance", 20)
      print(("\n[nginx] 20 concurrent /balance calls, fake delay 200 ms each, one worker: %.3f s"
        .. " (serial would be >= 4 s)"):format(elapsed))
      assert.equal(20, #statuses, out)
      for i = 1, 20 do
        assert.equal(200, statuses[i], out)
        assert.equal(1234.56, qiwi.json.decode(bodies[i]).balances.qw_wallet_rub.amount)
      end
      assert.equal(20, #fake:requests())
      assert.is_true(elapsed >= 0.2, "the fake's delay did not apply")
      assert.is_true(elapsed < 2.0, ("20 calls took %.3f s: the worker blocked"):format(elapsed))
    end)

    it("control: the blocking libcurl transport makes the one worker serve them in turn", function()
      fake:config { delay_ms = 200 }
      local statuses, bodies, elapsed, out = parallel_get("/t/blocking", 5)
      print(("\n[nginx] 5 concurrent calls through libcurl inside nginx: %.3f s"):format(elapsed))
      assert.equal(5, #statuses, out)
      for i = 1, 5 do
        assert.equal(200, statuses[i], out)
        assert.is_true(qiwi.json.decode(bodies[i]).ok, bodies[i])
      end
      assert.is_true(elapsed >= 0.95, ("5 blocking calls took only %.3f s"):format(elapsed))
    end)

    it("keeps its connection to QIWI alive between requests", function()
      for _ = 1, 5 do
        local _, status = get("/balance")
        assert.equal(200, status)
      end
      local reqs = fake:requests()
      assert.equal(5, #reqs)
      assert.equal(1, util.connections(reqs))
    end)
  end)

  describe("the cosocket transport", function()
    it("reads content-length, chunked, close-delimited and post-interim answers", function()
      for _, name in ipairs { "length", "chunked", "close", "interim" } do
        local v = shape(name)
        assert.is_true(v.ok, name .. ": " .. tostring(v.err and v.err.text))
        assert.equal(42.5, v.result.accounts[1].balance.amount, name)
        -- decoded by the C core: on LuaJIT an integer beyond 2^53 keeps its digits
        assert.equal("9007199254740993", v.result.marker, name)
      end
    end)

    it("refuses answers over max_body, whatever their framing", function()
      for _, name in ipairs { "big-length", "big-chunked", "big-close" } do
        local v = shape(name, { max_body = 4096 })
        assert.is_false(v.ok, name)
        assert.equal("http", v.err.kind, name)
        assert.equal("response body exceeds the 4096 byte cap", v.err.message, name)
      end
      -- the same answers fit under the default cap
      assert.is_true(shape("big-chunked").ok)
    end)

    it("sends again on a new connection when a reused one was closed unanswered", function()
      local v = shape("stale")
      assert.is_true(v.ok, v.err and v.err.text)
      -- retries = 0: the client itself would not have tried again
      v = shape("stale")
      assert.is_true(v.ok, v.err and v.err.text)
      assert.equal(42.5, v.result.accounts[1].balance.amount)
      local status, dropped = shapes:curl("GET", "/t/result?key=dropped")
      assert.equal(200, status)
      assert.equal(1, tonumber(dropped))
    end)

    it("never sends a request that must not be repeated on a pooled connection", function()
      local function dropped()
        local status, n = shapes:curl("GET", "/t/result?key=dropped")
        return status == 200 and tonumber(n) or 0
      end
      -- leaves in the pool one kept-alive connection whose next request the
      -- server drops (a call before may have left one too: this one uses it)
      assert.is_true(shape("stale").ok)
      local before = dropped()
      -- a POST that is not a payment: were it sent on that connection and
      -- dropped, nothing would tell whether the server had acted on it
      local v = shape("stale", { method = "create_account", arg = "qw_wallet_usd" })
      assert.is_true(v.ok, v.err and v.err.text)
      assert.equal(before, dropped())
      -- a GET still reuses the pooled connection and recovers from the drop
      assert.is_true(shape("stale").ok)
      assert.equal(before + 1, dropped())
    end)

    it("gives up at the client's timeout with a timeout error", function()
      local v = shape("slow", { timeout = "0.5" })
      assert.is_false(v.ok)
      assert.equal("timeout", v.err.kind)
      assert.is_true(v.elapsed >= 0.45 and v.elapsed < 1.5, tostring(v.elapsed))
    end)

    it("reports broken answers as network errors", function()
      local v = shape("garbage")
      assert.equal("network", v.err.kind)
      assert.matches("malformed status line", v.err.message, 1, true)
      v = shape("short-length")
      assert.equal("network", v.err.kind)
      assert.matches("closed", v.err.message, 1, true)
    end)

    local function requests_of(name)
      local status, n = shapes:curl("GET", "/t/result?key=requests:" .. name)
      return status == 200 and tonumber(n) or 0
    end

    -- a failed call's error: its kind, HTTP status and whether a retry may help
    local function failed(v, kind, status, retryable)
      assert.is_false(v.ok)
      assert.equal(kind, v.err.kind)
      assert.equal(status, v.err.status)
      assert.equal(retryable, v.err.retryable)
      return v.err
    end

    it("does not follow a redirect", function()
      local before = requests_of("redirect")
      local err = failed(shape("redirect", { retries = 2 }), "http", 302, false)
      assert.matches("redirect", err.message, 1, true)
      assert.equal(before + 1, requests_of("redirect"))
    end)

    it("retries a 503 within the retry budget, and gives the 503 without one", function()
      local before = requests_of("busy")
      local v = shape("busy", { retries = 2 })
      assert.is_true(v.ok, v.err and v.err.text)
      assert.equal(42.5, v.result.accounts[1].balance.amount)
      assert.equal(before + 2, requests_of("busy"))
      assert.equal("QWPRC-999", failed(shape("busy", { retries = 0 }), "api", 503, true).code)
      assert.equal(before + 3, requests_of("busy"))
      assert.is_true(shape("busy", { retries = 0 }).ok)   -- leaves the next one refused again
    end)

    it("gives up on 423 after its retries, with QIWI's error", function()
      local before = requests_of("locked")
      assert.equal("request.blocked", failed(shape("locked", { retries = 1 }), "api", 423, true).code)
      assert.equal(before + 2, requests_of("locked"))
    end)

    it("checks the certificate against the host name, not an IP address", function()
      -- the same server passes under its name (above), so only the name check can refuse it
      local v = call { base = "https://127.0.0.1:" .. fake.port }
      assert.equal("tls", v.err.kind)
      -- lua-resty-core's assertion (see transport/ngx.lua) sometimes hides the reason
      assert.is_truthy(v.err.message:find("certificate host mismatch", 1, true)
        or v.err.message:find("certificate verification failed", 1, true), v.err.message)
      assert.equal(0, #fake:requests())
    end)

    it("refuses a certificate from a CA outside lua_ssl_trusted_certificate", function()
      local v = call { base = "https://fake.qiwi.test:" .. other.port, resolve = "fake.qiwi.test=127.0.0.1" }
      assert.equal("tls", v.err.kind)
      assert.equal(0, #fake:requests())
    end)

    it("refuses ca_file inside nginx instead of trusting other CAs", function()
      local v = call { base = FAKE_URL, resolve = "fake.qiwi.test=127.0.0.1", ca_file = fake.ca_file }
      assert.equal("argument", v.err.kind)
      assert.matches("lua_ssl_trusted_certificate", v.err.message, 1, true)
      assert.equal(0, #fake:requests())
    end)

    it("reports a refused connection and a name nginx cannot resolve as network errors", function()
      local v = call { base = "https://fake.qiwi.test:1", resolve = "fake.qiwi.test=127.0.0.1" }
      assert.equal("network", v.err.kind)
      assert.matches("connection refused", v.err.message, 1, true)
      v = call { base = "https://edge.qiwi.invalid" }
      assert.equal("network", v.err.kind)
      assert.matches("no resolver defined", v.err.message, 1, true)
    end)
  end)

  describe("phases without cosockets", function()
    local function assert_phase_error(v, phase)
      assert.is_false(v.ok)
      assert.equal("argument", v.err.kind)
      assert.is_false(v.err.retryable)
      assert.matches("no cosockets in the " .. phase .. " phase", v.err.message, 1, true)
      -- at once, without retrying or waiting
      assert.is_true(v.elapsed < 0.1, tostring(v.elapsed))
    end

    it("fail a call from init_worker_by_lua with a clear argument error", function()
      local v, status = get("/t/result?key=init_worker")
      assert.equal(200, status)
      assert_phase_error(v, "init_worker")
    end)

    it("fail a call from log_by_lua with a clear argument error", function()
      local _, status = get("/t/log-phase")
      assert.equal(200, status)
      local v = wait_until(3, function()
        local r, st = get("/t/result?key=log")
        return st == 200 and r
      end)
      assert.is_table(v, "the log phase left no result")
      assert_phase_error(v, "log")
      assert.equal(0, #fake:requests())
    end)
  end)

  describe("the webhook receiver", function()
    local core = require "qiwi.core"

    local function post(body)
      local status, text = app:curl("POST", "/qiwi/webhook", body)
      return status, text
    end

    local function calls(key)
      local v, status = get("/t/result?key=" .. (key or "notifications"))
      if status == 404 then return 0 end
      return v
    end

    -- The docs' notification for another txnId, signed under KEY as QIWI
    -- would sign it.
    local function signed(message_id, txn)
      local hash = core.hmac_sha256_hex(core.base64_decode(KEY), "643|1|IN|+79161112233|" .. txn)
      return (notification(message_id, hash):gsub('"txnId":"13353941550"', '"txnId":"' .. txn .. '"'))
    end

    it("answers valid, forged, repeated and malformed notifications as QIWI needs", function()
      local before = calls()
      local status, text = post(notification("msg-1", DOCS_HASH))
      assert.equal(200, status)
      assert.equal("OK\n", text)
      assert.truthy(wait_until(3, function() return calls() == before + 1 end), "on_notification not called")
      local last = get("/t/result?key=last_message")
      assert.equal("msg-1", last)
      -- the example's own on_notification recorded the payment
      local pstatus, payment = app:curl("GET", "/t/payment?txn=13353941550")
      assert.equal(200, pstatus)
      assert.equal("IN SUCCESS 1 643\n", payment)

      status = post(notification("msg-2", WRONG_HASH))
      assert.equal(403, status)
      status = post(notification("msg-1", DOCS_HASH))
      assert.equal(200, status)
      status = post('{"messageId":"msg-3","payment":{}}')
      assert.equal(400, status)
      status = post("not json at all")
      assert.equal(400, status)
      local get_status = app:curl("GET", "/qiwi/webhook")
      assert.equal(405, get_status)
      -- a forgery from the genuine signature: txnId moved into account
      status = post((notification("msg-5", DOCS_HASH)
        :gsub('"txnId":"13353941550"', '"txnId":"99999999999"')
        :gsub('"account":"%+79161112233"', '"account":"+79161112233|13353941550"')
        :gsub('type,account,txnId', 'type,account')))
      assert.equal(403, status)

      -- a new payment goes through; the ones above called nothing
      status = post(signed("msg-4", "13353941551"))
      assert.equal(200, status)
      assert.truthy(wait_until(3, function() return calls() == before + 2 end))
      assert.equal("msg-4", get("/t/result?key=last_message"))
      util.sleep(0.1)
      assert.equal(before + 2, calls())
    end)

    it("does not call on_notification for the docs' notification under a new messageId; a new txnId it does", function()
      -- called here or already by the case above: either way it is known after
      post(notification("replay-0", DOCS_HASH))
      util.sleep(0.2)
      local before = calls()
      assert.is_true(before >= 1)
      local status, text = post(notification("replay-1", DOCS_HASH))
      assert.equal(200, status)
      assert.equal("OK\n", text)
      assert.equal(200, (post(notification("replay-2", DOCS_HASH))))
      -- a seen messageId on another payment is a repeat too
      assert.equal(200, (post(signed("replay-2", "13353941560"))))
      assert.equal(200, (post(signed("fresh-1", "13353941561"))))
      assert.truthy(wait_until(3, function() return get("/t/result?key=last_message") == "fresh-1" end),
        "the new txnId was not handled")
      util.sleep(0.1)
      assert.equal(before + 1, calls(), "a replay called on_notification again")
      -- and the payment under the reused messageId still gets its own
      assert.equal(200, (post(signed("fresh-2", "13353941560"))))
      assert.truthy(wait_until(3, function() return calls() == before + 2 end))
      assert.equal("fresh-2", get("/t/result?key=last_message"))
    end)

    it("remembers a bounded number of notifications without a shared dict", function()
      local function post_memory(id, txn, key)
        local q = key and ("?key=" .. key:gsub("[+/=]", function(c) return ("%%%02X"):format(c:byte()) end)) or ""
        return (app:curl("POST", "/t/webhook-memory" .. q, signed(id, txn)))
      end
      local OTHER_KEY = "OikS4/CcIbSf+yYGnLbnOige8RGoYmGxs/LNMwkJy7Q="
      local function settled(n)
        return wait_until(3, function() return calls("memory_calls") == n end)
      end
      -- the key function gives nothing: the receiver cannot check, so 500 (QIWI retries)
      assert.equal(500, post_memory("m-a", "1001"))
      assert.equal(200, post_memory("m-a", "1001", KEY))
      assert.truthy(settled(1))
      assert.equal(200, post_memory("m-b", "1002", KEY))
      assert.truthy(settled(2))
      assert.equal(200, post_memory("m-a2", "1001", KEY))  -- remembered by its txnId
      assert.equal(200, post_memory("m-c", "1003", KEY))   -- pushes 1001 out of the two it keeps
      assert.truthy(settled(3))
      assert.equal("m-c", get("/t/result?key=memory_last"))
      assert.equal(200, post_memory("m-a3", "1001", KEY))  -- forgotten, so handled again
      assert.truthy(settled(4))
      assert.equal("m-a3", get("/t/result?key=memory_last"))
      assert.equal(200, post_memory("m-c", "1004", KEY))   -- a remembered messageId
      assert.equal(403, post_memory("m-d", "1005", OTHER_KEY))
      util.sleep(0.1)
      assert.equal(4, calls("memory_calls"))
    end)
  end)

  describe("examples/openresty/nginx.conf", function()
    it("passes nginx -t once pointed at this checkout", function()
      local dir = app.prefix .. "/example"
      util.mkdir_p(dir .. "/logs")
      local conf = assert(util.read_file(REPO .. "/examples/openresty/nginx.conf"))
      conf = conf:gsub("/opt/lua%-qiwi", REPO):gsub("/etc/nginx/qiwi%-example", REPO .. "/examples/openresty")
        :gsub("/etc/ssl/certs/ca%-certificates%.crt", fake.ca_file)
      util.write_file(dir .. "/nginx.conf", conf)
      local nginx = os.getenv("QIWI_TEST_NGINX") or "/usr/sbin/nginx"
      -- the exit status is echoed: pclose tells nothing on Lua 5.1
      local cmd = ("QIWI_TOKEN=t QIWI_WALLET=79991234567 %s -t -q -p %s -c %s -e %s -g %s 2>&1; echo \"exit=$?\""):format(
        shq(nginx), shq(dir .. "/"), shq(dir .. "/nginx.conf"), shq(dir .. "/logs/error.log"),
        shq("pid " .. dir .. "/logs/nginx.pid;"))
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      assert.matches("exit=0\n$", out)
    end)
  end)
end)
