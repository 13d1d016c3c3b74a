/* qiwi.core.session: one libcurl easy handle reused for every request of a client. */
#ifndef QIWI_SESSION_H
#define QIWI_SESSION_H

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

#endif
