/* JSON codec of the core. Both entry points expect these upvalues:
 * 1 = the qiwi.null sentinel, 2 = the array metatable (qiwi.array_mt),
 * and decode also 3, 4 = the string cache (qiwi_json_push_cache). */
#ifndef QIWI_JSON_H
#define QIWI_JSON_H

#include <stddef.h>
#include "compat.h"

#define QIWI_JSON_MAX_DEPTH 512

/* Lua: decode(str) -> value | nil, "decode: <why> at byte <offset>" */
int qiwi_json_decode(lua_State *L);
/* Lua: encode(value) -> string | nil, "encode: <why>" */
int qiwi_json_encode(lua_State *L);

/* The decoder's short-string cache of one Lua state (see json.c). */
typedef struct qiwi_json_cache qiwi_json_cache;
/* Pushes a new cache: two values (a userdata and the table of its strings),
 * to be given, after null and the array metatable, as upvalues to every
 * function that decodes. */
void qiwi_json_push_cache(lua_State *L);

/* What the decoder works with: stack indices of the null sentinel, the
 * array metatable and the cache's table, and the cache. */
typedef struct {
  int null_idx, amt_idx, strings_idx;
  qiwi_json_cache *cache;
} qiwi_json_ctx;
/* Fills ctx from the upvalues first..first + 3 of the running C function
 * (null, array_mt, the cache's two values). */
void qiwi_json_upvalues(lua_State *L, qiwi_json_ctx *ctx, int first);

/* C entry for the session: decodes s[0..len) and pushes the value (returns 1),
 * or pushes an error message string (returns 0). */
int qiwi_json_decode_buf(lua_State *L, const char *s, size_t len, const qiwi_json_ctx *ctx);

#endif
