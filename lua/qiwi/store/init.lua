-- qiwi.store: shared state for rate limits, counters and idempotency marks,
-- and the interface every store keeps (ours and the ones users write).
--
-- Constructors (each returns a new store; none connects or touches a disk
-- before the first call that needs it, so a store that is down fails the
-- calls that need it, not its construction; a bad argument is nil, err of
-- kind "argument"):
--   qiwi.store.memory()          one Lua state (a script, one nginx worker)
--   qiwi.store.file(dir [, opts]) one host: files under dir, durable across
--                                 runs, safe between processes; opts.fsync
--                                 (default true), opts.timeout (lock wait, s)
--   qiwi.store.shdict(name [, opts]) nginx: a lua_shared_dict, every worker;
--                                 opts.timeout (admit lock wait, s)
--   qiwi.store.redis{ host="127.0.0.1", port=6379, password=, username=, db=0,
--                     prefix="qiwi:", timeout=1, pool_size=32, keepalive=60 }
--                                 many hosts; Redis >= 3.2; cosockets inside
--                                 nginx, LuaSocket outside (lua-socket)
--   qiwi.store.default()         the memory store every client of this Lua
--                                 state shares when given no store
--
-- THE INTERFACE. Every method is atomic across every user of the store and
-- never raises: a failure is nil, err, where err is a qiwi error
-- (require("qiwi.error")) of kind "argument" (a bad key, value, ttl, ...:
-- nothing was done) or "store" (the store is unreachable or refused the
-- operation; err.retryable says whether trying again may help).
--   key    a string of 1 to 1024 bytes without control characters
--   value  a string (up to 1 MiB) or an integer; get returns strings, an
--          integer as its decimal text ("5")
--   ttl    seconds (a number > 0, fractions allowed, resolution 1 ms), or
--          nil for no expiry
--   integers are exact within +-(2^53 - 1) on every store and interpreter
--
--   s:incr(key, by, ttl) -> the new integer | nil, err
--        by: an integer (nil: 1). An absent key starts at 0 and, when ttl is
--        given, expires ttl seconds after this call; an existing key keeps
--        its expiry (so incr(k, 1, 60) is a fixed-window counter). A value
--        that is not an integer's canonical text, or a result out of range,
--        is an error of kind "store" (not retryable) and changes nothing.
--   s:add(key, value, ttl) -> true (added) | false (the key exists and has
--        not expired) | nil, err
--   s:get(key)             -> value | nil, nil (absent or expired) | nil, err
--   s:set(key, value, ttl) -> true | nil, err   (replaces value and expiry)
--   s:delete(key)          -> true | nil, err   (absent is fine)
--   s:admit(key, limit, window) -> 0 | wait | nil, err
--        A sliding log: at most `limit` (an integer, 1..100000) events in any
--        `window` (seconds > 0). 0: one more event fitted and was recorded.
--        Otherwise nothing is recorded and `wait` (> 0, whole milliseconds,
--        in seconds) is how long until the oldest event that blocks leaves
--        the window: after sleeping it one more event fits, unless another
--        user took the place first. A key used with admit holds the log:
--        get and incr refuse it (kind "store"), add finds it taken, set
--        replaces it and delete removes it; admit refuses a key that holds
--        a value. The log expires once its newest event has left the window.
--        A call costs O(limit) in memory and file (in shdict and redis,
--        about the events that left the window), so keep limits there in
--        the hundreds.
--   s:close()              -> true (optional: releases connections)
--   s.name                 "memory", "file", "shdict", "redis", ...
--
-- Clocks: memory and shdict use the host's monotonic clock (shared by every
-- process of the host); file uses the wall clock, since its data outlives
-- the processes and boots that wrote it (a wall clock stepped back delays
-- expiries and admissions by as much); redis uses the server's own TIME, so
-- that hosts with skewed clocks agree.
--
-- Writing your own store: a table with those methods and name, keeping the
-- same contract; _M.check(s) tells whether an object looks like a store.
-- _M.define(Class) gives a class (the metatable of its stores, with
-- __index = Class) the six methods as ours have them: each checks its
-- arguments, fails a bad one with our argument error, and otherwise calls
-- the class's own primitive with the checked arguments, returning what it
-- returns:
--   Class:_get(key)                 key: a valid key
--   Class:_set(key, value, ttl)     value: a string (an integer given as its
--   Class:_add(key, value, ttl)       decimal text); ttl: seconds or nil
--   Class:_delete(key)
--   Class:_incr(key, by, ttl)       by: an integer (1 when nil was given)
--   Class:_admit(key, limit, window)
-- and close (returning true) unless the class has its own. It returns the
-- class; the primitives may come after, as ours do:
--   local Mine = S.define { name = "mine" }
--   Mine.__index = Mine
--   function Mine:_get(key) ... end   -- and so on; new = setmetatable({}, Mine)
-- The helpers below (_M.check_key, _M.check_value, _M.check_ttl,
-- _M.check_by, _M.check_admit) give the same argument errors one at a time;
-- _M.store_error, the messages (_M.LOG_ERROR, _M.NOT_LOG, _M.NOT_INT,
-- _M.RANGE), _M.incr_text and _M.log_admit the rest of what memory and file
-- do.
local qerror = require "qiwi.error"
local core = require "qiwi.core"

