-- The `qiwi` command as a user runs it: real processes (the checkout's
-- bin/qiwi, or with QIWI_CLI the command installed from the rock) against
-- `qiwi fake`, itself a real process serving the fake over HTTPS with its
-- own throwaway CA. Terminals are real pseudo-terminals (util-linux script).
local qiwi = require "qiwi"
local util = require "util"
local cli = require "qiwi_cli"

local decode = qiwi.json.decode

-- The docs' worked webhook example (README "A webhook notification").
local KEY = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="
local NOTE = '{"messageId":"7814c49d-2d29-4b14-b2dc-36b377c76156",'
  .. '"hookId":"5e2027d1-f5f3-4ad1-b409-058b8b8a8c22","payment":{"txnId":"13353941550",'
  .. '"date":"2018-06-27T13:39:00+03:00","type":"IN","status":"SUCCESS","errorCode":"0",'
  .. '"personId":78000008000,"account":"+79161112233","comment":"","provider":7,'
  .. '"sum":{"amount":1,"currency":643},"commission":{"amount":0,"currency":643},'
  .. '"total":{"amount":1,"currency":643},"signFields":"sum.currency,sum.amount,type,account,txnId"},'
  .. '"hash":"f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243",'
  .. '"version":"1.0.0","test":false}'

local function lines_of(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("qiwi (the command line)", function()
  local fake

  setup(function()
    fake = assert(cli.start_fake())
  end)

  teardown(function()
    if fake then fake:stop() end
  end)

  -- A fresh fake state with the fake's credentials (the token stays the one printed).
  local function reset(opts)
    local o = { token = fake.token, wallet = fake.wallet }
    for k, v in pairs(opts or {}) do o[k] = v end
    local status, body = fake:curl("POST", "/__fake/reset", qiwi.json.encode(o))
    assert.equal(200, status, body)
  end

  local function q(argv, o)
    o = o or {}
    o.env = fake:client_env(o.env)
    return cli.run(argv, o)
  end

  local function requests()
    local status, body = fake:curl("GET", "/__fake/requests")
    assert.equal(200, status)
    return decode(body)
  end

  local function payment_requests()
    local n = 0
    for _, r in ipairs(requests()) do
      if r.method == "POST" and r.path:find("/payments$") then n = n + 1 end
    end
    return n
  end

  local function rub()
    return decode(fake:call("balance", "[]")).result
  end

  before_each(function() reset() end)

  describe("help and configuration", function()
    it("--help lists every command of the contract and an exit status per error kind", function()
      local r = cli.run { "--help" }
      assert.equal(0, r.code)
      for _, c in ipairs { "profile", "balance", "history", "payment", "receipt", "transfer", "summary",
                           "webhook", "fake", "help" } do
        assert.truthy(r.out:find("\n   " .. c .. " ", 1, true), c)
      end
      local codes = {}
      for _, kind in ipairs { "usage", "argument", "network", "timeout", "tls", "http", "api", "decode",
                              "store", "refused" } do
        local code = tonumber(r.out:match("\n%s+(%d+)  " .. kind .. " "))
        assert.is_number(code, kind)
        assert.is_nil(codes[code], "two kinds share exit status " .. tostring(code))
        codes[code] = kind
      end
      local h = cli.run { "help", "history" }
      assert.equal(0, h.code)
      assert.truthy(h.out:find("--csv F", 1, true))
    end)

    it("refuses a token given as an argument, without repeating it", function()
      for _, argv in ipairs { { "--token", "SECRET-TOKEN-123", "balance" }, { "--token=SECRET-TOKEN-123", "balance" } } do
        local r = q(argv)
        assert.equal(2, r.code)
        assert.truthy(r.err:find("QIWI_TOKEN", 1, true))
        assert.is_nil(r.err:find("SECRET-TOKEN-123", 1, true))
        assert.equal(1, #lines_of(r.err))
      end
      assert.equal(0, #requests())
    end)

    it("wants a token from QIWI_TOKEN or --token-file", function()
      local r = q({ "balance" }, { env = { QIWI_TOKEN = false } })
      assert.equal(2, r.code)
      assert.truthy(r.err:find("^qiwi: no token"))
      local dir = util.tmpdir("token")
      util.write_file(dir .. "/token", fake.token .. "\n")
      local t = q({ "--token-file", dir .. "/token", "balance" }, { env = { QIWI_TOKEN = false } })
      util.exec("rm -rf " .. util.shq(dir))
      assert.equal(0, t.code, t.err)
      assert.truthy(t.out:find("qw_wallet_rub", 1, true))
    end)

    it("gives one line on stderr and a distinct status per error kind, never the token", function()
      local wrong = q({ "balance" }, { env = { QIWI_TOKEN = "wrong-token-0123456789" } })
      local closed = q({ "balance" }, { env = { QIWI_BASE_URL = "https://127.0.0.1:" .. util.free_port() } })
      -- a CA that did not sign the fake's certificate
      local tls = q({ "balance" }, { env = { QIWI_CA_FILE = require("pki").ensure().other_ca } })
      local bad = q({ "history", "--from", "2024-02-30" })
      local seen = {}
      for _, r in ipairs { wrong, closed, tls, bad } do
        assert.is_true(r.code >= 2, r.err)
        assert.equal(1, #lines_of(r.err), r.err)
        assert.truthy(r.err:find("^qiwi: "))
        assert.is_nil(r.err:find(fake.token, 1, true))
        assert.is_nil(seen[r.code], "status " .. r.code .. " twice")
        seen[r.code] = true
        assert.equal("", r.out)
      end
      assert.truthy(closed.err:find("network", 1, true))
      assert.equal(3, bad.code)
    end)
  end)

  describe("balance and profile", function()
    it("shows each account's balance with its currency, and --json QIWI's answer", function()
      fake:call("set_balance", '["qw_wallet_rub","12345.67"]')
      fake:call("set_balance", '["USD","10.5"]')
      local r = q { "balance" }
      assert.equal(0, r.code, r.err)
      local l = lines_of(r.out)
      assert.truthy(l[1]:find("^ACCOUNT%s+BALANCE"))
      assert.truthy(r.out:find("qw_wallet_rub%s+12 345%.67 RUB"))
      assert.truthy(r.out:find("qw_wallet_usd%s+10%.50 USD"))
      -- right-aligned: every amount ends in the same column
      local ends = {}
      for _, line in ipairs(l) do
        local i = line:find(" [A-Z][A-Z][A-Z]")
        if i and line:find("%d %u%u%u") then ends[#ends + 1] = i end
      end
      assert.equal(2, #ends)
      assert.equal(ends[1], ends[2])
      local j = q { "--json", "balance" }
      assert.equal(0, j.code)
      local v = assert(decode(j.out))
      assert.equal(12345.67, v.accounts[1].balance.amount)
    end)

    it("prints the profile, --json with exact integers", function()
      local r = q { "profile" }
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("Wallet%s+%+" .. fake.wallet))
      local j = decode(q({ "--json", "profile" }).out)
      assert.equal(tonumber(fake.wallet), j.authInfo.personId)
    end)
  end)

  describe("history", function()
    it("--rows N: the N newest, as a table, and the same payments with --json", function()
      local r = q { "history", "--rows", "5" }
      assert.equal(0, r.code, r.err)
      local l = lines_of(r.out)
      assert.equal(6, #l)
      assert.truthy(l[1]:find("^DATE%s+AMOUNT%s+STATUS"))
      local j = q { "--json", "history", "--rows", "5" }
      local list = assert(decode(j.out))
      assert.equal(5, #list)
      local records = decode(fake:call("history", "[]")).result
      for i = 1, 5 do
        assert.equal(records[i].txn_id, list[i].txnId)
        assert.truthy(l[i + 1]:find(tostring(list[i].txnId), 1, true))
      end
    end)

    it("without --rows, every page; progress only on a terminal, never in --json", function()
      reset { history_pages = 3, history_rows = 25 }
      local j = q { "--json", "history" }
      assert.equal(0, j.code, j.err)
      assert.equal(75, #decode(j.out))
      assert.equal("", j.err)
      local pages = 0
      for _, req in ipairs(requests()) do
        if req.path:find("/payments$") and req.method == "GET" then pages = pages + 1 end
      end
      assert.equal(2, pages) -- 50 + 25
      local t = cli.run_tty({ "--json", "history" }, { env = fake:client_env(), redirect = ">out.json" })
      assert.equal(0, t.code, t.screen)
      assert.truthy(t.screen:find("page 2, 50 payments", 1, true), t.screen)
    end)

    it("--csv F: a header row, then one row a payment, fields quoted and defused", function()
      local id = decode(fake:call("add_payment", '[{"amount":"1234.50","comment":"=HYPERLINK(\\"x\\"), a \\"quote\\""}]')).result
      local dir = util.tmpdir("csv")
      local r = q({ "history", "--rows", "3", "--csv", "out.csv" }, { dir = dir })
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("3 payments written to out.csv", 1, true))
      local csv = util.read_file(dir .. "/out.csv")
      util.exec("rm -rf " .. util.shq(dir))
      local rows = {}
      for line in csv:gmatch("([^\r\n]*)\r\n") do rows[#rows + 1] = line end
      assert.equal(4, #rows)
      assert.equal("txnId,date,type,status,amount,currency,commission,total,account,provider,comment", rows[1])
      assert.truthy(rows[2]:find("^" .. tostring(id) .. ",%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%+%-]%d%d:%d%d,IN,SUCCESS,1234%.50,RUB,"))
      local tail = [[,"'=HYPERLINK(""x""), a ""quote"""]]
      assert.equal(tail, rows[2]:sub(-#tail))
    end)

    it("--from/--to as days in the user's zone (TZ), sent in Moscow time", function()
      q({ "history", "--from", "2024-01-10", "--to", "2024-01-11" }, { env = { TZ = "UTC0" } })
      q({ "history", "--from", "2024-01-10", "--to", "2024-01-11" }, { env = { TZ = "JST-9" } })
      local got = {}
      for _, req in ipairs(requests()) do
        if req.params and req.params.startDate then got[#got + 1] = req.params.startDate .. " " .. req.params.endDate end
      end
      assert.same({ "2024-01-10T03:00:00+03:00 2024-01-12T02:59:59+03:00",
                    "2024-01-09T18:00:00+03:00 2024-01-11T17:59:59+03:00" }, got)
    end)

    it("shows dates in the user's zone", function()
      local id = decode(fake:call("add_payment", '[{"amount":5,"date":"2024-03-01T12:00:00+03:00"}]')).result
      local utc = q({ "payment", tostring(id), "--type", "IN" }, { env = { TZ = "UTC0" } })
      local jst = q({ "payment", tostring(id), "--type", "IN" }, { env = { TZ = "JST-9" } })
      assert.truthy(utc.out:find("Date%s+2024%-03%-01 09:00:00"), utc.out .. utc.err)
      assert.truthy(jst.out:find("Date%s+2024%-03%-01 18:00:00"), jst.out)
      assert.truthy(utc.out:find("Amount%s+5%.00 RUB"))
    end)

    it("refuses bad rows and dates before sending anything", function()
      for _, argv in ipairs { { "history", "--rows", "0" }, { "history", "--rows", "x" },
                              { "history", "--from", "yesterday" }, { "history", "--from", "2024-03-01", "--to", "2024-01-01" },
                              { "history", "--from", "2023-01-01", "--to", "2024-01-01" } } do
        local r = q(argv)
        assert.equal(3, r.code, table.concat(argv, " ") .. ": " .. r.err)
      end
      assert.equal(0, #requests())
    end)
  end)

  describe("receipt", function()
    it("writes the receipt file", function()
      local id = decode(fake:call("add_payment", '[{"amount":5}]')).result
      local dir = util.tmpdir("receipt")
      local r = q({ "receipt", tostring(id), "--type", "IN" }, { dir = dir })
      local pdf = util.read_file(dir .. "/receipt-" .. id .. ".pdf")
      util.exec("rm -rf " .. util.shq(dir))
      assert.equal(0, r.code, r.err)
      assert.truthy(pdf and pdf:sub(1, 5) == "%PDF-")
    end)
  end)

  describe("transfer", function()
    it("sends nothing without a terminal and without --yes", function()
      local r = q { "transfer", "--to", "+79990001122", "--amount", "10" }
      assert.equal(11, r.code)
      assert.truthy(r.err:find("--yes", 1, true))
      assert.equal(0, payment_requests())
      assert.equal(1000, rub())
    end)

    it("refuses a bad amount or wallet before asking", function()
      for _, a in ipairs { { "--amount", "1.001", "--to", "+79990001122" }, { "--amount=-5", "--to", "+79990001122" },
                           { "--amount", "10", "--to", "7999abc" } } do
        local argv = { "transfer", "--yes" }
        for _, v in ipairs(a) do argv[#argv + 1] = v end
        assert.equal(3, q(argv).code)
      end
      assert.equal(0, payment_requests())
    end)

    it("--yes sends it; an idempotency key run twice pays once", function()
      local argv = { "transfer", "--to", "+79990001122", "--amount", "10.50", "--comment", "lunch", "--yes",
                     "--idempotency-key", "order-42" }
      local first = q(argv)
      assert.equal(0, first.code, first.err)
      assert.truthy(first.out:find("State%s+Accepted"))
      local again = q(argv)
      assert.equal(0, again.code, again.err)
      assert.equal(989.5, rub())
    end)

    it("asks on a terminal: n sends nothing, y sends it", function()
      local argv = { "transfer", "--to", "+79990001122", "--amount", "7" }
      local no = cli.run_tty(argv, { env = fake:client_env(), typed = "n\n" })
      assert.equal(11, no.code, no.screen)
      assert.truthy(no.screen:find("Send 7.00 RUB to +79990001122? [y/N]", 1, true), no.screen)
      assert.equal(0, payment_requests())
      local yes = cli.run_tty(argv, { env = fake:client_env(), typed = "y\n" })
      assert.equal(0, yes.code, yes.screen)
      assert.equal(993, rub())
    end)
  end)

  describe("summary", function()
    it("draws money in and out per month; --json holds the same sums", function()
      local before = decode(q({ "--json", "summary", "--months", "3" }).out)
      fake:call("add_payment", '[{"amount":"123.45","type":"IN"}]')
      fake:call("add_payment", '[{"amount":"20","type":"OUT"}]')
      local after = decode(q({ "--json", "summary", "--months", "3" }).out)
      assert.equal(3, #after)
      assert.equal(os.date("%Y-%m"), after[3].month)
      assert.near(before[3].incoming + 123.45, after[3].incoming, 1e-9)
      assert.near(before[3].outgoing + 20, after[3].outgoing, 1e-9)
      local r = q({ "summary", "--months", "3" }, { env = { LANG = "C.UTF-8", COLUMNS = "70" } })
      assert.equal(0, r.code, r.err)
      local l = lines_of(r.out)
      assert.equal(1 + 3 * 2 + 1, #l)
      local month = os.date("%Y-%m"):gsub("%-", "%%-")
      assert.truthy(l[6]:find("^" .. month .. "  in   █"), l[6])
      local ascii = q({ "summary", "--months", "3" }, { env = { LANG = "C", LC_ALL = "C" } })
      assert.truthy(ascii.out:find(month .. "  in   #"), ascii.out)
      assert.equal(3, q({ "summary", "--months", "25" }).code)
    end)
  end)

  describe("webhook verify", function()
    local dir
    before_each(function()
      dir = util.tmpdir("hook")
      util.write_file(dir .. "/note.json", NOTE)
      util.write_file(dir .. "/key", KEY .. "\n")
    end)
    after_each(function() util.exec("rm -rf " .. util.shq(dir)) end)

    it("exit 0 for the docs' signed example, by --key-file, QIWI_WEBHOOK_KEY or --key", function()
      local a = cli.run({ "webhook", "verify", "--key-file", "key", "note.json" }, { dir = dir })
      assert.equal(0, a.code, a.err)
      assert.truthy(a.out:find("valid: txn 13353941550 IN SUCCESS 1.00 RUB", 1, true))
      local b = cli.run({ "webhook", "verify" }, { dir = dir, env = { QIWI_WEBHOOK_KEY = KEY }, stdin = NOTE })
      assert.equal(0, b.code, b.err)
      assert.equal(0, cli.run({ "webhook", "verify", "--key", KEY, "note.json" }, { dir = dir }).code)
    end)

    it("non-zero for a forged amount or what is not a notification", function()
      local forged = NOTE:gsub('"sum":{"amount":1,', '"sum":{"amount":100,')
      local f = cli.run({ "webhook", "verify", "--key-file", "key" }, { dir = dir, stdin = forged })
      assert.equal(3, f.code)
      local g = cli.run({ "webhook", "verify", "--key-file", "key" }, { dir = dir, stdin = "{}" })
      assert.equal(9, g.code)
      assert.equal(2, cli.run({ "webhook", "verify", "note.json" }, { dir = dir }).code)
    end)
  end)
end)
