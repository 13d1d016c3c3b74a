-- Argument checks and wire formatting. Every checker returns the value as it
-- goes on the wire (query and path text) and, where a JSON body takes
-- another type, the JSON value (a number, a boolean), or nil and a one-line
-- reason; nothing here raises, so that
-- a bad argument always becomes an `argument` error before any request is sent.
local _M = {}

local floor, type, tonumber = math.floor, type, tonumber
local find, format, match, gsub = string.find, string.format, string.match, string.gsub

-- Lua 5.3+ has math.type; on 5.1/LuaJIT an integral float is the best we get.
local is_integer = math.type and function(v) return math.type(v) == "integer" end
  or function(v) return type(v) == "number" and v == floor(v) and v > -2^53 and v < 2^53 end

_M.is_integer = is_integer

local function has_control(s)
  return find(s, "[%z\1-\31\127]") ~= nil
end
_M.has_control = has_control

function _M.string(v, spec)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" and not (spec and spec.empty) then return nil, "must not be empty" end
  if has_control(v) then return nil, "must not contain control characters" end
  if spec and spec.max and #v > spec.max then
    return nil, format("must be at most %d bytes", spec.max)
  end
  if spec and spec.pattern and not find(v, spec.pattern) then
    return nil, spec.pattern_message or "has a bad format"
  end
  return v
end

function _M.boolean(v)
  if type(v) ~= "boolean" then return nil, "must be a boolean" end
  return v and "true" or "false", v
end

-- Digits only, the form QIWI uses for ids in paths and queries (txn ids,
-- person ids). Integers are accepted as well as digit strings.
function _M.digits(v, spec)
  local s
  if type(v) == "number" then
    if not is_integer(v) or v < 0 then return nil, "must be a non-negative integer" end
    s = format("%d", v)
  elseif type(v) == "string" then
    s = v
  else
    return nil, "must be a digit string or an integer"
  end
  if not find(s, "^%d+$") then return nil, "must contain digits only" end
  local max = spec and spec.max or 20
  if #s > max then return nil, format("must be at most %d digits", max) end
  if spec and spec.min and #s < spec.min then return nil, format("must be at least %d digits", spec.min) end
  return s
end

-- Wallet numbers and phones: international format without '+', 10..15 digits
-- (E.164 allows 15; Russian numbers have 11).
function _M.phone(v)
  if type(v) == "string" then v = gsub(v, "^%+", "", 1) end
  local s, err = _M.digits(v, { min = 10, max = 15 })
  if not s then
    if err == "must contain digits only" then err = "must be a phone number in international format" end
    return nil, err
  end
  if find(s, "^0") then return nil, "must be a phone number in international format" end
  return s
end
_M.wallet = _M.phone

function _M.integer(v, spec)
  if type(v) == "string" and find(v, "^%-?%d+$") then v = tonumber(v) end
  if type(v) ~= "number" or not is_integer(v) then return nil, "must be an integer" end
  if spec and spec.min and v < spec.min then return nil, format("must be at least %d", spec.min) end
  if spec and spec.max and v > spec.max then return nil, format("must be at most %d", spec.max) end
  return format("%d", v), v
end

function _M.enum(v, spec)
  if type(v) == "number" and spec.numbers then
    local name = spec.numbers[v]
    if name then return spec.wire and spec.wire[name] or name end
  end
  if type(v) ~= "string" then return nil, "must be one of " .. table.concat(spec.values, ", ") end
  local up = spec.case_insensitive and v:upper() or v
  for _, allowed in ipairs(spec.values) do
    if up == allowed then return spec.wire and spec.wire[allowed] or allowed end
  end
  return nil, "must be one of " .. table.concat(spec.values, ", ")
end

