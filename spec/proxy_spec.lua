-- The proxy option over real parts: the HTTPS fake (nginx, test CA,
-- verification on) reached through a real proxy process on 127.0.0.1
-- (spec/support/connect_proxy.lua: HTTP CONNECT, SOCKS5, TLS), which records
-- every byte it sees. What is proven: the request goes through the proxy
-- as a tunnel (CONNECT to host:port, SOCKS5 by name or address), TLS runs
-- end to end with QIWI (the proxy never sees the token or an Authorization
-- header, and a proxy that tunnels elsewhere gets a TLS failure), proxy
-- credentials go to the proxy and into no error, and a bad proxy option is
-- an argument error before anything is sent.
local qiwi = require "qiwi"
local https_fake = require "https_fake"
local connect_proxy = require "connect_proxy"
local checks = require "checks"
local util = require "util"

local TOKEN = "proxy-spec-token-6d1f0a2b"
local WALLET = "79111234567"
local TO = "79990001122"
local NAME = "fake.qiwi.test"          -- a name only the proxy can resolve
local USER, PASSWORD = "buyer", "pr0xy@s3cret-7c2e"
local PASSWORD_IN_URL = "pr0xy%40s3cret-7c2e"
local ACCOUNTS = "/funding-sources/v2/persons/" .. WALLET .. "/accounts"

local texts_of, strings_in = checks.texts_of, checks.strings_in

local SECRET_PARTS = { PASSWORD, PASSWORD_IN_URL, "s3cret", TOKEN }

local function assert_no_secret(list, what)
  for _, text in ipairs(list) do
    for _, secret in ipairs(SECRET_PARTS) do
      assert.is_nil(text:find(secret, 1, true), what .. " shows a secret: " .. text)
    end
  end
end

local function count_path(requests, path)
  local n = 0
  for _, r in ipairs(requests) do
    if r.path == path then n = n + 1 end
  end
  return n
end

