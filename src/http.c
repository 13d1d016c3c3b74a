/* The HTTP layer shared by qiwi.core.session and qiwi.core.multi (see
 * http.h): buffers, easy-handle policy, request mapping, answer headers,
 * failures, and the qiwi.header_list userdata. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include "compat.h"
#include "http.h"

/* ---- libcurl itself ------------------------------------------------------ */

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

/* ---- buffers ------------------------------------------------------------- */

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
    char *d;
    while (cap < b->len + n) cap *= 2;
    d = realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  qiwi_buffer *b = ud;
  return buffer_append(b, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  qiwi_buffer *b = ud;
  size_t len = size * n;
  /* A new status line starts a new header block (100-continue, HTTP/2 1xx). */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) b->len = 0;
  return buffer_append(b, p, len) == 0 ? len : 0;
}

/* ---- options ------------------------------------------------------------- */

long qiwi_opt_ms(lua_State *L, int t, const char *name, long dflt, const char *what) {
  long v = dflt;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n > 0 && n < 86400.0)) luaL_error(L, "%s option '%s' must be a positive number of seconds", what, name);
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

char *qiwi_strdup(const char *s) {
  size_t n;
  char *d;
  if (s == NULL) return NULL;
  n = strlen(s) + 1;
  d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Appends the list of strings at idx (nil: none) to *list, for resolve=;
 * NULL or a static message. Refuses non-strings and CR, LF or NUL. */
static const char *append_lines(lua_State *L, int idx, struct curl_slist **list) {
  size_t i, n;
  if (lua_isnoneornil(L, idx)) return NULL;
  if (!lua_istable(L, idx)) return "resolve must be a list of strings";
  n = qiwi_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *h;
    struct curl_slist *next;
    lua_rawgeti(L, idx, (int)i);
    h = lua_tolstring(L, -1, &len);
    if (h == NULL || lua_type(L, -1) != LUA_TSTRING) { lua_pop(L, 1); return "resolve must be a list of strings"; }
    if (qiwi_has_line_break(h, len)) { lua_pop(L, 1); return "resolve line contains CR, LF or NUL"; }
    next = curl_slist_append(*list, h);
    lua_pop(L, 1);
    if (next == NULL) return "out of memory";
    *list = next;
  }
  return NULL;
}

/* The string option name of the table at t, copied into *dst (left NULL
 * when absent); raises on CR, LF or NUL and out of memory, never quoting
 * the value (a proxy password). */
static void read_copy(lua_State *L, int t, const char *name, char **dst, const char *what) {
  size_t len;
  const char *v;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return; }
  v = lua_tolstring(L, -1, &len);
  if (v == NULL || lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s option '%s' must be a string", what, name);
  if (qiwi_has_line_break(v, len)) luaL_error(L, "%s option '%s' contains CR, LF or NUL", what, name);
  *dst = qiwi_strdup(v);
  lua_pop(L, 1);
  if (*dst == NULL) luaL_error(L, "%s: out of memory", what);
}

void qiwi_http_config_read(lua_State *L, int t, qiwi_http_config *cfg, const char *what) {
  const char *ca, *err;
  t = qiwi_absindex(L, t);
  cfg->max_body = QIWI_DEFAULT_MAX_BODY;
  cfg->timeout_ms = qiwi_opt_ms(L, t, "timeout", 30000, what);
  cfg->connect_timeout_ms = qiwi_opt_ms(L, t, "connect_timeout", 10000, what);
  lua_getfield(L, t, "allow_http");
  cfg->allow_http = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, t, "max_body");
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n >= 1 && n <= 1024.0 * 1024 * 1024)) luaL_error(L, "%s option 'max_body' out of range", what);
    cfg->max_body = (size_t)n;
  }
  lua_pop(L, 1);
  /* copied: the options table may be gone long before the last request */
  ca = qiwi_opt_string(L, t, "ca_file");
  cfg->ca = qiwi_strdup(ca);
  if (ca && !cfg->ca) luaL_error(L, "%s: out of memory", what);
  lua_getfield(L, t, "resolve");
  err = append_lines(L, lua_gettop(L), &cfg->resolve);
  lua_pop(L, 1);
  if (err != NULL) luaL_error(L, "%s: %s", what, err);
  read_copy(L, t, "proxy", &cfg->proxy, what);
  read_copy(L, t, "proxy_username", &cfg->proxy_username, what);
  read_copy(L, t, "proxy_password", &cfg->proxy_password, what);
}

