-- The C JSON codec of qiwi.core: exactness, strictness, error offsets, limits.
local core = require "qiwi.core"

local decode, encode = core.json_decode, core.json_encode
local null, array_mt = core.null, core.array_mt

-- decode must fail with exactly this message
local function rejects(text, why)
  local v, err = decode(text)
  assert.is_nil(v)
  assert.equal("decode: " .. why, err)
end

local function encode_fails(value, why)
  local s, err = encode(value)
  assert.is_nil(s)
  assert.equal("encode: " .. why, err)
end

local function is_array(t) return getmetatable(t) == array_mt end

-- Lua 5.3+ has 64-bit integers; 5.1 and LuaJIT have doubles only, where the
-- decoder keeps integers beyond 2^53 as digit strings. Byte escapes below are
-- decimal because Lua 5.1 has no \x.
local HAS_INTEGERS = math.type ~= nil

-- An exact integer as this Lua represents it: a Lua integer on 5.3+, an
-- integral double on 5.1/LuaJIT.
local function assert_integer(expected, v)
  if HAS_INTEGERS then
    assert.equal("integer", math.type(v))
  else
    assert.equal("number", type(v))
    assert.equal(math.floor(v), v)
  end
  assert.equal(expected, v)
end

describe("json decode: integers", function()
  it("keeps the int64 maximum exact", function()
    local v = decode("9223372036854775807")
    if HAS_INTEGERS then
      assert_integer(math.maxinteger, v)
    else
      assert.equal("9223372036854775807", v)
    end
  end)

  it("keeps the int64 minimum exact", function()
    local v = decode("-9223372036854775808")
    if HAS_INTEGERS then
      assert_integer(math.mininteger, v)
    else
      assert.equal("-9223372036854775808", v)
    end
  end)

  it("keeps numbers up to 2^53, and beyond it digits where Lua has no integers", function()
    assert_integer(9007199254740992, decode("9007199254740992"))
    assert_integer(-9007199254740992, decode("-9007199254740992"))
    assert_integer(9007199254740991, decode("9007199254740991"))
    if HAS_INTEGERS then
      assert_integer(9007199254740993, decode("9007199254740993"))
      assert_integer(-9007199254740993, decode("-9007199254740993"))
      assert_integer(9999999999999999, decode("9999999999999999"))
      assert_integer(1234567890123456789, decode("1234567890123456789"))
    else
      -- as a double 2^53 + 1 would silently become 2^53
      assert.equal("9007199254740993", decode("9007199254740993"))
      assert.equal("-9007199254740993", decode("-9007199254740993"))
      assert.equal("9999999999999999", decode("9999999999999999"))
      assert.equal("1234567890123456789", decode("1234567890123456789"))
    end
  end)

  it("returns max+1 and min-1 as strings with their exact digits", function()
    assert.equal("9223372036854775808", decode("9223372036854775808"))
    assert.equal("-9223372036854775809", decode("-9223372036854775809"))
    assert.same({ "18446744073709551615", "18446744073709551616" },
                { decode("18446744073709551615"), decode("18446744073709551616") })
  end)

  it("returns 20-digit and longer integers as strings", function()
    assert.equal("12345678901234567890", decode("12345678901234567890"))
    assert.equal("99999999999999999999", decode("99999999999999999999"))
    local long = "-" .. string.rep("7", 60)
    assert.equal(long, decode(long))
    local arr = decode("[10000000000000000000, -10000000000000000000]")
    assert.same({ "10000000000000000000", "-10000000000000000000" }, { arr[1], arr[2] })
  end)

  it("keeps 19-digit values just below the limit as integers", function()
    local v = decode("9223372036854775806")
    if HAS_INTEGERS then
      assert_integer(math.maxinteger - 1, v)
      assert_integer(math.mininteger + 1, decode("-9223372036854775807"))
    else
      assert.equal("9223372036854775806", v)
      assert.equal("-9223372036854775807", decode("-9223372036854775807"))
    end
  end)

  it("decodes a QIWI person id as an integer next to an oversized id", function()
    local v = decode('{"personId":79111234567,"big":12345678901234567890}')
    assert_integer(79111234567, v.personId)
    assert.equal("12345678901234567890", v.big)
  end)

  it("makes 0 and -0 the integer zero", function()
    assert_integer(0, decode("0"))
    local z = decode("-0")
    assert_integer(0, z)
    -- not the float -0.0, whose reciprocal is -inf
    assert.equal(math.huge, 1 / z)
  end)
end)

