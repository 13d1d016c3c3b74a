-- The payment helpers: each checks all of its own arguments first, so that
-- a bad argument never lets a lookup request out, then fills a row of `pay`
-- (qiwi.endpoints). Installed as client methods by qiwi.client.
local args = require "qiwi.args"
local endpoints = require "qiwi.endpoints"
local key_name = require("qiwi.options").key_name

local type, pairs, ipairs, next = type, pairs, ipairs, next

local Client = {}

-- What every payment helper takes besides its own options.
local EVERY_PAYMENT = { id = true, idempotency_key = true }

-- Returns a copy of the caller's options (taken by value, read with next so
-- that no metamethod of theirs runs), or nil, err.
local function options(self, name, o, allowed, path)
  if type(o) ~= "table" then
    return nil, self:_error { kind = "argument", message = name .. " takes an options table",
                              method = "POST", path = path, retryable = false }
  end
  local copy = {}
  for k, v in next, o do
    if not allowed[k] and not EVERY_PAYMENT[k] then
      return nil, self:_error { kind = "argument", message = "unknown option '" .. key_name(k) .. "'",
                                method = "POST", path = path, retryable = false }
    end
    copy[k] = v
  end
  return copy
end

local PAY_PATH = endpoints.pay.path

local function arg_error(self, message, path)
  return nil, self:_error { kind = "argument", message = message, method = "POST", path = path or PAY_PATH,
                            retryable = false }
end

local function check_common(self, o, path)
  local ok, err = args.amount(o.amount)
  if not ok then return arg_error(self, "amount " .. (o.amount == nil and "is required" or err), path) end
  if o.id ~= nil then
    ok, err = args.digits(o.id, { max = 20 })
    if not ok then return arg_error(self, "id " .. err, path) end
  end
  if o.idempotency_key ~= nil then
    ok, err = args.idempotency_key(o.idempotency_key)
    if not ok then return arg_error(self, "idempotency_key " .. err, path) end
    if o.id ~= nil then return arg_error(self, "give id or idempotency_key, not both", path) end
  end
  -- before any lookup goes out (the wallet from profile, for one)
  if o.comment ~= nil then
    ok, err = args.string(o.comment, { max = 500, empty = true })
    if not ok then return arg_error(self, "comment " .. err, path) end
  end
  return true
end

local function pay(self, provider, o)
  return self:_call(endpoints.pay, "pay", provider, o)
end

function Client:transfer(o)
  local err
  o, err = options(self, "transfer", o, { to = true, amount = true, comment = true }, PAY_PATH)
  if not o then return nil, err end
  local to
  to, err = args.wallet(o.to)
  if not to then return arg_error(self, "to " .. (o.to == nil and "is required" or err)) end
  -- provider 99 wants the wallet in international format with '+'
  return pay(self, 99, { account = "+" .. to, amount = o.amount, comment = o.comment, id = o.id,
                          idempotency_key = o.idempotency_key })
end

function Client:convert(o)
  local err
  o, err = options(self, "convert", o, { to = true, amount = true, currency = true, comment = true }, PAY_PATH)
  if not o then return nil, err end
  local cur = args.currency(o.currency)
  if not cur or cur == "643" then return arg_error(self, "currency must be 398, 840 or 978 (the account to convert into)") end
  local ok, cerr = check_common(self, o)
  if not ok then return nil, cerr end
  local to = o.to
  if to == nil then
    local w, werr = self:_wallet()
    if not w then return nil, werr end
    to = w
  end
  local wallet, werr = args.wallet(to)
  if not wallet then return arg_error(self, "to " .. werr) end
  return pay(self, 1099, { account = "+" .. wallet, amount = o.amount, currency = cur, id = o.id, comment = o.comment,
                          idempotency_key = o.idempotency_key })
end

function Client:pay_mobile(o)
  local err
  o, err = options(self, "pay_mobile", o, { phone = true, amount = true }, PAY_PATH)
  if not o then return nil, err end
  local phone, perr = args.phone(o.phone)
  if not phone or #phone ~= 11 or phone:sub(1, 1) ~= "7" then
    return arg_error(self, "phone " .. (perr or "must be 11 digits starting with 7 (Russia, Kazakhstan)"))
  end
  local ok, cerr = check_common(self, o)
  if not ok then return nil, cerr end
  local found, ferr = self:detect_mobile(phone)
  if not found then return nil, ferr end
  local list = type(found) == "table" and found.mobileOperatorProviderList
  local provider = type(list) == "table" and type(list[1]) == "table" and list[1].id
  if provider == nil then
    return nil, self:_error { kind = "api", message = "no mobile operator found for this number",
                              method = "GET", path = endpoints.detect_mobile.path, retryable = false }
  end
  -- the operator is paid the 10-digit number, without the country code
  return pay(self, provider, { account = phone:sub(2), amount = o.amount, id = o.id,
                          idempotency_key = o.idempotency_key })
end

