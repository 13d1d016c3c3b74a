---@meta
--- qiwi.webhook: QIWI's webhook notifications (LuaLS definitions).
-- @module qiwi.webhook

---@class qiwi.webhook
qiwi.webhook = {}

--- Verifies a notification: signs the fields named in payment.signFields
-- with their exact text in raw_body, compares in constant time.
---@param raw_body string the request body as received
---@param key_base64 string the hook's key (client:webhook_key)
---@return table|nil notification the decoded notification
---@return qiwi.Error|nil err
function qiwi.webhook.verify(raw_body, key_base64) end

--- A content handler for content_by_lua* (build it once per worker); it
-- de-duplicates on what is signed (payment.txnId with the type).
-- With on_payment instead of on_notification it is one end of the event
-- stream shared with client:watch on the same store and name.
---@param opts qiwi.WebhookHandlerOptions
---@return function|nil handler
---@return qiwi.Error|nil err kind "argument" for a bad option (no message quotes the key)
function qiwi.webhook.handler(opts) end

---@class qiwi.WebhookHandlerOptions
---@field key string|fun(): string the hook's base64 key, or a function giving it
---@field on_notification? fun(note: table) the verified notification (give this or on_payment)
---@field on_payment? fun(payment: table, source: "webhook"): boolean|nil the history item's shape, once per store, wallet and name
---@field operation? "IN"|"OUT"|"QIWI_CARD"|"ALL" with on_payment: which payments (default "IN")
---@field statuses? string[] with on_payment: which statuses (default {"SUCCESS"})
---@field store? table a qiwi.store shared with other receivers and watchers
---@field dict? string|table a lua_shared_dict (on_notification only)
---@field name? string keeps streams apart in one store ("default")
---@field ttl? number seconds a notification (or delivery) is remembered
---@field claim? number with on_payment: seconds a delivery in progress is held (120)
---@field memory? integer notifications remembered without dict or store (10000)

--- Inside nginx: the request body, from memory or from the file nginx
-- spilled it to, at most max + 1 bytes of it (a longer body is refused by
-- its length).
---@param max? integer the cap in bytes (64 KiB)
---@return string|nil body nil when there is none
function qiwi.webhook.read_body(max) end
