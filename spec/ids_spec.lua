-- Payment ids: idempotency keys (one key, one payment, in every process),
-- fresh ids through the client's store (none when the store is down), and a
-- fresh id that another process took already (paid again under a new one).
local qiwi = require "qiwi"
local qerror = require "qiwi.error"
local ids = require "qiwi.ids"

local WALLET = "79111234567"
local TO = "79990001122"

local function rub(f) return f:balance() end

local function client(f, extra)
  local o = { token = "test-token", wallet = WALLET, transport = f, retries = 0 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(qiwi.new(o))
end

local function payments_seen(f)
  local n = 0
  for _, r in ipairs(f.requests) do
    if r.method == "POST" and r.path:find("/payments$") then n = n + 1 end
  end
  return n
end

describe("idempotency_key", function()
  it("gives every payment method the same id for the same wallet and key", function()
    local a, b = ids.derived(WALLET, "order-42"), ids.derived(WALLET, "order-42")
    assert.equal(a, b)
    assert.matches("^%d+$", a)
    assert.is_true(#a <= 19)
    assert.are_not.equal(a, ids.derived(WALLET, "order-43"))
    assert.are_not.equal(a, ids.derived("79111234568", "order-42"))
  end)

  it("gives the same id in another process, whatever its Lua", function()
    local code = 'print(require("qiwi.ids").derived("' .. WALLET .. '", "order-42"))'
    for _, lua in ipairs { "lua5.4", "luajit", "lua5.1" } do
      local cpath = "build/" .. lua .. "/?.so"
      local f = io.open(cpath:gsub("%?", "qiwi/core"), "rb")
      if f then
        f:close()
        local p = assert(io.popen(lua .. " -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path;"
          .. " package.cpath=\"" .. cpath .. ";\"..package.cpath' -e '" .. code .. "'"))
        local out = p:read("*l")
        p:close()
        assert.equal(ids.derived(WALLET, "order-42"), out, lua)
      end
    end
  end)

  it("pays once for one key, whichever method and however often", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local c = client(f)
    local first = assert(c:transfer { to = TO, amount = 10, idempotency_key = "payout-7" })
    assert.equal(ids.derived(WALLET, "payout-7"), first.id)
    -- a restarted script: a new client, the same key
    local again = assert(client(f):transfer { to = TO, amount = 10, idempotency_key = "payout-7" })
    assert.is_true(again.replayed == true or again.transaction.id == first.transaction.id)
    local generic = assert(c:pay(99, { account = "+" .. TO, amount = 10, idempotency_key = "payout-7" }))
    assert.equal(first.transaction.id, generic.transaction.id)
    assert.equal(990, rub(f))
  end)

  it("with another payment under the same key is the id_reused error, nothing paid", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local c = client(f)
    assert(c:transfer { to = TO, amount = 10, idempotency_key = "payout-8" })
    local res, err = c:transfer { to = TO, amount = 20, idempotency_key = "payout-8" }
    assert.is_nil(res)
    assert.equal("id_reused", err.code)
    assert.equal(990, rub(f))
  end)

  for _, case in ipairs {
    { "empty", "" }, { "too long", string.rep("k", 201) }, { "with a newline", "a\nb" },
    { "a number", 42 }, { "a table", {} },
  } do
    it("refuses a key that is " .. case[1] .. ", sending nothing", function()
      local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
      local c = client(f)
      for _, call in ipairs {
        function() return c:transfer { to = TO, amount = 1, idempotency_key = case[2] } end,
        function() return c:pay(99, { account = "+" .. TO, amount = 1, idempotency_key = case[2] }) end,
        function() return c:pay_mobile { phone = TO, amount = 1, idempotency_key = case[2] } end,
      } do
        local res, err = call()
        assert.is_nil(res)
        assert.equal("argument", err.kind)
        assert.matches("idempotency_key", err.message, 1, true)
      end
      assert.equal(0, #f.requests)
    end)
  end

  it("refuses id and idempotency_key together", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local c = client(f)
    local res, err = c:transfer { to = TO, amount = 1, id = "123", idempotency_key = "k" }
    assert.is_nil(res)
    assert.equal("argument", err.kind)
    assert.matches("not both", err.message, 1, true)
    res, err = c:pay(99, { account = "+" .. TO, amount = 1, id = "123", idempotency_key = "k" })
    assert.is_nil(res)
    assert.matches("not both", err.message, 1, true)
    assert.equal(0, #f.requests)
  end)
end)

describe("fresh ids", function()
  local function store_down()
    local function down()
      return nil, qerror.new { kind = "store", message = "redis at 127.0.0.1:1: connection refused", retryable = true }
    end
    return { name = "down", incr = down, add = down, get = down, set = down, delete = down, admit = down }
  end

  it("come from a shared store's counter, and no store means no payment", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local c = client(f, { store = store_down(), history_rate = false })
    local res, err = c:transfer { to = TO, amount = 10 }
    assert.is_nil(res)
    assert.equal("store", err.kind)
    assert.equal(0, payments_seen(f))
    -- an id of the caller's, or one derived from a key, needs no store
    assert(c:transfer { to = TO, amount = 10, id = "1700000000001" })
    assert(c:transfer { to = TO, amount = 10, idempotency_key = "no-store-needed" })
    assert.equal(980, rub(f))
  end)

  it("taken by another process already: paid again under a new id", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local other = client(f)
    local taken = assert(other:transfer { to = "79990003344", amount = 5 }).id
    local real = ids.fresh
    local calls = 0
    ids.fresh = function(...)
      calls = calls + 1
      if calls == 1 then return taken end
      return real(...)
    end
    local ok, res, err = pcall(function() return client(f):transfer { to = TO, amount = 10 } end)
    ids.fresh = real
    assert.is_true(ok, tostring(res))
    assert.is_nil(err)
    assert.are_not.equal(taken, res.id)
    assert.equal(2, calls)
    assert.equal(985, rub(f))
  end)

  it("the caller's own reused id is the caller's to judge: the error, not a new id", function()
    local f = qiwi.fake.new { wallet = WALLET, balance = 1000 }
    local c = client(f)
    local taken = assert(c:transfer { to = "79990003344", amount = 5 }).id
    local res, err = c:transfer { to = TO, amount = 10, id = taken }
    assert.is_nil(res)
    assert.equal("id_reused", err.code)
    assert.equal(995, rub(f))
  end)
end)
