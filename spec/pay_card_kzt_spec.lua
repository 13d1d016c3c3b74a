-- client:pay_card_kzt: the transfer to a Kazakh bank card of the Russian
-- payment page (#cards-kzt, #prepare-card-kzt-transfer): the preparation
-- request, then the payment to provider 27292 in tenge, each exactly as the
-- page shows it (the path without v2, the two Accept headers, the
-- sec-fetch lines, the constant fields), against the fake in-process and
-- over real HTTPS.
local qiwi = require "qiwi"
local backends = require "backends"
local checks = require "checks"

local CARD = "4400430012345671"        -- passes the Luhn check
local PREP = "/sinap/api/refs/a42ebc79-0584-4271-b8a0-15cb4ea8b340/containers"
local PAY = "/sinap/api/terms/27292/payments"
local INFO = "Для продолжения оплаты, подтвердите, что являетесь держателем указанного банковского счета."

local function assert_page_headers(req, accept)
  assert.equal(accept, req.headers.accept)
  assert.equal("application/json", req.headers["content-type"])
  assert.equal("Bearer test-token", req.headers.authorization)
  assert.equal("same-site", req.headers["sec-fetch-site"])
  assert.equal("cors", req.headers["sec-fetch-mode"])
  assert.equal("empty", req.headers["sec-fetch-dest"])
end

backends.each(function(make)
  local b = make()

  describe("pay_card_kzt (" .. b.name .. ")", function()
    local client

    before_each(function()
      b:reset { accounts = { qw_wallet_kzt = 5000 } }
      client = b:client()
    end)

    it("sends the page's preparation request and payment, and decodes both answers", function()
      local paid, err = client:pay_card_kzt { card = "4400 4300 1234 5671", amount = 1000, id = "21131343" }
      assert.is_nil(err)
      local reqs = b:requests()
      assert.equal(2, #reqs)
      local prep, pay = reqs[1], reqs[2]
      -- the preparation request (#prepare-card-kzt-transfer)
      assert.equal("POST", prep.method)
      assert.equal(PREP, prep.path)
      assert_page_headers(prep, "application/vnd.qiwi.v1+json")
      assert.same({ cardNumber = CARD, version = "2", transferSum = "100", src = "sinap" }, prep.json)
      -- the payment (#cards-kzt): no v2 in the path, tenge, the page's fields
      assert.equal("POST", pay.method)
      assert.equal(PAY, pay.path)
      assert_page_headers(pay, "application/vnd.qiwi.v2+json")
      local j = pay.json
      assert.equal("21131343", j.id)
      assert.equal(1000, j.sum.amount)
      assert.equal("398", j.sum.currency)
      assert.same({ accountId = "398", type = "Account" }, j.paymentMethod)
      assert.equal(CARD, j.fields.cardNumber)
      assert.equal("2", j.fields.version)
      assert.equal("100", j.fields.transferSum)
      assert.equal(INFO, j.fields.info)
      assert.equal("1", j.fields.accept)
      assert.equal("4400********5671", j.fields.account)
      assert.is_string(j.fields.ev_account1)
      -- the preparation answer's elements went into the payment
      local n = 0
      for _ in pairs(j.fields) do n = n + 1 end
      assert.equal(7, n)
      -- the answer: a PaymentInfo in tenge
      assert.equal("21131343", paid.id)
      assert.equal("27292", paid.terms)
      assert.equal("398", paid.sum.currency)
      assert.equal("Accepted", paid.transaction.state.code)
      assert.equal(4000, b:call("balance", "KZT"))
    end)

    it("the page's preparation answer decodes, and its values go into the payment", function()
      local page = '{"elements":[{"type":"field","name":"account","value":"<маскированный PAN карты>"},'
        .. '{"type":"field","name":"ev_account1","value":"<длинная строка>"}]}'
      b:call("fail_next", { status = 200, path_pattern = "/containers$", body = page })
      assert.same(qiwi.json.decode(page), assert(client:prepare_card_kzt(CARD)))
      b:call("fail_next", { status = 200, path_pattern = "/containers$", body = page })
      -- the fake knows no such token: the payment is refused, nothing debited
      checks.assert_kind("api", client:pay_card_kzt { card = CARD, amount = 10 })
      local fields = b:last().json.fields
      assert.equal("<маскированный PAN карты>", fields.account)
      assert.equal("<длинная строка>", fields.ev_account1)
      assert.equal(5000, b:call("balance", "KZT"))
    end)

    it("a repeat with the same id pays once", function()
      local first = assert(client:pay_card_kzt { card = CARD, amount = "10.50", id = "5001" })
      local again = assert(client:pay_card_kzt { card = CARD, amount = "10.50", id = "5001" })
      assert.equal(first.transaction.id, again.transaction.id)
      assert.equal(4989.5, b:call("balance", "KZT"))
      -- the same id for another amount is the earlier payment, not a new one
      local err = checks.assert_kind("api", client:pay_card_kzt { card = CARD, amount = 20, id = "5001" })
      assert.equal("id_reused", err.code)
      assert.equal(4989.5, b:call("balance", "KZT"))
    end)

    it("the page's preparation answer without account or ev_account1 sends no payment", function()
      b:call("fail_next", { status = 200, path_pattern = "/containers$",
        body = '{"elements":[{"type":"field","name":"account","value":"4400********5671"}]}' })
      local err = checks.assert_kind("api", client:pay_card_kzt { card = CARD, amount = 10 })
      assert.equal(PREP, err.path)
      assert.equal(1, #b:requests())
      assert.equal(5000, b:call("balance", "KZT"))
    end)

    it("not enough tenge: QIWI's error, nothing debited", function()
      local err = checks.assert_kind("api", client:pay_card_kzt { card = CARD, amount = 6000 })
      assert.equal("QWPRC-220", err.code)
      assert.equal(5000, b:call("balance", "KZT"))
    end)

    it("bad arguments send nothing", function()
      local cases = {
        { "no card", { amount = 10 } }, { "Luhn", { card = "4400430012345678", amount = 10 } },
        { "short card", { card = "4400", amount = 10 } }, { "no amount", { card = CARD } },
        { "3 decimals", { card = CARD, amount = "1.005" } }, { "negative", { card = CARD, amount = -1 } },
        { "id letters", { card = CARD, amount = 1, id = "12a" } },
        { "id and key", { card = CARD, amount = 1, id = "1", idempotency_key = "k" } },
        { "comment CR LF", { card = CARD, amount = 1, comment = "a\r\nb" } },
        { "unknown option", { card = CARD, amount = 1, currency = 643 } }, { "not a table", CARD },
      }
      for _, case in ipairs(cases) do checks.named(case[1], "argument", client:pay_card_kzt(case[2])) end
      checks.named("two args", "argument", client:pay_card_kzt({ card = CARD, amount = 1 }, 2))
      checks.named("prepare Luhn", "argument", client:prepare_card_kzt("4400430012345678"))
      assert.equal(0, #b:requests())
    end)
  end)
end)
