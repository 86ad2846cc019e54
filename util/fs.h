/* File-system helpers: bounded reads, atomic writes, trees. All return 0 or SYSEXT_E*. */
#ifndef SX_FS_H
#define SX_FS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* A timestamp as nanoseconds since the epoch (file identities compare these). */
static inline uint64_t sx_timespec_ns(struct timespec t)
{
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Read a whole regular file (not following a final symlink) of at most `max` bytes.
 * *data is NUL-terminated and owned by the caller. */
int sx_read_file(const char *path, size_t max, uint8_t **data, size_t *len);
/* Write to a temp file beside `path`, fsync, rename over `path`, fsync the directory. */
int sx_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* For caches, which need atomicity (a reader sees the old or the new file) but not
 * durability: a temp file beside `path` renamed over it, without fsync. A torn file after a
 * crash must be detected by its reader (a checksum). */
int sx_write_cache_file(const char *path, const void *data, size_t len);
int sx_mkdir_p(const char *path, mode_t mode);
/* Remove a file or a whole tree; a missing path is not an error. Never follows symlinks. */
int sx_rm_rf(const char *path);
/* Copy a tree, keeping symlinks as symlinks and file modes. `dst` must not exist. */
int sx_copy_tree(const char *src, const char *dst);
int sx_fsync_dir(const char *dir);
int sx_fsync_tree(const char *path);
/* Join with exactly one '/'; NULL on allocation failure or overflow. */
char *sx_path_join(const char *a, const char *b);
/* Directory part / last component, newly allocated. */
char *sx_path_dirname(const char *path);
const char *sx_path_basename(const char *path);
bool sx_path_exists(const char *path);
bool sx_is_dir(const char *path);
/* A fresh private directory next to `near` (same file system, so rename works), named
 * ".<base>.XXXXXX". */
int sx_mkdtemp_beside(const char *near, char **out);

#endif
