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
--
-- Cost per call, which matters when one worker serves many requests: the
-- route of a URL, the connect options of a pool and the request head of a
-- (method, URL, header list) are built once and kept (each cache bounded);
-- a request without a body is one send of one cached string; the answer is
-- read with receiveany and its head parsed from that in one pass (a small
-- answer is one socket call, body included); the socket's timeouts are set
-- when what is left of the call has changed, not before every operation;
-- and the clock is nginx's cached monotonic one (refreshed once a call), an
-- FFI call that LuaJIT compiles, where a C function such as core.monotonic
-- would end the trace. (A receiveuntil reader would be a new C closure
-- every call, which LuaJIT's traces cannot follow: each one fails the
-- guard of the last.)

local ngx = ngx
local tcp = ngx.socket.tcp
local get_phase, update_time = ngx.get_phase, ngx.update_time
local concat, lower, find, format = table.concat, string.lower, string.find, string.format
local match, sub, byte, gsub = string.match, string.sub, string.byte, string.gsub
local tonumber, tostring, ipairs, setmetatable, type = tonumber, tostring, ipairs, setmetatable, type
local floor, min, max = math.floor, math.min, math.max
local pcall, require, co_status = pcall, require, coroutine.status
local threads = ngx.thread
local udp = ngx.socket.udp

-- Milliseconds on the clock nginx's socket timers run on (ngx_current_msec,
-- monotonic): the time of the event loop's last wake-up, which
-- ngx.update_time() refreshes. Without lua-resty-core's time module,
-- ngx.now() (the same cached time, on the wall clock).
local now_ms
do
  local ok, rtime = pcall(require, "resty.core.time")
  if ok and type(rtime) == "table" and type(rtime.monotonic_msec) == "function" then
    now_ms = rtime.monotonic_msec
  else
    local now = ngx.now
    now_ms = function() return now() * 1000 end
  end
end

local _M = {}
local mt = { __index = _M }

-- Where lua-nginx-module allows cosockets. Elsewhere (init, init_worker, set,
-- header/body filters, log, balancer, exit_worker) a socket call raises, and
-- the only way to wait would block the worker.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- Methods whose request without a body goes without Content-Length.
local BODYLESS = { GET = true, HEAD = true, DELETE = true }

local DEFAULT_MAX_BODY = 10 * 1024 * 1024
-- A misbehaving server must not make us buffer endless header lines.
local MAX_HEADER_BYTES = 64 * 1024
-- What one receiveany may take (the socket's buffer, lua_socket_buffer_size,
-- bounds it further).
local READ_MAX = 65536

-- The bounds of the caches: a transport that meets more drops what it
-- has and starts again. Routes (one per URL string) and request heads (one
-- per method, URL and header list) per transport; targets (one per
-- scheme, host and port) per transport; lower-cased header names per
-- worker.
local MAX_ROUTES = 256
local MAX_HEADS = 256
local MAX_TARGETS = 64
local MAX_NAMES = 256

local WEAK_KEYS = { __mode = "k" }
local NO_HEADERS = {}

-- opts: timeout, connect_timeout (seconds), resolve (list of "host:port:ip"),
-- max_body, ca_file, pool_size, keepalive_timeout (seconds)
function _M.new(opts)
  local resolve = {}
  for _, entry in ipairs(opts.resolve or {}) do
    local host, port, ip = entry:match("^([^:]+):(%d+):(.+)$")
    if host then resolve[lower(host) .. ":" .. port] = ip:match("^%[(.*)%]$") or ip end
  end
  local connect_timeout = opts.connect_timeout or 10
  return setmetatable({
    timeout = opts.timeout or 30,
    connect_timeout = connect_timeout,
    connect_ms = floor(connect_timeout * 1000),
    resolve = resolve,
    max_body = opts.max_body or DEFAULT_MAX_BODY,
    ca_file = opts.ca_file,
    pool_size = opts.pool_size or 32,
    keepalive_ms = floor((opts.keepalive_timeout or 60) * 1000),
    targets = {}, n_targets = 0,
    -- url -> { t = target, target = request target, heads = {[header list] = {[method] = head}} }
    routes = {}, n_routes = 0, n_heads = 0,
  }, mt)
end

