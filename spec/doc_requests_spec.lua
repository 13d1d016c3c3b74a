-- Every request example in QIWI's docs, made through our methods: the fake
-- (in-process and over HTTPS) must see the method, path, query, JSON body and
-- headers the docs show. Whether the fake then accepts the example's made-up
-- ids is not the point here; the wire is.
local backends = require "backends"
local unpack = table.unpack or unpack

local W = "79111234567"
local HOOK = "d63a8729-f5c8-486f-907d-9fb8758afcfc"

local PAYMENT_METHOD = { type = "Account", accountId = "643" }

local cases = {
  { "profile (authInfoEnabled=false)", function(c) return c:profile { auth_info = false } end,
    "GET", "/person-profile/v1/profile/current", { authInfoEnabled = "false" } },
  { "identification POST", function(c)
      return c:identify { birth_date = "1998-02-11", first_name = "Иван", inn = "", last_name = "Иванов",
                          middle_name = "Иванович", oms = "", passport = "4400111222", snils = "" }
    end, "POST", "/identification/v1/persons/" .. W .. "/identification", {},
    { birthDate = "1998-02-11", firstName = "Иван", inn = "", lastName = "Иванов", middleName = "Иванович",
      oms = "", passport = "4400111222", snils = "" } },
  { "identification GET", function(c) return c:identification() end,
    "GET", "/identification/v1/persons/" .. W .. "/identification", {} },
  { "limits types[0]=TURNOVER", function(c) return c:limits { "TURNOVER" } end,
    "GET", "/qw-limits/v1/persons/" .. W .. "/actual-limits", { ["types[0]"] = "TURNOVER" } },
  { "p2p payment count limit", function(c) return c:p2p_count_limit() end,
    "GET", "/qw-limits/v1/persons/" .. W .. "/p2p-payment-count-limit", {} },
  { "restrictions", function(c) return c:restrictions() end,
    "GET", "/person-profile/v1/persons/" .. W .. "/status/restrictions", {} },
  { "identification downgrade request", function(c) return c:request_identification_downgrade() end,
    "POST", "/qw-ident-downgrade-api/v1/persons/" .. W .. "/identification-downgrade/operations", {},
    { identificationLevel = "VERIFIED" } },
  { "identification downgrade confirm", function(c)
      return c:confirm_identification_downgrade("1747ea28-1082-41bc-bde4-72994b3ffeb4")
    end, "PUT", "/qw-ident-downgrade-api/v1/persons/" .. W ..
    "/identification-downgrade/operations/1747ea28-1082-41bc-bde4-72994b3ffeb4/confirm", {}, {} },
  { "identification downgrade status", function(c)
      return c:identification_downgrade("1747ea28-1082-41bc-bde4-72994b3ffeb4")
    end, "GET", "/qw-ident-downgrade-api/v1/persons/" .. W ..
    "/identification-downgrade/operations/1747ea28-1082-41bc-bde4-72994b3ffeb4", {} },
  { "history example 1: last 10", function(c) return c:history { rows = 10 } end,
    "GET", "/payment-history/v2/persons/" .. W .. "/payments", { rows = "10" } },
  { "history example 2: one day", function(c)
      return c:history { rows = 50, start_date = "2017-05-10T00:00:00+03:00", end_date = "2017-05-10T23:59:59+03:00" }
    end, "GET", "/payment-history/v2/persons/" .. W .. "/payments",
    { rows = "50", startDate = "2017-05-10T00:00:00+03:00", endDate = "2017-05-10T23:59:59+03:00" } },
  { "history example 3: next page", function(c)
      return c:history { rows = 50, next_txn_id = 9103121, next_txn_date = "2017-05-11T12:35:23+03:00" }
    end, "GET", "/payment-history/v2/persons/" .. W .. "/payments",
    { rows = "50", nextTxnId = "9103121", nextTxnDate = "2017-05-11T12:35:23+03:00" } },
  { "history example 4: sources", function(c)
      return c:history { rows = 10, operation = "OUT", sources = { "QW_RUB", "CARD" } }
    end, "GET", "/payment-history/v2/persons/" .. W .. "/payments",
    { rows = "10", operation = "OUT", ["sources[0]"] = "QW_RUB", ["sources[1]"] = "CARD" } },
  { "history example 5: source and day", function(c)
      return c:history { rows = 50, sources = { "QW_RUB" }, start_date = "2017-05-10T00:00:00+03:00",
                         end_date = "2017-05-10T23:59:59+03:00" }
    end, "GET", "/payment-history/v2/persons/" .. W .. "/payments",
    { rows = "50", ["sources[0]"] = "QW_RUB", startDate = "2017-05-10T00:00:00+03:00",
      endDate = "2017-05-10T23:59:59+03:00" } },
  { "history total", function(c)
      return c:history_total { start_date = "2017-03-01T00:00:00+03:00", end_date = "2017-03-31T11:44:15+03:00" }
    end, "GET", "/payment-history/v2/persons/" .. W .. "/payments/total",
    { startDate = "2017-03-01T00:00:00+03:00", endDate = "2017-03-31T11:44:15+03:00" } },
  { "transaction details", function(c) return c:transaction(9112223344) end,
    "GET", "/payment-history/v2/transactions/9112223344", {} },
  { "receipt file", function(c) return c:receipt(9112223344, { type = "IN", format = "PDF" }) end,
    "GET", "/payment-history/v1/transactions/9112223344/cheque/file", { type = "IN", format = "PDF" } },
  { "receipt send", function(c) return c:send_receipt(9112223344, { type = "IN", email = "my@example.com" }) end,
    "POST", "/payment-history/v1/transactions/9112223344/cheque/send", { type = "IN" }, { email = "my@example.com" } },
  { "balances", function(c) return c:accounts() end,
    "GET", "/funding-sources/v2/persons/" .. W .. "/accounts", {} },
  { "balance repeat with timeout and alias", function(c) return c:account_balance("qw_wallet_rub") end,
    "GET", "/funding-sources/v2/persons/" .. W .. "/accounts", { timeout = "1000", alias = "qw_wallet_rub" } },
  { "create balance", function(c) return c:create_account("qw_wallet_eur") end,
    "POST", "/funding-sources/v2/persons/" .. W .. "/accounts", {}, { alias = "qw_wallet_eur" } },
  { "available accounts", function(c) return c:account_offers() end,
    "GET", "/funding-sources/v2/persons/" .. W .. "/accounts/offer", {} },
  { "default balance", function(c) return c:set_default_account("qw_wallet_usd") end,
    "PATCH", "/funding-sources/v2/persons/" .. W .. "/accounts/qw_wallet_usd", {}, { defaultAccount = true } },
  { "commission", function(c) return c:commission(99, { account = "380995238345", amount = 10 }) end,
    "POST", "/sinap/providers/99/onlineCommission", {},
    { account = "380995238345", paymentMethod = PAYMENT_METHOD,
      purchaseTotals = { total = { amount = 10, currency = "643" } } } },
  { "nickname", function(c) return c:nickname() end,
    "GET", "/qw-nicknames/v1/persons/" .. W .. "/nickname", {} },
  { "QIWI wallet transfer", function(c)
      return c:transfer { to = "+79121112233", amount = 100.50, comment = "test", id = "11111111111111" }
    end, "POST", "/sinap/api/v2/terms/99/payments", {},
    { id = "11111111111111", sum = { amount = 100.5, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      comment = "test", fields = { account = "+79121112233" } } },
  { "conversion", function(c)
      return c:convert { to = "+79121112233", amount = "10.00", currency = 398, comment = "test", id = "11111111111111" }
    end, "POST", "/sinap/api/v2/terms/1099/payments", {},
    { id = "11111111111111", sum = { amount = 10, currency = "398" }, paymentMethod = PAYMENT_METHOD,
      comment = "test", fields = { account = "+79121112233" } } },
  { "cross rates", function(c) return c:cross_rates() end, "GET", "/sinap/crossRates", {} },
  { "mobile payment (generic pay to provider 1)", function(c)
      return c:pay(1, { id = "21131343", amount = 1000, account = "9161112233" })
    end, "POST", "/sinap/api/v2/terms/1/payments", {},
    { id = "21131343", sum = { amount = 1000, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      fields = { account = "9161112233" } } },
  { "foreign card payment with extra fields", function(c)
      return c:pay(1960, { id = "21131343", amount = 1000, account = "4028650000000000",
        fields = { rec_address = "Ленинский проспект 131, 56", rec_city = "Москва", rec_country = "Россия",
                   reg_name = "Виктор", reg_name_f = "Петров", rem_name = "Сергей", rem_name_f = "Иванов" } })
    end, "POST", "/sinap/api/v2/terms/1960/payments", {},
    { id = "21131343", sum = { amount = 1000, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      fields = { account = "4028650000000000", rec_address = "Ленинский проспект 131, 56", rec_city = "Москва",
                 rec_country = "Россия", reg_name = "Виктор", reg_name_f = "Петров", rem_name = "Сергей",
                 rem_name_f = "Иванов" } } },
  { "bank transfer to a bank account", function(c)
      return c:bank_transfer(464, { id = "21131343", amount = 1000, account = "40817810000000000000",
        account_type = 2, mfo = "044525555", lname = "Иванов", fname = "Иван", mname = "Иванович", urgent = false })
    end, "POST", "/sinap/api/v2/terms/464/payments", {},
    { id = "21131343", sum = { amount = 1000, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      fields = { account = "40817810000000000000", account_type = "2", mfo = "044525555", lname = "Иванов",
                 fname = "Иван", mname = "Иванович", urgent = "0" } } },
  { "payment by requisites (1717)", function(c)
      return c:pay_by_requisites { id = "21131343", amount = 1000, name = "ПАО АКБ \"АВАНГАРД\"",
        to_bik = "044525201", city = "МОСКВА", to_name = "ООО \"Технический Центр ДЕЛЬТА\"", to_inn = "7726111111",
        to_kpp = "772111001", nds = false, goal = " Оплата товара по заказу №090738231", urgent = false,
        account = "40711100000012321", from_name = "Иван", from_name_p = "Николаевич", from_name_f = "Михайлов" }
    end, "POST", "/sinap/api/v2/terms/1717/payments", {},
    { id = "21131343", sum = { amount = 1000, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      fields = { extra_to_bik = "044525201", requestProtocol = "qw1", city = "МОСКВА", name = "ПАО АКБ \"АВАНГАРД\"",
                 to_bik = "044525201", urgent = "0", to_kpp = "772111001", is_commercial = "1",
                 nds = "НДС не облагается", goal = " Оплата товара по заказу №090738231", from_name_p = "Николаевич",
                 from_name = "Иван", from_name_f = "Михайлов", info = "Коммерческие организации",
                 to_name = "ООО \"Технический Центр ДЕЛЬТА\"", to_inn = "7726111111", account = "40711100000012321",
                 toServiceId = "1717" } } },
  { "provider search", function(c) return c:search_providers("Билайн домашний интернет") end,
    "GET", "/search/v1/search", { query = "Билайн домашний интернет" } },
  { "card provider lookup", function(c) return c:detect_card("1234 1234 1234 1234") end,
    "POST", "/sinap/api/refs/bd6fb248-2bdf-49ed-bcb2-9b0a789cfde8/containers", {},
    { account = "1234 1234 1234 1234" }, { accept = "application/vnd.qiwi.v1+json" } },
  { "mobile operator lookup", function(c) return c:detect_mobile("79270010101") end,
    "GET", "/qw-mobile-providers-resolver/v1/providers", { phoneNumber = "79270010101" } },
  { "P2P keys", function(c) return c:create_p2p_keys { name = "Name", notifications_url = "https://test.com" } end,
    "POST", "/widgets-api/api/p2p/protected/keys/create", {},
    { keysPairName = "Name", serverNotificationsUrl = "https://test.com" } },
  { "list of invoices", function(c) return c:bills { rows = 50 } end,
    "GET", "/checkout-api/api/bill/search", { statuses = "READY_FOR_PAY", rows = "50" } },
  { "invoice payment", function(c) return c:pay_bill(1063702405, 643) end,
    "POST", "/checkout-api/invoice/pay/wallet", {}, { invoice_uid = "1063702405", currency = "643" } },
  { "invoice rejection", function(c) return c:reject_bill(1034353453) end,
    "POST", "/checkout-api/api/bill/reject", {}, { id = 1034353453 } },
  { "webhook registration", function(c) return c:register_webhook("http://example.com/callbacks/", 2) end,
    "PUT", "/payment-notifier/v1/hooks", { hookType = "1", param = "http://example.com/callbacks/", txnType = "2" } },
  { "webhook removal", function(c) return c:delete_webhook(HOOK) end,
    "DELETE", "/payment-notifier/v1/hooks/" .. HOOK, {} },
  { "webhook key", function(c) return c:webhook_key(HOOK) end,
    "GET", "/payment-notifier/v1/hooks/" .. HOOK .. "/key", {} },
  { "webhook new key", function(c) return c:new_webhook_key(HOOK) end,
    "POST", "/payment-notifier/v1/hooks/" .. HOOK .. "/newkey", {} },
  { "active webhook", function(c) return c:active_webhook() end,
    "GET", "/payment-notifier/v1/hooks/active", {} },
  { "test webhook", function(c) return c:test_webhook() end,
    "GET", "/payment-notifier/v1/hooks/test", {} },
  { "QIWI Master package", function(c) return c:buy_master_package { id = "1600884280003", comment = "Оплата" } end,
    "POST", "/sinap/api/v2/terms/28004/payments", {},
    { id = "1600884280003", sum = { amount = 2999, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      comment = "Оплата", fields = { account = W, vas_alias = "qvc-master" } } },
  { "QIWI Master card order", function(c) return c:order_card() end,
    "POST", "/cards/v2/persons/" .. W .. "/orders", {}, { cardAlias = "qvc-cpa" } },
  { "QIWI Master order submit", function(c) return c:submit_card_order("920fa383-6209-4743-a5d1-883f473f7f95") end,
    "PUT", "/cards/v2/persons/" .. W .. "/orders/920fa383-6209-4743-a5d1-883f473f7f95/submit", {} },
  { "QIWI Master card purchase", function(c)
      return c:buy_card("920fa383-6209-4743-a5d1-883f473f7f95", { amount = 99, id = "1600884290004" })
    end, "POST", "/sinap/api/v2/terms/32064/payments", {},
    { id = "1600884290004", sum = { amount = 99, currency = "643" }, paymentMethod = PAYMENT_METHOD,
      fields = { account = W, order_id = "920fa383-6209-4743-a5d1-883f473f7f95" } } },
  { "QIWI Master cards", function(c) return c:master_cards() end,
    "GET", "/cards/v1/cards", { ["vas-alias"] = "qvc-master" } },
  { "QIWI Master statement", function(c)
      return c:card_statement(158618787, { from = "2020-01-01T00:00:00+03:00", till = "2020-09-23T23:59:59+03:00" })
    end, "GET", "/payment-history/v1/persons/" .. W .. "/cards/158618787/statement",
    { from = "2020-01-01T00:00:00+03:00", till = "2020-09-23T23:59:59+03:00" } },
  { "QIWI Master block", function(c) return c:block_card(70590106) end,
    "PUT", "/cards/v2/persons/" .. W .. "/cards/70590106/block", {} },
  { "QIWI Master unblock", function(c) return c:unblock_card(111887288) end,
    "PUT", "/cards/v2/persons/" .. W .. "/cards/111887288/unblock", {} },
  { "QIWI Master card details", function(c)
      return c:card_details(158619365, "43555447-a026-4c17-b56d-6956a09249c9")
    end, "PUT", "/cards/v1/cards/158619365/details", {}, { operationId = "43555447-a026-4c17-b56d-6956a09249c9" } },
  { "QIWI Master rename", function(c) return c:rename_card(158619365, "new card name") end,
    "PUT", "/cards/v1/cards/158619365/alias", {}, { alias = "new card name" } },
}

backends.each(function(make)
  local b = make()
  describe("docs' request examples over " .. b.name .. ":", function()
    before_each(function() b:reset { balance = 100000 } end)
    for _, case in ipairs(cases) do
      local name, call, method, path, query, body, headers = unpack(case)
      it(name, function()
        local c = b:client()
        call(c)
        local r = b:last()
        assert.is_table(r, "no request reached the fake")
        assert.equal(method, r.method)
        assert.equal(path, r.path)
        assert.same(query, r.params)
        assert.equal(headers and headers.accept or "application/json", r.headers.accept)
        assert.matches("^Bearer ", r.headers.authorization)
        if body then
          assert.equal("application/json", r.headers["content-type"])
          assert.same(body, r.json)
        else
          assert.is_true(r.body == nil or r.body == "", "unexpected body: " .. tostring(r.body))
        end
      end)
    end
  end)
end)
