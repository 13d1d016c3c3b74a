/* qiwi.core.multi: runs a batch of requests at once on one libcurl multi
 * handle.
 *
 * The multi handle lives as long as the client, so its connection cache (and
 * with it the TLS connection, multiplexed over HTTP/2 when the server speaks
 * it) carries over from one batch to the next. Easy handles are pooled and
 * configured once; header sets are turned into curl_slists once, when
 * registered, and referred to by number afterwards.
 *
 * perform() works in two phases: first every transfer runs to completion
 * without touching Lua, then the answers are pushed (and decoded). So a Lua
 * error while building results (out of memory) can never leave a transfer
 * attached to the multi handle or the object marked busy. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include "compat.h"
#include "json.h"
#include "session.h"
#include "batch.h"

#define DEFAULT_MAX_BODY (10u * 1024u * 1024u)
#define MAX_CONCURRENCY 256
/* Connections the cache keeps between batches: one suffices over HTTP/2;
 * the rest is for HTTP/1.1 servers, where every concurrent call has its own. */
#define KEEP_CONNECTIONS 16L

typedef struct {
  CURL *easy;
  int item;                       /* index into items, or -1 when idle */
  char errbuf[CURL_ERROR_SIZE];
} xfer;

typedef struct {
  const char *method, *url, *body;  /* borrowed from the request table during perform */
  size_t body_len;
  int hid, decode, once;
  const char *invalid;              /* static message: refused before sending */
  CURLcode rc;
  long status;
  char *err;                        /* copy of the transfer's error buffer, when it failed */
  qiwi_buffer body_buf, head_buf;
} item;

typedef struct {
  CURLM *multi;                     /* NULL when closed */
  xfer **pool;                      /* allocated one by one: libcurl keeps pointers into them */
  int npool;
  struct curl_slist **sets;         /* header sets; id = index + 1 */
  int nsets;
  item *items;
  size_t cap_items;
  struct curl_slist *resolve;
  char *ca, *ua;
  long timeout_ms, connect_timeout_ms;
  size_t max_body;
  int allow_http, http2, busy;
  long connects, h2, transfers;     /* of the last perform */
} multi;

