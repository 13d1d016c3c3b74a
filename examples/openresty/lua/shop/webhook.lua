-- POST /qiwi/webhook: QIWI's payment notifications. The handler answers at
-- once (200, or 403 for a bad signature, 400 for anything that is not a
-- notification) and then calls on_notification once per payment and phase
-- (the signed txnId and type; a repeated messageId counts as a repeat too):
-- what was seen is remembered in a lua_shared_dict, which all workers share.
local webhook = require "qiwi.webhook"
local shop = require "shop.qiwi"

-- Built on the first notification a worker gets, after configure() ran.
local handler

return function()
  if not handler then
    local s = shop.settings()
    assert(s.webhook_key, "shop.qiwi: webhook_key is not configured (set QIWI_WEBHOOK_KEY)")
    handler = assert(webhook.handler {
      key = s.webhook_key,
      dict = s.webhook_dict or "qiwi_webhooks",
      on_notification = s.on_notification or shop.record_payment,
    })
  end
  return handler()
end
