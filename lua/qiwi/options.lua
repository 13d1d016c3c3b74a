-- The options of qiwi.new: each checked, and a normalised copy made.
-- Nothing here raises: a bad option is a reason, which qiwi.new returns as
-- an `argument` error before any client exists.
local args = require "qiwi.args"
local VERSION = require "qiwi.version"

local type, tostring, tonumber, next, pcall, getmetatable, ipairs = type, tostring, tonumber, next, pcall, getmetatable, ipairs
local format, find, gsub = string.format, string.find, string.gsub

local _M = {}

local KNOWN_OPTIONS = {
  token = true, wallet = true, base_url = true, timeout = true, connect_timeout = true,
  ca_file = true, retries = true, user_agent = true, transport = true, p2p_secret_key = true,
  resolve = true, allow_http = true, max_body = true, history_rate = true, store = true,
  proxy = true,
}

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

-- The proxy schemes libcurl is given. http and https proxies are always
-- asked to CONNECT (a tunnel: TLS runs end to end with QIWI through it);
-- socks5 resolves QIWI's host name here, socks5h leaves it to the proxy.
local PROXY_SCHEMES = { http = true, https = true, socks5 = true, socks5h = true }

-- %XX escapes of a proxy URL's user info, decoded; nil for a malformed one.
local function percent_decode(s)
  if find((gsub(s, "%%%x%x", "")), "%", 1, true) then return nil end
  return (gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Splits a proxy URL, scheme://[user[:password]@]host:port, into the URL
-- libcurl gets (no credentials: they go to libcurl on their own, so no
-- URL that libcurl might quote in an error holds them) and the decoded
-- user and password; or nil, reason. No reason quotes the value: it may
-- hold the password.
local function parse_proxy(v)
  if type(v) ~= "string" then return nil, "proxy must be a string such as http://host:port" end
  if #v > 2048 or find(v, "[%z\1-\32\127\\]") then
    return nil, "proxy must not contain spaces, backslashes or control characters"
  end
  local scheme, rest = v:match("^(%a[%w+.-]*)://(.-)/?$")
  scheme = scheme and scheme:lower()
  if not scheme or not PROXY_SCHEMES[scheme] then
    return nil, "proxy must be http://, https://, socks5:// or socks5h://host:port"
  end
  -- the last @ ends the user info: a password may hold a raw @
  local userinfo, hostport = rest:match("^(.*)@([^@]*)$")
  if not userinfo then hostport = rest end
  if find(hostport, "[/?#]") then return nil, "proxy must not contain a path, query or fragment" end
  local host, port = hostport:match("^(%[[%x:.]+%]):(%d+)$")
  if not host then host, port = hostport:match("^([%w][%w.-]*):(%d+)$") end
  local n = port and #port <= 5 and tonumber(port)
  if not host then return nil, "proxy must name a host and a port: " .. scheme .. "://host:port" end
  if not n or n < 1 or n > 65535 then return nil, "proxy port must be from 1 to 65535" end
  local p = { url = format("%s://%s:%d", scheme, host, n), scheme = scheme }
  if userinfo then
    local user, password = userinfo:match("^([^:]*):(.*)$")
    if not user then user = userinfo end
    p.username, p.password = percent_decode(user), password and percent_decode(password)
    if not p.username or (password and not p.password) then
      return nil, "proxy user info has a malformed %-escape"
    end
    if p.username == "" or args.has_control(p.username) or (p.password and args.has_control(p.password)) then
      return nil, "proxy user name must be non-empty, and neither it nor the password may hold control characters"
    end
    -- what the user wrote, escaped as it was: scrubbed from errors too
    p.raw_password = password
  end
  return p
end
_M.parse_proxy = parse_proxy

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
      return nil, format("p2p_secret_key must be a string of at least %d characters"
        .. " without spaces or control characters", MIN_SECRET)
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
      if k ~= "limit" and k ~= "window" and k ~= "margin" and k ~= "clock" and k ~= "sleep" then
        return nil, "history_rate: unknown option '" .. key_name(k) .. "'"
      end
      h[k] = v
    end
    hr = h
    if hr.limit ~= nil and (type(hr.limit) ~= "number" or not args.integer(hr.limit, { min = 1, max = 100000 })) then
      return nil, "history_rate.limit must be an integer from 1 to 100000"
    end
    -- NaN, infinity or a negative window would make the limiter wait for ever
    if hr.window ~= nil and (type(hr.window) ~= "number" or not (hr.window > 0 and hr.window <= 86400)) then
      return nil, "history_rate.window must be a number of seconds above 0 and at most 86400"
    end
    if hr.margin ~= nil and (type(hr.margin) ~= "number" or not (hr.margin >= 0 and hr.margin <= 3600)) then
      return nil, "history_rate.margin must be a number of seconds from 0 to 3600"
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
  if opts.proxy ~= nil then
    local p, perr = parse_proxy(opts.proxy)
    if not p then return nil, perr end
    -- plain http through a tunnel is still plain http: the proxy would
    -- read the token
    if scheme ~= "https" then return nil, "proxy needs an https base_url (the proxy would read the token over http)" end
    -- inside nginx requests go over cosockets, which do not speak to proxies;
    -- a user's transport (or qiwi.fake) decides its own route, so there
    -- the option is only checked
    if opts.transport == nil and type(ngx) == "table" and type(ngx.socket) == "table" then
      return nil, "proxy is not supported inside nginx (cosockets connect directly);"
        .. " use nginx's own upstream or run the client outside nginx"
    end
    o.proxy = p
  end
  if opts.store ~= nil then
    local ok, why = require("qiwi.store").check(opts.store)
    if not ok then
      return nil, "store: " .. why .. " (qiwi.store.memory(), .file(dir), .shdict(name), .redis{...})"
    end
    o.store = opts.store
  end
  return o
end

_M.check = check_options
_M.is_loopback = is_loopback

return _M
