-- The shop's side of QIWI: settings (init_by_lua), and in every worker
-- (init_worker_by_lua) a client, the watcher and the webhook receiver, both
-- on one store and name, so that each payment reaches shop.payments once,
-- by webhook when QIWI's notification comes, by polling when it does not.
-- At start the first worker makes sure QIWI posts to the shop's hook URL
-- (SHOP_HOOK_URL), from a timer, retried until it works.
local qiwi = require "qiwi"
local orders = require "shop.orders"
local payments = require "shop.payments"

local _M = { _VERSION = "shop.qiwi 0.1.0" }

local SUCCESS = ngx.STDERR
-- The watcher's and the webhook receiver's name in the store: the two
-- share the ledger of handled payments only under the same one.
local STREAM = "shop"
-- Where the hook's signing key is kept, in the store's dict, for every
-- worker (the first one fetches it from QIWI).
local KEY = "shop:webhook_key"

local settings
local watcher, receiver

-- s: token, wallet (digits: the payment form needs it), base_url,
-- allow_http (a loopback fake over plain http), timeout, hook_url (the
-- URL QIWI is to post to; nil: no registration), webhook_key (base64, for a
-- hook registered by other means), watch_interval (seconds, 10),
-- orders_dict and qiwi_dict (lua_shared_dict names).
function _M.configure(s)
  assert(type(s) == "table", "shop.qiwi.configure takes a table")
  assert(type(s.token) == "string" and s.token ~= "", "shop.qiwi: token is required (set QIWI_TOKEN)")
  assert(type(s.wallet) == "string" and s.wallet:find("^%+?%d+$"),
    "shop.qiwi: wallet is required, digits (set QIWI_WALLET): payment links name it")
  assert(ngx.shared[s.qiwi_dict or ""], "shop.qiwi: no lua_shared_dict named '" .. tostring(s.qiwi_dict) .. "'")
  orders.configure(s.orders_dict)
  settings = {}
  -- an env directive's unset variable is nil, an empty one "": both unset
  for k, v in pairs(s) do
    if v ~= "" then settings[k] = v end
  end
  settings.wallet = s.wallet:gsub("^%+", "")
  settings.watch_interval = tonumber(s.watch_interval) or 10
  -- Seeds the watcher's cursor when the store has none (a new dict: the
  -- first start, not a reload). A minute before the start, as QIWI's
  -- clock may be behind ours; payments of that minute name no order of
  -- this run.
  settings.since = os.time() - 60
end

function _M.settings()
  return assert(settings, "shop.qiwi.configure was not called from init_by_lua")
end

local function webhook_key()
  return ngx.shared[settings.qiwi_dict]:get(KEY) or settings.webhook_key
end

-- The active hook is ours, or made ours: true, or nil, err, retryable.
local function ensure_hook(client)
  local url = settings.hook_url
  local hook, err = client:active_webhook()
  local id
  if hook then
    local active = type(hook.hookParameters) == "table" and hook.hookParameters.url
    if active ~= url then
      -- QIWI keeps one hook per wallet: replacing someone's is not ours to do
      return nil, "another webhook is active for the wallet (" .. tostring(active) .. ", hook "
        .. tostring(hook.hookId) .. "): delete it (client:delete_webhook) or unset SHOP_HOOK_URL", false
    end
    id = hook.hookId
  elseif err.retryable then
    return nil, err, true
  else
    -- The docs do not say how QIWI answers when no hook is active (the
    -- fake: 404): any refusal that is not a fault is taken for none.
    local made, rerr = client:register_webhook(url, "IN")
    if not made then return nil, rerr, rerr.retryable end
    id = made.hookId
  end
  local key, kerr = client:webhook_key(id)
  if not key then return nil, kerr, kerr.retryable end
  local ok, derr = ngx.shared[settings.qiwi_dict]:safe_set(KEY, key.key)
  if not ok then return nil, "cannot keep the hook's key: " .. tostring(derr), true end
  -- the key is a secret: never logged
  ngx.log(SUCCESS, "shop: QIWI posts incoming payments to ", url, " (hook ", tostring(id), ")")
  return true
end

local function register(premature, client, failures)
  if premature then return end
  local ok, err, retry = ensure_hook(client)
  if ok then return end
  local wait = math.min(5 * 2 ^ failures, 300)
  ngx.log(ngx.ERR, "shop: cannot set up the webhook ", settings.hook_url, ": ", tostring(err),
    retry and string.format("; trying again in %d s", wait) or "; not retried",
    " (payments still come by polling)")
  if retry then
    local tok, terr = ngx.timer.at(wait, register, client, failures + 1)
    if not tok then ngx.log(ngx.ERR, "shop: cannot retry the webhook set-up: ", terr) end
  end
end

-- From init_worker_by_lua: this worker's client, watcher and receiver. The
-- watcher runs in every worker; its lease in the store lets one poll.
function _M.start()
  local s = _M.settings()
  local store = assert(qiwi.store.shdict(s.qiwi_dict))
  local client, err = qiwi.new {
    token = s.token, wallet = s.wallet, base_url = s.base_url, allow_http = s.allow_http,
    timeout = s.timeout, store = store,
  }
  if not client then
    ngx.log(ngx.ERR, "shop: no QIWI client: ", tostring(err))
    return
  end
  local werr
  watcher, werr = client:watch {
    interval = s.watch_interval, since = s.since, store = store, name = STREAM,
    on_payment = payments.on_payment,
  }
  if watcher then
    local _
    _, werr = watcher:start()
  end
  if werr then ngx.log(ngx.ERR, "shop: the watcher does not run: ", tostring(werr)) end
  receiver = assert(qiwi.webhook.handler {
    key = webhook_key, store = store, name = STREAM, on_payment = payments.on_payment,
  })
  local id = ngx.worker.id()
  if s.hook_url and (id == nil or id == 0) then
    local ok, terr = ngx.timer.at(0, register, client, 0)
    if not ok then ngx.log(ngx.ERR, "shop: cannot set up the webhook: ", terr) end
  end
  if id == nil or id == 0 then
    ngx.log(SUCCESS, "shop: ready; watching the wallet ending in ", s.wallet:sub(-4), " every ", s.watch_interval,
      " s; serving POST /orders, GET /orders/<id>, POST /qiwi/webhook")
  end
end

-- POST /qiwi/webhook: QIWI's notifications, into the event stream.
function _M.webhook()
  if not receiver then
    ngx.status = 503
    ngx.say("the shop has no QIWI client (see the error log)")
    return ngx.exit(ngx.HTTP_OK)
  end
  return receiver()
end

return _M
