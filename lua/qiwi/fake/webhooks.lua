-- Webhooks (docs: webhook_en/_ru): one active hook at a time, its signing
-- key and key rotation, the test notification. Every notification it would
-- send is appended to f.notifications as { url=, body= (raw JSON, signed as
-- QIWI signs it), key= (base64), hash=, txn_id=, test= }, for feeding a
-- handler in tests; served by nginx, the fake also POSTs it to the hook's
-- URL (qiwi.fake.outbox: delivered=, attempts=, error=).

return function(H)
  local json, U = H.json, H.U
  local hmac = require "qiwi.fake.hmac"
  local outbox = require "qiwi.fake.outbox"
  local floor = math.floor

  local SVC = "payment-notifier"
  local BASE = "/payment-notifier/v1/hooks"

  local TXN_TYPES = { ["0"] = "IN", ["1"] = "OUT", ["2"] = "BOTH" }

  H.seeders[#H.seeders + 1] = function(_, st)
    st.hook = nil
    st.hook_keys = 0
  end

  local function new_key(f)
    local st = f.state
    st.hook_keys = st.hook_keys + 1
    return U.base64(U.bytes(32, st.hook_keys * 104729 + tonumber(f.wallet:sub(-6))))
  end

  local function hook_json(h)
    return { hookId = h.id, hookParameters = { url = h.url }, hookType = "WEB", txnType = h.txn_type }
  end

  -- Private, loopback and link-local hosts are not "accessible from the Internet".
  local function private_host(host)
    host = host:lower()
    if host == "localhost" or host:find("%.local$") or host:find("%.localhost$") or host:find("^%[") then
      return true
    end
    local a, b = host:match("^(%d+)%.(%d+)%.%d+%.%d+$")
    a, b = tonumber(a), tonumber(b)
    if not a then return false end
    return a == 10 or a == 127 or a == 0 or (a == 169 and b == 254) or (a == 192 and b == 168)
      or (a == 172 and b >= 16 and b <= 31)
  end

  H.route {
    method = "PUT", path = BASE, service = SVC, params = { "hookType", "param", "txnType" },
    handler = function(f, ctx)
      local p = ctx.params
      for _, name in ipairs { "hookType", "param", "txnType" } do
        if p[name] == nil or p[name] == "" then return H.bad(f, SVC, name .. " is required") end
      end
      if p.hookType ~= "1" then
        return H.err(f, 422, SVC, "hook.type.invalid", "Неверный тип хука", "hookType must be 1")
      end
      local txn = TXN_TYPES[p.txnType]
      if not txn then
        return H.err(f, 422, SVC, "hook.txn.type.invalid", "Неверный тип транзакций", "txnType must be 0, 1 or 2")
      end
      local url = p.param
      -- The docs' error table puts an over-long URL under 500.
      if #url > 100 then
        return H.err(f, 500, SVC, "hook.url.too.long", "Внутренняя ошибка",
          "webhook URL longer than 100 characters")
      end
      local host = url:match("^[hH][tT][tT][pP][sS]?://([^/:%?#]+)")
      if not host or (f.opts.public_hooks_only ~= false and private_host(host)) then
        return H.err(f, 422, SVC, "hook.url.invalid", "Неверный адрес хука",
          "param must be an http(s) URL on a public host")
      end
      if f.state.hook then
        return H.err(f, 422, SVC, "hook.already.exists", "Хук уже существует",
          "an active webhook exists; delete it first")
      end
      local h = { id = f:_next("hook"), url = url, txn_type = txn }
      h.key = new_key(f)
      f.state.hook = h
      return H.ok(hook_json(h))
    end,
  }

  local function no_hook(f, id)
    return H.not_found(f, SVC, "hook.not.found", id and ("no webhook " .. id) or "no active webhook")
  end

  local function the_hook(f, id)
    local h = f.state.hook
    if not h or h.id ~= id then return nil end
    return h
  end

  H.route {
    method = "DELETE", path = BASE .. "/{hook}", service = SVC,
    handler = function(f, ctx)
      if not the_hook(f, ctx.caps.hook) then return no_hook(f, ctx.caps.hook) end
      f.state.hook = nil
      return H.ok { response = "Hook deleted" }
    end,
  }

  H.route {
    method = "GET", path = BASE .. "/{hook}/key", service = SVC,
    handler = function(f, ctx)
      local h = the_hook(f, ctx.caps.hook)
      if not h then return no_hook(f, ctx.caps.hook) end
      return H.ok({ key = h.key }, 201)
    end,
  }

  H.route {
    method = "POST", path = BASE .. "/{hook}/newkey", service = SVC,
    handler = function(f, ctx)
      local h = the_hook(f, ctx.caps.hook)
      if not h then return no_hook(f, ctx.caps.hook) end
      h.key = new_key(f)
      return H.ok({ key = h.key }, 201)
    end,
  }

  H.route {
    method = "GET", path = BASE .. "/active", service = SVC,
    handler = function(f)
      local h = f.state.hook
      if not h then return no_hook(f) end
      return H.ok(hook_json(h))
    end,
  }

  local SIGN_FIELDS = "sum.currency,sum.amount,type,account,txnId"

  -- Builds, signs and records one notification.
  local function emit(f, h, payment, test)
    local amount = U.amount_text(payment.sum)
    local kind = payment.type
    local signed = table.concat({ tostring(payment.currency), amount, kind, payment.account,
                                  tostring(payment.txn_id) }, "|")
    local key = hmac.unbase64(h.key)
    local hash = hmac.hex(hmac.hmac_sha256(key, signed))
    local msg = {
      messageId = f:_next("message"), hookId = h.id, hash = hash, version = "1.0.0", test = test,
      payment = {
        txnId = tostring(payment.txn_id), date = U.date(payment.date), type = kind,
        status = payment.status, errorCode = tostring(payment.error_code or 0), personId = U.int(f.wallet),
        account = payment.account, comment = payment.comment or "", provider = payment.provider,
        sum = { amount = json.raw(amount), currency = payment.currency },
        commission = payment.commission_null and json.null
          or { amount = U.amount(payment.commission or 0), currency = payment.currency },
        total = { amount = U.amount(payment.sum + (payment.commission or 0)), currency = payment.currency },
        signFields = SIGN_FIELDS,
      },
    }
    local n = {
      url = h.url, body = json.encode(msg), key = h.key, hash = hash, txn_id = payment.txn_id, test = test,
    }
    f.notifications[#f.notifications + 1] = n
    outbox.send(f, n)
    return n
  end

  -- Called for every new history record.
  function H.notify(f, p)
    local h = f.state.hook
    if not h then return end
    local kind = p.type == "IN" and "IN" or "OUT"
    if h.txn_type ~= "BOTH" and h.txn_type ~= kind then return end
    -- The notification names the payment as IN or OUT only.
    local copy = U.copy(p)
    copy.type = kind
    emit(f, h, copy, false)
  end

  H.route {
    method = "GET", path = BASE .. "/test", service = SVC,
    handler = function(f)
      local h = f.state.hook
      if not h then return no_hook(f) end
      emit(f, h, {
        txn_id = 0, date = floor(f:now()), type = "IN", status = "SUCCESS", error_code = 0,
        account = "", comment = "", provider = 0, sum = 0, commission = 0, currency = 643,
      }, true)
      return H.ok { response = "Webhook sent" }
    end,
  }

  -- Helpers ---------------------------------------------------------------

  -- The active hook {id=, url=, txn_type=, key=} or nil.
  function H.methods.webhook(f)
    local h = f.state.hook
    return h and { id = h.id, url = h.url, txn_type = h.txn_type, key = h.key } or nil
  end

  -- The last recorded notification (see f.notifications), or nil.
  function H.methods.last_notification(f)
    local n = f.notifications[#f.notifications]
    return n and U.copy(n)
  end
end
