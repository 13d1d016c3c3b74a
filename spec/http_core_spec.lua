-- The C HTTP layer, straight against the HTTPS fake (real nginx,
-- test CA): core.header_list, session:send, multi:send_all. No Lua layer in
-- between: what is checked here is the transport contract itself
--   status, body (always a string), headers      on an answer
--   nil, kind, message, code                     on none (code a string)
local core = require "qiwi.core"
local https_fake = require "https_fake"
local util = require "util"

local TOKEN = "http-core-token-5b1d"
local WALLET = "79111234567"
local ACCOUNTS_PATH = "/funding-sources/v2/persons/" .. WALLET .. "/accounts"
local COMMISSION_PATH = "/sinap/providers/99/onlineCommission"
local COMMISSION_BODY = '{"account":"' .. WALLET .. '","paymentMethod":{"type":"Account","accountId":"643"},'
  .. '"purchaseTotals":{"total":{"amount":10,"currency":"643"}}}'

local LINES = {
  "Accept: application/json",
  "Authorization: Bearer " .. TOKEN,
  "Content-Type: application/json",
  "User-Agent: http-core-spec/1",
}

-- A loopback port nothing listens on.
local closed_port = util.free_port

-- results[i] of send_all as the four values of a failure.
local function unpack_result(r)
  return r[1], r[2], r[3], r[4]
end

local function check_failure(kind, code, status, k, message, c)
  assert.is_nil(status)
  assert.equal(kind, k, message)
  assert.is_string(message)
  assert.truthy(message:find("%S"), "empty message")
  assert.is_nil(message:find("[\r\n]"), message)
  assert.is_string(c)
  if code then assert.equal(code, c, message) end
  return message, c
end

