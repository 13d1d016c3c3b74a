-- qiwi.payment_form_url: a link to a pre-filled payment form on qiwi.com (no request).
local args = require "qiwi.args"
local qerror = require "qiwi.error"

local _M = {}

local BLOCKABLE = { sum = true, account = true, comment = true }
local KNOWN = { provider = true, account = true, amount = true, comment = true, blocked = true,
                account_type = true, currency = true }

local function fail(msg)
  return nil, qerror.argument(msg, "GET", "/payment/form")
end

-- {provider=99, account=, amount=, comment=, blocked={"sum",…}, account_type=} → url
function _M.payment_form_url(o)
  if o == nil then o = {} end
  if type(o) ~= "table" then return fail("options must be a table") end
  -- taken by value with next: no metamethod of the caller's table runs
  local copy = {}
  for k, v in next, o do
    if not KNOWN[k] then
      return fail("unknown option '" .. (type(k) == "string" and k or "<" .. type(k) .. ">") .. "'")
    end
    copy[k] = v
  end
  o = copy
  local provider, err = args.digits(o.provider or 99, { max = 10 })
  if not provider then return fail("provider " .. err) end
  local e = args.escape
  local q = {}
  if o.account ~= nil then
    local acc = o.account
    if type(acc) == "number" then acc = args.digits(acc) end
    local a, aerr = args.string(acc, { max = 100 })
    if not a then return fail("account " .. aerr) end
    q[#q + 1] = e("extra['account']") .. "=" .. e(a)
  end
  if o.amount ~= nil then
    local k, kerr = args.kopecks(o.amount)
    if not k then return fail("amount " .. kerr) end
    if k > 9999999 then return fail("amount must be at most 99999.99 (the form's limit)") end
    q[#q + 1] = "amountInteger=" .. string.format("%d", math.floor(k / 100))
    q[#q + 1] = "amountFraction=" .. string.format("%d", k % 100)
  end
  if o.comment ~= nil then
    if provider ~= "99" then return fail("comment is only for provider 99") end
    local c, cerr = args.string(o.comment, { max = 500 })
    if not c then return fail("comment " .. cerr) end
    q[#q + 1] = e("extra['comment']") .. "=" .. e(c)
  end
  if o.currency ~= nil then
    -- QIWI's docs: a constant, 643, sent whenever an amount is
    if args.currency(o.currency) ~= "643" then return fail("currency must be 643 (the form's only currency)") end
    if o.amount == nil then return fail("currency goes with amount") end
  end
  if o.amount ~= nil then q[#q + 1] = "currency=643" end
  if o.blocked ~= nil then
    local list = type(o.blocked) == "string" and { o.blocked } or o.blocked
    if type(list) ~= "table" then return fail("blocked must be a list of sum, account, comment") end
    local n = (rawlen or function(t) return #t end)(list)
    if n > 3 then return fail("blocked must be a list of sum, account, comment") end
    for i = 1, n do
      local name = rawget(list, i)
      if not BLOCKABLE[name] then return fail("blocked must be a list of sum, account, comment") end
      q[#q + 1] = e(string.format("blocked[%d]", i - 1)) .. "=" .. name
    end
  end
  if o.account_type ~= nil then
    if provider ~= "99999" then return fail("account_type is only for provider 99999") end
    if o.account_type ~= "phone" and o.account_type ~= "nickname" then
      return fail("account_type must be phone or nickname")
    end
    q[#q + 1] = e("extra['accountType']") .. "=" .. o.account_type
  end
  local url = "https://qiwi.com/payment/form/" .. provider
  if #q > 0 then url = url .. "?" .. table.concat(q, "&") end
  return url
end

return _M
