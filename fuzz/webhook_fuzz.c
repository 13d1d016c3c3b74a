/* libFuzzer target: qiwi.webhook.verify on arbitrary bodies.
 *
 * Input: one byte choosing the key, then the body. Every "@@@@" in the body
 * is replaced by the HMAC that verify itself would expect, so the fuzzer
 * reaches the accepting path without forging signatures: run once with a
 * dummy to learn the text verify signs (core.hmac_sha256_hex is wrapped to
 * record it), then again with its MAC in place.
 *
 * Oracles, beyond "no crash, no sanitizer report, no Lua error escapes":
 *  - a refusal is nil plus a qiwi.error with a one-line message and code
 *    "format" or "signature";
 *  - a body whose hash is the MAC of the signed text is accepted, and one
 *    whose hash is not is refused;
 *  - an accepted notification says what was signed: each signed field of the
 *    returned table (strings and numbers) equals its part of the signed text.
 *    A body whose raw text and decoded value disagree (escaped or repeated
 *    keys) must not pass with another payment than the one signed;
 *  - and what verify guarantees: signFields is the documented list, and the
 *    signed text is exactly five '|'-separated parts, one per field, of the
 *    docs' types (numbers sum.currency and sum.amount; strings type,
 *    account, txnId), so no part can have moved into another field.
 *
 * The verifier is Lua, invisible to libFuzzer's C coverage, so a line hook
 * feeds Lua line pairs into libFuzzer's extra counters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_qiwi_core(lua_State *L);

#define LUA_COUNTERS 8192
__attribute__((section("__libfuzzer_extra_counters")))
static uint8_t lua_counters[LUA_COUNTERS];

static uintptr_t prev_line;

static void line_hook(lua_State *L, lua_Debug *ar) {
  uintptr_t here;
  if (!lua_getinfo(L, "S", ar)) return;
  here = ((uintptr_t)ar->source * 31u) ^ ((uintptr_t)ar->currentline * 2654435761u);
  lua_counters[(here ^ (prev_line >> 1)) % LUA_COUNTERS]++;
  prev_line = here;
}

static const char *HARNESS =
  "local core = require 'qiwi.core'\n"
  "local verify = require('qiwi.webhook').verify\n"
  "local qerror = require 'qiwi.error'\n"
  "local real_hmac = core.hmac_sha256_hex\n"
  "local signed\n"
  "core.hmac_sha256_hex = function(key, text) signed = text return real_hmac(key, text) end\n"
  "local DUMMY = string.rep('0', 64)\n"
  "local function check_refusal(err)\n"
  "  assert(qerror.is(err), 'a refusal without a qiwi.error')\n"
  "  assert(err.code == 'format' or err.code == 'signature', 'refusal code ' .. tostring(err.code))\n"
  "  assert(not tostring(err):find('[\\r\\n]'), 'a refusal message of several lines')\n"
  "end\n"
  "local function walk(t, dotted)\n"
  "  for part in dotted:gmatch('[^%.]+') do\n"
  "    if type(t) ~= 'table' then return nil end\n"
  "    t = t[part]\n"
  "  end\n"
  "  return t\n"
  "end\n"
  /* Each signed field's decoded value against the signed text, in order:
   * a string must appear verbatim, a number as JSON text decoding to it.
   * A signed field must be there; fields of other types are not compared
   * (their raw text is JSON). */
  "local function says_what_was_signed(note, text)\n"
  "  local pos = 1\n"
  "  local names = {}\n"
  "  for name in note.payment.signFields:gmatch('[^,]+') do names[#names + 1] = name:match('^%s*(.-)%s*$') end\n"
  "  for i, name in ipairs(names) do\n"
  "    local v = walk(note.payment, name)\n"
  "    local last = i == #names\n"
  "    if type(v) == 'string' then\n"
  "      assert(text:sub(pos, pos + #v - 1) == v, 'signed text differs from field ' .. name)\n"
  "      pos = pos + #v\n"
  "    elseif type(v) == 'number' then\n"
  "      local stop = text:find('|', pos, true) or #text + 1\n"
  "      local n = core.json_decode(text:sub(pos, stop - 1))\n"
  "      assert(n == v, 'signed number differs from field ' .. name)\n"
  "      pos = stop\n"
  "    elseif v == nil then\n"
  "      error('a signed field is absent from the notification: ' .. name)\n"
  "    else\n"
  "      return\n"
  "    end\n"
  "    if last then assert(pos == #text + 1, 'signed text longer than the fields')\n"
  "    else assert(text:sub(pos, pos) == '|', 'signed parts misaligned at ' .. name); pos = pos + 1 end\n"
  "  end\n"
  "end\n"
  "local FIVE = { 'sum.currency', 'sum.amount', 'type', 'account', 'txnId' }\n"
  "local function guarantees(note, text)\n"
  "  local names = {}\n"
  "  for name in (note.payment.signFields .. ','):gmatch('([^,]*),') do names[#names + 1] = name:match('^%s*(.-)%s*$') end\n"
  "  assert(#names == 5, 'accepted a signFields of ' .. #names .. ' names')\n"
  "  local parts = {}\n"
  "  for part in (text .. '|'):gmatch('([^|]*)|') do parts[#parts + 1] = part end\n"
  "  assert(#parts == 5, 'accepted a signed text of ' .. #parts .. ' parts')\n"
  "  for i, name in ipairs(FIVE) do\n"
  "    assert(names[i] == name, 'accepted ' .. names[i] .. ' in place of ' .. name)\n"
  "    local v = walk(note.payment, name)\n"
  "    if i <= 2 then\n"
  "      assert(type(v) == 'number' and core.json_decode(parts[i]) == v, 'signed part differs from ' .. name)\n"
  "    else\n"
  "      assert(type(v) == 'string' and parts[i] == v, 'signed part differs from ' .. name)\n"
  "    end\n"
  "  end\n"
  "end\n"
  "return function(body, key)\n"
  "  signed = nil\n"
  "  local first = body:gsub('@@@@', DUMMY)\n"
  "  local note, err = verify(first, key)\n"
  "  if note == nil then check_refusal(err) end\n"
  "  local text = signed\n"
  "  if text == nil then return end\n"
  "  local kbytes = core.base64_decode(key)\n"
  "  local mac = real_hmac(kbytes, text)\n"
  "  local second = body:gsub('@@@@', mac)\n"
  "  signed = nil\n"
  "  note, err = verify(second, key)\n"
  "  if signed ~= text then return end\n"
  "  local view = core.json_decode(second)\n"
  "  local hash = type(view) == 'table' and view.hash\n"
  "  local should = type(hash) == 'string' and hash:lower() == mac\n"
  "  if not should then\n"
  "    assert(note == nil, 'accepted a body whose hash is not the MAC of what was signed')\n"
  "    check_refusal(err)\n"
  "    return\n"
  "  end\n"
  "  assert(note ~= nil, 'refused a correctly signed body: ' .. tostring(err))\n"
  "  says_what_was_signed(note, text)\n"
  "  guarantees(note, text)\n"
  "end\n";

static const char *keys[] = {
  "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=", "OikS4/CcIbSf+yYGnLbnOige8RGoYmGxs/LNMwkJy7Q=",
  "not base64!", "",
};

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "qiwi.core", luaopen_qiwi_core, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, "package.path = (os.getenv('QIWI_LUA_DIR') or 'lua') .. '/?.lua;' .. package.path") != 0 ||
      luaL_loadstring(L, HARNESS) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    fprintf(stderr, "webhook_fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setglobal(L, "check");
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  prev_line = 0;
  lua_settop(L, 0);
  lua_getglobal(L, "check");
  lua_pushlstring(L, (const char *)data + 1, size - 1);
  lua_pushstring(L, keys[data[0] % 4]);
  if (lua_pcall(L, 2, 0, 0) != 0) {
    fprintf(stderr, "webhook_fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  return 0;
}
