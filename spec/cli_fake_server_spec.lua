-- `qiwi fake` as a test server for any language: a real process, read as
-- a user's script would read it, talked to with the curl command and with
-- Python's http.client over keep-alive, stopped with SIGTERM.
local qiwi = require "qiwi"
local util = require "util"
local cli = require "qiwi_cli"

local shq = util.shq
local decode = qiwi.json.decode

-- Processes whose command line names `text` (nginx is started with the
-- fake's directory as its prefix).
local function processes_naming(text)
  local found = {}
  for _, pid in ipairs(util.lines("ls /proc | grep -E '^[0-9]+$'")) do
    local cmd = util.read_file("/proc/" .. pid .. "/cmdline")
    if cmd and cmd:find(text, 1, true) and util.alive(tonumber(pid)) then found[#found + 1] = pid end
  end
  return found
end

local pipe_output = util.output

describe("qiwi fake", function()
  local fake

  after_each(function()
    if fake then fake:stop() end
    fake = nil
  end)

  it("prints its base URL, token, wallet and CA file; curl verifies it with that CA", function()
    fake = assert(cli.start_fake())
    assert.truthy(fake.base_url:find("^https://127%.0%.0%.1:%d+$"))
    assert.truthy(fake.token:find("^%x+$") and #fake.token >= 32)
    assert.truthy(fake.wallet:find("^%d+$"))
    assert.truthy(util.exec("openssl verify -CAfile " .. shq(fake.ca_file) .. " " .. shq(fake.prefix .. "/cert.pem")
      .. " >/dev/null 2>&1"))
    local path = "/funding-sources/v2/persons/" .. fake.wallet .. "/accounts"
    local status, body = fake:curl("GET", path, nil, { "Authorization: Bearer " .. fake.token,
                                                       "Accept: application/json" })
    assert.equal(200, status)
    assert.equal("qw_wallet_rub", decode(body).accounts[1].alias)
    assert.equal(401, (fake:curl("GET", path, nil, { "Authorization: Bearer not-the-token" })))
    -- without the fake's CA, the system's trust store refuses it
    local plain = pipe_output("curl -sS -o /dev/null -w '%{http_code}' " .. shq(fake.base_url .. path)
      .. " 2>/dev/null </dev/null")
    assert.equal("000", plain)
  end)

  it("keeps connections alive, for curl and for Python's http.client", function()
    fake = assert(cli.start_fake())
    local path = "/funding-sources/v2/persons/" .. fake.wallet .. "/accounts"
    local out = pipe_output(("curl -sS --http1.1 --cacert %s -H %s -o /dev/null -o /dev/null -w '%%{http_code} %%{num_connects}\\n' %s %s </dev/null"):format(
      shq(fake.ca_file), shq("Authorization: Bearer " .. fake.token), shq(fake.base_url .. path), shq(fake.base_url .. path)))
    assert.equal("200 1\n200 0\n", out)

    local py = [[
import http.client, os, ssl, sys
ctx = ssl.create_default_context(cafile=os.environ["CA"])
c = http.client.HTTPSConnection("127.0.0.1", int(os.environ["PORT"]), context=ctx)
for _ in range(3):
    c.request("GET", os.environ["P"], headers={"Authorization": "Bearer " + os.environ["TOKEN"], "Accept": "application/json"})
    r = c.getresponse()
    r.read()
    print(r.status, r.getheader("Connection") or "")
c.close()
]]
    local got = pipe_output(("CA=%s PORT=%d P=%s TOKEN=%s python3 -c %s 2>&1 </dev/null"):format(
      shq(fake.ca_file), fake.port, shq(path), shq(fake.token), shq(py)))
    assert.truthy(got:find("^200 [^\n]*\n200 [^\n]*\n200 [^\n]*\n$"), got)
    assert.is_nil(got:find("close", 1, true))
    -- the fake's own log: curl's two requests on one connection, Python's three on another
    local _, body = fake:curl("GET", "/__fake/requests")
    local conns = {}
    for _, r in ipairs(decode(body)) do
      if r.path == path and r.status == 200 then conns[#conns + 1] = r.connection end
    end
    assert.equal(5, #conns)
    assert.equal(conns[1], conns[2])
    assert.equal(conns[3], conns[4])
    assert.equal(conns[4], conns[5])
    assert.are_not.equal(conns[2], conns[3])
  end)

  it("stops cleanly on SIGTERM: nginx gone, port closed, its directory removed", function()
    fake = assert(cli.start_fake())
    local prefix, port = fake.prefix, fake.port
    assert.is_true(#processes_naming(prefix) >= 1)
    assert.is_true(fake:running())
    util.exec("kill -TERM " .. fake.pid)
    assert.truthy(util.wait_until(10, function() return not fake:running() end))
    assert.truthy(util.wait_until(10, function()
      return #processes_naming(prefix) == 0 and not util.read_file(prefix .. "/ca.pem")
    end), "left behind: " .. table.concat(processes_naming(prefix), " "))
    assert.is_false(util.ports_in_use()[port] == true)
    fake:stop()
    fake = nil
  end)

  it("--state FILE keeps the wallet across runs; --port P serves on P", function()
    local dir = util.tmpdir("state")
    local state = dir .. "/fake.state"
    local port = util.free_port()
    fake = assert(cli.start_fake { "--port", tostring(port), "--state", state })
    assert.equal(port, fake.port)
    local paid = cli.run({ "transfer", "--to", "+79990001122", "--amount", "12.34", "--yes" }, { env = fake:client_env() })
    assert.equal(0, paid.code, paid.err)
    local txn = paid.out:match("Transaction%s+(%d+)")
    local token = fake.token
    fake:stop()
    assert.truthy(util.wait_until(10, function() return not util.ports_in_use()[port] end))

    fake = assert(cli.start_fake { "--state", state })
    assert.equal(token, fake.token)
    local env = fake:client_env()
    local bal = decode(cli.run({ "--json", "balance" }, { env = env }).out)
    assert.equal(987.66, bal.accounts[1].balance.amount)
    local p = cli.run({ "payment", txn, "--type", "OUT" }, { env = env })
    assert.equal(0, p.code, p.err)
    assert.truthy(p.out:find("Amount%s+12%.34 RUB"))
    -- new payments go on from the saved counters, not over the old ones
    local again = cli.run({ "transfer", "--to", "+79990001122", "--amount", "1", "--yes" }, { env = env })
    assert.are_not.equal(txn, again.out:match("Transaction%s+(%d+)"))
    fake:stop()
    fake = nil

    -- a port in use is refused with one line
    local taken = assert(cli.start_fake())
    local r = cli.run { "fake", "--port", tostring(taken.port) }
    taken:stop()
    util.exec("rm -rf " .. shq(dir))
    assert.is_true(r.code ~= 0)
    assert.truthy(r.err:find("^qiwi: nginx did not start: .*Address already in use"), r.err)
  end)
end)
