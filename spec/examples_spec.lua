-- Every script of examples/ run as a user runs it: a real process of the
-- interpreter running the specs (the checkout's modules and core, from an
-- empty directory), against the fake when no QIWI_TOKEN is set, and the
-- payouts also twice against `qiwi fake`, a real HTTPS server.
--
-- One entry of EXAMPLES per script; the webhook receiver (nginx) is in the
-- #nginx block below.
local qiwi = require "qiwi"
local util = require "util"
local cli = require "qiwi_cli"

local decode = qiwi.json.decode
local EX = util.repo_root() .. "/examples/"

local function run(script, o)
  o = o or {}
  o.command = cli.lua() .. " " .. util.shq(EX .. script)
  return cli.run(o.argv or {}, o)
end

-- How many lines of `s` match `pattern`.
local function count(s, pattern)
  local n = 0
  for line in s:gmatch("[^\n]+") do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

-- name, then a check of {code, out, err} of the script run without a token.
local EXAMPLES = {
  { "quickstart.lua", function(r)
    assert.truthy(r.out:find("using the built-in fake", 1, true))
    assert.truthy(r.out:find("qw_wallet_rub%s+15320%.75 RUB"))
    assert.equal(10, count(r.out:match("Last payments\n(.*)$"), "^  %d%d%d%d%-"))
  end },
  { "history_export.lua", function(r)
    local rows = {}
    for line in r.out:gmatch("([^\r\n]*)\r\n") do rows[#rows + 1] = line end
    assert.equal("txnId,date,type,status,amount,currency,commission,total,account,comment", rows[1])
    assert.equal(1 + 75, #rows) -- three pages of 25
    assert.truthy(rows[2]:find("^%d+,%d%d%d%d%-%d%d%-%d%dT[%d:]+%+03:00,%u+,%u+,%d+%.%d%d,643,"))
    assert.truthy(r.err:find("75 payments of the last 30 days", 1, true))
  end },
  { "payouts.lua", function(r)
    assert.equal(3, count(r.out, "^order [%d%-]+: Accepted [%d.]+ RUB to %+%d+, txn %d+$"))
    assert.equal(3, count(r.out, "%(paid before: QIWI answered the earlier payment%)"))
    assert.truthy(r.out:find("balance now 3550.10 RUB", 1, true))
  end },
  { "watcher.lua", function(r)
    -- three arrive while it watches, one of them WAITING until SUCCESS: each handed over once
    assert.equal(3, count(r.out, "^paid  %d%d%d%d%-%d%d%-%d%dT[%d:]+%+03:00 +[%d.]+ RUB  from %+%d+ +\"order %d\" +txn %d+ %(poll%)$"))
    assert.truthy(r.out:find("3 payment(s) handed over in 3 rounds, 0 handler failure(s)", 1, true))
  end, args = true },
}

describe("examples/", function()
  for _, ex in ipairs(EXAMPLES) do
    it(ex[1] .. " runs against the built-in fake", function()
      local dir = ex.args and util.tmpdir("example-" .. ex[1]:gsub("%.lua$", ""))
      local r = run(ex[1], { argv = dir and { dir } })
      assert.equal(0, r.code, r.err)
      ex[2](r)
      if dir then
        -- again on the same store: the cursor and the ledger carry over, and
        -- the new run's payments are handed over like the first's
        r = run(ex[1], { argv = { dir } })
        assert.equal(0, r.code, r.err)
        ex[2](r)
        util.exec("rm -rf " .. util.shq(dir))
      end
    end)
  end

  it("every script of examples/ has its entry here", function()
    local listed = {}
    for _, ex in ipairs(EXAMPLES) do listed[ex[1]] = true end
    for _, f in ipairs(util.lines("ls " .. util.shq(EX) .. " | grep '[.]lua$'")) do
      assert.is_true(listed[f] == true, f .. " is not run by examples_spec.lua")
    end
  end)

  it("payouts.lua run twice against `qiwi fake` pays each order once", function()
    local fake = assert(cli.start_fake())
    finally(function() fake:stop() end)
    fake:call("set_balance", '["qw_wallet_rub",5000]')
    local env = fake:client_env()
    local first = run("payouts.lua", { env = env })
    local second = run("payouts.lua", { env = env })
    assert.equal(0, first.code, first.err)
    assert.equal(0, second.code, second.err)
    local function txns(out)
      local t = {}
      for id in out:gmatch("txn (%d+)") do t[#t + 1] = id end
      return t
    end
    assert.equal(3, #txns(first.out))
    assert.same(txns(first.out), txns(second.out))
    assert.truthy(second.out:find("balance now 3550.10 RUB", 1, true))
    assert.equal(3550.1, decode(fake:call("balance", "[]")).result)
  end)
end)

describe("examples/webhook_receiver #nginx", function()
  it("run.lua: the receiver in nginx handles the fake's notification once, refuses a forgery", function()
    util.need_luajit_core()
    local r = run("webhook_receiver/run.lua")
    assert.equal(0, r.code, r.err)
    local txn = r.out:match("signed a notification for txn (%d+)")
    assert.truthy(txn, r.out)
    assert.truthy(r.out:find("POST as-sent    -> 200\nPOST repeated   -> 200\nPOST forged     -> 403\n", 1, true), r.out)
    local handled = r.out:match("what the receiver handled:\n(.*)$")
    assert.equal("handled: txn " .. txn .. " IN SUCCESS 250.00 643\n", handled)
  end)
end)
