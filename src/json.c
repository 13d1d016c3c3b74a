/* JSON codec of the core.
 *
 * Both directions are iterative: the open containers live on the Lua stack
 * (plus a small fixed C array of per-level state), so a hostile body cannot
 * exhaust the C stack, and the depth limit is the only bound.
 *
 * No C heap is used. Every buffer is either on the C stack or a userdata, so
 * a memory error raised by Lua in the middle of a conversion leaks nothing;
 * all other failures are reported as values. */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

#if LUA_VERSION_NUM >= 503
typedef lua_Integer json_index;   /* lua_rawseti/rawgeti take lua_Integer */
#else
typedef int json_index;
#endif

/* Byte classes shared by the decoder's string scanner and the encoder's
 * escaper: anything but PLAIN needs a look. */
enum { PLAIN = 0, QUOTE, BACKSLASH, CONTROL, HIGH };

#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
static const unsigned char byte_class[256] = {
  R16(CONTROL), R16(CONTROL),                                   /* 0x00-0x1f */
  0, 0, QUOTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,           /* 0x20-0x2f */
  R16(PLAIN), R16(PLAIN),                                       /* 0x30-0x4f */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, BACKSLASH, 0, 0, 0,       /* 0x50-0x5f */
  R16(PLAIN), R16(PLAIN),                                       /* 0x60-0x7f */
  R16(HIGH), R16(HIGH), R16(HIGH), R16(HIGH),
  R16(HIGH), R16(HIGH), R16(HIGH), R16(HIGH)                    /* 0x80-0xff */
};
#undef R16

static const char hex_digits[] = "0123456789abcdef";

/* Clinger's fast path: a decimal m * 10^e with m <= 2^53 and |e| <= 22 is
 * one correctly rounded multiplication or division of two exact doubles, so
 * it equals what strtod returns, without strtod's cost or its locale.
 * Only valid when double arithmetic is not carried out in extended precision. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define HAVE_EXACT_FAST_PATH 1
#else
#define HAVE_EXACT_FAST_PATH 0
#endif
#define TWO_POW_53 9007199254740992ULL

static const double exact_pow10[23] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* Sets *out and returns 1 when the fast path applies. */
static int exact_decimal(unsigned long long m, long e, double *out) {
#if HAVE_EXACT_FAST_PATH
  if (m <= TWO_POW_53 && e >= -22 && e <= 22) {
    double x = (double)m;
    *out = e < 0 ? x / exact_pow10[-e] : x * exact_pow10[e];
    return 1;
  }
#else
  (void)m; (void)e; (void)out;
#endif
  return 0;
}

