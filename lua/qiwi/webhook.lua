-- Webhook notifications: signature verification (and, inside nginx, a receiver).
local core = require "qiwi.core"

local _M = {}

-- Finds the raw text of a top-level key's value inside the JSON object that
-- starts at `pos` (just after its '{'). Returns the value's text (strings
-- without their quotes but with escapes as sent) or nil.
local function skip_ws(s, i)
  return (s:find("[^ \t\r\n]", i)) or #s + 1
end

local function scan_string(s, i) -- s:sub(i, i) == '"'; returns index after the closing quote
  local j = i + 1
  while true do
    local q = s:find('["\\]', j)
    if not q then return nil end
    if s:sub(q, q) == "\\" then j = q + 2 else return q + 1 end
  end
end

local function scan_value(s, i) -- returns index after the value
  local c = s:sub(i, i)
  if c == '"' then return scan_string(s, i) end
  if c == "{" or c == "[" then
    local depth, j = 0, i
    while j <= #s do
      local ch = s:sub(j, j)
      if ch == '"' then
        j = scan_string(s, j)
        if not j then return nil end
      else
        if ch == "{" or ch == "[" then depth = depth + 1
        elseif ch == "}" or ch == "]" then
          depth = depth - 1
          if depth == 0 then return j + 1 end
        end
        j = j + 1
      end
    end
    return nil
  end
  local e = s:find("[,}%] \t\r\n]", i)
  return e or #s + 1
end

-- Returns a table key → {first, last} of the raw value spans of the object at i.
local function object_spans(s, i)
  if s:sub(i, i) ~= "{" then return nil end
  local spans = {}
  i = skip_ws(s, i + 1)
  if s:sub(i, i) == "}" then return spans end
  while i <= #s do
    if s:sub(i, i) ~= '"' then return nil end
    local ke = scan_string(s, i)
    if not ke then return nil end
    local key = s:sub(i + 1, ke - 2)
    if key:find("\\", 1, true) then
      -- the decoder unescapes keys: "pay\u006dent" is its "payment"
      key = core.json_decode(s:sub(i, ke - 1))
      if type(key) ~= "string" then return nil end
    end
    -- with a key twice, the signed text and the decoded table could each
    -- take another one
    if spans[key] then return nil end
    i = skip_ws(s, ke)
    if s:sub(i, i) ~= ":" then return nil end
    i = skip_ws(s, i + 1)
    local ve = scan_value(s, i)
    if not ve then return nil end
    spans[key] = { i, ve - 1 }
    i = skip_ws(s, ve)
    local c = s:sub(i, i)
    if c == "}" then return spans end
    if c ~= "," then return nil end
    i = skip_ws(s, i + 1)
  end
  return nil
end

-- The exact text QIWI signed for a dotted field path inside `payment`.
local function raw_field(body, payment_span, dotted)
  local start = payment_span[1]
  local spans = object_spans(body, start)
  local span
  for part in dotted:gmatch("[^%.]+") do
    if not spans then return nil end
    span = spans[part]
    if not span then return nil end
    if body:sub(span[1], span[1]) == "{" then spans = object_spans(body, span[1]) else spans = nil end
  end
  if not span then return nil end  -- a name with no parts: "", " " or "."
  local text = body:sub(span[1], span[2])
  if text:sub(1, 1) == '"' then
    -- a string is signed as its value: decode escapes through the JSON decoder
    local v = core.json_decode(text)
    if type(v) ~= "string" then return nil end
    return v
  end
  return text
end

local qerror = require "qiwi.error"

-- code tells a receiver what to answer: "signature" (403) or "format" (400).
local function fail(msg, code)
  return nil, qerror.new { kind = "argument", message = msg, code = code or "format", retryable = false }
end

