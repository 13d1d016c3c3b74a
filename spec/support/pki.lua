-- Test PKI for the HTTPS fake: two unrelated CAs and three server
-- certificates, made with the openssl CLI the first time they are needed.
--
-- Layout: <dir>/CURRENT names a complete generation directory
-- (<dir>/gen-<time>-<random>/). A generation is built in full, checked with
-- `openssl verify`, and only then published by renaming a new CURRENT into
-- place. Two busted processes racing here each get a complete, consistent
-- set (the loser just uses its own generation), and a process that already
-- loaded a set never sees its files replaced under it.

local pki = {}

-- Bump when the layout, key type or extensions change: older generations are
-- then ignored and rebuilt.
local FORMAT = "lua-qiwi-test-pki-2"
local VALID_DAYS = 7
-- Renew early so a long test run never crosses an expiry.
local MIN_LEFT = 2 * 86400

local SERVER_SAN = "DNS:localhost, DNS:fake.qiwi.test, IP:127.0.0.1"
local WRONG_SAN = "DNS:wrong.example"

local FILES = {
  ca = "ca.pem", ca_key = "ca.key",
  cert = "cert.pem", key = "key.pem",
  other_ca = "other_ca.pem", other_ca_key = "other_ca.key",
  other_cert = "other_cert.pem", other_key = "other_key.pem",
  wrong_host_cert = "wrong_host_cert.pem", wrong_host_key = "wrong_host_key.pem",
}

-- The specs' small process and file helpers (spec/support/util.lua), also
-- reachable as require("pki").util.
local util = require "util"
pki.util = util

---------------------------------------------------------------------------

local OPENSSL_CNF = [[
[req]
distinguished_name = dn
prompt = no

[dn]
CN = lua-qiwi test

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = ]] .. SERVER_SAN .. [[


[wrong_host_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = ]] .. WRONG_SAN .. "\n"

local function paths_in(gen)
  local t = { dir = gen }
  for k, name in pairs(FILES) do t[k] = gen .. "/" .. name end
  return t
end

-- CURRENT holds: format, generation directory name, expiry (unix time).
local function current(dir)
  local s = util.read_file(dir .. "/CURRENT")
  if not s then return nil end
  local fmt, gen, not_after = s:match("^(%S+) (%S+) (%d+)")
  if fmt ~= FORMAT or not gen:match("^gen%-[%w%-]+$") then return nil end
  return dir .. "/" .. gen, tonumber(not_after), gen
end

local function usable(gen, not_after)
  if not gen or not not_after or not_after - os.time() < MIN_LEFT then return false end
  for _, name in pairs(FILES) do
    if not util.nonempty(gen .. "/" .. name) then return false end
  end
  return true
end

local function generate(dir)
  local created = os.time()
  local name = "gen-" .. created .. "-" .. util.random_hex(6)
  local gen = dir .. "/" .. name
  util.mkdir_p(gen)
  local log = gen .. "/openssl.log"
  local cnf = gen .. "/openssl.cnf"
  util.write_file(cnf, OPENSSL_CNF)

  local function run(args)
    local cmd = "cd " .. util.shq(gen) .. " && openssl " .. args .. " >>openssl.log 2>&1 </dev/null"
    if not util.exec(cmd) then
      local out = util.read_file(log) or ""
      util.exec("rm -rf " .. util.shq(gen))
      error("pki: openssl failed: openssl " .. args .. "\n" .. out, 0)
    end
  end

  local serial = function() return "0x" .. util.random_hex(12) end
  local days = " -days " .. VALID_DAYS .. " -sha256"
  local newkey = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

  local function make_ca(cn, cert, key)
    run("req -x509 -new -config openssl.cnf -extensions ca_ext" .. newkey .. days ..
        " -set_serial " .. serial() .. " -subj " .. util.shq("/CN=" .. cn) ..
        " -keyout " .. key .. " -out " .. cert)
  end

  local function make_server(cn, ext, ca, ca_key, cert, key)
    local csr = cert .. ".csr"
    run("req -new -config openssl.cnf" .. newkey .. " -subj " .. util.shq("/CN=" .. cn) ..
        " -keyout " .. key .. " -out " .. csr)
    run("x509 -req -in " .. csr .. " -CA " .. ca .. " -CAkey " .. ca_key ..
        " -set_serial " .. serial() .. days .. " -extfile openssl.cnf -extensions " .. ext ..
        " -out " .. cert)
    os.remove(gen .. "/" .. csr)
  end

  local f = FILES
  make_ca("lua-qiwi test CA", f.ca, f.ca_key)
  make_ca("lua-qiwi unrelated test CA", f.other_ca, f.other_ca_key)
  make_server("localhost", "server_ext", f.ca, f.ca_key, f.cert, f.key)
  make_server("localhost", "server_ext", f.other_ca, f.other_ca_key, f.other_cert, f.other_key)
  make_server("wrong.example", "wrong_host_ext", f.ca, f.ca_key, f.wrong_host_cert, f.wrong_host_key)
  -- Catch a broken chain here rather than as a puzzling TLS failure later.
  run("verify -CAfile " .. f.ca .. " " .. f.cert .. " " .. f.wrong_host_cert)
  run("verify -CAfile " .. f.other_ca .. " " .. f.other_cert)

  local not_after = created + VALID_DAYS * 86400
  return gen, not_after, name
end

-- Expired generations are of no use to anyone; younger ones may still be in
-- use by another process that loaded them before CURRENT moved on.
local function prune(dir, keep)
  local p = io.popen("ls -1 " .. util.shq(dir) .. " 2>/dev/null")
  if not p then return end
  local cutoff = os.time() - VALID_DAYS * 86400
  for entry in p:lines() do
    local t = tonumber(entry:match("^gen%-(%d+)%-%x+$"))
    if t and t < cutoff and entry ~= keep then
      util.exec("rm -rf " .. util.shq(dir .. "/" .. entry))
    end
  end
  p:close()
end

-- Returns absolute paths: {ca, ca_key, cert, key, other_ca, other_ca_key,
-- other_cert, other_key, wrong_host_cert, wrong_host_key, dir, not_after}.
function pki.ensure(dir)
  dir = util.abspath(dir or (util.repo_root() .. "/build/test-pki"))
  local gen, not_after = current(dir)
  if usable(gen, not_after) then
    local t = paths_in(gen)
    t.not_after = not_after
    return t
  end
  util.mkdir_p(dir)
  local new_gen, new_not_after, name = generate(dir)
  util.write_atomic(dir .. "/CURRENT", FORMAT .. " " .. name .. " " .. new_not_after .. "\n")
  prune(dir, name)
  local t = paths_in(new_gen)
  t.not_after = new_not_after
  return t
end

pki.SERVER_SAN = SERVER_SAN
pki.WRONG_SAN = WRONG_SAN

return pki
