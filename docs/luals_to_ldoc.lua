-- `make doc`'s first step: the LuaLS annotations of types/*.lua (what
-- editors read) rewritten as the LDoc tags Debian's ldoc reads, so that the
-- HTML reference comes from the same comments:
--   lua docs/luals_to_ldoc.lua types build/doc/src
--
--   ---@param name type desc    -> -- @tparam type name desc  ([opt] for name?)
--   ---@return type name desc   -> -- @treturn type name desc
--   ---@field name type desc    -> -- @tfield type name desc
--   ---@class qiwi.X  + "local X = {}"  -> -- @type X    (a class with methods)
--   ---@class qiwi.X  alone             -> -- @table X   (a shape: its fields)
--   any other ---@ tag (meta, alias, overload, nodiscard, ...) -> left out
-- Types: "T|nil" becomes LDoc's "?T", other unions "?A|B".
local src_dir, out_dir = arg[1], arg[2]
assert(src_dir and out_dir, "usage: luals_to_ldoc.lua SRC_DIR OUT_DIR")

-- The type at the start of s (brackets balanced: fun(a: x): y, table<k, v>),
-- and the rest.
local function split_type(s)
  local depth, i = 0, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "(" or c == "<" or c == "{" or c == "[" then depth = depth + 1
    elseif c == ")" or c == ">" or c == "}" or c == "]" then depth = depth - 1
    elseif c:match("%s") and depth == 0 then
      -- "fun(x): y" keeps its return type
      if not s:sub(1, i - 1):match(":$") then break end
    end
    i = i + 1
  end
  return s:sub(1, i - 1), (s:sub(i + 1):gsub("^%s+", ""))
end

local function ldoc_type(t)
  t = t:gsub("%s+", "")
  local optional = false
  local parts = {}
  for p in t:gmatch("[^|]+") do
    if p == "nil" then optional = true else parts[#parts + 1] = p end
  end
  if #parts == 0 then return "nil" end
  local out = table.concat(parts, "|")
  if optional or #parts > 1 then out = "?" .. out end
  return out
end

local function convert(text)
  local lines, out = {}, {}
  for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  local in_block = false
  for i, line in ipairs(lines) do
    local tag, rest = line:match("^%s*%-%-%-@(%w+)%s*(.*)$")
    local emitted
    if tag == "param" then
      local name, r = rest:match("^(%S+)%s*(.*)$")
      local t, desc = split_type(r)
      local opt = name:sub(-1) == "?" or t:find("|nil", 1, true) or t:find("^nil|")
      name = name:gsub("%?$", "")
      emitted = ("-- @tparam%s %s %s %s"):format(opt and "[opt]" or "", ldoc_type(t), name, desc)
    elseif tag == "return" then
      local t, desc = split_type(rest)
      emitted = ("-- @treturn %s %s"):format(ldoc_type(t), desc)
    elseif tag == "field" then
      local name, r = rest:match("^(%S+)%s*(.*)$")
      local t, desc = split_type(r)
      emitted = ("-- @tfield %s %s %s"):format(ldoc_type(t), (name:gsub("%?$", "")), desc)
    elseif tag == "class" then
      local full = rest:match("^([%w_.]+)")
      -- the line after the block: a class with methods has its table there
      local j = i + 1
      while (lines[j] or ""):match("^%s*%-%-") do j = j + 1 end
      local loc = (lines[j] or ""):match("^local%s+([%w_]+)%s*=%s*{%s*}")
      if loc then
        emitted = "-- @type " .. loc
      else
        emitted = "-- @table " .. (full:match("([%w_]+)$"))
      end
    elseif tag == "see" then
      emitted = "-- @see " .. rest
    elseif tag then
      -- LuaLS-only, or unknown to LDoc: left out, the block goes on
      emitted = false
    end
    if emitted == nil then
      out[#out + 1] = line
      in_block = line:match("^%s*%-%-") ~= nil
    elseif emitted then
      -- an LDoc block starts with "---"
      if not in_block then emitted = "-" .. emitted end
      out[#out + 1] = emitted
      in_block = true
    end
  end
  return table.concat(out, "\n")
end

os.execute("mkdir -p '" .. out_dir:gsub("'", "'\\''") .. "'")
local p = assert(io.popen("ls '" .. src_dir:gsub("'", "'\\''") .. "'"))
for name in p:lines() do
  if name:match("%.lua$") then
    local f = assert(io.open(src_dir .. "/" .. name, "rb"))
    local text = f:read("*a")
    f:close()
    local o = assert(io.open(out_dir .. "/" .. name, "wb"))
    o:write(convert(text))
    o:close()
  end
end
p:close()
