/* qiwi.core.multi: runs a batch of requests at once on one libcurl multi
 * handle.
 *
 * The multi handle lives as long as the client, so its connection cache (and
 * with it the TLS connection, multiplexed over HTTP/2 when the server speaks
 * it) carries over from one batch to the next. Easy handles are pooled and
 * configured once (by the HTTP layer, http.c, as the session's is).
 *
 * A batch works in two phases: first every transfer runs to completion
 * without touching Lua, then the answers are pushed. So a Lua error while
 * building results (out of memory) can never leave a transfer attached to
 * the multi handle or the object marked busy. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include "compat.h"
#include "http.h"
#include "batch.h"
#include "json.h"

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
  qiwi_http_req req;                /* strings borrowed from the request table during a batch */
  const char *invalid;              /* static message: refused before sending */
  CURLcode rc;
  long status;
  char *err;                        /* copy of the transfer's error buffer, when it failed */
  int proxy_refused;                /* qiwi_http_proxy_refused, asked before the handle went back to the pool */
  int decode;                       /* a 2xx JSON answer may come back decoded (reqs[i][6]) */
  qiwi_buffer body_buf, head_buf;
} item;

typedef struct {
  CURLM *multi;                     /* NULL when closed */
  xfer **pool;                      /* allocated one by one: libcurl keeps pointers into them */
  int npool;
  item *items;
  size_t cap_items;
  qiwi_http_config cfg;
  qiwi_no_expect no_expect;         /* the list of a request without one */
  int http2, busy;
  long connects, h2, transfers;     /* of the last batch */
} multi;

static multi *check_multi(lua_State *L) {
  return luaL_checkudata(L, 1, QIWI_MULTI_MT);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
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
  for (k = 0; k < m->cap_items; k++) item_release(&m->items[k]);
  free(m->items);
  m->items = NULL;
  m->cap_items = 0;
  qiwi_http_config_free(&m->cfg);
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

/* multi{connect_timeout=, timeout=, ca_file=, resolve={...}, allow_http=false,
 *       max_body=, proxy=, proxy_username=, proxy_password=, http2=true}
 * No headers: every request brings its complete header_list. */
int qiwi_multi_new(lua_State *L) {
  multi *m;

  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  /* Born closed: if anything below fails, __gc has nothing to free twice. */
  m = qiwi_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  qiwi_setmetatable(L, QIWI_MULTI_MT);
  qiwi_no_expect_init(&m->no_expect);

  lua_getfield(L, 1, "http2");
  m->http2 = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  qiwi_http_config_read(L, 1, &m->cfg, "multi");

  m->multi = curl_multi_init();
  if (m->multi == NULL) {
    multi_release(m);
    return qiwi_http_fail(L, "network", "curl_multi_init failed", "CURLE_FAILED_INIT");
  }
  curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, KEEP_CONNECTIONS);
  return 1;
}