function _M.enum_list(v, spec)
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" or #v == 0 then return nil, "must be a non-empty list" end
  local out, seen = {}, {}
  for i = 1, #v do
    local item, err = _M.enum(v[i], spec)
    if not item then return nil, format("item %d %s", i, err) end
    if not seen[item] then
      seen[item] = true
      out[#out + 1] = item
    end
  end
  return out
end

-- 10 billion roubles: far above any QIWI limit, far below 2^53 kopecks, so
-- that k, k / 100 and k * 100 stay exact on every interpreter.
local MAX_KOPECKS = 1000000000000
local MAX_UNITS = MAX_KOPECKS / 100

-- Parses an amount into integer minor units (kopecks/cents). The range is
-- checked on the value as given, before any arithmetic: an integer times 100
-- wraps on 5.3+ (math.maxinteger became -100 kopecks), and a float rounds.
function _M.kopecks(v)
  local k
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil, "must be a finite number" end
    if v <= 0 then return nil, "must be greater than zero" end
    if v >= MAX_UNITS then return nil, "is too large (at most 9999999999.99)" end
    k = floor(v * 100 + 0.5)
    -- 0.1 + 0.2 is 0.30 to a user; 1.005 has a third decimal and is refused.
    -- The tolerance grows with the amount: a double holds ~16 digits.
    if math.abs(v * 100 - k) > math.max(1e-6, k * 4e-15) then
      return nil, "must have at most 2 decimal places"
    end
    -- 1e-9 passes the decimals test (it is 0.00 to two places) but is no amount
    if k < 1 then return nil, "must be at least 0.01" end
  elseif type(v) == "string" then
    local int, frac = match(v, "^(%d+)%.?(%d*)$")
    if not int or (frac == "" and find(v, "%.$")) then
      return nil, "must be a decimal number like 100.50"
    end
    if #frac > 2 then return nil, "must have at most 2 decimal places" end
    int = gsub(int, "^0+(%d)", "%1")
    if #int > 10 then return nil, "is too large (at most 9999999999.99)" end
    k = tonumber(int) * 100 + (tonumber(frac .. string.rep("0", 2 - #frac)) or 0)
    if k <= 0 then return nil, "must be greater than zero" end
  else
    return nil, "must be a number or a decimal string"
  end
  if k >= MAX_KOPECKS then return nil, "is too large (at most 9999999999.99)" end
  return k
end

-- The JSON value of an amount: an integer when whole, otherwise a float whose
-- shortest text has at most two decimals (k/100 always round-trips that way).
local function kopecks_value(k)
  if k % 100 == 0 then
    local whole = k / 100
    return math.tointeger and math.tointeger(whole) or whole
  end
  return k / 100
end
_M.kopecks_value = kopecks_value

function _M.amount(v)
  local k, err = _M.kopecks(v)
  if not k then return nil, err end
  return format("%d.%02d", floor(k / 100), k % 100), kopecks_value(k)
end

local MSK = 3 * 3600
-- os.date raises outside the years it can print; these bounds (1900-01-01
-- and 9999-12-31, UTC) keep every date check a refusal instead.
local MIN_TIME, MAX_TIME = -2208988800, 253402300799 - MSK

-- Days in a month of the proleptic Gregorian calendar.
local function days_in(y, m)
  if m == 2 then return (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28 end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

local function os_time_arg(v, min)
  if not is_integer(v) then return nil end
  if v < min or v > MAX_TIME then return nil end
  return v
end

-- Dates: QIWI's own text (any offset) or os.time() seconds, shown in Moscow time.
-- Returns the wire text, the JSON value (the same text) and the date's
-- seconds since the epoch (for range checks).
function _M.date(v)
  if type(v) == "number" then
    if not os_time_arg(v, 0) then
      return nil, "must be os.time() seconds (0 to year 9999) or a date string"
    end
    local text = os.date("!%Y-%m-%dT%H:%M:%S", v + MSK) .. "+03:00"
    return text, text, v
  end
  if type(v) ~= "string" then return nil, "must be os.time() seconds or a date string" end
  local y, mo, d, h, mi, s, sign, oh, om =
    match(v, "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)([%+%-])(%d%d):(%d%d)$")
  if not y then return nil, "must look like 2017-05-10T00:00:00+03:00" end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > days_in(y, mo) or h > 23 or mi > 59 or s > 59
      or tonumber(oh) > 14 or tonumber(om) > 59 then
    return nil, "is not a valid date"
  end
  -- seconds since the epoch, for range checks (days from civil date, proleptic Gregorian)
  local yy = mo <= 2 and y - 1 or y
  local era = floor(yy / 400)
  local yoe = yy - era * 400
  local mp = (mo + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  return v, v, days * 86400 + h * 3600 + mi * 60 + s - offset
end

-- "YYYY-MM-DD" (identification's birthDate) from a string or os.time() seconds
-- (negative before 1970: birth dates are).
function _M.day(v)
  if type(v) == "number" then
    if not os_time_arg(v, MIN_TIME) then
      return nil, "must be os.time() seconds (years 1900 to 9999) or look like 1998-02-11"
    end
    return os.date("!%Y-%m-%d", v + MSK)
  end
  local y, m, d = match(type(v) == "string" and v or "", "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil, "must look like 1998-02-11" end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 or d > days_in(y, m) then return nil, "is not a valid date" end
  return v
end

function _M.url(v, spec)
  local s, err = _M.string(v, spec)
  if not s then return nil, err end
  if not find(s, "^https?://[%w%.%-]+") then return nil, "must be an http(s) URL" end
  if find(s, "%s") then return nil, "must not contain spaces" end
  return s
end

function _M.email(v)
  local s, err = _M.string(v, { max = 254 })
  if not s then return nil, err end
  if not find(s, "^[^@%s]+@[^@%s]+%.[^@%s]+$") then return nil, "must be an e-mail address" end
  return s
end

-- Card numbers: 13..19 digits, spaces allowed between groups, Luhn-checked so
-- that a typo never reaches a payment.
function _M.card(v)
  if type(v) == "number" then v = _M.digits(v) end
  if type(v) ~= "string" then return nil, "must be a card number" end
  local s = gsub(v, "[ %-]", "")
  if not find(s, "^%d+$") or #s < 13 or #s > 19 then return nil, "must be a card number of 13 to 19 digits" end
  local sum, alt = 0, false
  for i = #s, 1, -1 do
    local n = s:byte(i) - 48
    if alt then
      n = n * 2
      if n > 9 then n = n - 9 end
    end
    sum = sum + n
    alt = not alt
  end
  if sum % 10 ~= 0 then return nil, "fails the card number checksum" end
  return s
end

function _M.currency(v)
  local codes = { [643] = "643", [840] = "840", [978] = "978", [398] = "398" }
  if type(v) == "string" then v = tonumber(v) end
  local s = codes[v]
  if not s then return nil, "must be a currency code: 643, 840, 978 or 398" end
  return s, tonumber(s)
end

function _M.uuid(v)
  if type(v) ~= "string" or not find(v, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
    return nil, "must be a UUID like 1747ea28-1082-41bc-bde4-72994b3ffeb4"
  end
  return v
end

-- A card number for the card-provider lookup, grouped by four as QIWI's
-- example sends it. No checksum here: a lookup moves no money.
function _M.card_spaced(v)
  if type(v) == "number" then v = _M.digits(v) end
  if type(v) ~= "string" then return nil, "must be a card number" end
  local s = gsub(v, "[ %-]", "")
  if not find(s, "^%d+$") or #s < 13 or #s > 19 then return nil, "must be a card number of 13 to 19 digits" end
  return (gsub(s, "(%d%d%d%d)", "%1 "):gsub(" $", ""))
end

-- Extra payment requisites (`fields`): string keys, string values.
function _M.fields(v)
  if type(v) ~= "table" then return nil, "must be a table of strings" end
  local out = {}
  for k, val in pairs(v) do
    if type(k) ~= "string" or not find(k, "^[%a_][%w_]*$") then return nil, "keys must be field names" end
    if type(val) == "number" then
      if not is_integer(val) then return nil, "value of " .. k .. " must be a string" end
      val = format("%d", val)
    end
    if type(val) ~= "string" then return nil, "value of " .. k .. " must be a string" end
    if has_control(val) then return nil, "value of " .. k .. " must not contain control characters" end
    if #val > 1000 then return nil, "value of " .. k .. " is too long" end
    out[k] = val
  end
  return out
end

-- Unix time in milliseconds, as the bills API wants it: dates and os.time()
-- seconds are converted; 13-digit values are taken as milliseconds already.
function _M.unix_ms(v)
  if type(v) == "string" and not find(v, "^%d+$") then
    local text, _, secs = _M.date(v)
    if not text or secs < 0 then return nil, "must be a date, os.time() seconds or Unix milliseconds" end
    return format("%.0f", secs * 1000)
  end
  local s, err = _M.digits(v, { max = 13 })
  if not s then return nil, err end
  if #s <= 11 then return format("%.0f", tonumber(s) * 1000) end
  return s
end

-- Invoice ids go in JSON as numbers (reject) — exact as integers.
function _M.bill_id(v)
  local s, err = _M.digits(v, { max = 18 })
  if not s then return nil, err end
  -- Lua 5.3+ reads a digit string as an exact integer; 5.1/LuaJIT only to 2^53.
  if not math.type and #s > 15 then return nil, "is too large for this Lua (no 64-bit integers)" end
  return s, tonumber(s)
end

-- A payment's idempotency key: the caller's own name for one payment (an
-- order number), from which its id is derived.
function _M.idempotency_key(v)
  if type(v) ~= "string" then return nil, "must be a string (an order number, say)" end
  if v == "" then return nil, "must not be empty" end
  if #v > 200 then return nil, "must be at most 200 bytes" end
  if has_control(v) then return nil, "must not contain control characters" end
  return v
end

function _M.table(v)
  if type(v) ~= "table" then return nil, "must be a table" end
  return v
end

-- Percent-encoding for query components: everything but RFC 3986 unreserved.
local function escape_char(c) return format("%%%02X", c:byte()) end
function _M.escape(s)
  return (gsub(s, "[^%w%-%._~]", escape_char))
end

return _M
