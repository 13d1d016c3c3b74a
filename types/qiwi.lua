---@meta
--- The `qiwi` module: the QIWI Wallet API for Lua (LuaLS definitions).
-- These files are read by editors (lua-language-server: completion, type
-- checks) and, rewritten by docs/luals_to_ldoc.lua, by `make doc` (LDoc):
-- one set of comments for both. Nothing here runs.
-- @module qiwi

---@class qiwi
---@field _VERSION string "qiwi 0.1.0"
---@field null lightuserdata JSON null, as decoded and to encode
---@field array_mt table the metatable of decoded arrays: an empty one encodes as []
---@field error table the metatable of every error (`getmetatable(err) == qiwi.error`)
---@field fake qiwi.fake the in-process fake QIWI (loaded on first use)
---@field webhook qiwi.webhook webhook verification and the nginx receiver
---@field store qiwi.store shared state: memory, file, shdict, redis
---@field json qiwi.json the C core's JSON decoder and encoder
---@field p2p qiwi.p2p P2P invoices on api.qiwi.com (loaded on first use)
local qiwi = {}

--- The error every failing call returns as its second value.
-- `tostring(err)` is one line, control characters escaped; no field holds
-- the token, a P2P key or a proxy password.
---@class qiwi.Error
---@field kind "argument"|"network"|"timeout"|"tls"|"http"|"api"|"decode"|"store" what failed
---@field message string one line, English
---@field status integer|nil the HTTP status, when there was an answer
---@field code string|integer|nil QIWI's errorCode, or libcurl's "CURLE_..." name
---@field user_message string|nil QIWI's text for end users (often Russian)
---@field description string|nil QIWI's description, where given
---@field trace_id string|nil QIWI's traceId, where given
---@field service string|nil QIWI's serviceName, where given
---@field retryable boolean whether the same call may succeed later
---@field retry_after number|nil seconds, from a Retry-After header
---@field method string|nil the HTTP method of the call
---@field path string|nil the path of the call
---@field payment table|nil the earlier payment a reused id found (kind "api")

--- The options of `qiwi.new` (docs/REFERENCE.md has what each refuses).
---@class qiwi.NewOptions
---@field token string the API token, at least 8 characters
---@field wallet? string|integer the person id; learned from profile() when absent
---@field base_url? string "https://edge.qiwi.com"
---@field allow_http? boolean an http:// base_url for a loopback host (tests)
---@field timeout? number seconds for a whole call, retries included (30)
---@field connect_timeout? number seconds (10)
---@field ca_file? string a CA bundle; verification is always on
---@field retries? integer 0..10 (2)
---@field user_agent? string "lua-qiwi/<version>"
---@field transport? table an object with a request method, or a qiwi.Fake
---@field p2p_secret_key? string authorises bills/pay_bill/reject_bill
---@field resolve? table<string, string> host name -> IP address to connect to
---@field proxy? string "http://[user:password@]host:port", https://, socks5://, socks5h://
---@field max_body? integer the largest answer taken, in bytes
---@field history_rate? table|false {limit = 100, window = 60}, or false
---@field store? qiwi.Store shared state (the history count, fresh ids)

--- Makes a client. Nothing is sent.
---@param opts qiwi.NewOptions the options
---@return qiwi.Client|nil client the client
---@return qiwi.Error|nil err kind "argument" for a bad option
function qiwi.new(opts) end

--- The URL of QIWI's payment form, prefilled. No request.
---@param opts table {provider = 99, account =, amount =, comment =, blocked =, account_type =}
---@return string|nil url the form's URL
---@return qiwi.Error|nil err kind "argument"
function qiwi.payment_form_url(opts) end

--- The C core's JSON: integers exact over int64, `qiwi.null`, arrays with `qiwi.array_mt`.
---@class qiwi.json
qiwi.json = {}

--- Decodes JSON text.
---@param s string JSON text
---@return any|nil value the value (nil only with err)
---@return string|nil err why the text is not JSON
function qiwi.json.decode(s) end

--- Encodes a value as JSON, the encoder of request bodies.
---@param value any a table, string, number, boolean or qiwi.null
---@return string json the text
function qiwi.json.encode(value) end

return qiwi
