-- A small RESP2 (the Redis protocol) codec over a socket object with the
-- LuaSocket/cosocket interface both have: sock:send(data) and
-- sock:receive("*l" | n), each returning nil, err on failure. The socket is
-- LuaSocket's socket.tcp() outside nginx and ngx.socket.tcp() inside.
local type, tostring, tonumber, format, concat = type, tostring, tonumber, string.format, table.concat
local byte, sub = string.byte, string.sub

local _M = {}

-- Caps against a broken or hostile server: no reply of ours comes near.
local MAX_BULK = 64 * 1024 * 1024
local MAX_ARRAY = 1024 * 1024
local MAX_DEPTH = 8

-- The request for one command: an array of bulk strings. Numbers go as
-- integers when they are integral ("%d"), else with all their digits.
function _M.encode(args, n)
  n = n or #args
  local out = { "*" .. n .. "\r\n" }
  for i = 1, n do
    local a = args[i]
    if type(a) == "number" then
      a = (a == math.floor(a) and a > -2 ^ 63 and a < 2 ^ 63) and format("%d", a) or format("%.17g", a)
    else
      a = tostring(a)
    end
    out[#out + 1] = "$" .. #a .. "\r\n"
    out[#out + 1] = a
    out[#out + 1] = "\r\n"
  end
  return concat(out)
end

local function read(sock, depth)
  local line, err = sock:receive("*l")
  if not line then return nil, err, "io" end
  local t, rest = byte(line, 1), sub(line, 2)
  if t == 43 then                 -- + status
    return true, rest
  elseif t == 45 then             -- - error
    return nil, rest, "redis"
  elseif t == 58 then             -- : integer
    local n = tonumber(rest)
    if not n then return nil, "bad integer reply", "protocol" end
    return true, math.tointeger and math.tointeger(n) or n
  elseif t == 36 then             -- $ bulk string
    local n = tonumber(rest)
    if n == -1 then return true, nil end
    if not n or n < 0 or n > MAX_BULK or n ~= math.floor(n) then return nil, "bad bulk length", "protocol" end
    local data
    data, err = sock:receive(n + 2)
    if not data then return nil, err, "io" end
    if sub(data, -2) ~= "\r\n" then return nil, "bad bulk terminator", "protocol" end
    return true, sub(data, 1, n)
  elseif t == 42 then             -- * array
    local n = tonumber(rest)
    if n == -1 then return true, nil end
    if not n or n < 0 or n > MAX_ARRAY or n ~= math.floor(n) then return nil, "bad array length", "protocol" end
    if depth >= MAX_DEPTH then return nil, "replies nested too deep", "protocol" end
    local arr = {}
    for i = 1, n do
      local ok, v, kind = read(sock, depth + 1)
      if ok then
        if v == nil then v = false end
      elseif kind == "redis" then
        v = { err = v }          -- an error inside an array (EXEC) stays a value
      else
        return nil, v, kind
      end
      arr[i] = v
    end
    return true, arr
  end
  return nil, "unknown reply type " .. format("%q", sub(line, 1, 1)), "protocol"
end

-- One reply: true, value (nil for a null bulk string or array; false for a
-- null inside an array) | nil, message, kind where kind is "redis" (an error
-- reply: the connection is still good), "io" (the socket failed: timeout,
-- closed, ...) or "protocol" (not RESP2: the connection is unusable).
function _M.read(sock)
  return read(sock, 0)
end

-- Sends one command and reads its reply; same results as read, the send's
-- failure being of kind "io".
function _M.call(sock, args, n)
  local ok, err = sock:send(_M.encode(args, n))
  if not ok then return nil, err, "io" end
  return read(sock, 0)
end

return _M
