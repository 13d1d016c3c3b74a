-- Retries: safe requests are repeated on faults; a payment is repeated only
-- with its client id, so a lost answer never becomes a second payment.
local qiwi = require "qiwi"
local backends = require "backends"

local WALLET = "79111234567"

-- A transport that hands every request to the fake but loses the answer of
-- the first `drops` requests matching `pattern`, after the fake handled them
-- (the debit happened, the client never heard).
local function lossy(fake, pattern, drops)
  local inner = fake:transport()
  local t = { sent = {} }
  function t.request(_, method, url, headers, body, timeout, once)
    t.sent[#t.sent + 1] = body or ""
    local status, b, h = inner:request(method, url, headers, body, timeout, once)
    if url:find(pattern) and drops > 0 then
      drops = drops - 1
      return nil, "network", "connection reset by peer"
    end
    return status, b, h
  end
  return t
end

local rub = backends.rub

describe("retries", function()
  it("a payment whose answer is lost after the debit is retried with the same id and paid once", function()
    local f = qiwi.fake.new { token = "test-token", wallet = WALLET, balance = 1000 }
    local t = lossy(f, "/payments$", 1)
    local c = assert(qiwi.new { token = "test-token", wallet = WALLET, transport = t, retries = 2 })
    local res, err = c:transfer { to = "79990001122", amount = 100 }
    assert.is_nil(err)
    assert.is_table(res.transaction)
    assert.equal(2, #t.sent)
    assert.equal(t.sent[1], t.sent[2])           -- the very same body, same client id
    assert.equal(900, rub(c))                      -- debited once
    local out = 0
    for _, p in ipairs(assert(c:history { rows = 50, operation = "OUT" }).data) do
      if p.sum.amount == 100 and p.account:find("79990001122", 1, true) then out = out + 1 end
    end
    assert.equal(1, out)
  end)

  it("with retries = 0 the lost answer is a retryable network error, and a manual retry with the id pays nothing more", function()
    local f = qiwi.fake.new { token = "test-token", wallet = WALLET, balance = 1000 }
    local c = assert(qiwi.new { token = "test-token", wallet = WALLET, transport = lossy(f, "/payments$", 1), retries = 0 })
    local res, err = c:transfer { to = "79990001122", amount = 100, id = "1700000000000123" }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_true(err.retryable)
    local again = assert(c:transfer { to = "79990001122", amount = 100, id = "1700000000000123" })
    assert.is_table(again.transaction)
    assert.equal(900, rub(c))
  end)

  it("a POST that is not a payment is never retried", function()
    local f = qiwi.fake.new { token = "test-token", wallet = WALLET }
    local t = lossy(f, "/accounts$", 1)
    local c = assert(qiwi.new { token = "test-token", wallet = WALLET, transport = t, retries = 3 })
    local res, err = c:create_account("qw_wallet_eur")
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal(1, #t.sent)
  end)

  it("a GET is retried after 503 and 423 answers, up to `retries` times", function()
    local f = qiwi.fake.new { token = "test-token", wallet = WALLET }
    f:fail_next { status = 503, count = 1 }
    f:fail_next { status = 423, count = 1 }
    local c = assert(qiwi.new { token = "test-token", wallet = WALLET, transport = f:transport(), retries = 2 })
    local res, err = c:accounts()
    assert.is_nil(err)
    assert.is_table(res.accounts)
    assert.equal(3, #f.requests)
  end)

  it("gives up after `retries` and returns the last error", function()
    local f = qiwi.fake.new { token = "test-token", wallet = WALLET }
    f:fail_next { status = 500, count = 5 }
    local c = assert(qiwi.new { token = "test-token", wallet = WALLET, transport = f:transport(), retries = 1 })
    local res, err = c:accounts()
    assert.is_nil(res)
    assert.equal(500, err.status)
    assert.equal(2, #f.requests)
  end)

  it("does not retry what a repeat cannot fix (401, 404, argument errors)", function()
    local f = qiwi.fake.new { token = "test-token", wallet = WALLET }
    local c = assert(qiwi.new { token = "wrong-token", wallet = WALLET, transport = f:transport(), retries = 3 })
    local res, err = c:accounts()
    assert.is_nil(res)
    assert.equal(401, err.status)
    assert.equal(1, #f.requests)
  end)
end)
