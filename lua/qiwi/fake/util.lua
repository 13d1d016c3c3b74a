-- Helpers shared by the fake's services: money in kopecks, Moscow dates,
-- query strings, deterministic ids. Plain arithmetic only (no bit operators,
-- no integer division) so that it runs on Lua 5.1-5.4 and LuaJIT alike.

local json = require "qiwi.fake.json"

local floor, format, find, sub, byte, char = math.floor, string.format, string.find, string.sub,
  string.byte, string.char

local U = {}

---------------------------------------------------------------------------
-- Money. Amounts live in integer kopecks (cents); they only become decimal
-- text when written out, so sums never drift.

-- Kopecks from the exact text of a JSON number, rounded down to the kopeck
-- as QIWI documents ("If you send more decimals, value will be rounded down").
-- Returns kopecks, or nil and a reason.
function U.kopecks_from_text(text)
  if type(text) ~= "string" then return nil, "not a number" end
  local sign, int, frac, exp = text:match("^(%-?)(%d+)%.?(%d*)[eE]?([%+%-]?%d*)$")
  if not int then return nil, "not a decimal number" end
  local e = tonumber(exp ~= "" and exp or "0") or 0
  -- Move the decimal point by the exponent, on the digit string itself.
  local digits = int .. frac
  local point = #int + e
  if point < 0 then
    digits = string.rep("0", -point) .. digits
    point = 0
  end
  if point > #digits then
    digits = digits .. string.rep("0", point - #digits)
  end
  local whole = sub(digits, 1, point)
  local cents = sub(digits, point + 1, point + 2)
  cents = cents .. string.rep("0", 2 - #cents)
  whole = whole:gsub("^0+", "")
  if #whole > 13 then return nil, "amount too large" end
  local k = (tonumber(whole ~= "" and whole or "0") or 0) * 100 + tonumber(cents)
  if sign == "-" then k = -k end
  return k
end

-- Kopecks from a helper argument: a number (rounded to the nearest kopeck)
-- or a decimal string. Returns kopecks or nil, reason.
function U.kopecks(v)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil, "not a finite number" end
    if v < 0 then return -floor(-v * 100 + 0.5) end
    return floor(v * 100 + 0.5)
  elseif type(v) == "string" then
    return U.kopecks_from_text(v)
  end
  return nil, "amount must be a number or a decimal string"
end

-- Shortest decimal text of an amount in kopecks: 874 -> "8.74", 50 -> "0.5", 10000 -> "100".
function U.amount_text(k)
  local neg = k < 0
  if neg then k = -k end
  local whole, cents = floor(k / 100), k % 100
  local s
  if cents == 0 then
    s = format("%d", whole)
  elseif cents % 10 == 0 then
    s = format("%d.%d", whole, cents / 10)
  else
    s = format("%d.%02d", whole, cents)
  end
  return neg and ("-" .. s) or s
end

-- A JSON number for an amount in kopecks, written exactly.
function U.amount(k)
  return json.raw(U.amount_text(k))
end

-- Amount as a Lua number (for helpers); k/100 is the double nearest the decimal.
function U.amount_number(k)
  return k / 100
end

-- Exact integer id as a JSON number even beyond 2^53 (ids kept as digit strings).
function U.int(v)
  if type(v) == "string" then return json.raw(v) end
  return v
end

---------------------------------------------------------------------------
-- Dates. Civil-date arithmetic instead of os.date/os.time so that results do
-- not depend on the host's time zone. Moscow has been UTC+3 all year since 2014.

U.MSK = 180 -- minutes

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

U.days_from_civil = days_from_civil
U.civil_from_days = civil_from_days

local function days_in_month(y, m)
  return days_from_civil(m == 12 and y + 1 or y, m == 12 and 1 or m + 1, 1) - days_from_civil(y, m, 1)
end

-- Local wall-clock parts of unix time `t` at `offset` minutes from UTC.
function U.parts(t, offset)
  local s = floor(t) + (offset or U.MSK) * 60
  local days = floor(s / 86400)
  local secs = s - days * 86400
  local y, m, d = civil_from_days(days)
  return y, m, d, floor(secs / 3600), floor(secs / 60) % 60, secs % 60
end

local function tz_text(offset)
  local sign = offset < 0 and "-" or "+"
  local a = offset < 0 and -offset or offset
  return format("%s%02d:%02d", sign, floor(a / 60), a % 60)
end

-- "YYYY-MM-DDThh:mm:ss+hh:mm" for unix time `t` (default offset: Moscow).
function U.date(t, offset)
  offset = offset or U.MSK
  local y, m, d, hh, mm, ss = U.parts(t, offset)
  return format("%04d-%02d-%02dT%02d:%02d:%02d%s", y, m, d, hh, mm, ss, tz_text(offset))
end

-- Unix time of a local civil time at `offset` minutes.
function U.time(y, m, d, hh, mm, ss, offset)
  return days_from_civil(y, m, d) * 86400 + (hh or 0) * 3600 + (mm or 0) * 60 + (ss or 0)
    - (offset or U.MSK) * 60
end

-- Parses QIWI's "YYYY-MM-DDThh:mm:ss±hh:mm"; returns unix time and the
-- offset in minutes, or nil and a reason.
function U.parse_date(s)
  if type(s) ~= "string" then return nil, "missing date" end
  local y, m, d, hh, mm, ss, sign, oh, om =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)([%+%-])(%d%d):(%d%d)$")
  if not y then return nil, "date must look like YYYY-MM-DDThh:mm:ss+hh:mm" end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  hh, mm, ss, oh, om = tonumber(hh), tonumber(mm), tonumber(ss), tonumber(oh), tonumber(om)
  if m < 1 or m > 12 or d < 1 or d > days_in_month(y, m) or hh > 23 or mm > 59 or ss > 59
    or oh > 14 or om > 59 then
    return nil, "date out of range"
  end
  local offset = oh * 60 + om
  if sign == "-" then offset = -offset end
  return U.time(y, m, d, hh, mm, ss, offset), offset
end

-- "YYYY-MM-DD" -> true when it is a real calendar date.
function U.valid_day(s)
  local y, m, d = (s or ""):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return false end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  return m >= 1 and m <= 12 and d >= 1 and d <= days_in_month(y, m)
end

-- Unix times of the start of the Moscow month containing `t` and of the next one.
function U.month_bounds(t)
  local y, m = U.parts(t, U.MSK)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return U.time(y, m, 1, 0, 0, 0, U.MSK), U.time(ny, nm, 1, 0, 0, 0, U.MSK)
end

---------------------------------------------------------------------------
-- URLs and query strings

local function unhex(h) return char(tonumber(h, 16)) end

-- Percent-decoding; `plus` turns '+' into a space (form encoding). Returns
-- nil on a malformed escape, as a strict server would reject it.
function U.unescape(s, plus)
  if find(s, "%%[^%x]") or find(s, "%%%x[^%x]") or find(s, "%%%x?$") then return nil end
  if plus then s = s:gsub("%+", " ") end
  return (s:gsub("%%(%x%x)", unhex))
end

function U.escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

-- Decodes a raw query string into name -> value (names like "types[0]" kept
-- literally). Returns params, or nil and a reason (bad escape, repeated name).
function U.parse_query(q)
  local params = {}
  if q == nil or q == "" then return params end
  for pair in (q .. "&"):gmatch("([^&]*)&") do
    if pair ~= "" then
      local k, v = pair:match("^([^=]*)=(.*)$")
      if not k then k, v = pair, "" end
      local dk, dv = U.unescape(k, true), U.unescape(v, true)
      if not dk or not dv then return nil, "malformed percent-encoding in the query string" end
      if params[dk] ~= nil then return nil, "query parameter " .. dk .. " is repeated" end
      params[dk] = dv
    end
  end
  return params
end

-- Collects "name[0]", "name[1]", ... into a list; the indices must run from 0
-- without gaps. Returns list (possibly empty), or nil and a reason.
function U.indexed(params, name)
  local found, maxi = {}, -1
  local prefix = name .. "["
  for k, v in pairs(params) do
    if sub(k, 1, #prefix) == prefix then
      local idx = k:match("^%[(%d+)%]$", #prefix)
      if not idx then return nil, "malformed parameter " .. k end
      idx = tonumber(idx)
      found[idx] = v
      if idx > maxi then maxi = idx end
    end
  end
  local list = {}
  for i = 0, maxi do
    if found[i] == nil then return nil, name .. "[" .. i .. "] is missing" end
    list[#list + 1] = found[i]
  end
  return list
end

-- Splits "scheme://host[:port]/path?query#frag"; returns a table or nil.
function U.parse_url(url)
  if type(url) ~= "string" then return nil end
  local scheme, rest = url:match("^(%a[%w%+%-%.]*)://(.*)$")
  if not scheme then return nil end
  rest = rest:gsub("#.*$", "")
  local authority, pathq = rest:match("^([^/%?]*)(.*)$")
  if authority == "" then return nil end
  local host, port = authority:match("^(.-):(%d*)$")
  if not host then host = authority end
  if pathq == "" or sub(pathq, 1, 1) == "?" then pathq = "/" .. pathq end
  local path, query = pathq:match("^([^%?]*)%??(.*)$")
  return { scheme = scheme:lower(), host = host, port = tonumber(port), path = path, query = query }
end

---------------------------------------------------------------------------
-- Deterministic identifiers

-- A UUID-shaped string derived from a counter and a salt (no randomness: the
-- same run always produces the same ids).
-- (a * b) mod 2^32 for a, b < 2^32, without leaving exact double range.
local function mulmod32(a, b)
  local ahi, alo = floor(a / 65536), a % 65536
  return ((ahi * b) % 65536 * 65536 + alo * b) % 4294967296
end

function U.uuid(n, salt)
  local h = 2166136261
  local s = tostring(salt or "") .. ":" .. tostring(n)
  local words = {}
  for w = 1, 4 do
    for i = 1, #s do
      h = (mulmod32(h, 16777619) + byte(s, i) + w) % 4294967296
    end
    words[w] = h
  end
  local hex = format("%08x%08x%08x%08x", words[1], words[2], words[3], words[4])
  return format("%s-%s-4%s-%s%s-%s", sub(hex, 1, 8), sub(hex, 9, 12), sub(hex, 14, 16),
    ({ "8", "9", "a", "b" })[words[3] % 4 + 1], sub(hex, 18, 20), sub(hex, 21, 32))
end

function U.is_uuid(s)
  return type(s) == "string"
    and find(s, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function U.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = floor(n / 262144) % 64, floor(n / 4096) % 64
    local c3, c4 = floor(n / 64) % 64, n % 64
    out[#out + 1] = sub(B64, c1 + 1, c1 + 1) .. sub(B64, c2 + 1, c2 + 1)
      .. (b and sub(B64, c3 + 1, c3 + 1) or "=") .. (c and sub(B64, c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- Deterministic pseudo-random bytes (a linear congruential stream).
function U.bytes(n, seed)
  local x = seed % 2147483647
  if x <= 0 then x = x + 2147483646 end
  local out = {}
  for i = 1, n do
    x = (x * 48271) % 2147483647
    out[i] = char(x % 256)
  end
  return table.concat(out)
end

---------------------------------------------------------------------------
-- Misc

-- Card numbers come back masked ("4256********1231").
function U.mask_card(s)
  if type(s) ~= "string" or #s < 10 then return s end
  return sub(s, 1, 4) .. string.rep("*", #s - 8) .. sub(s, -4)
end

-- Identification data masks: first and last two characters.
function U.mask_middle(s)
  if type(s) ~= "string" or s == "" then return s end
  if #s <= 4 then return string.rep("*", #s) end
  return sub(s, 1, 2) .. "***" .. sub(s, -2)
end

function U.copy(v, seen)
  if type(v) ~= "table" then return v end
  if v == json.null or json.is_raw(v) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local t = {}
  seen[v] = t
  for k, x in pairs(v) do t[k] = U.copy(x, seen) end
  return setmetatable(t, getmetatable(v))
end

-- Russian letters to lower case (the search matches case-insensitively and
-- the `utf8` library is not available on Lua 5.1).
function U.lower(s)
  s = s:lower()
  s = s:gsub("\208([\144-\159])", function(c) return "\208" .. char(byte(c) + 32) end)
  s = s:gsub("\208([\160-\175])", function(c) return "\209" .. char(byte(c) - 32) end)
  s = s:gsub("\208\129", "\209\145") -- Ё -> ё
  return s
end

return U
