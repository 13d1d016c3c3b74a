-- qiwi.watch: client:watch{...}, incoming payments from the history, from
-- a durable cursor, each handed to on_payment once (through qiwi.events,
-- shared with webhook receivers on the same store and name).
--
-- A round (w:poll):
--   1. the lease: one poller per wallet and name is active across every
--      process and host sharing the store; a round that cannot hold it
--      delivers nothing and returns 0;
--   2. the cursor: `date` and `ids` (everything dated before `date`, and the
--      ids listed at `date`, has been dealt with) and `pending` (payments
--      behind the cursor that still need something: a handler that failed,
--      a status that may still change, a claim another deliverer held);
--   3. the history from the cursor's date to now, every page (50 rows,
--      nextTxnId/nextTxnDate), with startDate/endDate always given: without
--      them QIWI answers for the last day only;
--   4. pending payments first, then the new ones, oldest first; each one
--      moves the cursor past it once it is dealt with, so newer payments are
--      never held back by one that fails.
-- The cursor is saved as the round goes (every page's worth of payments)
-- and at its end; the ledger records each delivery at once, so a process
-- killed mid-round repeats at most the payment whose handler had returned.
local core = require "qiwi.core"
local args = require "qiwi.args"
local attempt = require "qiwi.attempt"
local events = require "qiwi.events"
local qstore = require "qiwi.store"

local _M = { _VERSION = "qiwi.watch 0.1.0" }

local type, tostring, pairs, next = type, tostring, pairs, next
local floor, min, max = math.floor, math.min, math.max
local sort = table.sort
local monotonic = core.monotonic
local null = core.null
local encode, decode = core.json_encode, core.json_decode

local DAY = 86400
-- endDate an hour past our clock: a payment QIWI dated ahead of our clock
-- (a clock off by up to that much) still comes in this round.
local SKEW = 3600
-- QIWI keeps 90 days of history and refuses a longer period; the period
-- ends SKEW past our clock, and an hour more keeps its start, on our clock,
-- inside QIWI's window.
local WINDOW = 90 * DAY - SKEW - 3600
local ROWS = 50

-- What tells a history entry apart from every other: its txnId and its
-- direction (one txnId may be an incoming and an outgoing entry). The
-- cursor's ids and pending list are keyed by it.
local function mark(kind, id)
  -- %.0f: the same digits on every interpreter (LuaJIT writes 1e+15 otherwise)
  return (kind == "IN" and "i" or "o") .. string.format("%.0f", id)
end

local Watcher = {}
Watcher.__index = Watcher
_M.Watcher = Watcher

local OPTIONS = {
  operation = true, since = true, interval = true, store = true, name = true, statuses = true,
  on_payment = true, lease = true, claim = true, ttl = true, max_pending = true, recheck = true,
  clock = true, sleep = true,
}

local function positive(v, lo, hi)
  return type(v) == "number" and v == v and v >= lo and v <= hi
end

local function fail(client, message)
  return nil, client:_error { kind = "argument", message = "watch: " .. message, retryable = false }
end

function _M.new(client, opts)
  if type(opts) ~= "table" then return fail(client, "takes an options table") end
  local o = {}
  for k, v in next, opts do
    if not OPTIONS[k] then return fail(client, "unknown option '" .. tostring(k) .. "'") end
    o[k] = v
  end
  if type(o.on_payment) ~= "function" then return fail(client, "on_payment must be a function") end
  local op = o.operation or "IN"
  if not events.OPERATIONS[op] then return fail(client, "operation must be ALL, IN, OUT or QIWI_CARD") end
  local statuses, serr = events.status_set(o.statuses)
  if not statuses then return fail(client, serr) end
  local name, nerr = events.check_name(o.name)
  if not name then return fail(client, nerr) end
  local interval = o.interval or 10
  if not positive(interval, 0.001, DAY) then return fail(client, "interval must be seconds above 0, at most a day") end
  local lease = o.lease or 3 * interval
  if not positive(lease, 0.01, DAY) or lease < interval then
    return fail(client, "lease must be seconds, at least interval")
  end
  local claim = o.claim or events.CLAIM_TTL
  if not positive(claim, 0.01, DAY) then return fail(client, "claim must be seconds above 0, at most a day") end
  local ttl = o.ttl or events.DONE_TTL
  if not positive(ttl, 1, 3650 * DAY) then return fail(client, "ttl must be seconds, at least 1") end
  local max_pending = o.max_pending or 200
  if not args.integer(max_pending, { min = 1, max = 1000 }) then
    return fail(client, "max_pending must be an integer from 1 to 1000")
  end
  local recheck = o.recheck or max(60, interval)
  if not positive(recheck, 0, 90 * DAY) then return fail(client, "recheck must be seconds") end
  local since
  if o.since ~= nil then
    local text, _, secs = args.date(o.since)
    if not text then return fail(client, "since " .. tostring(_)) end
    since = secs
  end
  if o.store ~= nil then
    local ok, why = qstore.check(o.store)
    if not ok then return fail(client, "store: " .. why) end
  end
  if o.clock ~= nil and type(o.clock) ~= "function" then return fail(client, "clock must be a function") end
  if o.sleep ~= nil and type(o.sleep) ~= "function" then return fail(client, "sleep must be a function") end
  local id = core.random_bytes(8):gsub(".", function(c) return string.format("%02x", c:byte()) end)
  return setmetatable({
    client = client, store = o.store or client._store, fn = o.on_payment, operation = op,
    statuses = statuses, name = name, interval = interval, lease = lease, since = since,
    ledger = { claim = claim, ttl = ttl }, max_pending = max_pending, recheck = recheck,
    clock = o.clock or os.time, sleep = o.sleep or attempt.sleep,
    owner = id, active = false, stats = { rounds = 0, delivered = 0, failed = 0, expired = 0, errors = 0 },
  }, Watcher)
end

---------------------------------------------------------------------------
-- Lease

function Watcher:_keys(wallet)
  if self._wallet ~= wallet then
    local base = "watch:" .. wallet .. ":" .. self.name
    self._wallet, self._cursor_key, self._lease_key = wallet, base .. ":cursor", base .. ":lease"
  end
end

-- true while this watcher holds the lease, false when another does, nil,
-- err when the store cannot say. A store call only when the lease is past
-- half its time: holding it costs one write per half lease.
function Watcher:_hold()
  local now = monotonic()
  local till = self._lease_till
  if till and now < till - self.lease / 2 then return true end
  local s = self.store
  local added, err = s:add(self._lease_key, self.owner, self.lease)
  if added == nil then return nil, err end
  if not added then
    local v, gerr = s:get(self._lease_key)
    if gerr then return nil, gerr end
    -- our own lease, renewed only while well inside it: renewing one that
    -- may be expiring could overwrite a new holder's
    if v ~= self.owner or not till or now > till - min(1, self.lease / 4) then
      self._lease_till, self.active = nil, false
      return false
    end
    local ok, serr = s:set(self._lease_key, self.owner, self.lease)
    if not ok then return nil, serr end
  end
  self._lease_till, self.active = now + self.lease, true
  return true
end

-- Gives the lease up (w:stop), so that another poller takes over at once.
function Watcher:release()
  if not self._lease_till or not self._lease_key then return true end
  self._lease_till, self.active = nil, false
  local v = self.store:get(self._lease_key)
  if v == self.owner then self.store:delete(self._lease_key) end
  return true
end

---------------------------------------------------------------------------
-- Cursor

local function cursor_error(self, message)
  return self.client:_error { kind = "store", retryable = false,
    message = "watch cursor " .. self._cursor_key .. ": " .. message }
end

function Watcher:_load()
  local text, err = self.store:get(self._cursor_key)
  if err then return nil, err end
  if text == nil then return false end
  local c = decode(text)
  if type(c) ~= "table" or c.v ~= 1 or type(c.date) ~= "number" or type(c.ids) ~= "table"
      or type(c.pending) ~= "table" then
    -- never reset it silently: that would deliver or skip a whole window
    return nil, cursor_error(self, "is not a cursor this version wrote; delete the key to start afresh")
  end
  local ids = {}
  for _, m in ipairs(c.ids) do ids[m] = true end
  c.ids = ids
  local pending = {}
  for _, p in ipairs(c.pending) do
    if type(p) ~= "table" or type(p.id) ~= "number" or type(p.date) ~= "number" then
      return nil, cursor_error(self, "has a pending entry without id or date")
    end
    pending[mark(p.type, p.id)] = p
  end
  c.pending = pending
  return c
end

function Watcher:_save(c)
  local ids = setmetatable({}, core.array_mt)
  for m in pairs(c.ids) do ids[#ids + 1] = m end
  sort(ids)
  local pending = setmetatable({}, core.array_mt)
  for _, p in pairs(c.pending) do
    pending[#pending + 1] = { id = p.id, date = p.date, type = p.type, item = p.item, checked = p.checked }
  end
  sort(pending, function(a, b) return a.id < b.id end)
  local text = encode { v = 1, date = c.date, ids = ids, pending = pending }
  local ok, err = self.store:set(self._cursor_key, text)
  if not ok then return nil, err end
  return true
end

---------------------------------------------------------------------------
-- A round

local function seconds(date)
  local _, _, secs = args.date(date)
  return secs
end

local function decode_error(self, message)
  return self.client:_error { kind = "decode", message = "watch: " .. message, method = "GET",
    path = "/payment-history/v2/persons/" .. tostring(self._wallet) .. "/payments" }
end

-- The history of [from, to] as {item, id, date} oldest first, or nil, err.
function Watcher:_fetch(from, to)
  local list = {}
  local iter, state = self.client:payments { rows = ROWS, operation = self.operation,
                                            start_date = from, end_date = to }
  for item in iter do
    local id = events.integer(type(item) == "table" and item.txnId)
    local date = type(item) == "table" and type(item.date) == "string" and seconds(item.date)
    if type(id) ~= "number" or not date then return nil, decode_error(self, "history item without txnId or date") end
    list[#list + 1] = { item = item, id = id, date = date }
    -- a long catch-up outlives a lease: keep it, or stop
    if #list % ROWS == 0 then
      local held, err = self:_hold()
      if not held then return nil, err or false end
    end
  end
  if state.err then return nil, state.err end
  sort(list, function(a, b)
    if a.date ~= b.date then return a.date < b.date end
    return a.id < b.id
  end)
  return list
end

-- One payment through the ledger. Returns true (dealt with: delivered now
-- or before), false (keep it pending), or nil, err (the store failed).
function Watcher:_deliver(item, id)
  local key = events.key(self._wallet, self.name, id, item.type)
  local res, err = events.deliver(self.store, key, self.fn, item, "poll", self.ledger)
  if res == nil then return nil, err end
  if res == "done" then
    self._got = self._got + 1
    return true
  end
  if res == "failed" then self.stats.failed = self.stats.failed + 1 end
  return res == "dup"
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- What to do with a payment in `status`: "deliver", "wait" (it may still
-- enter statuses) or "skip" (final and not wanted).
function Watcher:_fate(status)
  if self.statuses[status] then return "deliver" end
  if status == "WAITING" then return "wait" end
  return "skip"
end

-- Pending payments behind the cursor, oldest first. Those whose status was
-- wanted already go to the ledger again; waiting ones are asked for by
-- transaction id (one history call each, at most every `recheck` seconds).
function Watcher:_retry(c, now, from)
  local list = {}
  for _, p in pairs(c.pending) do list[#list + 1] = p end
  sort(list, function(a, b)
    if a.date ~= b.date then return a.date < b.date end
    return a.id < b.id
  end)
  for _, p in ipairs(list) do
    if p.date < now - 90 * DAY then
      -- gone from QIWI's window: its status can no longer be learned
      c.pending[mark(p.type, p.id)] = nil
      self.stats.expired = self.stats.expired + 1
    elseif p.item ~= nil and p.item ~= null then
      p.tried = true -- once a round: the pages may bring it again
      local done, err = self:_deliver(p.item, p.id)
      if done == nil then return nil, err end
      if done then c.pending[mark(p.type, p.id)] = nil end
    elseif p.date < from and now - (p.checked or 0) >= self.recheck then
      -- (a waiting payment at or after `from` comes with the pages)
      local t, err = self.client:transaction(p.id, p.type)
      if t then
        p.checked = now
        local fate = self:_fate(t.status)
        if fate == "skip" then
          c.pending[mark(p.type, p.id)] = nil
        elseif fate == "deliver" then
          local done, derr = self:_deliver(t, p.id)
          if done == nil then return nil, derr end
          if done then c.pending[mark(p.type, p.id)] = nil else p.item = t end
        end
      elseif err.status == 404 then
        c.pending[mark(p.type, p.id)] = nil
      else
        return nil, err
      end
    end
  end
  return true
end

-- The first round of a cursor without `since`: it starts after the newest
-- payment there is now (only payments that come later are delivered).
function Watcher:_start(now)
  local res, err = self.client:history { rows = ROWS, operation = self.operation,
                                         start_date = now + SKEW - WINDOW, end_date = now + SKEW }
  if not res then return nil, err end
  local c = { date = now + SKEW - WINDOW, ids = {}, pending = {} }
  local data = type(res.data) == "table" and res.data or {}
  for _, item in ipairs(data) do
    local id, date = events.integer(item.txnId), type(item.date) == "string" and seconds(item.date)
    if type(id) ~= "number" or not date then return nil, decode_error(self, "history item without txnId or date") end
    if date > c.date then c.date, c.ids = date, {} end
    if date == c.date then c.ids[mark(item.type, id)] = true end
  end
  return c
end

function Watcher:_round()
  local client = self.client
  local wallet, werr = client:_wallet()
  if not wallet then return nil, werr end
  self:_keys(wallet)
  local held, herr = self:_hold()
  if held == nil then return nil, herr end
  if not held then return 0 end
  local c, cerr = self:_load()
  if c == nil then return nil, cerr end
  local now = floor(self.clock())
  self._got = 0
  if not c then
    if self.since then
      c = { date = self.since, ids = {}, pending = {} }
    else
      local first, ferr = self:_start(now)
      if not first then return nil, ferr end
      local ok, serr = self:_save(first)
      if not ok then return nil, serr end
      return 0
    end
  end
  -- a cursor ahead of our clock (QIWI's runs ahead) must not make the
  -- period end before it starts
  local to = max(now, c.date) + SKEW
  local from = max(c.date, to - WINDOW)
  local ok, rerr = self:_retry(c, now, from)
  if not ok then return nil, rerr end
  local list, lerr = self:_fetch(from, to)
  if not list then
    if lerr == false then return self._got end -- the lease went to another poller
    return nil, lerr
  end
  local pending_n = count(c.pending)
  local since_save = 0
  for _, e in ipairs(list) do
    local id, date, m = e.id, e.date, mark(e.item.type, e.id)
    local old = date < c.date or (date == c.date and c.ids[m])
    local p = c.pending[m]
    if p and p.tried then
      p.tried = nil
    elseif not old or p then
      local fate = self:_fate(e.item.status)
      local keep = false
      if fate == "deliver" then
        local done, err = self:_deliver(e.item, id)
        if done == nil then return nil, err end
        keep = not done and "item"
      elseif fate == "wait" then
        keep = "wait"
      end
      if keep and not p then
        -- a full pending list holds the cursor here instead: this payment
        -- and the newer ones come again next round
        if pending_n >= self.max_pending then break end
        pending_n = pending_n + 1
        c.pending[m] = { id = id, date = date, type = e.item.type, item = keep == "item" and e.item or null }
      elseif keep == "item" then
        p.item = e.item
      elseif keep == "wait" then
        p.item = null
      elseif p then
        c.pending[m] = nil
        pending_n = pending_n - 1
      end
      if not old then
        if date > c.date then c.date, c.ids = date, {} end
        c.ids[m] = true
      end
      since_save = since_save + 1
      if since_save >= ROWS then
        since_save = 0
        local saved, serr = self:_save(c)
        if not saved then return nil, serr end
      end
    end
  end
  local saved, serr = self:_save(c)
  if not saved then return nil, serr end
  return self._got
end

-- One round: the number of payments delivered, or nil, err (nothing
-- moved that was not delivered). Never raises.
function Watcher:poll()
  local ok, n, err = pcall(self._round, self)
  if not ok then
    n, err = nil, self.client:_error { kind = "decode", message = "watch: round failed: " .. tostring(n) }
  end
  self.stats.rounds = self.stats.rounds + 1
  if n then
    self.stats.delivered = self.stats.delivered + n
  else
    self.stats.errors = self.stats.errors + 1
    -- what was delivered before the failure stays delivered
    self.stats.delivered = self.stats.delivered + (self._got or 0)
  end
  return n, err
end

-- The wait after `failures` failed rounds in a row: the interval doubled
-- each time up to five minutes, with jitter; a blocked wallet (423) waits
-- out QIWI's five minutes.
function Watcher:_backoff(failures, err)
  if failures == 0 then return self.interval end
  if type(err) == "table" and err.status == 423 then return 300 end
  local d = min(self.interval * 2 ^ failures, 300)
  return d * (0.75 + 0.5 * math.random())
end

-- Rounds until `rounds` were made or `duration` seconds passed (both
-- optional; neither: for ever, or until w:stop()). Returns the total
-- delivered and the last round's error, if the last round failed.
function Watcher:run(opts)
  if opts ~= nil and type(opts) ~= "table" then
    return nil, self.client:_error { kind = "argument", message = "run takes an options table", retryable = false }
  end
  opts = opts or {}
  local rounds, duration = opts.rounds, opts.duration
  if rounds ~= nil and not args.integer(rounds, { min = 1, max = 2 ^ 31 }) then
    return nil, self.client:_error { kind = "argument", message = "run: rounds must be a positive integer", retryable = false }
  end
  if duration ~= nil and not positive(duration, 0, 10 * 365 * DAY) then
    return nil, self.client:_error { kind = "argument", message = "run: duration must be seconds", retryable = false }
  end
  local deadline = duration and monotonic() + duration
  local total, failures, last_err, n = 0, 0, nil, 0
  self._stopped = false
  while not self._stopped do
    local got, err = self:poll()
    n = n + 1
    total = total + (got or self._got or 0)
    if got then failures, last_err = 0, nil else failures, last_err = failures + 1, err end
    if rounds and n >= rounds then break end
    local wait = self:_backoff(failures, err)
    if deadline then
      local left = deadline - monotonic()
      if left <= 0 then break end
      wait = min(wait, left)
    end
    self.sleep(wait)
    if deadline and monotonic() >= deadline then break end
  end
  -- a cron job's next run, or another process, need not wait for the lease
  self:release()
  return total, last_err
end

---------------------------------------------------------------------------
-- Inside nginx: a timer in every worker; the lease lets one poll.

function Watcher:start()
  if not (type(ngx) == "table" and ngx.timer) then
    return nil, self.client:_error { kind = "argument", retryable = false,
                                     message = "watch: start needs nginx (use run outside it)" }
  end
  if self._timer then return true end
  self._stopped = false
  local me = self
  local function loop(premature)
    if premature or me._stopped then me._timer = nil return end
    local failures = 0
    while not me._stopped and not ngx.worker.exiting() do
      local got, err = me:poll()
      if got then failures = 0 else
        failures = failures + 1
        ngx.log(ngx.ERR, "qiwi watch ", me.name, ": ", tostring(err))
      end
      ngx.sleep(me:_backoff(failures, err))
    end
    me:release()
    me._timer = nil
  end
  local ok, err = ngx.timer.at(0, loop)
  if not ok then
    return nil, self.client:_error { kind = "argument", message = "watch: cannot start a timer: " .. tostring(err) }
  end
  self._timer = true
  return true
end

function Watcher:stop()
  self._stopped = true
  if not self._timer then self:release() end
  return true
end

return _M
