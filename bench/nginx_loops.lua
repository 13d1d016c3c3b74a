-- The nginx side of make bench's OpenResty figure: content handlers of one
-- nginx worker making sequential HTTPS GETs of the accounts URL on
-- kept-alive connections of the worker's cosocket pool.
--
--   ours   client:accounts() through lua-qiwi's cosocket transport (qiwi.new
--          picks it inside nginx), decoding included
--   bare   the limit of cosockets for the same exchange: tcp(), connect from
--          the pool, sslhandshake (verified, SNI) only on a new connection,
--          one send of the request head our transport sends (Host, Accept,
--          Authorization, User-Agent), the status line, the header lines, a
--          Content-Length body, setkeepalive; no decoding, no other checks
--
-- Handlers (each answers one text line, seconds on the monotonic clock, the
-- timed calls only):
--   _M.ours(targets), _M.bare(targets)   ?n= calls of one kind -> "<n> <seconds>"
--   _M.pair(targets)   ?n= calls of each kind in blocks of ?block= (100),
--                      the two kinds taking turns, the first changing from
--                      block to block (?run= shifts it), so that drift of a
--                      shared machine hits both alike
--                      -> "<n> <ours seconds> <bare seconds> <ours CPU
--                      seconds> <bare CPU seconds>" (CPU: of this worker
--                      process, user and system, while each kind ran)
-- Each makes ?warm= (20) untimed calls of its kind(s) first. targets:
-- {name = conf}, the server picked by ?target= ("static" by default); conf:
-- host (the name in the certificate), addr (where the name goes), port,
-- path, token, wallet, user_agent.
local ffi = require "ffi"

ffi.cdef [[
  struct qiwi_bench_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct qiwi_bench_timespec *ts);
]]
local ts = ffi.new("struct qiwi_bench_timespec")
local function clock(id)
  ffi.C.clock_gettime(id, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local function now() return clock(1) end      -- CLOCK_MONOTONIC
local function cpu() return clock(2) end      -- CLOCK_PROCESS_CPUTIME_ID: this worker (master_process off)

local _M = {}

local function arg_number(name, default)
  return tonumber(ngx.var["arg_" .. name]) or default
end

local function fail(what)
  ngx.status = 500
  ngx.header["content-type"] = "text/plain"
  ngx.say(what)
  return ngx.exit(500)
end

local function say(...)
  ngx.header["content-type"] = "text/plain"
  ngx.say(table.concat({ ... }, " "))
end

-- A runner makes k calls of its kind and returns true, or nil, err.

local clients = {}

local function ours_runner(conf)
  local key = conf.host .. ":" .. conf.port
  local client = clients[key]
  if not client then
    local err
    client, err = require("qiwi").new {
      token = conf.token, wallet = conf.wallet, base_url = "https://" .. key,
      resolve = { [conf.host] = conf.addr }, history_rate = false,
    }
    if not client then return nil, "qiwi.new: " .. tostring(err) end
    clients[key] = client
  end
  return function(k)
    for _ = 1, k do
      local res, err = client:accounts()
      if not res then return nil, "accounts: " .. tostring(err) end
    end
    return true
  end
end

-- One exchange on a pooled connection; true or nil, err.
local function exchange(conf, request, pool)
  local sock = ngx.socket.tcp()
  sock:settimeout(10000)
  local ok, err = sock:connect(conf.addr, conf.port, { pool = pool, pool_size = 32 })
  if not ok then return nil, "connect: " .. tostring(err) end
  if sock:getreusedtimes() == 0 then
    ok, err = sock:sslhandshake(nil, conf.host, true)
    if not ok then sock:close() return nil, "handshake: " .. tostring(err) end
  end
  ok, err = sock:send(request)
  if not ok then sock:close() return nil, "send: " .. tostring(err) end
  local line
  line, err = sock:receive("*l")
  if not line then sock:close() return nil, "status: " .. tostring(err) end
  if not line:find("^HTTP/1%.1 200 ") then sock:close() return nil, "status line " .. line end
  local len, close
  while true do
    line, err = sock:receive("*l")
    if not line then sock:close() return nil, "header: " .. tostring(err) end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      if name == "content-length" then len = tonumber(value)
      elseif name == "connection" and value:lower():find("close", 1, true) then close = true end
    end
  end
  if not len then sock:close() return nil, "no content-length" end
  local body
  body, err = sock:receive(len)
  if not body then sock:close() return nil, "body: " .. tostring(err) end
  if close then sock:close() else sock:setkeepalive(60000) end
  return true
end

local function bare_runner(conf)
  local request = "GET " .. conf.path .. " HTTP/1.1\r\nHost: " .. conf.host .. ":" .. conf.port
    .. "\r\nAccept: application/json\r\nAuthorization: Bearer " .. conf.token
    .. "\r\nUser-Agent: " .. conf.user_agent .. "\r\n\r\n"
  local pool = "bench-bare:" .. conf.addr .. ":" .. conf.port .. ":" .. conf.host
  return function(k)
    for _ = 1, k do
      local ok, err = exchange(conf, request, pool)
      if not ok then return nil, err end
    end
    return true
  end
end

local function runners(targets, ...)
  local conf = targets[ngx.var.arg_target or "static"]
  if not conf then return nil, "no such target" end
  local out = {}
  for i, make in ipairs { ... } do
    local run, err = make(conf)
    if not run then return nil, err end
    local ok
    ok, err = run(arg_number("warm", 20))
    if not ok then return nil, "warm-up: " .. err end
    out[i] = run
  end
  return out
end

local function single(targets, make)
  local r, err = runners(targets, make)
  if not r then return fail(err) end
  local n = arg_number("n", 1000)
  local t0 = now()
  local ok
  ok, err = r[1](n)
  if not ok then return fail(err) end
  return say(n, string.format("%.6f", now() - t0))
end

function _M.ours(targets) return single(targets, ours_runner) end
function _M.bare(targets) return single(targets, bare_runner) end

function _M.pair(targets)
  local r, err = runners(targets, ours_runner, bare_runner)
  if not r then return fail(err) end
  local n, block, shift = arg_number("n", 1000), arg_number("block", 100), arg_number("run", 0)
  local spent, used = { 0, 0 }, { 0, 0 }
  local blocks = math.max(1, math.ceil(n / block))
  for b = 1, blocks do
    local first = (b + shift) % 2 + 1
    for _, i in ipairs { first, 3 - first } do
      local t0, c0 = now(), cpu()
      local ok, e = r[i](block)
      if not ok then return fail(e) end
      spent[i], used[i] = spent[i] + (now() - t0), used[i] + (cpu() - c0)
    end
  end
  local f = "%.6f"
  return say(blocks * block, f:format(spent[1]), f:format(spent[2]), f:format(used[1]), f:format(used[2]))
end

-- for ad-hoc profiling inside nginx: make(conf) -> run(k)
_M.runners = { ours = ours_runner, bare = bare_runner }

return _M
