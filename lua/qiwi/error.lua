-- The error object every failing call returns as its second value.
local codes = require "qiwi.error_codes"
local array_mt = require("qiwi.core").array_mt

local _M = {}
local mt = { __name = "qiwi.error" }
mt.__index = mt
_M.mt = mt

local KINDS = { argument = true, network = true, timeout = true, tls = true,
                http = true, api = true, decode = true, store = true }

-- Control characters, and the Unicode line and paragraph separators (U+2028,
-- U+2029) and NEL (U+0085) that some log viewers break lines at, become
-- visible escapes, so that a text from QIWI (or from whoever answers in its
-- place) can never start a forged line in a log. Backslashes stay as they
-- are, which keeps the escaping idempotent: escaping an escaped text changes
-- nothing.
local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function escape_control(c)
  return ESCAPES[c] or string.format("\\x%02X", c:byte())
end
local UNICODE_BREAKS = { ["\226\128\168"] = "\\u2028", ["\226\128\169"] = "\\u2029", ["\194\133"] = "\\u0085" }

local function one_line(s)
  s = tostring(s or "")
  s = s:gsub("%s+$", "")
  s = s:gsub("[%z\1-\31\127]", escape_control)
  s = s:gsub("\226\128[\168\169]", UNICODE_BREAKS):gsub("\194\133", UNICODE_BREAKS)
  if #s > 500 then
    -- cut before a UTF-8 continuation byte, never inside a character
    local cut = 497
    while cut > 1 and s:byte(cut + 1) and s:byte(cut + 1) >= 128 and s:byte(cut + 1) < 192 do cut = cut - 1 end
    s = s:sub(1, cut) .. "..."
  end
  return s
end
_M.one_line = one_line

