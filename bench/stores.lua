-- The stores section of make bench: what a call pays for the shared state a
-- client keeps in its store (qiwi.store), with each store, as a ratio to the
-- memory store measured in the same run.
--
--   lua5.4 bench/stores.lua            this section alone (make bench-stores)
--   dofile("bench/stores.lua").run{ server_cpu =, summary_row = }
--                                      the last section of bench/run.lua
--
-- A client given `store = s` keeps two things in it:
--   * the history rate limit: every payment-history call does one
--     s:admit("history:<wallet>", limit, window) (qiwi.ratelimit);
--   * the counter of fresh payment ids: every payment without an id of the
--     caller's does one s:incr("ids:<wallet>", 1) (qiwi.ids). The memory
--     store is one Lua state's (shared = false), so there the id is the
--     state's own random draw and counter, with no store call: that is the
--     baseline the shared stores are compared with.
-- Measured with each store, K calls of each kind a round
-- (BENCH_STORE_CALLS, 200):
--   history  client:history{rows = 1}, history_rate = {limit = 100000,
--            window = 60} (it never waits);
--   payment  client:transfer{to =, amount = 1}, a fresh id each;
--   admit, incr  the raw store operations back to back, for reference (a
--            call that does other work between two store operations can pay
--            more for each than these: a server whose CPU went idle in the
--            meantime answers later).
-- The client's transport is the in-process fake (qiwi.fake, a new one for
-- every store and round, with a big balance and no history limit of its
-- own): the fake's cost is the same whatever the store, so what differs
-- between two stores' figures is the stores'. Every store and round has a
-- wallet of its own, so that each starts with an empty rate log and
-- counter; the log grows to K events in a round, and the file store's admit
-- reads and rewrites the whole log, so its cost grows with the log: K = 200
-- puts it at 100 events on average, about the full log of the default limit
-- (100 a minute).
--
-- Stores: memory; file in a temp directory, with fsync (the default) and
-- with fsync = false; redis over LuaSocket, against a redis-server started
-- here (spec/support/redis.lua); then inside one nginx worker (LuaJIT,
-- bench/stores_nginx.lua) memory, shdict and redis over cosockets, the
-- ratios there being to that worker's memory store.
--
-- Rounds (BENCH_STORE_RUNS, else BENCH_RUNS, else 9; 3 with BENCH_QUICK):
-- in a round the stores take turns, kind by kind, in blocks of
-- BENCH_STORE_TURN (20) calls, in an order that shifts from turn to turn and
-- from round to round, so that drift of a loaded machine hits them alike; a
-- full collection before each kind. Figures are medians over the rounds; a
-- ratio is the median of the per-round ratios to the memory store's figure
-- of the same round, and +us the median of the per-round differences. New
-- rounds stop being started after BENCH_STORE_SECONDS (40; 20 with
-- BENCH_QUICK) of this section, 3 rounds at least, so that a slow disk
-- (fsync) cannot make it run away.
local SCRIPT = type(arg) == "table" and type(arg[0]) == "string" and arg[0]:find("stores%.lua$") ~= nil
local TREE = os.getenv("BENCH_TREE") or "."
if SCRIPT then
  package.path = TREE .. "/lua/?.lua;" .. TREE .. "/lua/?/init.lua;spec/?.lua;spec/support/?.lua;bench/?.lua;"
    .. package.path
  package.cpath = TREE .. "/build/lua5.4/?.so;" .. package.cpath
end

local qiwi = require "qiwi"
local core = require "qiwi.core"
local bench_stats = dofile("bench/stats.lua")
local median, spread, command = bench_stats.median, bench_stats.spread, bench_stats.command
local store = require "qiwi.store"

local monotonic = core.monotonic
local fmt = string.format

local _M = {}

local TOKEN = "bench-stores-token"
local TO = "79001234567"
local HISTORY_RATE = { limit = 100000, window = 60 }
_M.KINDS = { "history", "payment", "admit", "incr" }

local function fail(what, err)
  error(what .. ": " .. tostring(err), 0)
end