describe("C HTTP layer", function()
  local srv, hl

  setup(function()
    srv = https_fake.shared()
  end)

  before_each(function()
    srv:reset { token = TOKEN, wallet = WALLET }
    srv:config { delay_ms = 0 }
    hl = assert(core.header_list(LINES))
  end)

  local function session(extra)
    local o = { ca_file = srv.ca_file, timeout = 5 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return core.session(o)
  end

  local function multi(extra)
    local o = { ca_file = srv.ca_file, timeout = 5 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return core.multi(o)
  end

  describe("core.header_list", function()
    it("is a qiwi.header_list userdata whose text never shows the lines", function()
      assert.equal("userdata", type(hl))
      assert.is_false(hl:closed())
      local text = tostring(hl)
      assert.matches("^qiwi%.header_list", text)
      assert.is_nil(text:find(TOKEN, 1, true))
    end)

    it("an empty list is a valid list", function()
      assert.equal("userdata", type(core.header_list {}))
    end)

    local bad = {
      { "a line with CR", { "X-A: 1\rX-B: 2" } },
      { "a line with LF", { "Accept: a", "X-A: 1\nX-B: 2" } },
      { "a line with NUL", { "X-A: 1\0" } },
      { "a line without a colon", { "Accept application/json" } },
      { "a line with an empty name", { ": value" } },
      { "a name with a space", { "Bad Name: value" } },
      { "a non-string line", { "Accept: a", 42 } },
      { "a non-table", "Accept: a" },
    }
    for _, case in ipairs(bad) do
      it("refuses " .. case[1] .. " with nil, argument, message, QIWI_ARGUMENT", function()
        check_failure("argument", "QIWI_ARGUMENT", core.header_list(case[2]))
      end)
    end

    it("close is idempotent and a closed list is refused by send and send_all", function()
      hl:close()
      hl:close()
      assert.is_true(hl:closed())
      assert.matches("closed", tostring(hl))
      local s = session()
      local msg = check_failure("argument", "QIWI_ARGUMENT", s:send("GET", srv:url(ACCOUNTS_PATH), hl))
      assert.matches("closed", msg)
      local m = multi()
      local res = assert(m:send_all { { "GET", srv:url(ACCOUNTS_PATH), hl } })
      check_failure("argument", "QIWI_ARGUMENT", unpack_result(res[1]))
      assert.equal(0, #srv:requests())
      s:close()
      m:close()
    end)

    if _VERSION == "Lua 5.4" then
      it("is closed by a to-be-closed variable", function()
        local f = assert(load([[
          local core, lines = ...
          local keep
          do
            local h <close> = core.header_list(lines)
            keep = h
          end
          return keep
        ]]))
        assert.is_true(f(core, LINES):closed())
      end)
    end
  end)

  describe("session:send", function()
    it("GET: status, the body as a string, a headers table with content-type", function()
      local s = session()
      local status, body, headers = s:send("GET", srv:url(ACCOUNTS_PATH), hl)
      assert.equal(200, status)
      assert.is_string(body)
      assert.truthy(body:find('"accounts"', 1, true))
      assert.is_table(headers)
      assert.matches("json", headers["content-type"])
      -- no JSON decoding in the transport: the body is the text, decodable later
      assert.is_table(core.json_decode(body).accounts)
      local req = srv:requests()[1]
      assert.equal("GET", req.method)
      assert.equal("Bearer " .. TOKEN, req.headers.authorization)
      assert.equal("application/json", req.headers.accept)
      assert.equal("http-core-spec/1", req.headers["user-agent"])
      assert.is_nil(req.headers.expect)
      s:close()
    end)

    it("POST: the body goes out, the answer body comes back as a string", function()
      local s = session()
      local status, body, headers = s:send("POST", srv:url(COMMISSION_PATH), hl, COMMISSION_BODY)
      assert.equal(200, status, body)
      assert.is_string(body)
      assert.truthy(body:find("withdrawSum", 1, true))
      assert.matches("json", headers["content-type"])
      local req = srv:requests()[1]
      assert.equal("POST", req.method)
      assert.equal(COMMISSION_BODY, req.body)
      assert.equal("application/json", req.headers["content-type"])
      assert.is_nil(req.headers.expect)
      s:close()
    end)

    it("PUT, PATCH, DELETE go out with their method, with or without a body", function()
      local s = session()
      local cases = {
        { "PUT", '{"a":1}' }, { "PATCH", '{"b":2}' }, { "DELETE", nil }, { "DELETE", '{"c":3}' },
        { "POST", nil }, { "PUT", nil },
      }
      for _, c in ipairs(cases) do
        local status, body = s:send(c[1], srv:url("/nowhere"), hl, c[2])
        assert.is_number(status, body)
        assert.is_string(body)
      end
      local reqs = srv:requests()
      assert.equal(#cases, #reqs)
      for i, c in ipairs(cases) do
        assert.equal(c[1], reqs[i].method)
        assert.equal(c[2] or "", reqs[i].body or "")
      end
      s:close()
    end)

    it("an empty answer body is \"\"", function()
      local s = session()
      srv:call("fail_next", { status = 200, body = "", path_pattern = "/accounts$" })
      local status, body, headers = s:send("GET", srv:url(ACCOUNTS_PATH), hl)
      assert.equal(200, status)
      assert.equal("", body)
      assert.is_table(headers)
      s:close()
    end)

    it("no header list: no headers of ours, not even a User-Agent (the fake answers 401)", function()
      local s = session()
      local status, body = s:send("GET", srv:url(ACCOUNTS_PATH))
      assert.equal(401, status)
      assert.is_string(body)
      local req = srv:requests()[1]
      assert.is_nil(req.headers.authorization)
      assert.is_nil(req.headers["user-agent"])
      s:close()
    end)

    it("reuses its connection, and once = true opens a new one", function()
      local s = session()
      assert.equal(200, (s:send("GET", srv:url(ACCOUNTS_PATH), hl)))
      assert.equal(1, s:info().connects)
      assert.equal(200, (s:send("GET", srv:url(ACCOUNTS_PATH), hl)))
      assert.equal(0, s:info().connects)
      assert.equal(200, (s:send("POST", srv:url(COMMISSION_PATH), hl, COMMISSION_BODY, nil, true)))
      assert.equal(1, s:info().connects)
      assert.equal(200, (s:send("GET", srv:url(ACCOUNTS_PATH), hl, nil, nil, false)))
      local reqs = srv:requests()
      assert.equal(reqs[1].connection, reqs[2].connection)
      assert.are_not.equal(reqs[2].connection, reqs[3].connection)
      s:close()
    end)

    it("the same header list serves many calls, and its collection leaves the session sane", function()
      local s = session()
      for _ = 1, 5 do assert.equal(200, (s:send("GET", srv:url(ACCOUNTS_PATH), hl))) end
      hl = nil
      collectgarbage()
      collectgarbage()
      assert.equal(401, (s:send("GET", srv:url(ACCOUNTS_PATH))))
      assert.equal(6, #srv:requests())
      s:close()
    end)

    it("a body over max_body: http, the cap named, QIWI_BODY_CAP; the next call works", function()
      local s = session { max_body = 4096 }
      srv:call("fail_next", { status = 200, body_bytes = 5000, path_pattern = "/accounts$" })
      local msg = check_failure("http", "QIWI_BODY_CAP", s:send("GET", srv:url(ACCOUNTS_PATH), hl))
      assert.equal("response body exceeds the 4096 byte cap", msg)
      srv:call("fail_next", { status = 200, body_bytes = 4096, path_pattern = "/accounts$" })
      local status, body = s:send("GET", srv:url(ACCOUNTS_PATH), hl)
      assert.equal(200, status)
      assert.equal(4096, #body)
      s:close()
    end)

    it("connection refused: network, CURLE_COULDNT_CONNECT", function()
      local s = session()
      check_failure("network", "CURLE_COULDNT_CONNECT",
                    s:send("GET", "https://127.0.0.1:" .. closed_port() .. "/", hl))
      s:close()
    end)

    it("an answer later than the call's timeout: timeout, CURLE_OPERATION_TIMEDOUT", function()
      local s = session { timeout = 10 }
      srv:config { delay_ms = 1500 }
      local t0 = core.monotonic()
      check_failure("timeout", "CURLE_OPERATION_TIMEDOUT", s:send("GET", srv:url(ACCOUNTS_PATH), hl, nil, 0.3))
      assert.is_true(core.monotonic() - t0 < 1.4)
      srv:config { delay_ms = 0 }
      s:close()
    end)

    it("nil timeout is the session's", function()
      local s = session { timeout = 0.3 }
      srv:config { delay_ms = 1500 }
      check_failure("timeout", "CURLE_OPERATION_TIMEDOUT", s:send("GET", srv:url(ACCOUNTS_PATH), hl, nil, nil))
      srv:config { delay_ms = 0 }
      s:close()
    end)

    it("a certificate from another CA: tls with a CURLE_ code", function()
      local s = session { ca_file = srv.pki.other_ca }
      local _, code = check_failure("tls", nil, s:send("GET", srv:url(ACCOUNTS_PATH), hl))
      assert.matches("^CURLE_[A-Z_]+$", code)
      assert.equal("CURLE_PEER_FAILED_VERIFICATION", code)
      assert.equal(0, #srv:requests())
      s:close()
    end)

    it("an unreadable CA file: tls with a CURLE_ code", function()
      local s = session { ca_file = "/nonexistent/ca.pem" }
      local _, code = check_failure("tls", nil, s:send("GET", srv:url(ACCOUNTS_PATH), hl))
      assert.matches("^CURLE_[A-Z_]+$", code)
      s:close()
    end)

    it("an https-only session refuses http:// (network, CURLE_UNSUPPORTED_PROTOCOL)", function()
      local s = session()
      check_failure("network", "CURLE_UNSUPPORTED_PROTOCOL", s:send("GET", "http://127.0.0.1:1/", hl))
      s:close()
    end)

    it("connects through the resolve list, still checking the certificate's name", function()
      local s = session { resolve = { srv.resolve } }
      assert.equal(200, (s:send("GET", srv.named_url .. ACCOUNTS_PATH, hl)))
      s:close()
    end)

    it("does not follow a redirect", function()
      local s = session()
      srv:call("fail_next", { status = 302, body = "", headers = { Location = srv:url(ACCOUNTS_PATH) },
                              path_pattern = "/moved$" })
      local status, body = s:send("GET", srv:url("/moved"), hl)
      assert.equal(302, status)
      assert.equal("", body)
      assert.equal(1, #srv:requests())
      s:close()
    end)

    it("Retry-After is among the headers read", function()
      local s = session()
      srv:call("fail_next", { status = 423, headers = { ["Retry-After"] = "7" }, path_pattern = "/accounts$" })
      local status, _, headers = s:send("GET", srv:url(ACCOUNTS_PATH), hl)
      assert.equal(423, status)
      assert.equal("7", headers["retry-after"])
      s:close()
    end)

    local refused = {
      { "CR in the URL", { "GET", "https://127.0.0.1/\r\nX: y" } },
      { "LF in the method", { "GET\n", "https://127.0.0.1/" } },
      { "an unknown method", { "HEAD", "https://127.0.0.1/" } },
      { "a lower-case method", { "get", "https://127.0.0.1/" } },
      { "headers that are no header_list", { "GET", "https://127.0.0.1/", { "Accept: x" } } },
      { "a zero timeout", { "GET", "https://127.0.0.1/", nil, nil, 0 } },
      { "a negative timeout", { "GET", "https://127.0.0.1/", nil, nil, -1 } },
      { "a timeout over a day", { "GET", "https://127.0.0.1/", nil, nil, 86401 } },
    }
    for _, case in ipairs(refused) do
      it("refuses " .. case[1] .. " before sending (argument, QIWI_ARGUMENT)", function()
        local s = session()
        local a = case[2]
        check_failure("argument", "QIWI_ARGUMENT", s:send(a[1], a[2], a[3], a[4], a[5], a[6]))
        s:close()
      end)
    end

    it("a closed session refuses", function()
      local s = session()
      s:close()
      local msg = check_failure("argument", "QIWI_ARGUMENT", s:send("GET", srv:url(ACCOUNTS_PATH), hl))
      assert.matches("closed", msg)
    end)
  end)

  describe("multi:send_all", function()
    it("mixed results, in the order of the requests", function()
      local m = multi { max_body = 4096 }
      local other = assert(core.header_list { "Authorization: Bearer wrong-token", "Accept: application/json" })
      srv:call("fail_next", { status = 200, body_bytes = 5000, path_pattern = "/big$" })
      local reqs = {
        { "GET", srv:url(ACCOUNTS_PATH), hl },                         -- 1 answer
        { "GET", "https://127.0.0.1:" .. closed_port() .. "/", hl },   -- 2 refused connection
        { "POST", srv:url(COMMISSION_PATH), hl, COMMISSION_BODY, true }, -- 3 answer, own connection
        { "GET", srv:url("/x\n") },                                    -- 4 refused before sending
        { "GET", srv:url(ACCOUNTS_PATH), other },                      -- 5 answer 401
        { "GET", srv:url("/big"), hl },                                -- 6 body cap
        "not a table",                                                 -- 7 refused
        { "GET", srv:url(ACCOUNTS_PATH) },                             -- 8 no headers: 401
        { "GET", srv:url(ACCOUNTS_PATH), hl, 42 },                     -- 9 body not a string
        { "TRACE", srv:url(ACCOUNTS_PATH), hl },                       -- 10 unknown method
      }
      local res = assert(m:send_all(reqs, 5, 4))
      assert.equal(#reqs, #res)

      assert.equal(200, res[1][1])
      assert.is_string(res[1][2])
      assert.is_table(core.json_decode(res[1][2]).accounts)
      assert.matches("json", res[1][3]["content-type"])

      check_failure("network", "CURLE_COULDNT_CONNECT", unpack_result(res[2]))

      assert.equal(200, res[3][1], res[3][2])
      assert.truthy(res[3][2]:find("withdrawSum", 1, true))

      check_failure("argument", "QIWI_ARGUMENT", unpack_result(res[4]))

      assert.equal(401, res[5][1])
      assert.is_string(res[5][2])

      local msg = check_failure("http", "QIWI_BODY_CAP", unpack_result(res[6]))
      assert.equal("response body exceeds the 4096 byte cap", msg)

      check_failure("argument", "QIWI_ARGUMENT", unpack_result(res[7]))
      assert.equal(401, res[8][1])
      check_failure("argument", "QIWI_ARGUMENT", unpack_result(res[9]))
      check_failure("argument", "QIWI_ARGUMENT", unpack_result(res[10]))

      local seen = {}
      for _, r in ipairs(srv:requests()) do seen[#seen + 1] = r.method .. " " .. r.path end
      table.sort(seen)
      assert.same({ "GET /big", "GET " .. ACCOUNTS_PATH, "GET " .. ACCOUNTS_PATH, "GET " .. ACCOUNTS_PATH,
                    "POST " .. COMMISSION_PATH }, seen)
      for _, r in ipairs(srv:requests()) do assert.is_nil(r.headers.expect) end
      m:close()
    end)

    it("multiplexes over one HTTP/2 connection and keeps it for the next batch", function()
      local m = multi()
      local reqs = {}
      for i = 1, 6 do reqs[i] = { "GET", srv:url(ACCOUNTS_PATH), hl } end
      local res = assert(m:send_all(reqs))
      for i = 1, 6 do assert.equal(200, res[i][1]) end
      local st = m:stats()
      assert.equal(6, st.transfers)
      assert.equal(1, st.connects)
      assert.equal(6, st.http2)
      res = assert(m:send_all(reqs))
      for i = 1, 6 do assert.equal(200, res[i][1]) end
      assert.equal(0, m:stats().connects)
      assert.equal(1, util.connections(srv:requests()))
      m:close()
    end)

    it("once = true gets a connection of its own", function()
      local m = multi()
      assert.equal(200, assert(m:send_all { { "GET", srv:url(ACCOUNTS_PATH), hl } })[1][1])
      local res = assert(m:send_all { { "POST", srv:url(COMMISSION_PATH), hl, COMMISSION_BODY, true } })
      assert.equal(200, res[1][1])
      assert.equal(1, m:stats().connects)
      local reqs = srv:requests()
      assert.are_not.equal(reqs[1].connection, reqs[2].connection)
      m:close()
    end)

    it("the batch deadline: every late answer is timeout, CURLE_OPERATION_TIMEDOUT", function()
      local m = multi()
      srv:config { delay_ms = 1500 }
      local res = assert(m:send_all({ { "GET", srv:url(ACCOUNTS_PATH), hl }, { "GET", srv:url(ACCOUNTS_PATH), hl } }, 0.3))
      srv:config { delay_ms = 0 }
      for i = 1, 2 do check_failure("timeout", "CURLE_OPERATION_TIMEDOUT", unpack_result(res[i])) end
      m:close()
    end)

    it("a wrong CA: tls with a CURLE_ code", function()
      local m = multi { ca_file = srv.pki.other_ca }
      local res = assert(m:send_all { { "GET", srv:url(ACCOUNTS_PATH), hl } })
      local _, code = check_failure("tls", nil, unpack_result(res[1]))
      assert.matches("^CURLE_[A-Z_]+$", code)
      m:close()
    end)

    it("sends the User-Agent of the list, and none of libcurl's without one", function()
      local m = multi()
      assert.equal(200, assert(m:send_all { { "GET", srv:url(ACCOUNTS_PATH), hl } })[1][1])
      assert.equal(401, assert(m:send_all { { "GET", srv:url(ACCOUNTS_PATH) } })[1][1])
      local reqs = srv:requests()
      assert.equal("http-core-spec/1", reqs[1].headers["user-agent"])
      assert.is_nil(reqs[2].headers["user-agent"])
      m:close()
    end)

    it("header lists made for the batch alone survive a collection after it", function()
      local m = multi()
      for _ = 1, 3 do
        local res
        do
          local reqs = {}
          for i = 1, 4 do reqs[i] = { "GET", srv:url(ACCOUNTS_PATH), core.header_list(LINES) } end
          res = assert(m:send_all(reqs))
        end
        collectgarbage()
        for i = 1, 4 do assert.equal(200, res[i][1]) end
      end
      m:close()
    end)

    it("an empty batch gives an empty list", function()
      local m = multi()
      assert.same({}, m:send_all({}))
      m:close()
    end)

    it("refuses a closed multi and a bad timeout with nil, argument, message, QIWI_ARGUMENT", function()
      local m = multi()
      check_failure("argument", "QIWI_ARGUMENT", m:send_all({}, 0))
      check_failure("argument", "QIWI_ARGUMENT", m:send_all({}, 86401))
      m:close()
      local msg = check_failure("argument", "QIWI_ARGUMENT", m:send_all { { "GET", srv:url(ACCOUNTS_PATH), hl } })
      assert.matches("closed", msg)
      assert.equal(0, #srv:requests())
    end)
  end)
end)
