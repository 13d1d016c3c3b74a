-- The default transport outside nginx: a libcurl session of the C core.
local core = require "qiwi.core"

local _M = {}
local mt = { __index = _M }

-- opts: headers (constant header lines), timeout, connect_timeout, ca_file,
-- user_agent, resolve (list of "host:port:ip"), allow_http, max_body
function _M.new(opts)
  local session = core.session(opts)
  return setmetatable({ session = session }, mt)
end

-- req: method, url, extra_headers (per-call lines; the constant ones live in
-- the session), body, raw (no decoding), timeout, once (a new connection, so
-- that libcurl never repeats the request by itself)
function _M:request(req)
  local status, body, headers, decoded = self.session:request(
    req.method, req.url, req.extra_headers, req.body, not req.raw, req.timeout, req.once == true)
  if not status then return nil, body, headers end
  if decoded == true then
    return { status = status, headers = headers, data = body, decoded = true }
  end
  return { status = status, headers = headers, body = body, decode_error = decoded }
end

function _M:close()
  self.session:close()
end

return _M