/* Frees a copy of a secret, overwritten first so that freed memory does
 * not keep it (volatile: the stores must not be dropped as dead). */
static void free_secret(char **p) {
  if (*p != NULL) {
    volatile char *v = *p;
    while (*v) *v++ = '\0';
    free(*p);
    *p = NULL;
  }
}

void qiwi_http_config_free(qiwi_http_config *cfg) {
  free(cfg->ca);
  cfg->ca = NULL;
  free(cfg->proxy);
  cfg->proxy = NULL;
  free(cfg->proxy_username);
  cfg->proxy_username = NULL;
  free_secret(&cfg->proxy_password);
  curl_slist_free_all(cfg->resolve);
  cfg->resolve = NULL;
}

#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(easy, opt, val)

CURLcode qiwi_http_setup(CURL *easy, char *errbuf, const qiwi_http_config *cfg) {
  CURLcode rc = CURLE_OK;
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_ERRORBUFFER, errbuf);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_FOLLOWLOCATION, 0L);   /* a redirect must never carry the token elsewhere */
  SET(CURLOPT_PROTOCOLS_STR, cfg->allow_http ? "https,http" : "https");
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_ACCEPT_ENCODING, "");
  SET(CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
  if (cfg->resolve) SET(CURLOPT_RESOLVE, cfg->resolve);
  if (cfg->ca) SET(CURLOPT_CAINFO, cfg->ca);
  if (cfg->proxy) {
    SET(CURLOPT_PROXY, cfg->proxy);
    /* CONNECT, always: the proxy relays TLS and is never handed a request
     * (the Lua layer takes a proxy for https base URLs only, where libcurl
     * tunnels anyway; this holds whatever a later caller passes) */
    SET(CURLOPT_HTTPPROXYTUNNEL, 1L);
    SET(CURLOPT_NOPROXY, "");          /* the proxy asked for, for every host */
    SET(CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
    if (cfg->ca) SET(CURLOPT_PROXY_CAINFO, cfg->ca);
    if (cfg->proxy_username) SET(CURLOPT_PROXYUSERNAME, cfg->proxy_username);
    if (cfg->proxy_password) SET(CURLOPT_PROXYPASSWORD, cfg->proxy_password);
  } else if (cfg->allow_http) {
    /* plain http goes to loopback only; an http_proxy of the environment
     * would be handed the request, token and all ("" turns proxies off,
     * the environment's too) */
    SET(CURLOPT_PROXY, "");
  }
  return rc;
}

/* The method mapping of both prepares (see http.h): *post when the request
 * is of libcurl's POST kind (a body, or POST), else a plain GET; returns the
 * verb for CURLOPT_CUSTOMREQUEST, NULL when libcurl's own (GET or POST) is it. */
static const char *map_method(const char *method, int has_body, int *post) {
  *post = has_body || strcmp(method, "POST") == 0;
  return strcmp(method, *post ? "POST" : "GET") == 0 ? NULL : method;
}

/* What a prepare does to the answer buffers and the error buffer. */
static void ready_answer(qiwi_buffer *body, qiwi_buffer *head, size_t max_body, char *errbuf) {
  body->len = head->len = 0;
  body->overflow = head->overflow = 0;
  body->max = max_body;
  head->max = QIWI_MAX_HEAD;
  errbuf[0] = '\0';
}

CURLcode qiwi_http_prepare(CURL *easy, const qiwi_http_req *r, qiwi_buffer *body,
                           qiwi_buffer *head, size_t max_body, char *errbuf) {
  CURLcode rc = CURLE_OK;
  int post;
  const char *verb = map_method(r->method, r->body != NULL, &post);
  ready_answer(body, head, max_body, errbuf);
  SET(CURLOPT_URL, r->url);
  SET(CURLOPT_HTTPHEADER, r->headers);
  SET(CURLOPT_WRITEDATA, body);
  SET(CURLOPT_HEADERDATA, head);
  if (post) {
    /* the size first: CURLOPT_POSTFIELDSIZE_LARGE may reset the body pointer */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
  } else {
    SET(CURLOPT_HTTPGET, 1L);
  }
  SET(CURLOPT_CUSTOMREQUEST, verb);
  SET(CURLOPT_TIMEOUT_MS, r->timeout_ms);
  /* libcurl re-sends a request by itself when a reused connection dies
   * before any answer, even a POST the server may have acted on; a
   * connection of its own leaves nothing to re-send on. */
  SET(CURLOPT_FRESH_CONNECT, r->once ? 1L : 0L);
  return rc;
}

void qiwi_http_kept_free(qiwi_http_kept *k) {
  free(k->url);
  memset(k, 0, sizeof *k);
}

int qiwi_http_kept_url(const qiwi_http_kept *k, const char *url, size_t len) {
  return k->url_ok && len == k->url_len && memcmp(url, k->url, len) == 0;
}

/* Remembers url as the handle's; when out of memory, only that it is unknown. */
static void keep_url(qiwi_http_kept *k, const char *url, size_t len) {
  if (len >= k->url_cap) {
    char *p = realloc(k->url, len + 1);
    if (p == NULL) return;
    k->url = p;
    k->url_cap = len + 1;
  }
  memcpy(k->url, url, len);
  k->url[len] = '\0';
  k->url_len = len;
  k->url_ok = 1;
}

/* SET where the kept value differs (or nothing is known). */
#define SET_CHANGED(field, value, opt, arg) \
  if (rc == CURLE_OK && (!known || k->field != (value))) { \
    rc = curl_easy_setopt(easy, opt, arg); \
    k->field = (value); \
  }

CURLcode qiwi_http_prepare_kept(CURL *easy, qiwi_http_kept *k, const qiwi_http_req *r,
                                int method, size_t url_len, qiwi_buffer *body,
                                qiwi_buffer *head, size_t max_body, char *errbuf) {
  CURLcode rc = CURLE_OK;
  int known = k->known, post, custom;
  const char *verb = map_method(r->method, r->body != NULL, &post);
  custom = verb ? method : 0;
  ready_answer(body, head, max_body, errbuf);
  /* Forgotten until every option below is set: a refusal leaves the handle
   * in a state nobody tracks, and the next request sets everything. */
  k->known = 0;
  if (!qiwi_http_kept_url(k, r->url, url_len)) {
    k->url_ok = 0;
    SET(CURLOPT_URL, r->url);
    if (rc == CURLE_OK) keep_url(k, r->url, url_len);
  }
  SET_CHANGED(headers, r->headers, CURLOPT_HTTPHEADER, r->headers)
  SET_CHANGED(body, body, CURLOPT_WRITEDATA, body)
  SET_CHANGED(head, head, CURLOPT_HEADERDATA, head)
  /* The request kind: POST with this body, or GET. A POST's size before
   * its body (see qiwi_http_prepare); its body is set every time (another
   * Lua string) and dropped after the transfer, which leaves libcurl's kind
   * POST: a GET after it sets HTTPGET. */
  if (post) {
    SET_CHANGED(body_len, (curl_off_t)r->body_len, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len)
    SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
    k->body_set = 1;
  } else if (!known || k->post) {
    SET(CURLOPT_HTTPGET, 1L);
  }
  k->post = post;
  SET_CHANGED(custom, custom, CURLOPT_CUSTOMREQUEST, verb)
  SET_CHANGED(timeout_ms, r->timeout_ms, CURLOPT_TIMEOUT_MS, r->timeout_ms)
  /* on a connection of its own: see qiwi_http_prepare */
  SET_CHANGED(once, r->once ? 1 : 0, CURLOPT_FRESH_CONNECT, r->once ? 1L : 0L)
  if (rc != CURLE_OK) {
    k->url_ok = 0;
    return rc;
  }
  k->known = 1;
  return rc;
}

#undef SET_CHANGED
#undef SET

void qiwi_http_done(CURL *easy) {
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)NULL);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
}

