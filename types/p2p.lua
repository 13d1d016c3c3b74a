---@meta
--- qiwi.p2p: QIWI's P2P invoices on api.qiwi.com (LuaLS definitions).
-- Same conventions as the wallet client: `result, err`, argument errors
-- before sending, amounts exact.
-- @module qiwi.p2p

---@class qiwi.p2p
qiwi.p2p = {}

--- Makes a P2P client.
---@param opts table {secret_key =, public_key =, base_url = "https://api.qiwi.com", timeout =, ca_file =, transport =, resolve =}
---@return qiwi.P2P|nil p2p
---@return qiwi.Error|nil err kind "argument"
function qiwi.p2p.new(opts) end

--- The URL of QIWI's invoice form. No request.
---@param opts table {public_key =, bill_id =, amount =, comment =, success_url =, email =, phone =, account =, lifetime =, custom_fields =}
---@return string|nil url
---@return qiwi.Error|nil err
function qiwi.p2p.form_url(opts) end

--- A bill's payUrl with the parameters the docs allow on it.
---@param url string the bill's payUrl
---@param opts? table {pay_source = "qw"|"card"|"mobile", success_url =}
---@return string|nil url
---@return qiwi.Error|nil err
function qiwi.p2p.pay_url(url, opts) end

--- Verifies a notification: HMAC-SHA256 of currency|value|billId|siteId|status.
---@param raw_body string the request body as received
---@param signature_header string the X-Api-Signature-SHA256 header
---@param secret_key string the P2P SecretKey
---@return table|nil notification
---@return qiwi.Error|nil err kind "argument" (bad signature) or "decode"
function qiwi.p2p.verify(raw_body, signature_header, secret_key) end

--- A content handler for content_by_lua* receiving bill notifications.
---@param opts table {secret_key =, on_bill =, store =, name =}
---@return function|nil handler
---@return qiwi.Error|nil err
function qiwi.p2p.handler(opts) end

--- Checks a bill id (at most 200 characters, no '/', '|' or control characters).
---@param v any the id
---@return string|nil bill_id
---@return string|nil why not
function qiwi.p2p.check_bill_id(v) end

--- A P2P client.
---@class qiwi.P2P
---@field public_key string|nil the PublicKey for form_url
local P2P = {}

--- Creates a bill [PUT /partner/bill/v1/bills/{billId}].
---@param opts table {bill_id =, amount =, currency = "RUB", expires =, comment =, customer =, custom_fields =}
---@return table|nil bill
---@return qiwi.Error|nil err
function P2P:create_bill(opts) end

--- A bill [GET /partner/bill/v1/bills/{billId}].
---@param bill_id string the bill
---@return table|nil bill
---@return qiwi.Error|nil err
function P2P:bill(bill_id) end

--- Rejects a bill [POST /partner/bill/v1/bills/{billId}/reject].
---@param bill_id string the bill
---@return table|nil bill
---@return qiwi.Error|nil err
function P2P:reject_bill(bill_id) end

--- qiwi.p2p.form_url with this client's public key unless given.
---@param opts table as qiwi.p2p.form_url
---@return string|nil url
---@return qiwi.Error|nil err
function P2P:form_url(opts) end

--- Closes the connections.
---@return nil
function P2P:close() end
