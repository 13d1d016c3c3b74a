/* qiwi.core.session: a client's HTTPS connection. One libcurl easy handle per
 * session is reused for every request, so libcurl keeps the TLS connection
 * alive between calls. Constant headers are turned into a curl_slist once, at
 * creation, and the body/header buffers are reused across requests. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include "compat.h"
#include "json.h"
#include "session.h"

#define DEFAULT_MAX_BODY (10u * 1024u * 1024u)

typedef struct {
  CURL *easy;                       /* NULL when closed */
  struct curl_slist *headers;       /* constant headers, built once */
  struct curl_slist *resolve;
  qiwi_buffer body, head;
  long timeout_ms, connect_timeout_ms;
  int busy;
  char errbuf[CURL_ERROR_SIZE];
} session;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;  /* written once under pthread_once */

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int qiwi_curl_global_init(void) {
  pthread_once(&global_once, global_init);
  return global_rc == CURLE_OK ? 0 : -1;
}

int qiwi_curl_version(lua_State *L) {
  lua_pushstring(L, curl_version());
  return 1;
}

void qiwi_buffer_free(qiwi_buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Big answers must not pin memory for the lifetime of the client. */
void qiwi_buffer_trim(qiwi_buffer *b) {
  b->len = 0;
  b->overflow = 0;
  if (b->cap > QIWI_KEEP_BUFFER) qiwi_buffer_free(b);
}

static int buffer_append(qiwi_buffer *b, const char *p, size_t n) {
  if (n > b->max - b->len) { b->overflow = 1; return -1; }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

size_t qiwi_on_body(char *p, size_t size, size_t n, void *ud) {
  qiwi_buffer *b = ud;
  return buffer_append(b, p, size * n) == 0 ? size * n : 0;
}

size_t qiwi_on_header(char *p, size_t size, size_t n, void *ud) {
  qiwi_buffer *b = ud;
  size_t len = size * n;
  /* A new status line starts a new header block (100-continue, HTTP/2 1xx). */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) b->len = 0;
  return buffer_append(b, p, len) == 0 ? len : 0;
}

/* What every easy handle of the core sets, the session's and the batch's
 * alike, so that TLS verification and the redirect policy live in one place. */
CURLcode qiwi_easy_setup(CURL *easy, char *errbuf, qiwi_buffer *body, qiwi_buffer *head,
                         int allow_http, const char *ca, const char *ua,
                         struct curl_slist *resolve) {
  CURLcode rc = CURLE_OK;
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(easy, opt, val)
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_ERRORBUFFER, errbuf);
  SET(CURLOPT_WRITEFUNCTION, qiwi_on_body);
  SET(CURLOPT_WRITEDATA, body);
  SET(CURLOPT_HEADERFUNCTION, qiwi_on_header);
  SET(CURLOPT_HEADERDATA, head);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_FOLLOWLOCATION, 0L);   /* a redirect must never carry the token elsewhere */
  SET(CURLOPT_PROTOCOLS_STR, allow_http ? "https,http" : "https");
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_ACCEPT_ENCODING, "");
  if (resolve) SET(CURLOPT_RESOLVE, resolve);
  if (ca) SET(CURLOPT_CAINFO, ca);
  if (ua) SET(CURLOPT_USERAGENT, ua);
#undef SET
  return rc;
}

static session *check_session(lua_State *L) {
  return luaL_checkudata(L, 1, QIWI_SESSION_MT);
}

/* The one destructor behind close, __gc and __close; safe to call twice. */
static void session_release(session *s) {
  if (s->easy) curl_easy_cleanup(s->easy);
  s->easy = NULL;
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  curl_slist_free_all(s->resolve);
  s->resolve = NULL;
  qiwi_buffer_free(&s->body);
  qiwi_buffer_free(&s->head);
}

static int session_close(lua_State *L) {
  session_release(check_session(L));
  return 0;
}

static int session_closed(lua_State *L) {
  lua_pushboolean(L, check_session(L)->easy == NULL);
  return 1;
}

static int session_tostring(lua_State *L) {
  session *s = check_session(L);
  if (s->easy) lua_pushfstring(L, "qiwi.session (%p)", (void *)s);
  else lua_pushliteral(L, "qiwi.session (closed)");
  return 1;
}

int qiwi_has_line_break(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}

/* Appends the strings of the list at idx to *list. Returns NULL on success or
 * a static message. */