void qiwi_http_done_kept(CURL *easy, qiwi_http_kept *k) {
  if (!k->known) {
    /* after a refusal: whatever was set of this request goes */
    qiwi_http_done(easy);
    k->body_set = 0;
  } else if (k->body_set) {
    /* libcurl's kind stays POST (k->post is still 1) */
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)NULL);
    k->body_set = 0;
  }
}

int qiwi_http_method_code(const char *m, size_t len) {
  switch (len) {
    case 3:
      if (memcmp(m, "GET", 3) == 0) return QIWI_METHOD_GET;
      return memcmp(m, "PUT", 3) == 0 ? QIWI_METHOD_PUT : 0;
    case 4: return memcmp(m, "POST", 4) == 0 ? QIWI_METHOD_POST : 0;
    case 5: return memcmp(m, "PATCH", 5) == 0 ? QIWI_METHOD_PATCH : 0;
    case 6: return memcmp(m, "DELETE", 6) == 0 ? QIWI_METHOD_DELETE : 0;
    default: return 0;
  }
}

int qiwi_http_method_known(const char *m, size_t len) {
  return qiwi_http_method_code(m, len) != 0;
}

int qiwi_has_line_break(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}

/* ---- answer headers ------------------------------------------------------ */

/* The answer headers the Lua layer reads. The others (date, server, …) are
 * left out: made into Lua strings they were a fifth of the garbage of a
 * call, for nobody to read. Returns the lower-case name when name (len
 * bytes, any case) is one of them, else NULL. ASCII case folding: the names
 * are ASCII, and no byte outside it folds into ASCII in any locale. */
