-- qiwi.store inside a real nginx (lua-nginx-module, LuaJIT, core from
-- build/luajit): the shdict store's interface battery, the redis store over
-- cosockets (pooled, down and back, a phase without cosockets) and the file
-- store's yielding lock; then 4 workers hammering one lua_shared_dict and
-- one Redis at once: no lost incr, no window over the limit.
--
-- This spec starts its own nginx (nginx_app.lua: master_process on, 4
-- workers: the point is several processes), with a plain-HTTP location that
-- runs one store call per request (/rpc) and a timer in every worker that
-- runs the hammer when told to. Arguments and results cross as Lua literals (SER below), so that
-- bytes, nil and integers arrive as they left.
local store = require "qiwi.store"
local qerror = require "qiwi.error"
local core = require "qiwi.core"
local redis_harness = require "redis"
local nginx_app = require "nginx_app"
local checks = require "checks"
local util = require("pki").util

local shq = util.shq
local WORKERS = 4

local SER = [==[
local ser
function ser(v)
  local t = type(v)
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v then return "(0/0)" end
    if v == math.huge then return "math.huge" end
    if v == -math.huge then return "(-math.huge)" end
    if v == math.floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then return (string.format("%q", v):gsub("\r", "\\r")) end
  if t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      if type(k) == "string" or type(k) == "number" then parts[#parts + 1] = "[" .. ser(k) .. "]=" .. ser(x) end
    end
    local mt = getmetatable(v)
    if type(mt) == "table" and mt.__name == "qiwi.error" then parts[#parts + 1] = "__qerror=true" end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "nil"
end
local function deser(s)
  local env = { math = { huge = math.huge } }
  local f, err
  if setfenv then
    f, err = loadstring("return " .. s, "=rpc")
    if f then setfenv(f, env) end
  else
    f, err = load("return " .. s, "=rpc", "t", env)
  end
  if not f then return nil, err end
  return f()
end
return ser, deser
]==]

local ser, deser = assert((loadstring or load)(SER))()

-- The module every worker loads (from the prefix).
local RPC = [==[
local ser, deser = (function() ]==] .. SER .. [==[ end)()
local store = require "qiwi.store"
local core = require "qiwi.core"

local _M = {}
local stores = {}

local function make(ctor, cargs)
  local key = ser({ ctor, cargs })
  local s = stores[key]
  if not s then
    local err
    s, err = store[ctor](unpack(cargs or {}, 1, 2))
    if not s then return nil, err end
    stores[key] = s
  end
  return s
end

local function answer(t)
  ngx.header["content-type"] = "text/plain"
  ngx.print(ser(t))
end

function _M.rpc()
  ngx.req.read_body()
  local req = deser(ngx.req.get_body_data() or "nil")
  if type(req) ~= "table" then return answer { ok = false, raised = "bad request" } end
  if req.method == "construct" then
    local s, err = store[req.ctor](unpack(req.cargs or {}, 1, 2))
    return answer { ok = true, n = 2, r = { s and true or nil, err } }
  end
  if req.method == "phase_call" then
    return answer { ok = true, n = 2, r = { ngx.var.phase_result } }
  end
  local s, err = make(req.ctor, req.cargs)
  if not s then return answer { ok = true, n = 2, r = { nil, err } } end
  if req.method == "name" then return answer { ok = true, n = 1, r = { s.name } } end
  local r = { pcall(s[req.method], s, unpack(req.args or {}, 1, req.n or 0)) }
  if not r[1] then return answer { ok = false, raised = tostring(r[2]) } end
  return answer { ok = true, n = 3, r = { r[2], r[3], r[4] }, pid = ngx.worker.pid() }
end

-- set_by_lua: no cosockets and no ngx.sleep in this phase.
function _M.in_set_phase(ctor, cargs_s, method)
  local ok, res = pcall(function()
    local s, err = store[ctor](unpack(deser(cargs_s) or {}, 1, 2))
    if not s then return ser({ nil, err }) end
    local args = method == "admit" and { "phase", 2, 10 } or { "phase" }
    return ser({ s[method](s, unpack(args)) })
  end)
  return ok and res or ser({ raised = tostring(res) })
end

-- The hammer: each worker polls the dict for a job, runs it once, and
-- pushes its results.
local function hammer(job)
  local s, err = make(job.ctor, job.cargs)
  if not s then return { fails = 1, err = tostring(err) } end
  local clock
  if job.clock == "monotonic" then
    clock = core.monotonic
  else
    clock = function() ngx.update_time(); return ngx.now() end
  end
  -- the wall clock of ngx.now has millisecond steps
  local slack = job.clock == "monotonic" and 0 or 0.001
  while core.monotonic() < job.start_at do ngx.sleep(0.001) end
  local values, events, fails, first = {}, {}, 0, nil
  for _ = 1, job.incr do
    local v, e = s:incr(job.count_key)
    if v then values[#values + 1] = v else fails, first = fails + 1, first or tostring(e) end
  end
  local deadline = core.monotonic() + job.admit_for
  while core.monotonic() < deadline do
    local b = clock()
    local w, e = s:admit(job.rate_key, job.limit, job.window)
    local a = clock() + slack
    if w == 0 then
      events[#events + 1] = { b = b, a = a }
    elseif w then
      ngx.sleep(math.min(w, 0.004))
    else
      fails, first = fails + 1, first or tostring(e)
    end
  end
  return { pid = ngx.worker.pid(), values = values, events = events, fails = fails, err = first }
end

function _M.init_worker()
  local dict = ngx.shared.qiwi_ctl
  dict:incr("workers", 1, 0)
  local done = 0
  local function loop(premature)
    if premature then return end
    while not ngx.worker.exiting() do
      local job = deser(dict:get("job") or "nil")
      if type(job) == "table" and job.gen > done then
        done = job.gen
        local ok, res = pcall(hammer, job)
        if not ok then res = { fails = 1, err = tostring(res) } end
        dict:rpush("results" .. job.gen, ser(res))
      end
      ngx.sleep(0.01)
    end
  end
  ngx.timer.at(0, loop)
end

function _M.results()
  local dict = ngx.shared.qiwi_ctl
  ngx.req.read_body()
  local gen = tonumber(ngx.var.arg_gen)
  local out = {}
  local n = dict:llen("results" .. gen) or 0
  if n >= tonumber(ngx.var.arg_want) then
    for i = 1, n do out[i] = deser(dict:lpop("results" .. gen)) end
  end
  answer { ok = true, n = #out, r = out, workers = dict:get("workers") }
end

function _M.job()
  ngx.req.read_body()
  local dict = ngx.shared.qiwi_ctl
  dict:set("job", ngx.req.get_body_data())
  answer { ok = true, n = 0, r = {} }
end

return _M
]==]

---------------------------------------------------------------------------
-- nginx

local http = require "socket.http"
local ltn12 = require "ltn12"
http.TIMEOUT = 15

local function request(base, path, body)
  local out = {}
  local _, code = http.request {
    url = base .. path, method = body and "POST" or "GET", sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-length"] = tostring(#body) } or nil,
  }
  return code, table.concat(out)
end

local function start_nginx()
  return nginx_app.start {
    name = "store-nginx", workers = WORKERS, connections = 256, modules = { store_rpc = RPC },
    http = {
      "client_body_buffer_size 4m;",
      "client_max_body_size 4m;",
      "lua_shared_dict qiwi_store 4m;",
      "lua_shared_dict qiwi_hammer 1m;",
      "lua_shared_dict qiwi_ctl 1m;",
      "lua_shared_dict qiwi_tiny 12k;",
      'init_worker_by_lua_block { require("store_rpc").init_worker() }',
    },
    server = {
      'location = /ready { return 200 "ready"; }',
      'location = /rpc { content_by_lua_block { require("store_rpc").rpc() } }',
      'location = /job { content_by_lua_block { require("store_rpc").job() } }',
      'location = /results { content_by_lua_block { require("store_rpc").results() } }',
      "location = /phase {",
      "  set_by_lua_block $phase_result {",
      '    return require("store_rpc").in_set_phase(ngx.var.arg_ctor, ngx.unescape_uri(ngx.var.arg_cargs), '
        .. "ngx.var.arg_method)",
      "  }",
      '  content_by_lua_block { ngx.print(ngx.var.phase_result) }',
      "}",
    },
    ready = function(app) return request(app.base, "/ready") == 200 end,
    start_timeout = 10, step = 0.02,
  }
end

---------------------------------------------------------------------------

local function decode(code, body)
  assert.equal(200, code, body)
  local t = assert(deser(body), body)
  assert(t.ok, "the call raised inside nginx: " .. tostring(t.raised))
  for i = 1, t.n or 0 do
    local v = t.r[i]
    if type(v) == "table" and v.__qerror then
      v.__qerror = nil
      setmetatable(v, qerror.mt)
    end
  end
  return t
end

-- A store whose methods run inside nginx, one request per call.
local function remote(ngx_srv, ctor, cargs)
  local p = {}
  local function rpc(method, n, args)
    local t = decode(request(ngx_srv.base, "/rpc", ser { ctor = ctor, cargs = cargs, method = method, n = n,
                                                          args = args }))
    return t.r[1], t.r[2], t.r[3], t
  end
  for _, m in ipairs { "get", "set", "add", "delete", "incr", "admit", "close" } do
    p[m] = function(_, ...) return rpc(m, select("#", ...), { ... }) end
  end
  p.name = rpc("name", 0, {})
  p.construct = function() return rpc("construct", 0, {}) end
  return p
end

-- One store call from set_by_lua (a phase without cosockets or ngx.sleep).
local function phase(ngx_srv, ctor, cargs, method)
  local q = ser(cargs):gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end)
  local code, body = request(ngx_srv.base, "/phase?ctor=" .. ctor .. "&method=" .. method .. "&cargs=" .. q)
  assert.equal(200, code, body)
  return assert(deser(body), body)
end

local named, assert_kind = checks.named, checks.assert_kind

local MAX = 2 ^ 53 - 1
local sleep = core.sleep
local function fresh() return util.fresh("n") end

-- The interface battery, as store_spec.lua runs it outside nginx.
local function battery(s, name)
  local k
  before_each(function() k = fresh() end)

  it(name .. ": name, get of an absent key", function()
    assert.equal(name, s.name)
    local v, err = s:get(k)
    assert.is_nil(v)
    assert.is_nil(err)
  end)

  it(name .. ": set, get, delete; strings and integers", function()
    assert.is_true(s:set(k, "hello"))
    assert.equal("hello", (s:get(k)))
    assert.is_true(s:set(k, 42))
    assert.equal("42", (s:get(k)))
    assert.is_true(s:set(k, -MAX))
    assert.equal(string.format("%d", -MAX), (s:get(k)))
    local bytes = "a\0b\r\n\255 \"'" .. string.rep("x", 100000)
    assert.is_true(s:set(k, bytes))
    assert.equal(bytes, (s:get(k)))
    assert.is_true(s:delete(k))
    assert.is_nil((s:get(k)))
    assert.is_true(s:delete(k))
  end)

  it(name .. ": add", function()
    assert.is_true(s:add(k, "first"))
    assert.is_false(s:add(k, "second"))
    assert.equal("first", (s:get(k)))
  end)

  it(name .. ": incr", function()
    assert.equal(1, (s:incr(k)))
    assert.equal(6, (s:incr(k, 5)))
    assert.equal(-4, (s:incr(k, -10)))
    assert.equal("-4", (s:get(k)))
    assert.is_true(s:set(k, "20"))
    assert.equal(22, (s:incr(k, 2)))
    for _, bad in ipairs { "abc", "05", "5.0", "" } do
      assert.is_true(s:set(k, bad))
      assert.is_false(named(bad, "store", s:incr(k)).retryable)
      assert.equal(bad, (s:get(k)))
    end
    assert.is_true(s:set(k, MAX))
    assert_kind("store", s:incr(k))
    assert.equal(string.format("%d", MAX), (s:get(k)))
  end)

  it(name .. ": ttl", function()
    assert.is_true(s:set(k, "short", 0.15))
    assert.is_true(s:add(k .. "a", "added", 0.15))
    assert.equal(1, (s:incr(k .. "i", 1, 0.15)))
    assert.is_true(s:set(k .. "b", "kept", 0.15))
    assert.is_true(s:set(k .. "b", "kept"))
    sleep(0.25)
    assert.is_nil((s:get(k)))
    assert.is_nil((s:get(k .. "a")))
    assert.is_nil((s:get(k .. "i")))
    assert.equal("kept", (s:get(k .. "b")))
    assert.is_true(s:add(k .. "a", "again"))
    assert.is_true(s:set(k .. "n", 1))
    assert.equal(2, (s:incr(k .. "n", 1, 0.05)))
    sleep(0.1)
    assert.equal("2", (s:get(k .. "n")))
  end)

  -- Each call here is an HTTP request to nginx (and, for redis, a connection
  -- to redis from there): the events are 0.3 s apart so that the checks
  -- hold while a round trip takes up to about 0.1 s on a loaded machine
  -- (with 0.05 s, one slow request made the third wait 0).
  it(name .. ": admit 3 in 1 s, then a wait; after the wait one more fits", function()
    for i = 1, 3 do
      assert.equal(0, (s:admit(k, 3, 1)))
      if i < 3 then sleep(0.3) end
    end
    -- the first leaves the window 1 s after it came, at least 0.6 s ago
    local w = s:admit(k, 3, 1)
    assert.is_true(w > 0 and w <= 0.401, tostring(w))
    sleep(0.05)
    local w2 = s:admit(k, 3, 1)
    assert.is_true(w2 > 0 and w2 < w, tostring(w2))
    sleep(w2)
    assert.equal(0, (s:admit(k, 3, 1)))
    -- the second, about 0.3 s after the first, is the next to leave (the
    -- third would make it about 0.6 s)
    local w3 = s:admit(k, 3, 1)
    assert.is_true(w3 > 0 and w3 <= 0.45, tostring(w3))
    assert_kind("store", s:get(k))
    assert_kind("store", s:incr(k))
    assert.is_true(s:delete(k))
    assert.equal(0, (s:admit(k, 1, 10)))
  end)

  it(name .. ": bad arguments are argument errors, never raised", function()
    for i, key in ipairs { 1, true, {}, "", "a\nb", string.rep("k", 1025) } do
      named("key " .. i, "argument", s:get(key))
      named("key " .. i, "argument", s:set(key, "v"))
      named("key " .. i, "argument", s:admit(key, 1, 1))
    end
    named("nil key", "argument", s:incr(nil))
    for _, v in ipairs { true, {}, 1.5, 2 ^ 53, 0 / 0 } do named(tostring(v), "argument", s:set(k, v)) end
    for _, ttl in ipairs { 0, -1, "1" } do named(tostring(ttl), "argument", s:set(k, "v", ttl)) end
    named("by", "argument", s:incr(k, 1.5))
    named("limit", "argument", s:admit(k, 0, 1))
    named("window", "argument", s:admit(k, 1, 0))
    assert.is_nil((s:get(k)))
  end)
end

describe("qiwi.store inside nginx #nginx", function()
  local ngx_srv, rsrv
  local PASSWORD = "pw-" .. util.random_hex(8)

  setup(function()
    ngx_srv = start_nginx()
    rsrv = redis_harness.start { password = PASSWORD }
  end)

  teardown(function()
    if ngx_srv then ngx_srv.stop() end
    if rsrv then rsrv:stop() end
  end)

  it("starts all its workers", function()
    local t
    util.wait_until(5, function()
      t = decode(request(ngx_srv.base, "/results?gen=0&want=0"))
      return t.workers == WORKERS
    end)
    assert.equal(WORKERS, t.workers)
  end)

  describe("shdict", function()
    local s = setmetatable({}, { __index = function(t, m)
      local r = remote(ngx_srv, "shdict", { "qiwi_store" })
      for key, v in pairs(r) do rawset(t, key, v) end
      return r[m]
    end })
    battery(s, "shdict")

    it("shdict: a missing dict, a bad name or bad options are argument errors", function()
      assert_kind("argument", remote(ngx_srv, "shdict", { "no_such_dict" }).construct())
      assert_kind("argument", remote(ngx_srv, "shdict", { 5 }).construct())
      assert_kind("argument", remote(ngx_srv, "shdict", { "qiwi_store", { timeout = -1 } }).construct())
      -- outside nginx
      assert_kind("argument", store.shdict("qiwi_store"))
    end)

    it("shdict: a full dict fails the write with kind store and evicts nothing", function()
      local tiny = remote(ngx_srv, "shdict", { "qiwi_tiny" })
      assert.is_true(tiny:set("first", "kept"))
      local failed
      for i = 1, 200 do
        local ok, err = tiny:set("big" .. i, string.rep("x", 2000))
        if not ok then
          failed = err
          break
        end
      end
      assert_kind("store", nil, failed)
      assert.matches("no memory", failed.message)
      assert.equal("kept", (tiny:get("first")))
    end)

    it("shdict: admit works in a phase that cannot yield (set_by_lua)", function()
      local r = phase(ngx_srv, "shdict", { "qiwi_store" }, "admit")
      assert.equal(0, r[1], tostring(r.raised))
      assert.equal(0, phase(ngx_srv, "shdict", { "qiwi_store" }, "admit")[1])
      assert.is_true(phase(ngx_srv, "shdict", { "qiwi_store" }, "admit")[1] > 0)
    end)
  end)

  describe("redis over cosockets", function()
    local cargs
    local s = setmetatable({}, { __index = function(t, m)
      cargs = cargs or { { port = rsrv.port, password = PASSWORD, db = 2, prefix = "ngx:" .. util.random_hex(3) .. ":" } }
      local r = remote(ngx_srv, "redis", cargs)
      for key, v in pairs(r) do rawset(t, key, v) end
      return r[m]
    end })
    battery(s, "redis")

    it("redis: connections are pooled (setkeepalive), at most a few per worker", function()
      local r = remote(ngx_srv, "redis", { { port = rsrv.port, password = PASSWORD, db = 6 } })
      for i = 1, 60 do assert.is_true(r:set("k" .. i, i)) end
      for i = 1, 30 do assert.equal(0, (r:admit("a" .. i, 5, 10))) end
      local n = 0
      for line in rsrv:cli("CLIENT", "LIST"):gmatch("[^\n]+") do
        if line:find(" db=6 ", 1, true) then n = n + 1 end
      end
      assert.is_true(n >= 1 and n <= WORKERS, n .. " connections for 90 calls")
    end)

    it("redis: down is kind store, retryable, without the password; back on restart", function()
      local r = remote(ngx_srv, "redis", { { port = rsrv.port, password = PASSWORD, prefix = "down:" } })
      assert.is_true(r:set("k", "v"))
      rsrv:halt()
      for _ = 1, WORKERS + 2 do
        local err = assert_kind("store", r:get("k"))
        assert.is_true(err.retryable)
        assert.is_nil(err.message:find(PASSWORD, 1, true))
      end
      assert_kind("store", r:admit("a", 1, 1))
      rsrv:restart()
      -- connections pooled before the restart are dead: a call may meet one
      -- once per worker, and then reconnects
      local ok_seen = 0
      for _ = 1, 3 * WORKERS do
        if r:set("k", "back") then ok_seen = ok_seen + 1 end
      end
      assert.is_true(ok_seen >= 2 * WORKERS, ok_seen .. " of " .. 3 * WORKERS)
      assert.equal("back", (r:get("k")))
    end)

    it("redis: a phase without cosockets is an error of kind store, not a raise", function()
      local r = phase(ngx_srv, "redis", { { port = rsrv.port } }, "get")
      assert.is_nil(r.raised)
      assert.is_nil(r[1])
      assert.equal("store", r[2].kind)
      assert.matches("cosockets are not available", r[2].message)
    end)
  end)

  describe("file", function()
    local dir
    setup(function() dir = util.tmpdir("store-ngxfile") end)
    teardown(function() util.exec("rm -rf " .. shq(dir)) end)

    it("file: works in nginx, waits for a held lock (ngx.sleep between tries), then times out", function()
      local f = remote(ngx_srv, "file", { dir, { timeout = 0.3 } })
      local _, cerr = f.construct()
      assert.is_nil(cerr, "nginx's qiwi.core has no file helpers: add qiwi_fs_register(L) to src/core.c")
      assert.is_true(f:set("k", "v"))
      assert.equal(3, (f:incr("n", 3)))
      assert.equal(0, (f:admit("r", 1, 10)))
      assert.is_true(f:admit("r", 1, 10) > 0)
      local local_store = assert(store.file(dir))
      assert.equal("v", (local_store:get("k")))
      local _, lpath = local_store:_paths("k")
      local held = assert(core.fs_lock(lpath, 0))
      local t0 = util.now()
      local err = assert_kind("store", f:set("k", "w"))
      local took = util.now() - t0
      held:unlock()
      assert.is_true(err.retryable)
      assert.is_true(took >= 0.25 and took < 2, "took " .. took)
      assert.is_true(f:set("k", "w"))
      assert.equal("w", (local_store:get("k")))
    end)
  end)

  describe("4 workers sharing one store", function()
    local gen = 0
    local function run(job)
      gen = gen + 1
      job.gen = gen
      job.start_at = core.monotonic() + 0.3
      decode(request(ngx_srv.base, "/job", ser(job)))
      local t
      util.wait_until(job.admit_for + 20, function()
        t = decode(request(ngx_srv.base, "/results?gen=" .. gen .. "&want=" .. WORKERS))
        return t.n >= WORKERS
      end)
      assert.equal(WORKERS, t.n, "workers that answered")
      local values, events, pids = {}, {}, {}
      for _, r in ipairs(t.r) do
        assert.equal(0, r.fails, tostring(r.err))
        pids[r.pid] = true
        for _, v in ipairs(r.values) do values[#values + 1] = v end
        for _, e in ipairs(r.events) do events[#events + 1] = e end
      end
      assert.equal(WORKERS, util.count(pids), "distinct worker processes")
      return checks.hammer(values, events, WORKERS, job)
    end

    it("shdict: no lost incr, no window over the limit", function()
      local n = run { ctor = "shdict", cargs = { "qiwi_hammer" }, clock = "monotonic", incr = 500,
                      admit_for = 1.2, limit = 4, window = 0.3, count_key = "count", rate_key = "rate" }
      print(("\n[store] shdict: %d workers, %d incr exact, %d admits in 1.2 s at 4 per 0.3 s"):format(
        WORKERS, WORKERS * 500, n))
    end)

    it("redis over cosockets: no lost incr, no window over the limit", function()
      local prefix = "hammer:" .. util.random_hex(3) .. ":"
      local n = run { ctor = "redis", cargs = { { port = rsrv.port, password = PASSWORD, prefix = prefix } },
                      clock = "wall", incr = 500, admit_for = 1.2, limit = 4, window = 0.3,
                      count_key = "count", rate_key = "rate" }
      print(("\n[store] redis in nginx: %d workers, %d incr exact, %d admits in 1.2 s at 4 per 0.3 s"):format(
        WORKERS, WORKERS * 500, n))
    end)
  end)
end)