/* Length of the well-formed UTF-8 sequence starting at p (whose lead byte is
 * >= 0x80), or 0. Well-formed per RFC 3629: rejects overlongs, UTF-16
 * surrogates, code points above U+10FFFF and truncated sequences. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned lead = p[0], lo = 0x80, hi = 0xBF;
  size_t n, i;
  if (lead < 0xC2) return 0;                /* stray continuation or overlong 2-byte lead */
  if (lead < 0xE0) n = 2;
  else if (lead < 0xF0) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;            /* overlong */
    else if (lead == 0xED) hi = 0x9F;       /* surrogates */
  } else if (lead < 0xF5) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;            /* overlong */
    else if (lead == 0xF4) hi = 0x8F;       /* above U+10FFFF */
  } else return 0;
  if ((size_t)(end - p) < n) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (i = 2; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return n;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                   */
/* ------------------------------------------------------------------------ */

/* Slots each open container may need on top of itself: its pending key, a
 * value, and a scratch userdata for a long string or number. */
#define DECODE_SLACK 8

/* Keys, and many values, repeat: within a document (every payment of a
 * history page has the same twenty keys) and from one answer to the next
 * (a client polling its balance gets the same keys and aliases each time).
 * Short strings are kept in a cache of the Lua state (qiwi_json_push_cache:
 * a table holding the strings, so that they stay alive and their bytes
 * stay where they are, and a userdata with where those bytes are), and a
 * string seen before is pushed from it instead of being scanned and
 * interned again: interning hashes every byte and looks the string up,
 * which cost more than the rest of decoding it, and a string that died
 * between two answers was allocated again. A string may sit in either slot
 * of the pair picked by the first three bytes of the input (the closing
 * quote of a shorter string among them): "QIWI" and "QIWI Wallet" of one
 * answer share those bytes, and with one slot each took it from the other
 * in every answer. A new string takes an empty slot of its pair, else the
 * two slots take turns. */
#define STRING_CACHE 256         /* slots; a power of two */
#define CACHE_MAX_LEN 64         /* longer strings rarely repeat (titles in Cyrillic do: 2 bytes a letter) */

/* Containers repeat their sizes as keys repeat their bytes: every payment
 * of a page has the same twenty members, every answer to accounts() the
 * same accounts. A container's size as last seen is kept with the key it
 * was the value of (an array's elements count under the array's key), so
 * that the next one is created at that size when it opens and filled as
 * its members come, without waiting on the stack (see materialize). A
 * guess that is wrong costs a rehash, never a wrong value; containers of
 * more than SIZE_GUESS_MAX members are not guessed (they wait on the stack
 * and are made at their size), which also bounds what a guess too large
 * over-allocates. */
#define SIZE_GUESS_MAX 64

typedef struct {
  const char *text;              /* the bytes of the string at this slot of the table; NULL: none */
  size_t len;
  unsigned char object_n, array_n;   /* size guesses of containers under this key; 0: none */
  unsigned char turn;            /* of the even slot of a pair: which of the two a new string takes */
} cached_string;

struct qiwi_json_cache {
  cached_string slot[STRING_CACHE];
  cached_string root;            /* the guesses of a document's top container */
};

void qiwi_json_push_cache(lua_State *L) {
  qiwi_json_cache *c = qiwi_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  lua_createtable(L, STRING_CACHE, 0);
}

void qiwi_json_upvalues(lua_State *L, qiwi_json_ctx *ctx, int first) {
  ctx->null_idx = lua_upvalueindex(first);
  ctx->amt_idx = lua_upvalueindex(first + 1);
  ctx->cache = lua_touserdata(L, lua_upvalueindex(first + 2));
  ctx->strings_idx = lua_upvalueindex(first + 3);
}

typedef struct {
  lua_State *L;
  const unsigned char *start, *end;
  char decimal_point;            /* locale's, looked up at the first float */
  const char *why;               /* NULL: "unexpected character" at `at` */
  const unsigned char *at;
  qiwi_json_cache *cache;
  int strings_idx;               /* the table holding the cached strings */
  cached_string *last;           /* the cache entry of the string parsed last; NULL: none */
} decoder;

static inline unsigned cache_slot(const unsigned char *p) {
  return ((p[0] * 31u + p[1]) * 31u + p[2]) & (STRING_CACHE - 1);
}

static const unsigned char *fail(decoder *d, const unsigned char *at, const char *why) {
  d->at = at;
  d->why = why;
  return NULL;
}

static const unsigned char *unexpected(decoder *d, const unsigned char *at) {
  return fail(d, at, NULL);
}

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

static int hex4(const unsigned char *p, const unsigned char *end) {
  int v = 0, i;
  if (end - p < 4) return -1;
  for (i = 0; i < 4; i++) {
    unsigned c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (int)(c - '0');
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') v |= (int)((c | 0x20) - 'a' + 10);
    else return -1;
  }
  return v;
}

static size_t utf8_encode(unsigned long cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* One escape sequence; p is at the backslash, and the string's closing
 * quote (or the end of input) is beyond it. Writes the decoded bytes at *o.
 * Returns the byte after the escape. */
static const unsigned char *decode_escape(decoder *d, const unsigned char *p,
                                          const unsigned char *open, char **o) {
  const unsigned char *end = d->end;
  long cp, lo;
  if (end - p < 2) return fail(d, open, "unterminated string");
  switch (p[1]) {
    case '"': *(*o)++ = '"'; return p + 2;
    case '\\': *(*o)++ = '\\'; return p + 2;
    case '/': *(*o)++ = '/'; return p + 2;
    case 'b': *(*o)++ = '\b'; return p + 2;
    case 'f': *(*o)++ = '\f'; return p + 2;
    case 'n': *(*o)++ = '\n'; return p + 2;
    case 'r': *(*o)++ = '\r'; return p + 2;
    case 't': *(*o)++ = '\t'; return p + 2;
    case 'u': break;
    default: return fail(d, p, "invalid escape");
  }
  cp = hex4(p + 2, end);
  if (cp < 0) return fail(d, p, "invalid \\u escape");
  if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(d, p, "lone surrogate");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    /* only a \u low surrogate may follow; anything else leaves this one alone */
    if (end - p < 8 || p[6] != '\\' || p[7] != 'u') return fail(d, p, "lone surrogate");
    lo = hex4(p + 8, end);
    if (lo < 0) return fail(d, p + 6, "invalid \\u escape");
    if (lo < 0xDC00 || lo > 0xDFFF) return fail(d, p, "lone surrogate");
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    *o += utf8_encode((unsigned long)cp, *o);
    return p + 12;
  }
  *o += utf8_encode((unsigned long)cp, *o);
  return p + 6;
}

/* Slow path of parse_string, entered at the first backslash: run..p is the
 * plain text before it. Every escape is at least as long as what it decodes
 * to, so the text up to the closing quote bounds the output: one pass finds
 * that quote, the second decodes into a buffer of that size (on the C stack,
 * or a userdata for long strings) and validates. */
static const unsigned char *parse_string_escaped(decoder *d, const unsigned char *run,
                                                 const unsigned char *p,
                                                 const unsigned char *open) {
  const unsigned char *end = d->end, *close = p;
  char local[512], *buf = local, *o;
  size_t cap;
  while (close < end && *close != '"') {
    if (*close != '\\') close++;
    else if (end - close >= 2) close += 2;
    else close = end;                  /* a final lone backslash */
  }
  cap = (size_t)(close - run);
  if (cap > sizeof local) buf = (char *)qiwi_newuserdata(d->L, cap);
  memcpy(buf, run, (size_t)(p - run));
  o = buf + (p - run);
  while (p < close) {
    const unsigned char *q;
    switch (byte_class[*p]) {
      case BACKSLASH:
        p = decode_escape(d, p, open, &o);
        if (p == NULL) return NULL;
        break;
      case HIGH: {
        size_t n = utf8_len(p, end);
        if (n == 0) return fail(d, p, "invalid UTF-8");
        memcpy(o, p, n);
        o += n;
        p += n;
        break;
      }
      case CONTROL:
        return fail(d, p, "control character in string");
      default:
        for (q = p + 1; q < close && byte_class[*q] == PLAIN; q++) {}
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        p = q;
    }
  }
  if (close >= end) return fail(d, open, "unterminated string");
  lua_pushlstring(d->L, buf, (size_t)(o - buf));
  if (buf != local) lua_remove(d->L, -2);
  return close + 1;
}

/* p is just past the opening quote. Strings without escapes (UTF-8 included)
 * are pushed straight from the input. */
static const unsigned char *parse_string(decoder *d, const unsigned char *p) {
  const unsigned char *open = p - 1, *run = p, *end = d->end;
  cached_string *c = NULL;
  unsigned slot = 0, way;
  d->last = NULL;
  if (end - p >= 3) {
    /* the same bytes as a string already read (and so validated: no quote,
     * no backslash, valid UTF-8), followed by a closing quote, are that
     * string */
    slot = cache_slot(p);
    for (way = 0; way < 2; way++) {
      c = &d->cache->slot[slot ^ way];
      if (c->text != NULL && (size_t)(end - p) > c->len && p[c->len] == '"'
          && memcmp(p, c->text, c->len) == 0) {
        lua_rawgeti(d->L, d->strings_idx, (json_index)(slot ^ way) + 1);
        d->last = c;
        return p + c->len + 1;
      }
    }
    {
      cached_string *pair = &d->cache->slot[slot & ~1u];
      if (d->cache->slot[slot].text == NULL) way = 0;
      else if (d->cache->slot[slot ^ 1].text == NULL) way = 1;
      else { way = (slot & 1u) ^ pair->turn; pair->turn ^= 1; }
      slot ^= way;
      c = &d->cache->slot[slot];
    }
  }
  for (;;) {
    while (p < end && byte_class[*p] == PLAIN) p++;
    if (p >= end) return fail(d, open, "unterminated string");
    switch (byte_class[*p]) {
      case QUOTE: {
        size_t n = (size_t)(p - run);
        lua_pushlstring(d->L, (const char *)run, n);
        if (c && n > 0 && n <= CACHE_MAX_LEN) {
          /* the table first: the old string stays alive until the slot
           * points elsewhere (setting an array slot allocates nothing) */
          lua_pushvalue(d->L, -1);
          lua_rawseti(d->L, d->strings_idx, (json_index)slot + 1);
          c->text = lua_tostring(d->L, -1);
          c->len = n;
          c->object_n = c->array_n = 0;   /* another key's guesses */
          d->last = c;
        }
        return p + 1;
      }
      case HIGH: {
        size_t n = utf8_len(p, end);
        if (n == 0) return fail(d, p, "invalid UTF-8");
        p += n;
        break;
      }
      case BACKSLASH:
        return parse_string_escaped(d, run, p, open);
      default:
        return fail(d, p, "control character in string");
    }
  }
}

#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* strtod follows LC_NUMERIC, so the JSON '.' is swapped for the locale's
 * decimal point before converting. The text is copied anyway: the input need
 * not be NUL-terminated. */
static const unsigned char *push_float(decoder *d, const unsigned char *start,
                                       const unsigned char *p) {
  size_t n = (size_t)(p - start), i;
  char local[64], *text = local, *stop;
  double v;
  if (d->decimal_point == 0) {
    const struct lconv *lc = localeconv();
    d->decimal_point = (lc && lc->decimal_point && lc->decimal_point[0] && !lc->decimal_point[1])
                       ? lc->decimal_point[0] : '.';
  }
  if (n >= sizeof local) text = (char *)qiwi_newuserdata(d->L, n + 1);  /* long but valid */
  memcpy(text, start, n);
  text[n] = '\0';
  if (d->decimal_point != '.')
    for (i = 0; i < n; i++)
      if (text[i] == '.') text[i] = d->decimal_point;
  v = strtod(text, &stop);
  if (text != local) lua_pop(d->L, 1);
  if (stop != text + n) return fail(d, start, "invalid number");
  /* an infinity would not survive encoding, and JSON has no way to say it */
  if (isinf(v)) return fail(d, start, "number out of range");
  lua_pushnumber(d->L, (lua_Number)v);
  return p;
}

static const unsigned char *parse_number(decoder *d, const unsigned char *p) {
  const unsigned char *start = p, *end = d->end, *digits;
  unsigned long long u = 0;
  size_t nd;
  int neg = 0;
  if (*p == '-') { neg = 1; p++; }
  if (p >= end || !IS_DIGIT(*p)) return fail(d, p, "invalid number");
  digits = p;
  if (*p == '0') {
    p++;
    if (p < end && IS_DIGIT(*p)) return fail(d, p, "invalid number");  /* leading zero */
  } else {
    /* may wrap; only trusted below when there are at most 19 digits */
    while (p < end && IS_DIGIT(*p)) u = u * 10u + (unsigned)(*p++ - '0');
  }
  nd = (size_t)(p - digits);
  if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
    /* significant digits go to u while they fit; e10 scales them */
    size_t sig = *digits != '0' ? nd : 0;
    long e10 = 0, x = 0;
    double v;
    if (*p == '.') {
      p++;
      if (p >= end || !IS_DIGIT(*p)) return fail(d, p, "invalid number");
      for (; p < end && IS_DIGIT(*p); p++) {
        if (sig >= 19) { sig = 20; continue; }     /* strtod will sort it out */
        u = u * 10u + (unsigned)(*p - '0');
        if (u) sig++;
        e10--;
      }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      int eneg = 0;
      p++;
      if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
      if (p >= end || !IS_DIGIT(*p)) return fail(d, p, "invalid number");
      for (; p < end && IS_DIGIT(*p); p++)
        if (x < 100000) x = x * 10 + (*p - '0');   /* far beyond any double anyway */
      e10 += eneg ? -x : x;
    }
    if (sig <= 19 && exact_decimal(u, e10, &v)) {
      lua_pushnumber(d->L, (lua_Number)(neg ? -v : v));
      return p;
    }
    return push_float(d, start, p);
  }
#if QIWI_HAS_INTEGERS
  if (nd <= 19) {   /* 19 digits cannot wrap an unsigned 64-bit accumulator */
    if (!neg && u <= (unsigned long long)LUA_MAXINTEGER) {
      lua_pushinteger(d->L, (lua_Integer)u);
      return p;
    }
    if (neg && u <= (unsigned long long)LUA_MAXINTEGER + 1u) {
      lua_pushinteger(d->L, u == (unsigned long long)LUA_MAXINTEGER + 1u
                            ? LUA_MININTEGER : -(lua_Integer)u);
      return p;
    }
  }
#else
  /* doubles are exact up to 2^53; 16 digits cannot have wrapped */
  if (nd <= 16 && u <= TWO_POW_53) {
    lua_pushnumber(d->L, neg && u ? -(lua_Number)u : (lua_Number)u);
    return p;
  }
#endif
  /* too big for an exact number: keep the digits (ids, amounts in kopecks) */
  lua_pushlstring(d->L, (const char *)start, (size_t)(p - start));
  return p;
}

