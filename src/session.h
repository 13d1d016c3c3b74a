/* qiwi.core.session: one libcurl easy handle reused for every request of a client. */
#ifndef QIWI_SESSION_H
#define QIWI_SESSION_H

#include <stddef.h>
#include <curl/curl.h>
#include "compat.h"

#define QIWI_SESSION_MT "qiwi.session"

/* Once-only curl_global_init; returns 0 on success. */
int qiwi_curl_global_init(void);
/* Lua: session{...} -> session. Upvalues: null sentinel, array metatable. */
int qiwi_session_new(lua_State *L);
/* Creates the session metatable; expects null and array_mt on top of the stack (left there). */
void qiwi_session_register(lua_State *L);
/* Lua: curl_version() -> string */
int qiwi_curl_version(lua_State *L);

/* Shared with the batch (batch.c): one answer's body or header block. */
#define QIWI_KEEP_BUFFER (256u * 1024u)  /* larger buffers are released after a call */

typedef struct {
  char *data;
  size_t len, cap, max;
  int overflow;
} qiwi_buffer;

void qiwi_buffer_free(qiwi_buffer *b);
/* Empties b for the next answer, releasing it when it grew past QIWI_KEEP_BUFFER. */
void qiwi_buffer_trim(qiwi_buffer *b);
/* libcurl write/header callbacks; userdata is a qiwi_buffer. */
size_t qiwi_on_body(char *p, size_t size, size_t n, void *ud);
size_t qiwi_on_header(char *p, size_t size, size_t n, void *ud);
/* The options every easy handle of the core gets (TLS verification, no redirects, ...). */
CURLcode qiwi_easy_setup(CURL *easy, char *errbuf, qiwi_buffer *body, qiwi_buffer *head,
                         int allow_http, const char *ca, const char *ua,
                         struct curl_slist *resolve);
/* "timeout", "tls" or "network". */
const char *qiwi_curl_error_kind(CURLcode rc);
int qiwi_has_line_break(const char *s, size_t len);
/* Appends the list of header strings at idx to *list; NULL or a static message. */
const char *qiwi_append_header_list(lua_State *L, int idx, struct curl_slist **list);
/* Pushes {lower-case name = value} parsed from a header block. */
void qiwi_push_headers(lua_State *L, const qiwi_buffer *b);
/* True when the headers table at idx says content-type ...json... */
int qiwi_is_json_type(lua_State *L, int headers);
/* Option readers for the tables of session{} and multi{}: seconds -> ms, strings. */
long qiwi_opt_ms(lua_State *L, int t, const char *name, long dflt);
const char *qiwi_opt_string(lua_State *L, int t, const char *name);

#endif