static multi *check_multi(lua_State *L) {
  return luaL_checkudata(L, 1, QIWI_MULTI_MT);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static char *dup_string(const char *s) {
  size_t n;
  char *d;
  if (s == NULL) return NULL;
  n = strlen(s) + 1;
  d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void item_release(item *it) {
  qiwi_buffer_free(&it->body_buf);
  qiwi_buffer_free(&it->head_buf);
  free(it->err);
  it->err = NULL;
}

/* The one destructor behind close, __gc and __close; safe to call twice. */
static void multi_release(multi *m) {
  int i;
  size_t k;
  for (i = 0; i < m->npool; i++) {
    xfer *x = m->pool[i];
    if (x->item >= 0 && m->multi) curl_multi_remove_handle(m->multi, x->easy);
    curl_easy_cleanup(x->easy);
    free(x);
  }
  free(m->pool);
  m->pool = NULL;
  m->npool = 0;
  if (m->multi) curl_multi_cleanup(m->multi);
  m->multi = NULL;
  for (i = 0; i < m->nsets; i++) curl_slist_free_all(m->sets[i]);
  free(m->sets);
  m->sets = NULL;
  m->nsets = 0;
  for (k = 0; k < m->cap_items; k++) item_release(&m->items[k]);
  free(m->items);
  m->items = NULL;
  m->cap_items = 0;
  curl_slist_free_all(m->resolve);
  m->resolve = NULL;
  free(m->ca);
  free(m->ua);
  m->ca = m->ua = NULL;
}

static int multi_close(lua_State *L) {
  multi_release(check_multi(L));
  return 0;
}

static int multi_closed(lua_State *L) {
  lua_pushboolean(L, check_multi(L)->multi == NULL);
  return 1;
}

static int multi_tostring(lua_State *L) {
  multi *m = check_multi(L);
  if (m->multi) lua_pushfstring(L, "qiwi.multi (%p)", (void *)m);
  else lua_pushliteral(L, "qiwi.multi (closed)");
  return 1;
}

static int fail(lua_State *L, const char *kind, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, kind);
  lua_pushstring(L, msg);
  return 3;
}

/* multi{connect_timeout=, timeout=, ca_file=, user_agent=, resolve={...},
 *       allow_http=false, max_body=, http2=true} */
int qiwi_multi_new(lua_State *L) {
  multi *m;
  const char *err = NULL;
  lua_Integer max_body = DEFAULT_MAX_BODY;

  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  m = qiwi_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  qiwi_setmetatable(L, QIWI_MULTI_MT);

  m->timeout_ms = qiwi_opt_ms(L, 1, "timeout", 30000);
  m->connect_timeout_ms = qiwi_opt_ms(L, 1, "connect_timeout", 10000);
  lua_getfield(L, 1, "allow_http");
  m->allow_http = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "http2");
  m->http2 = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "max_body");
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n >= 1 && n <= 1024.0 * 1024 * 1024)) return luaL_error(L, "multi option 'max_body' out of range");
    max_body = (lua_Integer)n;
  }
  lua_pop(L, 1);
  m->max_body = (size_t)max_body;

  /* copied: the options table may be gone long before the last batch */
  {
    const char *ca = qiwi_opt_string(L, 1, "ca_file"), *ua = qiwi_opt_string(L, 1, "user_agent");
    m->ca = dup_string(ca);
    m->ua = dup_string(ua);
    if ((ca && !m->ca) || (ua && !m->ua)) err = "out of memory";
  }
  if (err == NULL) {
    lua_getfield(L, 1, "resolve");
    err = qiwi_append_header_list(L, lua_gettop(L), &m->resolve);
    lua_pop(L, 1);
  }
  if (err != NULL) {
    multi_release(m);
    return luaL_error(L, "multi: %s", err);
  }

  m->multi = curl_multi_init();
  if (m->multi == NULL) {
    multi_release(m);
    return fail(L, "network", "curl_multi_init failed");
  }
  curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, KEEP_CONNECTIONS);
  return 1;
}

/* multi:headers({"Name: value", ...}) -> id: a constant header set, turned
 * into a curl_slist once and used by number in perform(). */
static int multi_headers(lua_State *L) {
  multi *m = check_multi(L);
  struct curl_slist *list = NULL, *next;
  struct curl_slist **sets;
  const char *err;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (m->multi == NULL) return fail(L, "argument", "multi is closed");
  err = qiwi_append_header_list(L, 2, &list);
  if (err != NULL) {
    curl_slist_free_all(list);
    return fail(L, "argument", err);
  }
  /* libcurl sends "Expect: 100-continue" for big bodies; QIWI gains nothing from the extra round trip. */
  next = curl_slist_append(list, "Expect:");
  if (next == NULL) {
    curl_slist_free_all(list);
    return fail(L, "network", "out of memory");
  }
  list = next;
  sets = realloc(m->sets, (size_t)(m->nsets + 1) * sizeof *sets);
  if (sets == NULL) {
    curl_slist_free_all(list);
    return fail(L, "network", "out of memory");
  }
  m->sets = sets;
  m->sets[m->nsets++] = list;
  lua_pushinteger(L, m->nsets);
  return 1;
}