const char *qiwi_append_header_list(lua_State *L, int idx, struct curl_slist **list) {
  size_t i, n;
  if (lua_isnoneornil(L, idx)) return NULL;
  if (!lua_istable(L, idx)) return "headers must be a list of strings";
  n = qiwi_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *h;
    struct curl_slist *next;
    lua_rawgeti(L, idx, (int)i);
    h = lua_tolstring(L, -1, &len);
    if (h == NULL || lua_type(L, -1) != LUA_TSTRING) { lua_pop(L, 1); return "headers must be a list of strings"; }
    if (qiwi_has_line_break(h, len)) { lua_pop(L, 1); return "header contains CR, LF or NUL"; }
    next = curl_slist_append(*list, h);
    lua_pop(L, 1);
    if (next == NULL) return "out of memory";
    *list = next;
  }
  return NULL;
}

long qiwi_opt_ms(lua_State *L, int t, const char *name, long dflt) {
  long v = dflt;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n > 0 && n < 86400.0)) luaL_error(L, "session option '%s' must be a positive number of seconds", name);
    v = (long)(n * 1000.0 + 0.5);
    if (v < 1) v = 1;
  }
  lua_pop(L, 1);
  return v;
}

const char *qiwi_opt_string(lua_State *L, int t, const char *name) {
  const char *v = NULL;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) v = luaL_checkstring(L, -1);
  lua_pop(L, 1);  /* the string stays alive: it is referenced by the options table */
  return v;
}

/* session{connect_timeout=, timeout=, ca_file=, user_agent=, headers={...},
 *         resolve={"host:port:ip", ...}, allow_http=false, max_body=} */
int qiwi_session_new(lua_State *L) {
  session *s;
  const char *ca, *ua, *err;
  int allow_http;
  CURLcode rc = CURLE_OK;
  lua_Integer max_body = DEFAULT_MAX_BODY;

  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  /* Born closed: if anything below fails, __gc has nothing to free twice. */
  s = qiwi_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  qiwi_setmetatable(L, QIWI_SESSION_MT);

  s->timeout_ms = qiwi_opt_ms(L, 1, "timeout", 30000);
  s->connect_timeout_ms = qiwi_opt_ms(L, 1, "connect_timeout", 10000);
  ca = qiwi_opt_string(L, 1, "ca_file");
  ua = qiwi_opt_string(L, 1, "user_agent");
  lua_getfield(L, 1, "allow_http");
  allow_http = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "max_body");
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n >= 1 && n <= 1024.0 * 1024 * 1024)) return luaL_error(L, "session option 'max_body' out of range");
    max_body = (lua_Integer)n;
  }
  lua_pop(L, 1);
  s->body.max = (size_t)max_body;
  s->head.max = 64 * 1024;

  lua_getfield(L, 1, "headers");
  err = qiwi_append_header_list(L, lua_gettop(L), &s->headers);
  lua_pop(L, 1);
  if (err == NULL) {
    lua_getfield(L, 1, "resolve");
    err = qiwi_append_header_list(L, lua_gettop(L), &s->resolve);
    lua_pop(L, 1);
  }
  if (err == NULL) {
    /* libcurl sends "Expect: 100-continue" for big bodies; QIWI gains nothing from the extra round trip. */
    struct curl_slist *next = curl_slist_append(s->headers, "Expect:");
    if (next == NULL) err = "out of memory";
    else s->headers = next;
  }
  if (err != NULL) {
    session_release(s);
    return luaL_error(L, "session: %s", err);
  }

  s->easy = curl_easy_init();
  if (s->easy == NULL) {
    session_release(s);
    lua_pushnil(L);
    lua_pushliteral(L, "network");
    lua_pushliteral(L, "curl_easy_init failed");
    return 3;
  }

  rc = qiwi_easy_setup(s->easy, s->errbuf, &s->body, &s->head, allow_http, ca, ua, s->resolve);
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(s->easy, opt, val)
  SET(CURLOPT_HTTPHEADER, s->headers);
  SET(CURLOPT_TIMEOUT_MS, s->timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
#undef SET
  if (rc != CURLE_OK) {
    const char *msg = curl_easy_strerror(rc);
    session_release(s);
    return luaL_error(L, "session: cannot configure libcurl: %s", msg);
  }
  return 1;
}

const char *qiwi_curl_error_kind(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
      return "tls";
    default:
      return "network";
  }
}

