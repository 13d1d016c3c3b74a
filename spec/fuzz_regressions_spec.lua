-- What the fuzzers found, kept as specs under every interpreter (the fuzz
-- targets themselves run on Lua 5.4 only), and the seed corpus replayed.
local qiwi = require "qiwi"
local core = require "qiwi.core"
local pki = require "pki"

local verify = qiwi.webhook.verify
local REPO = pki.util.repo_root()
local KEY = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="

-- A notification signed as QIWI signs it: the raw texts of signFields, '|'.
local function signed(body_with_placeholder, parts)
  local mac = core.hmac_sha256_hex(core.base64_decode(KEY), table.concat(parts, "|"))
  return (body_with_placeholder:gsub("@@@@", mac))
end

local function corpus(dir)
  local files = pki.util.lines("ls " .. pki.util.shq(REPO .. "/fuzz/corpus/" .. dir))
  assert.is_true(#files > 0, "empty corpus " .. dir)
  return files
end

describe("webhook verification (fuzzer findings)", function()
  local GENUINE = '{"payment":{"sum":{"amount":1,"currency":643},"type":"IN","account":"a","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"},'
    .. '"hash":"@@@@"}'

  it("accepts the genuine notification the forgeries below start from", function()
    local note, err = verify(signed(GENUINE, { "643", "1", "IN", "a", "1" }), KEY)
    assert.is_nil(err)
    assert.equal(1, note.payment.sum.amount)
  end)

  for _, case in ipairs {
    { "a second payment under an escaped key",
      '{"payment":{"sum":{"amount":1,"currency":643},"type":"IN","account":"a","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"},'
      .. '"pay\\u006dent":{"sum":{"amount":1000000,"currency":643},"type":"IN","account":"a","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"},'
      .. '"hash":"@@@@"}' },
    { "a second sum under an escaped key",
      '{"payment":{"sum":{"amount":1,"currency":643},"s\\u0075m":{"amount":999,"currency":643},"type":"IN",'
      .. '"account":"a","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"},"hash":"@@@@"}' },
    { "a repeated payment key",
      '{"payment":{"sum":{"amount":1,"currency":643},"type":"IN","account":"a","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"},'
      .. '"payment":{"sum":{"amount":5000,"currency":643},"type":"IN","account":"a","txnId":"1","signFields":"sum.currency,sum.amount,type,account,txnId"},'
      .. '"hash":"@@@@"}' },
  } do
    it("refuses a genuine signature over " .. case[1], function()
      local note, err = verify(signed(case[2], { "643", "1", "IN", "a", "1" }), KEY)
      assert.is_nil(note)
      assert.equal(qiwi.error, getmetatable(err))
      assert.equal("format", err.code)
    end)
  end

  for _, fields in ipairs { " ", ".", "txnId,  ", "txnId,.", " , " } do
    it("refuses signFields " .. string.format("%q", fields) .. " without raising", function()
      local body = '{"hash":"00","payment":{"txnId":"1","signFields":"' .. fields .. '"}}'
      local ok, note, err = pcall(verify, body, KEY)
      assert.is_true(ok, note)
      assert.is_nil(note)
      assert.equal("format", err.code)
    end)
  end

  it("replays the seed corpus without raising", function()
    local keys = { [0] = KEY, "OikS4/CcIbSf+yYGnLbnOige8RGoYmGxs/LNMwkJy7Q=", "not base64!", "" }
    for _, name in ipairs(corpus("webhook")) do
      local raw = assert(pki.util.read_file(REPO .. "/fuzz/corpus/webhook/" .. name))
      local ok, note, err = pcall(verify, raw:sub(2):gsub("@@@@", string.rep("0", 64)), keys[raw:byte(1) % 4])
      assert.is_true(ok, name .. ": " .. tostring(note))
      assert.is_true(note ~= nil or getmetatable(err) == qiwi.error, name)
    end
  end)
end)

describe("JSON decoder seed corpus", function()
  it("decodes or refuses every seed without raising, and what decodes round-trips", function()
    for _, name in ipairs(corpus("json")) do
      local raw = assert(pki.util.read_file(REPO .. "/fuzz/corpus/json/" .. name))
      local ok, v, err = pcall(qiwi.json.decode, raw)
      assert.is_true(ok, name .. ": " .. tostring(v))
      if v == nil then
        assert.matches("^decode: .+ at byte %d+$", err, nil, false, name)
      else
        local text = assert(qiwi.json.encode(v), name)
        assert.is_not_nil(qiwi.json.decode(text), name)
      end
    end
  end)
end)