local type, tostring, tonumber, floor, ceil, format, find = type, tostring, tonumber, math.floor, math.ceil,
  string.format, string.find

local _M = {}

local MAX_KEY = 1024
local MAX_VALUE = 1024 * 1024
local MAX_INT = 2 ^ 53 - 1
local MAX_TTL = 10 * 365 * 86400
_M.MAX_INT = MAX_INT

local METHODS = { "incr", "add", "get", "set", "delete", "admit" }

---------------------------------------------------------------------------
-- Errors

function _M.argument_error(message)
  return qerror.new { kind = "argument", message = message, retryable = false }
end

-- name: the store's name; secrets: strings scrubbed from the message (a
-- password); retryable defaults to true (the store was unreachable).
function _M.store_error(name, message, retryable, secrets)
  if retryable == nil then retryable = true end
  return qerror.new({ kind = "store", message = tostring(name) .. ": " .. tostring(message),
                      retryable = retryable, store = name }, secrets)
end

---------------------------------------------------------------------------
-- Argument checks: each returns the checked value, or nil and an argument
-- error.

local is_integer = math.type and function(v)
  return math.type(v) == "integer" or (math.type(v) == "float" and v == floor(v))
end or function(v) return v == floor(v) end

-- An integer within the interface's range (a float with an integral value
-- counts: 3.0 is 3), as a Lua integer where the interpreter has them.
local function int_value(v)
  if type(v) ~= "number" or v ~= v or not is_integer(v) or v > MAX_INT or v < -MAX_INT then return nil end
  return math.tointeger and math.tointeger(v) or v
end
_M.int_value = int_value

function _M.check_key(key)
  if type(key) ~= "string" then return nil, _M.argument_error("store key must be a string, got " .. type(key)) end
  if key == "" then return nil, _M.argument_error("store key must not be empty") end
  if #key > MAX_KEY then return nil, _M.argument_error("store key must be at most " .. MAX_KEY .. " bytes") end
  if find(key, "[%z\1-\31\127]") then
    return nil, _M.argument_error("store key must not contain control characters")
  end
  return key
end

-- The value as it is stored: a string (an integer as its decimal text).
function _M.check_value(v)
  local t = type(v)
  if t == "string" then
    if #v > MAX_VALUE then return nil, _M.argument_error("store value must be at most 1 MiB") end
    return v
  elseif t == "number" then
    local i = int_value(v)
    if not i then return nil, _M.argument_error("store value must be a string or an integer within +-(2^53 - 1)") end
    return format("%d", i)
  end
  return nil, _M.argument_error("store value must be a string or an integer, got " .. t)
end

-- nil stays nil (no expiry).
function _M.check_ttl(ttl)
  if ttl == nil then return nil end
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 or ttl > MAX_TTL then
    return nil, _M.argument_error("store ttl must be a number of seconds > 0 (up to 10 years) or nil")
  end
  return ttl
end

function _M.check_by(by)
  if by == nil then return 1 end
  local i = int_value(by)
  if not i then return nil, _M.argument_error("store increment must be an integer within +-(2^53 - 1)") end
  return i
end

function _M.check_admit(limit, window)
  local l = int_value(limit)
  if not l or l < 1 or l > 100000 then
    return nil, _M.argument_error("admit limit must be an integer from 1 to 100000")
  end
  if type(window) ~= "number" or window ~= window or window <= 0 or window > MAX_TTL then
    return nil, _M.argument_error("admit window must be a number of seconds > 0")
  end
  return l, window
end

---------------------------------------------------------------------------
-- The public methods of a store class, defined once over its primitives
-- (see "Writing your own store" above).

local check_key, check_value, check_ttl, check_by, check_admit = _M.check_key, _M.check_value, _M.check_ttl,
  _M.check_by, _M.check_admit

local function store_close() return true end

function _M.define(class)
  function class:get(key)
    local k, err = check_key(key)
    if not k then return nil, err end
    return self:_get(k)
  end

  function class:delete(key)
    local k, err = check_key(key)
    if not k then return nil, err end
    return self:_delete(k)
  end

  -- set, add and incr: key, a value (checked by check), ttl
  local function with_ttl(check, primitive)
    return function(self, key, value, ttl)
      local k, err = check_key(key)
      if not k then return nil, err end
      local v
      v, err = check(value)
      if not v then return nil, err end
      local t
      t, err = check_ttl(ttl)
      if err then return nil, err end
      return self[primitive](self, k, v, t)
    end
  end
  class.set = with_ttl(check_value, "_set")
  class.add = with_ttl(check_value, "_add")
  class.incr = with_ttl(check_by, "_incr")

  function class:admit(key, limit, window)
    local k, err = check_key(key)
    if not k then return nil, err end
    local l, w = check_admit(limit, window)
    if not l then return nil, w end
    return self:_admit(k, l, w)
  end

  if class.close == nil then class.close = store_close end
  return class