-- Where a scheme, host and port go: address, pool, connect options. The
-- pool is per scheme, address and TLS name: a connection verified for one
-- name must never serve another.
local function target_of(self, scheme, host, port)
  local key = host .. ":" .. port
  local id = scheme .. "://" .. key
  local t = self.targets[id]
  if t then return t end
  local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
  local addr = self.resolve[key] or host
  local pool = "qiwi:" .. scheme .. ":" .. addr .. ":" .. port .. ":" .. host
  t = {
    scheme = scheme, host = host, port = port, addr = addr,
    -- an address (v4, v6, unix:) goes straight to connect, a name through nginx's resolver
    named = not (find(addr, "^%d+%.%d+%.%d+%.%d+$") or find(addr, ":", 1, true)),
    host_header = default_port and host or key,
    pool = pool,
    opts = { pool = pool, pool_size = self.pool_size },
    -- a request that must not be repeated: a pool nothing is put back into (see exchange)
    once_opts = { pool = pool .. "#once", pool_size = self.pool_size },
  }
  if self.n_targets >= MAX_TARGETS then self.targets, self.n_targets = {}, 0 end
  self.targets[id] = t
  self.n_targets = self.n_targets + 1
  return t
end

-- The route of a URL (its target and request target), or nil.
local function route_of(self, url)
  local scheme, host, port, rest = match(url, "^(https?)://([^/:%?#]+):?(%d*)(.*)$")
  if not scheme then return nil end
  host = lower(host)
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if rest == "" then rest = "/" end
  local route = { t = target_of(self, scheme, host, port), target = rest, heads = setmetatable({}, WEAK_KEYS) }
  if self.n_routes >= MAX_ROUTES then self.routes, self.n_routes, self.n_heads = {}, 0, 0 end
  self.routes[url] = route
  self.n_routes = self.n_routes + 1
  return route
end