/* The answer headers the Lua layer reads. The others (date, server, …) are
 * left out: made into Lua strings they were a fifth of the garbage of a
 * call, for nobody to read. */
static int wanted_header(const char *name, size_t len) {
  switch (len) {
    case 11: return memcmp(name, "retry-after", 11) == 0;
    case 12: return memcmp(name, "content-type", 12) == 0;
    default: return 0;
  }
}

/* Pushes the wanted response headers as {lower-case name = value}; repeated
 * names are joined with ", " as HTTP allows. */
void qiwi_push_headers(lua_State *L, const qiwi_buffer *b) {
  const char *p = b->data, *end = b->data + b->len;
  lua_createtable(L, 0, 2);
  if (p == NULL) return;
  /* skip the status line */
  while (p < end && *p != '\n') p++;
  while (p < end) {
    const char *line = ++p, *colon = NULL, *eol, *v, *ve;
    char name[128];
    size_t nlen, i;
    while (p < end && *p != '\n') { if (!colon && *p == ':') colon = p; p++; }
    eol = p;
    if (colon == NULL) continue;
    nlen = (size_t)(colon - line);
    if (nlen == 0 || nlen >= sizeof name) continue;
    for (i = 0; i < nlen; i++) name[i] = (char)tolower((unsigned char)line[i]);
    if (!wanted_header(name, nlen)) continue;
    v = colon + 1;
    ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    lua_pushlstring(L, name, nlen);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(ve - v));
    }
    lua_rawset(L, -3);
  }
}

int qiwi_is_json_type(lua_State *L, int headers) {
  const char *ct;
  int json;
  lua_getfield(L, headers, "content-type");
  ct = lua_tostring(L, -1);
  json = ct != NULL && strstr(ct, "json") != NULL;
  lua_pop(L, 1);
  return json;
}

static int fail(lua_State *L, const char *kind, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, kind);
  lua_pushstring(L, msg);
  return 3;
}

/* True when `list` already has a header of the same name as `line`, so a
 * per-call header (say Accept) replaces the constant one instead of doubling it. */
static int overridden(const struct curl_slist *list, const char *line) {
  const char *colon = strchr(line, ':');
  size_t n = colon ? (size_t)(colon - line) : strlen(line);
  for (; list != NULL; list = list->next)
    if (strncasecmp(list->data, line, n) == 0 && (list->data[n] == ':' || list->data[n] == ';'))
      return 1;
  return 0;
}

/* session:request(method, url, headers, body, decode, timeout, once)
 *   -> status, body, headers, true            (body decoded: asked for and JSON)
 *   -> status, raw_body, headers, decode_error (asked for, JSON, but invalid)
 *   -> status, raw_body, headers               (not asked for, or not JSON)
 *   -> nil, kind, message                       (no answer)
 * once: on a new connection. libcurl re-sends a request by itself when a
 * reused connection dies before any answer, even a POST the server may have
 * acted on; a connection of its own leaves nothing to re-send on. */
static int session_request(lua_State *L) {
  session *s = check_session(L);
  const char *method = luaL_checkstring(L, 2);
  const char *url = luaL_checkstring(L, 3);
  size_t body_len = 0, url_len;
  const char *body = luaL_optlstring(L, 5, NULL, &body_len);
  int decode = lua_toboolean(L, 6);
  lua_Number tmo = luaL_optnumber(L, 7, 0);
  int once = lua_toboolean(L, 8);
  struct curl_slist *list = NULL;
  const char *err;
  CURLcode rc = CURLE_OK;
  long status = 0;
  int nret;

  (void)lua_tolstring(L, 3, &url_len);
  if (s->easy == NULL) return fail(L, "argument", "session is closed");
  if (s->busy) return fail(L, "argument", "session is busy with another request");
  if (qiwi_has_line_break(url, url_len) || qiwi_has_line_break(method, strlen(method)))
    return fail(L, "argument", "URL or method contains CR, LF or NUL");

  /* Per-call headers go first so that they can override constant ones. */
  if (!lua_isnoneornil(L, 4)) {
    struct curl_slist *p;
    err = qiwi_append_header_list(L, 4, &list);
    if (err != NULL) { curl_slist_free_all(list); return fail(L, "argument", err); }
    for (p = s->headers; p != NULL; p = p->next) {
      struct curl_slist *next;
      if (overridden(list, p->data)) continue;
      next = curl_slist_append(list, p->data);
      if (next == NULL) { curl_slist_free_all(list); return fail(L, "network", "out of memory"); }
      list = next;
    }
  }

#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(s->easy, opt, val)
  SET(CURLOPT_URL, url);
  SET(CURLOPT_HTTPHEADER, list ? list : s->headers);
  if (strcmp(method, "GET") == 0 && body == NULL) {
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
  } else if (body == NULL && strcmp(method, "POST") != 0) {
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_CUSTOMREQUEST, method);
  } else {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    SET(CURLOPT_POSTFIELDS, body ? body : "");
    SET(CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ? NULL : method);
  }
  SET(CURLOPT_TIMEOUT_MS, tmo > 0 ? (long)(tmo * 1000.0 + 0.5) : s->timeout_ms);
  SET(CURLOPT_FRESH_CONNECT, once ? 1L : 0L);
