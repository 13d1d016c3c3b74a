-- The QIWI Wallet API as data: one row per client method.
--
-- Row fields:
--   method, path   HTTP method and path template; {w} is the client's wallet,
--                  {name} a path parameter taken from `params`.
--   args           positional argument names; "opts" stands for an options
--                  table whose keys are parameter names.
--   params         { lua_name, wire_name, where, check, [extra] } with where one
--                  of "path", "query", "body", "none" (checked, not sent: it
--                  shapes another parameter); check names a function of
--                  qiwi.args; extra: required, default, spec (checker options),
--                  list (query arrays as name[0], name[1], …), generate ("id":
--                  a fresh client payment id, "uuid"), merge (a table merged
--                  into the body object at wire), as = "string" (keep the
--                  wire text in JSON), with/max_span (paired dates).
--   requires       body fields that must be present after merging
--   body           "object": send a JSON object even when it is empty
--   accept         an Accept header other than application/json
--   headers        more header lines, sent as they are (the Kazakh card transfer's)
--   const          wire values always sent, in order: { {"query.x", v}, {"body.a.b", v} }
--   auth           "p2p" for calls that QIWI authorises with the P2P secret key
--   raw            answer is bytes (receipt files), returned with its content type
--   rate           "history" for calls under QIWI's 100-per-minute history limit
--   idempotent     a non-GET call that may be repeated safely (its id is fixed)
local P = {}

P.profile = {
  method = "GET", path = "/person-profile/v1/profile/current", args = { "opts" },
  params = {
    { "auth_info", "authInfoEnabled", "query", "boolean" },
    { "contract_info", "contractInfoEnabled", "query", "boolean" },
    { "user_info", "userInfoEnabled", "query", "boolean" },
  },
}

P.identification = {
  method = "GET", path = "/identification/v1/persons/{w}/identification",
}

P.identify = {
  method = "POST", path = "/identification/v1/persons/{w}/identification", args = { "opts" },
  params = {
    { "birth_date", "birthDate", "body", "day", required = true },
    { "first_name", "firstName", "body", "string", required = true, spec = { max = 100 } },
    { "middle_name", "middleName", "body", "string", spec = { max = 100, empty = true } },
    { "last_name", "lastName", "body", "string", required = true, spec = { max = 100 } },
    { "passport", "passport", "body", "digits", required = true, spec = { min = 6, max = 12 } },
    { "inn", "inn", "body", "digits", default = "", spec = { max = 12 }, empty = true },
    { "snils", "snils", "body", "digits", default = "", spec = { max = 11 }, empty = true },
    { "oms", "oms", "body", "digits", default = "", spec = { max = 16 }, empty = true },
  },
}

local LIMIT_TYPES = { "REFILL", "TURNOVER", "PAYMENTS_P2P", "PAYMENTS_PROVIDER_INTERNATIONALS",
                      "PAYMENTS_PROVIDER_PAYOUT", "WITHDRAW_CASH" }

P.limits = {
  method = "GET", path = "/qw-limits/v1/persons/{w}/actual-limits", args = { "types" },
  params = {
    { "types", "types", "query", "enum_list", list = true, default = LIMIT_TYPES,
      spec = { values = LIMIT_TYPES } },
  },
}

P.p2p_count_limit = { method = "GET", path = "/qw-limits/v1/persons/{w}/p2p-payment-count-limit" }

P.restrictions = { method = "GET", path = "/person-profile/v1/persons/{w}/status/restrictions" }

local OPERATIONS = { "ALL", "IN", "OUT", "QIWI_CARD" }
local SOURCES = { "QW_RUB", "QW_USD", "QW_EUR", "CARD", "MK" }

P.history = {
  method = "GET", path = "/payment-history/v2/persons/{w}/payments", args = { "opts" },
  rate = "history",
  params = {
    { "rows", "rows", "query", "integer", default = 50, spec = { min = 1, max = 50 } },
    { "operation", "operation", "query", "enum", spec = { values = OPERATIONS } },
    { "sources", "sources", "query", "enum_list", list = true, spec = { values = SOURCES } },
    { "start_date", "startDate", "query", "date", with = "end_date", max_span = 90 * 86400 },
    { "end_date", "endDate", "query", "date", with = "start_date" },
    { "next_txn_id", "nextTxnId", "query", "digits", with = "next_txn_date" },
    { "next_txn_date", "nextTxnDate", "query", "date", with = "next_txn_id" },
  },
}

P.history_total = {
  method = "GET", path = "/payment-history/v2/persons/{w}/payments/total", args = { "opts" },
  rate = "history",
  params = {
    { "start_date", "startDate", "query", "date", required = true, with = "end_date", max_span = 90 * 86400 },
    { "end_date", "endDate", "query", "date", required = true, with = "start_date" },
    { "operation", "operation", "query", "enum", spec = { values = OPERATIONS } },
    { "sources", "sources", "query", "enum_list", list = true, spec = { values = SOURCES } },
  },
}

local TXN_TYPES = { values = { "IN", "OUT", "QIWI_CARD" } }

P.transaction = {
  method = "GET", path = "/payment-history/v2/transactions/{txn_id}", args = { "txn_id", "type" },
  rate = "history",
  params = {
    { "txn_id", "txn_id", "path", "digits", required = true },
    { "type", "type", "query", "enum", spec = TXN_TYPES },
  },
}

P.accounts = { method = "GET", path = "/funding-sources/v2/persons/{w}/accounts" }

-- The repeat that QIWI asks for when an account answers hasBalance=true, balance=null.
P.account_balance = {
  method = "GET", path = "/funding-sources/v2/persons/{w}/accounts", args = { "alias" },
  const = { { "query.timeout", "1000" } },
  params = { { "alias", "alias", "query", "string", required = true, spec = { max = 64 } } },
}

P.request_identification_downgrade = {
  method = "POST", path = "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations",
  args = { "opts" },
  params = {
    -- QIWI allows only VERIFIED today; other levels are refused before sending.
    { "identification_level", "identificationLevel", "body", "enum", default = "VERIFIED",
      spec = { values = { "VERIFIED" } } },
  },
}

P.confirm_identification_downgrade = {
  method = "PUT", args = { "operation_id" }, body = "object",
  path = "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations/{operation_id}/confirm",
  params = { { "operation_id", "operation_id", "path", "uuid", required = true } },
}

P.identification_downgrade = {
  method = "GET", args = { "operation_id" },
  path = "/qw-ident-downgrade-api/v1/persons/{w}/identification-downgrade/operations/{operation_id}",
  params = { { "operation_id", "operation_id", "path", "uuid", required = true } },
}

P.receipt = {
  method = "GET", path = "/payment-history/v1/transactions/{txn_id}/cheque/file", args = { "txn_id", "opts" },
  rate = "history", -- a /payment-history/ service: counted against the same limit
  raw = true,
  params = {
    { "txn_id", "txn_id", "path", "digits", required = true },
    { "type", "type", "query", "enum", required = true, spec = TXN_TYPES },
    { "format", "format", "query", "enum", default = "PDF", spec = { values = { "PDF", "JPEG" } } },
  },
}

P.send_receipt = {
  method = "POST", path = "/payment-history/v1/transactions/{txn_id}/cheque/send", args = { "txn_id", "opts" },
  rate = "history", -- a /payment-history/ service: counted against the same limit
  params = {
    { "txn_id", "txn_id", "path", "digits", required = true },
    { "type", "type", "query", "enum", required = true, spec = TXN_TYPES },
    { "email", "email", "body", "email", required = true },
  },
}

local ALIAS = { max = 64, pattern = "^[%w_%-]+$", pattern_message = "must be an account alias like qw_wallet_usd" }

P.create_account = {
  method = "POST", path = "/funding-sources/v2/persons/{w}/accounts", args = { "alias" },
  params = { { "alias", "alias", "body", "string", required = true, spec = ALIAS } },
}

P.account_offers = { method = "GET", path = "/funding-sources/v2/persons/{w}/accounts/offer" }

P.set_default_account = {
  method = "PATCH", path = "/funding-sources/v2/persons/{w}/accounts/{alias}", args = { "alias" },
  const = { { "body.defaultAccount", true } },
  params = { { "alias", "alias", "path", "string", required = true, spec = ALIAS } },
}

local PAYMENT_METHOD = { { "body.paymentMethod.type", "Account" }, { "body.paymentMethod.accountId", "643" } }

P.commission = {
  method = "POST", path = "/sinap/providers/{provider_id}/onlineCommission", args = { "provider_id", "opts" },
  const = PAYMENT_METHOD,
  params = {
    { "provider_id", "provider_id", "path", "digits", required = true, spec = { max = 10 } },
    { "account", "account", "body", "string", required = true, spec = { max = 100 } },
    { "amount", "purchaseTotals.total.amount", "body", "amount", required = true },
    { "currency", "purchaseTotals.total.currency", "body", "currency", default = "643", as = "string" },
  },
}

-- Every payment goes through this row; the helpers below fill its fields.
-- idempotent: a retry re-sends the same client id, which QIWI answers with
-- the first payment instead of paying again.
P.pay = {
  method = "POST", path = "/sinap/api/v2/terms/{provider_id}/payments", args = { "provider_id", "opts" },
  idempotent = true, const = PAYMENT_METHOD, payment = true,
  params = {
    { "provider_id", "provider_id", "path", "digits", required = true, spec = { max = 10 } },
    { "id", "id", "body", "digits", generate = "id", spec = { max = 20 } },
    -- not on the wire: the id derives from it (qiwi.ids.derived)
    { "idempotency_key", nil, "none", "idempotency_key" },
    { "amount", "sum.amount", "body", "amount", required = true },
    { "currency", "sum.currency", "body", "currency", default = "643", as = "string" },
    { "fields", "fields", "body", "fields", merge = true },
    { "account", "fields.account", "body", "string", spec = { max = 100 } },
    { "comment", "comment", "body", "string", spec = { max = 500, empty = true } },
  },
  requires = { "fields.account" },
}

P.detect_mobile = {
  method = "GET", path = "/qw-mobile-providers-resolver/v1/providers", args = { "phone" },
  params = { { "phone", "phoneNumber", "query", "phone", required = true } },
}

P.detect_card = {
  method = "POST", path = "/sinap/api/refs/bd6fb248-2bdf-49ed-bcb2-9b0a789cfde8/containers", args = { "card" },
  accept = "application/vnd.qiwi.v1+json",
  params = { { "card", "account", "body", "card_spaced", required = true } },
}

-- Transfer to a Kazakh bank card (payment_ru #cards-kzt): this preparation
-- request (#prepare-card-kzt-transfer) gives the card's account and
-- ev_account1 for the payment (qiwi.payments, pay_card_kzt). Both steps go
-- with the browser's sec-fetch lines and the Accept the page shows. A
-- lookup that moves no money: safe to repeat.
local SEC_FETCH = { "sec-fetch-site: same-site", "sec-fetch-mode: cors", "sec-fetch-dest: empty" }

P.prepare_card_kzt = {
  method = "POST", path = "/sinap/api/refs/a42ebc79-0584-4271-b8a0-15cb4ea8b340/containers", args = { "card" },
  accept = "application/vnd.qiwi.v1+json", headers = SEC_FETCH, idempotent = true,
  const = { { "body.version", "2" }, { "body.transferSum", "100" }, { "body.src", "sinap" } },
  params = { { "card", "cardNumber", "body", "card", required = true } },
}

P.cross_rates = { method = "GET", path = "/sinap/crossRates" }

P.search_providers = {
  method = "GET", path = "/search/v1/search", args = { "query" },
  params = { { "query", "query", "query", "string", required = true, spec = { max = 200 } } },
}

P.nickname = { method = "GET", path = "/qw-nicknames/v1/persons/{w}/nickname" }

P.create_p2p_keys = {
  method = "POST", path = "/widgets-api/api/p2p/protected/keys/create", args = { "opts" },
  params = {
    { "name", "keysPairName", "body", "string", required = true, spec = { max = 100 } },
    { "notifications_url", "serverNotificationsUrl", "body", "url", spec = { max = 2000 } },
  },
}

P.bills = {
  method = "GET", path = "/checkout-api/api/bill/search", args = { "opts" }, auth = "p2p",
  const = { { "query.statuses", "READY_FOR_PAY" } },
  params = {
    { "rows", "rows", "query", "integer", default = 50, spec = { min = 1, max = 50 } },
    { "min_creation", "min_creation_datetime", "query", "unix_ms" },
    { "max_creation", "max_creation_datetime", "query", "unix_ms" },
    { "next_id", "next_id", "query", "digits" },
    { "next_creation", "next_creation_datetime", "query", "unix_ms" },
  },
}

P.pay_bill = {
  method = "POST", path = "/checkout-api/invoice/pay/wallet", args = { "bill_id", "currency" }, auth = "p2p",
  params = {
    { "bill_id", "invoice_uid", "body", "digits", required = true },
    { "currency", "currency", "body", "currency", default = "643", as = "string" },
  },
}

P.reject_bill = {
  method = "POST", path = "/checkout-api/api/bill/reject", args = { "bill_id" }, auth = "p2p",
  params = { { "bill_id", "id", "body", "bill_id", required = true } },
}

P.register_webhook = {
  method = "PUT", path = "/payment-notifier/v1/hooks", args = { "url", "txn_type" },
  const = { { "query.hookType", "1" } },
  params = {
    -- QIWI counts the URL before encoding and refuses more than 100 characters.
    { "url", "param", "query", "url", required = true, spec = { max = 100 } },
    { "txn_type", "txnType", "query", "enum", default = "BOTH",
      spec = { values = { "IN", "OUT", "BOTH" }, wire = { IN = "0", OUT = "1", BOTH = "2" },
               numbers = { [0] = "IN", [1] = "OUT", [2] = "BOTH" }, case_insensitive = true } },
  },
}

local HOOK = { { "hook_id", "hook_id", "path", "uuid", required = true } }

P.delete_webhook = { method = "DELETE", path = "/payment-notifier/v1/hooks/{hook_id}", args = { "hook_id" }, params = HOOK }
P.webhook_key = { method = "GET", path = "/payment-notifier/v1/hooks/{hook_id}/key", args = { "hook_id" }, params = HOOK }
P.new_webhook_key = { method = "POST", path = "/payment-notifier/v1/hooks/{hook_id}/newkey", args = { "hook_id" }, params = HOOK }
P.active_webhook = { method = "GET", path = "/payment-notifier/v1/hooks/active" }
P.test_webhook = { method = "GET", path = "/payment-notifier/v1/hooks/test" }

local CARD_ID = { "card_id", "card_id", "path", "digits", required = true }

P.master_cards = {
  method = "GET", path = "/cards/v1/cards", const = { { "query.vas-alias", "qvc-master" } },
}
P.block_card = { method = "PUT", path = "/cards/v2/persons/{w}/cards/{card_id}/block", args = { "card_id" },
                 params = { CARD_ID } }
P.unblock_card = { method = "PUT", path = "/cards/v2/persons/{w}/cards/{card_id}/unblock", args = { "card_id" },
                   params = { CARD_ID } }
P.card_details = {
  method = "PUT", path = "/cards/v1/cards/{card_id}/details", args = { "card_id", "operation_id" },
  params = { CARD_ID, { "operation_id", "operationId", "body", "uuid", generate = "uuid" } },
}
P.rename_card = {
  method = "PUT", path = "/cards/v1/cards/{card_id}/alias", args = { "card_id", "alias" },
  params = { CARD_ID, { "alias", "alias", "body", "string", required = true, spec = { max = 64 } } },
}
P.card_statement = {
  method = "GET", path = "/payment-history/v1/persons/{w}/cards/{card_id}/statement", args = { "card_id", "opts" },
  rate = "history", -- a /payment-history/ service: counted against the same limit
  raw = true,
  params = {
    CARD_ID,
    { "from", "from", "query", "date", required = true, with = "till", max_span = 366 * 86400 },
    { "till", "till", "query", "date", required = true, with = "from" },
  },
}
P.order_card = {
  method = "POST", path = "/cards/v2/persons/{w}/orders", args = { "card_alias" },
  params = { { "card_alias", "cardAlias", "body", "enum", default = "qvc-cpa",
               spec = { values = { "qvc-cpa", "qvc-cpa-debit" } } } },
}
P.submit_card_order = {
  method = "PUT", path = "/cards/v2/persons/{w}/orders/{order_id}/submit", args = { "order_id" },
  params = { { "order_id", "order_id", "path", "uuid", required = true } },
}

return P
