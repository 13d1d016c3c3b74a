-- State shared between processes and hosts, end to end: real child
-- processes (spec/support/children.lua), a real redis-server
-- (spec/support/redis.lua), a real file store, and the fake QIWI over real
-- HTTPS (spec/support/https_fake.lua). Each test would fail if its
-- guarantee broke:
--   1. fresh payment ids: 16 processes, each pid 1 of its own pid namespace,
--      in two "hosts" of 8 sharing one Redis, pay at once: 0 duplicate ids
--      on the wire, also with /dev/urandom gone from every process. As a
--      contrast, without a shared store (a memory store in each process)
--      duplicates are counted, not forbidden, and any payment whose id
--      collided must have been paid again under another id (or reported
--      failed): none lost.
--   2. the history rate limit: 4 processes sharing a file store, then 4
--      sharing Redis, 32 history calls at 10 per 2 s (counted by the client
--      over 2 s + a margin): as the fake's nginx saw them, no 2 s window
--      holds more than 10. Without the margin the count is only measured.
--   3. Redis stopped mid-run: calls fail with kind "store" and nothing
--      reaches QIWI; Redis back on the same port: calls succeed again.
--   4. kill -9 between a payment's send and its answer, then the same
--      idempotency_key from a new process: paid once.
-- The server's view of when a request arrived comes from an access log of
-- its own ($msec - $request_time), the fake's request log having no times.
local children = require "children"
local https_fake = require "https_fake"
local redis_harness = require "redis"
local ids = require "qiwi.ids"
local qiwi = require "qiwi"
local util = require("pki").util

local wall = children.wall
local TOKEN = "shared-state-" .. util.random_hex(8)
local WALLET = "79111234567"
local BALANCE = 100000          -- roubles: far more than any test spends
local PAY_PATH = "/sinap/api/v2/terms/99/payments"

local N_PAY = 25                -- transfers per child in the fleet
local HOSTS, PER_HOST = 2, 8    -- 16 children
local M_HIST = 8                -- history calls per child
local LIMIT, WINDOW = 10, 2
-- history_rate.margin: the client counts over window + margin, for the time
-- a call takes from being let through to reaching the server. The default
-- (2 x connect_timeout: a connect and a TLS handshake) would make these runs
-- take 10 times as long; the children's connections are up before they
-- start, so half a second is plenty.
local MARGIN = 0.5

local function say(fmt, ...)
  print(("[shared] " .. fmt):format(...))
end

local function kopecks(v)
  return math.floor(tonumber(v) * 100 + 0.5)
end

-- The largest number of times in any window [t, t + w).
local function max_in_window(times, w)
  local t = {}
  for i, v in ipairs(times) do t[i] = v end
  table.sort(t)
  local best, j = 0, 1
  for i = 1, #t do
    while t[i] - t[j] >= w do j = j + 1 end
    if i - j + 1 > best then best = i - j + 1 end
  end
  return best
end