static const char *wanted_header(const char *name, size_t len) {
  const char *want;
  size_t i;
  switch (len) {
    case 11: want = "retry-after"; break;
    case 12: want = "content-type"; break;
    default: return NULL;
  }
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + ('a' - 'A'));
    if (c != (unsigned char)want[i]) return NULL;
  }
  return want;
}

/* The next header line of b (a header block: status line first) at or after
 * *pos that the Lua layer reads: its lower-case name, its value (trimmed)
 * and their lengths; NULL at the end. *pos: 0 before the first call. One
 * walk for qiwi_push_headers and qiwi_answer_json_like. */
static const char *next_wanted(const qiwi_buffer *b, size_t *pos, size_t *nlen,
                               const char **value, size_t *vlen) {
  const char *end, *nl;
  if (b->data == NULL) return NULL;
  end = b->data + b->len;
  if (*pos == 0) {
    nl = memchr(b->data, '\n', b->len);  /* the end of the status line */
    if (nl == NULL) return NULL;
    *pos = (size_t)(nl + 1 - b->data);
  }
  while (*pos < b->len) {
    const char *line = b->data + *pos, *eol, *colon, *name, *v, *ve;
    nl = memchr(line, '\n', (size_t)(end - line));
    eol = nl ? nl : end;
    *pos = nl ? (size_t)(nl + 1 - b->data) : b->len;
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL) continue;
    name = wanted_header(line, (size_t)(colon - line));
    if (name == NULL) continue;
    v = colon + 1;
    ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    *nlen = (size_t)(colon - line);
    *value = v;
    *vlen = (size_t)(ve - v);
    return name;
  }
  return NULL;
}

