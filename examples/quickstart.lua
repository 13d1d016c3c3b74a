-- Quick start: the profile, the balances and the last payments of a wallet.
--
--   QIWI_TOKEN=… QIWI_WALLET=79… lua5.4 examples/quickstart.lua   (the real API)
--   lua5.4 examples/quickstart.lua                                (the built-in fake)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath

local qiwi = require "qiwi"

local token = os.getenv("QIWI_TOKEN")
local client, err
if token and token ~= "" then
  client, err = qiwi.new { token = token, wallet = os.getenv("QIWI_WALLET") }
  print("Talking to the real QIWI API")
else
  local fake = qiwi.fake.new { token = "demo-token", wallet = "79111234567", balance = "15320.75",
                               history_pages = 1, history_rows = 20 }
  client, err = qiwi.new { token = "demo-token", transport = fake:transport() }
  print("QIWI_TOKEN is not set: using the built-in fake QIWI (qiwi.fake)")
end
if not client then
  io.stderr:write("cannot create the client: ", tostring(err), "\n")
  os.exit(1)
end

local function die(e)
  io.stderr:write("error: ", tostring(e), "\n")
  os.exit(1)
end

local profile, perr = client:profile()
if not profile then die(perr) end
local auth, contract = profile.authInfo or {}, profile.contractInfo or {}
local level = "?"
for _, ident in ipairs(contract.identificationInfo or {}) do
  if ident.bankAlias == "QIWI" then level = ident.identificationLevel end
end
print()
print(string.format("Wallet      +%s", tostring(auth.personId or contract.contractId)))
print(string.format("Registered  %s", tostring(auth.registrationDate)))
print(string.format("Status      %s%s", level, contract.blocked and " (blocked)" or ""))

local CURRENCY = { [643] = "RUB", [840] = "USD", [978] = "EUR", [398] = "KZT" }

local accounts, aerr = client:accounts()
if not accounts then die(aerr) end
print()
print("Balances")
for _, acc in ipairs(accounts.accounts) do
  if acc.hasBalance and acc.balance ~= qiwi.null then
    print(string.format("  %-16s %14.2f %s%s", acc.alias, acc.balance.amount,
      CURRENCY[acc.balance.currency] or tostring(acc.balance.currency), acc.defaultAccount and "  (default)" or ""))
  end
end

-- Pads or cuts to a width in characters, not bytes (names are often Cyrillic).
local function fit(s, width)
  s = tostring(s or "")
  local chars = {}
  for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do chars[#chars + 1] = ch end
  if #chars > width then
    return table.concat(chars, "", 1, width - 1) .. "…"
  end
  return s .. string.rep(" ", width - #chars)
end

local page, herr = client:history { rows = 10 }
if not page then die(herr) end
print()
print("Last payments")
for _, p in ipairs(page.data) do
  local sign = p.type == "IN" and "+" or "-"
  local who = type(p.provider) == "table" and p.provider.shortName or ""
  print(string.format("  %s  %s%10.2f %s  %-8s %s %s", p.date, sign, p.total.amount,
    CURRENCY[p.total.currency] or "", p.status, fit(who, 22), p.account ~= qiwi.null and p.account or ""))
end
client:close()
