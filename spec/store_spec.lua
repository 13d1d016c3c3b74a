-- qiwi.store: the same interface battery against the memory store, the file
-- store (a temp dir) and the redis store (a real redis-server from
-- spec/support/redis.lua), then what only one of them has (Redis down and
-- back, timeouts, the password kept out of errors, file names), then real
-- processes hammering one file store and one Redis: no lost update, and no
-- window with more than `limit` admitted events. The shdict store's battery
-- runs inside nginx (store_nginx_spec.lua).
local store = require "qiwi.store"
local core = require "qiwi.core"
local redis_harness = require "redis"
local checks = require "checks"
local util = require("pki").util

local shq = util.shq
local unpack = table.unpack or unpack -- luacheck: ignore
local tointeger = math.tointeger or function(x) return x end

local MAX = 2 ^ 53 - 1
local HAVE_FS = core.fs_lock ~= nil

local function sleep(s) core.sleep(s) end
local now = core.monotonic

-- Calls a method and fails the test if it raised: every store method
-- answers with values, never an error thrown.
local function call(s, method, ...)
  local r = { pcall(s[method], s, ...) }
  assert(r[1], ("%s:%s raised: %s"):format(tostring(s.name), method, tostring(r[2])))
  return r[2], r[3], r[4]
end

local named, assert_kind = checks.named, checks.assert_kind
local interpreter = util.interpreter

local function tmpdir(tag) return util.tmpdir("store-" .. tag) end

local function ls(dir) return util.lines("ls -A " .. shq(dir) .. " 2>/dev/null") end

local function fresh() return util.fresh("t") end

---------------------------------------------------------------------------
-- The battery: `make()` gives a store; keys are fresh in every test.

