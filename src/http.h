/* The HTTP layer under qiwi.core.session (session.c) and qiwi.core.multi
 * (batch.c): everything about a libcurl transfer the two share, so that the
 * TLS, redirect and protocol policy, the body cap, the method mapping, the
 * answer headers and the shape of a failure live in one place.
 *
 * A failure is, everywhere (session:send, multi:send_all, core.header_list,
 * a results[i] of send_all):
 *   nil, kind, message, code
 *   kind    "network" | "timeout" | "tls" | "http" | "argument"
 *   message one line: libcurl's error buffer, or our own text
 *   code    always a string:
 *           "CURLE_..."       the name of the CURLcode libcurl returned
 *                             ("CURLE_<number>" for a code this build does not name)
 *           "QIWI_BODY_CAP"   the answer body was over max_body (kind "http").
 *                             Our own code rather than CURLE_WRITE_ERROR: libcurl
 *                             gives that one for any refused write (a failed
 *                             realloc as well), and a caller must be able to
 *                             tell "the server sent too much" from "we broke".
 *           "QIWI_ARGUMENT"   refused before libcurl saw it (kind "argument":
 *                             closed, busy, CR/LF in the URL, unknown method, ...)
 * No JSON parsing in here: the body goes back as text, and the Lua layer
 * decodes it (qiwi.answer), so that every transport answers alike; the one
 * exception is session:send's decode flag (session.c), which hands a 2xx
 * JSON answer back decoded from its buffer, and only the rule for which
 * answers are JSON (qiwi_json_like) lives here, for both. */
#ifndef QIWI_HTTP_H
#define QIWI_HTTP_H

#include <stddef.h>
#include <curl/curl.h>
#include "compat.h"

#define QIWI_HEADER_LIST_MT "qiwi.header_list"

#define QIWI_DEFAULT_MAX_BODY (10u * 1024u * 1024u)
#define QIWI_MAX_HEAD (64u * 1024u)          /* cap of one answer's header block */
#define QIWI_KEEP_BUFFER (256u * 1024u)      /* larger buffers are released after a call */

#define QIWI_BAD_TIMEOUT "timeout must be a positive number of seconds up to a day"

#define QIWI_CODE_BODY_CAP "QIWI_BODY_CAP"
#define QIWI_CODE_ARGUMENT "QIWI_ARGUMENT"
/* The proxy turned the tunnel down: its CONNECT answer was 401, 403 or 407,
 * or SOCKS5 rejected the credentials or the request. Sending again would
 * only hand the same credentials to the same refusal, so the Lua layer
 * never retries it. */
#define QIWI_CODE_PROXY_REFUSED "QIWI_PROXY_REFUSED"

/* Once-only curl_global_init; returns 0 on success. */
int qiwi_curl_global_init(void);
/* Lua: curl_version() -> string */
int qiwi_curl_version(lua_State *L);

/* ---- one answer's body or header block ---------------------------------- */

typedef struct {
  char *data;
  size_t len, cap, max;
  int overflow;                      /* an append went past max */
} qiwi_buffer;

void qiwi_buffer_free(qiwi_buffer *b);
/* Empties b for the next answer, releasing it when it grew past QIWI_KEEP_BUFFER. */
void qiwi_buffer_trim(qiwi_buffer *b);

/* ---- what a client's handles are configured with ------------------------ */

typedef struct {
  long timeout_ms, connect_timeout_ms;
  size_t max_body;
  int allow_http;
  char *ca;                          /* owned copy, NULL when not given */
  struct curl_slist *resolve;        /* "host:port:address" lines */
  /* Owned copies, NULL when not given. proxy is scheme://host:port with no
   * user info: the credentials go to libcurl apart (CURLOPT_PROXYUSERNAME,
   * CURLOPT_PROXYPASSWORD), never inside a URL it may quote. */
  char *proxy, *proxy_username, *proxy_password;
} qiwi_http_config;

/* Reads timeout=, connect_timeout=, ca_file=, allow_http=, max_body=,
 * resolve=, proxy=, proxy_username=, proxy_password= from the options
 * table at t into a zeroed *cfg (the Lua layer checked the proxy's form:
 * qiwi.options; here only CR, LF and NUL are refused). A bad
 * value raises ("<what> option '...'"), as do out-of-memory and a bad
 * resolve list ("<what>: ..."); whatever was read before stays in *cfg for
 * qiwi_http_config_free, so cfg must live in the (born closed) userdata. */
void qiwi_http_config_read(lua_State *L, int t, qiwi_http_config *cfg, const char *what);
void qiwi_http_config_free(qiwi_http_config *cfg);

