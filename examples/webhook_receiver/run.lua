-- The webhook receiver (receiver.lua, nginx.conf beside it) against the
-- built-in fake QIWI, from a checkout built with `make all LUA=luajit` (nginx's
-- LuaJIT loads build/luajit's core) and the Lua you run this with:
--
--   lua5.4 examples/webhook_receiver/run.lua
--
-- It registers a hook at the fake, lets money arrive (the fake signs the
-- notification QIWI would send), starts nginx with the receiver on a free
-- loopback port from a temporary directory, and posts that notification to
-- it three ways: as sent, once more (QIWI's repeat), and with the amount
-- changed. Then it shows what the receiver handled, and stops nginx.
-- NGINX names another nginx binary.
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local repo = here .. "/../.."
package.path = repo .. "/lua/?.lua;" .. repo .. "/lua/?/init.lua;" .. package.path
package.cpath = repo .. "/build/" .. (jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")) .. "/?.so;" .. package.cpath

local qiwi = require "qiwi"

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end
local function abs(p) return (p:sub(1, 1) == "/" and p or sh("pwd"):gsub("%s+$", "") .. "/" .. p) end
here, repo = abs(here), abs(repo)

-- 1. The fake QIWI: a hook, and money arriving.
local fake = qiwi.fake.new { token = "demo-token", wallet = "79111234567" }
local client = assert(qiwi.new { token = "demo-token", transport = fake })
local hook = assert(client:register_webhook("https://shop.example/qiwi/webhook", "IN"))
local key = assert(client:webhook_key(hook.hookId)).key
fake:add_payment { amount = 250, comment = "order 42" }
local note = fake:last_notification().body
print("the fake signed a notification for txn " .. qiwi.json.decode(note).payment.txnId)

-- 2. nginx with the receiver, in the foreground under a shell that stops it
-- when this script ends (the pipe closes), from a temporary directory.
local prefix = sh("mktemp -d ${TMPDIR:-/tmp}/qiwi-receiver.XXXXXXXX"):gsub("%s+$", "")
local port = 20000 + tonumber(sh("od -An -N2 -tu2 /dev/urandom"):match("%d+")) % 40000
local conf = io.open(here .. "/nginx.conf"):read("*a")
  :gsub("/opt/lua%-qiwi", repo):gsub("/etc/nginx/qiwi%-receiver", here)
  :gsub("listen 8080;", "listen 127.0.0.1:" .. port .. ";"):gsub("worker_processes auto;", "worker_processes 1;")
-- one process, as the user running this (a worker started by root would
-- run as nobody, who cannot write into the temporary directory)
conf = table.concat({ "daemon off;", "master_process off;", "pid " .. prefix .. "/nginx.pid;",
                      "error_log " .. prefix .. "/error.log notice;" }, "\n")
  .. "\n" .. conf:gsub("http {", "http {\n    access_log off;\n    client_body_temp_path " .. prefix .. "/body;", 1)
local function write(path, text)
  local out = assert(io.open(path, "w"))
  out:write(text)
  out:close()
end
write(prefix .. "/nginx.conf", conf)
-- the key reaches nginx's environment from a file, not on a command line (`ps`)
write(prefix .. "/key", key)
local nginx = os.getenv("NGINX") or "/usr/sbin/nginx"
local pipe = io.popen(("QIWI_WEBHOOK_KEY=$(cat %s) RECEIVER_LOG=%s %s -p %s -c %s -e %s >%s 2>&1 </dev/null & "
  .. "read x; kill $!; wait $!"):format(shq(prefix .. "/key"), shq(prefix .. "/payments.log"), shq(nginx),
  shq(prefix .. "/"), shq(prefix .. "/nginx.conf"), shq(prefix .. "/error.log"), shq(prefix .. "/start.log")), "w")
local up = false
for _ = 1, 100 do
  if sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" .. port .. "/qiwi/webhook") == "405" then
    up = true
    break
  end
  os.execute("sleep 0.05")
end
local function stop()
  pipe:write("\n")
  pipe:close()
  if not os.getenv("KEEP") then os.execute("rm -rf " .. shq(prefix)) end
end
if not up then
  io.stderr:write("nginx did not start:\n", sh("cat " .. shq(prefix .. "/start.log") .. " " .. shq(prefix .. "/error.log")))
  stop()
  os.exit(1)
end
print("receiver listening on http://127.0.0.1:" .. port .. "/qiwi/webhook")

-- 3. The notification, its repeat, and a forgery.
local function post(name, body)
  local file = prefix .. "/" .. name .. ".json"
  write(file, body)
  local status = sh("curl -s -o /dev/null -w '%{http_code}' --data-binary @" .. shq(file)
    .. " http://127.0.0.1:" .. port .. "/qiwi/webhook")
  print(("POST %-10s -> %s"):format(name, status))
end
post("as-sent", note)
post("repeated", note)
post("forged", (note:gsub('"amount":250', '"amount":25000', 1)))

os.execute("sleep 0.2") -- on_notification runs after the answer
io.write("what the receiver handled:\n", sh("cat " .. shq(prefix .. "/payments.log") .. " 2>/dev/null"))
stop()
