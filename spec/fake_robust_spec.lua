-- The fake QIWI never raises on what it is handed: a request with fields of
-- the wrong type (or no request at all) is answered 400, as a server answers
-- bytes that are not HTTP. And the fake object is a client transport itself.
local qiwi = require "qiwi"
local fake = require "qiwi.fake"
local json = require "qiwi.fake.json"
local G = require "generators"

local TOKEN = "robust-token-0123456789abcdef"
local WALLET = "79111234567"
local AUTH = "Bearer " .. TOKEN
local CLOCK = function() return 1700000000 end

local POOL = G.register(G.pool())

local function new_fake()
  return fake.new { token = TOKEN, wallet = WALLET, clock = CLOCK }
end

local function is_400(status, headers, body)
  if status ~= 400 or type(headers) ~= "table" or type(body) ~= "string" then return false end
  local v = json.decode(body)
  return type(v) == "table" and v.errorCode == "validation.error"
    and type(v.description) == "string" and v.description:find("malformed request", 1, true) ~= nil
end

local VALID = { method = "GET", path = "/person-profile/v1/profile/current", headers = { authorization = AUTH } }

describe("qiwi.fake handle() with malformed requests", function()
  local shapes = {
    { "no request", nil },
    { "a string", "GET /" },
    { "a number", 42 },
    { "headers a string", { method = "GET", path = "/", headers = "x" } },
    { "headers a number", { method = "GET", path = "/", headers = 5 } },
    { "headers a function", { method = "GET", path = "/", headers = print } },
    { "a header value a table of tables", { path = "/", headers = { accept = { {} } } } },
    { "a header value a function", { path = "/", headers = { accept = print } } },
    { "a header value a boolean", { path = "/", headers = { accept = true } } },
    { "a header line not a string", { path = "/", headers = { {} } } },
    { "a header name a table", { path = "/", headers = { [{}] = "x" } } },
    { "method a number", { method = 1, path = "/" } },
    { "method a table", { method = {}, path = "/" } },
    { "path a number", { method = "GET", path = 7 } },
    { "path a table", { method = "GET", path = { "/" } } },
    { "query a table", { method = "GET", path = "/", query = { a = 1 } } },
    { "query a number", { method = "GET", path = "/", query = 1 } },
    { "body a table", { method = "POST", path = "/", body = { a = 1 } } },
    { "body a number", { method = "POST", path = "/", body = 12 } },
    { "a field that raises when read", setmetatable({}, { __index = function() error("boom") end }) },
  }

  for _, case in ipairs(shapes) do
    it("answers " .. case[1] .. " with 400, without raising", function()
      local f = new_fake()
      local ok, status, headers, body = pcall(f.handle, f, case[2])
      assert.is_true(ok, tostring(status))
      assert.is_true(is_400(status, headers, body), tostring(status) .. " " .. tostring(body))
      assert.same({}, f.errors)
      -- still served normally afterwards
      assert.equal(200, (f:handle(VALID)))
    end)
  end

  it("logs a malformed request with its status and reason", function()
    local f = new_fake()
    f:handle { method = "get", path = "/x", headers = "x" }
    local last = f.requests[#f.requests]
    assert.equal(400, last.status)
    assert.equal("GET", last.method)
    assert.equal("/x", last.path)
    assert.matches("headers must be a table", last.malformed)
  end)

  it("still takes what it took before: nil fields, qiwi.fake.null, header lines and repeated headers", function()
    local f = new_fake()
    assert.equal(200, (f:handle { method = "GET", path = "/person-profile/v1/profile/current",
                                  query = json.null, body = json.null, headers = { "Authorization: " .. AUTH } }))
    assert.equal(200, (f:handle { path = "/person-profile/v1/profile/current",
                                  headers = { Authorization = AUTH, Accept = { "application/json", "*/*" } } }))
    assert.equal(200, (f:handle { method = "get", path = "/person-profile/v1/profile/current?authInfoEnabled=true",
                                  headers = { authorization = AUTH, ["x-n"] = 5 } }))
  end)

  it("never raises for any generated value in any field", function()
    local f = new_fake()
    local bad = {}
    for _, field in ipairs { "method", "path", "query", "headers", "body" } do
      for _, e in ipairs(POOL) do
        local req = { method = "GET", path = "/person-profile/v1/profile/current", headers = { authorization = AUTH } }
        req[field] = e[2]
        local r = G.guard(f.handle, { f, req }, 2)
        if not r.ok then
          bad[#bad + 1] = field .. " = " .. e[1] .. ": raised at " .. r.site .. ": " .. r.message
        elseif type(r[1]) ~= "number" or type(r[2]) ~= "table" or type(r[3]) ~= "string" then
          bad[#bad + 1] = field .. " = " .. e[1] .. ": answered " .. G.show(r[1]) .. ", " .. G.show(r[3])
        end
        -- and as a header value, and as a header name
        for _, h in ipairs { { authorization = AUTH, accept = e[2] }, { authorization = AUTH } } do
          if h.accept == nil and e[2] ~= nil and e[2] == e[2] then h[e[2]] = "x" end
          r = G.guard(f.handle, { f, { path = "/person-profile/v1/profile/current", headers = h } }, 2)
          if not r.ok then bad[#bad + 1] = "header " .. e[1] .. ": raised at " .. r.site .. ": " .. r.message end
        end
      end
    end
    assert.same({}, bad)
    assert.same({}, f.errors)
  end)
end)

describe("qiwi.fake as a transport", function()
  local requests = {
    { method = "GET", url = "https://edge.qiwi.com/person-profile/v1/profile/current",
      headers = { "Accept: application/json", "Authorization: " .. AUTH } },
    { method = "GET", url = "https://edge.qiwi.com/person-profile/v1/profile/current?authInfoEnabled=false",
      headers = { "Accept: application/json", "Authorization: " .. AUTH } },
    { method = "GET", url = "https://edge.qiwi.com/person-profile/v1/profile/current", headers = {} },
    { method = "GET", url = "https://edge.qiwi.com/no/such/path", headers = { "Authorization: " .. AUTH } },
    { method = "DELETE", url = "https://edge.qiwi.com/sinap/crossRates", headers = { "Authorization: " .. AUTH } },
    { method = "POST", url = "https://edge.qiwi.com/sinap/api/v2/terms/99/payments",
      headers = { "Accept: application/json", "Content-Type: application/json", "Authorization: " .. AUTH },
      body = '{"id":"1700000000001","sum":{"amount":1,"currency":"643"},'
        .. '"paymentMethod":{"type":"Account","accountId":"643"},"fields":{"account":"+79121112233"}}' },
    { method = "GET", url = "not a url", headers = {} },
    { method = "GET", url = "https://edge.qiwi.com/", headers = "x" },
  }

  -- The same requests, the same fake state: the same answers.
  local function answers(send_of)
    local f = new_fake()
    local send = send_of(f)
    local out = {}
    for i, req in ipairs(requests) do out[i] = G.pack(send(req)) end
    f:fail_next { drop = true }
    out[#out + 1] = G.pack(send(requests[1]))
    f:fail_next { reset = true }
    out[#out + 1] = G.pack(send(requests[1]))
    f:fail_next { truncate = 5 }
    out[#out + 1] = G.pack(send(requests[1]))
    f:fail_next { status = 503 }
    out[#out + 1] = G.pack(send(requests[1]))
    out[#out + 1] = G.pack(send(nil))
    out[#out + 1] = G.pack(send("x"))
    return out, f
  end

  -- a request table of the list above as the transport contract's values
  local function positional(req)
    if type(req) ~= "table" then return req end
    return req.method, req.url, req.headers, req.body, req.timeout
  end

  it("f:request(...) answers exactly as f:transport():request(...)", function()
    local via_transport, f1 = answers(function(f)
      local t = f:transport()
      return function(req) return t:request(positional(req)) end
    end)
    local via_fake, f2 = answers(function(f)
      return function(req) return f:request(positional(req)) end
    end)
    assert.same(via_transport, via_fake)
    assert.equal(#f1.requests, #f2.requests)
    assert.equal(f1:balance(), f2:balance())
    assert.same({}, f1.errors)
    assert.same({}, f2.errors)
  end)

  it("answers a request that is not one with 400 instead of raising", function()
    local f = new_fake()
    local raising = setmetatable({}, { __index = function() error("boom") end })
    for _, req in ipairs { { false }, { 5 }, { "x" }, { "GET", {} }, { {}, "https://edge.qiwi.com/" },
                           { "GET", "https://edge.qiwi.com/", "x" }, { raising, "https://edge.qiwi.com/" },
                           { "GET", "https://edge.qiwi.com/", {}, {} } } do
      local ok, status, kind = pcall(f.request, f, req[1], req[2], req[3], req[4])
      assert.is_true(ok, tostring(status))
      if status then
        assert.equal(400, status)
      else
        assert.equal("network", kind)
      end
    end
  end)

  it("serves a client given the fake object itself as its transport", function()
    local f = new_fake()
    local c = assert(qiwi.new { token = TOKEN, wallet = WALLET, transport = f, retries = 0 })
    local profile, err = c:profile()
    assert.is_nil(err)
    assert.is_table(profile.authInfo)
    assert.equal(1, #f.requests)
    local res = assert(c:transfer { to = "79121112233", amount = 10 })
    assert.is_table(res.transaction)
    assert.equal(990, f:balance())
    c:close()
    -- closing the client leaves the fake usable
    assert.equal(200, (f:handle(VALID)))
  end)
end)
