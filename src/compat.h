/* Small compatibility layer so the core compiles against Lua 5.1/LuaJIT through 5.4. */
#ifndef QIWI_COMPAT_H
#define QIWI_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 503
#define QIWI_HAS_INTEGERS 1
#else
#define QIWI_HAS_INTEGERS 0
#endif

#if LUA_VERSION_NUM < 502
#define qiwi_rawlen(L, i) lua_objlen((L), (i))
#define qiwi_setfuncs(L, l, nup) qiwi_compat_setfuncs((L), (l), (nup))
#define qiwi_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
static inline void qiwi_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
static inline int qiwi_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define qiwi_setmetatable(L, tname) (luaL_getmetatable((L), (tname)), lua_setmetatable((L), -2))
#define qiwi_testudata(L, i, tname) qiwi_compat_testudata((L), (i), (tname))
static inline void *qiwi_compat_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#else
#define qiwi_rawlen(L, i) lua_rawlen((L), (i))
#define qiwi_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#define qiwi_newlibtable(L, l) luaL_newlibtable((L), (l))
#define qiwi_absindex(L, i) lua_absindex((L), (i))
#define qiwi_setmetatable(L, tname) luaL_setmetatable((L), (tname))
#define qiwi_testudata(L, i, tname) luaL_testudata((L), (i), (tname))
#endif

#if LUA_VERSION_NUM < 504
#define qiwi_newuserdata(L, sz) lua_newuserdata((L), (sz))
#else
#define qiwi_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#endif

#endif
