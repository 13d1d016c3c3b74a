-- The client: option checks, the request plumbing driven by qiwi.endpoints,
-- and the few methods that compose several requests.
local core = require "qiwi.core"
local args = require "qiwi.args"
local qerror = require "qiwi.error"
local endpoints = require "qiwi.endpoints"
local ratelimit = require "qiwi.ratelimit"
local payment_check = require "qiwi.payment_check"
local curl_request = require("qiwi.transport.curl").request

local json_encode, json_decode, null = core.json_encode, core.json_decode, core.null
local type, pairs, ipairs, select, tostring = type, pairs, ipairs, select, tostring
local concat, format, find, gsub = table.concat, string.format, string.find, string.gsub

local VERSION = "0.1.0"

local _M = { VERSION = VERSION }
local Client = {}
Client.__index = Client
_M.Client = Client

local in_nginx = type(ngx) == "table" and type(ngx.socket) == "table"

-- What holds the token or the P2P key (the key list for scrubbing, the header
-- lines, the per-row header cache) lives here rather than in the client
-- table, so that dumping a client (inspect, serpent, a logged table) shows
-- no secret. Weak keys: a client dropped by its user takes its record along.
local private = setmetatable({}, { __mode = "k" })
_M.private = private

local function sleep(seconds)
  if seconds <= 0 then return end
  if in_nginx and ngx.sleep then
    local ok = pcall(ngx.sleep, seconds)
    if ok then return end
  end
  core.sleep(seconds)
end

local function monotonic()
  return core.monotonic()
end

local KNOWN_OPTIONS = {
  token = true, wallet = true, base_url = true, timeout = true, connect_timeout = true,
  ca_file = true, retries = true, user_agent = true, transport = true, p2p_secret_key = true,
  resolve = true, allow_http = true, max_body = true, history_rate = true,
}

local function opt_error(message)
  return nil, qerror.argument(message)
end

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or find(host, "^127%.%d+%.%d+%.%d+$") ~= nil
    or host == "[::1]" or host == "::1"
end

-- A printable name for a key of an options table, whatever its type: a
-- table's own __tostring must not run (it may raise, or lie).
local function key_name(k)
  if type(k) == "string" then return k end
  if type(k) == "number" then return tostring(k) end
  return "<" .. type(k) .. ">"
end
_M.key_name = key_name

-- Splits base_url into scheme, host and port, or nil, reason. Only
-- scheme://host[:port] is a base URL: user info would keep a credential in
-- the client (and in every URL it builds), and a path, query or fragment
-- would change what each endpoint's path means.
local function parse_base_url(base)
  if args.has_control(base) or find(base, "[%s\\]") then
    return nil, "base_url must not contain spaces, backslashes or control characters"
  end
  base = gsub(base, "/+$", "")
  local scheme, rest = base:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "base_url must look like https://host[:port]" end
  if find(rest, "@", 1, true) then return nil, "base_url must not contain user info (user@ or token@)" end
  if find(rest, "[?#]") then return nil, "base_url must not contain a query or a fragment" end
  if find(rest, "/", 1, true) then return nil, "base_url must not contain a path: https://host[:port]" end
  local host, port = rest:match("^(%[[%x:.]+%]):?(%d*)$")
  if not host then host, port = rest:match("^([%w][%w.-]*):?(%d*)$") end
  if not host or (port == "" and find(rest, ":$")) then
    return nil, "base_url must look like https://host[:port]"
  end
  if port ~= "" then
    local n = #port <= 5 and tonumber(port)
    if not n or n < 1 or n > 65535 then return nil, "base_url port must be from 1 to 65535" end
    port = n
  else
    port = nil
  end
  return scheme:lower(), host, port, base
end

-- A transport is an object with a request method; a qiwi.fake object is
-- taken as it is (it has one). Indexing runs the object's own metamethods,
-- which may raise: that is a bad option, not a crash.
local function check_transport(t)
  if type(t) ~= "table" and type(t) ~= "userdata" then
    return nil, "transport must be an object with a request method"
  end
  local ok, callable = pcall(function()
    local req = t.request
    if type(req) == "function" then return true end
    local m = type(req) == "table" and getmetatable(req)
    return type(m) == "table" and m.__call ~= nil
  end)
  if not ok or not callable then
    return nil, "transport must be an object with a request method"
  end
  return t
end

-- The shortest token or P2P key taken. QIWI's tokens have 32 characters;
-- 8 keeps test tokens such as the fake's "test-token" usable.
local MIN_SECRET = 8