static xfer *new_xfer(multi *m) {
  xfer *x = calloc(1, sizeof *x);
  CURLcode rc;
  if (x == NULL) return NULL;
  x->item = -1;
  x->easy = curl_easy_init();
  if (x->easy == NULL) { free(x); return NULL; }
  /* body/head buffers are the item's, set per transfer */
  rc = qiwi_easy_setup(x->easy, x->errbuf, NULL, NULL, m->allow_http, m->ca, m->ua, m->resolve);
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, opt, val)
  SET(CURLOPT_PRIVATE, (void *)x);
  SET(CURLOPT_CONNECTTIMEOUT_MS, m->connect_timeout_ms);
  SET(CURLOPT_HTTP_VERSION, m->http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
  /* Wait for the first connection to learn whether it multiplexes, instead
   * of opening one connection per concurrent call. */
  SET(CURLOPT_PIPEWAIT, 1L);
#undef SET
  if (rc != CURLE_OK) {
    curl_easy_cleanup(x->easy);
    free(x);
    return NULL;
  }
  return x;
}

static xfer *idle_xfer(multi *m) {
  int i;
  xfer **pool;
  for (i = 0; i < m->npool; i++)
    if (m->pool[i]->item < 0) return m->pool[i];
  pool = realloc(m->pool, (size_t)(m->npool + 1) * sizeof *pool);
  if (pool == NULL) return NULL;
  m->pool = pool;
  m->pool[m->npool] = new_xfer(m);
  if (m->pool[m->npool] == NULL) return NULL;
  return m->pool[m->npool++];
}

/* Reads request i of the table at idx into it; sets it->invalid for a
 * request that cannot be sent. Borrowed strings stay referenced by the table. */
static void read_request(lua_State *L, multi *m, int idx, lua_Integer i, item *it) {
  size_t url_len, method_len;
  lua_Integer hid;
  item_release(it);   /* left over when building the last results raised */
  memset(it, 0, sizeof *it);
  lua_rawgeti(L, idx, i);
  if (!lua_istable(L, -1)) { it->invalid = "request must be a table"; lua_pop(L, 1); return; }
  lua_getfield(L, -1, "method");
  lua_getfield(L, -2, "url");
  lua_getfield(L, -3, "body");
  lua_getfield(L, -4, "headers");
  lua_getfield(L, -5, "decode");
  lua_getfield(L, -6, "once");
  it->once = lua_toboolean(L, -1);
  it->decode = lua_toboolean(L, -2);
  hid = lua_isnumber(L, -3) ? (lua_Integer)lua_tonumber(L, -3) : 0;
  if (lua_type(L, -4) == LUA_TSTRING) it->body = lua_tolstring(L, -4, &it->body_len);
  else if (!lua_isnil(L, -4)) it->invalid = "body must be a string";
  if (lua_type(L, -5) == LUA_TSTRING) it->url = lua_tolstring(L, -5, &url_len);
  if (lua_type(L, -6) == LUA_TSTRING) it->method = lua_tolstring(L, -6, &method_len);
  lua_pop(L, 7);
  if (it->invalid) return;
  if (it->url == NULL || it->method == NULL) it->invalid = "request needs a method and a url";
  else if (qiwi_has_line_break(it->url, url_len) || qiwi_has_line_break(it->method, method_len))
    it->invalid = "URL or method contains CR, LF or NUL";
  else if (hid < 0 || hid > m->nsets) it->invalid = "unknown header set";
  else it->hid = (int)hid;
}

static CURLcode start_transfer(multi *m, xfer *x, item *it, long timeout_ms) {
  CURLcode rc = CURLE_OK;
  CURL *e = x->easy;
  it->body_buf.max = m->max_body;
  it->head_buf.max = 64 * 1024;
  x->errbuf[0] = '\0';
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val)
  SET(CURLOPT_URL, it->url);
  SET(CURLOPT_HTTPHEADER, it->hid ? m->sets[it->hid - 1] : (struct curl_slist *)NULL);
  SET(CURLOPT_WRITEDATA, &it->body_buf);
  SET(CURLOPT_HEADERDATA, &it->head_buf);
  if (strcmp(it->method, "GET") == 0 && it->body == NULL) {
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
  } else if (it->body == NULL && strcmp(it->method, "POST") != 0) {
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_CUSTOMREQUEST, it->method);
  } else {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->body_len);
    SET(CURLOPT_POSTFIELDS, it->body ? it->body : "");
    SET(CURLOPT_CUSTOMREQUEST, strcmp(it->method, "POST") == 0 ? NULL : it->method);
  }
  SET(CURLOPT_TIMEOUT_MS, timeout_ms);
  /* as in session:request: a request that must not be repeated gets a
   * connection of its own, so that libcurl has nothing to re-send it on */
  SET(CURLOPT_FRESH_CONNECT, it->once ? 1L : 0L);
