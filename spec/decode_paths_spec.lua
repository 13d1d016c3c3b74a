-- The decoder's fast paths (src/json.c): members wait on the Lua stack until
-- their container is complete, with a switch to filling the table in place
-- for containers too big for the stack; and repeated strings of documents of
-- 2 KB and more are pushed from a per-decode cache. Each must give exactly
-- what the plain path gives.
local qiwi = require "qiwi"
local util = require "util"

local decode = qiwi.json.decode
local count = util.count

-- Pads a document past the size from which the string cache is used.
local function big(doc)
  return doc .. string.rep(" ", 4096)
end

describe("json decode: repeated strings (cache)", function()
  it("gives every repetition its own exact text", function()
    local item = '{"a":"x","ab":"xy","abc":"xyz","abcd":"ab","ab\\"c":"q","ab\\u0063":"abc","ключ":"значение"}'
    local items = {}
    for i = 1, 40 do items[i] = item end
    local v = assert(decode(big("[" .. table.concat(items, ",") .. "]")))
    assert.equal(40, #v)
    for i = 1, 40 do
      local o = v[i]
      -- "ab\u0063" spells "abc": that later key replaces the plain one
      assert.equal(6, count(o))
      assert.equal("x", o.a)
      assert.equal("xy", o.ab)
      assert.equal("abc", o.abc)
      assert.equal("ab", o.abcd)
      assert.equal("q", o['ab"c'])
      assert.equal("значение", o["ключ"])
    end
  end)

  it("does not take a string for a longer or shorter one with the same start", function()
    local v = assert(decode(big('["abc","abcd","abc","ab","abcd","abc\\n","abc"]')))
    assert.same({ "abc", "abcd", "abc", "ab", "abcd", "abc\n", "abc" }, { (table.unpack or unpack)(v, 1, 7) })
  end)

  it("keeps strings at and past the interning limit exact", function()
    local s40, s41 = string.rep("k", 40), string.rep("k", 41)
    local doc = ('[{"%s":1,"%s":2},{"%s":3,"%s":4}]'):format(s40, s41, s40, s41)
    local v = assert(decode(big(doc)))
    assert.equal(1, v[1][s40])
    assert.equal(2, v[1][s41])
    assert.equal(3, v[2][s40])
    assert.equal(4, v[2][s41])
  end)

  it("reports errors at the right byte after cached strings", function()
    local prefix = '[' .. string.rep('"dup",', 500)
    local doc = prefix .. '"dup\1"]'
    local v, err = decode(doc)
    assert.is_nil(v)
    assert.equal("decode: control character in string at byte " .. (#prefix + 5), err)
    v, err = decode(prefix .. '"du\255"]')
    assert.is_nil(v)
    assert.equal("decode: invalid UTF-8 at byte " .. (#prefix + 4), err)
    v, err = decode(prefix .. '"dup')
    assert.is_nil(v)
    assert.equal("decode: unterminated string at byte " .. (#prefix + 1), err)
  end)

  it("decodes a large document the same with and without the cache", function()
    local items = {}
    for i = 1, 60 do
      items[i] = ('{"txnId":%d,"status":"SUCCESS","type":"OUT","comment":"c%d","sum":{"amount":%d.5,"currency":643}}')
        :format(1000 + i, i % 7, i)
    end
    local text = "[" .. table.concat(items, ",") .. "]"
    local cached = assert(decode(text))            -- > 2 KB: with the cache
    for i = 1, 60 do
      local one = assert(decode(items[i]))        -- < 2 KB: without
      assert.same(one, cached[i])
    end
  end)
end)

describe("json decode: containers bigger than the Lua stack", function()
  -- past the stack limit of the interpreter: a C function may use about 8000
  -- slots under 5.1 and LuaJIT, a million under 5.3 and 5.4. (LuaJIT is not
  -- given the big size: building a million distinct test strings takes it
  -- minutes.)
  local N = (_VERSION == "Lua 5.1") and 40000 or 1200000

  it("fills a huge array in order", function()
    local parts = {}
    for i = 1, N do parts[i] = tostring(i) end
    local v = assert(decode("[" .. table.concat(parts, ",") .. "]"))
    assert.equal(N, #v)
    assert.equal(qiwi.array_mt, getmetatable(v))
    for _, i in ipairs { 1, 2, 3999, 4000, 4001, 7999, 8000, 8001, math.floor(N / 2), N } do
      assert.equal(i, v[i])
    end
  end)

  it("fills a huge object, the last of duplicate keys winning across the switch", function()
    local M = math.floor(N / 2)
    local parts = {}
    for i = 1, M do parts[i] = ('"k%d":%d'):format(i, i) end
    local doc = '{"dup":1,' .. table.concat(parts, ",") .. ',"dup":2,"late":{"a":[1,{"b":[]}]}}'
    local v = assert(decode(doc))
    assert.equal(M + 2, count(v))
    for _, i in ipairs { 1, 3999, 4000, 4001, M - 1, M } do
      assert.equal(i, v["k" .. i])
    end
    assert.equal(2, v.dup)
    assert.equal(2, #v.late.a)
    assert.equal(0, #v.late.a[2].b)
    assert.equal(qiwi.array_mt, getmetatable(v.late.a[2].b))
  end)

  it("decodes containers nested in one that outgrows the stack budget", function()
    local items = {}
    for i = 1, 20000 do items[i] = ('{"id":%d,"flags":[true,null],"o":{}}'):format(i) end
    local v = assert(decode("[" .. table.concat(items, ",") .. "]"))
    assert.equal(20000, #v)
    for _, i in ipairs { 1, 3999, 4000, 4001, 7999, 8000, 8001, 20000 } do
      assert.equal(i, v[i].id)
      assert.equal(2, #v[i].flags)
      assert.equal(qiwi.null, v[i].flags[2])
      assert.equal(0, count(v[i].o))
    end
  end)

  it("still allows the deepest nesting after a huge container", function()
    local depth = 510
    local doc = "[" .. string.rep("0,", 9000) .. string.rep("[", depth) .. string.rep("]", depth) .. "]"
    local v = assert(decode(doc))
    assert.equal(9001, #v)
    local inner, levels = v[9001], 1
    while inner[1] do inner, levels = inner[1], levels + 1 end
    assert.equal(depth, levels)
  end)

  it("keeps the first of duplicate keys from winning while members wait on the stack", function()
    local v = assert(decode('{"a":1,"b":2,"a":3,"a":4}'))
    assert.equal(4, v.a)
    assert.equal(2, v.b)
    assert.equal(2, count(v))
  end)

  it("keeps empty containers apart at every depth", function()
    local v = assert(decode('{"o":{},"a":[],"n":[[],{},[{}]]}'))
    assert.is_nil(getmetatable(v.o))
    assert.equal(qiwi.array_mt, getmetatable(v.a))
    assert.equal(qiwi.array_mt, getmetatable(v.n[1]))
    assert.is_nil(getmetatable(v.n[2]))
    assert.equal("[]", qiwi.json.encode(v.a))
    assert.equal("{}", qiwi.json.encode(v.o))
    assert.equal(3, #v.n)
    assert.equal(0, count(v.n[3][1]))
  end)
end)
