-- Host names inside nginx go through nginx's `resolver`, whose own timeout
-- (resolver_timeout, 30 s by default, queries resent every 5 s) knows
-- nothing of the client's connect_timeout. Here the resolver is a loopback
-- address that never answers: a UDP port nobody listens on (each query is
-- refused with an ICMP port unreachable) or a UDP socket that takes queries
-- and never reads them (each query is dropped). Either way the call must
-- give up within about connect_timeout and say that nginx's resolver is the
-- likely cause and what to do about it. A third resolver answers every name
-- with 127.0.0.1, for the path where the lookup works. No packet leaves
-- 127.0.0.1.
--
-- Tagged "nginx": `make test` runs it once, with the other nginx specs.
local https_fake = require "https_fake"
local blackhole = require "blackhole"
local qiwi = require "qiwi"
local util = require("pki").util

local wait_until = util.wait_until

-- A local UDP port with no socket on it, v4 or v6.
local function unused_udp_port()
  return util.free_port(util.ports_in_use("udp"))
end

-- A UDP socket on 127.0.0.1 standing in for a DNS server: "silent" never
-- reads it (queries vanish without an answer or an ICMP error); "answer"
-- answers every A query with 127.0.0.1, "slow" does so after 600 ms, and
-- "nxdomain" answers that no such name exists. A LuaJIT child (FFI
-- sockets) held through a popen pipe: closing the pipe, or this process
-- dying, ends it (util.port_child).
local DNS_CHILD = [=[
local ffi = require "ffi"
ffi.cdef [[
  struct rs_sockaddr_in { uint16_t family; uint8_t port[2]; uint8_t addr[4]; uint8_t zero[8]; };
  struct rs_pollfd { int fd; short events; short revents; };
  int socket(int domain, int type, int protocol);
  int bind(int fd, const struct rs_sockaddr_in *addr, uint32_t len);
  int getsockname(int fd, struct rs_sockaddr_in *addr, uint32_t *len);
  int poll(struct rs_pollfd *fds, unsigned long n, int timeout);
  long recvfrom(int fd, uint8_t *buf, size_t len, int flags, struct rs_sockaddr_in *from, uint32_t *fromlen);
  long sendto(int fd, const uint8_t *buf, size_t len, int flags, const struct rs_sockaddr_in *to, uint32_t tolen);
]]
local C = ffi.C
local mode = arg[1]
local sa = ffi.new("struct rs_sockaddr_in")
sa.family = 2
sa.addr[0], sa.addr[3] = 127, 1
local size = ffi.sizeof(sa)
local fd = C.socket(2, 2, 0)
assert(fd >= 0 and C.bind(fd, sa, size) == 0, "bind failed")
local len = ffi.new("uint32_t[1]", size)
assert(C.getsockname(fd, sa, len) == 0)
port_ready(sa.port[0] * 256 + sa.port[1])
if mode == "silent" then io.read("*l") return end
local fds = ffi.new("struct rs_pollfd[2]")
fds[0].fd, fds[0].events = 0, 1
fds[1].fd, fds[1].events = fd, 1
local buf, from = ffi.new("uint8_t[512]"), ffi.new("struct rs_sockaddr_in")
while true do
  C.poll(fds, 2, -1)
  if fds[0].revents ~= 0 then return end
  len[0] = size
  local n = tonumber(C.recvfrom(fd, buf, 512, 0, from, len))
  if n and n > 12 then
    local q = ffi.string(buf, n)
    -- the question ends after its name (labels up to a zero byte), type and class
    local stop = 13
    while stop <= n and q:byte(stop) ~= 0 do stop = stop + q:byte(stop) + 1 end
    local question = q:sub(13, stop + 4)
    local answer = q:sub(1, 2) .. "\129\128\0\1\0\1\0\0\0\0" .. question
      .. "\192\12\0\1\0\1\0\0\0\60\0\4\127\0\0\1"
    if mode == "nxdomain" then answer = q:sub(1, 2) .. "\129\131\0\1\0\0\0\0\0\0" .. question end
    if mode == "slow" then C.poll(nil, 0, 600) end
    C.sendto(fd, answer, #answer, 0, from, len[0])
  end
end
]=]

local function dns_stub(mode)
  return util.port_child("dns-stub", DNS_CHILD, { mode })
    or error("the DNS stub did not come up (is luajit installed?)")
end

describe("host names inside nginx #nginx", function()
  local refused, dropped, answered, slow, nxdomain, fake, hole
  local stubs = {}

  -- An nginx running the test client (spec/support/nginx_client.lua) with
  -- the given resolver, trusting the test CA.
  local function app_with_resolver(port)
    return https_fake.start {
      lua_path = https_fake.SUPPORT_PATH,
      location_lua = "ngx.exit(404)",
      http_extra = table.concat({
        https_fake.client_http(fake.ca_file),
        -- and nginx's default resolver_timeout, 30 s
        "    resolver 127.0.0.1:" .. port .. " ipv6=off;",
        "    lua_shared_dict results 1m;",
      }, "\n"),
      server_extra = table.concat({
        '        location = /t/call { content_by_lua_block { require("nginx_client").call() } }',
        '        location = /t/result { content_by_lua_block { require("nginx_client").result() } }',
        -- a call from a coroutine of the handler's own, and one from a timer
        "        location = /t/elsewhere { content_by_lua_block {",
        '            local qiwi = require "qiwi"',
        "            local base = ngx.var.arg_base",
        "            local function outcome()",
        "                local c = assert(qiwi.new { token = \"test-token\", wallet = \"79111234567\",",
        "                    base_url = base, connect_timeout = 1, retries = 0 })",
        "                local res, err = c:accounts()",
        '                return qiwi.json.encode { ok = res ~= nil, kind = err and err.kind, message = err and err.message }',
        "            end",
        '            if ngx.var.arg_where == "timer" then',
        '                assert(ngx.timer.at(0, function() ngx.shared.results:set("timer", outcome()) end))',
        '                return ngx.say("{}")',
        "            end",
        "            ngx.say(coroutine.wrap(outcome)())",
        "        } }",
      }, "\n"),
    }
  end

  setup(function()
    util.need_luajit_core()
    fake = https_fake.start { fake = { token = "test-token", wallet = "79111234567", balance = "77.5" } }
    hole = blackhole.start()
    stubs.silent = dns_stub("silent")
    stubs.answer = dns_stub("answer")
    stubs.slow = dns_stub("slow")
    stubs.nxdomain = dns_stub("nxdomain")
    refused = app_with_resolver(unused_udp_port())
    dropped = app_with_resolver(stubs.silent.port)
    answered = app_with_resolver(stubs.answer.port)
    slow = app_with_resolver(stubs.slow.port)
    nxdomain = app_with_resolver(stubs.nxdomain.port)
  end)

  teardown(function()
    for _, srv in ipairs { refused, dropped, answered, slow, nxdomain, fake } do
      if srv then srv:stop() end
    end
    for _, stub in pairs(stubs) do stub.stop() end
    if hole then hole.stop() end
  end)

  -- A client call inside app; returns the outcome and the seconds it took,
  -- as seen from outside nginx.
  local function call(app, args)
    local t0 = util.now()
    local status, body, cerr = app:curl("GET", "/t/call?" .. util.query(args), nil, 40)
    local elapsed = util.now() - t0
    assert(status == 200, ("/t/call answered %s %s %s\n--- error.log ---\n%s"):format(
      status, body, cerr, app:error_log(20)))
    return qiwi.json.decode(body), elapsed
  end

  local function check_unresolved(app, what)
    local v, elapsed = call(app, { base = "https://qiwi-resolver.test", connect_timeout = 1, timeout = 20 })
    print(("\n[nginx] resolver %s, connect_timeout 1 s: %.2f s: %s"):format(what, elapsed, v.err and v.err.message))
    assert.is_false(v.ok)
    assert.equal("network", v.err.kind)
    assert.is_true(elapsed < 3, ("the call took %.2f s"):format(elapsed))
    local m = v.err.message
    assert.matches('"qiwi-resolver.test" could not be resolved by nginx\'s `resolver` within connect_timeout (1 s)',
      m, 1, true)
    assert.matches("reachable DNS server", m, 1, true)
    assert.matches('resolve = {["qiwi-resolver.test"] = "<ip>"}', m, 1, true)
    -- one line, and nothing of the token
    assert.not_matches("\n", v.err.text)
    assert.not_matches("test-token", v.err.text, 1, true)
  end

  describe("with a resolver that never answers", function()
    it("gives up within connect_timeout when it refuses, naming the cause and the fix", function()
      check_unresolved(refused, "refusing")
    end)

    it("gives up within connect_timeout when it drops the queries", function()
      check_unresolved(dropped, "dropping")
    end)

    it("spends about connect_timeout per attempt when the call retries", function()
      local v, elapsed = call(refused, { base = "https://qiwi-resolver.test", connect_timeout = 1,
                                         timeout = 20, retries = 1 })
      assert.equal("network", v.err.kind)
      assert.is_true(elapsed < 5, ("two attempts took %.2f s"):format(elapsed))
    end)

    it("is bounded by what is left of the call's timeout when that is shorter", function()
      local v, elapsed = call(refused, { base = "https://qiwi-resolver.test", connect_timeout = 10, timeout = 1 })
      assert.equal("network", v.err.kind)
      assert.is_true(elapsed < 3, ("the call took %.2f s"):format(elapsed))
      assert.matches("within the 1 s left of the call's timeout", v.err.message, 1, true)
    end)

    it("is not asked for an address, or a name pinned with resolve", function()
      local v = call(refused, { base = "https://fake.qiwi.test:" .. fake.port, resolve = "fake.qiwi.test=127.0.0.1",
                                connect_timeout = 1 })
      assert.is_true(v.ok, v.err and v.err.message)
      v = call(refused, { base = "https://fake.qiwi.test:1", resolve = "fake.qiwi.test=127.0.0.1",
                          connect_timeout = 1 })
      assert.equal("network", v.err.kind)
      assert.matches("connection refused", v.err.message, 1, true)
      assert.not_matches("resolver", v.err.message, 1, true)
    end)
  end)

  describe("with a resolver that answers", function()
    before_each(function()
      fake:reset { token = "test-token", wallet = "79111234567", balance = "77.5" }
    end)

    it("connects to the name it resolves, and reuses the connection", function()
      local base = "https://fake.qiwi.test:" .. fake.port
      for _ = 1, 3 do
        local v = call(answered, { base = base, connect_timeout = 1 })
        assert.is_true(v.ok, v.err and v.err.message)
        assert.equal(77.5, v.result.accounts[1].balance.amount)
      end
      local reqs = fake:requests()
      assert.equal(3, #reqs)
      assert.equal("fake.qiwi.test:" .. fake.port, reqs[1].headers.host)
      assert.equal(reqs[1].connection, reqs[3].connection, "the pooled connection was not reused")
    end)

    it("works the same from a coroutine of the handler and from a timer", function()
      local base = "https://fake.qiwi.test:" .. fake.port
      for _, app in ipairs { answered, refused } do
        local t0 = util.now()
        local status, body = app:curl("GET", "/t/elsewhere?where=coroutine&base=" .. base)
        assert.equal(200, status, body)
        local v = qiwi.json.decode(body)
        if app == answered then
          assert.is_true(v.ok, v.message)
        else
          assert.equal("network", v.kind)
          assert.matches("could not be resolved by nginx's `resolver` within connect_timeout", v.message, 1, true)
        end
        assert.is_true(util.now() - t0 < 3)
        assert.equal(200, (app:curl("GET", "/t/elsewhere?where=timer&base=" .. base)))
        local got = wait_until(3, function()
          local st, b = app:curl("GET", "/t/result?key=timer")
          return st == 200 and qiwi.json.decode(b)
        end)
        assert.truthy(got, "the timer left no result")
        if app == answered then
          assert.is_true(got.ok, got.message)
        else
          assert.equal("network", got.kind)
          assert.matches("could not be resolved by nginx's `resolver` within connect_timeout", got.message, 1, true)
        end
      end
    end)

    it("reports a connect that hangs after the lookup as a timeout, not as the resolver", function()
      local v, elapsed = call(answered, { base = "https://fake.qiwi.test:" .. hole.port, connect_timeout = 1 })
      assert.equal("timeout", v.err.kind, v.err.message)
      assert.is_true(elapsed < 3, ("the call took %.2f s"):format(elapsed))
      assert.not_matches("resolver", v.err.message, 1, true)
    end)

    it("tells a slow lookup followed by a hanging connect from a lookup that never ended", function()
      -- the answer comes after 0.6 s, then the connect hangs: at 1 s the
      -- name is resolved, so this is the connect's timeout (the socket's
      -- own would only come at 1.6 s)
      -- timed inside nginx (v.elapsed): the curl process and the request to
      -- nginx around it are no part of what is bounded here
      local v = call(slow, { base = "https://slow.qiwi.test:" .. hole.port, connect_timeout = 1 })
      assert.equal("timeout", v.err.kind, v.err.message)
      assert.is_true(v.elapsed >= 0.9 and v.elapsed < 1.5, ("the call took %.2f s"):format(v.elapsed))
      assert.not_matches("resolver", v.err.message, 1, true)
      -- and a slow lookup within connect_timeout is no failure
      v = call(slow, { base = "https://fake.qiwi.test:" .. fake.port, connect_timeout = 2 })
      assert.is_true(v.ok, v.err and v.err.message)
    end)
  end)

  it("says so at once when the resolver knows no such name", function()
    local v, elapsed = call(nxdomain, { base = "https://no-such.qiwi.test", connect_timeout = 5 })
    assert.equal("network", v.err.kind)
    assert.is_true(elapsed < 2, ("the call took %.2f s"):format(elapsed))
    assert.matches('"no-such.qiwi.test" could not be resolved by nginx\'s `resolver` (3: Host not found)',
      v.err.message, 1, true)
    assert.matches("no IPv4 address for that name", v.err.message, 1, true)
    assert.matches('resolve = {["no-such.qiwi.test"] = "<ip>"}', v.err.message, 1, true)
  end)

  it("leaves nothing worse than the resolver's own errors in nginx's logs", function()
    for _, app in ipairs { refused, dropped, answered, slow, nxdomain } do
      local log = util.read_file(app.prefix .. "/logs/error.log") or ""
      for _, bad in ipairs { "[alert]", "[crit]", "[emerg]", "runtime error", "aborted", "zombie" } do
        assert.not_matches(bad, log, 1, true)
      end
    end
  end)
end)
