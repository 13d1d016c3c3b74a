-- The Lua side of make bench's whole-process figure: a process that loads
-- lua-qiwi, makes one client and N sequential client:accounts() calls on it
-- (one kept-alive connection), then exits. bench/run.lua times it from the
-- outside, start-up, module loading and the TLS handshake included, against
-- build/bench/curl_loop making the same N requests as a process of its own.
--
--   lua5.4 bench/process_calls.lua BASE_URL CA_FILE TOKEN WALLET N [TREE [core]]
--
-- TREE: the checkout whose lua/ and build/<lua>/ are measured (default ".",
-- so that an older commit built in another directory can be measured with
-- this script). Prints "ok N" on success; any failed call ends the process
-- with an error (exit status 1), and so does an answer without accounts.
-- "core": the floor under any Lua client of this C core that hands back
-- decoded tables: the same requests (the client's header lines) through
-- qiwi.core's session alone, each answer decoded, no client around it.
local base_url, ca_file, token, wallet, n, tree, mode = ...
n = tonumber(n)
if not (base_url and ca_file and token and wallet and n) then
  io.stderr:write("usage: process_calls.lua BASE_URL CA_FILE TOKEN WALLET N [TREE]\n")
  os.exit(2)
end
tree = tree or "."
local lua = _VERSION == "Lua 5.1" and (jit and "luajit" or "lua5.1") or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = tree .. "/lua/?.lua;" .. tree .. "/lua/?/init.lua;" .. package.path
package.cpath = tree .. "/build/" .. lua .. "/?.so;" .. package.cpath

local qiwi = require "qiwi"

if mode == "core" then
  local floor = dofile((arg[0]:match("^(.*)/") or ".") .. "/floor.lua")(base_url, ca_file, token, wallet)
  local res
  for _ = 1, n do res = floor.call() end
  if n > 0 then assert(type(res.accounts) == "table" and #res.accounts > 0, "no accounts") end
  floor.close()
  io.write("ok ", n, "\n")
  os.exit(0)
end

local client = assert(qiwi.new { token = token, wallet = wallet, base_url = base_url, ca_file = ca_file,
                                 history_rate = false })
local res, err
for _ = 1, n do
  res, err = client:accounts()
  if not res then error(tostring(err)) end
end
-- the last answer is checked once: every one is the same body (N = 0 measures
-- start-up alone: loading, qiwi.new, exit)
if n > 0 then assert(type(res.accounts) == "table" and #res.accounts > 0, "accounts() gave no accounts") end
client:close()
io.write("ok ", n, "\n")
