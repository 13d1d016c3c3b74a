-- The examples of QIWI's P2P pages (p2p/p2p-payments_en/_ru: creating a
-- bill, its status, rejecting it, personalisation) as specs: each request
-- as it goes on the wire, each answer as the client decodes it. One runner
-- for both backends (spec/support/backends.lua): p2p_spec.lua runs it
-- against the fake in-process, p2p_https_spec.lua over real HTTPS.
--
--   local p2p_docs = require "p2p_docs"   -- this file
--   p2p_docs.run(backends.local_backend, describe, it, before_each)
local qiwi = require "qiwi"
local checks = require "checks"
local assert = require "luassert"

local _M = {}

-- A secret key shaped like QIWI's (base64 of a JSON object), and a public key.
_M.SECRET = "eyJ2ZXJzaW9uIjoiUDJQIiwiZGF0YSI6eyJwYXlpbl9tZXJjaGFudF9zaXRlX3VpZCI6IjloaDRqYiIsInNlY3JldCI6ImZha2UifX0"
_M.PUBLIC = "48e7qUxn9T7RyYE1MVZswX1FRSbE6iyCj2gCRwwF3Dnh5XrasNTx3BGPiMsyXQFNKQhvukniQG8RTVhYm3iP"
_M.BILL_ID = "cc961e8d-d4d6-4f02-b737-2297e51fb48e"
_M.SITE = "9hh4jb-00"
-- the moment of the docs' answers, 2021-01-18T14:22:56+03:00
_M.NOW = 1610968976
local BILL_PATH = "/partner/bill/v1/bills/" .. _M.BILL_ID

-- The create request of both pages (curl --data-raw).
_M.CREATE_BODY = [[{
    "amount": {
     "currency": "RUB",
     "value": "1.00"
    },
    "comment": "Text comment",
    "expirationDateTime": "2025-12-10T09:02:00+03:00",
    "customer": {
     "phone": "78710009999",
     "email": "test@example.com",
     "account": "454678"
    },
    "customFields" : {
     "paySourcesFilter":"qw",
     "themeCode": "Yvan-YKaSh",
     "yourParam1": "64728940",
     "yourParam2": "order 678"
    }
  }]]

-- The same request as create_bill's arguments.
_M.CREATE_ARGS = {
  bill_id = _M.BILL_ID, amount = "1.00", currency = "RUB", comment = "Text comment",
  expires = "2025-12-10T09:02:00+03:00",
  customer = { phone = "78710009999", email = "test@example.com", account = "454678" },
  custom_fields = { pay_sources_filter = "qw", theme_code = "Yvan-YKaSh", yourParam1 = "64728940",
                    yourParam2 = "order 678" },
}

-- The answers: to the create and the status request (WAITING), to the reject.
local function bill_answer(status, changed)
  return [[{
    "siteId": "9hh4jb-00",
    "billId": "cc961e8d-d4d6-4f02-b737-2297e51fb48e",
    "amount": {
        "currency": "RUB",
        "value": "1.00"
    },
    "status": {
        "value": "]] .. status .. [[",
        "changedDateTime": "]] .. changed .. [["
    },
    "customer": {
        "phone": "78710009999",
        "email": "test@example.com",
        "account": "454678"
    },
    "customFields": {
        "paySourcesFilter": "qw",
        "themeCode": "Yvan-YKaSh",
        "yourParam1": "64728940",
        "yourParam2": "order 678"
    },
    "comment": "Text comment",
    "creationDateTime": "2021-01-18T14:22:56.672+03:00",
    "expirationDateTime": "2025-12-10T09:02:00+03:00",
    "payUrl": "https://oplata.qiwi.com/form/?invoice_uid=aa0fa2bb-5452-47ca-9190-cd9c1a73718f"
}]]
end
_M.WAITING = bill_answer("WAITING", "2021-01-18T14:22:56.672+03:00")
_M.REJECTED = bill_answer("REJECTED", "2021-01-18T14:36:17.65+03:00")

_M.CREATE_ERROR = [[{
    "serviceName": "invoicing-api",
    "errorCode": "http.message.conversion.failed",
    "description": "Bad request",
    "userMessage": "Bad request",
    "dateTime": "2021-01-18T14:29:51.984+03:00",
    "traceId": "8fa9cfe10c7f83d1"
}]]

_M.NOT_FOUND = [[{
    "serviceName": "invoicing-api",
    "errorCode": "api.invoice.not.found",
    "description": "Invoice not found",
    "userMessage": "Invoice not found",
    "dateTime": "2021-01-18T14:34:40.865+03:00",
    "traceId": "b3d41cafa0c6d088"
}]]

