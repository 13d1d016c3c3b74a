-- qiwi.p2p.handler inside a real nginx (2 workers, nginx_app.lua), its
-- de-duplication in a lua_shared_dict store, and the fake QIWI (over HTTPS,
-- https_fake.lua) delivering the signed notification of a bill paid with
-- fake:pay_bill_p2p to it over HTTP, as QIWI does.
local qiwi = require "qiwi"
local https_fake = require "https_fake"
local nginx_app = require "nginx_app"
local util = require("pki").util
local http = require "socket.http"
local ltn12 = require "ltn12"
http.TIMEOUT = 15

local shq = util.shq
local SECRET = "test-merchant-secret-for-signature-check"
local WORKED_SIGNATURE = "07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b"
local WORKERS = 2

-- The app: the handler built once per worker, on_bill counting its calls
-- per bill and status in a dict every worker sees; /fail makes the next
-- on_bill raise.
local APP = [==[
local qiwi = require "qiwi"
local _M = {}
local handler

function _M.init_worker()
  handler = assert(qiwi.p2p.handler {
    secret_key = "]==] .. SECRET .. [==[", store = qiwi.store.shdict("p2p_store"), name = "shop",
    on_bill = function(bill)
      local d = ngx.shared.seen
      if d:get("fail") then
        d:delete("fail")
        error("the shop's database is down")
      end
      d:incr(bill.billId .. "|" .. bill.status.value, 1, 0)
      d:set("last", qiwi.json.encode(bill))
    end,
  })
  ngx.shared.seen:incr("workers", 1, 0)
end

function _M.notify() return handler() end

function _M.seen()
  ngx.say(ngx.shared.seen:get(ngx.unescape_uri(ngx.var.arg_k)) or 0)
end

function _M.fail()
  ngx.shared.seen:set("fail", true)
  ngx.say("ok")
end

return _M
]==]

