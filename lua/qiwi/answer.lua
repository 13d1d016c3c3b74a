-- What an answer means: the one place where an answer's body is decoded
-- (every transport hands over the body as text), a success becomes the
-- caller's value, and a failure becomes an error; a payment's answer is
-- checked against what was asked (qiwi.payment_check).
local core = require "qiwi.core"
local qerror = require "qiwi.error"
local attempt = require "qiwi.attempt"
local payment_check = require "qiwi.payment_check"

local json_decode = core.json_decode
-- A body is JSON when its content type says so, or when it has none that
-- says otherwise and reads like a JSON object or array: the core's rule,
-- the one the libcurl session applies when it decodes an answer itself.
local json_like = core.json_like
local gsub = string.gsub

local _M = {}

local NO_HEADERS = {}

local function checked_payment(client, row, path, status, data, sent)
  local diff = payment_check.mismatch(path:match("/terms/(%d+)/"), sent, data)
  if diff then
    return nil, client:_error { kind = "api", code = payment_check.CODE, status = status, method = row.method,
      path = path, retryable = false, payment = data,
      message = "the payment id was used before for another payment: QIWI answered that one (" .. diff
        .. "); nothing new was paid" }
  end
  payment_check.note(client.wallet, data)
  return data
end

-- The result of a 2xx answer to a request of `row` whose body decoded to
-- `data` (never nil): read's, and that of an answer a transport handed
-- back decoded (qiwi.transport.curl's decode).
local function success(client, row, path, status, data, sent)
  if row.payment and sent then return checked_payment(client, row, path, status, data, sent) end
  return data
end
_M.decoded = success

-- The result of an answer (status, headers, body text) to a request of
-- `row` sent to `path` with body `sent`: value[, second value] or nil, err.
function _M.read(client, row, path, status, headers, body, sent)
  headers = headers or NO_HEADERS
  local ok = status >= 200 and status < 300
  -- receipts and statements are files; their error answers are not read
  if row.raw then
    if ok then return body or "", headers["content-type"] end
    return nil, client:_error(qerror.from_response(status, nil, row.method, path, attempt.retry_after(headers)))
  end
  local data, derr
  if json_like(headers["content-type"], body) then
    data, derr = json_decode(body)
    if derr then derr = gsub(derr, "^decode: ", "") end
  end
  if not ok then
    return nil, client:_error(qerror.from_response(status, data, row.method, path, attempt.retry_after(headers)))
  end
  if derr then
    return nil, client:_error { kind = "decode", status = status, message = derr, method = row.method, path = path }
  end
  if data ~= nil then return success(client, row, path, status, data, sent) end
  -- QIWI answers some successes with no body at all, 200 with a JSON
  -- content type included (reject_bill, set_default_account); a body cut
  -- short on the way is caught by the transport's framing, not here
  if body == nil or body == "" then return true end
  return nil, client:_error { kind = "decode", status = status, method = row.method, path = path,
                              message = "expected a JSON body, got " .. (headers["content-type"] or "no content type") }
end

return _M
