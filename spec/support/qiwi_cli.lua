-- The `qiwi` command as the CLI specs run it: a real process, either the
-- checkout's bin/qiwi under the interpreter running the specs (with this
-- process's module paths), or, when QIWI_CLI names one, an installed command
-- (the rock step of make test sets it to the temporary tree's bin/qiwi).
--
-- Also `qiwi fake` as a real process, and its control endpoints through the
-- curl command (so that the specs check our client with tools of others).
local util = require "util"

local shq = util.shq
local _M = {}

-- Relative entries of a search path made absolute, so that a child started
-- in another directory finds the same modules.
local function absolute(path)
  local out = {}
  for entry in path:gmatch("[^;]+") do
    if entry:sub(1, 1) ~= "/" and entry:sub(1, 1) ~= "?" and entry ~= "" then
      entry = util.cwd() .. "/" .. entry:gsub("^%./", "")
    end
    out[#out + 1] = entry
  end
  return table.concat(out, ";") .. ";;"
end

local INSTALLED = os.getenv("QIWI_CLI")

-- The shell words that start the interpreter running the specs with this
-- process's module paths (made absolute), whatever the child's directory.
function _M.lua()
  -- LUA_PATH_5_x would win over LUA_PATH: unset so ours counts
  return "env -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4 -u LUA_CPATH_5_2 -u LUA_CPATH_5_3 -u LUA_CPATH_5_4 "
    .. "LUA_PATH=" .. shq(absolute(package.path)) .. " LUA_CPATH=" .. shq(absolute(package.cpath)) .. " "
    .. shq(_M.interpreter())
end

-- The interpreter running the specs, as a child in another directory finds
-- it: a relative path (the sanitizers' build/asan/lua) made absolute.
function _M.interpreter()
  local lua = util.interpreter()
  if lua:find("/", 1, true) and lua:sub(1, 1) ~= "/" then lua = util.cwd() .. "/" .. lua:gsub("^%./", "") end
  return lua
end

-- The shell words that start the command.
function _M.command()
  if INSTALLED and INSTALLED ~= "" then return shq(INSTALLED) end
  return _M.lua() .. " " .. shq(util.repo_root() .. "/bin/qiwi")
end

-- The shell words before the command: `env` without the QIWI_* variables
-- of this process, then those of `vars` (false: left unset); and the
-- quoted arguments.
local function env_and_words(vars, argv)
  local env = { "env" }
  for _, name in ipairs { "QIWI_TOKEN", "QIWI_WALLET", "QIWI_BASE_URL", "QIWI_CA_FILE", "QIWI_PROXY", "QIWI_WEBHOOK_KEY" } do
    env[#env + 1] = "-u " .. name
  end
  for k, v in pairs(vars or {}) do
    if v ~= false then env[#env + 1] = shq(k .. "=" .. tostring(v)) end
  end
  local words = {}
  for i, a in ipairs(argv) do words[i] = shq(a) end
  return table.concat(env, " "), table.concat(words, " ")
end

-- The exit status a command line ending in `; echo $?` printed.
local function status_of(cmd)
  return tonumber(util.output(cmd):match("(%d+)%s*$"))
end

-- env: table of variables for the child (false: unset it); the child gets
-- none of the QIWI_* variables of this process unless given. stdin: text
-- fed on its stdin (default: none, /dev/null). dir: its working directory.
-- command: other shell words to start instead of the qiwi command.
-- Returns {code =, out =, err =}.
function _M.run(argv, o)
  o = o or {}
  local dir = util.tmpdir("cli")
  local env, words = env_and_words(o.env, argv)
  local input = "/dev/null"
  if o.stdin then
    input = dir .. "/stdin"
    util.write_file(input, o.stdin)
  end
  local cmd = ("cd %s && %s %s %s >%s 2>%s <%s; echo $?"):format(shq(o.dir or dir), env,
    o.command or _M.command(), words, shq(dir .. "/out"), shq(dir .. "/err"), shq(input))
  local code = status_of(cmd)
  local r = { code = code, out = util.read_file(dir .. "/out") or "", err = util.read_file(dir .. "/err") or "" }
  util.exec("rm -rf " .. shq(dir))
  return r
end

-- The command under a pseudo-terminal (util-linux `script`): stdin, stdout
-- and stderr are the terminal, except what `redirect` sends elsewhere (a
-- shell redirection, e.g. ">out.csv"). `typed` is what the user types.
-- Returns {code =, screen =} (screen: everything the terminal showed).
function _M.run_tty(argv, o)
  o = o or {}
  local dir = util.tmpdir("tty")
  local env, words = env_and_words(o.env, argv)
  local inner = ("cd %s && %s %s %s %s"):format(shq(o.dir or dir), env, _M.command(), words, o.redirect or "")
  util.write_file(dir .. "/typed", o.typed or "")
  -- script's own stdin feeds the terminal; -e: its exit status is the command's
  local cmd = ("script -qec %s %s <%s >%s 2>&1; echo $?"):format(shq(inner), shq(dir .. "/typescript"),
    shq(dir .. "/typed"), shq(dir .. "/screen"))
  local code = status_of(cmd)
  local r = { code = code, screen = util.read_file(dir .. "/screen") or "" }
  util.exec("rm -rf " .. shq(dir))
  return r
end

---------------------------------------------------------------------------
-- `qiwi fake` as a process

local Fake = {}
Fake.__index = Fake

-- Starts `qiwi fake [args]`; returns once it printed its configuration.
function _M.start_fake(args, o)
  o = o or {}
  local dir = util.tmpdir("fakeproc")
  local words = {}
  for i, a in ipairs(args or {}) do words[i] = shq(a) end
  local env = {}
  for k, v in pairs(o.env or {}) do env[#env + 1] = shq(k .. "=" .. tostring(v)) end
  -- exec: the pid written is the one of the command itself
  local cmd = ("cd %s && echo $$ >pid && exec env %s %s fake %s 2>err"):format(shq(dir), table.concat(env, " "),
    _M.command(), table.concat(words, " "))
  local pipe = assert(io.popen(cmd, "r"))
  local self = setmetatable({ pipe = pipe, dir = dir, env = {} }, Fake)
  for _ = 1, 4 do
    local line = pipe:read("*l")
    if not line then break end
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then self.env[k] = v end
  end
  self.pid = tonumber(util.read_file(dir .. "/pid"))
  self.err = util.read_file(dir .. "/err") or ""
  if not self.env.QIWI_BASE_URL then
    pipe:close()
    return nil, "qiwi fake printed no base URL; stderr: " .. self.err
  end
  self.base_url, self.token, self.wallet, self.ca_file =
    self.env.QIWI_BASE_URL, self.env.QIWI_TOKEN, self.env.QIWI_WALLET, self.env.QIWI_CA_FILE
  self.port = tonumber(self.base_url:match(":(%d+)$"))
  self.prefix = self.ca_file:match("^(.*)/[^/]+$")
  return self
end

-- status, body of a request through the curl command, verified against the
-- fake's CA. Headers: a list of "Name: value".
function Fake:curl(method, path, body, headers)
  local out = self.dir .. "/curl.out"
  os.remove(out)
  local cmd = { "curl -sS --max-time 10 --cacert", shq(self.ca_file), "-X", method, "-o", shq(out),
                "-w '%{http_code}'" }
  for _, h in ipairs(headers or {}) do cmd[#cmd + 1] = "-H " .. shq(h) end
  if body then
    util.write_file(self.dir .. "/curl.in", body)
    cmd[#cmd + 1] = "-H 'Content-Type: application/json' --data-binary @" .. shq(self.dir .. "/curl.in")
  end
  cmd[#cmd + 1] = shq(self.base_url .. path) .. " 2>/dev/null </dev/null"
  local p = assert(io.popen(table.concat(cmd, " ")))
  local code = tonumber(p:read("*a")) or 0
  p:close()
  return code, util.read_file(out) or ""
end

-- A helper method of the fake inside nginx (POST /__fake/call); `args_json`
-- is the JSON text of its arguments. Returns the JSON text of the answer.
function Fake:call(method, args_json)
  local status, body = self:curl("POST", "/__fake/call",
    '{"method":"' .. method .. '","args":' .. (args_json or "[]") .. "}")
  assert(status == 200, "/__fake/call " .. method .. " -> " .. status .. " " .. body)
  return body
end

-- The environment a `qiwi` command needs to talk to this fake.
function Fake:client_env(more)
  local env = { QIWI_TOKEN = self.token, QIWI_WALLET = self.wallet, QIWI_BASE_URL = self.base_url,
                QIWI_CA_FILE = self.ca_file }
  for k, v in pairs(more or {}) do env[k] = v end
  return env
end

function Fake:running()
  return util.alive(self.pid)
end

-- SIGTERM, then waits for the process to end (pclose reaps it).
function Fake:stop()
  if self.stopped then return end
  self.stopped = true
  if util.alive(self.pid) then util.exec("kill -TERM " .. self.pid) end
  self.pipe:close()
  util.exec("rm -rf " .. shq(self.dir))
end

return _M
