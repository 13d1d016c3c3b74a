-- A loopback port that never completes a TCP handshake, for the slow
-- connect fault without leaving 127.0.0.1.
--
-- A listener with a backlog of 0 that never accepts holds one connection in
-- its accept queue; once that is taken, Linux drops every further SYN
-- (tcp_conn_request: accept queue full), so a client stays in SYN-SENT until
-- its connect timeout. The listener lives in a LuaJIT child (FFI sockets,
-- whatever Lua runs the specs), held through a popen pipe: closing the pipe,
-- or this process dying, ends it (util.port_child).
local util = require "util"

local _M = {}

local CHILD = [=[
local ffi = require "ffi"
ffi.cdef [[
  struct bh_sockaddr_in { uint16_t family; uint8_t port[2]; uint8_t addr[4]; uint8_t zero[8]; };
  int socket(int domain, int type, int protocol);
  int bind(int fd, const struct bh_sockaddr_in *addr, uint32_t len);
  int listen(int fd, int backlog);
  int connect(int fd, const struct bh_sockaddr_in *addr, uint32_t len);
  int getsockname(int fd, struct bh_sockaddr_in *addr, uint32_t *len);
  int fcntl(int fd, int cmd, ...);
]]
local C = ffi.C
local AF_INET, SOCK_STREAM, F_SETFL, O_NONBLOCK = 2, 1, 4, 2048
local sa = ffi.new("struct bh_sockaddr_in")
sa.family = AF_INET
sa.addr[0], sa.addr[3] = 127, 1
local size = ffi.sizeof(sa)
local fd = C.socket(AF_INET, SOCK_STREAM, 0)
assert(fd >= 0 and C.bind(fd, sa, size) == 0 and C.listen(fd, 0) == 0, "listen failed")
local len = ffi.new("uint32_t[1]", size)
assert(C.getsockname(fd, sa, len) == 0)
-- Fill the accept queue; the spare attempts cover kernels that queue one more.
for _ = 1, 3 do
  local s = C.socket(AF_INET, SOCK_STREAM, 0)
  C.fcntl(s, F_SETFL, ffi.new("int", O_NONBLOCK))
  C.connect(s, sa, size)
end
port_ready(sa.port[0] * 256 + sa.port[1])
io.read("*l")
]=]

-- Returns {port=, stop=function}; raises if the listener does not come up.
function _M.start()
  local bh = util.port_child("blackhole", CHILD)
  if not bh then error("blackhole: the listener did not start (is luajit installed?)", 2) end
  return bh
end

return _M
