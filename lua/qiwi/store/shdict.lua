-- qiwi.store.shdict: a store in an nginx lua_shared_dict, shared by every
-- worker of the nginx (and kept across reloads, not restarts).
--
-- get, set, add, delete and incr are the dict's own atomic operations. An
-- integer's canonical text is kept as a number, so that incr works on it
-- (the dict's incr refuses strings); get gives it back as text. Writes use
-- safe_set/safe_add: a full dict fails the call (kind "store") instead of
-- evicting the least recently used entries, which could be another key's
-- rate log.
--
-- admit holds a lock around the read-modify-write of the log: safe_add of
-- <key>.."\0admit" (keys have no control characters, so no key of a user
-- can be it) with a short expiry, so that a worker that dies holding it
-- blocks the key for at most LOCK_TTL; waiters retry every millisecond with
-- ngx.sleep (a blocking sleep in phases that cannot yield). The log is a
-- dict list of the event times (the monotonic clock, which every worker of
-- the host shares), expiring a second more than a window after its newest
-- event; get and incr refuse a list.
local S = require "qiwi.store"
local core = require "qiwi.core"

local type, format = type, string.format
local monotonic = core.monotonic

local _M = {}
local Store = S.define { name = "shdict" }
Store.__index = Store
_M.Store = Store

local LOCK_TTL = 1
local LOG_ERROR, NOT_LOG = S.LOG_ERROR, S.NOT_LOG

-- opts.timeout: seconds to wait for an admit lock (default 2).
function _M.new(name, opts)
  if type(name) ~= "string" or name == "" then
    return nil, S.argument_error("qiwi.store.shdict takes the name of a lua_shared_dict")
  end
  if opts ~= nil and type(opts) ~= "table" then
    return nil, S.argument_error("qiwi.store.shdict options must be a table")
  end
  if not (S.in_nginx() and type(ngx.shared) == "table") then
    return nil, S.argument_error("qiwi.store.shdict works only inside nginx (lua-nginx-module)")
  end
  local dict = ngx.shared[name]
  if not dict then
    return nil, S.argument_error("no lua_shared_dict named '" .. name .. "' (add lua_shared_dict "
      .. name .. " 1m; to the http block)")
  end
  local timeout = opts and opts.timeout
  if timeout == nil then timeout = 2 end
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 or timeout > 3600 then
    return nil, S.argument_error("shdict store timeout must be a number of seconds from 0 to 3600")
  end
  return setmetatable({ dict = dict, dict_name = name, timeout = timeout, seq = 0 }, Store)
end

function Store:_fail(message, retryable)
  return S.store_error(self.name, "'" .. self.dict_name .. "': " .. tostring(message), retryable)
end

-- What the dict keeps for a checked value: the canonical text of an
-- integer becomes the number.
local function stored(v)
  return S.parse_int(v) or v
end

local function text(v)
  if type(v) == "number" then return format("%d", v) end
  return v
end

function Store:_get(k)
  local v, gerr = self.dict:get(k)
  if v == nil then
    if gerr == "value is a list" then return nil, self:_fail(LOG_ERROR, false) end
    if gerr ~= nil then return nil, self:_fail(gerr, false) end
    return nil, nil
  end
  return text(v)
end

function Store:_set(k, v, t)
  local ok, err = self.dict:safe_set(k, stored(v), t or 0)
  if not ok then return nil, self:_fail(err, false) end
  return true
end

function Store:_add(k, v, t)
  local ok, err = self.dict:safe_add(k, stored(v), t or 0)
  if ok then return true end
  if err == "exists" then return false end
  return nil, self:_fail(err, false)
end

function Store:_delete(k)
  self.dict:delete(k)
  return true
end

function Store:_incr(k, b, t)
  local dict = self.dict
  local n, err
  if t then
    n, err = dict:incr(k, b, 0, t)
  else
    n, err = dict:incr(k, b, 0)
  end
  if not n then
    if err == "not a number" then return nil, self:_fail(S.NOT_INT, false) end
    if err == "value is a list" then return nil, self:_fail(LOG_ERROR, false) end
    return nil, self:_fail(err, false)
  end
  if n > S.MAX_INT or n < -S.MAX_INT then
    dict:incr(k, -b)
    return nil, self:_fail(S.RANGE, false)
  end
  return n
end

-- The log is a list of event times, oldest first: expired times are popped
-- from its head, a new one is pushed at its tail, so that an admit costs
-- O(1 + expired) dict operations whatever the limit.
function Store:_admit_locked(dict, k, limit, window)
  local now = monotonic()
  local cut = now - window
  while true do
    local t, err = dict:lpop(k)
    if t == nil then
      if err then return nil, self:_fail(err == "value not a list" and NOT_LOG or err, false) end
      break
    end
    if t > cut then
      local ok, perr = dict:lpush(k, t)
      if not ok then return nil, self:_fail(perr, false) end
      break
    end
  end
  local n, err = dict:llen(k)
  if not n then return nil, self:_fail(err == "value not a list" and NOT_LOG or err, false) end
  if n < limit then
    local ok, perr = dict:rpush(k, now)
    if not ok then return nil, self:_fail(perr, false) end
    -- The dict expires entries by each worker's cached time, which can lag
    -- the clock; the list must outlive its events, so a margin. Which events
    -- count is decided by the times above, not by this expiry.
    dict:expire(k, window + 1)
    return 0
  end
  -- the (n - limit + 1)-th oldest time is the one whose leaving makes room
  local popped = {}
  for i = 1, n - limit + 1 do popped[i] = dict:lpop(k) end
  for i = #popped, 1, -1 do dict:lpush(k, popped[i]) end
  return S.wait_seconds(popped[#popped] + window - now)
end

function Store:_unlock(lk, token)
  if self.dict:get(lk) == token then self.dict:delete(lk) end
end

function Store:_admit(k, l, w)
  local dict = self.dict
  local lk = k .. "\0admit"
  self.seq = self.seq + 1
  local token = format("%d.%d", core.getpid(), self.seq)
  local deadline
  while true do
    -- the lock's expiry counts from the worker's cached time: fresh, so
    -- that the lock lasts its LOCK_TTL for the other workers too
    ngx.update_time()
    local ok, aerr = dict:safe_add(lk, token, LOCK_TTL)
    if ok then break end
    if aerr ~= "exists" then return nil, self:_fail(aerr, false) end
    local now = monotonic()
    deadline = deadline or now + self.timeout
    if now >= deadline then return nil, self:_fail("timed out waiting for the admit lock of a key") end
    S.sleep(0.001)
  end

  local ok, wait, werr = pcall(self._admit_locked, self, dict, k, l, w)
  self:_unlock(lk, token)
  if not ok then return nil, self:_fail(wait, false) end
  if not wait then return nil, werr end
  return wait
end

return _M
