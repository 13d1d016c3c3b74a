-- A payment id used before: QIWI answers with the earlier payment. A
-- different payment under that id is an error carrying the earlier one; the
-- same payment again is marked replayed. Either way nothing new is paid.
local qiwi = require "qiwi"
local backends = require "backends"

local WALLET = "79111234567"
local TO, OTHER = "79990001122", "79990003344"

-- ids unique to this run, so that no earlier spec's payment is found
local seq = 0
local function fresh_id()
  seq = seq + 1
  return string.format("%d%04d", os.time(), seq)
end

local rub_balance = backends.rub

backends.each(function(make)
  local b = make()
  describe("a reused payment id over " .. b.name .. ":", function()
    before_each(function() b:reset { wallet = WALLET, balance = 1000 } end)

    it("with another amount is an api error holding the first payment, and pays nothing", function()
      local c = b:client()
      local id = fresh_id()
      local first = assert(c:transfer { to = TO, amount = 10.50, id = id })
      assert.is_nil(first.replayed)
      local left = rub_balance(c)
      local res, err = c:transfer { to = TO, amount = 20, id = id }
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("id_reused", err.code)
      assert.is_false(err.retryable)
      assert.matches("amount 10.5 (asked 20)", err.message, 1, true)
      assert.equal(10.5, err.payment.sum.amount)
      assert.equal(first.transaction.id, err.payment.transaction.id)
      assert.equal(left, rub_balance(c))
    end)

    it("with another account is an error", function()
      local c = b:client()
      local id = fresh_id()
      assert(c:transfer { to = TO, amount = 5, id = id })
      local res, err = c:transfer { to = OTHER, amount = 5, id = id }
      assert.is_nil(res)
      assert.equal("id_reused", err.code)
      assert.matches("account", err.message, 1, true)
    end)

    it("with another provider is an error", function()
      local c = b:client()
      local id = fresh_id()
      assert(c:transfer { to = TO, amount = 5, id = id })
      local res, err = c:pay(1099, { account = "+" .. WALLET, amount = 5, currency = 840, id = id })
      assert.is_nil(res)
      assert.equal("id_reused", err.code)
      assert.matches("provider", err.message, 1, true)
    end)

    it("for the same payment is returned marked replayed, paid once", function()
      local c = b:client()
      local id = fresh_id()
      local first = assert(c:transfer { to = TO, amount = 7, id = id })
      local left = rub_balance(c)
      local again, err = c:transfer { to = "+" .. TO, amount = "7.00", id = id }
      assert.is_nil(err)
      assert.is_true(again.replayed)
      assert.equal(first.transaction.id, again.transaction.id)
      assert.equal(left, rub_balance(c))
    end)

    it("in a batch is the same error", function()
      local c = b:client()
      local id = fresh_id()
      assert(c:transfer { to = TO, amount = 3, id = id })
      local out = c:batch { { "pay", 99, { account = "+" .. TO, amount = 4, id = id } } }
      assert.is_nil(out[1][1])
      assert.equal("id_reused", out[1][2].code)
    end)

    it("a card payment's masked account still matches", function()
      local c = b:client()
      local id = fresh_id()
      local res, err = c:pay_card { card = "4111111111111111", amount = 100, id = id }
      assert.is_nil(err, tostring(err))
      assert.is_table(res)
      local again = assert(c:pay_card { card = "4111 1111 1111 1111", amount = 100, id = id })
      assert.is_true(again.replayed)
    end)
  end)
end)

describe("payment_check.mismatch", function()
  local check = require "qiwi.payment_check"
  local body = qiwi.json.encode { id = "1", sum = { amount = 10.5, currency = "643" }, fields = { account = "+79990001122" } }

  it("finds nothing to say for the docs' own answer shape", function()
    assert.is_nil(check.mismatch("99", body, { id = "1", terms = "99", fields = { account = "79990001122" },
                                               sum = { amount = 10.5, currency = "643" } }))
  end)

  it("names each difference", function()
    local d = check.mismatch("99", body, { id = "1", terms = "1099", fields = { account = "79990009999" },
                                           sum = { amount = 20, currency = "840" } })
    for _, what in ipairs { "provider", "account", "amount", "currency" } do
      assert.matches(what, d, 1, true)
    end
  end)
end)

describe("a reused id for another comment", function()
  it("is the id_reused error: two invoices of one amount to one account are two payments", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local a = assert(qiwi.new { token = "test-token", wallet = WALLET, transport = f })
    assert(a:transfer { to = TO, amount = 10, comment = "invoice 1", id = "1796000000000000001" })
    local res, err = a:transfer { to = TO, amount = 10, comment = "invoice 2", id = "1796000000000000001" }
    assert.is_nil(res)
    assert.equal("id_reused", err.code)
    assert.matches("comment", err.message, 1, true)
    assert.equal(990, f:balance())
  end)

  it("another requisite is a mismatch too; the same payment again is a replay", function()
    local check = require "qiwi.payment_check"
    local body = qiwi.json.encode { id = "1", sum = { amount = 5, currency = "643" },
                                    fields = { account = "40817810000000000001", mfo = "044525225" } }
    local answer = { id = "1", terms = "464", sum = { amount = 5, currency = "643" },
                     fields = { account = "40817810000000000001", mfo = "044525999" } }
    assert.matches("fields.mfo", check.mismatch("464", body, answer), 1, true)
    answer.fields.mfo = "044525225"
    assert.is_nil(check.mismatch("464", body, answer))
  end)
end)