void qiwi_push_headers(lua_State *L, const qiwi_buffer *b) {
  size_t pos = 0, nlen, vlen;
  const char *name, *v;
  lua_createtable(L, 0, 2);
  while ((name = next_wanted(b, &pos, &nlen, &v, &vlen)) != NULL) {
    lua_pushlstring(L, name, nlen);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, vlen);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, vlen);
    }
    lua_rawset(L, -3);
  }
}

/* ---- which answers are JSON ---------------------------------------------- */

static int has_json(const char *s, size_t len) {
  size_t i;
  for (i = 0; i + 4 <= len; i++)
    if (s[i] == 'j' && memcmp(s + i, "json", 4) == 0) return 1;
  return 0;
}

/* The rule itself (see http.h). Lua's %s: space, \t, \n, \v, \f, \r. */
int qiwi_json_like(const char *ctype, size_t clen, const char *body, size_t blen) {
  size_t i = 0;
  if (body == NULL || blen == 0) return 0;
  if (ctype != NULL && has_json(ctype, clen)) return 1;
  while (i < blen && (body[i] == ' ' || (body[i] >= '\t' && body[i] <= '\r'))) i++;
  return i < blen && (body[i] == '{' || body[i] == '[');
}

int qiwi_answer_json_like(const qiwi_buffer *head, const qiwi_buffer *body) {
  size_t pos = 0, nlen, vlen;
  const char *name, *v;
  if (body->data == NULL || body->len == 0) return 0;
  /* any content-type line saying json: what the joined value of
   * qiwi_push_headers contains ("json" cannot straddle the ", ") */
  while ((name = next_wanted(head, &pos, &nlen, &v, &vlen)) != NULL)
    if (name[0] == 'c' && has_json(v, vlen)) return 1;
  return qiwi_json_like(NULL, 0, body->data, body->len);
}

int qiwi_json_like_lua(lua_State *L) {
  size_t clen = 0, blen = 0;
  const char *ctype = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &clen) : NULL;
  const char *body = lua_isstring(L, 2) ? lua_tolstring(L, 2, &blen) : NULL;
  lua_pushboolean(L, qiwi_json_like(ctype, clen, body, blen));
  return 1;
}

/* ---- failures ------------------------------------------------------------ */

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

/* Every CURLcode of libcurl 7.85 (the oldest this core builds against: it
 * needs CURLOPT_PROTOCOLS_STR) but the CURLE_OBSOLETE* ones, and the later
 * ones where the headers have them. */
