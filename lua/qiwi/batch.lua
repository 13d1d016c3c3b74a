-- client:batch{ {"accounts"}, {"history", {rows = 50}}, {"transaction", 123, "OUT"}, … }
--
-- Runs the calls at once on the client's libcurl multi handle and returns
-- their results in the order given: results[i] = { v1, v2, n = 2 }, the two
-- values the method would have returned on its own (result, err; for
-- receipts bytes, content_type). Nothing raises: a bad call, a network fault
-- or an error answer is that call's err, and the other calls still run.
--
-- Which calls overlap:
--   * every method that is one row of qiwi.endpoints, concurrently;
--   * accounts(), concurrently; its null-balance repeats (see Client:accounts)
--     then go out together in a second concurrent round;
--   * the other compositions (transfer, pay_mobile, pay_card, convert, …),
--     which make several dependent requests or keep state, run one after
--     another once the concurrent part is done, exactly as if called alone;
--   * payments (an iterator), batch and close are refused (argument error).
-- Inside nginx the overlapping calls run in light threads (ngx.thread), at
-- most `concurrency` at once. A client with its own `transport` runs every
-- call one after another through it: same results, no overlap.
local core = require "qiwi.core"
local endpoints = require "qiwi.endpoints"
local attempt = require "qiwi.attempt"
local answer = require "qiwi.answer"
local client_mod = require "qiwi.client"

local Client, row_methods = client_mod.Client, client_mod.row_methods
local type, ipairs, tostring = type, ipairs, tostring
local unpack = table.unpack or unpack

local _M = {}

local REFUSED = {
  payments = "payments is an iterator; call it outside batch",
  batch = "batch cannot be nested",
  close = "close cannot be batched",
}

local DEFAULT_CONCURRENCY = 64

local in_nginx = type(ngx) == "table" and type(ngx.socket) == "table"

local header_list = require("qiwi.transport.curl").header_list

-- The per-client multi handle. Kept in the client's transports so that
-- client:close() closes it with the rest.
local function multi_for(self)
  local st = self._transports.batch
  if st then return st end
  -- the same options as the client's session, its proxy included
  local ok, m, kind, message = pcall(core.multi, client_mod.curl_options(self))
  if not ok then return nil, "network", tostring(m) end
  if not m then return nil, kind, message end
  st = { multi = m }
  function st.close() m:close() end
  self._transports.batch = st
  return st
end

local function result_of(v1, v2) return { v1, v2, n = 2 } end

