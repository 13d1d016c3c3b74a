/* JSON codec of the core. Both entry points expect two upvalues:
 * 1 = the qiwi.null sentinel, 2 = the array metatable (qiwi.array_mt). */
#ifndef QIWI_JSON_H
#define QIWI_JSON_H

#include <stddef.h>
#include "compat.h"

#define QIWI_JSON_MAX_DEPTH 512

/* Lua: decode(str) -> value | nil, "decode: <why> at byte <offset>" */
int qiwi_json_decode(lua_State *L);
/* Lua: encode(value) -> string | nil, "encode: <why>" */
int qiwi_json_encode(lua_State *L);

/* C entry for the session: decodes s[0..len) and pushes the value (returns 1),
 * or pushes an error message string (returns 0). null_idx/amt_idx are absolute
 * stack indices of the null sentinel and the array metatable. */
int qiwi_json_decode_buf(lua_State *L, const char *s, size_t len, int null_idx, int amt_idx);

#endif
