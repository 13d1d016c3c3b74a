-- A small real proxy on 127.0.0.1 for the proxy specs: HTTP CONNECT and
-- SOCKS5 on one port (told apart by the first byte a client sends), with
-- optional credentials (Basic Proxy-Authorization, RFC 1929 for SOCKS5),
-- optionally behind TLS (an https:// proxy, with the test PKI's
-- certificate). It records everything it sees, so that a spec can prove
-- what a proxy can and cannot read:
--
--   <dir>/heads     the bytes of the proxy protocol (CONNECT heads, SOCKS5
--                   greetings and requests), as received
--   <dir>/relayed   every byte relayed through a tunnel, both directions
--   <dir>/events    one line per request: "<proto> <target> <verdict> <auth>"
--                   (proto CONNECT, SOCKS5-name, SOCKS5-ipv4 or other; auth
--                   the credentials the client gave, "-" when none)
-- Each record is written before the bytes go on, so once a client has its
-- answer, the files hold all that led to it.
--
--   local connect_proxy = require "connect_proxy"
--   local p = connect_proxy.start { user =, password =, refuse = true,
--                                   resolve = { ["fake.qiwi.test"] = "127.0.0.1" },
--                                   divert = port, tls = { cert =, key = } }
--   p:url("http", "user:pass")   -- "http://user:pass@127.0.0.1:<port>"
--   p:seen() -> heads, relayed;  p:events() -> { {proto=, target=, verdict=, auth=}, ... }
--   p:clear(); p:stop()
--
-- Targets resolve through `resolve` (the proxy's own name table: with
-- socks5h and CONNECT the client never resolves QIWI's name) and must be
-- loopback: the specs reach nothing else. `divert` sends every tunnel to
-- that loopback port instead of the one asked for, as a hostile proxy
-- would. `refuse` answers every request with 407 (SOCKS5: a failed
-- authentication). The configuration, credentials included, goes to the
-- child in a file, never on its command line (ps).
--
-- The proxy is a LuaJIT child (lua-socket, lua-sec for tls) held through a
-- popen pipe (util.port_child): stop(), or this process dying, ends it.
local util = require "util"

local _M = {}

local CHILD = [=[
local socket = require "socket"
local dir = arg[1]
local cfg = dofile(dir .. "/config.lua")
local ssl = cfg.tls and require "ssl"

local function open_log(name)
  return assert(io.open(dir .. "/" .. name, "ab"))
end
local heads, relayed, events = open_log("heads"), open_log("relayed"), open_log("events")
local function record(f, data)
  f:write(data)
  f:flush()
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function unbase64(s)
  s = s:gsub("[^%w+/]", "")
  local bits = s:gsub(".", function(c)
    local n, out = B64:find(c, 1, true) - 1, ""
    for i = 5, 0, -1 do out = out .. (math.floor(n / 2 ^ i) % 2) end
    return out
  end)
  bits = bits:sub(1, #bits - #bits % 8)  -- the padding's bits are no byte
  return (bits:gsub("%d%d%d%d%d%d%d%d", function(b) return string.char(tonumber(b, 2)) end))
end

-- The address a target host resolves to here, loopback only.
local function resolve(host)
  local ip = (cfg.resolve or {})[host:lower()] or (host == "localhost" and "127.0.0.1") or host
  if ip:match("^127%.%d+%.%d+%.%d+$") then return ip end
  return nil
end

local function dial(host, port)
  local ip = resolve(host)
  if not ip then return nil end
  local up = socket.tcp()
  up:settimeout(3)
  if not up:connect(ip, cfg.divert or port) then up:close(); return nil end
  up:settimeout(0)
  return up
end

local function send_all(s, data)
  s:settimeout(5)
  s:send(data)
  s:settimeout(0)
end

local function creds_ok(given)
  return cfg.user == nil or given == cfg.user .. ":" .. (cfg.password or "")
end

-- Written before the reply it records is sent: a client that has its
-- answer finds the event in the log (the SOCKS5 refusals were written after,
-- and a spec counting events right after a refused batch once saw 2 of 3).
local function event(proto, target, verdict, auth)
  record(events, ("%s %s %s %s\n"):format(proto, target, verdict, auth or "-"))
end

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local stdin = { getfd = function() return 0 end, dirty = function() return false end }
local conns = {}          -- socket -> connection
local peer = {}           -- socket -> the other end of its tunnel

local function close(c)
  for _, s in ipairs { c.client, c.up } do
    if s then conns[s], peer[s] = nil, nil; s:close() end
  end
  c.closed = true
end

-- HTTP CONNECT: one head, then a tunnel.
local function http_head(c)
  local e = c.buf:find("\r\n\r\n", 1, true)
  if not e then return end
  local head = c.buf:sub(1, e + 3)
  c.buf = c.buf:sub(e + 4)
  local method, target = head:match("^(%u+) (%S+) HTTP/1%.%d\r\n")
  local auth = head:match("\r\n[Pp]roxy%-[Aa]uthorization: *[Bb]asic +([%w+/=]+)")
  auth = auth and unbase64(auth)
  if method ~= "CONNECT" then
    event("other", tostring(target), "405", auth)
    send_all(c.client, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return close(c)
  end
  if cfg.refuse or not creds_ok(auth) then
    event("CONNECT", target, "407", auth)
    send_all(c.client, "HTTP/1.1 407 Proxy Authentication Required\r\n"
      .. "Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return close(c)
  end
  local host, port = target:match("^%[?([^%]]-)%]?:(%d+)$")
  local up = host and dial(host, tonumber(port))
  if not up then
    event("CONNECT", target, "502", auth)
    send_all(c.client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return close(c)
  end
  event("CONNECT", target, "200", auth)
  send_all(c.client, "HTTP/1.1 200 Connection established\r\n\r\n")
  return up
end

-- SOCKS5 (RFC 1928, RFC 1929): greeting, maybe authentication, request.
local function socks_step(c)
  local b = c.buf
  if c.stage == "greet" then
    if #b < 2 or #b < 2 + b:byte(2) then return end
    local methods = b:sub(3, 2 + b:byte(2))
    c.buf = b:sub(3 + b:byte(2))
    local want = (cfg.user or cfg.refuse) and "\2" or "\0"
    if not methods:find(want, 1, true) then
      event("SOCKS5", "-", "no-method", nil)
      send_all(c.client, "\5\255")
      return close(c)
    end
    send_all(c.client, "\5" .. want)
    c.stage = want == "\2" and "auth" or "request"
  elseif c.stage == "auth" then
    if #b < 2 then return end
    local ulen = b:byte(2)
    if #b < 3 + ulen then return end
    local plen = b:byte(3 + ulen)
    if #b < 3 + ulen + plen then return end
    c.auth = b:sub(3, 2 + ulen) .. ":" .. b:sub(4 + ulen, 3 + ulen + plen)
    c.buf = b:sub(4 + ulen + plen)
    if cfg.refuse or not creds_ok(c.auth) then
      event("SOCKS5", "-", "auth-refused", c.auth)
      send_all(c.client, "\1\1")
      return close(c)
    end
    send_all(c.client, "\1\0")
    c.stage = "request"
  elseif c.stage == "request" then
    if #b < 5 then return end
    local atyp, host, rest = b:byte(4), nil, nil
    if atyp == 1 and #b >= 10 then
      host, rest = ("%d.%d.%d.%d"):format(b:byte(5, 8)), 9
    elseif atyp == 3 and #b >= 7 + b:byte(5) then
      host, rest = b:sub(6, 5 + b:byte(5)), 6 + b:byte(5)
    elseif atyp ~= 1 and atyp ~= 3 then
      event("SOCKS5", "-", "bad-address-type", c.auth)
      send_all(c.client, "\5\8\0\1\0\0\0\0\0\0")
      return close(c)
    else
      return
    end
    local port = b:byte(rest) * 256 + b:byte(rest + 1)
    c.buf = b:sub(rest + 2)
    local proto, target = atyp == 3 and "SOCKS5-name" or "SOCKS5-ipv4", host .. ":" .. port
    local up = b:byte(2) == 1 and dial(host, port)
    if not up then
      event(proto, target, "refused", c.auth)
      send_all(c.client, "\5\5\0\1\0\0\0\0\0\0")
      return close(c)
    end
    event(proto, target, "granted", c.auth)
    send_all(c.client, "\5\0\0\1\127\0\0\1\0\0")
    return up
  end
end

local function on_client_data(c, data)
  if c.stage == "relay" then
    record(relayed, data)
    return send_all(c.up, data)
  end
  record(heads, data)
  c.buf = c.buf .. data
  if c.stage == "new" then c.stage = c.buf:byte(1) == 5 and "greet" or "http" end
  local up
  if c.stage == "http" then up = http_head(c) else
    -- a step that took its bytes may leave the next step's in the buffer
    repeat
      local before = c.stage
      up = socks_step(c)
    until up or c.closed or c.stage == before
  end
  if up then
    c.up, c.stage = up, "relay"
    conns[up], peer[up], peer[c.client] = c, c.client, up
    if c.buf ~= "" then
      local rest = c.buf
      c.buf = ""
      record(relayed, rest)
      send_all(up, rest)
    end
  end
end

port_ready(select(2, server:getsockname()))
while true do
  local watch = { server, stdin }
  for s in pairs(conns) do watch[#watch + 1] = s end
  local readable = socket.select(watch, nil, 1)
  for _, s in ipairs(readable) do
    if s == stdin then
      io.read("*l")
      os.exit(0)
    elseif s == server then
      local cl = server:accept()
      if cl then
        if ssl then
          cl:settimeout(5)
          cl = ssl.wrap(cl, { mode = "server", protocol = "any", certificate = cfg.tls.cert, key = cfg.tls.key })
          if not (cl and cl:dohandshake()) then cl = nil end
        end
        if cl then
          cl:settimeout(0)
          conns[cl] = { client = cl, stage = "new", buf = "" }
        end
      end
    elseif conns[s] then
      local c = conns[s]
      local data, err, partial = s:receive(65536)
      data = data or partial
      if data and data ~= "" then
        if s == c.client then on_client_data(c, data)
        else
          record(relayed, data)
          send_all(c.client, data)
        end
      end
      if err == "closed" and not c.closed then close(c) end
    end
  end
end
]=]

local Proxy = {}
Proxy.__index = Proxy

-- The proxy's URL: scheme (http, https, socks5, socks5h) and user info as
-- it goes in the URL (already escaped), or none.
function Proxy:url(scheme, userinfo)
  return (scheme or "http") .. "://" .. (userinfo and userinfo .. "@" or "") .. "127.0.0.1:" .. self.port
end

-- What it saw: the proxy-protocol bytes and the relayed ones.
function Proxy:seen()
  return util.read_file(self.dir .. "/heads") or "", util.read_file(self.dir .. "/relayed") or ""
end

function Proxy:events()
  local out = {}
  for line in (util.read_file(self.dir .. "/events") or ""):gmatch("[^\n]+") do
    local proto, target, verdict, auth = line:match("^(%S+) (%S+) (%S+) (.*)$")
    out[#out + 1] = { proto = proto, target = target, verdict = verdict, auth = auth ~= "-" and auth or nil }
  end
  return out
end

-- Empties the records (the child appends to the same files).
function Proxy:clear()
  for _, f in ipairs { "heads", "relayed", "events" } do util.write_file(self.dir .. "/" .. f, "") end
end

function Proxy:stop()
  if self.child then
    self.child.stop()
    self.child = nil
    util.exec("rm -rf " .. util.shq(self.dir))
  end
end

-- A Lua literal of a flat configuration table (strings, numbers, booleans,
-- a table of strings).
local function literal(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = "[" .. literal(k) .. "] = " .. literal(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  elseif type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

-- opts: user, password, refuse, resolve, divert, tls = {cert=, key=}.
function _M.start(opts)
  opts = opts or {}
  local dir = util.tmpdir("proxy")
  local cfg = { user = opts.user, password = opts.password, refuse = opts.refuse == true,
                divert = opts.divert, tls = opts.tls }
  if opts.resolve then
    cfg.resolve = {}
    for k, v in pairs(opts.resolve) do cfg.resolve[k:lower()] = v end
  end
  util.write_file(dir .. "/config.lua", "return " .. literal(cfg) .. "\n")
  local p = setmetatable({ dir = dir }, Proxy)
  p:clear()
  p.child = util.port_child("proxy", CHILD, { dir })
  if not p.child then
    util.exec("rm -rf " .. util.shq(dir))
    error("connect_proxy: the proxy did not start (luajit with lua-socket" .. (opts.tls and " and lua-sec" or "") .. "?)", 2)
  end
  p.port = p.child.port
  return p
end

return _M
