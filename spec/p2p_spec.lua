-- qiwi.p2p: QIWI's P2P invoices. The docs' examples against the fake
-- in-process (p2p_docs.lua; p2p_https_spec.lua runs them over HTTPS), the
-- notification signature with the docs' worked example, the payment form
-- link, and the options of qiwi.p2p.new and qiwi.p2p.handler.
local qiwi = require "qiwi"
local core = require "qiwi.core"
local backends = require "backends"
local checks = require "checks"
local p2p_docs = require "p2p_docs"

local decode = qiwi.json.decode

p2p_docs.run(backends.local_backend, describe, it, before_each)

-- The docs' worked example (both pages): this bill, this secret, this signature.
local WORKED_SECRET = "test-merchant-secret-for-signature-check"
local WORKED_SIGNATURE = "07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b"
local function worked(value)
  return '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":' .. value .. ',"currency":"RUB"},'
    .. '"status":{"value":"PAID","datetime":"2018-03-01T11:16:12+03"},"customer":{},"customFields":{},'
    .. '"creationDateTime":"2018-03-01T11:15:39+03","expirationDateTime":"2018-04-15T11:15:39+03"},"version":"1"}'
end

-- The notification example of both pages.
local NOTIFICATION = [[{
  "bill": {
    "siteId": "9hh4jb-00",
    "billId": "cc961e8d-d4d6-4f02-b737-2297e51fb48e",
    "amount": {
      "value": "1.00",
      "currency": "RUB"
    },
    "status": {
      "value": "PAID",
      "changedDateTime": "2021-01-18T15:25:18+03"
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
    "creationDateTime": "2021-01-18T15:24:53+03",
    "expirationDateTime": "2025-12-10T09:02:00+03"
  },
  "version": "1"
}]]

local function sign(secret, text)
  return core.hmac_sha256_hex(secret, text)
end

describe("qiwi.p2p.verify", function()
  it("the docs' worked example: the signature is over the amount written with two decimals", function()
    assert.equal(WORKED_SIGNATURE, sign(WORKED_SECRET, "RUB|1.00|test_bill|test|PAID"))
    assert.not_equal(WORKED_SIGNATURE, sign(WORKED_SECRET, "RUB|1|test_bill|test|PAID"))
    -- the value as the SDK examples have it (a number) and as QIWI sends it (a string)
    for _, value in ipairs { "1", '"1.00"', "1.0", '"1"' } do
      local note, err = qiwi.p2p.verify(worked(value), WORKED_SIGNATURE, WORKED_SECRET)
      assert.is_nil(err, value)
      assert.equal("test_bill", note.bill.billId)
    end
    assert.truthy(qiwi.p2p.verify(worked("1"), WORKED_SIGNATURE:upper(), WORKED_SECRET))
  end)

  it("refuses a forged one: another amount, bill, site, status, key or signature", function()
    local forged = {
      { worked("2"), WORKED_SIGNATURE, WORKED_SECRET },
      { worked('"1.01"'), WORKED_SIGNATURE, WORKED_SECRET },
      { worked("1"):gsub("test_bill", "test_bill2"), WORKED_SIGNATURE, WORKED_SECRET },
      { worked("1"):gsub('"siteId":"test"', '"siteId":"other"'), WORKED_SIGNATURE, WORKED_SECRET },
      { worked("1"):gsub('"PAID"', '"WAITING"'), WORKED_SIGNATURE, WORKED_SECRET },
      { worked("1"):gsub('"RUB"', '"KZT"'), WORKED_SIGNATURE, WORKED_SECRET },
      { worked("1"), WORKED_SIGNATURE, WORKED_SECRET .. "x" },
      { worked("1"), WORKED_SIGNATURE:sub(1, 63) .. "c", WORKED_SECRET },
    }
    for i, f in ipairs(forged) do
      local note, err = qiwi.p2p.verify(f[1], f[2], f[3])
      checks.named("forged " .. i, "argument", note, err)
      assert.equal("signature", err.code)
    end
  end)

  it("the docs' notification example, signed with our key, verifies; its parts are what is signed", function()
    local secret = p2p_docs.SECRET
    local sig = sign(secret, "RUB|1.00|cc961e8d-d4d6-4f02-b737-2297e51fb48e|9hh4jb-00|PAID")
    local note = assert(qiwi.p2p.verify(NOTIFICATION, sig, secret))
    assert.same(decode(NOTIFICATION), note)
    -- what is not signed may change (and must not be trusted)
    assert.truthy(qiwi.p2p.verify(NOTIFICATION:gsub("Text comment", "other"), sig, secret))
  end)

  it("refuses what is not a notification (decode) and a missing or malformed signature (argument)", function()
    local secret = WORKED_SECRET
    local not_notes = { "", "[]", "{}", "not json", '{"bill":1}', '{"bill":{}}',
      worked("1"):gsub('"billId":"test_bill",', ""), worked("-1"), worked('"1.005"'), worked("true"),
      worked("1"):gsub('"siteId":"test"', '"siteId":""'), worked("1"):gsub('"test_bill"', '"a|b"'),
      worked("1"):gsub('"siteId":"test"', '"siteId":"' .. ("s"):rep(101) .. '"'), worked("1"):gsub('"RUB"', '"RUBL"'),
      string.rep(" ", qiwi.p2p.MAX_BODY + 1) }
    for i, body in ipairs(not_notes) do
      local note, err = qiwi.p2p.verify(body, WORKED_SIGNATURE, secret)
      checks.named("body " .. i, "decode", note, err)
      assert.equal("format", err.code)
    end
    for i, sig in ipairs { nil, "", "07e0", WORKED_SIGNATURE .. "00", ("z"):rep(64), "J4WNfNZd***V5mv2w=" } do
      local note, err = qiwi.p2p.verify(worked("1"), sig, secret)
      checks.named("signature " .. i, "argument", note, err)
      assert.equal("signature", err.code)
    end
    checks.named("no key", "argument", qiwi.p2p.verify(worked("1"), WORKED_SIGNATURE, ""))
    checks.named("key not a string", "argument", qiwi.p2p.verify(worked("1"), WORKED_SIGNATURE, 42))
  end)
end)

-- The query of a link as name -> value, decoded.
local function query_of(url)
  local q = url:match("%?(.*)$") or ""
  local t, order = {}, {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    local function unescape(s) return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    k, v = unescape(k), unescape(v)
    t[k] = v
    order[#order + 1] = k
  end
  return t, order
end

describe("qiwi.p2p.form_url", function()
  local PK = "Fnzr1yTebUiQaBLDnebLMMxL8nc6FF5zfmGQnypc"

  it("the docs' form call: every parameter, names and values percent-encoded", function()
    local url = assert(qiwi.p2p.form_url { public_key = PK, amount = 100, success_url = "http://example.com?success?",
      email = "mail@example.com", custom_fields = { pay_sources_filter = { "qw", "card" } },
      lifetime = "2020-12-01T0509" })
    assert.equal("https://oplata.qiwi.com/create?publicKey=" .. PK .. "&amount=100.00&email=mail%40example.com"
      .. "&customFields%5BpaySourcesFilter%5D=qw%2Ccard&lifetime=2020-12-01T0509"
      .. "&successUrl=http%3A%2F%2Fexample.com%3Fsuccess%3F", url)
    -- what the docs' link says, decoded
    local docs = query_of("https://oplata.qiwi.com/create?publicKey=" .. PK .. "&amount=100&successUrl="
      .. "http%3A%2F%2Fexample.com%3Fsuccess%3F&email=mail@example.com&customFields[paySourcesFilter]=qw,card"
      .. "&lifetime=2020-12-01T0509")
    local ours = query_of(url)
    assert.equal(tonumber(docs.amount), tonumber(ours.amount))
    ours.amount, docs.amount = nil, nil
    assert.same(docs, ours)
  end)

  it("the docs' personalisation link, English and Russian theme codes", function()
    for _, code in ipairs { "codeStyle", "кодСтиля" } do
      local url = assert(qiwi.p2p.form_url { public_key = PK, amount = 100, bill_id = p2p_docs.BILL_ID,
        success_url = "http://example.com?success?", custom_fields = { theme_code = code } })
      local docs = query_of("https://oplata.qiwi.com/create?publicKey=" .. PK .. "&amount=100&billId="
        .. p2p_docs.BILL_ID .. "&successUrl=http%3A%2F%2Fexample.com%3Fsuccess%3F&customFields%5BthemeCode%5D=" .. code)
      local ours = query_of(url)
      assert.equal("100.00", ours.amount)
      ours.amount, docs.amount = nil, nil
      assert.same(docs, ours)
      assert.is_nil(url:find("[%[%]\128-\255]"), "brackets and UTF-8 bytes are percent-encoded")
    end
  end)

  it("every other documented parameter; lifetime from os.time() in Moscow time; the client's public key", function()
    local url = assert(qiwi.p2p.form_url { public_key = PK, bill_id = "order 1 ä", amount = "42.24",
      phone = "+79991112233", account = "client4563", comment = "Заказ №1",
      custom_fields = { theme_code = "codeStyle", pay_sources_filter = "qw,card,mobile", yourParam1 = "7" },
      lifetime = 1606788540 })
    local q, order = query_of(url)
    assert.same({ "publicKey", "billId", "amount", "phone", "account", "comment", "customFields[paySourcesFilter]",
                  "customFields[themeCode]", "customFields[yourParam1]", "lifetime" }, order)
    assert.equal("order 1 ä", q.billId)
    assert.equal("79991112233", q.phone)
    assert.equal("Заказ №1", q.comment)
    assert.equal("qw,card,mobile", q["customFields[paySourcesFilter]"])
    assert.equal("2020-12-01T0509", q.lifetime)   -- 02:09 UTC
    assert.equal("2020-12-01T0509", query_of(assert(qiwi.p2p.form_url { public_key = PK,
      lifetime = "2020-12-01T05:09:00+03:00" })).lifetime)
    local p2p = assert(qiwi.p2p.new { secret_key = p2p_docs.SECRET, public_key = PK })
    assert.equal(PK, query_of(assert(p2p:form_url { amount = 1 })).publicKey)
  end)

  it("refuses bad arguments", function()
    local bad = {
      {}, { public_key = "short" }, { public_key = PK, amount = "1.005" }, { public_key = PK, amount = 0 },
      { public_key = PK, bill_id = string.rep("x", 201) }, { public_key = PK, bill_id = "a|b" },
      { public_key = PK, phone = "12" }, { public_key = PK, email = "x" }, { public_key = PK, comment = ("я"):rep(256) },
      { public_key = PK, lifetime = "2020-13-01T0509" }, { public_key = PK, lifetime = "tomorrow" },
      { public_key = PK, success_url = "javascript:alert(1)" }, { public_key = PK, success_url = "a b" },
      { public_key = PK, custom_fields = { pay_sources_filter = "cash" } }, { public_key = PK, currency = "KZT" },
      "x",
    }
    for i, o in ipairs(bad) do checks.named("form " .. i, "argument", qiwi.p2p.form_url(o)) end
  end)
end)

describe("qiwi.p2p.pay_url", function()
  it("the docs' payment form link: paySource and successUrl", function()
    local base = "https://oplata.qiwi.com/form?invoiceUid=a8437e7e-dc48-44f7-9bdb-4d46ca8ef2e4"
    assert.equal(base .. "&paySource=qw&successUrl=google.com",
                 qiwi.p2p.pay_url(base, { pay_source = "qw", success_url = "google.com" }))
    assert.equal("https://oplata.qiwi.com/form/?invoice_uid=aa0fa2bb&paySource=card&successUrl=https%3A%2F%2Fshop.example%2Fok",
      qiwi.p2p.pay_url("https://oplata.qiwi.com/form/?invoice_uid=aa0fa2bb",
                       { pay_source = "card", success_url = "https://shop.example/ok" }))
    checks.named("pay source", "argument", qiwi.p2p.pay_url(base, { pay_source = "cash" }))
    checks.named("unknown", "argument", qiwi.p2p.pay_url(base, { paysource = "qw" }))
    checks.named("not a url", "argument", qiwi.p2p.pay_url("oplata", {}))
  end)
end)

describe("qiwi.p2p.new", function()
  it("refuses bad options, the secret key in no message", function()
    local secret = p2p_docs.SECRET
    local bad = {
      "x", {}, { secret_key = "" }, { secret_key = "short" }, { secret_key = secret .. " x" },
      { secret_key = secret, token = "test-token" }, { secret_key = secret, wallet = "79991112233" },
      { secret_key = secret, base_url = "http://api.qiwi.com" }, { secret_key = secret, base_url = "https://u:p@x" },
      { secret_key = secret, public_key = "a b c d e f g" }, { secret_key = secret, clock = 5 },
      { secret_key = secret, transport = {} }, { secret_key = secret, retries = 11 },
    }
    for i, o in ipairs(bad) do
      local c, err = qiwi.p2p.new(o)
      checks.named("options " .. i, "argument", c, err)
      assert.is_nil(tostring(err):find(secret, 1, true))
    end
  end)

  it("keeps the secret key out of the client table", function()
    local p2p = assert(qiwi.p2p.new { secret_key = p2p_docs.SECRET })
    local function walk(t, seen)
      seen = seen or {}
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
        assert.is_false(v == p2p_docs.SECRET or k == p2p_docs.SECRET)
        if type(v) == "table" then walk(v, seen) end
      end
    end
    walk(p2p)
    assert.equal("https://api.qiwi.com", p2p.base_url)
  end)
end)

describe("qiwi.p2p.handler", function()
  it("refuses bad options with nil, err", function()
    local ok = function() end
    for i, o in ipairs {
      "x", {}, { secret_key = "short", on_bill = ok }, { secret_key = WORKED_SECRET },
      { secret_key = WORKED_SECRET, on_bill = ok, store = {} }, { secret_key = WORKED_SECRET, on_bill = ok, ttl = 0 },
      { secret_key = WORKED_SECRET, on_bill = ok, name = "" }, { secret_key = WORKED_SECRET, on_bill = ok, dict = "d" },
    } do
      checks.named("handler " .. i, "argument", qiwi.p2p.handler(o))
    end
    assert.is_function(qiwi.p2p.handler { secret_key = WORKED_SECRET, on_bill = ok })
  end)

  -- the handler under a stand-in for ngx: the status it answered
  local function post(handler, body, signature)
    local saved, status = rawget(_G, "ngx"), nil
    _G.ngx = setmetatable({
      HTTP_OK = 200, ERR = 4, WARN = 5, header = {},
      req = { get_method = function() return "POST" end, read_body = function() end,
              get_body_data = function() return body end, get_body_file = function() end,
              get_headers = function() return { ["x-api-signature-sha256"] = signature } end },
      print = function() end, say = function() end, log = function() end, exit = function() end,
    }, { __newindex = function(t, k, v) if k == "status" then status = v else rawset(t, k, v) end end })
    local ok, err = pcall(handler)
    _G.ngx = saved
    assert(ok, tostring(err))
    return status
  end

  it("hands a bill over again after a worker died inside on_bill (its claim expires)", function()
    local now = 1000
    local s = assert(qiwi.store.memory { clock = function() return now end })
    local calls = 0
    local h = qiwi.p2p.handler { secret_key = WORKED_SECRET, store = s, on_bill = function() calls = calls + 1 end }
    -- what a worker killed inside on_bill leaves: the claim, never the mark
    local events = require "qiwi.events"
    assert.equal("claimed", events.claim(s, "p2p:default:test|test_bill|PAID"))
    assert.equal(503, post(h, worked("1"), WORKED_SIGNATURE))
    assert.equal(0, calls)
    now = now + events.CLAIM_TTL + 1
    assert.equal(200, post(h, worked("1"), WORKED_SIGNATURE))
    assert.equal(200, post(h, worked("1"), WORKED_SIGNATURE))
    assert.equal(1, calls)
  end)
end)
