-- The `qiwi` command through a proxy, as a user runs it: real processes
-- (bin/qiwi, or QIWI_CLI's command) against `qiwi fake` over HTTPS, and a
-- real proxy (spec/support/connect_proxy.lua) that records what it is
-- asked. What is proven: QIWI_PROXY (credentials allowed) and --proxy
-- (none allowed: `ps` shows arguments) reach the proxy, --proxy wins,
-- credentials on the command line are refused before anything is sent,
-- and no failure ever prints the proxy's password.
local qiwi = require "qiwi"
local cli = require "qiwi_cli"
local connect_proxy = require "connect_proxy"

local decode = qiwi.json.decode

-- "@" in the password: it goes %-escaped in the URL, and both forms must
-- stay out of every output
local USER, PASSWORD = "shop", "p@ss-7f3a9c"
local PASSWORD_IN_URL = "p%40ss-7f3a9c"
local SECRETS = { PASSWORD, PASSWORD_IN_URL, "7f3a9c" }

local function assert_no_secret(r)
  for _, secret in ipairs(SECRETS) do
    assert.is_nil((r.out .. r.err):find(secret, 1, true), "the password shown: " .. r.out .. r.err)
  end
end

-- A failure the way the CLI prints one: one line on stderr, nothing on stdout.
local function assert_one_line_failure(r, code)
  assert.equal(code, r.code, r.err)
  assert.truthy(r.err:find("^qiwi: [^\n]+\n$"), r.err)
  assert.equal("", r.out)
  assert_no_secret(r)
end

describe("qiwi (the command line) through a proxy", function()
  local fake, open, authed, target

  setup(function()
    fake = assert(cli.start_fake())
    target = "127.0.0.1:" .. fake.port
    open = connect_proxy.start {}
    authed = connect_proxy.start { user = USER, password = PASSWORD }
  end)

  teardown(function()
    if open then open:stop() end
    if authed then authed:stop() end
    if fake then fake:stop() end
  end)

  before_each(function()
    local status, body = fake:curl("POST", "/__fake/reset",
      qiwi.json.encode { token = fake.token, wallet = fake.wallet })
    assert.equal(200, status, body)
    open:clear()
    authed:clear()
  end)

  -- QIWI_PROXY is not among the variables qiwi_cli unsets: "" keeps one of
  -- the spec's own environment out unless a case sets it
  local function q(argv, env)
    local e = { QIWI_PROXY = "" }
    for k, v in pairs(env or {}) do e[k] = v end
    local r = cli.run(argv, { env = fake:client_env(e) })
    assert_no_secret(r)
    return r
  end

  local function accounts_requests()
    local status, body = fake:curl("GET", "/__fake/requests")
    assert.equal(200, status)
    local n = 0
    for _, req in ipairs(decode(body)) do
      if req.path:find("/accounts$") then n = n + 1 end
    end
    return n
  end

  it("--help lists --proxy and QIWI_PROXY", function()
    local r = cli.run { "--help" }
    assert.equal(0, r.code)
    assert.truthy(r.out:find("\n   --proxy U ", 1, true), r.out)
    assert.truthy(r.out:find("\n   QIWI_PROXY or --proxy U ", 1, true), r.out)
  end)

  it("QIWI_PROXY with credentials: balance goes through the proxy's CONNECT, authenticated", function()
    local r = q({ "balance" }, { QIWI_PROXY = authed:url("http", USER .. ":" .. PASSWORD_IN_URL) })
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("qw_wallet_rub", 1, true), r.out)
    -- the credentials arrived decoded, in the one tunnel the call took
    assert.same({ { proto = "CONNECT", target = target, verdict = "200", auth = USER .. ":" .. PASSWORD } },
                authed:events())
    assert.equal(1, accounts_requests())
    assert.same({}, open:events())
  end)

  it("--proxy without credentials; it wins over QIWI_PROXY", function()
    local r = q({ "--proxy", open:url("socks5"), "balance" },
                { QIWI_PROXY = authed:url("http", USER .. ":" .. PASSWORD_IN_URL) })
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("qw_wallet_rub", 1, true), r.out)
    -- socks5 (not socks5h) resolves here, so the proxy is given the address
    assert.same({ { proto = "SOCKS5-ipv4", target = target, verdict = "granted" } }, open:events())
    assert.same({}, authed:events())
    local eq = q({ "--proxy=" .. open:url("http"), "profile" })
    assert.equal(0, eq.code, eq.err)
    assert.truthy(eq.out:find("Wallet%s+%+" .. fake.wallet), eq.out)
    assert.same({ proto = "CONNECT", target = target, verdict = "200" }, open:events()[2])
    assert.equal(2, #open:events())
  end)

  it("refuses --proxy with user info before sending anything, without repeating it", function()
    local with_password = authed:url("http", USER .. ":" .. PASSWORD_IN_URL)
    for _, argv in ipairs { { "--proxy", with_password, "balance" }, { "--proxy=" .. with_password, "balance" },
                            { "balance", "--proxy", with_password },
                            { "--proxy", authed:url("http", PASSWORD_IN_URL), "balance" } } do
      local r = q(argv)
      assert_one_line_failure(r, 2)
      assert.truthy(r.err:find("QIWI_PROXY", 1, true), r.err)
      assert.truthy(r.err:find("`ps`", 1, true), r.err)
    end
    assert.same({}, authed:events())
    assert.equal(0, accounts_requests())
  end)

  it("a proxy that refuses (407): a network failure, the password in no output", function()
    local refusing = connect_proxy.start { refuse = true }
    finally(function() refusing:stop() end)
    local r = q({ "balance" }, { QIWI_PROXY = refusing:url("http", USER .. ":" .. PASSWORD_IN_URL) })
    assert_one_line_failure(r, 4)
    assert.truthy(r.err:find("407", 1, true), r.err)
    -- it was this proxy that refused, given the credentials (once per
    -- attempt: the library retries a network failure of a read)
    local events = refusing:events()
    assert.is_true(#events >= 1)
    for _, e in ipairs(events) do
      assert.same({ proto = "CONNECT", target = target, verdict = "407", auth = USER .. ":" .. PASSWORD }, e)
    end
    assert.equal(0, accounts_requests())
  end)

  it("a proxy that is down: a network failure, the password in no output", function()
    local gone = connect_proxy.start {}
    local url = gone:url("http", USER .. ":" .. PASSWORD_IN_URL)
    gone:stop()
    local r = q({ "balance" }, { QIWI_PROXY = url })
    assert_one_line_failure(r, 4)
    assert.truthy(r.err:find("network", 1, true), r.err)
    assert.equal(0, accounts_requests())
  end)

  it("a bad QIWI_PROXY or --proxy: an argument error naming what is wrong, nothing sent", function()
    local no_port = "http://" .. USER .. ":" .. PASSWORD_IN_URL .. "@127.0.0.1"
    local cases = {
      { { QIWI_PROXY = no_port }, {}, "proxy must name a host and a port" },
      { { QIWI_PROXY = "ftp://" .. USER .. ":" .. PASSWORD_IN_URL .. "@127.0.0.1:21" }, {},
        "proxy must be http://, https://, socks5:// or socks5h://" },
      { { QIWI_PROXY = "http://" .. USER .. ":" .. PASSWORD_IN_URL .. "%zz@127.0.0.1:" .. authed.port }, {},
        "malformed %-escape" },
      { {}, { "--proxy", "127.0.0.1:" .. open.port }, "proxy must be http://" },
    }
    for _, case in ipairs(cases) do
      local argv = {}
      for i, v in ipairs(case[2]) do argv[i] = v end
      argv[#argv + 1] = "balance"
      local r = q(argv, case[1])
      assert_one_line_failure(r, 3)
      assert.truthy(r.err:find("^qiwi: argument: ") and r.err:find(case[3], 1, true), r.err)
    end
    assert.same({}, authed:events())
    assert.same({}, open:events())
    assert.equal(0, accounts_requests())
  end)
end)
