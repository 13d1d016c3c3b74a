-- Client payment ids: digit strings of at most 20 digits (QIWI's rule), 19
-- here so that they stay below 2^63 for whoever stores them as integers,
-- and rising with time as QIWI's docs ask (they suggest 1000 × Unix time).
--
-- A fresh id is <milliseconds:13><six digits>. QIWI answers an id it has
-- seen with the payment made under it, so two payments must never get the
-- same id, whichever process, container or host makes them:
--   * with a store shared between processes (file, shdict, redis, or a
--     user's own), the six digits are a counter kept in the store for the
--     wallet (an atomic increment, modulo 10^6): two ids are equal only if
--     a million payments were made in one millisecond. A store that cannot
--     be reached means no id, and so no payment (kind "store").
--   * with the memory store (one Lua state), they are a random draw for
--     each millisecond, counted up within it: unique and rising within the
--     state; two processes without a shared store collide only when both pay
--     in the same millisecond and their draws meet, about one chance in 10^6
--     per such pair of payments (README: "Payment ids"). A collision with a
--     different payment is caught by the answer check (id_reused) and the
--     client then pays again under a new id.
-- Kept as strings: LuaJIT could not hold 19 digits exactly.
--
-- An idempotency key gives an id that depends on the wallet and the key
-- only: HMAC-SHA256 keyed with a constant, its first 63 bits in decimal. The
-- same key gives the same id in every process; two keys give the same id
-- with odds of about n^2 / 2^64 for n keys of one wallet.
local core = require "qiwi.core"

local _M = {}

local last_ms, suffix = 0, -1

-- A Park–Miller generator of our own (exact in doubles on every Lua), so
-- that the user's math.random is neither reseeded nor consumed; seeded from
-- OpenSSL's, so that two Lua states started together (same clock, same pid
-- in two containers) draw differently.
local state
local function seed()
  -- OpenSSL's generator, seeded by the kernel: no clock or pid (the same in
  -- two containers started together) goes into it
  local bytes = core.random_bytes(4)
  local n = 0
  for k = 1, 4 do n = n * 256 + bytes:byte(k) end
  state = n % 2147483646 + 1
end

-- A number from 0 to n - 1.
function _M.random(n)
  if not state then seed() end
  state = state * 16807 % 2147483647
  return state % n
end

-- The next id of this Lua state without a shared store: a random six-digit
-- suffix for each new millisecond, counting up within it (so that ids rise),
-- taking the next millisecond when the suffixes run out.
function _M.next()
  local ms = math.floor(core.now_ms())
  if ms > last_ms then
    last_ms, suffix = ms, _M.random(999000)
  else
    suffix = suffix + 1
    if suffix > 999999 then last_ms, suffix = last_ms + 1, _M.random(999000) end
  end
  return string.format("%.0f%06d", last_ms, suffix)
end

-- A fresh id, or nil, err (the store's error). store: the client's store;
-- wallet: the key the store's counter is kept under.
function _M.fresh(store, wallet)
  if store and store.shared ~= false then
    local n, err = store:incr("ids:" .. tostring(wallet), 1)
    if not n then return nil, err end
    local ms = math.floor(core.now_ms())
    if ms < last_ms then ms = last_ms end
    last_ms = ms
    return string.format("%.0f%06d", ms, n % 1000000)
  end
  return _M.next()
end

local KEYED = "lua-qiwi idempotency key v1"

-- Multiplies a number held as base-10^7 limbs (least significant first) by
-- m and adds c; exact in doubles, since every step stays below 2^53.
local LIMB = 10000000
local function mul_add(limbs, m, c)
  local out = {}
  for i = 1, #limbs do
    local v = limbs[i] * m + c
    out[i] = v % LIMB
    c = math.floor(v / LIMB)
  end
  while c > 0 do
    out[#out + 1] = c % LIMB
    c = math.floor(c / LIMB)
  end
  return out
end

-- The id of (wallet, key): 63 bits of HMAC-SHA256 as a decimal string,
-- computed without 64-bit integers so that 5.1 and LuaJIT give the same.
function _M.derived(wallet, key)
  local hex = core.hmac_sha256_hex(KEYED, tostring(wallet) .. "\0" .. key)
  local hi = tonumber(hex:sub(1, 8), 16) % 0x80000000
  local lo = tonumber(hex:sub(9, 16), 16)
  -- hi * 2^32 + lo, the multiplication by 2^32 done as two of 2^16
  local limbs = mul_add(mul_add(mul_add({ hi }, 65536, 0), 65536, 0), 1, lo)
  local parts = { string.format("%d", limbs[#limbs]) }
  for k = #limbs - 1, 1, -1 do parts[#parts + 1] = string.format("%07d", limbs[k]) end
  return table.concat(parts)
end

return _M
