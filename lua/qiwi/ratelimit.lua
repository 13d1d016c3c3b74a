-- Keeps payment-history calls under QIWI's limit (100 per minute per wallet;
-- crossing it blocks the wallet's API access for 5 minutes). The count is a
-- sliding log in the client's store (store:admit, atomic in the store), so
-- every client sharing the store shares it: the clients of a Lua state with
-- the default memory store, every process and host with a shared one. A
-- call that would cross the limit waits (ngx.sleep inside nginx) instead of
-- failing; a store that cannot be reached fails the call, which then sends
-- nothing: an unshared count would let the wallet be blocked.
local _M = {}

-- opts: store, limit (calls), window (seconds), sleep (fn(seconds))
function _M.new(opts)
  return {
    store = opts.store,
    limit = opts.limit or 100,
    window = opts.window or 60,
    sleep = opts.sleep,
  }
end

-- Waits until one more call for `wallet` fits, then records it. Returns the
-- seconds waited, or nil, err (the store's error).
function _M.acquire(rl, wallet)
  local key = "history:" .. wallet
  local waited = 0
  while true do
    local wait, err = rl.store:admit(key, rl.limit, rl.window)
    if not wait then return nil, err end
    if wait == 0 then return waited end
    rl.sleep(wait)
    waited = waited + wait
  end
end

return _M
