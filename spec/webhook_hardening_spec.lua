-- qiwi.webhook against the outside review: forgeries that move the field
-- boundaries of a genuine signature, bodies that keep verify busy, and
-- replays that the receiver must recognise by what is signed.
local qiwi = require "qiwi"
local core = require "qiwi.core"

local verify = qiwi.webhook.verify
local KEY = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="
local OTHER_KEY = "OikS4/CcIbSf+yYGnLbnOige8RGoYmGxs/LNMwkJy7Q="
local FIELDS = "sum.currency,sum.amount,type,account,txnId"
-- the docs' worked example: "643|1|IN|+79161112233|13353941550" under KEY
local DOCS_HASH = "f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243"

local function mac(text, key)
  return core.hmac_sha256_hex(core.base64_decode(key or KEY), text)
end

-- A notification written out field by field, so that each value's raw text
-- is what the case needs. Values are JSON texts: strings with their quotes.
local function body(o)
  o = o or {}
  local function pick(k, default) if o[k] == nil then return default end return o[k] end
  return '{"messageId":' .. pick("messageId", '"7814c49d-2d29-4b14-b2dc-36b377c76156"')
    .. ',"hookId":"5e2027d1-f5f3-4ad1-b409-058b8b8a8c22",'
    .. '"payment":{"txnId":' .. pick("txnId", '"13353941550"') .. ',"date":"2018-06-27T13:39:00+03:00",'
    .. '"type":' .. pick("type", '"IN"') .. ',"status":' .. pick("status", '"SUCCESS"') .. ','
    .. '"errorCode":"0","personId":78000008000,"account":' .. pick("account", '"+79161112233"') .. ','
    .. '"comment":' .. pick("comment", '""') .. ',"provider":7,'
    .. '"sum":{"amount":' .. pick("amount", "1") .. ',"currency":' .. pick("currency", "643") .. '},'
    .. '"commission":{"amount":0,"currency":643},"total":{"amount":1,"currency":643},'
    .. '"signFields":"' .. pick("signFields", FIELDS) .. '"},'
    .. '"hash":"' .. pick("hash", DOCS_HASH) .. '","version":"1.0.0","test":false}'
end

local function refused(b, code, key)
  local ok, note, err = pcall(verify, b, key or KEY)
  assert.is_true(ok, tostring(note))
  -- the body, not the accepted table: some are 64 KiB
  assert(note == nil, "accepted " .. tostring(b):sub(1, 300))
  assert.equal(qiwi.error, getmetatable(err))
  assert.equal("argument", err.kind)
  assert.equal(code, err.code, err.message)
  return err
end

