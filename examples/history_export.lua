-- History export: every payment of a period, page after page, as CSV.
--
--   QIWI_TOKEN=… lua5.4 examples/history_export.lua [DAYS] > payments.csv   (the real API)
--   lua5.4 examples/history_export.lua                                      (the built-in fake)
--
-- QIWI_WALLET, QIWI_BASE_URL and QIWI_CA_FILE are honoured too (a `qiwi fake`
-- server, for instance). The CSV goes to stdout, a count to stderr. The same
-- export from the shell: `qiwi history --from 2024-05-01 --csv payments.csv`.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath

local qiwi = require "qiwi"

local days = tonumber(arg[1] or "30")
if not days or days < 1 or days > 90 then
  io.stderr:write("DAYS must be 1 to 90 (QIWI keeps 90 days per request)\n")
  os.exit(2)
end

local token = os.getenv("QIWI_TOKEN")
local client, err
if token and token ~= "" then
  client, err = qiwi.new { token = token, wallet = os.getenv("QIWI_WALLET"),
                           base_url = os.getenv("QIWI_BASE_URL"), ca_file = os.getenv("QIWI_CA_FILE") }
else
  -- three pages of 25 payments, about an hour apart
  local fake = qiwi.fake.new { token = "demo-token", history_pages = 3, history_rows = 25 }
  client, err = qiwi.new { token = "demo-token", transport = fake }
  io.stderr:write("QIWI_TOKEN is not set: exporting the built-in fake's history\n")
end
if not client then
  io.stderr:write("cannot create the client: ", tostring(err), "\n")
  os.exit(1)
end

-- RFC 4180: quotes around a field with a comma, quote or line break.
local function field(v)
  local s = (v == nil or v == qiwi.null) and "" or tostring(v)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function amount(m)
  return type(m) == "table" and string.format("%.2f", m.amount) or ""
end

io.write("txnId,date,type,status,amount,currency,commission,total,account,comment\r\n")
local now = os.time()
-- rows = 25: the page size; the iterator fetches the next page when needed
local it, state = client:payments { rows = 25, start_date = now - days * 86400, end_date = now }
local n = 0
for p in it, state do
  n = n + 1
  io.write(table.concat({ field(p.txnId), field(p.date), field(p.type), field(p.status), amount(p.sum),
                          field(type(p.sum) == "table" and p.sum.currency), amount(p.commission), amount(p.total),
                          field(p.account), field(p.comment) }, ","), "\r\n")
end
if state.err then
  io.stderr:write("export stopped after ", n, " payments: ", tostring(state.err), "\n")
  os.exit(1)
end
io.stderr:write(("%d payments of the last %d days\n"):format(n, days))
client:close()
