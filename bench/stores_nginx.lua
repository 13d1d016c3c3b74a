-- The nginx side of make bench's stores section (bench/stores.lua): one
-- round of its measurements inside this nginx worker (LuaJIT), with the
-- memory store, the shdict store and the redis store over cosockets.
--
--   location = /bench/stores { content_by_lua_block {
--     require("stores_nginx").round { dict = "<lua_shared_dict>", redis_port = <port> } } }
--
-- ?k= calls of each kind with each store (200), ?turn= calls a turn (20),
-- ?run= the round (it shifts the stores' order); see bench.round.
-- Answers one line per store and kind: <name> "<label>" <kind> <seconds per
-- call>. The stores are made once per worker (the redis one takes its
-- connections from the worker's cosocket pool on each call).
local bench = require "stores"
local store = require "qiwi.store"

local _M = {}

local list
-- the wallets of this worker's blocks: apart from the ones of the process
-- outside, which share the redis-server (and the prefix keeps them apart too)
local next_wallet = bench.wallets(200)

local function stores(conf)
  if list then return list end
  local function must(s, err)
    if not s then error("store: " .. tostring(err)) end
    return s
  end
  list = {
    { name = "memory", label = "memory", store = must(store.memory()) },
    { name = "shdict", label = "shdict", store = must(store.shdict(conf.dict)) },
    { name = "redis", label = "redis (cosockets)",
      store = must(store.redis { port = conf.redis_port, prefix = "qiwi-bench-ngx:" }) },
  }
  return list
end

function _M.round(conf)
  local ok, res = pcall(function()
    local l = stores(conf)
    local k = tonumber(ngx.var.arg_k) or 200
    local r = tonumber(ngx.var.arg_run) or 0
    local out = bench.round(l, k, r, next_wallet, tonumber(ngx.var.arg_turn) or 20)
    local lines = {}
    for _, st in ipairs(l) do
      for _, kind in ipairs(bench.KINDS) do
        lines[#lines + 1] = string.format('%s "%s" %s %.9f\n', st.name, st.label, kind, out[st.name][kind])
      end
    end
    return table.concat(lines)
  end)
  ngx.header["content-type"] = "text/plain"
  if not ok then
    ngx.status = 500
    ngx.say(tostring(res))
    return ngx.exit(500)
  end
  ngx.print(res)
end

return _M
