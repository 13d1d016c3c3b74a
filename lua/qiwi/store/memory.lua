-- qiwi.store.memory: a store in this Lua state's memory (one script, or one
-- nginx worker: workers do not share it). Plain Lua, so every method is
-- atomic by itself: nothing in it yields. Clock: the monotonic clock.
-- Expired entries go when touched, and in a sweep after as many writes as
-- there were live entries at the last sweep (at least 1000), so memory stays
-- bounded by the live entries at an amortised O(1) per write.
local S = require "qiwi.store"
local core = require "qiwi.core"

local check_key, check_value, check_ttl = S.check_key, S.check_value, S.check_ttl
local next = next

local _M = {}
-- shared = false: one Lua state's; what must be unique across processes
-- (fresh payment ids) is not kept here (qiwi.ids)
local Store = { name = "memory", shared = false }
Store.__index = Store
_M.Store = Store

local LOG_ERROR = "the key holds a rate log (admit)"
local NOT_INT = "the value is not an integer"
local RANGE = "the result is out of the integer range +-(2^53 - 1)"

-- opts.clock: seconds (default the monotonic clock), for tests.
function _M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    return nil, S.argument_error("qiwi.store.memory takes an options table or nothing")
  end
  local clock = opts and opts.clock or core.monotonic
  if type(clock) ~= "function" then return nil, S.argument_error("memory store clock must be a function") end
  return setmetatable({ data = {}, clock = clock, live = 0, writes = 0, sweep_at = 1000 }, Store)
end

function Store:_sweep(now)
  local data, live = self.data, 0
  for k, e in next, data do
    if e.exp and e.exp <= now then data[k] = nil else live = live + 1 end
  end
  self.live, self.writes = live, 0
  self.sweep_at = live > 1000 and live or 1000
end

-- The live entry of key, or nil.
function Store:_entry(key, now)
  local e = self.data[key]
  if e and e.exp and e.exp <= now then
    self.data[key] = nil
    return nil
  end
  return e
end

function Store:_put(key, e, now)
  self.data[key] = e
  local w = self.writes + 1
  self.writes = w
  if w >= self.sweep_at then self:_sweep(now) end
end

function Store:get(key)
  local k, err = check_key(key)
  if not k then return nil, err end
  local e = self:_entry(k, self.clock())
  if not e then return nil, nil end
  if e.log then return nil, S.store_error(self.name, LOG_ERROR, false) end
  return e.v
end

function Store:set(key, value, ttl)
  local k, err = check_key(key)
  if not k then return nil, err end
  local v
  v, err = check_value(value)
  if not v then return nil, err end
  local t
  t, err = check_ttl(ttl)
  if err then return nil, err end
  local now = self.clock()
  self:_put(k, { v = v, exp = t and now + t }, now)
  return true
end

function Store:add(key, value, ttl)
  local k, err = check_key(key)
  if not k then return nil, err end
  local v
  v, err = check_value(value)
  if not v then return nil, err end
  local t
  t, err = check_ttl(ttl)
  if err then return nil, err end
  local now = self.clock()
  if self:_entry(k, now) then return false end
  self:_put(k, { v = v, exp = t and now + t }, now)
  return true
end

function Store:delete(key)
  local k, err = check_key(key)
  if not k then return nil, err end
  self.data[k] = nil
  return true
end

function Store:incr(key, by, ttl)
  local k, err = check_key(key)
  if not k then return nil, err end
  local b
  b, err = S.check_by(by)
  if not b then return nil, err end
  local t
  t, err = check_ttl(ttl)
  if err then return nil, err end
  local now = self.clock()
  local e = self:_entry(k, now)
  local cur = 0
  if e then
    if e.log then return nil, S.store_error(self.name, LOG_ERROR, false) end
    cur = S.parse_int(e.v)
    if not cur then return nil, S.store_error(self.name, NOT_INT, false) end
  end
  local n = S.add_int(cur, b)
  if not n then return nil, S.store_error(self.name, RANGE, false) end
  if e then
    e.v = string.format("%d", n)
  else
    self:_put(k, { v = string.format("%d", n), exp = t and now + t }, now)
  end
  return n
end

function Store:admit(key, limit, window)
  local k, err = check_key(key)
  if not k then return nil, err end
  local l, w = S.check_admit(limit, window)
  if not l then return nil, w end
  local now = self.clock()
  local e = self:_entry(k, now)
  if e and not e.log then return nil, S.store_error(self.name, "the key holds a value, not a rate log", false) end
  if not e then
    e = { log = {} }
    self:_put(k, e, now)
  end
  local wait = S.log_admit(e.log, now, l, w)
  -- the log goes once its newest event has left the window
  local newest = e.log[#e.log]
  e.exp = newest and newest + w or now + w
  return wait
end

function Store.close(_)
  return true
end

return _M
