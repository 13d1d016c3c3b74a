-- client:batch inside nginx: the calls that overlap on libcurl's multi
-- handle elsewhere run in light threads, at most `concurrency` at once,
-- through the cosocket transport. Tagged "nginx": `make test` runs it with
-- the other nginx specs.
local https_fake = require "https_fake"
local qiwi = require "qiwi"

describe("client:batch inside nginx #nginx", function()
  local fake, app, base

  setup(function()
    fake = https_fake.start { fake = { token = "test-token", wallet = "79111234567", balance = "77.50" } }
    base = "https://fake.qiwi.test:" .. fake.port
    app = https_fake.start {
      lua_path = https_fake.SUPPORT_PATH,
      location_lua = "ngx.exit(404)",
      http_extra = https_fake.client_http(fake.ca_file),
      server_extra = '        location = /t/batch { content_by_lua_block { require("nginx_client").batch() } }',
    }
  end)

  teardown(function()
    if app then app:stop() end
    if fake then fake:stop() end
  end)

  local function batch(n, concurrency)
    local status, body = app:curl("GET", "/t/batch?n=" .. n .. "&concurrency=" .. concurrency
      .. "&base=" .. base)
    assert.equal(200, status, body)
    return assert(qiwi.json.decode(body))
  end

  it("runs 10 calls at once while the fake delays each by 300 ms", function()
    fake:config { delay_ms = 300 }
    local v = batch(10, 16)
    print(("\n[nginx] batch of 10 accounts() calls, fake delay 300 ms each: %.3f s (one by one >= 3 s)")
      :format(v.elapsed))
    assert.is_true(v.ok)
    assert.is_false(v.results[1].ok)
    assert.equal("argument", v.results[1].kind)
    for i = 2, 11 do
      assert.is_true(v.results[i].ok, i)
      assert.equal(77.5, v.results[i].amount, i)
    end
    assert.is_true(v.elapsed >= 0.3, "the fake's delay did not apply")
    assert.is_true(v.elapsed < 1.5, ("10 calls took %.3f s: they ran one by one"):format(v.elapsed))
  end)

  it("keeps to the concurrency cap", function()
    fake:config { delay_ms = 300 }
    local v = batch(6, 2)
    for i = 2, 7 do assert.is_true(v.results[i].ok, i) end
    -- 6 calls, 2 at a time: three rounds of 300 ms
    assert.is_true(v.elapsed >= 0.85, ("6 calls 2 at a time took only %.3f s"):format(v.elapsed))
    assert.is_true(v.elapsed < 2.5, ("took %.3f s"):format(v.elapsed))
  end)
end)