/* p is at the literal's first byte, already known to match. */
static const unsigned char *match_literal(decoder *d, const unsigned char *p,
                                          const char *lit, size_t n) {
  size_t i;
  for (i = 1; i < n; i++)
    if (p + i >= d->end || p[i] != (unsigned char)lit[i]) return unexpected(d, p + i);
  return p + n;
}

static void push_error(decoder *d) {
  char what[40], msg[96];
  size_t pos = (size_t)(d->at - d->start) + 1;
  const char *why = d->why;
  if (why == NULL) {
    if (d->at >= d->end) why = "unexpected end of input";
    else {
      unsigned c = *d->at;
      if (c > 0x20 && c < 0x7F) snprintf(what, sizeof what, "unexpected character '%c'", (int)c);
      else snprintf(what, sizeof what, "unexpected character 0x%02X", c);
      why = what;
    }
  }
  snprintf(msg, sizeof msg, "decode: %s at byte %zu", why, pos);
  lua_pushstring(d->L, msg);
}

/* How an open container holds what has been decoded of it so far. A
 * container's members first wait on the Lua stack, so that at its end the
 * table is created at its final size: filling a table that grows as it goes
 * rehashes it at every power of two, which cost more than the rest of the
 * decoding. Once the members waiting on the stack pass STACK_BUDGET slots,
 * the container taking the next member is turned into its table and filled
 * from then on: what the budget leaves of the interpreter's limit (8000 slots
 * for a C function under 5.1 and LuaJIT, a million under 5.2+) keeps room for
 * the deepest nesting allowed, at a few slots a level. */
