-- The example shop's QIWI settings and its client, one per nginx worker.
--
-- configure() runs once, from init_by_lua (nginx.conf); the client is made on
-- first use inside a request, so each worker forked from the master gets its
-- own. A client is safe to share between the requests a worker serves at the
-- same time: its transport keeps no per-request state, and connections go
-- back to the worker's keep-alive pool.
local qiwi = require "qiwi"

local _M = {}

local settings
local client

-- s: token, wallet, base_url, resolve, timeout, connect_timeout, retries (the
-- options of qiwi.new), plus webhook_key (base64, from
-- client:webhook_key(hook_id)), webhook_dict (lua_shared_dict name) and
-- on_notification (fn(note), replaces the example's own).
function _M.configure(s)
  assert(type(s) == "table", "shop.qiwi.configure takes a table")
  assert(type(s.token) == "string" and s.token ~= "", "shop.qiwi: token is required (set QIWI_TOKEN)")
  settings = s
  client = nil
end

function _M.settings()
  return assert(settings, "shop.qiwi.configure was not called from init_by_lua")
end

function _M.client()
  if client then return client end
  local s = _M.settings()
  local c, err = qiwi.new {
    token = s.token, wallet = s.wallet, base_url = s.base_url, resolve = s.resolve,
    timeout = s.timeout, connect_timeout = s.connect_timeout, retries = s.retries,
  }
  if not c then return nil, err end
  client = c
  return c
end

-- What the example does with a notification: remember the payment in the
-- qiwi_payments dict, where the rest of the shop would look orders up.
-- configure{ on_notification = … } replaces it.
function _M.record_payment(note)
  local p = note.payment
  local payments = ngx.shared.qiwi_payments
  if payments and type(p) == "table" then
    local sum = type(p.sum) == "table" and p.sum or {}
    payments:set(tostring(p.txnId), string.format("%s %s %s %s", tostring(p.type), tostring(p.status),
      tostring(sum.amount), tostring(sum.currency)))
  end
  ngx.log(ngx.NOTICE, "qiwi payment ", tostring(p and p.txnId), " ", tostring(p and p.status))
end

return _M
