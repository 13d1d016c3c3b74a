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
-- The server runs under a shell held through a popen pipe (util.supervise),
-- as the nginx of https_fake.lua does: closing the pipe stops it and pclose
-- reaps both, so a halt returns once the port is closed; if this Lua process
-- dies however abruptly, the kernel closes the pipe and the shell stops the
-- server and removes its directory. Control commands go through redis-cli,
-- so that the specs never check our RESP client with itself.
local util = require "util"

local shq = util.shq

local _M = {}

local REDIS = os.getenv("QIWI_TEST_REDIS") or "redis-server"
local CLI = os.getenv("QIWI_TEST_REDIS_CLI") or "redis-cli"

local Server = {}
Server.__index = Server

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
  self._pipe = util.supervise(("%s --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s --daemonize no"
    .. " --logfile '' %s"):format(shq(REDIS), self.port, shq(p), extra),
    { log = p .. "/redis.log", append = true, pid_file = p .. "/pid", dir = p })
  local state = util.wait_until(self.start_timeout or 5, function()
    if not self.pid then
      local s = util.read_file(p .. "/pid")
      self.pid = s and tonumber(s:match("^(%d+)"))
    end
    if self.pid and not util.alive(self.pid) then return "exited" end
    if self.pid and ping(self) then return "up" end
  end, 0.05, 0.005)
  if state == "up" then return true end
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
  local srv = setmetatable({ dir = util.tmpdir("redis"), password = opts.password,
                             start_timeout = opts.start_timeout, keep = opts.keep }, Server)
  local ok, why = util.on_free_port(10, function(port)
    srv.port, srv.pid = port, nil
    return srv:_spawn()
  end)
  if not ok then
    srv:stop()
    error("redis harness: redis-server did not start\n" .. why, 2)
  end
  -- stopped when collected (a spec that forgot), while the pipe is still open
  srv._sentinel = util.gc_sentinel(function() srv:stop() end)
  return srv
end

-- Stops the process and waits until it has exited (the port is closed).
function Server:halt()
  if self._pipe then
    -- the shell is alive until it reads this line (or EOF, which would
    -- also remove the directory)
    util.stop_pipe(self._pipe)
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
