-- The `qiwi` command: the wallet from the shell. bin/qiwi calls main(arg).
--
-- Secrets never come from the command line, which any user of the host can
-- read in `ps`: the token from QIWI_TOKEN or --token-file, a webhook key
-- from QIWI_WEBHOOK_KEY or --key-file (--key is accepted, as the contract
-- names it, and --help says what it costs), a proxy's credentials from
-- QIWI_PROXY (--proxy takes a URL without them).
local argparse = require "argparse"
local qiwi = require "qiwi"
local args = require "qiwi.args"
local qerror = require "qiwi.error"
local fmt = require "qiwi.cli.format"
local chart = require "qiwi.cli.chart"

local _M = { _VERSION = "qiwi.cli " .. qiwi._VERSION:match("[%d.]+$") }

-- One exit status per way of failing, so that a script can tell a refused
-- argument from a network fault without reading the message.
local EXIT = {
  { "ok", 0, "success" },
  { "io", 1, "a local file could not be read or written" },
  { "usage", 2, "bad command line or configuration (no token, unknown option)" },
  { "argument", 3, "a value refused before anything was sent; webhook verify: bad signature" },
  { "network", 4, "no answer from QIWI (connection refused, reset, DNS)" },
  { "timeout", 5, "QIWI did not answer in time" },
  { "tls", 6, "the TLS handshake or certificate check failed" },
  { "http", 7, "an HTTP error without QIWI's error body" },
  { "api", 8, "QIWI refused the request (its error code is shown)" },
  { "decode", 9, "an answer that is not what QIWI sends; webhook verify: not a notification" },
  { "store", 10, "the shared store could not be reached: nothing was sent" },
  { "refused", 11, "a payment not confirmed (no terminal and no --yes, or not answered y)" },
}
local CODE = {}
for _, e in ipairs(EXIT) do CODE[e[1]] = e[2] end
_M.EXIT = CODE

