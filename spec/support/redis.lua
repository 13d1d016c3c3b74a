-- A real redis-server for the specs: on a free loopback port, in a temp
-- directory, nothing saved (--save "" --appendonly no), bound to 127.0.0.1.
--
--   local redis = require "redis"      -- this file (spec/support/redis.lua)
--   local srv = redis.start { password = "secret" }   -- waits for PING
--   srv.port, srv.password, srv.dir
--   srv:cli("TTL", "qiwi:k")          -- redis-cli's answer, one string
--   srv:halt()                         -- stops the process; port and dir kept
--   srv:restart()                      -- starts it again on the same port
--   srv:stop()                         -- halts and removes the dir (idempotent)
--
-- The server runs under a shell held through a popen pipe, as the nginx of
-- https_fake.lua does: closing the pipe stops it and pclose reaps both, so a
-- halt returns once the port is closed; if this Lua process dies however
-- abruptly, the kernel closes the pipe and the shell stops the server and
-- removes its directory. Control commands go through redis-cli, so that the
-- specs never check our RESP client with itself.
local pki = require "pki"

local util = pki.util
local shq = util.shq

local _M = {}

local REDIS = os.getenv("QIWI_TEST_REDIS") or "redis-server"
local CLI = os.getenv("QIWI_TEST_REDIS_CLI") or "redis-cli"
local PORT_MIN, PORT_MAX = 20000, 60999

local Server = {}
Server.__index = Server

local function ports_in_use()
  local used = {}
  for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local s = util.read_file(f)
    if s then
      for port in s:gmatch("\n%s*%d+: %x+:(%x+) ") do used[tonumber(port, 16)] = true end
    end
  end
  return used
end

local function alive(pid)
  local s = util.read_file("/proc/" .. pid .. "/stat")
  if not s then return false end
  local state = s:match("^%d+ %(.*%) (%S)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local SUPERVISOR = [[
%s --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s --daemonize no --logfile '' %s >>%s 2>&1 </dev/null &
echo $! >%s
cmd=
read cmd || :
kill -TERM $! 2>/dev/null
wait $!
[ "$cmd" = stop ] || rm -rf %s
]]

function _M.available()
  return util.exec("command -v " .. shq(REDIS) .. " >/dev/null 2>&1 && command -v " .. shq(CLI)
    .. " >/dev/null 2>&1")
end

-- The server's answer to PING, without our client: LuaSocket when there is
-- one, else redis-cli.
local function ping(self)
  local ok, socket = pcall(require, "socket")
  if ok and socket and socket.tcp then
    local c = socket.tcp()
    c:settimeout(0.5)
    if not c:connect("127.0.0.1", self.port) then
      c:close()
      return false
    end
    local cmd = "PING\r\n"
    if self.password then
      cmd = "*2\r\n$4\r\nAUTH\r\n$" .. #self.password .. "\r\n" .. self.password .. "\r\n" .. cmd
      local _ = c:send(cmd) and c:receive("*l")
    else
      c:send(cmd)
    end
    local line = c:receive("*l")
    c:close()
    return line == "+PONG"
  end
  return self:cli("PING") == "PONG"
end

function Server:_spawn()
  local p = self.dir
  os.remove(p .. "/pid")
  local extra = self.password and ("--requirepass " .. shq(self.password)) or ""
  local script = SUPERVISOR:format(shq(REDIS), self.port, shq(p), extra, shq(p .. "/redis.log"),
    shq(p .. "/pid"), shq(p))
  self._pipe = io.popen(script, "w")
  local deadline = util.now() + (self.start_timeout or 5)
  local delay = 0.005
  while util.now() < deadline do
    if not self.pid then
      local s = util.read_file(p .. "/pid")
      self.pid = s and tonumber(s:match("^(%d+)"))
    end
    if self.pid and not alive(self.pid) then break end
    if self.pid and ping(self) then return true end
    util.sleep(delay)
    delay = math.min(delay * 2, 0.05)
  end
  local log = util.read_file(p .. "/redis.log") or ""
  self:halt()
  return false, log
end

-- opts: password, start_timeout (seconds, default 5), keep (leave the dir).
function _M.start(opts)
  opts = opts or {}
  if not _M.available() then
    error("redis harness: " .. REDIS .. " or " .. CLI .. " not found (Debian: redis-server)", 2)
  end
  local mk = io.popen("mktemp -d /tmp/lua-qiwi-redis.XXXXXXXX")
  local dir = mk and mk:read("*l")
  if mk then mk:close() end
  if not dir or not dir:match("^/tmp/lua%-qiwi%-redis%.%w+$") then error("redis harness: mktemp failed", 2) end
  local srv = setmetatable({ dir = dir, password = opts.password, start_timeout = opts.start_timeout,
                             keep = opts.keep }, Server)
  local why
  for _ = 1, 10 do
    local used = ports_in_use()
    repeat srv.port = util.random_int(PORT_MIN, PORT_MAX) until not used[srv.port]
    srv.pid = nil
    local ok, log = srv:_spawn()
    if ok then
      why = nil
      break
    end
    why = log
    if not log:find("Address already in use", 1, true) then break end
  end
  if why then
    srv:stop()
    error("redis harness: redis-server did not start\n" .. why, 2)
  end
  -- stopped when collected (a spec that forgot), while the pipe is still open
  if newproxy then
    srv._sentinel = newproxy(true)
    getmetatable(srv._sentinel).__gc = function() srv:stop() end
  else
    srv._sentinel = setmetatable({}, { __gc = function() srv:stop() end })
  end
  return srv
end

-- Stops the process and waits until it has exited (the port is closed).
function Server:halt()
  if self._pipe then
    -- the shell is alive until it reads this line (or EOF, which would
    -- also remove the directory)
    pcall(function()
      self._pipe:write("stop\n")
      self._pipe:flush()
    end)
    self._pipe:close()
    self._pipe = nil
  end
  self.pid = nil
end

-- Starts the server again on the same port, empty (nothing was saved).
function Server:restart()
  if self.stopped then error("redis harness: server stopped", 2) end
  self:halt()
  local ok, log = self:_spawn()
  if not ok then error("redis harness: restart on port " .. self.port .. " failed\n" .. tostring(log), 2) end
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  self:halt()
  if not self.keep then util.exec("rm -rf " .. shq(self.dir)) end
end

-- redis-cli's raw answer to one command (the arguments are quoted for the
-- shell), without the trailing newline.
function Server:cli(...)
  local args = {}
  for i = 1, select("#", ...) do args[#args + 1] = shq(tostring((select(i, ...)))) end
  local auth = self.password and ("--no-auth-warning -a " .. shq(self.password) .. " ") or ""
  local p = io.popen(shq(CLI) .. " -h 127.0.0.1 -p " .. self.port .. " " .. auth .. table.concat(args, " ")
    .. " 2>&1 </dev/null")
  local out = p:read("*a")
  p:close()
  return (out:gsub("\n$", ""))
end

_M.Server = Server
return _M
