/* qiwi.core.session: one libcurl easy handle reused for every request of a client. */
#ifndef QIWI_SESSION_H
#define QIWI_SESSION_H

#include "compat.h"

#define QIWI_SESSION_MT "qiwi.session"

/* Lua: session{...} -> session */
int qiwi_session_new(lua_State *L);
/* Creates the session metatable; the decoder's four upvalues (json.h) must
 * be on top of the stack (they stay there). */
void qiwi_session_register(lua_State *L);

#endif