describe("json decode: floats", function()
  it("reads fractions and exponents as floats", function()
    local v = decode("[8.74, 1e3, 1E-7, 2.5e+2, -3.25, 0.5, 1E2]")
    assert.equal(8.74, v[1])
    if HAS_INTEGERS then assert.equal("float", math.type(v[2])) end
    assert.equal(1000.0, v[2])
    assert.equal(1e-7, v[3])
    assert.equal(250.0, v[4])
    assert.equal(-3.25, v[5])
    assert.equal(0.5, v[6])
    if HAS_INTEGERS then assert.equal("float", math.type(v[7])) end
    assert.equal(100.0, v[7])
  end)

  it("keeps the sign of -0.0", function()
    local v = decode("-0.0")
    if HAS_INTEGERS then assert.equal("float", math.type(v)) end
    assert.equal(-math.huge, 1 / v)
  end)

  it("converts long number texts exactly like tonumber", function()
    local text = "0." .. string.rep("0", 100) .. "1234567890123456789"
    assert.equal(tonumber(text), decode(text))
    local big = "1" .. string.rep("0", 200) .. ".5"
    assert.equal(tonumber(big), decode(big))
  end)

  it("rejects floats that overflow to infinity and flushes underflow to zero", function()
    rejects("1e400", "number out of range at byte 1")
    rejects("[1, -1e999]", "number out of range at byte 5")
    assert.equal(0.0, decode("1e-400"))
    assert.equal(5e-324, decode("4.9406564584124654e-324"))
  end)
end)

describe("json decode: number grammar", function()
  it("rejects leading zeros at the offending digit", function()
    rejects("01", "invalid number at byte 2")
    rejects("-01", "invalid number at byte 3")
    rejects("[00]", "invalid number at byte 3")
    rejects("0.1e01x", "trailing garbage at byte 7")
  end)

  it("rejects signs, dots and exponents that JSON does not allow", function()
    rejects("+1", "unexpected character '+' at byte 1")
    rejects(".5", "unexpected character '.' at byte 1")
    rejects("1.", "invalid number at byte 3")
    rejects("1.e5", "invalid number at byte 3")
    rejects("1e", "invalid number at byte 3")
    rejects("1e+", "invalid number at byte 4")
    rejects("-", "invalid number at byte 2")
    rejects("- 1", "invalid number at byte 2")
    rejects("[1,2.]", "invalid number at byte 6")
  end)

  it("rejects NaN, Infinity and hex", function()
    rejects("NaN", "unexpected character 'N' at byte 1")
    rejects("Infinity", "unexpected character 'I' at byte 1")
    rejects("-Infinity", "invalid number at byte 2")
    rejects("0x10", "trailing garbage at byte 2")
  end)
end)

describe("json decode: literals", function()
  it("maps true, false and null", function()
    local v = decode("[true,false,null]")
    assert.is_true(v[1])
    assert.is_false(v[2])
    assert.equal(null, v[3])
    assert.equal(null, decode("null"))
  end)

  it("rejects misspelt and truncated literals where they go wrong", function()
    rejects("tru", "unexpected end of input at byte 4")
    rejects("nulL", "unexpected character 'L' at byte 4")
    rejects("True", "unexpected character 'T' at byte 1")
    rejects("[falsey]", "unexpected character 'y' at byte 7")
    rejects("truex", "trailing garbage at byte 5")
  end)
end)

