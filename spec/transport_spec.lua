-- The libcurl transport over real HTTPS: TLS, faults, keep-alive, options.
local qiwi = require "qiwi"
local https_fake = require "https_fake"
local util = require "util"

local TOKEN = "test-token"
local WALLET = "79111234567"

describe("HTTPS transport", function()
  local srv

  setup(function()
    srv = https_fake.shared()
  end)

  before_each(function()
    srv:reset { token = TOKEN, wallet = WALLET }
    srv:config { delay_ms = 0 }
  end)

  local function client(opts)
    local o = { token = TOKEN, wallet = WALLET, base_url = srv.base_url, ca_file = srv.ca_file, retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(qiwi.new(o))
  end

  it("reuses one TLS connection for consecutive calls (keep-alive)", function()
    local c = client()
    for _ = 1, 5 do assert.truthy(c:accounts()) end
    assert.equal(1, util.connections(srv:requests()))
    c:close()
  end)

  it("a second client opens its own connection", function()
    local a, b2 = client(), client()
    assert.truthy(a:accounts())
    assert.truthy(b2:accounts())
    local reqs = srv:requests()
    assert.are_not.equal(reqs[1].connection, reqs[2].connection)
  end)

  it("sends the user agent", function()
    assert.truthy(client():accounts())
    local ua = srv:requests()[1].headers["user-agent"]
    assert.equal("lua-qiwi/0.1.0", ua)
    assert.truthy(client { user_agent = "shop/2" }:accounts())
    assert.equal("shop/2", srv:requests()[2].headers["user-agent"])
  end)

  it("refuses a server certificate from an unknown CA with a tls error", function()
    local other = https_fake.start { cert = "other_ca" }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = other.base_url,
                                ca_file = srv.ca_file, retries = 0 })
    local res, err = c:accounts()
    other:stop()
    assert.is_nil(res)
    assert.equal("tls", err.kind)
    assert.is_false(err.retryable)
    assert.is_nil(tostring(err):find(TOKEN, 1, true))
  end)

  it("refuses a certificate for another host name with a tls error", function()
    local wrong = https_fake.start { cert = "wrong_host" }
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = wrong.base_url,
                                ca_file = srv.ca_file, retries = 0 })
    local res, err = c:accounts()
    wrong:stop()
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("verifies against the system store when no CA file is given", function()
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = srv.base_url, retries = 0 })
    local res, err = c:accounts()
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("a closed port is a retryable network error", function()
    local tmp = https_fake.start {}
    local url = tmp.base_url
    tmp:stop()
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = url, ca_file = srv.ca_file, retries = 0 })
    local res, err = c:accounts()
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_true(err.retryable)
    assert.is_nil(err.status)
  end)

  it("a slow answer past the timeout is a timeout error", function()
    srv:config { delay_ms = 1500 }
    local c = client { timeout = 0.3 }
    local res, err = c:accounts()
    srv:config { delay_ms = 0 }
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_true(err.retryable)
  end)

  it("connects through `resolve` while still checking the host name", function()
    local url = "https://fake.qiwi.test:" .. srv.port
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, base_url = url, ca_file = srv.ca_file,
                                resolve = { ["fake.qiwi.test"] = "127.0.0.1" }, retries = 0 })
    local res, err = c:accounts()
    assert.is_nil(err)
    assert.is_table(res.accounts)
  end)

  it("retries a safe request after a 503 and succeeds", function()
    srv:call("fail_next", { status = 503, count = 1 })
    local c = client { retries = 2 }
    local res, err = c:accounts()
    assert.is_nil(err)
    assert.is_table(res.accounts)
    assert.equal(2, #srv:requests())
  end)

  it("close is idempotent and a closed client reconnects on the next call", function()
    local c = client()
    assert.truthy(c:accounts())
    c:close()
    c:close()
    assert.truthy(c:accounts())
  end)
end)

describe("qiwi.new", function()
  local bad = {
    { "no token", {} },
    { "empty token", { token = "" } },
    { "token with a newline", { token = "abc\ndef" } },
    { "token with a space", { token = "abc def" } },
    { "a malformed wallet", { token = "test-token", wallet = "12ab" } },
    { "a short wallet", { token = "test-token", wallet = "123" } },
    { "an http base URL", { token = "test-token", base_url = "http://edge.qiwi.com" } },
    { "an http base URL to a non-loopback host even when allowed", { token = "test-token", base_url = "http://10.0.0.1", allow_http = true } },
    { "a ftp base URL", { token = "test-token", base_url = "ftp://edge.qiwi.com" } },
    { "a base URL with a path", { token = "test-token", base_url = "https://edge.qiwi.com/api" } },
    { "a negative timeout", { token = "test-token", timeout = -1 } },
    { "retries out of range", { token = "test-token", retries = 11 } },
    { "an unknown option", { token = "test-token", colour = "blue" } },
    { "a non-table", "token" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[1], function()
      local c, err = qiwi.new(case[2])
      assert.is_nil(c)
      assert.equal("argument", err.kind)
      assert.is_string(tostring(err))
    end)
  end

  it("accepts http only for a loopback host with allow_http", function()
    assert.truthy(qiwi.new { token = "test-token", base_url = "http://127.0.0.1:8080", allow_http = true })
  end)

  it("strips '+' from the wallet and accepts an integer wallet", function()
    assert.equal("79111234567", qiwi.new { token = "test-token", wallet = "+79111234567" }.wallet)
    assert.equal("79111234567", qiwi.new { token = "test-token", wallet = 79111234567 }.wallet)
  end)

  it("has a version string", function()
    assert.matches("^qiwi %d+%.%d+%.%d+$", qiwi._VERSION)
  end)
end)
