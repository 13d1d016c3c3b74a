-- What an outside review broke: amounts that wrapped, a documented success
-- reported as an error, the docs' own 1717 field set refused, the token in
-- non-string error fields or in base_url, clear text off loopback, raw
-- control characters in error texts, raises for bad input, options and
-- servers that make loops, and transports that were not checked.
local qiwi = require "qiwi"
local checks = require "checks"
local backends = require "backends"

local TOKEN = "hardening-secret-token-7f3a"
local WALLET = "79111234567"
local TO = "79990001122"

local strings_in = checks.strings_in

local function assert_no_secret(err, secret)
  for _, s in ipairs(strings_in(err)) do
    assert.is_nil(s:find(secret, 1, true), "secret in an error field: " .. s)
  end
  assert.is_nil(tostring(err):find(secret, 1, true))
end

local function argument_error(res, err, what)
  assert.is_nil(res, what)
  assert.is_table(err, what)
  assert.equal(qiwi.error, getmetatable(err), what)
  assert.equal("argument", err.kind, what .. ": " .. tostring(err))
end

-- 2^62 + 500 as the Lua at hand holds it: an integer on 5.3+, a float on 5.1.
local BIG = math.tointeger and math.tointeger(2 ^ 62) + 500 or (2 ^ 62 + 500)
local MAXINT = math.maxinteger or 2 ^ 63

