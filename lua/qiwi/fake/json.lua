-- The fake's own JSON codec. It has to run unchanged on Lua 5.1-5.4 and
-- LuaJIT (inside nginx), and it must not depend on the C core it is there to
-- test, so it is written in plain Lua.
--
-- Decoding is strict (RFC 8259: no trailing commas, no leading zeros, no
-- control characters or invalid UTF-8 in strings, nothing after the value)
-- because the fake answers malformed request bodies with 400 like QIWI does.
-- Objects become plain tables, arrays Lua sequences marked with `array_mt`,
-- `null` becomes `json.null`. The exact text of every decoded number is kept
-- (`json.number_text`) so that money can be read without float rounding.
--
-- Encoding never writes exponents: integral numbers go out as plain digits,
-- other numbers as their shortest decimal form; `json.raw(text)` emits a
-- number verbatim (amounts built from kopecks, ids beyond 2^53).

local json = {}

local byte, char, sub, find, format = string.byte, string.char, string.sub, string.find, string.format
local concat, floor, huge = table.concat, math.floor, math.huge

json.null = setmetatable({}, { __tostring = function() return "null" end })
json.array_mt = { __name = "qiwi.fake.json.array" }

local raw_mt = { __name = "qiwi.fake.json.raw" }

-- A number written exactly as `text` (which must be a JSON number).
function json.raw(text)
  return setmetatable({ text = text }, raw_mt)
end

function json.is_raw(v)
  return type(v) == "table" and getmetatable(v) == raw_mt
end

-- Marks `t` (default: a new table) as an array, so that it encodes as [] when empty.
function json.array(t)
  return setmetatable(t or {}, json.array_mt)
end

function json.is_array(v)
  return type(v) == "table" and getmetatable(v) == json.array_mt
end

-- container -> { key -> original number text }; weak so it never leaks.
local number_texts = setmetatable({}, { __mode = "k" })

-- The number at t[k] exactly as it was written in the decoded document.
function json.number_text(t, k)
  local m = number_texts[t]
  return m and m[k]
end

---------------------------------------------------------------------------
-- Decoding

local decode_value

local function fail(s, pos, what)
  local line, col = 1, 1
  for i = 1, pos - 1 do
    if byte(s, i) == 10 then line, col = line + 1, 1 else col = col + 1 end
  end
  error({ json_error = format("%s at line %d column %d", what, line, col) }, 0)
end

local function skip_ws(s, pos)
  -- JSON whitespace is exactly space, tab, LF and CR.
  local _, e = find(s, "^[ \t\r\n]*", pos)
  return e + 1
end

local function utf8_encode(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then
    return char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
              0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- Checks one UTF-8 sequence starting at i (a non-ASCII lead byte); returns
-- the index after it, or nil when the bytes are not well-formed UTF-8.
local function utf8_step(s, i)
  local c = byte(s, i)
  local n, lo, hi
  if c >= 0xC2 and c <= 0xDF then
    n = 1
  elseif c >= 0xE0 and c <= 0xEF then
    n = 2
    -- no overlongs (E0 80..9F) and no surrogates (ED A0..BF)
    if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
  elseif c >= 0xF0 and c <= 0xF4 then
    n = 3
    if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
  else
    return nil
  end
  for k = 1, n do
    local b = byte(s, i + k)
    if not b then return nil end
    local l, h = 0x80, 0xBF
    if k == 1 then l, h = lo or l, hi or h end
    if b < l or b > h then return nil end
  end
  return i + n + 1
end

local escapes = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
  [110] = "\n", [114] = "\r", [116] = "\t",
}

