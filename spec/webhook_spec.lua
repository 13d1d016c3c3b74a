-- qiwi.webhook.verify against the docs' worked example and hostile bodies.
local qiwi = require "qiwi"
local core = require "qiwi.core"

local KEY = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="

-- The notification of the docs' worked example with the hash the docs compute
-- for it ("643|1|IN|+79161112233|13353941550").
local function example(hash)
  return '{"messageId":"7814c49d-2d29-4b14-b2dc-36b377c76156","hookId":"5e2027d1-f5f3-4ad1-b409-058b8b8a8c22",'
    .. '"payment":{"txnId":"13353941550","date":"2018-06-27T13:39:00+03:00","type":"IN","status":"SUCCESS",'
    .. '"errorCode":"0","personId":78000008000,"account":"+79161112233","comment":"","provider":7,'
    .. '"sum":{"amount":1,"currency":643},"commission":{"amount":0,"currency":643},'
    .. '"total":{"amount":1,"currency":643},"signFields":"sum.currency,sum.amount,type,account,txnId"},'
    .. '"hash":"' .. hash .. '","version":"1.0.0","test":false}'
end

local DOCS_HASH = "f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243"
-- the hash printed inside the docs' sample JSON, which does not belong to it
local SAMPLE_HASH = "76687ffe5c516c793faa46fafba0994e7ca7a6d735966e0e0c0b65eaa43bdca0"

local function sign(_, fields, key_b64)
  local key = core.base64_decode(key_b64)
  return core.hmac_sha256_hex(key, table.concat(fields, "|"))
end

describe("qiwi.webhook.verify", function()
  it("computes the docs' HMAC for the docs' joined string", function()
    assert.equal(DOCS_HASH, core.hmac_sha256_hex(core.base64_decode(KEY), "643|1|IN|+79161112233|13353941550"))
  end)

  it("accepts the docs' worked example and returns the notification", function()
    local note, err = qiwi.webhook.verify(example(DOCS_HASH), KEY)
    assert.is_nil(err)
    assert.equal("13353941550", note.payment.txnId)
    assert.equal(78000008000, note.payment.personId)
    if math.type then
      assert.equal("integer", math.type(note.payment.personId))
    else
      -- 5.1/LuaJIT: a double, exact below 2^53
      assert.equal(math.floor(note.payment.personId), note.payment.personId)
    end
  end)

  it("accepts an upper-case hex hash", function()
    assert.truthy(qiwi.webhook.verify(example(DOCS_HASH:upper()), KEY))
  end)

  it("refuses the hash that the docs' sample JSON carries", function()
    local note, err = qiwi.webhook.verify(example(SAMPLE_HASH), KEY)
    assert.is_nil(note)
    assert.equal("signature", err.code)
    assert.equal("argument", err.kind)
  end)

  it("refuses a notification whose signed value was changed", function()
    local body = example(DOCS_HASH):gsub('"amount":1,"currency":643},"commission"', '"amount":100,"currency":643},"commission"')
    local note, err = qiwi.webhook.verify(body, KEY)
    assert.is_nil(note)
    assert.equal("signature", err.code)
  end)

  it("refuses the right body under another key", function()
    local note, err = qiwi.webhook.verify(example(DOCS_HASH), "OikS4/CcIbSf+yYGnLbnOige8RGoYmGxs/LNMwkJy7Q=")
    assert.is_nil(note)
    assert.equal("signature", err.code)
  end)

  it("signs numbers as QIWI wrote them: 1, 1.0 and 1.73 differ", function()
    for _, amount in ipairs { "1", "1.0", "1.73", "1.10" } do
      local parts = { "643", amount, "IN", "+79161112233", "13353941550" }
      local hash = sign(nil, parts, KEY)
      local body = example(hash):gsub('"sum":{"amount":1,', '"sum":{"amount":' .. amount .. ",")
      local note, err = qiwi.webhook.verify(body, KEY)
      assert.is_nil(err, amount)
      assert.is_table(note)
    end
  end)

  it("allows whitespace in the body and around the names of signFields", function()
    local body = '{ "hash" : "%s", "payment" : { "sum" : { "currency" : 643 , "amount" : 1.73 } ,'
      .. ' "type" : "OUT", "account" : "myAccount", "txnId" : "13117338074",'
      .. ' "signFields" : " sum.currency, sum.amount ,type,account , txnId " } }'
    local hash = sign(nil, { "643", "1.73", "OUT", "myAccount", "13117338074" }, KEY)
    assert.truthy(qiwi.webhook.verify(body:format(hash), KEY))
  end)

  it("takes string values unescaped", function()
    local body = '{"hash":"%s","payment":{"sum":{"amount":1,"currency":643},"type":"\\u0049N",'
      .. '"account":"a\\/b \\u0410","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"}}'
    local hash = sign(nil, { "643", "1", "IN", "a/b А", "1" }, KEY)
    assert.truthy(qiwi.webhook.verify(body:format(hash), KEY))
  end)

  it("refuses what is not a notification", function()
    local cases = {
      "", "not json", "[]", '{"hash":"x"}', '{"payment":{"signFields":"txnId","txnId":"1"}}',
      '{"hash":"00","payment":{"signFields":"","txnId":"1"}}',
    }
    for _, body in ipairs(cases) do
      local note, err = qiwi.webhook.verify(body, KEY)
      assert.is_nil(note, body)
      assert.equal("format", err.code, body)
    end
  end)

  it("refuses a key that is not base64", function()
    local note, err = qiwi.webhook.verify(example(DOCS_HASH), "not base64!")
    assert.is_nil(note)
    assert.equal("argument", err.kind)
    local note2, err2 = qiwi.webhook.verify(example(DOCS_HASH), nil)
    assert.is_nil(note2)
    assert.equal("argument", err2.kind)
  end)
end)

describe("core crypto helpers", function()
  it("decodes base64 with and without padding, and the URL-safe alphabet", function()
    assert.equal("hello", core.base64_decode("aGVsbG8="))
    assert.equal("hello", core.base64_decode("aGVsbG8"))
    assert.equal("\251\255", core.base64_decode("+/8="))
    assert.equal("\251\255", core.base64_decode("-_8"))
    assert.equal("", core.base64_decode(""))
  end)

  it("refuses broken base64", function()
    for _, s in ipairs { "a", "aGVsbG8==x", "aGV sbG8=", "a===", "!!!!" } do
      assert.is_nil((core.base64_decode(s)), s)
    end
  end)

  it("compares in constant time and by length", function()
    assert.is_true(core.constant_time_equal("abc", "abc"))
    assert.is_false(core.constant_time_equal("abc", "abd"))
    assert.is_false(core.constant_time_equal("abc", "abcd"))
  end)

  it("matches RFC 4231 test case 2 for HMAC-SHA256", function()
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      core.hmac_sha256_hex("Jefe", "what do ya want for nothing?"))
  end)
end)
