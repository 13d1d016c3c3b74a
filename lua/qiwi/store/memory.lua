-- qiwi.store.memory: a store in this Lua state's memory (one script, or one
-- nginx worker: workers do not share it). Plain Lua, so every method is
-- atomic by itself: nothing in it yields. Clock: the monotonic clock.
-- Expired entries go when touched, and in a sweep after as many writes as
-- there were live entries at the last sweep (at least 1000), so memory stays
-- bounded by the live entries at an amortised O(1) per write.
local S = require "qiwi.store"
local core = require "qiwi.core"

local next = next

local _M = {}
-- shared = false: one Lua state's; what must be unique across processes
-- (fresh payment ids) is not kept here (qiwi.ids)
local Store = S.define { name = "memory", shared = false }
Store.__index = Store
_M.Store = Store

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

function Store:_get(k)
  local e = self:_entry(k, self.clock())
  if not e then return nil, nil end
  if e.log then return nil, S.store_error(self.name, S.LOG_ERROR, false) end
  return e.v
end

local function put_value(self, k, v, t, now)
  self:_put(k, { v = v, exp = t and now + t }, now)
  return true
end

function Store:_set(k, v, t)
  return put_value(self, k, v, t, self.clock())
end

function Store:_add(k, v, t)
  local now = self.clock()
  if self:_entry(k, now) then return false end
  return put_value(self, k, v, t, now)
end

function Store:_delete(k)
  self.data[k] = nil
  return true
end

function Store:_incr(k, b, t)
  local now = self.clock()
  local e = self:_entry(k, now)
  if e and e.log then return nil, S.store_error(self.name, S.LOG_ERROR, false) end
  local n, why = S.incr_text(e and e.v, b)
  if not n then return nil, S.store_error(self.name, why, false) end
  local v = string.format("%d", n)
  if e then e.v = v else put_value(self, k, v, t, now) end
  return n
end

function Store:_admit(k, l, w)
  local now = self.clock()
  local e = self:_entry(k, now)
  if e and not e.log then return nil, S.store_error(self.name, S.NOT_LOG, false) end
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

return _M
