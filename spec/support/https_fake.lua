-- The fake QIWI served over real HTTPS by a real nginx on 127.0.0.1, with a
-- certificate from the test CA of pki.lua.
--
-- One nginx process (master_process off) per server, so the fake's
-- module-level state is shared by every request. Control requests go
-- through the curl CLI, deliberately independent of our own client code.

local pki = require "pki"
local cjson = require("cjson").new()

local util = pki.util
local shq = util.shq

local _M = {}

local NGINX, MODULES = util.NGINX, util.NGINX_MODULES
local PORT_TRIES = 20
local REPO = util.repo_root()

-- A random port no socket uses yet (skipping those avoids nginx's own bind
-- retries, which cost 2.5 s per collision); replaceable so a spec can force
-- a collision and exercise the retry.
function _M._pick_port(used)
  return util.free_port(used)
end

local Server = {}
Server.__index = Server

local CERTS = {
  good = { "cert", "key" },
  other_ca = { "other_cert", "other_key" },
  wrong_host = { "wrong_host_cert", "wrong_host_key" },
}

---------------------------------------------------------------------------
-- Processes

local alive = util.alive

-- Guards against signalling a recycled pid that is no longer our nginx.
local function is_our_nginx(pid, prefix)
  if not util.have_proc then return true end
  local cmd = util.read_file("/proc/" .. pid .. "/cmdline")
  return cmd ~= nil and cmd:find(prefix, 1, true) ~= nil
end

-- Polls every 5 ms at first, then less often, up to every 50 ms.
local function wait_until(timeout, fn)
  return util.wait_until(timeout, fn, 0.05, 0.005)
end

