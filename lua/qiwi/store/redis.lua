-- qiwi.store.redis: a store in Redis (>= 3.2; 5 or later recommended),
-- shared by every host that reaches the server.
--
-- Connections: inside nginx, cosockets (ngx.socket.tcp) from a keepalive
-- pool named after host, port, db and a hash of the credentials, so that a
-- pooled connection is always one that this configuration authenticated and
-- selected; outside nginx, LuaSocket (Debian: lua-socket), one connection
-- per store kept open between calls. Any failure of a connection closes it
-- and fails the call with kind "store" (retryable); the next call connects
-- again. The password never appears in an error.
--
-- Atomicity: get/set/add/delete are single commands; incr and admit are
-- server-side scripts (EVALSHA, loaded with SCRIPT LOAD and loaded again
-- after NOSCRIPT), admit being a sliding log in a sorted set timed by the
-- server's TIME, so that hosts whose clocks disagree still agree.
local S = require "qiwi.store"
local resp = require "qiwi.store.resp"
local core = require "qiwi.core"

local type, tostring, format, find, ceil, floor = type, tostring, string.format, string.find,
  math.ceil, math.floor
local pcall, setmetatable = pcall, setmetatable

local _M = {}
local Store = S.define { name = "redis" }
Store.__index = Store
_M.Store = Store

local LOG_ERROR = "the key holds a rate log (admit) or another Redis type, not a value"
local NOT_LOG = S.NOT_LOG

-- KEYS[1] the key; ARGV[1] the increment, ARGV[2] the ttl in ms (0: none).
-- An existing key keeps its expiry (INCRBY keeps it).
local INCR = [[
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' and v.err then return v end
local cur = 0
if v then
  if #v > 17 or not (v == '0' or string.find(v, '^%-?[1-9]%d*$')) then
    return redis.error_reply('QIWI_NOT_INT the value is not an integer')
  end
  cur = tonumber(v)
  if cur > 9007199254740991 or cur < -9007199254740991 then
    return redis.error_reply('QIWI_NOT_INT the value is not an integer')
  end
end
local n = cur + tonumber(ARGV[1])
if n > 9007199254740991 or n < -9007199254740991 then
  return redis.error_reply('QIWI_RANGE the result is out of the integer range +-(2^53 - 1)')
end
redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if not v and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
]]

-- KEYS[1] the log; ARGV[1] the limit, ARGV[2] the window in microseconds.
-- Returns 0 (recorded) or the wait in microseconds. Members are the event
-- times, made unique with a suffix when two events share a microsecond.
local ADMIT = [[
if redis.replicate_commands then redis.replicate_commands() end
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local r = redis.pcall('ZREMRANGEBYSCORE', key, '-inf', now - window)
if type(r) == 'table' and r.err then return r end
local n = redis.call('ZCARD', key)
if n < limit then
  local m = string.format('%.0f', now)
  local i = 0
  while redis.call('ZADD', key, 'NX', now, m) == 0 do
    i = i + 1
    m = string.format('%.0f-%d', now, i)
  end
  redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1)
  return 0
end
local first = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
local wait = tonumber(first[2]) + window - now
if wait < 1 then wait = 1 end
return wait
]]

-- SHA1 of each script, as the server told us (SCRIPT LOAD): the same for
-- every server, so one table serves every store of the Lua state.
local shas = {}

local DEFAULTS = { host = "127.0.0.1", port = 6379, db = 0, prefix = "qiwi:", timeout = 1,
                   pool_size = 32, keepalive = 60 }
local KNOWN = { host = true, port = true, password = true, username = true, db = true, prefix = true,
                timeout = true, pool_size = true, keepalive = true }

local RETRYABLE = { LOADING = true, BUSY = true, TRYAGAIN = true, MASTERDOWN = true, READONLY = true,
                    CLUSTERDOWN = true }

local function bad(message)
  return nil, S.argument_error("qiwi.store.redis: " .. message)
end

