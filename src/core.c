/* qiwi.core: the module table. It owns the per-state singletons (the null
 * sentinel and the array metatable) and hands them to every C function as
 * upvalues, so no C global ever holds Lua state. */
#include <curl/curl.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include "compat.h"
#include "json.h"
#include "http.h"
#include "session.h"
#include "batch.h"
#include "crypto.h"
#include "fs.h"

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "qiwi.null");
  return 1;
}

/* Monotonic seconds, for timeouts and rate limits that must not jump with the wall clock. */
static int core_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* Wall-clock milliseconds since the epoch, for client payment ids. */
static int core_now_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)(ts.tv_nsec / 1000000));
  return 1;
}

/* Blocking sleep for plain Lua (never used inside nginx, where ngx.sleep is). */
static int core_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (!(s > 0)) return 0;
  if (s > 3600) s = 3600;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  return 0;
}

static int core_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg json_funcs[] = {
  {"json_decode", qiwi_json_decode},
  {"json_encode", qiwi_json_encode},
  {NULL, NULL}
};

static const luaL_Reg plain_funcs[] = {
  {"hmac_sha256_hex", qiwi_hmac_sha256_hex},
  {"base64_decode", qiwi_base64_decode},
  {"constant_time_equal", qiwi_constant_time_equal},
  {"random_bytes", qiwi_random_bytes},
  {"curl_version", qiwi_curl_version},
  {"header_list", qiwi_header_list_new},
  {"json_like", qiwi_json_like_lua},
  {"session", qiwi_session_new},
  {"multi", qiwi_multi_new},
  {"monotonic", core_monotonic},
  {"now_ms", core_now_ms},
  {"sleep", core_sleep},
  {"getpid", core_getpid},
  {NULL, NULL}
};

#if defined(_WIN32)
#define QIWI_EXPORT __declspec(dllexport)
#else
#define QIWI_EXPORT __attribute__((visibility("default")))
#endif

QIWI_EXPORT int luaopen_qiwi_core(lua_State *L) {
  if (qiwi_curl_global_init() != 0)
    return luaL_error(L, "qiwi.core: curl_global_init failed");

  lua_newtable(L);                      /* module */

  /* null sentinel: a full userdata so it has a readable __tostring */
  qiwi_newuserdata(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "qiwi.null");
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "null");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "null");

  /* array metatable */
  lua_newtable(L);
  lua_pushliteral(L, "qiwi.array");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "array_mt");

  /* the decoder's string cache, one per Lua state like the two above */
  qiwi_json_push_cache(L);

  qiwi_http_register(L);
  qiwi_session_register(L);             /* its send decodes: takes the four */
  qiwi_multi_register(L);
  qiwi_setfuncs(L, json_funcs, 4);      /* pops null, array_mt and the cache */
  qiwi_setfuncs(L, plain_funcs, 0);
  qiwi_fs_register(L);

  lua_pushstring(L, QIWI_CORE_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
