-- Payments (docs: payment_en/_ru): commission, the generic
-- /sinap/api/v2/terms/{id}/payments with per-provider requisites, mobile
-- operator and card provider lookup, cross rates, provider search.
--
-- The sinap service answers errors as {"code":"QWPRC-<n>","message":…}. <n>
-- is the docs' payment error code where one fits (4 bad account, 5 no such
-- number, 220 not enough funds, 241 amount under 1 ruble, 303 bad phone,
-- 319 outgoing payments restricted, 166 wallet status too low); 400 marks a
-- malformed request, a case the docs give no code for. The docs have no code
-- of their own for the OUTGOING_PAYMENTS restriction: the fake answers it
-- with 319 and the docs' own text for 319 (wallet status does not allow the
-- payment), so that the English text a client shows for the code and the
-- Russian one here say the same thing.

return function(H)
  local json, U, C = H.json, H.U, H.C
  local floor, ceil = math.floor, math.ceil

  local SINAP = "sinap"

  local function e400(code, msg) return H.sinap_err(400, code, msg) end
  local RESTRICTED_TEXT = H.RESTRICTED_TEXT

  -- "+7…" or digits of a wallet / phone number in international format.
  local function wallet_number(s)
    if type(s) ~= "string" then return nil end
    local d = s:match("^%+?(%d+)$")
    if d and #d >= 10 and #d <= 15 then return d end
  end

  ---------------------------------------------------------------------------
  -- Lookups

  local function mobile_operator(phone)
    local best, len = nil, 0
    for _, e in ipairs(C.mobile_prefixes) do
      if phone:sub(1, #e[1]) == e[1] and #e[1] > len then best, len = e[2], #e[1] end
    end
    return best
  end

  local function card_provider(digits)
    local best, len = nil, 0
    for _, e in ipairs(C.card_bins) do
      if digits:sub(1, #e[1]) == e[1] and #e[1] > len then best, len = e[2], #e[1] end
    end
    return best
  end

  local function rate(from, to)
    for _, r in ipairs(C.rates) do
      if r[1] == from and r[2] == to then return r[3] end
    end
  end
  H.rate = rate

  -- ceil(k * rate) for a decimal-text rate, in integers only.
  local function convert(k, rate_text)
    local int, frac = rate_text:match("^(%d+)%.?(%d*)$")
    local scale = 10 ^ #frac
    local num = tonumber(int .. frac)
    local prod = k * num
    if prod >= 2 ^ 53 then return nil end
    return ceil(prod / scale)
  end

  ---------------------------------------------------------------------------
  -- Commission: the fake's tariff, the same for the estimate and the payment.

  local function percent(k, pct100) -- pct100: hundredths of a percent
    return ceil(k * pct100 / 10000)
  end

  local function commission(provider, account, k, fields)
    local p = C.providers[provider]
    local kind = p and p.kind or "service"
    local extra = (fields and fields.urgent == "1") and 2500 or 0
    if kind == "wallet" then
      local d = wallet_number(account)
      if d and #d == 11 and d:sub(1, 1) == "7" then return 0 end
      return percent(k, 100)
    elseif kind == "card" then
      return percent(k, 100) + 5000
    elseif kind == "card_foreign" then
      return percent(k, 200) + 10000
    elseif kind == "bank" or kind == "requisites" then
      local c = percent(k, 100)
      if c < 5000 then c = 5000 end
      return c + extra
    end
    return 0
  end
  H.commission = commission

  ---------------------------------------------------------------------------
  -- Request pieces shared by the commission and the payment

  local function check_method(pm)
    if type(pm) ~= "table" then return "paymentMethod is required (an object)" end
    if pm.type ~= "Account" then return 'paymentMethod.type must be the string "Account"' end
    if pm.accountId ~= "643" then return 'paymentMethod.accountId must be the string "643"' end
  end

  -- Amount object {amount=<number>, currency="<digits>"}: returns kopecks and
  -- the currency string, or nil and a message.
  local function check_money(obj, name)
    if type(obj) ~= "table" or json.is_array(obj) then return nil, name .. " is required (an object)" end
    if type(obj.amount) ~= "number" then return nil, name .. ".amount must be a JSON number" end
    local k = U.kopecks_from_text(json.number_text(obj, "amount") or tostring(obj.amount))
    if not k or k <= 0 then return nil, name .. ".amount must be positive (at least 0.01)" end
    if type(obj.currency) ~= "string" or not obj.currency:find("^%d%d%d$") then
      return nil, name .. '.currency must be a string currency code such as "643"'
    end
    return k, obj.currency
  end

  H.route {
    method = "POST", path = "/sinap/providers/{id}/onlineCommission", service = SINAP, body = "json",
    handler = function(_, ctx)
      local id = ctx.caps.id
      if not id:find("^%d+$") then return e400(400, "Идентификатор провайдера должен быть числом") end
      local b = ctx.json
      if type(b.account) ~= "string" or b.account == "" then
        return e400(400, "account is required (a string)")
      end
      local merr = check_method(b.paymentMethod)
      if merr then return e400(400, merr) end
      local pt = b.purchaseTotals
      if type(pt) ~= "table" then return e400(400, "purchaseTotals is required (an object)") end
      local k, cur = check_money(pt.total, "purchaseTotals.total")
      if not k then return e400(400, cur) end
      if cur ~= "643" then return e400(400, 'purchaseTotals.total.currency must be "643"') end
      local c = commission(tonumber(id), b.account, k)
      local function m(v) return { amount = U.amount(v), currency = "643" } end
      return H.ok {
        providerId = tonumber(id), withdrawSum = m(k + c), enrollmentSum = m(k), qwCommission = m(c),
        fundingSourceCommission = m(0), withdrawToEnrollmentRate = 1,
      }
    end,
  }

  ---------------------------------------------------------------------------
  -- Per-provider requisites. Each returns nil when fine, or code, message.

  local function required(fields, names)
    for _, n in ipairs(names) do
      if type(fields[n]) ~= "string" or fields[n] == "" then
        return 400, "fields." .. n .. " is required (a non-empty string)"
      end
    end
  end

  local check = {}

  function check.wallet(_, fields)
    if not wallet_number(fields.account) then
      return 4, "fields.account must be a wallet number (+7… or digits)"
    end
  end

  function check.mobile(_, fields, provider)
    local a = fields.account
    if not a:find("^%d+$") or #a ~= 10 then return 303, "Неверный номер телефона — должно быть 10 цифр" end
    local op = mobile_operator("7" .. a)
    if op ~= provider then
      return 5, "Номер 7" .. a .. " не обслуживается провайдером " .. provider
    end
  end

  local function card_digits(a)
    return a:find("^%d+$") and #a >= 13 and #a <= 19
  end

  function check.card(_, fields)
    if not card_digits(fields.account) then return 4, "fields.account must be the card number, digits only" end
  end

  function check.card_foreign(f, fields)
    local c, m = check.card(f, fields)
    if c then return c, m end
    return required(fields, { "rem_name", "rem_name_f", "rec_address", "rec_city", "rec_country",
                              "reg_name", "reg_name_f" })
  end

  function check.bank(_, fields, provider)
    local bank = C.banks[provider]
    local c, m = required(fields, { "account_type" })
    if c then return c, m end
    local t = fields.account_type
    if bank.card and t == bank.card then
      if not card_digits(fields.account) then return 4, "fields.account must be the card number, digits only" end
      if bank.exp then
        if type(fields.exp_date) ~= "string" or not fields.exp_date:find("^%d%d%d%d$")
          or tonumber(fields.exp_date:sub(1, 2)) < 1 or tonumber(fields.exp_date:sub(1, 2)) > 12 then
          return 400, "fields.exp_date is required for this bank, as MMYY"
        end
      end
      return
    end
    if not bank.accounts[t] then
      return 400, "fields.account_type " .. t .. " is not valid for provider " .. provider
    end
    if not fields.account:find("^%d+$") then return 4, "fields.account must be the account number, digits only" end
    c, m = required(fields, { "mfo", "lname", "fname" })
    if c then return c, m end
    if not fields.mfo:find("^%d%d%d%d%d%d%d%d%d$") then return 400, "fields.mfo must be a 9-digit BIK" end
    if fields.urgent ~= nil and fields.urgent ~= "0" and fields.urgent ~= "1" then
      return 400, 'fields.urgent must be "0" or "1"'
    end
    if bank.agrnum then
      c, m = required(fields, { "agrnum" })
      if c then return c, m end
    end
  end

  local CONST_1717 = {
    info = "Коммерческие организации", is_commercial = "1", requestProtocol = "qw1", toServiceId = "1717",
  }

  function check.requisites(_, fields)
    local c, m = required(fields, { "name", "extra_to_bik", "to_bik", "city", "info", "is_commercial",
      "to_name", "to_inn", "to_kpp", "nds", "goal", "urgent", "from_name", "from_name_f",
      "requestProtocol", "toServiceId" })
    if c then return c, m end
    for k, v in pairs(CONST_1717) do
      if fields[k] ~= v then return 400, "fields." .. k .. ' must be "' .. v .. '"' end
    end
    if fields.nds ~= "НДС не облагается" and fields.nds ~= "В т.ч. НДС" then
      return 400, 'fields.nds must be "НДС не облагается" or "В т.ч. НДС"'
    end
    if fields.urgent ~= "0" and fields.urgent ~= "1" then return 400, 'fields.urgent must be "0" or "1"' end
    if not fields.to_bik:find("^%d+$") or #fields.to_bik ~= 9 then return 400, "fields.to_bik must be a 9-digit BIK" end
    if not fields.to_inn:find("^%d+$") or (#fields.to_inn ~= 10 and #fields.to_inn ~= 12) then
      return 400, "fields.to_inn must be 10 or 12 digits"
    end
    if not fields.account:find("^%d+$") then return 4, "fields.account must be the account number, digits only" end
  end

  function check.conversion(f, fields)
    return check.wallet(f, fields)
  end

  -- Other modules add kinds (QIWI Master); they may also define `after`.
  H.sinap_kinds = check

  local function masked_fields(fields, provider)
    local out = U.copy(fields)
    local p = C.providers[provider]
    local kind = p and p.kind
    local bank = C.banks[provider]
    if kind == "card" or kind == "card_foreign" or (bank and bank.card and fields.account_type == bank.card) then
      out.account = U.mask_card(fields.account)
    end
    return out
  end

  -- Levels below VERIFIED may not send money out of QIWI (their limits are 0).
  local LOW = { ANONYMOUS = true, SIMPLE = true }
  local OUTSIDE = { wallet = true, card = true, card_foreign = true, bank = true, requisites = true }

  ---------------------------------------------------------------------------
  -- The payment

  H.route {
    method = "POST", path = "/sinap/api/v2/terms/{id}/payments", service = SINAP, body = "json",
    handler = function(f, ctx)
      local st = f.state
      local pid = ctx.caps.id
      if not pid:find("^%d+$") then return e400(400, "Идентификатор провайдера должен быть числом") end
      local provider = tonumber(pid)
      local b = ctx.json
      if type(b.id) ~= "string" or not b.id:find("^%d+$") or #b.id > 20 then
        return e400(400, "id must be a string of at most 20 digits")
      end
      -- A repeated client id answers the payment made first, not a new one.
      local prev = st.by_client_id[b.id]
      if prev then return H.ok(U.copy(prev)) end

      local k, cur = check_money(b.sum, "sum")
      if not k then return e400(400, cur) end
      local merr = check_method(b.paymentMethod)
      if merr then return e400(400, merr) end
      local fields = b.fields
      if type(fields) ~= "table" or json.is_array(fields) then return e400(400, "fields is required (an object)") end
      for name, v in pairs(fields) do
        if type(v) ~= "string" then return e400(400, "fields." .. name .. " must be a string") end
      end
      if type(fields.account) ~= "string" or fields.account == "" then
        return e400(400, "fields.account is required (a non-empty string)")
      end
      if b.comment ~= nil and type(b.comment) ~= "string" then return e400(400, "comment must be a string") end

      local p = C.providers[provider]
      local kind = p and p.kind or "service"
      if kind == "topup" then return e400(400, "Провайдер " .. provider .. " недоступен для платежей") end
      if kind == "card_kzt" then
        return e400(400, "Provider 27292 is paid through /sinap/api/terms/27292/payments")
      end
      if kind == "conversion" then
        if cur == "643" or not rate("643", cur) then
          return e400(400, "sum.currency " .. cur .. " cannot be bought with rubles")
        end
      elseif cur ~= "643" then
        return e400(400, 'sum.currency must be "643"')
      end
      if cur == "643" and k < 100 then return e400(241, "Сумма платежа должна быть больше 1 рубля") end
      local fn = check[kind]
      if fn then
        local code, msg = fn(f, fields, provider, k, b)
        if code then return e400(code, msg) end
      end
      if st.restricted then return e400(319, RESTRICTED_TEXT) end
      if LOW[st.ident.level] and OUTSIDE[kind] then
        return e400(166, "Ваш статус кошелька не позволяет совершить платеж. Повысьте статус кошелька.")
      end

      -- What leaves the ruble account.
      local debit, comm, rate_text = k, commission(provider, fields.account, k, fields), "1"
      if kind == "conversion" then
        rate_text = rate("643", cur)
        debit = convert(k, rate_text)
        if not debit then return e400(242, "Сумма платежа превышает максимально допустимую") end
        comm = 0
        local own = wallet_number(fields.account) == f.wallet
        if own and not H.account(f, tonumber(cur)) then
          return e400(400, "В кошельке нет счета в валюте " .. cur)
        end
      end
      local rub = H.account(f, 643)
      if not rub or rub.kopecks < debit + comm then
        return e400(220, "Недостаточно средств. Пополните кошелек")
      end
      rub.kopecks = rub.kopecks - debit - comm

      local shown = masked_fields(fields, provider)
      local rec = H.add_record(f, {
        date = floor(f:now()), type = "OUT", status = "SUCCESS", error_code = 0,
        trm_txn_id = b.id, account = shown.account, sum = debit, commission = comm, currency = 643,
        provider = provider, comment = b.comment or "", rate = rate_text, client_id = b.id,
      })
      if kind == "conversion" and wallet_number(fields.account) == f.wallet then
        H.credit(f, tonumber(cur), k)
        H.add_record(f, {
          date = rec.date, type = "IN", status = "SUCCESS", error_code = 0, trm_txn_id = b.id,
          account = "+" .. f.wallet, sum = k, commission = 0, currency = tonumber(cur), provider = 1099,
          comment = b.comment or "", rate = rate_text,
        })
      end
      local after = check[kind .. "_after"]
      if after then after(f, fields, rec) end

      local info = {
        id = b.id, terms = pid, fields = shown,
        sum = { amount = U.amount(k), currency = cur },
        transaction = { id = tostring(rec.txn_id), state = { code = "Accepted" } },
        source = "account_643",
      }
      if b.comment ~= nil then info.comment = b.comment end
      st.by_client_id[b.id] = info
      return H.ok(U.copy(info))
    end,
  }

  ---------------------------------------------------------------------------
  -- Transfer to a Kazakh bank card (docs: payment_ru only): a preparation
  -- request that tokenises the card, then a payment from the tenge account
  -- through the older /sinap/api/terms path.

  local KZT_INFO = "Для продолжения оплаты, подтвердите, что являетесь держателем указанного банковского счета."

  -- what both pages list under HEADERS besides Accept
  local KZT_HEADERS = { ["sec-fetch-site"] = "same-site", ["sec-fetch-mode"] = "cors", ["sec-fetch-dest"] = "empty" }

  local function kzt_token(f, card)
    return (U.base64(U.bytes(48, tonumber(card:sub(-9)) + #f.wallet)):gsub("[+/=]", ""))
  end

  H.route {
    method = "POST", path = "/sinap/api/refs/a42ebc79-0584-4271-b8a0-15cb4ea8b340/containers",
    service = SINAP, body = "json", accept = "application/vnd.qiwi.v1+json", headers = KZT_HEADERS,
    handler = function(f, ctx)
      local b = ctx.json
      if type(b.cardNumber) ~= "string" or not card_digits(b.cardNumber) then
        return e400(522, "Неверный номер карты")
      end
      if b.version ~= "2" or b.transferSum ~= "100" or b.src ~= "sinap" then
        return e400(400, 'version must be "2", transferSum "100" and src "sinap"')
      end
      local token = kzt_token(f, b.cardNumber)
      f.state.kzt_cards = f.state.kzt_cards or {}
      f.state.kzt_cards[token] = b.cardNumber
      return H.ok { elements = json.array {
        { type = "field", name = "account", value = U.mask_card(b.cardNumber) },
        { type = "field", name = "ev_account1", value = token },
      } }
    end,
  }

  H.route {
    method = "POST", path = "/sinap/api/terms/{id}/payments", service = SINAP, body = "json",
    accept = "application/vnd.qiwi.v2+json", headers = KZT_HEADERS,
    handler = function(f, ctx)
      local st = f.state
      if ctx.caps.id ~= "27292" then
        return H.sinap_err(404, 404, "Провайдер " .. ctx.caps.id .. " не найден")
      end
      local b = ctx.json
      if type(b.id) ~= "string" or not b.id:find("^%d+$") or #b.id > 20 then
        return e400(400, "id must be a string of at most 20 digits")
      end
      local prev = st.by_client_id[b.id]
      if prev then return H.ok(U.copy(prev)) end
      local k, cur = check_money(b.sum, "sum")
      if not k then return e400(400, cur) end
      if cur ~= "398" then return e400(400, 'sum.currency must be "398"') end
      local pm = b.paymentMethod
      if type(pm) ~= "table" or pm.type ~= "Account" or pm.accountId ~= "398" then
        return e400(400, 'paymentMethod must be {"type":"Account","accountId":"398"}')
      end
      local fields = b.fields
      if type(fields) ~= "table" or json.is_array(fields) then return e400(400, "fields is required (an object)") end
      local code, msg = required(fields, { "cardNumber", "version", "transferSum", "info", "accept", "account",
                                           "ev_account1" })
      if code then return e400(code, msg) end
      if fields.version ~= "2" or fields.transferSum ~= "100" or fields.accept ~= "1" or fields.info ~= KZT_INFO then
        return e400(400, 'fields.version must be "2", transferSum "100", accept "1" and info the documented text')
      end
      local card = st.kzt_cards and st.kzt_cards[fields.ev_account1]
      if card ~= fields.cardNumber or fields.account ~= U.mask_card(card) then
        return e400(400, "fields.account and fields.ev_account1 must come from the preparation request for this card")
      end
      if st.restricted then return e400(319, RESTRICTED_TEXT) end
      local acc = H.account(f, 398)
      if not acc or acc.kopecks < k then return e400(220, "Недостаточно средств. Пополните кошелек") end
      acc.kopecks = acc.kopecks - k
      local rec = H.add_record(f, {
        date = floor(f:now()), type = "OUT", status = "SUCCESS", error_code = 0, trm_txn_id = b.id,
        account = U.mask_card(card), sum = k, commission = 0, currency = 398, provider = 27292,
        comment = type(b.comment) == "string" and b.comment or "",
      })
      local shown = U.copy(fields)
      shown.cardNumber = U.mask_card(card)
      local info = {
        id = b.id, terms = "27292", fields = shown, sum = { amount = U.amount(k), currency = "398" },
        transaction = { id = tostring(rec.txn_id), state = { code = "Accepted" } }, source = "account_398",
      }
      if b.comment ~= nil then info.comment = b.comment end
      st.by_client_id[b.id] = info
      return H.ok(U.copy(info))
    end,
  }

  ---------------------------------------------------------------------------
  -- Lookups, rates, search

  local RESOLVER = "qw-mobile-providers-resolver"

  H.route {
    method = "GET", path = "/qw-mobile-providers-resolver/v1/providers", service = RESOLVER,
    params = { "phoneNumber" },
    handler = function(f, ctx)
      local phone = ctx.params.phoneNumber
      if phone == nil then return H.bad(f, RESOLVER, "phoneNumber is required") end
      if not phone:find("^7%d+$") or #phone ~= 11 then
        return H.bad(f, RESOLVER, "phoneNumber must be 11 digits starting with 7")
      end
      local id = mobile_operator(phone)
      if not id then
        return H.not_found(f, RESOLVER, "provider.not.found", "no mobile operator for " .. phone)
      end
      return H.ok { mobileOperatorProviderList = json.array { {
        id = id, shortName = C.providers[id].name,
        logoUrl = "https://static.qiwi.com/img/providers/logoBig/" .. id .. "_l.png",
      } } }
    end,
  }

  H.route {
    method = "POST", path = "/sinap/api/refs/bd6fb248-2bdf-49ed-bcb2-9b0a789cfde8/containers",
    service = SINAP, body = "json", accept = "application/vnd.qiwi.v1+json",
    handler = function(_, ctx)
      local a = ctx.json.account
      if type(a) ~= "string" then return e400(400, "account is required (a string)") end
      local digits = a:gsub(" ", "")
      if not digits:find("^%d+$") or #digits < 13 or #digits > 19 then
        return e400(522, "Неверный номер карты")
      end
      -- The docs want a space after every fourth digit.
      local spaced = digits:gsub("(%d%d%d%d)", "%1 "):gsub(" $", "")
      if a ~= spaced then
        return e400(400, "account must be the card number with a space after every 4 digits")
      end
      local id = card_provider(digits)
      if not id then return e400(522, "Неверный номер карты") end
      return H.ok { elements = json.array { { type = "field", name = "termsId", value = tostring(id) } } }
    end,
  }

  H.route {
    method = "GET", path = "/sinap/crossRates", service = SINAP,
    handler = function()
      local list = json.array()
      for _, r in ipairs(C.rates) do
        list[#list + 1] = { set = "General", from = r[1], to = r[2], rate = json.raw(r[3]) }
      end
      return H.ok { result = list }
    end,
  }

  local CATEGORY = {
    wallet = "Переводы", mobile = "Мобильная связь", card = "Переводы на карту",
    card_foreign = "Переводы на карту", bank = "Банковские переводы", requisites = "Банковские переводы",
    service = "Интернет, ТВ, IP-телефония", conversion = "Переводы", master = "QIWI Мастер",
    master_card = "QIWI Мастер", topup = "Пополнение",
  }

  H.route {
    method = "GET", path = "/search/v1/search", service = "search", params = { "query" },
    handler = function(f, ctx)
      local q = ctx.params.query
      if q == nil or q:find("^%s*$") then return H.bad(f, "search", "query is required") end
      local words = {}
      for w in U.lower(q):gmatch("%S+") do words[#words + 1] = w end
      local ids = {}
      for id in pairs(C.providers) do ids[#ids + 1] = id end
      table.sort(ids)
      local items = json.array()
      for _, id in ipairs(ids) do
        local p = C.providers[id]
        local hay = U.lower(p.name .. " " .. (p.keys or "") .. " " .. id)
        local all = true
        for _, w in ipairs(words) do
          if not hay:find(w, 1, true) then all = false break end
        end
        if all and p.kind ~= "topup" then
          items[#items + 1] = {
            name = p.name, description = p.name, uri = json.null,
            data = {
              id = id, logoUrl = "https://static.qiwi.com/img/providers/logoBig/" .. id .. "_l.png",
              siteUrl = json.null, category = { name = CATEGORY[p.kind] or "Прочее" }, type = "PROVIDER",
            },
          }
        end
      end
      return H.ok { items = items }
    end,
  }

  -- Helpers ---------------------------------------------------------------

  -- The PaymentInfo answered for a client payment id, or nil.
  function H.methods.payment_by_client_id(f, id)
    local info = f.state.by_client_id[tostring(id)]
    return info and U.copy(info)
  end
end