-- Sends the wire requests of `jobs` concurrently, retrying what a single
-- call would retry (qiwi.attempt: the same policy, applied per round);
-- calls done(job, v1, v2) once per job. budget.deadline is set when the
-- first round goes out: as for a single call, the client's timeout runs
-- from the send, not from a rate-limit wait.
local function run_rounds(self, st, jobs, concurrency, budget, done)
  local pending = jobs
  local n = 0
  while #pending > 0 do
    n = n + 1
    -- a call whose rate-limit count failed is done with that error; the
    -- others go out
    local reqs, sent = {}, {}
    for _, job in ipairs(pending) do
      local admitted, aerr = attempt.admit(self, job.row)
      if admitted then
        sent[#sent + 1] = job
        reqs[#sent] = job.req
      else
        done(job, nil, aerr)
      end
    end
    pending = sent
    if #pending == 0 then break end
    local left
    budget.deadline, left = attempt.start(budget.deadline, self.timeout)
    local answers, kind, message
    if left > 0.001 then
      answers, kind, message = st.multi:send_all(reqs, left, concurrency)
    else
      kind, message = "timeout", "the batch ran out of time before this call was sent"
    end
    local again, wait = {}, nil
    for k, job in ipairs(pending) do
      -- the transport contract's values, one table per call: {status, body,
      -- headers} or {nil, kind, message, code}; {status, nil, nil, value}
      -- for a 2xx JSON answer the multi decoded (req[6], as the session's
      -- decode)
      local res = answers and answers[k]
      local v1, v2, err
      if res and res[1] then
        if res[2] == nil and res[4] ~= nil then
          v1, v2 = answer.decoded(self, job.row, job.path, res[1], res[4], job.req[4])
        else
          v1, v2 = self:_answer(job.row, job.path, res[1], res[3], res[2], job.req[4])
        end
        if v1 == nil then err = v2 end
      else
        err = self:_error { kind = res and res[2] or kind or "network",
                            message = res and res[3] or message or "transport failed",
                            code = res and res[4], method = job.row.method, path = job.path }
      end
      if err and attempt.again(err, n, job.attempts) then
        job.err = err
        again[#again + 1] = job
        local d = attempt.delay(err, n)
        if wait == nil or d > wait then wait = d end
      elseif err then
        done(job, nil, err)
      else
        done(job, v1, v2)
      end
    end
    if #again > 0 and not attempt.wait(budget.deadline, wait) then
      for _, job in ipairs(again) do done(job, nil, job.err) end
      again = {}
    end
    pending = again
  end
end

-- The wire request of one row call, or nil, err (argument errors and the
-- wallet lookup's failure come back here, before anything is sent).
local function prepare(self, row, name, args, nargs)
  local path, query, body = self:_prepare(row, name, unpack(args, 2, nargs))
  if not path then return nil, query end
  local _, headers = self:_headers(row, body ~= nil)
  local url = self.base_url .. path
  if query ~= "" then url = url .. "?" .. query end
  local hl, kind, message, code = header_list(headers)
  if not hl then
    return nil, self:_error { kind = kind or "argument", message = message, code = code,
                              method = row.method, path = path }
  end
  local safe = row.method == "GET" or row.idempotent == true
  return {
    row = row, path = path, attempts = attempt.attempts(safe, self.retries),
    -- a file (row.raw) is wanted as text
    req = { row.method, url, hl, body, not safe, not row.raw },
  }
end

local function arg_error(self, message, row)
  return self:_error { kind = "argument", message = message, retryable = false,
                       method = row and row.method, path = row and row.path }
end

local rawlen = rawlen or function(t) return #t end
local MAX_ARGS = 8 -- more than any method takes

-- A call taken by value: its raw fields in a plain table, so that no
-- metamethod of the caller's runs and `n` is a count unpack can use.
local function copy_call(self, call, i)
  if type(call) ~= "table" then
    return nil, arg_error(self, "batch item " .. i .. " must be a table {name, args...}")
  end
  local n = rawget(call, "n")
  if n == nil then
    n = rawlen(call)
  elseif type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > MAX_ARGS + 1 then
    return nil, arg_error(self, "batch item " .. i .. ": n must be the count of the name and its arguments")
  end
  if n > MAX_ARGS + 1 then return nil, arg_error(self, "batch item " .. i .. " has too many arguments") end
  local copy = { n = n }
  for k = 1, n do copy[k] = rawget(call, k) end
  return copy
end

-- What kind of call calls[i] is: "row", "accounts", "sequential", or nil, err.
local function classify(self, call, i)
  local name = call[1]
  if type(name) ~= "string" then
    return nil, arg_error(self, "batch item " .. i .. " must start with a method name")
  end
  if REFUSED[name] then return nil, arg_error(self, REFUSED[name]) end
  local fn = name:sub(1, 1) ~= "_" and Client[name] or nil
  if type(fn) ~= "function" then return nil, arg_error(self, "unknown method '" .. name .. "'") end
  if name == "accounts" then return "accounts" end
  if row_methods[name] == fn then return "row" end
  return "sequential"
end

local null_balance_aliases, merge_balance = client_mod.null_balances, client_mod.merge_balance

local function check_opts(self, opts)
  if opts == nil then return DEFAULT_CONCURRENCY end
  if type(opts) ~= "table" then return nil, arg_error(self, "batch options must be a table") end
  for k in next, opts do
    if k ~= "concurrency" then return nil, arg_error(self, "batch: unknown option '" .. client_mod.key_name(k) .. "'") end
  end
  local c = rawget(opts, "concurrency")
  if c == nil then return DEFAULT_CONCURRENCY end
  if type(c) ~= "number" or c ~= math.floor(c) or c < 1 or c > 256 then
    return nil, arg_error(self, "batch: concurrency must be an integer from 1 to 256")
  end
  return c
end

-- Runs call i as if called alone, into results[i].
local function alone(self, calls, results, i)
  local call = calls[i]
  results[i] = result_of(Client[call[1]](self, unpack(call, 2, call.n)))
end

-- Runs, one after another, every call whose kind `want` accepts.
local function one_by_one(self, n, calls, kinds, results, want)
  for i = 1, n do
    if kinds[i] and want(kinds[i]) then alone(self, calls, results, i) end
  end
  return results
end

local function any() return true end
local function composition(kind) return kind == "sequential" end

-- Inside nginx: the calls that overlap on the multi handle elsewhere run in
-- light threads instead, at most `concurrency` at once, each the same call
-- as on its own (attempts, rate limit, answer); the compositions follow one
-- after another. Where nginx has no light threads (a phase without
-- cosockets) they run one by one, and each reports why it cannot be made.
local function in_light_threads(self, n, calls, kinds, results, concurrency)
  local queue = {}
  for i = 1, n do
    if kinds[i] == "row" or kinds[i] == "accounts" then queue[#queue + 1] = i end
  end
  local taken = 0
  local function worker()
    while taken < #queue do
      taken = taken + 1
      alone(self, calls, results, queue[taken])
    end
  end
  local threads = {}
  for _ = 1, math.min(concurrency, #queue) do
    local ok, th = pcall(ngx.thread.spawn, worker)
    if not ok or not th then break end
    threads[#threads + 1] = th
  end
  if #threads == 0 then worker() end
  for _, th in ipairs(threads) do ngx.thread.wait(th) end
  for _, i in ipairs(queue) do
    if results[i] == nil then
      results[i] = result_of(nil, self:_error { kind = "network", message = "the batch's light thread died" })
    end
  end
  return one_by_one(self, n, calls, kinds, results, composition)
end


-- client:batch(calls, {concurrency = 64}) -> results, or nil, err when
-- `calls` is not a list or an option is wrong.
function _M.run(self, calls, opts)
  if type(calls) ~= "table" then return nil, arg_error(self, "batch takes a list of calls") end
  local concurrency, oerr = check_opts(self, opts)
  if not concurrency then return nil, oerr end
  local n = rawlen(calls)
  local results, kinds, given = {}, {}, calls
  calls = {}
  for i = 1, n do
    local call, err = copy_call(self, rawget(given, i), i)
    local kind
    if call then
      calls[i] = call
      kind, err = classify(self, call, i)
    end
    if kind then kinds[i] = kind else results[i] = result_of(nil, err) end
  end
  if self._opts.transport then return one_by_one(self, n, calls, kinds, results, any) end
  if in_nginx then return in_light_threads(self, n, calls, kinds, results, concurrency) end

  local st, skind, smessage = multi_for(self)
  if not st then
    for i = 1, n do
      if kinds[i] then
        results[i] = result_of(nil, self:_error { kind = skind or "network", message = tostring(smessage) })
      end
    end
    return results
  end

  local jobs = {}
  for i = 1, n do
    local kind = kinds[i]
    if kind == "row" or kind == "accounts" then
      local call = calls[i]
      local name = call[1]
      local row = endpoints[name]
      local job, err = prepare(self, row, name, call, call.n)
      if job then
        job.i = i
        job.accounts = kind == "accounts"
        jobs[#jobs + 1] = job
      else
        results[i] = result_of(nil, err)
      end
    end
  end
  local budget = {}
  local followups = {}
  run_rounds(self, st, jobs, concurrency, budget, function(job, v1, v2)
    if job.accounts and v1 ~= nil then
      local list = null_balance_aliases(v1)
      if #list > 0 then
        followups[#followups + 1] = { i = job.i, res = v1, accounts = list }
        return
      end
    end
    results[job.i] = result_of(v1, v2)
  end)

  if #followups > 0 then
    local more, owner = {}, {}
    for _, f in ipairs(followups) do
      for _, acc in ipairs(f.accounts) do
        local job, err = prepare(self, endpoints.account_balance, "account_balance",
                                 { "account_balance", acc.alias }, 2)
        if job then
          job.acc = acc
          more[#more + 1] = job
          owner[job] = f
        elseif not f.err then
          f.err = err
        end
      end
    end
    run_rounds(self, st, more, concurrency, budget, function(job, v1, v2)
      local f = owner[job]
      if v1 == nil then
        f.err = f.err or v2
      else
        merge_balance(job.acc, v1)
      end
    end)
    for _, f in ipairs(followups) do
      if f.err then results[f.i] = result_of(nil, f.err) else results[f.i] = result_of(f.res) end
    end
  end

  return one_by_one(self, n, calls, kinds, results, composition)
end

return _M