/* The options every easy handle of the core gets: no signals, TLS peer and
 * host verification, the CA file, no redirects (a redirect must never carry
 * the token elsewhere), https only unless allow_http, the resolve list,
 * connect and default total timeouts, keep-alive, any content encoding, our
 * body/header callbacks, errbuf as the error buffer. Proxies: cfg's
 * proxy when given (and then for every host: NO_PROXY does not apply),
 * else libcurl's default, i.e. the *_proxy environment variables are
 * honoured, as before this layer existed. cfg's HTTP(S) proxy is asked to
 * CONNECT (CURLOPT_HTTPPROXYTUNNEL), so that it relays TLS and never sees
 * a request; an HTTPS proxy is verified like QIWI, against the CA file.
 * No CURLOPT_USERAGENT, ever: without it libcurl sends
 * no User-Agent, so the one that goes out is the caller's header list's and
 * a request without a list carries none. */
CURLcode qiwi_http_setup(CURL *easy, char *errbuf, const qiwi_http_config *cfg);

/* ---- one request --------------------------------------------------------- */

typedef struct {
  const char *method, *url, *body;   /* body NULL: none */
  size_t body_len;
  struct curl_slist *headers;        /* must outlive the transfer */
  long timeout_ms;
  int once;                          /* on a connection of its own (CURLOPT_FRESH_CONNECT) */
} qiwi_http_req;

/* Sets the request's options on easy and readies body/head (emptied, capped
 * at max_body and QIWI_MAX_HEAD) and errbuf for the answer.
 * Method mapping: GET without body -> a plain GET; POST -> POST with the body
 * ("" when none); any other method without body -> that method, no body;
 * with a body -> POSTFIELDS under that method. */
CURLcode qiwi_http_prepare(CURL *easy, const qiwi_http_req *r, qiwi_buffer *body,
                           qiwi_buffer *head, size_t max_body, char *errbuf);
/* After the transfer: drops the pointers into Lua memory (POSTFIELDS points
 * into a Lua string, HTTPHEADER into a header_list) that may be collected
 * once we return. */
void qiwi_http_done(CURL *easy);

/* ---- one request on a handle that remembers the previous one ------------ */

/* What the request options of one easy handle were last set to, kept beside
 * the handle (a session keeps one), so that a request sets only what changed
 * since the previous one: a client's calls in a row differ in little (the
 * same URL, header list, timeout, method), and each setopt is work (URL and
 * CUSTOMREQUEST are copied by libcurl), as is the CR/LF scan of a URL.
 * Zeroed: nothing is known, the next request sets everything; free with
 * qiwi_http_kept_free. A libcurl refusal forgets everything again.
 *
 * libcurl's state (7.85 and later) this mirrors:
 *   CURLOPT_URL             a copy inside libcurl: kept here as a copy too,
 *                           compared by bytes (a Lua string with the same
 *                           text is often another object)
 *   CURLOPT_HTTPHEADER      a pointer libcurl reads only during a transfer.
 *                           It stays set after one: a list closed since is
 *                           never read, and the next request sets its own
 *                           list (a new list at the old address is that
 *                           list, and what libcurl reads is what it holds)
 *   CURLOPT_TIMEOUT_MS, CURLOPT_FRESH_CONNECT, CURLOPT_POSTFIELDSIZE_LARGE
 *                           plain values
 *   CURLOPT_CUSTOMREQUEST   a copy inside libcurl; kept as the method's code
 *   the request kind        libcurl's GET (CURLOPT_HTTPGET) or POST (set by
 *                           CURLOPT_POSTFIELDS, even a NULL one: clearing
 *                           the body after a transfer leaves the kind POST)
 *   CURLOPT_POSTFIELDS      points into a Lua string: set for every request
 *                           with a body, dropped after its transfer by
 *                           qiwi_http_done_kept, never set otherwise. */
typedef struct {
  char *url;                         /* CURLOPT_URL as set; owned, url_cap bytes */
  size_t url_len, url_cap;
  int url_ok;                        /* url is what libcurl has */
  int known;                         /* the fields below are what libcurl has */
  struct curl_slist *headers;        /* CURLOPT_HTTPHEADER (never dereferenced here) */
  long timeout_ms;                   /* CURLOPT_TIMEOUT_MS */
  int once;                          /* CURLOPT_FRESH_CONNECT */
  int post;                          /* the request kind is POST, else GET */
  int custom;                        /* CURLOPT_CUSTOMREQUEST: a QIWI_METHOD_*, 0 for none */
  int body_set;                      /* CURLOPT_POSTFIELDS is a pointer of the caller's */
  curl_off_t body_len;               /* CURLOPT_POSTFIELDSIZE_LARGE */
  const qiwi_buffer *body, *head;    /* CURLOPT_WRITEDATA, CURLOPT_HEADERDATA */
} qiwi_http_kept;

void qiwi_http_kept_free(qiwi_http_kept *k);
/* True when url is the URL set on the handle last (so known to be free of
 * CR, LF and NUL: only a checked URL is ever set). */
