-- Payment history: the list with paging, totals, transaction details,
-- receipts (docs: payment_history_en/_ru). Every route under
-- /payment-history/ counts towards the rate limit (see init.lua).

return function(H)
  local json, U, C = H.json, H.U, H.C
  local floor, format = math.floor, string.format

  local SVC = "payment-history"
  local DAY = 86400

  local ERROR_TEXT = {
    [5] = "Данного номера не существует. Проверьте данные и попробуйте еще раз.",
    [220] = "Недостаточно средств. Пополните кошелек",
    [300] = "Техническая ошибка. Повторите платеж позже.",
  }
  H.ERROR_TEXT = ERROR_TEXT

  local STATUS_TEXT = { SUCCESS = "Успешно", WAITING = "Запрос обрабатывается" }

  local function provider_object(id)
    local p = C.providers[id]
    local name = p and p.name or ("Провайдер " .. tostring(id))
    return {
      id = id, shortName = name, longName = name, logoUrl = json.null, description = json.null,
      keys = p and p.keys or json.null, siteUrl = json.null, extras = json.array(),
    }
  end
  H.provider_object = provider_object

  local function source_object(code)
    local s = C.sources[code] or C.sources.QW_RUB
    return {
      id = s.id, shortName = s.name, longName = s.name, logoUrl = json.null, description = json.null,
      keys = json.null, siteUrl = json.null, extras = json.array(),
    }
  end

  local function money(k, currency)
    return { amount = U.amount(k), currency = currency }
  end

  -- A PaymentHistoryItem for a stored record, dated at `offset` minutes.
  local function item(f, p, offset)
    return {
      txnId = p.txn_id, personId = U.int(f.wallet), date = U.date(p.date, offset),
      errorCode = p.error_code or 0, error = p.error or json.null, status = p.status, type = p.type,
      statusText = p.status_text or STATUS_TEXT[p.status] or p.error or "Ошибка",
      trmTxnId = p.trm_txn_id or tostring(p.txn_id), account = p.account or "",
      sum = money(p.sum, p.currency), commission = money(p.commission, p.currency),
      total = money(p.sum + p.commission, p.currency),
      provider = provider_object(p.provider), source = source_object(p.source),
      comment = p.comment or "", currencyRate = json.raw(p.rate or "1"),
    }
  end

  local function details(f, p)
    local t = item(f, p, U.MSK)
    t.paymentExtras = json.array()
    t.serviceExtras = {}
    t.view = { title = C.providers[p.provider] and C.providers[p.provider].name or "", account = t.account }
    t.features = {
      chequeReady = p.status == "SUCCESS", bankDocumentAvailable = false, bankDocumentReady = false,
      repeatPaymentEnabled = p.type == "OUT", favoritePaymentEnabled = p.type == "OUT",
      regularPaymentEnabled = false, chatAvailable = false, greetingCardAttached = false,
    }
    return t
  end

  -- Stores a history record (assigning a fresh txn id unless it has one)
  -- and tells the webhook about it.
  function H.add_record(f, p)
    local st = f.state
    if not p.txn_id then
      st.next_txn = st.next_txn + 1
      p.txn_id = st.next_txn
    elseif p.txn_id > st.next_txn then
      st.next_txn = p.txn_id
    end
    p.currency = p.currency or 643
    p.commission = p.commission or 0
    p.source = p.source or (C.currencies[p.currency] or C.currencies[643]).source
    st.payments[#st.payments + 1] = p
    st.by_txn[p.txn_id] = p
    if not st.first_txn or p.txn_id < st.first_txn then st.first_txn = p.txn_id end
    if H.notify then H.notify(f, p) end
    return p
  end

  local function newest_first(a, b)
    if a.date ~= b.date then return a.date > b.date end
    return a.txn_id > b.txn_id
  end

  -- The seeded past: deterministic rows, one every ~hour back from history_start.
  local SEED_PROVIDERS = { 99, 1, 1963, 674, 99, 3 }
  H.seeders[#H.seeders + 1] = function(f, st, now)
    local pages = tonumber(f:_opt("history_pages")) or 0
    local rows = tonumber(f:_opt("history_rows")) or 0
    local n = floor(pages * rows)
    local start = tonumber(f.opts.history_start) or (now - 600)
    st.payments, st.by_txn = {}, {}
    st.next_txn = 20000000000
    st.first_txn = nil
    for i = n, 1, -1 do
      local kind = "OUT"
      if i % 4 == 0 then kind = "IN" elseif i % 10 == 3 then kind = "QIWI_CARD" end
      local provider = kind == "IN" and 7 or SEED_PROVIDERS[i % #SEED_PROVIDERS + 1]
      if kind == "QIWI_CARD" then provider = 22351 end
      local status, code = "SUCCESS", 0
      if i % 13 == 5 then status, code = "ERROR", 5 elseif i % 17 == 2 then status = "WAITING" end
      local source, currency = "QW_RUB", 643
      if i % 9 == 4 then source = "CARD" elseif i % 11 == 6 then source, currency = "QW_USD", 840 end
      local sum = (i * 7919) % 50000 + 100
      local commission = 0
      local pr = C.providers[provider]
      if kind ~= "IN" and pr and pr.kind == "card" then commission = floor(sum / 100) + 5000 end
      local account = "+7916" .. format("%07d", (i * 104729) % 10000000)
      if pr and pr.kind == "card" then account = "4256****" .. format("%04d", (i * 31) % 10000) end
      H.add_record(f, {
        txn_id = 20000000000 + (n - i + 1), date = start - (i - 1) * 3600 - ((i - 1) * 7 % 50) * 60,
        type = kind, status = status, error_code = code, error = ERROR_TEXT[code],
        trm_txn_id = format("%d", (start - i * 3600) * 1000),
        account = account, sum = sum, commission = commission, currency = currency,
        provider = provider, comment = i % 5 == 0 and ("Платеж " .. i) or "", source = source,
      })
    end
  end

  local OPERATIONS = { ALL = true, IN = true, OUT = true, QIWI_CARD = true }

  local function operation_matches(op, p)
    return op == "ALL" or p.type == op
  end

  -- Common filter parameters of the list and the totals: operation, sources,
  -- startDate/endDate. Returns a filter table or nil, status, headers, body.
  local function filters(f, params, dates_required)
    local op = params.operation or "ALL"
    if not OPERATIONS[op] then
      return nil, H.bad(f, SVC, "operation must be ALL, IN, OUT or QIWI_CARD")
    end
    local sources, err = U.indexed(params, "sources")
    if not sources then return nil, H.bad(f, SVC, err) end
    local src = nil
    for _, s in ipairs(sources) do
      if not C.sources[s] then return nil, H.bad(f, SVC, "unknown source " .. s) end
      src = src or {}
      src[s] = true
    end
    local flt = { op = op, sources = src, offset = U.MSK }
    local s, e = params.startDate, params.endDate
    if (s == nil) ~= (e == nil) then
      return nil, H.bad(f, SVC, "startDate and endDate are only used together")
    end
    if s == nil and dates_required then
      return nil, H.bad(f, SVC, "startDate and endDate are required")
    end
    if s then
      local ts, so = U.parse_date(s)
      if not ts then return nil, H.bad(f, SVC, "startDate: " .. so) end
      local te, eo = U.parse_date(e)
      if not te then return nil, H.bad(f, SVC, "endDate: " .. eo) end
      if so ~= eo then return nil, H.bad(f, SVC, "startDate and endDate must be in the same time zone") end
      if ts > te then return nil, H.bad(f, SVC, "startDate is after endDate") end
      if te - ts > 90 * DAY then
        return nil, H.bad(f, SVC, "startDate and endDate are more than 90 days apart")
      end
      flt.from, flt.till, flt.offset = ts, te, so
    end
    return flt
  end

  local function selected(f, flt)
    local out = {}
    for _, p in ipairs(f.state.payments) do
      if operation_matches(flt.op, p) and (not flt.sources or flt.sources[p.source])
        and (not flt.from or (p.date >= flt.from and p.date <= flt.till)) then
        out[#out + 1] = p
      end
    end
    table.sort(out, newest_first)
    return out
  end

  H.route {
    method = "GET", path = "/payment-history/v2/persons/{w}/payments", service = SVC,
    params = { "rows", "operation", "sources[]", "startDate", "endDate", "nextTxnId", "nextTxnDate" },
    handler = function(f, ctx)
      local params = ctx.params
      local rows = params.rows
      if rows == nil then return H.bad(f, SVC, "rows is required") end
      if not rows:find("^%d+$") or tonumber(rows) < 1 or tonumber(rows) > 50 then
        return H.bad(f, SVC, "rows must be an integer from 1 to 50")
      end
      rows = tonumber(rows)
      local flt, s, h, b = filters(f, params, false)
      if not flt then return s, h, b end
      local nid, ndate = params.nextTxnId, params.nextTxnDate
      if (nid == nil) ~= (ndate == nil) then
        return H.bad(f, SVC, "nextTxnId and nextTxnDate are only used together")
      end
      local cursor_id, cursor_date
      if nid then
        if not nid:find("^%d+$") then return H.bad(f, SVC, "nextTxnId must be an integer") end
        local t, terr = U.parse_date(ndate)
        if not t then return H.bad(f, SVC, "nextTxnDate: " .. terr) end
        cursor_id, cursor_date = tonumber(nid), t
      end
      local list = selected(f, flt)
      local data, nxt = json.array(), nil
      for _, p in ipairs(list) do
        if not cursor_id or p.date < cursor_date or (p.date == cursor_date and p.txn_id <= cursor_id) then
          if #data == rows then nxt = p break end
          data[#data + 1] = item(f, p, flt.offset)
        end
      end
      return H.ok {
        data = data,
        nextTxnId = nxt and nxt.txn_id or json.null,
        nextTxnDate = nxt and U.date(nxt.date) or json.null,
      }
    end,
  }

  H.route {
    method = "GET", path = "/payment-history/v2/persons/{w}/payments/total", service = SVC,
    params = { "operation", "sources[]", "startDate", "endDate" },
    handler = function(f, ctx)
      local flt, s, h, b = filters(f, ctx.params, true)
      if not flt then return s, h, b end
      local inc, out = {}, {}
      for _, p in ipairs(selected(f, flt)) do
        if p.status == "SUCCESS" then
          local t = p.type == "IN" and inc or out
          t[p.currency] = (t[p.currency] or 0) + p.sum + p.commission
        end
      end
      local function list(t)
        local cur = {}
        for c in pairs(t) do cur[#cur + 1] = c end
        table.sort(cur)
        local l = json.array()
        for _, c in ipairs(cur) do l[#l + 1] = money(t[c], c) end
        return l
      end
      return H.ok { incomingTotal = list(inc), outgoingTotal = list(out) }
    end,
  }

  local TYPES = { IN = true, OUT = true, QIWI_CARD = true }

  -- The record behind /transactions/{id}?type=…; nil, answer when absent.
  local function find_txn(f, ctx, type_required)
    local id = ctx.caps.id
    if not id:find("^%d+$") then return nil, H.bad(f, SVC, "transaction id must be an integer") end
    local t = ctx.params.type
    if t == nil and type_required then return nil, H.bad(f, SVC, "type is required") end
    if t ~= nil and not TYPES[t] then return nil, H.bad(f, SVC, "type must be IN, OUT or QIWI_CARD") end
    local p = f.state.by_txn[tonumber(id)]
    if not p or (t and p.type ~= t) then
      return nil, H.not_found(f, SVC, "txn.not.found", "no transaction " .. id .. (t and (" of type " .. t) or ""))
    end
    return p
  end

  H.route {
    method = "GET", path = "/payment-history/v2/transactions/{id}", service = SVC, params = { "type" },
    handler = function(f, ctx)
      local p, s, h, b = find_txn(f, ctx, false)
      if not p then return s, h, b end
      return H.ok(details(f, p))
    end,
  }

  -- Small but well-formed files, the same bytes for the same transaction.
  function H.pdf(text)
    local content = "BT /F1 12 Tf 40 800 Td (" .. text:gsub("[()\\]", "") .. ") Tj ET"
    local objs = {
      "<< /Type /Catalog /Pages 2 0 R >>",
      "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        .. "/Resources << /Font << /F1 5 0 R >> >> >>",
      "<< /Length " .. #content .. " >>\nstream\n" .. content .. "\nendstream",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    local out = { "%PDF-1.4\n" }
    local offsets, pos = {}, #out[1]
    for i, o in ipairs(objs) do
      offsets[i] = pos
      local s = i .. " 0 obj\n" .. o .. "\nendobj\n"
      out[#out + 1] = s
      pos = pos + #s
    end
    local xref = { "xref\n0 " .. (#objs + 1) .. "\n0000000000 65535 f \n" }
    for _, off in ipairs(offsets) do xref[#xref + 1] = format("%010d 00000 n \n", off) end
    out[#out + 1] = table.concat(xref)
    out[#out + 1] = "trailer\n<< /Size " .. (#objs + 1) .. " /Root 1 0 R >>\nstartxref\n" .. pos .. "\n%%EOF\n"
    return table.concat(out)
  end

  -- A valid 1x1 grey baseline JPEG.
  local JPEG = table.concat {
    "\255\216\255\224\0\16JFIF\0\1\1\0\0\1\0\1\0\0",
    "\255\219\0\67\0", string.rep("\1", 64),
    "\255\192\0\11\8\0\1\0\1\1\1\17\0",
    "\255\196\0\20\0\1", string.rep("\0", 15), "\0",
    "\255\196\0\20\16\1", string.rep("\0", 15), "\0",
    "\255\218\0\8\1\1\0\0\63\0",
    "\63", -- DC diff 0, end of block, padded with ones
    "\255\217",
  }
  H.JPEG = JPEG

  H.route {
    method = "GET", path = "/payment-history/v1/transactions/{id}/cheque/file", service = SVC,
    params = { "type", "format" }, binary = true,
    handler = function(f, ctx)
      local fmt = ctx.params.format
      if fmt ~= "PDF" and fmt ~= "JPEG" then return H.bad(f, SVC, "format must be PDF or JPEG") end
      local p, s, h, b = find_txn(f, ctx, true)
      if not p then return s, h, b end
      if p.status ~= "SUCCESS" then
        return H.not_found(f, SVC, "cheque.not.found", "no receipt for a payment in status " .. p.status)
      end
      if fmt == "PDF" then
        return H.bytes("application/pdf", H.pdf("QIWI receipt txn " .. p.txn_id .. " "
          .. U.amount_text(p.sum) .. " " .. p.currency))
      end
      return H.bytes("image/jpeg", JPEG)
    end,
  }

  H.route {
    method = "POST", path = "/payment-history/v1/transactions/{id}/cheque/send", service = SVC,
    params = { "type" }, body = "json",
    handler = function(f, ctx)
      local p, s, h, b = find_txn(f, ctx, true)
      if not p then return s, h, b end
      local email = ctx.json.email
      if type(email) ~= "string" or not email:find("^[^@%s]+@[^@%s]+%.[^@%s]+$") then
        return H.bad(f, SVC, "email must be an e-mail address")
      end
      if p.status ~= "SUCCESS" then
        return H.not_found(f, SVC, "cheque.not.found", "no receipt for a payment in status " .. p.status)
      end
      f.sent_cheques[#f.sent_cheques + 1] = { txn_id = p.txn_id, type = p.type, email = email }
      return H.empty(201)
    end,
  }

  -- Helpers ---------------------------------------------------------------

  local function spec_value(v)
    if v == json.null then return nil end
    return v
  end

  -- Adds a payment to the history (and by default moves the balance).
  -- spec: amount (required), type ("IN"), currency (643), commission (0),
  -- provider (7 for IN, 99 otherwise), account, comment, status ("SUCCESS"),
  -- error_code, date (unix time or QIWI date string; default now), source,
  -- trm_txn_id, txn_id, update_balance (default: status == "SUCCESS").
  -- Returns the transaction id.
  function H.methods.add_payment(f, spec)
    spec = spec or {}
    local amount = spec_value(spec.amount)
    local sum, err = U.kopecks(amount)
    if not sum then error("qiwi.fake:add_payment: amount: " .. tostring(err), 2) end
    local commission = U.kopecks(spec_value(spec.commission) or 0) or 0
    local kind = tostring(spec_value(spec.type) or "IN"):upper()
    if not TYPES[kind] then error("qiwi.fake:add_payment: type must be IN, OUT or QIWI_CARD", 2) end
    local currency = tonumber(spec_value(spec.currency) or 643)
    local status = tostring(spec_value(spec.status) or "SUCCESS"):upper()
    local date = spec_value(spec.date)
    if type(date) == "string" then
      local t = U.parse_date(date)
      if not t then error("qiwi.fake:add_payment: bad date " .. date, 2) end
      date = t
    end
    local code = tonumber(spec_value(spec.error_code)) or (status == "ERROR" and 300 or 0)
    local p = H.add_record(f, {
      txn_id = tonumber(spec_value(spec.txn_id)), date = date or floor(f:now()), type = kind,
      status = status, error_code = code, error = code ~= 0 and (ERROR_TEXT[code] or "Ошибка") or nil,
      trm_txn_id = spec_value(spec.trm_txn_id) and tostring(spec.trm_txn_id),
      account = tostring(spec_value(spec.account) or (kind == "IN" and "+79261234567" or "+79031234567")),
      sum = sum, commission = commission, currency = currency,
      provider = tonumber(spec_value(spec.provider)) or (kind == "IN" and 7 or 99),
      comment = spec_value(spec.comment) and tostring(spec.comment) or "",
      source = spec_value(spec.source),
    })
    local update = spec_value(spec.update_balance)
    if update == nil then update = status == "SUCCESS" end
    if update then
      if kind == "IN" then
        H.credit(f, currency, sum)
      else
        H.credit(f, currency, -(sum + commission))
      end
    end
    return p.txn_id
  end

  -- Money arrives: an incoming payment (type IN) from `from` (a wallet
  -- number or account text), in the history at once, the balance moved
  -- when it is SUCCESS, the webhook notified. spec: from, amount (required),
  -- currency (643, "643" or "RUB"), comment, status ("SUCCESS"; "WAITING"
  -- to change it later with set_status), date (unix time or QIWI date
  -- string; default now), provider (7), txn_id. Returns the txn id.
  local CODES = {}
  for code, c in pairs(C.currencies) do CODES[c.code] = code end
  function H.methods.receive(f, spec)
    if type(spec) ~= "table" then error("qiwi.fake:receive takes a table", 2) end
    local currency = spec_value(spec.currency) or 643
    currency = CODES[currency] or tonumber(currency)
    if not C.currencies[currency] then error("qiwi.fake:receive: unknown currency " .. tostring(spec.currency), 2) end
    local from = spec_value(spec.from)
    if from ~= nil and type(from) ~= "string" and type(from) ~= "number" then
      error("qiwi.fake:receive: from must be a wallet number or an account string", 2)
    end
    local status = tostring(spec_value(spec.status) or "SUCCESS"):upper()
    if status ~= "SUCCESS" and status ~= "WAITING" and status ~= "ERROR" then
      error("qiwi.fake:receive: status must be SUCCESS, WAITING or ERROR", 2)
    end
    return H.methods.add_payment(f, {
      amount = spec_value(spec.amount), type = "IN", currency = currency, status = status,
      account = from ~= nil and (tostring(from):find("^%d+$") and "+" .. tostring(from) or from) or nil,
      comment = spec_value(spec.comment), date = spec_value(spec.date),
      provider = spec_value(spec.provider), txn_id = spec_value(spec.txn_id),
    })
  end

  -- A payment's status changes later (WAITING -> SUCCESS or ERROR, as QIWI's
  -- do): the history shows the new status, the balance follows (credited
  -- when an incoming payment becomes SUCCESS, taken back if it leaves it),
  -- and the webhook is notified again, as QIWI notifies each status.
  function H.methods.set_status(f, txn_id, status)
    local p = f.state.by_txn[tonumber(txn_id)]
    if not p then error("qiwi.fake:set_status: no transaction " .. tostring(txn_id), 2) end
    status = tostring(status or ""):upper()
    if status ~= "SUCCESS" and status ~= "WAITING" and status ~= "ERROR" then
      error("qiwi.fake:set_status: status must be SUCCESS, WAITING or ERROR", 2)
    end
    if p.status == status then return p.txn_id end
    local was = p.status == "SUCCESS"
    local delta = p.type == "IN" and p.sum or -(p.sum + p.commission)
    if was and status ~= "SUCCESS" then H.credit(f, p.currency, -delta) end
    if not was and status == "SUCCESS" then H.credit(f, p.currency, delta) end
    p.status = status
    p.status_text = nil
    if status == "ERROR" then
      p.error_code = p.error_code ~= 0 and p.error_code or 300
      p.error = ERROR_TEXT[p.error_code] or "Ошибка"
    else
      p.error_code, p.error = 0, nil
    end
    if H.notify then H.notify(f, p) end
    return p.txn_id
  end

  -- The stored record of a transaction (a copy), or nil.
  function H.methods.payment(f, txn_id)
    local p = f.state.by_txn[tonumber(txn_id)]
    return p and U.copy(p)
  end

  -- Records newest first (copies), for assertions in tests.
  function H.methods.history(f)
    local out = {}
    for i, p in ipairs(f.state.payments) do out[i] = U.copy(p) end
    table.sort(out, newest_first)
    return out
  end
end
