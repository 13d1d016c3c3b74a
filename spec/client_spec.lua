-- Every implemented method end to end, against the fake in-process and over HTTPS.
local qiwi = require "qiwi"
local backends = require "backends"

local WALLET = "79111234567"

-- 5.1/LuaJIT have no integer subtype: there an exact integer is an integral double.
local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

backends.each(function(make)
  local b = make()

  describe("client over " .. b.name .. ":", function()
    before_each(function() b:reset() end)

    it("profile returns the wallet's profile with an exact integer person id", function()
      local c = b:client()
      local p, err = c:profile()
      assert.is_nil(err)
      assert.equal(tonumber(WALLET), p.authInfo.personId)
      assert.is_true(is_integer(p.authInfo.personId))
      local r = b:last()
      assert.equal("GET", r.method)
      assert.equal("/person-profile/v1/profile/current", r.path)
      assert.equal("Bearer test-token", r.headers.authorization)
      assert.equal("application/json", r.headers.accept)
    end)

    it("profile sends its flags as query booleans", function()
      local c = b:client()
      assert.truthy(c:profile { auth_info = false, user_info = true })
      local r = b:last()
      assert.equal("false", r.params.authInfoEnabled)
      assert.equal("true", r.params.userInfoEnabled)
      assert.is_nil(r.params.contractInfoEnabled)
    end)

    it("learns the wallet from the profile once when it is not given", function()
      local c = b:client { wallet = false }
      assert.truthy(c:accounts())
      assert.truthy(c:p2p_count_limit())
      local paths = {}
      for _, r in ipairs(b:requests()) do paths[#paths + 1] = r.path end
      assert.same({
        "/person-profile/v1/profile/current",
        "/funding-sources/v2/persons/" .. WALLET .. "/accounts",
        "/qw-limits/v1/persons/" .. WALLET .. "/p2p-payment-count-limit",
      }, paths)
      assert.equal(WALLET, c.wallet)
    end)

    it("identification reads the identification data", function()
      local res, err = b:client():identification()
      assert.is_nil(err)
      assert.is_table(res)
      assert.equal("/identification/v1/persons/" .. WALLET .. "/identification", b:last().path)
    end)

    it("identify posts the documented JSON body", function()
      local res, err = b:client():identify {
        birth_date = "1998-02-11", first_name = "Иван", middle_name = "Иванович",
        last_name = "Иванов", passport = "4400111222",
      }
      assert.is_nil(err)
      assert.is_table(res)
      local r = b:last()
      assert.equal("POST", r.method)
      assert.equal("application/json", r.headers["content-type"])
      assert.same({ birthDate = "1998-02-11", firstName = "Иван", middleName = "Иванович",
                    lastName = "Иванов", passport = "4400111222", inn = "", snils = "", oms = "" }, r.json)
    end)

    it("limits asks for all six types by default, numbered from zero", function()
      local res, err = b:client():limits()
      assert.is_nil(err)
      assert.is_table(res.limits)
      local p = b:last().params
      assert.equal("REFILL", p["types[0]"])
      assert.equal("WITHDRAW_CASH", p["types[5]"])
      assert.is_nil(p["types[6]"])
    end)

    it("limits takes a list of types", function()
      assert.truthy(b:client():limits { "TURNOVER" })
      local r = b:last()
      assert.equal("types%5B0%5D=TURNOVER", r.query)
    end)

    it("p2p_count_limit and restrictions read their endpoints", function()
      local c = b:client()
      local l, err = c:p2p_count_limit()
      assert.is_nil(err)
      assert.is_number(l.p2pPaymentCountLimit)
      local rs, err2 = c:restrictions()
      assert.is_nil(err2)
      assert.is_table(rs)
      assert.equal("/person-profile/v1/persons/" .. WALLET .. "/status/restrictions", b:last().path)
    end)

    it("accounts lists balances with exact amounts", function()
      b:reset { balance = "1234.56" }
      local res, err = b:client():accounts()
      assert.is_nil(err)
      local rub
      for _, a in ipairs(res.accounts) do
        if a.alias == "qw_wallet_rub" then rub = a end
      end
      assert.is_table(rub)
      assert.equal(1234.56, rub.balance.amount)
      assert.equal(643, rub.balance.currency)
      assert.equal(qiwi.array_mt, getmetatable(res.accounts))
    end)

    it("history returns one page with paging keys", function()
      b:reset { history_pages = 2, history_rows = 10 }
      local page, err = b:client():history { rows = 10, operation = "OUT", sources = { "QW_RUB", "CARD" } }
      assert.is_nil(err)
      assert.is_table(page.data)
      local r = b:last()
      assert.equal("rows=10&operation=OUT&sources%5B0%5D=QW_RUB&sources%5B1%5D=CARD", r.query)
      for _, p in ipairs(page.data) do
        assert.is_true(is_integer(p.txnId), tostring(p.txnId))
      end
    end)

    it("history dates go out in Moscow time, from strings or os.time()", function()
      local c = b:client()
      assert.truthy(c:history { rows = 50, start_date = 1494363600, end_date = "2017-05-10T23:59:59+03:00" })
      local p = b:last().params
      assert.equal("2017-05-10T00:00:00+03:00", p.startDate)
      assert.equal("2017-05-10T23:59:59+03:00", p.endDate)
    end)

    it("payments iterates over every page of the history", function()
      b:reset { history_pages = 3, history_rows = 20 }
      local c = b:client()
      local seen, count, last_id = {}, 0, math.huge
      local iter, state = c:payments { rows = 20 }
      for p in iter, state do
        count = count + 1
        assert.is_nil(seen[p.txnId])
        seen[p.txnId] = true
        last_id = p.txnId
      end
      assert.is_nil(state.err)
      assert.equal(60, count)
      assert.is_true(last_id < math.huge)
      local history_calls = 0
      for _, r in ipairs(b:requests()) do
        if r.path:find("/payments$") then history_calls = history_calls + 1 end
      end
      assert.is_true(history_calls >= 3 and history_calls <= 4)
    end)

    it("payments reports a failure once and stops", function()
      local c = b:client { token = "wrong-token" }
      local iter, state = c:payments()
      local v, err = iter(state)
      assert.is_nil(v)
      assert.equal("api", err.kind)
      assert.equal(401, err.status)
      assert.is_nil((iter(state)))
      assert.equal(err, state.err)
    end)

    it("history_total needs both dates and reads the totals", function()
      local c = b:client()
      local t, err = c:history_total { start_date = "2017-03-01T00:00:00+03:00", end_date = "2017-03-31T11:44:15+03:00" }
      assert.is_nil(err)
      assert.is_table(t.incomingTotal)
      assert.is_table(t.outgoingTotal)
      assert.equal("/payment-history/v2/persons/" .. WALLET .. "/payments/total", b:last().path)
    end)

    it("transaction returns one payment's details", function()
      b:reset { history_pages = 1, history_rows = 5 }
      local c = b:client()
      local page = assert(c:history { rows = 5 })
      local id = page.data[1].txnId
      local t, err = c:transaction(id, page.data[1].type)
      assert.is_nil(err)
      assert.equal(id, t.txnId)
      assert.equal("/payment-history/v2/transactions/" .. string.format("%d", id), b:last().path)
    end)

    it("an unknown transaction is a 404 api error", function()
      local t, err = b:client():transaction("99999999999")
      assert.is_nil(t)
      assert.equal(404, err.status)
      assert.equal("api", err.kind)
      assert.is_false(err.retryable)
    end)

    it("a wrong token is a 401 api error that never shows the token", function()
      local secret = "super-secret-token-123"
      local c = b:client { token = secret }
      local res, err = c:accounts()
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal(401, err.status)
      assert.equal("GET", err.method)
      assert.is_string(err.message)
      assert.is_nil(tostring(err):find(secret, 1, true))
      assert.is_nil(tostring(err):find("\n"))
      for _, v in pairs(err) do
        if type(v) == "string" then assert.is_nil(v:find(secret, 1, true)) end
      end
    end)

    it("an unknown wallet is a 404 api error", function()
      local res, err = b:client { wallet = "79990000000" }:accounts()
      assert.is_nil(res)
      assert.equal(404, err.status)
      assert.equal("api", err.kind)
    end)

    it("bad arguments are refused before anything is sent", function()
      local c = b:client()
      local before = #b:requests()
      local cases = {
        function() return c:history { rows = 0 } end,
        function() return c:history { rows = 51 } end,
        function() return c:history { rows = "ten" } end,
        function() return c:history { operation = "SIDEWAYS" } end,
        function() return c:history { start_date = "2017-01-01T00:00:00+03:00" } end,
        function() return c:history { start_date = "2017-01-01T00:00:00+03:00", end_date = "2017-06-01T00:00:00+03:00" } end,
        function() return c:history { next_txn_id = 1 } end,
        function() return c:history { colour = "red" } end,
        function() return c:history_total {} end,
        function() return c:transaction("12ab") end,
        function() return c:transaction(nil) end,
        function() return c:limits { "EVERYTHING" } end,
        function() return c:profile { auth_info = "yes" } end,
        function() return c:profile "x" end,
      }
      for i, case in ipairs(cases) do
        local res, err = case()
        assert.is_nil(res, "case " .. i)
        assert.equal("argument", err.kind, "case " .. i)
        assert.is_false(err.retryable)
      end
      assert.equal(before, #b:requests())
    end)
  end)
end)
