-- Small process, file, port and time helpers of the specs and their support
-- files, written once here:
--
--   local util = require "util"          -- this file (spec/support/util.lua)
--   local util = require("pki").util     -- the same table
--
-- Nothing here needs busted: the harnesses (https_fake.lua, redis.lua, ...)
-- use it as well.
local util = {}

---------------------------------------------------------------------------
-- Shell, files

function util.shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute returns a raw wait status in Lua 5.1/LuaJIT and (ok, how,
-- code) later; both become (ok, exit code).
function util.exec(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then
    return a == 0, a > 255 and math.floor(a / 256) or a
  end
  return a == true, c
end

-- What a shell command prints on its stdout, as one string.
function util.output(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

-- The lines a shell command prints on its stdout, as a list.
function util.lines(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

function util.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function util.write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then error("cannot write " .. path .. ": " .. tostring(err), 2) end
  f:write(data)
  f:close()
end

-- Atomic replace: readers see the old or the new content, never a prefix.
function util.write_atomic(path, data)
  local tmp = path .. ".tmp-" .. util.random_hex(6)
  util.write_file(tmp, data)
  local ok, err = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    error("cannot rename " .. tmp .. ": " .. tostring(err), 2)
  end
end

function util.nonempty(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local size = f:seek("end")
  f:close()
  return size ~= nil and size > 0
end

-- /dev/urandom rather than math.random: LuaJIT does not seed math.random,
-- and two processes started in the same second must not pick the same names.
function util.random_hex(nbytes)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(nbytes)
  if f then f:close() end
  if not raw or #raw < nbytes then
    raw = tostring(os.time()) .. tostring(os.clock()) .. tostring({})
  end
  return (raw:sub(1, nbytes):gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function util.random_int(lo, hi)
  local n = tonumber(util.random_hex(4), 16)
  return lo + n % (hi - lo + 1)
end

-- A name unique to this run: prefix, a counter, random hex.
local fresh_seq = 0
function util.fresh(prefix)
  fresh_seq = fresh_seq + 1
  return prefix .. fresh_seq .. "-" .. util.random_hex(3)
end

local cwd_cache
function util.cwd()
  if not cwd_cache then
    local p = io.popen("pwd")
    cwd_cache = p and p:read("*l")
    if p then p:close() end
    cwd_cache = cwd_cache or os.getenv("PWD") or "."
  end
  return cwd_cache
end

function util.abspath(p)
  if p:sub(1, 1) == "/" then return p end
  p = p:gsub("^%./", "")
  return util.cwd() .. "/" .. p
end

-- The repository root, found from this file's own path so that specs work
-- whatever the current directory is.
function util.repo_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/spec/support/[^/]*$")
  if not dir then return util.cwd() end
  if dir == "" then dir = "." end
  return (util.abspath(dir):gsub("/%.$", ""))
end

function util.mkdir_p(path)
  local ok = util.exec("mkdir -p " .. util.shq(path))
  if not ok then error("cannot create directory " .. path, 2) end
end

-- A new directory /tmp/lua-qiwi-<name>.XXXXXXXX (mktemp -d, mode 0700).
function util.tmpdir(name)
  local prefix = "/tmp/lua-qiwi-" .. name .. "."
  local p = io.popen("mktemp -d " .. util.shq(prefix .. "XXXXXXXX"))
  local dir = p and p:read("*l")
  if p then p:close() end
  if not dir or dir:sub(1, #prefix) ~= prefix or #dir <= #prefix then
    error("mktemp failed for " .. prefix .. "XXXXXXXX", 2)
  end
  return dir
end

---------------------------------------------------------------------------
-- nginx (Debian's, with libnginx-mod-http-lua) as the specs run it

util.NGINX = os.getenv("QIWI_TEST_NGINX") or "/usr/sbin/nginx"
util.NGINX_MODULES = os.getenv("QIWI_TEST_NGINX_MODULES") or "/usr/lib/nginx/modules"
-- The core nginx's LuaJIT loads: build/luajit's, or another build's.
util.NGINX_CPATH = os.getenv("QIWI_TEST_NGINX_CPATH") or (util.repo_root() .. "/build/luajit/?.so")

-- build/luajit/qiwi/core.so, which nginx's LuaJIT loads, must be there.
function util.need_luajit_core()
  local so = io.open(util.repo_root() .. "/build/luajit/qiwi/core.so", "rb")
  assert(so, "build/luajit/qiwi/core.so is missing: nginx's LuaJIT needs it (make all LUA=luajit)")
  so:close()
end

---------------------------------------------------------------------------
-- Time

local ok_system, system = pcall(require, "system")
if not ok_system then system = nil end

function util.now()
  if system and system.monotime then return system.monotime() end
  if system and system.gettime then return system.gettime() end
  return os.time()
end

function util.sleep(s)
  if system and system.sleep then return system.sleep(s) end
  util.exec("sleep " .. string.format("%.3f", s))
end

-- Calls fn until it returns a true value, which is returned; nil once
-- `timeout` seconds have passed. Between calls it sleeps `step` seconds
-- (0.05 by default), or, given `first`, first that long and then twice as
-- long each time up to `step`.
function util.wait_until(timeout, fn, step, first)
  step = step or 0.05
  local delay = first or step
  local deadline = util.now() + timeout
  while true do
    local v = fn()
    if v then return v end
    if util.now() >= deadline then return nil end
    util.sleep(delay)
    delay = math.min(delay * 2, step)
  end
end

---------------------------------------------------------------------------
-- Processes, via /proc where possible: no fork per poll, and a zombie (left
-- behind when PID 1 does not reap) counts as gone.

util.have_proc = util.read_file("/proc/self/stat") ~= nil

-- Fields after "(comm)" of /proc/<pid>/stat (state, ppid, ...); comm itself
-- may hold spaces.
function util.proc_stat(pid)
  local s = util.read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("^%d+ %(.*%) (.*)$")
  if not rest then return nil end
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  return fields
end

function util.alive(pid)
  if not pid then return false end
  if util.have_proc then
    local st = util.proc_stat(pid)
    return st ~= nil and st[1] ~= "Z" and st[1] ~= "X"
  end
  return (util.exec("kill -0 " .. pid .. " 2>/dev/null"))
end

-- The interpreter running this spec (lua5.x, luajit, or make sanitize's
-- host), for child processes: the first of lua.c's negative arg entries.
function util.interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  return arg and arg[i] or (jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+"))
end

-- A server of the specs (nginx, redis-server) runs in the foreground under
-- a shell held through a popen pipe. Why not as a daemon: a daemon is
-- re-parented to PID 1, and where PID 1 does not reap (many containers)
-- every stopped server would stay behind as a zombie. Here the shell reaps
-- the server, pclose reaps the shell, and if this Lua process dies however
-- abruptly, the kernel closes the pipe, `read` returns and the shell stops
-- the server. A plain EOF (no "stop" line first, see util.stop_pipe) means
-- the owner died: the shell removes the server's directory as well, since
-- nobody else will.
local SUPERVISOR = [[
%s %s%s 2>&1 </dev/null &
%s
cmd=
read cmd || :
# what the shell says of its job from here on ("Terminated") is no output of the spec
exec 2>/dev/null
kill -TERM $!
wait $!
[ "$cmd" = stop ] || rm -rf %s
]]

-- Runs the shell command `cmd` so supervised; returns the pipe. o: log (the
-- file for its stdout and stderr, added to with o.append), dir (removed
-- when the owner dies), pid_file (gets "<pid>\n", or "<pid> <shell's
-- pid>\n" with o.shell_pid).
function util.supervise(cmd, o)
  local pid = o.pid_file and ("echo $!" .. (o.shell_pid and " $$" or "") .. " >" .. util.shq(o.pid_file)) or ":"
  return io.popen(SUPERVISOR:format(cmd, o.append and ">>" or ">", util.shq(o.log), pid, util.shq(o.dir)), "w")
end

-- A value that calls fn when it is collected (keep it where the thing to
-- clean up is kept). Lua 5.1/LuaJIT run __gc only on userdata; 5.2+ on
-- tables too.
function util.gc_sentinel(fn)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

-- Ends a process held through a popen pipe by a supervising shell that
-- waits for a line on its stdin: says "stop" (a shell that is gone already
-- makes the write fail, which is fine) and closes the pipe, which reaps it.
function util.stop_pipe(pipe)
  pcall(function()
    pipe:write("stop\n")
    pipe:flush()
  end)
  pipe:close()
end

-- Prepended to the source of a port_child: port_ready(port) publishes the
-- port the child listens on, whole (a temporary file renamed into place).
local PORT_CHILD = [[
local function port_ready(port)
  local file = arg[#arg]
  local out = assert(io.open(file .. ".tmp", "w"))
  out:write(port, "\n")
  out:close()
  os.rename(file .. ".tmp", file)
end
]]

-- A LuaJIT child (FFI sockets, whatever Lua runs the specs) running
-- `source` with the arguments `args` and then the name of a file, where it
-- calls port_ready(port) once it listens. It is held through a popen pipe:
-- stop(), a line on it, closing it, or this process dying ends the child.
-- Returns {port =, stop = function}, or nil when no port came within 5 s.
function util.port_child(tag, source, args)
  local file = (os.getenv("TMPDIR") or "/tmp") .. "/lua-qiwi-" .. tag .. "." .. util.random_hex(6)
  local script = file .. ".lua"
  util.write_file(script, PORT_CHILD .. source)
  local words = {}
  for i, a in ipairs(args or {}) do words[i] = util.shq(a) end
  words[#words + 1] = util.shq(file)
  local pipe = io.popen("exec luajit " .. util.shq(script) .. " " .. table.concat(words, " ")
    .. " >/dev/null 2>&1", "w")
  local port = util.wait_until(5, function()
    return tonumber((util.read_file(file) or ""):match("^(%d+)\n"))
  end, 0.01)
  os.remove(file)
  os.remove(script)
  if not port then
    pipe:close()
    return nil
  end
  local child = { port = port }
  function child.stop()
    if pipe then
      pipe:write("\n")
      pipe:close()
      pipe = nil
    end
  end
  return child
end

---------------------------------------------------------------------------
-- Ports

util.PORT_MIN, util.PORT_MAX = 20000, 60999

-- Every local port with a socket on it, v4 or v6, as a set: proto "tcp"
-- (the default) or "udp".
function util.ports_in_use(proto)
  proto = proto or "tcp"
  local used = {}
  for _, f in ipairs { "/proc/net/" .. proto, "/proc/net/" .. proto .. "6" } do
    local s = util.read_file(f)
    if s then
      for port in s:gmatch("\n%s*%d+: %x+:(%x+) ") do used[tonumber(port, 16)] = true end
    end
  end
  return used
end

-- A random port in PORT_MIN..PORT_MAX that is not in the set `used` (by
-- default the TCP ports in use now), then added to it.
function util.free_port(used)
  used = used or util.ports_in_use()
  local port
  repeat port = util.random_int(util.PORT_MIN, util.PORT_MAX) until not used[port]
  used[port] = true
  return port
end

-- Starts something on a free TCP port: start(port) returns a true value,
-- or nil (or false) and what went wrong. A failure that says "Address already in use" (the
-- port was taken meanwhile) is tried again on another port, `tries` times
-- in all. pick(used) chooses the port (util.free_port by default). Returns
-- start's value, or nil, the last failure and true when that was not a
-- taken port (false: no free port after `tries`).
function util.on_free_port(tries, start, pick)
  local why
  for _ = 1, tries do
    local v, err = start((pick or util.free_port)(util.ports_in_use()))
    if v then return v end
    why = tostring(err)
    if not why:find("Address already in use", 1, true) then return nil, why, true end
  end
  return nil, why, false
end

---------------------------------------------------------------------------
-- Tables, requests, queries

function util.count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- How many connections a fake's request log shows.
function util.connections(requests)
  local conns = {}
  for _, r in ipairs(requests) do conns[r.connection] = true end
  return util.count(conns)
end

-- "k=v&k=v" of a table, sorted, the values as they are (not escaped).
function util.query(args)
  local q = {}
  for k, v in pairs(args) do q[#q + 1] = k .. "=" .. v end
  table.sort(q)
  return table.concat(q, "&")
end

-- Events (tables {b =, a =}) each known to have happened between its times
-- b and a: the shortest time that any limit + 1 of them in a row are known
-- to fit in, and the index of the first of those (math.huge, nil when there
-- are not limit + 1). Shorter than a rate limit's window proves the limit
-- broken. Sorts events by b.
function util.shortest_span(events, limit)
  table.sort(events, function(x, y) return x.b < y.b end)
  local span, from = math.huge, nil
  for i = 1, #events - limit do
    local last = 0
    for j = i, i + limit do last = math.max(last, events[j].a) end
    if last - events[i].b < span then span, from = last - events[i].b, i end
  end
  return span, from
end

-- true, or false and why: whether no limit + 1 of the events are proven to
-- fall within one window (see shortest_span).
function util.check_windows(events, limit, window)
  local span, from = util.shortest_span(events, limit)
  if span < window then
    return false, ("%d events within %.4f s (window %.3f s) from event %d"):format(limit + 1, span, window, from)
  end
  return true
end

-- The curl command's status (0: no answer) and body for one request:
-- `words` are curl's other arguments, shell-quoted already where needed,
-- the URL among them; the body goes through the file `out`.
function util.curl(words, out)
  os.remove(out)
  local p = io.popen("curl -sS --max-time 10 -o " .. util.shq(out) .. " -w '%{http_code}' "
    .. table.concat(words, " ") .. " 2>/dev/null </dev/null")
  local code = p:read("*a")
  p:close()
  return tonumber(code) or 0, util.read_file(out) or ""
end

return util
