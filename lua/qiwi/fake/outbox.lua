-- The notifications the fake sends when it is served by nginx
-- (qiwi.fake.nginx marks the instances it serves): wallet webhooks
-- (webhooks.lua) and P2P bill notifications (p2p.lua) alike are POSTed to
-- their URL from a timer, so that the request that made one is answered
-- first, as QIWI does, and tried again a few times while the receiver
-- answers anything but 200. An entry n: url, body, headers (name -> value,
-- beside Content-Type and Accept); the outcome goes to n.delivered (the
-- last HTTP status), n.attempts and n.error.
local U = require "qiwi.fake.util"

local _M = {}

-- Seconds before each try.
_M.DELAYS = { 0, 0.2, 0.5, 1 }

-- One POST; the status, or nil, why.
local function post(n)
  local u = U.parse_url(n.url)
  if not u or (u.scheme ~= "http" and u.scheme ~= "https") then return nil, "not an http(s) URL" end
  local sock = ngx.socket.tcp()
  sock:settimeout(5000)
  local port = u.port or (u.scheme == "https" and 443 or 80)
  local ok, err = sock:connect(u.host, port)
  if not ok then return nil, "connect: " .. tostring(err) end
  if u.scheme == "https" then
    -- verified against nginx's lua_ssl_trusted_certificate
    ok, err = sock:sslhandshake(nil, u.host, true)
    if not ok then
      sock:close()
      return nil, "TLS: " .. tostring(err)
    end
  end
  local lines = {
    "POST " .. u.path .. (u.query ~= "" and ("?" .. u.query) or "") .. " HTTP/1.1",
    "Host: " .. u.host .. (u.port and (":" .. u.port) or ""),
    "Accept: application/json", "Content-Type: application/json",
  }
  for k, v in pairs(n.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = "Content-Length: " .. #n.body
  lines[#lines + 1] = "Connection: close"
  lines[#lines + 1] = ""
  lines[#lines + 1] = n.body
  ok, err = sock:send(table.concat(lines, "\r\n"))
  if not ok then
    sock:close()
    return nil, "send: " .. tostring(err)
  end
  local line
  line, err = sock:receive("*l")
  sock:close()
  local status = line and tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then return nil, "no HTTP answer: " .. tostring(err or line) end
  return status
end

local function deliver(premature, n, i)
  if premature then return end
  n.attempts = i
  local status, err = post(n)
  n.delivered, n.error = status, err
  if status == 200 or i >= #_M.DELAYS then return end
  ngx.timer.at(_M.DELAYS[i + 1], deliver, n, i + 1)
end

-- Sends n when fake f is served by nginx; else leaves it in the fake's log only.
function _M.send(f, n)
  if not (f.serves_http and type(n.url) == "string") then return end
  local ok, err = ngx.timer.at(0, deliver, n, 1)
  if not ok then n.error = "timer: " .. tostring(err) end
end

return _M
