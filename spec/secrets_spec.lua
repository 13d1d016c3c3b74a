-- Secrets: the token (and the P2P key) never show in an error, a tostring,
-- or anything the process prints, curl's verbose log included.
--
-- The batteries (faults over HTTPS, bad input) run again in a child busted
-- whose helper (spec/support/secrets_probe.lua) records every error the
-- library builds and every secret a client was made with; then every error
-- text and everything the child wrote to stdout/stderr is searched for them.
local qiwi = require "qiwi"
local checks = require "checks"
local https_fake = require "https_fake"
local pki = require "pki"

local util = pki.util
local shq = util.shq
local REPO = util.repo_root()

local TOKEN = "secrets-spec-token-5b7a90e2"
local P2P_KEY = "secrets-spec-p2p-key-11d3"
local WALLET = "79111234567"
local ACCOUNTS = "/funding%-sources/"

local string_fields = checks.texts_of

local function assert_clean(err, secrets)
  assert.is_table(err)
  for _, text in ipairs(string_fields(err)) do
    for _, secret in ipairs(secrets) do
      assert.is_nil(text:find(secret, 1, true), "secret in: " .. text)
      -- a cut-off secret leaks its first half as surely
      assert.is_nil(text:find(secret:sub(1, 12), 1, true), "part of a secret in: " .. text)
    end
    assert.is_nil(text:find("[\r\n]"), "several lines: " .. text)
  end
end

