/* Zip packaging internals: the checks shared by pack and unpack, and unpack entry points that
 * take the archive from memory (fuzz target, notary uploads) and report what they extracted. */
#ifndef SX_ZIP_H
#define SX_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sysext/archive.h"

/* Every entry's timestamp, as DOS date/time fields: 1980-01-01 00:00:00. */
#define SX_ZIP_DOS_DATE 0x0021u
#define SX_ZIP_DOS_TIME 0x0000u
/* Deflate level used by pack. */
#define SX_ZIP_DEFLATE_LEVEL 6
/* Longest entry name and symlink target we accept (bytes), and one path component. */
#define SX_ZIP_NAME_MAX 1024u
#define SX_ZIP_COMPONENT_MAX 255u

/* The top-level items an unpack put into its directory (names, not paths), sorted. */
typedef struct sx_zip_items {
    char **v;
    size_t n;
} sx_zip_items;

void sx_zip_items_free(sx_zip_items *items);

/* Fill `out` from `in` (NULL allowed), replacing 0 fields by the defaults. */
void sx_zip_limits_resolve(const sysext_unpack_limits *in, sysext_unpack_limits *out);

/* Check one relative path (entry name without its trailing '/', or a tree path in pack):
 * non-empty, relative, at most SX_ZIP_NAME_MAX bytes, valid UTF-8, no control characters or
 * backslashes, no empty, "." or ".." component. SYSEXT_EUNSAFE naming `what` otherwise. */
int sx_zip_check_name(const char *name, size_t len, const char *what);

/* Check a symlink stored at `link_name` (relative path inside the extracted tree) with target
 * `target` (`len` bytes, may contain NULs, which are refused): relative, only leading ".."
 * components, and those may not climb above the tree's root. SYSEXT_EUNSAFE otherwise. */
int sx_zip_check_symlink(const char *link_name, const char *target, size_t len);

/* Unpack an archive held in memory (`what` names it in messages) into `dir`, like
 * sysext_unpack(). `items` (may be NULL) receives the top-level items on success. */
int sx_zip_unpack_mem(const void *data, size_t len, const char *what, const char *dir,
                      const sysext_unpack_limits *limits, sx_zip_items *items);
/* The same from a file. */
int sx_zip_unpack_file(const char *zip_path, const char *dir, const sysext_unpack_limits *limits,
                       sx_zip_items *items);

#endif
