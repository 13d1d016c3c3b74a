-- Shared state between nginx workers and between nginx instances, end to
-- end: our client inside nginx (LuaJIT, cosockets, core from build/luajit)
-- talking to the fake QIWI over real HTTPS, its history rate limit and its
-- fresh payment ids kept in a shared store.
--
--   1. one nginx with 4 workers on a lua_shared_dict (qiwi.store.shdict);
--   2. two nginx instances (2 workers each) on one real redis-server
--      (qiwi.store.redis over cosockets);
--   3. the same two paying at once: no payment id twice on the wire;
--   4. redis stopped while nginx runs: kind "store", nothing sent; back
--      after a restart on the same port.
--
-- What the fake saw and when: the fake's request log has no times, so the
-- fake's nginx gets an access_by_lua at the http level (http_extra) that
-- stamps every request with the wall clock in microseconds the moment the
-- fake starts on it: the arrival on the server's side, which is what QIWI's
-- limit counts. The app's store is wrapped to note, too, when the limiter
-- counted each call (before and after the admit), so that a failure tells
-- the limiter's own count apart from what reached the wire.
--
-- The app nginx instances are nginx_app.lua's (https_fake.lua runs one
-- process only): master_process on, N workers, reuseport so that the kernel
-- spreads connections over the workers, plain HTTP on loopback. Control
-- requests go through the curl CLI.
local https_fake = require "https_fake"
local redis_harness = require "redis"
local nginx_app = require "nginx_app"
local qiwi = require "qiwi"
local util = require("pki").util

local json = qiwi.json
local shq = util.shq
local TOKEN, WALLET = "test-token", "79111234567"
local LIMIT, WINDOW = 10, 2
local HISTORY_PATH = "/payment-history/v2/persons/" .. WALLET .. "/payments"
local PAY_PATH = "/sinap/api/v2/terms/99/payments"
local START_TIMEOUT = 30

---------------------------------------------------------------------------
-- The wall clock in microseconds inside nginx (ngx.now has 1 ms steps and is
-- the time cached at the event loop's last wake-up), as wall_us().
local CLOCK = [==[
local ffi = require "ffi"
pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } shared_state_timespec;
  int clock_gettime(int clk_id, shared_state_timespec *tp);
]])
local ts = ffi.new("shared_state_timespec")
local function wall_us()
  ffi.C.clock_gettime(0, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end
]==]

-- Loaded into the fake's nginx (access_by_lua at the http level, so before
-- the fake's own handler): appends "<microseconds> <method> <uri>" for every
-- request to a file, the moment the fake starts on it. The fake's request
-- log has no times.
local STAMP = CLOCK .. [==[
return function(path)
  return function()
    local f = io.open(path, "a")
    if f then
      f:write(string.format("%.0f %s %s\n", wall_us(), ngx.req.get_method(), ngx.var.uri))
      f:close()
    end
  end
end
]==]

