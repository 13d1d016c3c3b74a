-- examples/shop as a user runs it: `make shop-example`, on two free
-- loopback ports and a temporary prefix, against the fake QIWI that the same
-- nginx serves over plain HTTP, with the shop's webhook registered with the
-- fake by the shop itself. Money arrives through the fake's control
-- endpoint (/__fake/call receive), with curl, as README tells a user to do;
-- orders are made and read over the shop's HTTP, with curl.
--
-- The command runs under `timeout`, supervised (util.supervise): however
-- this process ends, nginx does not outlive it. Tagged "nginx".
local qiwi = require "qiwi"
local util = require "util"

local json = qiwi.json
local shq = util.shq
local REPO = util.repo_root()
-- Generous: the command may have to build build/luajit/qiwi/core.so first.
local START_SECONDS = 90
local TIMEOUT_SECONDS = 300
-- How long a payment may take to be handled, at most (polling: one
-- interval, SHOP_WATCH_INTERVAL=1 here, and its round).
local HANDLED_SECONDS = 20
local TOKEN, WALLET = "test-token", "79111234567"

local function command(port, fake_port, prefix)
  -- the user's own QIWI settings would make run go to QIWI itself
  return ("cd %s && exec env -u QIWI_TOKEN -u QIWI_WALLET -u SHOP_HOOK_URL -u QIWI_WEBHOOK_KEY"
    .. " EXAMPLE_PORT=%d EXAMPLE_FAKE_PORT=%d EXAMPLE_PREFIX=%s NGINX=%s SHOP_WATCH_INTERVAL=1"
    .. " timeout -s TERM %d make --no-print-directory shop-example")
    :format(shq(REPO), port, fake_port, shq(prefix), shq(util.NGINX), TIMEOUT_SECONDS)
end

