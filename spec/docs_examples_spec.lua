--- The code examples of README.md's "Testing your own code" section, run as
-- they are printed. Each ```lua block of that section stands below verbatim
-- (the `.busted` file as the string BUSTED_FILE); the last describe checks
-- that the README still prints exactly these, so the two cannot drift apart.
-- Edit an example here and in the README together.

describe("my shop's payouts", function()
  local qiwi = require "qiwi"
  local fake, client

  before_each(function()
    fake = qiwi.fake.new { token = "test-token", wallet = "79111234567", balance = 1000 }
    client = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = fake,
                               history_rate = false })
  end)

  it("pays, and the payment shows in the history", function()
    local paid = assert(client:transfer { to = "+79990001122", amount = "10.50", comment = "refund",
                                          id = "1001" })
    assert.equal("Accepted", paid.transaction.state.code)   -- taken, not yet final
    assert.equal(989.5, fake:balance())
    local txn = assert(client:transaction(paid.transaction.id, "OUT"))
    assert.equal("SUCCESS", txn.status)
    assert.equal(10.5, txn.total.amount)                     -- amount plus commission
  end)
end)

describe("driving the fake QIWI", function()
  local qiwi = require "qiwi"
  local fake, client

  before_each(function()
    fake = qiwi.fake.new { token = "test-token", wallet = "79111234567", balance = 1000 }
    -- retries = 0: an injected fault comes back at once instead of being retried
    client = assert(qiwi.new { token = "test-token", wallet = "79111234567", transport = fake,
                               retries = 0, history_rate = false })
  end)

  it("add_payment: money arrives and shows in the history", function()
    local txn = fake:add_payment { amount = 250, comment = "order 42" }
    assert.equal(1250, fake:balance())
    local page = assert(client:history { rows = 1, operation = "IN" })
    assert.equal(txn, page.data[1].txnId)
    assert.equal("order 42", page.data[1].comment)
  end)

  it("set_balance / balance / balance_kopecks / default_account", function()
    fake:set_balance("USD", "12.50")     -- an alias, a currency code (840) or its name
    assert.equal(12.5, fake:balance("USD"))
    assert.equal(100000, fake:balance_kopecks())      -- RUB when no account is named
    assert.equal("qw_wallet_rub", fake:default_account())
  end)

  it("fail_next: the next matching request gets this answer", function()
    fake:fail_next { status = 503, path_pattern = "/accounts$" }
    local res, err = client:accounts()
    assert.is_nil(res)
    assert.equal(503, err.status)
    assert.is_true(err.retryable)
    assert.truthy(client:accounts())     -- count = 1 (the default): the next one is served
  end)

  it("fail_next: a dropped connection, and a payment whose answer is lost", function()
    fake:fail_next { drop = true }
    local _, err = client:cross_rates()
    assert.equal("network", err.kind)

    fake:fail_next { served = true, drop = true }     -- paid, then the answer is lost
    local _, perr = client:transfer { to = "+79990001122", amount = 10, id = "2001" }
    assert.equal("network", perr.kind)
    assert.equal(990, fake:balance())
    -- the same id again: QIWI answers with the payment already made
    local paid = assert(client:transfer { to = "+79990001122", amount = 10, id = "2001" })
    assert.equal("2001", paid.id)
    assert.equal(990, fake:balance())                 -- paid once
  end)

  it("clear_faults: drops every fault still waiting", function()
    fake:fail_next { status = 500, count = -1 }      -- -1: until cleared
    assert.is_nil(client:cross_rates())
    fake:clear_faults()
    assert.truthy(client:cross_rates())
  end)

  it("set_delay: late answers, with no real waiting", function()
    local slept = 0
    local slow = qiwi.fake.new { sleep = function(s) slept = slept + s end }
    local c = assert(qiwi.new { token = "test-token", transport = slow, timeout = 2, retries = 0 })
    slow:set_delay(5000)                 -- ms, longer than the client's timeout
    local _, err = c:cross_rates()
    assert.equal("timeout", err.kind)
    assert.equal(2, slept)               -- the fake "waited" out the timeout through `sleep`
  end)

  it("set_restricted: outgoing payments are refused", function()
    fake:set_restricted(true)
    assert.equal("OUTGOING_PAYMENTS", client:restrictions()[1].restrictionCode)
    local res, err = client:transfer { to = "+79990001122", amount = 10 }
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal(1000, fake:balance())
  end)

  it("set_nickname", function()
    fake:set_nickname("coffee-shop")
    assert.equal("coffee-shop", client:nickname().nickname)
  end)

  it("set_identification / identification_level", function()
    fake:set_identification("SIMPLE")
    assert.equal("SIMPLE", client:identification().type)
    assert.equal("SIMPLE", fake:identification_level())
  end)

  it("set_time / advance / now: the fake's clock", function()
    assert.equal(1700000000, fake:set_time(1700000000))   -- frozen there
    assert.equal(1700003600, fake:advance(3600))
    local txn = fake:add_payment { amount = 5 }
    assert.equal(1700003600, fake:payment(txn).date)
    fake:set_time(nil)                                     -- running again
    assert.is_true(fake:now() > 1700003600)
  end)

  it("set_null_balance: balance = null, which accounts() asks again for", function()
    fake:set_null_balance("qw_wallet_rub", true)
    local accounts = assert(client:accounts())
    assert.equal(1000, accounts.accounts[1].balance.amount)
    assert.equal("timeout=1000&alias=qw_wallet_rub", fake.requests[#fake.requests].query)
  end)

  it("add_bill / bill: an invoice to pay", function()
    local id = fake:add_bill { amount = 100, comment = "invoice 7" }
    assert.truthy(client:pay_bill(id, 643))
    assert.equal("PAID", fake:bill(id).status)
    assert.equal(900, fake:balance())
  end)

  it("requests: every request the fake got, oldest first", function()
    assert.truthy(client:transfer { to = "+79990001122", amount = 10, comment = "lunch" })
    local req = fake.requests[#fake.requests]
    assert.equal("POST", req.method)
    assert.equal("/sinap/api/v2/terms/99/payments", req.path)
    assert.equal("lunch", req.json.comment)
    assert.equal("Bearer test-token", req.headers.authorization)
  end)

  it("payment_by_client_id / payment / history: the fake's own records", function()
    local paid = assert(client:transfer { to = "+79990001122", amount = 10, id = "3001" })
    assert.equal(paid.transaction.id, fake:payment_by_client_id("3001").transaction.id)
    local record = fake:payment(paid.transaction.id)
    assert.equal("OUT", record.type)
    assert.equal(1000, record.sum)                 -- kopecks
    assert.equal(record.txn_id, fake:history()[1].txn_id)   -- newest first
  end)

  it("webhook / last_notification: what QIWI would have sent", function()
    assert.truthy(client:register_webhook("https://shop.example/qiwi", "IN"))
    fake:add_payment { amount = 75 }
    local hook, note = fake:webhook(), fake:last_notification()
    assert.equal("https://shop.example/qiwi", hook.url)
    local verified = assert(qiwi.webhook.verify(note.body, hook.key))
    assert.equal(75, verified.payment.sum.amount)
  end)

  it("set_master / master_active / card_order / master_cards: QIWI Master", function()
    fake:set_master(true)                          -- the package is bought
    local order = assert(client:order_card())
    assert.truthy(client:submit_card_order(order.id))
    assert.equal("COMPLETED", fake:card_order(order.id).status)
    assert.equal(1, #fake:master_cards())
    assert.is_true(fake:master_active())
  end)

  it("p2p_keys / sent_cheques: more of the fake's logs", function()
    assert.truthy(client:create_p2p_keys { name = "shop" })
    assert.equal("shop", fake:p2p_keys()[1].name)
    local txn = fake:add_payment { amount = 5 }
    assert.truthy(client:send_receipt(txn, { type = "IN", email = "me@example.com" }))
    assert.equal("me@example.com", fake.sent_cheques[1].email)
  end)

  it("reset_rate_limit: lifts the 423 of QIWI's history limit", function()
    local f = qiwi.fake.new { rate_limit = 1 }     -- one history request a minute
    local c = assert(qiwi.new { token = "test-token", transport = f, retries = 0,
                                history_rate = false })
    assert.truthy(c:history { rows = 5 })
    local _, err = c:history { rows = 5 }
    assert.equal(423, err.status)
    f:reset_rate_limit()
    assert.truthy(c:history { rows = 5 })
  end)

  it("reset: back to the seeded state", function()
    assert.truthy(client:transfer { to = "+79990001122", amount = 10 })
    local log = fake.requests
    fake:reset()
    assert.equal(1000, fake:balance())
    assert.equal(0, #log)                          -- the same table, emptied
  end)

  it("handle: one request straight to the fake, no client", function()
    local status, _, body = fake:handle { method = "GET", path = "/person-profile/v1/profile/current",
                                          headers = { Authorization = "Bearer test-token" } }
    assert.equal(200, status)
    assert.equal(79111234567, qiwi.json.decode(body).authInfo.personId)
  end)
end)

describe("a QIWI notification (the docs' worked example)", function()
  local qiwi = require "qiwi"
  local key = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="
  local body = '{"messageId":"7814c49d-2d29-4b14-b2dc-36b377c76156",'
    .. '"hookId":"5e2027d1-f5f3-4ad1-b409-058b8b8a8c22","payment":{"txnId":"13353941550",'
    .. '"date":"2018-06-27T13:39:00+03:00","type":"IN","status":"SUCCESS","errorCode":"0",'
    .. '"personId":78000008000,"account":"+79161112233","comment":"","provider":7,'
    .. '"sum":{"amount":1,"currency":643},"commission":{"amount":0,"currency":643},'
    .. '"total":{"amount":1,"currency":643},"signFields":"sum.currency,sum.amount,type,account,txnId"},'
    .. '"hash":"f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243",'
    .. '"version":"1.0.0","test":false}'

  it("verifies", function()
    local note = assert(qiwi.webhook.verify(body, key))
    assert.equal("13353941550", note.payment.txnId)
    assert.equal(1, note.payment.sum.amount)
  end)

  it("refuses a changed amount", function()
    local forged = body:gsub('"sum":{"amount":1,', '"sum":{"amount":100,')
    local note, err = qiwi.webhook.verify(forged, key)
    assert.is_nil(note)
    assert.equal("signature", err.code)    -- a receiver answers 403
  end)

  it("refuses what is not a notification", function()
    local note, err = qiwi.webhook.verify("{}", key)
    assert.is_nil(note)
    assert.equal("format", err.code)       -- a receiver answers 400
  end)
end)

-- The README's `.busted`, verbatim.
local BUSTED_FILE = [==[
-- .busted: lua-qiwi from a checkout beside this project, built with `make`
local qiwi_dir = "../lua-qiwi"
local lua = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
return {
  default = {
    ROOT = { "spec" },
    lpath = qiwi_dir .. "/lua/?.lua;" .. qiwi_dir .. "/lua/?/init.lua;src/?.lua;src/?/init.lua",
    cpath = qiwi_dir .. "/build/" .. lua .. "/?.so",
  },
}
]==]

local util = require "util"

-- The checkout this file belongs to.
local ROOT = util.repo_root()

local function read(path) return assert(util.read_file(path)) end
local sh_quote = util.shq

-- The ```lua blocks of the README section titled `title`.
local function readme_blocks(title)
  local readme = read(ROOT .. "/README.md")
  local start = readme:find("\n## " .. title .. "\n", 1, true)
  assert(start, "README.md has no section '" .. title .. "'")
  local stop = readme:find("\n## ", start + 1, true) or #readme + 1
  local section = readme:sub(start, stop)
  local blocks = {}
  for code in section:gmatch("\n```lua\n(.-\n)```") do blocks[#blocks + 1] = code end
  return blocks
end

describe("README.md's testing section", function()
  it("prints exactly the examples this spec runs", function()
    local blocks = readme_blocks("Testing your own code")
    assert.is_true(#blocks >= 4, "expected the examples and the .busted file")
    local source = read(debug.getinfo(1, "S").source:sub(2))
    for i, code in ipairs(blocks) do
      assert.truthy(source:find(code, 1, true) or code == BUSTED_FILE,
        "README block " .. i .. " is not in spec/docs_examples_spec.lua:\n" .. code)
    end
    local found = false
    for _, code in ipairs(blocks) do found = found or code == BUSTED_FILE end
    assert.is_true(found, "the README's .busted differs from BUSTED_FILE")
  end)

  it("gives a .busted that runs a project's specs against this checkout", function()
    local lua = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    -- make test builds every interpreter's core first; a missing one is a failure
    local core = io.open(ROOT .. "/build/" .. lua .. "/qiwi/core.so", "rb")
    assert.is_truthy(core, "needs build/" .. lua .. "/qiwi/core.so (make LUA=" .. lua .. ")")
    core:close()
    local busted = io.open("/usr/bin/busted", "rb")
    assert.is_truthy(busted, "needs /usr/bin/busted (Debian's lua-busted)")
    busted:close()
    local tmp = util.tmpdir("docs")
    local app = tmp .. "/app"
    assert.truthy(os.execute("mkdir -p " .. sh_quote(app .. "/spec")
      .. " && ln -s " .. sh_quote(ROOT) .. " " .. sh_quote(tmp .. "/lua-qiwi")))
    local write = util.write_file
    write(app .. "/.busted", BUSTED_FILE)
    write(app .. "/spec/app_spec.lua", [[
describe("an app", function()
  it("finds lua-qiwi and its fake", function()
    local qiwi = require "qiwi"
    local client = assert(qiwi.new { token = "test-token", transport = qiwi.fake.new {} })
    assert.truthy(client:accounts())
  end)
end)
]])
    local p = io.popen("cd " .. sh_quote(app) .. " && " .. lua .. " /usr/bin/busted 2>&1")
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf " .. sh_quote(tmp))
    assert.truthy(out:find("1 success", 1, true) and out:find("0 failures", 1, true)
      and out:find("0 errors", 1, true), out)
  end)
end)
