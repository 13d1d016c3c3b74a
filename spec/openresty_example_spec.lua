-- examples/openresty as a new user runs it: the one command of its README,
-- `make openresty-example`, on two free loopback ports and a temporary
-- prefix, against the fake QIWI that the same nginx serves over plain HTTP.
-- The command runs under `timeout` in a shell held through a popen pipe, so
-- that however this process ends, nginx does not outlive it.
--
-- Tagged "nginx": `make test` runs it once, with the other nginx specs.
local qiwi = require "qiwi"
local util = require("pki").util

local shq = util.shq
local REPO = util.repo_root()
local NGINX = util.NGINX
-- Generous: the command may have to build build/luajit/qiwi/core.so first.
local START_SECONDS = 90
local TIMEOUT_SECONDS = 300

local alive, wait_until = util.alive, util.wait_until

local function parent_of(pid)
  local st = util.proc_stat(pid)
  return st and tonumber(st[2])
end

-- The one command, supervised: the shell records timeout's pid, then waits
-- for a line (or EOF) on its stdin and stops the whole command.
local SUPERVISOR = [[
cd %s || exit 1
EXAMPLE_PORT=%d EXAMPLE_FAKE_PORT=%d EXAMPLE_PREFIX=%s NGINX=%s \
  timeout -s TERM %d make --no-print-directory openresty-example >%s 2>&1 </dev/null &
echo $! >%s
read cmd || :
exec 2>/dev/null
kill -TERM $!
wait $!
]]

describe("examples/openresty run by `make openresty-example` #nginx", function()
  local prefix, port, fake_port, pipe, job, nginx_pid

  local function output()
    return util.read_file(prefix .. "/run.out") or ""
  end

  local function error_log()
    return util.read_file(prefix .. "/logs/error.log") or ""
  end

  local function diagnostics()
    return "\n--- output of the command ---\n" .. output() .. "\n--- logs/error.log ---\n" .. error_log()
  end

  -- status (0 for no answer), body
  local function http(method, path, body_file)
    local cmd = { "-X", method }
    if body_file then cmd[#cmd + 1] = "--data-binary @" .. shq(body_file) end
    cmd[#cmd + 1] = shq("http://127.0.0.1:" .. port .. path)
    return util.curl(cmd, prefix .. "/curl.out")
  end

  local function stop()
    if pipe then
      util.stop_pipe(pipe)
      pipe = nil
    end
  end

  setup(function()
    prefix = util.tmpdir("example-spec")
    local used = util.ports_in_use()
    port, fake_port = util.free_port(used), util.free_port(used)
    pipe = io.popen(SUPERVISOR:format(shq(REPO), port, fake_port, shq(prefix), shq(NGINX),
      TIMEOUT_SECONDS, shq(prefix .. "/run.out"), shq(prefix .. "/job.pid")), "w")
    job = wait_until(5, function() return tonumber(util.read_file(prefix .. "/job.pid") or "") end)
    assert(job, "the command did not start")
    local up = wait_until(START_SECONDS, function()
      if not alive(job) then return "exited" end
      return http("GET", "/balance") ~= 0 and "up"
    end)
    assert(up == "up", "the example did not come up within " .. START_SECONDS .. " s" .. diagnostics())
    nginx_pid = tonumber(util.read_file(prefix .. "/logs/nginx.pid") or "")
  end)

  teardown(function()
    stop()
    if prefix then util.exec("rm -rf " .. shq(prefix)) end
  end)

  it("answers GET /balance with the fake's balance, through the example's handlers", function()
    local status, body = http("GET", "/balance")
    assert.equal(200, status, body .. diagnostics())
    assert.same({ balances = { qw_wallet_rub = { amount = 1000, currency = 643 } } }, qiwi.json.decode(body))
  end)

  it("logs its success line at nginx's default error_log level", function()
    local conf = assert(util.read_file(prefix .. "/nginx.conf"))
    -- the error_log directives give no level: nginx's default, error
    local logs = 0
    for line in conf:gmatch("[^\n]+") do
      local args = line:match("^%s*error_log%s+(.-);")
      if args then
        logs = logs + 1
        assert.not_matches("%s", args, "error_log with a level: " .. line)
      end
    end
    assert.is_true(logs >= 1)
    local ready = "shop.qiwi: ready, QIWI at http://127.0.0.1:" .. fake_port .. " answered for wallet *******4567"
    assert.truthy(wait_until(10, function() return error_log():find(ready, 1, true) end),
      "no success line" .. diagnostics())
    -- and on the terminal of whoever ran the command
    assert.truthy(output():find(ready, 1, true), diagnostics())
    assert.not_matches("[error]", error_log(), 1, true)
  end)

  it("tells on start what it runs and where", function()
    local out = output()
    assert.matches("curl http://127.0.0.1:" .. port .. "/balance", out, 1, true)
    assert.matches("prefix     " .. prefix, out, 1, true)
  end)

  it("takes QIWI's signed notification and logs the payment at the default level", function()
    local status = http("POST", "/qiwi/webhook", REPO .. "/examples/openresty/notification.json")
    assert.equal(200, status, diagnostics())
    assert.truthy(wait_until(5, function()
      return error_log():find("shop.qiwi: payment 13353941550 SUCCESS", 1, true)
    end), "no payment line" .. diagnostics())
  end)

  it("keeps pid, logs and temp files in the prefix, with nginx in the foreground", function()
    local conf = assert(util.read_file(prefix .. "/nginx.conf"))
    assert.matches("\ndaemon off;\n", conf, 1, true)
    assert.matches("\nmaster_process off;\n", conf, 1, true)
    assert.matches("\npid " .. prefix .. "/logs/nginx.pid;\n", conf, 1, true)
    for _, d in ipairs { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
      assert.matches(d .. "_temp_path " .. prefix .. "/tmp/", conf, 1, true)
    end
    assert.matches("access_log " .. prefix .. "/logs/access.log;", conf, 1, true)
    for path in conf:gmatch("\n%s*[%w_]+_path%s+(/%S+);") do
      assert.equal(prefix, path:sub(1, #prefix), path)
    end
    assert.truthy(nginx_pid, "no logs/nginx.pid" .. diagnostics())
    assert.is_true(alive(nginx_pid))
    -- not a daemon: nginx is still a child of the command, not of PID 1
    assert.are_not.equal(1, parent_of(nginx_pid))
    assert.matches(prefix, util.read_file("/proc/" .. nginx_pid .. "/cmdline"), 1, true)
    assert.truthy(util.read_file(prefix .. "/logs/access.log"):find("GET /balance", 1, true))
  end)

  it("stops when told, leaving no nginx behind", function()
    stop()
    assert.truthy(wait_until(10, function() return not alive(nginx_pid) and not alive(job) end),
      "nginx still runs" .. diagnostics())
    assert.equal(0, (http("GET", "/balance")))
  end)
end)