local function decode_string(s, pos)
  -- pos is at the opening quote
  local parts, n = {}, 0
  local i = pos + 1
  local start = i
  while true do
    local c = byte(s, i)
    if not c then fail(s, pos, "unterminated string") end
    if c == 34 then
      n = n + 1; parts[n] = sub(s, start, i - 1)
      return concat(parts), i + 1
    elseif c == 92 then
      n = n + 1; parts[n] = sub(s, start, i - 1)
      local e = byte(s, i + 1)
      if e == 117 then
        local hex = sub(s, i + 2, i + 5)
        if not find(hex, "^%x%x%x%x$") then fail(s, i, "invalid \\u escape") end
        local cp = tonumber(hex, 16)
        local nexti = i + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local hex2 = sub(s, i + 6, i + 11)
          if not find(hex2, "^\\u%x%x%x%x$") then fail(s, i, "lone surrogate in \\u escape") end
          local lo = tonumber(sub(hex2, 3), 16)
          if lo < 0xDC00 or lo > 0xDFFF then fail(s, i, "invalid surrogate pair") end
          cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
          nexti = i + 12
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail(s, i, "lone surrogate in \\u escape")
        end
        n = n + 1; parts[n] = utf8_encode(cp)
        i = nexti
      else
        local r = e and escapes[e]
        if not r then fail(s, i, "invalid escape") end
        n = n + 1; parts[n] = r
        i = i + 2
      end
      start = i
    elseif c < 32 then
      fail(s, i, "control character in string")
    elseif c < 128 then
      i = i + 1
    else
      local nx = utf8_step(s, i)
      if not nx then fail(s, i, "invalid UTF-8 in string") end
      i = nx
    end
  end
end

local function decode_number(s, pos)
  local text
  -- int part: a single 0, or a digit 1-9 followed by digits
  local a, b = find(s, "^%-?0", pos)
  if a and not find(s, "^%-?0%d", pos) then
    text = sub(s, a, b)
  else
    a, b = find(s, "^%-?[1-9]%d*", pos)
    if not a then fail(s, pos, "invalid number") end
    text = sub(s, a, b)
  end
  local i = b + 1
  if byte(s, i) == 46 then -- '.'
    local fa, fb = find(s, "^%.%d+", i)
    if not fa then fail(s, i, "invalid number fraction") end
    text = text .. sub(s, fa, fb)
    i = fb + 1
  end
  local c = byte(s, i)
  if c == 101 or c == 69 then -- e / E
    local ea, eb = find(s, "^[eE][%+%-]?%d+", i)
    if not ea then fail(s, i, "invalid number exponent") end
    text = text .. sub(s, ea, eb)
    i = eb + 1
  end
  local v = tonumber(text)
  if v == nil or v ~= v or v == huge or v == -huge then fail(s, pos, "number out of range") end
  return v, i, text
end

local MAX_DEPTH = 200

local function decode_array(s, pos, depth)
  local arr, n = setmetatable({}, json.array_mt), 0
  local texts
  local i = skip_ws(s, pos + 1)
  if byte(s, i) == 93 then return arr, i + 1 end
  while true do
    local v, nx, text = decode_value(s, i, depth + 1)
    n = n + 1
    arr[n] = v
    if text then
      texts = texts or {}
      texts[n] = text
    end
    i = skip_ws(s, nx)
    local c = byte(s, i)
    if c == 93 then break end
    if c ~= 44 then fail(s, i, "expected ',' or ']'") end
    i = skip_ws(s, i + 1)
    if byte(s, i) == 93 then fail(s, i, "trailing comma") end
  end
  if texts then number_texts[arr] = texts end
  return arr, i + 1
end

local function decode_object(s, pos, depth)
  local obj = {}
  local texts
  local i = skip_ws(s, pos + 1)
  if byte(s, i) == 125 then return obj, i + 1 end
  while true do
    if byte(s, i) ~= 34 then fail(s, i, "expected a string key") end
    local k, nx = decode_string(s, i)
    i = skip_ws(s, nx)
    if byte(s, i) ~= 58 then fail(s, i, "expected ':'") end
    i = skip_ws(s, i + 1)
    local v, text
    v, nx, text = decode_value(s, i, depth + 1)
    obj[k] = v
    if text then
      texts = texts or {}
      texts[k] = text
    end
    i = skip_ws(s, nx)
    local c = byte(s, i)
    if c == 125 then break end
    if c ~= 44 then fail(s, i, "expected ',' or '}'") end
    i = skip_ws(s, i + 1)
    if byte(s, i) == 125 then fail(s, i, "trailing comma") end
  end
  if texts then number_texts[obj] = texts end
  return obj, i + 1
