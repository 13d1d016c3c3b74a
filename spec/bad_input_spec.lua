-- The bad-input battery: wrong arguments across the whole API. Each must come
-- back as an `argument` error, with a one-line message free of the token, and
-- nothing may reach the fake (which counts every request).
local qiwi = require "qiwi"
local backends = require "backends"

local TOKEN = "battery-secret-token-42"
local UUID = "d63a8729-f5c8-486f-907d-9fb8758afcfc"
local LONG_URL = "https://example.com/" .. string.rep("h", 81) -- 101 characters

local cases = {
  -- profile, identification, limits
  { "profile with a string", function(c) return c:profile("yes") end },
  { "profile flag not boolean", function(c) return c:profile { auth_info = 1 } end },
  { "profile unknown option", function(c) return c:profile { authinfo = true } end },
  { "identify without a passport", function(c) return c:identify { birth_date = "1998-02-11", first_name = "A", last_name = "B" } end },
  { "identify bad birth date", function(c) return c:identify { birth_date = "11.02.1998", first_name = "A", last_name = "B", passport = "4400111222" } end },
  { "identify passport with letters", function(c) return c:identify { birth_date = "1998-02-11", first_name = "A", last_name = "B", passport = "44AB111222" } end },
  { "identify name with CR/LF", function(c) return c:identify { birth_date = "1998-02-11", first_name = "A\r\nX-Evil: 1", last_name = "B", passport = "4400111222" } end },
  { "limits unknown type", function(c) return c:limits { "EVERYTHING" } end },
  { "limits empty list", function(c) return c:limits {} end },
  { "limits not a list", function(c) return c:limits(42) end },
  { "downgrade to FULL", function(c) return c:request_identification_downgrade { identification_level = "FULL" } end },
  { "downgrade confirm bad id", function(c) return c:confirm_identification_downgrade("../../etc") end },
  { "downgrade status empty id", function(c) return c:identification_downgrade("") end },
  -- history
  { "rows 0", function(c) return c:history { rows = 0 } end },
  { "rows 51", function(c) return c:history { rows = 51 } end },
  { "rows fractional", function(c) return c:history { rows = 2.5 } end },
  { "operation unknown", function(c) return c:history { operation = "SOME" } end },
  { "sources unknown", function(c) return c:history { sources = { "QW_RUB", "BTC" } } end },
  { "start without end", function(c) return c:history { start_date = os.time() } end },
  { "period over 90 days", function(c) return c:history { start_date = os.time() - 91 * 86400, end_date = os.time() } end },
  { "end before start", function(c) return c:history { start_date = os.time(), end_date = os.time() - 60 } end },
  { "malformed date", function(c) return c:history { start_date = "2017-13-01T00:00:00+03:00", end_date = "2017-13-02T00:00:00+03:00" } end },
  { "next id without date", function(c) return c:history { next_txn_id = 9103121 } end },
  { "total without dates", function(c) return c:history_total {} end },
  { "transaction with letters", function(c) return c:transaction("91122abc") end },
  { "transaction negative", function(c) return c:transaction(-5) end },
  { "transaction bad type", function(c) return c:transaction(1, "SIDEWAYS") end },
  { "receipt without type", function(c) return c:receipt(1, {}) end },
  { "receipt bad format", function(c) return c:receipt(1, { type = "IN", format = "PNG" }) end },
  { "send receipt bad e-mail", function(c) return c:send_receipt(1, { type = "IN", email = "not-an-email" }) end },
  -- balances
  { "create account empty alias", function(c) return c:create_account("") end },
  { "create account alias with slash", function(c) return c:create_account("qw/../x") end },
  { "default account NUL", function(c) return c:set_default_account("qw\0x") end },
  -- payments
  { "amount 3 decimals", function(c) return c:transfer { to = "79990001122", amount = "10.005" } end },
  { "amount negative", function(c) return c:transfer { to = "79990001122", amount = -1 } end },
  { "amount zero", function(c) return c:transfer { to = "79990001122", amount = 0 } end },
  { "amount NaN", function(c) return c:transfer { to = "79990001122", amount = 0 / 0 } end },
  { "amount infinite", function(c) return c:transfer { to = "79990001122", amount = math.huge } end },
  { "amount huge", function(c) return c:transfer { to = "79990001122", amount = 1e15 } end },
  { "amount exponent string", function(c) return c:transfer { to = "79990001122", amount = "1e2" } end },
  { "wallet with letters", function(c) return c:transfer { to = "7999abc1122", amount = 1 } end },
  { "wallet too short", function(c) return c:transfer { to = "12345", amount = 1 } end },
  { "wallet too long", function(c) return c:transfer { to = "7999000112233445566", amount = 1 } end },
  { "id over 20 digits", function(c) return c:transfer { to = "79990001122", amount = 1, id = string.rep("9", 21) } end },
  { "id with letters", function(c) return c:transfer { to = "79990001122", amount = 1, id = "12a" } end },
  { "comment with CR/LF", function(c) return c:pay(99, { account = "+79990001122", amount = 1, comment = "a\r\nb" }) end },
  { "pay without account", function(c) return c:pay(99, { amount = 1 }) end },
  { "pay provider with letters", function(c) return c:pay("99x", { account = "+79990001122", amount = 1 }) end },
  { "pay fields not strings", function(c) return c:pay(99, { account = "+7", amount = 1, fields = { x = {} } }) end },
  { "phone not Russian/Kazakh", function(c) return c:pay_mobile { phone = "+19161112233", amount = 10 } end },
  { "phone empty", function(c) return c:pay_mobile { phone = "", amount = 10 } end },
  { "card bad checksum", function(c) return c:pay_card { card = "4111 1111 1111 1112", amount = 10 } end },
  { "card too short", function(c) return c:pay_card { card = "4111 1111", amount = 10 } end },
  { "card with letters", function(c) return c:detect_card("4111 abcd 1111 1111") end },
  { "convert to rubles", function(c) return c:convert { to = "79990001122", amount = 1, currency = 643 } end },
  { "convert unknown currency", function(c) return c:convert { to = "79990001122", amount = 1, currency = 999 } end },
  { "bank transfer bad exp_date", function(c) return c:bank_transfer(464, { account = "1", amount = 1, exp_date = "2/18" }) end },
  { "requisites missing bik", function(c) return c:pay_by_requisites { name = "B", city = "M", to_name = "O", to_inn = "1", nds = false, goal = "g", account = "1", amount = 1 } end },
  { "commission without amount", function(c) return c:commission(99, { account = "79990001122" }) end },
  { "search empty", function(c) return c:search_providers("") end },
  { "detect mobile letters", function(c) return c:detect_mobile("phone") end },
  -- invoices
  { "bills rows 0", function(c) return c:bills { rows = 0 } end },
  { "pay bill letters", function(c) return c:pay_bill("abc") end },
  { "pay bill bad currency", function(c) return c:pay_bill(1, 1) end },
  { "reject bill empty", function(c) return c:reject_bill("") end },
  { "p2p keys bad url", function(c) return c:create_p2p_keys { name = "n", notifications_url = "javascript:alert(1)" } end },
  -- webhooks
  { "webhook URL over 100 characters", function(c) return c:register_webhook(LONG_URL, "IN") end },
  { "webhook URL not http", function(c) return c:register_webhook("ftp://example.com/", "IN") end },
  { "webhook URL with CR/LF", function(c) return c:register_webhook("https://example.com/\r\nHost: x", "IN") end },
  { "webhook unknown txn type", function(c) return c:register_webhook("https://example.com/", 3) end },
  { "delete webhook bad id", function(c) return c:delete_webhook("123") end },
  { "webhook key nil id", function(c) return c:webhook_key(nil) end },
  -- QIWI Master
  { "block card letters", function(c) return c:block_card("abc") end },
  { "card details bad operation id", function(c) return c:card_details(1, "not-a-uuid") end },
  { "rename card empty", function(c) return c:rename_card(1, "") end },
  { "statement without till", function(c) return c:card_statement(1, { from = os.time() }) end },
  { "order unknown card type", function(c) return c:order_card("gold") end },
  { "submit order bad id", function(c) return c:submit_card_order("x") end },
  { "buy card without a price", function(c) return c:buy_card(UUID) end },
  { "master package bad amount", function(c) return c:buy_master_package { amount = "free" } end },
  -- too many arguments
  { "extra positional argument", function(c) return c:nickname("x") end },
}