const char *qiwi_curl_code_name(CURLcode rc) {
#define C(x) case x: return #x;
  switch (rc) {
    C(CURLE_OK)
    C(CURLE_UNSUPPORTED_PROTOCOL)
    C(CURLE_FAILED_INIT)
    C(CURLE_URL_MALFORMAT)
    C(CURLE_NOT_BUILT_IN)
    C(CURLE_COULDNT_RESOLVE_PROXY)
    C(CURLE_COULDNT_RESOLVE_HOST)
    C(CURLE_COULDNT_CONNECT)
    C(CURLE_WEIRD_SERVER_REPLY)
    C(CURLE_REMOTE_ACCESS_DENIED)
    C(CURLE_FTP_ACCEPT_FAILED)
    C(CURLE_FTP_WEIRD_PASS_REPLY)
    C(CURLE_FTP_ACCEPT_TIMEOUT)
    C(CURLE_FTP_WEIRD_PASV_REPLY)
    C(CURLE_FTP_WEIRD_227_FORMAT)
    C(CURLE_FTP_CANT_GET_HOST)
    C(CURLE_HTTP2)
    C(CURLE_FTP_COULDNT_SET_TYPE)
    C(CURLE_PARTIAL_FILE)
    C(CURLE_FTP_COULDNT_RETR_FILE)
    C(CURLE_QUOTE_ERROR)
    C(CURLE_HTTP_RETURNED_ERROR)
    C(CURLE_WRITE_ERROR)
    C(CURLE_UPLOAD_FAILED)
    C(CURLE_READ_ERROR)
    C(CURLE_OUT_OF_MEMORY)
    C(CURLE_OPERATION_TIMEDOUT)
    C(CURLE_FTP_PORT_FAILED)
    C(CURLE_FTP_COULDNT_USE_REST)
    C(CURLE_RANGE_ERROR)
    C(CURLE_HTTP_POST_ERROR)
    C(CURLE_SSL_CONNECT_ERROR)
    C(CURLE_BAD_DOWNLOAD_RESUME)
    C(CURLE_FILE_COULDNT_READ_FILE)
    C(CURLE_LDAP_CANNOT_BIND)
    C(CURLE_LDAP_SEARCH_FAILED)
    C(CURLE_FUNCTION_NOT_FOUND)
    C(CURLE_ABORTED_BY_CALLBACK)
    C(CURLE_BAD_FUNCTION_ARGUMENT)
    C(CURLE_INTERFACE_FAILED)
    C(CURLE_TOO_MANY_REDIRECTS)
    C(CURLE_UNKNOWN_OPTION)
    C(CURLE_SETOPT_OPTION_SYNTAX)
    C(CURLE_GOT_NOTHING)
    C(CURLE_SSL_ENGINE_NOTFOUND)
    C(CURLE_SSL_ENGINE_SETFAILED)
    C(CURLE_SEND_ERROR)
    C(CURLE_RECV_ERROR)
    C(CURLE_SSL_CERTPROBLEM)
    C(CURLE_SSL_CIPHER)
    C(CURLE_PEER_FAILED_VERIFICATION)
    C(CURLE_BAD_CONTENT_ENCODING)
    C(CURLE_FILESIZE_EXCEEDED)
    C(CURLE_USE_SSL_FAILED)
    C(CURLE_SEND_FAIL_REWIND)
    C(CURLE_SSL_ENGINE_INITFAILED)
    C(CURLE_LOGIN_DENIED)
    C(CURLE_TFTP_NOTFOUND)
    C(CURLE_TFTP_PERM)
    C(CURLE_REMOTE_DISK_FULL)
    C(CURLE_TFTP_ILLEGAL)
    C(CURLE_TFTP_UNKNOWNID)
    C(CURLE_REMOTE_FILE_EXISTS)
    C(CURLE_TFTP_NOSUCHUSER)
    C(CURLE_SSL_CACERT_BADFILE)
    C(CURLE_REMOTE_FILE_NOT_FOUND)
    C(CURLE_SSH)
    C(CURLE_SSL_SHUTDOWN_FAILED)
    C(CURLE_AGAIN)
    C(CURLE_SSL_CRL_BADFILE)
    C(CURLE_SSL_ISSUER_ERROR)
    C(CURLE_FTP_PRET_FAILED)
    C(CURLE_RTSP_CSEQ_ERROR)
    C(CURLE_RTSP_SESSION_ERROR)
    C(CURLE_FTP_BAD_FILE_LIST)
    C(CURLE_CHUNK_FAILED)
    C(CURLE_NO_CONNECTION_AVAILABLE)
    C(CURLE_SSL_PINNEDPUBKEYNOTMATCH)
    C(CURLE_SSL_INVALIDCERTSTATUS)
    C(CURLE_HTTP2_STREAM)
    C(CURLE_RECURSIVE_API_CALL)
    C(CURLE_AUTH_ERROR)
    C(CURLE_HTTP3)
    C(CURLE_QUIC_CONNECT_ERROR)
    C(CURLE_PROXY)
    C(CURLE_SSL_CLIENTCERT)
    C(CURLE_UNRECOVERABLE_POLL)
#if LIBCURL_VERSION_NUM >= 0x080600
    C(CURLE_TOO_LARGE)
#endif
#if LIBCURL_VERSION_NUM >= 0x080800
    C(CURLE_ECH_REQUIRED)
#endif
    default: return NULL;
  }
#undef C
}

