-- A fake's state as text and back, for `qiwi fake --state FILE`: balances,
-- payments, bills, hooks, cards, and the counters that number new ones, so
-- that a test suite can stop the fake and find the same wallet next time.
-- The logs (requests, notifications) are not kept: they are per run.
--
-- The state is a graph (by_txn and payments hold the same records), so it
-- is written as a data-only Lua chunk that rebuilds every table once and
-- then links them. It is loaded as text (never bytecode) with an
-- environment holding only the two markers it needs: no library is
-- reachable from it.
local json = require "qiwi.fake.json"

local _M = { _VERSION = "qiwi.fake.state 0.1.0", FORMAT = "qiwi-fake-state-1" }

local format, concat = string.format, table.concat
local math_type = math.type

-- The fake's own fields that are state rather than logs or wiring.
local SCALARS = { "token", "wallet", "counter", "trace_counter", "created", "time_offset", "frozen_time",
                  "rate_limit", "rate_limit_block" }

local function number(v)
  if v ~= v then return "(0/0)" end
  if v == math.huge then return "(1/0)" end
  if v == -math.huge then return "(-1/0)" end
  if math_type then
    if math_type(v) == "integer" then return format("%d", v) end
    local s = format("%.17g", v)
    if not s:find("[%.eEn]") then s = s .. ".0" end
    return s
  end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return format("%.0f", v) end
  return format("%.17g", v)
end

-- The text of one fake's state.
function _M.dump(f)
  local ids, order = {}, {}
  local function visit(t)
    if ids[t] then return end
    order[#order + 1] = t
    ids[t] = #order
    for k, v in pairs(t) do
      if type(k) == "table" and k ~= json.null then visit(k) end
      if type(v) == "table" and v ~= json.null then visit(v) end
    end
  end
  visit(f.state)
  local function value(v)
    local t = type(v)
    if t == "string" then return format("%q", v) end
    if t == "number" then return number(v) end
    if t == "boolean" then return tostring(v) end
    if v == json.null then return "N" end
    if t == "table" then return "n[" .. ids[v] .. "]" end
    return nil -- functions and the like are wiring, not state
  end
  local out = { "-- " .. _M.FORMAT .. ": the state of a qiwi.fake (qiwi fake --state)", "local n = {}" }
  for i, t in ipairs(order) do
    out[#out + 1] = format("n[%d] = %s", i, getmetatable(t) == json.array_mt and "A{}" or "{}")
  end
  for i, t in ipairs(order) do
    for k, v in pairs(t) do
      local ks, vs = value(k), value(v)
      if ks and vs then out[#out + 1] = format("n[%d][%s] = %s", i, ks, vs) end
    end
  end
  local meta = {}
  for _, k in ipairs(SCALARS) do
    local vs = f[k] ~= nil and value(f[k])
    if vs then meta[#meta + 1] = format("[%q] = %s", k, vs) end
  end
  local opts = {}
  for k, v in pairs(f.opts) do
    local vs = type(k) == "string" and type(v) ~= "table" and value(v)
    if vs then opts[#opts + 1] = format("[%q] = %s", k, vs) end
  end
  table.sort(opts)
  out[#out + 1] = format("return { format = %q, state = n[1], fake = { %s }, opts = { %s } }",
    _M.FORMAT, concat(meta, ", "), concat(opts, ", "))
  return concat(out, "\n") .. "\n"
end

local function load_text(text)
  if text:byte(1) == 27 then return nil, "binary chunks are refused" end
  local env = { N = json.null, A = json.array }
  if setfenv then -- 5.1, LuaJIT
    local chunk, err = loadstring(text, "=state")
    if not chunk then return nil, err end
    setfenv(chunk, env)
    return chunk
  end
  return load(text, "=state", "t", env)
end

-- Puts the state of `text` (from dump) into the fake `f`, in place. Returns
-- true, or nil and why.
function _M.load(f, text)
  local chunk, err = load_text(text)
  if not chunk then return nil, "not a fake state: " .. tostring(err) end
  local ok, saved = pcall(chunk)
  if not ok then return nil, "not a fake state: " .. tostring(saved) end
  if type(saved) ~= "table" or saved.format ~= _M.FORMAT or type(saved.state) ~= "table" then
    return nil, "not a fake state (format " .. _M.FORMAT .. " expected)"
  end
  for k, v in pairs(saved.opts or {}) do f.opts[k] = v end
  for _, k in ipairs(SCALARS) do
    if saved.fake[k] ~= nil then f[k] = saved.fake[k] end
  end
  f.state = saved.state
  return true
end

return _M
