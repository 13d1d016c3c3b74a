-- qiwi.fake: a stateful emulator of the QIWI Wallet personal API.
--
-- Its routes are written from QIWI's published docs, independently of the
-- client, so that it catches the client's mistakes instead of agreeing with
-- them. It is as strict as the real server: an unknown path is 404, a known
-- path with another method 405, a missing or wrong token 401, bad parameters
-- or bodies 400 with QIWI's error bodies, a person id other than the fake's
-- wallet 404, and more than `rate_limit` history requests in a minute 423.
--
--   local fake = require "qiwi.fake"
--   local f = fake.new { token = "test-token", wallet = "79111234567", balance = 1000 }
--   local status, headers, body = f:handle { method = "GET", path = "/…", query = "…",
--                                            headers = { authorization = "Bearer test-token" } }
--   local client = qiwi.new { token = "test-token", transport = f:transport() }
--   -- or transport = f: the fake answers f:request(...) as its transport would
--
-- handle() never raises: a request that is none (not a table, a field of the
-- wrong type, headers that are not name -> string) is answered 400.
--
-- Options of fake.new (all optional):
--   token            accepted bearer token ("test-token")
--   wallet           the wallet's person id, digits ("79111234567")
--   balance          RUB balance, number or decimal string (1000)
--   accounts         more accounts: { qw_wallet_usd = 10, … } or { { alias=, balance= }, … }
--   null_balances    aliases whose balance the account list leaves null until it is
--                    asked again with timeout=1000&alias=<alias> (list of aliases)
--   history_pages, history_rows
--                    seed pages*rows past payments, newest first (defaults 1 and 20)
--   history_start    unix time of the newest seeded payment (default: clock() - 600)
--   rate_limit       payment-history requests allowed per sliding 60 s (100)
--   rate_limit_block seconds the history stays blocked once the limit is hit
--                    (300: "access to the API is blocked for 5 minutes")
--   clock            function returning unix seconds (os.time)
--   sleep            function(seconds); lets the in-process transport apply set_delay
--   p2p_secret_key   when set, the bills endpoints (and api.qiwi.com's P2P
--                    bills, fake/p2p.lua) want it instead of the token
--   p2p_site_id, p2p_notifications_url
--                    siteId and notification URL of P2P bills made with that key
--   identification   "FULL" (default), "VERIFIED", "SIMPLE" or "ANONYMOUS"
--   nickname         the wallet nickname ("FAKE-NICK")
--   bills            number of unpaid bills to seed (3)
--   master           true: the QIWI Master package is already bought
--   master_cards     number of QIWI Master cards to seed (implies master = true)
--   restricted       true: outgoing payments are blocked (restrictions endpoint)
--   mobile_account   false: leave out the docs' mc_beeline_rub account
--   lenient_params   true: ignore unknown query parameters instead of 400
--   public_hooks_only false: also accept webhook URLs on private/loopback hosts
--
-- Every request goes to f.requests. README.md beside this file lists the
-- helper methods (set_balance, add_payment, fail_next, …) and error shapes.

local json = require "qiwi.fake.json"
local U = require "qiwi.fake.util"
local C = require "qiwi.fake.catalog"

local floor, format, find, sub, lower = math.floor, string.format, string.find, string.sub, string.lower

local Fake = {}
Fake.__index = Fake

local _M = { _VERSION = "qiwi.fake 0.1.0", json = json, null = json.null }

---------------------------------------------------------------------------
-- Responses (the helpers passed to every service module)

local H = { json = json, U = U, C = C }

local JSON_CT = "application/json;charset=UTF-8"

local STATUS_TEXT = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Entity", [423] = "Locked", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}
H.STATUS_TEXT = STATUS_TEXT

-- The docs' Russian text for payment error 319 (wallet status does not allow
-- the payment): the fake's answer while outgoing payments are restricted.
H.RESTRICTED_TEXT = "Ваш статус кошелька не позволяет совершить платеж."
  .. " Повысьте статус кошелька: укажите паспортные данные."

function H.reply(status, value, headers)
  local h = { ["content-type"] = JSON_CT }
  for k, v in pairs(headers or {}) do h[k] = v end
  return status, h, json.encode(value)
