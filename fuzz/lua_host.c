/* A minimal `lua script [args]` for `make sanitize`, linked with the
 * ASan+UBSan runtime. Preloading the runtime into the stock interpreter would
 * preload it into every process the specs start too (nginx, curl, openssl),
 * whose own leaks would then fail the run; here the runtime lives in this
 * executable only. Lua itself is the distribution's shared library: only the
 * core is instrumented, but every allocation goes through ASan's malloc, and
 * LeakSanitizer checks the whole process at exit (busted closes the state).
 *
 * Like lua.c: arg[-1] is this program, arg[0] the script, arg[1..] its
 * arguments, also passed as the chunk's varargs. */
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s script [args]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 1;
  luaL_openlibs(L);
  lua_createtable(L, argc, 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK) fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
