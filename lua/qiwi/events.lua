-- qiwi.events: the one event stream of incoming payments. A watcher
-- (qiwi.watch, polling the history) and a webhook receiver
-- (qiwi.webhook.handler with on_payment) given the same store and name hand
-- each payment to the user once, whichever of them sees it first.
--
-- The ledger: one store key per wallet, name and txnId, holding "busy"
-- while a handler runs and "done" once it returned. Claiming is store:add,
-- atomic in every store, so two deliverers (a watcher and a webhook, two
-- workers, two hosts) never run the handler for one payment at the same
-- time. A claim is a lease: a deliverer that dies while its handler runs
-- leaves "busy", which expires after `claim` seconds, and the payment is
-- delivered again. Between the handler's return and the "done" write there
-- is nothing to make atomic with it, so a process killed exactly there
-- repeats that one payment: the guarantee is at least once, and at most one
-- repeat per death.
local core = require "qiwi.core"

local _M = { _VERSION = "qiwi.events 0.1.0" }

local type, tostring, tonumber, pcall = type, tostring, tonumber, pcall
local null = core.null

-- Ledger entries outlive QIWI's 90-day history window: a watcher that was
-- down for weeks and then catches up must still find what a webhook
-- delivered meanwhile.
_M.DONE_TTL = 91 * 86400
-- Long enough for a handler that writes to a database; a dead deliverer's
-- payment comes again after it.
_M.CLAIM_TTL = 120

_M.STATUSES = { SUCCESS = true, WAITING = true, ERROR = true }
_M.OPERATIONS = { ALL = true, IN = true, OUT = true, QIWI_CARD = true }

-- kind: the payment's type; QIWI's notifications name a payment IN or OUT only
-- (a QIWI_CARD payment of the history is OUT there), so the key keeps just
-- the direction: one txnId may be both an incoming and an outgoing entry.
function _M.key(wallet, name, txn_id, kind)
  return "events:" .. wallet .. ":" .. name .. ":" .. (kind == "IN" and "in" or "out") .. ":" .. txn_id
end

-- The user's handler, run so that it cannot raise into us: true when it
-- returned anything but false, else false and the error text (or nil).
function _M.run(fn, payment, source)
  local ok, res = pcall(fn, payment, source)
  if not ok then return false, tostring(res) end
  return res ~= false, nil
end

-- Claims a payment: "claimed" (ours to deliver now), "dup" (delivered
-- before), "busy" (another deliverer holds it right now), or nil, err (the
-- store could not be asked).
function _M.claim(store, key, opts)
  local claim = opts and opts.claim or _M.CLAIM_TTL
  for _ = 1, 2 do
    local added, err = store:add(key, "busy", claim)
    if added == nil then return nil, err end
    if added then return "claimed" end
    local v, gerr = store:get(key)
    if gerr then return nil, gerr end
    if v == "done" then return "dup" end
    if v ~= nil then return "busy" end
    -- the claim expired between add and get: try once more
  end
  return "busy"
end

-- After the handler of a claimed payment: "done" recorded (a failed write
-- is the second value: the claim then expires and the payment may come
-- once more), or the claim released so that it can come again.
function _M.finish(store, key, delivered, opts)
  if delivered then
    local ok, err = store:set(key, "done", opts and opts.ttl or _M.DONE_TTL)
    if not ok then return "done", err end
    return "done"
  end
  store:delete(key) -- a failed delete leaves the claim to expire
  return "failed"
end

-- Delivers one payment through the ledger: claim, handler, record.
-- Returns "done", "dup", "busy", "failed" (the handler raised or returned
-- false; second value: its error text), or nil, err (the store could not
-- be asked: nothing ran).
function _M.deliver(store, key, fn, payment, source, opts)
  local state, err = _M.claim(store, key, opts)
  if state ~= "claimed" then return state, err end
  local ok, why = _M.run(fn, payment, source)
  local res, ferr = _M.finish(store, key, ok, opts)
  return res, ferr or why
end

-- Whether the ledger says delivered: true, false, or nil, err.
function _M.delivered(store, key)
  local v, err = store:get(key)
  if err then return nil, err end
  return v == "done"
end

local function integer(v)
  if type(v) == "number" then return v end
  if type(v) == "string" and v:find("^%-?%d+$") then
    return math.tointeger and math.tointeger(tonumber(v)) or tonumber(v)
  end
  return v
end
_M.integer = integer

-- A webhook notification's payment in the history item's shape, so that
-- on_payment sees one shape from both sources: txnId and errorCode become
-- integers (the notification has them as strings), provider becomes
-- {id = N} (the history has a provider object); the other keys (date, type,
-- status, account, sum, total, commission, comment, personId) are the same
-- on both. signFields stays out: it describes the notification, not the
-- payment.
function _M.from_notification(p)
  local out = {}
  for k, v in pairs(p) do
    if k ~= "signFields" then out[k] = v end
  end
  out.txnId = integer(p.txnId)
  out.errorCode = integer(p.errorCode)
  if type(p.provider) == "number" or type(p.provider) == "string" then
    out.provider = { id = integer(p.provider) }
  elseif p.provider == nil then
    out.provider = null
  end
  return out
end

-- {"SUCCESS", ...} -> set; nil -> {SUCCESS = true}. nil, message on a bad list.
function _M.status_set(list)
  if list == nil then return { SUCCESS = true } end
  if type(list) ~= "table" or #list == 0 then
    return nil, "statuses must be a non-empty list of SUCCESS, WAITING, ERROR"
  end
  local set = {}
  for i = 1, #list do
    if not _M.STATUSES[list[i]] then
      return nil, "statuses: '" .. tostring(list[i]) .. "' is not SUCCESS, WAITING or ERROR"
    end
    set[list[i]] = true
  end
  return set
end

-- A name keeps streams apart in one store; it becomes part of store keys.
function _M.check_name(name)
  if name == nil then return "default" end
  if type(name) ~= "string" or name == "" or #name > 100 or name:find("[%z\1-\32\127]") then
    return nil, "name must be a string of 1 to 100 characters without spaces or control characters"
  end
  return name
end

return _M