describe("qiwi.webhook.verify: the signed fields", function()
  it("accepts the docs' worked example, the notification all the forgeries start from", function()
    local note, err = verify(body(), KEY)
    assert.is_nil(err)
    assert.equal("13353941550", note.payment.txnId)
    assert.equal(1, note.payment.sum.amount)
    assert.equal(643, note.payment.sum.currency)
  end)

  it("refuses a txnId moved into account: signFields without txnId, '|' inside account", function()
    -- the joined text stays "643|1|IN|+79161112233|13353941550"
    refused(body { account = '"+79161112233|13353941550"', txnId = '"99999999999"',
                   signFields = "sum.currency,sum.amount,type,account" }, "signature")
  end)

  it("refuses the same forgery with the separator written as \\u007c", function()
    refused(body { account = '"+79161112233\\u007c13353941550"', txnId = '"99999999999"',
                   signFields = "sum.currency,sum.amount,type,account" }, "signature")
  end)

  it("refuses amount and currency swapped together with their names", function()
    refused(body { amount = "643", currency = "1", signFields = "sum.amount,sum.currency,type,account,txnId" },
      "signature")
  end)

  it("refuses type and account swapped together with their names", function()
    refused(body { type = '"+79161112233"', account = '"IN"',
                   signFields = "sum.currency,sum.amount,account,type,txnId" }, "signature")
  end)

  it("refuses lists that leave out one of the five, even when the signature is right", function()
    local values = { ["sum.currency"] = "643", ["sum.amount"] = "1", type = "IN", account = "+79161112233",
                     txnId = "13353941550" }
    local all = { "sum.currency", "sum.amount", "type", "account", "txnId" }
    for skip = 1, #all do
      local names, parts = {}, {}
      for i, name in ipairs(all) do
        if i ~= skip then names[#names + 1] = name; parts[#parts + 1] = values[name] end
      end
      refused(body { signFields = table.concat(names, ","), hash = mac(table.concat(parts, "|")) }, "signature")
    end
    refused(body { signFields = "txnId", hash = mac("13353941550") }, "signature")
  end)

  it("refuses names after the five, even when the signature is right", function()
    -- their names are not signed: the sender could relabel them at will
    refused(body { signFields = FIELDS .. ",status", hash = mac("643|1|IN|+79161112233|13353941550|SUCCESS") },
      "signature")
    refused(body { signFields = FIELDS .. ",txnId", hash = mac("643|1|IN|+79161112233|13353941550|13353941550") },
      "signature")
  end)

  it("refuses a name that is absent from the payment as a forgery, not a format error", function()
    refused('{"hash":"00","payment":{"signFields":"missing","txnId":"1"}}', "signature")
  end)

  it("refuses a signed value holding '|' even when QIWI's signature is right", function()
    -- were QIWI ever to sign such a value, the parts could shift between
    -- the fields: account "a|b" with txnId "1" signs as account "a", txnId "b|1"
    local text = "643|1|IN|a|b|1"
    refused(body { account = '"a|b"', txnId = '"1"', hash = mac(text) }, "signature")
    refused(body { account = '"a"', txnId = '"b|1"', hash = mac(text) }, "signature")
    refused(body { type = '"IN|a"', account = '"b"', txnId = '"1"', hash = mac(text) }, "signature")
  end)

  it("refuses the five with other types than the docs give them, though the signed text is the docs'", function()
    -- each of these signs "643|1|IN|+79161112233|13353941550" as before the fix
    refused(body { currency = '"643"' }, "format")
    refused(body { amount = '"1"' }, "format")
    refused(body { txnId = "13353941550" }, "format")
    refused(body { currency = "643.0", hash = mac("643.0|1|IN|+79161112233|13353941550") }, "format")
    refused(body { currency = "6430", hash = mac("6430|1|IN|+79161112233|13353941550") }, "format")
    refused(body { type = '["IN"]', hash = mac('643|1|["IN"]|+79161112233|13353941550') }, "format")
    refused(body { account = "79161112233", hash = mac("643|1|IN|79161112233|13353941550") }, "format")
    refused(body { amount = "true", hash = mac("643|true|IN|+79161112233|13353941550") }, "format")
  end)

  it("refuses an empty txnId or type, and accepts an empty account", function()
    refused(body { txnId = '""', hash = mac("643|1|IN|+79161112233|") }, "format")
    refused(body { type = '""', hash = mac("643||+79161112233|13353941550") }, "format")
    local note, err = verify(body { account = '""', hash = mac("643|1|IN||13353941550") }, KEY)
    assert.is_nil(err)
    assert.equal("", note.payment.account)
  end)

  it("keeps refusing signFields that are not a list of names as a format error", function()
    for _, list in ipairs { "", " ", ",", "sum.currency,,sum.amount", FIELDS .. ",", ".", "sum..amount",
                            "sum.currency,sum.amount,type,account,txn Id", "a\\u0000b" } do
      refused(body { signFields = list }, "format")
    end
  end)

  it("refuses a hash that is not 64 hex digits before any HMAC", function()
    local real = core.hmac_sha256_hex
    local calls = 0
    core.hmac_sha256_hex = function(...) calls = calls + 1 return real(...) end
    local ok, e = pcall(function()
      refused(body { hash = DOCS_HASH .. "00" }, "signature")
      refused(body { hash = DOCS_HASH:sub(1, 63) .. "g" }, "signature")
      refused(body { hash = "" }, "signature")
    end)
    core.hmac_sha256_hex = real
    assert(ok, e)
    assert.equal(0, calls)
  end)

  it("accepts every notification the fake QIWI sends, the test notification included", function()
    local f = qiwi.fake.new { history_pages = 0 }
    local client = assert(qiwi.new { token = f.token, wallet = f.wallet, transport = f:transport(), retries = 0 })
    local hook = assert(client:register_webhook("https://example.com/hook", "BOTH"))
    assert(client:test_webhook())
    f:add_payment { type = "IN", amount = 5 }
    f:add_payment { type = "IN", amount = 1.73 }
    assert.is_true(#f.notifications >= 3)
    for _, n in ipairs(f.notifications) do
      local note, err = verify(n.body, n.key)
      assert.is_nil(err, n.body)
      assert.equal(tostring(n.txn_id), note.payment.txnId)
    end
    assert.truthy(hook)
  end)
end)

describe("qiwi.webhook.verify: bounded work", function()
  -- CPU seconds of one call (os.clock: other processes' load does not count)
  local function timed(b, key)
    local t0 = os.clock()
    local ok, note, err = pcall(verify, b, key or KEY)
    local dt = os.clock() - t0
    assert.is_true(ok, tostring(note))
    return dt, note, err
  end

  local function hostile_sign_fields(size)
    local head = body { signFields = "" }
    local names = string.rep("txnId,", math.floor((size - #head) / 6)) .. "txnId"
    return body { signFields = names }
  end

  it("refuses a 1 MB body of hostile signFields in well under 50 ms", function()
    local b = hostile_sign_fields(1024 * 1024)
    assert.is_true(#b >= 1024 * 1024 - 6)
    local dt, note, err = timed(b)
    assert.is_nil(note)
    assert.equal("format", err.code)
    assert.is_true(dt < 0.05, ("verify took %.1f ms"):format(dt * 1000))
  end)

  it("refuses a 60 KB body of hostile signFields, under the size cap, in well under 50 ms", function()
    local b = hostile_sign_fields(60 * 1000)
    assert.is_true(#b <= qiwi.webhook.MAX_BODY)
    local dt, note, err = timed(b)
    assert.is_nil(note)
    assert.equal("signature", err.code)
    assert.is_true(dt < 0.05, ("verify took %.1f ms"):format(dt * 1000))
  end)

  it("refuses a genuine signature in a body over 64 KiB, and accepts one at the cap", function()
    local short = body { comment = '""' }
    local pad = qiwi.webhook.MAX_BODY - #short
    assert.is_true(verify(body { comment = '"' .. string.rep("x", pad) .. '"' }, KEY) ~= nil)
    refused(body { comment = '"' .. string.rep("x", pad + 1) .. '"' }, "format")
  end)

  it("checks the length of signFields before splitting it", function()
    refused(body { signFields = FIELDS .. string.rep(" ", 127 - #FIELDS) .. "," }, "format")
    refused(body { signFields = FIELDS .. string.rep(" ", 128 - #FIELDS) .. "," }, "signature")
  end)

  it("refuses a payment of more than 100 keys, and takes one of 100", function()
    -- the docs' payment has 13 keys
    local extra = {}
    for i = 1, 87 do extra[#extra + 1] = '"k' .. i .. '":1' end
    assert.truthy(verify(body { comment = '"",' .. table.concat(extra, ",") }, KEY))
    extra[#extra + 1] = '"k88":1'
    refused(body { comment = '"",' .. table.concat(extra, ",") }, "format")
  end)

  it("stays fast on other hostile shapes under the cap", function()
    local many_keys, escaped_keys, nested = {}, {}, {}
    for i = 1, 4000 do many_keys[#many_keys + 1] = '"k' .. i .. '":1' end
    for i = 1, 3000 do escaped_keys[#escaped_keys + 1] = '"\\u006b' .. i .. '":[]' end
    -- 400 levels, under the decoder's limit, and many of them
    for _ = 1, 200 do nested[#nested + 1] = '{"a":[' end
    local deep = table.concat(nested) .. "1" .. string.rep("]}", 200)
    deep = "[" .. string.rep(deep .. ",", math.floor(60000 / (#deep + 1))) .. "1]"
    local cases = {
      body { comment = '"x",' .. table.concat(many_keys, ",") },
      body { comment = '"x",' .. table.concat(escaped_keys, ",") },
      body { comment = '"x","deep":' .. deep },
      body { comment = '"' .. string.rep('\\"', 30000) .. '"' },
      body { comment = '"x","arr":[' .. string.rep('"\\\\",', 10000) .. '1]' },
      body { comment = '"x","arr":[' .. string.rep('[],', 20000) .. '1]' },
      body { comment = '"x","arr":[' .. string.rep('"{",', 15000) .. '1]' },
      body { comment = '"' .. string.rep("x", 64000) .. '"' },
    }
    for i, b in ipairs(cases) do
      assert.is_true(#b <= qiwi.webhook.MAX_BODY, i)
      local dt = timed(b)
      -- a guard against work that grows faster than the body, not a speed
      -- goal (those are make bench's): quadratic scanning took seconds here
      assert.is_true(dt < 0.5, ("case %d: verify took %.1f ms"):format(i, dt * 1000))
    end
  end)

  it("returns nil, err for inputs of any type and size without raising", function()
    local inputs = { nil, false, true, 0, 1.5, {}, function() end, coroutine.create(function() end),
                     "", "x", string.rep("{", 70000), string.rep("[", 60000), body() }
    local keys = { nil, false, 42, {}, "", "not base64!", string.rep("A", 1000000), KEY }
    for bi = 1, 13 do
      for ki = 1, 8 do
        local ok, note, err = pcall(verify, inputs[bi], keys[ki])
        assert.is_true(ok, tostring(note))
        if not (bi == 13 and ki == 8) then
          assert.is_nil(note, bi .. "/" .. ki)
          assert.equal(qiwi.error, getmetatable(err))
          assert.is_true(err.code == "format" or err.code == "signature", bi .. "/" .. ki)
        end
      end
    end
  end)
end)

-- qiwi.webhook.handler outside nginx: a stand-in for the few ngx calls it
-- makes, so that its memory is checked under every interpreter.
describe("qiwi.webhook.handler: what counts as a repeat", function()
  local saved_ngx

  local function fake_dict()
    local d = { data = {} }
    function d:add(k, v)
      if self.data[k] ~= nil then return false, "exists" end
      self.data[k] = v
      return true
    end
    function d:get(k) return self.data[k] end
    return d
  end

  -- posts one body; the status answered
  local function post(handler, b)
    local status
    _G.ngx = {
      HTTP_OK = 200, ERR = 4, WARN = 5, header = {},
      req = { get_method = function() return "POST" end, read_body = function() end,
              get_body_data = function() return b end, get_body_file = function() end },
      say = function() end, eof = function() end, log = function() end,
      exit = function() end,
    }
    setmetatable(_G.ngx, { __newindex = function(t, k, v) if k == "status" then status = v else rawset(t, k, v) end end })
    handler()
    return status
  end

  -- a notification of the docs' worked example's shape, signed
  local function signed(o)
    o = o or {}
    local txn, kind = o.txn or "13353941550", o.type or "IN"
    return body { txnId = '"' .. txn .. '"', type = '"' .. kind .. '"', status = '"' .. (o.status or "SUCCESS") .. '"',
                  messageId = '"' .. (o.msg or "m-" .. txn) .. '"',
                  hash = mac("643|1|" .. kind .. "|+79161112233|" .. txn) }
  end

  setup(function() saved_ngx = rawget(_G, "ngx") end)
  teardown(function() _G.ngx = saved_ngx end)

  for _, store in ipairs { "a shared dict", "memory", "a store" } do
    local function receiver(memory)
      local got = {}
      local h = qiwi.webhook.handler {
        key = KEY, dict = store == "a shared dict" and fake_dict() or nil, memory = memory,
        store = store == "a store" and qiwi.store.memory() or nil,
        on_notification = function(note)
          got[#got + 1] = note.payment.txnId .. " " .. note.payment.type .. " " .. note.payment.status
            .. " " .. tostring(note.messageId)
        end,
      }
      return h, got
    end

    describe("with " .. store, function()
      it("does not call on_notification again for the docs' notification under a new messageId", function()
        local h, got = receiver()
        assert.equal(200, post(h, body()))
        assert.equal(200, post(h, body { messageId = '"a-new-id"' }))
        assert.equal(200, post(h, body { messageId = '"a-new-id"' }))
        assert.same({ "13353941550 IN SUCCESS 7814c49d-2d29-4b14-b2dc-36b377c76156" }, got)
      end)

      it("calls it for a new txnId, and for the same txnId of the other type", function()
        local h, got = receiver()
        assert.equal(200, post(h, body()))
        assert.equal(200, post(h, signed { txn = "13353941551" }))
        assert.equal(200, post(h, signed { txn = "13353941550", type = "OUT", msg = "out-1" }))
        assert.equal(200, post(h, signed { txn = "13353941550", type = "OUT", msg = "out-2" }))
        assert.equal(3, #got)
        assert.equal("13353941551 IN SUCCESS m-13353941551", got[2])
        assert.equal("13353941550 OUT SUCCESS out-1", got[3])
      end)

      it("calls it once while a payment waits and once when it is final, then never again", function()
        local h, got = receiver()
        local txn = "13117338074"
        post(h, signed { txn = txn, type = "OUT", status = "WAITING", msg = "w-1" })
        post(h, signed { txn = txn, type = "OUT", status = "WAITING", msg = "w-2" })
        post(h, signed { txn = txn, type = "OUT", status = "SUCCESS", msg = "s-1" })
        post(h, signed { txn = txn, type = "OUT", status = "SUCCESS", msg = "s-2" })
        post(h, signed { txn = txn, type = "OUT", status = "ERROR", msg = "e-1" })
        post(h, signed { txn = txn, type = "OUT", status = "WAITING", msg = "w-3" })
        assert.same({ txn .. " OUT WAITING w-1", txn .. " OUT SUCCESS s-1" }, got)
      end)

      it("drops a WAITING that comes after the final notification", function()
        local h, got = receiver()
        post(h, signed { txn = "5", status = "ERROR", msg = "e-1" })
        post(h, signed { txn = "5", status = "WAITING", msg = "w-1" })
        assert.same({ "5 IN ERROR e-1" }, got)
      end)

      it("counts a repeated messageId as a repeat, without marking the other payment", function()
        local h, got = receiver()
        post(h, signed { txn = "1", msg = "same" })
        post(h, signed { txn = "2", msg = "same" })
        post(h, signed { txn = "2", msg = "own" })
        assert.same({ "1 IN SUCCESS same", "2 IN SUCCESS own" }, got)
      end)

      it("answers forgeries 403 and malformed bodies 400 without calling on_notification", function()
        local h, got = receiver()
        assert.equal(403, post(h, body { account = '"+79161112233|13353941550"', txnId = '"99999999999"',
                                        signFields = "sum.currency,sum.amount,type,account" }))
        assert.equal(403, post(h, body { hash = mac("643|1|IN|+79161112233|13353941550", OTHER_KEY) }))
        assert.equal(400, post(h, body { comment = '"' .. string.rep("x", qiwi.webhook.MAX_BODY) .. '"' }))
        assert.equal(400, post(h, "not json"))
        assert.same({}, got)
      end)
    end)
  end

  it("remembers a bounded number of notifications without a dict", function()
    local got = {}
    local h = qiwi.webhook.handler { key = KEY, memory = 2,
                                     on_notification = function(note) got[#got + 1] = note.payment.txnId end }
    post(h, signed { txn = "1", msg = "a" })
    post(h, signed { txn = "2", msg = "b" })
    post(h, signed { txn = "1", msg = "a2" })  -- remembered
    post(h, signed { txn = "3", msg = "c" })   -- pushes the first out
    post(h, signed { txn = "1", msg = "a3" })  -- forgotten, so handled again
    assert.same({ "1", "2", "3", "1" }, got)
  end)
end)

describe("qiwi.webhook.handler with a store", function()
  local saved_ngx
  setup(function() saved_ngx = rawget(_G, "ngx") end)
  teardown(function() _G.ngx = saved_ngx end)

  local function post(handler, b)
    local status
    _G.ngx = setmetatable({
      HTTP_OK = 200, ERR = 4, WARN = 5, header = {},
      req = { get_method = function() return "POST" end, read_body = function() end,
              get_body_data = function() return b end, get_body_file = function() end },
      say = function() end, eof = function() end, log = function() end, exit = function() end,
    }, { __newindex = function(t, k, v) if k == "status" then status = v else rawset(t, k, v) end end })
    handler()
    return status
  end

  it("calls on_notification once for two receivers (two hosts) sharing it", function()
    local s = qiwi.store.memory()
    local calls = 0
    local function receiver()
      return qiwi.webhook.handler { key = KEY, store = s, on_notification = function() calls = calls + 1 end }
    end
    local a, b = receiver(), receiver()
    assert.equal(200, post(a, body()))
    assert.equal(200, post(b, body()))
    assert.equal(200, post(b, body { messageId = '"a-new-id"' }))
    assert.equal(1, calls)
  end)

  it("keeps receivers of two names apart", function()
    local s = qiwi.store.memory()
    local calls = 0
    local function receiver(name)
      return qiwi.webhook.handler { key = KEY, store = s, name = name, on_notification = function() calls = calls + 1 end }
    end
    assert.equal(200, post(receiver("shop-a"), body()))
    assert.equal(200, post(receiver("shop-b"), body()))
    assert.equal(2, calls)
  end)

  -- A store that fails every call while down (set_down(true)), else passes
  -- the calls to `up`.
  local function flaky(up)
    local down = false
    local s = setmetatable({}, { __index = function(_, m)
      return function(_, ...)
        if down then return nil, require("qiwi.error").new { kind = "store", message = "down" } end
        return up[m](up, ...)
      end
    end })
    for _, m in ipairs { "incr", "add", "get", "set", "delete", "admit" } do s[m] = s[m] end
    return s, function(v) down = v end
  end

  describe("with on_payment (the event stream shared with client:watch)", function()
    local events = require "qiwi.events"

    it("hands the payment over once, in the history item's shape, with source webhook", function()
      local s = qiwi.store.memory()
      local got = {}
      local h = qiwi.webhook.handler { key = KEY, store = s, on_payment = function(p, source)
        got[#got + 1] = { p = p, source = source }
      end }
      assert.equal(200, post(h, body()))
      assert.equal(200, post(h, body { messageId = '"another-id"' }))
      assert.equal(1, #got)
      assert.equal("webhook", got[1].source)
      assert.equal(13353941550, got[1].p.txnId)
      assert.equal("number", type(got[1].p.txnId))
      assert.equal(0, got[1].p.errorCode)
      assert.same({ id = 7 }, got[1].p.provider)
      assert.is_nil(got[1].p.signFields)
      -- and the watcher's key of that payment is marked delivered
      assert.is_true(events.delivered(s, events.key("78000008000", "default", 13353941550, "IN")))
    end)

    it("releases the claim of a handler that fails, so the payment comes again", function()
      local s = qiwi.store.memory()
      local calls, fail = 0, true
      local h = qiwi.webhook.handler { key = KEY, store = s, on_payment = function()
        calls = calls + 1
        if fail then error("database down") end
      end }
      assert.equal(200, post(h, body()))
      fail = false
      assert.equal(200, post(h, body()))
      assert.equal(200, post(h, body()))
      assert.equal(2, calls)
    end)

    it("passes over test notifications, other operations and unwanted statuses", function()
      local calls = 0
      local function h(o)
        o.key, o.store = KEY, qiwi.store.memory()
        o.on_payment = function() calls = calls + 1 end
        return qiwi.webhook.handler(o)
      end
      local test = body():gsub('"test":false', '"test":true')
      assert.equal(200, post(h {}, test))
      assert.equal(200, post(h {}, body { status = '"WAITING"' }))
      local out = body { type = '"OUT"', hash = mac("643|1|OUT|+79161112233|13353941550") }
      assert.equal(200, post(h {}, out))
      assert.equal(0, calls)
      assert.equal(200, post(h { operation = "OUT" }, out))
      assert.equal(200, post(h { statuses = { "WAITING" } }, body { status = '"WAITING"' }))
      assert.equal(2, calls)
    end)

    it("refuses bad options with nil, err of kind argument, never raising", function()
      local fn = function() end
      for i, o in ipairs {
        "x", {}, { key = 1, on_payment = fn }, { key = "not base64!", on_payment = fn },
        { key = KEY, on_payment = fn, on_notification = fn }, { key = KEY, on_payment = 1 },
        { key = KEY, on_payment = fn, statuses = { "PAID" } }, { key = KEY, on_payment = fn, operation = "UP" },
        { key = KEY, on_payment = fn, ttl = 0 }, { key = KEY, on_payment = fn, ttl = 0 / 0 },
        { key = KEY, on_payment = fn, name = "a b" }, { key = KEY, on_payment = fn, store = {} },
        { key = KEY, on_notification = fn, memory = 0 }, { key = KEY, on_notification = fn, dict = "no_such_dict" },
        { key = KEY, on_notification = fn, dict = 5 },
        { key = KEY, on_payment = fn, dict = setmetatable({}, { __index = function() end }) },
      } do
        local ok, h, err = pcall(qiwi.webhook.handler, o)
        assert.is_true(ok, "case " .. i .. " raised: " .. tostring(h))
        assert.is_nil(h, "case " .. i)
        assert.equal("argument", err.kind, "case " .. i)
        assert.is_nil(tostring(err):find(KEY, 1, true))
      end
    end)
  end)

  for _, callback in ipairs { "on_notification", "on_payment" } do
    it("answers 503 without calling " .. callback .. " when the store is down, and handles it once it is back",
      function()
        local s, set_down = flaky(qiwi.store.memory())
        local calls = 0
        local h = qiwi.webhook.handler { key = KEY, store = s, [callback] = function() calls = calls + 1 end }
        set_down(true)
        assert.equal(503, post(h, body()))
        assert.equal(0, calls)
        set_down(false)
        assert.equal(200, post(h, body()))
        assert.equal(200, post(h, body()))
        assert.equal(1, calls)
      end)
  end
end)
