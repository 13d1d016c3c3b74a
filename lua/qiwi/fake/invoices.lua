-- Invoices (docs: payment_en/_ru "Invoices"): P2P key pair creation and the
-- bills issued to the wallet: search, pay, reject. The bill endpoints take
-- the P2P SecretKey when the fake was given `p2p_secret_key` (or a key pair
-- was created through the API), the API token otherwise.

return function(H)
  local json, U = H.json, H.U
  local floor, format = math.floor, string.format

  local CHECKOUT = "checkout-api"
  local WIDGETS = "widgets-api"

  local MERCHANTS = {
    { id = 480706, short = "Интернет-магазин цветов", long = "ООО «Цветы»" },
    { id = 512077, short = "Книжный магазин", long = "ООО «Книги»" },
    { id = 613003, short = "Онлайн-кинотеатр", long = "ООО «Кино»" },
  }

  local function new_bill(st, spec)
    st.next_bill = st.next_bill + 1
    local m = MERCHANTS[(st.next_bill % #MERCHANTS) + 1]
    local b = {
      id = spec.id or st.next_bill, external_id = spec.external_id or tostring(154140600 + st.next_bill),
      creation = spec.creation, expiration = spec.expiration, currency = spec.currency or 643,
      kopecks = spec.kopecks, status = "READY_FOR_PAY",
      provider = {
        id = spec.provider_id or m.id, short_name = spec.short_name or m.short,
        long_name = spec.long_name or m.long,
      },
      comment = spec.comment or ("Пополнение счета " .. (13515570 + st.next_bill)),
    }
    b.provider.logo_url = "https://static.qiwi.com/img/providers/logoBig/" .. b.provider.id .. "_l.png"
    st.bills[#st.bills + 1] = b
    st.bill_by_id[b.id] = b
    return b
  end

  H.seeders[#H.seeders + 1] = function(f, st, now)
    st.bills, st.bill_by_id, st.next_bill = {}, {}, 1063702400
    st.p2p_keys = {}
    -- Oldest first, so that ids grow with the creation time.
    for i = tonumber(f:_opt("bills")) or 0, 1, -1 do
      new_bill(st, {
        creation = (now - i * 86400) * 1000 + i * 37, expiration = (now + 30 * 86400) * 1000,
        kopecks = 10000 * i + 50 * (i % 2),
      })
    end
  end

  local function bill_json(b)
    return {
      id = b.id, external_id = b.external_id, creation_datetime = b.creation,
      expiration_datetime = b.expiration, sum = { currency = b.currency, amount = U.amount(b.kopecks) },
      status = b.status, type = "MERCHANT", repetitive = false,
      provider = { id = b.provider.id, short_name = b.provider.short_name,
                   long_name = b.provider.long_name, logo_url = b.provider.logo_url },
      comment = b.comment,
      pay_url = format("https://oplata.qiwi.com/form?shop=%d&transaction=%d", b.provider.id, b.id),
    }
  end

  local function now_ms(f)
    return floor(f:now()) * 1000
  end

  -- Bills past their expiration are no longer payable.
  local function expire(f)
    local t = now_ms(f)
    for _, b in ipairs(f.state.bills) do
      if b.status == "READY_FOR_PAY" and b.expiration < t then b.status = "EXPIRED" end
    end
  end

  local B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

  H.route {
    method = "POST", path = "/widgets-api/api/p2p/protected/keys/create", service = WIDGETS, body = "json",
    handler = function(f, ctx)
      local b = ctx.json
      if type(b.keysPairName) ~= "string" or b.keysPairName == "" then
        return H.bad(f, WIDGETS, "keysPairName is required (a non-empty string)")
      end
      local url = b.serverNotificationsUrl
      if url ~= nil and (type(url) ~= "string" or not url:find("^https?://[^/%s]+")) then
        return H.bad(f, WIDGETS, "serverNotificationsUrl must be an http(s) URL")
      end
      local st = f.state
      local n = #st.p2p_keys + 1
      local site = f:_next("site")
      local secret_hex = U.uuid(n, "p2p-secret" .. f.wallet):gsub("-", "")
      local secret = U.base64(json.encode {
        version = "P2P", data = { payin_merchant_site_uid = site:sub(1, 6), user_id = f.wallet,
                                  secret = secret_hex },
      })
      local raw = U.bytes(96, n * 7919 + #f.wallet)
      local pub = {}
      for i = 1, #raw do
        local c = raw:byte(i) % 58 + 1
        pub[i] = B58:sub(c, c)
      end
      local key = { name = b.keysPairName, public = table.concat(pub), secret = secret, url = url }
      st.p2p_keys[n] = key
      return H.ok { PublicKey = key.public, SecretKey = key.secret }
    end,
  }

  local function long_param(f, params, name)
    local v = params[name]
    if v == nil then return true end
    if not v:find("^%d+$") then return nil, H.bad(f, CHECKOUT, name .. " must be an integer (Unix time in ms)") end
    return tonumber(v)
  end

  H.route {
    method = "GET", path = "/checkout-api/api/bill/search", service = CHECKOUT, auth = "p2p",
    params = { "statuses", "rows", "min_creation_datetime", "max_creation_datetime", "next_id",
               "next_creation_datetime" },
    handler = function(f, ctx)
      local p = ctx.params
      if p.statuses == nil then return H.bad(f, CHECKOUT, "statuses is required") end
      if p.statuses ~= "READY_FOR_PAY" then return H.bad(f, CHECKOUT, "statuses must be READY_FOR_PAY") end
      local rows = 50
      if p.rows ~= nil then
        if not p.rows:find("^%d+$") or tonumber(p.rows) < 1 or tonumber(p.rows) > 50 then
          return H.bad(f, CHECKOUT, "rows must be an integer from 1 to 50")
        end
        rows = tonumber(p.rows)
      end
      local bounds = {}
      for _, name in ipairs { "min_creation_datetime", "max_creation_datetime", "next_id", "next_creation_datetime" } do
        local v, s, h, b = long_param(f, p, name)
        if v == nil then return s, h, b end
        if v ~= true then bounds[name] = v end
      end
      expire(f)
      local list = {}
      for _, b in ipairs(f.state.bills) do
        if b.status == "READY_FOR_PAY"
          and (not bounds.min_creation_datetime or b.creation >= bounds.min_creation_datetime)
          and (not bounds.max_creation_datetime or b.creation <= bounds.max_creation_datetime)
          and (not bounds.next_id or b.id <= bounds.next_id)
          and (not bounds.next_creation_datetime or b.creation < bounds.next_creation_datetime) then
          list[#list + 1] = b
        end
      end
      table.sort(list, function(a, b)
        if a.creation ~= b.creation then return a.creation > b.creation end
        return a.id > b.id
      end)
      local out = json.array()
      for i = 1, math.min(rows, #list) do out[i] = bill_json(list[i]) end
      return H.ok { bills = out }
    end,
  }

  local function payable(f, id)
    expire(f)
    local b = f.state.bill_by_id[id]
    if not b then return nil, H.not_found(f, CHECKOUT, "invoice.not.found", "no invoice " .. tostring(id)) end
    if b.status ~= "READY_FOR_PAY" then
      return nil, H.not_found(f, CHECKOUT, "invoice.not.found",
        "invoice " .. tostring(id) .. " is " .. b.status .. ", not READY_FOR_PAY")
    end
    return b
  end

  H.route {
    method = "POST", path = "/checkout-api/invoice/pay/wallet", service = CHECKOUT, auth = "p2p", body = "json",
    handler = function(f, ctx)
      local uid, cur = ctx.json.invoice_uid, ctx.json.currency
      if type(uid) ~= "string" or not uid:find("^%d+$") then
        return H.bad(f, CHECKOUT, "invoice_uid is required (a string of digits)")
      end
      if type(cur) ~= "string" or not cur:find("^%d%d%d$") then
        return H.bad(f, CHECKOUT, 'currency is required (a string such as "643")')
      end
      local b, s, h, body = payable(f, tonumber(uid))
      if not b then return s, h, body end
      if tonumber(cur) ~= b.currency then
        return H.bad(f, CHECKOUT, "currency " .. cur .. " is not the invoice's currency " .. b.currency)
      end
      local acc = H.account(f, b.currency)
      -- The docs' contract: any invoice_status but PAID_STATUS is a failure.
      if not acc or acc.kopecks < b.kopecks then
        return H.ok { invoice_status = "PAYMENT_ERROR_STATUS", is_sms_confirm = false,
                      WALLET_ACCEPT_PAY_RESULT = { errorCode = "220",
                                                   message = "Недостаточно средств. Пополните кошелек" } }
      end
      if f.state.restricted then
        return H.ok { invoice_status = "PAYMENT_ERROR_STATUS", is_sms_confirm = false,
                      WALLET_ACCEPT_PAY_RESULT = { errorCode = "319", message = H.RESTRICTED_TEXT } }
      end
      acc.kopecks = acc.kopecks - b.kopecks
      b.status = "PAID"
      local rec = H.add_record(f, {
        date = floor(f:now()), type = "OUT", status = "SUCCESS", error_code = 0, account = b.external_id,
        sum = b.kopecks, commission = 0, currency = b.currency, provider = b.provider.id,
        comment = b.comment,
      })
      b.txn_id = rec.txn_id
      return H.ok { invoice_status = "PAID_STATUS", is_sms_confirm = false, WALLET_ACCEPT_PAY_RESULT = {} }
    end,
  }

  H.route {
    method = "POST", path = "/checkout-api/api/bill/reject", service = CHECKOUT, auth = "p2p", body = "json",
    handler = function(f, ctx)
      local id = ctx.json.id
      if type(id) ~= "number" or id ~= floor(id) or id <= 0 then
        return H.bad(f, CHECKOUT, "id is required (an integer)")
      end
      local b, s, h, body = payable(f, id)
      if not b then return s, h, body end
      b.status = "REJECTED"
      return H.empty(200)
    end,
  }

  -- Helpers ---------------------------------------------------------------

  -- Issues a bill to the wallet. spec: amount (required), currency (643),
  -- comment, external_id, provider_id, short_name, long_name, creation and
  -- expiration (unix seconds; default now and now + 30 days), id.
  -- Returns the bill id.
  function H.methods.add_bill(f, spec)
    spec = spec or {}
    local k, err = U.kopecks(spec.amount)
    if not k then error("qiwi.fake:add_bill: amount: " .. tostring(err), 2) end
    local now = floor(f:now())
    local function opt(v) if v == json.null then return nil end return v end
    local b = new_bill(f.state, {
      id = tonumber(opt(spec.id)), kopecks = k, currency = tonumber(opt(spec.currency)) or 643,
      comment = opt(spec.comment), external_id = opt(spec.external_id) and tostring(spec.external_id),
      provider_id = tonumber(opt(spec.provider_id)), short_name = opt(spec.short_name),
      long_name = opt(spec.long_name),
      creation = (tonumber(opt(spec.creation)) or now) * 1000,
      expiration = (tonumber(opt(spec.expiration)) or (now + 30 * 86400)) * 1000,
    })
    return b.id
  end

  -- A bill's state: {id=, status=, amount=, currency=, txn_id=} or nil.
  function H.methods.bill(f, id)
    expire(f)
    local b = f.state.bill_by_id[tonumber(id)]
    if not b then return nil end
    return { id = b.id, status = b.status, amount = U.amount_number(b.kopecks), currency = b.currency,
             txn_id = b.txn_id, external_id = b.external_id, comment = b.comment }
  end

  -- The P2P key pairs created through the API: {name=, public=, secret=, url=}.
  function H.methods.p2p_keys(f)
    return U.copy(f.state.p2p_keys)
  end
end
