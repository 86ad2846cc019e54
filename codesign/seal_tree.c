/* The walk's snapshot for incremental signing (see seal_tree.h). On disk, big-endian:
 *   magic[8] version:u32 keylen:u32 key[keylen] ndirs:u32
 *   per directory: rellen:u32 rel[rellen] 0 dev:u64 ino:u64 mtime_ns:u64 ctime_ns:u64 nent:u32
 *     per entry: nlen:u32 name[nlen] 0 dtype:u8 r2:u32 r1:u32 llen:u32 [link[llen] 0]
 *   sha256[32] over everything before it
 * Strings are stored with their NUL so that a loaded snapshot's entries point into its bytes.
 * A rule index of 0xffffffff is none; so is a link length of 0xffffffff. */
#include "util/common.h"
#include "codesign/seal_tree.h"
#include "codesign/hash.h"
#include "codesign/seal_internal.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#define TREE_MAX_BYTES ((size_t)256 << 20)
#define TREE_MAX_NAME 4096u
#define NONE32 0xffffffffu

struct sx_seal_tree {
    uint8_t *data;         /* the file; every loaded string points into it */
    sx_tree_dir *dirs;     /* in file (walk) order */
    size_t n;
    sx_tree_dir **by_rel;  /* sorted by rel, for lookups */
    sx_tree_ent *ents;     /* every directory's entries, one block */
};

void sx_tree_dir_free(sx_tree_dir *d)
{
    if (!d || !d->owned)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->e[i].name);
        free(d->e[i].link);
    }
    free(d->e);
    free(d->rel);
    d->e = NULL;
    d->rel = NULL;
    d->n = 0;
}

void sx_seal_tree_free(sx_seal_tree *t)
{
    if (!t)
        return;
    free(t->data);
    free(t->dirs);
    free(t->by_rel);
    free(t->ents);
    free(t);
}

size_t sx_seal_tree_count(const sx_seal_tree *t)
{
    return t ? t->n : 0;
}

/* A length-prefixed string stored with its NUL and no other NUL; `what` names it. */
static int rd_str(sx_reader *r, uint32_t max, bool allow_empty, const char *what, char **out)
{
    uint32_t len;
    const uint8_t *p;
    int rc;
    if ((rc = sx_rd_u32be(r, &len)) < 0)
        return rc;
    if ((!allow_empty && len == 0) || len > max)
        return sx_err(SYSEXT_EFORMAT, "%s: bad %s length %u", r->what, what, len);
    if ((rc = sx_rd_bytes(r, (size_t)len + 1, &p)) < 0)
        return rc;
    if (p[len] != 0 || memchr(p, 0, len))
        return sx_err(SYSEXT_EFORMAT, "%s: %s is not a plain string", r->what, what);
    *out = (char *)(uintptr_t)p; /* the bytes are ours (taken over by the parse) */
    return 0;
}

static int rd_index(sx_reader *r, size_t limit, int32_t *out)
{
    uint32_t v;
    int rc = sx_rd_u32be(r, &v);
    if (rc < 0)
        return rc;
    if (v == NONE32) {
        *out = -1;
        return 0;
    }
    if (v >= limit || v > INT32_MAX)
        return sx_err(SYSEXT_EFORMAT, "%s: rule index %u out of range", r->what, v);
    *out = (int32_t)v;
    return 0;
}

static int cmp_dir_rel(const void *a, const void *b)
{
    return strcmp((*(sx_tree_dir *const *)a)->rel, (*(sx_tree_dir *const *)b)->rel);
}