static xfer *new_xfer(multi *m) {
  xfer *x = calloc(1, sizeof *x);
  CURLcode rc;
  if (x == NULL) return NULL;
  x->item = -1;
  x->easy = curl_easy_init();
  if (x->easy == NULL) { free(x); return NULL; }
  rc = qiwi_http_setup(x->easy, x->errbuf, &m->cfg);
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(x->easy, opt, val)
  SET(CURLOPT_PRIVATE, (void *)x);
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

/* Empties it for request i of a batch; frees what a batch whose results
 * raised while being built left behind. */
static void item_reset(item *it) {
  item_release(it);
  memset(it, 0, sizeof *it);
}

/* The checks of a request's method and URL; NULL or a static message. */
static const char *bad_target(const qiwi_http_req *r, size_t mlen, size_t ulen) {
  if (r->url == NULL || r->method == NULL) return "request needs a method and a url";
  if (qiwi_has_line_break(r->url, ulen) || qiwi_has_line_break(r->method, mlen))
    return "URL or method contains CR, LF or NUL";
  if (!qiwi_http_method_known(r->method, mlen)) return "method must be GET, POST, PUT, PATCH or DELETE";
  return NULL;
}

/* Reads {method, url, hlist, body, once} (positional) of request i of the
 * table at idx into it; sets it->invalid for a request that cannot be sent.
 * Borrowed strings and the header_list stay referenced by the table, which
 * the caller keeps on the stack for the whole batch. */
static void read_request(lua_State *L, multi *m, int idx, lua_Integer i, item *it) {
  size_t mlen = 0, ulen = 0;
  int t;
  item_reset(it);
  lua_rawgeti(L, idx, i);
  if (!lua_istable(L, -1)) { it->invalid = "request must be a table"; lua_pop(L, 1); return; }
  t = lua_gettop(L);
  lua_rawgeti(L, t, 1);
  lua_rawgeti(L, t, 2);
  lua_rawgeti(L, t, 4);
  lua_rawgeti(L, t, 6);
  it->decode = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, t, 5);
  it->req.once = lua_toboolean(L, -1);
  if (lua_type(L, -2) == LUA_TSTRING) it->req.body = lua_tolstring(L, -2, &it->req.body_len);
  else if (!lua_isnil(L, -2)) it->invalid = "body must be a string";
  if (lua_type(L, -3) == LUA_TSTRING) it->req.url = lua_tolstring(L, -3, &ulen);
  if (lua_type(L, -4) == LUA_TSTRING) it->req.method = lua_tolstring(L, -4, &mlen);
  lua_pop(L, 4);
  if (it->invalid == NULL) it->invalid = bad_target(&it->req, mlen, ulen);
  if (it->invalid == NULL) {
    lua_rawgeti(L, t, 3);
    it->invalid = qiwi_header_list_arg(L, t + 1, &m->no_expect.node, &it->req.headers);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static CURLcode start_transfer(multi *m, xfer *x, item *it, long timeout_ms) {
  CURLcode rc;
  it->req.timeout_ms = timeout_ms;
  rc = qiwi_http_prepare(x->easy, &it->req, &it->body_buf, &it->head_buf, m->cfg.max_body, x->errbuf);
  if (rc != CURLE_OK) qiwi_http_done(x->easy);
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
  if (result != CURLE_OK && x->errbuf[0]) it->err = qiwi_strdup(x->errbuf);
  it->proxy_refused = qiwi_http_proxy_refused(x->easy, result);
  curl_multi_remove_handle(m->multi, x->easy);
  qiwi_http_done(x->easy);
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

/* {status, body, headers} | {status, nil, nil, value} | {nil, kind, message, code}.
 * value: a 2xx JSON answer of a request that asked for it, decoded straight
 * from the receive buffer as session:send does (no body string, no headers
 * table); one that does not decode comes back as text, for the Lua layer to
 * word the error. Upvalues: the decoder's (json.h). */
static void push_result(lua_State *L, item *it) {
  if (it->invalid || it->rc != CURLE_OK) {
    lua_createtable(L, 4, 0);
    if (it->invalid) {
      lua_pushliteral(L, "argument");
      lua_pushstring(L, it->invalid);
      lua_pushliteral(L, QIWI_CODE_ARGUMENT);
    } else {
      qiwi_http_push_error(L, it->rc, it->err, &it->body_buf, it->proxy_refused);
    }
    lua_rawseti(L, -4, 4);
    lua_rawseti(L, -3, 3);
    lua_rawseti(L, -2, 2);
    return;
  }
  lua_createtable(L, 4, 0);
  lua_pushinteger(L, (lua_Integer)it->status);
  lua_rawseti(L, -2, 1);
  if (it->decode && it->status >= 200 && it->status < 300 && qiwi_answer_json_like(&it->head_buf, &it->body_buf)) {
    qiwi_json_ctx ctx;
    qiwi_json_upvalues(L, &ctx, 1);
    if (qiwi_json_decode_buf(L, it->body_buf.data, it->body_buf.len, &ctx)) {
      lua_rawseti(L, -2, 4);
      return;
    }
    lua_pop(L, 1);   /* the message: read as text below */
  }
  lua_pushlstring(L, it->body_buf.data ? it->body_buf.data : "", it->body_buf.len);
  lua_rawseti(L, -2, 2);
  qiwi_push_headers(L, &it->head_buf);
  lua_rawseti(L, -2, 3);
}

/* multi:send_all(reqs, timeout, concurrency) -> results | nil, kind, message, code
 *   reqs[i]    = {method, url, hlist, body, once, decode}   (positional; hlist
 *                a qiwi.header_list or nil, body a string or nil, once: on a
 *                connection of its own, see session:send; decode: see push_result)
 *   results[i] = {status, body, headers}            (body a string, "" when empty)
 *              | {status, nil, nil, value}          (decode only: a 2xx JSON answer, decoded)
 *              | {nil, kind, message, code}         (no answer; see http.h)
 * timeout (seconds, default the multi's) bounds the whole batch; at most
 * `concurrency` (default 64, at most 256) transfers run at once. */
static int multi_send_all(lua_State *L) {
  multi *m = check_multi(L);
  lua_Number tmo;
  lua_Integer conc;
  size_t n, i;
  double deadline;
  luaL_checktype(L, 2, LUA_TTABLE);
  tmo = luaL_optnumber(L, 3, (lua_Number)m->cfg.timeout_ms / 1000.0);
  conc = luaL_optinteger(L, 4, 64);
  lua_settop(L, 2);  /* reqs stays here: it keeps every borrowed string and header_list alive */
  if (m->multi == NULL) return qiwi_http_fail(L, "argument", "multi is closed", QIWI_CODE_ARGUMENT);
  if (m->busy) return qiwi_http_fail(L, "argument", "multi is busy with another batch", QIWI_CODE_ARGUMENT);
  if (!(tmo > 0 && tmo <= 86400))
    return qiwi_http_fail(L, "argument", QIWI_BAD_TIMEOUT, QIWI_CODE_ARGUMENT);
  if (conc < 1) conc = 1;
  if (conc > MAX_CONCURRENCY) conc = MAX_CONCURRENCY;
  n = (size_t)qiwi_rawlen(L, 2);
  if (n > m->cap_items) {
    item *items = realloc(m->items, n * sizeof *items);
    if (items == NULL) return qiwi_http_fail(L, "network", "out of memory", "CURLE_OUT_OF_MEMORY");
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
    push_result(L, &m->items[i]);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
    /* answers are not kept: the next batch may be of another size */
    item_release(&m->items[i]);
  }
  return 1;
}

/* multi:stats() -> {transfers=, connects=, http2=} of the last batch:
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
  {"send_all", multi_send_all},
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

/* Stack: ..., the decoder's 4 upvalues (json.h; left there): send_all decodes. */
void qiwi_multi_register(lua_State *L) {
  int i;
  luaL_newmetatable(L, QIWI_MULTI_MT);
  qiwi_setfuncs(L, metameth, 0);
  lua_createtable(L, 0, 4);
  for (i = 0; i < 4; i++) lua_pushvalue(L, -6);
  qiwi_setfuncs(L, meth, 4);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
