---@meta
--- qiwi.fake: an in-process, stateful emulator of QIWI for tests (LuaLS definitions).
-- Usable as a client's `transport`; lua/qiwi/fake/README.md has the details.
-- Unlike the client, the fake raises for a malformed helper call: it is a
-- test's tool, and a test's mistake should stop it.
-- @module qiwi.fake

---@class qiwi.fake
qiwi.fake = {}

--- Makes a fake QIWI.
---@param opts? table {token =, wallet =, balance =, history_rows =, clock =, sleep =, p2p_secret_key =, ...}
---@return qiwi.Fake fake
function qiwi.fake.new(opts) end

--- A fake QIWI. Its logs: `requests`, `notifications`, `sent_cheques`, `errors`.
---@class qiwi.Fake
---@field requests table[] every request, oldest first
---@field notifications table[] webhook notifications it would have sent
local Fake = {}

--- A transport for the client's `transport` option.
---@return table transport an object with request and close
function Fake:transport() end

--- The transport contract, served by the fake itself.
---@param method string
---@param url string
---@param headers string[] "Name: value" lines
---@param body? string the request body
---@param timeout? number seconds
---@return integer|nil status
---@return string body_or_kind the body, or the failure's kind
---@return table|string headers_or_message the answer's headers, or the failure's message
function Fake:request(method, url, headers, body, timeout) end

--- Serves one request table {method =, path =, query =, headers =, body =}.
---@param req table the request
---@return integer status
---@return table headers
---@return string body
function Fake:handle(req) end

--- Back to the seeded state; the logs emptied in place.
---@return true ok
function Fake:reset() end

--- Sets a balance, creating the account when missing.
---@param key string|integer an alias, a currency code (643) or name ("USD")
---@param amount number|string the balance
---@return true ok
function Fake:set_balance(key, amount) end

--- A balance in currency units.
---@param key? string|integer default RUB
---@return number|nil balance
function Fake:balance(key) end

--- A balance in kopecks/cents.
---@param key? string|integer default RUB
---@return integer|nil kopecks
function Fake:balance_kopecks(key) end

--- While on, the accounts list shows `balance: null` for the alias.
---@param alias string the account
---@param on boolean
---@return true ok
function Fake:set_null_balance(alias, on) end

--- The alias of the default account.
---@return string alias
function Fake:default_account() end

--- Adds a payment to the history (moving the balance for SUCCESS; notifies the webhook).
---@param spec table {amount =, type = "IN", currency = 643, commission = 0, provider =, account =, comment =, status = "SUCCESS", date =, txn_id =, update_balance =}
---@return integer txn_id
function Fake:add_payment(spec) end

--- Money arrives: an incoming payment in the history, the webhook notified.
---@param spec table {from =, amount =, currency =, comment =, status = "SUCCESS", date =, provider = 7, txn_id =}
---@return integer txn_id
function Fake:receive(spec) end

--- Changes a payment's status (WAITING -> SUCCESS, ...).
---@param txn_id integer the payment
---@param status string the new status
---@return true|nil ok
---@return string|nil why not
function Fake:set_status(txn_id, status) end

--- A stored payment record (a copy).
---@param txn_id integer the payment
---@return table|nil record
function Fake:payment(txn_id) end

--- Every record, newest first (copies).
---@return table[] records
function Fake:history() end

--- The PaymentInfo answered for a client payment id.
---@param id string|integer the client id
---@return table|nil payment
function Fake:payment_by_client_id(id) end

--- The next matching request(s) fail as told.
---@param spec table {status =, body =, headers =, count = 1, path_pattern =, method =, delay_ms =, drop =, reset =, truncate =, ...}
---@return true ok
function Fake:fail_next(spec) end

--- Forgets every fault of fail_next.
---@return true ok
function Fake:clear_faults() end

--- Every answer is late by ms.
---@param ms number milliseconds
---@return true ok
function Fake:set_delay(ms) end

--- Lifts a 423 block of the history rate limit.
---@return true ok
function Fake:reset_rate_limit() end

--- Restricts outgoing payments, or lifts it.
---@param on boolean
---@return true ok
function Fake:set_restricted(on) end

--- Sets the wallet's nickname.
---@param nick string|nil
---@return true ok
function Fake:set_nickname(nick) end

--- Sets the identification level.
---@param level string "ANONYMOUS", "SIMPLE", "VERIFIED", "FULL"
---@return true ok
function Fake:set_identification(level) end

--- The identification level.
---@return string level
function Fake:identification_level() end

--- Adds an unpaid invoice.
---@param spec table {amount =, currency = 643, comment =, external_id =, provider_id =, creation =, expiration =, id =}
---@return integer bill_id
function Fake:add_bill(spec) end

--- An invoice.
---@param id integer|string the bill
---@return table|nil bill
function Fake:bill(id) end

--- The P2P key pairs created through the API.
---@return table[] keys {name =, public =, secret =, url =}
function Fake:p2p_keys() end

--- The active webhook {id =, url =, txn_type =, key =}.
---@return table|nil hook
function Fake:webhook() end

--- The last webhook notification made.
---@return table|nil notification
function Fake:last_notification() end

--- The QIWI Master cards.
---@return table[] cards
function Fake:master_cards() end

--- Whether the QIWI Master package is active.
---@return boolean active
function Fake:master_active() end

--- Activates the QIWI Master package, or not.
---@param on boolean
---@return true ok
function Fake:set_master(on) end

--- A card order.
---@param id string the order
---@return table|nil order
function Fake:card_order(id) end

--- A P2P bill (api.qiwi.com) as the API shows it.
---@param id string the bill
---@return table|nil bill
function Fake:bill_p2p(id) end

--- Pays a WAITING P2P bill: the money arrives, the notification is made.
---@param id string the bill
---@return table|nil bill
---@return string|nil why not
function Fake:pay_bill_p2p(id) end

--- Where notifications of bills made with the fake's own key go.
---@param url string|nil nil: nowhere
---@return true ok
function Fake:set_p2p_notifications_url(url) end

--- The last P2P notification made.
---@return table|nil notification
function Fake:last_p2p_notification() end

--- The fake's clock.
---@return number time unix seconds
function Fake:now() end

--- Freezes the clock (nil: running again).
---@param t number|nil unix seconds
---@return number time
function Fake:set_time(t) end

--- Moves the clock forward.
---@param seconds number
---@return number time
function Fake:advance(seconds) end