-- The personalisation example's request (both pages; "кодСтиля" on the Russian one).
local function themed_body(code)
  return [[{
    "amount": {
     "currency": "RUB",
     "value": 100.00
    },
    "comment": "Text comment",
    "expirationDateTime": "2025-04-13T14:30:00+03:00",
    "customer": {},
    "customFields": {"themeCode":"]] .. code .. [["}
  }]]
end
_M.themed_body = themed_body

-- A P2P client of the backend's fake, its clock at the docs' moment.
function _M.client(b, opts)
  local o = { secret_key = _M.SECRET, public_key = _M.PUBLIC, retries = 0, clock = function() return _M.NOW end }
  if b.srv then
    o.base_url, o.ca_file = b.srv.base_url, b.srv.ca_file
  else
    o.transport = b.fake
  end
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(qiwi.p2p.new(o))
end

-- The fake as the docs' examples find it.
function _M.reset(b, opts)
  local o = { p2p_secret_key = _M.SECRET, p2p_site_id = _M.SITE }
  for k, v in pairs(opts or {}) do o[k] = v end
  b:reset(o)
  b:call("set_time", _M.NOW)
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = type(v) == "table" and copy(v) or v end
  return out
end
_M.copy = copy

local decode = qiwi.json.decode

-- The wire headers every P2P request carries.
local function assert_headers(req, with_body)
  assert.equal("Bearer " .. _M.SECRET, req.headers.authorization)
  assert.equal("application/json", req.headers.accept)
  if with_body then
    assert.equal("application/json", req.headers["content-type"])
  else
    assert.is_nil(req.headers["content-type"])
  end
end

