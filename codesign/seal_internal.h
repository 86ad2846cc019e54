/* Internals of the resource seal shared by seal_rules.c, seal.c and filehash.c (and the tests):
 * compiled rule sets, the walk of a resource base, and the parallel file hasher. */
#ifndef SX_CS_SEAL_INTERNAL_H
#define SX_CS_SEAL_INTERNAL_H

#include <plist/plist.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

/* ---- rules (reference 6.3-6.6) ---- */

enum {
    SX_RULE_OMIT = 1u << 0,
    SX_RULE_OPTIONAL = 1u << 1,
    SX_RULE_NESTED = 1u << 2,
    SX_RULE_EXCLUSION = 1u << 3, /* implicit exclusion (6.6): wins immediately */
};

/* How a pattern is matched: common literal shapes skip regexec (same result). */
enum { SX_RM_REGEX = 0, SX_RM_ALL, SX_RM_PREFIX, SX_RM_EXACT, SX_RM_FUNC };

typedef struct sx_seal_rule {
    char *pattern;   /* the plist key (or the literal excluded path) */
    unsigned weight; /* 1 when not given */
    unsigned flags;  /* SX_RULE_* */
    int mode;        /* SX_RM_* */
    char *literal;   /* for SX_RM_PREFIX / SX_RM_EXACT */
    size_t literal_len;
    bool (*fn)(const char *rel, size_t len); /* SX_RM_FUNC: a template pattern in C */
    regex_t re;
    bool compiled;
} sx_seal_rule;

typedef struct sx_seal_rules {
    sx_seal_rule *v;
    size_t n, cap;
} sx_seal_rules;

/* The default rules template as a plist dict, keys inserted in sorted order.
 * version 1 = "rules", 2 = "rules2"; flat = resource base is the bundle root (6.5). */
plist_t sx_seal_rules_template(bool flat, int version);

/* Read a rules dict (from a CodeResources plist or a template) into `out` without compiling.
 * `what` and `key` name it in errors ("x: rules2.^Foo$.weight: expected ..."). */
int sx_seal_rules_from_plist(plist_t dict, const char *what, const char *key, sx_seal_rules *out);
/* Append an implicit exclusion for the exact relative path `rel`. */
int sx_seal_rules_add_exclusion(sx_seal_rules *rs, const char *rel);
/* Compile every pattern (POSIX extended, no case folding); EFORMAT naming the pattern. */
int sx_seal_rules_compile(sx_seal_rules *rs, const char *what, const char *key);
/* The winning rule for `rel` (6.3), or NULL when no rule matches. An exclusion wins at once;
 * otherwise the highest weight; on a tie the first one in order, except that an omit rule
 * beats a non-omit one (Apple's tie order is a hash order; its seals show omit winning). */
const sx_seal_rule *sx_seal_rules_match(const sx_seal_rules *rs, const char *rel);
/* Force every pattern through regcomp/regexec (tests compare both paths). */
int sx_seal_rules_compile_regex_only(sx_seal_rules *rs);
int sx_seal_rules_copy(const sx_seal_rules *src, sx_seal_rules *dst);
void sx_seal_rules_free(sx_seal_rules *rs);
/* The weak-rules check of --strict (6.3): NULL when fine, else codesign's message. */
const char *sx_seal_rules_weakness(const sx_seal_rules *rules2, bool flat);

/* ---- parsed CodeResources ---- */

enum { SX_SEAL_FILE = 0, SX_SEAL_SYMLINK = 1, SX_SEAL_NESTED = 2 };

typedef struct sx_seal_entry {
    char *path;
    int kind; /* SX_SEAL_* */
    bool optional;
    bool has_sha1, has_sha256, has_sha256t, has_sha384;
    uint8_t sha1[20];
    uint8_t sha256[32];
    uint8_t sha256t[20];
    uint8_t sha384[48];
    char *symlink;     /* SX_SEAL_SYMLINK */
    bool has_cdhash;   /* SX_SEAL_NESTED */
    uint8_t cdhash[20];
    char *requirement; /* SX_SEAL_NESTED */
} sx_seal_entry;

struct sx_seal {
    bool has_v1, has_v2;
    sx_seal_entry *files;  /* V1, sorted by path */
    size_t nfiles;
    sx_seal_entry *files2; /* V2, sorted by path */
    size_t nfiles2;
    sx_seal_rules rules, rules2; /* not compiled */
};

const sx_seal_entry *sx_seal_find(const sx_seal_entry *v, size_t n, const char *path);

/* ---- parallel hashing (filehash.c) ---- */

