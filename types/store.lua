---@meta
--- qiwi.store: shared state, and the interface every store keeps (LuaLS definitions).
-- Ours (memory, file, shdict, redis) and the ones users write: every method
-- is atomic across every user of the store and never raises.
-- @module qiwi.store

---@class qiwi.store
qiwi.store = {}

--- A store of one Lua state (a script, one nginx worker).
---@param opts? table {clock =} a clock for tests
---@return qiwi.Store|nil store
---@return qiwi.Error|nil err kind "argument"
function qiwi.store.memory(opts) end

--- A store of one host: files under dir, durable, safe between processes.
---@param dir string the directory
---@param opts? table {fsync = true, timeout =} seconds of lock wait
---@return qiwi.Store|nil store
---@return qiwi.Error|nil err kind "argument"
function qiwi.store.file(dir, opts) end

--- nginx: a lua_shared_dict, shared by every worker.
---@param name string the lua_shared_dict's name
---@param opts? table {timeout =} seconds of lock wait
---@return qiwi.Store|nil store
---@return qiwi.Error|nil err kind "argument"
function qiwi.store.shdict(name, opts) end

--- Redis (many hosts): cosockets inside nginx, LuaSocket outside.
---@param opts? table {host = "127.0.0.1", port = 6379, password =, username =, db = 0, prefix = "qiwi:", timeout = 1, pool_size = 32, keepalive = 60}
---@return qiwi.Store|nil store
---@return qiwi.Error|nil err kind "argument"
function qiwi.store.redis(opts) end

--- The memory store every client of this Lua state shares when given none.
---@return qiwi.Store store
function qiwi.store.default() end

--- Whether s has every method of the interface.
---@param s any the object
---@return true|nil ok
---@return string|nil why it is not a store
function qiwi.store.check(s) end

--- Writing a store: defines the public methods (argument checks included)
-- over the class's own primitives `_get`, `_set`, `_add`, `_incr`, `_delete`, `_admit`.
---@param class table the store's method table
---@return table class the same table
function qiwi.store.define(class) end

--- Writing a store: an error of kind "argument".
---@param message string what is wrong
---@return qiwi.Error err
function qiwi.store.argument_error(message) end

--- Writing a store: an error of kind "store".
---@param name string the store's name
---@param message string what failed
---@param retryable? boolean default true (the store was unreachable)
---@param secrets? string[] scrubbed from the message (a password)
---@return qiwi.Error err
function qiwi.store.store_error(name, message, retryable, secrets) end

--- Writing a store: checks a key (1 to 1024 bytes, no control characters).
---@param key any the key
---@return string|nil key
---@return qiwi.Error|nil err
function qiwi.store.check_key(key) end

--- Writing a store: checks a value, as it is stored.
---@param v any a string or an integer
---@return string|nil value the text stored
---@return qiwi.Error|nil err
function qiwi.store.check_value(v) end

--- Writing a store: checks a ttl (nil stays nil: no expiry).
---@param ttl any seconds or nil
---@return number|nil ttl
---@return qiwi.Error|nil err
function qiwi.store.check_ttl(ttl) end

--- Writing a store: checks incr's step (nil: 1).
---@param by any an integer or nil
---@return integer|nil by
---@return qiwi.Error|nil err
function qiwi.store.check_by(by) end

--- Writing a store: checks admit's limit and window.
---@param limit any an integer 1..100000
---@param window any seconds above 0
---@return integer|nil limit
---@return number|qiwi.Error window or the error
function qiwi.store.check_admit(limit, window) end

--- Writing a store: an integer as a Lua number of this interpreter.
---@param v number the value
---@return integer|number v
function qiwi.store.int_value(v) end

--- Writing a store: the integer a stored text holds, or nil when it is not
-- an integer's canonical text.
---@param s string the text
---@return integer|nil n
function qiwi.store.parse_int(s) end

--- Writing a store: a + b, or nil when the result leaves the exact range.
---@param a integer
---@param b integer
---@return integer|nil sum
function qiwi.store.add_int(a, b) end

--- Writing a store: incr over a stored text (nil: absent, counts as 0).
---@param text string|nil the stored text
---@param by integer the step
---@return integer|nil n the new integer
---@return string|nil message of the store error to fail with
function qiwi.store.incr_text(text, by) end

--- Writing a store: a wait rounded up to the millisecond, at least 1 ms.
---@param w number seconds
---@return number seconds
function qiwi.store.wait_seconds(w) end

--- Writing a store: the sliding log of admit over a list of event times.
---@param times number[] event times, oldest first (changed in place)
---@param now number the time now
---@param limit integer events per window
---@param window number seconds
---@return number wait 0 when recorded, else seconds to wait
function qiwi.store.log_admit(times, now, limit, window) end

--- Whether this runs inside nginx.
---@return boolean
function qiwi.store.in_nginx() end

--- Inside nginx: whether this phase may yield (ngx.sleep, cosockets).
---@return boolean
function qiwi.store.can_yield() end

--- A short sleep: ngx.sleep where the phase allows it, else a blocking one.
---@param s number seconds
---@return nil
function qiwi.store.sleep(s) end

--- A store: what qiwi.store's constructors return, and what a user's own must offer.
-- key: 1 to 1024 bytes without control characters; value: a string or an
-- integer (get returns strings); ttl: seconds, or nil for no expiry.
---@class qiwi.Store
---@field name string "memory", "file", "shdict", "redis", ...
local Store = {}

--- Adds by to an integer (an absent key starts at 0, expiring after ttl).
---@param key string
---@param by? integer default 1
---@param ttl? number seconds, for a new key
---@return integer|nil value the new integer
---@return qiwi.Error|nil err
function Store:incr(key, by, ttl) end

--- Sets a key that is absent (or expired).
---@param key string
---@param value string|integer
---@param ttl? number seconds
---@return boolean|nil added false when the key exists
---@return qiwi.Error|nil err
function Store:add(key, value, ttl) end

--- A key's value.
---@param key string
---@return string|nil value nil, nil when absent
---@return qiwi.Error|nil err
function Store:get(key) end

--- Replaces a key's value and expiry.
---@param key string
---@param value string|integer
---@param ttl? number seconds
---@return true|nil ok
---@return qiwi.Error|nil err
function Store:set(key, value, ttl) end

--- Removes a key (absent is fine).
---@param key string
---@return true|nil ok
---@return qiwi.Error|nil err
function Store:delete(key) end

--- A sliding log: at most limit events in any window.
---@param key string
---@param limit integer 1..100000
---@param window number seconds
---@return number|nil wait 0 when one more event fitted and was recorded
---@return qiwi.Error|nil err
function Store:admit(key, limit, window) end

--- Releases connections.
---@return true ok
function Store:close() end
