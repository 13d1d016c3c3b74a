-- Assertions that several specs make the same way.
--
--   local checks = require "checks"      -- this file (spec/support/checks.lua)
local qerror = require "qiwi.error"
local assert = require "luassert"
local util = require "util"

local checks = {}

-- Every string an error shows: tostring and each string field ("k=v").
function checks.texts_of(err)
  local out = { tostring(err) }
  for k, v in pairs(err) do
    if type(v) == "string" then out[#out + 1] = k .. "=" .. v end
  end
  return out
end

-- Every string reachable from a value through tables (keys, values,
-- metatables; numbers as their text), as a dump of it (inspect, serpent)
-- would show: where a secret must not be.
function checks.strings_in(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "number" then
    out[#out + 1] = tostring(v)
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in next, v do
      checks.strings_in(k, out, seen)
      checks.strings_in(x, out, seen)
    end
    checks.strings_in(getmetatable(v), out, seen)
  end
  return out
end

-- named(what, kind, v, err): v is nil and err a qiwi error of that kind
-- (`what` names the case in a failure); returns err.
function checks.named(what, kind, v, err)
  assert.is_nil(v, what)
  assert.is_table(err, what)
  assert.equal(qerror.mt, getmetatable(err), what)
  assert.equal(kind, err.kind, (what or "") .. ": " .. tostring(err))
  return err
end

-- assert_kind(kind, v, err): named without a name.
function checks.assert_kind(kind, v, err)
  return checks.named(nil, kind, v, err)
end

-- What n processes that hammered one store each o.incr times with incr and
-- then for o.admit_for seconds with admit (o.limit per o.window) must show:
-- the incr values exactly 1..n * o.incr (none lost or repeated), no window
-- over the limit (util.check_windows), and about as many events admitted as
-- that time allows. Returns how many were admitted.
function checks.hammer(values, events, n, o)
  assert.equal(n * o.incr, #values, "incr calls that failed")
  table.sort(values)
  for i = 1, #values do
    assert.equal(i, values[i], "incr values are not exactly 1.." .. #values .. ": a lost or repeated update")
  end
  local ok, why = util.check_windows(events, o.limit, o.window)
  assert.is_true(ok, why)
  -- At most `limit` per window over the span the events took: each process
  -- admits for admit_for from the end of its own incr phase, so the spans
  -- of a slow and a fast one add up to more than admit_for (with 0.6 s
  -- between them a bound of admit_for alone was over by a window).
  local first, last = math.huge, -math.huge
  for _, e in ipairs(events) do first, last = math.min(first, e.b), math.max(last, e.a) end
  local span = #events > 0 and last - first or 0
  assert.is_true(#events <= o.limit * (math.ceil(span / o.window) + 1),
    ("%d events admitted within %.3f s"):format(#events, span))
  local windows = o.admit_for / o.window
  assert.is_true(#events >= o.limit * math.floor(windows) / 2, "only " .. #events .. " events admitted")
  return #events
end

return checks