-- What makes the operations of `kind` on store s under a wallet of its
-- own: a function(m) doing m more of them (raising on a failure).
function _M.runner(kind, s, wallet)
  if kind == "history" or kind == "payment" then
    local fake = qiwi.fake.new { token = TOKEN, wallet = wallet, balance = 1e9, rate_limit = 1e9,
                                 history_rows = 1 }
    local client, err = qiwi.new { token = TOKEN, wallet = wallet, transport = fake, store = s,
                                   history_rate = HISTORY_RATE }
    if not client then fail("qiwi.new", err) end
    if kind == "history" then
      return function(m)
        for _ = 1, m do
          local res, e = client:history { rows = 1 }
          if not res then fail(s.name .. ": history", e) end
        end
      end
    end
    return function(m)
      for _ = 1, m do
        local res, e = client:transfer { to = TO, amount = 1 }
        if not res then fail(s.name .. ": transfer", e) end
      end
    end
  end
  local key = "bench-" .. kind .. ":" .. wallet
  if kind == "admit" then
    return function(m)
      for _ = 1, m do
        local w, e = s:admit(key, 100000, 60)
        if w ~= 0 then fail(s.name .. ": admit", e or ("wait " .. tostring(w))) end
      end
    end
  end
  return function(m)
    for _ = 1, m do
      local n, e = s:incr(key, 1)
      if not n then fail(s.name .. ": incr", e) end
    end
  end
end

-- One round: k operations of every kind with every store of `list`
-- ({name =, store =}), each store on a wallet of its own (next_wallet()
-- gives a new one each time). The stores of a kind take turns in blocks of
-- `turn` operations, in an order that shifts from turn to turn (r shifts
-- it from round to round), so that drift of the machine hits them alike.
-- Returns {[name] = {[kind] = seconds per operation}}.
function _M.round(list, k, r, next_wallet, turn)
  turn = turn or 20
  local out, n = {}, #list
  local turns = math.max(1, math.ceil(k / turn))
  for _, st in ipairs(list) do out[st.name] = {} end
  for _, kind in ipairs(_M.KINDS) do
    local run, spent = {}, {}
    for i, st in ipairs(list) do run[i], spent[i] = _M.runner(kind, st.store, next_wallet()), 0 end
    collectgarbage("collect")
    for t = 1, turns do
      for j = 0, n - 1 do
        local i = (j + t + r) % n + 1
        local t0 = monotonic()
        run[i](turn)
        spent[i] = spent[i] + (monotonic() - t0)
      end
    end
    for i, st in ipairs(list) do out[st.name][kind] = spent[i] / (turns * turn) end
  end
  return out
end

-- Wallet numbers: 11 digits, `base` keeping apart the users of one store.
function _M.wallets(base)
  local n = 0
  return function()
    n = n + 1
    return fmt("7%03d%07d", base, n)
  end
end

---------------------------------------------------------------------------
-- The driver (outside nginx)

local function setting(name, full, quick)
  local q = os.getenv("BENCH_QUICK")
  local quick_on = q ~= nil and q ~= "" and q ~= "0"
  return tonumber(os.getenv(name)) or (quick_on and quick or full)
end




-- rounds: list of round results; returns per store and kind the medians.
local function summarise(list, rounds)
  local out = {}
  for _, st in ipairs(list) do
    local row = {}
    for _, kind in ipairs(_M.KINDS) do
      local each, ratio, diff = {}, {}, {}
      for r, res in ipairs(rounds) do
        local v, base = res[st.name][kind], res[list[1].name][kind]
        each[r], ratio[r], diff[r] = v, v / base, v - base
      end
      local lo, hi = spread(ratio)
      row[kind] = { us = median(each) * 1e6, ratio = median(ratio), lo = lo, hi = hi, plus = median(diff) * 1e6 }
    end
    out[st.name] = row
  end
  return out
end

local CELL = "%7s %7s  %-20s"