enum { ON_STACK_ARRAY, ON_STACK_OBJECT, IN_TABLE_ARRAY, IN_TABLE_OBJECT };

#if LUA_VERSION_NUM < 502
#define STACK_BUDGET 4000
#else
#define STACK_BUDGET 200000
#endif

/* Builds the table of the container whose members (elements, or key/value
 * pairs) fill the stack above `mark`, and leaves it at mark + 1 in their place. */
static void materialize(lua_State *L, int mark, int kind, int amt_idx) {
  int top = lua_gettop(L), n = top - mark, i;
  if (kind == ON_STACK_ARRAY) {
    lua_createtable(L, n, 0);
    lua_pushvalue(L, amt_idx);
    lua_setmetatable(L, -2);
    lua_insert(L, mark + 1);
    /* the last element is on top: fill from the end */
    for (i = n; i >= 1; i--) lua_rawseti(L, mark + 1, (json_index)i);
    return;
  }
  lua_createtable(L, 0, n / 2);
  if (n == 0) return;
  /* in document order, so that of duplicate keys the last one wins */
  for (i = mark + 1; i < top; i += 2) {
    lua_pushvalue(L, i);
    lua_pushvalue(L, i + 1);
    lua_rawset(L, -3);
  }
  lua_replace(L, mark + 1);
  lua_settop(L, mark + 1);
}

