-- The transport inside nginx (OpenResty or libnginx-mod-http-lua): cosockets,
-- so a call yields to nginx's event loop instead of blocking the worker and
-- every other request it serves. Connections live in the worker's keep-alive
-- pools between calls, shared by every client of the worker.
--
-- TLS: verification is always on and checks the URL's host name (not an IP
-- SAN) against the certificate, trusting the CAs of nginx's
-- `lua_ssl_trusted_certificate`. lua-nginx-module (0.10.23 and OpenResty
-- alike) has no per-socket CA, so a client's `ca_file` cannot be honoured
-- here and calls fail with an argument error instead of trusting something
-- else than asked. nginx's resolver ignores /etc/hosts: `resolve` maps a
-- name to an address while the certificate is still checked for the name.
--
-- Names: a cosocket resolves a host name with nginx's `resolver`, bounded
-- by `resolver_timeout` (30 s by default, queries resent every 5 s), not by
-- the socket's timeout; an unreachable resolver used to hold a call that
-- long and end in "could not be resolved (110: Operation timed out)". So a
-- connect to a name runs in a light thread raced against connect_timeout,
-- and a lookup that loses (or fails) says that nginx's `resolver` is the
-- likely cause and what to set instead.
local core = require "qiwi.core"

local ngx = ngx
local tcp = ngx.socket.tcp
local concat, lower, find, format = table.concat, string.lower, string.find, string.format
local tonumber, tostring, ipairs, setmetatable = tonumber, tostring, ipairs, setmetatable
local floor, min, max = math.floor, math.min, math.max
local pcall, co_status = pcall, coroutine.status
local monotonic = core.monotonic
local threads = ngx.thread
local udp = ngx.socket.udp

local _M = {}
local mt = { __index = _M }

-- Where lua-nginx-module allows cosockets. Elsewhere (init, init_worker, set,
-- header/body filters, log, balancer, exit_worker) a socket call raises, and
-- the only way to wait would block the worker.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local DEFAULT_MAX_BODY = 10 * 1024 * 1024
-- A misbehaving server must not make us buffer endless header lines.
local MAX_HEADER_BYTES = 64 * 1024

-- opts: timeout, connect_timeout (seconds), resolve (list of "host:port:ip"),
-- max_body, ca_file, pool_size, keepalive_timeout (seconds)
function _M.new(opts)
  local resolve = {}
  for _, entry in ipairs(opts.resolve or {}) do
    local host, port, ip = entry:match("^([^:]+):(%d+):(.+)$")
    if host then resolve[lower(host) .. ":" .. port] = ip:match("^%[(.*)%]$") or ip end
  end
  return setmetatable({
    timeout = opts.timeout or 30,
    connect_timeout = opts.connect_timeout or 10,
    resolve = resolve,
    max_body = opts.max_body or DEFAULT_MAX_BODY,
    ca_file = opts.ca_file,
    pool_size = opts.pool_size or 32,
    keepalive_ms = floor((opts.keepalive_timeout or 60) * 1000),
    targets = {},
  }, mt)
end

-- Scheme, host, port and request target of a URL; the per-host part is kept.
local function parse_url(self, url)
  local scheme, host, port, rest = url:match("^(https?)://([^/:%?#]+):?(%d*)(.*)$")
  if not scheme then return nil end
  host = lower(host)
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if rest == "" then rest = "/" end
  local key = host .. ":" .. port
  local t = self.targets[key]
  if not t then
    local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    local addr = self.resolve[key] or host
    t = {
      scheme = scheme, host = host, port = port, addr = addr,
      -- an address (v4, v6, unix:) goes straight to connect, a name through nginx's resolver
      named = not (find(addr, "^%d+%.%d+%.%d+%.%d+$") or find(addr, ":", 1, true)),
      host_header = default_port and host or key,
      -- The pool is per scheme, address and TLS name: a connection verified
      -- for one name must never serve another.
      pool = "qiwi:" .. scheme .. ":" .. addr .. ":" .. port .. ":" .. host,
    }
    self.targets[key] = t
  end
  return t, rest
end

local function kind_of(err)
  if err == "timeout" then return "timeout" end
  return "network"
end