local function battery(name, make)
  describe("the " .. name .. " store", function()
    local s, k
    setup(function() s = make() end)
    before_each(function() k = fresh() end)

    it("has its name", function()
      assert.equal(name, s.name)
      assert.is_true(store.check(s))
    end)

    it("get of an absent key is nil, nil", function()
      local v, err = call(s, "get", k)
      assert.is_nil(v)
      assert.is_nil(err)
    end)

    it("set then get gives strings back, integers as their text", function()
      assert.is_true(call(s, "set", k, "hello"))
      assert.equal("hello", (call(s, "get", k)))
      assert.is_true(call(s, "set", k, 42))
      assert.equal("42", (call(s, "get", k)))
      assert.is_true(call(s, "set", k, -MAX))
      assert.equal(string.format("%d", -MAX), (call(s, "get", k)))
      assert.is_true(call(s, "set", k, 7.0))
      assert.equal("7", (call(s, "get", k)))
      local bytes = "a\0b\r\n\255 \"'" .. string.rep("x", 100000)
      assert.is_true(call(s, "set", k, bytes))
      assert.equal(bytes, (call(s, "get", k)))
      assert.is_true(call(s, "set", k, ""))
      assert.equal("", (call(s, "get", k)))
    end)

    it("keys are distinct byte strings (case, spaces, dots, slashes, UTF-8)", function()
      local keys = { k .. "a", k .. "A", k .. " a", k .. "/../a", k .. ".", k .. "ключ" }
      for i, key in ipairs(keys) do assert.is_true(call(s, "set", key, i)) end
      for i, key in ipairs(keys) do assert.equal(tostring(i), (call(s, "get", key))) end
    end)

    it("delete removes a key, and an absent key is fine", function()
      assert.is_true(call(s, "set", k, "v"))
      assert.is_true(call(s, "delete", k))
      assert.is_nil((call(s, "get", k)))
      assert.is_true(call(s, "delete", k))
      assert.is_true(call(s, "delete", k .. "never"))
    end)

    it("add adds once, and keeps the first value", function()
      assert.is_true(call(s, "add", k, "first"))
      assert.is_false(call(s, "add", k, "second"))
      assert.equal("first", (call(s, "get", k)))
      assert.is_true(call(s, "delete", k))
      assert.is_true(call(s, "add", k, 5))
      assert.equal("5", (call(s, "get", k)))
    end)

    it("incr starts at 0, returns integers, and takes by (1 by default, negative too)", function()
      local v = call(s, "incr", k)
      assert.equal(1, v)
      if math.type then assert.equal("integer", math.type(v)) end
      assert.equal(6, (call(s, "incr", k, 5)))
      assert.equal(-4, (call(s, "incr", k, -10)))
      assert.equal(-4, (call(s, "incr", k, 0)))
      assert.equal("-4", (call(s, "get", k)))
      assert.equal(3, (call(s, "incr", k .. "x", 3)))
    end)

    it("incr counts on a value set as an integer or as its canonical text", function()
      assert.is_true(call(s, "set", k, 10))
      assert.equal(11, (call(s, "incr", k)))
      assert.is_true(call(s, "set", k, "20"))
      assert.equal(22, (call(s, "incr", k, 2)))
      assert.is_true(call(s, "add", k .. "a", "0"))
      assert.equal(1, (call(s, "incr", k .. "a")))
    end)

    it("incr refuses a value that is not an integer, and changes nothing", function()
      for _, bad in ipairs { "abc", "05", "+5", "5.0", " 5", "", "99999999999999999999" } do
        assert.is_true(call(s, "set", k, bad))
        local v, err = call(s, "incr", k)
        err = named(("incr on %q"):format(bad), "store", v, err)
        assert.is_false(err.retryable)
        assert.equal(bad, (call(s, "get", k)))
      end
    end)

    it("incr stays within +-(2^53 - 1)", function()
      assert.is_true(call(s, "set", k, MAX - 1))
      assert.equal(tointeger(MAX), (call(s, "incr", k)))
      local v, err = call(s, "incr", k)
      assert.is_false(named("past the top", "store", v, err).retryable)
      assert.equal(string.format("%d", MAX), (call(s, "get", k)))
      assert.is_true(call(s, "set", k, -MAX))
      assert_kind("store", call(s, "incr", k, -1))
      assert_kind("argument", call(s, "incr", k, 2 ^ 53))
    end)

    -- The times here leave 0.5 s for the calls between a write and a read
    -- that must still see it: the file store syncs twice a write, which a
    -- busy disk can make tens of ms (with 0.15 s, three writes on such a disk
    -- let "short" expire before it was read).
    it("ttl: a value expires, and set without ttl clears an expiry", function()
      assert.is_true(call(s, "set", k, "short", 0.6))
      assert.is_true(call(s, "set", k .. "b", "kept", 0.6))
      assert.is_true(call(s, "set", k .. "b", "kept"))
      assert.is_true(call(s, "add", k .. "c", "added", 0.6))
      assert.equal("short", (call(s, "get", k)))
      assert.is_false(call(s, "add", k .. "c", "again", 0.6))
      sleep(0.7)
      assert.is_nil((call(s, "get", k)))
      assert.equal("kept", (call(s, "get", k .. "b")))
      assert.is_nil((call(s, "get", k .. "c")))
      -- an expired key is absent for add and incr as well
      assert.is_true(call(s, "add", k .. "c", "new"))
      assert.is_true(call(s, "set", k .. "d", 100, 0.01))
      sleep(0.05)
      assert.equal(1, (call(s, "incr", k .. "d")))
    end)

    it("incr's ttl applies when it creates the key, and does not extend it", function()
      assert.equal(1, (call(s, "incr", k, 1, 0.6)))
      sleep(0.1)
      assert.equal(2, (call(s, "incr", k, 1, 10)))
      sleep(0.6)
      assert.is_nil((call(s, "get", k)))
      -- an existing key without expiry keeps none
      assert.is_true(call(s, "set", k .. "n", 1))
      assert.equal(2, (call(s, "incr", k .. "n", 1, 0.05)))
      sleep(0.1)
      assert.equal("2", (call(s, "get", k .. "n")))
    end)

    -- the events 0.3 s apart, so that a call delayed by up to about 0.1 s
    -- on a loaded machine changes none of the checks
    it("admit: 3 in 1 s, then a wait; after the wait one more fits", function()
      local t0 = now()
      for i = 1, 3 do
        assert.equal(0, (call(s, "admit", k, 3, 1)), "event " .. i)
        if i < 3 then sleep(0.3) end
      end
      local w = call(s, "admit", k, 3, 1)
      assert.is_number(w)
      assert.is_true(w > 0 and w <= 0.401, "wait " .. tostring(w))
      assert.is_true(w >= 1 - (now() - t0) - 0.01, "wait " .. w .. " shorter than the window left")
      -- refused calls record nothing: the wait only shrinks
      sleep(0.05)
      local w2 = call(s, "admit", k, 3, 1)
      assert.is_true(w2 > 0 and w2 < w, ("second wait %s after %s"):format(tostring(w2), w))
      sleep(w2)
      assert.equal(0, (call(s, "admit", k, 3, 1)))
      -- the second and third are still in the window; the second, about
      -- 0.3 s after the first, leaves next (the third would make it 0.6 s)
      local w3 = call(s, "admit", k, 3, 1)
      assert.is_true(w3 > 0 and w3 <= 0.45, "a fourth in the window: " .. tostring(w3))
      -- another key has a log of its own
      assert.equal(0, (call(s, "admit", k .. "other", 3, 1)))
    end)

    it("admit with limit 1 and a short window", function()
      assert.equal(0, (call(s, "admit", k, 1, 0.5)))
      local w = call(s, "admit", k, 1, 0.5)
      assert.is_true(w > 0 and w <= 0.5)
      sleep(w)
      assert.equal(0, (call(s, "admit", k, 1, 0.5)))
    end)

    it("a log and a value do not mix; delete clears a log", function()
      assert.equal(0, (call(s, "admit", k, 2, 10)))
      assert_kind("store", call(s, "get", k))
      assert_kind("store", call(s, "incr", k))
      assert.is_true(call(s, "set", k .. "v", "x"))
      assert_kind("store", call(s, "admit", k .. "v", 2, 10))
      assert.is_true(call(s, "delete", k))
      assert.is_nil((call(s, "get", k)))
      assert.equal(0, (call(s, "admit", k, 1, 10)))
      assert.is_true(call(s, "set", k, "now a value"))
      assert.equal("now a value", (call(s, "get", k)))
    end)

    it("bad keys, values, ttls and counts are argument errors, never raised", function()
      local bad_keys = { nil, 1, true, {}, "", "a\nb", "a\0b", "tab\t", string.rep("k", 1025) }
      for i = 1, 9 do
        local key = bad_keys[i]
        local what = "key " .. i
        named(what, "argument", call(s, "get", key))
        named(what, "argument", call(s, "set", key, "v"))
        named(what, "argument", call(s, "add", key, "v"))
        named(what, "argument", call(s, "delete", key))
        named(what, "argument", call(s, "incr", key))
        named(what, "argument", call(s, "admit", key, 1, 1))
      end
      assert.is_true(call(s, "set", string.rep("k", 1024), "longest key"))
      for _, v in ipairs { true, {}, 1.5, 2 ^ 53, 0 / 0, math.huge, string.rep("v", 1024 * 1024 + 1) } do
        named(tostring(v), "argument", call(s, "set", k, v))
        named(tostring(v), "argument", call(s, "add", k, v))
      end
      assert_kind("argument", call(s, "set", k, nil))
      for _, ttl in ipairs { 0, -1, "1", 0 / 0, true, 1e12 } do
        named(tostring(ttl), "argument", call(s, "set", k, "v", ttl))
        named(tostring(ttl), "argument", call(s, "add", k, "v", ttl))
        named(tostring(ttl), "argument", call(s, "incr", k, 1, ttl))
      end
      for _, by in ipairs { 1.5, "1", true, 0 / 0 } do
        named(tostring(by), "argument", call(s, "incr", k, by))
      end
      for _, lw in ipairs { { 0, 1 }, { 1.5, 1 }, { "3", 1 }, { 3, 0 }, { 3, -1 }, { 3, "1" }, { nil, 1 }, { 3 } } do
        named(tostring(lw[1]) .. "/" .. tostring(lw[2]), "argument", call(s, "admit", k, lw[1], lw[2]))
      end
      -- nothing of the refused calls was stored
      assert.is_nil((call(s, "get", k)))
      assert.is_true(call(s, "close"))
    end)
  end)
