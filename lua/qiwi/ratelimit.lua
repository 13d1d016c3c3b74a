-- Keeps payment-history calls under QIWI's limit (100 per minute per wallet;
-- crossing it blocks the wallet's API access for 5 minutes). A sliding window
-- per wallet, shared by every client of the Lua state (one nginx worker, or
-- one script): a call that would cross the limit waits instead of failing.
local _M = {}

local windows = {}   -- key -> { times (ring of monotonic seconds), head, n }

-- opts: limit (calls), window (seconds), clock (fn → seconds; default the
-- monotonic clock), sleep (fn(seconds))
function _M.new(opts)
  return {
    limit = opts.limit or 100,
    window = opts.window or 60,
    clock = opts.clock or require("qiwi.core").monotonic,
    sleep = opts.sleep,
    -- clients with their own clock (tests) keep their own windows
    windows = opts.clock and {} or windows,
  }
end

-- Blocks (or yields in nginx) until one more call for `key` fits, then
-- records it. Returns the seconds waited.
function _M.acquire(rl, key)
  local w = rl.windows[key]
  if not w then
    w = { times = {}, head = 1, n = 0 }
    rl.windows[key] = w
  end
  local waited = 0
  while true do
    local now = rl.clock()
    -- drop calls that left the window
    while w.n > 0 and w.times[w.head] <= now - rl.window do
      w.times[w.head] = nil
      w.head = w.head + 1
      w.n = w.n - 1
    end
    if w.n < rl.limit then
      w.times[w.head + w.n] = now
      w.n = w.n + 1
      return waited
    end
    -- a small margin so the oldest call has surely left the window
    local pause = w.times[w.head] + rl.window - now + 0.01
    rl.sleep(pause)
    waited = waited + pause
  end
end

return _M
