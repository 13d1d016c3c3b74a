-- The watcher section of make bench: catching up a backlog of incoming
-- payments (BENCH_WATCH_PAYMENTS, 10,000) with client:watch against the
-- fake QIWI over HTTPS (nginx), under QIWI's real history limit: the fake
-- answers 423 past 100 history calls in any 60 s and then blocks for 5
-- minutes, and the client's limiter counts 100 calls per 60 s plus its
-- margin (history_rate.margin, 0.5 s here: the fake is on loopback, where a
-- call reaches it within milliseconds of being counted).
--
--   lua5.4 bench/watch.lua              this section alone (make bench-watch)
--   dofile("bench/watch.lua").run{ summary_row = }   from bench/run.lua
--
-- What is measured: the history calls' times (a transport wrapper notes
-- when each was sent), the payments delivered and when, the 423 answers.
-- The limit allows 100 calls in any 60 s; the first 100 may go at once, so
-- the rate the limit allows is reached once the window is full: from call
-- 101 on, every further 100 calls take at least 60 s. The figure is that
-- steady-state rate, (calls after the 100th) / (time from the 100th to the
-- last) as a ratio to 100 a minute, with the payments a minute it gives
-- (50 rows a page) beside it; the goal is >= 0.95 with zero 423 answers.
local TREE = os.getenv("BENCH_TREE") or "."
package.path = TREE .. "/lua/?.lua;" .. TREE .. "/lua/?/init.lua;spec/?.lua;spec/support/?.lua;" .. package.path
package.cpath = TREE .. "/build/lua5.4/?.so;" .. package.cpath

local qiwi = require "qiwi"
local core = require "qiwi.core"
local https_fake = require "https_fake"

local fmt = string.format
local monotonic = core.monotonic

local _M = {}

local TOKEN, WALLET = "bench-watch-token", "79111234567"

local function seed(srv, n, t0)
  -- one keep-alive session posting the fake's receive helper: 10,000 curl
  -- processes would take minutes
  local t = assert(require("qiwi.transport.curl").new { ca_file = srv.ca_file, timeout = 10 })
  local url = srv.base_url .. "/__fake/call"
  local headers = { "Content-Type: application/json" }
  for i = 1, n do
    local body = qiwi.json.encode { method = "receive", args = { { from = "79260000000", amount = i % 5000 + 1,
                                                                  comment = "order " .. i, date = t0 + i } } }
    local status, res = t:request("POST", url, headers, body, 10)
    assert(status == 200, "seeding failed: " .. tostring(status) .. " " .. tostring(res))
  end
  t:close()
end

function _M.run(o)
  o = o or {}
  local n = tonumber(os.getenv("BENCH_WATCH_PAYMENTS")) or (os.getenv("BENCH_QUICK") and 3000 or 10000)
  print(fmt("== watcher: catching up a backlog of %d incoming payments under QIWI's history limit", n))
  print("   the fake over HTTPS, 100 history calls per 60 s (423 past it), 50 rows a page")
  local srv = https_fake.start { fake = { token = TOKEN, wallet = WALLET, history_pages = 0 },
                                 access_log = false, log_level = "error" }
  local ok, err = pcall(function()
    local t0 = os.time() - n - 60
    local s0 = monotonic()
    seed(srv, n, t0)
    print(fmt("   seeded in %.1f s", monotonic() - s0))
    local curl = assert(require("qiwi.transport.curl").new { ca_file = srv.ca_file, timeout = 30 })
    local sent = {}
    local wrapper = { request = function(_, method, url, ...)
      if url:find("/payment-history/", 1, true) then sent[#sent + 1] = monotonic() end
      return curl:request(method, url, ...)
    end }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = srv.base_url, transport = wrapper,
                                connect_timeout = 1, history_rate = { limit = 100, window = 60, margin = 0.5 } })
    local delivered, distinct, seen, last_at = 0, 0, {}, nil
    local w = assert(c:watch { since = t0, on_payment = function(p)
      delivered = delivered + 1
      if not seen[p.txnId] then seen[p.txnId], distinct = true, distinct + 1 end
      last_at = monotonic()
    end })
    local start = monotonic()
    local total, werr = 0, nil
    while delivered < n and monotonic() - start < 900 do
      local got, perr = w:poll()
      if not got then werr = perr break end
      if got == 0 then break end
      total = total + got
    end
    local elapsed = (last_at or monotonic()) - start
    local blocked = 0
    for _, r in ipairs(srv:requests()) do
      if r.status == 423 then blocked = blocked + 1 end
    end
    local calls = #sent
    local steady, ratio = nil, nil
    if calls > 100 then
      steady = (calls - 100) / (sent[calls] - sent[100]) * 60
      ratio = steady / 100
    end
    print(fmt("   delivered %d of %d (%d distinct txnIds) in %.1f s; %d history calls, %.4f per payment; %d answers 423",
      delivered, n, distinct, elapsed, calls, calls / math.max(delivered, 1), blocked))
    if werr then print("   last error: " .. tostring(werr)) end
    if steady then
      print(fmt("   steady state (calls 100..%d): %.1f history calls a minute = %.0f payments a minute;"
        .. " %.3f of the limit", calls, steady, steady * 50, ratio))
    else
      print("   fewer than 101 history calls: the window never filled (use BENCH_WATCH_PAYMENTS >= 5050)")
    end
    if o.summary_row then
      o.summary_row("watcher history rate vs QIWI's limit", ratio and { ratio },
                    ratio and fmt("%.3fx", ratio) or "n/a", ">= 0.95x",
                    ratio and ratio >= 0.95 and blocked == 0 and delivered == n and distinct == n or nil)
    end
    curl:close()
    return total
  end)
  srv:stop()
  print()
  if not ok then error(err, 0) end
end

-- run as a script (make bench-watch), not loaded by bench/run.lua
if arg and arg[0] and arg[0]:find("watch%.lua$") then _M.run() end

return _M
