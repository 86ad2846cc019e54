/* The walk's snapshot for incremental signing: every directory of a resource base as the last
 * walk listed it (names, resolved types, the winning rule of each rule set, symlink targets),
 * keyed by the directory's identity (device, inode, mtime, ctime).
 *
 * Adding, removing, renaming or replacing an entry changes its directory's mtime and ctime, and
 * a symlink's target cannot change in place, so a directory whose identity is unchanged still
 * has the listing recorded: the walk replays it instead of reading the directory and matching
 * every name against two rule sets again. File contents are not covered here: the hash cache
 * checks every file by its own identity. Like the hash cache it is a private file in the user's
 * cache folder, and still parsed as untrusted input; any defect makes it unusable as a whole. */
#ifndef SX_CS_SEAL_TREE_H
#define SX_CS_SEAL_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define SX_SEAL_TREE_MAGIC "SXSEALT\n"
#define SX_SEAL_TREE_VERSION 1u

/* One directory entry. Strings are NUL-terminated. */
typedef struct sx_tree_ent {
    char *name;
    uint8_t dtype;      /* DT_DIR, DT_REG, DT_LNK or DT_FIFO (anything else) */
    int32_t r2, r1;     /* index of the winning rule in the primary / secondary set; -1: none */
    char *link;         /* DT_LNK: its target once the walk has read it, else NULL */
} sx_tree_ent;

typedef struct sx_tree_dir {
    char *rel;          /* relative to the resource base, "" for the base */
    uint64_t dev, ino, mtime_ns, ctime_ns;
    sx_tree_ent *e;     /* in byte order of name */
    size_t n;
    bool owned;         /* rel, e and its strings are heap blocks of their own (a fresh listing),
                         * not views into a loaded snapshot */
} sx_tree_dir;

typedef struct sx_seal_tree sx_seal_tree;

/* Parse a snapshot. `key` says what the listings depend on besides the tree (the layout and
 * excluded main executable); a snapshot made under another key, or with a rule index not below
 * `n2` / `n1`, is refused. `data` (len bytes) is taken over on success and on failure. With
 * `checksum` false the trailing SHA-256 is not checked (for the fuzzer). */
int sx_seal_tree_parse(uint8_t *data, size_t len, const char *what, const char *key, size_t n2,
                       size_t n1, bool checksum, sx_seal_tree **out);
/* Load `path`; NULL when it is missing or unusable for any reason (the walk then reads every
 * directory). */
sx_seal_tree *sx_seal_tree_load(const char *path, const char *key, size_t n2, size_t n1);
void sx_seal_tree_free(sx_seal_tree *t);
size_t sx_seal_tree_count(const sx_seal_tree *t);

/* The recorded listing of `rel` when the directory `st` describes is the one recorded. */
const sx_tree_dir *sx_seal_tree_find(const sx_seal_tree *t, const char *rel, const struct stat *st);

/* Write the listings `v[0..n)` atomically to `path` (temp file + rename, no fsync: a torn file
 * fails its checksum next time). A directory changed within the file system's timestamp
 * granularity before `start_ns` (when the walk began) could change again without its identity
 * changing: it is left out, and listed afresh next time. */
int sx_seal_tree_save(const char *path, const char *key, const sx_tree_dir *const *v, size_t n,
                      uint64_t start_ns);

void sx_tree_dir_free(sx_tree_dir *d);

#endif