local function lines_of(out, tag)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    if line:sub(1, #tag + 1) == tag .. " " then
      local f = {}
      for w in line:gmatch("%S+") do f[#f + 1] = w end
      list[#list + 1] = f
    end
  end
  return list
end

---------------------------------------------------------------------------
-- Child scripts (after children.lua's prelude: paths, ready_and_wait, ARGS)

-- One process of the fleet: N transfers with fresh ids, all at once.
local PAY = [[
local unpack = table.unpack or unpack
local base_url, ca_file, token, wallet, kind, port, prefix, n, name, dir = unpack(ARGS)
local qiwi = require "qiwi"
io.write("PID ", core.getpid(), "\n")
local f = io.open("/dev/urandom", "rb")
local bytes = f and f:read(4)
if f then f:close() end
io.write("URANDOM ", bytes and #bytes or 0, "\n")
local store
if kind == "redis" then
  store = assert(qiwi.store.redis { port = tonumber(port), prefix = prefix, timeout = 10 })
else
  store = qiwi.store.memory()
end
local c = assert(qiwi.new { token = token, wallet = wallet, base_url = base_url, ca_file = ca_file,
                            store = store, timeout = 60 })
-- connections up before the start: TLS to the fake, TCP to Redis
assert(c:accounts())
if kind == "redis" then
  local _, err = store:get("warm-up")
  assert(err == nil, tostring(err))
end
ready_and_wait(dir, name)
io.write("START ", string.format("%.6f", wall()), "\n")
local to = "7999" .. string.format("%07d", tonumber(name))
for j = 1, tonumber(n) do
  local amount = string.format("1.%02d", j)
  local res, err = c:transfer { to = to, amount = amount }
  if res then
    io.write("OK ", j, " ", to, " ", amount, " ", res.id, " ", res.transaction.id, "\n")
  else
    io.write("ERR ", j, " ", to, " ", amount, " ", tostring(err.kind), " ", tostring(err.code), " ",
             (tostring(err):gsub("\n", " ")), "\n")
  end
end
io.write("END ", string.format("%.6f", wall()), "\n")
]]

-- M history calls under a shared limit, every kind of history call.
local HIST = [[
local unpack = table.unpack or unpack
local base_url, ca_file, token, wallet, kind, target, prefix, m, limit, window, margin, name, dir = unpack(ARGS)
local qiwi = require "qiwi"
local store
if kind == "redis" then
  store = assert(qiwi.store.redis { port = tonumber(target), prefix = prefix, timeout = 10 })
else
  store = assert(qiwi.store.file(target))
end
local c = assert(qiwi.new { token = token, wallet = wallet, base_url = base_url, ca_file = ca_file,
                            store = store, timeout = 60,
                            history_rate = { limit = tonumber(limit), window = tonumber(window),
                                             margin = tonumber(margin) } })
assert(c:accounts())  -- not a history call: the TLS connection, before the start
ready_and_wait(dir, name)
local now = os.time()
for k = 1, tonumber(m) do
  local b = wall()
  local res, err
  if k % 2 == 1 then
    res, err = c:history { rows = 5 }
  else
    res, err = c:history_total { start_date = now - 86400, end_date = now }
  end
  local a = wall()
  io.write("CALL ", k, " ", string.format("%.6f %.6f", b, a), " ",
           res and "ok" or (tostring(err.kind) .. " " .. (tostring(err):gsub("\n", " "))), "\n")
end
io.write("DONE\n")
]]

-- Pays and reads the history in a loop for `dur` seconds (Redis goes away
-- and comes back meanwhile), or once each (dur 0).
local LOOP = [[
local unpack = table.unpack or unpack
local base_url, ca_file, token, wallet, port, prefix, dur, name, dir = unpack(ARGS)
local qiwi = require "qiwi"
local store = assert(qiwi.store.redis { port = tonumber(port), prefix = prefix, timeout = 1 })
local c = assert(qiwi.new { token = token, wallet = wallet, base_url = base_url, ca_file = ca_file,
                            store = store, timeout = 30, history_rate = { limit = 1000, window = 60 } })
local start = tonumber(dur) > 0 and ready_and_wait(dir, name) or wall()
local k = 0
repeat
  k = k + 1
  local b = wall()
  local res, err, what
  if k % 2 == 1 then
    what = "pay"
    res, err = c:transfer { to = "79990001234", amount = "1.00" }
  else
    what = "history"
    res, err = c:history { rows = 1 }
  end
  local a = wall()
  io.write("CALL ", k, " ", what, " ", string.format("%.6f %.6f", b, a), " ",
           res and "ok" or tostring(err.kind), " ", res and "-" or tostring(err.retryable), "\n")
  if tonumber(dur) > 0 then core.sleep(0.02) end
until wall() >= start + tonumber(dur)
io.write("DONE\n")
]]

-- One keyed transfer; prints its pid first, so that it can be killed.
local KEYED = [[
local unpack = table.unpack or unpack
local base_url, ca_file, token, wallet, key, amount = unpack(ARGS)
local qiwi = require "qiwi"
io.write("PID ", core.getpid(), "\n")
io.flush()
local c = assert(qiwi.new { token = token, wallet = wallet, base_url = base_url, ca_file = ca_file,
                            timeout = 60 })
local res, err = c:transfer { to = "79990009999", amount = amount, idempotency_key = key }
if res then
  io.write("OK ", res.id, " ", res.transaction.id, " ", tostring(res.replayed), "\n")
else
  io.write("ERR ", tostring(err.kind), " ", tostring(err), "\n")
end
]]

---------------------------------------------------------------------------

describe("shared state across processes", function()
  local srv, rds, dir, timed_log

  local function fake_opts(extra)
    local o = { token = TOKEN, wallet = WALLET, balance = BALANCE, history_pages = 0, rate_limit = 1000000 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  -- The server's access log from byte `from` on: arrival time, method, path, status.
  local function log_size()
    local f = io.open(timed_log, "rb")
    if not f then return 0 end
    local n = f:seek("end")
    f:close()
    return n
  end

  local function server_log(from)
    local f = assert(io.open(timed_log, "rb"))
    f:seek("set", from or 0)
    local s = f:read("*a")
    f:close()
    local out = {}
    for msec, rt, method, path, status in s:gmatch("([%d.]+) ([%d.]+) (%S+) (%S+) (%d+)\n") do
      out[#out + 1] = { t = tonumber(msec) - tonumber(rt), method = method, path = path, status = tonumber(status) }
    end
    return out
  end

  local function payments_on_wire()
    local list = {}
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" and r.path == PAY_PATH then list[#list + 1] = r end
    end
    return list
  end

  local function balance_kopecks()
    return srv:call("balance_kopecks")
  end

  setup(function()
    dir = children.tmpdir("spec")
    timed_log = dir .. "/timed.log"
    srv = https_fake.start {
      fake = fake_opts(),
      start_timeout = 20,
      http_extra = "    log_format shared_timed '$msec $request_time $request_method $uri $status';",
      server_extra = '        access_log "' .. timed_log .. '" shared_timed;',
    }
    rds = redis_harness.start { start_timeout = 20 }
  end)

  teardown(function()
    if srv then srv:stop() end
    if rds then rds:stop() end
    children.cleanup()
  end)

  -------------------------------------------------------------------------
  -- 1. Fresh ids

  -- Runs the fleet: HOSTS groups of PER_HOST children, each pid 1 of its own
  -- pid namespace. Returns what the children said and what went on the wire.
  local function fleet(kind, prelude)
    srv:reset(fake_opts())
    local bdir = children.tmpdir("fleet")
    local script = children.script(bdir, "pay", PAY)
    local prefix = "fleet:" .. util.random_hex(4) .. ":"
    local kids = {}
    local t0 = wall()
    for host = 1, HOSTS do
      for p = 1, PER_HOST do
        local name = tostring((host - 1) * PER_HOST + p)
        kids[#kids + 1] = children.spawn {
          script = script, unshare = true, prelude = prelude,
          args = { srv.base_url, srv.ca_file, TOKEN, WALLET, kind, rds.port, prefix, N_PAY, name, bdir },
        }
      end
    end
    local start, seen = children.go(bdir, #kids, 0.3, 90)
    local outs = {}
    for i, k in ipairs(kids) do outs[i] = k:wait() end
    assert(start, ("only %s of %d children got ready:\n%s"):format(tostring(seen), #kids, table.concat(outs, "\n")))
    local run = { kind = kind, outs = outs, ok = {}, err = {}, pids = {}, urandom = {}, setup = start - t0 }
    local first, last = math.huge, 0
    for i, out in ipairs(outs) do
      local pid = lines_of(out, "PID")[1]
      run.pids[i] = pid and tonumber(pid[2])
      local u = lines_of(out, "URANDOM")[1]
      run.urandom[i] = u and tonumber(u[2])
      for _, f in ipairs(lines_of(out, "OK")) do
        run.ok[#run.ok + 1] = { child = i, j = tonumber(f[2]), to = f[3], amount = f[4], id = f[5], txn = f[6] }
      end
      for _, f in ipairs(lines_of(out, "ERR")) do
        run.err[#run.err + 1] = { child = i, j = tonumber(f[2]), to = f[3], amount = f[4], kind = f[5], code = f[6],
                                  line = table.concat(f, " ") }
      end
      local s, e = lines_of(out, "START")[1], lines_of(out, "END")[1]
      if s then first = math.min(first, tonumber(s[2])) end
      if e then last = math.max(last, tonumber(e[2])) end
    end
    run.seconds = last - first
    run.wire = payments_on_wire()
    run.ledger = srv:call("history")
    run.balance = balance_kopecks()
    return run
  end

  -- Counts ids that went out more than once, and sorts each repeat: the
  -- same payment sent again (a retry), or another payment under an id taken
  -- already (a collision), which must have been paid again under a new id.
  local function analyse(run)
    local by_id, dups = {}, 0
    for _, r in ipairs(run.wire) do
      local id = r.json.id
      by_id[id] = by_id[id] or {}
      table.insert(by_id[id], r)
    end
    local collided, resent = {}, 0
    for _, list in pairs(by_id) do
      if #list > 1 then
        dups = dups + #list - 1
        local first = list[1].json
        for i = 2, #list do
          local r = list[i].json
          if r.fields.account == first.fields.account and kopecks(r.sum.amount) == kopecks(first.sum.amount) then
            resent = resent + 1
          else
            collided[#collided + 1] = { id = r.id, account = r.fields.account, k = kopecks(r.sum.amount) }
          end
        end
      end
    end
    run.dups, run.collided, run.resent = dups, collided, resent
    local distinct = 0
    for _ in pairs(by_id) do distinct = distinct + 1 end
    run.distinct_ids = distinct
    return run
  end

  -- The ledger holds exactly the payments the children were told were
  -- made, each once, under the id they were told; the balance agrees.
  local function check_ledger(run)
    local paid = {}
    for _, p in ipairs(run.ledger) do
      assert.equal("OUT", p.type)
      assert.equal("SUCCESS", p.status)
      local key = p.account .. "|" .. p.sum
      assert.is_nil(paid[key], "paid twice: " .. key)
      paid[key] = p
    end
    local spent = 0
    for _, ok in ipairs(run.ok) do
      local p = paid["+" .. ok.to .. "|" .. kopecks(ok.amount)]
      assert.is_table(p, "a payment reported made is not in the ledger: " .. ok.to .. " " .. ok.amount)
      assert.equal(ok.id, p.trm_txn_id)
      assert.equal(ok.txn, tostring(p.txn_id))
      spent = spent + p.sum
    end
    for _, e in ipairs(run.err) do
      -- a payment given up is one the child was told was not made
      assert.is_nil(paid["+" .. e.to .. "|" .. kopecks(e.amount)], "reported failed but paid: " .. e.line)
    end
    assert.equal(#run.ok, #run.ledger, "the ledger has payments no child was told of")
    assert.equal(BALANCE * 100 - spent, run.balance)
    -- every collision was paid again under another id
    for _, c in ipairs(run.collided) do
      local p = paid[c.account .. "|" .. c.k]
      if p then
        assert.are_not.equal(c.id, p.trm_txn_id, "a collided id was taken as paid")
      end
    end
    return spent
  end

  local function expected_spent()
    local per_child = 0
    for j = 1, N_PAY do per_child = per_child + 100 + j end
    return per_child * HOSTS * PER_HOST
  end

  -- /dev/urandom bound to /dev/null in each child's own mount namespace: the
  -- ids' random generator falls back to a seed of the time and the pid, and
  -- every pid is 1, so processes starting in the same millisecond draw the
  -- same numbers. Ids from a shared store must not care.
  local NO_URANDOM = "mount --bind /dev/null /dev/urandom"

  it("8 processes x 2 simulated hosts with identical pids paying at once -> 0 duplicate ids on the wire", function()
    assert.is_true(util.exec("unshare --pid --fork --mount-proc true 2>/dev/null"),
      "unshare --pid --fork --mount-proc does not work here (it needs root, or user namespaces)")
    local total = HOSTS * PER_HOST * N_PAY
    for _, prelude in ipairs { false, NO_URANDOM } do
      local run = analyse(fleet("redis", prelude or nil))
      for i, pid in ipairs(run.pids) do assert.equal(1, pid, "child " .. i .. " is not pid 1:\n" .. run.outs[i]) end
      if prelude then
        for i, n in ipairs(run.urandom) do assert.equal(0, n, "child " .. i .. " still reads /dev/urandom") end
      end
      assert.same({}, run.err, "payments that failed")
      assert.equal(total, #run.ok)
      assert.equal(total, #run.wire, "payments on the wire")
      assert.equal(total, run.distinct_ids)
      assert.equal(0, run.dups)
      assert.equal(expected_spent(), check_ledger(run))
      say("redis%s, %d processes (pid 1 each, all ready %.1f s after spawning) in %d hosts: %d payments"
        .. " in %.2f s, %d duplicate ids on the wire", prelude and " without /dev/urandom" or "", #run.pids,
        run.setup, HOSTS, #run.wire, run.seconds, run.dups)
    end

    -- The contrast: no shared store, a memory store in each process. The
    -- ids are random draws then, and may meet; a collision is answered with
    -- the other payment, and the client pays again under a new id.
    local run = analyse(fleet("memory"))
    for i, pid in ipairs(run.pids) do assert.equal(1, pid, "child " .. i .. " is not pid 1") end
    assert.same({}, run.err, "payments that failed")
    assert.equal(total, #run.ok)
    assert.equal(total, #run.ledger)
    assert.equal(expected_spent(), check_ledger(run))
    assert.equal(total + #run.collided + run.resent, #run.wire)
    say("memory (no shared store): %d payments, %d on the wire in %.2f s, %d duplicate ids"
      .. " (%d collisions paid again, %d resends of the same payment)",
      #run.ok, #run.wire, run.seconds, run.dups, #run.collided, run.resent)

    -- The same without /dev/urandom: collisions are expected here; none may
    -- lose a payment silently: each is paid again or reported failed.
    run = analyse(fleet("memory", NO_URANDOM))
    for i, n in ipairs(run.urandom) do assert.equal(0, n, "child " .. i .. " still reads /dev/urandom") end
    assert.equal(total, #run.ok + #run.err)
    for _, e in ipairs(run.err) do
      assert.equal("api", e.kind, e.line)
      assert.equal("id_reused", e.code, e.line)
    end
    check_ledger(run)
    say("memory without /dev/urandom (seed = time and pid 1): %d payments paid, %d given up (id_reused),"
      .. " %d on the wire, %d duplicate ids (%d collisions, %d resends)",
      #run.ok, #run.err, #run.wire, run.dups, #run.collided, run.resent)
  end)

  -------------------------------------------------------------------------
  -- 2. The history limit across processes

  -- strict: assert that no WINDOW on the server's clock holds more than
  -- LIMIT; otherwise only measure (the margin-0 contrast).
  local function history_run(kind, target, margin, strict_check)
    srv:reset(fake_opts { history_pages = 1 })
    local bdir = children.tmpdir("hist")
    local script = children.script(bdir, "hist", HIST)
    local prefix = "hist:" .. util.random_hex(4) .. ":"
    local from = log_size()
    local kids = {}
    for i = 1, 4 do
      kids[i] = children.spawn {
        script = script,
        args = { srv.base_url, srv.ca_file, TOKEN, WALLET, kind, target, prefix, M_HIST, LIMIT, WINDOW,
                 margin, tostring(i), bdir },
      }
    end
    local start, seen = children.go(bdir, #kids, 0.3, 90)
    local outs = {}
    for i, k in ipairs(kids) do outs[i] = k:wait() end
    assert(start, ("only %s of 4 children got ready:\n%s"):format(tostring(seen), table.concat(outs, "\n")))
    local calls = 0
    for i, out in ipairs(outs) do
      for _, f in ipairs(lines_of(out, "CALL")) do
        assert.equal("ok", f[5], "child " .. i .. ": " .. table.concat(f, " "))
        calls = calls + 1
      end
      assert.matches("\nDONE\n", out, 1, true)
    end
    assert.equal(4 * M_HIST, calls)
    local times = {}
    for _, r in ipairs(server_log(from)) do
      if r.path:find("^/payment%-history/") then
        assert.equal(200, r.status)
        times[#times + 1] = r.t
      end
    end
    table.sort(times)
    assert.equal(4 * M_HIST, #times, "history requests the server saw")
    local strict = max_in_window(times, WINDOW)
    -- the shortest time that held LIMIT + 1 of them (>= WINDOW: never too many)
    local closest = math.huge
    for i = 1, #times - LIMIT do closest = math.min(closest, times[i + LIMIT] - times[i]) end
    if strict_check then
      assert.is_true(strict <= LIMIT, ("%d history requests reached the server within %.3f s (limit %d per %d s)")
        :format(LIMIT + 1, closest, LIMIT, WINDOW))
    end
    -- one shared count: 32 calls at 10 per 2 s take 3 windows at least (four
    -- counts of their own would have let all of them out at once)
    local span = times[#times] - times[1]
    local need = (math.ceil(#times / LIMIT) - 1) * WINDOW
    assert.is_true(span >= need - 0.05, ("32 calls in %.3f s, at 10 per 2 s they need %.1f s"):format(span, need))
    say("%s store, margin %.2f s: 4 processes x %d history calls at %d per %d s: max %d in any %d s window"
      .. " (server's times); %d requests took %.3f s at the least; span %.2f s", kind, margin, M_HIST, LIMIT,
      WINDOW, strict, WINDOW, LIMIT + 1, closest, span)
    return strict
  end

  it("the history limit holds across processes sharing a file store, and sharing Redis", function()
    local fdir = children.tmpdir("filestore")
    history_run("file", fdir .. "/store", MARGIN, true)
    history_run("redis", rds.port, MARGIN, true)
    -- The contrast, measured only: no margin. The count holds when calls are
    -- let through; the server sees them a little later, not all equally.
    history_run("file", fdir .. "/store0", 0, false)
  end)

  -------------------------------------------------------------------------
  -- 3. Redis stopped mid-run

  it("Redis stopped mid-run: calls fail with kind store and send nothing; back on the same port, they succeed", function()
    srv:reset(fake_opts { history_pages = 1 })
    local prefix = "outage:" .. util.random_hex(4) .. ":"
    local store = assert(qiwi.store.redis { port = rds.port, prefix = prefix, timeout = 1 })
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = srv.base_url, ca_file = srv.ca_file,
                                store = store, history_rate = { limit = 1000, window = 60 } })
    local spent = 0
    local function pay(n)
      local res, err = c:transfer { to = "79990005555", amount = n }
      if res then spent = spent + kopecks(n) end
      return res, err
    end
    local h = assert(c:history { rows = 3 })
    local txn = h.data[1].txnId
    assert(pay(2))
    assert(c:transaction(txn))
    assert(pay(3))
    local before = #srv:requests()
    local balance = balance_kopecks()

    rds:halt()
    local function down(what, res, err)
      assert.is_nil(res, what)
      assert.equal("store", err.kind, what .. ": " .. tostring(err))
      assert.is_true(err.retryable, what)
    end
    down("transfer", pay(4))
    down("history", c:history { rows = 3 })
    down("history_total", c:history_total { start_date = os.time() - 3600, end_date = os.time() })
    down("transaction", c:transaction(txn))
    down("receipt", c:receipt(txn, { type = "OUT" }))
    -- a process started during the outage: no connection to fall back on
    local ldir = children.tmpdir("outage1")
    local script = children.script(ldir, "loop", LOOP)
    local out = children.spawn { script = script,
      args = { srv.base_url, srv.ca_file, TOKEN, WALLET, rds.port, prefix, 0, "1", ldir } }:wait()
    local calls = lines_of(out, "CALL")
    assert.equal(1, #calls, out)
    assert.equal("store", calls[1][6], out)
    assert.equal(before, #srv:requests(), "requests reached the fake while Redis was down")
    assert.equal(balance, balance_kopecks())

    rds:restart()
    assert(pay(5))
    assert(c:history { rows = 3 })
    assert(c:transaction(txn))
    assert.equal(before + 3, #srv:requests())
    local wire = payments_on_wire()
    assert.equal(3, #wire)
    assert.are_not.equal(wire[1].json.id, wire[3].json.id)
    assert.are_not.equal(wire[2].json.id, wire[3].json.id)
    assert.equal(BALANCE * 100 - spent, balance_kopecks())

    -- The same with a process that keeps paying and reading the history
    -- while Redis goes away and comes back.
    local from = log_size()
    local child = children.spawn { script = script,
      args = { srv.base_url, srv.ca_file, TOKEN, WALLET, rds.port, prefix, 2.6, "2", ldir } }
    local start = assert(children.go(ldir, 1, 0.3, 60))
    local function sleep_until(t) local d = t - wall() if d > 0 then require("qiwi.core").sleep(d) end end
    sleep_until(start + 0.8)
    local halt0 = wall()
    rds:halt()
    local halted = wall()
    sleep_until(start + 1.6)
    local up0 = wall()
    rds:restart()
    local up = wall()
    out = child:wait()
    assert.matches("\nDONE\n", out, 1, true)
    local ok_before, failed, ok_after, straddling_ok = 0, 0, 0, 0
    for _, f in ipairs(lines_of(out, "CALL")) do
      local b, a, result = tonumber(f[4]), tonumber(f[5]), f[6]
      if a <= halt0 then
        assert.equal("ok", result, table.concat(f, " "))
        ok_before = ok_before + 1
      elseif b >= halted and a <= up0 then
        assert.equal("store", result, table.concat(f, " "))
        failed = failed + 1
      elseif b >= up then
        assert.equal("ok", result, table.concat(f, " "))
        ok_after = ok_after + 1
      elseif b < halted and a > halt0 and result == "ok" then
        straddling_ok = straddling_ok + 1
      end
    end
    assert.is_true(ok_before >= 3 and failed >= 3 and ok_after >= 3,
      ("%d ok before, %d failed during, %d ok after:\n%s"):format(ok_before, failed, ok_after, out))
    local during = 0
    for _, r in ipairs(server_log(from)) do
      if r.t > halted and r.t < up0 and not r.path:find("^/__") then during = during + 1 end
    end
    -- only a call already past the store when Redis went away may arrive
    assert.is_true(during <= straddling_ok, ("%d requests arrived during the outage"):format(during))
    say("redis outage: spec process 5 calls + a new process 1 call -> kind store, 0 requests sent;"
      .. " looping process: %d ok before, %d failed (store) during %.2f s down, %d ok after restart,"
      .. " %d requests arrived during the outage", ok_before, failed, up0 - halted, ok_after, during)
  end)

  -------------------------------------------------------------------------
  -- 4. kill -9 between send and answer

  it("kill -9 between send and answer, then the same idempotency_key from a new process -> paid once", function()
    srv:reset(fake_opts())
    local kdir = children.tmpdir("kill")
    local script = children.script(kdir, "keyed", KEYED)
    local key = "order-1"
    local id = ids.derived(WALLET, key)
    srv:call("fail_next", { method = "POST", path_pattern = "/payments$", delay_ms = 4000 })
    local first = children.spawn { script = script, args = { srv.base_url, srv.ca_file, TOKEN, WALLET, key, "7.00" } }
    assert.is_number(first:pid())
    local seen
    local deadline = wall() + 30
    repeat
      for _, r in ipairs(payments_on_wire()) do seen = seen or r end
      if not seen then require("qiwi.core").sleep(0.02) end
    until seen or wall() > deadline
    assert.is_table(seen, "the first payment never reached the fake")
    assert.equal(id, seen.json.id)
    -- the fake has taken the payment and holds its answer back: kill now
    assert.is_true(first:kill())
    local out1 = first:wait()
    assert.is_nil(out1:find("\nOK ", 1, true), out1)
    assert.is_nil(out1:find("\nERR ", 1, true), out1)
    local after_first = balance_kopecks()

    local second = children.spawn { script = script, args = { srv.base_url, srv.ca_file, TOKEN, WALLET, key, "7.00" } }
    local out2 = second:wait()
    local ok = lines_of(out2, "OK")[1]
    assert.is_table(ok, out2)
    local wire = payments_on_wire()
    assert.equal(2, #wire)
    assert.equal(id, wire[2].json.id)
    local ledger = srv:call("history")
    assert.equal(1, #ledger, "payments in the ledger")
    assert.equal(id, ledger[1].trm_txn_id)
    assert.equal(700, ledger[1].sum)
    assert.equal(BALANCE * 100 - 700, balance_kopecks())
    assert.equal(after_first, balance_kopecks())
    assert.equal(id, ok[2])
    assert.equal(tostring(ledger[1].txn_id), ok[3])
    say("kill -9 while the answer was held back, then the same key from a new process: %d payment(s)"
      .. " in the ledger, balance down by %.2f once, second process got txn %s (replayed flag: %s)",
      #ledger, 7, ok[3], ok[4])
  end)
end)