function mt.__tostring(e)
  local where = {}
  if e.status then where[#where + 1] = tostring(e.status) end
  if e.method and e.path then where[#where + 1] = e.method .. " " .. e.path end
  local s = tostring(e.kind) .. ": " .. tostring(e.message)
  if e.code ~= nil and not s:find(tostring(e.code), 1, true) then s = s .. " [" .. tostring(e.code) .. "]" end
  if #where > 0 then s = s .. " (" .. table.concat(where, ", ") .. ")" end
  return one_line(s)
end

local function scrub(v, secrets)
  for _, secret in ipairs(secrets) do
    if secret ~= "" then
      local i, j = v:find(secret, 1, true)
      while i do
        v = v:sub(1, i - 1) .. "***" .. v:sub(j + 1)
        i, j = v:find(secret, i + 3, true)
      end
    end
  end
  return v
end

-- A field of an error is a string, a number or a boolean; anything else a
-- server sent in its place (an object, an array) is dropped, because its
-- texts could carry an echo of the token past the scrubbing. The payment a
-- replayed id found (err.payment) is the one table kept, scrubbed throughout.
local function scrub_value(v, secrets, depth)
  local t = type(v)
  if t == "string" then
    return secrets and scrub(v, secrets) or v
  elseif t == "number" then
    -- a digits-only token would otherwise survive as a number
    if secrets and scrub(tostring(v), secrets) ~= tostring(v) then return "***" end
    return v
  elseif t == "boolean" then
    return v
  elseif t == "table" and depth > 0 then
    local out = {}
    for k, item in next, v do
      local sk = scrub_value(k, secrets, 0)
      if sk ~= nil then out[sk] = scrub_value(item, secrets, depth - 1) end
    end
    return setmetatable(out, getmetatable(v) == array_mt and array_mt or nil)
  end
  return nil
end

-- bill: the earlier P2P bill a reused bill id found (qiwi.p2p)
local TABLE_FIELDS = { payment = 8, bill = 8 }
local LINE_FIELDS = { message = true, description = true, user_message = true, code = true,
                      trace_id = true, service = true }

-- fields: kind, message, and optionally status, code, description,
-- user_message, trace_id, service, method, path, retryable, retry_after,
-- payment. `secrets` are scrubbed from every field, a server's echo
-- included, and before one_line cuts a long text, which would leave half a
-- secret unrecognised.
function _M.new(fields, secrets)
  if not KINDS[fields.kind] then error("unknown error kind " .. tostring(fields.kind), 2) end
  local e = setmetatable({}, mt)
  for k, v in next, fields do
    if type(k) == "string" then
      if k == "kind" then
        e.kind = v
      else
        e[k] = scrub_value(v, secrets, TABLE_FIELDS[k] or 0)
      end
    end
  end
  for k in pairs(LINE_FIELDS) do
    if type(e[k]) == "string" then e[k] = one_line(e[k]) end
  end
  e.message = one_line(e.message)
  if e.retryable == nil then
    local st = e.status
    -- a proxy that turned the tunnel down would turn the same credentials
    -- down again (qiwi.core's QIWI_PROXY_REFUSED)
    e.retryable = (e.kind == "network" and e.code ~= "QIWI_PROXY_REFUSED") or e.kind == "timeout"
      or (e.kind ~= "argument" and type(st) == "number" and (st == 423 or (st >= 500 and st <= 599)))
  end
  return e
end

function _M.argument(message, method, path)
  return _M.new { kind = "argument", message = message, method = method, path = path, retryable = false }
end

function _M.is(v)
  return getmetatable(v) == mt
end

-- English text of a payment errorCode (history, transactions) or a QWPRC-NNN code.
function _M.text(code)
  if code == nil then return nil end
  local n = tonumber(code) or tonumber(tostring(code):match("^QWPRC%-(%d+)$"))
  return n and codes[n]
end

local STATUS_TEXT = {
  [301] = "Moved permanently: redirect not followed", [302] = "Found: redirect not followed",
  [303] = "See other: redirect not followed", [307] = "Temporary redirect not followed",
  [308] = "Permanent redirect not followed",
  [400] = "Wrong data format of request", [401] = "Wrong API token or token expired",
  [403] = "Not enough rights of API token for the request", [404] = "Not found",
  [405] = "Method not allowed", [422] = "Request refused (unprocessable)",
  [423] = "Too many requests, service temporarily unavailable",
  [500] = "Internal service error", [502] = "Bad gateway", [503] = "Service unavailable",
  [504] = "Gateway timeout",
}

-- True when a text reads as English: QIWI's texts for end users are
-- Russian (Cyrillic is U+0400..U+04FF, lead bytes 0xD0..0xD3 in UTF-8).
local function english(s)
  return type(s) == "string" and s:find("%a") ~= nil and not s:find("[\208-\211][\128-\191]")
end

local function scalar(v)
  local t = type(v)
  if t == "string" or t == "number" then return v end
  return nil
end

-- Builds the error for a non-2xx answer. QIWI answers errors in two shapes:
-- {serviceName, errorCode, userMessage, description, traceId} and
-- {code = "QWPRC-…", message}; anything else is an `http` error.
-- `message` is always English: QIWI's text where it is English, else ours
-- for the code or the status; QIWI's text for end users (mostly Russian)
-- goes in `user_message`.
function _M.from_response(status, data, method, path, retry_after)
  local f = { status = status, method = method, path = path, retry_after = retry_after }
  local fallback = STATUS_TEXT[status] or ("HTTP " .. tostring(status))
  if type(data) == "table" and (data.errorCode ~= nil or data.userMessage ~= nil
      or data.serviceName ~= nil or data.traceId ~= nil) then
    f.kind = "api"
    f.code = scalar(data.errorCode)
    f.description = type(data.description) == "string" and data.description or nil
    f.trace_id = scalar(data.traceId)
    f.service = scalar(data.serviceName)
    local um = type(data.userMessage) == "string" and data.userMessage ~= "" and data.userMessage or nil
    f.user_message = um
    f.message = (english(um) and um) or (english(f.description) and f.description)
      or _M.text(f.code) or fallback
  elseif type(data) == "table" and scalar(data.code) ~= nil
      and (type(data.message) == "string" or type(data.code) == "string") then
    f.kind = "api"
    f.code = scalar(data.code)
    local m = type(data.message) == "string" and data.message ~= "" and data.message or nil
    f.description, f.user_message = m, m
    f.message = _M.text(f.code) or (english(m) and m)
      or (f.code and fallback .. " (" .. tostring(f.code) .. ")") or fallback
  else
    f.kind = "http"
    f.message = fallback
  end
  return f
end

return _M
