-- The error object every failing call returns as its second value.
local codes = require "qiwi.error_codes"

local _M = {}
local mt = { __name = "qiwi.error" }
mt.__index = mt
_M.mt = mt

local KINDS = { argument = true, network = true, timeout = true, tls = true,
                http = true, api = true, decode = true }

local function one_line(s)
  s = tostring(s or "")
  s = s:gsub("[\r\n]+", " "):gsub("%s+$", "")
  if #s > 500 then s = s:sub(1, 497) .. "..." end
  return s
end

function mt.__tostring(e)
  local where = {}
  if e.status then where[#where + 1] = tostring(e.status) end
  if e.method and e.path then where[#where + 1] = e.method .. " " .. e.path end
  local s = e.kind .. ": " .. e.message
  if e.code ~= nil and not s:find(tostring(e.code), 1, true) then s = s .. " [" .. tostring(e.code) .. "]" end
  if #where > 0 then s = s .. " (" .. table.concat(where, ", ") .. ")" end
  return s
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

-- fields: kind, message, and optionally status, code, description, trace_id,
-- method, path, retryable, retry_after. `secrets` are scrubbed from every
-- text, a server's echo included (code, trace_id, service), and before
-- one_line cuts a long text, which would leave half a secret unrecognised.
function _M.new(fields, secrets)
  assert(KINDS[fields.kind], "unknown error kind")
  local e = setmetatable({}, mt)
  for k, v in pairs(fields) do
    if secrets and k ~= "kind" and type(v) == "string" then v = scrub(v, secrets) end
    e[k] = v
  end
  e.message = one_line(e.message)
  if e.description ~= nil then e.description = one_line(e.description) end
  if e.retryable == nil then
    local st = e.status
    e.retryable = e.kind == "network" or e.kind == "timeout"
      or (e.kind ~= "argument" and st ~= nil and (st == 423 or (st >= 500 and st <= 599)))
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

-- Builds the error for a non-2xx answer. QIWI answers errors in two shapes:
-- {serviceName, errorCode, userMessage, description, traceId} and
-- {code = "QWPRC-…", message}; anything else is an `http` error.
function _M.from_response(status, data, method, path, retry_after)
  local f = { status = status, method = method, path = path, retry_after = retry_after }
  if type(data) == "table" and (data.errorCode ~= nil or data.userMessage ~= nil
      or data.serviceName ~= nil or data.traceId ~= nil) then
    f.kind = "api"
    f.code = data.errorCode
    f.description = type(data.description) == "string" and data.description or nil
    f.trace_id = data.traceId
    f.service = data.serviceName
    f.message = (type(data.userMessage) == "string" and data.userMessage ~= "" and data.userMessage)
      or f.description or STATUS_TEXT[status] or ("HTTP " .. status)
  elseif type(data) == "table" and data.code ~= nil and (type(data.message) == "string" or type(data.code) == "string") then
    f.kind = "api"
    f.code = data.code
    f.description = type(data.message) == "string" and data.message or nil
    f.message = _M.text(data.code) or f.description or STATUS_TEXT[status] or ("HTTP " .. status)
  else
    f.kind = "http"
    f.message = STATUS_TEXT[status] or ("HTTP " .. status)
  end
  return f
end

return _M
