-- What a new user trips over: tokens too short to be real, and error
-- messages that are not English.
local qiwi = require "qiwi"
local backends = require "backends"

local CYRILLIC = "[\208-\211][\128-\191]"

describe("tokens", function()
  for _, t in ipairs { "t", "tok", "1234567" } do
    it("refuses " .. #t .. " character(s) with an argument error", function()
      local c, err = qiwi.new { token = t }
      assert.is_nil(c)
      assert.equal("argument", err.kind)
      assert.matches("too short", err.message, 1, true)
      assert.matches("at least 8", err.message, 1, true)
    end)
  end

  it("takes the fake's default and real-looking tokens", function()
    assert.truthy(qiwi.new { token = "test-token" })
    assert.truthy(qiwi.new { token = "3b7beb2044c4dd4a8f4588d4a6b6c93f" })
  end)

  it("refuses a short P2P key", function()
    local c, err = qiwi.new { token = "test-token", p2p_secret_key = "k" }
    assert.is_nil(c)
    assert.matches("p2p_secret_key", err.message, 1, true)
  end)

  it("leaves messages readable with the shortest token", function()
    local c = assert(qiwi.new { token = "abcdefgh", wallet = "79111234567",
                                transport = qiwi.fake.new { token = "abcdefgh" } })
    local _, err = c:transaction("12a")
    assert.equal("argument", err.kind)
    assert.equal("txn_id must contain digits only", err.message)
  end)
end)

backends.each(function(make)
  local b = make()
  describe("error messages over " .. b.name .. ":", function()
    before_each(function() b:reset { balance = 1000 } end)

    -- one call for each error the fake can answer, by shape
    local cases = {
      { "401 (wrong token)", function() return b:client { token = "wrong-token-123" }:accounts() end, 401 },
      { "404 (no such path shape)", function(c) return c:transaction(999999999, "OUT") end },
      { "an existing account", function(c) return c:create_account("qw_wallet_rub") end },
      { "not enough funds (QWPRC-220)", function(c) return c:transfer { to = "79990001122", amount = 999999 } end },
      { "under 1 ruble (QWPRC-241)", function(c) return c:transfer { to = "79990001122", amount = 0.5 } end },
      { "outgoing payments blocked", function(c)
        b:call("set_restricted", true)
        return c:transfer { to = "79990001122", amount = 10 }
      end },
      { "a webhook URL the service refuses", function(c) return c:register_webhook("http://localhost/x", "IN") end },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. ": message is English, QIWI's own text in user_message", function()
        local c = b:client()
        local res, err = case[2](c)
        assert.is_nil(res)
        assert.is_table(err)
        assert.equal("api", err.kind, tostring(err))
        if case[3] then assert.equal(case[3], err.status) end
        assert.is_nil(err.message:find(CYRILLIC), err.message)
        assert.is_nil(tostring(err):find(CYRILLIC), tostring(err))
        assert.is_string(err.user_message)
        assert.truthy(err.user_message:find(CYRILLIC), err.user_message)
      end)
    end

    it("restricted outgoing payments: message and user_message say the same thing", function()
      local c = b:client()
      b:call("set_restricted", true)
      local _, err = c:transfer { to = "79990001122", amount = 10 }
      assert.equal("api", err.kind)
      -- the English text and QIWI's Russian one say the same thing
      local en, ru = err.message:lower(), err.user_message
      local says_identification_en = en:find("passport", 1, true) ~= nil or en:find("status", 1, true) ~= nil
      local says_identification_ru = ru:find("паспорт", 1, true) ~= nil or ru:find("статус", 1, true) ~= nil
      assert.equal(says_identification_ru, says_identification_en, err.message .. " / " .. ru)
    end)
  end)
end)

describe("what the reference promises", function()
  local args = require "qiwi.args"

  it("dates that do not exist are refused", function()
    assert.is_nil(args.day("1998-13-45"))
    assert.is_nil(args.day("1900-02-29"))
    assert.equal("2000-02-29", args.day("2000-02-29"))
    assert.is_nil(args.date("2021-02-31T00:00:00+03:00"))
    assert.truthy(args.date("2020-02-29T00:00:00+03:00"))
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = qiwi.fake.new {} })
    local _, err = c:identify { birth_date = "1998-02-30", first_name = "A", last_name = "B", passport = "4400111222" }
    assert.equal("argument", err.kind)
  end)

  it("payment_form_url takes currency 643 only, with an amount, and says 99999.99", function()
    assert.is_nil((qiwi.payment_form_url { amount = 1, currency = 840 }))
    assert.is_nil((qiwi.payment_form_url { currency = 643 }))
    assert.matches("currency=643", qiwi.payment_form_url { amount = 1, currency = 643 }, 1, true)
    local _, err = qiwi.payment_form_url { amount = 100000 }
    assert.matches("99999.99", err.message, 1, true)
  end)

  it("compositions refuse extra arguments like the methods that are one request", function()
    local c = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = qiwi.fake.new {} })
    for _, call in ipairs {
      function() return c:accounts(1) end,
      function() return c:transfer({ to = "79990001122", amount = 1 }, 5) end,
      function() return c:buy_card("d63a8729-f5c8-486f-907d-9fb8758afcfc", {}, 1) end,
    } do
      local res, err = call()
      assert.is_nil(res)
      assert.equal("argument", err.kind)
      assert.matches("argument", err.message, 1, true)
    end
    local iter = c:payments({}, 1)
    local p, err = iter()
    assert.is_nil(p)
    assert.equal("argument", err.kind)
  end)

  it("a history limit is shared by the clients of a Lua state", function()
    local wallet = "79990000001" -- a wallet no other spec's client counts
    local f = qiwi.fake.new { wallet = wallet }
    local function new()
      return assert(qiwi.new { token = "test-token", wallet = wallet, transport = f,
                               history_rate = { limit = 100, window = 60 } })
    end
    local a, b = new(), new()
    assert(a:history { rows = 1 })
    assert(b:history { rows = 1 })
    assert(a:history { rows = 1 })
    -- the three calls are in the one count: 97 more fit, the 98th waits
    local s = require("qiwi.store").default()
    for _ = 1, 97 do assert.equal(0, s:admit("history:" .. wallet, 100, 60)) end
    assert.is_true(s:admit("history:" .. wallet, 100, 60) > 0)
  end)
end)
