-- QIWI Master (docs: master_ru only): the package purchase (provider 28004),
-- card orders (free up to five cards, then paid through provider 32064), the
-- card list, statement, block/unblock, details, rename.
--
-- The card id in paths is the list's qvx.id (the docs' path examples are
-- 8-9 digit numbers like qvx.id; qvx.cardId is a 19-digit transaction-like
-- number). Order submission returns that id as cardId.

return function(H)
  local json, U = H.json, H.U
  local floor, format = math.floor, string.format

  local CARDS = "cards"
  local FREE_CARDS = 5
  local PACKAGE_PRICE = 299900
  local CARD_PRICE = 9900
  local CARD_TYPES = { ["qvc-cpa"] = "QVC_CPA", ["qvc-cpa-debit"] = "QVC_CPA_DEBIT" }

  local function issue(f, card_type)
    local m = f.state.master
    m.seq = m.seq + 1
    local n = m.seq
    local now = floor(f:now())
    local pan = format("4890%04d%08d", 4000 + n, (n * 7919 + tonumber(f.wallet:sub(-6))) % 100000000)
    local card = {
      id = 133789471 + n, card_id = format("20012911105762%05d", n), pan = pan,
      cvv = format("%03d", (n * 379) % 1000), status = "ACTIVE", expire = now + 2 * 365 * 86400,
      alias = "Карта " .. n, card_type = card_type or "qvc-cpa", activated = now, sms = now + 60,
    }
    m.cards[#m.cards + 1] = card
    m.by_id[card.id] = card
    return card
  end

  H.seeders[#H.seeders + 1] = function(f, st)
    local n = tonumber(f.opts.master_cards) or 0
    st.master = { active = f.opts.master == true or n > 0, cards = {}, by_id = {}, orders = {}, seq = 0, issued = 0 }
    for _ = 1, n do
      issue(f)
      st.master.issued = st.master.issued + 1
    end
  end

  local function date_or_null(t) return t and U.date(t) or json.null end

  local function card_json(c)
    local y, m = U.parts(c.expire, U.MSK)
    local ny, nm = y, m + 1
    if nm == 13 then ny, nm = y + 1, 1 end
    return {
      qvx = {
        id = c.id, maskedPan = "****" .. c.pan:sub(-4), status = c.status,
        cardExpire = U.date(U.time(ny, nm, 1, 0, 0, 0) - 86400), cardType = "VIRTUAL",
        cardAlias = c.alias, cardLimit = json.null, activated = U.date(c.activated),
        smsResended = U.date(c.sms), postNumber = json.null, blockedDate = date_or_null(c.blocked),
        fullPan = json.null, cardId = json.raw(c.card_id), txnId = c.card_id,
        cardExpireMonth = format("%02d", m), cardExpireYear = tostring(y),
        unblockAvailable = c.status == "BLOCKED",
      },
      balance = json.null,
      info = {
        id = 12, name = "Виртуальная карта QIWI", alias = c.card_type,
        price = { amount = U.amount(CARD_PRICE), currency = 643 }, period = "за год",
        type = CARD_TYPES[c.card_type] or "QVC_CPA",
        details = {
          info = "99 ₽, действует 1 год", description = "",
          tariffLink = "https://static.qiwi.com/qcms/files/1582791401478_5_JJ5vJe1L0szXzKb.pdf",
          offerLink = "https://static.qiwi.com/ru/doc/qvc.pdf",
          features = json.array { "Покупки без комиссии" },
          requisites = json.array {
            { name = "Получатель", value = "КИВИ Банк (АО)" },
            { name = "БИК", value = "044525416" },
          },
        },
        features = json.array(),
      },
    }
  end

  H.route {
    method = "GET", path = "/cards/v1/cards", service = CARDS, params = { "vas-alias" }, trailing_slash = true,
    handler = function(f, ctx)
      local v = ctx.params["vas-alias"]
      if v == nil then return H.bad(f, CARDS, "vas-alias is required") end
      if v ~= "qvc-master" then return H.bad(f, CARDS, "vas-alias must be qvc-master") end
      local list = json.array()
      for _, c in ipairs(f.state.master.cards) do list[#list + 1] = card_json(c) end
      return H.ok(list)
    end,
  }

  local function order_json(o)
    return {
      id = o.id, cardAlias = o.card_type, status = o.status,
      price = o.price and { amount = U.amount(o.price), currency = 643 } or json.null,
      cardId = o.card_id or json.null,
    }
  end

  H.route {
    method = "POST", path = "/cards/v2/persons/{w}/orders", service = CARDS, body = "json",
    handler = function(f, ctx)
      local alias = ctx.json.cardAlias
      if type(alias) ~= "string" then return H.bad(f, CARDS, "cardAlias is required (a string)") end
      if not CARD_TYPES[alias] then return H.bad(f, CARDS, "cardAlias must be qvc-cpa or qvc-cpa-debit") end
      if not f.state.master.active then
        return H.err(f, 422, CARDS, "package.not.found", "Пакет QIWI Мастер не подключен",
          "buy the QIWI Master package (provider 28004) first")
      end
      local o = { id = f:_next("order"), card_type = alias, status = "DRAFT" }
      f.state.master.orders[o.id] = o
      return H.ok(order_json(o))
    end,
  }

  local function complete(f, o)
    local m = f.state.master
    local c = issue(f, o.card_type)
    m.issued = m.issued + 1
    o.status, o.card_id = "COMPLETED", tostring(c.id)
    return c
  end

  H.route {
    method = "PUT", path = "/cards/v2/persons/{w}/orders/{order}/submit", service = CARDS,
    handler = function(f, ctx)
      local m = f.state.master
      local o = m.orders[ctx.caps.order]
      if not o then return H.not_found(f, CARDS, "order.not.found", "no order " .. ctx.caps.order) end
      if o.status == "DRAFT" then
        if m.issued < FREE_CARDS then
          o.price = 0
          complete(f, o)
        else
          o.price, o.status = CARD_PRICE, "PAYMENT_REQUIRED"
        end
      end
      return H.ok(order_json(o))
    end,
  }

  local function card_of(f, ctx)
    local id = ctx.caps.card
    if not id:find("^%d+$") then return nil, H.bad(f, CARDS, "card id must be an integer") end
    local c = f.state.master.by_id[tonumber(id)]
    if not c then return nil, H.not_found(f, CARDS, "card.not.found", "no card " .. id) end
    return c
  end

  H.route {
    method = "GET", path = "/payment-history/v1/persons/{w}/cards/{card}/statement", service = "payment-history",
    params = { "from", "till" }, binary = true,
    handler = function(f, ctx)
      local p = ctx.params
      if p.from == nil or p.till == nil then return H.bad(f, "payment-history", "from and till are required") end
      local from, ferr = U.parse_date(p.from)
      if not from then return H.bad(f, "payment-history", "from: " .. ferr) end
      local till, terr = U.parse_date(p.till)
      if not till then return H.bad(f, "payment-history", "till: " .. terr) end
      if from > till then return H.bad(f, "payment-history", "from is after till") end
      if till - from > 90 * 86400 then
        return H.bad(f, "payment-history", "a statement covers at most 90 days")
      end
      local c, s, h, b = card_of(f, ctx)
      if not c then return s, h, b end
      return H.bytes("application/pdf", H.pdf("QIWI Master statement card " .. c.id .. " "
        .. U.date(from) .. " - " .. U.date(till)))
    end,
  }

  H.route {
    method = "PUT", path = "/cards/v2/persons/{w}/cards/{card}/block", service = CARDS,
    handler = function(f, ctx)
      local c, s, h, b = card_of(f, ctx)
      if not c then return s, h, b end
      if c.status ~= "BLOCKED" then
        c.status, c.blocked = "BLOCKED", floor(f:now())
      end
      -- As documented: 202 with a JSON content type and no body.
      return H.empty(202, { ["content-type"] = "application/json" })
    end,
  }

  local function confirmation(status)
    return { status = status, nextConfirmationRequest = json.null, confirmationId = json.null,
             operationId = json.null }
  end

  H.route {
    method = "PUT", path = "/cards/v2/persons/{w}/cards/{card}/unblock", service = CARDS,
    handler = function(f, ctx)
      local c, s, h, b = card_of(f, ctx)
      if not c then return s, h, b end
      if c.status == "BLOCKED" then
        -- "Unblocking is available within 90 days of blocking through the API."
        if f:now() - c.blocked > 90 * 86400 then return H.ok(confirmation("FAIL")) end
        c.status, c.blocked = "ACTIVE", nil
      end
      return H.ok(confirmation("OK"))
    end,
  }

  H.route {
    method = "PUT", path = "/cards/v1/cards/{card}/details", service = CARDS, body = "json",
    handler = function(f, ctx)
      if not U.is_uuid(ctx.json.operationId) then
        return H.bad(f, CARDS, "operationId is required (a UUID)")
      end
      local c, s, h, b = card_of(f, ctx)
      if not c then return s, h, b end
      if c.status ~= "ACTIVE" then
        return H.ok { status = "FAIL", cvv = json.null, pan = json.null, errorCode = "CARD_BLOCKED" }
      end
      return H.ok { status = "OK", cvv = c.cvv, pan = c.pan, errorCode = "0" }
    end,
  }

  H.route {
    method = "PUT", path = "/cards/v1/cards/{card}/alias", service = CARDS, body = "json",
    handler = function(f, ctx)
      local alias = ctx.json.alias
      if type(alias) ~= "string" or alias == "" then return H.bad(f, CARDS, "alias is required (a non-empty string)") end
      local c, s, h, b = card_of(f, ctx)
      if not c then return s, h, b end
      c.alias = alias
      return H.ok { status = "OK", error = "OK", errorCode = "OK" }
    end,
  }

  -- The paid steps go through the generic sinap payment (payments.lua).
  local kinds = H.sinap_kinds

  local function own_wallet(f, fields)
    local d = fields.account:match("^%+?(%d+)$")
    if d ~= f.wallet then return 4, "fields.account must be your wallet number" end
  end

  function kinds.master(f, fields, _, k)
    local code, msg = own_wallet(f, fields)
    if code then return code, msg end
    if fields.vas_alias ~= "qvc-master" then return 400, 'fields.vas_alias must be "qvc-master"' end
    if k ~= PACKAGE_PRICE then
      return 400, "the QIWI Master package costs " .. U.amount_text(PACKAGE_PRICE) .. " RUB"
    end
  end

  function kinds.master_after(f)
    f.state.master.active = true
  end

  function kinds.master_card(f, fields, _, k)
    local code, msg = own_wallet(f, fields)
    if code then return code, msg end
    local o = type(fields.order_id) == "string" and f.state.master.orders[fields.order_id]
    if not o then return 400, "fields.order_id is not an order of this wallet" end
    if o.status ~= "PAYMENT_REQUIRED" then return 400, "order " .. o.id .. " is " .. o.status .. ", not PAYMENT_REQUIRED" end
    if k ~= o.price then return 400, "the card costs " .. U.amount_text(o.price) .. " RUB" end
  end

  function kinds.master_card_after(f, fields)
    complete(f, f.state.master.orders[fields.order_id])
  end

  -- Helpers ---------------------------------------------------------------

  -- The QIWI Master cards: list of {id=, status=, alias=, pan=, cvv=, card_type=}.
  function H.methods.master_cards(f)
    local out = {}
    for i, c in ipairs(f.state.master.cards) do
      out[i] = { id = c.id, status = c.status, alias = c.alias, pan = c.pan, cvv = c.cvv, card_type = c.card_type }
    end
    return out
  end

  -- Whether the QIWI Master package is active; set_master(true/false) changes it.
  function H.methods.master_active(f)
    return f.state.master.active
  end

  function H.methods.set_master(f, on)
    f.state.master.active = on ~= false
    return true
  end

  -- The state of a card order: {id=, status=, card_id=, price=} or nil.
  function H.methods.card_order(f, id)
    local o = f.state.master.orders[id]
    return o and { id = o.id, status = o.status, card_id = o.card_id,
                   price = o.price and U.amount_number(o.price) } or nil
  end
end
