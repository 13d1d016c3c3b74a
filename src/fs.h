/* File helpers for qiwi.store.file (lua/qiwi/store/file.lua): exclusive
 * advisory locks (flock), atomic durable writes (temp file, fsync, rename,
 * fsync of the directory), mkdir -p and a wall clock with sub-millisecond
 * resolution. Nothing here raises for a failing system call: each returns
 * nil and a one-line message (and, for fs_lock, whether the lock was busy).
 *
 * Lua, on the core's module table:
 *   fs_lock(path, wait)      -> lock | nil, message, busy
 *       creates path if needed (mode 0666 & ~umask) and takes an exclusive
 *       flock on it; wait: seconds to keep trying (0: one try). The lock is
 *       released by lock:unlock() (true), or when the lock is collected.
 *   fs_write(path, data, sync) -> true | nil, message
 *       writes data to path.tmp.<pid>, fsyncs it (sync ~= false), renames
 *       it over path, fsyncs the directory (sync ~= false). Readers see the
 *       old content or the new one, never a part. The caller holds the
 *       path's lock, so no two writers share the temp name.
 *   fs_mkdir(path)           -> true | nil, message      (mkdir -p, 0777 & ~umask)
 *   fs_time()                -> seconds since the epoch (CLOCK_REALTIME)
 */
#ifndef QIWI_FS_H
#define QIWI_FS_H

#include "compat.h"

#define QIWI_FS_LOCK_MT "qiwi.fs_lock"

/* Adds fs_lock, fs_write, fs_mkdir and fs_time to the table on top of the
 * stack and creates the lock metatable. */
void qiwi_fs_register(lua_State *L);

#endif