local function request(url, o)
  o = o or {}
  local out = {}
  local headers = { ["content-length"] = o.body and tostring(#o.body) or nil }
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  local _, code, answer_headers = http.request {
    url = url, method = o.method or (o.body and "POST" or "GET"), sink = ltn12.sink.table(out),
    source = o.body and ltn12.source.string(o.body) or nil, headers = headers,
  }
  return code, table.concat(out), answer_headers or {}
end

-- The docs' worked example (value as the SDK examples write it).
local function worked(value, bill)
  return '{"bill":{"siteId":"test","billId":"' .. (bill or "test_bill") .. '","amount":{"value":' .. value
    .. ',"currency":"RUB"},"status":{"value":"PAID","datetime":"2018-03-01T11:16:12+03"},"customer":{},'
    .. '"customFields":{},"creationDateTime":"2018-03-01T11:15:39+03",'
    .. '"expirationDateTime":"2018-04-15T11:15:39+03"},"version":"1"}'
end

local function signed(body)
  local b = qiwi.json.decode(body).bill
  return require("qiwi.core").hmac_sha256_hex(SECRET, table.concat({ b.amount.currency,
    string.format("%.2f", tonumber(b.amount.value)), b.billId, b.siteId, b.status.value }, "|"))
end

describe("qiwi.p2p.handler in nginx #nginx", function()
  local app, srv

  local function notify(body, sig, method)
    return request(app.base .. "/p2p", { body = body, method = method,
      headers = { ["content-type"] = "application/json", ["x-api-signature-sha256"] = sig } })
  end

  local function seen(k)
    local _, body = request(app.base .. "/seen?k=" .. k:gsub("|", "%%7C"))
    return tonumber(body)
  end

  setup(function()
    util.need_luajit_core()
    app = nginx_app.start {
      name = "p2p-nginx", workers = WORKERS, modules = { p2p_app = APP },
      http = {
        "lua_shared_dict p2p_store 1m;",
        "lua_shared_dict seen 1m;",
        'init_worker_by_lua_block { require("p2p_app").init_worker() }',
      },
      server = {
        'location = /ready { content_by_lua_block { ngx.say(ngx.shared.seen:get("workers") or 0) } }',
        'location = /p2p { content_by_lua_block { require("p2p_app").notify() } }',
        'location = /seen { content_by_lua_block { require("p2p_app").seen() } }',
        'location = /fail { content_by_lua_block { require("p2p_app").fail() } }',
      },
      ready = function(a)
        local code, body = request(a.base .. "/ready")
        return code == 200 and tonumber(body) == WORKERS
      end,
      what = "p2p app nginx",
    }
    srv = https_fake.shared()
  end)

  teardown(function()
    if app then app.stop() end
  end)

  it("answers the docs' worked example as QIWI expects, once per bill and status", function()
    local code, body, h = notify(worked("1"), WORKED_SIGNATURE)
    assert.equal(200, code, body)
    assert.equal('{"error":"0"}', body)
    assert.equal("application/json", h["content-type"])
    assert.equal(1, seen("test_bill|PAID"))
    -- QIWI sends a notification more than once: on_bill hears of it once
    assert.equal(200, (notify(worked('"1.00"'), WORKED_SIGNATURE)))
    assert.equal(1, seen("test_bill|PAID"))
  end)

  it("refuses forged, malformed and oversized bodies without calling on_bill", function()
    local forged = worked("2", "forged_bill")
    assert.equal(403, (notify(forged, WORKED_SIGNATURE)))
    assert.equal(403, (notify(worked("1", "forged_bill"), nil)))
    assert.equal(400, (notify("{", WORKED_SIGNATURE)))
    assert.equal(400, (notify('{"bill":{"billId":"forged_bill"}}', WORKED_SIGNATURE)))
    local big = worked("1", "forged_bill"):gsub('"version":"1"', '"version":"1","pad":"' .. ("x"):rep(70000) .. '"')
    assert.equal(413, (notify(big, signed(worked("1", "forged_bill")))))
    local code, _, h = notify(nil, nil, "GET")
    assert.equal(405, code)
    assert.equal("POST", h.allow)
    assert.equal(0, seen("forged_bill|PAID"))
  end)

  it("an on_bill that raises is answered 500 and called again on QIWI's next try", function()
    local body = worked("1", "retried_bill")
    assert.equal(200, (request(app.base .. "/fail")))
    assert.equal(500, (notify(body, signed(body))))
    assert.equal(0, seen("retried_bill|PAID"))
    assert.equal(200, (notify(body, signed(body))))
    assert.equal(1, seen("retried_bill|PAID"))
  end)

  it("the same notification 16 times at once, over both workers: on_bill once, the others 200 or 503", function()
    local body = worked("1", "parallel_bill")
    local dir = util.tmpdir("p2p-par")
    util.write_file(dir .. "/body", body)
    -- --next starts the options of the next transfer afresh: each carries its own
    local cmd = { "curl --parallel --parallel-immediate --parallel-max 16" }
    for i = 1, 16 do
      cmd[#cmd + 1] = "-sS --http1.1 --max-time 30 -w '%{http_code}\\n' -H 'Content-Type: application/json' -H "
        .. shq("X-Api-Signature-SHA256: " .. signed(body)) .. " --data-binary @" .. shq(dir .. "/body")
        .. " -o /dev/null " .. shq(app.base .. "/p2p")
      if i < 16 then cmd[#cmd + 1] = "--next" end
    end
    local out = util.output(table.concat(cmd, " ") .. " 2>&1 </dev/null")
    util.exec("rm -rf " .. shq(dir))
    -- 200 once it was handled; 503 ("in progress") while another worker
    -- handles it, which QIWI tries again (an answer of 200 there would be
    -- lost, should that worker die inside on_bill)
    local codes, ok = 0, 0
    for code in out:gmatch("(%d%d%d)\n") do
      assert.is_true(code == "200" or code == "503", out)
      if code == "200" then ok = ok + 1 end
      codes = codes + 1
    end
    assert.equal(16, codes, out)
    assert.is_true(ok >= 1, out)
    assert.equal(1, seen("parallel_bill|PAID"))
    -- QIWI's next try of any of them: 200, not handled again
    assert.equal(200, (notify(body, signed(body))))
    assert.equal(1, seen("parallel_bill|PAID"))
  end)

  it("the fake pays a bill and delivers its signed notification over HTTP to the handler", function()
    srv:reset { p2p_secret_key = SECRET, p2p_notifications_url = app.base .. "/p2p" }
    local p2p = assert(qiwi.p2p.new { secret_key = SECRET, base_url = srv.base_url, ca_file = srv.ca_file })
    local bill = assert(p2p:create_bill { amount = "12.34", expires = os.time() + 3600, comment = "order 9" })
    local key = bill.billId .. "|PAID"
    assert.equal(0, seen(key))
    assert.truthy(srv:call("pay_bill_p2p", bill.billId))
    assert.truthy(util.wait_until(10, function() return seen(key) == 1 end), "no notification arrived")
    local n
    util.wait_until(5, function()
      n = srv:call("last_p2p_notification")
      return n.delivered ~= nil
    end)
    assert.equal(200, n.delivered)
    assert.equal(app.base .. "/p2p", n.url)
    local _, last = request(app.base .. "/seen?k=last")
    local delivered = qiwi.json.decode(last)
    assert.equal("12.34", delivered.amount.value)
    assert.equal("order 9", delivered.comment)
    assert.equal("PAID", assert(p2p:bill(bill.billId)).status.value)
  end)
end)
