/**
 * Zip packaging of bundles: pack like `ditto -c -k --keepParent`, unpack hostile archives safely.
 *
 * Pack output is deterministic: the same bundle tree gives the same bytes. Entries are
 * `<BundleName>/...`, sorted by path in byte order; every directory (empty ones too) is an
 * entry ending in '/'; symlinks are stored as symlinks (Unix external attributes with S_IFLNK,
 * the target as content); permission bits (0777) are kept; every timestamp is
 * 1980-01-01 00:00:00 (the DOS epoch); no extra fields; files are deflated at level 6.
 *
 * Unpack refuses, with nothing written outside DIR and no partial output:
 *  - SYSEXT_EUNSAFE: absolute names, '..' / '.' / empty components, backslashes, control
 *    characters, invalid UTF-8, duplicate names (also ones differing only in ASCII case),
 *    a file/directory/symlink clash, an entry below a symlink or a file, symlinks whose target
 *    is absolute or resolves outside the extracted tree, special files (devices, fifos);
 *  - SYSEXT_ELIMIT: too many entries, total uncompressed size over the limit, a compression
 *    ratio over the limit, an entry that decompresses to more than its declared size;
 *  - SYSEXT_EFORMAT: not a zip, truncated or inconsistent archives, encryption, compression
 *    methods other than store and deflate, CRC errors.
 * Errors name the entry and the rule.
 */
#ifndef SYSEXT_ARCHIVE_H
#define SYSEXT_ARCHIVE_H

#include <stdint.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

/** sysext_pack() flags. */
enum {
    SYSEXT_PACK_STORE = 1u << 0, /**< store files uncompressed instead of deflating them */
};

/** Default unpack limits (used for any field left 0). */
#define SYSEXT_UNPACK_DEFAULT_MAX_TOTAL (4ull << 30)   /**< 4 GiB uncompressed in all */
#define SYSEXT_UNPACK_DEFAULT_MAX_ENTRIES 100000ull    /**< entries in the archive */
#define SYSEXT_UNPACK_DEFAULT_MAX_RATIO 200u           /**< uncompressed : compressed */
/** Entries (and archives) smaller than this many uncompressed bytes skip the ratio check. */
#define SYSEXT_UNPACK_RATIO_FLOOR (1ull << 20)

/**
 * Limits for sysext_unpack(). A field left 0 takes its default. The ratio applies to each
 * entry (uncompressed size / compressed size) and to the whole archive (total uncompressed
 * size / archive size), once the uncompressed size reaches SYSEXT_UNPACK_RATIO_FLOOR.
 */
typedef struct sysext_unpack_limits {
    uint64_t max_total_bytes; /**< sum of the entries' uncompressed sizes */
    uint64_t max_entries;     /**< number of entries */
    uint32_t max_ratio;       /**< compression ratio */
} sysext_unpack_limits;

/**
 * Pack the bundle folder `bundle_path` into the zip file `zip_path`.
 *
 * The zip is written to a temporary file beside `zip_path` and renamed over it, so a failure
 * leaves no partial file (an existing `zip_path` is replaced only on success). Only
 * directories, regular files and symlinks may appear in the bundle; a symlink whose target is
 * absolute or leaves the bundle is refused (SYSEXT_EUNSAFE), as are names unpack would refuse.
 *
 * @param flags 0 or SYSEXT_PACK_STORE.
 * @return 0, or SYSEXT_EINVAL, SYSEXT_ENOTFOUND, SYSEXT_EUNSAFE, SYSEXT_EUNSUPPORTED,
 *         SYSEXT_EIO, SYSEXT_ENOMEM with sysext_last_error() set.
 */
SYSEXT_API int sysext_pack(const char *bundle_path, const char *zip_path, unsigned flags);

/**
 * Unpack the zip file `zip_path` into the directory `dir` (created if missing; its parent
 * must exist).
 *
 * Everything is checked first and extracted into a fresh temporary directory inside `dir`;
 * only when all succeeded are the archive's top-level items renamed into `dir`. If one of
 * them already exists in `dir` nothing is moved and SYSEXT_EEXISTS is returned. On any
 * failure the temporary directory is removed.
 *
 * Modes are restored from the permission bits only (never setuid/setgid/sticky); a
 * directory always gets at least owner r-x, so the tree can be walked. Entries without Unix
 * attributes get 0644 (files) and 0755 (directories). Timestamps are not restored.
 *
 * @param limits NULL for the defaults; a field left 0 takes its default.
 * @return 0, or SYSEXT_EUNSAFE, SYSEXT_ELIMIT, SYSEXT_EFORMAT (see above), SYSEXT_EEXISTS,
 *         SYSEXT_ENOTFOUND, SYSEXT_EIO, SYSEXT_ENOMEM with sysext_last_error() set.
 */
SYSEXT_API int sysext_unpack(const char *zip_path, const char *dir,
                             const sysext_unpack_limits *limits);

SYSEXT_END_DECLS

#endif