describe("proxy", function()
  local srv, proxy, authed

  setup(function()
    srv = https_fake.shared()
    proxy = connect_proxy.start { resolve = { [NAME] = "127.0.0.1" } }
    authed = connect_proxy.start { resolve = { [NAME] = "127.0.0.1" }, user = USER, password = PASSWORD }
  end)

  teardown(function()
    proxy:stop()
    authed:stop()
  end)

  before_each(function()
    srv:reset { token = TOKEN, wallet = WALLET, balance = 1000 }
    proxy:clear()
    authed:clear()
  end)

  local function client(extra)
    local o = { token = TOKEN, wallet = WALLET, base_url = "https://" .. NAME .. ":" .. srv.port,
                ca_file = srv.ca_file, retries = 0, timeout = 10 }
    for k, v in pairs(extra) do o[k] = v end
    return assert(qiwi.new(o))
  end

  -- What the proxy saw of a tunnel: no token, no Authorization header, and
  -- TLS records only (a handshake record first), so nothing it could read.
  local function assert_tunnel_opaque(p)
    local heads, relayed = p:seen()
    assert.is_nil(heads:find(TOKEN, 1, true), "the token in the proxy's heads")
    assert.is_nil(relayed:find(TOKEN, 1, true), "the token in the relayed bytes")
    assert.is_nil(relayed:lower():find("authorization", 1, true), "an Authorization header relayed in clear")
    assert.is_nil(heads:lower():find("\nauthorization:", 1, true), "an Authorization header to the proxy")
    assert.equal(0x16, relayed:byte(1), "the tunnel does not start with a TLS handshake record")
    assert.is_nil(relayed:find("GET /", 1, true), "a request line relayed in clear")
    return heads, relayed
  end

  describe("over HTTP CONNECT", function()
    it("tunnels the call to host:port, TLS verified end to end, the token unseen", function()
      local c = client { proxy = proxy:url("http") }
      local accounts = assert(c:accounts())
      assert.is_table(accounts.accounts)
      -- the fake got the call with the token (through the tunnel)
      assert.equal(1, count_path(srv:requests(), ACCOUNTS))
      local events = proxy:events()
      assert.equal(1, #events)
      assert.same({ proto = "CONNECT", target = NAME .. ":" .. srv.port, verdict = "200" }, events[1])
      local heads, relayed = assert_tunnel_opaque(proxy)
      assert.truthy(heads:find("^CONNECT " .. NAME:gsub("%p", "%%%0") .. ":" .. srv.port .. " HTTP/1%.1\r\n"))
      -- the host name QIWI's certificate is checked against went in the
      -- TLS handshake (SNI): the client verified the name, not the proxy
      assert.truthy(relayed:find(NAME, 1, true))
      assert.is_nil(heads:lower():find("proxy-authorization", 1, true))
    end)

    it("keeps one tunnel for calls in a row, and pays once", function()
      local c = client { proxy = proxy:url("http") }
      assert(c:accounts())
      assert(c:profile())
      local paid = assert(c:transfer { to = TO, amount = 10, comment = "through a proxy" })
      assert.equal("Accepted", paid.transaction.state.code)
      local reqs = srv:requests()
      assert.equal(1, count_path(reqs, "/sinap/api/v2/terms/99/payments"))
      -- the kept-alive connection is the tunnel: one CONNECT, and the fake
      -- saw one connection
      local connects = 0
      for _, e in ipairs(proxy:events()) do
        if e.proto == "CONNECT" and e.verdict == "200" then connects = connects + 1 end
      end
      assert.equal(1, connects)
      assert.equal(1, util.connections(reqs))
      assert_tunnel_opaque(proxy)
    end)

    it("carries batches too", function()
      local c = client { proxy = proxy:url("http") }
      local res = assert(c:batch { { "accounts" }, { "profile" }, { "nickname" } })
      for i = 1, 3 do assert.is_table(res[i][1], tostring(res[i][2])) end
      assert.equal(1, count_path(srv:requests(), ACCOUNTS))
      assert.is_true(#proxy:events() >= 1)
      for _, e in ipairs(proxy:events()) do assert.equal("CONNECT", e.proto) end
      assert_tunnel_opaque(proxy)
    end)

    it("sends the credentials as Proxy-Authorization, decoded from the URL", function()
      local c = client { proxy = authed:url("http", USER .. ":" .. PASSWORD_IN_URL) }
      assert(c:accounts())
      local events = authed:events()
      assert.equal(1, #events)
      assert.equal("200", events[1].verdict)
      assert.equal(USER .. ":" .. PASSWORD, events[1].auth)
      local heads = assert_tunnel_opaque(authed)
      assert.truthy(heads:find("\r\nProxy%-Authorization: Basic "))
      -- neither the client table nor anything reachable from it holds the password
      assert_no_secret(strings_in(c), "the client")
      assert.equal(authed:url("http"), c._opts.proxy)
    end)
  end)

  describe("credentials never in an error", function()
    it("when the proxy refuses them (407)", function()
      local c = client { proxy = authed:url("http", USER .. ":wrong-" .. PASSWORD_IN_URL) }
      local err = checks.named("407", "network", c:accounts())
      assert.truthy(tostring(err):find("407", 1, true), tostring(err))
      assert.equal(0, count_path(srv:requests(), ACCOUNTS))
      assert_no_secret(texts_of(err), "the error")
      assert.equal(USER .. ":wrong-" .. PASSWORD, authed:events()[1].auth)
    end)

    it("when a proxy refuses every request", function()
      local refusing = connect_proxy.start { refuse = true }
      finally(function() refusing:stop() end)
      for _, scheme in ipairs { "http", "socks5h" } do
        local c = client { proxy = refusing:url(scheme, USER .. ":" .. PASSWORD_IN_URL) }
        local err = checks.named(scheme, "network", c:transfer { to = TO, amount = 10 })
        assert_no_secret(texts_of(err), scheme .. " error")
      end
      assert.equal(0, count_path(srv:requests(), "/sinap/api/v2/terms/99/payments"))
      assert.equal(2, #refusing:events())
    end)

    it("a tunnel the proxy turned down is not tried again; a proxy that is down is", function()
      -- retries = 2 on a GET: a refusal costs one attempt, with the same
      -- credentials handed to the proxy once
      for _, scheme in ipairs { "http", "socks5h" } do
        authed:clear()
        local c = client { proxy = authed:url(scheme, USER .. ":wrong-" .. PASSWORD_IN_URL), retries = 2 }
        local err = checks.named(scheme, "network", c:accounts())
        assert.equal("QIWI_PROXY_REFUSED", err.code, scheme .. ": " .. tostring(err))
        assert.is_false(err.retryable, scheme)
        assert.equal(1, #authed:events(), scheme .. ": attempts that reached the proxy")
        assert_no_secret(texts_of(err), scheme .. " error")
        -- the batch reads the same refusal from its multi handle
        local results = assert(c:batch { { "accounts" }, { "nickname" } })
        for i = 1, 2 do
          local berr = results[i][2]
          assert.equal("QIWI_PROXY_REFUSED", berr and berr.code, scheme .. " batch call " .. i)
          assert.is_false(berr.retryable)
        end
        assert.equal(3, #authed:events(), scheme .. ": attempts with the batch")
      end
      assert.equal(0, count_path(srv:requests(), ACCOUNTS))
      local gone = connect_proxy.start {}
      local url = gone:url("http")
      gone:stop()
      local err = checks.named("down", "network", client { proxy = url }:accounts())
      assert.equal("CURLE_COULDNT_CONNECT", err.code)
      assert.is_true(err.retryable)
    end)

    it("when the proxy is down", function()
      local gone = connect_proxy.start {}
      local url = gone:url("http", USER .. ":" .. PASSWORD_IN_URL)
      gone:stop()
      local c = client { proxy = url, retries = 1 }
      local err = checks.named("down", "network", c:accounts())
      assert.equal("CURLE_COULDNT_CONNECT", err.code)
      assert_no_secret(texts_of(err), "the error")
      local res = assert(c:batch { { "accounts" } })
      checks.named("batch", "network", res[1][1], res[1][2])
      assert_no_secret(texts_of(res[1][2]), "the batch's error")
      assert_no_secret(strings_in(c), "the client")
    end)
  end)

  describe("over SOCKS5", function()
    it("socks5h hands the host name to the proxy, socks5 an address", function()
      local c = client { proxy = authed:url("socks5h", USER .. ":" .. PASSWORD_IN_URL) }
      assert(c:accounts())
      local direct = client { base_url = srv.base_url, proxy = authed:url("socks5", USER .. ":" .. PASSWORD_IN_URL) }
      assert(direct:accounts())
      local events = authed:events()
      assert.same({ proto = "SOCKS5-name", target = NAME .. ":" .. srv.port, verdict = "granted",
                    auth = USER .. ":" .. PASSWORD }, events[1])
      assert.same({ proto = "SOCKS5-ipv4", target = "127.0.0.1:" .. srv.port, verdict = "granted",
                    auth = USER .. ":" .. PASSWORD }, events[2])
      assert.equal(2, #events)
      assert.equal(2, count_path(srv:requests(), ACCOUNTS))
      assert_tunnel_opaque(authed)
    end)
  end)

  describe("over TLS to the proxy (https://)", function()
    it("verifies the proxy against ca_file, then QIWI through it", function()
      local tls = connect_proxy.start { tls = { cert = srv.pki.cert, key = srv.pki.key },
                                        resolve = { [NAME] = "127.0.0.1" } }
      finally(function() tls:stop() end)
      local c = client { proxy = tls:url("https") }
      assert(c:accounts())
      assert.equal("CONNECT", tls:events()[1].proto)
      assert_tunnel_opaque(tls)
    end)

    it("refuses a proxy whose certificate does not verify", function()
      local tls = connect_proxy.start { tls = { cert = srv.pki.other_cert, key = srv.pki.other_key } }
      finally(function() tls:stop() end)
      local c = client { proxy = tls:url("https", USER .. ":" .. PASSWORD_IN_URL) }
      local err = checks.named("other CA", "tls", c:accounts())
      assert_no_secret(texts_of(err), "the error")
      -- nothing was asked of it: the handshake failed first
      assert.same({}, tls:events())
    end)
  end)

  describe("a proxy that tunnels elsewhere", function()
    for _, cert in ipairs { "other_ca", "wrong_host" } do
      it("gets a TLS failure and no payment (" .. cert .. ")", function()
        local other = https_fake.start { cert = cert, fake = { token = TOKEN, wallet = WALLET, balance = 1000 } }
        local hostile = connect_proxy.start { divert = other.port, resolve = { [NAME] = "127.0.0.1" } }
        finally(function()
          hostile:stop()
          other:stop()
        end)
        local c = client { proxy = hostile:url("http"), retries = 2 }
        checks.named("accounts", "tls", c:accounts())
        checks.named("transfer", "tls", c:transfer { to = TO, amount = 10 })
        assert.same({}, other:requests())
        assert.same({}, srv:requests())
        assert.equal("200", hostile:events()[1].verdict)
      end)
    end
  end)

  describe("bad options", function()
    local BAD = {
      { 8080, "a number" },
      { "", "empty" },
      { "127.0.0.1:8080", "no scheme" },
      { "ftp://127.0.0.1:21", "an unknown scheme" },
      { "socks4://127.0.0.1:1080", "socks4" },
      { "http://127.0.0.1", "no port" },
      { "http://127.0.0.1:", "an empty port" },
      { "http://127.0.0.1:0", "port 0" },
      { "http://127.0.0.1:65536", "a port past 65535" },
      { "http://127.0.0.1:8080/path", "a path" },
      { "http://127.0.0.1:8080?x=1", "a query" },
      { "http://:8080", "no host" },
      { "http://bad host:8080", "a space" },
      { "http://127.0.0.1:8080\r\nX: y", "a line break" },
      { "http://user:" .. PASSWORD_IN_URL .. "%zz@127.0.0.1:8080", "a malformed escape" },
      { "http://:" .. PASSWORD_IN_URL .. "@127.0.0.1:8080", "an empty user" },
      { "http://user:" .. PASSWORD_IN_URL .. "%0A@127.0.0.1:8080", "an escaped line break" },
      { "http://user:" .. PASSWORD_IN_URL .. "@127.0.0.1:99999", "a bad port after credentials" },
    }
    for _, case in ipairs(BAD) do
      it("refuses " .. case[2] .. ", its text in no message", function()
        local c, err = qiwi.new { token = TOKEN, wallet = WALLET, base_url = srv.base_url,
                                  ca_file = srv.ca_file, proxy = case[1] }
        checks.named(case[2], "argument", c, err)
        assert.truthy(err.message:find("proxy", 1, true), err.message)
        assert_no_secret(texts_of(err), "the error")
      end)
    end

    it("refuses a proxy for a plain-http base URL: the proxy would read the token", function()
      local c, err = qiwi.new { token = TOKEN, base_url = "http://127.0.0.1:" .. srv.port, allow_http = true,
                                proxy = proxy:url("http") }
      checks.named("http", "argument", c, err)
      assert.same({}, proxy:events())
    end)

    it("takes a good proxy with a user's transport, which decides the route", function()
      local f = qiwi.fake.new { token = TOKEN, wallet = WALLET, balance = 5 }
      local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f, proxy = proxy:url("socks5h") })
      assert(c:accounts())
      assert.same({}, proxy:events())
      checks.named("bad", "argument", qiwi.new { token = TOKEN, transport = f, proxy = "socks4://h:1" })
    end)

    it("sends nothing for a bad option", function()
      for _, case in ipairs(BAD) do qiwi.new { token = TOKEN, base_url = srv.base_url, proxy = case[1] } end
      assert.same({}, proxy:events())
      assert.same({}, srv:requests())
    end)
  end)

  it("scrubs the password from any error text that quotes it", function()
    -- libcurl is given the credentials apart from the URL and quotes none
    -- today; a text of a later libcurl, or of a proxy, that did would still
    -- be scrubbed like the token
    local c = client { proxy = authed:url("http", USER .. ":" .. PASSWORD_IN_URL) }
    local err = c:_error { kind = "network", message = "proxy " .. USER .. ":" .. PASSWORD .. " and "
                           .. PASSWORD_IN_URL .. " refused", code = PASSWORD }
    assert_no_secret(texts_of(err), "the error")
    assert.truthy(err.message:find(USER, 1, true))
  end)

  it("never hands plain http (allow_http, loopback) to a proxy of the environment", function()
    -- a child process with http_proxy/ALL_PROXY naming one closed port and a
    -- base URL on another: libcurl's error names the port it dialled
    local children = require "children"
    local proxy_port = util.free_port()
    local server_port = util.free_port { [proxy_port] = true }
    local lpath, cpath = children.paths()
    local code = ([[package.path, package.cpath = %q, %q
      local qiwi = require "qiwi"
      local c = assert(qiwi.new { token = "env-proxy-token-1", wallet = "79111234567", allow_http = true,
                                  base_url = "http://127.0.0.1:%d", retries = 0, connect_timeout = 2 })
      local res, err = c:accounts()
      io.write(tostring(err and err.message))]]):format(lpath, cpath, server_port)
    local env = ("http_proxy=http://127.0.0.1:%d HTTP_PROXY=http://127.0.0.1:%d ALL_PROXY=http://127.0.0.1:%d"):format(
      proxy_port, proxy_port, proxy_port)
    -- a script file, not -e: the sanitizers' host runs scripts only
    local script = os.tmpname()
    util.write_file(script, code)
    local out = util.output(env .. " " .. util.shq(children.interpreter()) .. " " .. util.shq(script) .. " 2>&1")
    os.remove(script)
    assert.truthy(out:find(tostring(server_port), 1, true), out)
    assert.is_nil(out:find(tostring(proxy_port), 1, true), out)
  end)

  it("takes upper-case schemes, IPv6 literals and a trailing slash", function()
    local options = require "qiwi.options"
    assert.same({ url = "socks5h://[::1]:1080", scheme = "socks5h" }, options.parse_proxy("SOCKS5H://[::1]:1080/"))
    local p = assert(options.parse_proxy("http://a%3Ab:c%3Ad%25@proxy.example:3128"))
    assert.same({ "a:b", "c:d%", "http://proxy.example:3128" }, { p.username, p.password, p.url })
    assert.is_nil(options.parse_proxy("http://u:p@h@proxy.example:3128/x"))
  end)
end)

-- Inside nginx requests go over cosockets, which do not speak to proxies:
-- the option is refused there, unless a transport of the user's is given.
describe("proxy inside nginx #nginx", function()
  local app

  setup(function()
    require("util").need_luajit_core()
    app = https_fake.start {
      http_extra = https_fake.client_http(),
      location_lua = 'local qiwi = require "qiwi"; local o = { token = "' .. TOKEN .. '",'
        .. ' base_url = "https://' .. NAME .. ':1", proxy = "http://' .. USER .. ':' .. PASSWORD_IN_URL
        .. '@127.0.0.1:3128" }; local c, err = qiwi.new(o);'
        .. ' o.transport = qiwi.fake.new { token = o.token }; local with_fake = qiwi.new(o);'
        .. ' ngx.say(tostring(c), "|", err and err.kind, "|", err and tostring(err), "|", with_fake and "client" or "refused")',
    }
  end)

  teardown(function() if app then app:stop() end end)

  it("is an argument error with the default transport, and taken with a user's", function()
    local status, body = app:curl("GET", "/")
    assert.equal(200, status, body)
    local c, kind, text, with_fake = body:match("^([^|]*)|([^|]*)|([^|]*)|([^|\n]*)")
    assert.equal("nil", c)
    assert.equal("argument", kind)
    assert.truthy(text:find("not supported inside nginx", 1, true), text)
    assert_no_secret({ body }, "the answer")
    assert.equal("client", with_fake)
  end)
end)