void qiwi_push_curl_code(lua_State *L, CURLcode rc) {
  const char *name = qiwi_curl_code_name(rc);
  if (name) lua_pushstring(L, name);
  else lua_pushfstring(L, "CURLE_%d", (int)rc);
}

int qiwi_http_fail(lua_State *L, const char *kind, const char *msg, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, kind);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 4;
}

int qiwi_http_proxy_refused(CURL *easy, CURLcode rc) {
  long connect_code = 0, px = 0;
  if (rc == CURLE_OK) return 0;
  if (curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &connect_code) == CURLE_OK
      && (connect_code == 401 || connect_code == 403 || connect_code == 407))
    return 1;
  /* 502, 503 and other answers of an HTTP proxy, and SOCKS5 failures to
   * reach QIWI, may pass: those stay retryable */
  if (rc == CURLE_PROXY && curl_easy_getinfo(easy, CURLINFO_PROXY_ERROR, &px) == CURLE_OK)
    return px == CURLPX_USER_REJECTED || px == CURLPX_NO_AUTH || px == CURLPX_REPLY_NOT_ALLOWED;
  return 0;
}

int qiwi_http_push_error(lua_State *L, CURLcode rc, const char *errbuf, const qiwi_buffer *body,
                         int proxy_refused) {
  if (rc == CURLE_WRITE_ERROR && body->overflow) {
    lua_pushliteral(L, "http");
    lua_pushfstring(L, "response body exceeds the %d byte cap", (int)body->max);
    lua_pushliteral(L, QIWI_CODE_BODY_CAP);
  } else if (proxy_refused) {
    const char *name = qiwi_curl_code_name(rc);
    lua_pushliteral(L, "network");
    lua_pushfstring(L, "the proxy refused the tunnel: %s (%s)", errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc),
                    name ? name : "CURLE_?");
    lua_pushliteral(L, QIWI_CODE_PROXY_REFUSED);
  } else {
    lua_pushstring(L, qiwi_curl_error_kind(rc));
    lua_pushstring(L, errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
    qiwi_push_curl_code(L, rc);
  }
  return 3;
}

/* ---- header lists -------------------------------------------------------- */

/* True when line is a header named name (ASCII, any case). */
static int header_named(const char *line, const char *name) {
  size_t i;
  for (i = 0; name[i]; i++)
    if (tolower((unsigned char)line[i]) != name[i]) return 0;
  return line[i] == ':' || line[i] == ';';
}

/* Appends "Expect:" unless the list has an Expect header already (see
 * http.h); NULL or a static message. */
static const char *suppress_expect(struct curl_slist **list) {
  struct curl_slist *p, *next;
  for (p = *list; p != NULL; p = p->next)
    if (header_named(p->data, "expect")) return NULL;
  next = curl_slist_append(*list, "Expect:");
  if (next == NULL) return "out of memory";
  *list = next;
  return NULL;
}

void qiwi_no_expect_init(qiwi_no_expect *ne) {
  memcpy(ne->text, "Expect:", sizeof "Expect:");
  ne->node.data = ne->text;
  ne->node.next = NULL;
}

typedef struct {
  struct curl_slist *list;           /* NULL when closed */
} header_list;

/* The one destructor behind close, __gc and __close; safe to call twice. */
static int header_list_close(lua_State *L) {
  header_list *h = luaL_checkudata(L, 1, QIWI_HEADER_LIST_MT);
  curl_slist_free_all(h->list);
  h->list = NULL;
  return 0;
}

static int header_list_closed(lua_State *L) {
  header_list *h = luaL_checkudata(L, 1, QIWI_HEADER_LIST_MT);
  lua_pushboolean(L, h->list == NULL);
  return 1;
}

