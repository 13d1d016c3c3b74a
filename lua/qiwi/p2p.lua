-- qiwi.p2p: QIWI's P2P invoices (api.qiwi.com; docs: p2p/p2p-payments_en/_ru).
--
--   local p2p = qiwi.p2p.new{ secret_key = "…", public_key = "…" }
--   local bill, err = p2p:create_bill{ amount = "1.00", expires = os.time() + 3600 }
--   p2p:bill(bill.billId); p2p:reject_bill(bill.billId)
--   qiwi.p2p.form_url{ public_key = "…", amount = 100, bill_id = "…" }   -- no request
--   qiwi.p2p.verify(raw_body, signature_header, secret_key)              -- a notification
--   qiwi.p2p.handler{ secret_key = "…", on_bill = fn, store = s }         -- nginx receiver
--
-- A P2P client is the wallet client (qiwi.client) with another base URL,
-- the secret key where the token goes, and the endpoint rows below: the
-- same option checks, transports (libcurl, cosockets, a fake), attempt
-- policy, answer decoding and errors, the secret scrubbed from all of them.
-- The secret key lives in the inner client's private record, never in a
-- table a user can dump.
local core = require "qiwi.core"
local args = require "qiwi.args"
local qerror = require "qiwi.error"
local events = require "qiwi.events"
local client_mod = require "qiwi.client"
local key_name = require("qiwi.options").key_name

local type, next, tostring, select, pcall, ipairs, rawget = type, next, tostring, select, pcall, ipairs, rawget
local format, find, gsub, concat = string.format, string.find, string.gsub, table.concat

local _M = { _VERSION = "qiwi.p2p " .. client_mod.VERSION, BASE_URL = "https://api.qiwi.com",
             FORM_URL = "https://oplata.qiwi.com/create" }

local P2P = {}
P2P.__index = P2P
_M.P2P = P2P

local function arg_error(message, method, path)
  return nil, qerror.argument(message, method, path)
end

-- Characters, not bytes: the docs' String(200)/String(255) limits hold for
-- Russian comments too, whose letters take two bytes each.
local function chars(s)
  return select(2, gsub(s, "[^\128-\191]", ""))
end

---------------------------------------------------------------------------
-- Argument checks (each returns the wire value, or nil and a reason, like
-- the checkers of qiwi.args; the rows below name them)

-- A bill id: the docs allow 200 characters (the Russian page: letters,
-- digits, '_' and '-'); API.md takes any text but '/' and control
-- characters. '|' is refused too: it separates the signed values of a
-- notification, so a bill id holding one could be relabelled as another
-- bill id and site; and an id of dots only would be a path segment "."
-- or "..", which a server resolves to another path.
local function bill_id(v)
  if type(v) == "number" then
    local d, err = args.digits(v)
    if not d then return nil, err end
    v = d
  end
  local s, err = args.string(v)
  if not s then return nil, err end
  if chars(s) > 200 then return nil, "must be at most 200 characters" end
  if find(s, "[/\\|]") then return nil, "must not contain '/', '\\' or '|'" end
  if find(s, "^%.+$") then return nil, "must not be only dots" end
  return s
end
_M.check_bill_id = bill_id

-- Free text of at most spec.max characters.
local function text(v, spec)
  local s, err = args.string(v, { empty = spec and spec.empty })
  if not s then return nil, err end
  if spec and spec.max and chars(s) > spec.max then return nil, format("must be at most %d characters", spec.max) end
  return s
end

local PAY_SOURCES = { qw = true, card = true, mobile = true }

