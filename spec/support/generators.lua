-- Generated inputs for the property specs: a deterministic pool of awkward
-- Lua values, a seeded generator that runs the same on every interpreter,
-- a printer that names any of them on one line, and a guarded call that
-- tells a raise (and the library line it came from) from a returned error.
local _M = {}

local unpack = table.unpack or unpack
local format, rep, byte = string.format, string.rep, string.byte

---------------------------------------------------------------------------
-- Seeded generator: Park–Miller (minimal standard). Products stay below 2^53,
-- so doubles and integers give the same sequence on Lua 5.1–5.4 and LuaJIT.

local Rng = {}
Rng.__index = Rng

function _M.rng(seed)
  seed = math.floor(tonumber(seed) or 1) % 2147483647
  if seed <= 0 then seed = seed + 2147483646 end
  return setmetatable({ x = seed }, Rng)
end

-- An integer from 1 to n.
function Rng:int(n)
  self.x = self.x * 16807 % 2147483647
  return self.x % n + 1
end

function Rng:chance(p)
  return self:int(1000000) <= p * 1000000
end

function Rng:pick(list)
  return list[self:int(#list)]
end

-- A seed offset from a name, so that each method keeps its own sequence
-- when methods are added.
function _M.hash(s)
  local h = 0
  for i = 1, #s do h = (h * 31 + byte(s, i)) % 2147483647 end
  return h
end

---------------------------------------------------------------------------
-- The pool: { label, value } pairs. Labels name the value in failure
-- messages; values that only exist on some interpreters are built there.

local function loadexpr(src)
  local load_ = loadstring or load
  local chunk = load_("return " .. src)
  if not chunk then return nil end
  local ok, v = pcall(chunk)
  if ok then return v end
  return nil
end

local function deep(n)
  local t = {}
  local cur = t
  for _ = 1, n do
    local child = {}
    cur[1] = child
    cur = child
  end
  return t
end

function _M.pool()
  local p = {}
  local function add(label, value) p[#p + 1] = { label, value } end
  add("nil", nil)
  add("true", true)
  add("false", false)
  add("0", 0)
  add("-0.0", -0.0)
  add("-1", -1)
  add("1", 1)
  add("0.5", 0.5)
  add("1e-9", 1e-9)
  add("1e308", 1e308)
  add("-1e308", -1e308)
  add("0/0", 0 / 0)
  add("1/0", 1 / 0)
  add("-1/0", -1 / 0)
  if math.maxinteger then
    add("math.maxinteger", math.maxinteger)
    add("math.mininteger", math.mininteger)
  end
  add("2^53", 2 ^ 53)
  add("2^63", 2 ^ 63)
  add("-2^63", -2 ^ 63)
  -- (1 << 62) + 500: an integer on 5.3+, the nearest float elsewhere
  add("(1<<62)+500", loadexpr("(1 << 62) + 500") or 2 ^ 62 + 500)
  -- 2^53 + 1: exact only as an integer
  add("2^53+1", math.tointeger and math.tointeger(2 ^ 53) + 1 or 2 ^ 53 + 1)
  add('""', "")
  add('" "', " ")
  add('"yesterday"', "yesterday")
  add('"1e9"', "1e9")
  add('"0x10"', "0x10")
  add('"-5"', "-5")
  add('"10.505"', "10.505")
  add('"\\u{661}\\u{662}\\u{663}" (Arabic-Indic digits)', "\217\161\217\162\217\163")
  add('"\\u{fc}"', "\195\188")
  add('"\\0"', "\0")
  add('"a\\r\\nb"', "a\r\nb")
  add("10 KB of digits", rep("7", 10240))
  add("10 KB of letters", rep("x", 10240))
  add("{}", {})
  add("{1,2}", { 1, 2 })
  add("{{}}", { {} })
  add("1000-deep nested table", deep(1000))
  local cyclic = {}
  cyclic[1], cyclic.self = cyclic, cyclic
  add("cyclic table", cyclic)
  add("table whose __index raises", setmetatable({}, {
    __index = function(_, k) error("generated table: __index raised for " .. tostring(k), 2) end,
  }))
  add("a function", function() return nil end)
  add("a coroutine", coroutine.create(function() end))
  add("io.stdout", io.stdout)
  local ok, qiwi = pcall(require, "qiwi")
  if ok then add("qiwi.null", qiwi.null) end
  return p
end

-- Pool values usable as table keys (not nil, not NaN).
function _M.keys(pool)
  local out = {}
  for _, e in ipairs(pool) do
    local v = e[2]
    if v ~= nil and v == v then out[#out + 1] = e end
  end
  return out
end

---------------------------------------------------------------------------
-- Printing: one line, every value recognisable.

local labels = setmetatable({}, { __mode = "k" })

function _M.label(v, name)
  if type(v) == "table" or type(v) == "function" or type(v) == "thread" or type(v) == "userdata" then
    labels[v] = name
  end
  return v
end

function _M.register(pool)
  for _, e in ipairs(pool) do _M.label(e[2], e[1]) end
  return pool
end

local function show_string(s)
  local cut = #s > 48
  local body = cut and s:sub(1, 24) or s
  body = body:gsub('[%c"\\\128-\255]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return format("\\%d", byte(c))
  end)
  if cut then return format('"%s"... (%d bytes)', body, #s) end
  return '"' .. body .. '"'
end

local function show_number(v)
  if v ~= v then return "0/0" end
  if v == math.huge then return "1/0" end
  if v == -math.huge then return "-1/0" end
  if v == 0 and 1 / v < 0 then return "-0.0" end
  if math.type and math.type(v) == "integer" then return format("%d", v) end
  if not math.type and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
  local s = format("%.17g", v)
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function show(v, depth)
  local t = type(v)
  if t == "string" then return show_string(v) end
  if t == "number" then return show_number(v) end
  if t ~= "table" then
    if labels[v] then return "<" .. labels[v] .. ">" end
    return tostring(v)
  end
  if labels[v] then return "<" .. labels[v] .. ">" end
  depth = depth or 0
  if depth >= 3 then return "{…}" end
  local parts, n = {}, 0
  local seq = 0
  while rawget(v, seq + 1) ~= nil do seq = seq + 1 end
  for i = 1, math.min(seq, 8) do parts[#parts + 1] = show(rawget(v, i), depth + 1) end
  if seq > 8 then parts[#parts + 1] = "…" end
  local keys = {}
  for k in next, v do
    if not (type(k) == "number" and k >= 1 and k <= seq and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    n = n + 1
    if n > 12 then parts[#parts + 1] = "…" break end
    local ks = type(k) == "string" and k:find("^[%a_][%w_]*$") and k or "[" .. show(k, depth + 1) .. "]"
    parts[#parts + 1] = ks .. " = " .. show(rawget(v, k), depth + 1)
  end
  local s = "{" .. table.concat(parts, ", ") .. "}"
  if getmetatable(v) ~= nil then s = s .. "<with metatable>" end
  return s
end
_M.show = show

-- "a, b, c" for an argument list of n values (nils included).
function _M.show_args(list, n)
  local parts = {}
  for i = 1, n or #list do parts[i] = show(list[i]) end
  return table.concat(parts, ", ")
end

---------------------------------------------------------------------------
-- Guarded calls

-- The library line a raise came from: the innermost frame in lua/qiwi/
-- (a metamethod of a generated value raising is pinned on the library line
-- that touched it); "[C] …" when the function under test is C and raised itself.
local function raise_site()
  for level = 3, 60 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    local src = info.short_src or "?"
    if src:find("lua/qiwi/", 1, true) and info.currentline and info.currentline > 0 then
      return (src:gsub("^.*lua/qiwi/", "lua/qiwi/")) .. ":" .. info.currentline
    end
  end
  return "[C] the function under test itself"
end

local function pack(...) return { n = select("#", ...), ... } end
_M.pack = pack

-- Calls fn with args[1..n]; returns a record:
--   ok = false, message = the raised value as one line, site = "file:line"
--   ok = true, n = how many results, [1..n] = the results
function _M.guard(fn, args, n)
  local site
  local r = pack(xpcall(function() return fn(unpack(args, 1, n)) end, function(e)
    site = raise_site()
    return e
  end))
  if not r[1] then
    local msg = r[2]
    if type(msg) ~= "string" then
      local ok, s = pcall(tostring, msg)
      msg = ok and s or ("<" .. type(r[2]) .. ">")
    end
    msg = msg:gsub("[\r\n]+", " ")
    return { ok = false, message = msg, site = site or "?" }
  end
  local out = { ok = true, n = r.n - 1 }
  for i = 2, r.n do out[i - 1] = r[i] end
  return out
end

return _M
