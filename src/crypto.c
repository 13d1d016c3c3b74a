/* HMAC-SHA256 and base64 for webhook signatures, through OpenSSL. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include "compat.h"
#include "crypto.h"

int qiwi_hmac_sha256_hex(lua_State *L) {
  size_t klen, dlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mlen = 0, i;
  char hex[2 * EVP_MAX_MD_SIZE];
  static const char digits[] = "0123456789abcdef";

  if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, dlen, mac, &mlen) == NULL)
    return luaL_error(L, "hmac_sha256: OpenSSL failure");
  for (i = 0; i < mlen; i++) {
    hex[2 * i] = digits[mac[i] >> 4];
    hex[2 * i + 1] = digits[mac[i] & 15];
  }
  OPENSSL_cleanse(mac, sizeof mac);
  lua_pushlstring(L, hex, 2 * (size_t)mlen);
  return 1;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;   /* '-' and '_': the URL-safe alphabet */
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* Strict decoder: padding optional, whitespace and stray characters refused,
 * so a mangled key is reported instead of silently producing another key. */
int qiwi_base64_decode(lua_State *L) {
  size_t len, i, pad = 0;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  unsigned long acc = 0;
  int bits = 0;

  while (len > 0 && s[len - 1] == '=' && pad < 2) { len--; pad++; }
  if ((pad && (len + pad) % 4 != 0) || len % 4 == 1) {
    lua_pushnil(L);
    lua_pushliteral(L, "base64: bad length");
    return 2;
  }
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    int v = b64_value(s[i]);
    if (v < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "base64: invalid character at byte %d", (int)(i + 1));
      return 2;
    }
    acc = (acc << 6) | (unsigned long)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      luaL_addchar(&b, (char)((acc >> bits) & 0xFF));
    }
  }
  luaL_pushresult(&b);
  return 1;
}

int qiwi_constant_time_equal(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  /* The length is public (a hex digest); only the contents must not leak timing. */
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

/* Seeds for what must differ between processes started together (payment
 * ids without a shared store): OpenSSL seeds itself from the kernel, so no
 * clock or pid (the same in two containers) goes into it. */
int qiwi_random_bytes(lua_State *L) {
  unsigned char buf[256];
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > (lua_Integer)sizeof buf) return luaL_argerror(L, 1, "1 to 256 bytes");
  if (RAND_bytes(buf, (int)n) != 1) {
    lua_pushnil(L);
    lua_pushliteral(L, "the system's random source gave nothing");
    return 2;
  }
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}
