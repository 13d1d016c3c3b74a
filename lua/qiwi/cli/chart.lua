-- `qiwi summary`: money in and out per month as horizontal bars, drawn in
-- the terminal. One scale for every bar, so that months compare at a glance.
local fmt = require "qiwi.cli.format"

local _M = { _VERSION = "qiwi.cli.chart 0.1.0" }

local rep, concat, floor = string.rep, table.concat, math.floor

-- Eighths of a character cell: a bar's length is exact to 1/8 of a cell.
local EIGHTHS = { "", "▏", "▎", "▍", "▌", "▋", "▊", "▉" }

-- A bar of `cells` character cells (a fraction allowed). Without UTF-8 the
-- bar is made of '#' and rounded to whole cells.
local function bar(cells, utf8)
  if not utf8 then return rep("#", floor(cells + 0.5)) end
  local eighths = floor(cells * 8 + 0.5)
  return rep("█", floor(eighths / 8)) .. EIGHTHS[eighths % 8 + 1]
end

-- True when the locale says the terminal takes UTF-8 (the first of LC_ALL,
-- LC_CTYPE, LANG that is set decides, as in libc).
function _M.utf8_locale(getenv)
  getenv = getenv or os.getenv
  for _, name in ipairs { "LC_ALL", "LC_CTYPE", "LANG" } do
    local v = getenv(name)
    if v and v ~= "" then return v:upper():gsub("%-", ""):find("UTF8") ~= nil end
  end
  return false
end

-- months: list of {label = "2024-05", incoming = number, outgoing = number},
-- oldest first. o: currency (letters), width (the terminal's columns),
-- utf8 (boolean). Returns the chart as text.
function _M.draw(months, o)
  local width = o.width or 80
  local amounts, max = {}, 0
  for i, m in ipairs(months) do
    amounts[i] = { fmt.amount(m.incoming), fmt.amount(m.outgoing) }
    max = math.max(max, m.incoming, m.outgoing)
  end
  local label_w, amount_w = 0, 0
  for i, m in ipairs(months) do
    label_w = math.max(label_w, fmt.width(m.label))
    amount_w = math.max(amount_w, #amounts[i][1], #amounts[i][2])
  end
  -- label, "in "/"out", the bar, the amount
  local room = math.max(10, width - label_w - 2 - 3 - 2 - 2 - amount_w - 1)
  local lines = { ("Money in and out per month, %s%s"):format(o.currency or "",
    max == 0 and " (no payments in these months)" or "") }
  local total_in, total_out = 0, 0
  for i, m in ipairs(months) do
    total_in, total_out = total_in + m.incoming, total_out + m.outgoing
    for k, side in ipairs { { "in ", m.incoming }, { "out", m.outgoing } } do
      local cells = max > 0 and side[2] / max * room or 0
      local b = bar(cells, o.utf8)
      local label = k == 1 and m.label or ""
      lines[#lines + 1] = concat {
        label, rep(" ", label_w - fmt.width(label)), "  ", side[1], "  ",
        b, rep(" ", room - fmt.width(b)), "  ", rep(" ", amount_w - #amounts[i][k]), amounts[i][k],
      }
    end
  end
  lines[#lines + 1] = ("total: in %s, out %s, net %s %s"):format(fmt.amount(total_in),
    fmt.amount(total_out), fmt.amount(total_in - total_out), o.currency or "")
  return concat(lines, "\n") .. "\n"
end

return _M
