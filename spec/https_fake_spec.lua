-- The HTTPS test harness itself: the test PKI, nginx start/stop and the
-- control calls. Checked with the curl CLI only, never with our own client,
-- so a harness bug cannot hide behind a client bug or the other way round.
local pki = require "pki"
local https_fake = require "https_fake"

local util = pki.util
local shq = util.shq
local REPO = util.repo_root()
-- Child Lua processes run on the same interpreter as this spec.
-- Child Lua processes run on the interpreter of this spec's version (not
-- arg[-1]: under make sanitize that is the ASan host, which takes no -e).
local LUA = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

-- Runs curl with the environment's own CA settings removed. Returns curl's
-- exit code, the body, stderr and the -w output.
local tmpdir
local function curl(args)
  local out, err, w = tmpdir .. "/out", tmpdir .. "/err", tmpdir .. "/w"
  os.remove(out)
  local _, code = util.exec("env -u CURL_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR curl -sS --max-time 5 -o "
    .. shq(out) .. " " .. args .. " >" .. shq(w) .. " 2>" .. shq(err) .. " </dev/null")
  return code, util.read_file(out) or "", util.read_file(err) or "", util.read_file(w) or ""
end

local function openssl_out(args)
  local p = io.popen("openssl " .. args .. " 2>&1")
  local s = p:read("*a")
  p:close()
  return s
end

-- Not util.alive: the harness's own check is what is under test here.
local function gone(pid)
  local st = util.read_file("/proc/" .. pid .. "/stat")
  return st == nil or st:match("^%d+ %(.*%) (%a)") == "Z"
end

local function exists(path)
  return util.read_file(path) ~= nil or util.exec("test -e " .. shq(path))
end

setup(function()
  tmpdir = util.tmpdir("spec")
end)

teardown(function()
  if tmpdir and tmpdir:match("^/tmp/lua%-qiwi%-spec%.") then util.exec("rm -rf " .. shq(tmpdir)) end
end)

