/* File hashing for the resource seal: one read per file computing every digest it needs,
 * files spread over a pool of threads, and an optional incremental cache keyed by
 * (path, size, mtime, ctime, inode, device). */
#include "util/common.h"
#include "codesign/seal.h"
#include "codesign/hash.h"
#include "codesign/seal_internal.h"
#include "codesign/shani.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/reader.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)
#define WHAT (path ? path : job_path(j))
#define CACHE_MAX_BYTES ((size_t)512 << 20)
#define CACHE_MAX_PATH 4096u

/* Hash an open file into whichever digests are wanted; `buf` holds READ_CHUNK bytes. */
/* `expect` is the size fstat reported (UINT64_MAX: unknown): once that much is read the
 * final read() that would only see EOF is skipped (a syscall per file, many small files). */
static const char *job_path(sx_hash_job *j);

/* `path` names the file in errors, or else the job `j` does. */
static int hash_fd(int fd, const char *path, sx_hash_job *j, bool want1, bool want256,
                   uint8_t *buf, uint8_t sha1[20], uint8_t sha256[32], uint64_t *size,
                   uint64_t expect)
{
    EVP_MD_CTX *c1 = NULL, *c2 = NULL;
    sx_shani_ctx sc;
    bool ni = sx_shani_available();
    int rc = 0;
    uint64_t total = 0;
    if (ni) {
        sx_shani_init(&sc, want1, want256);
    } else {
        if (want1 && (!(c1 = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(c1, EVP_sha1(), NULL))) {
            rc = sx_err(SYSEXT_ERROR, "%s: SHA-1 initialisation failed", WHAT);
            goto out;
        }
        if (want256 && (!(c2 = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(c2, EVP_sha256(), NULL))) {
            rc = sx_err(SYSEXT_ERROR, "%s: SHA-256 initialisation failed", WHAT);
            goto out;
        }
    }
    for (;;) {
        ssize_t k = read(fd, buf, READ_CHUNK);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = sx_err_errno(SYSEXT_EIO, errno, "%s", WHAT);
            goto out;
        }
        if (k == 0)
            break;
        total += (uint64_t)k;
        if (ni) {
            sx_shani_update(&sc, buf, (size_t)k);
        } else if ((c1 && !EVP_DigestUpdate(c1, buf, (size_t)k)) ||
                   (c2 && !EVP_DigestUpdate(c2, buf, (size_t)k))) {
            rc = sx_err(SYSEXT_ERROR, "%s: digest update failed", WHAT);
            goto out;
        }
        if (total == expect && (size_t)k < READ_CHUNK)
            break;
    }
    if (ni) {
        sx_shani_final(&sc, sha1, sha256);
    } else if ((c1 && !EVP_DigestFinal_ex(c1, sha1, NULL)) ||
               (c2 && !EVP_DigestFinal_ex(c2, sha256, NULL))) {
        rc = sx_err(SYSEXT_ERROR, "%s: digest finalisation failed", WHAT);
        goto out;
    }
    if (size)
        *size = total;
out:
    EVP_MD_CTX_free(c1);
    EVP_MD_CTX_free(c2);
    return rc;
}

/* Open `name` in `dirfd` (AT_FDCWD: a path) as a regular file, never following a symlink.
 * Errors name the job's path (built only then), or `name` without a job. */
static int open_regular_at(int dirfd, const char *path, sx_hash_job *j, struct stat *st)
{
    const char *name = path;
    if (j)
        path = NULL; /* named by the job, built only for a message */
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return sx_err_errno(e == ELOOP ? SYSEXT_EFORMAT : sx_errno_code(e), e, "%s", WHAT);
    }
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return sx_err_errno(SYSEXT_EIO, e, "%s", WHAT);
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return sx_err(SYSEXT_EFORMAT, "%s: not a regular file", WHAT);
    }
    if (st->st_size > (off_t)READ_CHUNK)
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return fd;
}

static int open_regular(const char *path, struct stat *st)
{
    return open_regular_at(AT_FDCWD, path, NULL, st);
}