static int header_list_tostring(lua_State *L) {
  header_list *h = luaL_checkudata(L, 1, QIWI_HEADER_LIST_MT);
  /* never the lines: they hold the token */
  if (h->list) lua_pushfstring(L, "qiwi.header_list (%p)", (void *)h);
  else lua_pushliteral(L, "qiwi.header_list (closed)");
  return 1;
}

/* RFC 9110 token characters, what a header name is made of. */
static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Checks one line; NULL or a static message. */
static const char *bad_line(const char *line, size_t len) {
  const char *colon, *p;
  if (qiwi_has_line_break(line, len)) return "header line contains CR, LF or NUL";
  colon = memchr(line, ':', len);
  if (colon == NULL) return "header line has no colon";
  if (colon == line) return "header line has no name before the colon";
  for (p = line; p < colon; p++)
    if (!is_tchar((unsigned char)*p)) return "header name is not an HTTP token";
  return NULL;
}

/* core.header_list(lines): every line "Name: value", the name an HTTP token,
 * no CR, LF or NUL. The list is complete (Accept, Authorization,
 * Content-Type, User-Agent are the caller's); only "Expect:" is added. */
int qiwi_header_list_new(lua_State *L) {
  header_list *h;
  size_t i, n;
  const char *err = NULL;
  int oom = 0;
  if (!lua_istable(L, 1))
    return qiwi_http_fail(L, "argument", "header_list needs a list of \"Name: value\" strings",
                          QIWI_CODE_ARGUMENT);
  lua_settop(L, 1);
  /* Born empty: a raise below (out of memory) leaves __gc a valid list to free. */
  h = qiwi_newuserdata(L, sizeof *h);
  h->list = NULL;
  qiwi_setmetatable(L, QIWI_HEADER_LIST_MT);
  n = qiwi_rawlen(L, 1);
  for (i = 1; i <= n && err == NULL; i++) {
    size_t len;
    const char *line;
    lua_rawgeti(L, 1, (int)i);
    line = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    err = line == NULL ? "header lines must be strings" : bad_line(line, len);
    if (err == NULL) {
      struct curl_slist *next = curl_slist_append(h->list, line);
      if (next == NULL) { err = "out of memory"; oom = 1; }
      else h->list = next;
    }
    lua_pop(L, 1);
  }
  if (err == NULL && (err = suppress_expect(&h->list)) != NULL) oom = 1;
  if (err != NULL) {
    curl_slist_free_all(h->list);
    h->list = NULL;
    return oom ? qiwi_http_fail(L, "network", err, "CURLE_OUT_OF_MEMORY")
               : qiwi_http_fail(L, "argument", err, QIWI_CODE_ARGUMENT);
  }
  return 1;
}

const char *qiwi_header_list_arg(lua_State *L, int idx, struct curl_slist *dflt,
                                 struct curl_slist **out) {
  header_list *h;
  if (lua_isnoneornil(L, idx)) { *out = dflt; return NULL; }
  h = qiwi_testudata(L, idx, QIWI_HEADER_LIST_MT);
  if (h == NULL) return "headers must be a qiwi.header_list";
  if (h->list == NULL) return "header list is closed";
  *out = h->list;
  return NULL;
}

static const luaL_Reg hl_meth[] = {
  {"close", header_list_close},
  {"closed", header_list_closed},
  {NULL, NULL}
};

static const luaL_Reg hl_metameth[] = {
  {"__gc", header_list_close},
  {"__close", header_list_close},
  {"__tostring", header_list_tostring},
  {NULL, NULL}
};

void qiwi_http_register(lua_State *L) {
  luaL_newmetatable(L, QIWI_HEADER_LIST_MT);
  qiwi_setfuncs(L, hl_metameth, 0);
  lua_createtable(L, 0, 2);
  qiwi_setfuncs(L, hl_meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
