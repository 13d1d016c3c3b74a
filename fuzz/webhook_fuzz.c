/* libFuzzer target: qiwi.webhook.verify on arbitrary bodies. The first byte
 * picks a key so both the verification and the refusal paths are reached.
 * Oracle: no Lua error escapes verify (it must return a value or nil, err),
 * no crash, no sanitizer report. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_qiwi_core(lua_State *L);

static const char *keys[] = {
  "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=", "OikS4/CcIbSf+yYGnLbnOige8RGoYmGxs/LNMwkJy7Q=",
  "not base64!", "",
};

static lua_State *state(void) {
  static lua_State *L = NULL;  /* one state for the whole run: fuzz harness only */
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "qiwi.core", luaopen_qiwi_core, 0);
    lua_pop(L, 1);
    if (luaL_dostring(L, "package.path = (os.getenv('QIWI_LUA_DIR') or 'lua') .. '/?.lua;' .. package.path\n"
                         "verify = require('qiwi.webhook').verify") != 0) {
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
      abort();
    }
  }
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state();
  if (size == 0) return 0;
  lua_getglobal(L, "verify");
  lua_pushlstring(L, (const char *)data + 1, size - 1);
  lua_pushstring(L, keys[data[0] % 4]);
  if (lua_pcall(L, 2, 2, 0) != 0) {
    fprintf(stderr, "verify raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (lua_isnil(L, -2) && lua_isnil(L, -1)) abort();  /* failure without a reason */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