end

---------------------------------------------------------------------------

battery("memory", function() return assert(store.memory()) end)

describe("qiwi.store.memory", function()
  it("is a new store each time; default() is one per Lua state", function()
    local a, b = store.memory(), store.memory()
    assert.is_true(a:set("k", "a"))
    assert.is_nil((b:get("k")))
    assert.equal(store.default(), store.default())
    package.loaded["qiwi.store"] = nil
    assert.equal(store.default(), require("qiwi.store").default())
    package.loaded["qiwi.store"] = store
  end)

  it("sweeps expired entries, so memory stays bounded by the live ones", function()
    local t = 0
    local s = store.memory { clock = function() return t end }
    for i = 1, 5000 do
      assert.is_true(s:set("k" .. i, "v", 1))
      t = t + 0.01
    end
    local n = 0
    for _ in pairs(s.data) do n = n + 1 end
    assert.is_true(n < 1200, n .. " entries kept")
  end)

  it("bad options are argument errors", function()
    assert_kind("argument", store.memory(5))
    assert_kind("argument", store.memory { clock = 1 })
  end)
end)

---------------------------------------------------------------------------

describe("qiwi.store.file", function()
  it("needs a core built with src/fs.c", function()
    assert.is_true(HAVE_FS, "qiwi.core has no fs_lock: add qiwi_fs_register(L) to src/core.c")
  end)
end)