int qiwi_json_decode_buf(lua_State *L, const char *s, size_t len, const qiwi_json_ctx *ctx) {
  /* per open container: its kind (above), the stack top before its first
   * member, and for an array being filled in place, its last index */
  unsigned char kind[QIWI_JSON_MAX_DEPTH];
  int mark[QIWI_JSON_MAX_DEPTH];
  json_index next[QIWI_JSON_MAX_DEPTH];      /* in a table: members set so far */
  cached_string *guess[QIWI_JSON_MAX_DEPTH];  /* where its size guess lives; NULL: none */
  int depth = 0, base = lua_gettop(L), null_idx = ctx->null_idx, amt_idx = ctx->amt_idx;
  decoder d;
  const unsigned char *p = (const unsigned char *)s, *end = p + len;

  d.L = L;
  d.start = p;
  d.end = end;
  d.decimal_point = 0;
  d.why = NULL;
  d.at = p;
  d.cache = ctx->cache;
  d.strings_idx = ctx->strings_idx;
  d.last = NULL;

  if (!lua_checkstack(L, DECODE_SLACK)) { fail(&d, p, "out of Lua stack"); goto error; }

value:
  p = skip_ws(p, end);
  if (p >= end) { unexpected(&d, p); goto error; }
  switch (*p) {
    case '"':
      p = parse_string(&d, p + 1);
      break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      p = parse_number(&d, p);
      break;
    case 't':
      p = match_literal(&d, p, "true", 4);
      if (p) lua_pushboolean(L, 1);
      break;
    case 'f':
      p = match_literal(&d, p, "false", 5);
      if (p) lua_pushboolean(L, 0);
      break;
    case 'n':
      p = match_literal(&d, p, "null", 4);
      if (p) lua_pushvalue(L, null_idx);
      break;
    case '[':
    case '{':
      if (depth == QIWI_JSON_MAX_DEPTH) { fail(&d, p, "nesting too deep"); goto error; }
      if (!lua_checkstack(L, DECODE_SLACK)) { fail(&d, p, "out of Lua stack"); goto error; }
      mark[depth] = lua_gettop(L);
      {
        /* the top container's guesses, an element's its array's, a member's
         * its key's (the string parsed last) */
        cached_string *g = depth == 0 ? &d.cache->root
                           : (kind[depth - 1] == ON_STACK_ARRAY || kind[depth - 1] == IN_TABLE_ARRAY)
                             ? guess[depth - 1] : d.last;
        guess[depth] = g;
        next[depth] = 0;
        if (*p == '[') {
          if (g != NULL && g->array_n > 0) {
            lua_createtable(L, g->array_n, 0);
            lua_pushvalue(L, amt_idx);
            lua_setmetatable(L, -2);
            kind[depth++] = IN_TABLE_ARRAY;
          } else {
            kind[depth++] = ON_STACK_ARRAY;
          }
          p = skip_ws(p + 1, end);
          if (p < end && *p == ']') { p++; goto close; }
          goto element;
        }
        if (g != NULL && g->object_n > 0) {
          lua_createtable(L, 0, g->object_n);
          kind[depth++] = IN_TABLE_OBJECT;
        } else {
          kind[depth++] = ON_STACK_OBJECT;
        }
      }
      p = skip_ws(p + 1, end);
      if (p < end && *p == '}') { p++; goto close; }
      goto key;
    default:
      unexpected(&d, p);
      goto error;
  }
  if (p == NULL) goto error;

stored:  /* a complete value is on top; hand it to the enclosing container */
  if (depth == 0) goto done;
  switch (kind[depth - 1]) {
    case IN_TABLE_ARRAY:
      lua_rawseti(L, -2, ++next[depth - 1]);
      /* fall through */
    case ON_STACK_ARRAY:
      p = skip_ws(p, end);
      if (p < end && *p == ',') { p++; goto element; }
      if (p < end && *p == ']') { p++; goto close; }
      unexpected(&d, p);
      goto error;
    case IN_TABLE_OBJECT:
      lua_rawset(L, -3);   /* duplicate keys: the last one wins */
      next[depth - 1]++;
      break;
    default:
      break;
  }
  p = skip_ws(p, end);
  if (p < end && *p == ',') { p = skip_ws(p + 1, end); goto key; }
  if (p < end && *p == '}') { p++; goto close; }
  unexpected(&d, p);
  goto error;

close:
  depth--;
  {
    int k = kind[depth];
    json_index n = next[depth];
    if (k == ON_STACK_ARRAY || k == ON_STACK_OBJECT) {
      n = (json_index)(lua_gettop(L) - mark[depth]);
      if (k == ON_STACK_OBJECT) n /= 2;
      materialize(L, mark[depth], k, amt_idx);
    }
    if (guess[depth] != NULL) {
      /* a big one waits on the stack next time too: created at its size */
      unsigned char v = (unsigned char)(n > SIZE_GUESS_MAX ? 0 : n);
      if (k == ON_STACK_ARRAY || k == IN_TABLE_ARRAY) guess[depth]->array_n = v;
      else guess[depth]->object_n = v;
    }
  }
  goto stored;

element:
  if (kind[depth - 1] == ON_STACK_ARRAY
      && (lua_gettop(L) - base > STACK_BUDGET || !lua_checkstack(L, 1 + DECODE_SLACK))) {
    next[depth - 1] = (json_index)(lua_gettop(L) - mark[depth - 1]);
    materialize(L, mark[depth - 1], ON_STACK_ARRAY, amt_idx);
    kind[depth - 1] = IN_TABLE_ARRAY;
  }
  goto value;

key:
  if (kind[depth - 1] == ON_STACK_OBJECT
      && (lua_gettop(L) - base > STACK_BUDGET || !lua_checkstack(L, 2 + DECODE_SLACK))) {
    next[depth - 1] = (json_index)((lua_gettop(L) - mark[depth - 1]) / 2);
    materialize(L, mark[depth - 1], ON_STACK_OBJECT, amt_idx);
    kind[depth - 1] = IN_TABLE_OBJECT;
  }
  if (p >= end || *p != '"') { unexpected(&d, p); goto error; }
  p = parse_string(&d, p + 1);
  if (p == NULL) goto error;
  p = skip_ws(p, end);
  if (p >= end || *p != ':') { unexpected(&d, p); goto error; }
  p++;
  goto value;

done:
  p = skip_ws(p, end);
  if (p < end) { fail(&d, p, "trailing garbage"); goto error; }
  return 1;

error:
  lua_settop(L, base);
  push_error(&d);
  return 0;
}

