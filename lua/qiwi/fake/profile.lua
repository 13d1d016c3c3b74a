-- Profile, identification, limits, restrictions, identification downgrade
-- and nickname (docs: profile_en/profile_ru, payment_en "nickname").

return function(H)
  local json, U, C = H.json, H.U, H.C
  local format = string.format

  local LEVELS = { ANONYMOUS = true, SIMPLE = true, VERIFIED = true, FULL = true }

  -- Profile dates are UTC with milliseconds in QIWI's example ("…06.099Z").
  local function utc(t)
    local y, m, d, hh, mm, ss = U.parts(t, 0)
    return format("%04d-%02d-%02dT%02d:%02d:%02d.000Z", y, m, d, hh, mm, ss)
  end

  local SEEDED_PERSON = {
    birthDate = "1990-03-18", firstName = "Иван", middleName = "Иванович", lastName = "Иванов",
    passport = "4400111222", inn = "771234567890", snils = "", oms = "",
  }

  H.seeders[#H.seeders + 1] = function(f, st, now)
    local level = tostring(f:_opt("identification")):upper()
    if not LEVELS[level] then error("qiwi.fake.new: unknown identification level " .. level, 4) end
    st.ident = { level = level }
    if level == "VERIFIED" or level == "FULL" then st.ident.data = U.copy(SEEDED_PERSON) end
    st.downgrades = {}
    st.registered = now - 400 * 86400
  end

  -- Strictly "true"/"false", as the docs type these flags Boolean.
  local function flag(f, params, name)
    local v = params[name]
    if v == nil then return true end
    if v == "true" then return true end
    if v == "false" then return false end
    return nil, H.bad(f, "person-profile", name .. " must be true or false")
  end

  local function default_currency(f)
    local st = f.state
    local acc = st.default_alias and st.by_alias[st.default_alias]
    return acc and acc.currency or 643
  end

  H.route {
    method = "GET", path = "/person-profile/v1/profile/current", service = "person-profile",
    params = { "authInfoEnabled", "contractInfoEnabled", "userInfoEnabled" },
    handler = function(f, ctx)
      local out = {}
      local st = f.state
      local wallet = U.int(f.wallet)
      local a, s1, h1, b1 = flag(f, ctx.params, "authInfoEnabled")
      if a == nil then return s1, h1, b1 end
      local c, s2, h2, b2 = flag(f, ctx.params, "contractInfoEnabled")
      if c == nil then return s2, h2, b2 end
      local u, s3, h3, b3 = flag(f, ctx.params, "userInfoEnabled")
      if u == nil then return s3, h3, b3 end
      local now = f:now()
      if a then
        out.authInfo = {
          boundEmail = "fake@example.com", ip = "127.0.0.1", lastLoginDate = utc(now - 3600),
          mobilePinInfo = { lastMobilePinChange = utc(now - 40 * 86400), mobilePinUsed = true,
                            nextMobilePinChange = utc(now + 80 * 86400) },
          passInfo = { lastPassChange = utc(now - 10 * 86400), nextPassChange = utc(now + 20 * 86400),
                       passwordUsed = true },
          personId = wallet, pinInfo = { pinUsed = true }, registrationDate = utc(st.registered),
        }
      end
      if c then
        out.contractInfo = {
          blocked = false, contractId = wallet, creationDate = utc(st.registered),
          features = json.array(),
          identificationInfo = json.array { {
            bankAlias = "QIWI", identificationLevel = st.ident.level, passportExpired = false,
          } },
        }
      end
      if u then
        out.userInfo = {
          defaultPayCurrency = default_currency(f), defaultPaySource = 7, email = json.null,
          firstTxnId = st.first_txn or json.null, language = "ru", operator = "Beeline",
          phoneHash = "fakehash" .. string.sub(f.wallet, -4), promoEnabled = json.null,
        }
      end
      return H.ok(out)
    end,
  }

  -- The identification endpoint names levels SIMPLE/VERIFIED/FULL only.
  local function ident_type(level)
    if level == "ANONYMOUS" then return "SIMPLE" end
    return level
  end

  local FIELDS = { "birthDate", "firstName", "middleName", "lastName", "passport", "inn", "snils", "oms" }

  H.route {
    method = "GET", path = "/identification/v1/persons/{w}/identification", service = "identification",
    handler = function(f)
      local st = f.state
      local d = st.ident.data or {}
      local out = { id = U.int(f.wallet), type = ident_type(st.ident.level) }
      for _, k in ipairs(FIELDS) do
        local v = d[k]
        if v == nil then
          out[k] = json.null
        elseif k == "passport" or k == "inn" or k == "snils" or k == "oms" then
          out[k] = U.mask_middle(v)
        else
          out[k] = v
        end
      end
      return H.ok(out)
    end,
  }

  local DIGITS = { passport = { 10, 10 }, inn = { 10, 12 }, snils = { 11, 11 }, oms = { 16, 16 } }

  H.route {
    method = "POST", path = "/identification/v1/persons/{w}/identification", service = "identification",
    body = "json",
    handler = function(f, ctx)
      local b = ctx.json
      local function bad(msg) return H.bad(f, "identification", msg) end
      for _, k in ipairs { "birthDate", "firstName", "lastName", "passport" } do
        if type(b[k]) ~= "string" or b[k] == "" then return bad(k .. " is required (a non-empty string)") end
      end
      for _, k in ipairs { "middleName", "inn", "snils", "oms" } do
        if b[k] ~= nil and type(b[k]) ~= "string" then return bad(k .. " must be a string") end
      end
      if not U.valid_day(b.birthDate) then return bad("birthDate must be a date as YYYY-MM-DD") end
      for k, len in pairs(DIGITS) do
        local v = b[k]
        if v and v ~= "" and (not v:find("^%d+$") or #v < len[1] or #v > len[2]) then
          return bad(k .. " must be " .. (len[1] == len[2] and len[1] or (len[1] .. " or " .. len[2]))
            .. " digits")
        end
      end
      local st = f.state
      -- A passport of zeros stands for data that fails the check: the level stays.
      local verified = b.passport ~= "0000000000"
      local data = {}
      for _, k in ipairs(FIELDS) do data[k] = b[k] or "" end
      if verified and data.inn == "" then data.inn = "77" .. string.sub(b.passport, 1, 8) end
      if verified then
        if st.ident.level ~= "FULL" then st.ident.level = "VERIFIED" end
        st.ident.data = data
      end
      local out = { id = U.int(f.wallet), type = ident_type(st.ident.level) }
      for _, k in ipairs(FIELDS) do out[k] = data[k] end
      return H.ok(out)
    end,
  }

  -- Kopecks spent this Moscow month on the payments a limit type covers.
  local COVER = {
    TURNOVER = function(p) return p.type == "OUT" or p.type == "IN" end,
    PAYMENTS_P2P = function(p) return p.type == "OUT" and p.provider == 99 end,
    PAYMENTS_PROVIDER_INTERNATIONALS = function(p)
      local pr = C.providers[p.provider]
      return p.type == "OUT" and pr and pr.kind == "card_foreign"
    end,
    PAYMENTS_PROVIDER_PAYOUT = function(p)
      local pr = C.providers[p.provider]
      return p.type == "OUT" and pr and (pr.kind == "card" or pr.kind == "bank" or pr.kind == "requisites")
    end,
    WITHDRAW_CASH = function() return false end,
  }

  local function spent(f, kind, from, till)
    if kind == "REFILL" then
      local acc = f.state.by_alias.qw_wallet_rub
      return acc and acc.kopecks or 0
    end
    local total = 0
    for _, p in ipairs(f.state.payments) do
      if p.status == "SUCCESS" and p.currency == 643 and p.date >= from and p.date < till
        and COVER[kind](p) then
        total = total + p.sum + p.commission
      end
    end
    return total
  end

  local VALID_LIMIT = {}
  for _, t in ipairs(C.limit_types) do VALID_LIMIT[t] = true end

  H.route {
    method = "GET", path = "/qw-limits/v1/persons/{w}/actual-limits", service = "qw-limits",
    params = { "types[]" },
    handler = function(f, ctx)
      local types, err = U.indexed(ctx.params, "types")
      if not types then return H.bad(f, "qw-limits", err) end
      if #types == 0 then return H.bad(f, "qw-limits", "at least one types[i] is required") end
      for _, t in ipairs(types) do
        if not VALID_LIMIT[t] then return H.bad(f, "qw-limits", "unknown limit type " .. t) end
      end
      local from, till = U.month_bounds(f:now())
      local maxes = C.limits[f.state.ident.level]
      local list = json.array()
      for _, t in ipairs(types) do
        local max = maxes[t]
        local s = spent(f, t, from, till)
        local rest = max - s
        if rest < 0 then rest = 0 end
        list[#list + 1] = {
          type = t, currency = "RUB", max = U.amount(max), spent = U.amount(s), rest = U.amount(rest),
          interval = { dateFrom = U.date(from), dateTill = U.date(till) },
        }
      end
      return H.ok { limits = { RU = list } }
    end,
  }

  H.route {
    method = "GET", path = "/qw-limits/v1/persons/{w}/p2p-payment-count-limit", service = "qw-limits",
    handler = function(f)
      local from, till = U.month_bounds(f:now())
      local n = 0
      for _, p in ipairs(f.state.payments) do
        if p.type == "OUT" and p.provider == 99 and p.status ~= "ERROR" and p.date >= from and p.date < till then
          n = n + 1
        end
      end
      return H.ok { p2pPaymentCountLimit = n }
    end,
  }

  H.route {
    method = "GET", path = "/person-profile/v1/persons/{w}/status/restrictions", service = "person-profile",
    handler = function(f)
      local list = json.array()
      if f.state.restricted then
        list[1] = { restrictionCode = "OUTGOING_PAYMENTS",
                    restrictionDescription = "Исходящие платежи заблокированы" }
      end
      return H.ok(list)
    end,
  }

  local DG = "qw-ident-downgrade-api"
  local DG_PATH = "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations"

  local function operation(op)
    return { downgradeOperation = { downgradeOperationId = op.id, status = { type = op.status } } }
  end

  H.route {
    method = "POST", path = DG_PATH, service = DG, body = "json",
    handler = function(f, ctx)
      local level = ctx.json.identificationLevel
      if type(level) ~= "string" then
        return H.bad(f, DG, "identificationLevel is required (a string)")
      end
      if level ~= "VERIFIED" then
        return H.err(f, 422, DG, "downgrade.level.not.allowed", "Понижение до этого уровня невозможно",
          "identification can only be downgraded to VERIFIED")
      end
      if f.state.ident.level ~= "FULL" then
        return H.err(f, 422, DG, "downgrade.not.available", "Понижение уровня недоступно",
          "the wallet is " .. f.state.ident.level .. "; only FULL can be downgraded")
      end
      local op = { id = f:_next("downgrade"), status = "IN_PROGRESS", confirmed = false }
      f.state.downgrades[op.id] = op
      return H.ok { downgradeOperationId = op.id }
    end,
  }

  H.route {
    method = "PUT", path = DG_PATH .. "/{op}/confirm", service = DG, body = "json",
    handler = function(f, ctx)
      local op = f.state.downgrades[ctx.caps.op]
      if not op then return H.not_found(f, DG, "operation.not.found", "no downgrade operation " .. ctx.caps.op) end
      op.confirmed = true
      return H.ok(operation(op))
    end,
  }

  H.route {
    method = "GET", path = DG_PATH .. "/{op}", service = DG,
    handler = function(f, ctx)
      local op = f.state.downgrades[ctx.caps.op]
      if not op then return H.not_found(f, DG, "operation.not.found", "no downgrade operation " .. ctx.caps.op) end
      -- A confirmed operation completes by the time it is asked about.
      if op.confirmed and op.status == "IN_PROGRESS" then
        if f.state.ident.level == "FULL" then
          op.status = "SUCCESS"
          f.state.ident.level = "VERIFIED"
        else
          op.status = "FAIL"
        end
      end
      return H.ok(operation(op))
    end,
  }

  H.route {
    method = "GET", path = "/qw-nicknames/v1/persons/{w}/nickname", service = "qw-nicknames",
    handler = function(f)
      return H.ok { canChange = true, canUse = true, description = "", nickname = f.state.nickname }
    end,
  }

  -- Helpers ---------------------------------------------------------------

  -- Sets the identification level ("ANONYMOUS", "SIMPLE", "VERIFIED", "FULL").
  function H.methods.set_identification(f, level)
    level = tostring(level):upper()
    if not LEVELS[level] then error("qiwi.fake: unknown identification level " .. level, 2) end
    f.state.ident.level = level
    if (level == "VERIFIED" or level == "FULL") and not f.state.ident.data then
      f.state.ident.data = U.copy(SEEDED_PERSON)
    end
    return true
  end

  function H.methods.identification_level(f)
    return f.state.ident.level
  end
end