-- The request head of a method on a route with a header list: prefix (the
-- request line, Host and the caller's lines, which are the whole head but
-- for what HTTP/1.1 framing needs) and bare (the head of the request
-- without a body, ready to send). Kept on the header list's identity: the
-- client hands the same, never changed, table for every call of a row.
local function head_of(self, route, method, headers)
  local key = headers or NO_HEADERS
  local by_method = route.heads[key]
  local head = by_method and by_method[method]
  if head then return head end
  local parts = { method, " ", route.target, " HTTP/1.1\r\nHost: ", route.t.host_header, "\r\n" }
  for _, h in ipairs(key) do
    parts[#parts + 1] = h
    parts[#parts + 1] = "\r\n"
  end
  local prefix = concat(parts)
  head = { prefix = prefix, bare = prefix .. (BODYLESS[method] and "\r\n" or "Content-Length: 0\r\n\r\n") }
  if self.n_heads >= MAX_HEADS then
    -- all of them go (the route in hand keeps working, out of the cache)
    self.routes, self.n_routes, self.n_heads = {}, 0, 0
  end
  if not by_method then
    by_method = {}
    route.heads[key] = by_method
  end
  by_method[method] = head
  self.n_heads = self.n_heads + 1
  return head
end

local function kind_of(err)
  if err == "timeout" then return "timeout" end
  return "network"
end

-- What a pooled connection that the server closed meanwhile reports.
local function dropped(err)
  return err == "closed" or err == "broken pipe" or find(tostring(err), "reset", 1, true) ~= nil
end

-- Milliseconds left until the deadline (on now_ms), at least 1 (0 would
-- mean "no timeout" to some cosocket calls).
local function left_ms(deadline)
  return max(floor(deadline - now_ms()), 1)
end

-- Sets the socket's timeouts to what is left of the call, unless `armed`
-- (what they were set to) is that already: now_ms moves only when the
-- worker waited, so most operations of a call need no new setting. Returns
-- the setting.
local function arm(sock, deadline, armed)
  local ms = left_ms(deadline)
  if ms ~= armed then sock:settimeout(ms) end
  return ms
end

-- Header names as the answer's table has them, lower-cased once per worker.
local lowered, n_lowered = {}, 0

local function lower_name(name)
  local l = lower(name)
  if n_lowered >= MAX_NAMES then lowered, n_lowered = {}, 0 end
  lowered[name] = l
  n_lowered = n_lowered + 1
  return l
end

-- A line of a head without its CRs (as receive("*l") gives it).
local function clean(line)
  if byte(line, -1) == 13 then line = sub(line, 1, -2) end
  if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
  return line
end

-- The status of a status line ("HTTP/1.x NNN ...") and whether it is
-- HTTP/1.0, or nil.
local function status_of(line)
  if sub(line, 1, 7) ~= "HTTP/1." then return nil end
  local minor, sp, a, b, c = byte(line, 8, 12)
  if (minor ~= 48 and minor ~= 49) or sp ~= 32 or not c then return nil end
  if a < 48 or a > 57 or b < 48 or b > 57 or c < 48 or c > 57 then return nil end
  return (a - 48) * 100 + (b - 48) * 10 + (c - 48), minor == 48
end

-- Reads the status line and headers, skipping interim 1xx answers, line
-- by line as receive("*l") would give them (lines end in LF, their CRs do
-- not count), from what receiveany takes: mostly the whole answer, body
-- too, so a head costs one socket call and the body often none. The start
-- of a line that has no LF yet is kept in pieces until the rest comes, so
-- a server that sends the head byte by byte costs time linear in its size.
-- Returns status, headers, http10, armed, buf, pos (what was read past the
-- head: buf from pos) or nil, err, got_bytes.
local function read_head(sock, deadline, armed)
  local got = false
  local status, http10, headers, size
  -- pieces[1..np]: the start of the current line, pending bytes
  local pieces, np, pending = nil, 0, 0
  local data, from = "", 1
  while true do
    local nl = find(data, "\n", from, true)
    if nl then
      local line = sub(data, from, nl - 1)
      if np > 0 then
        pieces[np + 1] = line
        line = concat(pieces, "", 1, np + 1)
        np, pending = 0, 0
      end
      line = clean(line)
      from = nl + 1
      if not status then
        status, http10 = status_of(line)
        if not status then return nil, "malformed status line", true end
        got = true
        headers, size = {}, #line
      elseif line == "" then
        if status >= 200 or status < 100 then return status, headers, http10, armed, data, from end
        status = nil -- an interim answer: the next head follows
      else
        size = size + #line
        if size > MAX_HEADER_BYTES then return nil, "response headers too large", true end
        local name, value = match(line, "^([^:%s]+):%s*(.-)%s*$")
        if not name then return nil, "malformed header line", true end
        name = lowered[name] or lower_name(name)
        local old = headers[name]
        headers[name] = old and (old .. ", " .. value) or value
      end
    else
      if from <= #data then
        pieces = pieces or {}
        np = np + 1
        pieces[np] = from == 1 and data or sub(data, from)
        pending = pending + #data - from + 1
        if pending + (status and size or 0) > MAX_HEADER_BYTES then
          return nil, "response headers too large", true
        end
      end
      armed = arm(sock, deadline, armed)
      local err
      data, err = sock:receiveany(READ_MAX)
      if not data then return nil, err, got end
      from = 1
    end
  end
end

-- The next line of buf from pos, reading more when it has none, CRs
-- dropped: line, buf, pos, armed or nil, err.
local function next_line(sock, deadline, armed, buf, pos)
  local nl = find(buf, "\n", pos, true)
  if nl then return clean(sub(buf, pos, nl - 1)), buf, nl + 1, armed end
  -- the line goes on in what comes next (kept in pieces, as in read_head)
  local parts, n, size = { sub(buf, pos) }, 1, #buf - pos + 1
  while true do
    if size > MAX_HEADER_BYTES then return nil, "line too long" end
    armed = arm(sock, deadline, armed)
    local data, err = sock:receiveany(READ_MAX)
    if not data then return nil, err end
    nl = find(data, "\n", 1, true)
    if nl then
      parts[n + 1] = sub(data, 1, nl - 1)
      return clean(concat(parts)), data, nl + 1, armed
    end
    n = n + 1
    parts[n] = data
    size = size + #data
  end
end

-- The next n bytes of buf from pos and the socket: data, buf, pos, armed or
-- nil, err.
local function next_bytes(sock, deadline, armed, buf, pos, n)
  local rest = #buf - pos + 1
  if rest >= n then return sub(buf, pos, pos + n - 1), buf, pos + n, armed end
  armed = arm(sock, deadline, armed)
  local data, err = sock:receive(n - rest)
  if not data then return nil, err end
  if rest > 0 then data = sub(buf, pos) .. data end
  return data, "", 1, armed
end

-- A chunked body: body, reusable or nil, err ("cap" when over max_body).
local function read_chunked(self, sock, deadline, armed, buf, pos)
  local parts, total = {}, 0
  local line, data
  while true do
    -- on failure the second value is the error
    line, buf, pos, armed = next_line(sock, deadline, armed, buf, pos)
    if not line then return nil, buf end
    local size = tonumber(match(line, "^%s*(%x+)%s*;?") or "", 16)
    if not size then return nil, "malformed chunk size" end
    if size == 0 then
      repeat -- trailers, up to the empty line
        line, buf, pos, armed = next_line(sock, deadline, armed, buf, pos)
        if not line then return nil, buf end
      until line == ""
      -- bytes past the body would be taken for the next answer's
      return concat(parts), pos > #buf
    end
    total = total + size
    if total > self.max_body then return nil, "cap" end
    data, buf, pos, armed = next_bytes(sock, deadline, armed, buf, pos, size)
    if not data then return nil, buf end
    parts[#parts + 1] = data
    line, buf, pos, armed = next_line(sock, deadline, armed, buf, pos)
    if line ~= "" then return nil, line == nil and buf or "malformed chunk end" end
  end
end

-- Returns body, reusable or nil, err ("cap" when over max_body). buf from
-- pos: what was read past the head. A connection with bytes past the body
-- is not reusable.
local function read_body(self, sock, status, headers, method, deadline, armed, buf, pos)
  local rest = #buf - pos + 1
  if method == "HEAD" or status == 204 or status == 304 then return "", rest == 0 end
  local te = headers["transfer-encoding"]
  if te and find(lower(te), "chunked", 1, true) then
    return read_chunked(self, sock, deadline, armed, buf, pos)
  end
  local len = headers["content-length"]
  if len then
    len = match(len, "^%d+$") and tonumber(len)
    if not len then return nil, "malformed content-length" end
    if len > self.max_body then return nil, "cap" end
    if rest >= len then return sub(buf, pos, pos + len - 1), rest == len end
    arm(sock, deadline, armed)
    local data, err = sock:receive(len - rest)
    if not data then return nil, err end
    if rest > 0 then data = sub(buf, pos) .. data end
    return data, true
  end
  -- Neither: the body runs to the end of the connection.
  local parts, total = {}, rest
  if total > self.max_body then return nil, "cap" end
  if rest > 0 then parts[1] = sub(buf, pos) end
  while true do
    armed = arm(sock, deadline, armed)
    local data, err = sock:receiveany(READ_MAX)
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
-- only, and the TLS handshake that follows. Returns the send and read
-- timeout set (what was left of the call), or nil, kind, message.
local function connect(self, t, sock, opts, deadline)
  local left = left_ms(deadline)
  local budget_ms = min(self.connect_ms, left)
  sock:settimeouts(budget_ms, left, left)
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
  return left
end

-- One attempt on one connection (pooled or new). Returns res, or nil, kind,
-- message, retry (true when a reused connection died before answering, so
-- nothing was processed and a fresh connection may try again).
local function exchange(self, route, method, headers, body, once, deadline)
  local t = route.t
  local sock = tcp()
  -- A request that must not be repeated (once) goes on a connection of
  -- its own, from a pool nothing is ever put back into: on a pooled one the
  -- server may be closing, it could be processed and still look unanswered.
  local armed, kind, err = connect(self, t, sock, once and t.once_opts or t.opts, deadline)
  if not armed then return nil, kind, err end
  local reused = (sock:getreusedtimes() or 0) > 0
  local ok
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

  local head = head_of(self, route, method, headers)
  armed = arm(sock, deadline, armed)
  local sent
  if body then
    sent, err = sock:send { head.prefix, format("Content-Length: %d\r\n\r\n", #body), body }
  else
    sent, err = sock:send(head.bare)
  end
  if not sent then
    sock:close()
    return nil, kind_of(err), "send failed: " .. tostring(err), reused and dropped(err)
  end

  local status, answer, http10, buf, pos
  status, answer, http10, armed, buf, pos = read_head(sock, deadline, armed)
  if not status then
    sock:close()
    local why, got_bytes = answer, http10
    return nil, kind_of(why), "no answer: " .. tostring(why), reused and not got_bytes and dropped(why)
  end
  local data, reusable = read_body(self, sock, status, answer, method, deadline, armed, buf, pos)
  if not data then
    sock:close()
    if reusable == "cap" then
      return nil, "http", format("response body exceeds the %d byte cap", self.max_body)
    end
    return nil, kind_of(reusable), "reading the answer failed: " .. tostring(reusable)
  end
  local conn = answer.connection
  conn = conn and lower(conn) or ""
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
  local phase = get_phase()
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
local usable = _M.usable

-- The transport contract (see qiwi.transport.curl): method, url, the
-- complete list of header lines, body, timeout (seconds left for this
-- attempt), once (never sent twice, see exchange) -> status, body, headers,
-- or nil, kind, message.
function _M:request(method, url, headers, body, timeout, once)
  -- usable()'s checks (the client has asked it already; this is a phase
  -- look-up and a field): its message when one fails
  if not COSOCKET_PHASES[get_phase()] or self.ca_file then return usable(self) end
  local route = self.routes[url] or route_of(self, url)
  if not route then return nil, "argument", "cannot use this URL inside nginx (an http(s) URL with a host name is needed)" end
  -- the cached clock from now on is at most the worker's own time behind
  -- (it moves on whenever the worker waits, which every socket call may)
  update_time()
  local deadline = now_ms() + (timeout or self.timeout) * 1000
  local status, data, answer, retry = exchange(self, route, method, headers, body, once, deadline)
  -- a kept-alive connection that died before answering processed nothing:
  -- one more try on a new one, for what may be repeated
  if not status and retry and not once and now_ms() < deadline then
    status, data, answer = exchange(self, route, method, headers, body, once, deadline)
  end
  return status, data, answer
end

-- Pooled connections belong to the worker, not to one client: nothing to do.
function _M.close()
end

return _M
