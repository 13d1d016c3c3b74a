-- Money: amounts, client payment ids, and payments against the stateful fake.
local qiwi = require "qiwi"
local args = require "qiwi.args"
local ids = require "qiwi.ids"
local backends = require "backends"

describe("amounts", function()
  local good = {
    { 100, "100.00", "100" }, { 100.5, "100.50", "100.5" }, { "100.50", "100.50", "100.5" },
    { "0.01", "0.01", "0.01" }, { 0.1 + 0.2, "0.30", "0.3" }, { "7", "7.00", "7" },
    { 999999.99, "999999.99", "999999.99" }, { "1.5", "1.50", "1.5" }, { 1234567890.12, "1234567890.12", "1234567890.12" },
  }
  for _, case in ipairs(good) do
    it("accepts " .. tostring(case[1]), function()
      local text, value = args.amount(case[1])
      assert.equal(case[2], text)
      assert.equal(case[3], qiwi.json.encode(value))
    end)
  end

  local bad = { 0, -1, "-1", 0 / 0, math.huge, -math.huge, 1.005, "1.005", "1e3", "1,50", " 1", "", "abc",
                "0", "0.00", 1e11, "100000000000", true, {}, "1.", ".5" }
  for _, v in ipairs(bad) do
    it("refuses " .. tostring(v), function()
      local text, err = args.amount(v)
      assert.is_nil(text)
      assert.is_string(err)
    end)
  end

  it("never writes an exponent on the wire", function()
    for _, v in ipairs { 0.01, 0.07, 1e-2, 1234567890.99, 9999999999.01 } do
      local _, value = args.amount(v)
      assert.is_nil(qiwi.json.encode(value):find("[eE]"))
    end
  end)
end)

describe("client payment ids", function()
  it("are digit strings of at most 20 digits, unique and increasing in a burst", function()
    local prev
    local seen = {}
    for _ = 1, 20000 do
      local id = ids.next()
      assert.matches("^%d+$", id)
      assert.is_true(#id <= 20)
      assert.is_nil(seen[id])
      seen[id] = true
      if prev then
        assert.is_true(#id > #prev or (#id == #prev and id > prev), prev .. " then " .. id)
      end
      prev = id
    end
  end)

  it("are shared by two clients in one process", function()
    local f = qiwi.fake.new { token = "test-token", wallet = "79111234567", balance = 100000 }
    local a = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport() })
    local b = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = f:transport() })
    local got = {}
    for i = 1, 20 do
      local c = i % 2 == 0 and a or b
      local res, err = c:transfer { to = "79990001122", amount = 1 }
      assert.is_nil(err)
      got[#got + 1] = res.id
    end
    for i = 2, #got do
      assert.is_true(#got[i] > #got[i - 1] or got[i] > got[i - 1])
    end
  end)
end)

backends.each(function(make)
  local b = make()

  local rub = backends.rub

  describe("payments over " .. b.name .. ":", function()
    before_each(function() b:reset { balance = "1000.00" } end)

    it("a transfer debits the balance and shows up in the history and transaction", function()
      local c = b:client()
      local res, err = c:transfer { to = "+79990001122", amount = "100.50", comment = "lunch" }
      assert.is_nil(err)
      assert.is_table(res.transaction)
      assert.equal("Accepted", res.transaction.state.code)
      assert.equal(899.5, rub(c))
      local page = assert(c:history { rows = 5, operation = "OUT" })
      local txn = page.data[1]
      assert.equal(tonumber(res.transaction.id), txn.txnId)
      assert.equal(100.5, txn.sum.amount)
      local t = assert(c:transaction(res.transaction.id))
      assert.equal(txn.txnId, t.txnId)
      assert.equal("lunch", t.comment)
    end)

    it("a repeated client id returns the first payment and pays once", function()
      local c = b:client()
      local first = assert(c:transfer { to = "79990001122", amount = 10, id = "1700000000000001" })
      local again = assert(c:transfer { to = "79990001122", amount = 10, id = "1700000000000001" })
      assert.equal(first.transaction.id, again.transaction.id)
      assert.equal(990, rub(c))
    end)

    it("short funds are refused with QIWI's error and nothing is paid", function()
      local c = b:client()
      local res, err = c:transfer { to = "79990001122", amount = 5000 }
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.is_string(err.code)
      assert.is_false(err.retryable)
      assert.equal(1000, rub(c))
    end)

    it("pay_mobile finds the operator, then pays the 10-digit number", function()
      local c = b:client()
      local res, err = c:pay_mobile { phone = "+79161112233", amount = 100 }
      assert.is_nil(err)
      assert.is_table(res)
      local reqs = b:requests()
      local lookup, payment = reqs[#reqs - 1], reqs[#reqs]
      assert.equal("/qw-mobile-providers-resolver/v1/providers", lookup.path)
      assert.equal("79161112233", lookup.params.phoneNumber)
      assert.matches("^/sinap/api/v2/terms/%d+/payments$", payment.path)
      assert.equal("9161112233", payment.json.fields.account)
    end)

    it("pay_card finds the card's provider, then pays", function()
      local c = b:client()
      local res, err = c:pay_card { card = "4111 1111 1111 1111", amount = 50 }
      assert.is_nil(err)
      assert.is_table(res)
      local reqs = b:requests()
      assert.equal("4111 1111 1111 1111", reqs[#reqs - 1].json.account)
      assert.equal("4111111111111111", reqs[#reqs].json.fields.account)
    end)

    it("bad payment arguments send nothing, lookups included", function()
      local c = b:client()
      local before = #b:requests()
      local cases = {
        function() return c:transfer { to = "79990001122", amount = 1.005 } end,
        function() return c:transfer { to = "79990001122", amount = -5 } end,
        function() return c:transfer { to = "79990001122", amount = 0 } end,
        function() return c:transfer { to = "79990001122", amount = 0 / 0 } end,
        function() return c:transfer { to = "79990001122" } end,
        function() return c:transfer { to = "not a phone", amount = 1 } end,
        function() return c:transfer { to = "79990001122", amount = 1, id = "123456789012345678901" } end,
        function() return c:transfer { to = "79990001122", amount = 1, colour = "red" } end,
        function() return c:pay_mobile { phone = "79161112233", amount = "1.001" } end,
        function() return c:pay_mobile { phone = "19161112233", amount = 1 } end,
        function() return c:pay_card { card = "4111 1111 1111 1112", amount = 1 } end,
        function() return c:pay_card { card = "4111", amount = 1 } end,
        function() return c:pay_card { card = "4111111111111111", amount = math.huge } end,
        function() return c:convert { currency = 643, amount = 1 } end,
        function() return c:pay(99, { amount = 1 }) end,
        function() return c:pay("ninety", { amount = 1, account = "+7999" }) end,
        function() return c:pay(99, { amount = 1, account = "+7999\r\nX: y" }) end,
        function() return c:commission(99, { account = "1", amount = "1e2" }) end,
        function() return c:register_webhook("https://example.com/" .. string.rep("a", 90), "IN") end,
        function() return c:register_webhook("https://example.com/hook", "SIDEWAYS") end,
        function() return c:delete_webhook("not-a-uuid") end,
      }
      for i, case in ipairs(cases) do
        local res, err = case()
        assert.is_nil(res, "case " .. i)
        assert.equal("argument", err.kind, "case " .. i .. ": " .. tostring(err))
      end
      assert.equal(before, #b:requests())
    end)
  end)
end)