int qiwi_json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  qiwi_json_ctx ctx;
  qiwi_json_upvalues(L, &ctx, 1);
  if (qiwi_json_decode_buf(L, s, len, &ctx)) return 1;
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */
/* ------------------------------------------------------------------------ */

/* Slots each open table may need: the table, its iteration key and value,
 * the classification pass's key/value/metatable, a buffer being grown. */
#define ENCODE_SLACK 8

typedef struct {
  lua_State *L;
  char *buf;
  size_t len, cap;
  int slot;              /* stack slot holding the userdata once `local` is outgrown */
  char local[1024];
} encoder;

typedef struct {
  int table;             /* stack index of the table */
  int more;              /* an element has been written: the next needs a comma */
  json_index i, n;       /* arrays: last index written, length; objects: n < 0 */
} frame;

/* Growth copies into a fresh, larger userdata and drops the old one on the
 * GC: nothing to free if Lua raises mid-way. */
static void grow(encoder *e, size_t need) {
  size_t cap = e->cap;
  char *nb;
  if (need > ((size_t)-1) / 4 - e->len) luaL_error(e->L, "encode: output too large");
  while (cap - e->len < need) cap *= 2;
  nb = (char *)qiwi_newuserdata(e->L, cap);
  memcpy(nb, e->buf, e->len);
  lua_replace(e->L, e->slot);
  e->buf = nb;
  e->cap = cap;
}

#define RESERVE(e, n) do { if ((e)->cap - (e)->len < (size_t)(n)) grow((e), (n)); } while (0)

static void put(encoder *e, const char *s, size_t n) {
  RESERVE(e, n);
  memcpy(e->buf + e->len, s, n);
  e->len += n;
}

static inline void put_char(encoder *e, char c) {
  RESERVE(e, 1);
  e->buf[e->len++] = c;
}

/* Returns 0 on invalid UTF-8. */
static int put_string(encoder *e, const unsigned char *s, size_t n) {
  const unsigned char *p = s, *run = s, *end = s + n;
  char *o;
  /* invariant: room for the rest of the input unescaped plus the closing quote */
  RESERVE(e, n + 2);
  e->buf[e->len++] = '"';
  while (p < end) {
    unsigned c = *p;
    unsigned k = byte_class[c];
    if (k == PLAIN) { p++; continue; }
    if (k == HIGH) {
      size_t m = utf8_len(p, end);
      if (m == 0) return 0;
      p += m;
      continue;
    }
    memcpy(e->buf + e->len, run, (size_t)(p - run));
    e->len += (size_t)(p - run);
    RESERVE(e, (size_t)(end - p) + 6);
    o = e->buf + e->len;
    *o++ = '\\';
    switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\b': *o++ = 'b'; break;
      case '\f': *o++ = 'f'; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      default:
        *o++ = 'u'; *o++ = '0'; *o++ = '0';
        *o++ = hex_digits[c >> 4];
        *o++ = hex_digits[c & 15];
    }
    e->len = (size_t)(o - e->buf);
    run = ++p;
  }
  memcpy(e->buf + e->len, run, (size_t)(end - run));
  e->len += (size_t)(end - run);
  e->buf[e->len++] = '"';
  return 1;
}

static char *format_unsigned(unsigned long long u, int neg, char *out) {
  char tmp[24], *q = tmp + sizeof tmp;
  do { *--q = (char)('0' + (int)(u % 10u)); u /= 10u; } while (u);
  if (neg) *out++ = '-';
  memcpy(out, q, (size_t)(tmp + sizeof tmp - q));
  return out + (tmp + sizeof tmp - q);
}

/* Does the decimal digits[0..n) * 10^(e - n + 1) read back as a? */
static int reads_back(const char *digits, int n, int e, double a) {
  char text[40], *q = text;
  unsigned long long m = 0;
  double x;
  int i, s = e - (n - 1);
  for (i = 0; i < n; i++) m = m * 10u + (unsigned)(digits[i] - '0');
  if (exact_decimal(m, s, &x)) return x == a;
  /* no decimal point in the text: strtod's locale does not matter */
  memcpy(q, digits, (size_t)n);
  q += n;
  *q++ = 'e';
  if (s < 0) *q++ = '-';
  q = format_unsigned((unsigned long long)(s < 0 ? -s : s), 0, q);
  *q = '\0';
  return strtod(text, NULL) == a;
}

