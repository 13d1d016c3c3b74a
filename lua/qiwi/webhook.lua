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

return _M
