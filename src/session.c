/* qiwi.core.session: a client's HTTPS connection. One libcurl easy handle per
 * session is reused for every request, so libcurl keeps the TLS connection
 * alive between calls; the body/header buffers are reused across requests,
 * and the handle's options are set only where a request differs from the
 * one before (qiwi_http_kept). Everything about the transfer itself is the
 * HTTP layer's (http.c). */
#include <curl/curl.h>
#include <string.h>
#include "compat.h"
#include "http.h"
#include "json.h"
#include "session.h"

typedef struct {
  CURL *easy;                       /* NULL when closed */
  qiwi_http_config cfg;
  qiwi_no_expect no_expect;         /* the list of a request without one */
  qiwi_buffer body, head;
  qiwi_http_kept kept;              /* what easy's request options are set to */
  int busy;
  char errbuf[CURL_ERROR_SIZE];
} session;

static session *check_session(lua_State *L) {
  return luaL_checkudata(L, 1, QIWI_SESSION_MT);
}

/* The one destructor behind close, __gc and __close; safe to call twice. */
static void session_release(session *s) {
  if (s->easy) curl_easy_cleanup(s->easy);
  s->easy = NULL;
  qiwi_http_config_free(&s->cfg);
  qiwi_buffer_free(&s->body);
  qiwi_buffer_free(&s->head);
  qiwi_http_kept_free(&s->kept);
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

/* session{connect_timeout=, timeout=, ca_file=, resolve={"host:port:ip", ...},
 *         allow_http=false, max_body=, proxy=, proxy_username=, proxy_password=}
 * No headers: every request brings its complete header_list. */
int qiwi_session_new(lua_State *L) {
  session *s;
  CURLcode rc;

  if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  /* Born closed: if anything below fails, __gc has nothing to free twice. */
  s = qiwi_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  qiwi_setmetatable(L, QIWI_SESSION_MT);
  qiwi_no_expect_init(&s->no_expect);

  qiwi_http_config_read(L, 1, &s->cfg, "session");

  s->easy = curl_easy_init();
  if (s->easy == NULL) {
    session_release(s);
    return qiwi_http_fail(L, "network", "curl_easy_init failed", "CURLE_FAILED_INIT");
  }
  rc = qiwi_http_setup(s->easy, s->errbuf, &s->cfg);
  if (rc != CURLE_OK) {
    const char *msg = curl_easy_strerror(rc);
    session_release(s);
    return luaL_error(L, "session: cannot configure libcurl: %s", msg);
  }
  return 1;
}

/* Seconds (> 0) to libcurl's milliseconds, at least 1: 0 would mean none. */
static long ms_of(lua_Number t) {
  long ms = (long)(t * 1000.0 + 0.5);
  return ms < 1 ? 1 : ms;
}

/* session:send(method, url, hlist, body, timeout, once, decode)
 *   -> status, body, headers    (body a string, "" when empty; no decoding)
 *   -> status, nil, nil, value  (decode only: a 2xx JSON answer, decoded)
 *   -> nil, kind, message, code (no answer; see http.h)
 * hlist: a qiwi.header_list or nil (no headers); timeout: seconds, nil for
 * the session's; once: on a connection of its own, for a request that must
 * never be re-sent. method: GET, POST, PUT, PATCH or DELETE.
 * decode: a 2xx answer that is JSON (qiwi_json_like) is decoded straight
 * from the receive buffer, so that the body never becomes a Lua string and
 * no headers table is made: a success needs neither. Every other answer,
 * and one that does not decode, comes back as text, for the Lua layer to
 * read (and to word the decode error) as from any transport.
 * Upvalues: the decoder's (json.h). */
static int session_send(lua_State *L) {
  session *s = check_session(L);
  qiwi_http_req r;
  const char *err = NULL;
  size_t mlen, ulen;
  CURLcode rc;
  int n, method = 0, decode;

  memset(&r, 0, sizeof r);
  r.method = luaL_checklstring(L, 2, &mlen);
  r.url = luaL_checklstring(L, 3, &ulen);
  r.body = luaL_optlstring(L, 5, NULL, &r.body_len);
  r.once = lua_toboolean(L, 7);
  decode = lua_toboolean(L, 8);
  r.timeout_ms = s->cfg.timeout_ms;
  if (s->easy == NULL) err = "session is closed";
  else if (s->busy) err = "session is busy with another request";
  /* the URL the handle has was checked when it was set */
  else if ((!qiwi_http_kept_url(&s->kept, r.url, ulen) && qiwi_has_line_break(r.url, ulen)) ||
           qiwi_has_line_break(r.method, mlen))
    err = "URL or method contains CR, LF or NUL";
  else if ((method = qiwi_http_method_code(r.method, mlen)) == 0)
    err = "method must be GET, POST, PUT, PATCH or DELETE";
  else err = qiwi_header_list_arg(L, 4, &s->no_expect.node, &r.headers);
  if (err == NULL && !lua_isnoneornil(L, 6)) {
    lua_Number t = luaL_checknumber(L, 6);
    if (t > 0 && t <= 86400) r.timeout_ms = ms_of(t);
    else err = QIWI_BAD_TIMEOUT;
  }
  if (err != NULL) return qiwi_http_fail(L, "argument", err, QIWI_CODE_ARGUMENT);

  rc = qiwi_http_prepare_kept(s->easy, &s->kept, &r, method, ulen, &s->body, &s->head,
                              s->cfg.max_body, s->errbuf);
  if (rc != CURLE_OK) {
    /* refused by libcurl: nothing went out */
    qiwi_http_done_kept(s->easy, &s->kept);
    lua_pushnil(L);
    lua_pushliteral(L, "argument");
    lua_pushstring(L, curl_easy_strerror(rc));
    qiwi_push_curl_code(L, rc);
    return 4;
  }
  s->busy = 1;
  rc = curl_easy_perform(s->easy);
  s->busy = 0;
  qiwi_http_done_kept(s->easy, &s->kept);
  if (rc != CURLE_OK) {
    lua_pushnil(L);
    n = 1 + qiwi_http_push_error(L, rc, s->errbuf, &s->body, qiwi_http_proxy_refused(s->easy, rc));
  } else {
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, (lua_Integer)status);
    n = 0;
    if (decode && status >= 200 && status < 300 && qiwi_answer_json_like(&s->head, &s->body)) {
      lua_pushnil(L);
      lua_pushnil(L);
      qiwi_json_ctx ctx;
      qiwi_json_upvalues(L, &ctx, 1);
      if (qiwi_json_decode_buf(L, s->body.data, s->body.len, &ctx))
        n = 4;
      else
        lua_pop(L, 3);   /* the message and the two nils: read as text below */
    }
    if (n == 0) {
      lua_pushlstring(L, s->body.data ? s->body.data : "", s->body.len);
      qiwi_push_headers(L, &s->head);
      n = 3;
    }
  }
  qiwi_buffer_trim(&s->body);
  qiwi_buffer_trim(&s->head);
  return n;
}

/* session:info() -> {connects=, http_version=, primary_port=} of the last request */
static int session_info(lua_State *L) {
  session *s = check_session(L);
  long connects = 0, version = 0, port = 0;
  if (s->easy == NULL) return qiwi_http_fail(L, "argument", "session is closed", QIWI_CODE_ARGUMENT);
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
  {"send", session_send},
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

/* Stack: ..., the decoder's 4 upvalues (json.h; left there): send decodes. */
void qiwi_session_register(lua_State *L) {
  int i;
  luaL_newmetatable(L, QIWI_SESSION_MT);
  qiwi_setfuncs(L, metameth, 0);
  lua_createtable(L, 0, 4);
  for (i = 0; i < 4; i++) lua_pushvalue(L, -6);
  qiwi_setfuncs(L, meth, 4);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