/* Writes digits[0..n) (no trailing zeros) with decimal exponent dexp, i.e.
 * the value d.ddd * 10^dexp: fixed notation for dexp in -5..14, so that nothing
 * in [1e-5, 1e15) gets an exponent, exponent notation otherwise. */
static char *layout(char *q, const char *digits, int n, int dexp) {
  int i;
  if (dexp >= -5 && dexp < 15) {
    if (dexp >= 0) {
      for (i = 0; i <= dexp; i++) *q++ = i < n ? digits[i] : '0';
      if (n > dexp + 1) {
        *q++ = '.';
        for (i = dexp + 1; i < n; i++) *q++ = digits[i];
      }
    } else {
      *q++ = '0';
      *q++ = '.';
      for (i = 0; i < -dexp - 1; i++) *q++ = '0';
      for (i = 0; i < n; i++) *q++ = digits[i];
    }
    return q;
  }
  *q++ = digits[0];
  if (n > 1) {
    *q++ = '.';
    for (i = 1; i < n; i++) *q++ = digits[i];
  }
  *q++ = 'e';
  *q++ = dexp < 0 ? '-' : '+';
  return format_unsigned((unsigned long long)(dexp < 0 ? -dexp : dexp), 0, q);
}

/* Writes finite v as the shortest decimal that reads back as the same double,
 * choosing among roundings to 14..17 significant digits (what trying %.14g,
 * %.15g, %.16g, %.17g in turn gives) with at most one snprintf, and in the
 * common case (amounts with a few decimals) none: laid out by hand so the
 * result depends neither on %g's rules nor on the locale. Integral values up
 * to 2^53 are written as plain digits. Writes at most 32 bytes. */
static size_t format_double(double v, char *out) {
  char tmp[40], digits[17], cand[17], *q = out;
  const char *t, *best = digits;
  double a = v < 0 ? -v : v;
  int nd = 0, dexp, prec, i, n;
  if (a <= (double)TWO_POW_53 && a == (double)(unsigned long long)a)
    return (size_t)(format_unsigned((unsigned long long)a, signbit(v) != 0, out) - out);
  if (v < 0) *q++ = '-';
#if HAVE_EXACT_FAST_PATH
  {
    /* the first k for which a * 10^k rounded to an integer m gives back a as
     * m / 10^k (exact, see exact_decimal): the fewest decimals, and no snprintf */
    int k;
    for (k = 1; k <= 22; k++) {
      double scaled = a * exact_pow10[k], x;
      unsigned long long m;
      if (scaled >= (double)TWO_POW_53) break;
      m = (unsigned long long)(scaled + 0.5);
      if (exact_decimal(m, -k, &x) && x == a) {
        n = (int)(format_unsigned(m, 0, tmp) - tmp);
        dexp = n - 1 - k;
        while (n > 1 && tmp[n - 1] == '0') n--;
        return (size_t)(layout(q, tmp, n, dexp) - out);
      }
    }
  }
#endif
  snprintf(tmp, sizeof tmp, "%.16e", a);
  /* tmp is d<decimal point>dddddddddddddddde(+|-)dd: 17 correctly rounded digits */
  for (t = tmp; *t != 'e'; t++)
    if (IS_DIGIT(*t) && nd < 17) digits[nd++] = *t;
  dexp = atoi(t + 1);
  n = nd;
  for (prec = 14; prec < nd && best == digits; prec++) {
    /* a tail of exactly 5000.. is a tie only in the 17 digits; the exact
     * binary value lies on either side of it, so try both neighbours */
    int up = digits[prec] >= '5', tie = digits[prec] == '5', pass;
    for (i = prec + 1; tie && i < nd; i++) tie = digits[i] == '0';
    for (pass = 0; pass < 1 + tie; pass++) {
      int e = dexp, k = prec;
      memcpy(cand, digits, (size_t)prec);
      if (up != pass) {
        for (i = prec - 1; i >= 0 && cand[i] == '9'; i--) cand[i] = '0';
        if (i >= 0) cand[i]++;
        else { cand[0] = '1'; e++; }
      }
      while (k > 1 && cand[k - 1] == '0') k--;
      if (reads_back(cand, k, e, a)) { best = cand; n = k; dexp = e; break; }
    }
  }
  if (best == digits)
    while (n > 1 && digits[n - 1] == '0') n--;
  return (size_t)(layout(q, best, n, dexp) - out);
}

/* Returns an error message or NULL. */
static const char *put_number(encoder *e, lua_State *L, int idx) {
  double v;
#if QIWI_HAS_INTEGERS
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    lua_Unsigned u = (lua_Unsigned)i;
    RESERVE(e, 24);
    e->len = (size_t)(format_unsigned(i < 0 ? 0u - u : u, i < 0, e->buf + e->len) - e->buf);
    return NULL;
  }