-- verify(raw_body, key_base64) → notification table, or nil, err.
function _M.verify(raw_body, key_base64)
  if type(raw_body) ~= "string" or raw_body == "" then return fail("webhook body must be a non-empty string") end
  if type(key_base64) ~= "string" or key_base64 == "" then return fail("webhook key must be a base64 string") end
  local key, kerr = core.base64_decode(key_base64)
  if not key or key == "" then return fail("webhook key is not valid base64: " .. tostring(kerr)) end
  local note, derr = core.json_decode(raw_body)
  if type(note) ~= "table" then
    return nil, qerror.new { kind = "decode", code = "format", retryable = false,
                             message = tostring(derr or "notification is not a JSON object") }
  end
  local payment = note.payment
  if type(payment) ~= "table" or type(payment.signFields) ~= "string" or type(note.hash) ~= "string" then
    return fail("not a QIWI notification: payment.signFields or hash missing")
  end
  local top = object_spans(raw_body, skip_ws(raw_body, 1))
  local pspan = top and top.payment
  if not pspan then return fail("not a QIWI notification: payment object not found") end
  local parts = {}
  for name in payment.signFields:gmatch("[^,]+") do
    name = name:match("^%s*(.-)%s*$")
    local text = raw_field(raw_body, pspan, name)
    if text == nil then return fail("signed field '" .. name .. "' is missing") end
    parts[#parts + 1] = text
  end
  if #parts == 0 then return fail("payment.signFields is empty") end
  local mac = core.hmac_sha256_hex(key, table.concat(parts, "|"))
  if not core.constant_time_equal(mac, note.hash:lower()) then
    return fail("webhook signature does not match", "signature")
  end
  return note
end

-- Reads the whole request body inside nginx, from memory or from the temp
-- file nginx spills a large body to.
local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file()
  if not file then return nil end
  local f = io.open(file, "rb")
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

-- A short plain-text answer. Callers then end with ngx.exit(ngx.HTTP_OK):
-- the status is already on the wire, and ngx.exit with a status >= 300 would
-- make nginx try to send an error page after it.
local function answer(status, text)
  ngx.status = status
  ngx.header["Content-Type"] = "text/plain"
  ngx.header["Content-Length"] = #text + 1
  ngx.say(text)
end

local function usable_key(k)
  if type(k) ~= "string" or k == "" then return false end
  local raw = core.base64_decode(k)
  return raw ~= nil and raw ~= ""
end

-- A content handler for nginx:
--   handler{ key = "base64" or function() -> key, on_notification = fn(note),
--            dict = "lua_shared_dict name" or the dict, ttl = seconds (86400),
--            memory = ids remembered without a dict (10000) }
-- Build it once per worker (at module level, or in init_by_lua) and call it
-- from content_by_lua*: the duplicate memory lives in the handler, or in the
-- shared dict, which is what all workers share.
-- A valid notification gets 200 at once and fn runs after the answer is sent
-- (QIWI wants an answer within 1-2 s and retries otherwise); a repeated
-- messageId gets 200 without calling fn; a bad signature gets 403 and a body
-- that is not a notification 400, neither calling fn.
function _M.handler(opts)
  assert(type(opts) == "table", "webhook.handler takes an options table")
  local key = opts.key
  assert(type(key) == "string" or type(key) == "function", "webhook.handler: key must be a string or a function")
  assert(type(key) == "function" or usable_key(key), "webhook.handler: key is not a base64 key")
  local fn = opts.on_notification
  assert(type(fn) == "function", "webhook.handler: on_notification must be a function")
  local ttl = opts.ttl or 86400
  assert(type(ttl) == "number" and ttl > 0, "webhook.handler: ttl must be a positive number of seconds")
  local dict = opts.dict
  if type(dict) == "string" then
    -- A misspelt name would silently fall back to per-worker memory.
    assert(type(ngx) == "table" and ngx.shared and ngx.shared[dict],
      "webhook.handler: no lua_shared_dict named '" .. dict .. "'")
    dict = ngx.shared[dict]
  end
  assert(dict == nil or type(dict) == "table" or type(dict) == "userdata",
    "webhook.handler: dict must be a lua_shared_dict or its name")
  local seen, seen_order, seen_max = {}, {}, opts.memory or 10000
  local first = 1

  -- true when messageId was seen before; remembers it otherwise
  local function duplicate(id)
    if type(id) ~= "string" or id == "" then return false end
    if dict then
      local ok, err = dict:add("qiwi:msg:" .. id, true, ttl)
      return not ok and err == "exists"
    end
    if seen[id] then return true end
    seen[id] = true
    seen_order[#seen_order + 1] = id
    if #seen_order - first + 1 > seen_max then
      seen[seen_order[first]] = nil
      seen_order[first] = nil
      first = first + 1
    end
    return false
  end

  return function()
    if ngx.req.get_method() ~= "POST" then
      ngx.header["Allow"] = "POST"
      answer(405, "POST only")
      return ngx.exit(ngx.HTTP_OK)
    end
    local body = read_body()
    local k = key
    if type(k) == "function" then
      local ok, v = pcall(k)
      if not ok or not usable_key(v) then
        ngx.log(ngx.ERR, "qiwi webhook: the key function gave no key: ", tostring(v))
        answer(500, "webhook key unavailable")
        return ngx.exit(ngx.HTTP_OK)
      end
      k = v
    end
    local note, err = _M.verify(body or "", k)
    if not note then
      if err.code == "signature" then
        ngx.log(ngx.WARN, "qiwi webhook: refused a notification with a bad signature")
        answer(403, err.message)
      else
        answer(400, err.message)
      end
      return ngx.exit(ngx.HTTP_OK)
    end
    local dup = duplicate(note.messageId)
    answer(200, "OK")
    ngx.eof()
    if not dup then
      local ok, ferr = pcall(fn, note)
      if not ok then ngx.log(ngx.ERR, "qiwi webhook: on_notification failed: ", tostring(ferr)) end
    end
    return ngx.exit(ngx.HTTP_OK)
  end
end

return _M