end

function decode_value(s, pos, depth)
  if depth >= MAX_DEPTH then fail(s, pos, "nesting too deep") end
  local c = byte(s, pos)
  if c == 123 then return decode_object(s, pos, depth) end
  if c == 91 then return decode_array(s, pos, depth) end
  if c == 34 then return decode_string(s, pos) end
  if c == 45 or (c and c >= 48 and c <= 57) then return decode_number(s, pos) end
  if sub(s, pos, pos + 3) == "true" then return true, pos + 4 end
  if sub(s, pos, pos + 4) == "false" then return false, pos + 5 end
  if sub(s, pos, pos + 3) == "null" then return json.null, pos + 4 end
  if not c then fail(s, pos, "unexpected end of input") end
  fail(s, pos, "unexpected character")
end

-- Returns the decoded value, or nil and a one-line reason.
function json.decode(s)
  if type(s) ~= "string" then return nil, "JSON text must be a string" end
  local ok, v, nx = pcall(function()
    local i = skip_ws(s, 1)
    local val, after = decode_value(s, i, 0)
    return val, after
  end)
  if not ok then
    if type(v) == "table" and v.json_error then return nil, v.json_error end
    error(v, 0)
  end
  local i = skip_ws(s, nx)
  if i <= #s then
    local _, err = pcall(fail, s, i, "unexpected data after the value")
    return nil, err.json_error
  end
  return v
end

---------------------------------------------------------------------------
-- Encoding

local escape_map = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escape_map[c] or format("\\u%04x", byte(c))
  end) .. '"'
end

-- Plain decimal text for a finite number: integral values as digits, others
-- as the shortest text that reads back to the same double, never with an exponent.
function json.number(x)
  if x ~= x or x == huge or x == -huge then error("cannot encode a non-finite number", 2) end
  if x == floor(x) then
    if x > -2^63 and x < 2^63 then return format("%d", x) end
    return format("%.0f", x)
  end
  local s
  for p = 1, 17 do
    s = format("%." .. p .. "g", x)
    if tonumber(s) == x then break end
  end
  if find(s, "[eE]") then
    -- Small magnitudes: write all the digits out and trim the zeros.
    for d = 1, 40 do
      local t = format("%." .. d .. "f", x)
      if tonumber(t) == x then s = t break end
    end
  end
  return s
end

local encode_value

local function is_sequence(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return n > 0, n
end

local function encode_table(t, out, seen)
  if seen[t] then error("cannot encode a cyclic table", 0) end
  seen[t] = true
  local seq, n = is_sequence(t)
  if seq or getmetatable(t) == json.array_mt then
    n = n or 0
    if not seq then n = #t end
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, seen)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then error("cannot encode a table with non-string key " .. tostring(k), 0) end
      keys[#keys + 1] = k
    end
    -- Sorted keys: the same state always encodes to the same bytes.
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = encode_string(k)
      out[#out + 1] = ":"
      encode_value(t[k], out, seen)
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
end

function encode_value(v, out, seen)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = json.number(v)
  elseif tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "table" then
    if getmetatable(v) == raw_mt then
      out[#out + 1] = v.text
    else
      encode_table(v, out, seen)
    end
  else
    error("cannot encode a " .. tv, 0)
  end
end

-- Returns the JSON text of `v`; raises on values JSON cannot hold.
function json.encode(v)
  local out = {}
  encode_value(v, out, {})
  return concat(out)
end

return json