backends.each(function(make)
  local b = make()
  describe("hardening over " .. b.name .. ":", function()
    before_each(function() b:reset { token = TOKEN, wallet = WALLET, balance = 1000 } end)

    describe("amounts", function()
      local bad = {
        { "math.maxinteger", MAXINT }, { "2^62 + 500", BIG }, { "1e-9", 1e-9 }, { "0.004", 0.004 },
        { "2^53 + 1", 2 ^ 53 + 1 }, { "1e10", 1e10 }, { "-0.0", -0.0 }, { "10 billion as a string", "10000000000" },
        { "0.001 as a string", "0.001" }, { "0.00", "0.00" }, { "leading zeros over 10 digits", "000099999999999" },
      }
      for _, case in ipairs(bad) do
        it("refuses " .. case[1] .. " everywhere, sending nothing", function()
          local c = b:client()
          local before = #b:requests()
          local calls = {
            transfer = function() return c:transfer { to = TO, amount = case[2] } end,
            pay = function() return c:pay(99, { account = "+" .. TO, amount = case[2] }) end,
            commission = function() return c:commission(99, { account = "+" .. TO, amount = case[2] }) end,
            pay_mobile = function() return c:pay_mobile { phone = TO, amount = case[2] } end,
            buy_master_package = function() return c:buy_master_package { amount = case[2] } end,
            payment_form_url = function() return qiwi.payment_form_url { amount = case[2] } end,
          }
          for name, call in pairs(calls) do
            local res, err = call()
            argument_error(res, err, name .. " " .. case[1])
            assert.matches("amount", err.message, 1, true)
          end
          assert.equal(before, #b:requests(), "a request was sent")
        end)
      end

      it("sends exactly what was given: 9999999999.99, and 100.50 with leading zeros", function()
        local c = b:client()
        local _, err = c:commission(99, { account = "+" .. TO, amount = 9999999999.99 })
        assert.is_nil(err and err.kind == "argument" and err or nil)
        assert.equal(9999999999.99, b:last().json.purchaseTotals.total.amount)
        c:commission(99, { account = "+" .. TO, amount = "0000100.50" })
        assert.equal(100.5, b:last().json.purchaseTotals.total.amount)
      end)
    end)

    describe("answers without a body", function()
      local rows = {
        { "reject_bill", "/bill/reject", function(c) return c:reject_bill(1) end },
        { "set_default_account", "/accounts/", function(c) return c:set_default_account("qw_wallet_rub") end },
        { "delete_webhook", "/hooks/", function(c) return c:delete_webhook("d63a8729-f5c8-486f-907d-9fb8758afcfc") end },
        { "accounts", "/accounts$", function(c) return c:accounts() end },
      }
      for _, row in ipairs(rows) do
        for _, status in ipairs { 200, 201, 204 } do
          it(row[1] .. ": " .. status .. " with no body, JSON content type, is true", function()
            local c = b:client()
            b:call("fail_next", { status = status, body = "", path_pattern = row[2],
                                  headers = { ["Content-Type"] = "application/json;charset=UTF-8" } })
            local res, err = row[3](c)
            assert.is_nil(err)
            assert.is_true(res)
          end)
        end
      end

      it("in a batch too", function()
        local c = b:client()
        b:call("fail_next", { status = 200, body = "", path_pattern = "/bill/reject",
                              headers = { ["Content-Type"] = "application/json" } })
        local out = c:batch { { "reject_bill", 1 } }
        assert.is_nil(out[1][2])
        assert.is_true(out[1][1])
      end)
    end)

    describe("pay_by_requisites", function()
      -- provider 1717's fields as QIWI's payment page prints them
      local function docs_fields()
        return {
          extra_to_bik = "044525201", requestProtocol = "qw1", city = "МОСКВА",
          name = 'ПАО АКБ "АВАНГАРД"', to_bik = "044525201", urgent = "0", to_kpp = "772111001",
          is_commercial = "1", nds = "НДС не облагается", goal = " Оплата товара по заказу №090738231",
          from_name_p = "Николаевич", from_name = "Иван", from_name_f = "Михайлов",
          info = "Коммерческие организации", to_name = 'ООО "Технический Центр ДЕЛЬТА"',
          to_inn = "7726111111", account = "40711100000012321", toServiceId = "1717", amount = 10,
        }
      end

      it("takes the docs' own field set and sends it as the docs show", function()
        local c = b:client()
        local o = docs_fields()
        local res, err = c:pay_by_requisites(o)
        assert.is_nil(err and err.kind == "argument" and err or nil, tostring(err))
        local sent = b:last()
        assert.equal("/sinap/api/v2/terms/1717/payments", sent.path)
        for k, v in pairs(o) do
          if k ~= "amount" then assert.equal(v, sent.json.fields[k], k) end
        end
        assert.is_truthy(res or err)
      end)

      for _, case in ipairs {
        { "info", "Некоммерческие" }, { "requestProtocol", "qw2" }, { "toServiceId", "99" },
        { "is_commercial", "0" }, { "extra_to_bik", "044525999" },
      } do
        it("refuses " .. case[1] .. " = " .. case[2] .. " (not QIWI's value), sending nothing", function()
          local c = b:client()
          local o = docs_fields()
          o[case[1]] = case[2]
          local before = #b:requests()
          local res, err = c:pay_by_requisites(o)
          argument_error(res, err, case[1])
          assert.matches(case[1], err.message, 1, true)
          assert.equal(before, #b:requests())
        end)
      end

      it("still refuses a typo", function()
        local c = b:client()
        local o = docs_fields()
        o.to_bikk = o.to_bik
        local res, err = c:pay_by_requisites(o)
        argument_error(res, err, "typo")
        assert.matches("unknown option 'to_bikk'", err.message, 1, true)
      end)
    end)

    describe("the token", function()
      it("is scrubbed from error fields that are not strings", function()
        local c = b:client()
        local echo = '{"errorCode":{"x":"Bearer ' .. TOKEN .. '"},"traceId":["' .. TOKEN .. '"],'
          .. '"serviceName":{"s":["' .. TOKEN .. '"]},"userMessage":"' .. TOKEN .. '",'
          .. '"description":{"d":"' .. TOKEN .. '"}}'
        b:call("fail_next", { status = 400, body = echo, path_pattern = "/accounts$" })
        local res, err = c:accounts()
        assert.is_nil(res)
        assert.equal("api", err.kind)
        assert_no_secret(err, TOKEN)
      end)

      it("is scrubbed from the QWPRC shape's fields", function()
        local c = b:client()
        b:call("fail_next", { status = 400, path_pattern = "/payments$",
                              body = '{"code":{"c":"' .. TOKEN .. '"},"message":"x ' .. TOKEN .. '"}' })
        local res, err = c:transfer { to = TO, amount = 1 }
        assert.is_nil(res)
        assert_no_secret(err, TOKEN)
      end)
    end)

    describe("error texts from the server", function()
      it("are escaped into one line, U+2028 and NUL included", function()
        local c = b:client()
        b:call("fail_next", { status = 400, path_pattern = "/accounts$",
          body = '{"errorCode":"x\\r\\ny","userMessage":"line1\\r\\nFAKE LOG LINE\\u2028second\\u0000\\u001b[31m",'
            .. '"description":"d\\nd\\u2029e\\u0085f","traceId":"t\\nt"}' })
        local _, err = c:accounts()
        for _, text in ipairs { tostring(err), err.message, err.description, err.user_message, err.code, err.trace_id } do
          assert.is_nil(text:find("[%z\1-\31\127]"), text)
          assert.is_nil(text:find("\226\128[\168\169]"), text)
          assert.is_nil(text:find("\194\133"), text)
        end
        assert.matches("\\n", err.description, 1, true)
        assert.matches("\\u2028", err.user_message, 1, true)
      end)
    end)

    describe("inputs that used to raise", function()
      local cases = {
        { "history with a start date past year 9999", function(c)
          return c:history { start_date = MAXINT, end_date = MAXINT } end },
        { "history_total with huge dates", function(c)
          return c:history_total { start_date = MAXINT, end_date = MAXINT } end },
        { "identify with a huge birth date", function(c)
          return c:identify { birth_date = MAXINT, first_name = "A", last_name = "B", passport = "4400111222" } end },
        { "card_statement with huge dates", function(c)
          return c:card_statement(1, { from = MAXINT, till = MAXINT }) end },
        { "bills with min_creation = 'yesterday'", function(c) return c:bills { min_creation = "yesterday" } end },
        { "bills with a malformed date string", function(c) return c:bills { max_creation = "2020-13-45T99:00:00+03:00" } end },
        { "an options table whose metatable raises", function(c)
          return c:transfer(setmetatable({}, { __index = function() error("boom") end,
                                               __pairs = function() error("boom") end })) end },
        { "an option key that is a table with a raising __tostring", function(c)
          return c:history { [setmetatable({}, { __tostring = function() error("boom") end })] = 1 } end },
      }
      for _, case in ipairs(cases) do
        it(case[1] .. ": an argument error, nothing sent", function()
          local c = b:client()
          local before = #b:requests()
          local ok, res, err = pcall(case[2], c)
          assert.is_true(ok, tostring(res))
          argument_error(res, err, case[1])
          assert.equal(before, #b:requests())
        end)
      end

      it("client:batch with those calls raises nothing and reports each", function()
        local c = b:client()
        local before = #b:requests()
        local ok, out = pcall(c.batch, c, {
          { "history", { start_date = MAXINT, end_date = MAXINT } },
          { "bills", { min_creation = "yesterday" } },
          { "identify", { birth_date = MAXINT, first_name = "A", last_name = "B", passport = "4400111222" } },
        })
        assert.is_true(ok, tostring(out))
        for i = 1, 3 do argument_error(out[i][1], out[i][2], "batch " .. i) end
        assert.equal(before, #b:requests())
      end)
    end)

    describe("loops", function()
      it("a server repeating the history cursor ends payments() with an error", function()
        local c = b:client()
        local page = '{"data":[{"txnId":1,"date":"2020-01-01T00:00:00+03:00"}],'
          .. '"nextTxnId":1,"nextTxnDate":"2020-01-01T00:00:00+03:00"}'
        b:call("fail_next", { status = 200, body = page, count = 50, path_pattern = "/payments$" })
        local n, last_err = 0, nil
        local iter, state = c:payments { rows = 1 }
        for _ = 1, 100 do
          local p, err = iter()
          if p == nil then
            last_err = err
            break
          end
          n = n + 1
        end
        assert.is_true(n < 10, "the iterator went on for " .. n .. " payments")
        assert.is_table(last_err)
        assert.equal("decode", last_err.kind)
        assert.matches("cursor", last_err.message, 1, true)
        assert.equal(last_err, state.err)
        b:call("clear_faults")
      end)
    end)
  end)
end)

describe("qiwi.new refuses", function()
  local function refused(opts, what, pattern)
    local c, err = qiwi.new(opts)
    argument_error(c, err, what)
    if pattern then assert.matches(pattern, err.message, 1, true) end
    assert_no_secret(err, TOKEN)
  end

  for _, url in ipairs {
    "https://" .. TOKEN .. "@edge.qiwi.com", "https://user:" .. TOKEN .. "@edge.qiwi.com",
    "https://edge.qiwi.com?token=" .. TOKEN, "https://edge.qiwi.com/?x=1", "https://edge.qiwi.com#" .. TOKEN,
    "https://edge.qiwi.com/#x", "https://edge .qiwi.com", "https://edge.qiwi.com\\@evil.example",
    "https://edge.qiwi.com:0", "https://edge.qiwi.com:65536", "https://edge.qiwi.com:", "https://edge.qiwi.com:-1",
    "https://edge.qiwi.com:99999999999999999999", "https://edge.qiwi.com/path", "https://", "https://:443",
    "https://edge.qiwi.com\t", "https://edge.qiwi.com%2f@evil",
  } do
    it("base_url " .. url:gsub(TOKEN, "<token>"), function()
      refused({ token = TOKEN, base_url = url }, (url:gsub(TOKEN, "<token>")))
    end)
  end

  it("ports 1 and 65535 are fine", function()
    assert.truthy(qiwi.new { token = TOKEN, base_url = "https://edge.qiwi.com:1" })
    assert.truthy(qiwi.new { token = TOKEN, base_url = "https://edge.qiwi.com:65535/" })
  end)

  it("allow_http with resolve sending the loopback name off loopback", function()
    for _, ip in ipairs { "10.0.0.1", "192.168.1.10", "8.8.8.8", "::2", "[2001:db8::1]" } do
      refused({ token = TOKEN, base_url = "http://localhost:8080", allow_http = true,
                resolve = { localhost = ip } }, ip, "loopback")
      refused({ token = TOKEN, base_url = "http://127.0.0.1:8080", allow_http = true,
                resolve = { ["127.0.0.1"] = ip } }, ip, "loopback")
    end
    assert.truthy(qiwi.new { token = TOKEN, base_url = "http://localhost:8080", allow_http = true,
                             resolve = { localhost = "127.0.0.2" } })
    assert.truthy(qiwi.new { token = TOKEN, base_url = "http://localhost:8080", allow_http = true,
                             resolve = { localhost = "::1" } })
    -- https may go anywhere: TLS checks the name
    assert.truthy(qiwi.new { token = TOKEN, resolve = { ["edge.qiwi.com"] = "10.0.0.1" } })
  end)

  for _, w in ipairs { 0 / 0, 1 / 0, -1 / 0, -1, 0, "60", 1e9 } do
    it("history_rate.window = " .. tostring(w), function()
      refused({ token = TOKEN, history_rate = { window = w } }, tostring(w), "window")
    end)
  end

  for _, l in ipairs { 0 / 0, 1 / 0, 0, -5, 1.5, "x" } do
    it("history_rate.limit = " .. tostring(l), function()
      refused({ token = TOKEN, history_rate = { limit = l } }, tostring(l), "limit")
    end)
  end

  it("history_rate clock and sleep that are not functions", function()
    refused({ token = TOKEN, history_rate = { clock = 1, sleep = 2 } }, "clock", "functions")
  end)

  for _, case in ipairs {
    { "a table without request", {} }, { "request that is a number", { request = 5 } },
    { "a string", "curl" }, { "an object whose index raises", setmetatable({}, { __index = function() error("x") end }) },
  } do
    it("a transport that is " .. case[1], function()
      refused({ token = TOKEN, transport = case[2] }, case[1], "request")
    end)
  end
end)

describe("transports", function()
  it("a qiwi.fake object is a transport by itself", function()
    local fake = qiwi.fake.new { token = TOKEN, wallet = WALLET }
    local c, err = qiwi.new { token = TOKEN, wallet = WALLET, transport = fake }
    assert.is_nil(err)
    local res, cerr = c:accounts()
    assert.is_nil(cerr)
    assert.is_table(res.accounts)
  end)

  it("a transport that raises gives a network error, not a raise", function()
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, retries = 0,
                                transport = { request = function() error("socket library exploded") end } })
    local ok, res, err = pcall(c.accounts, c)
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.matches("exploded", err.message, 1, true)
  end)

  it("fake:handle answers 400 to a malformed request instead of raising", function()
    local fake = qiwi.fake.new { token = TOKEN, wallet = WALLET }
    for _, req in ipairs { { headers = "x" }, { method = 1, path = {} }, { method = "GET", path = "/x", body = {} } } do
      local ok, status = pcall(fake.handle, fake, req)
      assert.is_true(ok, tostring(status))
      assert.equal(400, status)
    end
  end)
end)
