-- What the `qiwi` command shows people: amounts with their currency, dates
-- in the user's own zone (TZ), aligned tables and CSV. Scripts get --json
-- instead, which none of this touches.
local args = require "qiwi.args"

local _M = { _VERSION = "qiwi.cli.format 0.1.0" }

local format, rep, concat = string.format, string.rep, table.concat

-- ISO 4217 letters of the currencies QIWI wallets hold.
_M.CURRENCY = { [643] = "RUB", [840] = "USD", [978] = "EUR", [398] = "KZT" }

function _M.currency(code)
  local n = tonumber(code)
  return _M.CURRENCY[n] or tostring(code or "")
end

-- Characters, not bytes: names and comments are often Cyrillic, and a table
-- padded by bytes would not line up.
local CHAR = "[%z\1-\127\194-\244][\128-\191]*"

function _M.width(s)
  local n = 0
  for _ in tostring(s):gmatch(CHAR) do n = n + 1 end
  return n
end

-- `s` cut to at most `max` characters, an ellipsis marking the cut.
function _M.cut(s, max)
  s = tostring(s or "")
  if _M.width(s) <= max then return s end
  local out, n = {}, 0
  for ch in s:gmatch(CHAR) do
    n = n + 1
    if n >= max then break end
    out[n] = ch
  end
  return concat(out) .. "…"
end

local function pad(s, w, right)
  local fill = rep(" ", w - _M.width(s))
  return right and fill .. s or s .. fill
end

-- "1234567.5" -> "1 234 567.50": digits grouped by three, two decimals.
-- A decimal string is shown digit for digit; a number is rounded to two
-- decimals, which is exact for every amount QIWI can hold (below 2^53/100).
function _M.amount(v)
  local s = type(v) == "string" and v or format("%.2f", tonumber(v) or 0)
  local sign, int, frac = s:match("^([%-+]?)(%d+)%.?(%d*)$")
  if not int then return s end
  frac = (frac .. "00"):sub(1, math.max(2, #frac))
  int = int:reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", "")
  return (sign == "-" and "-" or "") .. int .. "." .. frac
end

-- {amount=, currency=} as QIWI sends it -> "15 320.75 RUB"; `sign` ("+",
-- "-") is put in front when given.
function _M.money(m, sign)
  if type(m) ~= "table" then return "" end
  return (sign or "") .. _M.amount(m.amount) .. " " .. _M.currency(m.currency)
end

-- Seconds since the epoch of QIWI's date text (any offset), or nil.
function _M.epoch(text)
  if type(text) ~= "string" then return nil end
  local _, _, t = args.date(text)
  return t
end

-- QIWI's date text (or epoch seconds) in the user's zone: "2024-05-17 14:03".
function _M.date(v, with_seconds)
  local t = type(v) == "number" and v or _M.epoch(v)
  if not t then return tostring(v or "") end
  return os.date(with_seconds and "%Y-%m-%d %H:%M:%S" or "%Y-%m-%d %H:%M", t)
end

-- The same instant as ISO 8601 in the user's zone, with its offset
-- ("2024-05-17T14:03:00+02:00"), for CSV: unambiguous, and it sorts.
function _M.iso_date(v)
  local t = type(v) == "number" and v or _M.epoch(v)
  if not t then return tostring(v or "") end
  local z = os.date("%z", t)
  return os.date("%Y-%m-%dT%H:%M:%S", t) .. z:sub(1, 3) .. ":" .. z:sub(4, 5)
end

-- Rows (lists of strings) under a header row, columns separated by two
-- spaces; `right` names the columns aligned right (amounts). Returns the
-- lines as one string, each ending in "\n".
function _M.table(header, rows, right)
  right = right or {}
  local widths = {}
  for i, h in ipairs(header) do widths[i] = _M.width(h) end
  for _, row in ipairs(rows) do
    for i = 1, #header do
      local w = _M.width(row[i] or "")
      if w > widths[i] then widths[i] = w end
    end
  end
  local out = {}
  local function line(cells)
    local parts = {}
    for i = 1, #header do parts[i] = pad(cells[i] or "", widths[i], right[i]) end
    out[#out + 1] = (concat(parts, "  "):gsub("%s+$", ""))
  end
  line(header)
  for _, row in ipairs(rows) do line(row) end
  return concat(out, "\n") .. "\n"
end

-- "Name   value" lines for a record; pairs with an empty value are left out.
function _M.fields(pairs_list)
  local rows = {}
  for _, p in ipairs(pairs_list) do
    if p[2] ~= nil and p[2] ~= "" then rows[#rows + 1] = { p[1], tostring(p[2]) } end
  end
  local w = 0
  for _, r in ipairs(rows) do w = math.max(w, _M.width(r[1])) end
  local out = {}
  for i, r in ipairs(rows) do out[i] = pad(r[1], w) .. "  " .. r[2] end
  return concat(out, "\n") .. (#out > 0 and "\n" or "")
end

-- One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
-- break. A leading =, +, - or @ is prefixed with a quote mark: a
-- spreadsheet would run it as a formula, and comments come from strangers.
function _M.csv_field(v)
  local s = tostring(v == nil and "" or v)
  if s:find("^[=+%-@]") and not s:find("^[+%-]?[%d.]+$") then s = "'" .. s end
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function _M.csv_row(cells)
  local out = {}
  for i, c in ipairs(cells) do out[i] = _M.csv_field(c) end
  return concat(out, ",") .. "\r\n"
end

return _M
