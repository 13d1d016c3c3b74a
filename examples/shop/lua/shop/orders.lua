-- The shop's orders, kept in a lua_shared_dict that every worker shares.
--
-- An example: a dict is lost when nginx stops (it survives a reload, not a
-- restart) and holds what fits in its size. A real shop keeps its orders in
-- its database, with the same two rules as here: an order's amount never
-- changes once its payment link was given out, and "paid" is written once,
-- atomically, whoever (webhook or watcher, any worker) gets there first.
--
-- Keys: "next" (the order counter), "order:<id>" (the order as JSON, never
-- changed), "paid:<id>" (the payment that paid it, as JSON, added once).
local qiwi = require "qiwi"

local _M = { _VERSION = "shop.orders 0.1.0" }

local json = qiwi.json

local dict_name
-- Part of every id: order numbers start at 1 again after a restart (the
-- dict is new), and a payment made to an order of an earlier run must not
-- match a new order that got the same number.
local run_id

-- From init_by_lua: the dict's name and a random tag for this run's ids.
function _M.configure(name)
  assert(ngx.shared[name], "shop.orders: no lua_shared_dict named '" .. tostring(name) .. "'")
  dict_name = name
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(4)
  f:close()
  run_id = bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)
end

local function dict()
  return ngx.shared[assert(dict_name, "shop.orders.configure was not called from init_by_lua")]
end

-- What an order id looks like: the run's tag, a dash, a number.
_M.ID_PATTERN = "%x+%-%d+"

-- A new order id, unique across workers (the dict's incr is atomic), or
-- nil, err when the dict cannot count.
function _M.next_id()
  local n, err = dict():incr("next", 1, 0)
  if not n then return nil, err end
  return string.format("%s-%d", run_id, n)
end

-- Stores a new order {id=, kopecks=, amount= ("150.00"), pay_url=}.
-- true, or nil, err (the dict is full: nothing was stored).
function _M.add(order)
  order.created = ngx.time()
  local ok, err = dict():safe_add("order:" .. order.id, json.encode(order))
  if not ok then return nil, err end
  return true
end

-- The order, or nil when there is none.
function _M.get(id)
  local text = dict():get("order:" .. id)
  return text and json.decode(text)
end

-- The payment that paid the order ({txnId=, source=, date=, amount=}), or nil.
function _M.payment(id)
  local text = dict():get("paid:" .. id)
  return text and json.decode(text)
end

-- Records that `payment` paid order `id`: "marked" (now), "already" (an
-- earlier payment did; the second value is that one), or nil, err (not
-- recorded: the dict is full). safe_add is atomic across workers, so an
-- order is marked once even when two payments for it are handled at once.
function _M.mark_paid(id, payment)
  local d = dict()
  local ok, err = d:safe_add("paid:" .. id, json.encode(payment))
  if ok then return "marked" end
  if err == "exists" then return "already", _M.payment(id) end
  return nil, err
end

-- The order as GET /orders/<id> shows it.
function _M.view(order)
  local paid = _M.payment(order.id)
  return {
    id = order.id, amount = order.amount, pay_url = order.pay_url,
    status = paid and "paid" or "new",
    paid_by = paid and paid.source or qiwi.null,
    txnId = paid and paid.txnId or qiwi.null,
    paid_at = paid and paid.date or qiwi.null,
  }
end

return _M
