-- Client payment ids: at most 20 digits, unique and increasing.
--
-- An id is <milliseconds:13><process:3><sequence:3> (19 digits). Within one
-- process ids strictly increase even for thousands of payments in the same
-- millisecond (the sequence borrows from the next millisecond when it runs
-- out) and all clients of a Lua state share the counter. The process part
-- keeps two nginx workers paying in the same millisecond apart. Kept as a
-- string: LuaJIT could not hold 19 digits exactly.
local core = require "qiwi.core"

local _M = {}

local last_ms, seq = 0, -1
local proc

local function process_part()
  local pid = core.getpid()
  if type(ngx) == "table" and ngx.worker and ngx.worker.pid then
    local ok, wpid = pcall(ngx.worker.pid)
    if ok and wpid then pid = wpid end
  end
  return string.format("%03d", pid % 1000)
end

function _M.next()
  proc = proc or process_part()
  local ms = math.floor(core.now_ms())
  if ms > last_ms then
    last_ms, seq = ms, 0
  else
    seq = seq + 1
    if seq > 999 then last_ms, seq = last_ms + 1, 0 end
  end
  return string.format("%.0f%s%03d", last_ms, proc, seq)
end

return _M