#undef SET
  return rc;
}

static void finish_transfer(multi *m, xfer *x, CURLcode result) {
  item *it = &m->items[x->item];
  long connects = 0, version = 0;
  it->rc = result;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &it->status);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
  curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
  m->connects += connects;
  if (version == CURL_HTTP_VERSION_2_0) m->h2++;
  m->transfers++;
  if (result != CURLE_OK && x->errbuf[0]) it->err = dup_string(x->errbuf);
  curl_multi_remove_handle(m->multi, x->easy);
  /* POSTFIELDS points into a Lua string that may be collected after perform */
  curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)NULL);
  x->item = -1;
}

/* Runs every valid item to completion; no Lua calls in here. */
static void run(multi *m, size_t n, int concurrency, double deadline) {
  size_t next = 0;
  int active = 0;
  for (;;) {
    int still = 0, queued;
    CURLMsg *msg;
    while (active < concurrency && next < n) {
      item *it = &m->items[next];
      xfer *x;
      double left = deadline - now_ms();
      CURLcode rc;
      if (it->invalid) { next++; continue; }
      if (left < 1) { it->rc = CURLE_OPERATION_TIMEDOUT; next++; continue; }
      x = idle_xfer(m);
      if (x == NULL) { it->rc = CURLE_OUT_OF_MEMORY; next++; continue; }
      rc = start_transfer(m, x, it, (long)left);
      if (rc == CURLE_OK && curl_multi_add_handle(m->multi, x->easy) != CURLM_OK) rc = CURLE_FAILED_INIT;
      if (rc != CURLE_OK) { it->rc = rc; next++; continue; }
      x->item = (int)next++;
      active++;
    }
    if (active == 0) break;
    curl_multi_perform(m->multi, &still);
    while ((msg = curl_multi_info_read(m->multi, &queued)) != NULL) {
      xfer *x;
      char *priv = NULL;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
      x = (xfer *)(void *)priv;
      if (x == NULL || x->item < 0) continue;
      finish_transfer(m, x, msg->data.result);
      active--;
    }
    /* a freed slot and work waiting: start it before waiting on the network */
    if (active < concurrency && next < n) continue;
    if (active > 0) curl_multi_poll(m->multi, NULL, 0, 1000, NULL);
  }
}

static void push_result(lua_State *L, multi *m, item *it) {
  if (it->invalid) {
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "argument");
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, it->invalid);
    lua_setfield(L, -2, "message");
    return;
  }
  if (it->rc != CURLE_OK) {
    lua_createtable(L, 0, 2);
    if (it->rc == CURLE_WRITE_ERROR && it->body_buf.overflow) {
      lua_pushliteral(L, "http");
      lua_setfield(L, -2, "kind");
      lua_pushfstring(L, "response body exceeds the %d byte cap", (int)m->max_body);
    } else {
      lua_pushstring(L, qiwi_curl_error_kind(it->rc));
      lua_setfield(L, -2, "kind");
      lua_pushstring(L, it->err ? it->err : curl_easy_strerror(it->rc));
    }
    lua_setfield(L, -2, "message");
    return;
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)it->status);
  lua_setfield(L, -2, "status");
  qiwi_push_headers(L, &it->head_buf);
  if (it->decode && it->body_buf.len > 0 && qiwi_is_json_type(L, -1)) {
    lua_setfield(L, -2, "headers");
    if (qiwi_json_decode_buf(L, it->body_buf.data, it->body_buf.len,
                             lua_upvalueindex(1), lua_upvalueindex(2))) {
      lua_setfield(L, -2, "data");
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "decoded");
    } else {
      /* keep the raw text so the caller can show or log it */
      lua_setfield(L, -2, "decode_error");
      lua_pushlstring(L, it->body_buf.data, it->body_buf.len);
      lua_setfield(L, -2, "body");
    }
    return;
  }
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, it->body_buf.data ? it->body_buf.data : "", it->body_buf.len);
  lua_setfield(L, -2, "body");
}