int sx_hash_file_pair(const char *path, uint8_t sha1[20], uint8_t sha256[32], uint64_t *size)
{
    SX_ASSERT_ARG(path);
    struct stat st;
    int fd = open_regular(path, &st);
    if (fd < 0)
        return fd;
    uint8_t *buf = malloc(READ_CHUNK);
    if (!buf) {
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", path);
    }
    int rc = hash_fd(fd, path, NULL, sha1 != NULL, sha256 != NULL, buf, sha1, sha256, size,
                     (uint64_t)st.st_size);
    free(buf);
    close(fd);
    return rc;
}

/* ---- the cache ---- */

enum { CF_SHA1 = 1, CF_SHA256 = 2 };

typedef struct cache_rec {
    const char *path; /* not NUL-terminated: points into hash_cache.data */
    uint32_t plen;
    uint64_t size, mtime_ns, ctime_ns, ino, dev;
    uint8_t flags;
    uint8_t sha1[20];
    uint8_t sha256[32];
} cache_rec;

typedef struct hash_cache {
    cache_rec *v;
    size_t n;
    uint8_t *data; /* the file's bytes, which the records point into */
} hash_cache;

static void cache_free(hash_cache *c)
{
    free(c->v);
    free(c->data);
    c->v = NULL;
    c->data = NULL;
    c->n = 0;
}

/* Byte order of NUL-free strings given with their lengths: the order of strcmp. */
static int path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int d = memcmp(a, b, alen < blen ? alen : blen);
    return d ? d : (alen > blen) - (alen < blen);
}

static int rec_cmp(const void *a, const void *b)
{
    const cache_rec *x = a, *y = b;
    return path_cmp(x->path, x->plen, y->path, y->plen);
}

/* Parse a cache file. Any defect makes the whole cache unusable (returns an error; the
 * caller then starts from an empty cache). */