typedef struct sx_hash_job {
    char *path;       /* absolute path to open (owned by the job list); may be NULL when
                       * `base` is set: then built as base/rel when needed */
    const char *base; /* borrowed; with rel, names the file when `path` is NULL */
    const char *rel;  /* cache key; borrowed */
    /* When has_dirfd: the file is `name` in the open directory `dirfd` (both borrowed), opened
     * with openat/fstatat, which spares the path lookup. */
    bool has_dirfd;
    int dirfd;
    const char *name;
    bool want_sha1, want_sha256;
    /* results */
    bool have_sha1, have_sha256;
    uint8_t sha1[20];
    uint8_t sha256[32];
    uint64_t size;
    bool from_cache;
    int rc;           /* 0 or SYSEXT_E* */
    char *errmsg;     /* message for rc, owned */
    /* identity for the cache: filled by the hasher, or by the caller from its own lstat with
     * stat_known set (then a cache hit needs no open) */
    bool stat_known;
    uint64_t dev, ino, mtime_ns, ctime_ns;
    /* Set by sx_hash_prefetch_stat: the prefetched cache's record for `rel`, which spares the
     * lookup (used only when the run takes that prefetched cache). */
    const void *cache_rec;
} sx_hash_job;

typedef struct sx_hash_stats {
    size_t files_hashed;   /* files read and hashed in this run */
    size_t files_cached;   /* digests reused from the cache */
    uint64_t bytes_hashed;
} sx_hash_stats;

/* Hash every job with `threads` workers (0 = online CPUs). With `cache_path`, reuse digests of
 * files whose (path, size, mtime, ctime, inode, device) are unchanged and rewrite the cache
 * atomically afterwards; an unreadable or corrupt cache is ignored. Returns the first failing
 * job's code with its message (every job is still attempted), or 0. */
int sx_hash_jobs_run(sx_hash_job *jobs, size_t n, unsigned threads, const char *cache_path,
                     sx_hash_stats *stats);
void sx_hash_jobs_free(sx_hash_job *jobs, size_t n);

/* Start loading the cache at `cache_path` on a thread of its own (while the caller walks the
 * tree), for sx_hash_jobs_run_prefetched with the same path, which waits for it and takes its
 * result, and leaves the new cache to be saved by sx_hash_prefetch_finish (returns the save's
 * result; the jobs must stay alive until then), whenever the caller has a moment;
 * sx_hash_prefetch_free discards an unsaved one. NULL when out of memory (then just run
 * without). */
typedef struct sx_hash_prefetch sx_hash_prefetch;
sx_hash_prefetch *sx_hash_prefetch_start(const char *cache_path);
int sx_hash_prefetch_finish(sx_hash_prefetch *pf);
/* Drop a pending save (the build that ran the jobs failed later). */
void sx_hash_prefetch_discard(sx_hash_prefetch *pf);
void sx_hash_prefetch_free(sx_hash_prefetch *pf);
/* Stat-ahead, to overlap the walk with the incremental cache checks: the walk reports each
 * regular file it finds (`name` in the open directory `dirfd`; `rel` its cache key; all three
 * must stay valid until sx_hash_prefetch_free) and gets an index back (SIZE_MAX: not queued).
 * Once the cache is loaded, and only if it has records, the prefetch thread fstatat()s each
 * queued file the cache knows while the walk goes on. sx_hash_prefetch_walk_done ends the
 * queue, drains what is left on the calling thread too, and waits for the prefetch thread;
 * sx_hash_prefetch_stat then fills a job's identity (setting stat_known) when a regular file
 * was seen there, so that a cache hit costs no system call at all. */
size_t sx_hash_prefetch_push(sx_hash_prefetch *pf, int dirfd, const char *name, const char *rel);
void sx_hash_prefetch_walk_done(sx_hash_prefetch *pf);
bool sx_hash_prefetch_stat(const sx_hash_prefetch *pf, size_t idx, sx_hash_job *j);
int sx_hash_jobs_run_prefetched(sx_hash_job *jobs, size_t n, unsigned threads,
                                const char *cache_path, sx_hash_prefetch *pf,
                                sx_hash_stats *stats);

/* Writers for CodeResources XML with libplist 2.2's exact layout (tabs, `<dict/>` for an
 * empty dict, only & < > escaped, data base64 on one line at the element's depth): the seal
 * writes its files/files2 dicts directly instead of building a plist tree. `depth` is the
 * number of tabs. Data must be at most 32 bytes (a digest), which always fits one line. */
int sx_xml_key(sx_buf *b, unsigned depth, const char *key);
int sx_xml_data(sx_buf *b, unsigned depth, const uint8_t *p, size_t n);
int sx_xml_string(sx_buf *b, unsigned depth, const char *s);
int sx_xml_bool(sx_buf *b, unsigned depth, bool v);
int sx_xml_tag(sx_buf *b, unsigned depth, const char *tag); /* "<dict>", "</dict>", "<dict/>" */

/* Parse a cache file's bytes and discard the result (tests, fuzzing); `checksum` false skips
 * the trailing SHA-256 check so a fuzzer can reach the records. */
int sx_hash_cache_parse_check(const uint8_t *data, size_t len, bool checksum, size_t *records);

/* Cache file format, exposed for tests. */
/* A file or directory changed within this window before it was read could change again within
 * the file system's timestamp granularity (2 s on FAT) without its stat changing: the
 * incremental caches (hash cache, walk snapshot) do not record it. */
#define SX_CACHE_RACY_WINDOW_NS 2000000000ull
#define SX_HASH_CACHE_MAGIC "SXSEALC\n"
#define SX_HASH_CACHE_VERSION 1u

#endif