int qiwi_http_kept_url(const qiwi_http_kept *k, const char *url, size_t len);
/* qiwi_http_prepare with k: the same options, the same method mapping, but
 * only those that differ from k are set. method is r->method's
 * QIWI_METHOD_* code, url_len the length of r->url (checked by the caller:
 * no CR, LF or NUL). */
CURLcode qiwi_http_prepare_kept(CURL *easy, qiwi_http_kept *k, const qiwi_http_req *r,
                                int method, size_t url_len, qiwi_buffer *body,
                                qiwi_buffer *head, size_t max_body, char *errbuf);
/* After the transfer (or a refused prepare) of qiwi_http_prepare_kept:
 * drops the POSTFIELDS pointer when one was set. */
void qiwi_http_done_kept(CURL *easy, qiwi_http_kept *k);

/* GET, POST, PUT, PATCH or DELETE: the methods the QIWI API uses. */
enum { QIWI_METHOD_GET = 1, QIWI_METHOD_POST, QIWI_METHOD_PUT, QIWI_METHOD_PATCH, QIWI_METHOD_DELETE };
/* The QIWI_METHOD_* of m (exact, upper case), 0 for any other. */
int qiwi_http_method_code(const char *m, size_t len);
int qiwi_http_method_known(const char *m, size_t len);
int qiwi_has_line_break(const char *s, size_t len);

/* ---- answers and failures ------------------------------------------------ */

/* Pushes {lower-case name = value} of the headers the library reads
 * (content-type, retry-after); repeated names joined with ", ". */
void qiwi_push_headers(lua_State *L, const qiwi_buffer *b);

/* Whether an answer is JSON, the one rule of every transport's answers
 * (the Lua layer asks it through core.json_like): a body that is not
 * empty, and a content type containing "json", or else a body whose first
 * byte past white space opens an object or array. ctype may be NULL. */
int qiwi_json_like(const char *ctype, size_t clen, const char *body, size_t blen);
/* The rule for an answer in buffers: any content-type line of head counts. */
int qiwi_answer_json_like(const qiwi_buffer *head, const qiwi_buffer *body);
/* Lua: json_like(content_type or nil, body or nil) -> boolean */
int qiwi_json_like_lua(lua_State *L);

/* "timeout", "tls" or "network". */
const char *qiwi_curl_error_kind(CURLcode rc);
/* "CURLE_COULDNT_CONNECT", ...; NULL for a code this build does not name. */
const char *qiwi_curl_code_name(CURLcode rc);
/* Pushes the name of rc, or "CURLE_<number>". */
void qiwi_push_curl_code(lua_State *L, CURLcode rc);

/* The failure helper: pushes nil, kind, message, code; returns 4. */
int qiwi_http_fail(lua_State *L, const char *kind, const char *msg, const char *code);
/* Whether the failed transfer of easy (ended in rc) was refused by the
 * proxy (QIWI_CODE_PROXY_REFUSED); asked before the handle is reused. */
int qiwi_http_proxy_refused(CURL *easy, CURLcode rc);
/* Pushes kind, message and code of a transfer that ended in rc: the body cap
 * when body overflowed, a proxy's refusal (proxy_refused: the CURLcode name
 * then ends the message), else libcurl's kind and errbuf (or
 * curl_easy_strerror). Returns 3. */
int qiwi_http_push_error(lua_State *L, CURLcode rc, const char *errbuf, const qiwi_buffer *body,
                         int proxy_refused);

/* ---- header lists -------------------------------------------------------- */

/* A one-line list holding only "Expect:", kept inside a session or multi:
 * what a request without a header list is sent with. */
typedef struct {
  struct curl_slist node;
  char text[8];
} qiwi_no_expect;
void qiwi_no_expect_init(qiwi_no_expect *ne);

/* Lua: core.header_list({"Name: value", ...}) -> header_list | nil, kind, message, code
 * The lines go out as given, plus "Expect:" unless they have an Expect
 * header: libcurl would send "Expect: 100-continue" for big bodies, and QIWI
 * gains nothing from the extra round trip. */
int qiwi_header_list_new(lua_State *L);
/* The curl_slist of the argument at idx for a transfer: *out = the list, or
 * dflt when the argument is nil/none. NULL or a static message (not a
 * header_list, or a closed one). */
const char *qiwi_header_list_arg(lua_State *L, int idx, struct curl_slist *dflt,
                                 struct curl_slist **out);
/* Creates the header_list metatable. */
void qiwi_http_register(lua_State *L);

/* malloc'ed copy of s (NULL when s is NULL or out of memory). */
char *qiwi_strdup(const char *s);
/* Option readers for option tables: seconds -> ms ("<what> option '...'"), strings. */
long qiwi_opt_ms(lua_State *L, int t, const char *name, long dflt, const char *what);
const char *qiwi_opt_string(lua_State *L, int t, const char *name);

#endif