/* multi:perform(requests, timeout, concurrency) -> results
 *   requests[i] = {method=, url=, headers=<id from multi:headers>, body=, decode=, once=}
 *                 (once: on a new connection, see session:request)
 *   results[i]  = {status=, headers=, data=, decoded=true}
 *               | {status=, headers=, body=, decode_error=}
 *               | {status=, headers=, body=}
 *               | {kind=, message=}       (no answer; kind as in session:request)
 * timeout (seconds) bounds the whole batch; at most `concurrency` transfers
 * run at once. */
static int multi_perform(lua_State *L) {
  multi *m = check_multi(L);
  lua_Number tmo;
  lua_Integer conc;
  size_t n, i;
  double deadline;
  luaL_checktype(L, 2, LUA_TTABLE);
  tmo = luaL_optnumber(L, 3, (lua_Number)m->timeout_ms / 1000.0);
  conc = luaL_optinteger(L, 4, 64);
  lua_settop(L, 2);
  if (m->multi == NULL) return fail(L, "argument", "multi is closed");
  if (m->busy) return fail(L, "argument", "multi is busy with another batch");
  if (!(tmo > 0 && tmo <= 86400)) return fail(L, "argument", "timeout must be a positive number of seconds up to a day");
  if (conc < 1) conc = 1;
  if (conc > MAX_CONCURRENCY) conc = MAX_CONCURRENCY;
  n = (size_t)qiwi_rawlen(L, 2);
  if (n > m->cap_items) {
    item *items = realloc(m->items, n * sizeof *items);
    if (items == NULL) return fail(L, "network", "out of memory");
    memset(items + m->cap_items, 0, (n - m->cap_items) * sizeof *items);
    m->items = items;
    m->cap_items = n;
  }
  for (i = 0; i < n; i++) read_request(L, m, 2, (lua_Integer)(i + 1), &m->items[i]);

  m->connects = m->h2 = m->transfers = 0;
  deadline = now_ms() + (double)tmo * 1000.0;
  m->busy = 1;
  run(m, n, (int)conc, deadline);
  m->busy = 0;

  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    push_result(L, m, &m->items[i]);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
    /* answers are not kept: the next batch may be of another size */
    item_release(&m->items[i]);
  }
  return 1;
}

/* multi:stats() -> {transfers=, connects=, http2=} of the last perform:
 * connects counts new connections, http2 the transfers that used HTTP/2. */
static int multi_stats(lua_State *L) {
  multi *m = check_multi(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, m->transfers);
  lua_setfield(L, -2, "transfers");
  lua_pushinteger(L, m->connects);
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, m->h2);
  lua_setfield(L, -2, "http2");
  return 1;
}

static const luaL_Reg meth[] = {
  {"headers", multi_headers},
  {"perform", multi_perform},
  {"stats", multi_stats},
  {"close", multi_close},
  {"closed", multi_closed},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__gc", multi_close},
  {"__close", multi_close},
  {"__tostring", multi_tostring},
  {NULL, NULL}
};

void qiwi_multi_register(lua_State *L) {
  /* stack: ... null array_mt */
  luaL_newmetatable(L, QIWI_MULTI_MT);
  qiwi_setfuncs(L, metameth, 0);
  lua_createtable(L, 0, 5);
  lua_pushvalue(L, -4);
  lua_pushvalue(L, -4);
  qiwi_setfuncs(L, meth, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
