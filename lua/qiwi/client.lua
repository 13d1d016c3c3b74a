-- The client: its options and secrets, the transport it sends through, and
-- the dispatch of a call: builder (qiwi.builder) -> attempts (qiwi.attempt)
-- -> transport -> answer (qiwi.answer). The payment helpers live in
-- qiwi.payments, the batch in qiwi.batch.
local core = require "qiwi.core"
local args = require "qiwi.args"
local qerror = require "qiwi.error"
local endpoints = require "qiwi.endpoints"
local ratelimit = require "qiwi.ratelimit"
local options = require "qiwi.options"
local builder = require "qiwi.builder"
local attempt = require "qiwi.attempt"
local answer = require "qiwi.answer"
local store = require "qiwi.store"

local null = core.null
local type, pairs, ipairs, select, tostring, next, pcall = type, pairs, ipairs, select, tostring, next, pcall

local VERSION = require "qiwi.version"
local ID_REUSED = require("qiwi.payment_check").CODE

local _M = { VERSION = VERSION, key_name = options.key_name }
local Client = {}
Client.__index = Client
_M.Client = Client

local in_nginx = type(ngx) == "table" and type(ngx.socket) == "table"

-- What holds the token or the P2P key (the key list for scrubbing, the header
-- lines) lives here rather than in the client table, so that dumping a
-- client (inspect, serpent, a logged table) shows no secret. Weak keys: a
-- client dropped by its user takes its record along.
local private = setmetatable({}, { __mode = "k" })
_M.private = private

