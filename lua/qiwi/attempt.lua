-- The attempt policy, one for single calls and for every round of a batch:
-- which failures are tried again (safe requests only), how long to wait
-- first (Retry-After, else exponential backoff with jitter), the deadline (a
-- call's timeout runs from its first send, not from a rate-limit wait), and
-- the history rate limit before each send. Plain functions over numbers, so
-- that a call makes no policy table.
local core = require "qiwi.core"
local ratelimit = require "qiwi.ratelimit"

local monotonic = core.monotonic
local random = math.random

local _M = {}

local in_nginx = type(ngx) == "table" and type(ngx.socket) == "table"

-- Waits without blocking an nginx worker where nginx allows it.
function _M.sleep(seconds)
  if seconds <= 0 then return end
  if in_nginx and ngx.sleep then
    local ok = pcall(ngx.sleep, seconds)
    if ok then return end
  end
  core.sleep(seconds)
end

_M.now = monotonic

-- How many sends a request may make: a request that is not safe to repeat
-- (a POST that is not a payment with its fixed id) is sent once.
function _M.attempts(safe, retries)
  return safe and retries + 1 or 1
end

-- Before each send of a request of `row`: the history rate limit. true, or
-- nil, err when the store that keeps the count failed (nothing is sent).
function _M.admit(client, row)
  if row.rate == "history" and client._history_rate then
    local waited, err = ratelimit.acquire(client._history_rate, client.wallet or "?")
    if not waited then return nil, err end
  end
  return true
end

-- The deadline of a call that sends now, and the seconds left of it.
function _M.start(deadline, timeout)
  if deadline then
    local left = deadline - monotonic()
    return deadline, left > 0.001 and left or 0.001
  end
  return monotonic() + timeout, timeout
end

-- Whether err after attempt n (1-based) of `attempts` is tried again.
function _M.again(err, n, attempts)
  return n < attempts and err.retryable == true
end

-- Seconds to wait before attempt n + 1: what the server asked for, else
-- 0.2 s doubling per attempt, jittered (0.5–1.5×) so clients spread out.
function _M.delay(err, n)
  local after = err.retry_after
  if type(after) == "number" and after >= 0 then return after end
  return 0.2 * 2 ^ (n - 1) * (0.5 + random())
end

-- Waits `delay` when the next attempt still fits before `deadline`; false
-- when it would not (the call gives up with its last error).
function _M.wait(deadline, delay)
  if monotonic() + delay >= deadline then return false end
  _M.sleep(delay)
  return true
end

-- Seconds from a Retry-After header (delta-seconds form), or nil.
function _M.retry_after(headers)
  local v = headers and headers["retry-after"]
  local n = v and tonumber(v)
  if n and n >= 0 then return n end
  return nil
end

return _M