-- busted's describe, it and before_each are the spec file's, not globals here.
function _M.run(make_backend, describe, it, before_each)
  local b = make_backend()

  describe("QIWI's P2P examples (" .. b.name .. ")", function()
    local p2p

    before_each(function()
      _M.reset(b)
      p2p = _M.client(b)
    end)

    it("create: the docs' request on the wire, and the fake's answer", function()
      local bill, err = p2p:create_bill(copy(_M.CREATE_ARGS))
      assert.is_nil(err)
      local req = b:last()
      assert.equal("PUT", req.method)
      assert.equal(BILL_PATH, req.path)
      assert.equal("", req.query)
      assert_headers(req, true)
      assert.same(decode(_M.CREATE_BODY), req.json)
      -- the amount a string with two decimals, exactly as the docs write it
      assert.truthy(req.body:find('"value":"1.00"', 1, true))
      local docs = decode(_M.WAITING)
      for _, k in ipairs { "siteId", "billId", "amount", "customer", "customFields", "comment",
                           "expirationDateTime" } do
        assert.same(docs[k], bill[k], k)
      end
      assert.equal("WAITING", bill.status.value)
      assert.equal("2021-01-18T14:22:56+03:00", bill.creationDateTime)
      assert.truthy(bill.payUrl:find("^https://oplata%.qiwi%.com/form/%?invoice_uid="))
    end)

    it("create: the docs' answer decodes as it is", function()
      b:call("fail_next", { status = 200, body = _M.WAITING, path_pattern = "^/partner/bill/" })
      local bill = assert(p2p:create_bill(copy(_M.CREATE_ARGS)))
      assert.same(decode(_M.WAITING), bill)
    end)

    it("create: the docs' error answer", function()
      b:call("fail_next", { status = 400, body = _M.CREATE_ERROR, path_pattern = "^/partner/bill/" })
      local err = checks.assert_kind("api", p2p:create_bill(copy(_M.CREATE_ARGS)))
      assert.equal(400, err.status)
      assert.equal("http.message.conversion.failed", err.code)
      assert.equal("Bad request", err.description)
      assert.equal("Bad request", err.user_message)
      assert.equal("8fa9cfe10c7f83d1", err.trace_id)
      assert.equal("invoicing-api", err.service)
      assert.equal("PUT", err.method)
      assert.equal(BILL_PATH, err.path)
      assert.is_false(err.retryable)
    end)

    it("status: the docs' request on the wire, and the docs' answer", function()
      assert.truthy(p2p:create_bill(copy(_M.CREATE_ARGS)))
      local bill = assert(p2p:bill(_M.BILL_ID))
      local req = b:last()
      assert.equal("GET", req.method)
      assert.equal(BILL_PATH, req.path)
      assert_headers(req, false)
      assert.is_true(req.body == nil or req.body == "")
      assert.equal("WAITING", bill.status.value)
      b:call("fail_next", { status = 200, body = _M.WAITING, path_pattern = "^/partner/bill/" })
      assert.same(decode(_M.WAITING), assert(p2p:bill(_M.BILL_ID)))
    end)

    it("status: an unknown bill is the docs' 404, from the fake and verbatim", function()
      local err = checks.assert_kind("api", p2p:bill("no-such-bill"))
      assert.equal(404, err.status)
      assert.equal("api.invoice.not.found", err.code)
      assert.equal("Invoice not found", err.message)
      b:call("fail_next", { status = 404, body = _M.NOT_FOUND, path_pattern = "^/partner/bill/" })
      err = checks.assert_kind("api", p2p:bill(_M.BILL_ID))
      assert.equal("b3d41cafa0c6d088", err.trace_id)
      assert.equal("api.invoice.not.found", err.code)
    end)

    it("reject: the docs' request on the wire (JSON content type, empty body), and the docs' answer", function()
      assert.truthy(p2p:create_bill(copy(_M.CREATE_ARGS)))
      local bill = assert(p2p:reject_bill(_M.BILL_ID))
      local req = b:last()
      assert.equal("POST", req.method)
      assert.equal(BILL_PATH .. "/reject", req.path)
      assert_headers(req, true)
      assert.is_true(req.body == nil or req.body == "")
      assert.equal("REJECTED", bill.status.value)
      b:call("fail_next", { status = 200, body = _M.REJECTED, path_pattern = "/reject$" })
      assert.same(decode(_M.REJECTED), assert(p2p:reject_bill(_M.BILL_ID)))
    end)

    it("personalisation: the docs' request, amount as the string 100.00", function()
      assert.truthy(p2p:create_bill { bill_id = _M.BILL_ID, amount = 100, comment = "Text comment",
                                      expires = "2025-04-13T14:30:00+03:00",
                                      custom_fields = { theme_code = "codeStyle" } })
      local req = b:last()
      local docs = decode(themed_body("codeStyle"))
      assert.equal("100.00", req.json.amount.value)
      assert.equal(docs.amount.value, tonumber(req.json.amount.value))
      req.json.amount.value, docs.amount.value = nil, nil
      assert.same(docs, req.json)
      -- the Russian page's own theme code, Cyrillic
      assert.truthy(p2p:create_bill { bill_id = "ru-" .. _M.BILL_ID, amount = 100, comment = "Text comment",
                                      expires = "2025-04-13T14:30:00+03:00",
                                      custom_fields = { theme_code = "кодСтиля" } })
      assert.equal("кодСтиля", b:last().json.customFields.themeCode)
    end)

    it("a bill's life: WAITING, paid by the customer, its notification signed with the secret key", function()
      local bill = assert(p2p:create_bill { amount = "10.50", expires = _M.NOW + 3600, comment = "order 42",
                                            customer = { phone = "+79991112233" } })
      -- a fresh UUID when no bill id is given
      assert.truthy(bill.billId:find("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"))
      assert.equal("79991112233", b:last().json.customer.phone)
      local before = b:call("balance_kopecks")
      assert.truthy(b:call("pay_bill_p2p", bill.billId))
      assert.equal("PAID", assert(p2p:bill(bill.billId)).status.value)
      assert.equal(before + 1050, b:call("balance_kopecks"))
      local n = b:call("last_p2p_notification")
      local note = assert(qiwi.p2p.verify(n.body, n.signature, _M.SECRET))
      assert.equal(bill.billId, note.bill.billId)
      assert.equal("10.50", note.bill.amount.value)
      assert.equal("PAID", note.bill.status.value)
      assert.equal(_M.SITE, note.bill.siteId)
      assert.equal("1", note.version)
      -- not paid twice; a reject keeps a paid bill paid
      assert.is_nil(b:call("pay_bill_p2p", bill.billId))
      assert.equal("PAID", assert(p2p:reject_bill(bill.billId)).status.value)
    end)

    it("expiry by the fake's clock; a rejected or expired bill cannot be paid", function()
      local soon = assert(p2p:create_bill { amount = 1, expires = _M.NOW + 60 })
      local later = assert(p2p:create_bill { amount = 1, expires = _M.NOW + 7200 })
      b:call("advance", 61)
      assert.equal("EXPIRED", assert(p2p:bill(soon.billId)).status.value)
      assert.equal("WAITING", assert(p2p:bill(later.billId)).status.value)
      assert.equal("EXPIRED", assert(p2p:reject_bill(soon.billId)).status.value)
      assert.is_nil(b:call("pay_bill_p2p", soon.billId))
      assert.equal("REJECTED", assert(p2p:reject_bill(later.billId)).status.value)
      assert.is_nil(b:call("pay_bill_p2p", later.billId))
    end)

    it("a create whose answer was lost is retried with the same id and body: one bill", function()
      local c = _M.client(b, { retries = 2 })
      b:call("fail_next", { served = true, drop = true, path_pattern = "^/partner/bill/" })
      local bill = assert(c:create_bill { amount = "5.00", expires = _M.NOW + 3600 })
      local puts = {}
      for _, r in ipairs(b:requests()) do
        if r.method == "PUT" then puts[#puts + 1] = r end
      end
      assert.equal(2, #puts)
      assert.equal(puts[1].path, puts[2].path)
      assert.equal(puts[1].body, puts[2].body)
      assert.equal("/partner/bill/v1/bills/" .. bill.billId, puts[1].path)
      assert.equal("5.00", b:call("bill_p2p", bill.billId).amount.value)
    end)

    it("a bill id used before for another amount: id_reused, the earlier bill in err.bill", function()
      assert.truthy(p2p:create_bill { bill_id = "order-7", amount = "1.00", expires = _M.NOW + 3600 })
      local err = checks.assert_kind("api", p2p:create_bill { bill_id = "order-7", amount = "2.00",
                                                              expires = _M.NOW + 3600 })
      assert.equal("id_reused", err.code)
      assert.equal("1.00", err.bill.amount.value)
      assert.equal("1.00", b:call("bill_p2p", "order-7").amount.value)
      -- the same request again is the same bill
      assert.equal("order-7", assert(p2p:create_bill { bill_id = "order-7", amount = "1.00",
                                                       expires = _M.NOW + 3600 }).billId)
    end)

    it("bad arguments send nothing", function()
      local n = #b:requests()
      local good = { amount = 1, expires = _M.NOW + 3600 }
      local function with(k, v)
        local o = copy(good)
        o[k] = v
        return o
      end
      local cases = {
        { "no amount", { expires = _M.NOW + 60 } },
        { "no expires", { amount = 1 } },
        { "3 decimals", with("amount", "1.005") },
        { "zero", with("amount", 0) },
        { "NaN", with("amount", 0 / 0) },
        { "past", with("expires", _M.NOW - 1) },
        { "now", with("expires", _M.NOW) },
        { "no zone", with("expires", "2025-12-10T09:02:00") },
        { "currency", with("currency", "USD") },
        { "bill id with /", with("bill_id", "a/b") },
        { "bill id with |", with("bill_id", "a|b") },
        { "bill id ..", with("bill_id", "..") },
        { "bill id too long", with("bill_id", string.rep("x", 201)) },
        { "bill id empty", with("bill_id", "") },
        { "bill id CR LF", with("bill_id", "a\r\nb") },
        { "comment 256", with("comment", string.rep("я", 256)) },
        { "comment NUL", with("comment", "a\0b") },
        { "customer phone", with("customer", { phone = "12" }) },
        { "customer email", with("customer", { email = "nobody" }) },
        { "customer field", with("customer", { name = "x" }) },
        { "pay sources", with("custom_fields", { pay_sources_filter = "qw,cash" }) },
        { "custom twice", with("custom_fields", { theme_code = "a", themeCode = "b" }) },
        { "custom value", with("custom_fields", { x = {} }) },
        { "unknown option", with("amout", 1) },
        { "not a table", "1.00" },
      }
      for _, case in ipairs(cases) do
        checks.named(case[1], "argument", p2p:create_bill(case[2]))
      end
      checks.named("two args", "argument", p2p:create_bill(copy(good), 1))
      for _, id in ipairs { "", "a/b", "..", false, {} } do
        checks.named("bill " .. tostring(id), "argument", p2p:bill(id))
        checks.named("reject " .. tostring(id), "argument", p2p:reject_bill(id))
      end
      checks.named("bill none", "argument", p2p:bill())
      assert.equal(n, #b:requests())
      -- 255 Cyrillic letters (510 bytes) are fine: the limits count characters
      assert.truthy(p2p:create_bill(with("comment", string.rep("я", 255))))
    end)

    it("the secret key never shows in an error, QIWI's echo included", function()
      b:call("fail_next", { status = 401, path_pattern = "^/partner/bill/", body = qiwi.json.encode {
        serviceName = "invoicing-api", errorCode = "auth", userMessage = "bad key " .. _M.SECRET,
        description = "Bearer " .. _M.SECRET, traceId = _M.SECRET } })
      local err = checks.assert_kind("api", p2p:bill(_M.BILL_ID))
      for _, k in ipairs { "message", "user_message", "description", "trace_id" } do
        assert.is_nil(tostring(err[k]):find(_M.SECRET, 1, true), k)
      end
      assert.is_nil(tostring(err):find(_M.SECRET, 1, true))
      local wrong = _M.client(b, { secret_key = "another-secret-key" })
      err = checks.assert_kind("api", wrong:bill(_M.BILL_ID))
      assert.equal(401, err.status)
    end)
  end)
end

return _M