describe("json decode: strings", function()
  it("understands every escape", function()
    assert.equal('"\\/\b\f\n\r\t', decode([["\"\\\/\b\f\n\r\t"]]))
    assert.equal("a\"b", decode([["a\"b"]]))
  end)

  it("decodes \\u escapes to UTF-8, including \\u0000", function()
    assert.equal("\0", decode([["\u0000"]]))
    assert.equal("A\195\169\226\130\172\239\191\191", decode([["\u0041\u00e9\u20AC\uffff"]]))
    assert.equal("x\0y", decode([["x\u0000y"]]))
  end)

  it("combines surrogate pairs into one code point", function()
    assert.equal("\240\159\152\128", decode([["\ud83d\ude00"]]))
    assert.equal("\240\159\152\128", decode([["\uD83D\uDE00"]]))
    assert.equal("\240\144\128\128|\244\143\191\191", decode([["\ud800\udc00|\udbff\udfff"]]))
  end)

  it("rejects lone and mismatched surrogates", function()
    rejects([["\ud83d"]], "lone surrogate at byte 2")
    rejects([["\ude00"]], "lone surrogate at byte 2")
    rejects([["ab\ud83dx"]], "lone surrogate at byte 4")
    rejects([["\ud83d\u0041"]], "lone surrogate at byte 2")
    rejects([["\ud83d\ud83d"]], "lone surrogate at byte 2")
    rejects([["\ud83d\n"]], "lone surrogate at byte 2")
    rejects([["\ud83d\uzzzz"]], "invalid \\u escape at byte 8")
  end)

  it("rejects bad escapes at the backslash", function()
    rejects([["ab\x"]], "invalid escape at byte 4")
    rejects([["\'"]], "invalid escape at byte 2")
    rejects([["\u12G4"]], "invalid \\u escape at byte 2")
    rejects([["\u12"]], "invalid \\u escape at byte 2")
    rejects('"\\u12', "invalid \\u escape at byte 2")
  end)

  it("rejects raw control characters but allows DEL", function()
    rejects('"a\tb"', "control character in string at byte 3")
    rejects('"a\nb"', "control character in string at byte 3")
    rejects('"\0"', "control character in string at byte 2")
    rejects('"\\n\31"', "control character in string at byte 4")
    assert.equal("a\127b", decode('"a\127b"'))
  end)

  it("passes valid UTF-8 through untouched", function()
    local s = "Успешно · 日本 · \240\159\152\128 · \244\143\191\191 · \239\191\191"
    assert.equal(s, decode('"' .. s .. '"'))
    assert.equal(s .. "\n", decode('"' .. s .. '\\n"'))
  end)

  local bad_utf8 = {
    { "lone continuation byte", "\128" },
    { "overlong 2-byte", "\192\175" },
    { "overlong 2-byte C1", "\193\191" },
    { "overlong 3-byte", "\224\128\175" },
    { "overlong 4-byte", "\240\128\128\175" },
    { "UTF-16 surrogate in UTF-8", "\237\160\128" },
    { "code point above U+10FFFF", "\244\144\128\128" },
    { "F5 lead byte", "\245\128\128\128" },
    { "FF byte", "\255" },
    { "truncated 2-byte", "\195" },
    { "truncated 3-byte", "\226\130" },
    { "truncated 4-byte", "\240\159\152" },
    { "missing continuation", "\195\065" },
  }
  for _, case in ipairs(bad_utf8) do
    it("rejects invalid UTF-8: " .. case[1], function()
      rejects('"abcd' .. case[2] .. 'x"', "invalid UTF-8 at byte 6")
      rejects('{"k":"\\n' .. case[2] .. '"}', "invalid UTF-8 at byte 9")
      rejects('{"a\195\169' .. case[2] .. '":1}', "invalid UTF-8 at byte 6")
    end)
  end

  it("reports unterminated strings at their opening quote", function()
    rejects('"abc', "unterminated string at byte 1")
    rejects('["a", "bc', "unterminated string at byte 7")
    rejects('{"ab', "unterminated string at byte 2")
    rejects('"abc\\', "unterminated string at byte 1")
    rejects('"ab\\n', "unterminated string at byte 1")
  end)

  it("handles long strings on both the plain and the escaped path", function()
    local plain = string.rep("abcdefgh\208\150", 5000)
    assert.equal(plain, decode('"' .. plain .. '"'))
    local escaped = string.rep('x\\"y\\u00e9', 5000)
    assert.equal(string.rep('x"y\195\169', 5000), decode('"' .. escaped .. '"'))
  end)

  it("reports errors deep inside long escaped strings at the right byte", function()
    local long = string.rep("\\n", 1000)
    rejects('["' .. long .. '\\x"]', "invalid escape at byte 2003")
    rejects('["' .. long .. '\255"]', "invalid UTF-8 at byte 2003")
    rejects('["' .. long .. '\001"]', "control character in string at byte 2003")
    rejects('["' .. long, "unterminated string at byte 2")
    rejects('["' .. long .. "\\", "unterminated string at byte 2")
    assert.equal(string.rep("\n", 1000) .. "\226\130\172", decode('"' .. long .. '\\u20ac"'))
  end)
end)