-- paySourcesFilter: "qw,card" or { "qw", "card" }. The English page lists
-- qw and card, the Russian one mobile as well: all three are taken.
local function pay_sources(v)
  local list = {}
  if type(v) == "string" then
    for item in (v .. ","):gmatch("([^,]*),") do list[#list + 1] = item:match("^%s*(.-)%s*$") end
  elseif type(v) == "table" then
    for i = 1, #v do list[i] = v[i] end
  else
    return nil, "must be a list of qw, card, mobile"
  end
  if #list == 0 then return nil, "must be a list of qw, card, mobile" end
  local seen = {}
  for i, item in ipairs(list) do
    if not PAY_SOURCES[item] then return nil, "must be a list of qw, card, mobile" end
    if seen[item] then return nil, "names " .. item .. " twice" end
    seen[item] = true
    list[i] = item
  end
  return concat(list, ",")
end

-- Lua name -> wire name of the documented custom fields; any other name is
-- the caller's own field (the Russian page: "you may pass your own fields
-- here, SteamId for one") and goes as it is.
local CUSTOM = { pay_sources_filter = "paySourcesFilter", theme_code = "themeCode" }
local CUSTOM_WIRE = { paySourcesFilter = "pay_sources_filter", themeCode = "theme_code" }

-- customFields: a table of strings -> a new table under the wire names.
local function custom_fields(v)
  if type(v) ~= "table" then return nil, "must be a table of strings" end
  local out, n = {}, 0
  for k, val in next, v do
    if type(k) ~= "string" or not find(k, "^[%a_][%w_]*$") or #k > 64 then
      return nil, "keys must be field names (letters, digits, '_', at most 64)"
    end
    local wire = CUSTOM[k] or k
    if out[wire] ~= nil then
      return nil, "gives " .. wire .. " twice (as " .. (CUSTOM_WIRE[wire] or wire) .. " and " .. wire .. ")"
    end
    local s, err
    if wire == "paySourcesFilter" then
      s, err = pay_sources(val)
    else
      if type(val) == "number" and args.is_integer(val) then val = format("%d", val) end
      s, err = text(val, { max = 255, empty = true })
    end
    if not s then return nil, k .. " " .. err end
    out[wire] = s
    n = n + 1
    if n > 50 then return nil, "must have at most 50 fields" end
  end
  return out
end

local CUSTOMER = { phone = true, email = true, account = true }

-- customer: { phone=, email=, account= } -> a new table (the phone in
-- international format without '+', as the docs' example writes it).
local function customer(v)
  if type(v) ~= "table" then return nil, "must be a table {phone=, email=, account=}" end
  local out = {}
  for k, val in next, v do
    if not CUSTOMER[k] then return nil, "has an unknown field '" .. key_name(k) .. "' (phone, email, account)" end
    local s, err
    if k == "phone" then
      s, err = args.phone(val)
    elseif k == "email" then
      s, err = args.email(val)
    else
      if type(val) == "number" and args.is_integer(val) then val = format("%d", val) end
      s, err = text(val, { max = 200 })
    end
    if not s then return nil, k .. " " .. err end
    out[k] = s
  end
  return out
end

local CURRENCIES = { values = { "RUB", "KZT" }, case_insensitive = true, numbers = { [643] = "RUB", [398] = "KZT" } }

-- What an absent customer or customFields sends: an empty object, as the
-- docs' personalisation example does ("customer": {}).
local NONE = {}

---------------------------------------------------------------------------
-- The rows (see qiwi.endpoints for the fields)

local BILL = "/partner/bill/v1/bills/{bill_id}"
local ROWS = {}
_M.rows = ROWS

-- idempotent: QIWI answers a PUT of a bill id it has with that bill, so a
-- retry (same id, same body: both are fixed before the first attempt)
-- never makes a second bill.
ROWS.create_bill = {
  method = "PUT", path = BILL, args = { "opts" }, idempotent = true,
  params = {
    { "bill_id", "bill_id", "path", bill_id, generate = "uuid" },
    -- a string with two decimals, as the docs' request example has it
    { "amount", "amount.value", "body", "amount", required = true, as = "string" },
    { "currency", "amount.currency", "body", "enum", default = "RUB", spec = CURRENCIES },
    { "expires", "expirationDateTime", "body", "date", required = true },
    { "comment", "comment", "body", text, spec = { max = 255, empty = true } },
    { "customer", "customer", "body", customer, default = NONE },
    { "custom_fields", "customFields", "body", custom_fields, default = NONE },
  },
}

ROWS.bill = {
  method = "GET", path = BILL, args = { "bill_id" },
  params = { { "bill_id", "bill_id", "path", bill_id, required = true } },
}

-- Rejecting a bill twice changes nothing, so it may be retried; the docs
-- send it with a JSON content type and an empty body (empty_body).
ROWS.reject_bill = {
  method = "POST", path = BILL .. "/reject", args = { "bill_id" }, idempotent = true, empty_body = true,
  params = { { "bill_id", "bill_id", "path", bill_id, required = true } },
}

---------------------------------------------------------------------------
-- The client

-- The options qiwi.p2p.new passes on to the wallet client's checks; the
-- wallet's own (token, wallet, p2p_secret_key, history_rate, store) are
-- not P2P options.
local PASSED = {
  base_url = true, timeout = true, connect_timeout = true, ca_file = true, retries = true,
  user_agent = true, transport = true, resolve = true, allow_http = true, max_body = true, proxy = true,
}

local MIN_SECRET = 8

local function key_text(v, what)
  if type(v) ~= "string" or #v < MIN_SECRET or find(v, "[%z\1-\32\127]") then
    return nil, format("%s must be a string of at least %d characters without spaces or control characters",
                       what, MIN_SECRET)
  end
  if #v > 4096 then return nil, what .. " must be at most 4096 bytes" end
  return v
end

-- qiwi.p2p.new{ secret_key=, public_key=, base_url="https://api.qiwi.com",
--   timeout=, connect_timeout=, ca_file=, retries=, user_agent=, transport=,
--   resolve=, allow_http=, max_body=, clock= } -> client, or nil, err
-- clock: a function giving Unix seconds (os.time), against which expires is
-- checked (tests with a fake's clock).
function _M.new(opts)
  if type(opts) ~= "table" then return arg_error("options must be a table") end
  local o = { history_rate = false }
  local secret, public, clock
  for k, v in next, opts do
    if k == "secret_key" then
      secret = v
    elseif k == "public_key" then
      public = v
    elseif k == "clock" then
      clock = v
    elseif PASSED[k] then
      o[k] = v
    else
      return arg_error("unknown option '" .. key_name(k) .. "'")
    end
  end
  -- checked here, so that no message of the wallet client's names a token
  local ok, why = key_text(secret, "secret_key")
  if not ok then return arg_error(secret == nil and "secret_key is required (a string)" or why) end
  if public ~= nil then
    ok, why = key_text(public, "public_key")
    if not ok then return arg_error(why) end
  end
  if clock ~= nil and type(clock) ~= "function" then return arg_error("clock must be a function") end
  o.token = secret
  o.base_url = o.base_url or _M.BASE_URL
  local c, err = client_mod.new(o)
  if not c then return nil, err end
  return setmetatable({ base_url = c.base_url, public_key = public, _client = c, _clock = clock or os.time }, P2P)
end

function P2P:close()
  self._client:close()
end

-- Sends the prepared request of a row with the wallet client's attempts
-- and answer decoding: the bill, or nil, err.
local function send(c, row, path, query, body)
  if row.empty_body then body = "" end
  local res, err = c:_send(row, path, query, body)
  if res == nil then return nil, err end
  if type(res) ~= "table" then
    return nil, c:_error { kind = "decode", method = row.method, path = path, retryable = false,
                           message = "expected the bill as a JSON object, got an empty answer" }
  end
  return res
end

-- A call of a row: its wire form from the wallet client's builder, sent.
local function call(self, name, ...)
  local c = self._client
  local row = ROWS[name]
  local path, query, body = c:_prepare(row, name, ...)
  if not path then return nil, query end
  return send(c, row, path, query, body)
end

local function kopecks_of(v)
  if type(v) ~= "number" and type(v) ~= "string" then return nil end
  return (args.kopecks(v))
end

-- What differs between the bill asked for (body: the JSON sent; the bill
-- id as the last segment of path) and the one answered, or nil.
local function mismatch(path, body, got)
  local sent = core.json_decode(body)
  local want_id = path:match("([^/]+)$")
  if type(got.billId) ~= "string" or args.escape(got.billId) ~= want_id then
    return "another bill id: " .. tostring(got.billId)
  end
  local a = type(got.amount) == "table" and got.amount or {}
  local k, want = kopecks_of(a.value), args.kopecks(sent.amount.value)
  if k ~= want or a.currency ~= sent.amount.currency then
    return format("amount %s %s, asked %s %s", tostring(a.value), tostring(a.currency),
                  sent.amount.value, sent.amount.currency)
  end
  return nil
end

-- p2p:create_bill{ bill_id=, amount=, currency="RUB", expires=, comment=,
--   customer={phone=, email=, account=}, custom_fields={pay_sources_filter=,
--   theme_code=, …} } -> the bill, or nil, err.
-- QIWI answers a bill id it knows with that bill, whatever the new request
-- says: an answer for another amount or currency is the earlier bill, and
-- comes back as an `api` error with code "id_reused" and the bill in
-- err.bill (nothing new was created).
function P2P:create_bill(...)
  local c = self._client
  local row = ROWS.create_bill
  local path, query, body = c:_prepare(row, "create_bill", ...)
  if not path then return nil, query end
  -- checked after the builder's checks, so expires is a valid date here
  local _, _, secs = args.date(rawget((...), "expires"))
  local now = self._clock()
  if type(now) ~= "number" then
    return nil, c:_error { kind = "argument", retryable = false, method = "PUT", path = path,
                           message = "clock gave no number" }
  end
  if secs <= now then
    return nil, c:_error { kind = "argument", retryable = false, method = "PUT", path = path,
                           message = "expires must be in the future (QIWI refuses a bill that is due already)" }
  end
  local res, err = send(c, row, path, query, body)
  if res == nil then return nil, err end
  local diff = mismatch(path, body, res)
  if diff then
    return nil, c:_error { kind = "api", code = "id_reused", method = "PUT", path = path, retryable = false,
      bill = res, message = "the bill id was used before for another bill: QIWI answered that one ("
        .. diff .. "); nothing new was created" }
  end
  return res
end

-- p2p:bill(bill_id) -> the bill (status.value WAITING, PAID, REJECTED or
-- EXPIRED), or nil, err.
function P2P:bill(...)
  return call(self, "bill", ...)
end

-- p2p:reject_bill(bill_id) -> the bill, or nil, err. A bill that was paid
-- or had expired keeps its status: read status.value.
function P2P:reject_bill(...)
  return call(self, "reject_bill", ...)
end

---------------------------------------------------------------------------
-- The payment form link (no request)

local FORM_KNOWN = {
  public_key = true, bill_id = true, amount = true, phone = true, email = true, account = true,
  comment = true, custom_fields = true, lifetime = true, success_url = true,
}

local MSK = 3 * 3600

-- successUrl: an http(s) URL, or the bare host and path the docs' own
-- example gives ("google.com"); no other scheme (javascript:, data:).
local function site_url(v)
  local s, err = args.string(v, { max = 2000 })
  if not s then return nil, err end
  if find(s, "%s") then return nil, "must not contain spaces" end
  if find(s, "^%a[%w+.-]*:") then
    if not find(s, "^[hH][tT][tT][pP][sS]?://[%w][%w%.%-]*") then return nil, "must be an http(s) URL" end
  elseif not find(s, "^[%w][%w%-]*%.[%w%.%-]*%w") then
    return nil, "must be an http(s) URL or a host name"
  end
  return s
end

-- lifetime, the form's "YYYY-MM-DDThhmm" in Moscow time: from os.time()
-- seconds, a date with a zone offset, or that form itself.
local function lifetime(v)
  if type(v) == "string" and find(v, "^%d%d%d%d%-%d%d%-%d%dT%d%d%d%d$") then
    local y, mo, d, h, mi = v:match("^(%d+)%-(%d+)%-(%d+)T(%d%d)(%d%d)$")
    local ok = args.date(format("%s-%s-%sT%s:%s:00+03:00", y, mo, d, h, mi))
    if not ok then return nil, "is not a valid date" end
    return v
  end
  local t, err, secs = args.date(v)
  if not t then return nil, err .. " (or YYYY-MM-DDThhmm)" end
  return os.date("!%Y-%m-%dT%H%M", secs + MSK)
end

-- Custom fields in the form's order: the documented two, then the
-- caller's own by name, so that one call always gives one link.
local function custom_order(cf)
  local names = {}
  for k in next, cf do
    if not CUSTOM_WIRE[k] then names[#names + 1] = k end
  end
  table.sort(names)
  if cf.themeCode then table.insert(names, 1, "themeCode") end
  if cf.paySourcesFilter then table.insert(names, 1, "paySourcesFilter") end
  return names
end

-- qiwi.p2p.form_url{ public_key=, bill_id=, amount=, phone=, email=,
--   account=, comment=, custom_fields=, lifetime=, success_url= } -> the
-- oplata.qiwi.com/create link, or nil, err. Every name and value is
-- percent-encoded (customFields[themeCode] as customFields%5BthemeCode%5D,
-- as the docs' personalisation example writes it). Rubles only: the docs
-- allow tenge bills through the API alone.
function _M.form_url(o)
  local where = _M.FORM_URL
  if type(o) ~= "table" then return arg_error("options must be a table", "GET", where) end
  local copy = {}
  for k, v in next, o do
    if not FORM_KNOWN[k] then return arg_error("unknown option '" .. key_name(k) .. "'", "GET", where) end
    copy[k] = v
  end
  o = copy
  local e = args.escape
  local q = {}
  local function add(name, value) q[#q + 1] = e(name) .. "=" .. e(value) end
  local function check(name, fn, spec)
    if o[name] == nil then return true end
    local v, err = fn(o[name], spec)
    if v == nil then return nil, name .. " " .. err end
    return v
  end
  local pk, err = key_text(o.public_key, "public_key")
  if not pk then return arg_error(o.public_key == nil and "public_key is required" or err, "GET", where) end
  add("publicKey", pk)
  local steps = {
    { "bill_id", "billId", bill_id }, { "amount", "amount", args.amount }, { "phone", "phone", args.phone },
    { "email", "email", args.email }, { "account", "account", text, { max = 200 } },
    { "comment", "comment", text, { max = 255 } },
  }
  for _, s in ipairs(steps) do
    local v, why = check(s[1], s[3], s[4])
    if not v then return arg_error(why, "GET", where) end
    if v ~= true then add(s[2], v) end
  end
  local cf, why = check("custom_fields", custom_fields)
  if not cf then return arg_error(why, "GET", where) end
  if cf ~= true then
    for _, name in ipairs(custom_order(cf)) do add("customFields[" .. name .. "]", cf[name]) end
  end
  local lt
  lt, why = check("lifetime", lifetime)
  if not lt then return arg_error(why, "GET", where) end
  if lt ~= true then add("lifetime", lt) end
  local su
  su, why = check("success_url", site_url)
  if not su then return arg_error(why, "GET", where) end
  if su ~= true then add("successUrl", su) end
  return where .. "?" .. concat(q, "&")
end

-- p2p:form_url{…}: the same, with the client's public key unless given.
function P2P:form_url(o)
  if type(o) == "table" and o.public_key == nil and self.public_key then
    local copy = { public_key = self.public_key }
    for k, v in next, o do copy[k] = v end
    o = copy
  end
  return _M.form_url(o)
end

local PAY_SOURCE = { values = { "qw", "card", "mobile" } }

-- qiwi.p2p.pay_url(bill.payUrl, { pay_source = "qw"|"card"|"mobile",
-- success_url = }) -> the bill's form link with the parameters the docs
-- allow on it ("Invoice payment form"), or nil, err.
function _M.pay_url(url, o)
  local where = "payUrl"
  local base, err = args.url(url, { max = 2000 })
  if not base then return arg_error("the bill's payUrl " .. err, "GET", where) end
  if o == nil then return base end
  if type(o) ~= "table" then return arg_error("options must be a table", "GET", where) end
  local q = {}
  for k in next, o do
    if k ~= "pay_source" and k ~= "success_url" then
      return arg_error("unknown option '" .. key_name(k) .. "'", "GET", where)
    end
  end
  if o.pay_source ~= nil then
    local v, why = args.enum(o.pay_source, PAY_SOURCE)
    if not v then return arg_error("pay_source " .. why, "GET", where) end
    q[#q + 1] = "paySource=" .. v
  end
  if o.success_url ~= nil then
    local v, why = site_url(o.success_url)
    if not v then return arg_error("success_url " .. why, "GET", where) end
    q[#q + 1] = "successUrl=" .. args.escape(v)
  end
  if #q == 0 then return base end
  return base .. (find(base, "?", 1, true) and "&" or "?") .. concat(q, "&")
end

---------------------------------------------------------------------------
-- Notifications

-- A real notification is about 1 KB; the cap bounds what an unsigned body
-- costs before its signature is checked.
local MAX_BODY = 64 * 1024
_M.MAX_BODY = MAX_BODY

-- code tells a receiver what to answer: "signature" (403) or "format" (400).
local function refuse(kind, code, message)
  return nil, qerror.new { kind = kind, code = code, message = message, retryable = false }
end

local function not_notification(message) return refuse("decode", "format", message) end

-- A signed string of the notification; max bounds it (in bytes), so that
-- what the receiver remembers it by stays a valid store key.
local function string_field(t, name, path, max)
  local v = type(t) == "table" and t[name]
  if type(v) ~= "string" or v == "" then return nil, path .. " is not a non-empty string" end
  if #v > max then return nil, path .. " is longer than " .. max .. " bytes" end
  if find(v, "|", 1, true) then return nil, path .. " contains '|', the separator of the signed text" end
  return v
end

-- qiwi.p2p.verify(raw_body, signature, secret_key) -> the notification
-- ({ bill = {…}, version = "1" }), or nil, err: kind "argument" with code
-- "signature" (no signature, or one that does not match) or kind "decode"
-- with code "format" (not a notification). Signed are
-- amount.currency|amount.value|billId|siteId|status.value, value written
-- with two decimals whatever the body holds (the docs' worked example signs
-- "1.00" for value 1); the signature is hex in either case, compared in
-- constant time. Nothing else in the notification is signed.
function _M.verify(raw, signature, secret_key)
  if type(secret_key) ~= "string" or secret_key == "" then
    return refuse("argument", "key", "secret_key must be a non-empty string")
  end
  if type(raw) ~= "string" or raw == "" then return not_notification("notification body must be a non-empty string") end
  if #raw > MAX_BODY then return not_notification("notification body is longer than " .. MAX_BODY .. " bytes") end
  if type(signature) ~= "string" then
    return refuse("argument", "signature", "no X-Api-Signature-SHA256 signature")
  end
  if #signature ~= 64 or find(signature, "%X") then
    return refuse("argument", "signature", "the signature is not 64 hex digits")
  end
  local note = core.json_decode(raw)
  local b = type(note) == "table" and note.bill
  if type(b) ~= "table" then return not_notification("not a P2P notification: no bill object") end
  local parts = {}
  local why
  parts[1], why = string_field(b.amount, "currency", "bill.amount.currency", 3)
  if not parts[1] then return not_notification(why) end
  local value = type(b.amount) == "table" and b.amount.value
  parts[2] = (type(value) == "string" or type(value) == "number") and args.amount(value)
  if not parts[2] then return not_notification("bill.amount.value is not an amount of at most two decimals") end
  parts[3], why = string_field(b, "billId", "bill.billId", 800)
  if not parts[3] then return not_notification(why) end
  parts[4], why = string_field(b, "siteId", "bill.siteId", 100)
  if not parts[4] then return not_notification(why) end
  parts[5], why = string_field(b.status, "value", "bill.status.value", 32)
  if not parts[5] then return not_notification(why) end
  local mac = core.hmac_sha256_hex(secret_key, concat(parts, "|"))
  if not core.constant_time_equal(mac, signature:lower()) then
    return refuse("argument", "signature", "the notification's signature does not match")
  end
  return note
end

-- The request body inside nginx (see qiwi.webhook.read_body), capped.
local function read_body()
  return require("qiwi.webhook").read_body(MAX_BODY)
end

local function answer(status, content_type, text_body)
  ngx.status = status
  ngx.header["Content-Type"] = content_type
  ngx.header["Content-Length"] = #text_body
  ngx.print(text_body)
  return ngx.exit(ngx.HTTP_OK)
end

-- What QIWI wants back: 200 with {"error":"0"}; anything else is a
-- temporary failure that QIWI repeats for 24 hours.
local ACK = '{"error":"0"}'

-- qiwi.p2p.handler{ secret_key = "…" or function() -> key, on_bill = fn(bill, note),
--   store = a qiwi.store (default: the Lua state's memory store, one per
--   nginx worker; qiwi.store.shdict or .redis for all workers and hosts),
--   name = "default" (≤ 64 bytes; keeps receivers apart in one store), ttl = 259200 }
--   -> a function for content_by_lua*, or nil, err for bad options.
-- A genuine notification is handed to on_bill once per store, name, bill
-- and status (the signed billId, siteId and status.value): a repeat gets
-- 200 without calling it. on_bill runs before the answer, so that one that
-- raises or returns false is answered 500 and forgotten, and QIWI sends it
-- again; QIWI allows that time. Forged (403), malformed (400) and oversized
-- (413) bodies, and methods other than POST (405), never reach on_bill; a
-- store that cannot be reached is 503.
function _M.handler(opts)
  if type(opts) ~= "table" then return arg_error("p2p.handler takes an options table") end
  -- taken by value: a table whose __index raises cannot make this raise
  local given = opts
  opts = {}
  for k, v in next, given do
    if k ~= "secret_key" and k ~= "on_bill" and k ~= "store" and k ~= "name" and k ~= "ttl" then
      return arg_error("p2p.handler: unknown option '" .. key_name(k) .. "'")
    end
    opts[k] = v
  end
  local key = opts.secret_key
  if type(key) ~= "function" and not key_text(key, "secret_key") then
    return arg_error("p2p.handler: secret_key must be the secret key (a string) or a function returning it")
  end
  local fn = opts.on_bill
  if type(fn) ~= "function" then return arg_error("p2p.handler: on_bill must be a function") end
  local stores = require "qiwi.store"
  local store = opts.store
  if store ~= nil and not stores.check(store) then return arg_error("p2p.handler: store must be a qiwi.store") end
  store = store or stores.default()
  local name = opts.name or "default"
  -- with the longest signed values the store key stays under 1024 bytes
  if type(name) ~= "string" or name == "" or #name > 64 or args.has_control(name) then
    return arg_error("p2p.handler: name must be a non-empty string of at most 64 bytes")
  end
  -- QIWI repeats for 24 hours: the memory of what was handled outlasts that
  local ttl = opts.ttl or 3 * 86400
  if type(ttl) ~= "number" or not (ttl > 0 and ttl <= 365 * 86400) then
    return arg_error("p2p.handler: ttl must be a number of seconds (at most a year)")
  end
  local prefix = "p2p:" .. name .. ":"
  local ledger = { ttl = ttl }

  return function()
    if ngx.req.get_method() ~= "POST" then
      ngx.header["Allow"] = "POST"
      return answer(405, "text/plain", "POST only\n")
    end
    local body = read_body() or ""
    if #body > MAX_BODY then return answer(413, "text/plain", "notification too large\n") end
    local k = key
    if type(k) == "function" then
      local ok, v = pcall(k)
      if not ok or not key_text(v, "secret_key") then
        ngx.log(ngx.ERR, "qiwi p2p: the secret_key function gave no key")
        return answer(500, "text/plain", "secret key unavailable\n")
      end
      k = v
    end
    local sig = ngx.req.get_headers()["x-api-signature-sha256"]
    if type(sig) == "table" then sig = nil end
    local note, err = _M.verify(body, sig, k)
    if not note then
      if err.code == "signature" then
        ngx.log(ngx.WARN, "qiwi p2p: refused a notification: ", err.message)
        return answer(403, "text/plain", err.message .. "\n")
      end
      return answer(400, "text/plain", err.message .. "\n")
    end
    local b = note.bill
    -- the signed values, none holding '|' (verify refused that)
    local mark = prefix .. b.siteId .. "|" .. b.billId .. "|" .. b.status.value
    -- claimed (a lease: a worker that dies inside on_bill leaves a claim
    -- that expires, and QIWI's next try is handled), then marked done
    local state, serr = events.claim(store, mark, ledger)
    if state == nil then
      ngx.log(ngx.ERR, "qiwi p2p: the store cannot say whether this notification was handled: ", tostring(serr))
      return answer(503, "text/plain", "store unavailable\n")
    end
    if state == "busy" then
      -- another worker is handling it right now; should it fail, QIWI's
      -- next try of this one is what brings the bill again
      return answer(503, "text/plain", "in progress\n")
    end
    if state == "claimed" then
      local ok, why = events.run(fn, b, note)
      local _, ferr = events.finish(store, mark, ok, ledger)
      if ferr then ngx.log(ngx.ERR, "qiwi p2p: cannot record a handled notification: ", tostring(ferr)) end
      if not ok then
        ngx.log(ngx.ERR, "qiwi p2p: on_bill failed for bill ", b.billId, ": ", why or "returned false")
        return answer(500, "text/plain", "not handled\n")
      end
    end
    return answer(200, "application/json", ACK)
  end
end

return _M
