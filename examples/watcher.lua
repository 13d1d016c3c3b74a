-- Incoming payments, each handed over once, from a cursor that survives
-- restarts (a cron job, a crash): client:watch on a file store.
--
--   QIWI_TOKEN=… QIWI_WALLET=79… lua5.4 examples/watcher.lua [STORE_DIR]   (the real API, until Ctrl-C)
--   lua5.4 examples/watcher.lua [STORE_DIR]                                (the built-in fake, 3 rounds)
--
-- Run it twice with the same STORE_DIR: the second run hands over only what
-- came after the first (the cursor and the deliveries are in the store).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath

local qiwi = require "qiwi"

local dir = arg[1] or os.getenv("QIWI_WATCH_DIR") or "/tmp/lua-qiwi-watcher"
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
local store = assert(qiwi.store.file(dir))

local token = os.getenv("QIWI_TOKEN")
local client, err, fake
if token and token ~= "" then
  client, err = qiwi.new { token = token, wallet = os.getenv("QIWI_WALLET"), store = store }
  print("Talking to the real QIWI API; the cursor is in " .. dir)
else
  fake = qiwi.fake.new { token = "demo-token", wallet = "79111234567", history_rows = 5 }
  client, err = qiwi.new { token = "demo-token", transport = fake, store = store }
  print("QIWI_TOKEN is not set: using the built-in fake QIWI (qiwi.fake); the cursor is in " .. dir)
end
if not client then
  io.stderr:write("cannot create the client: ", tostring(err), "\n")
  os.exit(1)
end

local CURRENCY = { [643] = "RUB", [840] = "USD", [978] = "EUR", [398] = "KZT" }

local w, werr = client:watch {
  interval = fake and 0.2 or 10,
  -- a first run starts an hour back instead of "only what comes next"
  since = os.time() - 3600,
  on_payment = function(p, source)
    -- returning false (or raising) gets the payment again in a later round
    print(string.format("paid  %-25s %10.2f %s  from %-14s %-12s txn %s (%s)", p.date, p.sum.amount,
      CURRENCY[p.sum.currency] or tostring(p.sum.currency), p.account, string.format("%q", p.comment),
      tostring(p.txnId), source))
  end,
}
if not w then
  io.stderr:write("cannot watch: ", tostring(werr), "\n")
  os.exit(1)
end

if fake then
  -- money arrives while we watch: in the fake's history before each round
  -- (txn ids of this run's own: every run has a new fake, one store)
  local bytes = require("qiwi.core").random_bytes(3)
  local r = bytes:byte(1) * 65536 + bytes:byte(2) * 256 + bytes:byte(3)
  local n, base = 0, 30000000000 + r * 100
  local inner = w.sleep
  w.sleep = function(s)
    n = n + 1
    fake:receive { from = "7926100000" .. n, amount = 100 * n, comment = "order " .. n, txn_id = base + n }
    if n == 2 then
      local id = fake:receive { from = "79261000009", amount = 55.5, comment = "order 9", status = "WAITING",
                                txn_id = base + 9 }
      fake:set_status(id, "SUCCESS") -- handed over once it is SUCCESS
    end
    inner(s)
  end
  local total, rerr = w:run { rounds = 3 }
  print(string.format("%d payment(s) handed over in 3 rounds, %d handler failure(s)%s", total or 0,
    w.stats.failed, rerr and (": " .. tostring(rerr)) or ""))
else
  local total, rerr = w:run {}
  print(string.format("%d payment(s) handed over%s", total or 0, rerr and (": " .. tostring(rerr)) or ""))
end
