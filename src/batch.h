/* qiwi.core.multi: the batch's libcurl multi handle, kept for the life of a client. */
#ifndef QIWI_BATCH_H
#define QIWI_BATCH_H

#include "compat.h"

#define QIWI_MULTI_MT "qiwi.multi"

/* Lua: multi{...} -> multi */
int qiwi_multi_new(lua_State *L);
/* Creates the multi metatable. */
void qiwi_multi_register(lua_State *L);

#endif