-- What a pooled connection that the server closed meanwhile reports.
local function dropped(err)
  return err == "closed" or err == "broken pipe" or find(tostring(err), "reset", 1, true) ~= nil
end

-- Milliseconds left until the deadline, at least 1 (0 would mean "no timeout"
-- to some cosocket calls).
local function left_ms(deadline)
  return max(floor((deadline - monotonic()) * 1000), 1)
end

-- Reads the status line and headers, skipping interim 1xx answers.
-- Returns status, headers or nil, err, got_bytes.
local function read_head(sock, deadline)
  local got = false
  while true do
    sock:settimeout(left_ms(deadline))
    local line, err = sock:receive("*l")
    if not line then return nil, err, got end
    got = true
    local status = tonumber(line:match("^HTTP/1%.[01] (%d%d%d)"))
    if not status then return nil, "malformed status line", true end
    local http10 = find(line, "^HTTP/1%.0") ~= nil
    local headers, size = {}, #line
    while true do
      sock:settimeout(left_ms(deadline))
      line, err = sock:receive("*l")
      if not line then return nil, err, true end
      if line == "" then break end
      size = size + #line
      if size > MAX_HEADER_BYTES then return nil, "response headers too large", true end
      local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
      if not name then return nil, "malformed header line", true end
      name = lower(name)
      local old = headers[name]
      headers[name] = old and (old .. ", " .. value) or value
    end
    if status >= 200 or status < 100 then return status, headers, http10 end
  end
end