local function print_table(list, sum)
  print(fmt("   %-20s  %-37s  %-37s  %7s  %7s", "", "history call", "payment (fresh id)", "admit", "incr"))
  local head = CELL:format("us/call", "+us", "x memory (min..max)")
  print(fmt("   %-20s  %s  %s  %7s  %7s", "store", head, head, "us/op", "us/op"))
  for i, st in ipairs(list) do
    local row = sum[st.name]
    local cells = {}
    for _, kind in ipairs { "history", "payment" } do
      local c = row[kind]
      if i == 1 then
        cells[#cells + 1] = CELL:format(fmt("%.1f", c.us), "", "1.000")
      else
        cells[#cells + 1] = CELL:format(fmt("%.1f", c.us), fmt("%+.1f", c.plus),
                                        fmt("%.3f (%.2f..%.2f)", c.ratio, c.lo, c.hi))
      end
    end
    print(fmt("   %-20s  %s  %s  %7.1f  %7.1f", st.label, cells[1], cells[2], row.admit.us, row.incr.us))
  end
end

-- The in-nginx part: one nginx (https_fake.start, one worker, LuaJIT) with a
-- lua_shared_dict, whose /bench/stores runs one round per request. Returns
-- the list and the rounds, or nil and why it was skipped.
local function nginx_rounds(opts)
  local https_fake = require "https_fake"
  local util = require("pki").util
  local tree = util.abspath(TREE)
  local repo = util.repo_root()
  if not util.read_file(tree .. "/build/luajit/qiwi/core.so") then
    return nil, tree .. "/build/luajit/qiwi/core.so is missing (make all LUA=luajit)"
  end
  local conf = fmt("{ dict = %q, redis_port = %d }", "qiwi_bench_stores", opts.redis_port)
  local app = https_fake.start {
    location_lua = "ngx.exit(404)", access_log = false, log_level = "error",
    lua_path = tree .. "/lua/?.lua;" .. tree .. "/lua/?/init.lua;" .. repo .. "/bench/?.lua;",
    http_extra = table.concat({
      '    lua_package_cpath "' .. tree .. '/build/luajit/?.so;;";',
      "    lua_shared_dict qiwi_bench_stores 32m;",
    }, "\n"),
    server_extra = '        location = /bench/stores { content_by_lua_block { require("stores_nginx").round('
      .. conf .. ") } }",
  }
  local list, rounds = nil, {}
  local ok, err = pcall(function()
    local function get(query)
      local status, body = app:curl("GET", "/bench/stores?" .. query, nil, 120)
      if status ~= 200 then
        error(fmt("/bench/stores: HTTP %d %s\n%s", status, body, app:error_log(20)), 0)
      end
      return body
    end
    local function parse(body)
      local res, names = {}, {}
      for name, label, kind, v in body:gmatch("(%S+) \"([^\"]*)\" (%S+) (%S+)\n") do
        if not res[name] then
          res[name] = {}
          names[#names + 1] = { name = name, label = label }
        end
        res[name][kind] = tonumber(v)
      end
      return res, names
    end
    get(fmt("k=%d&run=0&turn=%d", math.max(20, math.floor(opts.k / 5)), opts.turn))   -- warm: connections, scripts, traces
    for r = 1, opts.runs do
      local res, names = parse(get(fmt("k=%d&run=%d&turn=%d", opts.k, r, opts.turn)))
      list = list or names
      rounds[r] = res
      if monotonic() > opts.deadline and r >= math.min(3, opts.runs) then break end
    end
  end)
  app:stop()
  if not ok then error(err, 0) end
  return list, rounds
end

-- opts: server_cpu (the CPU the servers are pinned to, or nil),
-- summary_row (bench/run.lua's, to add the section's lines to its summary).
function _M.run(opts)
  opts = opts or {}
  local redis_harness = require "redis"
  local util = require("pki").util
  local RUNS = tonumber(os.getenv("BENCH_STORE_RUNS")) or setting("BENCH_RUNS", 9, 3)
  local K = setting("BENCH_STORE_CALLS", 200, 100)
  local TURN = setting("BENCH_STORE_TURN", 20, 20)
  local BUDGET = setting("BENCH_STORE_SECONDS", 40, 20)
  local t_start = monotonic()
  local deadline = t_start + BUDGET
  print("== stores: what a call pays for the shared limiter and fresh id with each store, against the memory store")
  print(fmt("   %d calls of each kind a round: history{rows=1} with history_rate {limit=100000, window=60} (one", K))
  print("   admit each), transfer{} with a fresh id (one incr each; the memory store draws its ids itself),")
  print("   and the raw admit and incr back to back; client transport: the in-process fake (the same cost for")
  print(fmt("   every store); the stores take turns in blocks of %d calls; +us: the call's cost above memory's", TURN))

  local mk = io.popen("mktemp -d /tmp/lua-qiwi-bench-stores.XXXXXXXX")
  local dir = mk and mk:read("*l")
  if mk then mk:close() end
  if not dir or not dir:match("^/tmp/lua%-qiwi%-bench%-stores%.%w+$") then error("mktemp failed", 0) end
  local fs = command("stat -f -c %T " .. util.shq(dir)):gsub("%s+$", "")
  local rs
  local ok, err = pcall(function()
    rs = redis_harness.start {}
    if opts.server_cpu then
      os.execute(fmt("taskset -a -p -c %d %d >/dev/null", opts.server_cpu, rs.pid))
    end
    local version = command("redis-server --version"):match("v=(%S+)") or "?"
    print(fmt("   file: a temp directory under /tmp (%s); redis: redis-server %s on 127.0.0.1:%d%s", fs, version, rs.port,
              opts.server_cpu and fmt(", pinned to CPU %d", opts.server_cpu) or ""))
    local function must(s, e)
      if not s then fail("store", e) end
      return s
    end
    local list = {
      { name = "memory", label = "memory", store = must(store.memory()) },
      { name = "file", label = "file, fsync", store = must(store.file(dir .. "/fsync")) },
      { name = "file-nofsync", label = "file, fsync=false", store = must(store.file(dir .. "/nofsync",
                                                                                       { fsync = false })) },
      { name = "redis", label = "redis (LuaSocket)", store = must(store.redis { port = rs.port,
                                                                                 prefix = "qiwi-bench:" }) },
    }
    local next_wallet = _M.wallets(100)
    _M.round(list, math.max(20, math.floor(K / 5)), 0, next_wallet, TURN)   -- warm: connections, scripts, directories
    local rounds = {}
    -- the in-process rounds get the larger share of the time budget
    local local_deadline = t_start + BUDGET * 0.7
    for r = 1, RUNS do
      rounds[r] = _M.round(list, K, r, next_wallet, TURN)
      if monotonic() > local_deadline and r >= math.min(3, RUNS) then break end
    end
    for _, st in ipairs(list) do st.store:close() end
    local sum = summarise(list, rounds)
    print(fmt("   in this process (%s), %d rounds:", _VERSION, #rounds))
    print_table(list, sum)

    local nlist, nrounds = nginx_rounds { k = K, turn = TURN, runs = RUNS, redis_port = rs.port, deadline = deadline }
    local nsum
    if nlist then
      nsum = summarise(nlist, nrounds)
      print(fmt("   inside one nginx worker (LuaJIT, cosockets; bench/stores_nginx.lua), %d rounds:", #nrounds))
      print_table(nlist, nsum)
    else
      print("   inside nginx: skipped: " .. tostring(nrounds))
    end
    if opts.summary_row then
      local function row(what, c)
        opts.summary_row(what, { c.ratio }, fmt("%.2fx", c.ratio), "-", nil)
      end
      row("history call, redis store vs memory", sum.redis.history)
      row("payment, redis store vs memory", sum.redis.payment)
      if nsum and nsum.shdict then
        row("history in nginx, shdict vs memory", nsum.shdict.history)
        row("payment in nginx, shdict vs memory", nsum.shdict.payment)
      end
    end
  end)
  if rs then rs:stop() end
  util.exec("rm -rf " .. util.shq(dir))
  if not ok then error(err, 0) end
  print(fmt("   (section: %.0f s)", monotonic() - t_start))
  print()
end

if SCRIPT then
  -- alone: the clients on CPU 0, the servers on the last CPU, as make bench does
  local server_cpu
  local n = tonumber(command("nproc"):match("%d+")) or 1
  if n >= 2 and command("command -v taskset"):find("taskset", 1, true) then
    os.execute("taskset -a -p -c 0 " .. core.getpid() .. " >/dev/null")
    server_cpu = n - 1
  end
  local ok, err = pcall(_M.run, { server_cpu = server_cpu })
  if not ok then
    io.stderr:write("bench stores failed: ", tostring(err), "\n")
    os.exit(1)
  end
  return
end

return _M