if HAVE_FS then
  local dirs = {}
  local function file_dir(tag)
    local d = tmpdir(tag)
    dirs[#dirs + 1] = d
    return d
  end

  battery("file", function() return assert(store.file(file_dir("battery") .. "/data")) end)

  describe("qiwi.store.file", function()
    teardown(function()
      for _, d in ipairs(dirs) do util.exec("rm -rf " .. shq(d)) end
    end)

    it("creates its directory at the first write, not at construction", function()
      local d = file_dir("lazy") .. "/a/b/c"
      local s = assert(store.file(d))
      assert.equal(0, #ls(d))
      assert.is_nil((s:get("k")))
      assert.is_true(s:set("k", "v"))
      assert.equal("v", (s:get("k")))
      -- a directory removed under a store is made again
      util.exec("rm -rf " .. shq(d))
      assert.is_true(s:incr("n") == 1)
    end)

    it("maps keys to hashed file names: nothing outside the directory, no temp files left", function()
      local root = file_dir("names")
      local d = root .. "/store"
      local s = assert(store.file(d))
      local keys = { "../escape", "../../etc/passwd", "/abs", ".", "..", "a/b", "~user", "$(id)", "*" }
      for i, key in ipairs(keys) do assert.is_true(s:set(key, i)) end
      for i, key in ipairs(keys) do assert.equal(tostring(i), (s:get(key))) end
      assert.same({ "store" }, ls(root))
      for _, f in ipairs(ls(d)) do
        assert.is_truthy(f:match("^k%-%x+$") or f:match("^%.lock%-%d%d$"), f)
      end
      local path = s:_paths("../escape")
      assert.equal(d .. "/k-", path:sub(1, #d + 3))
      assert.equal("qiwi-store 1 s -\n../escape\n1", util.read_file(path))
    end)

    it("is durable: another store on the same directory sees everything", function()
      local d = file_dir("durable")
      local a = assert(store.file(d))
      assert.is_true(a:set("k", "v"))
      assert.equal(3, (a:incr("n", 3)))
      assert.equal(0, (a:admit("r", 1, 30)))
      local b = assert(store.file(d .. "/", { fsync = false }))
      assert.equal("v", (b:get("k")))
      assert.equal(4, (b:incr("n")))
      assert.is_true(b:admit("r", 1, 30) > 0)
    end)

    it("fails with kind store, not a raise, where it cannot write", function()
      local s = assert(store.file("/proc/lua-qiwi-no/such"))
      for _, m in ipairs { "set", "add", "incr", "delete" } do
        local err = named(m, "store", call(s, m, "k", 1))
        assert.matches("^file: ", err.message)
      end
      assert_kind("store", call(s, "admit", "k", 1, 1))
      -- a file in the way of the directory
      local f = file_dir("blocked") .. "/file"
      util.write_file(f, "x")
      assert_kind("store", call(assert(store.file(f)), "set", "k", 1))
    end)

    it("a lock held elsewhere makes writers wait, then fail retryably after the timeout", function()
      local d = file_dir("lock")
      local s = assert(store.file(d, { timeout = 0.2 }))
      assert.is_true(s:set("k", "v"))
      local _, lpath = s:_paths("k")
      local held = assert(core.fs_lock(lpath, 0))
      local t0 = now()
      local err = assert_kind("store", s:set("k", "w"))
      local took = now() - t0
      assert.is_true(err.retryable)
      assert.matches("lock", err.message)
      assert.is_true(took >= 0.19 and took < 1, "waited " .. took)
      -- get takes no lock
      assert.equal("v", (s:get("k")))
      held:unlock()
      assert.is_true(s:set("k", "w"))
      assert.equal("w", (s:get("k")))
    end)

    it("a corrupt file is an error of kind store, not a raise", function()
      local d = file_dir("corrupt")
      local s = assert(store.file(d))
      assert.is_true(s:set("k", "v"))
      local path = s:_paths("k")
      util.write_file(path, "garbage")
      assert.is_false(assert_kind("store", s:get("k")).retryable)
      assert_kind("store", s:incr("k"))
      assert.is_true(s:set("k", "fixed"))
      assert.equal("fixed", (s:get("k")))
    end)

    it("bad arguments to the constructor are argument errors", function()
      for _, a in ipairs { 5, "", "a\0b" } do assert_kind("argument", store.file(a)) end
      assert_kind("argument", store.file())
      assert_kind("argument", store.file("/tmp/x", 5))
      assert_kind("argument", store.file("/tmp/x", { timeout = -1 }))
      assert_kind("argument", store.file("/tmp/x", { fsync = "yes" }))
    end)
  end)
end

---------------------------------------------------------------------------

local PASSWORD = "pw-" .. util.random_hex(8)
local srv

describe("the redis harness", function()
  it("finds redis-server", function()
    assert.is_true(redis_harness.available(), "redis-server not found: add redis-server to the Makefile's DEB_PKGS")
    assert.is_true(pcall(require, "socket"), "LuaSocket not found: add lua-socket to the Makefile's DEB_PKGS")
  end)
end)

if redis_harness.available() then
  srv = redis_harness.start { password = PASSWORD }

  local function redis_store(opts)
    local o = { port = srv.port, password = PASSWORD, db = 3, prefix = "spec:" .. util.random_hex(3) .. ":" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(store.redis(o))
  end

  battery("redis", function() return redis_store() end)

  describe("qiwi.store.redis", function()

    it("prefixes keys (qiwi: by default), selects db and sets millisecond expiries", function()
      local s = assert(store.redis { port = srv.port, password = PASSWORD })
      assert.is_true(s:set("pfx", "v", 30))
      assert.equal("v", srv:cli("GET", "qiwi:pfx"))
      local pttl = tonumber(srv:cli("PTTL", "qiwi:pfx"))
      assert.is_true(pttl > 29000 and pttl <= 30000, tostring(pttl))
      local s3 = redis_store { prefix = "p3:" }
      assert.is_true(s3:set("k", "in db 3"))
      assert.equal("in db 3", srv:cli("-n", "3", "GET", "p3:k"))
      assert.equal("", srv:cli("GET", "p3:k"))
      local s0 = assert(store.redis { port = srv.port, password = PASSWORD, prefix = "p3:" })
      assert.is_nil((s0:get("k")))
      assert.is_true(s:close())
    end)

    it("keeps one connection per store between calls", function()
      local s = redis_store { prefix = "conn:", db = 5 }
      local function ours()
        local n = 0
        for line in srv:cli("CLIENT", "LIST"):gmatch("[^\n]+") do
          if line:find(" db=5 ", 1, true) then n = n + 1 end
        end
        return n
      end
      assert.equal(0, ours())
      for i = 1, 50 do assert.is_true(s:set("k" .. i, i)) end
      for i = 1, 50 do assert.equal(0, (s:admit("a" .. i % 5, 100, 10))) end
      assert.equal(1, ours())
      s:close()
      assert.equal(0, ours())
    end)

    it("loads its scripts again after the server forgot them", function()
      local s = redis_store()
      assert.equal(1, (s:incr("n")))
      assert.equal(0, (s:admit("r", 2, 10)))
      assert.equal("OK", srv:cli("SCRIPT", "FLUSH"))
      assert.equal(2, (s:incr("n")))
      assert.equal(0, (s:admit("r", 2, 10)))
    end)

    it("down: every call fails with kind store (retryable) and recovers on restart", function()
      local s = redis_store()
      assert.is_true(s:set("k", "before"))
      srv:halt()
      local t0 = now()
      for _, c in ipairs { { "get", "k" }, { "set", "k", "v" }, { "add", "k", "v" }, { "delete", "k" },
                           { "incr", "k" }, { "admit", "k", 1, 1 } } do
        local err = assert_kind("store", call(s, unpack(c)))
        assert.is_true(err.retryable, c[1])
        assert.matches("^redis: 127%.0%.0%.1:%d+: connect: ", err.message)
        assert.is_nil(err.message:find(PASSWORD, 1, true))
      end
      assert.is_true(now() - t0 < 1, "failing calls were slow")
      -- a store made while the server is down is fine until used
      local later = redis_store()
      srv:restart()
      assert.is_nil((s:get("k")))  -- nothing was saved: a new, empty server
      assert.is_true(s:set("k", "after"))
      assert.equal("after", (s:get("k")))
      assert.equal(1, (later:incr("n")))
      assert.equal(0, (s:admit("r", 1, 10)))
    end)

    it("a kept connection that the server dropped is replaced at the next call", function()
      local s = redis_store()
      assert.is_true(s:set("k", "v"))
      srv:cli("CLIENT", "KILL", "TYPE", "normal")
      assert.equal("v", (s:get("k")))
      assert.is_true(s:set("k", "w"))
    end)

    it("a wrong password is a store error that is not retryable and shows no password", function()
      local s = redis_store { password = "wrong-" .. PASSWORD }
      local err = assert_kind("store", s:get("k"))
      assert.is_false(err.retryable)
      assert.matches("AUTH", err.message)
      assert.is_nil(err.message:find(PASSWORD, 1, true))
      assert.is_nil(tostring(err):find("wrong-", 1, true))
      local none = assert(store.redis { port = srv.port })
      err = assert_kind("store", none:get("k"))
      assert.matches("NOAUTH", err.message)
    end)

    -- A child process that answers the first connection with a canned
    -- reply once it has read `lines` lines; returns its port and a closer.
    local function fake_server(lines, reply)
      local lua = interpreter()
      local f = os.tmpname()
      util.write_file(f, ("local socket = require 'socket'; local s = assert(socket.bind('127.0.0.1', 0)); "
        .. "s:settimeout(5); io.write(select(2, s:getsockname()), '\\n'); io.flush(); "
        .. "local c = s:accept(); if not c then return end; c:settimeout(5); "
        .. "for _ = 1, %d do c:receive('*l') end; c:send(%q); c:receive('*l'); c:close()"):format(lines, reply))
      local child = io.popen(shq(lua) .. " " .. shq(f) .. " 2>&1")
      local port = tonumber(child:read("*l"))
      assert(port, "the fake server did not start")
      return port, function()
        child:close()
        os.remove(f)
      end
    end

    it("scrubs the password even from the server's own words", function()
      -- AUTH <password> is 5 lines of RESP
      local port, close = fake_server(5, "-ERR invalid password " .. PASSWORD .. "\r\n")
      local s = assert(store.redis { port = port, password = PASSWORD })
      local err = assert_kind("store", s:get("k"))
      close()
      assert.matches("invalid password", err.message)
      assert.is_nil(tostring(err):find(PASSWORD, 1, true), tostring(err))
      assert.matches("***", err.message, 1, true)
    end)

    it("a server that does not speak RESP2 is an error of kind store", function()
      for _, reply in ipairs { "HTTP/1.1 400 Bad Request\r\n\r\n", "$99999999999\r\n", "*-5\r\n",
                               ":12x\r\n", "$5\r\nabc" } do
        -- GET k is 5 lines of RESP
        local port, close = fake_server(5, reply)
        local s = assert(store.redis { port = port, timeout = 0.3 })
        local err = assert_kind("store", s:get("k"))
        close()
        assert.is_true(err.retryable, reply)
        assert.is_nil(s.conn, "the broken connection was kept")
      end
    end)

    it("times out on a server that never answers", function()
      local socket = require "socket"
      local mute = assert(socket.bind("127.0.0.1", 0))  -- connects, never answers
      local port = tonumber((select(2, mute:getsockname())))
      local s = assert(store.redis { port = port, timeout = 0.2 })
      local t0 = now()
      local err = assert_kind("store", s:get("k"))
      local took = now() - t0
      mute:close()
      assert.is_true(err.retryable)
      assert.matches("timeout", err.message)
      assert.is_true(took >= 0.15 and took < 1, "took " .. took)
    end)

    it("bad constructor options are argument errors", function()
      assert.is_nil(store.check({ get = function() end }))
      assert_kind("argument", store.shdict("qiwi_store"))  -- outside nginx
      for _, o in ipairs { 5, { port = "x" }, { port = 0 }, { port = 70000 }, { host = "" }, { host = "a b" },
                           { db = -1 }, { db = 1.5 }, { password = "" }, { password = 5 }, { prefix = 5 },
                           { timeout = 0 }, { timeout = "1" }, { bogus = 1 }, { username = "u" } } do
        assert_kind("argument", store.redis(o))
      end
      assert.is_table(store.redis())
    end)
  end)
end

---------------------------------------------------------------------------
-- Real processes: 4 children of this same interpreter hammer one store.

local CHILD = [=[
local kind, target, password, start_at, prefix, n_incr, admit_for, limit, window, lpath, cpath = ...
package.path, package.cpath = lpath, cpath
local store = require "qiwi.store"
local core = require "qiwi.core"
local clock = core.fs_time or require("socket").gettime
local s
if kind == "file" then
  s = assert(store.file(target))
else
  s = assert(store.redis { port = tonumber(target), password = password, prefix = prefix })
end
limit, window = tonumber(limit), tonumber(window)
while clock() < tonumber(start_at) do core.sleep(0.001) end
local fails, out = 0, {}
for _ = 1, tonumber(n_incr) do
  local v, err = s:incr("count")
  if v then out[#out + 1] = string.format("%d", v) else
    fails = fails + 1
    io.stderr:write(tostring(err), "\n")
  end
end
io.write("INCR ", table.concat(out, " "), "\n")
local adm = {}
local deadline = clock() + tonumber(admit_for)
while clock() < deadline do
  local b = clock()
  local w, err = s:admit("rate", limit, window)
  local a = clock()
  if w == 0 then
    adm[#adm + 1] = string.format("%.6f:%.6f", b, a)
  elseif w then
    core.sleep(math.min(w, 0.004))
  else
    fails = fails + 1
    io.stderr:write(tostring(err), "\n")
  end
end
io.write("ADMIT ", table.concat(adm, " "), "\n")
io.write("DONE ", fails, "\n")
s:close()
]=]

-- Runs n children; returns the incr values and the admitted events of all.
local function hammer(kind, target, n, opts)
  local lua = interpreter()
  local script = os.tmpname()
  util.write_file(script, CHILD)
  local start_at = (core.fs_time or require("socket").gettime)() + 0.6
  local pipes = {}
  for i = 1, n do
    local args = { kind, target, opts.password or "", string.format("%.6f", start_at), opts.prefix or "",
                   opts.incr, opts.admit_for, opts.limit, opts.window, package.path, package.cpath }
    for j, a in ipairs(args) do args[j] = shq(tostring(a)) end
    pipes[i] = io.popen(shq(lua) .. " " .. shq(script) .. " " .. table.concat(args, " ") .. " 2>&1")
  end
  local values, events = {}, {}
  for i = 1, n do
    local out = pipes[i]:read("*a")
    pipes[i]:close()
    assert.matches("\nDONE 0\n", out, 1, true)
    for v in (out:match("INCR ([^\n]*)") or ""):gmatch("%d+") do values[#values + 1] = tonumber(v) end
    for b, a in (out:match("ADMIT ([^\n]*)") or ""):gmatch("([%d.]+):([%d.]+)") do
      events[#events + 1] = { b = tonumber(b), a = tonumber(a), child = i }
    end
  end
  os.remove(script)
  return values, events
end

local function check_hammer(s, values, events, n, o)
  local admitted = checks.hammer(values, events, n, o)
  assert.equal(tostring(n * o.incr), (s:get("count")))
  return admitted
end

describe("processes sharing one store", function()
  local OPTS = { incr = 100, admit_for = 1.2, limit = 4, window = 0.3 }

  if HAVE_FS then
    it("file: 4 processes, no lost incr, no window over the limit", function()
      local d = tmpdir("procs")
      finally(function() util.exec("rm -rf " .. shq(d)) end)
      local values, events = hammer("file", d, 4, OPTS)
      local n = check_hammer(assert(store.file(d)), values, events, 4, OPTS)
      print(("\n[store] file: 4 processes, 400 incr exact, %d admits in 1.2 s at 4 per 0.3 s"):format(n))
    end)
  end

  if srv then
    teardown(function() srv:stop() end)

    it("redis: 4 processes, no lost incr, no window over the limit", function()
      local prefix = "procs:" .. util.random_hex(3) .. ":"
      local o = { incr = 500, admit_for = 1.2, limit = 4, window = 0.3, password = PASSWORD, prefix = prefix }
      local values, events = hammer("redis", srv.port, 4, o)
      local s = assert(store.redis { port = srv.port, password = PASSWORD, prefix = prefix })
      local n = check_hammer(s, values, events, 4, o)
      print(("\n[store] redis: 4 processes, 2000 incr exact, %d admits in 1.2 s at 4 per 0.3 s"):format(n))
    end)
  end
end)