end

function H.ok(value, status)
  return H.reply(status or 200, value)
end

-- An answer without a body (201/204 and friends).
function H.empty(status, headers)
  local h = {}
  for k, v in pairs(headers or {}) do h[k] = v end
  return status, h, ""
end

-- Bytes of a file answer (receipts, statements).
function H.bytes(content_type, data, headers)
  local h = { ["content-type"] = content_type }
  for k, v in pairs(headers or {}) do h[k] = v end
  return 200, h, data
end

-- The error body most QIWI services use.
function H.err(f, status, service, code, user_message, description)
  return H.reply(status, {
    serviceName = service or "edge",
    errorCode = code,
    userMessage = user_message,
    description = description or user_message,
    traceId = f:_trace_id(),
  })
end

-- The error body of the sinap payment service.
function H.sinap_err(status, code, message)
  return H.reply(status, { code = "QWPRC-" .. tostring(code), message = message })
end

function H.bad(f, service, description)
  return H.err(f, 400, service, "validation.error", "Неверный формат данных запроса", description)
end

function H.not_found(f, service, code, description)
  return H.err(f, 404, service, code or "not.found", "Не найдено", description)
end

---------------------------------------------------------------------------
-- Routing

local routes = {}

-- def: method, path ("/a/{w}/b/{id}"), service (name in error bodies),
-- handler(f, ctx) -> status, headers, body; params (allowed query names,
-- "name[]" for indexed lists), body ("json" when a JSON body is required),
-- auth ("token" default, "p2p" for the bills), binary (answers a file:
-- Accept is not checked), trailing_slash (also match with a trailing "/"),
-- accept (the media type a page's HEADERS list names for this request,
-- e.g. "application/vnd.qiwi.v1+json": an Accept without it is answered
-- 406), headers (name -> value lines that list names besides: a request
-- without them is a sinap 400).
local function route(def)
  local segs = {}
  for s in def.path:gmatch("[^/]+") do segs[#segs + 1] = s end
  def.segs = segs
  def.history = sub(def.path, 1, 17) == "/payment-history/"
  local allowed, indexed = {}, {}
  for _, p in ipairs(def.params or {}) do
    if sub(p, -2) == "[]" then indexed[#indexed + 1] = sub(p, 1, -3) else allowed[p] = true end
  end
  def.allowed, def.indexed = allowed, indexed
  routes[#routes + 1] = def
end
H.route = route

local function split_path(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  return segs
end

-- Returns the routes whose path matches, literal matches first.
local function match_routes(path)
  local trailing = #path > 1 and sub(path, -1) == "/"
  local segs = split_path(path)
  local found = {}
  for _, r in ipairs(routes) do
    if #r.segs == #segs and (not trailing or r.trailing_slash) then
      local caps, score, ok = {}, 0, true
      for i, ps in ipairs(r.segs) do
        local name = ps:match("^{(.+)}$")
        if name then
          local v = U.unescape(segs[i], false)
          if not v or v == "" then ok = false break end
          caps[name] = v
        elseif ps == segs[i] then
          score = score + 1
        else
          ok = false
          break
        end
      end
      if ok then found[#found + 1] = { route = r, caps = caps, score = score } end
    end
  end
  table.sort(found, function(a, b) return a.score > b.score end)
  return found
end

-- Services register their routes, seeders (state built by new/reset) and
-- helper methods when loaded.
H.seeders = {}
H.methods = {}
for _, name in ipairs { "profile", "history", "balance", "payments", "invoices", "webhooks", "master", "p2p" } do
  require("qiwi.fake." .. name)(H)
end

---------------------------------------------------------------------------
-- Construction and state

local DEFAULTS = {
  token = "test-token", wallet = "79111234567", balance = 1000, rate_limit = 100,
  rate_limit_block = 300, history_pages = 1, history_rows = 20, identification = "FULL",
  nickname = "FAKE-NICK", bills = 3,
}

local function option(opts, k)
  local v = opts[k]
  if v == nil or v == json.null then return DEFAULTS[k] end
  return v
end

function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("qiwi.fake.new: options must be a table", 2) end
  local self = setmetatable({}, Fake)
  self.opts = {}
  for k, v in pairs(opts) do if v ~= json.null then self.opts[k] = v end end
  self.requests = {}
  self.notifications = {}
  self.sent_cheques = {}
  self.errors = {}
  self:_seed()
  return self
end

local function clear(t)
  for k in pairs(t) do t[k] = nil end
end

function Fake:_opt(k)
  return option(self.opts, k)
end

function Fake:now()
  if self.frozen_time then return self.frozen_time end
  local clock = self.opts.clock or os.time
  return clock() + (self.time_offset or 0)
end

function Fake:_seed()
  local o = self.opts
  self.token = tostring(option(o, "token"))
  self.wallet = tostring(option(o, "wallet")):gsub("^%+", "")
  if not self.wallet:find("^%d+$") then error("qiwi.fake.new: wallet must be digits", 3) end
  self.rate_limit = tonumber(option(o, "rate_limit")) or 100
  self.rate_limit_block = tonumber(option(o, "rate_limit_block")) or 300
  self.delay_ms = 0
  self.last_delay_ms = 0
  self.faults = {}
  self.rate = { times = {}, blocked_until = nil }
  self.counter = 0
  self.trace_counter = 0
  local now = floor(self:now())
  self.created = now
  local st = {
    accounts = {}, by_alias = {}, payments = {}, by_txn = {}, by_client_id = {},
    next_txn = 20000000000, restricted = o.restricted and true or false,
    nickname = tostring(option(o, "nickname")),
  }
  self.state = st
  for _, svc in ipairs(H.seeders) do svc(self, st, now) end
end

-- Back to the seeded state; the logs are emptied in place (references stay valid).
function Fake:reset()
  clear(self.requests)
  clear(self.notifications)
  clear(self.sent_cheques)
  clear(self.errors)
  self.frozen_time, self.time_offset = nil, nil
  self:_seed()
  return true
end

-- Deterministic counters for ids.
function Fake:_next(kind)
  self.counter = self.counter + 1
  return U.uuid(self.counter, (kind or "") .. self.wallet)
end

function Fake:_trace_id()
  self.trace_counter = self.trace_counter + 1
  local n = self.trace_counter
  return format("%08x%08x", (n * 2654435761 + 12345) % 4294967296, (n * 40503 + 977) % 4294967296)
end

---------------------------------------------------------------------------
-- Request handling

-- The request's headers as name -> value (lower-case names), or nil and a
-- reason when they are not headers: a header table maps names to strings or
-- numbers (a list of them for a repeated header), or holds "Name: value" lines.
local function header_table(h)
  local t = {}
  if h == nil or h == json.null then return t end
  if type(h) ~= "table" then return nil, "headers must be a table, got " .. type(h) end
  for k, v in pairs(h) do
    if type(k) == "number" then
      -- "Name: value" lines, as a transport would carry them
      if type(v) ~= "string" then return nil, "header line " .. tostring(k) .. " is not a string" end
      local name, value = v:match("^([^:]+):%s*(.-)%s*$")
      if name then t[lower(name)] = value end
    elseif type(k) == "string" then
      if type(v) == "table" then
        local parts = {}
        for i = 1, #v do
          local item = rawget(v, i)
          if type(item) ~= "string" and type(item) ~= "number" then
            return nil, "header " .. k .. " has a value that is not a string"
          end
          parts[i] = tostring(item)
        end
        v = table.concat(parts, ", ")
      elseif type(v) ~= "string" and type(v) ~= "number" then
        return nil, "header " .. k .. " is a " .. type(v) .. ", not a string"
      end
      t[lower(k)] = tostring(v)
    else
      return nil, "header names must be strings, got " .. type(k)
    end
  end
  return t
end

local function fault_matches(fault, req)
  if fault.method and fault.method ~= req.method then return false end
  if fault.path_pattern and not find(req.path, fault.path_pattern) then return false end
  return true
end

function Fake:_take_fault(req)
  for i, fault in ipairs(self.faults) do
    if fault_matches(fault, req) then
      if fault.count > 0 then
        fault.count = fault.count - 1
        if fault.count == 0 then table.remove(self.faults, i) end
      end
      return fault
    end
  end
end

local function accept_ok(accept)
  if accept == nil or accept == "" then return true end
  accept = lower(accept)
  return find(accept, "json", 1, true) or find(accept, "*/*", 1, true)
    or find(accept, "application/*", 1, true)
end

-- The token check; `expect` is a set of accepted credentials.
local function bearer(headers)
  local a = headers.authorization
  if not a then return nil end
  local scheme, cred = a:match("^(%S+) (%S+)$")
  if not scheme or lower(scheme) ~= "bearer" then return nil end
  return cred
end

function Fake:_credentials(r)
  if r.auth == "p2p" then
    local set = {}
    if self.opts.p2p_secret_key then
      set[tostring(self.opts.p2p_secret_key)] = true
    else
      set[self.token] = true
    end
    for _, k in ipairs(self.state.p2p_keys or {}) do set[k.secret] = true end
    return set
  end
  return { [self.token] = true }
end

-- Sliding-window limit of the payment-history service.
function Fake:_rate_limited()
  local now = self:now()
  local rt = self.rate
  if rt.blocked_until and now < rt.blocked_until then return true end
  rt.blocked_until = nil
  local keep = {}
  for _, t in ipairs(rt.times) do
    if now - t < 60 then keep[#keep + 1] = t end
  end
  rt.times = keep
  if #keep >= self.rate_limit then
    rt.blocked_until = now + self.rate_limit_block
    return true
  end
  keep[#keep + 1] = now
  return false
end

-- The answer fail_next asked for instead of the real one.
function Fake:_injected(fault)
  local h = { ["content-type"] = JSON_CT }
  for k, v in pairs(fault.headers or {}) do h[lower(k)] = v end
  local body = fault.body
  if fault.body_bytes then
    -- built here: a body of megabytes cannot travel through a control call
    local n = math.max(floor(fault.body_bytes), 10)
    body = '{"pad":"' .. string.rep("x", n - 10) .. '"}'
  elseif body == nil then
    body = json.encode {
      serviceName = "edge", errorCode = "fake.injected",
      userMessage = STATUS_TEXT[fault.status] or "Error",
      description = "failure injected by fail_next", traceId = self:_trace_id(),
    }
  elseif type(body) == "table" then
    body = json.encode(body)
  end
  return fault.status, h, body
end

-- A fault either replaces the request (the fake never sees it: no state
-- changes) or, with `served`, hits the answer of a request the fake handled,
-- which is how a payment gets debited while its answer is lost.
function Fake:_dispatch(req, entry)
  local fault = self:_take_fault(req)
  self.last_fault = fault
  if not fault then return self:_serve(req, entry) end
  self.last_delay_ms = self.last_delay_ms + (fault.delay_ms or 0)
  if fault.served then
    local s, h, b = self:_serve(req, entry)
    if fault.status then return self:_injected(fault) end
    return s, h, b
  end
  if fault.drop or fault.reset then return 444, { ["x-fake-drop"] = "1" }, "" end
  if fault.status then return self:_injected(fault) end
  return self:_serve(req, entry)
end

function Fake:_serve(req, entry)
  local matches = match_routes(req.path)
  if #matches == 0 then
    return H.err(self, 404, "edge", "not.found", "Не найдено", "no such API path: " .. req.path)
  end
  local m
  for _, c in ipairs(matches) do
    if c.route.method == req.method then m = c break end
  end
  if not m then
    local allow, seen = {}, {}
    for _, c in ipairs(matches) do
      if not seen[c.route.method] then
        seen[c.route.method] = true
        allow[#allow + 1] = c.route.method
      end
    end
    table.sort(allow)
    local s, h, b = H.err(self, 405, matches[1].route.service, "method.not.allowed",
      "Метод не поддерживается", req.method .. " is not supported here; allowed: " .. table.concat(allow, ", "))
    h.allow = table.concat(allow, ", ")
    return s, h, b
  end
  local r, caps = m.route, m.caps

  local cred = bearer(req.headers)
  if not cred or not self:_credentials(r)[cred] then
    return H.err(self, 401, r.service, "auth.unauthorized", "Ошибка авторизации",
      req.headers.authorization and "invalid or expired token" or "no Authorization: Bearer header")
  end

  if not r.binary and not accept_ok(req.headers.accept) then
    return H.bad(self, r.service, "unsupported Accept: " .. tostring(req.headers.accept))
  end
  if r.accept and not find(lower(req.headers.accept or ""), r.accept, 1, true) then
    return H.sinap_err(406, 406, "this request takes Accept: " .. r.accept .. ", got "
      .. tostring(req.headers.accept))
  end
  for name, value in pairs(r.headers or {}) do
    if req.headers[name] ~= value then
      return H.sinap_err(400, 400, "this request takes the header " .. name .. ": " .. value)
    end
  end

  local params, perr = U.parse_query(req.query)
  if not params then return H.bad(self, r.service, perr) end
  entry.params = params
  if not self.opts.lenient_params then
    for k in pairs(params) do
      local ok = r.allowed[k]
      if not ok then
        for _, base in ipairs(r.indexed) do
          if sub(k, 1, #base + 1) == base .. "[" then ok = true break end
        end
      end
      if not ok then return H.bad(self, r.service, "unknown query parameter " .. k) end
    end
  end

  if r.history and self:_rate_limited() then
    return H.err(self, 423, r.service, "request.blocked", "Слишком много запросов",
      "more than " .. self.rate_limit .. " payment history requests a minute; blocked for "
      .. self.rate_limit_block .. " s")
  end

  if caps.w and caps.w ~= self.wallet then
    return H.err(self, 404, r.service, "wallet.not.found", "Кошелек не найден",
      "no wallet " .. caps.w)
  end

  local body_json
  if r.body == "json" then
    local ct = req.headers["content-type"]
    if req.body == nil or req.body == "" then
      if r.service == "sinap" then return H.sinap_err(400, 400, "Пустое тело запроса") end
      return H.bad(self, r.service, "a JSON request body is required")
    end
    if not ct or not find(lower(ct), "^application/json") then
      if r.service == "sinap" then
        return H.sinap_err(400, 400, "Content-Type должен быть application/json")
      end
      return H.bad(self, r.service, "Content-Type must be application/json, got " .. tostring(ct))
    end
    local v, jerr = json.decode(req.body)
    if v == nil then
      if r.service == "sinap" then return H.sinap_err(400, 400, "Неверный JSON: " .. jerr) end
      return H.bad(self, r.service, "malformed JSON: " .. jerr)
    end
    if type(v) ~= "table" or json.is_array(v) then
      if r.service == "sinap" then return H.sinap_err(400, 400, "Ожидается JSON-объект") end
      return H.bad(self, r.service, "the body must be a JSON object")
    end
    body_json = v
  end

  return r.handler(self, {
    params = params, caps = caps, json = body_json, headers = req.headers, body = req.body,
    method = req.method, path = req.path, query = req.query, route = r,
  })
end

-- The request handle() was given, checked: method, path, query, headers,
-- body as the fake serves them, or nil and why it is no request at all.
local function request_fields(req)
  if type(req) ~= "table" then return nil, "the request must be a table, got " .. type(req) end
  local method, path, query, body = req.method, req.path, req.query, req.body
  if method == nil or method == json.null then method = "GET" end
  if type(method) ~= "string" then return nil, "method must be a string, got " .. type(method) end
  if path == nil or path == json.null then path = "/" end
  if type(path) ~= "string" then return nil, "path must be a string, got " .. type(path) end
  if query == nil or query == json.null then query = "" end
  if type(query) ~= "string" then return nil, "query must be a string, got " .. type(query) end
  if body == json.null then body = nil end
  if body ~= nil and type(body) ~= "string" then return nil, "body must be a string, got " .. type(body) end
  local headers, herr = header_table(req.headers)
  if not headers then return nil, herr end
  return { method = method:upper(), path = path, query = query, headers = headers, body = body,
           connection = req.connection }
end

-- Answers one request. req: method, path, query (raw, without '?'),
-- headers (name -> value; names in any case), body (raw string or nil).
-- Returns status, headers (lower-case names), body ("" when none).
-- A request that is not one (not a table, a field of the wrong type) is
-- answered 400, as a server answers bytes that are not HTTP; it never raises.
function Fake:handle(req)
  local ok, r, why = pcall(request_fields, req)
  if not ok then r, why = nil, "unreadable request: " .. tostring(r) end
  if not r then
    -- no fault or delay of an earlier request may hang on to this answer
    self.last_delay_ms = self.delay_ms or 0
    self.last_fault = nil
    local method = type(req) == "table" and rawget(req, "method")
    local path = type(req) == "table" and rawget(req, "path")
    self.requests[#self.requests + 1] = {
      method = type(method) == "string" and method:upper() or "?",
      path = type(path) == "string" and path or "?",
      query = "", headers = {}, params = {}, malformed = why, status = 400,
    }
    local status, h, b = H.bad(self, "edge", "malformed request: " .. why)
    return status, h, b
  end
  local method, path, query, headers, body = r.method, r.path, r.query, r.headers, r.body
  local qpos = find(path, "?", 1, true)
  if qpos then
    if query == "" then query = sub(path, qpos + 1) end
    path = sub(path, 1, qpos - 1)
  end
  if path == "" then path = "/" end

  local entry = {
    method = method, path = path, query = query, headers = headers, body = body,
    params = U.parse_query(query) or {}, connection = r.connection,
  }
  if body and body ~= "" then entry.json = json.decode(body) end
  self.requests[#self.requests + 1] = entry

  self.last_delay_ms = self.delay_ms or 0
  self.last_fault = nil
  local n = { method = method, path = path, query = query, headers = headers, body = body }
  local dok, status, h, b = pcall(self._dispatch, self, n, entry)
  if not dok then
    self.errors[#self.errors + 1] = tostring(status)
    status, h, b = H.err(self, 500, "edge", "internal.error", "Внутренняя ошибка",
      "qiwi.fake bug: " .. tostring(status))
  end
  entry.status = status
  return status, h or {}, b or ""
end

---------------------------------------------------------------------------
-- In-process transport

-- The transport contract (see qiwi.transport.curl): request(method, url,
-- headers = {"Name: value", …}, body, timeout, once) -> status, body,
-- headers (lower-case names), or nil, kind, message where a real transport
-- would have no answer: an injected drop, reset or truncation (fail_next),
-- or a delay longer than timeout (only when a `sleep` option was given). A
-- request that is not one gets handle()'s 400.
local function lower_names(h)
  local out = {}
  for k, v in pairs(h or {}) do
    if type(k) == "string" then out[k:lower()] = v end
  end
  return out
end

local function transport_request(f, method, url, headers, body, timeout)
  local u = type(url) == "string" and U.parse_url(url)
  if not u then
    if type(url) ~= "string" then
      local status, h, b = H.bad(f, "edge", "malformed request: url must be a string, got " .. type(url))
      return status, b, lower_names(h)
    end
    return nil, "network", "qiwi.fake: cannot parse URL " .. url
  end
  local status, h, b = f:handle {
    method = method, path = u.path, query = u.query, headers = headers, body = body,
  }
  local fault = f.last_fault
  local delay = ((f.last_delay_ms or 0) + (fault and fault.stall_ms or 0)) / 1000
  local sleep = f.opts.sleep
  if delay > 0 and sleep then
    local limit = tonumber(timeout)
    if limit and delay > limit then
      sleep(limit)
      return nil, "timeout", "qiwi.fake: no answer within " .. limit .. " s"
    end
    sleep(delay)
  end
  if fault and fault.reset then
    return nil, "network", "qiwi.fake: connection reset by peer (fail_next reset)"
  end
  if fault and fault.drop or status == 444 and h["x-fake-drop"] then
    return nil, "network", "qiwi.fake: connection dropped (fail_next drop)"
  end
  if fault and fault.truncate and fault.truncate < #b then
    return nil, "network", format("qiwi.fake: answer truncated after %d of %d bytes (fail_next truncate)",
                                  fault.truncate, #b)
  end
  return status, b, lower_names(h)
end

-- An object for the client's `transport` option, answering
-- t:request(method, url, headers, body, timeout, once) as described above.
function Fake:transport()
  local f = self
  local t = {}
  function t.request(_, ...) return transport_request(f, ...) end
  function t.close() end
  return t
end

-- The fake is a transport itself: qiwi.new{transport = f} works like
-- qiwi.new{transport = f:transport()}.
function Fake:request(...)
  return transport_request(self, ...)
end

---------------------------------------------------------------------------
-- Test helpers

-- Makes the next matching request(s) fail. spec:
--   status, body, headers  this answer instead of the real one (body: a string
--                          or a table to encode; default a QIWI error body)
--   body_bytes             with status: a JSON body of exactly this many bytes
--   count                  how many requests (default 1; -1: until clear_faults)
--   path_pattern, method   which requests (Lua pattern on the path)
--   delay_ms               the answer is late by this much (alone: served normally, late)
--   drop                   the connection is closed without an answer
--   reset                  the connection is reset (TCP RST) instead of an answer
--   truncate               only this many bytes of the body are sent, under a
--                          Content-Length of the whole, then the connection closes
--   stall_ms, stall_after  headers and the first stall_after bytes (default 0) of
--                          the body at once, the rest stall_ms later
--   served                 the fake handles the request first (a payment is
--                          debited) and the fault hits its answer: drop, reset,
--                          truncate, or status/body replacing it
-- With none of status, drop, reset, truncate, stall_ms, delay_ms: a 500 with QIWI's error body.
function Fake:fail_next(spec)
  spec = spec or {}
  local function opt(k)
    local v = spec[k]
    if v == json.null then return nil end
    return v
  end
  local status = tonumber(opt("status"))
  local transport_fault = opt("drop") or opt("reset") or opt("truncate") or opt("stall_ms")
  if status == nil and not transport_fault and not opt("delay_ms") then status = 500 end
  if opt("body_bytes") and not status then error("fail_next: body_bytes needs a status", 2) end
  local fault = {
    status = status, body = opt("body"), headers = opt("headers"), body_bytes = tonumber(opt("body_bytes")),
    count = tonumber(opt("count")) or 1, path_pattern = opt("path_pattern"),
    method = opt("method") and tostring(opt("method")):upper() or nil,
    delay_ms = tonumber(opt("delay_ms")), drop = opt("drop") == true, reset = opt("reset") == true,
    truncate = tonumber(opt("truncate")), stall_ms = tonumber(opt("stall_ms")),
    stall_after = tonumber(opt("stall_after")) or 0, served = opt("served") == true,
  }
  self.faults[#self.faults + 1] = fault
  return true
end

function Fake:clear_faults()
  self.faults = {}
  return true
end

-- Delay (ms) applied to every answer by the nginx server, and in-process
-- when a `sleep` option was given.
function Fake:set_delay(ms)
  self.delay_ms = tonumber(ms) or 0
  return true
end

-- Toggles the OUTGOING_PAYMENTS restriction (payments are then refused).
function Fake:set_restricted(on)
  self.state.restricted = on and true or false
  return true
end

function Fake:set_nickname(nick)
  self.state.nickname = tostring(nick)
  return true
end

-- Moves the fake's clock (also over nginx, where no clock function can be
-- passed): set_time(t) freezes it at unix time t (nil: back to the running
-- clock); advance(seconds) moves it forward, frozen or not. Both return now().
function Fake:set_time(t)
  if t == nil or t == json.null then
    self.frozen_time = nil
  else
    self.frozen_time = tonumber(t)
  end
  return self:now()
end

function Fake:advance(seconds)
  seconds = tonumber(seconds) or 0
  if self.frozen_time then
    self.frozen_time = self.frozen_time + seconds
  else
    self.time_offset = (self.time_offset or 0) + seconds
  end
  return self:now()
end

-- Allows the history again at once (clears the 423 window).
function Fake:reset_rate_limit()
  self.rate = { times = {}, blocked_until = nil }
  return true
end

for k, v in pairs(H.methods or {}) do Fake[k] = v end

_M.Fake = Fake
_M.H = H
return _M
