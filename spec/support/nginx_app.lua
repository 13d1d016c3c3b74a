-- An nginx of several worker processes for the specs that are about several
-- processes (store_nginx_spec.lua, shared_state_nginx_spec.lua): master
-- process on, N workers, reuseport so that the kernel spreads connections
-- over the workers, plain HTTP on a free loopback port, in a prefix of its
-- own, under a supervising shell (util.supervise). https_fake.lua runs one
-- process only.
--
--   local nginx_app = require "nginx_app"   -- this file (spec/support/nginx_app.lua)
--   local app = nginx_app.start {
--     name = "store-nginx",          -- the prefix: /tmp/lua-qiwi-<name>.XXXXXXXX
--     workers = 4,
--     connections = 256,             -- per worker (default 256)
--     modules = { store_rpc = SRC }, -- <prefix>/store_rpc.lua, first on lua_package_path
--     http = { "lua_shared_dict d 1m;", ... },   -- in http {}
--     server = { "location = /ready { ... }", ... },   -- in server {}
--     ready = function(app) return true once it answers end,
--     start_timeout = 10, step = 0.05,   -- how long and how often ready() is polled
--     what = "app nginx S",          -- for the error when it does not start
--   }
--   app.base, app.port, app.prefix, app.log(), app.stop()
--
-- The lua_package_path holds the prefix and the repository's lua/; the
-- cpath is util.NGINX_CPATH (build/luajit's core by default).
local util = require "util"

local shq = util.shq
local REPO = util.repo_root()

local _M = {}

local function conf(o, prefix, port)
  local function q(p) return '"' .. p .. '"' end
  local lines = {
    "load_module " .. q(util.NGINX_MODULES .. "/ndk_http_module.so") .. ";",
    "load_module " .. q(util.NGINX_MODULES .. "/ngx_http_lua_module.so") .. ";",
    -- several processes: that is what these specs are about
    "master_process on;",
    "daemon off;",
    "worker_processes " .. o.workers .. ";",
    -- workers read the prefix (mode 0700) as its owner; ignored, with a
    -- warning, when nginx does not start as root
    "user root;",
    "pid " .. q(prefix .. "/nginx.pid") .. ";",
    "error_log " .. q(prefix .. "/error.log") .. " warn;",
    "events { worker_connections " .. (o.connections or 256) .. "; }",
    "http {",
    "  access_log off;",
  }
  local function add(l) lines[#lines + 1] = l end
  for _, kind in ipairs { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    add("  " .. kind .. "_temp_path " .. q(prefix .. "/tmp") .. ";")
  end
  add('  lua_package_path "' .. prefix .. "/?.lua;" .. REPO .. "/lua/?.lua;" .. REPO .. '/lua/?/init.lua;;";')
  add('  lua_package_cpath "' .. util.NGINX_CPATH .. ';;";')
  for _, l in ipairs(o.http or {}) do add("  " .. l) end
  add("  server {")
  add("    listen 127.0.0.1:" .. port .. " reuseport;")
  for _, l in ipairs(o.server or {}) do add("    " .. l) end
  add("  }")
  add("}")
  return table.concat(lines, "\n") .. "\n"
end

-- Starts the app and waits until o.ready(app); raises when it does not come
-- up (another port is tried when the one picked was taken meanwhile).
function _M.start(o)
  local prefix = util.tmpdir(o.name)
  util.mkdir_p(prefix .. "/tmp")
  for name, source in pairs(o.modules or {}) do util.write_file(prefix .. "/" .. name .. ".lua", source) end
  local app = { prefix = prefix, workers = o.workers }
  function app.log() return util.read_file(prefix .. "/error.log") or "" end
  local function start_log() return (util.read_file(prefix .. "/start.log") or "") .. app.log() end
  function app.stop()
    if app.pipe then
      util.stop_pipe(app.pipe)
      app.pipe = nil
    end
    util.exec("rm -rf " .. shq(prefix))
  end
  local timeout = o.start_timeout or 10
  local up, why = util.on_free_port(10, function(port)
    app.port, app.base = port, "http://127.0.0.1:" .. port
    util.write_file(prefix .. "/nginx.conf", conf(o, prefix, port))
    os.remove(prefix .. "/start.log")
    os.remove(prefix .. "/error.log")
    app.pipe = util.supervise(shq(util.NGINX) .. " -p " .. shq(prefix .. "/") .. " -c " .. shq(prefix .. "/nginx.conf"),
      { log = prefix .. "/start.log", pid_file = prefix .. "/spawn.pid", dir = prefix })
    local state = util.wait_until(timeout, function()
      if o.ready(app) then return "up" end
      if start_log():find("[emerg]", 1, true) then return "failed" end
    end, o.step)
    if state == "up" then return true end
    local failed = start_log()
    util.stop_pipe(app.pipe)
    app.pipe = nil
    return nil, failed
  end)
  if up then return app end
  app.stop()
  error((o.what or "nginx") .. " did not start within " .. timeout .. " s:\n" .. tostring(why), 2)
end

return _M