backends.each(function(make)
  local b = make()
  describe("bad-input battery over " .. b.name .. ":", function()
    setup(function() b:reset { token = TOKEN } end)

    it("has at least 50 cases", function()
      assert.is_true(#cases >= 50, #cases)
    end)

    for _, case in ipairs(cases) do
      it(case[1], function()
        local c = b:client()
        local before = #b:requests()
        local res, err = case[2](c)
        assert.is_nil(res)
        assert.is_table(err)
        assert.equal("argument", err.kind, tostring(err))
        assert.is_false(err.retryable)
        local text = tostring(err)
        assert.is_nil(text:find("[\r\n]"))
        assert.is_nil(text:find(TOKEN, 1, true))
        for _, v in pairs(err) do
          if type(v) == "string" then assert.is_nil(v:find(TOKEN, 1, true)) end
        end
        assert.equal(before, #b:requests(), "a request was sent")
      end)
    end
  end)
end)

describe("payment_form_url", function()
  it("builds the documented link", function()
    local url = assert(qiwi.payment_form_url { provider = 99, account = "79991112233", amount = 1, comment = "test123" })
    assert.equal("https://qiwi.com/payment/form/99?extra%5B%27account%27%5D=79991112233&amountInteger=1"
      .. "&amountFraction=0&extra%5B%27comment%27%5D=test123&currency=643", url)
  end)

  it("blocks fields and sets the account type for nickname transfers", function()
    local url = assert(qiwi.payment_form_url { provider = 99999, account = "NICKNAME", amount = "1.05",
                                              blocked = { "account" }, account_type = "nickname" })
    assert.matches("amountFraction=5&", url, 1, true)
    assert.matches("blocked%5B0%5D=account", url, 1, true)
    assert.matches("extra%5B%27accountType%27%5D=nickname", url, 1, true)
  end)

  for _, bad in ipairs {
    { amount = 100000 }, { amount = "1.001" }, { provider = "x" }, { blocked = { "everything" } },
    { provider = 1963, comment = "only for 99" }, { account_type = "nickname" }, { colour = 1 },
  } do
    it("refuses a bad form", function()
      local url, err = qiwi.payment_form_url(bad)
      assert.is_nil(url)
      assert.equal("argument", err.kind)
    end)
  end
end)
