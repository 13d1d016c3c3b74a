/* libFuzzer target: the JSON decoder, then the encoder on what it built.
 * Oracle: no crash, no sanitizer report, and decode(encode(decode(x)))
 * succeeds whenever decode(x) did. */
#include <stdint.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_qiwi_core(lua_State *L);

static lua_State *state(void) {
  static lua_State *L = NULL;  /* one state for the whole run: fuzz harness only */
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "qiwi.core", luaopen_qiwi_core, 0);
    lua_setglobal(L, "core");
  }
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state();
  int top = lua_gettop(L);
  lua_getglobal(L, "core");
  lua_getfield(L, -1, "json_decode");
  lua_pushlstring(L, (const char *)data, size);
  lua_call(L, 1, 2);
  if (!lua_isnil(L, -2) || lua_isnil(L, -1)) {
    /* decoded (a nil first result with no message cannot happen) */
    if (lua_isnil(L, -2)) abort();
    lua_pop(L, 1);
    lua_getfield(L, -2, "json_encode");
    lua_insert(L, -2);
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2)) abort();           /* whatever decodes must encode */
    lua_pop(L, 1);
    lua_getfield(L, -2, "json_decode");
    lua_insert(L, -2);
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2)) abort();           /* and decode again */
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