function _M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then return bad("takes an options table") end
  for k in pairs(opts) do
    if not KNOWN[k] then return bad("unknown option " .. (type(k) == "string" and k or "<" .. type(k) .. ">")) end
  end
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  if type(o.host) ~= "string" or not find(o.host, "^[%w%.%-:%[%]_]+$") then
    return bad("host must be a host name or an address")
  end
  o.host = o.host:gsub("^%[(.*)%]$", "%1")
  local port = S.int_value(o.port)
  if not port or port < 1 or port > 65535 then return bad("port must be an integer from 1 to 65535") end
  local db = S.int_value(o.db)
  if not db or db < 0 or db > 1000000 then return bad("db must be a non-negative integer") end
  if o.password ~= nil and (type(o.password) ~= "string" or o.password == "") then
    return bad("password must be a non-empty string")
  end
  if o.username ~= nil and (type(o.username) ~= "string" or o.username == "" or find(o.username, "[%c%s]")) then
    return bad("username must be a non-empty string without spaces")
  end
  if o.username and not o.password then return bad("username needs a password") end
  if type(o.prefix) ~= "string" or #o.prefix > 256 then return bad("prefix must be a string") end
  for _, name in ipairs { "timeout", "keepalive" } do
    local v = o[name]
    if type(v) ~= "number" or v ~= v or v <= 0 or v > 3600 then
      return bad(name .. " must be a number of seconds > 0 (up to 3600)")
    end
  end
  local pool_size = S.int_value(o.pool_size)
  if not pool_size or pool_size < 1 or pool_size > 10000 then return bad("pool_size must be an integer >= 1") end
  local secret = o.password and core.hmac_sha256_hex("qiwi.store.redis pool", (o.username or "") .. "\0" .. o.password)
  return setmetatable({
    host = o.host, port = port, db = db, prefix = o.prefix, timeout = o.timeout,
    timeout_ms = ceil(o.timeout * 1000), keepalive_ms = ceil(o.keepalive * 1000), pool_size = pool_size,
    username = o.username, password = o.password,
    secrets = o.password and { o.password } or nil,
    pool = format("qiwi.store.redis %s:%d db %d %s", o.host, port, db, secret and secret:sub(1, 16) or "-"),
    where = format("%s:%d", find(o.host, ":", 1, true) and "[" .. o.host .. "]" or o.host, port),
    conn = nil, last_use = 0,
  }, Store)
end

-- kind "io"/"protocol": the connection failed; "redis": the server refused.
function Store:_fail(message, retryable)
  return S.store_error(self.name, self.where .. ": " .. tostring(message), retryable, self.secrets)
end

local function redis_error(self, msg)
  local word = msg:match("^(%u+)")
  return self:_fail(msg, RETRYABLE[word] == true)
end

-- AUTH and SELECT on a new connection: true | nil, err.
local function handshake(self, sock)
  if self.password then
    local args = self.username and { "AUTH", self.username, self.password } or { "AUTH", self.password }
    local ok, v, kind = resp.call(sock, args)
    if not ok then
      if kind == "redis" then return nil, self:_fail("AUTH refused: " .. v, false) end
      return nil, self:_fail("AUTH: " .. tostring(v))
    end
  end
  if self.db ~= 0 then
    local ok, v, kind = resp.call(sock, { "SELECT", self.db })
    if not ok then
      if kind == "redis" then return nil, self:_fail("SELECT " .. self.db .. " refused: " .. v, false) end
      return nil, self:_fail("SELECT: " .. tostring(v))
    end
  end
  return true
end

local socket_lib
local function luasocket()
  if socket_lib == nil then
    local ok, lib = pcall(require, "socket")
    socket_lib = ok and type(lib) == "table" and lib.tcp and lib or false
  end
  return socket_lib
end

-- A connection for one call: sock, is_cosocket | nil, err.
function Store:_acquire()
  if S.in_nginx() then
    if not S.can_yield() then
      local ok, phase = pcall(ngx.get_phase)
      return nil, self:_fail("cosockets are not available in nginx's " .. tostring(ok and phase or "current")
        .. " phase (call from rewrite, access, content or a timer)", false)
    end
    local ok, sock = pcall(ngx.socket.tcp)
    if not ok or not sock then return nil, self:_fail("ngx.socket.tcp: " .. tostring(sock)) end
    local t = self.timeout_ms
    sock:settimeouts(t, t, t)
    local cok, err = sock:connect(self.host, self.port, { pool = self.pool, pool_size = self.pool_size })
    if not cok then return nil, self:_fail("connect: " .. tostring(err)) end
    local reused = sock:getreusedtimes()
    if not reused or reused == 0 then
      local hok, herr = handshake(self, sock)
      if not hok then
        sock:close()
        return nil, herr
      end
    end
    return sock, true
  end

  local sock = self.conn
  if sock then
    -- a kept connection that the server closed (a restart, its idle
    -- timeout) shows as readable: closed, or bytes nobody asked for
    sock:settimeout(0)
    local data, err = sock:receive(1)
    if data or err ~= "timeout" then
      sock:close()
      self.conn = nil
    else
      sock:settimeout(self.timeout)
      return sock, false
    end
  end
  local lib = luasocket()
  if not lib then
    return nil, self:_fail("outside nginx the redis store needs LuaSocket (Debian: lua-socket)", false)
  end
  sock = lib.tcp()
  if not sock then return nil, self:_fail("socket.tcp failed") end
  sock:settimeout(self.timeout)
  local ok, err = sock:connect(self.host, self.port)
  if not ok then
    sock:close()
    return nil, self:_fail("connect: " .. tostring(err))
  end
  pcall(sock.setoption, sock, "tcp-nodelay", true)
  local hok, herr = handshake(self, sock)
  if not hok then
    sock:close()
    return nil, herr
  end
  self.conn = sock
  return sock, false