static int cache_parse(const uint8_t *data, size_t len, const char *what, bool checksum,
                       hash_cache *out)
{
    sx_reader r;
    const uint8_t *p;
    uint32_t version, count;
    uint8_t digest[32];
    if (len < 8 + 4 + 4 + 32)
        return sx_err(SYSEXT_EFORMAT, "%s: too short", what);
    if (checksum && sx_hash(SX_HASH_SHA256, data, len - 32, digest) < 0)
        return SYSEXT_ERROR;
    if (checksum && memcmp(digest, data + len - 32, 32) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: checksum mismatch", what);
    sx_reader_init(&r, data, len - 32, what);
    int rc;
    if ((rc = sx_rd_bytes(&r, 8, &p)) < 0)
        return rc;
    if (memcmp(p, SX_HASH_CACHE_MAGIC, 8) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: bad magic", what);
    if ((rc = sx_rd_u32be(&r, &version)) < 0 || (rc = sx_rd_u32be(&r, &count)) < 0)
        return rc;
    if (version != SX_HASH_CACHE_VERSION)
        return sx_err(SYSEXT_EFORMAT, "%s: version %u unsupported", what, version);
    /* Each record takes at least 4 + 40 + 1 + 52 bytes: bound count by what is left. */
    if (count > sx_reader_left(&r) / 97)
        return sx_err(SYSEXT_EFORMAT, "%s: record count %u exceeds the data", what, count);
    out->v = calloc(count ? count : 1, sizeof(*out->v));
    if (!out->v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    out->n = 0;
    for (uint32_t i = 0; i < count; i++) {
        cache_rec *c = &out->v[i];
        uint32_t plen;
        const uint8_t *h;
        if ((rc = sx_rd_u32be(&r, &plen)) < 0)
            return rc;
        if (plen == 0 || plen > CACHE_MAX_PATH)
            return sx_err(SYSEXT_EFORMAT, "%s: record %u: bad path length %u", what, i, plen);
        if ((rc = sx_rd_bytes(&r, plen, &p)) < 0)
            return rc;
        if (memchr(p, 0, plen))
            return sx_err(SYSEXT_EFORMAT, "%s: record %u: NUL in path", what, i);
        c->path = (const char *)p;
        c->plen = plen;
        out->n++;
        if ((rc = sx_rd_u64be(&r, &c->size)) < 0 || (rc = sx_rd_u64be(&r, &c->mtime_ns)) < 0 ||
            (rc = sx_rd_u64be(&r, &c->ctime_ns)) < 0 || (rc = sx_rd_u64be(&r, &c->ino)) < 0 ||
            (rc = sx_rd_u64be(&r, &c->dev)) < 0 || (rc = sx_rd_u8(&r, &c->flags)) < 0)
            return rc;
        if (c->flags & ~(CF_SHA1 | CF_SHA256))
            return sx_err(SYSEXT_EFORMAT, "%s: record %u: bad flags", what, i);
        if ((rc = sx_rd_bytes(&r, 20, &h)) < 0)
            return rc;
        memcpy(c->sha1, h, 20);
        if ((rc = sx_rd_bytes(&r, 32, &h)) < 0)
            return rc;
        memcpy(c->sha256, h, 32);
    }
    if (sx_reader_left(&r) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: %zu trailing bytes", what, sx_reader_left(&r));
    /* Written sorted: sort only when it is not (an older writer). */
    bool sorted = true;
    for (size_t i = 1; i < out->n && sorted; i++)
        sorted = rec_cmp(&out->v[i - 1], &out->v[i]) < 0;
    if (!sorted)
        sx_qsort(out->v, out->n, sizeof(*out->v), rec_cmp);
    for (size_t i = 1; i < out->n; i++)
        if (rec_cmp(&out->v[i - 1], &out->v[i]) == 0)
            return sx_err(SYSEXT_EFORMAT, "%s: duplicate path", what);
    return 0;
}

static void cache_load(const char *path, hash_cache *out)
{
    uint8_t *data = NULL;
    size_t len = 0;
    out->v = NULL;
    out->n = 0;
    if (sx_read_file(path, CACHE_MAX_BYTES, &data, &len) < 0) {
        sx_err_clear();
        return;
    }
    out->data = data;
    if (cache_parse(data, len, path, true, out) < 0) {
        cache_free(out);
        sx_err_clear();
    }
}

int sx_hash_cache_parse_check(const uint8_t *data, size_t len, bool checksum, size_t *records)
{
    hash_cache c = {NULL, 0, NULL};
    int rc = cache_parse(data, len, "hash cache", checksum, &c);
    if (rc == 0 && records)
        *records = c.n;
    cache_free(&c); /* c.data stays NULL: the bytes are the caller's */
    return rc;
}

static const cache_rec *cache_find(const hash_cache *c, const char *rel)
{
    size_t lo = 0, hi = c->n, rlen = strlen(rel);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = path_cmp(rel, rlen, c->v[mid].path, c->v[mid].plen);
        if (d == 0)
            return &c->v[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int job_rel_cmp(const void *a, const void *b, void *arg)
{
    const sx_hash_job *jobs = arg;
    const sx_hash_job *x = &jobs[*(const size_t *)a], *y = &jobs[*(const size_t *)b];
    return strcmp(x->rel ? x->rel : "", y->rel ? y->rel : "");
}

/* Records are written sorted by path, so the next load need not sort them. */
/* `unchanged`: every job came from the old cache of `old_n` records; then the file is only
 * rewritten when the set of records differs (files removed). */
static int cache_save(const char *path, const sx_hash_job *jobs, size_t n, uint64_t start_ns,
                      bool unchanged, size_t old_n)
{
    sx_buf b = SX_BUF_INIT;
    uint32_t count = 0;
    int rc = 0;
    uint8_t digest[32];
    size_t *order = malloc((n ? n : 1) * sizeof(*order)), bytes = 0;
    if (!order)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    bool sorted = true;
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
        if (i && sorted && job_rel_cmp(&order[i - 1], &order[i], (void *)jobs) > 0)
            sorted = false;
    }
    if (!sorted)
        qsort_r(order, n, sizeof(*order), job_rel_cmp, (void *)jobs);
    /* 97 bytes per record besides its path; about 64 for the path. */
    if (!SX_MUL_OVERFLOW(n, (size_t)(97 + 64), &bytes) && (rc = sx_buf_reserve(&b, bytes + 64)) < 0)
        goto out;
    if ((rc = sx_buf_append(&b, SX_HASH_CACHE_MAGIC, 8)) < 0 ||
        (rc = sx_buf_put_u32be(&b, SX_HASH_CACHE_VERSION)) < 0 ||
        (rc = sx_buf_put_u32be(&b, 0)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const sx_hash_job *j = &jobs[order[i]];
        size_t plen = j->rel ? strlen(j->rel) : 0;
        if (j->rc != 0 || !j->rel || plen == 0 || plen > CACHE_MAX_PATH || j->dev == 0 ||
            count == UINT32_MAX)
            continue;
        /* Racily clean: a write right after our read, within the file system's timestamp
         * granularity, could leave the stat data as it is. Any later write moves the mtime
         * to "now", away from an older one. */
        if (j->mtime_ns + SX_CACHE_RACY_WINDOW_NS > start_ns)
            continue;
        uint8_t flags = (uint8_t)((j->have_sha1 ? CF_SHA1 : 0) | (j->have_sha256 ? CF_SHA256 : 0));
        /* The fixed part of a record after the path: 5 x u64be, flags, SHA-1, SHA-256. */
        uint8_t tail[5 * 8 + 1 + 20 + 32], len4[4];
        const uint64_t v[5] = {j->size, j->mtime_ns, j->ctime_ns, j->ino, j->dev};
        for (int k = 0; k < 5; k++)
            for (int q = 0; q < 8; q++)
                tail[8 * k + q] = (uint8_t)(v[k] >> (56 - 8 * q));
        tail[40] = flags;
        memcpy(tail + 41, j->sha1, 20);
        memcpy(tail + 61, j->sha256, 32);
        for (int q = 0; q < 4; q++)
            len4[q] = (uint8_t)((uint32_t)plen >> (24 - 8 * q));
        if ((rc = sx_buf_append(&b, len4, 4)) < 0 || (rc = sx_buf_append(&b, j->rel, plen)) < 0 ||
            (rc = sx_buf_append(&b, tail, sizeof(tail))) < 0)
            goto out;
        count++;
    }
    if (unchanged && count == old_n)
        goto out;
    sx_buf_set_u32be(&b, 12, count);
    if ((rc = sx_hash(SX_HASH_SHA256, b.data, b.len, digest)) < 0 ||
        (rc = sx_buf_append(&b, digest, 32)) < 0)
        goto out;
    if ((rc = sx_write_cache_file(path, b.data, b.len)) < 0)
        sx_err_prefix(rc, "hash cache");
out:
    sx_buf_free(&b);
    free(order);
    return rc;
}

/* ---- the pool ---- */

typedef struct pool {
    sx_hash_job *jobs;
    size_t *order;
    size_t n;
    size_t next; /* atomic */
    const hash_cache *cache;
    bool hints; /* the jobs' cache_rec point into `cache` */
    size_t hashed, cached; /* atomic */
    uint64_t bytes;        /* atomic */
} pool;

/* `c`: the job's record when already looked up (else NULL: looked up here). */
static bool cache_hit(pool *p, sx_hash_job *j, const cache_rec *c)
{
    if (!c)
        c = cache_find(p->cache, j->rel);
    if (!c || c->size != j->size || c->mtime_ns != j->mtime_ns || c->ctime_ns != j->ctime_ns ||
        c->ino != j->ino || c->dev != j->dev || (j->want_sha1 && !(c->flags & CF_SHA1)) ||
        (j->want_sha256 && !(c->flags & CF_SHA256)))
        return false;
    memcpy(j->sha1, c->sha1, 20);
    memcpy(j->sha256, c->sha256, 32);
    j->have_sha1 = (c->flags & CF_SHA1) != 0;
    j->have_sha256 = (c->flags & CF_SHA256) != 0;
    j->from_cache = true;
    __atomic_fetch_add(&p->cached, 1, __ATOMIC_RELAXED);
    return true;
}

/* The job's path for open() and messages: built from base/rel on first use. */
static const char *job_path(sx_hash_job *j)
{
    if (!j->path && j->base && j->rel)
        j->path = sx_path_join(j->base, j->rel);
    return j->path ? j->path : j->rel ? j->rel : "(out of memory)";
}

static void job_fail(sx_hash_job *j, int rc)
{
    j->rc = rc;
    j->errmsg = strdup(sx_errmsg());
}

static void set_identity(sx_hash_job *j, const struct stat *st)
{
    j->dev = (uint64_t)st->st_dev;
    j->ino = (uint64_t)st->st_ino;
    j->mtime_ns = sx_timespec_ns(st->st_mtim);
    j->ctime_ns = sx_timespec_ns(st->st_ctim);
    j->size = (uint64_t)st->st_size;
}

static void run_job(pool *p, sx_hash_job *j, uint8_t *buf)
{
    struct stat st, st2;
    /* Jobs whose identity the caller knew were looked up before the pool started. */
    const cache_rec *rec = NULL;
    /* A file the cache knows: one fstatat by name decides, again without an open. */
    if (p->cache && j->rel && !j->stat_known && j->has_dirfd &&
        (rec = cache_find(p->cache, j->rel)) &&
        fstatat(j->dirfd, j->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
        set_identity(j, &st);
        j->stat_known = true;
        if (cache_hit(p, j, rec))
            return;
    }
    if (!j->has_dirfd && (job_path(j), !j->path)) {
        job_fail(j, sx_err(SYSEXT_ENOMEM, "out of memory"));
        return;
    }
    int fd = j->has_dirfd ? open_regular_at(j->dirfd, j->name, j, &st)
                          : open_regular_at(AT_FDCWD, job_path(j), j, &st);
    if (fd < 0) {
        job_fail(j, fd);
        return;
    }
    set_identity(j, &st);
    if (p->cache && j->rel && !j->stat_known && cache_hit(p, j, rec)) {
        close(fd);
        return;
    }
    uint64_t size = 0;
    int rc = hash_fd(fd, NULL, j, j->want_sha1, j->want_sha256, buf, j->sha1, j->sha256, &size,
                     j->size);
    if (rc == 0) {
        j->have_sha1 = j->want_sha1;
        j->have_sha256 = j->want_sha256;
        /* Changed while we read it: the digests are fine for this run, but not cacheable. */
        if (p->cache && (fstat(fd, &st2) < 0 || sx_timespec_ns(st2.st_mtim) != j->mtime_ns ||
                         sx_timespec_ns(st2.st_ctim) != j->ctime_ns || size != j->size))
            j->dev = 0;
        j->size = size;
        __atomic_fetch_add(&p->hashed, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&p->bytes, size, __ATOMIC_RELAXED);
    } else {
        j->rc = rc;
        j->errmsg = strdup(sx_errmsg());
    }
    close(fd);
}

static void *worker(void *arg)
{
    pool *p = arg;
    uint8_t *buf = malloc(READ_CHUNK);
    for (;;) {
        size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (i >= p->n)
            break;
        sx_hash_job *j = &p->jobs[p->order[i]];
        if (!buf) {
            j->rc = SYSEXT_ENOMEM;
            j->errmsg = strdup("out of memory");
            continue;
        }
        run_job(p, j, buf);
    }
    free(buf);
    return NULL;
}

static int size_desc(const void *a, const void *b, void *arg)
{
    const sx_hash_job *jobs = arg;
    size_t i = *(const size_t *)a, k = *(const size_t *)b;
    if (jobs[i].size != jobs[k].size)
        return jobs[i].size > jobs[k].size ? -1 : 1;
    return i < k ? -1 : (i > k);
}

/* ---- loading the cache while the caller walks ---- */

/* The stat-ahead queue: records in chunks that never move, so the walk can append while the
 * prefetch thread reads; `published` (release/acquire) says how many are complete. */
#define SA_CHUNK 4096u
#define SA_MAX_CHUNKS 1024u
enum { SA_PENDING = 0, SA_REGULAR, SA_NONE };

typedef struct sa_rec {
    int dirfd;
    const char *name, *rel;
    int state; /* SA_*: written by the thread that claimed the record */
    const void *rec; /* its cache record (SA_REGULAR) */
    uint64_t dev, ino, mtime_ns, ctime_ns, size;
} sa_rec;

struct sx_hash_prefetch {
    char *path;
    hash_cache cache;
    pthread_t tid;
    bool started;
    /* stat-ahead */
    sa_rec *chunks[SA_MAX_CHUNKS];
    size_t published; /* atomic: records ready to claim */
    size_t next;      /* atomic: next record to claim */
    bool walk_done;   /* atomic */
    bool loaded;      /* atomic: the cache load finished */
    /* the save, pending after the run until sx_hash_prefetch_finish */
    bool save_pending;
    const sx_hash_job *jobs;
    size_t n, old_n;
    uint64_t start_ns;
    bool unchanged;
};

static sa_rec *sa_at(const sx_hash_prefetch *pf, size_t i)
{
    return &pf->chunks[i / SA_CHUNK][i % SA_CHUNK];
}

#define SA_CLAIM 16u

/* The walk reports files in nearly the cache's (byte) order, so the record after the last one
 * found is usually the next one wanted: try it before a binary search. */
static const cache_rec *cache_find_next(const hash_cache *c, const char *rel, size_t *hint)
{
    if (*hint < c->n) {
        const cache_rec *h = &c->v[*hint];
        size_t rlen = strlen(rel);
        if (h->plen == rlen && memcmp(h->path, rel, rlen) == 0) {
            (*hint)++;
            return h;
        }
    }
    const cache_rec *f = cache_find(c, rel);
    if (f)
        *hint = (size_t)(f - c->v) + 1;
    return f;
}

static void sa_stat_one(const sx_hash_prefetch *pf, sa_rec *r, size_t *hint)
{
    struct stat st;
    r->state = SA_NONE;
    if ((r->rec = cache_find_next(&pf->cache, r->rel, hint)) &&
        fstatat(r->dirfd, r->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
        r->dev = (uint64_t)st.st_dev;
        r->ino = (uint64_t)st.st_ino;
        r->mtime_ns = sx_timespec_ns(st.st_mtim);
        r->ctime_ns = sx_timespec_ns(st.st_ctim);
        r->size = (uint64_t)st.st_size;
        r->state = SA_REGULAR;
    }
}

/* Claim and stat queued records until none is left; with `wait`, until the walk is done too. */
static void sa_drain(sx_hash_prefetch *pf, bool wait)
{
    size_t hint = 0; /* per thread: where the last record was found */
    for (;;) {
        size_t pub = __atomic_load_n(&pf->published, __ATOMIC_ACQUIRE);
        size_t i = __atomic_load_n(&pf->next, __ATOMIC_RELAXED);
        if (i >= pub) {
            if (!wait || __atomic_load_n(&pf->walk_done, __ATOMIC_ACQUIRE)) {
                /* A last look: records published just before the walk ended. */
                if (__atomic_load_n(&pf->published, __ATOMIC_ACQUIRE) > i)
                    continue;
                return;
            }
            /* The walk produces faster than fstatat consumes: this is only the start. */
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* Claim a run of records, not one: two threads stat-ing neighbours in the same
         * directory share kernel cache lines and run no faster than one (measured here:
         * 10,000 fstatats took 21 ms on one thread, 26 ms on two taking turns, 12 ms on
         * two taking runs of 16). */
        size_t end = pub - i > SA_CLAIM ? i + SA_CLAIM : pub;
        if (!__atomic_compare_exchange_n(&pf->next, &i, end, false, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
            continue;
        for (; i < end; i++)
            sa_stat_one(pf, sa_at(pf, i), &hint);
    }
}

static void *prefetch_main(void *arg)
{
    sx_hash_prefetch *pf = arg;
    cache_load(pf->path, &pf->cache);
    __atomic_store_n(&pf->loaded, true, __ATOMIC_RELEASE);
    if (pf->cache.n)
        sa_drain(pf, true);
    return NULL;
}

size_t sx_hash_prefetch_push(sx_hash_prefetch *pf, int dirfd, const char *name, const char *rel)
{
    if (!pf || !pf->started || __atomic_load_n(&pf->walk_done, __ATOMIC_RELAXED))
        return SIZE_MAX;
    if (__atomic_load_n(&pf->loaded, __ATOMIC_ACQUIRE) && pf->cache.n == 0)
        return SIZE_MAX; /* nothing to check against: a full sign */
    size_t i = pf->published; /* only this thread writes it */
    if (i / SA_CHUNK >= SA_MAX_CHUNKS)
        return SIZE_MAX;
    if (i % SA_CHUNK == 0 && !pf->chunks[i / SA_CHUNK] &&
        !(pf->chunks[i / SA_CHUNK] = malloc(SA_CHUNK * sizeof(sa_rec))))
        return SIZE_MAX;
    sa_rec *r = sa_at(pf, i);
    r->dirfd = dirfd;
    r->name = name;
    r->rel = rel;
    r->state = SA_PENDING;
    __atomic_store_n(&pf->published, i + 1, __ATOMIC_RELEASE);
    return i;
}

/* End the queue and wait for the prefetch thread (it exits once the queue is drained). */
static void prefetch_stop(sx_hash_prefetch *pf)
{
    __atomic_store_n(&pf->walk_done, true, __ATOMIC_RELEASE);
    if (pf->started)
        pthread_join(pf->tid, NULL);
    pf->started = false;
}

void sx_hash_prefetch_walk_done(sx_hash_prefetch *pf)
{
    if (!pf || !pf->started)
        return;
    __atomic_store_n(&pf->walk_done, true, __ATOMIC_RELEASE);
    /* Help with what is left once the cache is there (it loads much faster than the walk). */
    while (!__atomic_load_n(&pf->loaded, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    if (pf->cache.n)
        sa_drain(pf, false);
    prefetch_stop(pf);
}

bool sx_hash_prefetch_stat(const sx_hash_prefetch *pf, size_t idx, sx_hash_job *j)
{
    /* Results are read only after the prefetch thread was joined. */
    if (!pf || pf->started || idx >= pf->published)
        return false;
    const sa_rec *r = sa_at(pf, idx);
    if (r->state != SA_REGULAR)
        return false;
    j->dev = r->dev;
    j->ino = r->ino;
    j->mtime_ns = r->mtime_ns;
    j->ctime_ns = r->ctime_ns;
    j->size = r->size;
    j->stat_known = true;
    j->cache_rec = r->rec;
    return true;
}

sx_hash_prefetch *sx_hash_prefetch_start(const char *cache_path)
{
    sx_hash_prefetch *pf = calloc(1, sizeof(*pf));
    if (!pf || !(pf->path = strdup(cache_path))) {
        free(pf);
        return NULL;
    }
    pf->started = pthread_create(&pf->tid, NULL, prefetch_main, pf) == 0;
    if (!pf->started)
        cache_load(pf->path, &pf->cache);
    return pf;
}

/* Wait for the load and move its result to `out`. */
static void prefetch_take(sx_hash_prefetch *pf, hash_cache *out)
{
    prefetch_stop(pf);
    *out = pf->cache;
    memset(&pf->cache, 0, sizeof(pf->cache));
}

void sx_hash_prefetch_discard(sx_hash_prefetch *pf)
{
    if (pf)
        pf->save_pending = false;
}

int sx_hash_prefetch_finish(sx_hash_prefetch *pf)
{
    if (!pf || !pf->save_pending)
        return 0;
    pf->save_pending = false;
    return cache_save(pf->path, pf->jobs, pf->n, pf->start_ns, pf->unchanged, pf->old_n);
}

void sx_hash_prefetch_free(sx_hash_prefetch *pf)
{
    if (!pf)
        return;
    prefetch_stop(pf);
    cache_free(&pf->cache);
    for (size_t i = 0; i < SA_MAX_CHUNKS && pf->chunks[i]; i++)
        free(pf->chunks[i]);
    free(pf->path);
    free(pf);
}

int sx_hash_jobs_run(sx_hash_job *jobs, size_t n, unsigned threads, const char *cache_path,
                     sx_hash_stats *stats)
{
    return sx_hash_jobs_run_prefetched(jobs, n, threads, cache_path, NULL, stats);
}

int sx_hash_jobs_run_prefetched(sx_hash_job *jobs, size_t n, unsigned threads,
                                const char *cache_path, sx_hash_prefetch *pf,
                                sx_hash_stats *stats)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t start_ns = sx_timespec_ns(now);
    hash_cache cache = {NULL, 0, NULL};
    pool p;
    memset(&p, 0, sizeof(p));
    int rc = 0;
    if (cache_path && pf && pf->path && strcmp(pf->path, cache_path) == 0) {
        prefetch_take(pf, &cache); /* moves the records: cache_rec pointers stay valid */
        p.hints = true;
    } else if (cache_path)
        cache_load(cache_path, &cache);
    p.jobs = jobs;
    p.n = n;
    p.cache = cache_path ? &cache : NULL;
    p.order = malloc((n ? n : 1) * sizeof(*p.order));
    if (!p.order) {
        cache_free(&cache);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    /* Files whose identity the caller knows and the cache has are settled here, on the
     * calling thread, before any worker starts: after a re-sign's stat-ahead that is nearly
     * all of them, and a worker per core for the few left would only compete with the
     * caller's other threads. */
    bool sizes = false;
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        sx_hash_job *j = &jobs[i];
        j->rc = 0;
        if (p.cache && j->rel && j->stat_known && cache_hit(&p, j, p.hints ? j->cache_rec : NULL))
            continue;
        p.order[left++] = i;
        sizes = sizes || (j->size && !j->stat_known);
    }
    p.n = left;
    /* Largest first when the caller knows sizes: the pool finishes evenly. (The seal's walk
     * does not stat, so its jobs run in walk order.) */
    if (sizes)
        qsort_r(p.order, left, sizeof(*p.order), size_desc, jobs);

    if (threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (unsigned)c : 1;
    }
    if (threads > 64)
        threads = 64;
    if (threads > left)
        threads = left ? (unsigned)left : 1;
    pthread_t tids[64];
    unsigned started = 0;
    for (unsigned t = 1; t < threads && left; t++) {
        if (pthread_create(&tids[started], NULL, worker, &p) != 0)
            break;
        started++;
    }
    if (left)
        worker(&p);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);

    for (size_t i = 0; i < n; i++) {
        if (jobs[i].rc != 0) {
            rc = sx_err(jobs[i].rc, "%s", jobs[i].errmsg ? jobs[i].errmsg : job_path(&jobs[i]));
            break;
        }
    }
    if (rc == 0 && cache_path && pf && pf->path && strcmp(pf->path, cache_path) == 0) {
        /* Saved by sx_hash_prefetch_finish, when the caller has a moment (while its own
         * output goes to disk). */
        pf->jobs = jobs;
        pf->n = n;
        pf->old_n = cache.n;
        pf->start_ns = start_ns;
        pf->unchanged = p.hashed == 0;
        pf->save_pending = true;
    } else if (rc == 0 && cache_path) {
        rc = cache_save(cache_path, jobs, n, start_ns, p.hashed == 0, cache.n);
    }
    if (stats) {
        stats->files_hashed = p.hashed;
        stats->files_cached = p.cached;
        stats->bytes_hashed = p.bytes;
    }
    cache_free(&cache);
    free(p.order);
    return rc;
}

void sx_hash_jobs_free(sx_hash_job *jobs, size_t n)
{
    if (!jobs)
        return;
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].path);
        free(jobs[i].errmsg);
    }
    free(jobs);
}
