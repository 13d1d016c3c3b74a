-- P2P invoices on api.qiwi.com (docs: p2p/p2p-payments_en/_ru): bills made
-- with PUT /partner/bill/v1/bills/{billId}, read with GET, rejected with
-- POST …/reject; statuses WAITING, PAID, REJECTED, EXPIRED (a bill past
-- its expirationDateTime on the fake's clock is EXPIRED). Authorised with
-- the P2P secret key: the fake's p2p_secret_key option, or a key pair made
-- through create_p2p_keys (without the option: the API token too).
--
-- A test pays a bill with f:pay_bill_p2p(bill_id): the money reaches the
-- wallet (an IN payment), and the signed notification QIWI would send is
-- appended to f.p2p_notifications as { url=, body=, signature=, bill_id=,
-- status= }; served over HTTP from nginx (qiwi.fake.nginx), the fake also
-- POSTs it to the notification URL (the key pair's serverNotificationsUrl,
-- or the p2p_notifications_url option / set_p2p_notifications_url) through
-- qiwi.fake.outbox, with the X-Api-Signature-SHA256 header; the outcome is
-- noted in the entry (delivered = status, attempts =, error =).

return function(H)
  local json, U = H.json, H.U
  local hmac = require "qiwi.fake.hmac"
  local outbox = require "qiwi.fake.outbox"
  local floor, format = math.floor, string.format

  local SVC = "invoicing-api"
  local BILL = "/partner/bill/v1/bills/{billId}"
  local CURRENCIES = { RUB = 643, KZT = 398 }
  local PAY_SOURCES = { qw = true, card = true, mobile = true }
  local BODY_KEYS = { billId = true, amount = true, expirationDateTime = true, customer = true, comment = true,
                      customFields = true }
  local CUSTOMER_KEYS = { phone = true, email = true, account = true }

  local function chars(s)
    return select(2, s:gsub("[^\128-\191]", ""))
  end

  -- The error body of the invoicing API, as the docs' examples show it.
  local function fail(f, status, code, message, description)
    return H.reply(status, {
      serviceName = SVC, errorCode = code, description = description or message, userMessage = message,
      dateTime = U.date(floor(f:now())), traceId = f:_trace_id(),
    })
  end

  local function bad(f, description)
    return fail(f, 400, "http.message.conversion.failed", "Bad request", description)
  end

  local function not_found(f)
    return fail(f, 404, "api.invoice.not.found", "Invoice not found")
  end

  H.seeders[#H.seeders + 1] = function(f, st)
    st.p2p_bills = {}
    st.p2p_url = f.opts.p2p_notifications_url
    -- a log, like f.notifications: emptied in place by reset
    if f.p2p_notifications then
      for i = #f.p2p_notifications, 1, -1 do f.p2p_notifications[i] = nil end
    else
      f.p2p_notifications = {}
    end
  end

  -- The site of a secret key: the key pair's own, or the fake's.
  local function site_of(f, secret)
    for _, k in ipairs(f.state.p2p_keys or {}) do
      if k.secret == secret then return k.site or (U.uuid(k.public:len(), k.public):sub(1, 6) .. "-00"), k.url end
    end
    return f.opts.p2p_site_id or (U.uuid(0, "site" .. f.wallet):sub(1, 6) .. "-00"), nil
  end

  -- The docs' notifications write dates as "2021-01-18T15:25:18+03".
  local function short_date(t)
    return (U.date(t):gsub(":00$", ""))
  end

  local function expire(f, b)
    if b.status == "WAITING" and b.expires <= f:now() then
      b.status, b.changed = "EXPIRED", b.expires
    end
  end

  local function bill_json(b, notification)
    local date = notification and short_date or U.date
    local t = {
      siteId = b.site, billId = b.id, amount = { currency = b.currency, value = b.value },
      status = { value = b.status, changedDateTime = date(b.changed) },
      customer = U.copy(b.customer), customFields = U.copy(b.custom),
      creationDateTime = date(b.created),
      expirationDateTime = notification and short_date(b.expires) or b.expiration_text,
    }
    if b.comment then t.comment = b.comment end
    if not notification then t.payUrl = "https://oplata.qiwi.com/form/?invoice_uid=" .. b.uid end
    return t
  end

  -- A string field of an object, or nil (absent), or false and a reason.
  local function string_of(t, k, path, max)
    local v = t[k]
    if v == nil then return nil end
    if type(v) ~= "string" then return false, path .. " must be a string" end
    if max and chars(v) > max then return false, path .. " must be at most " .. max .. " characters" end
    return v
  end

  -- The checked parts of a create request, or nil and a reason.
  local function parse_create(f, id, b)
    for k in pairs(b) do
      if not BODY_KEYS[k] then return nil, "unknown field " .. k end
    end
    if b.billId ~= nil and b.billId ~= id then return nil, "billId in the body differs from the path" end
    local a = b.amount
    if type(a) ~= "table" or json.is_array(a) then return nil, "amount is required (an object)" end
    local text = a.value
    if type(text) == "number" then text = json.number_text(a, "value") or tostring(text) end
    if type(text) ~= "string" then return nil, "amount.value is required" end
    -- "rounded down to two decimals"
    local k = U.kopecks_from_text(text)
    if not k or k <= 0 then return nil, "amount.value must be a positive amount" end
    if not CURRENCIES[a.currency] then return nil, "amount.currency must be RUB or KZT" end
    local exp = b.expirationDateTime
    if type(exp) ~= "string" then return nil, "expirationDateTime is required" end
    local t = U.parse_date(exp)
    if not t then return nil, "expirationDateTime must look like 2025-12-10T09:02:00+03:00" end
    if t <= f:now() then return nil, "expirationDateTime must be in the future" end
    local comment, why = string_of(b, "comment", "comment", 255)
    if comment == false then return nil, why end
    local cust = {}
    if b.customer ~= nil then
      if type(b.customer) ~= "table" or (json.is_array(b.customer) and next(b.customer)) then
        return nil, "customer must be an object"
      end
      for ck, cv in pairs(b.customer) do
        if not CUSTOMER_KEYS[ck] then return nil, "unknown field customer." .. tostring(ck) end
        if type(cv) ~= "string" then return nil, "customer." .. ck .. " must be a string" end
        cust[ck] = cv
      end
    end
    local custom = {}
    if b.customFields ~= nil then
      if type(b.customFields) ~= "table" or (json.is_array(b.customFields) and next(b.customFields)) then
        return nil, "customFields must be an object"
      end
      for ck, cv in pairs(b.customFields) do
        if type(cv) ~= "string" then return nil, "customFields." .. tostring(ck) .. " must be a string" end
        if chars(cv) > 255 then return nil, "customFields." .. ck .. " must be at most 255 characters" end
        custom[ck] = cv
      end
      if custom.paySourcesFilter then
        for item in (custom.paySourcesFilter .. ","):gmatch("([^,]*),") do
          if not PAY_SOURCES[item] then return nil, "customFields.paySourcesFilter: qw, card or mobile" end
        end
      end
    end
    return {
      kopecks = k, value = format("%d.%02d", floor(k / 100), k % 100),
      currency = a.currency, expires = t, expiration_text = exp, comment = comment or nil,
      customer = cust, custom = custom,
    }
  end

  H.route {
    method = "PUT", path = BILL, service = SVC, body = "json", auth = "p2p",
    handler = function(f, ctx)
      local id = ctx.caps.billId
      if chars(id) > 200 then return bad(f, "billId must be at most 200 characters") end
      local st = f.state
      local known = st.p2p_bills[id]
      if known then
        -- QIWI answers a bill id it has with that bill: a retry of a
        -- create is safe, and a reused id gets the earlier bill
        expire(f, known)
        return H.ok(bill_json(known))
      end
      local p, why = parse_create(f, id, ctx.json)
      if not p then return bad(f, why) end
      local secret = ctx.headers.authorization:match("^%S+ (%S+)$")
      local now = floor(f:now())
      p.id, p.secret, p.status, p.created, p.changed = id, secret, "WAITING", now, now
      p.site, p.url = site_of(f, secret)
      p.uid = f:_next("p2p-bill")
      st.p2p_bills[id] = p
      return H.ok(bill_json(p))
    end,
  }

  local function the_bill(f, id)
    local b = f.state.p2p_bills[id]
    if b then expire(f, b) end
    return b
  end

  H.route {
    method = "GET", path = BILL, service = SVC, auth = "p2p",
    handler = function(f, ctx)
      local b = the_bill(f, ctx.caps.billId)
      if not b then return not_found(f) end
      return H.ok(bill_json(b))
    end,
  }

  H.route {
    method = "POST", path = BILL .. "/reject", service = SVC, auth = "p2p",
    handler = function(f, ctx)
      local b = the_bill(f, ctx.caps.billId)
      if not b then return not_found(f) end
      -- a bill that is final already keeps its status
      if b.status == "WAITING" then
        b.status, b.changed = "REJECTED", floor(f:now())
      end
      return H.ok(bill_json(b))
    end,
  }

  ---------------------------------------------------------------------------
  -- Notifications

  local function notify(f, b)
    local signed = table.concat({ b.currency, b.value, b.id, b.site, b.status }, "|")
    local n = {
      url = b.url or f.state.p2p_url, bill_id = b.id, status = b.status,
      body = json.encode { bill = bill_json(b, true), version = "1" },
      signature = hmac.hex(hmac.hmac_sha256(b.secret, signed)),
    }
    n.headers = { ["X-Api-Signature-SHA256"] = n.signature }
    f.p2p_notifications[#f.p2p_notifications + 1] = n
    outbox.send(f, n)
    return n
  end

  -- Helpers ---------------------------------------------------------------

  -- The customer pays the bill: it becomes PAID, the amount reaches the
  -- wallet as an IN payment, and its notification is made (and sent, over
  -- HTTP). Returns the bill as the API shows it, or nil and why not (no
  -- such bill, or not WAITING any more).
  function H.methods.pay_bill_p2p(f, id)
    local b = the_bill(f, tostring(id))
    if not b then return nil, "no P2P bill " .. tostring(id) end
    if b.status ~= "WAITING" then return nil, "the bill is " .. b.status end
    b.status, b.changed = "PAID", floor(f:now())
    local code = CURRENCIES[b.currency]
    H.credit(f, code, b.kopecks)
    H.add_record(f, {
      date = b.changed, type = "IN", status = "SUCCESS", error_code = 0,
      account = b.customer.phone and ("+" .. b.customer.phone) or "", sum = b.kopecks, commission = 0,
      currency = code, provider = 7, comment = b.comment or "",
    })
    notify(f, b)
    return bill_json(b)
  end

  -- A P2P bill as the API shows it, or nil.
  function H.methods.bill_p2p(f, id)
    local b = the_bill(f, tostring(id))
    return b and bill_json(b) or nil
  end

  -- Where notifications of bills made with the fake's own key go (nil: nowhere).
  function H.methods.set_p2p_notifications_url(f, url)
    if url == json.null then url = nil end
    f.state.p2p_url = url
    return true
  end

  -- The last P2P notification made (see f.p2p_notifications), or nil.
  function H.methods.last_p2p_notification(f)
    local n = f.p2p_notifications[#f.p2p_notifications]
    return n and U.copy(n)
  end
end