function _M.new(opts)
  local o, err = options.check(opts)
  if not o then return nil, qerror.argument(err) end
  local self = setmetatable({
    wallet = o.wallet,
    base_url = o.base_url,
    retries = o.retries,
    timeout = o.timeout,
    _opts = o,
    _transports = {},
    -- given none, every client of the Lua state shares one memory store
    _store = o.store or store.default(),
  }, Client)
  -- the proxy's credentials join the secrets scrubbed from every error: a
  -- libcurl text about the proxy may quote them
  local proxy = o.proxy
  local secrets = { o.token, o.p2p_secret_key }
  if proxy and proxy.password then
    secrets[#secrets + 1] = proxy.password
    secrets[#secrets + 1] = proxy.raw_password
  end
  private[self] = {
    secrets = secrets,
    headers = { base = builder.base_headers(o.token, o.p2p_secret_key, o.user_agent), cache = {} },
    -- row -> how a row without arguments is sent (see Client:_call); here
    -- rather than in the client: it holds the header list
    plans = {},
    proxy = proxy,
  }
  if o.history_rate ~= false then
    local hr = o.history_rate or {}
    -- A call is counted when it is let through, and reaches QIWI up to the
    -- time its connection takes later (connect and TLS, each bounded by
    -- connect_timeout): a burst on new connections and the next one on
    -- kept-alive ones would otherwise land closer together than the
    -- window. Counting over window + margin keeps QIWI's own window under
    -- the limit. The count lives in the store; a test's own clock gets a
    -- store of its own.
    self._history_rate = ratelimit.new {
      store = hr.clock and store.memory { clock = hr.clock } or self._store,
      limit = hr.limit, window = (hr.window or 60) + (hr.margin or 2 * o.connect_timeout),
      sleep = hr.sleep or attempt.sleep,
    }
  end
  -- the options kept for transports built later need no secret (the
  -- proxy's URL, without its credentials, stays visible)
  o.token, o.p2p_secret_key = nil, nil
  o.proxy = proxy and proxy.url
  return self
end

-- The options of the libcurl handles of a client (qiwi.core.session, and
-- qiwi.core.multi for batches), the proxy's credentials included.
function _M.curl_options(self)
  local o, p = self._opts, private[self].proxy
  return {
    timeout = o.timeout, connect_timeout = o.connect_timeout, ca_file = o.ca_file,
    resolve = o.resolve, allow_http = o.allow_http, max_body = o.max_body,
    proxy = p and p.url, proxy_username = p and p.username, proxy_password = p and p.password,
  }
end
local curl_options = _M.curl_options

-- The transport for requests authorised with `auth`: the user's, the
-- cosocket one inside nginx, or a libcurl session (one per auth, each with
-- its own kept-alive connection).
local function transport_for(self, auth)
  local t = self._transports[auth]
  if t then return t end
  local o = self._opts
  if o.transport then
    t = o.transport
  elseif in_nginx then
    t = require("qiwi.transport.ngx").new {
      timeout = o.timeout, connect_timeout = o.connect_timeout, ca_file = o.ca_file,
      resolve = o.resolve, max_body = o.max_body,
    }
  else
    local ok, res = pcall(require("qiwi.transport.curl").new, curl_options(self))
    if not ok then return nil, res end
    t = res
  end
  self._transports[auth] = t
  -- ours are not wrapped in pcall on every call: they do not raise
  self._own_transport = o.transport == nil
  return t
end

function Client:close()
  for auth, t in pairs(self._transports) do
    if t ~= self._opts.transport and t.close then t:close() end
    self._transports[auth] = nil
  end
end

function Client:_error(fields)
  return qerror.new(fields, private[self].secrets)
end

function Client:_wallet()
  if self.wallet then return self.wallet end
  local profile, err = self:profile()
  if not profile then return nil, err end
  local id = type(profile.contractInfo) == "table" and profile.contractInfo.contractId
    or type(profile.authInfo) == "table" and profile.authInfo.personId
  local w = id and args.wallet(id)
  if not w then
    return nil, self:_error { kind = "decode", message = "profile has no wallet number",
      method = "GET", path = endpoints.profile.path }
  end
  self.wallet = w
  return w
end

-- The header list of a request of `row` (see qiwi.builder): auth, lines.
function Client:_headers(row, has_body)
  return builder.headers(private[self].headers, row, has_body)
end

-- The wire form of a call; see qiwi.builder.prepare.
function Client:_prepare(row, name, ...)
  return builder.prepare(self, row, name, ...)
end

-- Interprets an answer; see qiwi.answer.read.
function Client:_answer(row, path, status, headers, body, sent)
  return answer.read(self, row, path, status, headers, body, sent)
end

-- Sends a request with the attempt policy, its header list and transport
-- found: the transport's check, then the attempts; the result or nil, err.
local function send_with(self, row, path, url, headers, t, body)
  if t.usable then
    -- before any wait: in a phase without cosockets nothing must block
    local ok, kind, message = t:usable()
    if not ok then
      return nil, self:_error { kind = kind, message = message, method = row.method, path = path, retryable = false }
    end
  end
  local safe = row.method == "GET" or row.idempotent == true
  local attempts = attempt.attempts(safe, self.retries)
  local method, once = row.method, not safe
  local deadline, left, err
  local own = self._own_transport
  -- our own transports may hand a 2xx JSON answer back decoded (see
  -- qiwi.transport.curl); a file (row.raw) is wanted as text
  local decode = own and not row.raw
  for n = 1, attempts do
    if row.rate then
      local admitted, aerr = attempt.admit(self, row)
      if not admitted then return nil, aerr end
    end
    deadline, left = attempt.start(deadline, self.timeout)
    local ok, status, v, h, code
    if own then
      ok, status, v, h, code = true, t:request(method, url, headers, body, left, once, decode)
    else
      -- a transport of the user's that raises is a failed attempt, not a crash
      ok, status, v, h, code = pcall(t.request, t, method, url, headers, body, left, once)
    end
    if not ok then
      status, v, h = nil, "network", "transport raised: " .. tostring(status)
    end
    if status then
      local result, rerr
      if v == nil and h == nil and code ~= nil and decode then
        result, rerr = answer.decoded(self, row, path, status, code, body)
      else
        result, rerr = answer.read(self, row, path, status, h, v, body)
      end
      if result ~= nil then return result, rerr end
      err = rerr
    else
      err = self:_error { kind = v or "network", message = h or "transport failed", code = code,
                          method = method, path = path }
    end
    if not attempt.again(err, n, attempts) or not attempt.wait(deadline, attempt.delay(err, n)) then break end
  end
  return nil, err
end

-- Sends one prepared request with the attempt policy; returns the result or
-- nil, err. url: given by builder.prepare for a row without arguments,
-- whose plan is then kept for the next calls (see Client:_call).
function Client:_send(row, path, query, body, url)
  local p = private[self]
  local auth, headers = builder.headers(p.headers, row, body ~= nil)
  local t, terr = transport_for(self, auth)
  if not t then
    return nil, self:_error { kind = "network", message = tostring(terr), method = row.method, path = path }
  end
  if url then
    p.plans[row] = { wallet = self.wallet, base_url = self.base_url, path = path, url = url,
                     auth = auth, headers = headers, t = t }
  else
    url = self.base_url .. path
    if query ~= "" then url = url .. "?" .. query end
  end
  return send_with(self, row, path, url, headers, t, body)
end

-- Whether a call of the payment row lets the client choose the id.
local function fresh_id(_, o)
  return type(o) == "table" and rawget(o, "id") == nil and rawget(o, "idempotency_key") == nil
end

-- The generic method behind every row of qiwi.endpoints.
function Client:_call(row, name, ...)
  -- A row without arguments (accounts, nickname, …) is sent alike on every
  -- call: by its plan (URL, header list, transport), while the wallet, the
  -- base URL and the transport it was made with are still the client's
  -- (close() drops the transport), not built and looked up again.
  local plan = private[self].plans[row]
  if plan and plan.wallet == self.wallet and plan.base_url == self.base_url
    and self._transports[plan.auth] == plan.t and select("#", ...) == 0 then
    return send_with(self, row, plan.path, plan.url, plan.headers, plan.t)
  end
  local path, query, body, url = builder.prepare(self, row, name, ...)
  if not path then return nil, query end
  local res, err = self:_send(row, path, query, body, url)
  -- A fresh id that QIWI answers with another payment was taken already
  -- (by a process that shares no store with this one): ours was not made,
  -- so it goes again under another fresh id. An id of the caller's is the
  -- caller's to judge.
  local tries = 1
  while res == nil and row.payment and err.code == ID_REUSED and tries < 3 and fresh_id(...) do
    tries = tries + 1
    path, query, body, url = builder.prepare(self, row, name, ...)
    if not path then return nil, query end
    res, err = self:_send(row, path, query, body, url)
  end
  return res, err
end

-- name -> the generic method of that row; a composition (below, and the
-- payment helpers) replaces it in Client, which the batch checks.
_M.row_methods = {}
for name, row in pairs(endpoints) do
  Client[name] = function(self, ...)
    return self:_call(row, name, ...)
  end
  _M.row_methods[name] = Client[name]
end

-- Several calls at once; see qiwi.batch.
function Client:batch(calls, opts)
  return require("qiwi.batch").run(self, calls, opts)
end

-- Incoming payments from a durable cursor (qiwi.watch).
function Client:watch(opts)
  return require("qiwi.watch").new(self, opts)
end

-- Balances: QIWI may answer an account with hasBalance=true and balance=null;
-- its docs ask to repeat the request for that alias with timeout=1000. The
-- two steps are public seams, which the batch uses for its second round.

-- Whether an account of an accounts() answer is to be asked again.
local function null_balance(acc)
  return type(acc) == "table" and acc.hasBalance == true and (acc.balance == null or acc.balance == nil)
    and type(acc.alias) == "string"
end

-- The accounts of an accounts() answer that are to be asked again.
function _M.null_balances(res)
  local list = {}
  for _, acc in ipairs(type(res) == "table" and type(res.accounts) == "table" and res.accounts or {}) do
    if null_balance(acc) then list[#list + 1] = acc end
  end
  return list
end

-- Takes the balance of acc from the answer of account_balance(acc.alias).
function _M.merge_balance(acc, again)
  for _, a in ipairs(type(again) == "table" and type(again.accounts) == "table" and again.accounts or {}) do
    if type(a) == "table" and a.alias == acc.alias and a.balance ~= nil then acc.balance = a.balance end
  end
end

function Client:accounts(extra)
  if extra ~= nil then
    return nil, self:_error { kind = "argument", retryable = false, message = "accounts takes 0 argument(s), got 1" }
  end
  local res, err = self:_call(endpoints.accounts, "accounts")
  if type(res) ~= "table" then return res, err end
  -- walked in place: a list of them per call was a tenth of a call's garbage
  local list = res.accounts
  if type(list) == "table" then
    for i = 1, #list do
      local acc = list[i]
      if null_balance(acc) then
        local again, aerr = self:account_balance(acc.alias)
        if not again then return nil, aerr end
        _M.merge_balance(acc, again)
      end
    end
  end
  return res
end

-- Every payment of the history, page after page, as a generic-for iterator.
-- On failure the iterator returns nil, err once; the error also stays in
-- state.err (the second value), since a generic for stops at the nil.
function Client:payments(opts)
  local o = {}
  if opts ~= nil then
    if type(opts) ~= "table" then
      local state = { err = self:_error { kind = "argument", message = "options must be a table",
                                          method = "GET", path = endpoints.history.path } }
      local done = false
      return function()
        if done then return nil end
        done = true
        return nil, state.err
      end, state
    end
    for k, v in next, opts do o[k] = v end
  end
  local state = { page = nil, i = 0, done = false, err = nil, count = 0, cursors = {} }
  local function iter()
    if state.done then return nil end
    local page = state.page
    if page == nil or state.i >= #page.data then
      if page ~= nil then
        local nid, ndate = page.nextTxnId, page.nextTxnDate
        if #page.data == 0 or nid == nil or nid == null or ndate == nil or ndate == null then
          state.done = true
          return nil
        end
        -- a server that hands out a cursor it gave before would make the
        -- loop go round for ever: every cursor is taken once
        local cursor = tostring(nid) .. "|" .. tostring(ndate)
        if state.cursors[cursor] then
          state.done = true
          state.err = self:_error { kind = "decode", method = "GET", path = endpoints.history.path,
                                    message = "history cursor did not advance (nextTxnId " .. tostring(nid)
                                      .. ", nextTxnDate " .. tostring(ndate) .. " given again)" }
          return nil, state.err
        end
        state.cursors[cursor] = true
        o.next_txn_id, o.next_txn_date = nid, ndate
      end
      local res, err = self:history(o)
      if not res then
        state.done, state.err = true, err
        return nil, err
      end
      if type(res.data) ~= "table" then
        state.done = true
        state.err = self:_error { kind = "decode", message = "history page has no data array",
                                  method = "GET", path = endpoints.history.path }
        return nil, state.err
      end
      state.page, state.i = res, 0
      if #res.data == 0 then
        state.done = true
        return nil
      end
    end
    state.i = state.i + 1
    state.count = state.count + 1
    return state.page.data[state.i]
  end
  return iter, state
end

-- The compositions take a fixed number of arguments: one more is a mistake
-- the caller should hear of, as for the methods that are one request.
local ARITY = {
  payments = 1, transfer = 1, convert = 1, pay_mobile = 1, pay_card = 1, pay_card_kzt = 1,
  bank_transfer = 2, pay_by_requisites = 1, submit_card_order = 1, buy_card = 2, buy_master_package = 1,
}

local function arity_checked(name, fn)
  local max = ARITY[name]
  return function(self, ...)
    local n = select("#", ...)
    if n > max then
      local err = self:_error { kind = "argument", retryable = false,
                                message = name .. " takes " .. max .. " argument(s), got " .. n }
      if name == "payments" then
        local done = false
        return function()
          if done then return nil end
          done = true
          return nil, err
        end, { err = err }
      end
      return nil, err
    end
    return fn(self, ...)
  end
end

for name, fn in pairs(require "qiwi.payments") do Client[name] = fn end
for name in pairs(ARITY) do Client[name] = arity_checked(name, Client[name]) end

return _M
