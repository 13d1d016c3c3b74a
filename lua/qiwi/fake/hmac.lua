-- HMAC-SHA256 for signing the fake's webhook notifications, in arithmetic
-- only: Lua 5.1 has no bit operators and the fake may not depend on the C
-- core (or LuaJIT's `bit`). Speed is irrelevant here: a notification is a
-- few dozen bytes.

local floor, byte, char, format = math.floor, string.byte, string.char, string.format

local M = {}

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local H0 = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }

local M32 = 4294967296

-- Byte-wise AND/XOR tables, built once on first use.
local AND8, XOR8
local function tables()
  if AND8 then return end
  AND8, XOR8 = {}, {}
  for a = 0, 255 do
    for b = 0, 255 do
      local x, y, r_and, r_xor, bit = a, b, 0, 0, 1
      for _ = 1, 8 do
        local xa, yb = x % 2, y % 2
        if xa == 1 and yb == 1 then r_and = r_and + bit end
        if xa ~= yb then r_xor = r_xor + bit end
        x, y, bit = floor(x / 2), floor(y / 2), bit * 2
      end
      AND8[a * 256 + b] = r_and
      XOR8[a * 256 + b] = r_xor
    end
  end
end

local function op32(t, a, b)
  local r, m = 0, 1
  for _ = 1, 4 do
    r = r + t[(a % 256) * 256 + b % 256] * m
    a, b, m = floor(a / 256), floor(b / 256), m * 256
  end
  return r
end

local function band(a, b) return op32(AND8, a, b) end
local function bxor(a, b) return op32(XOR8, a, b) end
local function bnot(a) return M32 - 1 - a end
local function rotr(x, n)
  local p = 2 ^ n
  return floor(x / p) + (x % p) * (M32 / p)
end
local function shr(x, n) return floor(x / 2 ^ n) end

local function be32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function u32be(x)
  return char(floor(x / 16777216) % 256, floor(x / 65536) % 256, floor(x / 256) % 256, x % 256)
end

-- Raw 32-byte SHA-256 digest of `msg`.
function M.sha256(msg)
  tables()
  local len = #msg
  local bits = len * 8
  msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64)
    .. u32be(floor(bits / M32)) .. u32be(bits % M32)
  local h = { H0[1], H0[2], H0[3], H0[4], H0[5], H0[6], H0[7], H0[8] }
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 1, 16 do w[i] = be32(msg, chunk + (i - 1) * 4) end
    for i = 17, 64 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(bxor(rotr(x, 7), rotr(x, 18)), shr(x, 3))
      local s1 = bxor(bxor(rotr(y, 17), rotr(y, 19)), shr(y, 10))
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) % M32
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 1, 64 do
      local S1 = bxor(bxor(rotr(e, 6), rotr(e, 11)), rotr(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = (hh + S1 + ch + K[i] + w[i]) % M32
      local S0 = bxor(bxor(rotr(a, 2), rotr(a, 13)), rotr(a, 22))
      local maj = bxor(bxor(band(a, b), band(a, c)), band(b, c))
      local t2 = (S0 + maj) % M32
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) % M32, c, b, a, (t1 + t2) % M32
    end
    h[1], h[2], h[3], h[4] = (h[1] + a) % M32, (h[2] + b) % M32, (h[3] + c) % M32, (h[4] + d) % M32
    h[5], h[6], h[7], h[8] = (h[5] + e) % M32, (h[6] + f) % M32, (h[7] + g) % M32, (h[8] + hh) % M32
  end
  local out = {}
  for i = 1, 8 do out[i] = u32be(h[i]) end
  return table.concat(out)
end

local function xor_pad(key, pad)
  local out = {}
  for i = 1, 64 do out[i] = char(XOR8[(byte(key, i) or 0) * 256 + pad]) end
  return table.concat(out)
end

-- Raw HMAC-SHA256 of `msg` under `key` (raw bytes).
function M.hmac_sha256(key, msg)
  tables()
  if #key > 64 then key = M.sha256(key) end
  return M.sha256(xor_pad(key, 0x5c) .. M.sha256(xor_pad(key, 0x36) .. msg))
end

function M.hex(s)
  return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:sub(i, i)] = i - 1 end

-- Decodes standard base64; nil when malformed.
function M.unbase64(s)
  s = s:gsub("%s", "")
  if #s % 4 ~= 0 then return nil end
  local out = {}
  for i = 1, #s, 4 do
    local n, pad = 0, 0
    for j = i, i + 3 do
      local c = s:sub(j, j)
      local v = B64_INDEX[c]
      if c == "=" and j >= #s - 1 then
        v, pad = 0, pad + 1
      elseif v == nil or pad > 0 then
        return nil
      end
      n = n * 64 + v
    end
    local bytes = char(floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
    out[#out + 1] = bytes:sub(1, 3 - pad)
  end
  return table.concat(out)
end

return M
