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
local unpack = table.unpack or unpack

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
    assert.equal("SIMPLE", b.type)
    assert.equal(json.null, b.passport)
    s, b = call(f, "POST", path, nil, person)
    assert.equal(200, s)
    assert.equal("VERIFIED", b.type)
    assert.equal("4400111222", b.passport)
    assert.matches("^%d+$", b.inn)
    assert.equal("VERIFIED", f:identification_level())
    s, b = get(f, path)
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
    f:set_restricted(true)
    s, b = get(f, path)
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
    assert.equal("IN_PROGRESS", b.downgradeOperation.status.type)
    assert.equal("FULL", f:identification_level())
    s, b = call(f, "PUT", base .. "/" .. id .. "/confirm", nil, {})
    assert.equal(200, s)
    assert.equal(id, b.downgradeOperation.downgradeOperationId)
    assert.equal("IN_PROGRESS", b.downgradeOperation.status.type)
    s, b = get(f, base .. "/" .. id)
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
