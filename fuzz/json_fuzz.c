/* libFuzzer target: the JSON decoder and, on what it built, the encoder.
 *
 * Oracles, beyond "no crash and no sanitizer report":
 *  - the decoder accepts exactly what an independent strict checker below
 *    accepts (RFC 8259 plus the core's documented policy: well-formed UTF-8,
 *    no lone surrogate escapes, floats that overflow refused, depth <= 512);
 *  - a refusal is one "decode: <why> at byte N" line with N inside the input;
 *  - what decodes encodes, the encoding passes the checker, and decodes back
 *    to an equal value (same integer/float subtypes, same array marks);
 *  - the same input decoded again (now with the sizes and strings the first
 *    decode left in the state's caches) gives an equal value. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "../src/json.h"

int luaopen_qiwi_core(lua_State *L);

/* ---- the independent checker: recursive, tiny, slow and obvious ---- */

typedef struct { const unsigned char *p, *end; int depth; } checker;

static void ws(checker *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static long u4(checker *c) {  /* after "\u"; -1 when malformed */
  long v = 0;
  int i;
  if (c->end - c->p < 4) return -1;
  for (i = 0; i < 4; i++) {
    int h = hexval(c->p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  c->p += 4;
  return v;
}

static int utf8_ok(checker *c) {  /* one multi-byte character, RFC 3629 */
  unsigned b0 = c->p[0];
  unsigned long cp;
  int n, i;
  if (b0 >= 0xC2 && b0 <= 0xDF) { n = 2; cp = b0 & 0x1F; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) { n = 3; cp = b0 & 0x0F; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { n = 4; cp = b0 & 0x07; }
  else return 0;
  if (c->end - c->p < n) return 0;
  for (i = 1; i < n; i++) {
    if ((c->p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c->p[i] & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  c->p += n;
  return 1;
}

static int string_ok(checker *c) {
  c->p++;  /* the quote */
  while (c->p < c->end) {
    unsigned ch = *c->p;
    if (ch == '"') { c->p++; return 1; }
    if (ch < 0x20) return 0;
    if (ch >= 0x80) { if (!utf8_ok(c)) return 0; continue; }
    if (ch != '\\') { c->p++; continue; }
    if (++c->p >= c->end) return 0;
    ch = *c->p++;
    if (ch == 'u') {
      long v = u4(c);
      if (v < 0 || (v >= 0xDC00 && v <= 0xDFFF)) return 0;
      if (v >= 0xD800 && v <= 0xDBFF) {
        long lo;
        if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return 0;
        c->p += 2;
        lo = u4(c);
        if (lo < 0xDC00 || lo > 0xDFFF) return 0;
      }
    } else if (!strchr("\"\\/bfnrt", (int)ch) || ch == 0) {
      return 0;
    }
  }
  return 0;
}

static int digits(checker *c) {
  const unsigned char *s = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  return c->p > s;
}

static int number_ok(checker *c) {
  const unsigned char *s = c->p;
  int is_float = 0;
  if (*c->p == '-') c->p++;
  if (c->p >= c->end) return 0;
  if (*c->p == '0') c->p++;
  else if (!digits(c)) return 0;
  if (c->p < c->end && *c->p == '.') { c->p++; is_float = 1; if (!digits(c)) return 0; }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    is_float = 1;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (!digits(c)) return 0;
  }
  if (is_float) {
    /* policy: a float that overflows a double is refused */
    char buf[512];
    size_t n = (size_t)(c->p - s);
    double v;
    if (n >= sizeof buf) {
      /* long mantissas: the exponent alone decides, read it roughly */
      char *tmp = malloc(n + 1);
      memcpy(tmp, s, n);
      tmp[n] = '\0';
      v = strtod(tmp, NULL);
      free(tmp);
    } else {
      memcpy(buf, s, n);
      buf[n] = '\0';
      v = strtod(buf, NULL);
    }
    if (isinf(v)) return 0;
  }
  return 1;
}

static int value_ok(checker *c);

static int container_ok(checker *c, unsigned char close) {
  int first = 1;
  if (c->depth == QIWI_JSON_MAX_DEPTH) return 0;
  c->depth++;
  c->p++;
  ws(c);
  if (c->p < c->end && *c->p == close) { c->p++; c->depth--; return 1; }
  for (;;) {
    if (!first) { ws(c); }
    first = 0;
    if (close == '}') {
      if (c->p >= c->end || *c->p != '"' || !string_ok(c)) return 0;
      ws(c);
      if (c->p >= c->end || *c->p != ':') return 0;
      c->p++;
    }
    if (!value_ok(c)) return 0;
    ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == close) { c->p++; c->depth--; return 1; }
    if (*c->p != ',') return 0;
    c->p++;
    ws(c);
  }
}

static int literal(checker *c, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
  c->p += n;
  return 1;
}

static int value_ok(checker *c) {
  ws(c);
  if (c->p >= c->end) return 0;
  switch (*c->p) {
    case '{': return container_ok(c, '}');
    case '[': return container_ok(c, ']');
    case '"': return string_ok(c);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default:
      if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return number_ok(c);
      return 0;
  }
}

static int json_ok(const char *s, size_t n) {
  checker c = { (const unsigned char *)s, (const unsigned char *)s + n, 0 };
  if (!value_ok(&c)) return 0;
  ws(&c);
  return c.p == c.end;
}

/* ---- the Lua side ---- */

static const char *LUA_HELPERS =
  "local core = ...\n"
  "local mtype = math.type or function() return 'float' end\n"
  "local function same(a, b)\n"
  "  if type(a) ~= type(b) then return false end\n"
  "  if type(a) == 'number' then return mtype(a) == mtype(b) and (a == b or (a ~= a and b ~= b)) end\n"
  "  if type(a) ~= 'table' then return a == b end\n"
  "  if getmetatable(a) ~= getmetatable(b) then return false end\n"
  "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
  "  for k in pairs(b) do if a[k] == nil then return false end end\n"
  "  return true\n"
  "end\n"
  "return same\n";

static lua_State *L;

static void die(const char *what, const uint8_t *data, size_t size) {
  fprintf(stderr, "json_fuzz: %s (input of %zu bytes)\n", what, size);
  (void)data;
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "qiwi.core", luaopen_qiwi_core, 0);   /* stack: core */
  if (luaL_loadstring(L, LUA_HELPERS) != 0) die(lua_tostring(L, -1), NULL, 0);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 1);                                     /* stack: core same */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const int CORE = 1, SAME = 2;
  int valid = json_ok((const char *)data, size);
  size_t elen;
  const char *enc;

  lua_settop(L, 2);
  lua_getfield(L, CORE, "json_decode");
  lua_pushlstring(L, (const char *)data, size);
  lua_call(L, 1, 2);                                     /* 3: value, 4: err */
  if (lua_isnil(L, 3) && lua_type(L, 4) == LUA_TSTRING) {
    const char *msg = lua_tostring(L, 4);
    const char *at = strstr(msg, " at byte ");
    if (valid) die("a valid document was refused", data, size);
    if (strncmp(msg, "decode: ", 8) != 0 || at == NULL || strchr(msg, '\n') != NULL)
      die("malformed refusal message", data, size);
    if (strtoul(at + 9, NULL, 10) < 1 || strtoul(at + 9, NULL, 10) > size + 1)
      die("refusal points outside the input", data, size);
    return 0;
  }
  if (lua_isnil(L, 3) && !lua_isnil(L, 4)) die("refusal without a message", data, size);
  if (!valid) die("an invalid document was accepted", data, size);

  lua_getfield(L, CORE, "json_encode");
  lua_pushvalue(L, 3);
  lua_call(L, 1, 2);                                     /* 5: text, 6: err */
  if (lua_type(L, 5) != LUA_TSTRING) die("what decodes must encode", data, size);
  enc = lua_tolstring(L, 5, &elen);
  if (!json_ok(enc, elen)) die("the encoder wrote invalid JSON", data, size);

  lua_getfield(L, CORE, "json_decode");
  lua_pushvalue(L, 5);
  lua_call(L, 1, 2);                                     /* 7: value again */
  if (lua_isnil(L, 7) && !lua_isnil(L, 8)) die("the encoding does not decode", data, size);
  lua_pushvalue(L, SAME);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, 7);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) die("decode(encode(v)) differs from v", data, size);

  lua_getfield(L, CORE, "json_decode");
  lua_pushlstring(L, (const char *)data, size);
  lua_call(L, 1, 1);                                     /* the input again */
  lua_pushvalue(L, SAME);
  lua_pushvalue(L, 3);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) die("a second decode of the input differs from the first", data, size);
  lua_settop(L, 2);
  return 0;
}
