-- The floor under any Lua client of this C core that hands back decoded
-- tables: the client's requests (its header lines) for accounts(), sent
-- through qiwi.core's session alone, each answer decoded, no client around
-- them. Used in-process by bench/run.lua (per-call) and as a process of its
-- own by bench/process_calls.lua (whole process, mode "core").
--
--   local floor = dofile("bench/floor.lua")(base_url, ca_file, token, wallet)
--   floor.call() -> the decoded answer; floor.close()
return function(base_url, ca_file, token, wallet)
  local core = require "qiwi.core"
  local lines = require("qiwi.builder").base_headers(token, nil, "lua-qiwi/" .. require("qiwi.version")).token
  local session, hl = core.session { ca_file = ca_file }, assert(core.header_list(lines))
  local url = base_url .. "/funding-sources/v2/persons/" .. wallet .. "/accounts"
  local floor = {}
  function floor.call()
    local status, why, _, v = session:send("GET", url, hl, nil, 10, false, true)
    if status ~= 200 or type(v) ~= "table" then error("core send failed: " .. tostring(status) .. " " .. tostring(why)) end
    return v
  end
  function floor.close() session:close() end
  return floor
end
