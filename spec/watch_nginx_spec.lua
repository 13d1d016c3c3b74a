-- The event stream inside nginx: an app of 4 workers, each starting the
-- same watcher (w:start() on ngx.timer) and the same webhook receiver
-- (webhook.handler{on_payment=}) on one lua_shared_dict store, against the
-- fake QIWI over real HTTPS, which posts its webhooks to the app. Each
-- payment must reach the handler once, from whichever source saw it first;
-- one worker polls; webhooks the app refuses are made good by polling.
local https_fake = require "https_fake"
local nginx_app = require "nginx_app"
local qiwi = require "qiwi"
local util = require("pki").util

local json = qiwi.json
local shq = util.shq
local TOKEN, WALLET = "watch-nginx-token", "79111234567"

local APP = [==[
local qiwi = require "qiwi"
local json = qiwi.json

local _M = {}
local cfg, watcher, hook

function _M.configure(c) cfg = c end

local function deliver(p, source)
  local d = ngx.shared.ctl
  d:incr("n:" .. p.txnId, 1, 0)
  d:incr("src:" .. source, 1, 0)
  d:incr("total", 1, 0)
  if source == "poll" then d:set("poller:" .. ngx.worker.pid(), true) end
end

function _M.init_worker()
  local st = assert(qiwi.store.shdict("qiwi_store"))
  local c = assert(qiwi.new {
    token = cfg.token, wallet = cfg.wallet, base_url = cfg.base, store = st,
    resolve = { ["fake.qiwi.test"] = "127.0.0.1" }, connect_timeout = 1, retries = 1,
  })
  -- lease 6 s: the holder renews it past half, and loses it when it is not
  -- renewed by 1 s before its end, so a worker stalled for 2 s on a loaded
  -- machine keeps it (with 2 s, a stall of 0.5 s handed it to a second
  -- worker, which is right, but not what this test counts). interval 0.5 s:
  -- every round is a history call, and the client's limiter (QIWI's 100 a
  -- minute) lets 100 through; at 0.1 s they were spent 10 s after start-up,
  -- and a test body slower than that would have waited for the next minute.
  watcher = assert(c:watch { interval = 0.5, lease = 6, since = cfg.since, on_payment = deliver })
  assert(watcher:start())
  hook = qiwi.webhook.handler {
    key = function() return ngx.shared.ctl:get("hook_key") end, store = st, on_payment = deliver,
  }
  ngx.shared.ctl:incr("workers", 1, 0)
end

function _M.hook()
  if ngx.shared.ctl:get("hook_down") then
    ngx.status = 503
    ngx.say("down")
    return ngx.exit(ngx.HTTP_OK)
  end
  ngx.shared.ctl:incr("hooks", 1, 0)
  return hook()
end

function _M.set()
  local d = ngx.shared.ctl
  if ngx.var.arg_key then d:set("hook_key", ngx.unescape_uri(ngx.var.arg_key)) end
  if ngx.var.arg_down then d:set("hook_down", ngx.var.arg_down == "1" or nil) end
  ngx.say("ok")
end

function _M.stats()
  local d = ngx.shared.ctl
  local out = { total = d:get("total") or 0, poll = d:get("src:poll") or 0, webhook = d:get("src:webhook") or 0,
                hooks = d:get("hooks") or 0, workers = d:get("workers") or 0, pollers = 0, repeats = {} }
  for _, k in ipairs(d:get_keys(0)) do
    if k:find("^poller:") then out.pollers = out.pollers + 1 end
    local id = k:match("^n:(%d+)$")
    if id and d:get(k) > 1 then out.repeats[#out.repeats + 1] = id end
  end
  setmetatable(out.repeats, json.array_mt or qiwi.array_mt)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode(out))
end

return _M
]==]

local function get(url)
  local p = io.popen("curl -sS --max-time 10 -w '\\n%{http_code}' " .. shq(url) .. " 2>/dev/null </dev/null")
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code) or 0, body or out
end

describe("the event stream in nginx #nginx", function()
  local fake, app

  setup(function()
    util.need_luajit_core()
    fake = https_fake.start { fake = { token = TOKEN, wallet = WALLET, history_pages = 0, public_hooks_only = false } }
    local c = ("{ token = %q, wallet = %q, base = %q, since = %d }")
      :format(TOKEN, WALLET, "https://fake.qiwi.test:" .. fake.port, os.time() - 5)
    app = nginx_app.start {
      name = "watch-app", workers = 4, modules = { watch_app = APP },
      http = {
        'lua_ssl_trusted_certificate "' .. fake.ca_file .. '";',
        "lua_ssl_verify_depth 2;",
        "lua_shared_dict qiwi_store 4m;",
        "lua_shared_dict ctl 1m;",
        'init_by_lua_block { require("watch_app").configure(' .. c .. ") }",
        'init_worker_by_lua_block { require("watch_app").init_worker() }',
      },
      server = {
        'location = /ready { content_by_lua_block { ngx.say(ngx.shared.ctl:get("workers") or 0) } }',
        'location = /hook { content_by_lua_block { require("watch_app").hook() } }',
        'location = /set { content_by_lua_block { require("watch_app").set() } }',
        'location = /stats { content_by_lua_block { require("watch_app").stats() } }',
      },
      ready = function(a)
        local code, body = get(a.base .. "/ready")
        return code == 200 and tonumber(body) == 4
      end,
      start_timeout = 30, what = "watch app nginx",
    }
  end)

  teardown(function()
    if app then app.stop() end
    if fake then fake:stop() end
  end)

  local function stats()
    local code, body = get(app.base .. "/stats")
    assert.equal(200, code, body)
    return json.decode(body)
  end

  it("hands each payment once from webhooks and polling, with one poller of the four workers", function()
    local client = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = fake.base_url, ca_file = fake.ca_file })
    local hook = assert(client:register_webhook(app.base .. "/hook", "IN"))
    local key = assert(client:webhook_key(hook.hookId)).key
    assert.equal(200, (get(app.base .. "/set?key=" .. key:gsub("[+/=]", function(ch)
      return string.format("%%%02X", ch:byte()) end))))
    local sent = {}
    for i = 1, 60 do sent[#sent + 1] = assert(fake:call("receive", { from = "79260000000", amount = i })) end
    -- the receiver goes down: these come by polling only
    assert.equal(200, (get(app.base .. "/set?down=1")))
    for i = 61, 100 do sent[#sent + 1] = assert(fake:call("receive", { from = "79260000000", amount = i })) end
    local s
    local ok = util.wait_until(30, function()
      s = stats()
      return s.total >= #sent
    end, 0.1)
    util.sleep(0.5) -- a repeat, if any were to come, has time to
    s = stats()
    io.stderr:write(("\n[watch nginx] %d sent, %d delivered: %d by webhook, %d by polling; %d webhooks"
      .. " handled; %d polling worker(s) of %d; repeats: %s\n"):format(#sent, s.total, s.webhook, s.poll,
      s.hooks, s.pollers, s.workers, table.concat(s.repeats, ",")))
    assert.is_truthy(ok, "not all delivered: " .. json.encode(s) .. "\n" .. app.log())
    assert.equal(#sent, s.total)
    assert.same({}, s.repeats)
    assert.equal(1, s.pollers)
    assert.is_true(s.webhook > 0, "no payment came by webhook\n" .. app.log())
    assert.is_true(s.poll >= 40, "the 40 refused webhooks were not made good by polling")
    for _, r in ipairs(fake:requests()) do assert.is_true(r.status ~= 423) end
  end)
end)
