-- Tests of the fake QIWI itself (qiwi.fake), called directly: no client.
-- Runs under Lua 5.4 and LuaJIT:
--   lua5.4 /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua' spec/fake_spec.lua
--   luajit /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua' spec/fake_spec.lua

local fake = require "qiwi.fake"
local json = require "qiwi.fake.json"
local U = require "qiwi.fake.util"
local hmac = require "qiwi.fake.hmac"

local W = "79111234567"
local AUTH = "Bearer test-token"

-- util.count of spec/support/util.lua, which is not on the path of the
-- commands above.
local function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end

-- One request; returns status, decoded JSON body (or nil), headers, raw body.
local function call(f, method, path, query, body, headers)
  local h = { authorization = AUTH, accept = "application/json" }
  if body ~= nil then
    h["content-type"] = "application/json"
    if type(body) == "table" then body = json.encode(body) end
  end
  for k, v in pairs(headers or {}) do
    if v == false then h[k] = nil else h[k] = v end
  end
  local status, hd, b = f:handle { method = method, path = path, query = query, headers = h, body = body }
  local data
  if b ~= "" and (hd["content-type"] or ""):find("json") then data = assert(json.decode(b)) end
  return status, data, hd, b
end

local function get(f, path, query, headers) return call(f, "GET", path, query, nil, headers) end

-- A Payment body; amount is decimal text so that it goes on the wire exactly.
local function payment(id, amount, fields, extra)
  local b = {
    id = id, sum = { amount = json.raw(amount), currency = "643" },
    paymentMethod = { type = "Account", accountId = "643" }, fields = fields,
  }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

local function pay(f, provider, body)
  return call(f, "POST", "/sinap/api/v2/terms/" .. provider .. "/payments", nil, body)
end

local function transfer(f, id, amount, to, comment)
  return pay(f, 99, payment(id, amount, { account = to or "+79121112233" }, { comment = comment }))
end

local function is_first_shape(t)
  return type(t) == "table" and type(t.serviceName) == "string" and type(t.errorCode) == "string"
    and type(t.userMessage) == "string" and type(t.description) == "string" and type(t.traceId) == "string"
end

local function rub(f) return f:balance_kopecks("qw_wallet_rub") end

-- A clock the test moves by hand.
local function manual_clock(start)
  local c = { t = start or 1700000000 }
  c.fn = function() return c.t end
  return c
end

local HIST = "/payment-history/v2/persons/" .. W .. "/payments"

---------------------------------------------------------------------------

describe("qiwi.fake.json", function()
  it("writes integers as plain digits and amounts in their shortest form", function()
    assert.equal("79111234567", json.encode(79111234567))
    assert.equal("9007199254740992", json.encode(2 ^ 53))
    assert.equal("1000000000000000000000", json.encode(1e21))
    assert.equal("8.74", json.encode(8.74))
    assert.equal("0.5", json.encode(0.5))
    assert.equal("0.0000001", json.encode(1e-7))
    assert.equal("100.50", json.encode(json.raw("100.50")))
    assert.equal("2001291110576200000", json.encode(json.raw("2001291110576200000")))
  end)

  it("tells empty arrays from empty objects and sorts keys", function()
    assert.equal('{"a":[],"b":{},"c":null}', json.encode { a = json.array(), b = {}, c = json.null })
    assert.equal("[1,2,3]", json.encode { 1, 2, 3 })
    assert.equal('"a\\n\\"b\\u0001"', json.encode('a\n"b\1'))
  end)

  it("decodes objects, arrays, escapes and surrogate pairs", function()
    local v = assert(json.decode('{"a":[1,2.5,"x"],"b":{"c":null,"d":true},"e":"\\u0416\\ud83d\\ude00"}'))
    assert.same({ 1, 2.5, "x" }, { v.a[1], v.a[2], v.a[3] })
    assert.is_true(json.is_array(v.a))
    assert.equal(json.null, v.b.c)
    assert.is_true(v.b.d)
    assert.equal("Ж😀", v.e)
  end)

  it("keeps the exact text of numbers", function()
    local v = assert(json.decode('{"sum":{"amount":100.50},"l":[1e2]}'))
    assert.equal("100.50", json.number_text(v.sum, "amount"))
    assert.equal("1e2", json.number_text(v.l, 1))
  end)

  it("rejects everything that is not strict JSON", function()
    for _, s in ipairs {
      "", " ", "[1,2", '{"a":1,}', "[1,]", "01", "1.", ".5", "1e", "+1", "NaN", "Infinity", "tru",
      "'a'", '{"a" 1}', '{a:1}', "[1,,2]", '"a\1"', '"\\x"', '"\255"', '"\237\160\128"', '"\\ud800"',
      "1 2", '{"a":1}x', "nul", "--1",
    } do
      local v, err = json.decode(s)
      assert.is_nil(v, "accepted: " .. s)
      assert.is_string(err)
    end
  end)

  it("rejects nesting deeper than 200", function()
    assert.is_nil(json.decode(string.rep("[", 201) .. string.rep("]", 201)))
    assert.truthy(json.decode(string.rep("[", 100) .. string.rep("]", 100)))
  end)
end)

describe("qiwi.fake.util", function()
  it("reads amounts into kopecks exactly, rounding down", function()
    assert.equal(10050, U.kopecks_from_text("100.50"))
    assert.equal(10050, U.kopecks_from_text("100.509"))
    assert.equal(874, U.kopecks_from_text("8.74"))
    assert.equal(10000, U.kopecks_from_text("1e2"))
    assert.equal(12, U.kopecks_from_text("1.2e-1"))
    assert.equal(0, U.kopecks_from_text("0.001"))
    assert.is_nil(U.kopecks_from_text("1,5"))
    assert.equal(100050, U.kopecks("1000.50"))
    assert.equal(874, U.kopecks(8.74))
  end)

  it("writes amounts as the shortest decimal", function()
    assert.equal("8.74", U.amount_text(874))
    assert.equal("0.5", U.amount_text(50))
    assert.equal("100", U.amount_text(10000))
    assert.equal("0.01", U.amount_text(1))
    assert.equal("-3.1", U.amount_text(-310))
  end)

  it("formats and parses QIWI dates in any zone", function()
    assert.equal("2023-11-15T01:13:20+03:00", U.date(1700000000))
    assert.equal("2023-11-14T22:13:20+00:00", U.date(1700000000, 0))
    assert.equal("2023-11-14T17:13:20-05:00", U.date(1700000000, -300))
    local t, off = U.parse_date("2023-11-15T01:13:20+03:00")
    assert.equal(1700000000, t)
    assert.equal(180, off)
    assert.equal(1700000000, (U.parse_date("2023-11-14T17:13:20-05:00")))
    assert.equal(951782400 - 10800, (U.parse_date("2000-02-29T00:00:00+03:00")))
    for _, bad in ipairs { "2023-02-29T00:00:00+03:00", "2023-11-15T24:00:00+03:00", "2023-11-15 01:13:20+03:00",
                           "2023-11-15T01:13:20Z", "2023-11-15T01:13:20 03:00", "2023-13-01T00:00:00+03:00" } do
      assert.is_nil(U.parse_date(bad), bad)
    end
  end)

  it("parses query strings strictly", function()
    local p = assert(U.parse_query("types%5B0%5D=TURNOVER&a=b+c&d=%2B03%3A00&e"))
    assert.equal("TURNOVER", p["types[0]"])
    assert.equal("b c", p.a)
    assert.equal("+03:00", p.d)
    assert.equal("", p.e)
    assert.is_nil(U.parse_query("a=%zz"))
    assert.is_nil(U.parse_query("a=1&a=2"))
    local list = assert(U.indexed({ ["s[1]"] = "B", ["s[0]"] = "A" }, "s"))
    assert.same({ "A", "B" }, list)
    assert.is_nil(U.indexed({ ["s[1]"] = "B" }, "s"))
  end)

  it("parses URLs for the transport", function()
    local u = U.parse_url("https://edge.qiwi.com:8443/a/b?x=1&y=%2B#frag")
    assert.same({ scheme = "https", host = "edge.qiwi.com", port = 8443, path = "/a/b", query = "x=1&y=%2B" }, u)
    u = U.parse_url("http://h?q=1")
    assert.equal("/", u.path)
    assert.equal("q=1", u.query)
    u = U.parse_url("https://h/p")
    assert.equal("", u.query)
    assert.is_nil(U.parse_url("/just/a/path"))
    assert.is_nil(U.parse_url("https:///nohost"))
  end)

  it("lower-cases Russian letters", function()
    assert.equal("мтс ёжик abc", U.lower("МТС Ёжик ABC"))
  end)
end)

describe("qiwi.fake.hmac", function()
  it("computes SHA-256 and the docs' webhook signature example", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hmac.hex(hmac.sha256("")))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hmac.hex(hmac.sha256("abc")))
    local key = hmac.unbase64("JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=")
    assert.equal("f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243",
      hmac.hex(hmac.hmac_sha256(key, "643|1|IN|+79161112233|13353941550")))
  end)
end)

---------------------------------------------------------------------------

