-- Child processes for the specs that need real ones (shared_state_spec.lua):
-- small Lua scripts run by the interpreter that runs the spec, from the
-- repository root, with the repository's lua/ and build/ on their paths.
--
--   local children = require "children"
--   local dir = children.tmpdir("tag")            -- removed by children.cleanup()
--   local script = children.script(dir, "pay", SOURCE)
--   local c = children.spawn { script = script, args = { ... },
--                              unshare = true,     -- pid 1 of its own pid namespace
--                              prelude = "mount --bind /dev/null /dev/urandom" }
--   c:pid()        -- the first line the child printed, when it prints "PID <n>"
--   c:wait()       -- everything it printed (stdout and stderr), once it exited
--   c:kill()       -- SIGKILL (children spawned without unshare only)
--
-- Every child is held through a popen pipe, so that waiting for it reaps it
-- (no zombies where PID 1 does not reap), and its output comes back whole.
-- A barrier lets children that start at different speeds begin at once:
-- each writes <dir>/ready-<name> when it is ready; children.go(dir, n, lead)
-- waits for n of them and writes <dir>/go holding a wall-clock start time
-- `lead` seconds ahead, which the children wait for (see PRELUDE).
local core = require "qiwi.core"
local util = require("pki").util

local shq = util.shq

local _M = {}

_M.wall = core.fs_time or os.time

-- The interpreter running this spec (lua5.x, luajit, or a sanitizer's
-- host): the first of lua.c's negative arg entries.
function _M.interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  return arg and arg[i] or (jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+"))
end

local REPO = util.repo_root()
_M.repo = REPO

-- The paths a child gets: the repository's modules, and the core built for
-- the interpreter of this spec (busted's own cpath names it).
function _M.paths()
  local lpath = REPO .. "/lua/?.lua;" .. REPO .. "/lua/?/init.lua;" .. package.path
  local cpath = package.cpath
  if not cpath:find("build/", 1, true) then cpath = REPO .. "/build/lua5.4/?.so;" .. cpath end
  return lpath, cpath
end

local dirs = {}

function _M.tmpdir(tag)
  local p = io.popen("mktemp -d /tmp/lua-qiwi-shared-" .. tag .. ".XXXXXXXX")
  local d = p:read("*l")
  p:close()
  assert(d and d:match("^/tmp/lua%-qiwi%-shared%-"), "mktemp failed")
  dirs[#dirs + 1] = d
  return d
end

function _M.cleanup()
  for _, d in ipairs(dirs) do util.exec("rm -rf " .. shq(d)) end
  dirs = {}
end

-- What every child script starts with: its paths, and the barrier.
--   arg[1], arg[2]  package.path, package.cpath (given by spawn)
--   ready_and_wait(dir, name): writes the ready file, waits for the go file
--   and then for the start time it holds; returns that time.
local PRELUDE = [[
package.path, package.cpath = arg[1], arg[2]
local core = require "qiwi.core"
local wall = core.fs_time
local function ready_and_wait(dir, name)
  local f = assert(io.open(dir .. "/ready-" .. name, "w"))
  f:write("1")
  f:close()
  local start
  local give_up = wall() + 120
  while not start do
    local g = io.open(dir .. "/go", "r")
    if g then
      start = tonumber(g:read("*a"))
      g:close()
    end
    if not start then
      if wall() > give_up then error("no go file in " .. dir) end
      core.sleep(0.002)
    end
  end
  while true do
    local left = start - wall()
    if left <= 0 then break end
    if left > 0.002 then core.sleep(left - 0.001) end
  end
  return start
end
local ARGS = { select(3, ...) }
]]

-- The script's own code runs in a function: an error in it writes
-- <dir>/failed-* (which children.go sees at once) and exits 1. The code
-- uses ARGS, not `...`.
local EPILOGUE = [[

end, debug.traceback)
if not ok then
  local f = io.open(BARRIER .. "/failed-" .. string.format("%d-%.0f", core.getpid(), os.clock() * 1e6), "w")
  if f then
    f:write(tostring(err))
    f:close()
  end
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
]]

function _M.script(dir, name, source)
  local path = dir .. "/" .. name .. ".lua"
  util.write_file(path, PRELUDE .. ("local BARRIER = %q\nlocal ok, err = xpcall(function()\n"):format(dir)
    .. source .. EPILOGUE)
  return path
end

local Child = {}
Child.__index = Child

-- o: script, args (list, each made a string), unshare (true: run as pid 1 of
-- a pid and mount namespace of its own), prelude (a shell command run first,
-- inside those namespaces).
function _M.spawn(o)
  local lpath, cpath = _M.paths()
  local parts = { shq(_M.interpreter()), shq(o.script), shq(lpath), shq(cpath) }
  for _, a in ipairs(o.args or {}) do parts[#parts + 1] = shq(tostring(a)) end
  local cmd = table.concat(parts, " ")
  if o.prelude then cmd = o.prelude .. " && exec " .. cmd else cmd = "exec " .. cmd end
  if o.unshare then
    cmd = "exec unshare --pid --fork --mount-proc sh -c " .. shq(cmd)
  end
  local pipe = assert(io.popen("cd " .. shq(REPO) .. " && " .. cmd .. " 2>&1", "r"))
  return setmetatable({ pipe = pipe, cmd = cmd, out = {}, unshared = o.unshare }, Child)
end

-- The pid the child printed on its first line ("PID <n>").
function Child:pid()
  if self._pid then return self._pid end
  local line = self.pipe:read("*l")
  if line then self.out[#self.out + 1] = line .. "\n" end
  self._pid = line and tonumber(line:match("^PID (%d+)"))
  return self._pid
end

function Child:wait()
  if self.output then return self.output end
  local rest = self.pipe:read("*a") or ""
  self.pipe:close()
  self.output = table.concat(self.out) .. rest
  return self.output
end

function Child:kill()
  assert(not self.unshared, "kill needs the child's own pid")
  local pid = assert(self:pid(), "the child printed no PID line")
  return util.exec("kill -9 " .. pid)
end

-- Waits for n ready files in dir, then writes the start time (lead seconds
-- ahead). Returns the start time, or nil and the count seen after timeout
-- or once a child failed (the go file is written then as well, so that no
-- child waits on).
function _M.go(dir, n, lead, timeout)
  local deadline = _M.wall() + (timeout or 60)
  local missing
  while true do
    local p = io.popen("ls " .. shq(dir) .. " 2>/dev/null")
    local count, failed = 0, false
    for l in p:lines() do
      if l:match("^ready%-") then count = count + 1 end
      if l:match("^failed%-") then failed = true end
    end
    p:close()
    if count >= n then break end
    if failed then
      missing = count
      break
    end
    if _M.wall() > deadline then
      missing = count
      break
    end
    core.sleep(0.02)
  end
  local start = _M.wall() + (lead or 0.3)
  util.write_atomic(dir .. "/go", string.format("%.6f", start))
  if missing then return nil, missing end
  return start
end

return _M
