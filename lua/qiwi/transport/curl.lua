-- The default transport outside nginx: a libcurl session of the C core, one
-- kept-alive connection per client and auth.
--
-- The transport contract, the same for every transport (this one, the
-- cosocket one inside nginx, qiwi.fake, a user's own):
--   t:request(method, url, headers, body, timeout, once)
--     -> status, body, headers          an answer (any status)
--     -> nil, kind, message[, code]     no answer
--   headers  the complete list of header lines ("Name: value"), the same
--            table for every call of a row: a transport may cache what it
--            builds from it on the table's identity, and never changes it
--   body     the request body (JSON text) or nil
--   timeout  seconds left for this attempt
--   once     true for a request that must not be sent twice: a transport
--            must not repeat it by itself (a new connection, no silent
--            re-send on a dead kept-alive one)
--   answer   body as text ("" when none) and a table of the answer headers
--            with lower-case names (at least content-type and retry-after)
--   kind     "network", "timeout", "tls", "http" or "argument"; code a
--            name such as libcurl's "CURLE_COULDNT_CONNECT", where known
-- Optional: t:usable() -> true or nil, kind, message (asked before anything
-- that could wait), and t:close().
-- This transport also takes a 7th argument, decode (the client passes it to
-- its own transports only): true lets a 2xx JSON answer come back decoded,
--     -> status, nil, nil, value
-- straight from libcurl's receive buffer (no body string, no headers
-- table: a success needs neither); every other answer as above.
local core = require "qiwi.core"

local header_list = core.header_list

local _M = {}
local mt = { __index = _M }

-- The libcurl header list built from a table of lines, once per table: the
-- client hands the same table for every call of a row. Weak keys, so a
-- client dropped takes its lists (which hold the token) along; shared by
-- the libcurl transports and the batch of a Lua state.
local lists = setmetatable({}, { __mode = "k" })

-- The header_list userdata for `lines`, or nil, kind, message, code.
function _M.header_list(lines)
  local hl = lists[lines]
  if hl then return hl end
  local kind, message, code
  hl, kind, message, code = header_list(lines)
  if not hl then return nil, kind, message, code end
  lists[lines] = hl
  return hl
end
local list_for = _M.header_list

-- opts: timeout, connect_timeout, ca_file, resolve (list of "host:port:ip"),
-- allow_http, max_body, and proxy (scheme://host:port, no user info) with
-- proxy_username / proxy_password (see client.curl_options)
function _M.new(opts)
  return setmetatable({ session = core.session(opts) }, mt)
end

function _M:request(method, url, headers, body, timeout, once, decode)
  local hl
  if headers then
    hl = lists[headers]
    if not hl then
      local kind, message, code
      hl, kind, message, code = list_for(headers)
      if not hl then return nil, kind, message, code end
    end
  end
  return self.session:send(method, url, hl, body, timeout, once == true, decode == true)
end

function _M:close()
  self.session:close()
end

return _M
