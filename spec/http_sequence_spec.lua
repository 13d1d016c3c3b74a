-- One libcurl session, many requests: the session sets on its handle only
-- what changed since the last request (src/http.c, qiwi_http_prepare_kept),
-- so every order of methods, bodies, once flags, URLs, header lists and
-- timeouts must still go out exactly as asked.
local core = require "qiwi.core"
local https_fake = require "https_fake"
local TOKEN, WALLET = "seq-token", "79111234567"
local ACC = "/funding-sources/v2/persons/" .. WALLET .. "/accounts"
local LINES = { "Accept: application/json", "Authorization: Bearer " .. TOKEN, "Content-Type: application/json" }

describe("one session, option transitions", function()
  local srv
  setup(function() srv = https_fake.shared() end)
  before_each(function() srv:reset { token = TOKEN, wallet = WALLET } srv:config { delay_ms = 0 } end)

  it("methods, bodies, content-length in every order on one URL", function()
    local s = core.session { ca_file = srv.ca_file, timeout = 5 }
    local hl = assert(core.header_list(LINES))
    local cases = {
      { "GET" }, { "POST", '{"a":1}' }, { "GET" }, { "GET" }, { "PUT" }, { "GET" },
      { "PUT", '{"b":22}' }, { "PUT", '{"c":3}' }, { "GET" }, { "POST" }, { "GET" },
      { "DELETE" }, { "DELETE", "{}" }, { "POST", '{"long":"' .. ("x"):rep(5000) .. '"}' },
      { "POST", "{}" }, { "PATCH" }, { "GET", '{"g":1}' }, { "GET" }, { "POST" }, { "PATCH", "{}" }, { "GET" },
    }
    for _, c in ipairs(cases) do
      -- the same URL text as a new string each time
      local status, body = s:send(c[1], srv:url("/nowhere") .. "", hl, c[2])
      assert.is_number(status, body)
    end
    local reqs = srv:requests()
    assert.equal(#cases, #reqs)
    for i, c in ipairs(cases) do
      assert.equal(c[1], reqs[i].method, "request " .. i)
      assert.equal(c[2] or "", reqs[i].body or "", "request " .. i)
      local cl = reqs[i].headers["content-length"]
      if c[2] or c[1] == "POST" then assert.equal(tostring(#(c[2] or "")), cl, "request " .. i)
      else assert.is_nil(cl, "request " .. i .. " content-length " .. tostring(cl)) end
    end
    s:close()
  end)

  it("once, then not once: a fresh connection only for the once one", function()
    local s = core.session { ca_file = srv.ca_file, timeout = 5 }
    local hl = assert(core.header_list(LINES))
    local seq = { false, false, true, false, false, true, true, false }
    local conns = {}
    for i, once in ipairs(seq) do
      assert.equal(200, (s:send("GET", srv:url(ACC), hl, nil, nil, once)))
      conns[i] = s:info().connects
    end
    assert.same({ 1, 0, 1, 0, 0, 1, 1, 0 }, conns)
    s:close()
  end)

  it("URL changes and comes back; header list changes, closed, collected, nil", function()
    local s = core.session { ca_file = srv.ca_file, timeout = 5 }
    local hl = assert(core.header_list(LINES))
    local hl2 = assert(core.header_list { "Authorization: Bearer " .. TOKEN, "X-Two: 2" })
    assert.equal(200, (s:send("GET", srv:url(ACC), hl)))
    assert.are_not.equal(200, (s:send("GET", srv:url("/a"), hl)))
    assert.equal(200, (s:send("GET", srv:url(ACC), hl2)))
    assert.equal(401, (s:send("GET", srv:url(ACC))))
    hl:close()
    local r = { s:send("GET", srv:url(ACC), hl) }
    assert.is_nil(r[1])
    assert.equal("argument", r[2])
    hl = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    local hl3 = assert(core.header_list(LINES))
    assert.equal(200, (s:send("GET", srv:url(ACC), hl3)))
    hl2:close()
    assert.equal(401, (s:send("GET", srv:url(ACC))))
    local reqs = srv:requests()
    assert.equal(6, #reqs)
    assert.equal("2", reqs[3].headers["x-two"])
    assert.is_nil(reqs[4].headers.authorization)
    assert.is_nil(reqs[5].headers["x-two"])
    assert.equal("Bearer " .. TOKEN, reqs[5].headers.authorization)
    assert.equal("/a", reqs[2].path)
    -- a bad URL after a good one is still refused, and the good one still works
    local bad = { s:send("GET", srv:url(ACC) .. "\r\nX: y", hl3) }
    assert.is_nil(bad[1])
    assert.equal("QIWI_ARGUMENT", bad[4])
    assert.equal(200, (s:send("GET", srv:url(ACC), hl3)))
    s:close()
  end)

  it("timeouts change between calls", function()
    local s = core.session { ca_file = srv.ca_file, timeout = 5 }
    local hl = assert(core.header_list(LINES))
    assert.equal(200, (s:send("GET", srv:url(ACC), hl, nil, 2)))
    srv:config { delay_ms = 800 }
    local r = { s:send("GET", srv:url(ACC), hl, nil, 0.3) }
    assert.equal("timeout", r[2])
    assert.equal(200, (s:send("GET", srv:url(ACC), hl, nil, 3)))
    assert.equal(200, (s:send("GET", srv:url(ACC), hl)))
    r = { s:send("GET", srv:url(ACC), hl, nil, 0.3) }
    assert.equal("timeout", r[2])
    srv:config { delay_ms = 0 }
    s:close()
  end)
end)
