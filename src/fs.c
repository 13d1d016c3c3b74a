/* File helpers for qiwi.store.file: see fs.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include "fs.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_DIRECTORY
#define O_DIRECTORY 0
#endif

typedef struct {
  int fd;                            /* -1 once released */
} qiwi_fs_lock;

static int fs_fail(lua_State *L, const char *what, const char *path, int err) {
  char msg[600];
  snprintf(msg, sizeof msg, "%s %.400s: %s", what, path, strerror(err));
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* A path argument: a string without NUL bytes (which would cut it short). */
static const char *path_arg(lua_State *L, int i) {
  size_t len;
  const char *p = luaL_checklstring(L, i, &len);
  if (len == 0 || strlen(p) != len) luaL_argerror(L, i, "a path without NUL bytes");
  return p;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s) {
  struct timespec ts;
  if (!(s > 0)) return;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int lock_release(qiwi_fs_lock *lk) {
  int rc = 0;
  if (lk->fd >= 0) {
    /* closing the only descriptor of the open file releases the flock */
    rc = close(lk->fd);
    lk->fd = -1;
  }
  return rc;
}

static int fs_lock(lua_State *L) {
  const char *path = path_arg(L, 1);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  qiwi_fs_lock *lk;
  double deadline, delay = 50e-6;
  int fd;

  if (!(wait >= 0)) wait = 0;
  if (wait > 3600) wait = 3600;
  /* the userdata first, so that no error can leak an open descriptor */
  lk = (qiwi_fs_lock *)qiwi_newuserdata(L, sizeof *lk);
  lk->fd = -1;
  qiwi_setmetatable(L, QIWI_FS_LOCK_MT);

  do {
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return fs_fail(L, "open", path, errno);
  lk->fd = fd;

  deadline = mono_now() + (double)wait;
  for (;;) {
    double now, left;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 1;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK && errno != EAGAIN) {
      int err = errno;
      lock_release(lk);
      return fs_fail(L, "flock", path, err);
    }
    now = mono_now();
    left = deadline - now;
    if (left <= 0) {
      lock_release(lk);
      lua_pushnil(L);
      lua_pushfstring(L, "lock %s: busy", path);
      lua_pushboolean(L, 1);
      return 3;
    }
    sleep_seconds(delay < left ? delay : left);
    if (delay < 2e-3) delay *= 2;
  }
}

static int lock_unlock(lua_State *L) {
  qiwi_fs_lock *lk = (qiwi_fs_lock *)luaL_checkudata(L, 1, QIWI_FS_LOCK_MT);
  if (lock_release(lk) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "unlock: %s", strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int lock_gc(lua_State *L) {
  qiwi_fs_lock *lk = (qiwi_fs_lock *)luaL_checkudata(L, 1, QIWI_FS_LOCK_MT);
  lock_release(lk);
  return 0;
}

static int lock_tostring(lua_State *L) {
  qiwi_fs_lock *lk = (qiwi_fs_lock *)luaL_checkudata(L, 1, QIWI_FS_LOCK_MT);
  lua_pushstring(L, lk->fd >= 0 ? "qiwi.fs_lock (held)" : "qiwi.fs_lock (released)");
  return 1;
}

/* fsync of the directory holding path, so that a rename survives a crash.
 * File systems that cannot sync a directory (EINVAL) are let be. */
static int sync_dir_of(const char *path, char *buf, size_t cap) {
  const char *slash = strrchr(path, '/');
  size_t n;
  int fd, rc = 0;
  if (slash == NULL) {
    strcpy(buf, ".");
  } else {
    n = (size_t)(slash - path);
    if (n == 0) n = 1;                 /* "/file": the root */
    if (n >= cap) return 0;
    memcpy(buf, path, n);
    buf[n] = '\0';
  }
  do {
    fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return -1;
  if (fsync(fd) != 0 && errno != EINVAL) rc = -1;
  close(fd);
  return rc;
}

static int fs_write(lua_State *L) {
  const char *path = path_arg(L, 1);
  size_t len, off = 0, plen = strlen(path);
  const char *data = luaL_checklstring(L, 2, &len);
  int sync = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  size_t cap = plen + 40;
  char *tmp;
  const char *what = "write";
  int fd, err = 0;

  tmp = (char *)malloc(cap);
  if (tmp == NULL) return fs_fail(L, "write", path, ENOMEM);
  snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());

  do {
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    err = errno;
    free(tmp);
    return fs_fail(L, "open", path, err);
  }
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    off += (size_t)w;
  }
  if (!err && sync && fsync(fd) != 0) { err = errno; what = "fsync"; }
  if (close(fd) != 0 && !err) { err = errno; what = "close"; }
  if (!err && rename(tmp, path) != 0) { err = errno; what = "rename"; }
  if (err) {
    unlink(tmp);
    free(tmp);
    return fs_fail(L, what, path, err);
  }
  /* tmp is reused as the buffer for the directory's name */
  if (sync && sync_dir_of(path, tmp, cap) != 0) {
    err = errno;
    free(tmp);
    return fs_fail(L, "fsync of the directory of", path, err);
  }
  free(tmp);
  lua_pushboolean(L, 1);
  return 1;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int fs_mkdir(lua_State *L) {
  const char *path = path_arg(L, 1);
  size_t n = strlen(path), i;
  char *buf;
  int err = 0;

  if (is_dir(path)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  buf = (char *)malloc(n + 1);
  if (buf == NULL) return fs_fail(L, "mkdir", path, ENOMEM);
  memcpy(buf, path, n + 1);
  for (i = 1; i <= n && !err; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) err = errno;
      else if (!is_dir(buf)) err = ENOTDIR;
      buf[i] = c;
    }
  }
  free(buf);
  if (err) return fs_fail(L, "mkdir", path, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int fs_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static const luaL_Reg lock_meta[] = {
  {"__gc", lock_gc},
  {"__tostring", lock_tostring},
  {NULL, NULL}
};

static const luaL_Reg lock_methods[] = {
  {"unlock", lock_unlock},
  {NULL, NULL}
};

static const luaL_Reg fs_funcs[] = {
  {"fs_lock", fs_lock},
  {"fs_write", fs_write},
  {"fs_mkdir", fs_mkdir},
  {"fs_time", fs_time},
  {NULL, NULL}
};

void qiwi_fs_register(lua_State *L) {
  luaL_newmetatable(L, QIWI_FS_LOCK_MT);
  qiwi_setfuncs(L, lock_meta, 0);
  lua_createtable(L, 0, 1);
  qiwi_setfuncs(L, lock_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "qiwi.fs_lock");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  qiwi_setfuncs(L, fs_funcs, 0);
}