describe("json decode: structure", function()
  it("marks arrays, empty ones included, with the array metatable", function()
    local v = decode('{"a":[],"b":[1,[2]],"c":{}}')
    assert.is_nil(getmetatable(v))
    assert.is_true(is_array(v.a))
    assert.is_nil(next(v.a))
    assert.is_true(is_array(v.b))
    assert.is_true(is_array(v.b[2]))
    assert.is_nil(getmetatable(v.c))
    assert.is_nil(next(v.c))
  end)

  it("keeps array order and nulls in place", function()
    local v = decode('[1, null, "x", null]')
    assert.equal(4, #v)
    assert.same({ 1, null, "x", null }, { v[1], v[2], v[3], v[4] })
  end)

  it("lets the last duplicate key win", function()
    local v = decode('{"a":1,"b":2,"a":3}')
    assert.equal(3, v.a)
    assert.equal(2, v.b)
  end)

  it("accepts only space, tab, CR and LF as whitespace", function()
    assert.same({ a = 1 }, decode(' \t\r\n{ "a" :\n\t1 } \r\n'))
    rejects("\f1", "unexpected character 0x0C at byte 1")
    rejects("[1,\v2]", "unexpected character 0x0B at byte 4")
    rejects("\194\1601", "unexpected character 0xC2 at byte 1")
  end)

  it("rejects trailing commas at the closing bracket", function()
    rejects("[1,2,]", "unexpected character ']' at byte 6")
    rejects('{"a":1,}', "unexpected character '}' at byte 8")
    rejects("[,]", "unexpected character ',' at byte 2")
  end)

  it("rejects single quotes, bare keys and non-string keys", function()
    rejects("{'a':1}", "unexpected character ''' at byte 2")
    rejects("['a']", "unexpected character ''' at byte 2")
    rejects("{a:1}", "unexpected character 'a' at byte 2")
    rejects("{1:2}", "unexpected character '1' at byte 2")
  end)

  it("rejects missing colons, commas and brackets", function()
    rejects('{"a" 1}', "unexpected character '1' at byte 6")
    rejects("[1 2]", "unexpected character '2' at byte 4")
    rejects('{"a":1 "b":2}', "unexpected character '\"' at byte 8")
    rejects("[1,2", "unexpected end of input at byte 5")
    rejects('{"a":', "unexpected end of input at byte 6")
    rejects("[1}", "unexpected character '}' at byte 3")
    rejects('{"a":1]', "unexpected character ']' at byte 7")
  end)

  it("rejects trailing garbage after the value", function()
    rejects("[] []", "trailing garbage at byte 4")
    rejects("{}x", "trailing garbage at byte 3")
    rejects("1\0", "trailing garbage at byte 2")
    rejects('"a""b"', "trailing garbage at byte 4")
  end)

  it("rejects empty and blank input", function()
    rejects("", "unexpected end of input at byte 1")
    rejects(" \n\t ", "unexpected end of input at byte 5")
  end)

  it("accepts scalars at the top level", function()
    assert.equal("x", decode('"x"'))
    assert.equal(42, decode(" 42 "))
    assert.is_false(decode("false"))
  end)

  it("returns exactly nil and a message on failure", function()
    assert.equal(2, select("#", decode("[")))
    assert.equal(1, select("#", decode("[]")))
  end)

  it("raises on a non-string argument like any Lua function", function()
    assert.has_error(function() decode({}) end)
    assert.has_error(function() decode() end)
  end)
end)

describe("json decode: depth", function()
  it("accepts 512 nested arrays and refuses the 513th at its bracket", function()
    local ok = string.rep("[", 512) .. string.rep("]", 512)
    local v = decode(ok)
    for _ = 1, 511 do v = v[1] end
    assert.is_true(is_array(v))
    assert.is_nil(next(v))
    rejects(string.rep("[", 513) .. string.rep("]", 513), "nesting too deep at byte 513")
  end)

  it("counts objects and arrays alike", function()
    local open = string.rep('{"a":[', 256)
    local close = string.rep("]}", 256)
    assert.is_table(decode(open .. close))
    rejects(open .. "{}" .. close, "nesting too deep at byte " .. (#open + 1))
  end)

  it("survives 100000 levels without crashing", function()
    rejects(string.rep("[", 100000), "nesting too deep at byte 513")
    rejects(string.rep('{"k":', 100000), "nesting too deep at byte " .. (512 * 5 + 1))
    -- the decoder is still usable afterwards
    assert.equal(1, decode("[1]")[1])
  end)
end)

describe("json encode: scalars", function()
  it("writes nil and the null sentinels as null", function()
    assert.equal("null", encode(nil))
    assert.equal("null", encode(null))
    assert.equal("[1,null,2]", encode(setmetatable({ 1, null, 2 }, array_mt)))
    local ok, cjson = pcall(require, "cjson")
    if ok then assert.equal("null", encode(cjson.null)) end  -- a NULL light userdata
  end)

  it("writes booleans and integers exactly", function()
    assert.equal("[true,false]", encode({ true, false }))
    if HAS_INTEGERS then
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
    end
    -- the largest magnitude up to which a double holds every integer
    assert.equal("9007199254740992", encode(9007199254740992))
    assert.equal("-9007199254740992", encode(-9007199254740992))
    assert.equal("79111234567", encode(79111234567))
    assert.equal("0", encode(0))
  end)

  -- On 5.3+ an integral float keeps a ".0" so that it decodes back as a float;
  -- 5.1/LuaJIT have one number type and write plain digits.
  local function F(digits) return math.type and digits .. ".0" or digits end

  it("writes floats in the shortest form that reads back the same", function()
    local cases = {
      { 8.74, "8.74" }, { 0.1, "0.1" }, { 0.1 + 0.2, "0.30000000000000004" }, { 100.0, F("100") },
      { -2.5, "-2.5" }, { 1e15, F("1000000000000000") }, { 1e-5, "0.00001" }, { 1.5e-7, "1.5e-7" },
      { 1e300, "1e+300" }, { 123456789012345.6, "123456789012345.6" }, { 2.0 ^ 60, "1.152921504606847e+18" },
      { 2.0 ^ 53, F("9007199254740992") }, { 2.0 ^ 54, "1.8014398509481984e+16" },
      { -0.0, F("-0") }, { 1 / 3, "0.3333333333333333" },
      -- 17 printed digits end in 5: only the exact value tells which 16-digit neighbour reads back
      { 6.4712028678570195e-75, "6.471202867857019e-75" }, { -4575800.5213523135, "-4575800.521352313" },
    }
    for _, case in ipairs(cases) do assert.equal(case[2], encode(case[1])) end
  end)

  it("never uses an exponent for magnitudes in [1e-5, 1e15)", function()
    local values = { 1e-5, 1.5e-5, 9.99e-5, 0.000123, 1e14, 999999999999999.9, 123456.789, 5e14 + 0.5 }
    for _, v in ipairs(values) do
      local s = encode(v)
      assert.is_nil(s:find("[eE]"), s)
      assert.equal(v, tonumber(s))
      s = encode(-v)
      assert.is_nil(s:find("[eE]"), s)
    end
  end)

  -- Lua 5.4 draws any 64-bit pattern and compares the bytes; elsewhere
  -- (math.random cannot span 64 bits, no string.pack on 5.1/LuaJIT) a double is
  -- built from a random sign, exponent and 52-bit mantissa, which reaches
  -- every finite double too, and compared with ==, which for nonzero finite
  -- doubles is bitwise equality.
  local full_random = _VERSION == "Lua 5.4" and string.pack ~= nil

  local function random_double()
    if full_random then
      return string.unpack("<d", string.pack("<i8", math.random(math.mininteger, math.maxinteger)))
    end
    local mantissa = math.random(0, 2 ^ 26 - 1) * 2 ^ 26 + math.random(0, 2 ^ 26 - 1)
    local e = math.random(-1023, 1023)
    local v
    if e == -1023 then
      v = mantissa * 2 ^ -1074 -- subnormal
    else
      v = (1 + mantissa * 2 ^ -52) * 2 ^ e
    end
    if math.random(0, 1) == 1 then v = -v end
    return v
  end

  it("round-trips arbitrary doubles bit for bit", function()
    math.randomseed(20240601)
    for _ = 1, 2000 do
      local v = random_double()
      if v == v and v ~= math.huge and v ~= -math.huge then
        local s = assert(encode(v))
        if full_random then
          assert.equal(string.pack("<d", v), string.pack("<d", tonumber(s) + 0.0), s)
        else
          assert.is_true(v == tonumber(s) and (v ~= 0 or 1 / v == 1 / tonumber(s)), s)
        end
        assert.equal(v, decode(s))
      end
    end
  end)

  it("refuses NaN and infinities", function()
    encode_fails(0 / 0, "cannot encode NaN")
    encode_fails(math.huge, "cannot encode infinity")
    encode_fails({ x = -math.huge }, "cannot encode infinity")
  end)

  it("escapes quotes, backslashes and control characters", function()
    assert.equal([["a\"b\\c/"]], encode('a"b\\c/'))
    assert.equal([["\b\f\n\r\t"]], encode("\b\f\n\r\t"))
    assert.equal([["\u0000\u0001\u001f\u000b"]], encode("\0\1\31\11"))
    assert.equal('"\127"', encode("\127"))
  end)

  it("escapes every control character in a way that decodes back", function()
    for c = 0, 31 do
      local s = "<" .. string.char(c) .. ">"
      local out = encode(s)
      assert.is_nil(out:find("[%z\1-\31]"))
      assert.equal(s, decode(out))
    end
  end)

  it("passes valid UTF-8 through raw", function()
    assert.equal('"Успешно \240\159\152\128"', encode("Успешно \240\159\152\128"))
  end)

  it("refuses invalid UTF-8 in values and keys", function()
    encode_fails("abc\255", "invalid UTF-8 in string")
    encode_fails("\237\160\128", "invalid UTF-8 in string")
    encode_fails("\195", "invalid UTF-8 in string")
    encode_fails({ ["k\192\175"] = 1 }, "invalid UTF-8 in table key")
  end)

  it("refuses functions, userdata and threads, naming the type", function()
    encode_fails(print, "cannot encode function")
    encode_fails({ f = print }, "cannot encode function")
    encode_fails(io.stdout, "cannot encode userdata")
    -- of a Lua function: 5.1 makes no coroutine of a C function
    encode_fails(coroutine.create(function() end), "cannot encode thread")
  end)
end)

describe("json encode: tables", function()
  it("writes an empty plain table as {} and an empty array as []", function()
    assert.equal("{}", encode({}))
    assert.equal("[]", encode(setmetatable({}, array_mt)))
    local s = encode({ a = setmetatable({}, array_mt), b = {} })
    assert.is_true(s == '{"a":[],"b":{}}' or s == '{"b":{},"a":[]}', s)
  end)

  it("writes a sequence 1..n as an array", function()
    assert.equal('[1,"two",[3],{"four":4}]', encode({ 1, "two", { 3 }, { four = 4 } }))
  end)

  it("writes holes of an array-metatable table as null", function()
    local t = setmetatable({}, array_mt)
    t[1], t[2], t[3] = "a", null, "c"
    assert.equal('["a",null,"c"]', encode(t))
  end)

  it("refuses mixed, sparse and numeric keys", function()
    encode_fails({ 1, 2, x = 3 }, "table key must be a string")
    encode_fails({ [1] = 1, [3] = 3 }, "table key must be a string")
    encode_fails({ 1, nil, 3 }, "table key must be a string")
    encode_fails({ [2] = "x" }, "table key must be a string")
    encode_fails({ [1.5] = "x" }, "table key must be a string")
    encode_fails({ [true] = "x" }, "table key must be a string")
  end)

  it("writes objects whose keys all come back", function()
    local t = { txnId = 1, status = "SUCCESS", ["with \"quote\""] = true, ["1"] = "string key" }
    local s = encode(t)
    assert.equal("{", s:sub(1, 1))
    assert.same(t, decode(s))
  end)

  it("detects cycles", function()
    local t = {}
    t.self = t
    encode_fails(t, "cycle detected")
    local a = setmetatable({}, array_mt)
    a[1] = { inner = a }
    encode_fails(a, "cycle detected")
  end)

  it("accepts 512 nested tables and refuses 513", function()
    local t = {}
    for _ = 2, 512 do t = { t } end
    assert.equal(string.rep("[", 511) .. "{}" .. string.rep("]", 511), encode(t))
    encode_fails({ t }, "nesting too deep")
  end)

  it("does not mistake a shared (non-cyclic) table for a cycle", function()
    local shared = { 1, 2 }
    assert.equal('[[1,2],[1,2]]', encode({ shared, shared }))
  end)
end)

describe("json round trips", function()
  it("keeps [] and {} apart", function()
    assert.equal("[]", encode(decode("[]")))
    assert.equal("{}", encode(decode("{}")))
    assert.equal('[[],{},[[]]]', encode(decode(" [ [ ] , { } , [ [ ] ] ] ")))
  end)

  it("keeps null", function()
    assert.equal("null", encode(decode("null")))
    assert.equal('[null,{"a":null}]', encode(decode('[null,{"a":null}]')))
  end)

  it("keeps strings with escapes and unicode", function()
    local s = '"q\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u0000\\u001f\\u00e9\\ud83d\\ude00"'
    local once = decode(s)
    assert.equal(once, decode(encode(once)))
    assert.equal('"q\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u001f\195\169\240\159\152\128"', encode(once))
  end)

  it("keeps a realistic QIWI history page", function()
    local page = [[
{"data":[
 {"txnId":19270434513,"personId":79111234567,"date":"2023-11-02T15:24:10+03:00","errorCode":0,"error":null,
  "status":"SUCCESS","type":"OUT","statusText":"Успешно","trmTxnId":"403254367125","account":"+79161234567",
  "sum":{"amount":70.5,"currency":643},"commission":{"amount":0,"currency":643},"total":{"amount":70.5,"currency":643},
  "provider":{"id":99,"shortName":"QIWI Кошелек","longName":"QIWI \"Кошелек\"","logoUrl":"https:\/\/static.qiwi.com\/x.png",
   "description":null,"keys":"перевод\tкошелек","siteUrl":null,"extras":[]},
  "source":{"id":7,"shortName":"QW RUB","extras":[{"key":"k","value":"v"}]},
  "comment":"обед 🍔","currencyRate":1,"paymentExtras":[],"features":{"chequeReady":true,"bankDocumentReady":false,
  "regularPaymentEnabled":true,"bankDocumentAvailable":false,"repeatPaymentEnabled":true,"favoritePaymentEnabled":true,
  "chatAvailable":false,"greetingCardAttached":false},"serviceExtras":{},
  "view":{"title":"QIWI Кошелек","account":"+7916***4567"}},
 {"txnId":12345678901234567890,"personId":79111234567,"date":"2023-11-01T09:00:00+03:00","errorCode":5,
  "error":"Ошибка","status":"ERROR","type":"IN","statusText":"Ошибка","trmTxnId":null,"account":"4256********1231",
  "sum":{"amount":1.0E3,"currency":643},"commission":{"amount":12.34,"currency":643},"total":{"amount":1012.34,"currency":643},
  "provider":{"id":1963,"shortName":"Visa","longName":null,"logoUrl":null,"description":null,"keys":"","siteUrl":null,
   "extras":[]},"comment":null,"currencyRate":0.0125,"paymentExtras":[],"features":{}}
],
"nextTxnId":19270434000,"nextTxnDate":"2023-10-31T23:59:59+03:00"}]]
    local once = assert(decode(page))
    local text = assert(encode(once))
    local twice = assert(decode(text))
    assert.same(once, twice)
    -- key order follows lua_next and may differ; the content may not
    assert.same(twice, decode(encode(twice)))
    assert_integer(19270434513, twice.data[1].txnId)
    assert.equal("12345678901234567890", twice.data[2].txnId)
    assert.equal(70.5, twice.data[1].sum.amount)
    assert.equal(1000.0, twice.data[2].sum.amount)
    assert.equal(null, twice.data[1].error)
    assert.equal("обед 🍔", twice.data[1].comment)
    assert.equal("https://static.qiwi.com/x.png", twice.data[1].provider.logoUrl)
    assert.is_true(is_array(twice.data[1].provider.extras))
    assert.equal(2, #twice.data)
    assert.truthy(text:find('"paymentExtras":[]', 1, true))
    assert.truthy(text:find('"serviceExtras":{}', 1, true))
  end)

  it("writes encoder output that large inputs survive", function()
    local t = setmetatable({}, array_mt)
    for i = 1, 20000 do
      t[i] = { id = i * 1000003, name = "item " .. i .. " \"q\" \208\150", price = i / 8, flags = { i % 2 == 0, null } }
    end
    local s = assert(encode(t))
    assert.is_true(#s > 1024 * 1024)
    assert.same(decode(s), decode(encode(decode(s))))
    local back = decode(s)
    assert.equal(20000, #back)
    assert.equal(20000 * 1000003, back[20000].id)
    assert.equal(2500.0, back[20000].price)
  end)
end)