describe("secrets", function()
  describe("in the batteries' errors and output", function()
    local log, out, rc, secrets, errors

    setup(function()
      local dir = util.tmpdir("secrets")
      log, out = dir .. "/errors.log", dir .. "/output.log"
      local cmd = table.concat({
        "cd " .. shq(REPO) .. " &&",
        "QIWI_SECRETS_LOG=" .. shq(log),
        -- the interpreter running this spec, so the child tests the same
        -- build (under `make sanitize`, the instrumented one)
        shq(util.interpreter()), "/usr/bin/busted --run=default",
        "--cpath=" .. shq(package.cpath),
        "--helper=spec/support/secrets_probe.lua -o TAP",
        "spec/faults_spec.lua spec/bad_input_spec.lua",
        ">" .. shq(out) .. " 2>&1 </dev/null",
      }, " ")
      rc = select(2, util.exec(cmd))
      local text = util.read_file(log) or ""
      secrets, errors = {}, {}
      for kind, rest in text:gmatch("([TE])\t([^\n]*)") do
        if kind == "T" then secrets[rest] = true else errors[#errors + 1] = rest end
      end
      out = util.read_file(out) or ""
      util.exec("rm -rf " .. shq(dir))
    end)

    it("ran both batteries to a pass", function()
      assert.equal(0, rc, out:sub(-3000))
      assert.truthy(out:find("faults_spec", 1, true) or out:find("fault battery", 1, true), out:sub(1, 500))
      assert.truthy(out:find("bad%-input battery"), out:sub(1, 500))
    end)

    it("saw the batteries' tokens and a few hundred errors", function()
      assert.is_true(secrets["battery-secret-token-42"] ~= nil)
      assert.is_true(secrets["faults-secret-token-3c9e1f"] ~= nil)
      assert.is_true(#errors >= 200, #errors)
    end)

    it("no error text holds a secret", function()
      local short = 0
      for secret in pairs(secrets) do
        -- tokens of a character or two ("t") occur in any English text
        if #secret >= 8 then
          for _, e in ipairs(errors) do
            assert.is_nil(e:find(secret, 1, true), "secret in: " .. e)
          end
        else
          short = short + 1
        end
      end
      assert.is_true(short < 3)
    end)

    it("nothing the child printed holds a secret (curl's verbose log would be on stderr)", function()
      for secret in pairs(secrets) do
        if #secret >= 8 then assert.is_nil(out:find(secret, 1, true), secret) end
      end
      assert.is_nil(out:find("Authorization:", 1, true))
    end)
  end)

  describe("echoed back by a server", function()
    local srv

    setup(function() srv = https_fake.shared() end)
    before_each(function()
      srv:reset { token = TOKEN, wallet = WALLET, p2p_secret_key = P2P_KEY }
    end)

    local function client()
      return assert(qiwi.new { token = TOKEN, p2p_secret_key = P2P_KEY, wallet = WALLET,
                               base_url = srv.base_url, ca_file = srv.ca_file, retries = 0 })
    end

    it("in every field of QIWI's error body", function()
      local echo = "Bearer " .. TOKEN .. " / " .. P2P_KEY
      srv:call("fail_next", { status = 401, path_pattern = ACCOUNTS, body = {
        serviceName = echo, errorCode = TOKEN, userMessage = echo, description = echo, traceId = P2P_KEY,
      } })
      local res, err = client():accounts()
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert_clean(err, { TOKEN, P2P_KEY })
    end)

    it("in the payment service's error body", function()
      srv:call("fail_next", { status = 400, method = "POST", body = { code = TOKEN, message = "bad " .. TOKEN } })
      local res, err = client():transfer { to = "79990001122", amount = 1 }
      assert.is_nil(res)
      assert_clean(err, { TOKEN, P2P_KEY })
    end)

    it("straddling the point where a long message is cut", function()
      for pad = 480, 500 do
        local text = string.rep("x", pad) .. TOKEN .. string.rep("y", 100)
        srv:call("fail_next", { status = 500, path_pattern = ACCOUNTS, body = {
          errorCode = "x", userMessage = text, description = text,
        } })
        local res, err = client():accounts()
        assert.is_nil(res)
        assert_clean(err, { TOKEN, P2P_KEY })
      end
    end)

    it("inside a body that is not JSON", function()
      srv:call("fail_next", { status = 200, path_pattern = ACCOUNTS,
                              body = '{"token": "' .. TOKEN .. '", "auth": "Bearer ' .. TOKEN })
      local res, err = client():accounts()
      assert.is_nil(res)
      assert.equal("decode", err.kind)
      assert_clean(err, { TOKEN, P2P_KEY })
    end)
  end)

  describe("in the objects themselves", function()
    it("tostring of a client, its error and its session show no secret", function()
      local srv = https_fake.shared()
      srv:reset { token = TOKEN, wallet = WALLET }
      local c = assert(qiwi.new { token = TOKEN, p2p_secret_key = P2P_KEY, wallet = WALLET,
                                  base_url = srv.base_url, ca_file = srv.ca_file, retries = 0 })
      assert.truthy(c:accounts())
      for _, v in ipairs { c, c._transports.token, c._transports.token.session } do
        local s = tostring(v)
        assert.is_nil(s:find(TOKEN, 1, true), s)
        assert.is_nil(s:find(P2P_KEY, 1, true), s)
      end
    end)

    it("a dump of a used client (every table reachable from it) holds no secret", function()
      local srv = https_fake.shared()
      srv:reset { token = TOKEN, wallet = WALLET, p2p_secret_key = P2P_KEY }
      local c = assert(qiwi.new { token = TOKEN, p2p_secret_key = P2P_KEY, wallet = WALLET,
                                  base_url = srv.base_url, ca_file = srv.ca_file, retries = 0 })
      assert.truthy(c:accounts())
      assert.truthy(c:bills { rows = 5 })                       -- the P2P key's headers
      assert.truthy(c:batch { { "accounts" }, { "profile" } })  -- the multi's header ids
      assert.truthy(c:transfer { to = "79990001122", amount = 1 })  -- a body: per-row header cache
      -- what an inspect/serpent dump walks: keys, values and metatables, by pairs
      local seen, strings = {}, 0
      local function walk(v, where)
        local t = type(v)
        if t == "string" then
          strings = strings + 1
          assert.is_nil(v:find(TOKEN, 1, true), where)
          assert.is_nil(v:find(P2P_KEY, 1, true), where)
        elseif (t == "table" or t == "userdata") and not seen[v] then
          seen[v] = true
          walk(tostring(v), where .. " (tostring)")
          if t == "table" then
            for k, x in next, v do
              walk(k, where .. "[key]")
              walk(x, where .. "." .. tostring(k))
            end
          end
          local mt = getmetatable(v)
          -- the module tables behind metatables are not the client's state
          if type(mt) == "table" and mt ~= qiwi.error and not rawget(mt, "_send") then walk(mt, where .. "<mt>") end
        end
      end
      walk(c, "client")
      assert.is_true(strings > 5)
      c:close()
    end)

    it("qiwi.new refusing a bad token does not repeat it", function()
      for _, bad in ipairs { TOKEN .. "\n", TOKEN .. " x", "\0" .. TOKEN } do
        local c, err = qiwi.new { token = bad }
        assert.is_nil(c)
        assert_clean(err, { TOKEN })
      end
      local c, err = qiwi.new { token = TOKEN, p2p_secret_key = P2P_KEY .. "\r\n" }
      assert.is_nil(c)
      assert_clean(err, { TOKEN, P2P_KEY })
    end)
  end)
end)