describe("routing and authorization", function()
  local f
  before_each(function() f = fake.new {} end)

  it("answers an unknown path with 404 and QIWI's error body", function()
    local s, b = get(f, "/funding-sources/v9/nothing")
    assert.equal(404, s)
    assert.is_true(is_first_shape(b))
  end)

  it("answers a known path with another method with 405 and Allow", function()
    local s, b, h = call(f, "DELETE", "/funding-sources/v2/persons/" .. W .. "/accounts")
    assert.equal(405, s)
    assert.equal("GET, POST", h.allow)
    assert.is_true(is_first_shape(b))
  end)

  it("wants a bearer token: missing, wrong or another scheme is 401", function()
    local path = "/funding-sources/v2/persons/" .. W .. "/accounts"
    local s, b = get(f, path, nil, { authorization = false })
    assert.equal(401, s)
    assert.is_true(is_first_shape(b))
    assert.equal(401, (get(f, path, nil, { authorization = "Bearer nope" })))
    assert.equal(401, (get(f, path, nil, { authorization = "Basic test-token" })))
    assert.equal(401, (get(f, path, nil, { authorization = "Bearer  test-token" })))
    assert.equal(200, (get(f, path, nil, { authorization = "bearer test-token" })))
  end)

  it("answers 401 in the first error shape on the sinap service too", function()
    local s, b = call(f, "POST", "/sinap/api/v2/terms/99/payments", nil,
      payment("1", "10", { account = "79121112233" }), { authorization = "Bearer bad" })
    assert.equal(401, s)
    assert.is_true(is_first_shape(b))
  end)

  it("accepts a token given in the options", function()
    f = fake.new { token = "other" }
    assert.equal(401, (get(f, "/sinap/crossRates")))
    assert.equal(200, (get(f, "/sinap/crossRates", nil, { authorization = "Bearer other" })))
  end)

  it("answers 404 for a person id that is not the wallet's", function()
    local s, b = get(f, "/funding-sources/v2/persons/79990000000/accounts")
    assert.equal(404, s)
    assert.equal("wallet.not.found", b.errorCode)
    assert.equal(404, (get(f, "/funding-sources/v2/persons/+" .. W .. "/accounts")))
  end)

  it("rejects unknown, repeated and malformed query parameters", function()
    local path = "/funding-sources/v2/persons/" .. W .. "/accounts"
    local s, b = get(f, path, "foo=1")
    assert.equal(400, s)
    assert.matches("foo", b.description)
    assert.equal(400, (get(f, path, "timeout=1000&timeout=1000&alias=qw_wallet_rub")))
    assert.equal(400, (get(f, path, "alias=%G1")))
    f = fake.new { lenient_params = true }
    assert.equal(200, (get(f, path, "foo=1")))
  end)

  it("rejects an Accept header that excludes JSON", function()
    local path = "/qw-nicknames/v1/persons/" .. W .. "/nickname"
    assert.equal(400, (get(f, path, nil, { accept = "text/html" })))
    assert.equal(200, (get(f, path, nil, { accept = "*/*" })))
    assert.equal(200, (get(f, path, nil, { accept = false })))
  end)

  it("wants JSON bodies with a JSON content type", function()
    local path = "/funding-sources/v2/persons/" .. W .. "/accounts"
    assert.equal(400, (call(f, "POST", path, nil, nil)))
    assert.equal(400, (call(f, "POST", path, nil, '{"alias":"qw_wallet_usd"}', { ["content-type"] = "text/plain" })))
    local s, b = call(f, "POST", path, nil, '{"alias":"qw_wallet_usd",}')
    assert.equal(400, s)
    assert.matches("malformed JSON", b.description)
    assert.equal(400, (call(f, "POST", path, nil, '["qw_wallet_usd"]')))
    assert.equal(201, (call(f, "POST", path, nil, '{"alias":"qw_wallet_usd"}',
      { ["content-type"] = "application/json;charset=UTF-8" })))
  end)

  it("logs every request with decoded params and body", function()
    call(f, "GET", "/qw-limits/v1/persons/" .. W .. "/actual-limits", "types%5B0%5D=TURNOVER", nil,
      { ["X-Custom"] = "1" })
    call(f, "POST", "/nowhere", nil, '{"a":1}')
    assert.equal(2, #f.requests)
    local r = f.requests[1]
    assert.equal("GET", r.method)
    assert.equal("/qw-limits/v1/persons/" .. W .. "/actual-limits", r.path)
    assert.equal("types%5B0%5D=TURNOVER", r.query)
    assert.equal("TURNOVER", r.params["types[0]"])
    assert.equal("1", r.headers["x-custom"])
    assert.equal(AUTH, r.headers.authorization)
    assert.equal(200, r.status)
    assert.equal('{"a":1}', f.requests[2].body)
    assert.equal(1, f.requests[2].json.a)
    assert.equal(404, f.requests[2].status)
  end)

  it("takes a query string left in the path", function()
    local s = f:handle { method = "GET", path = "/sinap/crossRates?x=1", headers = { Authorization = AUTH } }
    assert.equal(400, s)
    assert.equal("1", f.requests[1].params.x)
  end)

  it("resets to the seeded state and empties the log in place", function()
    local log = f.requests
    assert.equal(200, (transfer(f, "1", "10")))
    assert.equal(100000 - 1000, rub(f))
    f:reset()
    assert.equal(100000, rub(f))
    assert.equal(0, #log)
    assert.equal(log, f.requests)
    assert.equal(200, (transfer(f, "1", "10")))
    assert.equal(100000 - 1000, rub(f))
  end)
end)

---------------------------------------------------------------------------

describe("profile", function()
  local f
  before_each(function() f = fake.new {} end)

  it("returns the three parts with the wallet as an exact integer", function()
    local s, b, _, raw = get(f, "/person-profile/v1/profile/current")
    assert.equal(200, s)
    assert.truthy(raw:find('"personId":79111234567', 1, true))
    assert.equal(79111234567, b.contractInfo.contractId)
    assert.equal("FULL", b.contractInfo.identificationInfo[1].identificationLevel)
    assert.equal(643, b.userInfo.defaultPayCurrency)
    assert.equal(json.null, b.userInfo.email)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", b.authInfo.registrationDate)
  end)

  it("leaves out the parts whose flag is false and refuses other flag values", function()
    local s, b = get(f, "/person-profile/v1/profile/current", "authInfoEnabled=false&userInfoEnabled=false")
    assert.equal(200, s)
    assert.is_nil(b.authInfo)
    assert.is_nil(b.userInfo)
    assert.is_table(b.contractInfo)
    assert.equal(400, (get(f, "/person-profile/v1/profile/current", "authInfoEnabled=0")))
  end)
end)

describe("identification", function()
  local path = "/identification/v1/persons/" .. W .. "/identification"
  local person = { birthDate = "1998-02-11", firstName = "Иван", middleName = "Иванович", lastName = "Иванов",
                   passport = "4400111222", inn = "", snils = "", oms = "" }

  it("shows masked data of the seeded wallet", function()
    local s, b = get(fake.new {}, path)
    assert.equal(200, s)
    assert.equal("FULL", b.type)
    assert.equal("44***22", b.passport)
    assert.equal("77***90", b.inn)
    assert.equal(79111234567, b.id)
  end)

  it("identifies a SIMPLE wallet and raises it to VERIFIED", function()
    local f = fake.new { identification = "SIMPLE" }
    local s, b = get(f, path)
    assert.equal(200, s)
    assert.equal("SIMPLE", b.type)
    assert.equal(json.null, b.passport)
    s, b = call(f, "POST", path, nil, person)
    assert.equal(200, s)
    assert.equal("VERIFIED", b.type)
    assert.equal("4400111222", b.passport)
    assert.matches("^%d+$", b.inn)
    assert.equal("VERIFIED", f:identification_level())
    s, b = get(f, path)
    assert.equal(200, s)
    assert.equal("44***22", b.passport)
  end)

  it("keeps the level when the data does not pass the check", function()
    local f = fake.new { identification = "SIMPLE" }
    local bad = {}
    for k, v in pairs(person) do bad[k] = v end
    bad.passport = "0000000000"
    local s, b = call(f, "POST", path, nil, bad)
    assert.equal(200, s)
    assert.equal("SIMPLE", b.type)
  end)

  it("refuses incomplete or malformed data", function()
    local f = fake.new { identification = "SIMPLE" }
    for _, change in ipairs { { birthDate = "11.02.1998" }, { birthDate = "1998-02-30" }, { passport = "44 00" },
                              { firstName = json.null }, { inn = "12" }, { middleName = 5 } } do
      local b = {}
      for k, v in pairs(person) do b[k] = v end
      for k, v in pairs(change) do b[k] = v ~= json.null and v or nil end
      local s, e = call(f, "POST", path, nil, b)
      assert.equal(400, s)
      assert.is_true(is_first_shape(e))
    end
    assert.equal("SIMPLE", f:identification_level())
  end)
end)

describe("limits", function()
  local path = "/qw-limits/v1/persons/" .. W .. "/actual-limits"

  it("answers the asked types with spent amounts of this month", function()
    local f = fake.new { history_pages = 0, balance = "1234.56" }
    assert.equal(200, (transfer(f, "1", "100.25")))
    local s, b = get(f, path, "types%5B0%5D=TURNOVER&types%5B1%5D=REFILL&types%5B2%5D=PAYMENTS_P2P")
    assert.equal(200, s)
    local by = {}
    for _, l in ipairs(b.limits.RU) do by[l.type] = l end
    assert.equal(3, #b.limits.RU)
    assert.equal(100.25, by.TURNOVER.spent)
    assert.equal(1000000, by.TURNOVER.max)
    assert.equal(999899.75, by.TURNOVER.rest)
    assert.equal(1134.31, by.REFILL.spent)
    assert.equal(100.25, by.PAYMENTS_P2P.spent)
    assert.equal("RUB", by.TURNOVER.currency)
    assert.matches("^%d%d%d%d%-%d%d%-01T00:00:00%+03:00$", by.TURNOVER.interval.dateFrom)
  end)

  it("needs at least one valid type, numbered from zero", function()
    local f = fake.new {}
    assert.equal(400, (get(f, path)))
    assert.equal(400, (get(f, path, "types%5B0%5D=SOMETHING")))
    assert.equal(400, (get(f, path, "types%5B1%5D=TURNOVER")))
    assert.equal(400, (get(f, path, "types=TURNOVER")))
  end)

  it("counts p2p transfers of the month", function()
    local f = fake.new { history_pages = 0 }
    local p = "/qw-limits/v1/persons/" .. W .. "/p2p-payment-count-limit"
    local _, b = get(f, p)
    assert.equal(0, b.p2pPaymentCountLimit)
    transfer(f, "1", "10")
    transfer(f, "2", "10")
    _, b = get(f, p)
    assert.equal(2, b.p2pPaymentCountLimit)
  end)
end)

describe("restrictions", function()
  it("lists OUTGOING_PAYMENTS while payments are blocked, and payments fail", function()
    local f = fake.new {}
    local path = "/person-profile/v1/persons/" .. W .. "/status/restrictions"
    local s, b, _, raw = get(f, path)
    assert.equal(200, s)
    assert.equal("[]", raw)
    assert.equal(0, #b)
    f:set_restricted(true)
    s, b = get(f, path)
    assert.equal(200, s)
    assert.equal("OUTGOING_PAYMENTS", b[1].restrictionCode)
    local ps, pb = transfer(f, "1", "10")
    assert.equal(400, ps)
    assert.equal("QWPRC-319", pb.code)
    assert.equal(100000, rub(f))
  end)
end)

describe("identification downgrade", function()
  local base = "/qw-ident-downgrade-api/v1/persons/" .. W .. "/identification-downgrade/operations"

  it("runs request, confirm and status to SUCCESS and lowers FULL to VERIFIED", function()
    local f = fake.new {}
    local s, b = call(f, "POST", base, nil, { identificationLevel = "VERIFIED" })
    assert.equal(200, s)
    local id = b.downgradeOperationId
    assert.is_true(U.is_uuid(id))
    s, b = get(f, base .. "/" .. id)
    assert.equal(200, s)
    assert.equal("IN_PROGRESS", b.downgradeOperation.status.type)
    assert.equal("FULL", f:identification_level())
    s, b = call(f, "PUT", base .. "/" .. id .. "/confirm", nil, {})
    assert.equal(200, s)
    assert.equal(id, b.downgradeOperation.downgradeOperationId)
    assert.equal("IN_PROGRESS", b.downgradeOperation.status.type)
    s, b = get(f, base .. "/" .. id)
    assert.equal(200, s)
    assert.equal("SUCCESS", b.downgradeOperation.status.type)
    assert.equal("VERIFIED", f:identification_level())
    s = call(f, "POST", base, nil, { identificationLevel = "VERIFIED" })
    assert.equal(422, s)
  end)

  it("refuses other levels, a missing level, an empty confirm and unknown operations", function()
    local f = fake.new {}
    assert.equal(422, (call(f, "POST", base, nil, { identificationLevel = "SIMPLE" })))
    assert.equal(400, (call(f, "POST", base, nil, {})))
    local _, b = call(f, "POST", base, nil, { identificationLevel = "VERIFIED" })
    assert.equal(400, (call(f, "PUT", base .. "/" .. b.downgradeOperationId .. "/confirm", nil, nil)))
    assert.equal(404, (get(f, base .. "/00000000-0000-4000-8000-000000000000")))
    assert.equal(422, (call(fake.new { identification = "VERIFIED" }, "POST", base, nil,
      { identificationLevel = "VERIFIED" })))
  end)
end)

describe("nickname", function()
  it("returns the configured nickname", function()
    local s, b = get(fake.new { nickname = "NICK" }, "/qw-nicknames/v1/persons/" .. W .. "/nickname")
    assert.equal(200, s)
    assert.same({ canChange = true, canUse = true, description = "", nickname = "NICK" }, b)
  end)
end)

---------------------------------------------------------------------------

describe("payment history", function()
  local clock, f
  before_each(function()
    clock = manual_clock()
    f = fake.new { history_pages = 3, history_rows = 50, clock = clock.fn }
  end)

  it("pages through the whole seeded history, newest first", function()
    local seen, pages, prev = {}, 0, nil
    local query = "rows=50"
    while true do
      local s, b = get(f, HIST, query)
      assert.equal(200, s)
      pages = pages + 1
      for _, p in ipairs(b.data) do
        assert.is_nil(seen[p.txnId], "repeated " .. tostring(p.txnId))
        seen[p.txnId] = true
        local t = assert(U.parse_date(p.date))
        if prev then assert.is_true(t < prev.t or (t == prev.t and p.txnId < prev.id)) end
        prev = { t = t, id = p.txnId }
        assert.equal(79111234567, p.personId)
        assert.equal(U.kopecks(p.sum.amount) + U.kopecks(p.commission.amount), U.kopecks(p.total.amount))
      end
      if b.nextTxnId == json.null then
        assert.equal(json.null, b.nextTxnDate)
        break
      end
      assert.equal(50, #b.data)
      query = "rows=50&nextTxnId=" .. b.nextTxnId .. "&nextTxnDate=" .. U.escape(b.nextTxnDate)
    end
    assert.equal(150, count(seen))
    assert.equal(3, pages)
  end)

  it("pages with a row count that does not divide the history", function()
    local ids, query = {}, "rows=7"
    for _ = 1, 30 do
      local _, b = get(f, HIST, query)
      for _, p in ipairs(b.data) do ids[#ids + 1] = p.txnId end
      if b.nextTxnId == json.null then break end
      query = "rows=7&nextTxnId=" .. b.nextTxnId .. "&nextTxnDate=" .. U.escape(b.nextTxnDate)
    end
    assert.equal(150, #ids)
    assert.equal(20000000150, ids[1])
    assert.equal(20000000001, ids[150])
  end)

  it("wants rows from 1 to 50", function()
    for _, q in ipairs { "", "rows=0", "rows=51", "rows=abc", "rows=-1", "rows=5.5" } do
      local s, b = get(f, HIST, q)
      assert.equal(400, s, q)
      assert.is_true(is_first_shape(b))
    end
    local s, b = get(f, HIST, "rows=1")
    assert.equal(200, s)
    assert.equal(1, #b.data)
  end)

  it("filters by operation", function()
    for _, op in ipairs { "IN", "OUT", "QIWI_CARD" } do
      local _, b = get(f, HIST, "rows=50&operation=" .. op)
      assert.is_true(#b.data > 0, op)
      for _, p in ipairs(b.data) do assert.equal(op, p.type) end
    end
    assert.equal(400, (get(f, HIST, "rows=5&operation=BOTH")))
  end)

  it("filters by sources", function()
    local _, b = get(f, HIST, "rows=50&sources%5B0%5D=QW_USD")
    assert.is_true(#b.data > 0)
    for _, p in ipairs(b.data) do assert.equal(840, p.sum.currency) end
    local _, all = get(f, HIST, "rows=50&sources%5B0%5D=QW_RUB&sources%5B1%5D=CARD")
    for _, p in ipairs(all.data) do assert.equal(643, p.sum.currency) end
    assert.equal(400, (get(f, HIST, "rows=5&sources%5B0%5D=BITCOIN")))
    assert.equal(400, (get(f, HIST, "rows=5&sources%5B1%5D=QW_RUB")))
  end)

  it("filters by a date window and writes dates in the request's zone", function()
    local newest = f:history()[1].date
    local from = U.date(newest - 5 * 3600, 300)
    local till = U.date(newest, 300)
    local s, b = get(f, HIST, "rows=50&startDate=" .. U.escape(from) .. "&endDate=" .. U.escape(till))
    assert.equal(200, s)
    assert.is_true(#b.data >= 5 and #b.data <= 7)
    for _, p in ipairs(b.data) do
      assert.matches("%+05:00$", p.date)
      local t = U.parse_date(p.date)
      assert.is_true(t >= newest - 5 * 3600 and t <= newest)
    end
  end)

  it("refuses bad date filters", function()
    local a, b = U.escape("2023-11-01T00:00:00+03:00"), U.escape("2023-11-10T00:00:00+03:00")
    assert.equal(400, (get(f, HIST, "rows=5&startDate=" .. a)))
    assert.equal(400, (get(f, HIST, "rows=5&endDate=" .. b)))
    assert.equal(400, (get(f, HIST, "rows=5&startDate=" .. b .. "&endDate=" .. a)))
    assert.equal(400, (get(f, HIST, "rows=5&startDate=" .. U.escape("2023-07-01T00:00:00+03:00") .. "&endDate=" .. b)))
    assert.equal(400, (get(f, HIST, "rows=5&startDate=" .. a .. "&endDate=" .. U.escape("2023-11-10T00:00:00+05:00"))))
    -- an unencoded '+' is a space in a query string
    assert.equal(400, (get(f, HIST, "rows=5&startDate=2023-11-01T00:00:00+03:00&endDate=2023-11-10T00:00:00+03:00")))
    assert.equal(200, (get(f, HIST, "rows=5&startDate=" .. a .. "&endDate=" .. U.escape("2024-01-30T00:00:00+03:00"))))
  end)

  it("wants nextTxnId and nextTxnDate together", function()
    assert.equal(400, (get(f, HIST, "rows=5&nextTxnId=20000000100")))
    assert.equal(400, (get(f, HIST, "rows=5&nextTxnDate=" .. U.escape("2023-11-10T00:00:00+03:00"))))
    assert.equal(400, (get(f, HIST, "rows=5&nextTxnId=x&nextTxnDate=" .. U.escape("2023-11-10T00:00:00+03:00"))))
  end)

  it("shows a new payment first, with the transaction id the payment answered", function()
    local _, info = transfer(f, "1700000000000", "12.34", "+79121112233", "thanks")
    local _, b = get(f, HIST, "rows=1")
    local p = b.data[1]
    assert.equal(tonumber(info.transaction.id), p.txnId)
    assert.equal(12.34, p.sum.amount)
    assert.equal("OUT", p.type)
    assert.equal("SUCCESS", p.status)
    assert.equal(99, p.provider.id)
    assert.equal("thanks", p.comment)
    assert.equal("1700000000000", p.trmTxnId)
    assert.equal(U.date(clock.t), p.date)
  end)

  it("answers 200 with an empty page when nothing matches", function()
    local _, b = get(fake.new { history_pages = 0 }, HIST, "rows=10")
    assert.equal(0, #b.data)
    assert.equal(json.null, b.nextTxnId)
  end)
end)

describe("payment totals", function()
  it("sums successful payments per currency and direction", function()
    local f = fake.new { history_pages = 2, history_rows = 40 }
    local rows = f:history()
    local from, till = rows[#rows].date, rows[1].date
    local want_in, want_out = {}, {}
    for _, p in ipairs(rows) do
      if p.status == "SUCCESS" then
        local t = p.type == "IN" and want_in or want_out
        t[p.currency] = (t[p.currency] or 0) + p.sum + p.commission
      end
    end
    local s, b = get(f, HIST .. "/total", "startDate=" .. U.escape(U.date(from)) .. "&endDate=" .. U.escape(U.date(till)))
    assert.equal(200, s)
    for _, e in ipairs(b.incomingTotal) do assert.equal(want_in[e.currency], U.kopecks(e.amount)) end
    for _, e in ipairs(b.outgoingTotal) do assert.equal(want_out[e.currency], U.kopecks(e.amount)) end
    assert.equal(count(want_in), #b.incomingTotal)
    assert.equal(count(want_out), #b.outgoingTotal)
    assert.is_true(#b.outgoingTotal >= 2)
    local _, only_in = get(f, HIST .. "/total", "operation=IN&startDate=" .. U.escape(U.date(from))
      .. "&endDate=" .. U.escape(U.date(till)))
    assert.equal(0, #only_in.outgoingTotal)
  end)

  it("requires both dates", function()
    local f = fake.new {}
    assert.equal(400, (get(f, HIST .. "/total")))
    assert.equal(400, (get(f, HIST .. "/total", "startDate=" .. U.escape("2023-11-01T00:00:00+03:00"))))
    assert.equal(400, (get(f, HIST .. "/total", "rows=5&startDate=" .. U.escape("2023-11-01T00:00:00+03:00")
      .. "&endDate=" .. U.escape("2023-11-02T00:00:00+03:00"))))
  end)
end)

describe("transaction details", function()
  local f
  before_each(function() f = fake.new {} end)

  it("returns the Transaction object", function()
    local _, info = transfer(f, "5", "7", "+79121112233")
    local id = info.transaction.id
    local s, t = get(f, "/payment-history/v2/transactions/" .. id)
    assert.equal(200, s)
    assert.equal(tonumber(id), t.txnId)
    assert.equal(7, t.total.amount)
    assert.is_true(t.features.chequeReady)
    assert.is_true(json.is_array(t.paymentExtras))
    assert.equal("+79121112233", t.view.account)
    assert.equal(200, (get(f, "/payment-history/v2/transactions/" .. id, "type=OUT")))
  end)

  it("answers 404 for an unknown id or another type, 400 for a bad id or type", function()
    local _, info = transfer(f, "5", "7")
    local id = info.transaction.id
    assert.equal(404, (get(f, "/payment-history/v2/transactions/" .. id, "type=IN")))
    assert.equal(404, (get(f, "/payment-history/v2/transactions/1")))
    assert.equal(400, (get(f, "/payment-history/v2/transactions/abc")))
    assert.equal(400, (get(f, "/payment-history/v2/transactions/" .. id, "type=SOMETHING")))
  end)
end)

describe("receipts", function()
  local f, id
  before_each(function()
    f = fake.new {}
    local _, info = transfer(f, "5", "7")
    id = info.transaction.id
  end)

  it("returns a PDF or a JPEG file", function()
    local s, _, h, body = get(f, "/payment-history/v1/transactions/" .. id .. "/cheque/file", "type=OUT&format=PDF")
    assert.equal(200, s)
    assert.equal("application/pdf", h["content-type"])
    assert.equal("%PDF-", body:sub(1, 5))
    assert.truthy(body:find("%%EOF\n$"))
    local s2, _, _, again = get(f, "/payment-history/v1/transactions/" .. id .. "/cheque/file", "type=OUT&format=PDF")
    assert.equal(200, s2)
    assert.equal(body, again)
    s, _, h, body = get(f, "/payment-history/v1/transactions/" .. id .. "/cheque/file", "type=OUT&format=JPEG",
      { accept = "image/jpeg" })
    assert.equal(200, s)
    assert.equal("image/jpeg", h["content-type"])
    assert.equal("\255\216", body:sub(1, 2))
    assert.equal("\255\217", body:sub(-2))
  end)

  it("wants type and format, and a successful payment", function()
    local p = "/payment-history/v1/transactions/" .. id .. "/cheque/file"
    assert.equal(400, (get(f, p, "type=OUT")))
    assert.equal(400, (get(f, p, "format=PDF")))
    assert.equal(400, (get(f, p, "type=OUT&format=PNG")))
    assert.equal(404, (get(f, p, "type=IN&format=PDF")))
    local failed = f:add_payment { type = "OUT", amount = 5, status = "ERROR", error_code = 220 }
    assert.equal(404, (get(f, "/payment-history/v1/transactions/" .. failed .. "/cheque/file", "type=OUT&format=PDF")))
  end)

  it("sends a receipt by e-mail", function()
    local p = "/payment-history/v1/transactions/" .. id .. "/cheque/send"
    local s, b, _, raw = call(f, "POST", p, "type=OUT", { email = "me@example.com" })
    assert.equal(201, s)
    assert.is_nil(b)
    assert.equal("", raw)
    assert.same({ txn_id = tonumber(id), type = "OUT", email = "me@example.com" }, f.sent_cheques[1])
    assert.equal(400, (call(f, "POST", p, "type=OUT", { email = "not-an-email" })))
    assert.equal(400, (call(f, "POST", p, nil, { email = "me@example.com" })))
    assert.equal(1, #f.sent_cheques)
  end)
end)

describe("history rate limit", function()
  it("answers 423 after rate_limit requests in a minute, for five minutes", function()
    local clock = manual_clock()
    local f = fake.new { clock = clock.fn, rate_limit = 10 }
    for i = 1, 10 do
      assert.equal(200, (get(f, HIST, "rows=1")), "request " .. i)
      clock.t = clock.t + 1
    end
    local s, b = get(f, HIST, "rows=1")
    assert.equal(423, s)
    assert.is_true(is_first_shape(b))
    -- the other history routes share the limit; other services do not
    assert.equal(423, (get(f, "/payment-history/v2/transactions/20000000001")))
    assert.equal(200, (get(f, "/sinap/crossRates")))
    clock.t = clock.t + 61
    assert.equal(423, (get(f, HIST, "rows=1")))
    clock.t = clock.t + 300
    assert.equal(200, (get(f, HIST, "rows=1")))
  end)

  it("counts in a sliding minute", function()
    local clock = manual_clock()
    local f = fake.new { clock = clock.fn, rate_limit = 10 }
    for _ = 1, 6 do assert.equal(200, (get(f, HIST, "rows=1"))) end
    clock.t = clock.t + 30
    for _ = 1, 4 do assert.equal(200, (get(f, HIST, "rows=1"))) end
    clock.t = clock.t + 31 -- the first six are now older than a minute
    for _ = 1, 6 do assert.equal(200, (get(f, HIST, "rows=1"))) end
    assert.equal(423, (get(f, HIST, "rows=1")))
  end)

  it("defaults to 100 a minute and can be lifted by a helper", function()
    local clock = manual_clock()
    local f = fake.new { clock = clock.fn }
    for _ = 1, 100 do assert.equal(200, (get(f, HIST, "rows=1"))) end
    assert.equal(423, (get(f, HIST, "rows=1")))
    f:reset_rate_limit()
    assert.equal(200, (get(f, HIST, "rows=1")))
  end)

  it("can be driven by set_time and advance instead of a clock function", function()
    local f = fake.new { rate_limit = 2 }
    assert.equal(1700000000, f:set_time(1700000000))
    assert.equal(200, (get(f, HIST, "rows=1")))
    assert.equal(200, (get(f, HIST, "rows=1")))
    assert.equal(423, (get(f, HIST, "rows=1")))
    assert.equal(1700000299, f:advance(299))
    assert.equal(423, (get(f, HIST, "rows=1")))
    f:advance(2)
    assert.equal(200, (get(f, HIST, "rows=1")))
    local _, info = transfer(f, "1", "10")
    assert.equal(1700000301, f:payment(info.transaction.id).date)
    f:set_time(nil)
    assert.is_true(math.abs(f:now() - os.time()) < 5)
    f:advance(100)
    assert.is_true(math.abs(f:now() - os.time() - 100) < 5)
    f:reset()
    assert.is_true(math.abs(f:now() - os.time()) < 5)
  end)

  it("honours rate_limit_block", function()
    local clock = manual_clock()
    local f = fake.new { clock = clock.fn, rate_limit = 1, rate_limit_block = 60 }
    assert.equal(200, (get(f, HIST, "rows=1")))
    assert.equal(423, (get(f, HIST, "rows=1")))
    clock.t = clock.t + 61
    assert.equal(200, (get(f, HIST, "rows=1")))
  end)
end)

---------------------------------------------------------------------------

describe("balances", function()
  local ACC = "/funding-sources/v2/persons/" .. W .. "/accounts"

  local function by_alias(b)
    local t = {}
    for _, a in ipairs(b.accounts) do t[a.alias] = a end
    return t
  end

  it("lists the accounts with exact amounts", function()
    local f = fake.new { balance = "8.74", accounts = { qw_wallet_usd = "0.5" } }
    local s, b, _, raw = get(f, ACC)
    assert.equal(200, s)
    assert.truthy(raw:find('"amount":8.74,', 1, true))
    local a = by_alias(b)
    assert.equal(643, a.qw_wallet_rub.currency)
    assert.equal(0.5, a.qw_wallet_usd.balance.amount)
    assert.equal(840, a.qw_wallet_usd.balance.currency)
    assert.equal("WALLET", a.qw_wallet_rub.type.id)
    assert.is_false(a.mc_beeline_rub.hasBalance)
    assert.equal(json.null, a.mc_beeline_rub.balance)
  end)

  it("leaves a null balance until asked with timeout=1000&alias=", function()
    local f = fake.new { accounts = { qw_wallet_usd = 10 }, null_balances = { "qw_wallet_usd" } }
    local _, b = get(f, ACC)
    local a = by_alias(b)
    assert.is_true(a.qw_wallet_usd.hasBalance)
    assert.equal(json.null, a.qw_wallet_usd.balance)
    assert.equal(1000, a.qw_wallet_rub.balance.amount)
    local s, again = get(f, ACC, "timeout=1000&alias=qw_wallet_usd")
    assert.equal(200, s)
    assert.equal(10, by_alias(again).qw_wallet_usd.balance.amount)
    assert.equal(400, (get(f, ACC, "alias=qw_wallet_usd")))
    assert.equal(400, (get(f, ACC, "timeout=1000")))
    assert.equal(400, (get(f, ACC, "timeout=soon&alias=qw_wallet_usd")))
    assert.equal(400, (get(f, ACC, "timeout=1000&alias=qw_wallet_xyz")))
    f:set_null_balance("qw_wallet_usd", false)
    _, b = get(f, ACC)
    assert.equal(10, by_alias(b).qw_wallet_usd.balance.amount)
    f:set_null_balance("qw_wallet_rub")
    _, b = get(f, ACC)
    assert.equal(json.null, by_alias(b).qw_wallet_rub.balance)
  end)

  it("offers, creates and lists a currency account", function()
    local f = fake.new {}
    local s, offers = get(f, ACC .. "/offer")
    assert.equal(200, s)
    assert.same({ { alias = "qw_wallet_usd", currency = 840 }, { alias = "qw_wallet_eur", currency = 978 } },
      { offers[1], offers[2] })
    local cs, _, _, raw = call(f, "POST", ACC, nil, { alias = "qw_wallet_eur" })
    assert.equal(201, cs)
    assert.equal("", raw)
    local _, b = get(f, ACC)
    assert.equal(0, by_alias(b).qw_wallet_eur.balance.amount)
    _, offers = get(f, ACC .. "/offer")
    assert.equal(1, #offers)
    assert.equal(400, (call(f, "POST", ACC, nil, { alias = "qw_wallet_eur" })))
    assert.equal(400, (call(f, "POST", ACC, nil, { alias = "qw_wallet_gbp" })))
    assert.equal(400, (call(f, "POST", ACC, nil, { currency = 978 })))
  end)

  it("sets the default account", function()
    local f = fake.new { accounts = { qw_wallet_usd = 1 } }
    local s, _, _, raw = call(f, "PATCH", ACC .. "/qw_wallet_usd", nil, { defaultAccount = true })
    assert.equal(204, s)
    assert.equal("", raw)
    assert.equal("qw_wallet_usd", f:default_account())
    local _, p = get(f, "/person-profile/v1/profile/current")
    assert.equal(840, p.userInfo.defaultPayCurrency)
    assert.equal(404, (call(f, "PATCH", ACC .. "/qw_wallet_eur", nil, { defaultAccount = true })))
    assert.equal(400, (call(f, "PATCH", ACC .. "/qw_wallet_usd", nil, { defaultAccount = "true" })))
    assert.equal(400, (call(f, "PATCH", ACC .. "/mc_beeline_rub", nil, { defaultAccount = true })))
  end)

  it("has helpers to read and set balances by alias or currency", function()
    local f = fake.new { balance = "1000.50" }
    assert.equal(1000.5, f:balance())
    assert.equal(100050, f:balance_kopecks("RUB"))
    f:set_balance(643, "0.1")
    assert.equal(0.1, f:balance("qw_wallet_rub"))
    f:set_balance("USD", 5)
    assert.equal(500, f:balance_kopecks(840))
    assert.is_nil(f:balance("qw_wallet_eur"))
    assert.has_error(function() f:set_balance("nope", 1) end)
    assert.has_error(function() fake.new { balance = "abc" } end)
  end)
end)

---------------------------------------------------------------------------

describe("commission", function()
  local f
  before_each(function() f = fake.new {} end)

  local function commission(provider, account, amount, cur)
    return call(f, "POST", "/sinap/providers/" .. provider .. "/onlineCommission", nil, {
      account = account, paymentMethod = { type = "Account", accountId = "643" },
      purchaseTotals = { total = { amount = json.raw(amount), currency = cur or "643" } },
    })
  end

  it("estimates what a payment will take", function()
    local s, b = commission(99, "79121112233", "1000")
    assert.equal(200, s)
    assert.equal(99, b.providerId)
    assert.equal(0, b.qwCommission.amount)
    assert.equal(1000, b.withdrawSum.amount)
    assert.equal("643", b.withdrawSum.currency)
    s, b = commission(99, "380995238345", "1001")
    assert.equal(200, s)
    assert.equal(10.01, b.qwCommission.amount)
    assert.equal(1011.01, b.withdrawSum.amount)
    assert.equal(1001, b.enrollmentSum.amount)
    assert.equal(0, b.fundingSourceCommission.amount)
    assert.equal(1, b.withdrawToEnrollmentRate)
  end)

  it("charges what it estimated", function()
    local _, est = commission(1963, "4256000011112222", "200")
    assert.equal(52, est.qwCommission.amount)
    local s = pay(f, 1963, payment("9", "200", { account = "4256000011112222" }))
    assert.equal(200, s)
    assert.equal(100000 - 25200, rub(f))
  end)

  it("refuses malformed requests in the sinap error shape", function()
    local s, b = commission(99, "79121112233", "10", 643)
    assert.equal(400, s)
    assert.matches("^QWPRC%-", b.code)
    assert.is_string(b.message)
    assert.equal(400, (commission(99, "79121112233", "0")))
    assert.equal(400, (call(f, "POST", "/sinap/providers/99/onlineCommission", nil,
      { account = "7912", purchaseTotals = { total = { amount = 1, currency = "643" } } })))
    assert.equal(400, (commission("abc", "79121112233", "10")))
  end)
end)

describe("payments", function()
  local f
  before_each(function() f = fake.new { history_pages = 0, balance = 1000 } end)

  it("transfers to a wallet: debits exactly, answers PaymentInfo, records history", function()
    local s, info = transfer(f, "1700000000001", "100.50", "+79121112233", "test")
    assert.equal(200, s)
    assert.equal("1700000000001", info.id)
    assert.equal("99", info.terms)
    assert.equal("+79121112233", info.fields.account)
    assert.equal(100.5, info.sum.amount)
    assert.equal("643", info.sum.currency)
    assert.equal("Accepted", info.transaction.state.code)
    assert.matches("^%d+$", info.transaction.id)
    assert.equal("account_643", info.source)
    assert.equal("test", info.comment)
    assert.equal(89950, rub(f))
    local rec = f:payment(info.transaction.id)
    assert.equal(10050, rec.sum)
    assert.equal("1700000000001", rec.trm_txn_id)
  end)

  it("keeps kopecks exact over many payments", function()
    for i = 1, 10 do assert.equal(200, (transfer(f, tostring(i), "1.10"))) end
    for i = 11, 20 do assert.equal(200, (transfer(f, tostring(i), "2.20"))) end
    assert.equal(100000 - 3300, rub(f))
    assert.equal(967, f:balance())
  end)

  it("answers a repeated client id with the first payment, without paying again", function()
    local s1, a = transfer(f, "42", "10")
    local s2, b = transfer(f, "42", "10")
    local s3, c = transfer(f, "42", "999")
    assert.equal(200, s1)
    assert.equal(200, s2)
    assert.equal(200, s3)
    assert.equal(a.transaction.id, b.transaction.id)
    assert.equal(a.transaction.id, c.transaction.id)
    assert.equal(10, c.sum.amount)
    assert.equal(99000, rub(f))
    assert.equal(1, #f:history())
  end)

  it("refuses a payment larger than the balance and lets the same id pay later", function()
    local s, b = transfer(f, "7", "1000.01")
    assert.equal(400, s)
    assert.equal("QWPRC-220", b.code)
    assert.equal(100000, rub(f))
    assert.equal(0, #f:history())
    f:set_balance("qw_wallet_rub", 2000)
    local s2, info = transfer(f, "7", "1000.01")
    assert.equal(200, s2)
    assert.equal(99999, rub(f))
    assert.equal(1, #f:history())
    assert.equal(tonumber(info.transaction.id), f:history()[1].txn_id)
  end)

  it("includes the commission in the funds check", function()
    f:set_balance("RUB", 100)
    local s, b = pay(f, 1963, payment("1", "50", { account = "4256000011112222" }))
    assert.equal(400, s)
    assert.equal("QWPRC-220", b.code)
    f:set_balance("RUB", "100.50")
    assert.equal(200, (pay(f, 1963, payment("1", "50", { account = "4256000011112222" }))))
    assert.equal(0, rub(f))
  end)

  it("rounds amounts down to the kopeck", function()
    local s, info = transfer(f, "1", "1.999")
    assert.equal(200, s)
    assert.equal(1.99, info.sum.amount)
    assert.equal(100000 - 199, rub(f))
  end)

  it("validates the Payment object", function()
    local good = function() return payment("1", "10", { account = "+79121112233" }) end
    local cases = {
      function(b) b.id = 1 end,
      function(b) b.id = "123456789012345678901" end,
      function(b) b.id = "12a" end,
      function(b) b.sum.currency = 643 end,
      function(b) b.sum.amount = "10" end,
      function(b) b.sum = nil end,
      function(b) b.paymentMethod.type = "Card" end,
      function(b) b.paymentMethod.accountId = 643 end,
      function(b) b.paymentMethod = nil end,
      function(b) b.fields = nil end,
      function(b) b.fields = { account = 79121112233 } end,
      function(b) b.fields = { to = "+79121112233" } end,
      function(b) b.comment = 5 end,
      function(b) b.sum.currency = "840" end,
    }
    for i, change in ipairs(cases) do
      local b = good()
      change(b)
      local s, e = pay(f, 99, b)
      assert.equal(400, s, "case " .. i)
      assert.matches("^QWPRC%-%d+$", e.code)
    end
    assert.equal(100000, rub(f))
    local s, e = pay(f, 99, payment("1", "0.99", { account = "+79121112233" }))
    assert.equal(400, s)
    assert.equal("QWPRC-241", e.code)
    s, e = pay(f, 99, payment("1", "10", { account = "ivan" }))
    assert.equal(400, s)
    assert.equal("QWPRC-4", e.code)
    assert.equal(400, (call(f, "POST", "/sinap/api/v2/terms/99/payments", nil, "{not json")))
    assert.equal(200, (pay(f, 99, good())))
  end)

  it("tops up a phone of the right operator", function()
    local s, info = pay(f, 1, payment("1", "100", { account = "9161112233" }))
    assert.equal(200, s)
    assert.equal("1", info.terms)
    local _, e = pay(f, 1, payment("2", "100", { account = "79161112233" }))
    assert.equal("QWPRC-303", e.code)
    _, e = pay(f, 2, payment("3", "100", { account = "9161112233" }))
    assert.equal("QWPRC-5", e.code)
    assert.equal(90000, rub(f))
  end)

  it("masks the card number in the answer and in the history", function()
    local s, info = pay(f, 1963, payment("1", "100", { account = "4256000011111231" }))
    assert.equal(200, s)
    assert.equal("4256********1231", info.fields.account)
    assert.equal("4256********1231", f:history()[1].account)
    local _, e = pay(f, 1963, payment("2", "100", { account = "4256 0000 1111 1231" }))
    assert.equal("QWPRC-4", e.code)
  end)

  it("checks foreign card requisites", function()
    assert.equal(400, (pay(f, 1960, payment("1", "100", { account = "4028650000000000" }))))
    assert.equal(200, (pay(f, 1960, payment("1", "100", {
      account = "4028650000000000", rec_address = "Ленинский проспект 131, 56", rec_city = "Москва",
      rec_country = "Россия", reg_name = "Виктор", reg_name_f = "Петров", rem_name = "Сергей", rem_name_f = "Иванов",
    }))))
  end)

  it("checks bank transfer requisites", function()
    local _, e = pay(f, 464, payment("1", "100", { account = "4256000011111231", account_type = "1" }))
    assert.equal(400, (pay(f, 464, payment("1", "100", { account = "4256000011111231", account_type = "1" }))))
    assert.matches("exp_date", e.message)
    assert.equal(200, (pay(f, 464, payment("1", "100", { account = "4256000011111231", account_type = "1",
      exp_date = "0623" }))))
    local acct = { account = "40817810000000000001", account_type = "2", urgent = "0", lname = "Иванов",
                   fname = "Иван", mname = "Иванович", mfo = "046577795" }
    assert.equal(200, (pay(f, 816, payment("2", "100", acct))))
    acct.mfo = nil
    assert.equal(400, (pay(f, 816, payment("3", "100", acct))))
    acct.mfo, acct.account_type = "046577795", "7"
    assert.equal(400, (pay(f, 816, payment("3", "100", acct))))
  end)

  it("pays by free requisites (1717)", function()
    local fields = {
      extra_to_bik = "044525201", requestProtocol = "qw1", city = "МОСКВА", name = 'ПАО АКБ "АВАНГАРД"',
      to_bik = "044525201", urgent = "0", to_kpp = "772111001", is_commercial = "1", nds = "НДС не облагается",
      goal = "Оплата товара по заказу №090738231", from_name_p = "Николаевич", from_name = "Иван",
      from_name_f = "Михайлов", info = "Коммерческие организации", to_name = 'ООО "Технический Центр ДЕЛЬТА"',
      to_inn = "7726111111", account = "40711100000012321", toServiceId = "1717",
    }
    local s, info = pay(f, 1717, payment("1", "100", fields))
    assert.equal(200, s)
    assert.equal(fields.to_name, info.fields.to_name)
    assert.equal(100000 - 10000 - 5000, rub(f))
    fields.requestProtocol = "qw2"
    assert.equal(400, (pay(f, 1717, payment("2", "100", fields))))
  end)

  it("converts rubles into the wallet's own currency account at the cross rate", function()
    f = fake.new { history_pages = 0, balance = 10000, accounts = { qw_wallet_usd = 0 } }
    local body = payment("1", "10", { account = "+" .. W }, { comment = "to usd" })
    body.sum.currency = "840"
    local s, info = pay(f, 1099, body)
    assert.equal(200, s)
    assert.equal("1099", info.terms)
    assert.equal("840", info.sum.currency)
    assert.equal(1000000 - 92500, rub(f)) -- 10 USD at 92.5
    assert.equal(1000, f:balance_kopecks("USD"))
    local h = f:history()
    assert.equal(2, #h)
    local kinds = { [h[1].type] = h[1], [h[2].type] = h[2] }
    assert.equal(840, kinds.IN.currency)
    assert.equal(92500, kinds.OUT.sum)
    assert.equal("92.5", kinds.OUT.rate)
    body.id, body.sum.currency = "2", "643"
    assert.equal(400, (pay(f, 1099, body)))
    body.sum.currency = "978"
    local _, e = pay(f, 1099, body)
    assert.equal("QWPRC-400", e.code)
  end)

  it("blocks transfers out of low-status wallets", function()
    f = fake.new { identification = "SIMPLE" }
    local s, e = transfer(f, "1", "10")
    assert.equal(400, s)
    assert.equal("QWPRC-166", e.code)
    assert.equal(200, (pay(f, 1, payment("2", "10", { account = "9161112233" }))))
  end)
end)

describe("transfer to a Kazakh bank card", function()
  local PREP = "/sinap/api/refs/a42ebc79-0584-4271-b8a0-15cb4ea8b340/containers"
  local INFO = "Для продолжения оплаты, подтвердите, что являетесь держателем указанного банковского счета."
  local CARD = "4400430012345678"

  local PAY = "/sinap/api/terms/27292/payments"
  -- the headers both pages list: their Accept, and the browser's sec-fetch lines
  local function page_headers(accept, extra)
    local h = { accept = accept, ["sec-fetch-site"] = "same-site", ["sec-fetch-mode"] = "cors",
                ["sec-fetch-dest"] = "empty" }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  local function prepare(f, card, extra)
    return call(f, "POST", PREP, nil, { cardNumber = card, version = "2", transferSum = "100", src = "sinap" },
      page_headers("application/vnd.qiwi.v1+json", extra))
  end

  local function pay_kzt(f, body, path, extra)
    return call(f, "POST", path or PAY, nil, body, page_headers("application/vnd.qiwi.v2+json", extra))
  end

  local function kzt_payment(id, amount, account, token, card)
    return {
      id = id, sum = { amount = json.raw(amount), currency = "398" },
      paymentMethod = { accountId = "398", type = "Account" }, comment = "",
      fields = { cardNumber = card or CARD, version = "2", transferSum = "100", info = INFO, accept = "1",
                 account = account, ev_account1 = token },
    }
  end

  it("prepares the card, then pays from the tenge account", function()
    local f = fake.new { accounts = { qw_wallet_kzt = 5000 } }
    local s, b = prepare(f, CARD)
    assert.equal(200, s)
    local el = {}
    for _, e in ipairs(b.elements) do el[e.name] = e.value end
    assert.equal("4400********5678", el.account)
    assert.is_true(#el.ev_account1 > 20)
    local ps, info = pay_kzt(f, kzt_payment("1", "1500", el.account, el.ev_account1))
    assert.equal(200, ps)
    assert.equal("27292", info.terms)
    assert.equal("398", info.sum.currency)
    assert.equal("4400********5678", info.fields.cardNumber)
    assert.equal(350000, f:balance_kopecks("KZT"))
    assert.equal(100000, rub(f))
    assert.equal(398, f:history()[1].currency)
    local _, again = pay_kzt(f, kzt_payment("1", "1500", el.account, el.ev_account1))
    assert.equal(info.transaction.id, again.transaction.id)
    assert.equal(350000, f:balance_kopecks("KZT"))
    local _, short = pay_kzt(f, kzt_payment("2", "4000", el.account, el.ev_account1))
    assert.equal("QWPRC-220", short.code)
  end)

  it("refuses tokens of another card, wrong constants and the v2 path", function()
    local f = fake.new { accounts = { qw_wallet_kzt = 5000 } }
    local _, b = prepare(f, CARD)
    local account, token = b.elements[1].value, b.elements[2].value
    assert.equal(400, (pay_kzt(f, kzt_payment("1", "10", account, token, "4400430012349999"))))
    local bad = kzt_payment("1", "10", account, token)
    bad.fields.transferSum = "10"
    assert.equal(400, (pay_kzt(f, bad)))
    bad = kzt_payment("1", "10", account, token)
    bad.paymentMethod.accountId = "643"
    assert.equal(400, (pay_kzt(f, bad)))
    assert.equal(400, (pay(f, 27292, kzt_payment("1", "10", account, token))))
    assert.equal(404, (pay_kzt(f, kzt_payment("1", "10", account, token), "/sinap/api/terms/99/payments")))
    assert.equal(400, (prepare(f, "4400")))
    assert.equal(400, (call(f, "POST", PREP, nil, { cardNumber = CARD, version = "1", transferSum = "100", src = "sinap" },
      page_headers("application/vnd.qiwi.v1+json"))))
    assert.equal(500000, f:balance_kopecks("KZT"))
  end)

  it("wants the headers the pages list: their Accept (406 otherwise) and the sec-fetch lines", function()
    local f = fake.new { accounts = { qw_wallet_kzt = 5000 } }
    local _, b = prepare(f, CARD)
    local account, token = b.elements[1].value, b.elements[2].value
    local body = kzt_payment("1", "10", account, token)
    for _, case in ipairs {
      { 406, "QWPRC-406", { accept = "application/json" } },
      { 406, "QWPRC-406", { accept = "application/vnd.qiwi.v1+json" } },   -- the preparation's, not the payment's
      { 400, "QWPRC-400", { ["sec-fetch-mode"] = false } },
      { 400, "QWPRC-400", { ["sec-fetch-site"] = "cross-site" } },
    } do
      local st, e = pay_kzt(f, body, nil, case[3])
      assert.equal(case[1], st)
      assert.equal(case[2], e.code)
    end
    assert.equal(406, (prepare(f, CARD, { accept = "application/json" })))
    assert.equal(400, (prepare(f, CARD, { ["sec-fetch-dest"] = false })))
    assert.equal(500000, f:balance_kopecks("KZT"))
    assert.equal(200, (pay_kzt(f, body)))
    assert.equal(499000, f:balance_kopecks("KZT"))
  end)
end)

describe("mobile operator lookup", function()
  local f
  before_each(function() f = fake.new {} end)
  local P = "/qw-mobile-providers-resolver/v1/providers"

  it("finds the operator of a number", function()
    local s, b = get(f, P, "phoneNumber=79161112233")
    assert.equal(200, s)
    assert.equal(1, b.mobileOperatorProviderList[1].id)
    assert.equal("МТС", b.mobileOperatorProviderList[1].shortName)
    local _, mf = get(f, P, "phoneNumber=79270010101")
    assert.equal(3, mf.mobileOperatorProviderList[1].id)
  end)

  it("wants 11 digits starting with 7 and knows only some prefixes", function()
    for _, q in ipairs { "", "phoneNumber=9161112233", "phoneNumber=%2B79161112233", "phoneNumber=89161112233" } do
      assert.equal(400, (get(f, P, q)), q)
    end
    assert.equal(404, (get(f, P, "phoneNumber=79990000000")))
  end)
end)

describe("card provider lookup", function()
  local f
  before_each(function() f = fake.new {} end)
  local P = "/sinap/api/refs/bd6fb248-2bdf-49ed-bcb2-9b0a789cfde8/containers"

  local function lookup(account)
    return call(f, "POST", P, nil, { account = account }, { accept = "application/vnd.qiwi.v1+json" })
  end

  it("answers the provider id of a card", function()
    local s, b = lookup("4256 0000 1111 1231")
    assert.equal(200, s)
    assert.same({ type = "field", name = "termsId", value = "1963" }, b.elements[1])
    assert.equal("31652", select(2, lookup("2200 1234 5678 9012")).elements[1].value)
    assert.equal("21013", select(2, lookup("5555 1234 5678 9012")).elements[1].value)
    assert.equal(200, (lookup("4256 0000 1111 1231 123")))
  end)

  it("wants the number grouped by four", function()
    assert.equal(400, (lookup("4256000011111231")))
    assert.equal(400, (lookup("4256  0000 1111 1231")))
    assert.equal(400, (lookup("1234")))
    assert.equal(400, (lookup("9999 0000 1111 1231")))
  end)
end)

describe("cross rates and provider search", function()
  local f
  before_each(function() f = fake.new {} end)

  it("lists rates with their exact digits", function()
    local s, b, _, raw = get(f, "/sinap/crossRates")
    assert.equal(200, s)
    assert.truthy(raw:find('"rate":6.22665', 1, true))
    assert.truthy(raw:find('"rate":412.0174305', 1, true))
    assert.equal("General", b.result[1].set)
    assert.equal("398", b.result[1].from)
  end)

  it("searches providers case-insensitively in Russian", function()
    local s, b = get(f, "/search/v1/search", "query=" .. U.escape("мтс"))
    assert.equal(200, s)
    local ids = {}
    for _, it in ipairs(b.items) do ids[#ids + 1] = it.data.id end
    assert.same({ 1, 23729 }, ids)
    local _, two = get(f, "/search/v1/search", "query=" .. U.escape("МТС интернет"))
    assert.equal(1, #two.items)
    assert.equal(23729, two.items[1].data.id)
    local _, none = get(f, "/search/v1/search", "query=zzzz")
    assert.equal(0, #none.items)
    assert.equal(400, (get(f, "/search/v1/search")))
    assert.equal(400, (get(f, "/search/v1/search", "query=+")))
  end)
end)

---------------------------------------------------------------------------

describe("invoices", function()
  local SEARCH = "/checkout-api/api/bill/search"
  local PAY = "/checkout-api/invoice/pay/wallet"
  local REJECT = "/checkout-api/api/bill/reject"
  local f
  before_each(function() f = fake.new { bills = 5 } end)

  it("lists unpaid bills newest first", function()
    local s, b = get(f, SEARCH, "statuses=READY_FOR_PAY")
    assert.equal(200, s)
    assert.equal(5, #b.bills)
    for i = 2, 5 do assert.is_true(b.bills[i - 1].creation_datetime > b.bills[i].creation_datetime) end
    local bill = b.bills[1]
    assert.equal("READY_FOR_PAY", bill.status)
    assert.equal("MERCHANT", bill.type)
    assert.equal(643, bill.sum.currency)
    assert.is_number(bill.provider.id)
    assert.matches("^https://oplata%.qiwi%.com/form%?shop=", bill.pay_url)
  end)

  it("pages with rows, next_id and next_creation_datetime", function()
    local _, first = get(f, SEARCH, "statuses=READY_FOR_PAY&rows=2")
    assert.equal(2, #first.bills)
    local last = first.bills[2]
    local _, second = get(f, SEARCH, "statuses=READY_FOR_PAY&rows=2&next_id=" .. last.id
      .. "&next_creation_datetime=" .. string.format("%d", last.creation_datetime))
    assert.equal(2, #second.bills)
    assert.is_true(second.bills[1].creation_datetime < last.creation_datetime)
    local _, window = get(f, SEARCH, "statuses=READY_FOR_PAY&min_creation_datetime="
      .. string.format("%d", last.creation_datetime))
    assert.equal(2, #window.bills)
  end)

  it("validates the search parameters", function()
    assert.equal(400, (get(f, SEARCH)))
    assert.equal(400, (get(f, SEARCH, "statuses=PAID")))
    assert.equal(400, (get(f, SEARCH, "statuses=READY_FOR_PAY&rows=51")))
    assert.equal(400, (get(f, SEARCH, "statuses=READY_FOR_PAY&next_id=abc")))
    assert.equal(400, (get(f, SEARCH, "statuses=READY_FOR_PAY&min_creation_datetime=2023-01-01")))
  end)

  it("pays a bill once: debit, history, gone from the list", function()
    local id = f:add_bill { amount = "150.25", comment = "order 1" }
    local s, b = call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = "643" })
    assert.equal(200, s)
    assert.same({ invoice_status = "PAID_STATUS", is_sms_confirm = false, WALLET_ACCEPT_PAY_RESULT = {} }, b)
    assert.equal(100000 - 15025, rub(f))
    assert.equal("PAID", f:bill(id).status)
    local rec = f:history()[1]
    assert.equal(15025, rec.sum)
    assert.equal(f:bill(id).txn_id, rec.txn_id)
    local _, list = get(f, SEARCH, "statuses=READY_FOR_PAY")
    for _, x in ipairs(list.bills) do assert.not_equal(id, x.id) end
    assert.equal(404, (call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = "643" })))
    assert.equal(100000 - 15025, rub(f))
  end)

  it("refuses malformed payment requests and reports missing funds as a status", function()
    local id = f:add_bill { amount = 2000 }
    assert.equal(400, (call(f, "POST", PAY, nil, { invoice_uid = id, currency = "643" })))
    assert.equal(400, (call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = 643 })))
    assert.equal(400, (call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = "840" })))
    assert.equal(404, (call(f, "POST", PAY, nil, { invoice_uid = "1", currency = "643" })))
    local s, b = call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = "643" })
    assert.equal(200, s)
    assert.equal("PAYMENT_ERROR_STATUS", b.invoice_status)
    assert.equal("READY_FOR_PAY", f:bill(id).status)
    assert.equal(100000, rub(f))
  end)

  it("rejects a bill once", function()
    local id = f:add_bill { amount = 10 }
    local s, b, _, raw = call(f, "POST", REJECT, nil, { id = id })
    assert.equal(200, s)
    assert.is_nil(b)
    assert.equal("", raw)
    assert.equal("REJECTED", f:bill(id).status)
    assert.equal(404, (call(f, "POST", REJECT, nil, { id = id })))
    assert.equal(404, (call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = "643" })))
    assert.equal(400, (call(f, "POST", REJECT, nil, { id = tostring(f:add_bill { amount = 1 }) })))
  end)

  it("does not offer expired bills", function()
    local clock = manual_clock()
    f = fake.new { bills = 0, clock = clock.fn }
    local id = f:add_bill { amount = 10, expiration = clock.t + 60 }
    local _, b = get(f, SEARCH, "statuses=READY_FOR_PAY")
    assert.equal(1, #b.bills)
    clock.t = clock.t + 61
    _, b = get(f, SEARCH, "statuses=READY_FOR_PAY")
    assert.equal(0, #b.bills)
    assert.equal(404, (call(f, "POST", PAY, nil, { invoice_uid = tostring(id), currency = "643" })))
  end)

  it("takes the P2P SecretKey instead of the token when one is configured", function()
    f = fake.new { p2p_secret_key = "secret-key" }
    assert.equal(401, (get(f, SEARCH, "statuses=READY_FOR_PAY")))
    assert.equal(200, (get(f, SEARCH, "statuses=READY_FOR_PAY", { authorization = "Bearer secret-key" })))
    assert.equal(200, (get(f, "/sinap/crossRates")))
    assert.equal(401, (get(f, "/sinap/crossRates", nil, { authorization = "Bearer secret-key" })))
  end)

  it("creates P2P key pairs whose SecretKey the bills accept", function()
    local s, b = call(f, "POST", "/widgets-api/api/p2p/protected/keys/create", nil,
      { keysPairName = "Name", serverNotificationsUrl = "https://test.com" })
    assert.equal(200, s)
    assert.is_string(b.PublicKey)
    assert.is_string(b.SecretKey)
    assert.equal(200, (get(f, SEARCH, "statuses=READY_FOR_PAY", { authorization = "Bearer " .. b.SecretKey })))
    assert.equal("Name", f:p2p_keys()[1].name)
    assert.equal(400, (call(f, "POST", "/widgets-api/api/p2p/protected/keys/create", nil, {})))
    assert.equal(400, (call(f, "POST", "/widgets-api/api/p2p/protected/keys/create", nil,
      { keysPairName = "x", serverNotificationsUrl = "ftp://x" })))
  end)
end)

---------------------------------------------------------------------------

describe("webhooks", function()
  local HOOKS = "/payment-notifier/v1/hooks"
  local f
  before_each(function() f = fake.new { history_pages = 0 } end)

  local function register(url, txn, hook_type)
    return call(f, "PUT", HOOKS, "hookType=" .. (hook_type or "1") .. "&param=" .. U.escape(url)
      .. "&txnType=" .. (txn or "2"))
  end

  -- Checks a notification's signature the way the docs describe.
  local function verify(n)
    local msg = assert(json.decode(n.body))
    local p = msg.payment
    local values = {}
    for field in p.signFields:gmatch("[^,]+") do
      local a, b = field:match("^([^.]+)%.?(.*)$")
      local v = b ~= "" and p[a][b] or p[a]
      values[#values + 1] = b == "amount" and json.number_text(p[a], b) or tostring(v)
    end
    local want = hmac.hex(hmac.hmac_sha256(hmac.unbase64(n.key), table.concat(values, "|")))
    return want == msg.hash, msg
  end

  it("registers one hook, shows it as active and deletes it", function()
    local s, b = register("https://example.com/callbacks/")
    assert.equal(200, s)
    assert.is_true(U.is_uuid(b.hookId))
    assert.same({ url = "https://example.com/callbacks/" }, b.hookParameters)
    assert.equal("WEB", b.hookType)
    assert.equal("BOTH", b.txnType)
    local _, active = get(f, HOOKS .. "/active")
    assert.same(b, active)
    assert.equal(422, (register("https://example.org/other")))
    local ds, db = call(f, "DELETE", HOOKS .. "/" .. b.hookId)
    assert.equal(200, ds)
    assert.equal("Hook deleted", db.response)
    assert.equal(404, (get(f, HOOKS .. "/active")))
    assert.equal(404, (call(f, "DELETE", HOOKS .. "/" .. b.hookId)))
    assert.equal(200, (register("https://example.org/other", "0")))
  end)

  it("validates the registration", function()
    assert.equal(400, (call(f, "PUT", HOOKS, "hookType=1&txnType=2")))
    assert.equal(422, (register("https://example.com/h", "3")))
    assert.equal(422, (register("https://example.com/h", "2", "2")))
    assert.equal(422, (register("ftp://example.com/h")))
    assert.equal(422, (register("http://127.0.0.1:8080/h")))
    assert.equal(422, (register("http://localhost/h")))
    assert.equal(422, (register("http://192.168.1.5/h")))
    assert.equal(500, (register("https://example.com/" .. string.rep("a", 81))))
    assert.equal(404, (get(f, HOOKS .. "/active")))
    f = fake.new { public_hooks_only = false }
    assert.equal(200, (register("http://127.0.0.1:8080/h")))
  end)

  it("hands out the key with 201 and rotates it", function()
    local _, h = register("https://example.com/h")
    local s, k1 = get(f, HOOKS .. "/" .. h.hookId .. "/key")
    assert.equal(201, s)
    assert.equal(32, #hmac.unbase64(k1.key))
    local s2, k2 = call(f, "POST", HOOKS .. "/" .. h.hookId .. "/newkey")
    assert.equal(201, s2)
    assert.not_equal(k1.key, k2.key)
    local _, k3 = get(f, HOOKS .. "/" .. h.hookId .. "/key")
    assert.equal(k2.key, k3.key)
    assert.equal(404, (get(f, HOOKS .. "/00000000-0000-4000-8000-000000000000/key")))
    assert.equal(405, (get(f, HOOKS .. "/" .. h.hookId)))
  end)

  it("records signed notifications of payments of the hook's type", function()
    local _, h = register("https://example.com/h", "1")
    transfer(f, "1", "1.73", "+79121112233")
    f:add_payment { type = "IN", amount = 5 }
    assert.equal(1, #f.notifications)
    local n = f.notifications[1]
    assert.equal("https://example.com/h", n.url)
    local ok, msg = verify(n)
    assert.is_true(ok)
    assert.equal(h.hookId, msg.hookId)
    assert.equal("OUT", msg.payment.type)
    assert.equal(1.73, msg.payment.sum.amount)
    assert.equal(79111234567, msg.payment.personId)
    assert.is_false(msg.test)
    call(f, "POST", HOOKS .. "/" .. h.hookId .. "/newkey")
    transfer(f, "2", "3")
    assert.is_true((verify(f.notifications[2])))
    assert.not_equal(n.key, f.notifications[2].key)
  end)

  it("sends a test notification to the active hook", function()
    assert.equal(404, (get(f, HOOKS .. "/test")))
    register("https://example.com/h")
    local s, b = get(f, HOOKS .. "/test")
    assert.equal(200, s)
    assert.equal("Webhook sent", b.response)
    local n = f:last_notification()
    assert.is_true(n.test)
    assert.is_true((verify(n)))
  end)
end)

---------------------------------------------------------------------------

describe("QIWI Master", function()
  local ORDERS = "/cards/v2/persons/" .. W .. "/orders"
  local LIST = "/cards/v1/cards"

  local function buy_package(f, amount, id)
    return pay(f, 28004, payment(id or "1", amount or "2999",
      { account = W, vas_alias = "qvc-master" }, { comment = "Оплата" }))
  end

  local function order(f)
    local _, o = call(f, "POST", ORDERS, nil, { cardAlias = "qvc-cpa" })
    return call(f, "PUT", ORDERS .. "/" .. o.id .. "/submit")
  end

  it("needs the package, bought through provider 28004", function()
    local f = fake.new { balance = 10000 }
    assert.equal(422, (call(f, "POST", ORDERS, nil, { cardAlias = "qvc-cpa" })))
    assert.equal(400, (buy_package(f, "100")))
    local bad = payment("2", "2999", { account = "79990000000", vas_alias = "qvc-master" })
    assert.equal(400, (pay(f, 28004, bad)))
    assert.is_false(f:master_active())
    assert.equal(200, (buy_package(f)))
    assert.is_true(f:master_active())
    assert.equal(1000000 - 299900, rub(f))
    local s, o = call(f, "POST", ORDERS, nil, { cardAlias = "qvc-cpa" })
    assert.equal(200, s)
    assert.equal("DRAFT", o.status)
    assert.equal(json.null, o.price)
    assert.equal(json.null, o.cardId)
    assert.equal(400, (call(f, "POST", ORDERS, nil, { cardAlias = "qvc-gold" })))
  end)

  it("issues five free cards, then wants 99 rubles through provider 32064", function()
    local f = fake.new { master = true, balance = 1000 }
    for i = 1, 5 do
      local s, o = order(f)
      assert.equal(200, s)
      assert.equal("COMPLETED", o.status, "card " .. i)
      assert.equal(0, o.price.amount)
      assert.matches("^%d+$", o.cardId)
    end
    local _, o = order(f)
    assert.equal("PAYMENT_REQUIRED", o.status)
    assert.equal(99, o.price.amount)
    assert.equal(json.null, o.cardId)
    assert.equal(400, (pay(f, 32064, payment("9", "98", { account = W, order_id = o.id }))))
    assert.equal(400, (pay(f, 32064, payment("9", "99", { account = W, order_id = "nope" }))))
    local s = pay(f, 32064, payment("9", "99", { account = W, order_id = o.id }))
    assert.equal(200, s)
    assert.equal("COMPLETED", f:card_order(o.id).status)
    assert.equal(100000 - 9900, rub(f))
    local _, list = get(f, LIST, "vas-alias=qvc-master")
    assert.equal(6, #list)
    assert.equal(tonumber(f:card_order(o.id).card_id), list[6].qvx.id)
    assert.equal(400, (pay(f, 32064, payment("10", "99", { account = W, order_id = o.id }))))
  end)

  it("lists cards with exact 19-digit card ids", function()
    local f = fake.new { master_cards = 2 }
    local s, list, _, raw = get(f, LIST, "vas-alias=qvc-master")
    assert.equal(200, s)
    assert.equal(2, #list)
    local c = list[1].qvx
    assert.equal("ACTIVE", c.status)
    assert.equal("VIRTUAL", c.cardType)
    assert.matches("^%*%*%*%*%d%d%d%d$", c.maskedPan)
    assert.truthy(raw:find('"cardId":' .. c.txnId, 1, true))
    assert.equal(19, #c.txnId)
    assert.equal("qvc-cpa", list[1].info.alias)
    assert.equal(200, (get(f, LIST .. "/", "vas-alias=qvc-master")))
    assert.equal(400, (get(f, LIST)))
    assert.equal(400, (get(f, LIST, "vas-alias=other")))
  end)

  it("blocks, unblocks, reveals and renames a card", function()
    local clock = manual_clock()
    local f = fake.new { master_cards = 1, clock = clock.fn }
    local id = f:master_cards()[1].id
    local base = "/cards/v2/persons/" .. W .. "/cards/" .. id
    local s, b, h, raw = call(f, "PUT", base .. "/block")
    assert.equal(202, s)
    assert.equal("application/json", h["content-type"])
    assert.equal("", raw)
    assert.is_nil(b)
    assert.equal("BLOCKED", f:master_cards()[1].status)
    local op = "43555447-a026-4c17-b56d-6956a09249c9"
    local _, d = call(f, "PUT", "/cards/v1/cards/" .. id .. "/details", nil, { operationId = op })
    assert.equal("FAIL", d.status)
    s, b = call(f, "PUT", base .. "/unblock")
    assert.equal(200, s)
    assert.same({ status = "OK", nextConfirmationRequest = json.null, confirmationId = json.null,
                  operationId = json.null }, b)
    assert.equal("ACTIVE", f:master_cards()[1].status)
    s, d = call(f, "PUT", "/cards/v1/cards/" .. id .. "/details", nil, { operationId = op })
    assert.equal(200, s)
    assert.equal("OK", d.status)
    assert.equal(f:master_cards()[1].pan, d.pan)
    assert.matches("^%d%d%d$", d.cvv)
    assert.equal(400, (call(f, "PUT", "/cards/v1/cards/" .. id .. "/details", nil, { operationId = "x" })))
    s, b = call(f, "PUT", "/cards/v1/cards/" .. id .. "/alias", nil, { alias = "new card name" })
    assert.equal(200, s)
    assert.same({ status = "OK", error = "OK", errorCode = "OK" }, b)
    local _, list = get(f, LIST, "vas-alias=qvc-master")
    assert.equal("new card name", list[1].qvx.cardAlias)
    assert.equal(404, (call(f, "PUT", "/cards/v2/persons/" .. W .. "/cards/1/block")))
    assert.equal(400, (call(f, "PUT", "/cards/v1/cards/" .. id .. "/alias", nil, { alias = "" })))
    call(f, "PUT", base .. "/block")
    clock.t = clock.t + 91 * 86400
    _, b = call(f, "PUT", base .. "/unblock")
    assert.equal("FAIL", b.status)
  end)

  it("returns a statement PDF for up to 90 days", function()
    local f = fake.new { master_cards = 1 }
    local id = f:master_cards()[1].id
    local p = "/payment-history/v1/persons/" .. W .. "/cards/" .. id .. "/statement"
    local q = "from=" .. U.escape("2020-01-01T00:00:00+03:00") .. "&till=" .. U.escape("2020-03-30T23:59:59+03:00")
    local s, _, h, body = get(f, p, q)
    assert.equal(200, s)
    assert.equal("application/pdf", h["content-type"])
    assert.equal("%PDF-", body:sub(1, 5))
    assert.equal(400, (get(f, p, "from=" .. U.escape("2020-01-01T00:00:00+03:00")
      .. "&till=" .. U.escape("2020-09-23T23:59:59+03:00"))))
    assert.equal(400, (get(f, p)))
    assert.equal(404, (get(f, "/payment-history/v1/persons/" .. W .. "/cards/1/statement", q)))
  end)
end)

---------------------------------------------------------------------------

describe("injected failures and delays", function()
  local f
  before_each(function() f = fake.new {} end)

  it("answers the next request with the given status and a QIWI body", function()
    f:fail_next { status = 503 }
    local s, b = get(f, "/sinap/crossRates")
    assert.equal(503, s)
    assert.is_true(is_first_shape(b))
    assert.equal(200, (get(f, "/sinap/crossRates")))
    assert.equal(503, f.requests[1].status)
  end)

  it("takes a body, headers, a count and a path pattern", function()
    f:fail_next { status = 500, body = { code = "QWPRC-300", message = "later" }, count = 2,
                  path_pattern = "^/sinap/api/", headers = { ["Retry-After"] = "1" } }
    assert.equal(200, (get(f, "/sinap/crossRates")))
    local s, b, h = transfer(f, "1", "10")
    assert.equal(500, s)
    assert.equal("QWPRC-300", b.code)
    assert.equal("1", h["retry-after"])
    assert.equal(500, (transfer(f, "1", "10")))
    assert.equal(100000, rub(f))
    assert.equal(200, (transfer(f, "1", "10")))
    assert.equal(99000, rub(f))
    f:fail_next { status = 502, body = "<html>bad gateway</html>", headers = { ["content-type"] = "text/html" } }
    local s2, _, h2, raw = get(f, "/sinap/crossRates")
    assert.equal(502, s2)
    assert.equal("text/html", h2["content-type"])
    assert.equal("<html>bad gateway</html>", raw)
  end)

  it("keeps failing with count = -1 until the faults are cleared", function()
    f:fail_next { status = 429, count = -1, method = "GET" }
    for _ = 1, 5 do assert.equal(429, (get(f, "/sinap/crossRates"))) end
    assert.equal(200, (transfer(f, "1", "10")))
    f:clear_faults()
    assert.equal(200, (get(f, "/sinap/crossRates")))
  end)

  it("runs before authorization, like a failing gateway", function()
    f:fail_next { status = 502 }
    assert.equal(502, (get(f, "/sinap/crossRates", nil, { authorization = false })))
  end)
end)

describe("the in-process transport", function()
  -- t:request with a request table's fields, its answer as a table again
  local function send(t, req)
    local status, body, headers = t:request(req.method, req.url, req.headers, req.body, req.timeout)
    if not status then return nil, body, headers end
    return { status = status, body = body, headers = headers }
  end
  it("parses the URL and the header lines and answers lower-case headers", function()
    local f = fake.new {}
    local t = f:transport()
    local res = assert(send(t, {
      method = "GET", url = "https://edge.qiwi.com/payment-history/v2/persons/" .. W .. "/payments?rows=2#x",
      headers = { "Accept: application/json", "Authorization: Bearer test-token", "User-Agent: spec" },
    }))
    assert.equal(200, res.status)
    assert.matches("json", res.headers["content-type"])
    local b = assert(json.decode(res.body))
    assert.equal(2, #b.data)
    local r = f.requests[1]
    assert.equal("/payment-history/v2/persons/" .. W .. "/payments", r.path)
    assert.equal("rows=2", r.query)
    assert.equal("spec", r.headers["user-agent"])
    res = assert(send(t, { method = "POST", url = "http://127.0.0.1:8080/sinap/api/v2/terms/99/payments",
      headers = { "Authorization: Bearer test-token", "Content-Type: application/json" },
      body = json.encode(payment("1", "10", { account = "79121112233" })) }))
    assert.equal(200, res.status)
    assert.equal(99000, rub(f))
    local none, kind = send(t, { method = "GET", url = "not a url" })
    assert.is_nil(none)
    assert.equal("network", kind)
    t:close()
  end)

  it("turns a dropped connection into a network error", function()
    local f = fake.new {}
    f:fail_next { drop = true }
    local res, kind, msg = send(f:transport(), { method = "GET", url = "https://x/sinap/crossRates",
                                                   headers = { "Authorization: Bearer test-token" } })
    assert.is_nil(res)
    assert.equal("network", kind)
    assert.is_string(msg)
    local s = f:handle { method = "GET", path = "/sinap/crossRates", headers = { authorization = AUTH } }
    assert.equal(200, s)
  end)

  it("sleeps the delay when given a sleep function, and times out past req.timeout", function()
    local slept = {}
    local f = fake.new { sleep = function(s) slept[#slept + 1] = s end }
    local t = f:transport()
    local req = { method = "GET", url = "https://x/sinap/crossRates", headers = { "Authorization: Bearer test-token" } }
    assert.equal(200, send(t, req).status)
    assert.equal(0, #slept)
    f:set_delay(200)
    assert.equal(200, send(t, req).status)
    assert.same({ 0.2 }, slept)
    local pay_req = { method = "POST", url = "https://x/sinap/api/v2/terms/99/payments", timeout = 0.05,
      headers = { "Authorization: Bearer test-token", "Content-Type: application/json" },
      body = json.encode(payment("1", "10", { account = "79121112233" })) }
    local res, kind = send(t, pay_req)
    assert.is_nil(res)
    assert.equal("timeout", kind)
    assert.equal(0.05, slept[2])
    -- the server did the work even though the client gave up
    assert.equal(99000, rub(f))
    f:set_delay(0)
    f:fail_next { delay_ms = 300 }
    assert.equal(200, send(t, req).status)
    assert.equal(0.3, slept[3])
  end)

  it("ignores delays without a sleep function", function()
    local f = fake.new {}
    f:set_delay(10000)
    local res = send(f:transport(), { method = "GET", url = "https://x/sinap/crossRates",
                                        headers = { "Authorization: Bearer test-token" } })
    assert.equal(200, res.status)
    assert.equal(10000, f.last_delay_ms)
  end)
end)

describe("options", function()
  it("refuse malformed values", function()
    assert.has_error(function() fake.new { wallet = "+7-911" } end)
    assert.has_error(function() fake.new { identification = "GOLD" } end)
    assert.has_error(function() fake.new { accounts = { qw_wallet_gbp = 1 } } end)
    assert.has_error(function() fake.new { null_balances = { "qw_wallet_usd" } } end)
    assert.has_error(function() fake.new "x" end)
  end)

  it("take a wallet with a plus and seed the history deterministically", function()
    local a = fake.new { wallet = "+79990001122", history_start = 1700000000, history_rows = 30 }
    local b = fake.new { wallet = "79990001122", history_start = 1700000000, history_rows = 30 }
    assert.equal("79990001122", a.wallet)
    assert.same(a:history(), b:history())
    assert.equal(30, #a:history())
    assert.equal(1700000000, a:history()[1].date)
    assert.equal(200, (get(a, "/funding-sources/v2/persons/79990001122/accounts")))
  end)
end)

describe("route inventory", function()
  -- Every documented method and path answers something other than 404/405.
  local routes = {
    { "GET", "/person-profile/v1/profile/current" },
    { "GET", "/identification/v1/persons/{w}/identification" },
    { "POST", "/identification/v1/persons/{w}/identification" },
    { "GET", "/qw-limits/v1/persons/{w}/actual-limits" },
    { "GET", "/qw-limits/v1/persons/{w}/p2p-payment-count-limit" },
    { "GET", "/person-profile/v1/persons/{w}/status/restrictions" },
    { "POST", "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations" },
    { "PUT", "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations/x/confirm" },
    { "GET", "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations/x" },
    { "GET", "/qw-nicknames/v1/persons/{w}/nickname" },
    { "GET", "/payment-history/v2/persons/{w}/payments" },
    { "GET", "/payment-history/v2/persons/{w}/payments/total" },
    { "GET", "/payment-history/v2/transactions/1" },
    { "GET", "/payment-history/v1/transactions/1/cheque/file" },
    { "POST", "/payment-history/v1/transactions/1/cheque/send" },
    { "GET", "/funding-sources/v2/persons/{w}/accounts" },
    { "POST", "/funding-sources/v2/persons/{w}/accounts" },
    { "GET", "/funding-sources/v2/persons/{w}/accounts/offer" },
    { "PATCH", "/funding-sources/v2/persons/{w}/accounts/qw_wallet_rub" },
    { "POST", "/sinap/providers/99/onlineCommission" },
    { "POST", "/sinap/api/v2/terms/99/payments" },
    { "GET", "/sinap/crossRates" },
    { "GET", "/qw-mobile-providers-resolver/v1/providers" },
    { "POST", "/sinap/api/refs/bd6fb248-2bdf-49ed-bcb2-9b0a789cfde8/containers" },
    { "POST", "/sinap/api/refs/a42ebc79-0584-4271-b8a0-15cb4ea8b340/containers" },
    { "POST", "/sinap/api/terms/27292/payments" },
    { "GET", "/search/v1/search" },
    { "POST", "/widgets-api/api/p2p/protected/keys/create" },
    { "GET", "/checkout-api/api/bill/search" },
    { "POST", "/checkout-api/invoice/pay/wallet" },
    { "POST", "/checkout-api/api/bill/reject" },
    { "PUT", "/payment-notifier/v1/hooks" },
    { "DELETE", "/payment-notifier/v1/hooks/x" },
    { "GET", "/payment-notifier/v1/hooks/x/key" },
    { "POST", "/payment-notifier/v1/hooks/x/newkey" },
    { "GET", "/payment-notifier/v1/hooks/active" },
    { "GET", "/payment-notifier/v1/hooks/test" },
    { "GET", "/cards/v1/cards" },
    { "POST", "/cards/v2/persons/{w}/orders" },
    { "PUT", "/cards/v2/persons/{w}/orders/x/submit" },
    { "GET", "/payment-history/v1/persons/{w}/cards/1/statement" },
    { "PUT", "/cards/v2/persons/{w}/cards/1/block" },
    { "PUT", "/cards/v2/persons/{w}/cards/1/unblock" },
    { "PUT", "/cards/v1/cards/1/details" },
    { "PUT", "/cards/v1/cards/1/alias" },
  }

  it("has every documented route", function()
    local f = fake.new {}
    for _, r in ipairs(routes) do
      local path = r[2]:gsub("{w}", W)
      local s, b = call(f, r[1], path, nil, r[1] ~= "GET" and r[1] ~= "DELETE" and "{}" or nil)
      local what = r[1] .. " " .. path .. " -> " .. s
      assert.is_true(s ~= 405 and (s ~= 404 or (b and b.errorCode ~= "not.found")), what)
    end
  end)

  it("does not answer the old 2020 paths", function()
    local f = fake.new {}
    assert.equal(404, (get(f, "/funding-sources/v1/accounts/current")))
    assert.equal(404, (call(f, "POST", "/sinap/terms/99/payments", nil, "{}")))
    assert.equal(404, (get(f, "/sinap/providers/99/form")))
  end)
end)

---------------------------------------------------------------------------

describe("the nginx glue (with a stand-in ngx)", function()
  local glue, out, saved_ngx

  -- Runs serve() for one request; returns status, headers, body.
  local function serve(method, uri, body, headers, opts)
    opts = opts or {}
    out = { headers = {}, body = {}, slept = {} }
    local header_proxy = setmetatable({}, { __newindex = function(_, k, v) out.headers[string.lower(k)] = v end })
    _G.ngx = {
      OK = 0, HTTP_OK = 200,
      var = { request_uri = uri, connection = opts.connection or "7" },
      header = header_proxy,
      req = {
        get_method = function() return method end,
        read_body = function() out.read = true end,
        get_body_data = function() if not opts.file then return body end end,
        get_body_file = function() return opts.file end,
        get_headers = function() return headers or {} end,
      },
      send_headers = function() out.sent = true end,
      print = function(s) out.body[#out.body + 1] = s end,
      sleep = function(s) out.slept[#out.slept + 1] = s end,
      exit = function(code) out.exit = code end,
    }
    glue.serve()
    return _G.ngx.status, out.headers, table.concat(out.body)
  end

  setup(function()
    saved_ngx = _G.ngx
    package.loaded["qiwi.fake.nginx"] = nil
    glue = require "qiwi.fake.nginx"
  end)

  teardown(function()
    _G.ngx = saved_ngx
    package.loaded["qiwi.fake.nginx"] = nil
  end)

  before_each(function()
    serve("POST", "/__fake/reset", "")
  end)

  it("answers ping", function()
    local s, h, b = serve("GET", "/__fake/ping")
    assert.equal(200, s)
    assert.equal("pong", b)
    assert.equal("text/plain", h["content-type"])
  end)

  it("serves QIWI requests from one instance that keeps its state", function()
    local s, h, b = serve("GET", "/funding-sources/v2/persons/" .. W .. "/accounts",
      nil, { Authorization = AUTH, Accept = "application/json" })
    assert.equal(200, s)
    assert.matches("json", h["content-type"])
    assert.equal(tostring(#b), tostring(h["content-length"]))
    assert.equal(1000, assert(json.decode(b)).accounts[1].balance.amount)
    assert.equal(200, out.exit)
    s = serve("POST", "/sinap/api/v2/terms/99/payments", json.encode(payment("1", "10", { account = "79121112233" })),
      { authorization = AUTH, ["content-type"] = "application/json" })
    assert.equal(200, s)
    local _, _, again = serve("GET", "/funding-sources/v2/persons/" .. W .. "/accounts", nil, { authorization = AUTH })
    assert.equal(990, json.decode(again).accounts[1].balance.amount)
  end)

  it("reads a body that nginx buffered to a file", function()
    local name = os.tmpname()
    local fh = assert(io.open(name, "wb"))
    fh:write(json.encode(payment("1", "10", { account = "79121112233", filler = string.rep("x", 20000) })))
    fh:close()
    local s, _, b = serve("POST", "/sinap/api/v2/terms/99/payments", nil,
      { authorization = AUTH, ["content-type"] = "application/json" }, { file = name })
    os.remove(name)
    assert.equal(200, s)
    assert.equal("Accepted", json.decode(b).transaction.state.code)
  end)

  it("logs requests with their connection number", function()
    serve("GET", "/sinap/crossRates?x=1", nil, { authorization = AUTH }, { connection = "42" })
    local s, _, b = serve("GET", "/__fake/requests")
    assert.equal(200, s)
    local log = assert(json.decode(b))
    assert.equal(1, #log)
    assert.equal("/sinap/crossRates", log[1].path)
    assert.equal("x=1", log[1].query)
    assert.equal("1", log[1].params.x)
    assert.equal(42, log[1].connection)
    assert.equal(400, log[1].status)
    assert.equal(AUTH, log[1].headers.authorization)
  end)

  it("recreates the fake with the options posted to reset", function()
    local s = serve("POST", "/__fake/reset", '{"balance":"5.5","token":"t2","null_balances":null}')
    assert.equal(200, s)
    local _, _, b = serve("GET", "/funding-sources/v2/persons/" .. W .. "/accounts", nil, { authorization = "Bearer t2" })
    assert.equal(5.5, json.decode(b).accounts[1].balance.amount)
    assert.equal(400, (serve("POST", "/__fake/reset", '{"wallet":"abc"}')))
    assert.equal(400, (serve("POST", "/__fake/reset", "[1]")))
  end)

  it("applies the configured delay with ngx.sleep", function()
    local s, _, b = serve("POST", "/__fake/config", '{"delay_ms":200}')
    assert.equal(200, s)
    assert.equal(200, json.decode(b).delay_ms)
    serve("GET", "/sinap/crossRates", nil, { authorization = AUTH })
    assert.same({ 0.2 }, out.slept)
    serve("POST", "/__fake/config", '{"delay_ms":0}')
    serve("GET", "/sinap/crossRates", nil, { authorization = AUTH })
    assert.same({}, out.slept)
  end)

  it("calls helper methods", function()
    local s, _, b = serve("POST", "/__fake/call", '{"method":"set_balance","args":["qw_wallet_rub",100]}')
    assert.equal(200, s)
    assert.same({ result = true }, json.decode(b))
    _, _, b = serve("POST", "/__fake/call", '{"method":"balance","args":[null]}')
    assert.equal(100, json.decode(b).result)
    _, _, b = serve("POST", "/__fake/call", '{"method":"balance","args":["qw_wallet_eur"]}')
    assert.equal(json.null, json.decode(b).result)
    serve("POST", "/__fake/call", '{"method":"fail_next","args":[{"status":503,"count":1}]}')
    assert.equal(503, (serve("GET", "/sinap/crossRates", nil, { authorization = AUTH })))
    assert.equal(400, (serve("POST", "/__fake/call", '{"method":"nope","args":[]}')))
    assert.equal(400, (serve("POST", "/__fake/call", '{"method":"_seed","args":[]}')))
    assert.equal(400, (serve("POST", "/__fake/call", '{"method":"set_balance","args":["nope",1]}')))
    assert.equal(400, (serve("POST", "/__fake/call", "not json")))
  end)

  it("closes the connection for a dropped answer and 404s unknown control paths", function()
    serve("POST", "/__fake/call", '{"method":"fail_next","args":[{"drop":true}]}')
    serve("GET", "/sinap/crossRates", nil, { authorization = AUTH })
    assert.equal(444, out.exit)
    assert.is_nil(out.sent)
    assert.equal(404, (serve("GET", "/__fake/nothing")))
  end)
end)