-- The query of a URL as name -> value (unescaped).
local function query_of(url)
  local out = {}
  for pair in (url:match("%?(.*)$") or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    local function unescape(s) return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    out[unescape(k)] = unescape(v)
  end
  return out
end

describe("examples/shop run by `make shop-example` #nginx", function()
  local prefix, port, fake_port, pipe, job, nginx_pid

  local function output() return util.read_file(prefix .. "/run.out") or "" end
  local function error_log() return util.read_file(prefix .. "/logs/error.log") or "" end
  local function diagnostics()
    return "\n--- output of the command ---\n" .. output() .. "\n--- logs/error.log ---\n" .. error_log()
  end

  -- status (0 for no answer), body. o: method, data (the body), json (a
  -- value sent as JSON), port.
  local function http(path, o)
    o = o or {}
    local cmd = {}
    if o.method then cmd[#cmd + 1] = "-X " .. o.method end
    local data = o.data
    if o.json ~= nil then
      data = json.encode(o.json)
      cmd[#cmd + 1] = "-H 'Content-Type: application/json'"
    end
    if data then
      local file = prefix .. "/curl.in"
      util.write_file(file, data)
      cmd[#cmd + 1] = "--data-binary @" .. shq(file)
    end
    cmd[#cmd + 1] = shq("http://127.0.0.1:" .. (o.port or port) .. path)
    return util.curl(cmd, prefix .. "/curl.out")
  end

  local function decoded(status, body, want)
    assert.equal(want, status, body .. diagnostics())
    return assert(json.decode(body))
  end

  -- One helper of the fake, through its control endpoint: the result.
  local function fake_call(method, ...)
    local status, body = http("/__fake/call", { port = fake_port, json = { method = method, args = { ... } } })
    return decoded(status, body, 200).result
  end

  local function make_order(o)
    local status, body = http("/orders", o)
    return decoded(status, body, 201)
  end

  local function order(id)
    local status, body = http("/orders/" .. id)
    return decoded(status, body, 200)
  end

  local function wait_paid(id)
    local o
    local paid = util.wait_until(HANDLED_SECONDS, function()
      o = order(id)
      return o.status == "paid"
    end, 0.1)
    assert.truthy(paid, "order " .. id .. " was not marked paid: " .. json.encode(o) .. diagnostics())
    return o
  end

  local function wait_log(text)
    assert.truthy(util.wait_until(HANDLED_SECONDS, function() return error_log():find(text, 1, true) end, 0.1),
      "no log line with: " .. text .. diagnostics())
  end

  local function count_lines(text)
    local n = 0
    for line in error_log():gmatch("[^\n]+") do
      if line:find(text, 1, true) then n = n + 1 end
    end
    return n
  end

  -- shared by the tests, in order
  local a, b, c, a_txn, a_note
  local paid = {} -- every payment made, its txn id

  local function pay(id, amount, extra)
    local spec = { from = "79260000000", amount = amount, comment = "order-" .. id }
    for k, v in pairs(extra or {}) do spec[k] = v end
    local txn = fake_call("receive", spec)
    paid[#paid + 1] = txn
    return txn
  end

  setup(function()
    prefix = util.tmpdir("shop-spec")
    local used = util.ports_in_use()
    port, fake_port = util.free_port(used), util.free_port(used)
    pipe = util.supervise(command(port, fake_port, prefix),
      { log = prefix .. "/run.out", pid_file = prefix .. "/job.pid", dir = prefix })
    job = util.wait_until(5, function() return tonumber(util.read_file(prefix .. "/job.pid") or "") end)
    assert(job, "the command did not start")
    local up = util.wait_until(START_SECONDS, function()
      if not util.alive(job) then return "exited" end
      return http("/orders/none") == 404 and "up"
    end)
    assert(up == "up", "the shop did not come up within " .. START_SECONDS .. " s" .. diagnostics())
    nginx_pid = tonumber(util.read_file(prefix .. "/logs/nginx.pid") or "")
    -- the shop registers its hook with the fake from a timer at start
    wait_log("shop: QIWI posts incoming payments to http://127.0.0.1:" .. port .. "/qiwi/webhook")
  end)

  teardown(function()
    if pipe then util.stop_pipe(pipe) end
    if prefix then util.exec("rm -rf " .. shq(prefix)) end
  end)

  it("makes orders, form or JSON, each with the payment form's link naming it, the amount fixed", function()
    a = make_order { data = "amount=150" }
    b = make_order { json = { amount = "99.50" } }
    c = make_order { json = { amount = 200 } }
    for _, o in ipairs { { a, "150.00", 150, 0 }, { b, "99.50", 99, 50 }, { c, "200.00", 200, 0 } } do
      local got, amount, int, frac = o[1], o[2], o[3], o[4]
      assert.matches("^%x+%-%d+$", got.id)
      assert.equal(amount, got.amount)
      assert.equal("new", got.status)
      assert.equal(qiwi.null, got.paid_by)
      assert.equal("https://qiwi.com/payment/form/99?", got.pay_url:sub(1, 33))
      assert.same({
        ["extra['account']"] = WALLET, amountInteger = tostring(int), amountFraction = tostring(frac),
        currency = "643", ["extra['comment']"] = "order-" .. got.id,
        ["blocked[0]"] = "sum", ["blocked[1]"] = "account", ["blocked[2]"] = "comment",
      }, query_of(got.pay_url))
      assert.same(got, order(got.id))
    end
    assert.are_not.equal(a.id, b.id)
  end)

  it("refuses a bad amount with 400 and kind argument", function()
    for _, o in ipairs {
      { data = "amount=-1" }, { data = "amount=abc" }, { data = "amount=1.001" }, { data = "amount=0" },
      { data = "price=10" }, { data = "amount=1&amount=2" }, { json = { amount = "1e3" } },
      { json = { amount = 100000 } }, { json = { 150 } }, { data = "{", method = "POST" },
    } do
      local status, body = http("/orders", o)
      assert.equal(400, status, json.encode(o) .. " -> " .. body)
      assert.equal("argument", json.decode(body).kind, body)
    end
    assert.equal(405, (http("/orders")))
    assert.equal(404, (http("/orders/" .. a.id .. "0")))
  end)

  it("marks the first order paid by the webhook", function()
    -- The watcher may ask for the history at any moment; its answers are
    -- held back meanwhile, so that polling cannot hand this payment over
    -- before QIWI's notification does. The notification goes from the
    -- fake to the shop's /qiwi/webhook and is not held.
    fake_call("fail_next", { path_pattern = "^/payment%-history/", delay_ms = 1500, count = -1 })
    finally(function() fake_call("clear_faults") end)
    a_txn = pay(a.id, 150)
    a_note = fake_call("last_notification")
    assert.equal(a_txn, a_note.txn_id)
    local got = wait_paid(a.id)
    assert.equal("webhook", got.paid_by)
    assert.equal(a_txn, got.txnId)
    assert.truthy(util.wait_until(5, function() return fake_call("last_notification").delivered == 200 end, 0.1))
    assert.equal("new", order(b.id).status)
  end)

  it("marks the second order paid by polling once QIWI's webhook cannot reach the shop", function()
    -- the wallet's hook now points where the shop answers 404
    local client = assert(qiwi.new { token = TOKEN, wallet = WALLET, allow_http = true,
                                     base_url = "http://127.0.0.1:" .. fake_port })
    local hook = assert(client:active_webhook())
    assert(client:delete_webhook(hook.hookId))
    assert(client:register_webhook("http://127.0.0.1:" .. port .. "/qiwi/gone", "IN"))
    local txn = pay(b.id, 99.5)
    local got = wait_paid(b.id)
    assert.equal("poll", got.paid_by)
    assert.equal(txn, got.txnId)
    -- the fake did post the notification, and it failed
    local note = fake_call("last_notification")
    assert.equal(txn, note.txn_id)
    assert.truthy(util.wait_until(5, function() return fake_call("last_notification").delivered == 404 end, 0.1))
  end)

  it("leaves an order unpaid on a short payment and on one in another currency", function()
    local short = pay(c.id, 199.99)
    local tenge = pay(c.id, 200, { currency = 398 })
    wait_log("shop: payment " .. short .. " (poll) for order " .. c.id .. " is short: 199.99 RUB of 200.00 RUB")
    wait_log("shop: payment " .. tenge .. " (poll) for order " .. c.id .. ": in currency 398")
    assert.equal("new", order(c.id).status)
    -- the order can still be paid in full
    local full = pay(c.id, 200)
    local got = wait_paid(c.id)
    assert.equal(full, got.txnId)
  end)

  it("marks each order once: a second payment and a repeated notification change nothing", function()
    local again = pay(a.id, 150)
    wait_log("shop: payment " .. again .. " (poll) for order " .. a.id .. ": the order was paid already by payment "
      .. a_txn)
    -- QIWI sends a notification again when it got no answer in time
    local status, body = http("/qiwi/webhook", { data = a_note.body })
    assert.equal(200, status, body)
    local got = order(a.id)
    assert.equal(a_txn, got.txnId)
    assert.equal("webhook", got.paid_by)
    for _, o in ipairs { a, b, c } do
      assert.equal(1, count_lines("shop: order " .. o.id .. " paid by "), o.id .. diagnostics())
    end
    -- and no payment was handed to the shop twice, whichever brought it:
    -- each has one line, "shop: payment <txn> (…" or "…: payment <txn>, …"
    for _, txn in ipairs(paid) do
      local n = 0
      for line in error_log():gmatch("[^\n]+") do
        if line:find("payment " .. txn .. "[ ,]") then n = n + 1 end
      end
      assert.equal(1, n, "payment " .. txn .. diagnostics())
    end
  end)

  it("keeps pid, logs and temp files in the prefix, with nginx in the foreground", function()
    local conf = assert(util.read_file(prefix .. "/nginx.conf"))
    assert.matches("\ndaemon off;\n", conf, 1, true)
    assert.matches("\nmaster_process off;\n", conf, 1, true)
    for path in conf:gmatch("\n%s*[%w_]+_path%s+(/%S+);") do
      assert.equal(prefix, path:sub(1, #prefix), path)
    end
    assert.truthy(nginx_pid, "no logs/nginx.pid" .. diagnostics())
    assert.is_true(util.alive(nginx_pid))
    assert.are_not.equal(1, tonumber(util.proc_stat(nginx_pid)[2]))
    assert.matches("curl -d amount=150 http://127.0.0.1:" .. port .. "/orders", output(), 1, true)
  end)

  it("stops when told, leaving no nginx behind", function()
    util.stop_pipe(pipe)
    pipe = nil
    assert.truthy(util.wait_until(10, function() return not util.alive(nginx_pid) and not util.alive(job) end),
      "nginx still runs" .. diagnostics())
    assert.equal(0, (http("/orders/none")))
  end)
end)

describe("examples/shop/run with QIWI_TOKEN set #nginx", function()
  it("writes a configuration for QIWI itself: no fake, no plain http, no token in it", function()
    util.need_luajit_core()
    local prefix = util.tmpdir("shop-conf")
    finally(function() util.exec("rm -rf " .. shq(prefix)) end)
    -- from a file: a token is never put in an argument list
    local secret = "shop-spec-secret-" .. util.random_hex(8)
    util.write_file(prefix .. "/token", secret)
    local lines = util.lines(("cd %s && QIWI_TOKEN=$(cat %s) QIWI_WALLET=%s EXAMPLE_PREFIX=%s EXAMPLE_CONFIG_ONLY=1"
      .. " examples/shop/run 2>&1"):format(shq(REPO), shq(prefix .. "/token"), WALLET, shq(prefix)))
    assert.same({ prefix .. "/nginx.conf" }, lines)
    local conf = assert(util.read_file(prefix .. "/nginx.conf"))
    assert.is_nil(conf:find(secret, 1, true))
    assert.is_nil(conf:find("qiwi.fake", 1, true))
    assert.matches("listen 127.0.0.1:8080;", conf, 1, true)
    assert.matches('require("shop.qiwi").configure', conf, 1, true)
    -- nginx takes it as it is
    local ok = util.exec(shq(util.NGINX) .. " -t -q -p " .. shq(prefix .. "/") .. " -c " .. shq(prefix .. "/nginx.conf")
      .. " -e " .. shq(prefix .. "/logs/error.log") .. " >" .. shq(prefix .. "/t.out") .. " 2>&1")
    assert.is_true(ok, util.read_file(prefix .. "/t.out"))
  end)

  it("refuses to start without QIWI_WALLET", function()
    local out = util.lines(("cd %s && env -u QIWI_WALLET QIWI_TOKEN=x EXAMPLE_CONFIG_ONLY=1 examples/shop/run 2>&1;"
      .. " echo rc=$?"):format(shq(REPO)))
    assert.equal("rc=1", out[#out])
    assert.matches("set QIWI_WALLET", out[1], 1, true)
  end)
end)
