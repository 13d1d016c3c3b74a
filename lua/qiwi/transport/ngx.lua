-- The transport inside nginx (OpenResty or libnginx-mod-http-lua): cosockets,
-- so a call yields to nginx's event loop instead of blocking the worker.
-- Connections are kept in nginx's keep-alive pools between requests.
local ngx = ngx
local tcp = ngx.socket.tcp
local concat, lower, find, format = table.concat, string.lower, string.find, string.format
local tonumber = tonumber

local _M = {}
local mt = { __index = _M }

-- Phases where nginx gives no cosockets: calling there must fail, not block.
local NO_COSOCKET = { init = true, init_worker = true, set = true, header_filter = true,
                      body_filter = true, log = true, balancer = true, ssl_cert = false }

local DEFAULT_MAX_BODY = 10 * 1024 * 1024

-- opts: timeout, connect_timeout (seconds), resolve (list "host:port:ip"),
-- user_agent, max_body, pool_size, keepalive_timeout (seconds)
function _M.new(opts)
  local resolve = {}
  for _, entry in ipairs(opts.resolve or {}) do
    local host, port, ip = entry:match("^([^:]+):(%d+):(.+)$")
    if host then resolve[host .. ":" .. port] = ip end
  end
  return setmetatable({
    timeout_ms = math.floor((opts.timeout or 30) * 1000),
    connect_ms = math.floor((opts.connect_timeout or 10) * 1000),
    resolve = resolve,
    user_agent = opts.user_agent or "lua-qiwi",
    max_body = opts.max_body or DEFAULT_MAX_BODY,
    pool_size = opts.pool_size or 16,
    keepalive_ms = math.floor((opts.keepalive_timeout or 60) * 1000),
    targets = {},
  }, mt)
end

local function kind_of(err)
  if err == "timeout" then return "timeout" end
  return "network"
end

-- Scheme, host, port and request target of a URL, cached per base.
local function parse_url(self, url)
  local scheme, host, port, rest = url:match("^(https?)://([^/:]+):?(%d*)(.*)$")
  if not scheme then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if rest == "" then rest = "/" end
  local key = host .. ":" .. port
  local t = self.targets[key]
  if not t then
    local default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    t = {
      scheme = scheme, host = host, port = port,
      connect_to = self.resolve[key] or host,
      host_header = default_port and host or key,
      pool = scheme .. ":" .. key .. ":" .. (self.resolve[key] or host),
    }
    self.targets[key] = t
  end
  return t, rest
end

local function read_headers(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then return nil, "bad status line" end
  local headers = {}
  while true do
    line, err = sock:receive("*l")
    if not line then return nil, err end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = lower(name)
      local old = headers[name]
      headers[name] = old and (old .. ", " .. value) or value
    end
  end
  return status, headers
end

local function read_body(self, sock, status, headers, method)
  if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return ""
  end
  local te = headers["transfer-encoding"]
  if te and find(lower(te), "chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, err end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then return nil, "bad chunk size" end
      if size == 0 then
        -- trailers end with an empty line
        repeat
          line, err = sock:receive("*l")
          if not line then return nil, err end
        until line == ""
        break
      end
      total = total + size
      if total > self.max_body then return nil, "cap" end
      local data
      data, err = sock:receive(size)
      if not data then return nil, err end
      parts[#parts + 1] = data
      local crlf
      crlf, err = sock:receive(2)
      if crlf ~= "\r\n" then return nil, err or "bad chunk end" end
    end
    return concat(parts)
  end
  local len = headers["content-length"]
  if len then
    len = tonumber(len)
    if not len or len < 0 then return nil, "bad content-length" end
    if len > self.max_body then return nil, "cap" end
    if len == 0 then return "" end
    return sock:receive(len)
  end
  -- no length: the body runs to the end of the connection
  local reader = sock:receiveuntil("\0\0never\0\0")
  local data, err, partial = reader(self.max_body + 1)
  data = data or partial
  if data and #data > self.max_body then return nil, "cap" end
  if data then return data, nil, true end
  return nil, err
end

-- req: method, url, headers (complete list of header lines), body, timeout
function _M:request(req)
  local phase = ngx.get_phase()
  if NO_COSOCKET[phase] then
    return nil, "argument", "cosockets are not available in nginx's " .. phase
      .. " phase; call the client from a content, access or rewrite handler or a timer"
  end
  local t, target = parse_url(self, req.url)
  if not t then return nil, "argument", "bad URL" end
  local sock = tcp()
  local total_ms = req.timeout and math.floor(req.timeout * 1000) or self.timeout_ms
  sock:settimeouts(math.min(self.connect_ms, total_ms), total_ms, total_ms)
  local ok, err = sock:connect(t.connect_to, t.port, { pool = t.pool, pool_size = self.pool_size })
  if not ok then return nil, kind_of(err), "connect to " .. t.host .. ":" .. t.port .. " failed: " .. tostring(err) end
  if t.scheme == "https" and sock:getreusedtimes() == 0 then
    -- server name for SNI and for the name check; verification always on
    ok, err = sock:sslhandshake(nil, t.host, true)
    if not ok then
      sock:close()
      if err == "timeout" then return nil, "timeout", "TLS handshake timed out" end
      return nil, "tls", "TLS handshake with " .. t.host .. " failed: " .. tostring(err)
    end
  end

  local body = req.body
  local lines = { req.method, " ", target, " HTTP/1.1\r\nHost: ", t.host_header,
                  "\r\nUser-Agent: ", self.user_agent, "\r\n" }
  for _, h in ipairs(req.headers or {}) do
    lines[#lines + 1] = h
    lines[#lines + 1] = "\r\n"
  end
  if body or (req.method ~= "GET" and req.method ~= "HEAD" and req.method ~= "DELETE") then
    lines[#lines + 1] = format("Content-Length: %d\r\n", body and #body or 0)
  end
  lines[#lines + 1] = "\r\n"
  if body then lines[#lines + 1] = body end
  local sent
  sent, err = sock:send(lines)
  if not sent then
    sock:close()
    return nil, kind_of(err), "send failed: " .. tostring(err)
  end

  local status, headers = read_headers(sock)
  if not status then
    sock:close()
    return nil, kind_of(headers), "no answer: " .. tostring(headers)
  end
  local data, berr, closed = read_body(self, sock, status, headers, req.method)
  if not data then
    sock:close()
    if berr == "cap" then
      return nil, "http", format("response body exceeds the %d byte cap", self.max_body)
    end
    return nil, kind_of(berr), "reading the answer failed: " .. tostring(berr)
  end
  local conn = headers.connection and lower(headers.connection)
  if closed or conn == "close" then
    sock:close()
  else
    sock:setkeepalive(self.keepalive_ms, self.pool_size)
  end
  return { status = status, headers = headers, body = data }
end

function _M.close()
  -- pooled connections belong to the nginx worker, not to one client
end

return _M
