/* The resource seal, _CodeSignature/CodeResources (reference section 6): rules, files,
 * files2 as codesign writes them for a deep or flat bundle, and its verification.
 * Hashing reads each file once, computes every digest in that pass, and uses all cores. */
#ifndef SX_CS_SEAL_H
#define SX_CS_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/report.h"

/* Information about nested code, supplied by the signer/verifier (who can read signatures). */
typedef struct sx_nested_info {
    uint8_t cdhash[20];
    char *requirement; /* designated requirement text; owned (free) */
} sx_nested_info;

/* Called for every true nested-code location (Frameworks, PlugIns, XPCServices, ...).
 * `path` is the nested bundle or file, absolute. Return 0 and fill `out`, or an error. */
typedef int (*sx_nested_fn)(const char *path, sx_nested_info *out, void *payload);

/* Counters of one sx_seal_build / sx_seal_verify run (optional out-parameter). */
typedef struct sx_seal_stats {
    size_t files;          /* regular files sealed (V2) or checked */
    size_t symlinks;
    size_t nested;
    size_t files_hashed;   /* files actually read and hashed */
    size_t files_cached;   /* digests reused from the incremental cache */
    uint64_t bytes_hashed;
    size_t dirs_listed;    /* incremental builds: directories read afresh */
    size_t dirs_replayed;  /* ... and replayed from the previous walk's snapshot */
} sx_seal_stats;

/* Digest sets for files2 (bit per SX_HASH_* type). */
#define SX_SEAL_DIGEST(t) (1u << (t))

typedef struct sx_seal_options {
    const char *bundle_path;   /* the bundle root */
    bool flat;                 /* resource base = bundle root (dext) vs Contents/ */
    const char *main_exe_rel;  /* main executable relative to the resource base; excluded */
    sx_nested_fn nested;       /* may be NULL: then nested code is an error */
    void *nested_payload;
    const char *cache_path;    /* --incremental: hash cache file, NULL = off. Build only:
                                * digests of files whose path, size, mtime, ctime, inode and
                                * device are unchanged are reused; files modified within 2 s
                                * before the run are not cached; rewritten atomically; an
                                * unreadable/corrupt cache is ignored. Beside it (".tree" for
                                * ".cache") the walk's snapshot: unchanged directories are
                                * replayed, not read (seal_tree.h). */
    unsigned threads;          /* 0 = number of online CPUs */
    /* Added for the seal work (additive): */
    unsigned digests;          /* files2 hashes: SX_SEAL_DIGEST(SX_HASH_SHA1) "hash" and/or
                                * SX_SEAL_DIGEST(SX_HASH_SHA256) "hash2"; 0 = SHA-256 only.
                                * files (V1) always uses SHA-1. Ignored by verify. */
    sx_seal_stats *stats;      /* optional: filled on success */
    /* Build only, optional: on success the incremental caches are saved and the build's
     * working memory freed on a thread of its own, and *defer_cleanup receives it (NULL when
     * it was done at once); the caller must pass it to sx_seal_cleanup_wait. A cache that
     * cannot be saved is then not reported (it costs the next build time, nothing else);
     * without defer_cleanup the failure is the build's. The options and their strings may go
     * away before that; the thread touches only the build's own memory. */
    struct sx_seal_cleanup **defer_cleanup;
    /* Build only, optional: called once on the building thread when the walk and the cache
     * checks are done, before any file is hashed: the moment both cores are no longer needed
     * by the checks (the signer loads its identity then). Not called when the build fails
     * earlier. */
    void (*checked)(void *arg);
    void *checked_arg;
    /* Build only, optional: receives the SHA-256 of the XML, computed on a thread while the
     * XML is written (the CodeDirectory's CodeResources slot). */
    uint8_t *digest_out;
} sx_seal_options;

typedef struct sx_seal_cleanup sx_seal_cleanup;
/* Wait for a deferred cleanup and free it; NULL is a no-op. */
void sx_seal_cleanup_wait(sx_seal_cleanup *c);

/* Compute the seal and return the CodeResources XML bytes (Apple's layout: sorted keys,
 * tabs). Fails naming the file on I/O errors. */
int sx_seal_build(const sx_seal_options *o, sx_buf *xml_out);
/* A file beside an incremental build's hash cache: seal-X.cache -> seal-X<suffix> (".tree",
 * the walk snapshot; ".old", the replaced signature sign keeps). Newly allocated; NULL when
 * out of memory. */
char *sx_seal_cache_sibling(const char *cache_path, const char *suffix);

/* Check the files under the bundle against a CodeResources plist: every sealed file present
 * and unmodified (hash2, else hash), symlinks equal, nested code satisfying its recorded
 * requirement (via o->nested, comparing requirements is the caller's job through `check`),
 * and with `strict` no unsealed file and no symlink leaving the bundle. Every problem is
 * added to `report` (codes: "file-modified", "file-missing", "file-added", "symlink-changed",
 * "symlink-outside", "nested-invalid", "seal-malformed"; also "unsealed-content" (strict:
 * names in _CodeSignature other than the component files of reference 7.1 (whether each
 * is used by the CodeDirectory is the caller's check), anything but Contents and Finder
 * files in a deep bundle's root, files no rule covers),
 * "weak-rules" (strict: V1-only seal or custom omit rules), "dsstore-symlink",
 * "unsupported-resource" (not a file, directory or symlink), and the note "nested-unchecked"
 * when neither `check` nor o->nested is given). The message carries codesign's wording,
 * e.g. "file modified: Resources/a.png". Paths in the report are relative to the resource
 * base (o->flat ? bundle root : Contents/). Files are checked against the strongest digest
 * the seal records (hash2, else hash3, else hash). With `check` NULL and o->nested set, a
 * nested item's cdhash from o->nested must equal the recorded one. Other failures (the
 * bundle cannot be read) return their SYSEXT_E* code. Returns 0 if the seal holds,
 * SYSEXT_ESIGNATURE if it does not, SYSEXT_EFORMAT if the plist is malformed. */
/* `cdhash` is NULL when the seal records none (old seals); nonzero return = invalid. */
typedef int (*sx_nested_check_fn)(const char *path, const uint8_t cdhash[20],
                                  const char *requirement, void *payload);
int sx_seal_verify(const sx_seal_options *o, const uint8_t *xml, size_t len, bool strict,
                   sx_nested_check_fn check, void *payload, sx_report *report);

/* Parse a CodeResources plist (XML or binary) into a checked in-memory form; used by
 * verify and by the fuzz target. */
typedef struct sx_seal sx_seal;
int sx_seal_parse(const uint8_t *data, size_t len, const char *what, sx_seal **out);
void sx_seal_free(sx_seal *s);

/* Hash one file with SHA-1 and SHA-256 in a single read. */
int sx_hash_file_pair(const char *path, uint8_t sha1[20], uint8_t sha256[32], uint64_t *size);

#endif
