-- lua-qiwi: the QIWI Wallet personal API for Lua.
local core = require "qiwi.core"
local client = require "qiwi.client"

local _M = {
  _VERSION = "qiwi " .. client.VERSION,
  null = core.null,
  array_mt = core.array_mt,
  -- decode(non-string) is nil, err like any other bad input; the core's
  -- own function raises for it, as a C function checking its argument does
  json = {
    decode = function(s)
      if type(s) ~= "string" then return nil, "json.decode takes a string, got " .. type(s) end
      return core.json_decode(s)
    end,
    encode = core.json_encode,
  },
  error = require("qiwi.error").mt,
  new = client.new,
  payment_form_url = require("qiwi.forms").payment_form_url,
}

-- Submodules that most programs never touch are loaded on first use.
local lazy = { fake = "qiwi.fake", webhook = "qiwi.webhook", store = "qiwi.store", p2p = "qiwi.p2p" }

return setmetatable(_M, {
  __index = function(t, k)
    local mod = lazy[k]
    if mod == nil then return nil end
    local v = require(mod)
    rawset(t, k, v)
    return v
  end,
})
