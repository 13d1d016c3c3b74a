-- A busted --helper for spec/secrets_spec.lua: records every secret given to
-- qiwi.new and every error the library builds, into $QIWI_SECRETS_LOG.
--   T<TAB>secret        a token or P2P key a client was made with
--   E<TAB>text          tostring(err) and every string field of one error
-- Loaded before the spec files, so the patched modules stay in
-- package.loaded through busted's per-file insulation and every spec gets
-- them.
local path = assert(os.getenv("QIWI_SECRETS_LOG"), "QIWI_SECRETS_LOG is not set")
local log = assert(io.open(path, "w"))

-- One record per line whatever the text holds.
local function flat(s)
  return (tostring(s):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\r", "\\r"))
end

local function write(kind, text)
  log:write(kind, "\t", flat(text), "\n")
  log:flush()
end

local qerror = require "qiwi.error"
local new_error = qerror.new
qerror.new = function(fields, secrets)
  local e = new_error(fields, secrets)
  local parts = { tostring(e) }
  for k, v in pairs(e) do
    if type(v) == "string" then parts[#parts + 1] = k .. "=" .. v end
  end
  write("E", table.concat(parts, " | "))
  return e
end

-- Patched before qiwi's init module copies client.new into its table.
local client = require "qiwi.client"
local new_client = client.new
client.new = function(opts)
  if type(opts) == "table" then
    for _, k in ipairs { "token", "p2p_secret_key" } do
      if type(opts[k]) == "string" and opts[k] ~= "" then write("T", opts[k]) end
    end
  end
  return new_client(opts)
end
assert(require("qiwi").new == client.new, "qiwi was loaded before the probe")
