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