end

function Store:_release(sock, cosocket, broken)
  if cosocket then
    if broken then sock:close() else sock:setkeepalive(self.keepalive_ms, self.pool_size) end
  elseif broken then
    sock:close()
    if self.conn == sock then self.conn = nil end
  end
end

-- Runs one command: true, value | nil, err.
function Store:_command(args)
  local sock, err = self:_acquire()
  if not sock then return nil, err end
  local cosocket = err
  local ok, v, kind = resp.call(sock, args)
  if ok then
    self:_release(sock, cosocket, false)
    return true, v
  end
  self:_release(sock, cosocket, kind ~= "redis")
  if kind == "redis" then return nil, redis_error(self, v) end
  return nil, self:_fail(tostring(v))
end

-- Runs a script: true, value | nil, err (err.redis: the error reply's text).
function Store:_script(script, key, a1, a2)
  local sock, err = self:_acquire()
  if not sock then return nil, err end
  local cosocket = err
  local ok, v, kind
  for _ = 1, 2 do
    local sha = shas[script]
    if not sha then
      ok, v, kind = resp.call(sock, { "SCRIPT", "LOAD", script })
      if not ok then break end
      if type(v) ~= "string" or not find(v, "^%x+$") then
        ok, v, kind = nil, "SCRIPT LOAD answered no SHA1", "protocol"
        break
      end
      shas[script], sha = v, v
    end
    ok, v, kind = resp.call(sock, { "EVALSHA", sha, 1, key, a1, a2 })
    if ok or kind ~= "redis" or not find(v, "^NOSCRIPT") then break end
    shas[script] = nil          -- the server forgot it (a restart, SCRIPT FLUSH)
  end
  self:_release(sock, cosocket, not ok and kind ~= "redis")
  if ok then return true, v end
  if kind ~= "redis" then return nil, self:_fail(tostring(v)) end
  return nil, nil, v
end

local function ttl_ms(ttl)
  local ms = ceil(ttl * 1000 - 1e-6)
  if ms < 1 then ms = 1 end
  return ms
end

local function wrongtype(self, msg, message)
  if find(msg, "^WRONGTYPE") then return self:_fail(message, false) end
  return redis_error(self, msg)
end

function Store:_get(k)
  local ok, v = self:_command { "GET", self.prefix .. k }
  if not ok then
    if v.message and find(v.message, "WRONGTYPE", 1, true) then return nil, self:_fail(LOG_ERROR, false) end
    return nil, v
  end
  if v ~= nil and type(v) ~= "string" then return nil, self:_fail("GET answered a " .. type(v), false) end
  return v
end

-- SET key value [NX] [PX ms]: true, the reply | nil, err.
local function set(self, k, v, t, nx)
  local args = { "SET", self.prefix .. k, v }
  if nx then args[#args + 1] = "NX" end
  if t then args[#args + 1], args[#args + 2] = "PX", ttl_ms(t) end
  return self:_command(args)
end

function Store:_set(k, v, t)
  local ok, r = set(self, k, v, t, false)
  if not ok then return nil, r end
  return true
end

function Store:_add(k, v, t)
  local ok, r = set(self, k, v, t, true)
  if not ok then return nil, r end
  return r ~= nil
end

function Store:_delete(k)
  local ok, r = self:_command { "DEL", self.prefix .. k }
  if not ok then return nil, r end
  return true
end

function Store:_incr(k, b, t)
  local ok, v, reply = self:_script(INCR, self.prefix .. k, b, t and ttl_ms(t) or 0)
  if ok then
    if type(v) ~= "number" then return nil, self:_fail("the incr script answered a " .. type(v), false) end
    return v
  end
  if not reply then return nil, v end
  local mine = reply:match("^QIWI_[%u_]+ (.*)$")
  if mine then return nil, self:_fail(mine, false) end
  return nil, wrongtype(self, reply, LOG_ERROR)
end

function Store:_admit(k, l, w)
  local us = floor(w * 1e6 + 0.5)
  if us < 1 then us = 1 end
  local ok, v, reply = self:_script(ADMIT, self.prefix .. k, l, us)
  if ok then
    if type(v) ~= "number" then return nil, self:_fail("the admit script answered a " .. type(v), false) end
    if v == 0 then return 0 end
    return S.wait_seconds(v / 1e6)
  end
  if not reply then return nil, v end
  return nil, wrongtype(self, reply, NOT_LOG)
end

-- Closes the kept connection (outside nginx; inside, the pool keeps them).
function Store:close()
  if self.conn then
    self.conn:close()
    self.conn = nil
  end
  return true
end

return _M
