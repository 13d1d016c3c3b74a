-- The shop's HTTP side: POST /orders makes an order and gives its payment
-- link; GET /orders/<id> tells whether it was paid. Neither talks to QIWI:
-- an order becomes paid only through the event stream (shop.payments).
local qiwi = require "qiwi"
local args = require "qiwi.args"
local orders = require "shop.orders"
local shop = require "shop.qiwi"

local _M = { _VERSION = "shop.http 0.1.0" }

local function reply(status, value, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  ngx.say(qiwi.json.encode(value))
  -- the status is on the wire: exit(200) ends the request without an error page
  return ngx.exit(ngx.HTTP_OK)
end

local function refuse(message)
  return reply(400, { error = message, kind = "argument" })
end

-- The amount of the request: a form field (application/x-www-form-urlencoded)
-- or a JSON body's "amount" (number or decimal string); nil, why.
local function requested_amount()
  ngx.req.read_body()
  local ctype = ngx.var.content_type or ""
  if ctype:lower():find("^application/json") then
    local body = ngx.req.get_body_data()
    local v = body and qiwi.json.decode(body)
    if type(v) ~= "table" then return nil, "the body is not a JSON object" end
    return v.amount
  end
  local form = ngx.req.get_post_args(10)
  local v = form and form.amount
  -- amount=1&amount=2, or a bare "amount" without a value
  if type(v) ~= "string" then return nil, "give one amount (amount=150.00)" end
  return v
end

-- POST /orders: 201 {id, amount, status = "new", pay_url}, or 400 for a bad
-- amount (nothing stored).
function _M.create()
  if ngx.req.get_method() ~= "POST" then
    return reply(405, { error = "POST an amount to make an order" }, { Allow = "POST" })
  end
  local v, why = requested_amount()
  if why then return refuse(why) end
  local text, kerr = args.amount(v)
  if not text then return refuse("amount " .. kerr) end
  local id, ierr = orders.next_id()
  if not id then return reply(503, { error = "cannot number the order: " .. tostring(ierr) }) end
  -- The form's link: the wallet, the amount and the comment filled in and
  -- locked, so that the payment names its order and pays it in full.
  local url, uerr = qiwi.payment_form_url {
    provider = 99, account = shop.settings().wallet, amount = text, comment = "order-" .. id,
    blocked = { "sum", "account", "comment" },
  }
  if not url then return refuse(uerr.message) end
  local order = { id = id, kopecks = args.kopecks(text), amount = text, pay_url = url }
  local ok, aerr = orders.add(order)
  if not ok then return reply(503, { error = "cannot store the order: " .. tostring(aerr) }) end
  return reply(201, orders.view(order), { Location = "/orders/" .. id })
end

-- GET /orders/<id>: 200 {id, amount, status = "new" or "paid", pay_url,
-- paid_by = "webhook" or "poll", txnId, paid_at}, or 404.
function _M.show(id)
  if ngx.req.get_method() ~= "GET" then
    return reply(405, { error = "GET only" }, { Allow = "GET" })
  end
  local order = id:find("^" .. orders.ID_PATTERN .. "$") and orders.get(id)
  if not order then return reply(404, { error = "no order " .. id }) end
  return reply(200, orders.view(order))
end

return _M
