-- `qiwi fake`: the fake QIWI served over HTTPS on 127.0.0.1 by a real nginx
-- (Debian's nginx with libnginx-mod-http-lua, or OpenResty), for tests
-- written in any language. The same glue as the specs' harness serves it
-- (qiwi.fake.nginx: QIWI's routes plus the /__fake/ control endpoints).
--
-- start() makes a throwaway CA and a certificate for 127.0.0.1 and
-- localhost with the openssl command, writes an nginx.conf into a new
-- temporary directory and starts nginx in the foreground under a small
-- shell. That shell holds our end of a pipe: when this process ends, by
-- SIGTERM or anything else, the pipe closes, and the shell stops nginx and
-- removes the directory. Nothing runs as a daemon; nothing outlives us.
--
-- With a state file the fake's state is written (atomically) after every
-- request that may change it, and read back at the next start.
local _M = { _VERSION = "qiwi.fake.server 0.1.0" }

local format = string.format

local function shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute's result as one boolean on every Lua.
local function exec(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  return true
end

local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(n)
  if f then f:close() end
  raw = raw or tostring(os.time()) .. tostring({})
  return (raw:sub(1, n):gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function sleep(s)
  exec("sleep " .. s)
end

-- The directory that holds qiwi/fake/server.lua (lua/ in a checkout,
-- share/lua/5.x/ in a luarocks tree): nginx's Lua finds the fake there.
local function lua_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)qiwi/fake/server%.lua$") or ""
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    local cwd = p and p:read("*l") or "."
    if p then p:close() end
    dir = cwd .. "/" .. dir:gsub("^%./", "")
  end
  return dir
end

local function first_executable(...)
  for i = 1, select("#", ...) do
    local path = select(i, ...)
    if path and path ~= "" and exec("test -x " .. shq(path)) then return path end
  end
  return nil
end

local function find_nginx()
  local on_path
  local p = io.popen("command -v nginx openresty 2>/dev/null")
  if p then on_path = p:read("*l"); p:close() end
  return first_executable(os.getenv("QIWI_FAKE_NGINX"), "/usr/sbin/nginx", "/usr/local/openresty/bin/openresty",
                          on_path)
end

-- Debian loads lua-nginx-module as a dynamic module; OpenResty has it built in.
local function module_lines()
  local dir = os.getenv("QIWI_FAKE_NGINX_MODULES") or "/usr/lib/nginx/modules"
  if not exec("test -f " .. shq(dir .. "/ngx_http_lua_module.so")) then return "" end
  return format('load_module "%s/ndk_http_module.so";\nload_module "%s/ngx_http_lua_module.so";\n', dir, dir)
end

---------------------------------------------------------------------------
-- The throwaway PKI

local SERVER_EXT = [[
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
]]

local function make_pki(dir)
  local log = dir .. "/openssl.log"
  local function run(a)
    return exec("cd " .. shq(dir) .. " && openssl " .. a .. " >>openssl.log 2>&1 </dev/null")
  end
  write_file(dir .. "/server.ext", SERVER_EXT)
  local ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  local ok = run("req -x509 -new" .. ec .. " -days 30 -sha256 -subj '/CN=qiwi fake throwaway CA'"
      .. " -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'"
      .. " -keyout ca.key -out ca.pem")
    and run("req -new" .. ec .. " -subj /CN=localhost -keyout key.pem -out server.csr")
    and run("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x" .. random_hex(8)
      .. " -days 30 -sha256 -extfile server.ext -out cert.pem")
    and run("verify -CAfile ca.pem cert.pem")
  if not ok then
    return nil, "openssl could not make the fake's certificate: " .. ((read_file(log) or ""):gsub("%s+", " "))
  end
  os.remove(dir .. "/ca.key") -- nothing is ever signed with it again
  return { ca = dir .. "/ca.pem", cert = dir .. "/cert.pem", key = dir .. "/key.pem" }
end

---------------------------------------------------------------------------
-- nginx

local function conf(o)
  local p = o.prefix
  local init = format("require(%q).nginx_init { token = %q, wallet = %q, state = %s }",
    "qiwi.fake.server", o.token, o.wallet, o.state and format("%q", o.state) or "nil")
  return module_lines() .. format([[
# Written by `qiwi fake`: one process, so that the fake's state (Lua
# variables) is the same for every request.
master_process off;
daemon off;
worker_processes 1;
pid "%s/nginx.pid";
error_log "%s/error.log" warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path "%s/tmp";
    proxy_temp_path "%s/tmp";
    fastcgi_temp_path "%s/tmp";
    uwsgi_temp_path "%s/tmp";
    scgi_temp_path "%s/tmp";
    lua_package_path "%s?.lua;%s?/init.lua;;";
    init_by_lua_block { %s }
    server {
        listen 127.0.0.1:%d ssl http2;
        ssl_certificate "%s";
        ssl_certificate_key "%s";
        keepalive_timeout 60s;
        keepalive_requests 10000;
        client_max_body_size 1m;
        location / {
            content_by_lua_block { require("qiwi.fake.nginx").serve() }
            log_by_lua_block { require("qiwi.fake.server").nginx_after() }
        }
    }
}
]], p, p, p, p, p, p, p, o.root, o.root, init, o.port, o.pki.cert, o.pki.key)
end

-- nginx under a shell that stops it when our end of its stdin closes,
-- writes nginx's exit status into a FIFO we hold open (once the watcher
-- of the pipe is gone, so that closing the pipe afterwards is harmless),
-- and removes the
-- directory when we are gone (our end closed without a "stop" line first:
-- SIGTERM, a crash); after a "stop" line, stop() removes it. The shell
-- ignores INT, TERM and HUP (a Ctrl-C or a signal to the whole group) so
-- that it always gets to the clean-up.
local SUPERVISOR = [[
exec >%s/supervisor.log 2>&1
exec 3<&0
%s -p %s -c %s -e %s </dev/null &
n=$!
trap '' INT TERM HUP
echo $n >%s/nginx.child
( read cmd <&3 || :; [ "$cmd" = stop ] || : >%s/orphan; kill -TERM $n 2>/dev/null ) &
w=$!
wait $n
st=$?
kill -KILL $w 2>/dev/null
wait $w
echo "exit $st" 1<>%s
[ ! -f %s/orphan ] || rm -rf %s
]]

-- Returns the pipe to the shell and the FIFO, opened read-write so that
-- neither end blocks and no line written is lost.
local function spawn(o)
  local p = o.prefix
  write_file(p .. "/nginx.conf", conf(o))
  for _, f in ipairs { "/nginx.pid", "/nginx.child", "/error.log" } do os.remove(p .. f) end
  local fifo = p .. "/done." .. o.port
  if not exec("mkfifo " .. shq(fifo)) then return nil end
  local done = io.open(fifo, "r+")
  local script = SUPERVISOR:format(shq(p), shq(o.nginx), shq(p .. "/"), shq(p .. "/nginx.conf"),
    shq(p .. "/error.log"), shq(p), shq(p), shq(fifo), shq(p), shq(p))
  return io.popen(script, "w"), done
end

local function alive(pid)
  local st = read_file("/proc/" .. pid .. "/stat")
  if st then
    local state = st:match("^%d+ %(.*%) (%S)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  return exec("kill -0 " .. pid .. " 2>/dev/null")
end

local function ports_in_use()
  local used = {}
  for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    for port in (read_file(f) or ""):gmatch("\n%s*%d+: %x+:(%x+) ") do used[tonumber(port, 16)] = true end
  end
  return used
end

local function free_port()
  local used = ports_in_use()
  local port
  repeat port = 20000 + tonumber(random_hex(2), 16) % 41000 until not used[port]
  return port
end

-- Starts nginx on o.port; true once it listens (nginx writes its pid file
-- after binding), or nil, why and whether the port was taken.
local function up(o)
  local pipe, done = spawn(o)
  if not pipe or not done then return nil, "mkfifo failed in " .. o.prefix, false end
  local pid
  for _ = 1, 200 do
    pid = pid or tonumber((read_file(o.prefix .. "/nginx.child") or ""):match("^(%d+)"))
    if pid and not alive(pid) then break end
    if pid and read_file(o.prefix .. "/nginx.pid") then return pipe, pid, done end
    sleep(0.025)
  end
  local log = (read_file(o.prefix .. "/error.log") or "") .. (read_file(o.prefix .. "/supervisor.log") or "")
  -- "stop" (the directory is ours to keep for the next try), unless nginx
  -- and so its shell are gone: a write to a pipe nobody reads kills us
  if pid and alive(pid) then pipe:write("stop\n") pipe:flush() end
  done:read("*l")
  pipe:close()
  done:close()
  return nil, log:gsub("%s+$", ""), log:find("Address already in use", 1, true) ~= nil
end

-- Starts the fake. o: port (default: a free one), state (file), token
-- (default: the state file's, else a fresh one), wallet. Returns {base_url,
-- token, wallet, ca_file, pid, prefix, pipe}, or nil and {kind=, message=}.
function _M.start(o)
  o = o or {}
  local port = o.port and tonumber(o.port)
  if o.port and (not port or port < 1 or port > 65535 or port % 1 ~= 0) then
    return nil, { kind = "usage", message = "--port must be a port number" }
  end
  local nginx = find_nginx()
  if not nginx then
    return nil, { kind = "io", message = "no nginx found: on Debian, apt-get install nginx libnginx-mod-http-lua"
                  .. " (or set QIWI_FAKE_NGINX)" }
  end
  local token, wallet = o.token, o.wallet or "79111234567"
  if o.state then
    local text = read_file(o.state)
    if text then
      -- the saved fake's credentials, so that a client configured before still works
      token = token or text:match('%["token"%] = "(%x+)"')
      wallet = text:match('%["wallet"%] = "(%d+)"') or wallet
    end
  end
  if token and not token:find("^[%w%-_]+$") then
    return nil, { kind = "usage", message = "QIWI_FAKE_TOKEN: letters, digits, - and _ only" }
  end
  token = token or random_hex(16)
  local tmp = (os.getenv("TMPDIR") or "/tmp"):gsub("/$", "")
  local p = io.popen("mktemp -d " .. shq(tmp .. "/qiwi-fake.XXXXXXXX"))
  local prefix = p and p:read("*l")
  if p then p:close() end
  if not prefix or prefix == "" then return nil, { kind = "io", message = "mktemp -d failed in " .. tmp } end
  exec("mkdir -p " .. shq(prefix .. "/tmp"))
  local pki, perr = make_pki(prefix)
  if not pki then
    exec("rm -rf " .. shq(prefix))
    return nil, { kind = "io", message = perr }
  end
  local state = o.state
  if state and state:sub(1, 1) ~= "/" then
    local q = io.popen("pwd")
    state = (q and q:read("*l") or ".") .. "/" .. state
    if q then q:close() end
  end
  local cfg = { prefix = prefix, nginx = nginx, root = lua_root(), token = token, wallet = wallet,
                state = state, pki = pki }
  local why
  for _ = 1, port and 1 or 10 do
    cfg.port = port or free_port()
    local pipe, pid, done = up(cfg)
    if pipe then
      return { base_url = "https://127.0.0.1:" .. cfg.port, token = token, wallet = wallet, ca_file = pki.ca,
               pid = pid, prefix = prefix, pipe = pipe, done = done, port = cfg.port }
    end
    local taken = done
    why = pid
    if not taken then break end
  end
  exec("rm -rf " .. shq(prefix))
  return nil, { kind = "io", message = "nginx did not start: " .. tostring(why) }
end

-- Blocks until nginx has ended; true when it ended well (exit status 0).
function _M.wait(info)
  local line = info.done:read("*l")
  return line == "exit 0"
end

function _M.log_tail(info)
  return ((read_file(info.prefix .. "/error.log") or "(no log)"):sub(-300):gsub("%s+", " "))
end

-- After nginx ended (wait returned): the shell is reaped, the directory removed.
function _M.cleanup(info)
  info.pipe:close()
  info.done:close()
  exec("rm -rf " .. shq(info.prefix))
end

-- Stops the fake started by start(): nginx is told to stop, and this
-- returns once it has ended and its directory is gone.
function _M.stop(info)
  if alive(info.pid) then
    info.pipe:write("stop\n")
    info.pipe:flush()
  end
  _M.wait(info)
  _M.cleanup(info)
end

--------------------------------------------------------------------------
-- Inside nginx

local config

-- A few payments on the 3rd, 10th, 17th and 24th of each of the last five
-- months besides the fake's usual last day, so that the history has pages
-- and `qiwi summary` has months to draw.
local function seed_months(f)
  local now = os.date("*t")
  for back = 1, 5 do
    local idx = now.year * 12 + now.month - 1 - back
    for i, day in ipairs { 3, 10, 17, 24 } do
      local kind = (i == 1 or (i == 3 and back % 2 == 0)) and "IN" or "OUT"
      local whole = kind == "IN" and 9000 + (back * 2713) % 6000 or 800 + (back * 1327 + i * 389) % 4000
      f:add_payment {
        type = kind, amount = format("%d.%02d", whole, (back * 37 + i * 11) % 100),
        date = os.time { year = math.floor(idx / 12), month = idx % 12 + 1, day = day, hour = 12 },
        account = "+7916" .. format("%07d", back * 1000 + i), update_balance = false,
        comment = kind == "IN" and "top-up" or ("order " .. back .. "-" .. i),
      }
    end
  end
end

-- From init_by_lua: the instance qiwi.fake.nginx serves gets our token and
-- wallet, and the saved state when there is one.
function _M.nginx_init(c)
  config = c
  local f = require("qiwi.fake.nginx").instance()
  f.opts.token, f.opts.wallet = c.token, c.wallet
  f.opts.public_hooks_only = false -- tests register hooks on 127.0.0.1
  f:reset()
  local text = c.state and read_file(c.state)
  if text then
    local ok, err = require("qiwi.fake.state").load(f, text)
    if not ok then error("qiwi fake: cannot read the state file " .. c.state .. ": " .. err, 0) end
  else
    seed_months(f)
  end
end

-- From log_by_lua: after every request that may have changed the state,
-- the state file is replaced whole (written aside, then renamed).
function _M.nginx_after()
  if not (config and config.state) or ngx.req.get_method() == "GET" then return end
  local f = require("qiwi.fake.nginx").instance()
  local tmp = config.state .. ".tmp"
  local ok, err = write_file(tmp, require("qiwi.fake.state").dump(f))
  if ok then ok, err = os.rename(tmp, config.state) end
  if not ok then ngx.log(ngx.ERR, "qiwi fake: cannot save the state to ", config.state, ": ", tostring(err)) end
end

return _M
