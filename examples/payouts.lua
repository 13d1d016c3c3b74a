-- Payouts with idempotency keys: each payout is keyed by its order number,
-- so running the script again (after a crash, a timeout, a deploy) pays
-- nothing twice: QIWI answers a repeated payment id with the payment made
-- earlier, and the id is derived from the wallet and the key in every
-- process and on every host.
--
--   QIWI_TOKEN=… QIWI_WALLET=79… lua5.4 examples/payouts.lua   (the real API: real money!)
--   lua5.4 examples/payouts.lua                                (the built-in fake)
--
-- QIWI_BASE_URL and QIWI_CA_FILE point it at another server (`qiwi fake`):
-- run it twice there and the fake's wallet is paid from once.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath

local qiwi = require "qiwi"

-- In a real shop these come from the orders table.
local PAYOUTS = {
  { order = "2024-05-0001", to = "+79990001122", amount = "150.00", comment = "refund, order 0001" },
  { order = "2024-05-0002", to = "+79990003344", amount = "99.90", comment = "cashback, order 0002" },
  { order = "2024-05-0003", to = "+79990005566", amount = 1200, comment = "payout, order 0003" },
}

local token = os.getenv("QIWI_TOKEN")
local client, err, runs
if token and token ~= "" then
  client, err = qiwi.new { token = token, wallet = os.getenv("QIWI_WALLET"),
                           base_url = os.getenv("QIWI_BASE_URL"), ca_file = os.getenv("QIWI_CA_FILE") }
  runs = 1
else
  client, err = qiwi.new { token = "demo-token", transport = qiwi.fake.new { token = "demo-token", balance = 5000 } }
  -- the built-in fake lives as long as this process: the "second run" is
  -- made here, as a retry of the whole batch would be
  runs = 2
  print("QIWI_TOKEN is not set: paying into the built-in fake QIWI, twice over")
end
if not client then
  io.stderr:write("cannot create the client: ", tostring(err), "\n")
  os.exit(1)
end

local failed = 0
for run = 1, runs do
  if runs > 1 then print(("run %d"):format(run)) end
  for _, p in ipairs(PAYOUTS) do
    local res, perr = client:transfer { to = p.to, amount = p.amount, comment = p.comment,
                                        idempotency_key = "payout-" .. p.order }
    if res then
      print(("order %s: %s %s RUB to %s, txn %s%s"):format(p.order, res.transaction.state.code,
        tostring(p.amount), p.to, tostring(res.transaction.id),
        res.replayed and " (paid before: QIWI answered the earlier payment)" or ""))
    else
      -- nothing is retried blindly here: the same key later is safe, a new key is not
      failed = failed + 1
      print(("order %s: not paid: %s"):format(p.order, tostring(perr)))
    end
  end
end

local accounts = client:accounts()
for _, acc in ipairs(accounts and accounts.accounts or {}) do
  if acc.alias == "qw_wallet_rub" and type(acc.balance) == "table" then
    print(("balance now %.2f RUB"):format(acc.balance.amount))
  end
end
client:close()
os.exit(failed == 0 and 0 or 1)