-- Returns body, reusable or nil, err ("cap" when over max_body).
local function read_body(self, sock, status, headers, method, deadline)
  if method == "HEAD" or status == 204 or status == 304 then return "", true end
  local te = headers["transfer-encoding"]
  if te and find(lower(te), "chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      sock:settimeout(left_ms(deadline))
      local line, err = sock:receive("*l")
      if not line then return nil, err end
      local size = tonumber(line:match("^%s*(%x+)%s*;?") or "", 16)
      if not size then return nil, "malformed chunk size" end
      if size == 0 then
        repeat -- trailers, up to the empty line
          sock:settimeout(left_ms(deadline))
          line, err = sock:receive("*l")
          if not line then return nil, err end
        until line == ""
        return concat(parts), true
      end
      total = total + size
      if total > self.max_body then return nil, "cap" end
      sock:settimeout(left_ms(deadline))
      local data
      data, err = sock:receive(size)
      if not data then return nil, err end
      parts[#parts + 1] = data
      sock:settimeout(left_ms(deadline))
      line, err = sock:receive("*l")
      if line ~= "" then return nil, err or "malformed chunk end" end
    end
  end
  local len = headers["content-length"]
  if len then
    len = len:match("^%d+$") and tonumber(len)
    if not len then return nil, "malformed content-length" end
    if len > self.max_body then return nil, "cap" end
    if len == 0 then return "", true end
    sock:settimeout(left_ms(deadline))
    local data, err = sock:receive(len)
    if not data then return nil, err end
    return data, true
  end
  -- Neither: the body runs to the end of the connection.
  local parts, total = {}, 0
  while true do
    sock:settimeout(left_ms(deadline))
    local data, err = sock:receiveany(65536)
    if not data then
      if err == "closed" then return concat(parts), false end
      return nil, err
    end
    total = total + #data
    if total > self.max_body then return nil, "cap" end
    parts[#parts + 1] = data
  end
end

-- What the resolver advice says about where the time limit came from.
local function budget_text(self, budget_ms)
  if budget_ms < floor(self.connect_timeout * 1000) then
    return format("within the %g s left of the call's timeout", floor(budget_ms / 100 + 0.5) / 10)
  end
  return format("within connect_timeout (%g s)", self.connect_timeout)
end

-- The message for a name nginx's resolver did not resolve: the likely cause
-- and both ways out. `why` is nginx's own reason or how long we waited.
local function unresolved(t, why)
  local cause = "most likely the DNS server it names is unreachable or refuses queries"
    .. " (nginx's error log says which)"
  if find(why, "^%(3: ") or find(why, "to a address", 1, true) then
    cause = "the DNS server it names has no IPv4 address for that name (is the host of base_url right?)"
  end
  return format("connect to %s:%d failed: \"%s\" could not be resolved by nginx's `resolver` %s; %s:"
    .. " point `resolver` at a reachable DNS server, or pin the address with the client's"
    .. " resolve = {[\"%s\"] = \"<ip>\"}", t.host, t.port, t.addr, why, cause, t.addr)
end

-- An error of sock:connect as kind, message.
local function connect_error(t, err)
  err = tostring(err)
  if find(err, "no resolver defined", 1, true) then
    return "network", format("connect to %s:%d failed: %s; nginx resolves names only with its `resolver`"
      .. " directive (it reads neither /etc/hosts nor /etc/resolv.conf): add `resolver` with a reachable"
      .. " DNS server, or pin the address with the client's resolve = {[\"%s\"] = \"<ip>\"}",
      t.host, t.port, err, t.addr)
  end
  local reason = err:match("could not be resolved (%b())$")
  if not reason and (err == "name cannot be resolved to a address" or err == "resolver not working") then
    reason = "(" .. err .. ")"
  end
  if reason then return "network", unresolved(t, reason) end
  return kind_of(err), "connect to " .. t.host .. ":" .. t.port .. " failed: " .. err
end

local LATE = {}

-- Whether a light thread has returned already (and waits to be collected):
-- one waiting on I/O counts as "running" for lua-nginx-module.
local function finished(th)
  local st = co_status(th)
  return st == "zombie" or st == "dead"
end

local function connect_thread(sock, addr, port, opts)
  return sock:connect(addr, port, opts)
end

local function late(seconds)
  ngx.sleep(seconds)
  return LATE
end

-- After a connect to a name ran out of time: whether nginx's resolver has
-- the name now. A name it resolved is in its cache and a lookup of it
-- completes at once; one still being asked (or failing) does not.
local function resolved_now(t)
  local ok, probe = pcall(udp)
  if not ok or not probe then return false end
  local th
  ok, th = pcall(threads.spawn, function() return probe:setpeername(t.addr, t.port) end)
  if not ok then return false end
  if not finished(th) then
    threads.kill(th)
    probe:close()
    return false
  end
  local _, res = threads.wait(th)
  probe:close()
  return res == 1
end

-- Connects sock (a pooled connection or a new one). The TCP connect is
-- bounded by connect_timeout (or what is left of the call); so is the
-- lookup of a name, which nginx would otherwise bound by resolver_timeout
-- only. Returns true, or nil, kind, message.
local function connect(self, t, sock, pool, deadline)
  local budget_ms = min(floor(self.connect_timeout * 1000), left_ms(deadline))
  local opts = { pool = pool, pool_size = self.pool_size }
  sock:settimeout(budget_ms)
  local th
  if t.named and threads then
    local spawned
    spawned, th = pcall(threads.spawn, connect_thread, sock, t.addr, t.port, opts)
    if not spawned then th = nil end
  end
  local done, ok, err
  if not th then
    ok, err = sock:connect(t.addr, t.port, opts)
  elseif finished(th) then
    -- finished at once: a pooled connection, or an immediate failure
    done, ok, err = threads.wait(th)
    if not done then ok, err = nil, ok end
  else
    local timer = threads.spawn(late, budget_ms / 1000)
    done, ok, err = threads.wait(th, timer)
    if ok == LATE then
      threads.kill(th)
      sock:close()
      if resolved_now(t) then
        return nil, "timeout", "connect to " .. t.host .. ":" .. t.port .. " failed: timeout"
      end
      return nil, "network", unresolved(t, budget_text(self, budget_ms))
    end
    threads.kill(timer)
    if not done then ok, err = nil, ok end
  end
  if not ok then return nil, connect_error(t, err) end
  return true
end

-- One attempt on one connection (pooled or new). Returns res, or nil, kind,
-- message, retry (true when a reused connection died before answering, so
-- nothing was processed and a fresh connection may try again).
local function exchange(self, t, target, method, headers, body, once, deadline)
  local sock = tcp()
  -- A request that must not be repeated (once) goes on a connection of
  -- its own, from a pool nothing is ever put back into: on a pooled one the
  -- server may be closing, it could be processed and still look unanswered.
  local pool = once and t.pool .. "#once" or t.pool
  local ok, kind, err = connect(self, t, sock, pool, deadline)
  if not ok then return nil, kind, err end
  local reused = (sock:getreusedtimes() or 0) > 0
  if t.scheme == "https" and not reused then
    -- When the handshake completes at once and verification failed,
    -- lua-resty-core 0.1.25 (Debian 12) raises "assertion failed!" instead of
    -- returning the error (its issue #499); the peer is refused all the same,
    -- so a raise is a verification failure too. pcall is yieldable on LuaJIT.
    local done, res, herr = pcall(sock.sslhandshake, sock, nil, t.host, true)
    if done then
      ok, err = res, herr
    else
      ok, err = nil, "certificate verification failed (" .. tostring(res) .. ")"
    end
    if not ok then
      sock:close()
      if err == "timeout" then return nil, "timeout", "TLS handshake with " .. t.host .. " timed out" end
      return nil, "tls", "TLS handshake with " .. t.host .. " failed: " .. tostring(err)
    end
  end

  -- the caller's header lines are the whole request head but for what
  -- HTTP/1.1 framing needs: Host and Content-Length
  local lines = { method, " ", target, " HTTP/1.1\r\nHost: ", t.host_header, "\r\n" }
  for _, h in ipairs(headers or {}) do
    lines[#lines + 1] = h
    lines[#lines + 1] = "\r\n"
  end
  if body or (method ~= "GET" and method ~= "HEAD" and method ~= "DELETE") then
    lines[#lines + 1] = format("Content-Length: %d\r\n", body and #body or 0)
  end
  lines[#lines + 1] = "\r\n"
  if body then lines[#lines + 1] = body end
  sock:settimeout(left_ms(deadline))
  local sent
  sent, err = sock:send(lines)
  if not sent then
    sock:close()
    return nil, kind_of(err), "send failed: " .. tostring(err), reused and dropped(err)
  end

  local status, answer, http10 = read_head(sock, deadline)
  if not status then
    sock:close()
    local why, got_bytes = answer, http10
    return nil, kind_of(why), "no answer: " .. tostring(why), reused and not got_bytes and dropped(why)
  end
  local data, reusable = read_body(self, sock, status, answer, method, deadline)
  if not data then
    sock:close()
    if reusable == "cap" then
      return nil, "http", format("response body exceeds the %d byte cap", self.max_body)
    end
    return nil, kind_of(reusable), "reading the answer failed: " .. tostring(reusable)
  end
  local conn = answer.connection and lower(answer.connection) or ""
  if once or not reusable or find(conn, "close", 1, true)
      or (http10 and not find(conn, "keep-alive", 1, true)) then
    sock:close()
  else
    sock:setkeepalive(self.keepalive_ms)
  end
  return status, data, answer
end

-- Whether a call can be made here and now: true, or nil, kind, message. The
-- client asks before anything that could wait (the history rate limit).
function _M:usable()
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    return nil, "argument", "nginx allows no cosockets in the " .. phase .. " phase and a call"
      .. " there would block the worker; call from rewrite, access or content, or from ngx.timer.at"
  end
  if self.ca_file then
    return nil, "argument", "ca_file cannot be used inside nginx (lua-nginx-module has no per-socket CA);"
      .. " put the CA in lua_ssl_trusted_certificate and leave ca_file unset"
  end
  return true
end

-- The transport contract (see qiwi.transport.curl): method, url, the
-- complete list of header lines, body, timeout (seconds left for this
-- attempt), once (never sent twice, see exchange) -> status, body, headers,
-- or nil, kind, message.
function _M:request(method, url, headers, body, timeout, once)
  local usable, ukind, umessage = self:usable()
  if not usable then return nil, ukind, umessage end
  local t, target = parse_url(self, url)
  if not t then return nil, "argument", "cannot use this URL inside nginx (an http(s) URL with a host name is needed)" end
  local deadline = monotonic() + (timeout or self.timeout)
  local status, data, answer, retry = exchange(self, t, target, method, headers, body, once, deadline)
  -- a kept-alive connection that died before answering processed nothing:
  -- one more try on a new one, for what may be repeated
  if not status and retry and not once and monotonic() < deadline then
    status, data, answer = exchange(self, t, target, method, headers, body, once, deadline)
  end
  return status, data, answer
end

-- Pooled connections belong to the worker, not to one client: nothing to do.
function _M.close()
end

return _M