end

---------------------------------------------------------------------------
-- What stores that keep their data themselves share.

-- The messages of the store errors (not retryable) that the interface names.
_M.LOG_ERROR = "the key holds a rate log (admit)"
_M.NOT_LOG = "the key holds a value, not a rate log"
_M.NOT_INT = "the value is not an integer"
_M.RANGE = "the result is out of the integer range +-(2^53 - 1)"

-- The integer a stored text holds, or nil when it is not the canonical text
-- of an integer in range ("5", "-12", "0"; not "05", "+5", "5.0", " 5").
function _M.parse_int(s)
  if type(s) ~= "string" or #s > 17 then return nil end
  if s ~= "0" and not find(s, "^%-?[1-9]%d*$") then return nil end
  local n = tonumber(s)
  if not n or n > MAX_INT or n < -MAX_INT then return nil end
  return math.tointeger and math.tointeger(n) or n
end

-- a + b, or nil when the result leaves the range.
function _M.add_int(a, b)
  local n = a + b
  if n > MAX_INT or n < -MAX_INT then return nil end
  return n
end

-- incr over a stored text (nil: the key is absent, which counts as 0): the
-- new integer, or nil and the message of the store error to fail with.
function _M.incr_text(text, by)
  local cur = 0
  if text ~= nil then
    cur = _M.parse_int(text)
    if not cur then return nil, _M.NOT_INT end
  end
  local n = _M.add_int(cur, by)
  if not n then return nil, _M.RANGE end
  return n
end

-- A wait in seconds rounded up to the millisecond, never below 1 ms.
function _M.wait_seconds(w)
  w = ceil(w * 1000 - 1e-6) / 1000
  if w < 0.001 then w = 0.001 end
  return w
end

---------------------------------------------------------------------------
-- The sliding log shared by memory, file and shdict: times is an array of
-- event times, oldest first. Drops the times that left the window and
-- returns 0 after recording `now`, or the wait.
function _M.log_admit(times, now, limit, window)
  local n = #times
  local cut = now - window
  local drop = 0
  while drop < n and times[drop + 1] <= cut do drop = drop + 1 end
  if drop > 0 then
    for i = 1, n - drop do times[i] = times[i + drop] end
    for i = n - drop + 1, n do times[i] = nil end
    n = n - drop
  end
  if n < limit then
    -- a clock stepped back must not leave the log out of order
    if n > 0 and times[n] > now then now = times[n] end
    times[n + 1] = now
    return 0
  end
  -- the event whose leaving makes room: with n >= limit events, the
  -- (n - limit + 1)-th oldest
  return _M.wait_seconds(times[n - limit + 1] + window - now)
end

---------------------------------------------------------------------------
-- Inside nginx: whether this phase may yield (ngx.sleep, cosockets).
local YIELDING = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
                   ssl_session_fetch = true, ssl_client_hello = true, preread = true }

function _M.in_nginx()
  return ngx ~= nil and type(ngx) == "table" and ngx.get_phase ~= nil
end

function _M.can_yield()
  if not _M.in_nginx() then return false end
  local ok, phase = pcall(ngx.get_phase)
  return ok and YIELDING[phase] == true
end

-- A short sleep: ngx.sleep where the phase allows it, else a blocking one.
function _M.sleep(s)
  if _M.can_yield() and pcall(ngx.sleep, s) then return end
  core.sleep(s)
end

---------------------------------------------------------------------------
-- Constructors

function _M.memory(opts)
  return require("qiwi.store.memory").new(opts)
end

function _M.file(dir, opts)
  return require("qiwi.store.file").new(dir, opts)
end

function _M.shdict(name, opts)
  return require("qiwi.store.shdict").new(name, opts)
end

function _M.redis(opts)
  return require("qiwi.store.redis").new(opts)
end

-- One per Lua state, kept in the registry: busted and similar hosts reload
-- modules, and a reloaded module must still hand out the same store.
local REG_KEY = "qiwi.store.default"
function _M.default()
  local reg = debug.getregistry()
  local s = reg[REG_KEY]
  if not s then
    s = _M.memory()
    reg[REG_KEY] = s
  end
  return s
end

-- true when s has every method of the interface, else nil and a reason.
function _M.check(s)
  local t = type(s)
  if t ~= "table" and t ~= "userdata" then return nil, "a store must be a table, got " .. t end
  for _, m in ipairs(METHODS) do
    local ok, f = pcall(function() return s[m] end)
    if not ok or (type(f) ~= "function" and not (type(f) == "table" and getmetatable(f)
        and getmetatable(f).__call)) then
      return nil, "a store must have a method " .. m
    end
  end
  return true
end

return _M
