-- Every response example of QIWI's docs through our decoder: the valid ones
-- decode with exact integers and survive a round trip; the ones the docs print
-- with placeholders ("...", "<стоимость>", a bare list in braces) are refused
-- with a byte offset instead of being half-read.
local qiwi = require "qiwi"
local examples = require "fixtures.doc_responses"

local has_integers = math.type ~= nil

-- Keys whose numbers are integers wherever QIWI sends them.
local INTEGER_KEYS = {
  personId = true, txnId = true, contractId = true, firstTxnId = true, providerId = true,
  currency = true, nextTxnId = true, defaultPayCurrency = true, defaultPaySource = true,
  p2pPaymentCountLimit = true, creation_datetime = true, expiration_datetime = true,
  errorCode = true, provider = true,
}

local function walk(v, fn, key)
  fn(key, v)
  if type(v) == "table" then
    for k, child in pairs(v) do walk(child, fn, k) end
  end
end

local function deep_equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then
    if has_integers and type(a) == "number" and math.type(a) ~= math.type(b) then return false end
    return a == b
  end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return getmetatable(a) == getmetatable(b)
end

describe("docs' response examples", function()
  for _, ex in ipairs(examples) do
    local name = ex.source .. " #" .. ex.n
    if ex.valid then
      it(name .. " decodes with exact integers and round-trips", function()
        local v, err = qiwi.json.decode(ex.json)
        assert.is_nil(err)
        assert.is_table(v)
        walk(v, function(key, value)
          if INTEGER_KEYS[key] and type(value) == "number" and has_integers then
            assert.equal("integer", math.type(value), name .. ": " .. tostring(key))
          end
        end)
        -- every integer literal of the text is an exact integer in the result
        if has_integers then
          for digits in ex.json:gmatch('[:%[,]%s*(%-?%d+)%s*[,}%]\n]') do
            local n = math.tointeger(tonumber(digits))
            if n then
              local found = false
              walk(v, function(_, value) if value == n and math.type(value) == "integer" then found = true end end)
              assert.is_true(found, name .. ": integer " .. digits)
            end
          end
        end
        local again = assert(qiwi.json.decode(assert(qiwi.json.encode(v))))
        assert.is_true(deep_equal(v, again), name .. " round trip")
      end)
    else
      it(name .. " is not valid JSON as printed, and is refused with an offset", function()
        local v, err = qiwi.json.decode(ex.json)
        assert.is_nil(v)
        assert.matches("at byte %d+", err)
      end)
    end
  end

  it("cover the history page, the transaction, the balances and the payment answers", function()
    local sources = {}
    for _, ex in ipairs(examples) do sources[ex.source] = (sources[ex.source] or 0) + 1 end
    for _, page in ipairs { "profile_en", "payment_history_en", "balance_en", "payment_en", "webhook_en", "master_ru" } do
      assert.is_true((sources[page] or 0) > 0, page)
    end
  end)
end)