-- Checks the options of qiwi.new; returns a normalised copy or nil, reason.
local function check_options(opts)
  if type(opts) ~= "table" then return nil, "options must be a table" end
  -- taken by value: read once with next, so that no metamethod of the
  -- caller's table runs and later changes to it change nothing here
  local copy = {}
  for k, v in next, opts do
    if not KNOWN_OPTIONS[k] then return nil, "unknown option '" .. key_name(k) .. "'" end
    copy[k] = v
  end
  opts = copy
  local o = {}
  if type(opts.token) ~= "string" or opts.token == "" then return nil, "token is required (a string)" end
  if find(opts.token, "[%z\1-\32\127]") then return nil, "token must not contain spaces or control characters" end
  -- every error text is scrubbed of the token: a token of a letter or two
  -- would be scrubbed out of ordinary words ("mus*** con***ain")
  if #opts.token < MIN_SECRET then
    return nil, format("token is too short to be a QIWI API token (at least %d characters; QIWI's have 32)", MIN_SECRET)
  end
  o.token = opts.token
  if opts.p2p_secret_key ~= nil then
    if type(opts.p2p_secret_key) ~= "string" or #opts.p2p_secret_key < MIN_SECRET
        or find(opts.p2p_secret_key, "[%z\1-\32\127]") then
      return nil, format("p2p_secret_key must be a string of at least %d characters without spaces or control characters", MIN_SECRET)
    end
    o.p2p_secret_key = opts.p2p_secret_key
  end
  if opts.wallet ~= nil then
    local w, err = args.wallet(opts.wallet)
    if not w then return nil, "wallet " .. err end
    o.wallet = w
  end
  local base = opts.base_url or "https://edge.qiwi.com"
  if type(base) ~= "string" then return nil, "base_url must be a string" end
  local scheme, host, port, clean = parse_base_url(base)
  if not scheme then return nil, host end
  if opts.allow_http ~= nil and type(opts.allow_http) ~= "boolean" then
    return nil, "allow_http must be true or false (plain http for a loopback host; otherwise https)"
  end
  if scheme == "http" then
    if not (opts.allow_http == true and is_loopback(host)) then
      return nil, "base_url must be https (http only for a loopback host with allow_http = true)"
    end
  elseif scheme ~= "https" then
    return nil, "base_url must be https"
  end
  o.base_url, o.host = clean, host
  o.port = port or (scheme == "https" and 443 or 80)
  o.allow_http = opts.allow_http == true
  for _, name in ipairs { "timeout", "connect_timeout" } do
    local v = opts[name]
    if v ~= nil and (type(v) ~= "number" or not (v > 0 and v <= 3600)) then
      return nil, name .. " must be a number of seconds between 0 and 3600"
    end
  end
  o.timeout = opts.timeout or 30
  o.connect_timeout = opts.connect_timeout or 10
  if opts.retries ~= nil then
    local ok, n = args.integer(opts.retries, { min = 0, max = 10 })
    if not ok then return nil, "retries must be an integer from 0 to 10" end
    o.retries = n
  else
    o.retries = 2
  end
  if opts.ca_file ~= nil and (type(opts.ca_file) ~= "string" or opts.ca_file == ""
      or args.has_control(opts.ca_file)) then
    return nil, "ca_file must be a path"
  end
  o.ca_file = opts.ca_file
  if opts.user_agent ~= nil then
    local ua, err = args.string(opts.user_agent, { max = 200 })
    if not ua then return nil, "user_agent " .. err end
  end
  o.user_agent = opts.user_agent or ("lua-qiwi/" .. VERSION)
  if opts.transport ~= nil then
    local t, terr = check_transport(opts.transport)
    if not t then return nil, terr end
    o.transport = t
  end
  if opts.resolve ~= nil then
    if type(opts.resolve) ~= "table" then return nil, "resolve must be a table {host = ip}" end
    local list = {}
    for h, ip in next, opts.resolve do
      if type(h) ~= "string" or type(ip) ~= "string" or not find(h, "^[%w%.%-]+$")
          or not find(ip, "^[%x%.:%[%]]+$") then
        return nil, "resolve must map host names to IP addresses"
      end
      -- plain http is allowed for loopback only: that holds for the address
      -- connected to, not for the name, or the token would go out in clear
      if scheme == "http" and h:lower() == host:lower() and not is_loopback(ip) then
        return nil, "resolve sends " .. h .. " to " .. ip .. ", which is not a loopback address (base_url is http)"
      end
      list[#list + 1] = format("%s:%d:%s", h, o.port, ip)
    end
    o.resolve = list
  end
  if opts.max_body ~= nil then
    local ok, n = args.integer(opts.max_body, { min = 1024, max = 1024 * 1024 * 1024 })
    if not ok then return nil, "max_body must be a byte count from 1024 to 1 GiB" end
    o.max_body = n
  end
  local hr = opts.history_rate
  if hr ~= nil and hr ~= false then
    if type(hr) ~= "table" then return nil, "history_rate must be a table {limit=, window=} or false" end
    local h = {}
    for k, v in next, hr do
      if k ~= "limit" and k ~= "window" and k ~= "clock" and k ~= "sleep" then
        return nil, "history_rate: unknown option '" .. key_name(k) .. "'"
      end
      h[k] = v
    end
    hr = h
    if hr.limit ~= nil and not args.integer(hr.limit, { min = 1, max = 100000 }) then
      return nil, "history_rate.limit must be an integer from 1 to 100000"
    end
    -- NaN, infinity or a negative window would make the limiter wait for ever
    if hr.window ~= nil and (type(hr.window) ~= "number" or not (hr.window > 0 and hr.window <= 86400)) then
      return nil, "history_rate.window must be a number of seconds above 0 and at most 86400"
    end
    if (hr.clock ~= nil) ~= (hr.sleep ~= nil) then
      return nil, "history_rate.clock and history_rate.sleep go together"
    end
    if hr.clock ~= nil and (type(hr.clock) ~= "function" or type(hr.sleep) ~= "function") then
      return nil, "history_rate.clock and history_rate.sleep must be functions"
    end
  elseif hr == false then
    hr = false
  end
  o.history_rate = hr
  return o
end

function _M.new(opts)
  local o, err = check_options(opts)
  if not o then return opt_error(err) end
  local self = setmetatable({
    wallet = o.wallet,
    base_url = o.base_url,
    retries = o.retries,
    timeout = o.timeout,
    _opts = o,
    _transports = {},
  }, Client)
  local priv = { secrets = { o.token, o.p2p_secret_key }, hcache = {} }
  private[self] = priv
  if o.history_rate ~= false then
    local hr = o.history_rate or {}
    self._history_rate = ratelimit.new { limit = hr.limit, window = hr.window,
                                         clock = hr.clock or monotonic, sleep = hr.sleep or sleep }
  end
  -- Header lists are built once: a call only adds Content-Type when it has a body.
  priv.headers = {
    token = { "Accept: application/json", "Authorization: Bearer " .. o.token },
  }
  if o.p2p_secret_key then
    priv.headers.p2p = { "Accept: application/json", "Authorization: Bearer " .. o.p2p_secret_key }
  end
  -- the options kept for transports built later need no secret
  o.token, o.p2p_secret_key = nil, nil
  return self
end

local function transport_for(self, auth)
  local t = self._transports[auth]
  if t then return t end
  local o = self._opts
  if o.transport then
    t = o.transport
  elseif in_nginx then
    t = require("qiwi.transport.ngx").new {
      timeout = o.timeout, connect_timeout = o.connect_timeout, ca_file = o.ca_file,
      resolve = o.resolve, user_agent = o.user_agent, max_body = o.max_body,
    }
  else
    local ok, res = pcall(require("qiwi.transport.curl").new, {
      headers = private[self].headers[auth], timeout = o.timeout, connect_timeout = o.connect_timeout,
      ca_file = o.ca_file, user_agent = o.user_agent, resolve = o.resolve,
      allow_http = o.allow_http, max_body = o.max_body,
    })
    if not ok then return nil, res end
    t = res
  end
  self._transports[auth] = t
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

-- Sets a nested field of a JSON body from a dotted wire name.
local function set_path(t, dotted, value)
  local parts = {}
  for part in dotted:gmatch("[^%.]+") do parts[#parts + 1] = part end
  for i = 1, #parts - 1 do
    local child = t[parts[i]]
    if child == nil then
      child = {}
      t[parts[i]] = child
    end
    t = child
  end
  t[parts[#parts]] = value
end

local random_seeded = false
local generators = {
  id = require("qiwi.ids").next,
  uuid = function()
    if not random_seeded then
      math.randomseed(math.floor(core.now_ms()) % 2147483647 + core.getpid())
      random_seeded = true
    end
    -- 16-bit pieces: Lua 5.1's math.random refuses an interval past INT_MAX
    local r = math.random
    return format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", r(0, 0xffff), r(0, 0xffff), r(0, 0xffff),
                  r(0, 0xfff), 0x8000 + r(0, 0x3fff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
  end,
}

-- Turns the call's arguments into the wire request of `row`.
-- Returns {path_params=, query=, body=} or nil, reason.
local function build(row, name, ...)
  local opts = {}
  local n = select("#", ...)
  local names = row.args or {}
  if n > #names then return nil, format("%s takes %d argument(s), got %d", name, #names, n) end
  local known = {}
  for _, p in ipairs(row.params or {}) do known[p[1]] = p end
  for i, argname in ipairs(names) do
    local v = select(i, ...)
    if argname == "opts" then
      if v ~= nil then
        if type(v) ~= "table" then return nil, "options must be a table" end
        -- next, not pairs: no metamethod of the caller's table runs
        for k, val in next, v do
          if not known[k] then return nil, "unknown option '" .. key_name(k) .. "'" end
          if opts[k] == nil then opts[k] = val end
        end
      end
    else
      opts[argname] = v
    end
  end

  local req = { path_params = {}, query = {}, body = nil }
  for _, c in ipairs(row.const or {}) do
    local where, wire = c[1]:match("^(%a+)%.(.+)$")
    if where == "body" then
      req.body = req.body or {}
      set_path(req.body, wire, c[2])
    else
      req.query[#req.query + 1] = args.escape(wire) .. "=" .. args.escape(c[2])
    end
  end
  local seconds = {}
  for _, p in ipairs(row.params or {}) do
    local lname, wire, where, check = p[1], p[2], p[3], p[4]
    local v = opts[lname]
    if v == nil then v = p.default end
    if v == nil and p.generate then v = generators[p.generate]() end
    if v == nil then
      if p.required then return nil, lname .. " is required" end
    else
      local w, extra
      if v == "" and p.empty then
        w = ""
      else
        w, extra = args[check](v, p.spec)
      end
      if w == nil then return nil, lname .. " " .. extra end
      if check == "date" then seconds[lname] = extra end
      if where == "path" then
        req.path_params[wire] = args.escape(w)
      elseif where == "query" then
        if p.list then
          for i, item in ipairs(w) do
            req.query[#req.query + 1] = args.escape(format("%s[%d]", wire, i - 1)) .. "=" .. args.escape(item)
          end
        else
          req.query[#req.query + 1] = args.escape(wire) .. "=" .. args.escape(w)
        end
      else
        req.body = req.body or {}
        if p.merge then
          for k, fv in pairs(w) do set_path(req.body, wire .. "." .. k, fv) end
        else
          local value = w
          if p.as ~= "string" and extra ~= nil then value = extra end
          set_path(req.body, wire, value)
        end
      end
    end
  end
  -- Pairs that QIWI only accepts together, and date ranges it refuses.
  for _, p in ipairs(row.params or {}) do
    if p.with and (opts[p[1]] == nil) ~= (opts[p.with] == nil) then
      return nil, p[1] .. " and " .. p.with .. " must be given together"
    end
    if p.max_span and seconds[p[1]] and seconds[p.with] then
      local span = seconds[p.with] - seconds[p[1]]
      if span < 0 then return nil, p.with .. " must not be before " .. p[1] end
      if span > p.max_span then
        return nil, format("the period from %s to %s must be at most %d days", p[1], p.with, math.floor(p.max_span / 86400))
      end
    end
  end
  for _, dotted in ipairs(row.requires or {}) do
    local t = req.body
    for part in dotted:gmatch("[^%.]+") do t = type(t) == "table" and t[part] or nil end
    if t == nil then return nil, dotted:match("[^%.]+$") .. " is required" end
  end
  if row.body == "object" and req.body == nil then req.body = {} end
  return req
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

local function retry_after_seconds(headers)
  local v = headers and headers["retry-after"]
  local n = v and tonumber(v)
  if n and n >= 0 then return n end
  return nil
end

local CONTENT_JSON = { "Content-Type: application/json" }
local NO_HEADERS = {}

-- The header lists of a request: auth ("token" or "p2p"), the full list, and
-- the per-row lines alone (for transports that hold the constant ones).
function Client:_wire_headers(row, body)
  local priv = private[self]
  local auth = (row.auth == "p2p" and priv.headers.p2p) and "p2p" or "token"
  local headers, extra = priv.headers[auth], nil
  if body or row.accept then
    -- per client, row and auth: built on first use and kept
    local key = (body and "b:" or "h:") .. auth
    local per_row = priv.hcache[row]
    if not per_row then
      per_row = {}
      priv.hcache[row] = per_row
    end
    local cache = per_row[key]
    if not cache then
      extra = {}
      if row.accept then extra[#extra + 1] = "Accept: " .. row.accept end
      if body then extra[#extra + 1] = CONTENT_JSON[1] end
      local full = {}
      for _, h in ipairs(extra) do full[#full + 1] = h end
      for _, h in ipairs(headers) do
        if not (row.accept and h:find("^Accept:")) then full[#full + 1] = h end
      end
      cache = { extra = extra, full = full }
      per_row[key] = cache
    end
    headers, extra = cache.full, cache.extra
  end
  return auth, headers, extra
end

-- Sends one described request with the retry policy; returns result or nil, err.
-- url: when the caller has it already (a row without arguments caches it).
function Client:_send(row, path, query, body, url)
  local auth, headers, extra = self:_wire_headers(row, body)
  local t, terr = transport_for(self, auth)
  if not t then
    return nil, self:_error { kind = "network", message = tostring(terr), method = row.method, path = path }
  end
  if not url then
    url = self.base_url .. path
    if query ~= "" then url = url .. "?" .. query end
  end
  local safe = row.method == "GET" or row.idempotent
  -- The libcurl transport is called with positional values: a request and
  -- an answer table per call were a third of the garbage a call leaves.
  local session = t.request == curl_request and t.session
  local req
  if not session then
    -- every field in the constructor: a field added later makes Lua rehash the table.
    -- once: libcurl would silently re-send a request whose reused connection
    -- died without an answer; what must not be repeated gets a connection of its own
    req = { method = row.method, url = url, path = path, query = query, headers = headers,
            extra_headers = extra, body = body, raw = row.raw, timeout = self.timeout,
            once = not safe }
    if t.usable then
      -- before any wait: in a phase without cosockets nothing must block
      local ok, kind, message = t:usable()
      if not ok then
        return nil, self:_error { kind = kind, message = message, method = row.method, path = path, retryable = false }
      end
    end
  end
  local attempts = safe and self.retries + 1 or 1
  local timeout = self.timeout
  local deadline
  local err
  for attempt = 1, attempts do
    if row.rate == "history" and self._history_rate then
      ratelimit.acquire(self._history_rate, self.wallet or "?")
    end
    -- the call's time runs from its first send, not from a rate-limit wait
    if deadline then
      timeout = math.max(deadline - monotonic(), 0.001)
    else
      deadline = monotonic() + timeout
    end
    local status, v, h, dec
    if session then
      status, v, h, dec = session:request(row.method, url, extra, body, not row.raw, timeout, not safe)
    else
      req.timeout = timeout
      -- a transport of the user's that raises is a failed attempt, not a crash
      local ok, res, kind, message = pcall(t.request, t, req)
      if not ok then
        res, kind, message = nil, "network", "transport raised: " .. tostring(res)
      end
      if res then
        status, h = res.status, res.headers
        if res.decoded then v, dec = res.data, true else v, dec = res.body, res.decode_error end
      else
        v, h = kind, message
      end
    end
    local delay
    if not status then
      err = self:_error { kind = v or "network", message = h or "transport failed",
                          method = row.method, path = path }
    else
      local result, rerr = self:_answer(row, path, status, h, v, dec, body)
      if result ~= nil then return result, rerr end
      err = rerr
      delay = retry_after_seconds(h)
    end
    if attempt == attempts or not err.retryable then break end
    local backoff = 0.2 * 2 ^ (attempt - 1) * (0.5 + math.random())
    delay = delay or backoff
    if monotonic() + delay >= deadline then break end
    sleep(delay)
  end
  return nil, err
end

-- Interprets a transport response table (status, headers, and data when
-- decoded, or body and decode_error); sent: the request body.
function Client:_response(row, path, res, sent)
  if res.decoded then return self:_answer(row, path, res.status, res.headers, res.data, true, sent) end
  return self:_answer(row, path, res.status, res.headers, res.body, res.decode_error, sent)
end

-- Interprets an answer: dec is true when v is the decoded body, a string
-- when v is a body that failed to decode, nil when v is a body not decoded;
-- sent is the request body (a payment's answer is checked against it).
function Client:_answer(row, path, status, headers, v, dec, sent)
  headers = headers or NO_HEADERS
  local data, derr, body
  if dec == true then
    data = v
  else
    body, derr = v, dec
    if not row.raw and body and body ~= "" and not derr then
      local ct = headers["content-type"] or ""
      if find(ct, "json", 1, true) or find(body, "^%s*[%[{]") then
        local d, e = json_decode(body)
        if d == nil then derr = e else data = d end
      end
    end
  end
  if status >= 200 and status < 300 then
    if row.raw then return body or "", headers["content-type"] end
    if derr then
      return nil, self:_error { kind = "decode", status = status, message = derr,
                                method = row.method, path = path }
    end
    if data ~= nil then
      if row.payment and sent then return self:_checked_payment(row, path, status, data, sent) end
      return data
    end
    -- QIWI answers some successes with no body at all, 200 with a JSON
    -- content type included (reject_bill, set_default_account); a body cut
    -- short on the way is caught by the transport's framing, not here
    if body == nil or body == "" then return true end
    return nil, self:_error { kind = "decode", status = status, method = row.method, path = path,
                              message = "expected a JSON body, got " .. (headers["content-type"] or "no content type") }
  end
  local f = qerror.from_response(status, data, row.method, path, retry_after_seconds(headers))
  return nil, self:_error(f)
end

-- A payment's answer is the payment asked for, or the earlier payment that
-- QIWI answers a reused id with (see qiwi.payment_check).
function Client:_checked_payment(row, path, status, data, sent)
  local provider = path:match("/terms/(%d+)/")
  local diff = payment_check.mismatch(provider, sent, data)
  if diff then
    return nil, self:_error { kind = "api", code = payment_check.CODE, status = status, method = row.method,
      path = path, retryable = false, payment = data,
      message = "the payment id was used before for another payment: QIWI answered that one (" .. diff
        .. "); nothing new was paid" }
  end
  payment_check.note(self.wallet, data)
  return data
end

-- The wire form of a call of `row`, checked but not sent: path, query, body
-- (encoded JSON or nil), or nil, err. The batch sends what this returns.
function Client:_prepare(row, name, ...)
  -- A row that takes nothing (accounts, nickname, …) has one wire form per
  -- wallet: built once, since building costs more than the rest of a call.
  local static = row.args == nil and row.params == nil and row.const == nil and row.body == nil
    and select("#", ...) == 0
  if static then
    local cached = self._static and self._static[row]
    if cached and cached[1] == self.wallet and cached[3] == self.base_url then
      return cached[2], "", nil, cached[4]
    end
  end
  local req, why = build(row, name, ...)
  if not req then
    return nil, self:_error { kind = "argument", message = why, method = row.method, path = row.path, retryable = false }
  end
  local path = row.path
  if find(path, "{w}", 1, true) then
    local w, err = self:_wallet()
    if not w then return nil, err end
    path = gsub(path, "{w}", w)
  end
  path = gsub(path, "{([%w_]+)}", req.path_params)
  local body
  if req.body then
    local encoded, eerr = json_encode(req.body)
    if not encoded then
      return nil, self:_error { kind = "argument", message = eerr, method = row.method, path = path, retryable = false }
    end
    body = encoded
  end
  if static then
    self._static = self._static or {}
    self._static[row] = { self.wallet, path, self.base_url, self.base_url .. path }
  end
  return path, concat(req.query, "&"), body
end

-- The generic method behind every row of qiwi.endpoints.
function Client:_call(row, name, ...)
  local path, query, body, url = self:_prepare(row, name, ...)
  if not path then return nil, query end
  return self:_send(row, path, query, body, url)
end

-- name -> the generic method of that row; a method defined further down
-- (a composition) replaces it in Client, which the batch checks.
_M.row_methods = {}
for name, row in pairs(endpoints) do
  Client[name] = function(self, ...)
    return self:_call(row, name, ...)
  end
  _M.row_methods[name] = Client[name]
end

-- Several calls at once over one connection; see qiwi.batch.
function Client:batch(calls, opts)
  return require("qiwi.batch").run(self, calls, opts)
end

-- Balances: QIWI may answer an account with hasBalance=true and balance=null;
-- its docs ask to repeat the request for that alias with timeout=1000.
function Client:accounts()
  local res, err = self:_call(endpoints.accounts, "accounts")
  if type(res) ~= "table" then return res, err end
  for _, acc in ipairs(type(res.accounts) == "table" and res.accounts or {}) do
    if type(acc) == "table" and acc.hasBalance == true and (acc.balance == null or acc.balance == nil) and type(acc.alias) == "string" then
      local again, aerr = self:account_balance(acc.alias)
      if not again then return nil, aerr end
      for _, a in ipairs(type(again.accounts) == "table" and again.accounts or {}) do
        if type(a) == "table" and a.alias == acc.alias and a.balance ~= nil then acc.balance = a.balance end
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

-- Payment helpers. Each checks all of its own arguments first, so that a bad
-- argument never lets a lookup request out, then fills a row of `pay`.
-- Returns a copy of the caller's options (taken by value, read with next so
-- that no metamethod of theirs runs), or nil, err.
local function options(self, name, o, allowed, path)
  if type(o) ~= "table" then
    return nil, self:_error { kind = "argument", message = name .. " takes an options table",
                              method = "POST", path = path, retryable = false }
  end
  local copy = {}
  for k, v in next, o do
    if not allowed[k] then
      return nil, self:_error { kind = "argument", message = "unknown option '" .. key_name(k) .. "'",
                                method = "POST", path = path, retryable = false }
    end
    copy[k] = v
  end
  return copy
end

local PAY_PATH = endpoints.pay.path

local function arg_error(self, message)
  return nil, self:_error { kind = "argument", message = message, method = "POST", path = PAY_PATH, retryable = false }
end

local function check_common(self, o)
  local ok, err = args.amount(o.amount)
  if not ok then return arg_error(self, "amount " .. (o.amount == nil and "is required" or err)) end
  if o.id ~= nil then
    ok, err = args.digits(o.id, { max = 20 })
    if not ok then return arg_error(self, "id " .. err) end
  end
  -- before any lookup goes out (the wallet from profile, for one)
  if o.comment ~= nil then
    ok, err = args.string(o.comment, { max = 500, empty = true })
    if not ok then return arg_error(self, "comment " .. err) end
  end
  return true
end

local function pay(self, provider, o)
  return self:_call(endpoints.pay, "pay", provider, o)
end

function Client:transfer(o)
  local err
  o, err = options(self, "transfer", o, { to = true, amount = true, comment = true, id = true }, PAY_PATH)
  if not o then return nil, err end
  local to
  to, err = args.wallet(o.to)
  if not to then return arg_error(self, "to " .. (o.to == nil and "is required" or err)) end
  -- provider 99 wants the wallet in international format with '+'
  return pay(self, 99, { account = "+" .. to, amount = o.amount, comment = o.comment, id = o.id })
end

function Client:convert(o)
  local err
  o, err = options(self, "convert", o, { to = true, amount = true, currency = true, id = true, comment = true }, PAY_PATH)
  if not o then return nil, err end
  local cur = args.currency(o.currency)
  if not cur or cur == "643" then return arg_error(self, "currency must be 398, 840 or 978 (the account to convert into)") end
  local ok, cerr = check_common(self, o)
  if not ok then return nil, cerr end
  local to = o.to
  if to == nil then
    local w, werr = self:_wallet()
    if not w then return nil, werr end
    to = w
  end
  local wallet, werr = args.wallet(to)
  if not wallet then return arg_error(self, "to " .. werr) end
  return pay(self, 1099, { account = "+" .. wallet, amount = o.amount, currency = cur, id = o.id, comment = o.comment })
end

function Client:pay_mobile(o)
  local err
  o, err = options(self, "pay_mobile", o, { phone = true, amount = true, id = true }, PAY_PATH)
  if not o then return nil, err end
  local phone, perr = args.phone(o.phone)
  if not phone or #phone ~= 11 or phone:sub(1, 1) ~= "7" then
    return arg_error(self, "phone " .. (perr or "must be 11 digits starting with 7 (Russia, Kazakhstan)"))
  end
  local ok, cerr = check_common(self, o)
  if not ok then return nil, cerr end
  local found, ferr = self:detect_mobile(phone)
  if not found then return nil, ferr end
  local list = type(found) == "table" and found.mobileOperatorProviderList
  local provider = type(list) == "table" and type(list[1]) == "table" and list[1].id
  if provider == nil then
    return nil, self:_error { kind = "api", message = "no mobile operator found for this number",
                              method = "GET", path = endpoints.detect_mobile.path, retryable = false }
  end
  -- the operator is paid the 10-digit number, without the country code
  return pay(self, provider, { account = phone:sub(2), amount = o.amount, id = o.id })
end

function Client:pay_card(o)
  local err
  o, err = options(self, "pay_card", o, { card = true, amount = true, fields = true, id = true }, PAY_PATH)
  if not o then return nil, err end
  local card, cerr = args.card(o.card)
  if not card then return arg_error(self, "card " .. (o.card == nil and "is required" or cerr)) end
  local ok, aerr = check_common(self, o)
  if not ok then return nil, aerr end
  if o.fields ~= nil then
    local f, ferr = args.fields(o.fields)
    if not f then return arg_error(self, "fields " .. ferr) end
  end
  local found, derr = self:detect_card(card)
  if not found then return nil, derr end
  local provider
  for _, el in ipairs(type(found) == "table" and type(found.elements) == "table" and found.elements or {}) do
    if type(el) == "table" and el.name == "termsId" then provider = el.value end
  end
  if provider == nil or not args.digits(provider) then
    return nil, self:_error { kind = "api", message = "no card provider found for this card",
                              method = "POST", path = endpoints.detect_card.path, retryable = false }
  end
  return pay(self, provider, { account = card, amount = o.amount, fields = o.fields, id = o.id })
end

local BANK_FIELDS = { "account", "account_type", "exp_date", "mfo", "lname", "fname", "mname", "urgent" }

local function flag(v)
  if v == true or v == 1 or v == "1" then return "1" end
  if v == false or v == 0 or v == "0" then return "0" end
  return nil
end

function Client:bank_transfer(provider_id, o)
  local allowed = { amount = true, id = true }
  for _, k in ipairs(BANK_FIELDS) do allowed[k] = true end
  local err
  o, err = options(self, "bank_transfer", o, allowed, PAY_PATH)
  if not o then return nil, err end
  local fields = {}
  for _, k in ipairs(BANK_FIELDS) do
    local v = o[k]
    if k == "urgent" and v ~= nil then
      v = flag(v)
      if not v then return arg_error(self, "urgent must be a boolean, 0 or 1") end
    end
    if type(v) == "number" and args.is_integer(v) then v = string.format("%d", v) end
    if v ~= nil then
      local s, serr = args.string(v, { max = 100 })
      if not s then return arg_error(self, k .. " " .. serr) end
      fields[k] = s
    end
  end
  if not fields.account then return arg_error(self, "account is required") end
  if fields.exp_date and not fields.exp_date:find("^%d%d%d%d$") then
    return arg_error(self, "exp_date must be MMYY, like 0218")
  end
  return pay(self, provider_id, { fields = fields, amount = o.amount, id = o.id })
end

local REQUISITES = { "name", "to_bik", "city", "to_name", "to_inn", "to_kpp", "nds", "goal", "urgent",
                     "account", "from_name", "from_name_p", "from_name_f" }
local REQUISITES_REQUIRED = { name = true, to_bik = true, city = true, to_name = true, to_inn = true,
                              nds = true, goal = true, account = true }
-- The service fields of provider 1717 have one value each in QIWI's docs; a
-- user who copies the docs' field set passes them too, and gets an error
-- only when one differs from what QIWI wants. extra_to_bik repeats to_bik.
local REQUISITES_CONSTANT = { info = "Коммерческие организации", is_commercial = "1",
                              requestProtocol = "qw1", toServiceId = "1717" }

function Client:pay_by_requisites(o)
  local allowed = { amount = true, id = true, extra_to_bik = true }
  for _, k in ipairs(REQUISITES) do allowed[k] = true end
  for k in pairs(REQUISITES_CONSTANT) do allowed[k] = true end
  local err
  o, err = options(self, "pay_by_requisites", o, allowed, PAY_PATH)
  if not o then return nil, err end
  local fields = {}
  for _, k in ipairs(REQUISITES) do
    local v = o[k]
    if k == "urgent" then
      v = flag(v == nil and false or v)
      if not v then return arg_error(self, "urgent must be a boolean, 0 or 1") end
    elseif k == "nds" and type(v) == "boolean" then
      -- QIWI wants the VAT flag as one of two Russian phrases
      v = v and "В т.ч. НДС" or "НДС не облагается"
    end
    if v == nil then
      if REQUISITES_REQUIRED[k] then return arg_error(self, k .. " is required") end
    else
      if type(v) == "number" and args.is_integer(v) then v = string.format("%d", v) end
      local s, serr = args.string(v, { max = 500 })
      if not s then return arg_error(self, k .. " " .. serr) end
      fields[k] = s
    end
  end
  for _, k in ipairs { "to_bik", "to_inn", "account" } do
    if not fields[k]:find("^%d+$") then return arg_error(self, k .. " must contain digits only") end
  end
  for k, want in pairs(REQUISITES_CONSTANT) do
    local v = o[k]
    if k == "is_commercial" and v ~= nil then v = flag(v) or v end
    if type(v) == "number" and args.is_integer(v) then v = string.format("%d", v) end
    if v ~= nil and v ~= want then return arg_error(self, k .. " must be \"" .. want .. "\" (QIWI's constant)") end
    fields[k] = want
  end
  local extra = o.extra_to_bik
  if type(extra) == "number" and args.is_integer(extra) then extra = string.format("%d", extra) end
  if extra ~= nil and extra ~= fields.to_bik then return arg_error(self, "extra_to_bik must equal to_bik") end
  fields.extra_to_bik = fields.to_bik
  return pay(self, 1717, { fields = fields, amount = o.amount, id = o.id })
end

-- QIWI Master: the paid steps are payments to providers 28004 and 32064.
function Client:submit_card_order(order_id)
  local res, err = self:_call(endpoints.submit_card_order, "submit_card_order", order_id)
  if res and type(res) == "table" and res.status == "PAYMENT_REQUIRED" and type(res.price) == "table" then
    self._order_prices = self._order_prices or {}
    self._order_prices[order_id] = res.price.amount
  end
  return res, err
end

function Client:buy_card(order_id, o)
  local err
  o, err = options(self, "buy_card", o or {}, { amount = true, id = true }, PAY_PATH)
  if not o then return nil, err end
  if not args.uuid(order_id) then return arg_error(self, "order_id must be a UUID like 920fa383-6209-4743-a5d1-883f473f7f95") end
  local amount = o.amount or (self._order_prices and self._order_prices[order_id])
  if amount == nil then
    return arg_error(self, "amount is required (the price from submit_card_order) when the order was not submitted by this client")
  end
  local ok, cerr = check_common(self, { amount = amount, id = o.id })
  if not ok then return nil, cerr end
  local w, werr = self:_wallet()
  if not w then return nil, werr end
  return pay(self, 32064, { fields = { account = w, order_id = order_id }, amount = amount, id = o.id })
end

-- 2999 roubles is the package price in QIWI's docs; pass amount if it changes.
function Client:buy_master_package(o)
  local err
  o, err = options(self, "buy_master_package", o or {}, { amount = true, id = true, comment = true }, PAY_PATH)
  if not o then return nil, err end
  local amount = o.amount or 2999
  local ok, cerr = check_common(self, { amount = amount, id = o.id, comment = o.comment })
  if not ok then return nil, cerr end
  local w, werr = self:_wallet()
  if not w then return nil, werr end
  return pay(self, 28004, { fields = { account = w, vas_alias = "qvc-master" }, amount = amount,
                            comment = o.comment, id = o.id })
end

return _M