describe("pki.ensure", function()
  local certs

  setup(function()
    certs = pki.ensure()
  end)

  it("returns absolute paths of non-empty files under build/test-pki", function()
    for _, k in ipairs { "ca", "cert", "key", "other_ca", "other_cert", "other_key",
                         "wrong_host_cert", "wrong_host_key" } do
      assert.is_string(certs[k], k)
      assert.equal("/", certs[k]:sub(1, 1))
      assert.truthy(certs[k]:find(REPO .. "/build/test-pki/", 1, true), k)
      assert.is_true(util.nonempty(certs[k]), k)
    end
  end)

  it("reuses the existing set, quickly", function()
    local t0 = util.now()
    local again = pki.ensure()
    local dt = util.now() - t0
    assert.equal(certs.ca, again.ca)
    assert.equal(certs.cert, again.cert)
    assert.is_true(dt < 0.05, "second ensure took " .. dt .. " s")
  end)

  it("makes a CA certificate and server certificates with the right names", function()
    local ca = openssl_out("x509 -noout -ext basicConstraints -in " .. shq(certs.ca))
    assert.matches("CA:TRUE", ca)
    local san = openssl_out("x509 -noout -ext subjectAltName -in " .. shq(certs.cert))
    assert.matches("DNS:localhost", san)
    assert.matches("DNS:fake.qiwi.test", san)
    assert.matches("IP Address:127.0.0.1", san)
    local other = openssl_out("x509 -noout -ext subjectAltName -in " .. shq(certs.other_cert))
    assert.matches("IP Address:127.0.0.1", other)
    local wrong = openssl_out("x509 -noout -ext subjectAltName -in " .. shq(certs.wrong_host_cert))
    assert.matches("DNS:wrong.example", wrong)
    assert.is_nil(wrong:find("127.0.0.1", 1, true))
    assert.matches("ecdsa%-with%-SHA256", openssl_out("x509 -noout -text -in " .. shq(certs.cert)))
  end)

  it("chains each server certificate to its own CA only", function()
    local function verifies(ca, cert)
      return (util.exec("openssl verify -CAfile " .. shq(ca) .. " " .. shq(cert) .. " >/dev/null 2>&1"))
    end
    assert.is_true(verifies(certs.ca, certs.cert))
    assert.is_true(verifies(certs.ca, certs.wrong_host_cert))
    assert.is_true(verifies(certs.other_ca, certs.other_cert))
    assert.is_false(verifies(certs.ca, certs.other_cert))
    assert.is_false(verifies(certs.other_ca, certs.cert))
  end)

  it("pairs every certificate with its key", function()
    local function pub(args) return openssl_out(args .. " | openssl sha256") end
    for _, pair in ipairs { { "cert", "key" }, { "other_cert", "other_key" },
                            { "wrong_host_cert", "wrong_host_key" } } do
      local from_cert = pub("x509 -noout -pubkey -in " .. shq(certs[pair[1]]))
      local from_key = pub("pkey -pubout -in " .. shq(certs[pair[2]]))
      assert.equal(from_cert, from_key, pair[1])
    end
  end)

  it("rebuilds a set whose record is corrupt or expiring", function()
    local dir = tmpdir .. "/pki-renew"
    local first = pki.ensure(dir)
    util.write_file(dir .. "/CURRENT", "garbage\n")
    local second = pki.ensure(dir)
    assert.are_not.equal(first.dir, second.dir)
    local cur = util.read_file(dir .. "/CURRENT")
    util.write_file(dir .. "/CURRENT", (cur:gsub("(%d+)\n$", tostring(os.time() + 3600) .. "\n")))
    local third = pki.ensure(dir)
    assert.are_not.equal(second.dir, third.dir)
    assert.equal(third.dir, pki.ensure(dir).dir)
  end)

  it("gives two processes racing on an empty directory each a consistent set", function()
    local dir = tmpdir .. "/pki-race"
    local script = ("package.path = %q .. package.path; local c = require('pki').ensure(%q); "
      .. "print(c.ca .. ' ' .. c.cert)"):format(REPO .. "/spec/support/?.lua;", dir)
    local cmd = {}
    for i = 1, 3 do
      cmd[#cmd + 1] = LUA .. " -e " .. shq(script) .. " >" .. shq(tmpdir .. "/race" .. i) .. " 2>&1 &"
    end
    assert.is_true((util.exec(table.concat(cmd, " ") .. " wait")))
    for i = 1, 3 do
      local line = util.read_file(tmpdir .. "/race" .. i) or ""
      local ca, cert = line:match("^(%S+) (%S+)\n$")
      assert.is_string(ca, line)
      assert.is_true((util.exec("openssl verify -CAfile " .. shq(ca) .. " " .. shq(cert) .. " >/dev/null 2>&1")))
    end
    local current = pki.ensure(dir)
    assert.is_true((util.exec("openssl verify -CAfile " .. shq(current.ca) .. " " .. shq(current.cert) .. " >/dev/null 2>&1")))
  end)
end)

describe("https_fake", function()
  local srv, certs

  setup(function()
    certs = pki.ensure()
    srv = https_fake.shared()
  end)

  describe("the shared server", function()
    it("is one object per process, surviving a reload of the module", function()
      assert.equal(srv, https_fake.shared())
      package.loaded.https_fake = nil
      local reloaded = require "https_fake"
      assert.are_not.equal(https_fake, reloaded)
      assert.equal(srv, reloaded.shared())
      package.loaded.https_fake = https_fake
    end)

    it("describes itself", function()
      assert.is_number(srv.port)
      assert.is_true(srv.port >= 20000 and srv.port <= 60999)
      assert.equal("https://127.0.0.1:" .. srv.port, srv.base_url)
      assert.equal(certs.ca, srv.ca_file)
      assert.matches("^/tmp/lua%-qiwi%-nginx%.", srv.prefix)
      assert.is_true(util.nonempty(srv.prefix .. "/nginx.conf"))
    end)

    it("verifies with the test CA", function()
      local code, body, err, verify = curl("-w '%{ssl_verify_result}' --cacert " .. shq(srv.ca_file) .. " "
        .. shq(srv.base_url .. "/__harness/ready"))
      assert.equal(0, code, err)
      assert.equal("0", verify)
      assert.equal("ready\n", body)
    end)

    it("fails verification without the test CA", function()
      local code, _, err = curl(shq(srv.base_url .. "/__harness/ready"))
      assert.equal(60, code, err)
    end)

    it("fails verification with the unrelated CA", function()
      local code, _, err = curl("--cacert " .. shq(certs.other_ca) .. " " .. shq(srv.base_url .. "/__harness/ready"))
      assert.equal(60, code, err)
    end)

    it("answers by name through --resolve, checking the name", function()
      local code, body, err = curl("--cacert " .. shq(srv.ca_file) .. " --resolve " .. shq(srv.resolve)
        .. " " .. shq(srv.named_url .. "/__harness/ready"))
      assert.equal(0, code, err)
      assert.equal("ready\n", body)
      code = curl("--cacert " .. shq(srv.ca_file) .. " --resolve " .. shq("other.name:" .. srv.port .. ":127.0.0.1")
        .. " " .. shq("https://other.name:" .. srv.port .. "/__harness/ready"))
      assert.equal(60, code)
    end)

    it("speaks HTTP/2 and HTTP/1.1", function()
      local url = shq(srv.base_url .. "/__harness/ready")
      local code, _, err, version = curl("--http2 -w '%{http_version}' --cacert " .. shq(srv.ca_file) .. " " .. url)
      assert.equal(0, code, err)
      assert.equal("2", version)
      code, _, err, version = curl("--http1.1 -w '%{http_version}' --cacert " .. shq(srv.ca_file) .. " " .. url)
      assert.equal(0, code, err)
      assert.equal("1.1", version)
    end)

    it("runs nginx as the current user, as one process, inside its prefix", function()
      local status = util.read_file("/proc/" .. srv.pid .. "/status")
      local p = io.popen("id -u")
      local uid = p:read("*l")
      p:close()
      assert.equal(uid, status:match("\nUid:%s+(%d+)"))
      local cmdline = util.read_file("/proc/" .. srv.pid .. "/cmdline")
      assert.truthy(cmdline:find(srv.prefix, 1, true))
      -- "[/]" keeps the pattern from matching the shell that runs pgrep.
      p = io.popen("pgrep -f " .. shq("[/]" .. srv.prefix:sub(2) .. "/nginx.conf") .. " | wc -l")
      local n = tonumber(p:read("*a"))
      p:close()
      -- nginx itself and the shell that supervises it.
      assert.equal(2, n)
      assert.is_true(util.nonempty(srv.prefix .. "/logs/nginx.pid"))
    end)
  end)

  describe("servers with a bad certificate", function()
    it("other_ca: refused with the test CA, accepted with its own CA", function()
      local other = https_fake.start { cert = "other_ca", location_lua = 'ngx.say("other")' }
      local url = shq(other.base_url .. "/x")
      local bad, _, err = curl("--cacert " .. shq(other.ca_file) .. " " .. url)
      local good, body = curl("--cacert " .. shq(certs.other_ca) .. " " .. url)
      other:stop()
      assert.equal(certs.ca, other.ca_file)
      assert.equal(60, bad, err)
      assert.equal(0, good)
      assert.equal("other\n", body)
    end)

    it("wrong_host: chains to the test CA but fails the name check for 127.0.0.1", function()
      local wrong = https_fake.start { cert = "wrong_host", location_lua = 'ngx.say("wrong")' }
      local bad, _, err = curl("--cacert " .. shq(wrong.ca_file) .. " " .. shq(wrong.base_url .. "/x"))
      local good, body = curl("--cacert " .. shq(certs.ca) .. " --resolve " .. shq("wrong.example:" .. wrong.port .. ":127.0.0.1")
        .. " " .. shq("https://wrong.example:" .. wrong.port .. "/x"))
      wrong:stop()
      assert.equal(60, bad, err)
      assert.matches("subject name", err)
      assert.equal(0, good)
      assert.equal("wrong\n", body)
    end)
  end)

  describe("lifecycle", function()
    it("serves a custom content_by_lua body", function()
      local s = https_fake.start { location_lua = 'ngx.say("custom ", ngx.var.request_method, " ", ngx.var.uri)' }
      local code, body = curl("-X PUT --cacert " .. shq(s.ca_file) .. " " .. shq(s.base_url .. "/some/path"))
      s:stop()
      assert.equal(0, code)
      assert.equal("custom PUT /some/path\n", body)
    end)

    it("starts in well under a second", function()
      local s = https_fake.start { location_lua = 'ngx.say("x")' }
      s:stop()
      assert.is_number(s.startup_seconds)
      assert.is_true(s.startup_seconds < 1, "took " .. s.startup_seconds .. " s")
    end)

    it("stop() closes the port, ends nginx and its shell, removes the prefix; twice is fine", function()
      local s = https_fake.start { location_lua = 'ngx.say("up")' }
      local pid, sh, prefix, url = s.pid, s._sh_pid, s.prefix, shq(s.base_url .. "/x")
      assert.equal(0, (curl("--cacert " .. shq(s.ca_file) .. " " .. url)))
      assert.is_false(gone(pid))
      s:stop()
      assert.is_true(gone(pid))
      assert.is_true(gone(sh))
      -- Reaped, not a zombie: the pid is gone from /proc entirely.
      assert.is_nil(util.read_file("/proc/" .. pid .. "/stat"))
      assert.equal(7, (curl("--cacert " .. shq(s.ca_file) .. " " .. url)))
      assert.is_false(exists(prefix))
      s:stop()
      assert.has_error(function() s:requests() end)
    end)

    it("a server dropped without stop() is stopped by the garbage collector", function()
      local s = https_fake.start { location_lua = 'ngx.say("up")' }
      local pid, prefix = s.pid, s.prefix
      s = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.is_true(gone(pid))
      assert.is_false(exists(prefix))
    end)

    it("a killed owner process takes its nginx and prefix with it", function()
      local script = ("package.path = %q .. package.path; local s = require('https_fake').start{ location_lua = 'ngx.say(1)' }; "
        .. "print(io.open('/proc/self/stat'):read('*l'):match('^%%d+'), s.pid, s.prefix); io.stdout:flush(); "
        .. "require('system').sleep(30)"):format(REPO .. "/spec/support/?.lua;")
      local p = io.popen("exec " .. LUA .. " -e " .. shq(script) .. " 2>&1")
      local line = p:read("*l") or ""
      local owner, pid, prefix = line:match("^(%d+)%s+(%d+)%s+(%S+)$")
      assert.is_string(prefix, line)
      assert.is_false(gone(pid))
      util.exec("kill -KILL " .. owner)
      p:close()
      util.wait_until(5, function() return gone(pid) and not exists(prefix) end, 0.02)
      assert.is_true(gone(pid))
      assert.is_false(exists(prefix))
    end)

    it("reports a bad configuration with nginx's own message and leaves nothing behind", function()
      local ok, err = pcall(https_fake.start, { http_extra = "no_such_directive on;" })
      assert.is_false(ok)
      assert.matches("exited during start%-up", err)
      assert.matches('unknown directive "no_such_directive"', err)
      local prefix = err:match("(/tmp/lua%-qiwi%-nginx%.%w+)")
      assert.is_string(prefix)
      assert.is_false(exists(prefix))
    end)

    it("retries on another port when the chosen one is taken", function()
      local pick = https_fake._pick_port
      local calls = 0
      https_fake._pick_port = function(used)
        calls = calls + 1
        if calls == 1 then return srv.port end
        return pick(used)
      end
      local ok, s = pcall(https_fake.start, { location_lua = 'ngx.say("second")' })
      https_fake._pick_port = pick
      assert.is_true(ok, s)
      local code, body = curl("--cacert " .. shq(s.ca_file) .. " " .. shq(s.base_url .. "/x"))
      s:stop()
      assert.equal(2, calls)
      assert.are_not.equal(srv.port, s.port)
      assert.equal(0, code)
      assert.equal("second\n", body)
    end)
  end)

  describe("control calls to the fake", function()
    local function api_get(path, token)
      return curl("-H " .. shq("Authorization: Bearer " .. (token or "test-token"))
        .. " -H 'Accept: application/json' --cacert " .. shq(srv.ca_file) .. " " .. shq(srv.base_url .. path))
    end

    local function api_status(path, token)
      local p = io.popen("curl -sS -o /dev/null -w '%{http_code}' -H " .. shq("Authorization: Bearer " .. token)
        .. " --cacert " .. shq(srv.ca_file) .. " " .. shq(srv.base_url .. path))
      local status = p:read("*a")
      p:close()
      return status
    end

    before_each(function()
      srv:reset { token = "test-token", wallet = "79111234567" }
      srv:config { delay_ms = 0 }
    end)

    it("answers ping", function()
      local code, body = curl("--cacert " .. shq(srv.ca_file) .. " " .. shq(srv.base_url .. "/__fake/ping"))
      assert.equal(0, code)
      assert.equal("pong", (body:gsub("%s+$", "")))
    end)

    it("logs API requests and forgets them on reset", function()
      assert.same({}, srv:requests())
      api_get("/funding-sources/v2/persons/79111234567/accounts")
      api_get("/person-profile/v1/profile/current?authInfoEnabled=false")
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal("GET", reqs[1].method)
      assert.equal("/funding-sources/v2/persons/79111234567/accounts", reqs[1].path)
      assert.equal("/person-profile/v1/profile/current", reqs[2].path)
      assert.equal("authInfoEnabled=false", reqs[2].query)
      assert.equal("Bearer test-token", reqs[1].headers["authorization"])
      assert.equal("false", reqs[2].params.authInfoEnabled)
      assert.equal(200, reqs[1].status)
      assert.equal("200", tostring(reqs[1].status))
      assert.is_number(reqs[1].connection)
      -- JSON null (no body) reads as nil, as in the in-process fake.
      assert.is_nil(reqs[1].body)
      srv:reset { token = "test-token", wallet = "79111234567" }
      assert.same({}, srv:requests())
    end)

    it("applies the reset options", function()
      local path = "/funding-sources/v2/persons/79111234567/accounts"
      assert.equal("200", api_status(path, "test-token"))
      assert.equal("401", api_status(path, "other-token"))
      srv:reset { token = "other-token", wallet = "79111234567" }
      assert.equal("200", api_status(path, "other-token"))
      assert.equal("401", api_status(path, "test-token"))
    end)

    it("delays answers as configured", function()
      srv:config { delay_ms = 300 }
      local t0 = util.now()
      api_get("/funding-sources/v2/persons/79111234567/accounts")
      local slow = util.now() - t0
      srv:config { delay_ms = 0 }
      t0 = util.now()
      api_get("/funding-sources/v2/persons/79111234567/accounts")
      local fast = util.now() - t0
      assert.is_true(slow >= 0.3, "slow " .. slow)
      assert.is_true(fast < 0.3, "fast " .. fast)
    end)

    it("calls fake methods and returns their result", function()
      assert.is_true(srv:call("set_balance", "qw_wallet_rub", 1234.5))
      assert.equal(1234.5, srv:call("balance", "qw_wallet_rub"))
      local _, body = api_get("/funding-sources/v2/persons/79111234567/accounts")
      assert.matches("1234%.5", body)
      -- A nil result comes back as nil, not as cjson.null.
      assert.is_nil(srv:call("balance", "qw_wallet_xyz"))
    end)

    it("raises with the status and the error log on a bad control call", function()
      local ok, err = pcall(srv.call, srv, "no_such_method")
      assert.is_false(ok)
      assert.matches("/__fake/call", err)
      assert.matches("error.log", err)
    end)

    it("applies fake and delay_ms given to start", function()
      local s = https_fake.start { fake = { token = "start-token", wallet = "79110000000" }, delay_ms = 200 }
      local t0 = util.now()
      local p = io.popen("curl -sS -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer start-token' --cacert "
        .. shq(s.ca_file) .. " " .. shq(s.base_url .. "/funding-sources/v2/persons/79110000000/accounts"))
      local status = p:read("*a")
      p:close()
      local dt = util.now() - t0
      local n = #s:requests()
      s:stop()
      assert.equal("200", status)
      assert.is_true(dt >= 0.2, "took " .. dt)
      assert.equal(1, n)
    end)
  end)
end)
