-- QIWI's payment notifications in OpenResty/nginx: POST /qiwi/webhook.
--
--   location = /qiwi/webhook { content_by_lua_block { require("receiver")() } }
--
-- qiwi.webhook.handler answers at once (200; 403 for a bad signature, 400
-- for what is not a notification, 405 for anything but POST) and then calls
-- on_notification once per signed txnId and type: QIWI sends a
-- notification again when it got no answer in time, and may send one
-- twice. What was handled is remembered in the lua_shared_dict
-- qiwi_webhooks, which every worker shares.
--
-- The key (base64, from client:webhook_key(hook_id)) comes from the
-- environment (nginx.conf: `env QIWI_WEBHOOK_KEY;`), not from a file in the
-- repository. RECEIVER_LOG names a file that gets one line a payment (the
-- demo of run.lua reads it); a real shop marks the order paid instead,
-- after checking the payment's status with client:transaction(txnId, type):
-- `status` is not among the signed fields.
local webhook = require "qiwi.webhook"

local handler

local function on_notification(note)
  local p = note.payment
  local line = ("handled: txn %s %s %s %.2f %s\n"):format(tostring(p.txnId), tostring(p.type),
    tostring(p.status), p.sum.amount, tostring(p.sum.currency))
  local path = os.getenv("RECEIVER_LOG")
  local f = path and io.open(path, "a")
  if f then
    f:write(line)
    f:close()
  end
  ngx.log(ngx.NOTICE, "receiver: ", line)
end

return function()
  if not handler then
    local key = os.getenv("QIWI_WEBHOOK_KEY")
    if not key or key == "" then
      ngx.log(ngx.ERR, "receiver: QIWI_WEBHOOK_KEY is not set (and `env QIWI_WEBHOOK_KEY;` in nginx.conf)")
      return ngx.exit(503)
    end
    handler = assert(webhook.handler { key = key, dict = "qiwi_webhooks", on_notification = on_notification })
  end
  return handler()
end