function Client:pay_card(o)
  local err
  o, err = options(self, "pay_card", o, { card = true, amount = true, fields = true }, PAY_PATH)
  if not o then return nil, err end
  local card, cerr = args.card(o.card)
  if not card then return arg_error(self, "card " .. (o.card == nil and "is required" or cerr)) end
  local ok, aerr = check_common(self, o)
  if not ok then return nil, aerr end
  if o.fields ~= nil then
    local f, ferr = args.fields(o.fields)
    if not f then return arg_error(self, "fields " .. ferr) end
  end
  local found, derr = self:detect_card(card)
  if not found then return nil, derr end
  local provider
  for _, el in ipairs(type(found) == "table" and type(found.elements) == "table" and found.elements or {}) do
    if type(el) == "table" and el.name == "termsId" then provider = el.value end
  end
  if provider == nil or not args.digits(provider) then
    return nil, self:_error { kind = "api", message = "no card provider found for this card",
                              method = "POST", path = endpoints.detect_card.path, retryable = false }
  end
  return pay(self, provider, { account = card, amount = o.amount, fields = o.fields, id = o.id,
                          idempotency_key = o.idempotency_key })
end

-- Transfer to a Kazakh bank card (payment_ru #cards-kzt): the preparation
-- request (endpoints.prepare_card_kzt) gives the card's account and
-- ev_account1, then provider 27292 is paid in tenge from the KZT account,
-- on the path without v2 and with the Accept the page shows. The fixed
-- fields are the page's "always" values.
local KZT_INFO = "Для продолжения оплаты, подтвердите, что являетесь держателем указанного банковского счета."
local KZT_PAY = {
  method = "POST", path = "/sinap/api/terms/27292/payments", args = { "opts" }, payment = true,
  idempotent = true, accept = "application/vnd.qiwi.v2+json", headers = endpoints.prepare_card_kzt.headers,
  const = { { "body.sum.currency", "398" }, { "body.paymentMethod.type", "Account" },
            { "body.paymentMethod.accountId", "398" }, { "body.fields.version", "2" },
            { "body.fields.transferSum", "100" }, { "body.fields.info", KZT_INFO }, { "body.fields.accept", "1" } },
  params = {
    { "id", "id", "body", "digits", generate = "id", spec = { max = 20 } },
    { "idempotency_key", nil, "none", "idempotency_key" },
    { "amount", "sum.amount", "body", "amount", required = true },
    { "card", "fields.cardNumber", "body", "card", required = true },
    { "account", "fields.account", "body", "string", required = true, spec = { max = 100 } },
    { "ev_account1", "fields.ev_account1", "body", "string", required = true, spec = { max = 4096 } },
    { "comment", "comment", "body", "string", spec = { max = 500, empty = true } },
  },
}

function Client:pay_card_kzt(o)
  local path = KZT_PAY.path
  local err
  o, err = options(self, "pay_card_kzt", o, { card = true, amount = true, comment = true }, path)
  if not o then return nil, err end
  local card, cerr = args.card(o.card)
  if not card then return arg_error(self, "card " .. (o.card == nil and "is required" or cerr), path) end
  local ok, aerr = check_common(self, o, path)
  if not ok then return nil, aerr end
  local prep, perr = self:prepare_card_kzt(card)
  if not prep then return nil, perr end
  local found = {}
  for _, el in ipairs(type(prep) == "table" and type(prep.elements) == "table" and prep.elements or {}) do
    if type(el) == "table" and type(el.value) == "string" and el.value ~= "" then found[el.name] = el.value end
  end
  if not found.account or not found.ev_account1 then
    return nil, self:_error { kind = "api", retryable = false, method = "POST", path = endpoints.prepare_card_kzt.path,
                              message = "the preparation answer has no account and ev_account1 for this card" }
  end
  return self:_call(KZT_PAY, "pay_card_kzt", { card = card, amount = o.amount, account = found.account,
    ev_account1 = found.ev_account1, comment = o.comment, id = o.id, idempotency_key = o.idempotency_key })
end

local BANK_FIELDS = { "account", "account_type", "exp_date", "mfo", "lname", "fname", "mname", "urgent" }

local function flag(v)
  if v == true or v == 1 or v == "1" then return "1" end
  if v == false or v == 0 or v == "0" then return "0" end
  return nil
end

function Client:bank_transfer(provider_id, o)
  local allowed = { amount = true }
  for _, k in ipairs(BANK_FIELDS) do allowed[k] = true end
  local err
  o, err = options(self, "bank_transfer", o, allowed, PAY_PATH)
  if not o then return nil, err end
  local fields = {}
  for _, k in ipairs(BANK_FIELDS) do
    local v = o[k]
    if k == "urgent" and v ~= nil then
      v = flag(v)
      if not v then return arg_error(self, "urgent must be a boolean, 0 or 1") end
    end
    if type(v) == "number" and args.is_integer(v) then v = string.format("%d", v) end
    if v ~= nil then
      local s, serr = args.string(v, { max = 100 })
      if not s then return arg_error(self, k .. " " .. serr) end
      fields[k] = s
    end
  end
  if not fields.account then return arg_error(self, "account is required") end
  if fields.exp_date and not fields.exp_date:find("^%d%d%d%d$") then
    return arg_error(self, "exp_date must be MMYY, like 0218")
  end
  return pay(self, provider_id, { fields = fields, amount = o.amount, id = o.id,
                          idempotency_key = o.idempotency_key })
end

local REQUISITES = { "name", "to_bik", "city", "to_name", "to_inn", "to_kpp", "nds", "goal", "urgent",
                     "account", "from_name", "from_name_p", "from_name_f" }
local REQUISITES_REQUIRED = { name = true, to_bik = true, city = true, to_name = true, to_inn = true,
                              nds = true, goal = true, account = true }
-- The service fields of provider 1717 have one value each in QIWI's docs; a
-- user who copies the docs' field set passes them too, and gets an error
-- only when one differs from what QIWI wants. extra_to_bik repeats to_bik.
local REQUISITES_CONSTANT = { info = "Коммерческие организации", is_commercial = "1",
                              requestProtocol = "qw1", toServiceId = "1717" }

function Client:pay_by_requisites(o)
  local allowed = { amount = true, extra_to_bik = true }
  for _, k in ipairs(REQUISITES) do allowed[k] = true end
  for k in pairs(REQUISITES_CONSTANT) do allowed[k] = true end
  local err
  o, err = options(self, "pay_by_requisites", o, allowed, PAY_PATH)
  if not o then return nil, err end
  local fields = {}
  for _, k in ipairs(REQUISITES) do
    local v = o[k]
    if k == "urgent" then
      v = flag(v == nil and false or v)
      if not v then return arg_error(self, "urgent must be a boolean, 0 or 1") end
    elseif k == "nds" and type(v) == "boolean" then
      -- QIWI wants the VAT flag as one of two Russian phrases
      v = v and "В т.ч. НДС" or "НДС не облагается"
    end
    if v == nil then
      if REQUISITES_REQUIRED[k] then return arg_error(self, k .. " is required") end
    else
      if type(v) == "number" and args.is_integer(v) then v = string.format("%d", v) end
      local s, serr = args.string(v, { max = 500 })
      if not s then return arg_error(self, k .. " " .. serr) end
      fields[k] = s
    end
  end
  for _, k in ipairs { "to_bik", "to_inn", "account" } do
    if not fields[k]:find("^%d+$") then return arg_error(self, k .. " must contain digits only") end
  end
  for k, want in pairs(REQUISITES_CONSTANT) do
    local v = o[k]
    if k == "is_commercial" and v ~= nil then v = flag(v) or v end
    if type(v) == "number" and args.is_integer(v) then v = string.format("%d", v) end
    if v ~= nil and v ~= want then return arg_error(self, k .. " must be \"" .. want .. "\" (QIWI's constant)") end
    fields[k] = want
  end
  local extra = o.extra_to_bik
  if type(extra) == "number" and args.is_integer(extra) then extra = string.format("%d", extra) end
  if extra ~= nil and extra ~= fields.to_bik then return arg_error(self, "extra_to_bik must equal to_bik") end
  fields.extra_to_bik = fields.to_bik
  return pay(self, 1717, { fields = fields, amount = o.amount, id = o.id,
                          idempotency_key = o.idempotency_key })
end

-- QIWI Master: the paid steps are payments to providers 28004 and 32064.
function Client:submit_card_order(order_id)
  local res, err = self:_call(endpoints.submit_card_order, "submit_card_order", order_id)
  if res and type(res) == "table" and res.status == "PAYMENT_REQUIRED" and type(res.price) == "table" then
    self._order_prices = self._order_prices or {}
    self._order_prices[order_id] = res.price.amount
  end
  return res, err
end

function Client:buy_card(order_id, o)
  local err
  o, err = options(self, "buy_card", o or {}, { amount = true }, PAY_PATH)
  if not o then return nil, err end
  if not args.uuid(order_id) then return arg_error(self, "order_id must be a UUID like 920fa383-6209-4743-a5d1-883f473f7f95") end
  local amount = o.amount or (self._order_prices and self._order_prices[order_id])
  if amount == nil then
    return arg_error(self, "amount is required (the price from submit_card_order)"
      .. " when the order was not submitted by this client")
  end
  local ok, cerr = check_common(self, { amount = amount, id = o.id,
                          idempotency_key = o.idempotency_key })
  if not ok then return nil, cerr end
  local w, werr = self:_wallet()
  if not w then return nil, werr end
  return pay(self, 32064, { fields = { account = w, order_id = order_id }, amount = amount, id = o.id,
                          idempotency_key = o.idempotency_key })
end

-- 2999 roubles is the package price in QIWI's docs; pass amount if it changes.
function Client:buy_master_package(o)
  local err
  o, err = options(self, "buy_master_package", o or {}, { amount = true, comment = true }, PAY_PATH)
  if not o then return nil, err end
  local amount = o.amount or 2999
  local ok, cerr = check_common(self, { amount = amount, id = o.id, comment = o.comment,
                          idempotency_key = o.idempotency_key })
  if not ok then return nil, cerr end
  local w, werr = self:_wallet()
  if not w then return nil, werr end
  return pay(self, 28004, { fields = { account = w, vas_alias = "qvc-master" }, amount = amount,
                            comment = o.comment, id = o.id,
                          idempotency_key = o.idempotency_key })
end

return Client
