-- What the shop does with an incoming payment: the one on_payment of the
-- event stream, shared by the watcher (source "poll") and the webhook
-- receiver (source "webhook"). qiwi.events hands each payment (txnId) to
-- it once, whichever of the two sees it first; the order is marked paid
-- once however many payments name it (shop.orders.mark_paid).
--
-- A payment pays an order when its comment is "order-<id>" (the payment
-- form's comment, which the form does not let the payer change), it is in
-- roubles (643) and its sum is at least the order's amount. Anything else
-- is logged and left alone: money that did not pay an order is for a
-- person to look at (refund it, or ask for the rest), not for the shop to
-- guess at.
local args = require "qiwi.args"
local orders = require "shop.orders"

local _M = { _VERSION = "shop.payments 0.1.0" }

local RUB = 643
-- nginx writes STDERR lines at every error_log level (they show as "[]");
-- what needs a person goes out as ERR.
local SUCCESS, ATTENTION = ngx.STDERR, ngx.ERR

local COMMENT = "^%s*order%-(" .. orders.ID_PATTERN .. ")%s*$"

-- The order id a payment's comment names, or nil.
function _M.order_of(comment)
  return type(comment) == "string" and comment:match(COMMENT) or nil
end

local function rub(kopecks)
  return string.format("%d.%02d RUB", math.floor(kopecks / 100), kopecks % 100)
end

-- on_payment(payment, source): true when the payment was dealt with
-- (whatever it was), false when it could not be recorded and must come
-- again (the watcher then hands it again in a later round).
function _M.on_payment(payment, source)
  local txn = tostring(payment.txnId)
  local id = _M.order_of(payment.comment)
  if not id then
    -- a wallet gets other money too: not the shop's business
    ngx.log(ngx.NOTICE, "shop: payment ", txn, " names no order")
    return true
  end
  local what = "shop: payment " .. txn .. " (" .. source .. ") for order " .. id
  local order = orders.get(id)
  if not order then
    ngx.log(ATTENTION, what, ": no such order (of an earlier run, or never made); not marked")
    return true
  end
  local sum = type(payment.sum) == "table" and payment.sum or {}
  if tonumber(sum.currency) ~= RUB then
    ngx.log(ATTENTION, what, ": in currency ", tostring(sum.currency), ", not roubles (643); not marked paid")
    return true
  end
  local got = args.kopecks(sum.amount)
  if not got then
    ngx.log(ATTENTION, what, ": its amount ", tostring(sum.amount), " is not an amount; not marked paid")
    return true
  end
  if got < order.kopecks then
    ngx.log(ATTENTION, what, " is short: ", rub(got), " of ", rub(order.kopecks), "; not marked paid")
    return true
  end
  local res, earlier = orders.mark_paid(id, {
    txnId = payment.txnId, source = source, date = payment.date, amount = rub(got),
  })
  if res == nil then
    ngx.log(ATTENTION, what, ": cannot record it (", tostring(earlier), "); it comes again")
    return false
  end
  if res == "already" then
    ngx.log(ATTENTION, what, ": the order was paid already by payment ", tostring(earlier and earlier.txnId),
      "; this one (", rub(got), ") is a second payment to refund")
    return true
  end
  ngx.log(SUCCESS, "shop: order ", id, " paid by ", source, ": payment ", txn, ", ", rub(got),
    got > order.kopecks and (" (" .. rub(got - order.kopecks) .. " more than the order)") or "")
  return true
end

return _M
