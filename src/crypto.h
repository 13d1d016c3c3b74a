/* Webhook cryptography through OpenSSL. */
#ifndef QIWI_CRYPTO_H
#define QIWI_CRYPTO_H

#include "compat.h"

/* Lua: hmac_sha256_hex(key, data) -> lowercase hex string */
int qiwi_hmac_sha256_hex(lua_State *L);
/* Lua: base64_decode(str) -> bytes | nil, err */
int qiwi_base64_decode(lua_State *L);
/* Lua: constant_time_equal(a, b) -> boolean (time independent of where they differ) */
int qiwi_constant_time_equal(lua_State *L);
/* Lua: random_bytes(n) -> n bytes from OpenSSL's CSPRNG (1 <= n <= 256) | nil, err */
int qiwi_random_bytes(lua_State *L);

#endif
