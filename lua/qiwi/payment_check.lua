-- Checks a payment's answer against what was asked.
--
-- QIWI answers a payment whose client id it has seen before with the earlier
-- payment, whatever the new request says. A script that lost its journal and
-- reuses an id would otherwise read "Accepted" for money it never sent (10.50
-- paid once, 20 asked now). So every answer to a payment row is compared
-- with the request: provider, account, amount and currency. A difference is
-- an `api` error with code "id_reused" and the earlier payment in
-- err.payment. An answer that matches but whose (wallet, id, transaction)
-- this Lua state has already been given is marked `replayed = true`.
local core = require "qiwi.core"
local args = require "qiwi.args"

local json_decode = core.json_decode
local type, tostring, tonumber, pairs = type, tostring, tonumber, pairs

local _M = { CODE = "id_reused" }

-- (wallet|id) -> transaction id of answers seen, bounded: the oldest go first.
local MEMORY = 10000
local seen, order, first = {}, {}, 1

local function remember(key, txn)
  if seen[key] == nil then
    order[#order + 1] = key
    if #order - first + 1 > MEMORY then
      seen[order[first]] = nil
      order[first] = nil
      first = first + 1
    end
  end
  seen[key] = txn
end

local function bare(account)
  if type(account) ~= "string" then
    if type(account) == "number" then account = args.digits(account) end
    if type(account) ~= "string" then return nil end
  end
  return (account:gsub("^%+", ""):gsub(" ", ""))
end

-- QIWI masks card numbers in answers (4256********1231): a masked character
-- stands for any digit, the rest must be the same.
local function same_account(asked, got)
  asked, got = bare(asked), bare(got)
  if not asked or not got then return asked == got end
  if not got:find("*", 1, true) then return asked == got end
  if #asked ~= #got then return false end
  for i = 1, #got do
    local g = got:sub(i, i)
    if g ~= "*" and g ~= asked:sub(i, i) then return false end
  end
  return true
end

local function kopecks(v)
  if type(v) ~= "number" and type(v) ~= "string" then return nil end
  return args.kopecks(v)
end

local function same_number(a, b)
  return a ~= nil and b ~= nil and tonumber(a) ~= nil and tonumber(a) == tonumber(b)
end

-- Requisites that a lookup before the payment hands out anew each time:
-- the Kazakh card transfer's card token (ev_account1). A faithful repeat
-- of a payment (the same id after a crash) carries a fresh one.
local TOKENS = { ev_account1 = true }

-- Returns nil when `answer` is the payment asked for by `body` (the JSON
-- text sent) to `provider`, or a one-line description of what differs.
-- Fields the answer does not carry are not compared.
function _M.mismatch(provider, body, answer)
  if type(answer) ~= "table" then return nil end
  local asked = json_decode(body)
  if type(asked) ~= "table" then return nil end
  local diffs = {}
  if answer.terms ~= nil and not same_number(answer.terms, provider) then
    diffs[#diffs + 1] = "provider " .. tostring(answer.terms) .. " (asked " .. tostring(provider) .. ")"
  end
  local af, gf = type(asked.fields) == "table" and asked.fields, type(answer.fields) == "table" and answer.fields
  if af and gf and gf.account ~= nil and not same_account(af.account, gf.account) then
    diffs[#diffs + 1] = "account " .. tostring(gf.account) .. " (asked " .. tostring(af.account) .. ")"
  end
  local as, gs = type(asked.sum) == "table" and asked.sum, type(answer.sum) == "table" and answer.sum
  if as and gs then
    if gs.amount ~= nil and kopecks(gs.amount) ~= kopecks(as.amount) then
      diffs[#diffs + 1] = "amount " .. tostring(gs.amount) .. " (asked " .. tostring(as.amount) .. ")"
    end
    if gs.currency ~= nil and not same_number(gs.currency, as.currency) then
      diffs[#diffs + 1] = "currency " .. tostring(gs.currency) .. " (asked " .. tostring(as.currency) .. ")"
    end
  end
  if type(answer.id) == "string" and type(asked.id) == "string" and answer.id ~= asked.id then
    diffs[#diffs + 1] = "id " .. answer.id .. " (asked " .. asked.id .. ")"
  end
  -- the comment tells two payments of one amount to one account apart (two
  -- invoices): compared when the answer carries it, no comment equal to ""
  if answer.comment ~= nil and (answer.comment or "") ~= (asked.comment or "") then
    diffs[#diffs + 1] = "comment " .. tostring(answer.comment) .. " (asked " .. tostring(asked.comment or "") .. ")"
  end
  -- the other requisites the answer carries (a masked one stands for any)
  if af and gf then
    for k, v in pairs(af) do
      local g = gf[k]
      if k ~= "account" and not TOKENS[k] and type(g) == "string" and not g:find("*", 1, true) and g ~= tostring(v) then
        diffs[#diffs + 1] = "fields." .. tostring(k) .. " " .. g .. " (asked " .. tostring(v) .. ")"
      end
    end
  end
  if #diffs == 0 then return nil end
  return table.concat(diffs, ", ")
end

-- Marks `answer` replayed when this Lua state saw the same payment before.
function _M.note(wallet, answer)
  if type(answer) ~= "table" or type(answer.id) ~= "string" then return end
  local txn = type(answer.transaction) == "table" and answer.transaction.id
  if txn == nil then return end
  local key = tostring(wallet) .. "|" .. answer.id
  txn = tostring(txn)
  if seen[key] == txn then answer.replayed = true end
  remember(key, txn)
end

return _M