local function tail(path, n)
  local s = util.read_file(path)
  if not s or s == "" then return "(empty)" end
  local lines = {}
  for line in s:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local from = math.max(1, #lines - (n or 30) + 1)
  return table.concat(lines, "\n", from)
end

---------------------------------------------------------------------------
-- Configuration

-- Quoted so that a checkout path with spaces still parses.
local function q(path) return '"' .. path .. '"' end

local function build_conf(o)
  local p = o.prefix
  local lines = {
    "load_module " .. q(MODULES .. "/ndk_http_module.so") .. ";",
    "load_module " .. q(MODULES .. "/ngx_http_lua_module.so") .. ";",
    -- One process: the fake keeps its state in Lua module variables.
    "master_process off;",
    -- In the foreground, as a child of the supervising shell (see spawn).
    "daemon off;",
    "worker_processes 1;",
    "pid " .. q(p .. "/logs/nginx.pid") .. ";",
    "error_log " .. q(p .. "/logs/error.log") .. " " .. o.log_level .. ";",
    "events { worker_connections 256; }",
    "http {",
    "    access_log " .. (o.access_log and q(p .. "/logs/access.log") or "off") .. ";",
    "    client_body_temp_path " .. q(p .. "/tmp/body") .. ";",
    "    proxy_temp_path " .. q(p .. "/tmp/proxy") .. ";",
    "    fastcgi_temp_path " .. q(p .. "/tmp/fastcgi") .. ";",
    "    uwsgi_temp_path " .. q(p .. "/tmp/uwsgi") .. ";",
    "    scgi_temp_path " .. q(p .. "/tmp/scgi") .. ";",
    '    lua_package_path "' .. (o.lua_path or "") .. REPO .. "/lua/?.lua;" .. REPO .. '/lua/?/init.lua;;";',
  }
  if o.http_extra then lines[#lines + 1] = o.http_extra end
  local content = o.location_lua or 'require("qiwi.fake.nginx").serve()'
  local more = {
    "    server {",
    "        listen 127.0.0.1:" .. o.port .. " ssl" .. (o.http2 and " http2" or "") .. ";",
    "        ssl_certificate " .. q(o.cert) .. ";",
    "        ssl_certificate_key " .. q(o.key) .. ";",
    "        keepalive_timeout 60s;",
    "        keepalive_requests 10000;",
    "        client_max_body_size 1m;",
    -- Readiness probe that works whatever content handler is configured.
    '        location = /__harness/ready { return 200 "ready\\n"; }',
    "        location / {",
    "            content_by_lua_block {",
    "                " .. content,
    "            }",
    "        }",
    o.server_extra or "",
    "    }",
    "}",
  }
  for _, l in ipairs(more) do lines[#lines + 1] = l end
  return table.concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- curl

-- The CA and host that make verification succeed for this server's own
-- certificate, so control traffic never needs --insecure.
local function control_target(srv)
  if srv.cert_kind == "other_ca" then
    return srv.pki.other_ca, "127.0.0.1", nil
  elseif srv.cert_kind == "wrong_host" then
    return srv.pki.ca, "wrong.example", "wrong.example:" .. srv.port .. ":127.0.0.1"
  end
  return srv.pki.ca, "127.0.0.1", nil
end

-- Returns status (number, 0 if no HTTP answer), body, curl's stderr.
-- Public as Server:curl for specs that talk to a custom location_lua.
function Server:_curl(method, path, body, max_time)
  local ca, host, resolve = control_target(self)
  local dir = self.prefix .. "/tmp"
  local out, errf = dir .. "/ctl-out", dir .. "/ctl-err"
  os.remove(out)
  local cmd = { "curl -sS --max-time", tostring(max_time or 10), "--cacert", shq(ca),
                "-X", method, "-o", shq(out), "-w '%{http_code}'" }
  if resolve then cmd[#cmd + 1] = "--resolve " .. shq(resolve) end
  if body then
    local inf = dir .. "/ctl-in"
    util.write_file(inf, body)
    cmd[#cmd + 1] = "-H 'Content-Type: application/json' --data-binary @" .. shq(inf)
  end
  cmd[#cmd + 1] = shq("https://" .. host .. ":" .. self.port .. path)
  cmd[#cmd + 1] = "2>" .. shq(errf) .. " </dev/null"
  local p = io.popen(table.concat(cmd, " "))
  local code = p:read("*a")
  p:close()
  return tonumber(code) or 0, util.read_file(out) or "", util.read_file(errf) or ""
end

Server.curl = Server._curl

function Server:_control(method, path, body)
  if self.stopped then error("https_fake: server already stopped", 3) end
  local status, resp, cerr = self:_curl(method, path, body)
  if status ~= 200 then
    error(("https_fake: %s %s -> %s %s%s\n--- %s/logs/error.log (tail) ---\n%s"):format(
      method, path, status == 0 and "no answer" or tostring(status), resp,
      cerr ~= "" and ("\ncurl: " .. cerr) or "", self.prefix, tail(self.prefix .. "/logs/error.log")), 3)
  end
  if resp == "" then return nil end
  local ok, val = pcall(cjson.decode, resp)
  if not ok then
    error(("https_fake: %s %s answered non-JSON: %s"):format(method, path, resp), 3)
  end
  return val
end

-- JSON null becomes nil, as in the in-process fake's own tables: a missing
-- body must not turn into a truthy cjson.null.
-- Integral numbers become integers where Lua has them, so a status prints
-- as 200 rather than 200.0.
local tointeger = math.tointeger or function(x) return x end

local function plain(v)
  if v == cjson.null then return nil end
  if type(v) == "number" then return tointeger(v) or v end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain(x) end
  return t
end

local function encode(v)
  if v == nil then return "null" end
  return cjson.encode(v)
end

---------------------------------------------------------------------------
-- Server methods

function Server:url(path)
  return self.base_url .. (path or "")
end

function Server:error_log(n)
  return tail(self.prefix .. "/logs/error.log", n)
end

-- Replaces the fake's whole state with a new one built from `opts`.
function Server:reset(opts)
  return plain(self:_control("POST", "/__fake/reset", encode(opts or {})))
end

-- The fake's request log, oldest first.
function Server:requests()
  local v = self:_control("GET", "/__fake/requests")
  if type(v) == "table" and type(v.requests) == "table" then v = v.requests end
  return plain(v) or {}
end

function Server:config(opts)
  return plain(self:_control("POST", "/__fake/config", encode(opts or {})))
end

-- Calls a method of the fake inside nginx; nil arguments are sent as null.
function Server:call(method, ...)
  local n = select("#", ...)
  local args = {}
  for i = 1, n do args[i] = encode((select(i, ...))) end
  local body = '{"method":' .. cjson.encode(method) .. ',"args":[' .. table.concat(args, ",") .. "]}"
  local v = self:_control("POST", "/__fake/call", body)
  if type(v) == "table" then return plain(v.result) end
  return plain(v)
end

-- Stops nginx and waits until it has exited, so the port is closed when
-- this returns. Safe to call more than once.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  self:_halt()
  if not self.keep then util.exec("rm -rf " .. shq(self.prefix)) end
end

function Server:_halt()
  local pid = self.pid
  if pid and alive(pid) and is_our_nginx(pid, self.prefix) then
    util.exec("kill -TERM " .. pid .. " 2>/dev/null")
    if not wait_until(3, function() return not alive(pid) end) then
      util.exec("kill -KILL " .. pid .. " 2>/dev/null")
      wait_until(2, function() return not alive(pid) end)
    end
  end
  -- Closing the pipe lets the supervising shell reap nginx and exit; pclose
  -- then reaps the shell. Nothing is left behind, not even a zombie.
  if self._pipe then
    -- A write to a pipe whose reader is gone would kill us with SIGPIPE.
    if self._sh_pid and alive(self._sh_pid) then self._pipe:write("stop\n") end
    self._pipe:close()
    self._pipe = nil
  end
end

---------------------------------------------------------------------------
-- start

-- nginx runs in the foreground (not `daemon on`) under a shell that we hold
-- through a popen pipe: util.supervise says why.
local function spawn(o)
  local p = o.prefix
  util.write_file(p .. "/nginx.conf", build_conf(o))
  for _, f in ipairs { "/logs/error.log", "/logs/start.log", "/logs/nginx.pid", "/logs/spawn.pid" } do
    os.remove(p .. f)
  end
  return util.supervise(shq(NGINX) .. " -p " .. shq(p .. "/") .. " -c " .. shq(p .. "/nginx.conf") .. " -e "
    .. shq(p .. "/logs/error.log"), { log = p .. "/logs/start.log", pid_file = p .. "/logs/spawn.pid",
                                      shell_pid = true, dir = p })
end

local function startup_log(prefix)
  return (util.read_file(prefix .. "/logs/start.log") or "") .. tail(prefix .. "/logs/error.log")
end

-- opts: cert ("good" | "other_ca" | "wrong_host"), fake (table for reset),
-- delay_ms, location_lua (custom content_by_lua body instead of the fake),
-- http_extra / server_extra (raw directives), lua_path (entries put before
-- the repository's lua/ in lua_package_path, each ending in ';'),
-- http2 (default true),
-- access_log (default true), log_level (default "warn"), pki_dir,
-- start_timeout (seconds, default 5), keep (leave the prefix on stop).
function _M.start(opts)
  opts = opts or {}
  local t0 = util.now()
  local kind = opts.cert or "good"
  local pair = CERTS[kind]
  if not pair then error("https_fake: unknown cert kind " .. tostring(kind), 2) end
  local certs = pki.ensure(opts.pki_dir)

  local prefix = util.tmpdir("nginx")
  util.mkdir_p(prefix .. "/logs")
  util.mkdir_p(prefix .. "/tmp")

  local o = {
    prefix = prefix, cert = certs[pair[1]], key = certs[pair[2]],
    log_level = opts.log_level or "warn",
    access_log = opts.access_log ~= false,
    http2 = opts.http2 ~= false,
    location_lua = opts.location_lua, lua_path = opts.lua_path,
    http_extra = opts.http_extra, server_extra = opts.server_extra,
  }
  local srv = setmetatable({
    cert_kind = kind, pki = certs, prefix = prefix,
    -- Clients always trust the good CA: other_ca and wrong_host servers are
    -- there to be refused by it.
    ca_file = certs.ca,
    keep = opts.keep,
  }, Server)
  local timeout = opts.start_timeout or 5

  local up, why, final = util.on_free_port(PORT_TRIES, function(port)
    o.port = port
    srv.port, srv.pid, srv._sh_pid = o.port, nil, nil
    local pipe = spawn(o)
    srv._pipe = pipe
    -- Created after the pipe: finalizers run in reverse order of creation,
    -- so at lua_close stop() runs while the pipe is still open. The check
    -- keeps the sentinel of a failed attempt from stopping a later one.
    srv._sentinel = util.gc_sentinel(function()
      if srv._pipe == pipe then srv:stop() end
    end)

    local probe = "no probe made"
    local ready = wait_until(timeout, function()
      if not srv.pid then
        local s = util.read_file(prefix .. "/logs/spawn.pid")
        local pid, sh = (s or ""):match("^(%d+) (%d+)\n")
        if not sh then return false end
        srv.pid, srv._sh_pid = tonumber(pid), tonumber(sh)
      end
      if not alive(srv.pid) then return true end
      -- nginx writes its pid file once its sockets are listening.
      if not util.read_file(prefix .. "/logs/nginx.pid") then return false end
      local status, body, cerr = srv:_curl("GET", "/__harness/ready", nil, 1)
      probe = ("last probe: HTTP %s %s %s"):format(status, body, cerr)
      return status == 200
    end) and srv.pid and alive(srv.pid)

    if ready then return true end
    local exited = srv.pid and not alive(srv.pid)
    srv:_halt()
    local log = startup_log(prefix)
    if log:find("Address already in use", 1, true) then return nil, log end
    return nil, ("https_fake: nginx on 127.0.0.1:%d %s\n--- nginx output and %s/logs/error.log ---\n%s%s")
      :format(o.port, exited and "exited during start-up" or ("not ready within " .. timeout .. " s"),
              prefix, log, exited and "" or ("\n--- readiness ---\n" .. probe))
  end, function(used) return _M._pick_port(used) end)
  if not up then
    srv:stop()
    error(final and why or ("https_fake: no free port after " .. PORT_TRIES .. " tries\n" .. why), 2)
  end

  srv.base_url = "https://127.0.0.1:" .. srv.port
  -- For clients that map the name to the loopback address (curl --resolve).
  srv.named_url = "https://fake.qiwi.test:" .. srv.port
  srv.resolve = "fake.qiwi.test:" .. srv.port .. ":127.0.0.1"

  if not opts.location_lua then
    if opts.fake then srv:reset(opts.fake) end
    if opts.delay_ms then srv:config { delay_ms = opts.delay_ms } end
  end
  srv.startup_seconds = util.now() - t0
  return srv
end

-- One "good" server per Lua process. Kept in the registry because busted
-- insulates each spec file: package.loaded and _G are restored between
-- files, so a module-level variable would not survive to the next file.
local REG_KEY = "lua-qiwi.https_fake.shared"

function _M.shared()
  local reg = debug.getregistry()
  local srv = reg[REG_KEY]
  if srv and not srv.stopped and srv.pid and alive(srv.pid) then return srv end
  srv = _M.start {}
  reg[REG_KEY] = srv
  return srv
end

-- For a server that runs our client inside nginx: lua_path with
-- spec/support (nginx_client.lua), and http_extra with the LuaJIT core
-- (util.NGINX_CPATH) and, given ca_file, trust in that CA.
_M.SUPPORT_PATH = REPO .. "/spec/support/?.lua;"

function _M.client_http(ca_file)
  local t = { '    lua_package_cpath "' .. util.NGINX_CPATH .. ';;";' }
  if ca_file then
    t[2] = '    lua_ssl_trusted_certificate "' .. ca_file .. '";'
    t[3] = "    lua_ssl_verify_depth 2;"
  end
  return table.concat(t, "\n")
end

_M.Server = Server

return _M