static int parse_body(sx_seal_tree *t, sx_reader *r, const char *key, size_t n2, size_t n1)
{
    const uint8_t *p;
    uint32_t version, klen, ndirs;
    int rc;
    if ((rc = sx_rd_bytes(r, 8, &p)) < 0)
        return rc;
    if (memcmp(p, SX_SEAL_TREE_MAGIC, 8) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: bad magic", r->what);
    if ((rc = sx_rd_u32be(r, &version)) < 0)
        return rc;
    if (version != SX_SEAL_TREE_VERSION)
        return sx_err(SYSEXT_EFORMAT, "%s: version %u unsupported", r->what, version);
    if ((rc = sx_rd_u32be(r, &klen)) < 0 || (rc = sx_rd_bytes(r, klen, &p)) < 0)
        return rc;
    if (key && (klen != strlen(key) || memcmp(p, key, klen) != 0))
        return sx_err(SYSEXT_EFORMAT, "%s: made for another layout", r->what);
    if ((rc = sx_rd_u32be(r, &ndirs)) < 0)
        return rc;
    /* A directory takes at least 4 + 1 + 32 + 4 bytes, an entry 4 + 2 + 1 + 12: bound the
     * counts by what is left before allocating. */
    if (ndirs > sx_reader_left(r) / 41)
        return sx_err(SYSEXT_EFORMAT, "%s: directory count %u exceeds the data", r->what, ndirs);
    size_t ent_cap = sx_reader_left(r) / 19, nents = 0;
    t->dirs = calloc(ndirs ? ndirs : 1, sizeof(*t->dirs));
    t->by_rel = calloc(ndirs ? ndirs : 1, sizeof(*t->by_rel));
    t->ents = calloc(ent_cap ? ent_cap : 1, sizeof(*t->ents));
    if (!t->dirs || !t->by_rel || !t->ents)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < ndirs; i++) {
        sx_tree_dir *d = &t->dirs[i];
        uint32_t nent;
        if ((rc = rd_str(r, TREE_MAX_NAME, true, "directory path", &d->rel)) < 0 ||
            (rc = sx_rd_u64be(r, &d->dev)) < 0 || (rc = sx_rd_u64be(r, &d->ino)) < 0 ||
            (rc = sx_rd_u64be(r, &d->mtime_ns)) < 0 || (rc = sx_rd_u64be(r, &d->ctime_ns)) < 0 ||
            (rc = sx_rd_u32be(r, &nent)) < 0)
            return rc;
        if (nent > ent_cap - nents || nent > sx_reader_left(r) / 19)
            return sx_err(SYSEXT_EFORMAT, "%s: %s: entry count %u exceeds the data", r->what,
                          d->rel, nent);
        d->e = &t->ents[nents];
        nents += nent;
        t->n++;
        for (uint32_t k = 0; k < nent; k++) {
            sx_tree_ent *e = &d->e[k];
            uint32_t llen;
            if ((rc = rd_str(r, 255, false, "name", &e->name)) < 0 ||
                (rc = sx_rd_u8(r, &e->dtype)) < 0 || (rc = rd_index(r, n2, &e->r2)) < 0 ||
                (rc = rd_index(r, n1, &e->r1)) < 0)
                return rc;
            d->n++;
            if (strchr(e->name, '/') || !strcmp(e->name, ".") || !strcmp(e->name, ".."))
                return sx_err(SYSEXT_EFORMAT, "%s: %s: bad name '%s'", r->what, d->rel, e->name);
            if (k && strcmp(d->e[k - 1].name, e->name) >= 0)
                return sx_err(SYSEXT_EFORMAT, "%s: %s: names out of order at '%s'", r->what,
                              d->rel, e->name);
            if (e->dtype != DT_DIR && e->dtype != DT_REG && e->dtype != DT_LNK &&
                e->dtype != DT_FIFO)
                return sx_err(SYSEXT_EFORMAT, "%s: %s/%s: bad type %u", r->what, d->rel, e->name,
                              e->dtype);
            sx_reader peek = *r;
            if ((rc = sx_rd_u32be(&peek, &llen)) < 0)
                return rc;
            if (llen == NONE32) {
                *r = peek;
                continue;
            }
            if (e->dtype != DT_LNK)
                return sx_err(SYSEXT_EFORMAT, "%s: %s/%s: a target on a non-link", r->what,
                              d->rel, e->name);
            if ((rc = rd_str(r, TREE_MAX_NAME, true, "link target", &e->link)) < 0)
                return rc;
        }
    }
    if (sx_reader_left(r) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: %zu trailing bytes", r->what, sx_reader_left(r));
    for (size_t i = 0; i < t->n; i++)
        t->by_rel[i] = &t->dirs[i];
    sx_qsort(t->by_rel, t->n, sizeof(*t->by_rel), cmp_dir_rel);
    for (size_t i = 1; i < t->n; i++)
        if (!strcmp(t->by_rel[i - 1]->rel, t->by_rel[i]->rel))
            return sx_err(SYSEXT_EFORMAT, "%s: directory '%s' twice", r->what, t->by_rel[i]->rel);
    return 0;
}

int sx_seal_tree_parse(uint8_t *data, size_t len, const char *what, const char *key, size_t n2,
                       size_t n1, bool checksum, sx_seal_tree **out)
{
    *out = NULL;
    sx_seal_tree *t = calloc(1, sizeof(*t));
    if (!t) {
        free(data);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    t->data = data;
    int rc = 0;
    uint8_t digest[32];
    if (len < 8 + 4 + 4 + 4 + 32)
        rc = sx_err(SYSEXT_EFORMAT, "%s: too short", what);
    else if (checksum && (rc = sx_hash(SX_HASH_SHA256, data, len - 32, digest)) == 0 &&
             memcmp(digest, data + len - 32, 32) != 0)
        rc = sx_err(SYSEXT_EFORMAT, "%s: checksum mismatch", what);
    if (rc == 0) {
        sx_reader r;
        sx_reader_init(&r, data, len - 32, what);
        rc = parse_body(t, &r, key, n2, n1);
    }
    if (rc < 0) {
        sx_seal_tree_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

sx_seal_tree *sx_seal_tree_load(const char *path, const char *key, size_t n2, size_t n1)
{
    uint8_t *data = NULL;
    size_t len = 0;
    sx_seal_tree *t = NULL;
    if (sx_read_file(path, TREE_MAX_BYTES, &data, &len) < 0 ||
        sx_seal_tree_parse(data, len, path, key, n2, n1, true, &t) < 0) {
        sx_err_clear();
        return NULL;
    }
    return t;
}

const sx_tree_dir *sx_seal_tree_find(const sx_seal_tree *t, const char *rel, const struct stat *st)
{
    if (!t)
        return NULL;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sx_tree_dir *d = t->by_rel[mid];
        int c = strcmp(rel, d->rel);
        if (c == 0) {
            bool same = d->dev == (uint64_t)st->st_dev && d->ino == (uint64_t)st->st_ino &&
                        d->mtime_ns == sx_timespec_ns(st->st_mtim) &&
                        d->ctime_ns == sx_timespec_ns(st->st_ctim);
            return same ? d : NULL;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int put_str(sx_buf *b, const char *s)
{
    size_t len = strlen(s);
    int rc;
    if (len > UINT32_MAX - 1)
        return sx_err(SYSEXT_ELIMIT, "seal tree: string too long");
    if ((rc = sx_buf_put_u32be(b, (uint32_t)len)) < 0)
        return rc;
    return sx_buf_append(b, s, len + 1);
}

/* Every change to a directory sets its mtime to the current time, so only a recent mtime can
 * hide a change made just after the listing (the ctime is compared, not judged: a restored
 * mtime still moves it). */
static bool racy(const sx_tree_dir *d, uint64_t start_ns)
{
    return d->mtime_ns + SX_CACHE_RACY_WINDOW_NS > start_ns;
}

int sx_seal_tree_save(const char *path, const char *key, const sx_tree_dir *const *v, size_t n,
                      uint64_t start_ns)
{
    sx_buf b = SX_BUF_INIT;
    uint8_t digest[32];
    uint32_t count = 0;
    size_t klen = strlen(key), count_at;
    int rc;
    if (klen > UINT32_MAX)
        return sx_err(SYSEXT_ELIMIT, "seal tree: key too long");
    if ((rc = sx_buf_append(&b, SX_SEAL_TREE_MAGIC, 8)) < 0 ||
        (rc = sx_buf_put_u32be(&b, SX_SEAL_TREE_VERSION)) < 0 ||
        (rc = sx_buf_put_u32be(&b, (uint32_t)klen)) < 0 || (rc = sx_buf_append(&b, key, klen)) < 0)
        goto out;
    count_at = b.len;
    if ((rc = sx_buf_put_u32be(&b, 0)) < 0)
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const sx_tree_dir *d = v[i];
        if (racy(d, start_ns) || d->n > UINT32_MAX || count == UINT32_MAX)
            continue;
        if ((rc = put_str(&b, d->rel)) < 0 || (rc = sx_buf_put_u64be(&b, d->dev)) < 0 ||
            (rc = sx_buf_put_u64be(&b, d->ino)) < 0 || (rc = sx_buf_put_u64be(&b, d->mtime_ns)) < 0 ||
            (rc = sx_buf_put_u64be(&b, d->ctime_ns)) < 0 || (rc = sx_buf_put_u32be(&b, (uint32_t)d->n)) < 0)
            break;
        for (size_t k = 0; k < d->n && rc == 0; k++) {
            const sx_tree_ent *e = &d->e[k];
            /* A rule index of -1 (none) becomes 0xffffffff. */
            if ((rc = put_str(&b, e->name)) < 0 || (rc = sx_buf_append(&b, &e->dtype, 1)) < 0 ||
                (rc = sx_buf_put_u32be(&b, (uint32_t)e->r2)) < 0 ||
                (rc = sx_buf_put_u32be(&b, (uint32_t)e->r1)) < 0)
                break;
            rc = e->link ? put_str(&b, e->link) : sx_buf_put_u32be(&b, NONE32);
        }
        count++;
    }
    if (rc < 0)
        goto out;
    sx_buf_set_u32be(&b, count_at, count);
    if ((rc = sx_hash(SX_HASH_SHA256, b.data, b.len, digest)) < 0 ||
        (rc = sx_buf_append(&b, digest, 32)) < 0)
        goto out;
    rc = sx_write_cache_file(path, b.data, b.len);
out:
    sx_buf_free(&b);
    return rc;
}