#undef SET
  if (rc != CURLE_OK) {
    curl_slist_free_all(list);
    return fail(L, "argument", curl_easy_strerror(rc));
  }

  s->body.len = s->head.len = 0;
  s->body.overflow = s->head.overflow = 0;
  s->errbuf[0] = '\0';
  s->busy = 1;
  rc = curl_easy_perform(s->easy);
  s->busy = 0;
  /* POSTFIELDS points into a Lua string that may be collected after we return. */
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, (char *)NULL);
  curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
  curl_slist_free_all(list);

  if (rc != CURLE_OK) {
    if (rc == CURLE_WRITE_ERROR && s->body.overflow) {
      lua_pushnil(L);
      lua_pushliteral(L, "http");
      lua_pushfstring(L, "response body exceeds the %d byte cap", (int)s->body.max);
    } else {
      const char *msg = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
      lua_pushnil(L);
      lua_pushstring(L, qiwi_curl_error_kind(rc));
      lua_pushstring(L, msg);
    }
    qiwi_buffer_trim(&s->body);
    qiwi_buffer_trim(&s->head);
    return 3;
  }

  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  lua_pushinteger(L, (lua_Integer)status);
  lua_pushnil(L);                         /* body slot, filled below */
  qiwi_push_headers(L, &s->head);
  nret = 3;
  if (decode && s->body.len > 0 && qiwi_is_json_type(L, -1)) {
    if (qiwi_json_decode_buf(L, s->body.data, s->body.len,
                             lua_upvalueindex(1), lua_upvalueindex(2))) {
      lua_replace(L, -3);
      lua_pushboolean(L, 1);
      nret = 4;
    } else {
      /* keep the raw text so the caller can show or log it */
      lua_pushlstring(L, s->body.data, s->body.len);
      lua_replace(L, -4);
      nret = 4;
    }
  } else {
    lua_pushlstring(L, s->body.data ? s->body.data : "", s->body.len);
    lua_replace(L, -3);
  }
  qiwi_buffer_trim(&s->body);
  qiwi_buffer_trim(&s->head);
  return nret;
}

/* session:info() -> {connects=, http_version=, primary_port=} of the last request */
static int session_info(lua_State *L) {
  session *s = check_session(L);
  long connects = 0, version = 0, port = 0;
  if (s->easy == NULL) return fail(L, "argument", "session is closed");
  curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
  curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(s->easy, CURLINFO_PRIMARY_PORT, &port);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, connects);
  lua_setfield(L, -2, "connects");
  lua_pushstring(L, version == CURL_HTTP_VERSION_2_0 ? "2" :
                    version == CURL_HTTP_VERSION_1_1 ? "1.1" :
                    version == CURL_HTTP_VERSION_1_0 ? "1.0" : "unknown");
  lua_setfield(L, -2, "http_version");
  lua_pushinteger(L, port);
  lua_setfield(L, -2, "primary_port");
  return 1;
}

static const luaL_Reg meth[] = {
  {"request", session_request},
  {"info", session_info},
  {"close", session_close},
  {"closed", session_closed},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__gc", session_close},
  {"__close", session_close},
  {"__tostring", session_tostring},
  {NULL, NULL}
};

void qiwi_session_register(lua_State *L) {
  /* stack: ... null array_mt */
  luaL_newmetatable(L, QIWI_SESSION_MT);
  qiwi_setfuncs(L, metameth, 0);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  qiwi_setfuncs(L, meth, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
