-- Serves the fake QIWI from inside nginx (lua-nginx-module, LuaJIT).
--
--   location / { content_by_lua_block { require("qiwi.fake.nginx").serve() } }
--
-- nginx must run a single process (`master_process off;`): the fake lives in
-- this module's upvalues and keeps its state from one request to the next.
-- The instance is created on first use, with default options or those
-- given to configure() before (from init_by_lua).
--
-- Control endpoints (not QIWI's; JSON in and out, no authorization):
--   GET  /__fake/ping      -> 200 "pong"
--   POST /__fake/reset     body: options for qiwi.fake.new (may be empty);
--                          replaces the instance -> {"ok":true}
--   GET  /__fake/requests  -> JSON array of the request log, oldest first; each
--                          entry: method, path, query, params, headers, body,
--                          json, status, connection (nginx connection serial
--                          number, to count TCP connections)
--   POST /__fake/config    {"delay_ms":200} -> delay of every answer (ngx.sleep)
--   POST /__fake/call      {"method":"set_balance","args":["qw_wallet_rub",100]}
--                          -> {"result":…} from f[method](f, unpack(args));
--                          JSON null arguments arrive as nil; a Lua error is
--                          answered 400 {"error":"…"}
-- Anything else goes to the fake's f:handle(), and a fault it took
-- (fail_next) happens on the wire: drop (444), reset (a TCP RST), truncate
-- (a body shorter than its Content-Length), stall_ms (the body paused).

local fake = require "qiwi.fake"
local json = require "qiwi.fake.json"

local _M = {}
local unpack = table.unpack or unpack

local instance
-- The options of the instance made on first use (configure).
local first_options = {}

-- An instance served here sends its notifications (qiwi.fake.outbox).
local function served(f)
  f.serves_http = true
  return f
end

local function current()
  if not instance then instance = served(fake.new(first_options)) end
  return instance
end

-- configure(opts): the options of qiwi.fake.new for the instance made on
-- first use, e.g. { public_hooks_only = false } so that webhooks may be
-- registered on loopback (from init_by_lua, as examples/shop/run does).
-- Bad options raise here, at start, not on the first request; once an
-- instance exists it is an error (/__fake/reset replaces that one).
function _M.configure(opts)
  assert(type(opts) == "table", "qiwi.fake.nginx.configure takes the options of qiwi.fake.new")
  assert(not instance, "qiwi.fake.nginx.configure: the fake already runs (use /__fake/reset)")
  local copy, probe = {}, {}
  for k, v in pairs(opts) do copy[k], probe[k] = v, v end
  fake.new(probe) -- raises on bad options; thrown away
  first_options = copy
  return true
end

-- For embedding code that wants the live instance (e.g. a custom location).
function _M.instance()
  return current()
end

local function send_head(status, headers, length)
  ngx.status = status
  for k, v in pairs(headers or {}) do
    if k ~= "content-length" then ngx.header[k] = v end
  end
  if not headers or not headers["content-type"] then ngx.header["content-type"] = nil end
  ngx.header["content-length"] = length
  ngx.send_headers()
end

local function send(status, headers, body)
  -- An exact length instead of chunking, also for the empty 201/202 answers.
  send_head(status, headers, (status ~= 204 and status ~= 304) and #(body or "") or nil)
  if body and body ~= "" then ngx.print(body) end
  -- Quits the whole request with what was sent (not the status as a page).
  return ngx.exit(ngx.HTTP_OK)
end

local function send_json(status, value)
  return send(status, { ["content-type"] = "application/json" }, json.encode(value))
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body == nil then
    local name = ngx.req.get_body_file()
    if name then
      local fh = io.open(name, "rb")
      if fh then
        body = fh:read("*a")
        fh:close()
      end
    end
  end
  return body
end

-- Turns decoded JSON back into plain Lua values for fake.new / helper calls.
local function plain(v)
  if v == json.null then return nil end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain(x) end
  return t
end

local function log_entry(r)
  return {
    method = r.method, path = r.path, query = r.query or "", params = r.params or {},
    headers = r.headers or {}, body = r.body or json.null, json = r.json or json.null,
    status = r.status or json.null, connection = r.connection or json.null,
  }
end

local control = {}

control["GET /__fake/ping"] = function()
  return send(200, { ["content-type"] = "text/plain" }, "pong")
end

control["POST /__fake/reset"] = function(body)
  local opts = {}
  if body and body:find("%S") then
    local v, err = json.decode(body)
    if type(v) ~= "table" or json.is_array(v) then
      return send_json(400, { error = "reset: " .. tostring(err or "options must be a JSON object") })
    end
    opts = plain(v)
  end
  local ok, f = pcall(fake.new, opts)
  if not ok then return send_json(400, { error = tostring(f) }) end
  instance = served(f)
  return send_json(200, { ok = true })
end

control["GET /__fake/requests"] = function()
  local out = json.array()
  for i, r in ipairs(current().requests) do out[i] = log_entry(r) end
  return send_json(200, out)
end

control["POST /__fake/config"] = function(body)
  local v = body and json.decode(body)
  if type(v) ~= "table" then return send_json(400, { error = "config: a JSON object is required" }) end
  if v.delay_ms ~= nil then current():set_delay(tonumber(v.delay_ms) or 0) end
  return send_json(200, { ok = true, delay_ms = current().delay_ms })
end

control["POST /__fake/call"] = function(body)
  local v = body and json.decode(body)
  if type(v) ~= "table" or type(v.method) ~= "string" then
    return send_json(400, { error = 'call: {"method":"…","args":[…]} is required' })
  end
  local f = current()
  local fn = f[v.method]
  if type(fn) ~= "function" or v.method:sub(1, 1) == "_" then
    return send_json(400, { error = "call: no helper method " .. v.method })
  end
  local args, n = {}, 0
  if type(v.args) == "table" then
    n = #v.args
    for i = 1, n do args[i] = plain(v.args[i]) end
  end
  local ok, res = pcall(fn, f, unpack(args, 1, n))
  if not ok then return send_json(400, { error = tostring(res) }) end
  if res == nil then res = json.null end
  local encoded, text = pcall(json.encode, { result = res })
  if not encoded then return send_json(400, { error = "call: the result is not JSON: " .. tostring(text) }) end
  return send(200, { ["content-type"] = "application/json" }, text)
end

-- The descriptor of this request's client connection, found by its two
-- ports: lua-nginx-module gives no other way to it, also under HTTP/2.
local ffi_ok, ffi = pcall(require, "ffi")
local socket_api
local function sockets()
  if socket_api ~= nil then return socket_api end
  socket_api = false
  if not ffi_ok then return false end
  pcall(ffi.cdef, [[
    struct qiwi_fake_sockaddr { uint16_t family; uint8_t port[2]; uint8_t rest[124]; };
    int getsockname(int fd, struct qiwi_fake_sockaddr *addr, uint32_t *len);
    int getpeername(int fd, struct qiwi_fake_sockaddr *addr, uint32_t *len);
    int connect(int fd, const struct qiwi_fake_sockaddr *addr, uint32_t len);
  ]])
  local ok = pcall(function() return ffi.C.getpeername, ffi.C.getsockname, ffi.C.connect end)
  if ok then socket_api = ffi.C end
  return socket_api
end

local function port_of(sa) return sa.port[0] * 256 + sa.port[1] end

local function connection_fd()
  local C = sockets()
  if not C then return nil end
  local local_port, peer_port = tonumber(ngx.var.server_port), tonumber(ngx.var.remote_port)
  local sa = ffi.new("struct qiwi_fake_sockaddr")
  local len = ffi.new("uint32_t[1]")
  for fd = 3, 4095 do
    len[0] = ffi.sizeof(sa)
    if C.getpeername(fd, sa, len) == 0 and port_of(sa) == peer_port then
      len[0] = ffi.sizeof(sa)
      if C.getsockname(fd, sa, len) == 0 and port_of(sa) == local_port then return fd end
    end
  end
  return nil
end

-- connect(AF_UNSPEC) disconnects a TCP socket with a RST at once, and the
-- descriptor stays nginx's: it closes it itself after its next failed I/O.
local function reset_connection()
  local fd = connection_fd()
  if not fd then
    ngx.log(ngx.ERR, "qiwi.fake: no descriptor found for the connection to reset")
    return ngx.exit(444)
  end
  local sa = ffi.new("struct qiwi_fake_sockaddr")
  sa.family = 0
  sockets().connect(fd, sa, ffi.sizeof(sa))
  return ngx.exit(444)
end


-- Content-Length promises the whole body; `n` bytes of it arrive, then the
-- connection is closed (HTTP/1.1) or the stream reset (HTTP/2).
local function send_truncated(status, headers, body, n)
  send_head(status, headers, #body)
  if n > 0 then ngx.print(body:sub(1, n)) end
  ngx.flush(true)
  return ngx.exit(444)
end

local function send_stalled(status, headers, body, after, ms)
  send_head(status, headers, #body)
  if after > 0 then ngx.print(body:sub(1, after)) end
  ngx.flush(true)
  ngx.sleep(ms / 1000)
  ngx.print(body:sub(after + 1))
  return ngx.exit(ngx.HTTP_OK)
end

function _M.serve()
  local method = ngx.req.get_method()
  local uri = ngx.var.request_uri or "/"
  local path, query = uri:match("^([^?]*)%??(.*)$")

  local ctl = control[method .. " " .. path]
  if ctl then return ctl(method ~= "GET" and read_body() or nil) end
  if path:sub(1, 8) == "/__fake/" then
    return send_json(404, { error = "unknown control endpoint " .. method .. " " .. path })
  end

  local body = read_body()
  local headers = {}
  for k, v in pairs(ngx.req.get_headers(200)) do
    if type(v) == "table" then v = table.concat(v, ", ") end
    headers[string.lower(k)] = v
  end
  local f = current()
  local status, h, b = f:handle {
    method = method, path = path, query = query, headers = headers, body = body,
    connection = tonumber(ngx.var.connection),
  }
  local fault = f.last_fault
  local delay = f.last_delay_ms or 0
  if delay > 0 then ngx.sleep(delay / 1000) end
  if fault then
    if fault.reset then return reset_connection() end
    if fault.drop then return ngx.exit(444) end
    if fault.truncate and fault.truncate < #b then return send_truncated(status, h, b, fault.truncate) end
    if fault.stall_ms then return send_stalled(status, h, b, math.min(fault.stall_after, #b), fault.stall_ms) end
  end
  if status == 444 and h["x-fake-drop"] then return ngx.exit(444) end
  return send(status, h, b)
end

return _M