---------------------------------------------------------------------------
-- The module every app worker loads (written into the app's prefix).
-- GET /t/history?prefix=   one history call -> JSON outcome
-- GET /t/pay?prefix=       one transfer with a fresh id -> JSON outcome
-- Clients are made on first use, one per worker and store prefix.
local APP = CLOCK .. [==[
local qiwi = require "qiwi"
local json = qiwi.json

local _M = {}
local cfg
local clients = {}

-- The store as given, but an admit that lets a call through notes in the
-- request's ngx.ctx when it began and when it returned: the limiter counted
-- the call in between (as against when the fake saw it).
local function watched(st)
  return setmetatable({
    admit = function(_, key, limit, window)
      local before = wall_us()
      local w, err = st:admit(key, limit, window)
      if w == 0 then
        ngx.ctx.admit_b, ngx.ctx.admit_a = string.format("%.0f", before), string.format("%.0f", wall_us())
      end
      return w, err
    end,
  }, { __index = function(_, m)
    local v = st[m]
    if type(v) == "function" then return function(_, ...) return v(st, ...) end end
    return v
  end })
end

function _M.configure(c) cfg = c end

function _M.init_worker()
  ngx.shared.ctl:incr("workers", 1, 0)
end

local function client(prefix)
  local c = clients[prefix]
  if c then return c end
  local st, err
  if cfg.store == "shdict" then
    st, err = qiwi.store.shdict("qiwi_store")
  else
    st, err = qiwi.store.redis { host = "127.0.0.1", port = cfg.redis_port, prefix = prefix, timeout = 1 }
  end
  if not st then return nil, err end
  c, err = qiwi.new {
    token = cfg.token, wallet = cfg.wallet, base_url = cfg.base,
    resolve = { ["fake.qiwi.test"] = "127.0.0.1" }, store = watched(st),
    -- the default margin, 2 x connect_timeout: 2 s over the 2 s window
    connect_timeout = 1,
    history_rate = { limit = cfg.limit, window = cfg.window }, retries = 0,
  }
  if not c then return nil, err end
  clients[prefix] = c
  return c
end

local function reply(res, err, extra)
  ngx.update_time()
  local t = {
    instance = cfg.name, worker = ngx.worker.id(), pid = ngx.worker.pid(), ok = res ~= nil,
    kind = err and err.kind, retryable = err and err.retryable, message = err and tostring(err),
    done = ngx.now(), admit_b = ngx.ctx.admit_b, admit_a = ngx.ctx.admit_a,
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode(t))
end

function _M.history()
  local c, err = client(ngx.var.arg_prefix or "qiwi:")
  if not c then return reply(nil, err) end
  local res, cerr = c:history { rows = 1 }
  return reply(res, cerr, { rows = type(res) == "table" and type(res.data) == "table" and #res.data or nil })
end

function _M.pay()
  local c, err = client(ngx.var.arg_prefix or "qiwi:")
  if not c then return reply(nil, err) end
  local res, cerr = c:transfer { to = "79990000001", amount = 1 }
  return reply(res, cerr, { id = type(res) == "table" and res.id or nil })
end

function _M.ready()
  ngx.say(ngx.shared.ctl:get("workers") or 0)
end

return _M
]==]

---------------------------------------------------------------------------
-- Processes

-- curl's status (0: no answer) and body for one GET.
local function get(url, max_time)
  local p = io.popen("curl -sS --max-time " .. (max_time or 30) .. " -w '\\n%{http_code}' " .. shq(url)
    .. " 2>/dev/null </dev/null")
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code) or 0, body or out
end

-- An app nginx: o.name, o.workers, o.store ("shdict" | "redis"),
-- o.redis_port, o.base (the fake's URL), o.ca_file.
local function start_app(o)
  local c = ("{ name = %q, store = %q, redis_port = %s, base = %q, token = %q, wallet = %q, limit = %d, window = %s }")
    :format(o.name, o.store, tostring(o.redis_port or "nil"), o.base, TOKEN, WALLET, LIMIT, tostring(WINDOW))
  return nginx_app.start {
    name = "shared-app", workers = o.workers, connections = 1024, modules = { shared_state_app = APP },
    http = {
      'lua_ssl_trusted_certificate "' .. o.ca_file .. '";',
      "lua_ssl_verify_depth 2;",
      "lua_socket_log_errors off;",
      "lua_shared_dict qiwi_store 1m;",
      "lua_shared_dict ctl 64k;",
      'init_by_lua_block { require("shared_state_app").configure(' .. c .. ") }",
      'init_worker_by_lua_block { require("shared_state_app").init_worker() }',
    },
    server = {
      "keepalive_timeout 0;",
      'location = /ready { content_by_lua_block { require("shared_state_app").ready() } }',
      'location = /t/history { content_by_lua_block { require("shared_state_app").history() } }',
      'location = /t/pay { content_by_lua_block { require("shared_state_app").pay() } }',
    },
    -- every worker has run init_worker
    ready = function(app)
      local code, body = get(app.base .. "/ready", 2)
      return code == 200 and tonumber(body) == o.workers
    end,
    start_timeout = START_TIMEOUT, what = "app nginx " .. o.name,
  }
end

-- GETs all of urls at once (curl --parallel, a connection each); returns
-- the statuses, the decoded answers (nil where not JSON) and curl's output.
local function parallel(dir, urls)
  local cmd = { "curl -sS --http1.1 --parallel --parallel-immediate --parallel-max", tostring(#urls),
                "--max-time 60 -w '%{http_code}\\n'" }
  for i, u in ipairs(urls) do
    os.remove(dir .. "/par-" .. i)
    cmd[#cmd + 1] = "-o " .. shq(dir .. "/par-" .. i) .. " " .. shq(u)
  end
  cmd[#cmd + 1] = "2>&1 </dev/null"
  local p = io.popen(table.concat(cmd, " "))
  local out = p:read("*a")
  p:close()
  local statuses, answers = {}, {}
  for code in out:gmatch("(%d%d%d)\n") do statuses[#statuses + 1] = tonumber(code) end
  for i = 1, #urls do
    local body = util.read_file(dir .. "/par-" .. i)
    answers[i] = body and json.decode(body) or false
  end
  return statuses, answers, out
end

local function rep(url, n)
  local t = {}
  for i = 1, n do t[i] = url end
  return t
end

---------------------------------------------------------------------------
-- What the fake saw

-- When the fake started on each request to `path` (ms, fractions kept),
-- of those stamped after line `from` of the stamp file; sorted.
local function arrivals(stamps, from, path)
  local t, n = {}, 0
  for line in (util.read_file(stamps) or ""):gmatch("[^\n]+") do
    n = n + 1
    if n > from then
      local us, uri = line:match("^(%d+) %u+ (%S+)$")
      if uri == path then t[#t + 1] = tonumber(us) / 1000 end
    end
  end
  table.sort(t)
  return t
end

local function lines(path)
  local n = 0
  for _ in (util.read_file(path) or ""):gmatch("[^\n]+") do n = n + 1 end
  return n
end

-- The most arrivals in any window [t, t + WINDOW) and the shortest span
-- (ms) of LIMIT + 1 consecutive arrivals (>= WINDOW when the limit held).
local function worst_window(t)
  local max, span = 0, math.huge
  local w = WINDOW * 1000
  local j = 1
  for i = 1, #t do
    while j <= #t and t[j] - t[i] < w do j = j + 1 end
    max = math.max(max, j - i)
    if t[i + LIMIT] then span = math.min(span, t[i + LIMIT] - t[i]) end
  end
  return max, span
end

-- When the client's limiter counted each call: between b and a (ms,
-- fractions kept), from the answers' admit_b and admit_a.
local function admissions(answers)
  local t = {}
  for i, x in ipairs(answers) do
    t[i] = { b = assert(tonumber(x.admit_b), "no admit_b") / 1000, a = assert(tonumber(x.admit_a)) / 1000 }
  end
  return t
end

-- Whether the limiter is proven to have let more than LIMIT calls through
-- in a window: LIMIT + 1 calls, each counted within its [b, a], that all
-- fit in less than WINDOW. Returns the shortest such bound (ms) of any
-- LIMIT + 1 calls in a row (>= WINDOW: no violation proven).
local function admission_span(t)
  return (util.shortest_span(t, LIMIT))
end

-- The arrivals relative to the first (ms), for a failure's message.
local function relative(t)
  local out = {}
  for i = 1, #t do out[i] = ("%.0f"):format(t[i] - t[1]) end
  return table.concat(out, " ")
end

local count = util.count

---------------------------------------------------------------------------

describe("shared state between nginx workers and instances #nginx", function()
  local fake, rsrv, times_log, work
  local apps = {}
  local t_start

  local function reset_fake()
    fake:reset { token = TOKEN, wallet = WALLET, balance = "100000", rate_limit = 100000 }
    fake:config { delay_ms = 0 }
  end

  setup(function()
    t_start = util.now()
    util.need_luajit_core()
    work = util.tmpdir("shared-work")
    times_log = work .. "/fake-stamps"
    util.write_file(work .. "/shared_state_stamp.lua", STAMP)
    fake = https_fake.start {
      fake = { token = TOKEN, wallet = WALLET, balance = "100000", rate_limit = 100000 },
      start_timeout = START_TIMEOUT, lua_path = work .. "/?.lua;",
      http_extra = ("    access_by_lua_block { require('shared_state_stamp')(%q)() }"):format(times_log),
    }
    rsrv = redis_harness.start { start_timeout = START_TIMEOUT }
    local base = "https://fake.qiwi.test:" .. fake.port
    apps.shdict = start_app { name = "S", workers = 4, store = "shdict", base = base, ca_file = fake.ca_file }
    apps.b = start_app { name = "B", workers = 2, store = "redis", redis_port = rsrv.port, base = base,
                         ca_file = fake.ca_file }
    apps.c = start_app { name = "C", workers = 2, store = "redis", redis_port = rsrv.port, base = base,
                         ca_file = fake.ca_file }
  end)

  teardown(function()
    for _, k in ipairs { "shdict", "b", "c" } do
      if apps[k] then pcall(apps[k].stop) end
    end
    if rsrv then pcall(rsrv.stop, rsrv) end
    if fake then pcall(fake.stop, fake) end
    if work then util.exec("rm -rf " .. shq(work)) end
    if t_start then print(("\n[shared] whole file: %.1f s"):format(util.now() - t_start)) end
  end)

  before_each(reset_fake)

  -- n history calls at once; asserts each completed; returns the answers.
  local function all_completed(statuses, answers, out, n)
    assert.equal(n, #statuses, out)
    for i = 1, n do
      assert.equal(200, statuses[i], out)
      local a = answers[i]
      assert.is_table(a, "answer " .. i .. " is not JSON")
      assert.is_true(a.ok, "call " .. i .. ": " .. tostring(a.message))
    end
  end

  -- The rate check of what the fake saw (and, for the report, of what the
  -- limiter let through); returns the worst counts.
  local function rate_report(label, t, answers)
    local max, span = worst_window(t)
    local aspan = admission_span(admissions(answers))
    print(("\n[shared] %s; fake saw at most %d in any %d s window (shortest span of %d arrivals: %.1f ms);"
      .. " the limiter's own count: %d calls in a row took at least %.1f ms"):format(label, max, WINDOW,
      LIMIT + 1, span, LIMIT + 1, aspan))
    return max, span, aspan
  end

  it("4 workers on one lua_shared_dict: 40 concurrent history calls, never more than 10 per 2 s", function()
    local from = lines(times_log)
    local t0 = util.now()
    local statuses, answers, out = parallel(work, rep(apps.shdict.base .. "/t/history?prefix=s1:", 40))
    local took = util.now() - t0
    all_completed(statuses, answers, out, 40)
    local workers = {}
    for _, a in ipairs(answers) do
      assert.equal(1, a.rows)
      workers[a.worker] = (workers[a.worker] or 0) + 1
    end
    local per = {}
    for w, k in pairs(workers) do per[#per + 1] = ("w%d:%d"):format(w, k) end
    table.sort(per)
    local t = arrivals(times_log, from, HISTORY_PATH)
    assert.equal(40, #t, "history requests the fake logged")
    local max, span, aspan = rate_report(("shdict, 4 workers (%s): 40 history calls in %.2f s")
      :format(table.concat(per, " "), took), t, answers)
    assert.is_true(count(workers) >= 2, "only one worker served the 40 requests")
    -- 40 at 10 per 2 s: the fourth ten cannot start before 6 s
    assert.is_true(took >= 3 * WINDOW - 0.1, ("40 calls took only %.2f s"):format(took))
    -- the limiter's own count held
    assert.is_true(aspan >= WINDOW * 1000, ("the limiter let %d calls through within %.1f ms")
      :format(LIMIT + 1, aspan))
    assert.is_true(max <= LIMIT, ("%d history requests within %d s on the fake (span of %d: %.1f ms), although"
      .. " the limiter's own count held; arrivals (ms after the first): %s"):format(max, WINDOW, LIMIT + 1, span,
      relative(t)))
  end)

  it("2 instances x 2 workers on one redis: 30 + 30 concurrent history calls, never more than 10 per 2 s",
    function()
      local from = lines(times_log)
      local urls = rep(apps.b.base .. "/t/history?prefix=r2:", 30)
      for _, u in ipairs(rep(apps.c.base .. "/t/history?prefix=r2:", 30)) do urls[#urls + 1] = u end
      local t0 = util.now()
      local statuses, answers, out = parallel(work, urls)
      local took = util.now() - t0
      all_completed(statuses, answers, out, 60)
      local seen = {}
      for i, a in ipairs(answers) do
        assert.equal(i <= 30 and "B" or "C", a.instance)
        seen[a.instance .. a.worker] = true
      end
      local t = arrivals(times_log, from, HISTORY_PATH)
      assert.equal(60, #t, "history requests the fake logged")
      local max, span, aspan = rate_report(("redis, 2 instances x 2 workers (%d workers served): 60 history"
        .. " calls in %.2f s"):format(count(seen), took), t, answers)
      assert.is_true(took >= 5 * WINDOW - 0.1, ("60 calls took only %.2f s"):format(took))
      assert.is_true(aspan >= WINDOW * 1000, ("the limiter let %d calls through within %.1f ms")
        :format(LIMIT + 1, aspan))
      assert.is_true(max <= LIMIT, ("%d history requests within %d s on the fake (span of %d: %.1f ms),"
        .. " although the limiter's own count held; arrivals (ms after the first): %s"):format(max, WINDOW,
        LIMIT + 1, span, relative(t)))
    end)

  it("2 instances on one redis paying at once: 20 + 20 fresh ids, none twice on the wire", function()
    local urls = rep(apps.b.base .. "/t/pay?prefix=r3:", 20)
    for _, u in ipairs(rep(apps.c.base .. "/t/pay?prefix=r3:", 20)) do urls[#urls + 1] = u end
    local statuses, answers, out = parallel(work, urls)
    all_completed(statuses, answers, out, 40)
    local ids, dup, sent = {}, 0, 0
    for _, r in ipairs(fake:requests()) do
      if r.method == "POST" and r.path == PAY_PATH then
        sent = sent + 1
        local id = type(r.json) == "table" and r.json.id
        assert.is_string(id, "a payment body without an id")
        if ids[id] then dup = dup + 1 end
        ids[id] = true
      end
    end
    local answered = {}
    for _, a in ipairs(answers) do
      assert.is_string(a.id)
      assert.is_true(ids[a.id] ~= nil, "an answered id the fake never saw")
      answered[a.id] = true
    end
    print(("\n[shared] redis, 2 instances: %d payments on the wire, %d distinct ids, %d duplicates")
      :format(sent, count(ids), dup))
    assert.equal(40, sent)
    assert.equal(0, dup)
    assert.equal(40, count(answered))
  end)

  it("redis stopped: kind store and nothing sent; back after a restart on the same port", function()
    local prefix = "r4:"
    -- working first, on both instances
    for _, app in ipairs { apps.b, apps.c } do
      local code, body = get(app.base .. "/t/history?prefix=" .. prefix)
      assert.equal(200, code, body)
      assert.is_true(json.decode(body).ok, body)
    end
    local before = #fake:requests()
    rsrv:halt()
    -- sequential calls: each a new connection, which the kernel gives to
    -- any worker; enough of them to use up the connections pooled in test 2
    local down = 0
    for i = 1, 20 do
      local app = i % 2 == 0 and apps.b or apps.c
      local code, body = get(app.base .. "/t/history?prefix=" .. prefix)
      assert.equal(200, code, body)
      local a = json.decode(body)
      assert.is_false(a.ok, body)
      assert.equal("store", a.kind, body)
      down = down + 1
    end
    assert.equal(before, #fake:requests(), "a history request was sent while the store was down")

    rsrv:restart()
    -- connections pooled before the restart are dead: a call may meet one
    -- (kind store again) before it reconnects; then calls succeed
    local fails, ok_in_row, tries = 0, 0, 0
    local fail_msgs = {}
    while ok_in_row < 8 and tries < 200 do
      tries = tries + 1
      local app = tries % 2 == 0 and apps.b or apps.c
      local code, body = get(app.base .. "/t/history?prefix=" .. prefix)
      assert.equal(200, code, body)
      local a = json.decode(body)
      if a.ok then
        ok_in_row = ok_in_row + 1
      else
        assert.equal("store", a.kind, body)
        fails = fails + 1
        ok_in_row = 0
        fail_msgs[#fail_msgs + 1] = a.message
      end
    end
    local after = 0
    for i, r in ipairs(fake:requests()) do
      if i > before and r.path == HISTORY_PATH then after = after + 1 end
    end
    print(("\n[shared] redis down: %d calls, all kind store, 0 sent; after restart: %d calls failed"
      .. " (kind store) before 8 in a row succeeded, %d sent%s"):format(down, fails, after,
      fail_msgs[1] and (" (first failure: " .. fail_msgs[1] .. ")") or ""))
    assert.equal(8, ok_in_row, tries .. " calls after the restart, " .. fails .. " failed")
    assert.equal(tries - fails, after)
  end)
end)