#endif
  v = (double)lua_tonumber(L, idx);
  if (isnan(v)) return "encode: cannot encode NaN";
  if (isinf(v)) return "encode: cannot encode infinity";
  RESERVE(e, 40);
  {
    size_t n = format_double(v, e->buf + e->len);
#if QIWI_HAS_INTEGERS
    /* A float that prints as plain digits gets ".0", so that it reads back
     * as a float (Lua keeps the two subtypes apart) and round-trips exactly. */
    const char *q = e->buf + e->len;
    size_t i;
    for (i = 0; i < n && (q[i] == '-' || IS_DIGIT(q[i])); i++) {}
    if (i == n) {
      e->buf[e->len + n] = '.';
      e->buf[e->len + n + 1] = '0';
      n += 2;
    }
#endif
    e->len += n;
  }
  return NULL;
}

/* Keys 1..n exactly (n = raw length >= 1) make a plain table an array. Since
 * the keys are distinct, n of them all within 1..n are exactly 1..n. */
static json_index sequence_length(lua_State *L, int t) {
  json_index n = (json_index)qiwi_rawlen(L, t), count = 0;
  if (n <= 0) return -1;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int ok;
    lua_pop(L, 1);
#if QIWI_HAS_INTEGERS
    ok = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n;
#else
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Number k = lua_tonumber(L, -1);
      ok = k >= 1 && k <= (lua_Number)n && k == (lua_Number)(json_index)k;
    } else ok = 0;
#endif
    if (!ok) { lua_pop(L, 1); return -1; }
    count++;
  }
  return count == n ? n : -1;
}

int qiwi_json_encode(lua_State *L) {
  frame fr[QIWI_JSON_MAX_DEPTH];
  int depth = 0, null_idx = lua_upvalueindex(1), amt_idx = lua_upvalueindex(2);
  const char *err = NULL;
  encoder e;
  size_t len;
  const char *s;

  lua_settop(L, 1);
  lua_pushnil(L);                 /* slot 2: the heap buffer, when needed */
  e.L = L;
  e.slot = 2;
  e.buf = e.local;
  e.cap = sizeof e.local;
  e.len = 0;
  lua_pushvalue(L, 1);

value:  /* the value to write is on top; scalars are popped once written */
  switch (lua_type(L, -1)) {
    case LUA_TNIL:
      put(&e, "null", 4);
      break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, -1)) put(&e, "true", 4);
      else put(&e, "false", 5);
      break;
    case LUA_TNUMBER:
      err = put_number(&e, L, -1);
      if (err) goto error;
      break;
    case LUA_TSTRING:
      s = lua_tolstring(L, -1, &len);
      if (!put_string(&e, (const unsigned char *)s, len)) {
        err = "encode: invalid UTF-8 in string";
        goto error;
      }
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, -1) != NULL) { err = "encode: cannot encode light userdata"; goto error; }
      put(&e, "null", 4);
      break;
    case LUA_TUSERDATA:
      if (!lua_rawequal(L, -1, null_idx)) { err = "encode: cannot encode userdata"; goto error; }
      put(&e, "null", 4);
      break;
    case LUA_TTABLE: {
      frame *f;
      int is_array = 0, t = lua_gettop(L), k;
      if (depth == QIWI_JSON_MAX_DEPTH) {
        err = "encode: nesting too deep";
        for (k = 0; k < depth; k++)
          if (lua_rawequal(L, fr[k].table, t)) { err = "encode: cycle detected"; break; }
        goto error;
      }
      if (!lua_checkstack(L, ENCODE_SLACK)) { err = "encode: out of Lua stack"; goto error; }
      if (lua_getmetatable(L, t)) {
        is_array = lua_rawequal(L, -1, amt_idx);
        lua_pop(L, 1);
      }
      f = &fr[depth++];
      f->table = t;
      f->more = 0;
      f->i = 0;
      if (is_array) {
        /* holes read as null; keys outside the sequence are not looked at */
        f->n = (json_index)qiwi_rawlen(L, t);
        put_char(&e, '[');
      } else {
        f->n = sequence_length(L, t);
        if (f->n >= 0) put_char(&e, '[');
        else {
          put_char(&e, '{');
          lua_pushnil(L);
        }
      }
      goto next;
    }
    default:
      lua_pushfstring(L, "encode: cannot encode %s", luaL_typename(L, -1));
      lua_pushnil(L);
      lua_insert(L, -2);
      return 2;
  }
  lua_pop(L, 1);

next:
  if (depth == 0) {
    lua_pushlstring(L, e.buf, e.len);
    return 1;
  }
  {
    frame *f = &fr[depth - 1];
    if (f->n >= 0) {                     /* array: the table is on top */
      if (f->i < f->n) {
        if (f->more) put_char(&e, ',');
        f->more = 1;
        lua_rawgeti(L, f->table, ++f->i);
        goto value;
      }
      put_char(&e, ']');
    } else {                             /* object: table, last key on top */
      if (lua_next(L, f->table)) {
        if (lua_type(L, -2) != LUA_TSTRING) { err = "encode: table key must be a string"; goto error; }
        if (f->more) put_char(&e, ',');
        f->more = 1;
        s = lua_tolstring(L, -2, &len);
        if (!put_string(&e, (const unsigned char *)s, len)) {
          err = "encode: invalid UTF-8 in table key";
          goto error;
        }
        put_char(&e, ':');
        goto value;
      }
      put_char(&e, '}');
    }
    lua_pop(L, 1);
    depth--;
    goto next;
  }

error:
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}
