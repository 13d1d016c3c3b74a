-- qiwi.store.file: a store in files under one directory, durable across
-- runs of a script or a cron job and safe between the processes of one host
-- (a local file system: flock is not trusted over NFS).
--
-- Layout: each key is the file k-<hex HMAC-SHA256 of the key> (no key can
-- name another path), holding
--     qiwi-store 1 <s|l> <expiry: wall-clock seconds, or ->\n<key>\n<payload>
-- (s: a value; l: a rate log, its event times separated by spaces). Writers
-- hold an exclusive flock on one of 64 lock files (.lock-NN, picked by the
-- key's hash) around each read-modify-write, and replace the file whole: a
-- temp file, fsync, rename over the old one, fsync of the directory. get
-- takes no lock: it reads the old file or the new one, never a part.
-- Clock: the wall clock (several processes, and boots, share the data).
-- Expired files are removed when a call meets them; a key never touched
-- again after it expired leaves its file behind.
local S = require "qiwi.store"
local core = require "qiwi.core"

local type, tonumber, format, find, concat = type, tonumber, string.format, string.find,
  table.concat
local io_open, os_remove, pcall = io.open, os.remove, pcall

local _M = {}
local Store = S.define { name = "file" }
Store.__index = Store
_M.Store = Store

local MAGIC = "qiwi-store 1 "
local STRIPES = 64
local ENOENT = 2

-- opts: fsync (default true: every write survives a crash of the host; false
-- keeps the writes atomic but not durable, and is much faster), timeout
-- (seconds to wait for a lock, default 2), clock (tests).
function _M.new(dir, opts)
  if type(dir) ~= "string" or dir == "" or find(dir, "%z") then
    return nil, S.argument_error("qiwi.store.file takes a directory path (a non-empty string)")
  end
  if opts ~= nil and type(opts) ~= "table" then
    return nil, S.argument_error("qiwi.store.file options must be a table")
  end
  opts = opts or {}
  if not (core.fs_lock and core.fs_write and core.fs_mkdir and core.fs_time) then
    return nil, S.argument_error("qiwi.store.file needs a qiwi.core built with its file helpers (src/fs.c)")
  end
  local timeout = opts.timeout == nil and 2 or opts.timeout
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 or timeout > 3600 then
    return nil, S.argument_error("file store timeout must be a number of seconds from 0 to 3600")
  end
  if opts.fsync ~= nil and type(opts.fsync) ~= "boolean" then
    return nil, S.argument_error("file store fsync must be a boolean")
  end
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    return nil, S.argument_error("file store clock must be a function")
  end
  dir = dir:gsub("(.)/+$", "%1")
  return setmetatable({ dir = dir, fsync = opts.fsync ~= false, timeout = timeout,
                        clock = opts.clock or core.fs_time, ready = false }, Store)
end

function Store:_fail(message, retryable)
  return S.store_error(self.name, message, retryable)
end

function Store:_paths(key)
  local h = core.hmac_sha256_hex("qiwi.store.file", key)
  local stripe = tonumber(h:sub(1, 2), 16) % STRIPES
  return self.dir .. "/k-" .. h, format("%s/.lock-%02d", self.dir, stripe)
end

local function try_lock(self, lpath)
  if self.timeout > 0 and S.can_yield() then
    -- inside nginx: one try at a time, and ngx.sleep between them
    local deadline = core.monotonic() + self.timeout
    while true do
      local lk, err, busy = core.fs_lock(lpath, 0)
      if lk or not busy then return lk, err end
      if core.monotonic() >= deadline then return nil, err, true end
      S.sleep(0.001)
    end
  end
  return core.fs_lock(lpath, self.timeout)
end

function Store:_lock(lpath)
  if not self.ready then
    local ok, err = core.fs_mkdir(self.dir)
    if not ok then return nil, self:_fail(err) end
    self.ready = true
  end
  local lk, err, busy = try_lock(self, lpath)
  if not lk and not busy then
    -- the directory may have gone since: make it again, once
    local ok = core.fs_mkdir(self.dir)
    if ok then lk, err, busy = try_lock(self, lpath) end
  end
  if not lk then return nil, self:_fail(busy and ("timed out waiting for a lock (" .. err .. ")") or err) end
  return lk
end

-- Reads the entry of a key: kind ("s" | "l"), expiry (or false), payload;
-- nil when there is none; or nil, err.
function Store:_read(path, key)
  local f, msg, code = io_open(path, "rb")
  if not f then
    if code == ENOENT then return nil end
    return nil, nil, nil, self:_fail(msg)
  end
  local s = f:read("*a")
  f:close()
  if not s then return nil, nil, nil, self:_fail("cannot read " .. path) end
  local kind, exp, k, payload = s:match("^qiwi%-store 1 ([sl]) (%S+)\n([^\n]*)\n(.*)$")
  if not kind or k ~= key then return nil, nil, nil, self:_fail("unreadable data in " .. path, false) end
  if exp == "-" then
    exp = false
  else
    exp = tonumber(exp)
    if not exp then return nil, nil, nil, self:_fail("unreadable data in " .. path, false) end
  end
  return kind, exp, payload
end

function Store:_write(path, key, kind, exp, payload)
  local ok, err = core.fs_write(path, MAGIC .. kind .. " " .. (exp and format("%.6f", exp) or "-") .. "\n"
    .. key .. "\n" .. payload, self.fsync)
  if not ok then return nil, self:_fail(err) end
  return true
end

-- Runs fn(self, path, key, now, ...) under the key's lock, released
-- whatever fn does (a raise, which nothing it calls should do, becomes an
-- error of kind store).
function Store:_locked(key, fn, ...)
  local path, lpath = self:_paths(key)
  local lk, err = self:_lock(lpath)
  if not lk then return nil, err end
  local ok, a, b = pcall(fn, self, path, key, self.clock(), ...)
  lk:unlock()
  if not ok then return nil, self:_fail(a, false) end
  return a, b
end

-- _read, but an entry that has expired by now is none.
function Store:_read_live(path, key, now)
  local kind, exp, payload, err = self:_read(path, key)
  if kind and exp and exp <= now then return nil end
  return kind, exp, payload, err
end

local function remove_expired(self, path, key, now)
  local kind, exp = self:_read(path, key)
  if kind and exp and exp <= now then os_remove(path) end
  return true
end

function Store:_get(k)
  local path = self:_paths(k)
  local kind, exp, payload, rerr = self:_read(path, k)
  if rerr then return nil, rerr end
  if not kind then return nil, nil end
  if exp and exp <= self.clock() then
    self:_locked(k, remove_expired)
    return nil, nil
  end
  if kind ~= "s" then return nil, self:_fail(S.LOG_ERROR, false) end
  return payload
end

-- The primitive that runs fn(self, path, key, now, ...) under the key's lock.
local function locked(fn)
  return function(self, key, ...) return self:_locked(key, fn, ...) end
end

local function do_set(self, path, key, now, v, ttl)
  return self:_write(path, key, "s", ttl and now + ttl, v)
end
Store._set = locked(do_set)

Store._add = locked(function(self, path, key, now, v, ttl)
  local kind, _, _, err = self:_read_live(path, key, now)
  if err then return nil, err end
  if kind then return false end
  return do_set(self, path, key, now, v, ttl)
end)

Store._delete = locked(function(self, path)
  local ok, msg, code = os_remove(path)
  if not ok and code ~= ENOENT then return nil, self:_fail(msg) end
  return true
end)

Store._incr = locked(function(self, path, key, now, by, ttl)
  local kind, exp, payload, err = self:_read_live(path, key, now)
  if err then return nil, err end
  if kind and kind ~= "s" then return nil, self:_fail(S.LOG_ERROR, false) end
  if not kind then exp = ttl and now + ttl end
  local n, why = S.incr_text(payload, by)
  if not n then return nil, self:_fail(why, false) end
  local ok
  ok, err = self:_write(path, key, "s", exp, format("%d", n))
  if not ok then return nil, err end
  return n
end)

Store._admit = locked(function(self, path, key, now, limit, window)
  local kind, _, payload, err = self:_read_live(path, key, now)
  if err then return nil, err end
  local times = {}
  if kind then
    if kind ~= "l" then return nil, self:_fail(S.NOT_LOG, false) end
    for t in payload:gmatch("%S+") do
      local x = tonumber(t)
      if not x then return nil, self:_fail("unreadable data in " .. path, false) end
      times[#times + 1] = x
    end
  end
  local wait = S.log_admit(times, now, limit, window)
  if wait == 0 then
    local parts = {}
    for i = 1, #times do parts[i] = format("%.6f", times[i]) end
    local ok
    ok, err = self:_write(path, key, "l", times[#times] + window, concat(parts, " "))
    if not ok then return nil, err end
  end
  return wait
end)

return _M
