---@meta
--- The wallet client that `qiwi.new` returns (LuaLS definitions; see types/qiwi.lua).
-- Every method returns `result, err`: the decoded answer (QIWI's own keys)
-- or `true` for an answer without a body, else `nil` and a `qiwi.Error`.
-- A bad argument is kind "argument" and nothing is sent. `{w}` is the
-- client's wallet.
-- @module qiwi.client

---@alias qiwi.Result table|boolean|nil the decoded answer, true for none, nil on failure

--- A client of the QIWI Wallet API.
---@class qiwi.Client
---@field wallet string|nil the person id, once known
---@field base_url string the base URL
---@field retries integer retries of safe requests
---@field timeout number seconds for a whole call
local Client = {}

--- The profile [GET /person-profile/v1/profile/current].
---@param opts? table {auth_info =, contract_info =, user_info =} booleans
---@return qiwi.Result profile
---@return qiwi.Error|nil err
function Client:profile(opts) end

--- The identification data [GET /identification/v1/persons/{w}/identification].
---@return qiwi.Result identification
---@return qiwi.Error|nil err
function Client:identification() end

--- Sends identification data [POST /identification/v1/persons/{w}/identification].
---@param opts table {birth_date =, first_name =, middle_name =, last_name =, passport =, inn =, snils =, oms =}
---@return qiwi.Result identification
---@return qiwi.Error|nil err
function Client:identify(opts) end

--- The wallet's limits [GET /qw-limits/v1/persons/{w}/actual-limits].
---@param types? string[] limit type names, default all six
---@return qiwi.Result limits
---@return qiwi.Error|nil err
function Client:limits(types) end

--- The monthly count of P2P payments [GET /qw-limits/v1/persons/{w}/p2p-payment-count-limit].
---@return qiwi.Result limit
---@return qiwi.Error|nil err
function Client:p2p_count_limit() end

--- The wallet's restrictions [GET /person-profile/v1/persons/{w}/status/restrictions].
---@return qiwi.Result restrictions
---@return qiwi.Error|nil err
function Client:restrictions() end

--- Asks to lower the identification level.
---@param opts? table {identification_level = "VERIFIED"}
---@return qiwi.Result operation
---@return qiwi.Error|nil err
function Client:request_identification_downgrade(opts) end

--- Confirms a downgrade operation.
---@param operation_id string the operation's id
---@return qiwi.Result operation
---@return qiwi.Error|nil err
function Client:confirm_identification_downgrade(operation_id) end

--- The state of a downgrade operation.
---@param operation_id string the operation's id
---@return qiwi.Result operation
---@return qiwi.Error|nil err
function Client:identification_downgrade(operation_id) end

--- One page of the payment history [GET /payment-history/v2/persons/{w}/payments].
---@param opts table {rows =, operation =, sources =, start_date =, end_date =, next_txn_id =, next_txn_date =}
---@return qiwi.Result page
---@return qiwi.Error|nil err
function Client:history(opts) end

--- Every payment, fetching pages as needed: `for payment, err in client:payments(opts) do`.
-- On failure it yields `nil, err` once.
---@param opts? table the options of history, without the cursor
---@return fun(): table|nil, qiwi.Error|nil iterator
function Client:payments(opts) end

--- Totals of a period [GET /payment-history/v2/persons/{w}/payments/total].
---@param opts table {start_date =, end_date =, operation =, sources =}
---@return qiwi.Result totals
---@return qiwi.Error|nil err
function Client:history_total(opts) end

--- One transaction [GET /payment-history/v2/transactions/{id}].
---@param txn_id integer|string the transaction id
---@param type? "IN"|"OUT" its direction
---@return qiwi.Result transaction
---@return qiwi.Error|nil err
function Client:transaction(txn_id, type) end

--- A receipt's file [GET /payment-history/v1/transactions/{id}/cheque/file].
---@param txn_id integer|string the transaction id
---@param opts table {type =, format = "PDF"|"JPEG"}
---@return string|nil bytes the file
---@return string|qiwi.Error content_type its content type, or the error
function Client:receipt(txn_id, opts) end

--- Mails a receipt [POST /payment-history/v1/transactions/{id}/cheque/send].
---@param txn_id integer|string the transaction id
---@param opts table {type =, email =}
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:send_receipt(txn_id, opts) end

--- The balances [GET /funding-sources/v2/persons/{w}/accounts]; a balance
-- answered as null is asked again on its own.
---@return qiwi.Result accounts
---@return qiwi.Error|nil err
function Client:accounts() end

--- One account's balance [GET …/accounts?timeout=1000&alias=].
---@param alias string the account's alias
---@return qiwi.Result accounts
---@return qiwi.Error|nil err
function Client:account_balance(alias) end

--- Opens an account [POST /funding-sources/v2/persons/{w}/accounts].
---@param alias string the account's alias, e.g. "qw_wallet_usd"
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:create_account(alias) end

--- The accounts that can be opened [GET …/accounts/offer].
---@return qiwi.Result offers
---@return qiwi.Error|nil err
function Client:account_offers() end

--- Makes an account the default [PATCH …/accounts/{alias}].
---@param alias string the account's alias
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:set_default_account(alias) end

--- The commission of a payment [POST /sinap/providers/{id}/onlineCommission].
---@param provider_id integer|string the provider
---@param opts table {account =, amount =}
---@return qiwi.Result commission
---@return qiwi.Error|nil err
function Client:commission(provider_id, opts) end

--- A payment to a provider [POST /sinap/api/v2/terms/{id}/payments]; the
-- answer is checked against what was asked (`replayed = true` on a faithful repeat).
---@param provider_id integer|string the provider
---@param opts table {account =, amount =, currency = 643, fields =, comment =, id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:pay(provider_id, opts) end

--- A transfer to a QIWI wallet (provider 99).
---@param opts table {to =, amount =, comment =, id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:transfer(opts) end

--- A conversion between the wallet's accounts (provider 1099).
---@param opts table {to =, amount =, currency =, id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:convert(opts) end

--- Pays a mobile phone: finds the operator, then pays.
---@param opts table {phone =, amount =, id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:pay_mobile(opts) end

--- The first step of pay_card_kzt: what QIWI answers for a Kazakhstan card.
---@param card string the card number
---@return qiwi.Result prepared
---@return qiwi.Error|nil err
function Client:prepare_card_kzt(card) end

--- Pays a bank card: finds its provider, then pays.
---@param opts table {card =, amount =, fields =, id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:pay_card(opts) end

--- A transfer to a Kazakhstan card (provider 27292, KZT).
---@param opts table {card =, amount =, id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:pay_card_kzt(opts) end

--- A transfer to a bank account or card by provider.
---@param provider_id integer|string the bank's provider
---@param opts table {account =, amount =, account_type =, exp_date =, mfo =, lname =, fname =, mname =, urgent =, id =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:bank_transfer(provider_id, opts) end

--- A payment by requisites (provider 1717).
---@param opts table the fields of provider 1717, amount =, id =
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:pay_by_requisites(opts) end

--- The operator of a phone [GET /qw-mobile-providers-resolver/v1/providers].
---@param phone string|integer the phone number
---@return qiwi.Result provider
---@return qiwi.Error|nil err
function Client:detect_mobile(phone) end

--- The provider of a card number [POST /sinap/api/refs/…/containers].
---@param card string the card number
---@return qiwi.Result provider
---@return qiwi.Error|nil err
function Client:detect_card(card) end

--- The conversion rates [GET /sinap/crossRates].
---@return qiwi.Result rates
---@return qiwi.Error|nil err
function Client:cross_rates() end

--- Searches providers [GET /search/v1/search].
---@param query string the text searched
---@return qiwi.Result providers
---@return qiwi.Error|nil err
function Client:search_providers(query) end

--- The wallet's nickname [GET /qw-nicknames/v1/persons/{w}/nickname].
---@return qiwi.Result nickname
---@return qiwi.Error|nil err
function Client:nickname() end

--- Creates a P2P key pair [POST /widgets-api/api/p2p/protected/keys/create].
---@param opts table {name =, notifications_url =}
---@return qiwi.Result keys
---@return qiwi.Error|nil err
function Client:create_p2p_keys(opts) end

--- The unpaid invoices [GET /checkout-api/api/bill/search].
---@param opts? table {rows =, min_creation =, max_creation =, next_id =, next_creation =}
---@return qiwi.Result bills
---@return qiwi.Error|nil err
function Client:bills(opts) end

--- Pays an invoice [POST /checkout-api/invoice/pay/wallet].
---@param bill_id integer|string the invoice
---@param currency? integer|string its currency
---@return qiwi.Result result
---@return qiwi.Error|nil err
function Client:pay_bill(bill_id, currency) end

--- Rejects an invoice [POST /checkout-api/api/bill/reject].
---@param bill_id integer|string the invoice
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:reject_bill(bill_id) end

--- Registers a webhook [PUT /payment-notifier/v1/hooks].
---@param url string the HTTPS URL notified
---@param txn_type "IN"|"OUT"|"BOTH"|0|1|2 which payments
---@return qiwi.Result hook
---@return qiwi.Error|nil err
function Client:register_webhook(url, txn_type) end

--- Deletes a webhook.
---@param hook_id string the hook
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:delete_webhook(hook_id) end

--- A webhook's signing key (base64).
---@param hook_id string the hook
---@return qiwi.Result key
---@return qiwi.Error|nil err
function Client:webhook_key(hook_id) end

--- A new signing key for a webhook.
---@param hook_id string the hook
---@return qiwi.Result key
---@return qiwi.Error|nil err
function Client:new_webhook_key(hook_id) end

--- The active webhook.
---@return qiwi.Result hook
---@return qiwi.Error|nil err
function Client:active_webhook() end

--- Asks QIWI to send a test notification.
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:test_webhook() end

--- The QIWI Master cards.
---@return qiwi.Result cards
---@return qiwi.Error|nil err
function Client:master_cards() end

--- Blocks a card.
---@param card_id string|integer the card
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:block_card(card_id) end

--- Unblocks a card.
---@param card_id string|integer the card
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:unblock_card(card_id) end

--- A card's requisites.
---@param card_id string|integer the card
---@param operation_id string a fresh operation id
---@return qiwi.Result details
---@return qiwi.Error|nil err
function Client:card_details(card_id, operation_id) end

--- Renames a card.
---@param card_id string|integer the card
---@param alias string the new name
---@return qiwi.Result ok
---@return qiwi.Error|nil err
function Client:rename_card(card_id, alias) end

--- A card's statement.
---@param card_id string|integer the card
---@param opts table {from =, till =}
---@return qiwi.Result statement
---@return qiwi.Error|nil err
function Client:card_statement(card_id, opts) end

--- Starts a card order.
---@return qiwi.Result order
---@return qiwi.Error|nil err
function Client:order_card() end

--- Submits a card order.
---@param order_id string the order
---@return qiwi.Result order
---@return qiwi.Error|nil err
function Client:submit_card_order(order_id) end

--- Pays for a card order (provider 32064).
---@param order_id string the order
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:buy_card(order_id) end

--- Buys the QIWI Master package (provider 28004).
---@param opts? table {id =, idempotency_key =}
---@return qiwi.Result payment
---@return qiwi.Error|nil err
function Client:buy_master_package(opts) end

--- Runs many calls at once: one `{value1, value2, n = 2}` per call, in order.
---@param calls table[] each {"method_name", arg1, ...}
---@param opts? table {concurrency = 64}
---@return table[]|nil results
---@return qiwi.Error|nil err for bad calls or opts as a whole
function Client:batch(calls, opts) end

--- Options of `client:watch` (README: "Incoming payments").
---@class qiwi.WatchOptions
---@field on_payment fun(payment: table, source: "poll"|"webhook"): boolean|nil required; false or an error: again later
---@field operation? "IN"|"OUT"|"QIWI_CARD"|"ALL" default "IN"
---@field statuses? string[] handed over when the status first enters these; default {"SUCCESS"}
---@field since? string|integer seeds a new cursor (inclusive); an existing one is never moved
---@field interval? number seconds between rounds of run/start (10)
---@field store? table a qiwi.store for the cursor, lease and deliveries (default: the client's)
---@field name? string keeps streams apart in one store ("default")
---@field lease? number seconds one poller holds the wallet and name (3 x interval)
---@field claim? number seconds a delivery in progress is held (120)
---@field ttl? number seconds deliveries are remembered (91 days)
---@field max_pending? integer payments behind the cursor kept for later (200)
---@field recheck? number seconds between asks for a WAITING payment behind the cursor (60)
---@field clock? fun(): integer unix seconds (os.time)
---@field sleep? fun(seconds: number) waits of run (ngx.sleep in nginx, else the core's)

--- A watcher of incoming payments, polling the history from a durable cursor.
---@param opts qiwi.WatchOptions
---@return qiwi.Watcher|nil watcher
---@return qiwi.Error|nil err
function Client:watch(opts) end

--- Closes the client's connections; it reconnects on its next call.
---@return nil
function Client:close() end

--- What `client:watch` returns.
---@class qiwi.Watcher
---@field active boolean whether this watcher held the lease in its last round
---@field stats {rounds: integer, delivered: integer, failed: integer, expired: integer, errors: integer}
local Watcher = {}

--- One round: the number of payments delivered.
---@return integer|nil delivered
---@return qiwi.Error|nil err a failed round moves nothing
function Watcher:poll() end

--- Polls in a loop (plain Lua), backing off on errors.
---@param opts? table {rounds =, duration =}
---@return integer|nil delivered the total
---@return qiwi.Error|nil err
function Watcher:run(opts) end

--- Inside nginx: polls on a timer.
---@return boolean|nil ok
---@return qiwi.Error|nil err
function Watcher:start() end

--- Stops the timer of start.
---@return boolean ok
function Watcher:stop() end

--- Gives up the watcher's lease in the store.
---@return boolean|nil ok
---@return qiwi.Error|nil err
function Watcher:release() end
