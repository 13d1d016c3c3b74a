-- The hot path of a call, over real HTTPS (real nginx, test CA): a 2xx
-- JSON answer decoded by the session straight from its receive buffer,
-- the one rule for which answers are JSON (core.json_like), a row's kept
-- plan (URL, header list, transport) and the decoder's string cache that
-- lives from one answer to the next. Each must give exactly what the plain
-- path gives: the text path (body as a string, decoded by qiwi.answer) is
-- the oracle throughout.
local qiwi = require "qiwi"
local core = require "qiwi.core"
local https_fake = require "https_fake"
local util = require "util"
local checks = require "checks"

local TOKEN = "hot-path-token-7c2e"
local WALLET = "79111234567"

-- Answers nginx itself sends (no Lua): location, status, content type, body.
-- The bodies hold no quote, backslash or $ (nginx's quoted string).
local CASES = {
  { "/json", 200, "application/json", '{"a":[1,2.5,"x",{}],"n":null,"t":true,"e":[],"big":9223372036854775807}' },
  { "/json-charset", 200, "application/json;charset=UTF-8", '[{"alias":"qw_wallet_rub","title":"Счет"}]' },
  { "/looks-like-json", 200, "text/plain", ' \t{"a":1}' },
  { "/text", 200, "text/plain", "hello" },
  { "/bad-json", 200, "application/json", '{"a":' },
  { "/error", 400, "application/json", '{"errorCode":"validation.error","userMessage":"no"}' },
  { "/empty", 200, "application/json", "" },
  { "/scalar", 200, "application/json", "42" },
}

local function locations()
  local out = {}
  for _, c in ipairs(CASES) do
    out[#out + 1] = ("        location = %s { default_type %q; return %d '%s'; }"):format(c[1], c[3], c[2], c[4])
  end
  return table.concat(out, "\n")
end

describe("hot path", function()
  local srv, static, hl, session

  setup(function()
    srv = https_fake.shared()
    static = https_fake.start { location_lua = "ngx.exit(404)", server_extra = locations(), log_level = "error" }
    hl = assert(core.header_list { "Accept: application/json", "Authorization: Bearer " .. TOKEN })
    session = core.session { ca_file = static.ca_file }
  end)

  teardown(function()
    session:close()
    static:stop()
  end)

  before_each(function()
    srv:reset { token = TOKEN, wallet = WALLET }
  end)

  local function client(opts)
    local o = { token = TOKEN, wallet = WALLET, base_url = srv.base_url, ca_file = srv.ca_file, retries = 0,
                history_rate = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(qiwi.new(o))
  end

  describe("session:send with decode", function()
    it("hands a 2xx JSON answer back decoded, the same value as decoding its text", function()
      local decoded = 0
      for _, c in ipairs(CASES) do
        local url = static.base_url .. c[1]
        local status, body, headers = session:send("GET", url, hl, nil, 10, false)
        assert.equal(c[2], status, c[1])
        assert.equal(c[4], body, c[1])
        local s2, b2, h2, value = session:send("GET", url, hl, nil, 10, false, true)
        assert.equal(c[2], s2, c[1])
        local json = c[2] >= 200 and c[2] < 300 and core.json_like(headers["content-type"], body)
        local want, derr = core.json_decode(body)
        if json and derr == nil then
          decoded = decoded + 1
          -- no body string and no headers table: a success needs neither
          assert.is_nil(b2, c[1])
          assert.is_nil(h2, c[1])
          assert.same(want, value, c[1])
          if type(want) == "table" then
            assert.equal(getmetatable(want), getmetatable(value), c[1])
          end
        else
          -- everything else as text, as without decode, for qiwi.answer to read
          assert.equal(body, b2, c[1])
          assert.same(headers, h2, c[1])
          assert.is_nil(value, c[1])
        end
      end
      -- /json, /json-charset, /looks-like-json, /scalar
      assert.equal(4, decoded)
    end)

    it("is what multi:send_all does for the requests that ask (reqs[i][6]), in one batch", function()
      local multi = core.multi { ca_file = static.ca_file }
      finally(function() multi:close() end)
      local reqs = {}
      for _, c in ipairs(CASES) do
        local url = static.base_url .. c[1]
        reqs[#reqs + 1] = { "GET", url, hl, nil, false }          -- text
        reqs[#reqs + 1] = { "GET", url, hl, nil, false, true }    -- decoded where it may be
      end
      local res = assert(multi:send_all(reqs, 10, 4))
      local decoded = 0
      for i, c in ipairs(CASES) do
        local text, dec = res[2 * i - 1], res[2 * i]
        assert.equal(c[2], text[1], c[1])
        assert.equal(c[4], text[2], c[1])
        assert.equal(c[2], dec[1], c[1])
        local want, derr = core.json_decode(text[2])
        if c[2] >= 200 and c[2] < 300 and core.json_like(text[3]["content-type"], text[2]) and derr == nil then
          decoded = decoded + 1
          assert.is_nil(dec[2], c[1])
          assert.is_nil(dec[3], c[1])
          assert.same(want, dec[4], c[1])
          if type(want) == "table" then assert.equal(getmetatable(want), getmetatable(dec[4]), c[1]) end
        else
          assert.equal(text[2], dec[2], c[1])
          assert.same(text[3], dec[3], c[1])
          assert.is_nil(dec[4], c[1])
        end
      end
      assert.equal(4, decoded)
    end)

    it("decodes with qiwi's conventions: null, array_mt, int64 integers", function()
      local _, _, _, v = session:send("GET", static.base_url .. "/json", hl, nil, 10, false, true)
      assert.equal(qiwi.null, v.n)
      assert.equal(qiwi.array_mt, getmetatable(v.a))
      assert.equal(qiwi.array_mt, getmetatable(v.e))
      assert.equal(2.5, v.a[2])
      if math.type then
        assert.equal("integer", math.type(v.big))
        assert.equal(math.maxinteger, v.big)
      end
    end)
  end)

  describe("core.json_like", function()
    -- the expression qiwi.answer used before the rule moved into the core
    local function old_rule(ctype, body)
      if body == nil or body == "" then return false end
      return string.find(ctype or "", "json", 1, true) ~= nil or string.find(body, "^%s*[%[{]") ~= nil
    end

    it("is the rule qiwi.answer always applied, on every kind of input", function()
      local ctypes = { nil, "", "application/json", "application/problem+json", "text/plain", "JSON",
                       "application/jso", "text/html; charset=json", "x-json, text/plain" }
      local bodies = { "", " ", "{", "[", " {", "\t\n\r\v\f[", "x{", "\0{", "1", '"s"', "  x", "}", "]",
                       "\194\160{", " \t" }
      -- and random ones: bytes with white space and brackets over-represented
      local pool = { " ", "\t", "\n", "\v", "\f", "\r", "{", "[", "]", "}", "a", "j", "\0", "\255" }
      math.randomseed(1313)
      for _ = 1, 500 do
        local parts = {}
        for i = 1, math.random(0, 6) do parts[i] = pool[math.random(#pool)] end
        bodies[#bodies + 1] = table.concat(parts)
      end
      local n, trues = 0, 0
      for ci = 0, #ctypes do
        local ctype = ctypes[ci]
        for _, body in ipairs(bodies) do
          local want = old_rule(ctype, body)
          assert.equal(want, core.json_like(ctype, body),
                       ("ctype %q body %q"):format(tostring(ctype), body))
          n = n + 1
          if want then trues = trues + 1 end
        end
        assert.is_false(core.json_like(ctype, nil))
      end
      -- both answers were met many times
      assert.is_true(trues > n / 10 and trues < n * 9 / 10, trues .. " of " .. n)
    end)
  end)

  describe("a client", function()
    -- the same client calls through a user's transport wrapping the libcurl
    -- one: the text path, never the session's decoding
    local function text_path(opts)
      local inner = require("qiwi.transport.curl").new { ca_file = srv.ca_file }
      local wrapper = {
        request = function(_, method, url, headers, body, timeout, once)
          return inner:request(method, url, headers, body, timeout, once)
        end,
        close = function() inner:close() end,
      }
      opts = opts or {}
      opts.transport = wrapper
      return client(opts), wrapper
    end

    it("gets the same results and errors as through the text path", function()
      local fast = client()
      local slow, wrapper = text_path()
      for _, name in ipairs { "accounts", "profile", "nickname", "restrictions", "cross_rates" } do
        local a, aerr = fast[name](fast)
        local b, berr = slow[name](slow)
        assert.same(b, a, name)
        assert.same(berr, aerr, name)
        assert.is_table(a, name)
      end
      -- an error answer (a token QIWI does not know): the same error both ways
      local bad = client { token = "unknown-token-0000" }
      local bad_slow = text_path { token = "unknown-token-0000" }
      local e1 = checks.assert_kind("api", bad:accounts())
      local e2 = checks.assert_kind("api", bad_slow:accounts())
      assert.equal(401, e1.status)
      assert.equal(e2.code, e1.code)
      assert.equal(tostring(e2), tostring(e1))
      fast:close()
      wrapper.close()
    end)

    it("sends a row without arguments by its plan, made again when what it holds changes", function()
      local c = client()
      for _ = 1, 3 do assert.is_table(c:accounts()) end
      assert.equal(1, util.connections(srv:requests()))
      -- closed: the plan's transport is gone, a new connection is opened
      c:close()
      assert.is_table(c:accounts())
      assert.equal(2, util.connections(srv:requests()))
      -- another wallet: the path follows it
      srv:reset { token = TOKEN, wallet = "79990000001" }
      c.wallet = "79990000001"
      assert.is_table(c:accounts())
      local reqs = srv:requests()
      assert.equal("/funding-sources/v2/persons/79990000001/accounts", reqs[#reqs].path)
      -- another base URL: the request goes there
      local other = https_fake.start { fake = { token = TOKEN, wallet = "79990000001" }, log_level = "error" }
      c.base_url = other.base_url
      local res = c:accounts()
      local there = #other:requests()
      other:stop()
      assert.is_table(res)
      assert.equal(1, there)
      c:close()
    end)

    it("does not take the plan for a call with an argument: nothing is sent", function()
      local c = client()
      assert.is_table(c:nickname())
      local before = #srv:requests()
      local err = checks.assert_kind("argument", c:nickname("extra"))
      assert.truthy(err.message:find("nickname takes 0 argument", 1, true), err.message)
      assert.equal(before, #srv:requests())
      c:close()
    end)
  end)

  describe("the decoder's string cache", function()
    it("gives the right strings when many share a slot, across documents", function()
      -- the same first three bytes: one slot for all of them
      for i = 1, 3000 do
        local k, v = "abc" .. i, "abc" .. (i * 7) .. "x"
        local t = assert(core.json_decode('{"' .. k .. '":"' .. v .. '","abc":"ab","ab":"abc"}'))
        assert.equal(v, t[k])
        assert.equal("ab", t.abc)
        assert.equal("abc", t.ab)
        local n = 0
        for _ in pairs(t) do n = n + 1 end
        assert.equal(3, n)
      end
    end)

    it("tells a cached string from a longer one, an escaped one and one cut short", function()
      assert.same({ "abcdef", "abcdef" }, core.json_decode('["abcdef","abcdef"]'))
      assert.same({ "abc", "abcdef", "abc\ndef", "abc" }, core.json_decode('["abc","abcdef","abc\\ndef","abc"]'))
      assert.same({ "Счет мобильного кошелька", "Счет" },
                  core.json_decode('["Счет мобильного кошелька","Счет"]'))
      assert.same({ "Счет мобильного кошелька" }, core.json_decode('["Счет мобильного кошелька"]'))
      -- a cached string at the very end of a document that stops short
      assert.same({ "abcdef" }, core.json_decode('["abcdef"]'))
      local v, err = core.json_decode('["abcdef')
      assert.is_nil(v)
      assert.truthy(err:find("unterminated string", 1, true), err)
      v, err = core.json_decode('["abcdef"')
      assert.is_nil(v)
      assert.is_string(err)
    end)

    it("keeps two strings of one pair of slots, each found again", function()
      -- "QIWI" and "QIWI Wallet" share their first three bytes, as in every
      -- accounts() answer; a third one takes turns with them
      for _ = 1, 3 do
        assert.same({ "QIWI", "QIWI Wallet", "QIWI", "QIWIX", "QIWI Wallet" },
                    core.json_decode('["QIWI","QIWI Wallet","QIWI","QIWIX","QIWI Wallet"]'))
      end
    end)

    it("hands out strings that are not changed by a later document", function()
      local first = core.json_decode('{"alias":"qw_wallet_rub"}')
      for i = 1, 500 do core.json_decode('{"alias":"qw_' .. i .. '","qw_x":"aliases"}') end
      assert.equal("qw_wallet_rub", first.alias)
      assert.same({ alias = "qw_wallet_rub" }, core.json_decode('{"alias":"qw_wallet_rub"}'))
    end)
  end)

  -- A container is made at the size the last one under the same key had
  -- (qiwi_json_decode_buf's guesses): every size after every other must
  -- still give exactly the plain decode's value.
  describe("the decoder's size guesses", function()
    local function count(t)
      local n = 0
      for _ in pairs(t) do n = n + 1 end
      return n
    end

    -- {"sg":{"k1":1,...,"kN":N},"sa":[1..M]} and the value it stands for
    local function doc(n, m)
      local members, want = {}, { sg = {}, sa = setmetatable({}, qiwi.array_mt) }
      for i = 1, n do
        members[#members + 1] = '"k' .. i .. '":' .. i
        want.sg["k" .. i] = i
      end
      local elements = {}
      for i = 1, m do
        elements[#elements + 1] = tostring(i * 3)
        want.sa[i] = i * 3
      end
      return '{"sg":{' .. table.concat(members, ",") .. '},"sa":[' .. table.concat(elements, ",") .. "]}", want
    end

    it("gives the same value whatever size came before under the key", function()
      for _, n in ipairs { 3, 1, 5, 0, 8, 2, 70, 2, 64, 65, 1, 0, 0, 4 } do
        local text, want = doc(n, (n * 5) % 67)
        local v = assert(core.json_decode(text))
        assert.same(want, v)
        assert.equal(n, count(v.sg), text)
        assert.equal(#want.sa, #v.sa, text)
        assert.equal(count(want.sa), count(v.sa))
        assert.equal(qiwi.array_mt, getmetatable(v.sa))
        -- and back: no holes or extra elements in an array made larger
        local encoded = assert(qiwi.json.encode(v))
        assert.equal(text:match('"sa":%b[]'), encoded:match('"sa":%b[]'))
        assert.same(want, qiwi.json.decode(encoded))
      end
    end)

    it("keeps the last of duplicate keys, and nesting, in a table made at its guess", function()
      for _ = 1, 3 do
        local v = assert(core.json_decode('{"dg":{"a":1,"b":{"c":[1,{"d":2}]},"a":3},"dg2":[{"x":1},{"x":2,"y":[]}]}'))
        assert.same({ a = 3, b = { c = { 1, { d = 2 } } } }, v.dg)
        assert.equal(2, count(v.dg))
        assert.same({ { x = 1 }, { x = 2, y = {} } }, v.dg2)
        assert.equal(qiwi.array_mt, getmetatable(v.dg2[2].y))
      end
    end)
  end)
end)