local function exit_codes_text()
  local lines = { "Exit status:" }
  for _, e in ipairs(EXIT) do lines[#lines + 1] = ("   %2d  %-9s %s"):format(e[2], e[1], e[3]) end
  return table.concat(lines, "\n")
end

local EPILOG = [[
Configuration (never on the command line, where `ps` shows it to every user):
   QIWI_TOKEN or --token-file F   the API token (a token given as an argument is refused)
   QIWI_WALLET or --wallet W      the wallet (otherwise learned from the profile)
   QIWI_BASE_URL or --base-url U  another server (e.g. `qiwi fake`)
   QIWI_CA_FILE or --ca-file F    the CA that server's certificate is checked against
   QIWI_PROXY or --proxy U        a proxy, e.g. http://host:3128 (user:password@ in QIWI_PROXY only)
   QIWI_WEBHOOK_KEY or --key-file F   the webhook key of `webhook verify`
Dates are shown in your time zone (TZ); --from/--to take YYYY-MM-DD (your zone)
or QIWI's form 2024-05-17T00:00:00+03:00.

]] .. exit_codes_text()

---------------------------------------------------------------------------
-- The process around a command: its streams and environment

-- A file descriptor that is a terminal: asked of a shell, whose descriptors
-- are ours (plain Lua has no isatty).
local function isatty(fd)
  local a, _, c = os.execute("test -t " .. fd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

local Run = {}
Run.__index = Run

function Run:out(s) self.stdout:write(s) end

-- One line on stderr: what failed, nothing else (tostring(err) is already
-- one line, with the token scrubbed).
function Run:fail(kind, message)
  self.stderr:write("qiwi: ", qerror.one_line(message), "\n")
  return CODE[kind] or 1
end

function Run:fail_err(err)
  local kind = type(err) == "table" and err.kind or "io"
  return self:fail(CODE[kind] and kind or "io", tostring(err))
end

function Run:json(value)
  local s, err = qiwi.json.encode(value)
  if not s then return self:fail("decode", "cannot encode the answer as JSON: " .. tostring(err)) end
  self:out(s .. "\n")
  return 0
end

-- Progress of multi-page work goes to stderr, and only to a terminal: a
-- log file or a pipe never gets it, nor do --json and --csv on stdout.
function Run:progress(text)
  if self.progress_tty == nil then self.progress_tty = self.isatty(2) end
  if not self.progress_tty then return end
  self.stderr:write("\r\27[K", text or "")
  self.stderr:flush()
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

-- The token: --token-file first (asked for explicitly), else QIWI_TOKEN.
function Run:token(a)
  if a.token_file then
    local s, err = read_file(a.token_file)
    if not s then return nil, "io", "cannot read the token file: " .. tostring(err) end
    s = s:gsub("^%s+", ""):gsub("%s+$", "")
    if s == "" then return nil, "usage", "the token file " .. a.token_file .. " is empty" end
    return s
  end
  local t = self.getenv("QIWI_TOKEN")
  if t and t ~= "" then return t end
  return nil, "usage", "no token: set QIWI_TOKEN or give --token-file F (never the token itself)"
end

function Run:client(a)
  local token, kind, why = self:token(a)
  if not token then return nil, self:fail(kind, why) end
  local function opt(v, name)
    if v ~= nil then return v end
    local e = self.getenv(name)
    if e ~= nil and e ~= "" then return e end
    return nil
  end
  local c, err = qiwi.new {
    token = token,
    wallet = opt(a.wallet, "QIWI_WALLET"),
    base_url = opt(a.base_url, "QIWI_BASE_URL"),
    ca_file = opt(a.ca_file, "QIWI_CA_FILE"),
    proxy = opt(a.proxy, "QIWI_PROXY"),
  }
  if not c then return nil, self:fail_err(err) end
  return c
end

---------------------------------------------------------------------------
-- Dates of the command line

-- --from/--to: QIWI's form, or YYYY-MM-DD in the user's zone (the start of
-- that day for --from, its last second for --to). Returns epoch seconds.
local function cli_date(v, end_of_day, name)
  if v == nil then return nil end
  local y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if y then
    if not args.day(v) then return nil, name .. " " .. v .. " is not a valid date" end
    local t = os.time { year = tonumber(y), month = tonumber(m), day = tonumber(d),
                        hour = end_of_day and 23 or 0, min = end_of_day and 59 or 0,
                        sec = end_of_day and 59 or 0 }
    return t
  end
  local _, _, t = args.date(v)
  if not t then return nil, name .. " must be YYYY-MM-DD or like 2024-05-17T00:00:00+03:00" end
  return t
end

-- The start of the month `back` months before the one of epoch `now`, in
-- the user's zone.
local function month_start(now, back)
  local d = os.date("*t", now)
  local idx = d.year * 12 + (d.month - 1) - back
  return os.time { year = math.floor(idx / 12), month = idx % 12 + 1, day = 1, hour = 0 }
end

---------------------------------------------------------------------------
-- Commands

local commands = {}

local function provider_name(p)
  if type(p.provider) == "table" then
    local n = p.provider.shortName
    if type(n) == "string" and n ~= "" then return n end
    if p.provider.id ~= nil then return "provider " .. tostring(p.provider.id) end
  end
  return ""
end

local function text(v)
  if v == nil or v == qiwi.null then return "" end
  return tostring(v)
end

local function signed(p)
  if p.type == "IN" then return "+" end
  if p.type == "OUT" or p.type == "QIWI_CARD" then return "-" end
  return ""
end

function commands.profile(run, a, client)
  local res, err = client:profile()
  if not res then return run:fail_err(err) end
  if a.json then return run:json(res) end
  local auth, contract, user = res.authInfo or {}, res.contractInfo or {}, res.userInfo or {}
  local levels = {}
  for _, ident in ipairs(type(contract.identificationInfo) == "table" and contract.identificationInfo or {}) do
    levels[#levels + 1] = text(ident.identificationLevel) .. " (" .. text(ident.bankAlias) .. ")"
  end
  run:out(fmt.fields {
    { "Wallet", auth.personId ~= nil and ("+" .. text(auth.personId)) or nil },
    { "Registered", auth.registrationDate and fmt.date(auth.registrationDate) },
    { "Identification", table.concat(levels, ", ") },
    { "Blocked", contract.blocked ~= nil and (contract.blocked and "yes" or "no") or nil },
    { "E-mail", text(auth.boundEmail) },
    { "Currency", user.defaultPayCurrency and fmt.currency(user.defaultPayCurrency) },
    { "Operator", text(user.operator) },
  })
  return 0
end

function commands.balance(run, a, client)
  local res, err = client:accounts()
  if not res then return run:fail_err(err) end
  if a.json then return run:json(res) end
  local rows = {}
  for _, acc in ipairs(res.accounts or {}) do
    if acc.hasBalance and type(acc.balance) == "table" then
      rows[#rows + 1] = { text(acc.alias), fmt.money(acc.balance), acc.defaultAccount and "default" or "" }
    end
  end
  run:out(fmt.table({ "ACCOUNT", "BALANCE", "" }, rows, { [2] = true }))
  return 0
end

-- The history options of --from/--to/--in/--out: QIWI wants both dates or
-- neither, so one alone gets the other (now, or 90 days before --to).
local function history_filter(a)
  local o = {}
  if a["in"] then o.operation = "IN" elseif a.out then o.operation = "OUT" end
  local from, ferr = cli_date(a.from, false, "--from")
  if ferr then return nil, ferr end
  local to, terr = cli_date(a.to, true, "--to")
  if terr then return nil, terr end
  if from or to then
    to = to or os.time()
    from = from or (to - 90 * 86400 + 1)
    if from > to then return nil, "--from is after --to" end
    o.start_date, o.end_date = from, to
  end
  return o
end

local CSV_HEADER = { "txnId", "date", "type", "status", "amount", "currency", "commission", "total",
                     "account", "provider", "comment" }

local function csv_cells(p)
  local sum, com, tot = p.sum or {}, p.commission or {}, p.total or {}
  return {
    text(p.txnId), fmt.iso_date(p.date), text(p.type), text(p.status),
    fmt.amount(sum.amount or 0):gsub(" ", ""), fmt.currency(sum.currency),
    fmt.amount(com.amount or 0):gsub(" ", ""), fmt.amount(tot.amount or 0):gsub(" ", ""),
    text(p.account), provider_name(p), text(p.comment),
  }
end

function commands.history(run, a, client)
  local o, why = history_filter(a)
  if not o then return run:fail("argument", why) end
  local limit = a.rows and tonumber(a.rows)
  if a.rows and (not limit or limit < 1 or limit % 1 ~= 0) then
    return run:fail("argument", "--rows must be a whole number of at least 1")
  end
  o.rows = limit and math.min(limit, 50) or 50
  local csv
  if a.csv then
    if a.csv == "-" then csv = run.stdout else
      local f, err = io.open(a.csv, "wb")
      if not f then return run:fail("io", "cannot write " .. a.csv .. ": " .. tostring(err)) end
      csv = f
    end
    csv:write(fmt.csv_row(CSV_HEADER))
  end
  local list = setmetatable({}, qiwi.array_mt)
  local it, st = client:payments(o)
  local pages, last_page = 0, nil
  for p in it, st do
    if st.page ~= last_page then
      last_page, pages = st.page, pages + 1
      if pages > 1 then run:progress(("page %d, %d payments"):format(pages, #list)) end
    end
    if csv then csv:write(fmt.csv_row(csv_cells(p))) end
    list[#list + 1] = p
    if limit and #list >= limit then break end
  end
  if pages > 1 then run:progress(nil) end
  if csv and csv ~= run.stdout then csv:close() end
  if st.err then return run:fail_err(st.err) end
  if csv then
    if csv == run.stdout then return 0 end
    if a.json then return run:json { file = a.csv, payments = #list } end
    run:out(("%d payments written to %s\n"):format(#list, a.csv))
    return 0
  end
  if a.json then return run:json(list) end
  local rows = {}
  for i, p in ipairs(list) do
    rows[i] = { fmt.date(p.date), fmt.money(p.total, signed(p)), text(p.status),
                fmt.cut(provider_name(p), 24), text(p.account), fmt.cut(text(p.comment), 32), text(p.txnId) }
  end
  run:out(fmt.table({ "DATE", "AMOUNT", "STATUS", "PROVIDER", "ACCOUNT", "COMMENT", "TXN" }, rows, { [2] = true }))
  return 0
end

function commands.payment(run, a, client)
  local p, err = client:transaction(a.txn, a.type)
  if not p then return run:fail_err(err) end
  if a.json then return run:json(p) end
  run:out(fmt.fields {
    { "Transaction", text(p.txnId) },
    { "Date", fmt.date(p.date, true) },
    { "Type", text(p.type) },
    { "Status", text(p.status) .. (p.errorCode ~= nil and p.errorCode ~= 0 and p.error ~= qiwi.null
                                   and p.error and (" (" .. text(p.error) .. ")") or "") },
    { "Amount", fmt.money(p.sum) },
    { "Commission", fmt.money(p.commission) },
    { "Total", fmt.money(p.total, signed(p)) },
    { "Account", text(p.account) },
    { "Provider", provider_name(p) },
    { "Comment", text(p.comment) },
  })
  return 0
end

function commands.receipt(run, a, client)
  local bytes, ctype = client:receipt(a.txn, { type = a.type, format = a.format })
  if not bytes then return run:fail_err(ctype) end
  local out = a.output or ("receipt-" .. a.txn .. (a.format == "JPEG" and ".jpg" or ".pdf"))
  if out == "-" then
    run:out(bytes)
    return 0
  end
  local f, err = io.open(out, "wb")
  if not f then return run:fail("io", "cannot write " .. out .. ": " .. tostring(err)) end
  f:write(bytes)
  f:close()
  if a.json then return run:json { file = out, bytes = #bytes, content_type = ctype } end
  run:out(("%d bytes (%s) written to %s\n"):format(#bytes, tostring(ctype), out))
  return 0
end

-- A payment goes out only when confirmed: y on a terminal, or --yes. Every
-- argument is checked first, so a refused one is never asked about.
function commands.transfer(run, a, client)
  local to, terr = args.wallet(a.to)
  if not to then return run:fail("argument", "--to " .. terr) end
  local amount, aerr = args.amount(a.amount)
  if not amount then return run:fail("argument", "--amount " .. aerr) end
  local opts = { to = to, amount = amount, comment = a.comment }
  if a.id and a.idempotency_key then
    return run:fail("argument", "give --id or --idempotency-key, not both")
  end
  opts.id, opts.idempotency_key = a.id, a.idempotency_key
  if a.idempotency_key and not args.idempotency_key(a.idempotency_key) then
    return run:fail("argument", "--idempotency-key must be a non-empty string of at most 200 bytes")
  end
  if not a.yes then
    if not run.isatty(0) then
      return run:fail("refused", "not sent: no terminal to confirm on; give --yes to send without asking")
    end
    run.stderr:write(("Send %s RUB to +%s%s? [y/N] "):format(fmt.amount(amount), to,
      a.comment and (" (" .. a.comment .. ")") or ""))
    run.stderr:flush()
    local answer = run.stdin:read("*l")
    if not answer or not answer:lower():find("^%s*y") then
      return run:fail("refused", "not sent: not confirmed")
    end
  end
  local res, err = client:transfer(opts)
  if not res then return run:fail_err(err) end
  if a.json then return run:json(res) end
  local txn = type(res.transaction) == "table" and res.transaction or {}
  local state = type(txn.state) == "table" and txn.state.code or "?"
  run:out(fmt.fields {
    { "State", text(state) .. (res.replayed and " (the payment made earlier under this id)" or "") },
    { "Transaction", text(txn.id) },
    { "Id", text(res.id) },
    { "Amount", fmt.money(type(res.sum) == "table" and res.sum or { amount = amount, currency = 643 }) },
    { "To", "+" .. to },
  })
  return 0
end

function commands.summary(run, a, client)
  local n = tonumber(a.months or 6)
  if not n or n < 1 or n > 24 or n % 1 ~= 0 then
    return run:fail("argument", "--months must be a whole number from 1 to 24")
  end
  local currency, cerr = args.currency(a.currency or 643)
  if not currency then return run:fail("argument", "--currency " .. cerr) end
  local now = os.time()
  local months = {}
  for back = n - 1, 0, -1 do
    local from = month_start(now, back)
    local to = back == 0 and now or month_start(now, back - 1) - 1
    run:progress(("month %d of %d"):format(n - back, n))
    local res, err = client:history_total { start_date = from, end_date = to }
    if not res then
      run:progress(nil)
      return run:fail_err(err)
    end
    local function sum(list)
      for _, m in ipairs(type(list) == "table" and list or {}) do
        if tostring(m.currency) == currency then return tonumber(m.amount) or 0 end
      end
      return 0
    end
    months[#months + 1] = { label = os.date("%Y-%m", from), incoming = sum(res.incomingTotal),
                            outgoing = sum(res.outgoingTotal) }
  end
  run:progress(nil)
  if a.json then
    local list = setmetatable({}, qiwi.array_mt)
    for i, m in ipairs(months) do
      list[i] = { month = m.label, currency = tonumber(currency), incoming = m.incoming, outgoing = m.outgoing }
    end
    return run:json(list)
  end
  run:out(chart.draw(months, { currency = fmt.currency(currency), utf8 = chart.utf8_locale(run.getenv),
                               width = tonumber(run.getenv("COLUMNS") or "") or 80 }))
  return 0
end

-- The key: --key-file, QIWI_WEBHOOK_KEY, then --key (which `ps` shows).
local function webhook_key(run, a)
  if a.key_file then
    local s, err = read_file(a.key_file)
    if not s then return nil, "io", "cannot read the key file: " .. tostring(err) end
    return (s:gsub("%s+", ""))
  end
  local e = run.getenv("QIWI_WEBHOOK_KEY")
  if e and e ~= "" then return e end
  if a.key then return a.key end
  return nil, "usage", "no webhook key: set QIWI_WEBHOOK_KEY or give --key-file F"
end

function commands.webhook(run, a)
  local key, kind, why = webhook_key(run, a)
  if not key then return run:fail(kind, why) end
  local body, err
  if a.file and a.file ~= "-" then
    body, err = read_file(a.file)
    if not body then return run:fail("io", "cannot read " .. a.file .. ": " .. tostring(err)) end
  else
    body = run.stdin:read("*a") or ""
  end
  local note, verr = qiwi.webhook.verify(body, key)
  -- a body that is no notification is told apart from a bad signature
  if not note and verr.code == "format" then return run:fail("decode", tostring(verr)) end
  if not note then return run:fail_err(verr) end
  if a.json then return run:json(note) end
  local p = note.payment or {}
  run:out(("valid: txn %s %s %s %s %s\n"):format(text(p.txnId), text(p.type), text(p.status),
    fmt.money(p.sum), text(p.account)))
  return 0
end

function commands.fake(run, a)
  local server = require "qiwi.fake.server"
  local info, err = server.start { port = a.port, state = a.state, token = run.getenv("QIWI_FAKE_TOKEN") }
  if not info then return run:fail(err.kind or "io", err.message) end
  if a.json then
    run:json { base_url = info.base_url, token = info.token, wallet = info.wallet, ca_file = info.ca_file,
               pid = info.pid }
  else
    run:out(("QIWI_BASE_URL=%s\nQIWI_TOKEN=%s\nQIWI_WALLET=%s\nQIWI_CA_FILE=%s\n"):format(
      info.base_url, info.token, info.wallet, info.ca_file))
  end
  run.stdout:flush()
  -- Until nginx stops, or this process is told to: the supervising shell
  -- stops nginx when our end of its pipe closes, however we end.
  local fine = server.wait(info)
  local why = not fine and server.log_tail(info)
  server.cleanup(info)
  return fine and 0 or run:fail("io", "the fake's nginx stopped: " .. why)
end

---------------------------------------------------------------------------
-- The command line

local function parser()
  local p = argparse("qiwi", "The QIWI Wallet from the shell: balances, history, transfers, "
    .. "a monthly summary, webhook checks and a fake QIWI for tests.")
    :epilog(EPILOG)
    :command_target("command")
    :help_max_width(100)
  p:flag("--json", "Print QIWI's answers as JSON (integers exact) instead of tables.")
  p:option("--token-file", "Read the API token from this file (or set QIWI_TOKEN)."):argname("F")
  p:option("--wallet", "The wallet (QIWI_WALLET); otherwise learned from the profile."):argname("W")
  p:option("--base-url", "Another server than https://edge.qiwi.com (QIWI_BASE_URL)."):argname("U")
  p:option("--ca-file", "Check the server's certificate against this CA (QIWI_CA_FILE)."):argname("F")
  p:option("--proxy", "Go through this proxy (QIWI_PROXY; user:password@ only there)."):argname("U")
  p:add_help_command()

  p:command("profile", "The wallet's profile.")
  p:command("balance", "The balance of each account.")

  local h = p:command("history", "Payments, newest first: the N newest, or every page of a period.")
  h:option("--rows", "Only the N newest payments."):argname("N")
  h:option("--from", "From this date (YYYY-MM-DD in your zone, or QIWI's form)."):argname("D")
  h:option("--to", "Up to this date (the end of that day)."):argname("D")
  h:mutex(h:flag("--in", "Incoming payments only."), h:flag("--out", "Outgoing payments only."))
  h:option("--csv", "Write CSV (a header row, then one row a payment) to F ('-': stdout)."):argname("F")

  local pay = p:command("payment", "One payment by its transaction id.")
  pay:argument("txn", "The transaction id.")
  pay:option("--type", "IN or OUT (needed when an id is both)."):choices { "IN", "OUT", "QIWI_CARD" }

  local r = p:command("receipt", "A payment's receipt file.")
  r:argument("txn", "The transaction id.")
  r:option("--type", "IN or OUT."):choices { "IN", "OUT", "QIWI_CARD" }:default("OUT")
  r:option("--format", "PDF or JPEG."):choices { "PDF", "JPEG" }:default("PDF")
  r:option("-o --output", "Write it to F ('-': stdout; default receipt-TXN.pdf)."):argname("F")

  local t = p:command("transfer", "Send money to a QIWI wallet (asks first on a terminal).")
  t:option("--to", "The wallet to pay, e.g. +79991234567."):argname("W"):count(1)
  t:option("--amount", "The amount in roubles, e.g. 100.50."):argname("A"):count(1)
  t:option("--comment", "A comment the receiver sees."):argname("C")
  t:option("--idempotency-key", "Your own key for this payment (an order number): run again with "
    .. "the same key after a failure and it is paid once."):argname("K")
  t:option("--id", "The client payment id (digits, at most 20) instead of a fresh one."):argname("ID")
  t:flag("--yes", "Send without asking (needed without a terminal).")

  local s = p:command("summary", "Money in and out per month, as a bar chart.")
  s:option("--months", "How many months, this one included (1-24)."):argname("N"):default("6")
  s:option("--currency", "The currency code (643 RUB, 840 USD, 978 EUR, 398 KZT)."):argname("C"):default("643")

  local w = p:command("webhook", "Webhook notifications.")
  w:command_target("webhook_command")
  local v = w:command("verify", "Check a notification's signature: exit 0 when valid.")
  v:argument("file", "The notification's raw body (default: stdin)."):args("?")
  v:option("--key-file", "Read the base64 key from this file (or set QIWI_WEBHOOK_KEY)."):argname("F")
  v:option("--key", "The key itself: every user of the host sees it in `ps`; prefer "
    .. "QIWI_WEBHOOK_KEY or --key-file."):argname("K")

  local f = p:command("fake", "Serve a fake QIWI over HTTPS on 127.0.0.1 for tests in any language.")
  f:option("--port", "The port (default: a free one)."):argname("P")
  f:option("--state", "Keep the fake's state in this file across runs."):argname("FILE")
  return p
end

local NEEDS_CLIENT = { profile = true, balance = true, history = true, payment = true, receipt = true,
                       transfer = true, summary = true }

-- argv: the arguments (arg of the script). io: optional {stdout=, stderr=,
-- stdin=, getenv=, isatty=} for tests. Returns the exit status.
function _M.main(argv, io_)
  io_ = io_ or {}
  local run = setmetatable({
    stdout = io_.stdout or io.stdout, stderr = io_.stderr or io.stderr, stdin = io_.stdin or io.stdin,
    getenv = io_.getenv or os.getenv, isatty = io_.isatty or isatty,
  }, Run)
  local list = {}
  for i = 1, #(argv or {}) do
    local v = argv[i]
    if v == "--" then break end
    -- refused before parsing, so that no message ever repeats its value
    if v == "--token" or v:find("^%-%-token=") then
      return run:fail("usage", "a token on the command line shows in `ps` to every user of the host:"
        .. " set QIWI_TOKEN or give --token-file F")
    end
    -- any @ is user info (no host holds one), however malformed the rest
    local proxy = v:match("^%-%-proxy=(.*)$") or (v == "--proxy" and argv[i + 1])
    if proxy and proxy:find("@", 1, true) then
      return run:fail("usage", "proxy credentials on the command line show in `ps` to every user of the"
        .. " host: set QIWI_PROXY=scheme://user:password@host:port instead of --proxy")
    end
  end
  for i = 1, #(argv or {}) do list[i] = argv[i] end
  local ok, a = parser():pparse(list)
  if not ok then return run:fail("usage", tostring(a) .. " (qiwi --help lists the commands)") end
  if a.webhook and not a.verify then return run:fail("usage", "webhook: the command is verify") end
  local cmd = a.command
  local client
  if NEEDS_CLIENT[cmd] then
    local c, code = run:client(a)
    if not c then return code end
    client = c
  end
  local fine, code = pcall(commands[cmd], run, a, client)
  if client then client:close() end
  if not fine then return run:fail("io", "internal error: " .. tostring(code)) end
  return code
end

return _M
