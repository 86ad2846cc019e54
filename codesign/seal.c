/* _CodeSignature/CodeResources (reference section 6): build the seal of a bundle's resource
 * base, parse one, and verify a tree against it. */
#include "util/common.h"
#include "codesign/seal.h"
#include "codesign/hash.h"
#include "codesign/seal_internal.h"
#include "codesign/phase.h"
#include "codesign/seal_tree.h"
#include "codesign/trailing_digest.h"
#include "util/fs.h"
#include "util/hex.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_MAX_BYTES ((size_t)256 << 20)
#define WALK_MAX_DEPTH 128
#define WALK_MAX_PATH 4096

/* ---------------------------------------------------------------- the walk */

enum { W_FILE = 0, W_LINK, W_NESTED_DIR, W_OTHER };

typedef struct walk_item {
    char *rel;
    int type;                /* W_* */
    const sx_seal_rule *r2;  /* primary rules (V2 when building); NULL: none / not applicable */
    const sx_seal_rule *r1;  /* secondary rules (V1 when building) */
    bool in_r2;              /* the primary rules apply (not inside a nested bundle) */
    int dirfd;               /* its directory, kept open by the walker, or -1 */
    const char *name;        /* its last component (points into rel) */
    char *link;              /* W_LINK: target */
    size_t sa;               /* W_FILE: its stat-ahead index, SIZE_MAX when none */
} walk_item;

typedef struct walker {
    const char *what;          /* base path for messages */
    const sx_seal_rules *rs2;  /* primary (may have nested rules) */
    const sx_seal_rules *rs1;  /* secondary, may be NULL */
    walk_item *v;
    size_t n, cap;
    /* Directory fds kept open for the hashers (openat/fstatat by name: no path lookup). */
    int *fds;
    size_t nfds, capfds, maxfds;
    uint8_t *dbuf; /* getdents64 buffer, WALK_DBUF bytes, shared (a directory is read whole
                    * before the walk descends) */
    sx_hash_prefetch *pf;      /* stat-ahead of the files the cache may know; may be NULL */
    /* Incremental builds: the previous walk's snapshot (may be NULL) and this walk's listings
     * in walk order, fresh ones owned, replayed ones pointing into old_tree. */
    bool record;
    const sx_seal_tree *old_tree;
    struct path_block *paths; /* where the items' paths live (walker_path) */
    sx_tree_dir **dirs;
    size_t ndirs, capdirs, replayed;
} walker;

/* The items' relative paths, tens of thousands of small strings that live exactly as long as
 * the walk, come from blocks: two allocator calls per block instead of two per path. */
#define PATH_BLOCK (64u * 1024)

typedef struct path_block {
    struct path_block *next;
    size_t used, cap;
    char data[];
} path_block;

static char *walker_path(walker *w, size_t n)
{
    path_block *b = w->paths;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > PATH_BLOCK ? n : PATH_BLOCK;
        if (!(b = malloc(sizeof(*b) + cap)))
            return NULL;
        b->next = w->paths;
        b->used = 0;
        b->cap = cap;
        w->paths = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

/* Give back the latest path when nothing came after it (an entry the walk skips). */
static void walker_unpath(walker *w, char *p, size_t n)
{
    path_block *b = w->paths;
    if (b && p + n == b->data + b->used)
        b->used -= n;
}

static void walker_free(walker *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i].link);
    while (w->paths) {
        path_block *next = w->paths->next;
        free(w->paths);
        w->paths = next;
    }
    free(w->v);
    w->v = NULL;
    w->n = w->cap = 0;
    for (size_t i = 0; i < w->nfds; i++)
        close(w->fds[i]);
    free(w->fds);
    w->fds = NULL;
    w->nfds = w->capfds = 0;
    free(w->dbuf);
    w->dbuf = NULL;
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i]->owned) {
            sx_tree_dir_free(w->dirs[i]);
            free(w->dirs[i]);
        }
    free(w->dirs);
    w->dirs = NULL;
    w->ndirs = w->capdirs = 0;
}

/* Keep `dfd` open for the hashers (the walker closes it at the end), within a budget of
 * descriptors; -1 if not (then the caller closes it). */
static int walker_keep_fd(walker *w, int dfd)
{
    if (w->nfds >= w->maxfds)
        return -1;
    if (w->nfds == w->capfds) {
        size_t ncap = w->capfds ? w->capfds * 2 : 64;
        int *nv = realloc(w->fds, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        w->fds = nv;
        w->capfds = ncap;
    }
    w->fds[w->nfds++] = dfd;
    return dfd;
}

/* One getdents64 record: 8 inode, 8 offset, 2 length, 1 type, then the NUL-terminated name. */
#define DENT_HDR 19u
#define WALK_DBUF 32768u

static int walker_push(walker *w, walk_item **out)
{
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 256, bytes;
        if (SX_MUL_OVERFLOW(ncap, sizeof(*w->v), &bytes))
            return sx_err(SYSEXT_ELIMIT, "%s: too many files", w->what);
        walk_item *nv = realloc(w->v, bytes);
        if (!nv)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        w->v = nv;
        w->cap = ncap;
    }
    *out = &w->v[w->n++];
    memset(*out, 0, sizeof(**out));
    (*out)->dirfd = -1;
    (*out)->sa = SIZE_MAX;
    return 0;
}

/* Names carry their d_type in the first byte. */
static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a + 1, *(char *const *)b + 1);
}

static bool is_excluded(const sx_seal_rule *r)
{
    return r && (r->flags & SX_RULE_EXCLUSION);
}

static bool wanted(const sx_seal_rule *r)
{
    return r && !(r->flags & (SX_RULE_OMIT | SX_RULE_EXCLUSION));
}

static int rule_index(const sx_seal_rules *rs, const sx_seal_rule *r)
{
    return r ? (int)(r - rs->v) : -1;
}

static const sx_seal_rule *rule_at(const sx_seal_rules *rs, int32_t i)
{
    return rs && i >= 0 && (size_t)i < rs->n ? &rs->v[i] : NULL;
}

/* Read the directory `dfd` into a fresh listing: its names in byte order with their types
 * (d_type, or an fstatat where the file system gives none) and each name's winning rules. */
static int list_dir(walker *w, int dfd, const char *prefix, bool in_r2, sx_tree_dir **out)
{
    char **names = NULL;
    size_t nn = 0, cap = 0, plen = strlen(prefix), sep = plen ? 1 : 0;
    int rc = 0;
    sx_tree_dir *d = calloc(1, sizeof(*d));
    if (!d || !(d->rel = strdup(prefix))) {
        free(d);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    d->owned = true;
    if (!w->dbuf && !(w->dbuf = malloc(WALK_DBUF))) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    /* getdents64 straight into a buffer: no DIR (its fstat, fcntl and 32 KiB allocation), and
     * the descriptor itself is what the hashers keep. */
    for (;;) {
        ssize_t k = getdents64(dfd, w->dbuf, WALK_DBUF);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = sx_err_errno(SYSEXT_EIO, errno, "%s/%s", w->what, prefix);
            goto out;
        }
        if (k == 0)
            break;
        size_t len = (size_t)k, off = 0;
        while (off < len) {
            uint16_t reclen;
            if (len - off < DENT_HDR + 1)
                break;
            memcpy(&reclen, w->dbuf + off + 16, sizeof(reclen));
            if (reclen < DENT_HDR + 1 || reclen > len - off) {
                rc = sx_err(SYSEXT_EIO, "%s/%s: malformed directory entry at offset %zu",
                            w->what, prefix, off);
                goto out;
            }
            unsigned char dt = w->dbuf[off + 18];
            const char *dname = (const char *)w->dbuf + off + DENT_HDR;
            const char *nul = memchr(dname, 0, reclen - DENT_HDR);
            off += reclen;
            if (!nul) {
                rc = sx_err(SYSEXT_EIO, "%s/%s: directory entry without a terminated name",
                            w->what, prefix);
                goto out;
            }
            size_t nl = (size_t)(nul - dname);
            if ((nl == 1 && dname[0] == '.') || (nl == 2 && dname[0] == '.' && dname[1] == '.'))
                continue;
            if (nn == cap) {
                size_t ncap = cap ? cap * 2 : 32;
                char **nv = realloc(names, ncap * sizeof(*names));
                if (!nv) {
                    rc = sx_err(SYSEXT_ENOMEM, "out of memory");
                    goto out;
                }
                names = nv;
                cap = ncap;
            }
            /* The name with its d_type in front: the walk needs no stat for the common types. */
            if (!(names[nn] = malloc(nl + 2))) {
                rc = sx_err(SYSEXT_ENOMEM, "out of memory");
                goto out;
            }
            names[nn][0] = (char)dt;
            memcpy(names[nn] + 1, dname, nl + 1);
            nn++;
        }
    }
    sx_qsort(names, nn, sizeof(*names), cmp_name);
    if (!(d->e = calloc(nn ? nn : 1, sizeof(*d->e)))) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    char rel[WALK_MAX_PATH + 2];
    for (size_t i = 0; i < nn; i++) {
        const char *name = names[i] + 1;
        unsigned char dtype = (unsigned char)names[i][0];
        size_t nlen = strlen(name);
        if (plen + sep + nlen > WALK_MAX_PATH) {
            rc = sx_err(SYSEXT_ELIMIT, "%s/%s%s%s: path too long", w->what, prefix,
                        sep ? "/" : "", name);
            goto out;
        }
        memcpy(rel, prefix, plen);
        rel[plen] = '/';
        memcpy(rel + plen + sep, name, nlen + 1);
        if (dtype == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                rc = sx_err_errno(SYSEXT_EIO, errno, "%s/%s", w->what, rel);
                goto out;
            }
            dtype = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG
                                                : S_ISLNK(st.st_mode)  ? DT_LNK
                                                                       : DT_FIFO;
        } else if (dtype != DT_DIR && dtype != DT_REG && dtype != DT_LNK) {
            dtype = DT_FIFO; /* anything else: unsupported where it is sealed */
        }
        sx_tree_ent *e = &d->e[d->n];
        e->dtype = dtype;
        e->r2 = in_r2 ? rule_index(w->rs2, sx_seal_rules_match(w->rs2, rel)) : -1;
        e->r1 = w->rs1 ? rule_index(w->rs1, sx_seal_rules_match(w->rs1, rel)) : -1;
        e->name = names[i]; /* taken over: the name stays behind its type byte */
        memmove(e->name, e->name + 1, nlen + 1);
        names[i] = NULL;
        d->n++;
    }
out:
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc < 0) {
        sx_tree_dir_free(d);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* Keep a listing of this walk for the snapshot (a fresh one is taken over). */
static int walker_record(walker *w, sx_tree_dir *d)
{
    if (w->ndirs == w->capdirs) {
        size_t ncap = w->capdirs ? w->capdirs * 2 : 64, bytes;
        if (SX_MUL_OVERFLOW(ncap, sizeof(*w->dirs), &bytes))
            return sx_err(SYSEXT_ELIMIT, "%s: too many directories", w->what);
        sx_tree_dir **nv = realloc(w->dirs, bytes);
        if (!nv)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        w->dirs = nv;
        w->capdirs = ncap;
    }
    w->dirs[w->ndirs++] = d;
    return 0;
}

/* Walk one directory (dirfd is consumed). `prefix` is its path relative to the base ("" for
 * the base). Entries sorted by byte order; symlinks never followed. With a snapshot, an
 * unchanged directory's listing is replayed instead of read. */
static int walk_dir(walker *w, int dfd, const char *prefix, bool in_r2, unsigned depth)
{
    int rc = 0, keep = -1;
    bool keep_tried = false;
    const sx_tree_dir *d = NULL;
    sx_tree_dir *fresh = NULL;
    struct stat dst;
    if (depth > WALK_MAX_DEPTH) {
        close(dfd);
        return sx_err(SYSEXT_ELIMIT, "%s/%s: directories nested too deeply", w->what, prefix);
    }
    /* The base itself is always read (a few entries): the signature's own swap changes it
     * on every sign, and the snapshot then needs no rewrite when nothing else changed. */
    bool ident = w->record && depth > 0 && fstat(dfd, &dst) == 0;
    if (ident && (d = sx_seal_tree_find(w->old_tree, prefix, &dst)))
        w->replayed++;
    if (!d) {
        if ((rc = list_dir(w, dfd, prefix, in_r2, &fresh)) < 0) {
            close(dfd);
            return rc;
        }
        d = fresh;
        if (ident) {
            fresh->dev = (uint64_t)dst.st_dev;
            fresh->ino = (uint64_t)dst.st_ino;
            fresh->mtime_ns = sx_timespec_ns(dst.st_mtim);
            fresh->ctime_ns = sx_timespec_ns(dst.st_ctim);
            if ((rc = walker_record(w, fresh)) < 0)
                goto out;
            fresh = NULL; /* the walker's now; d stays valid */
        }
    } else if ((rc = walker_record(w, (sx_tree_dir *)(uintptr_t)d)) < 0) {
        goto out; /* a replayed listing is recorded, never freed, by the walker */
    }
    size_t plen = strlen(prefix), sep = plen ? 1 : 0;
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        const sx_tree_ent *e = &d->e[i];
        const char *name = e->name;
        unsigned char dtype = e->dtype;
        size_t nlen = strlen(name);
        size_t rlen = plen + sep + nlen + 1;
        char *rel = walker_path(w, rlen);
        if (!rel) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        memcpy(rel, prefix, plen);
        rel[plen] = '/';
        memcpy(rel + plen + sep, name, nlen + 1);
        const sx_seal_rule *r2 = in_r2 ? rule_at(w->rs2, e->r2) : NULL;
        const sx_seal_rule *r1 = rule_at(w->rs1, e->r1);
        /* Both rule sets carry the same implicit exclusions. */
        if (is_excluded(r2) || is_excluded(r1) || (!in_r2 && !w->rs1)) {
            walker_unpath(w, rel, rlen);
            continue;
        }
        if (dtype == DT_DIR) {
            bool child_r2 = in_r2;
            if (in_r2 && r2 && (r2->flags & SX_RULE_NESTED) && strchr(name, '.')) {
                walk_item *it;
                if ((rc = walker_push(w, &it)) < 0)
                    break;
                it->rel = rel;
                it->type = W_NESTED_DIR;
                it->r2 = r2;
                it->in_r2 = true;
                rel = NULL;
                child_r2 = false;
            }
            if (child_r2 || w->rs1) {
                int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                    rc = sx_err_errno(SYSEXT_EIO, errno, "%s/%s", w->what,
                                      rel ? rel : w->v[w->n - 1].rel);
                } else {
                    rc = walk_dir(w, fd, rel ? rel : w->v[w->n - 1].rel, child_r2, depth + 1);
                }
            }
            continue; /* a directory's path stays: its entries' paths were taken after it */
        }
        if (!in_r2 && !wanted(r1) && !(dtype == DT_LNK && strcasecmp(name, ".DS_Store") == 0)) {
            walker_unpath(w, rel, rlen); /* inside nested code and not in the secondary seal */
            continue;
        }
        walk_item *it;
        if ((rc = walker_push(w, &it)) < 0)
            break;
        it->rel = rel;
        it->name = rel + plen + sep;
        it->r2 = r2;
        it->r1 = r1;
        it->in_r2 = in_r2;
        it->dirfd = -1;
        if (dtype == DT_REG) {
            it->type = W_FILE;
            if (keep < 0 && !keep_tried) {
                keep = walker_keep_fd(w, dfd);
                keep_tried = true;
            }
            it->dirfd = keep;
            if (keep >= 0)
                it->sa = sx_hash_prefetch_push(w->pf, keep, it->name, it->rel);
        } else if (dtype == DT_LNK) {
            it->type = W_LINK;
            if (e->link) {
                it->link = strdup(e->link);
            } else {
                char buf[PATH_MAX];
                ssize_t k = readlinkat(dfd, name, buf, sizeof(buf) - 1);
                if (k < 0) {
                    rc = sx_err_errno(SYSEXT_EIO, errno, "%s/%s", w->what, rel);
                    break;
                }
                buf[k] = 0;
                it->link = strdup(buf);
                /* Kept with a listing of this walk, which the snapshot saves. */
                if (it->link && d->owned && !(((sx_tree_dir *)(uintptr_t)d)->e[i].link = strdup(buf)))
                    rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            }
            if (!it->link)
                rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        } else {
            it->type = W_OTHER;
        }
    }
out:
    if (fresh) {
        sx_tree_dir_free(fresh);
        free(fresh);
    }
    if (keep < 0)
        close(dfd);
    return rc;
}

static int walk_base(walker *w, const char *base)
{
    /* Keep at most a quarter of the soft descriptor limit (and 1024) open for the hashers;
     * beyond that files are opened by path. */
    struct rlimit rl;
    rlim_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 256;
    w->maxfds = lim == RLIM_INFINITY || lim / 4 > 1024 ? 1024 : (size_t)(lim / 4);
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", base);
    return walk_dir(w, fd, "", true, 0);
}

/* The resource base: Contents/ for a deep bundle, the root for a flat one. */
static char *resource_base(const sx_seal_options *o)
{
    return o->flat ? strdup(o->bundle_path) : sx_path_join(o->bundle_path, "Contents");
}

static int add_exclusions(sx_seal_rules *rs, const sx_seal_options *o)
{
    static const char *const fixed[] = {"_CodeSignature", "CodeResources", "_MASReceipt"};
    int rc;
    for (size_t i = 0; i < SX_ARRAY_SIZE(fixed); i++)
        if ((rc = sx_seal_rules_add_exclusion(rs, fixed[i])) < 0)
            return rc;
    if (o->main_exe_rel && *o->main_exe_rel)
        return sx_seal_rules_add_exclusion(rs, o->main_exe_rel);
    return 0;
}

static bool is_dsstore(const char *rel)
{
    return strcasecmp(sx_path_basename(rel), ".DS_Store") == 0;
}

/* ---------------------------------------------------------------- build */

typedef struct build_entry {
    const walk_item *item;
    int kind;       /* SX_SEAL_* (V2) */
    bool optional;
    size_t job;     /* index into jobs, SIZE_MAX when none */
    sx_nested_info nested;
} build_entry;

static int cmp_entry_path(const void *a, const void *b)
{
    return strcmp(((const build_entry *)a)->item->rel, ((const build_entry *)b)->item->rel);
}

static bool sorted_entries(const build_entry *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (cmp_entry_path(&v[i - 1], &v[i]) > 0)
            return false;
    return true;
}

/* What a build leaves to free (see sx_seal_options.defer_cleanup). */
struct sx_seal_cleanup {
    char *xml;
    plist_t root, t1, t2;
    build_entry *e2;
    size_t n2;
    build_entry *e1;
    sx_hash_prefetch *pf;
    sx_hash_job *jobs;
    size_t njobs;
    walker w;
    sx_seal_rules rs1, rs2;
    char *base;
    struct tree_snap *snap;
    pthread_t tid;
};

/* The walk's snapshot (seal_tree.h) of an incremental build: loaded before the walk, saved
 * with the hash cache after a successful build when a directory was listed afresh. */
typedef struct tree_snap {
    char *path, *key;
    sx_seal_tree *old; /* the previous snapshot: replayed listings point into it */
    uint64_t start_ns;
    bool save_pending;
} tree_snap;

static void snap_free(tree_snap *t)
{
    if (!t)
        return;
    sx_seal_tree_free(t->old);
    free(t->path);
    free(t->key);
    free(t);
}

/* What the listings depend on besides the tree: the layout and every rule (the template, and
 * the excluded main executable), as a digest. */
static char *snap_key(bool flat, const sx_seal_rules *rs2, const sx_seal_rules *rs1)
{
    sx_buf b = SX_BUF_INIT;
    const sx_seal_rules *sets[2] = {rs2, rs1};
    int rc = sx_buf_append(&b, flat ? "flat\n" : "deep\n", 5);
    for (int k = 0; k < 2 && rc == 0; k++)
        for (size_t i = 0; i < sets[k]->n && rc == 0; i++) {
            const sx_seal_rule *r = &sets[k]->v[i];
            char num[48];
            int len = snprintf(num, sizeof(num), "\n%u %u %d\n", r->weight, r->flags, k);
            rc = sx_buf_append(&b, r->pattern, strlen(r->pattern));
            if (rc == 0)
                rc = sx_buf_append(&b, num, (size_t)len);
        }
    uint8_t h[32];
    char *hex = malloc(65);
    if (rc < 0 || !hex || sx_hash(SX_HASH_SHA256, b.data, b.len, h) < 0) {
        free(hex);
        hex = NULL;
    } else {
        sx_hex_encode(h, 32, hex);
    }
    sx_buf_free(&b);
    return hex;
}

char *sx_seal_cache_sibling(const char *cache_path, const char *suffix)
{
    size_t len = strlen(cache_path), keep = len;
    if (len >= 6 && !strcmp(cache_path + len - 6, ".cache"))
        keep = len - 6;
    char *p = NULL;
    if (keep > INT_MAX || asprintf(&p, "%.*s%s", (int)keep, cache_path, suffix) < 0)
        return NULL;
    return p;
}

static void build_free(sx_seal_cleanup *c)
{
    if (c->xml)
        plist_to_xml_free(c->xml);
    plist_free(c->root);
    plist_free(c->t1);
    plist_free(c->t2);
    if (c->e2)
        for (size_t i = 0; i < c->n2; i++)
            free(c->e2[i].nested.requirement);
    free(c->e2);
    free(c->e1);
    /* The caches, when the build asked to save them later (an unsaved cache costs time,
     * not correctness). */
    if (sx_hash_prefetch_finish(c->pf) < 0)
        sx_err_clear();
    sx_hash_prefetch_free(c->pf); /* before the jobs it saves */
    sx_hash_jobs_free(c->jobs, c->njobs);
    if (c->snap && c->snap->save_pending &&
        sx_seal_tree_save(c->snap->path, c->snap->key, (const sx_tree_dir *const *)c->w.dirs,
                          c->w.ndirs, c->snap->start_ns) < 0)
        sx_err_clear(); /* a snapshot not written only costs the next build its replay */
    walker_free(&c->w);
    snap_free(c->snap); /* after the walker: its replayed listings pointed into the old one */
    sx_seal_rules_free(&c->rs1);
    sx_seal_rules_free(&c->rs2);
    free(c->base);
}

static void *cleanup_main(void *arg)
{
    build_free(arg);
    return NULL;
}

/* Let the digest thread hash what is written, every 64 KiB. */
static void xml_publish(sx_trailing_digest *d, const sx_buf *b, size_t *published)
{
    if (d && b->len - *published >= 65536) {
        *published = b->len;
        sx_trailing_digest_publish(d, b->len);
    }
}

static int bound_add(size_t *total, size_t text, size_t fixed)
{
    size_t x;
    if (SX_MUL_OVERFLOW(text, (size_t)5, &x) || SX_ADD_OVERFLOW(x, fixed, &x) ||
        SX_ADD_OVERFLOW(*total, x, total))
        return sx_err(SYSEXT_ELIMIT, "seal: too many entries");
    return 0;
}

/* The most XML the entries can make: each element reserves at most five bytes per character
 * of its text and 60 besides (seal_xml.c); an entry has at most ten elements. */
static int xml_bound(const build_entry *e1, size_t n1, const build_entry *e2, size_t n2,
                     size_t fixed, size_t *out)
{
    size_t total = fixed;
    int rc = bound_add(&total, 0, 1024);
    for (size_t i = 0; i < n1 && rc == 0; i++)
        rc = bound_add(&total, strlen(e1[i].item->rel), 600);
    for (size_t i = 0; i < n2 && rc == 0; i++) {
        const build_entry *b = &e2[i];
        size_t text = strlen(b->item->rel);
        if (b->kind == SX_SEAL_SYMLINK && b->item->link)
            text += strlen(b->item->link);
        if (b->kind == SX_SEAL_NESTED && b->nested.requirement)
            text += strlen(b->nested.requirement);
        rc = bound_add(&total, text, 600);
    }
    *out = total;
    return rc;
}

int sx_seal_build(const sx_seal_options *o, sx_buf *xml_out)
{
    SX_ASSERT_ARG(o);
    SX_ASSERT_ARG(o->bundle_path);
    SX_ASSERT_ARG(xml_out);
    sx_seal_rules rs2 = {0}, rs1 = {0};
    walker w = {0};
    build_entry *e2 = NULL, *e1 = NULL;
    size_t n2 = 0, n1 = 0, njobs = 0;
    sx_hash_job *jobs = NULL;
    plist_t root = NULL, t1 = NULL, t2 = NULL; /* rules templates */
    char *xml = NULL;
    uint32_t xml_len = 0;
    sx_hash_stats hs = {0};
    sx_hash_prefetch *pf = NULL;
    tree_snap *snap = NULL;
    sx_trailing_digest *digest = NULL;
    int rc = 0;
    unsigned digests = o->digests ? o->digests : SX_SEAL_DIGEST(SX_HASH_SHA256);
    bool want1 = digests & SX_SEAL_DIGEST(SX_HASH_SHA1);
    bool want256 = digests & SX_SEAL_DIGEST(SX_HASH_SHA256);
    char *base = resource_base(o);
    if (!base)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (digests & ~(SX_SEAL_DIGEST(SX_HASH_SHA1) | SX_SEAL_DIGEST(SX_HASH_SHA256))) {
        rc = sx_err(SYSEXT_EUNSUPPORTED, "seal: digest set 0x%x: only SHA-1 and SHA-256", digests);
        goto out;
    }

    t2 = sx_seal_rules_template(o->flat, 2);
    t1 = sx_seal_rules_template(o->flat, 1);
    if (!t1 || !t2) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = sx_seal_rules_from_plist(t2, "template", "rules2", &rs2)) < 0 ||
        (rc = sx_seal_rules_from_plist(t1, "template", "rules", &rs1)) < 0 ||
        (rc = add_exclusions(&rs2, o)) < 0 || (rc = add_exclusions(&rs1, o)) < 0 ||
        (rc = sx_seal_rules_compile(&rs2, "template", "rules2")) < 0 ||
        (rc = sx_seal_rules_compile(&rs1, "template", "rules")) < 0)
        goto out;

    sx_cs_phase("seal: rules");
    if (o->cache_path)
        pf = sx_hash_prefetch_start(o->cache_path);
    w.what = base;
    w.rs2 = &rs2;
    w.rs1 = &rs1;
    w.pf = pf;
    if (o->cache_path) {
        struct timespec now;
        if (!(snap = calloc(1, sizeof(*snap))) || !(snap->path = sx_seal_cache_sibling(o->cache_path, ".tree")) ||
            !(snap->key = snap_key(o->flat, &rs2, &rs1))) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        clock_gettime(CLOCK_REALTIME, &now);
        snap->start_ns = sx_timespec_ns(now);
        snap->old = sx_seal_tree_load(snap->path, snap->key, rs2.n, rs1.n);
        w.record = true;
        w.old_tree = snap->old;
    }
    sx_cs_phase("seal: snapshot load");
    if ((rc = walk_base(&w, base)) < 0)
        goto out;
    sx_cs_phase("seal: walk");
    sx_hash_prefetch_walk_done(pf);
    sx_cs_phase("seal: stat-ahead drain");
    /* The cache checks kept both cores busy; what follows leaves room beside it. */
    if (o->checked)
        o->checked(o->checked_arg);
    if (snap)
        snap->save_pending = w.replayed != w.ndirs || w.ndirs != sx_seal_tree_count(snap->old);

    e2 = calloc(w.n ? w.n : 1, sizeof(*e2));
    e1 = calloc(w.n ? w.n : 1, sizeof(*e1));
    jobs = calloc(w.n ? w.n : 1, sizeof(*jobs));
    if (!e2 || !e1 || !jobs) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    /* Classify; collect the files to hash. */
    for (size_t i = 0; i < w.n; i++) {
        const walk_item *it = &w.v[i];
        bool v2 = it->in_r2 && wanted(it->r2);
        bool v1 = it->type == W_FILE && wanted(it->r1);
        if (it->type == W_LINK && is_dsstore(it->rel)) {
            rc = sx_err(SYSEXT_EFORMAT, "%s/%s: .DS_Store files cannot be a symlink", base, it->rel);
            goto out;
        }
        if (it->type == W_OTHER && (v2 || wanted(it->r1))) {
            rc = sx_err(SYSEXT_EFORMAT,
                        "%s/%s: unsupported resource found (something not a directory, file or "
                        "symlink)",
                        base, it->rel);
            goto out;
        }
        size_t job = SIZE_MAX;
        bool nested_file = v2 && it->type == W_FILE && (it->r2->flags & SX_RULE_NESTED);
        bool need1 = v1 || (v2 && !nested_file && it->type == W_FILE && want1);
        bool need256 = v2 && !nested_file && it->type == W_FILE && want256;
        if (need1 || need256) {
            sx_hash_job *j = &jobs[njobs];
            j->base = base;
            j->rel = it->rel;
            j->want_sha1 = need1;
            j->want_sha256 = need256;
            if (it->dirfd >= 0) {
                j->has_dirfd = true;
                j->dirfd = it->dirfd;
                j->name = it->name;
            }
            if (it->sa != SIZE_MAX)
                (void)sx_hash_prefetch_stat(pf, it->sa, j);
            job = njobs++;
        }
        if (v2) {
            build_entry *b = &e2[n2++];
            b->item = it;
            b->job = job;
            b->optional = (it->r2->flags & SX_RULE_OPTIONAL) != 0;
            if (it->type == W_LINK)
                b->kind = SX_SEAL_SYMLINK;
            else if (it->type == W_NESTED_DIR || nested_file)
                b->kind = SX_SEAL_NESTED;
            else
                b->kind = SX_SEAL_FILE;
        }
        if (v1) {
            build_entry *b = &e1[n1++];
            b->item = it;
            b->job = job;
            b->kind = SX_SEAL_FILE;
            b->optional = (it->r1->flags & SX_RULE_OPTIONAL) != 0;
        }
    }

    /* Nested code: the caller knows how to read signatures (serially: callbacks need not be
     * thread-safe). */
    for (size_t i = 0; i < n2; i++) {
        build_entry *b = &e2[i];
        if (b->kind != SX_SEAL_NESTED)
            continue;
        char *abs = sx_path_join(base, b->item->rel);
        if (!abs) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        if (!o->nested) {
            rc = sx_err(SYSEXT_EUNSUPPORTED, "%s: nested code, but no way to read its signature",
                        abs);
            free(abs);
            goto out;
        }
        rc = o->nested(abs, &b->nested, o->nested_payload);
        if (rc == 0 && !b->nested.requirement)
            rc = sx_err(SYSEXT_EINVALID, "%s: nested code has no designated requirement", abs);
        if (rc < 0) {
            sx_err_prefix(rc, "nested code %s", b->item->rel);
            free(abs);
            goto out;
        }
        free(abs);
    }

    sx_cs_phase("seal: classify + nested");
    if ((rc = sx_hash_jobs_run_prefetched(jobs, njobs, o->threads, o->cache_path, pf, &hs)) < 0)
        goto out;
    sx_cs_phase("seal: hash jobs");

    /* The walk's order is byte order except where a name is a prefix of a sibling's followed
     * by a byte below '/' ("a/x" before "a.txt"): sort only then. */
    if (!sorted_entries(e2, n2))
        sx_qsort(e2, n2, sizeof(*e2), cmp_entry_path);
    if (!sorted_entries(e1, n1))
        sx_qsort(e1, n1, sizeof(*e1), cmp_entry_path);

    /* Serialize: every dictionary's keys in sorted order (6.9). files and files2 are written
     * directly (seal_xml.c); the constant rules and rules2 dicts go through libplist, and
     * files/files2 are spliced in front of them after the root <dict>. */
    root = plist_new_dict();
    if (!root) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    plist_dict_set_item(root, "rules", t1);
    t1 = NULL;
    plist_dict_set_item(root, "rules2", t2);
    t2 = NULL;
    plist_to_xml(root, &xml, &xml_len);
    static const char root_open[] = "<plist version=\"1.0\">\n<dict>\n";
    const char *split = xml ? strstr(xml, root_open) : NULL;
    if (!split) {
        rc = sx_err(SYSEXT_ENOMEM, "seal: plist serialization failed");
        goto out;
    }
    size_t head = (size_t)(split - xml) + sizeof(root_open) - 1, per = 0;
    /* Reserved once for the most any entry can take (every character escaped, every element
     * at its longest: seal_xml.c), so the buffer never moves while it is written: its digest
     * is computed behind the writer. Pages reserved and never written cost nothing. */
    if ((rc = xml_bound(e1, n1, e2, n2, (size_t)xml_len, &per)) < 0)
        goto out;
    sx_buf_free(xml_out);
    sx_buf_init(xml_out, per); /* a ceiling: past it an append fails, it never moves */
    if ((rc = sx_buf_reserve(xml_out, per)) < 0)
        goto out;
    size_t published = 0;
    if (o->digest_out)
        digest = sx_trailing_digest_start(xml_out->data);
    if ((rc = sx_buf_append(xml_out, xml, head)) < 0 ||
        (rc = sx_xml_key(xml_out, 1, "files")) < 0 ||
        (rc = sx_xml_tag(xml_out, 1, n1 ? "<dict>" : "<dict/>")) < 0)
        goto out;
    for (size_t i = 0; i < n1 && rc == 0; i++) {
        const build_entry *b = &e1[i];
        const sx_hash_job *j = &jobs[b->job];
        xml_publish(digest, xml_out, &published);
        if ((rc = sx_xml_key(xml_out, 2, b->item->rel)) < 0)
            break;
        if (b->item->r1->flags == 0) {
            rc = sx_xml_data(xml_out, 2, j->sha1, 20);
        } else if ((rc = sx_xml_tag(xml_out, 2, "<dict>")) == 0 &&
                   (rc = sx_xml_key(xml_out, 3, "hash")) == 0 &&
                   (rc = sx_xml_data(xml_out, 3, j->sha1, 20)) == 0 &&
                   (rc = sx_xml_key(xml_out, 3, "optional")) == 0 &&
                   (rc = sx_xml_bool(xml_out, 3, b->optional)) == 0) {
            rc = sx_xml_tag(xml_out, 2, "</dict>");
        }
    }
    if (rc < 0 || (n1 && (rc = sx_xml_tag(xml_out, 1, "</dict>")) < 0) ||
        (rc = sx_xml_key(xml_out, 1, "files2")) < 0 ||
        (rc = sx_xml_tag(xml_out, 1, n2 ? "<dict>" : "<dict/>")) < 0)
        goto out;
    size_t nfiles = 0, nlinks = 0, nnested = 0;
    for (size_t i = 0; i < n2 && rc == 0; i++) {
        const build_entry *b = &e2[i];
        bool empty = b->kind == SX_SEAL_FILE && !want1 && !want256 && !b->optional;
        xml_publish(digest, xml_out, &published);
        if ((rc = sx_xml_key(xml_out, 2, b->item->rel)) < 0 ||
            (rc = sx_xml_tag(xml_out, 2, empty ? "<dict/>" : "<dict>")) < 0)
            break;
        /* Sorted: cdhash hash hash2 optional requirement symlink. */
        if (b->kind == SX_SEAL_NESTED) {
            if ((rc = sx_xml_key(xml_out, 3, "cdhash")) < 0 ||
                (rc = sx_xml_data(xml_out, 3, b->nested.cdhash, 20)) < 0)
                break;
            nnested++;
        } else if (b->kind == SX_SEAL_FILE) {
            const sx_hash_job *j = &jobs[b->job];
            if (want1 && ((rc = sx_xml_key(xml_out, 3, "hash")) < 0 ||
                          (rc = sx_xml_data(xml_out, 3, j->sha1, 20)) < 0))
                break;
            if (want256 && ((rc = sx_xml_key(xml_out, 3, "hash2")) < 0 ||
                            (rc = sx_xml_data(xml_out, 3, j->sha256, 32)) < 0))
                break;
            nfiles++;
        } else {
            nlinks++;
        }
        if (b->optional &&
            ((rc = sx_xml_key(xml_out, 3, "optional")) < 0 || (rc = sx_xml_bool(xml_out, 3, true)) < 0))
            break;
        if (b->kind == SX_SEAL_NESTED &&
            ((rc = sx_xml_key(xml_out, 3, "requirement")) < 0 ||
             (rc = sx_xml_string(xml_out, 3, b->nested.requirement)) < 0))
            break;
        if (b->kind == SX_SEAL_SYMLINK && ((rc = sx_xml_key(xml_out, 3, "symlink")) < 0 ||
                                           (rc = sx_xml_string(xml_out, 3, b->item->link)) < 0))
            break;
        if (!empty)
            rc = sx_xml_tag(xml_out, 2, "</dict>");
    }
    if (rc < 0 || (n2 && (rc = sx_xml_tag(xml_out, 1, "</dict>")) < 0) ||
        (rc = sx_buf_append(xml_out, xml + head, xml_len - head)) < 0)
        goto out;
    sx_cs_phase("seal: xml");
    xml_out->max = 0;
    if (o->digest_out) {
        if (digest)
            rc = sx_trailing_digest_finish(digest, xml_out->len, o->digest_out);
        else
            rc = sx_hash(SX_HASH_SHA256, xml_out->data, xml_out->len, o->digest_out);
        digest = NULL;
        if (rc < 0)
            goto out;
    }
    sx_cs_phase("seal: digest");
    /* Saved now, and a failure reported, unless the caller lets the cleanup save them while
     * it signs and syncs. */
    if (!o->defer_cleanup && (rc = sx_hash_prefetch_finish(pf)) < 0)
        goto out;
    if (o->stats) {
        o->stats->files = nfiles;
        o->stats->symlinks = nlinks;
        o->stats->nested = nnested;
        o->stats->files_hashed = hs.files_hashed;
        o->stats->files_cached = hs.files_cached;
        o->stats->bytes_hashed = hs.bytes_hashed;
        o->stats->dirs_replayed = w.replayed;
        o->stats->dirs_listed = w.ndirs - w.replayed;
    }
out:;
    if (digest) /* left early: wait for the thread, drop its digest */
        (void)sx_trailing_digest_finish(digest, xml_out->len, (uint8_t[32]){0});
    if (rc < 0 && snap)
        snap->save_pending = false;
    if (rc < 0 && pf)
        sx_hash_prefetch_discard(pf);
    sx_seal_cleanup *c = malloc(sizeof(*c));
    if (c) {
        *c = (sx_seal_cleanup){xml,  root, t1,  t2,  e2,   n2,   e1, pf,
                               jobs, njobs, w, rs1, rs2, base, snap, 0};
        /* A successful build's memory (tens of thousands of blocks, the walk's directory
         * descriptors) is freed on a thread of its own while the caller signs and syncs. */
        if (rc == 0 && o->defer_cleanup &&
            pthread_create(&c->tid, NULL, cleanup_main, c) == 0) {
            *o->defer_cleanup = c;
        } else {
            build_free(c);
            free(c);
        }
    } else {
        build_free(&(sx_seal_cleanup){xml, root, t1, t2, e2, n2, e1, pf, jobs, njobs, w, rs1, rs2,
                                      base, snap, 0});
    }
    sx_cs_phase("seal: cleanup");
    return rc;
}

void sx_seal_cleanup_wait(sx_seal_cleanup *c)
{
    if (!c)
        return;
    pthread_join(c->tid, NULL);
    free(c);
}

/* ---------------------------------------------------------------- parse */

static void entry_free(sx_seal_entry *e)
{
    free(e->path);
    free(e->symlink);
    free(e->requirement);
}

void sx_seal_free(sx_seal *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nfiles; i++)
        entry_free(&s->files[i]);
    for (size_t i = 0; i < s->nfiles2; i++)
        entry_free(&s->files2[i]);
    free(s->files);
    free(s->files2);
    sx_seal_rules_free(&s->rules);
    sx_seal_rules_free(&s->rules2);
    free(s);
}

static int get_data(plist_t v, size_t want, const char *what, const char *dict, const char *path,
                    const char *key, uint8_t *out)
{
    if (plist_get_node_type(v) != PLIST_DATA)
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s.%s: expected data", what, dict, path, key);
    uint64_t len = 0;
    const char *p = plist_get_data_ptr(v, &len);
    if (len != want || (!p && want))
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s.%s: expected %zu bytes of data, got %llu", what,
                      dict, path, key, want, (unsigned long long)len);
    memcpy(out, p, want);
    return 0;
}

static int get_string(plist_t v, const char *what, const char *dict, const char *path,
                      const char *key, char **out)
{
    if (plist_get_node_type(v) != PLIST_STRING)
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s.%s: expected a string", what, dict, path, key);
    uint64_t len = 0;
    const char *p = plist_get_string_ptr(v, &len);
    if (!p || strlen(p) != len)
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s.%s: invalid string", what, dict, path, key);
    if (!(*out = strdup(p)))
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    return 0;
}

static int parse_entry(plist_t v, const char *what, const char *dict, sx_seal_entry *e)
{
    const char *path = e->path;
    int rc;
    plist_type t = plist_get_node_type(v);
    if (t == PLIST_DATA) {
        e->has_sha1 = true;
        return get_data(v, 20, what, dict, path, "", e->sha1);
    }
    if (t != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s: expected data or a dictionary", what, dict, path);
    plist_t x;
    if ((x = plist_dict_get_item(v, "optional"))) {
        if (plist_get_node_type(x) != PLIST_BOOLEAN)
            return sx_err(SYSEXT_EFORMAT, "%s: %s.%s.optional: expected a boolean", what, dict,
                          path);
        uint8_t b = 0;
        plist_get_bool_val(x, &b);
        e->optional = b != 0;
    }
    if ((x = plist_dict_get_item(v, "requirement"))) {
        e->kind = SX_SEAL_NESTED;
        if ((rc = get_string(x, what, dict, path, "requirement", &e->requirement)) < 0)
            return rc;
        if ((x = plist_dict_get_item(v, "cdhash"))) {
            if ((rc = get_data(x, 20, what, dict, path, "cdhash", e->cdhash)) < 0)
                return rc;
            e->has_cdhash = true;
        }
        return 0;
    }
    if ((x = plist_dict_get_item(v, "symlink"))) {
        e->kind = SX_SEAL_SYMLINK;
        return get_string(x, what, dict, path, "symlink", &e->symlink);
    }
    e->kind = SX_SEAL_FILE;
    if ((x = plist_dict_get_item(v, "hash"))) {
        if ((rc = get_data(x, 20, what, dict, path, "hash", e->sha1)) < 0)
            return rc;
        e->has_sha1 = true;
    }
    if ((x = plist_dict_get_item(v, "hash2"))) {
        if ((rc = get_data(x, 32, what, dict, path, "hash2", e->sha256)) < 0)
            return rc;
        e->has_sha256 = true;
    }
    if ((x = plist_dict_get_item(v, "hash3"))) {
        if ((rc = get_data(x, 20, what, dict, path, "hash3", e->sha256t)) < 0)
            return rc;
        e->has_sha256t = true;
    }
    if ((x = plist_dict_get_item(v, "hash4"))) {
        if ((rc = get_data(x, 48, what, dict, path, "hash4", e->sha384)) < 0)
            return rc;
        e->has_sha384 = true;
    }
    if (!e->has_sha1 && !e->has_sha256 && !e->has_sha256t && !e->has_sha384)
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s: no hash, symlink or requirement", what, dict,
                      path);
    return 0;
}

static int cmp_seal_entry(const void *a, const void *b)
{
    return strcmp(((const sx_seal_entry *)a)->path, ((const sx_seal_entry *)b)->path);
}

static int parse_files(plist_t dict, const char *what, const char *key, sx_seal_entry **out,
                       size_t *nout)
{
    if (plist_get_node_type(dict) != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "%s: %s: expected a dictionary", what, key);
    uint32_t n = plist_dict_get_size(dict);
    sx_seal_entry *v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *out = v;
    *nout = 0;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(dict, &it);
    if (!it)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = 0;
    for (;;) {
        char *k = NULL;
        plist_t val = NULL;
        plist_dict_next_item(dict, it, &k, &val);
        if (!val) {
            free(k);
            break;
        }
        if (*nout >= n) {
            free(k);
            rc = sx_err(SYSEXT_EFORMAT, "%s: %s: inconsistent dictionary", what, key);
            break;
        }
        if (!k) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        sx_seal_entry *e = &v[(*nout)++];
        e->path = k;
        if (!*k) {
            rc = sx_err(SYSEXT_EFORMAT, "%s: %s: empty path", what, key);
            break;
        }
        if ((rc = parse_entry(val, what, key, e)) < 0)
            break;
    }
    free(it);
    if (rc < 0)
        return rc;
    sx_qsort(v, *nout, sizeof(*v), cmp_seal_entry);
    for (size_t i = 1; i < *nout; i++)
        if (strcmp(v[i - 1].path, v[i].path) == 0)
            return sx_err(SYSEXT_EFORMAT, "%s: %s.%s: duplicate entry", what, key, v[i].path);
    return 0;
}

static int be_uint(const uint8_t *p, unsigned n, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    *out = v;
    return 0;
}

/* libplist 2.2 asserts (aborts) on a binary plist string with an embedded NUL used as a
 * dictionary key. Check every string object of a bplist00 first, through its offset table;
 * anything structurally odd is rejected here too. */
static int bplist_prescan(const uint8_t *d, size_t len, const char *what)
{
    if (len < 8 + 32)
        return sx_err(SYSEXT_EFORMAT, "%s: binary plist too short", what);
    const uint8_t *t = d + len - 32;
    unsigned osz = t[6];
    uint64_t nobj, table;
    be_uint(t + 8, 8, &nobj);
    be_uint(t + 24, 8, &table);
    size_t body = len - 32;
    if (osz < 1 || osz > 8 || table < 8 || table > body || nobj > (body - table) / osz)
        return sx_err(SYSEXT_EFORMAT, "%s: binary plist: bad trailer", what);
    for (uint64_t i = 0; i < nobj; i++) {
        uint64_t off;
        be_uint(d + table + i * osz, osz, &off);
        if (off < 8 || off >= table)
            return sx_err(SYSEXT_EFORMAT, "%s: binary plist: object %llu at a bad offset", what,
                          (unsigned long long)i);
        uint8_t m = d[off], type = m >> 4;
        if (type != 0x5 && type != 0x6)
            continue;
        uint64_t count = m & 0xf, pos = off + 1;
        if (count == 0xf) {
            if (pos >= table || (d[pos] >> 4) != 0x1 || (d[pos] & 0xf) > 3)
                return sx_err(SYSEXT_EFORMAT, "%s: binary plist: object %llu: bad length",
                              what, (unsigned long long)i);
            unsigned n = 1u << (d[pos] & 0xf);
            if (pos + 1 + n > table)
                return sx_err(SYSEXT_EFORMAT, "%s: binary plist: object %llu: bad length",
                              what, (unsigned long long)i);
            be_uint(d + pos + 1, n, &count);
            pos += 1 + n;
        }
        uint64_t bytes = type == 0x6 ? count * 2 : count;
        if (count > table || bytes > table - pos)
            return sx_err(SYSEXT_EFORMAT, "%s: binary plist: object %llu overruns", what,
                          (unsigned long long)i);
        for (uint64_t k = 0; k < bytes; k += type == 0x6 ? 2 : 1)
            if (d[pos + k] == 0 && (type == 0x5 || d[pos + k + 1] == 0))
                return sx_err(SYSEXT_EFORMAT, "%s: binary plist: object %llu: NUL in a string",
                              what, (unsigned long long)i);
    }
    return 0;
}

int sx_seal_parse(const uint8_t *data, size_t len, const char *what, sx_seal **out)
{
    SX_ASSERT_ARG(data || len == 0);
    SX_ASSERT_ARG(out);
    if (!what)
        what = "CodeResources";
    if (len == 0)
        return sx_err(SYSEXT_EFORMAT, "%s: empty file, expected a property list", what);
    if (len > SEAL_MAX_BYTES || len > UINT32_MAX)
        return sx_err(SYSEXT_ELIMIT, "%s: %zu bytes is over the limit", what, len);
    if (len >= 8 && memcmp(data, "bplist00", 8) == 0) {
        int prc = bplist_prescan(data, len, what);
        if (prc < 0)
            return prc;
    }
    plist_t root = NULL;
    plist_from_memory((const char *)data, (uint32_t)len, &root);
    if (!root)
        return sx_err(SYSEXT_EFORMAT, "%s: not a property list", what);
    int rc = 0;
    sx_seal *s = calloc(1, sizeof(*s));
    if (!s) {
        plist_free(root);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    if (plist_get_node_type(root) != PLIST_DICT) {
        rc = sx_err(SYSEXT_EFORMAT, "%s: top level: expected a dictionary", what);
        goto out;
    }
    plist_t files = plist_dict_get_item(root, "files"), files2 = plist_dict_get_item(root, "files2");
    plist_t rules = plist_dict_get_item(root, "rules"), rules2 = plist_dict_get_item(root, "rules2");
    if (files2 || rules2) {
        if (!files2 || !rules2) {
            rc = sx_err(SYSEXT_EFORMAT, "%s: %s: missing (required with %s)", what,
                        files2 ? "rules2" : "files2", files2 ? "files2" : "rules2");
            goto out;
        }
        if ((rc = parse_files(files2, what, "files2", &s->files2, &s->nfiles2)) < 0 ||
            (rc = sx_seal_rules_from_plist(rules2, what, "rules2", &s->rules2)) < 0)
            goto out;
        s->has_v2 = true;
    }
    if (files || rules) {
        if (!files || !rules) {
            rc = sx_err(SYSEXT_EFORMAT, "%s: %s: missing (required with %s)", what,
                        files ? "rules" : "files", files ? "files" : "rules");
            goto out;
        }
        if ((rc = parse_files(files, what, "files", &s->files, &s->nfiles)) < 0 ||
            (rc = sx_seal_rules_from_plist(rules, what, "rules", &s->rules)) < 0)
            goto out;
        for (size_t i = 0; i < s->nfiles; i++)
            if (s->files[i].kind != SX_SEAL_FILE || !s->files[i].has_sha1) {
                rc = sx_err(SYSEXT_EFORMAT, "%s: files.%s.hash: expected a SHA-1 hash", what,
                            s->files[i].path);
                goto out;
            }
        s->has_v1 = true;
    }
    if (!s->has_v1 && !s->has_v2)
        rc = sx_err(SYSEXT_EFORMAT, "%s: files2/files: missing (no seal in the dictionary)", what);
out:
    plist_free(root);
    if (rc < 0)
        sx_seal_free(s);
    else
        *out = s;
    return rc;
}

const sx_seal_entry *sx_seal_find(const sx_seal_entry *v, size_t n, const char *path)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(path, v[mid].path);
        if (d == 0)
            return &v[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------- verify */

static bool path_under(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == 0);
}

/* 6.8: an absolute target must be under /System/ or /Library/; a relative one must stay inside
 * the bundle, both lexically and after resolving it on disk. */
static bool symlink_leaves(const char *bundle_real, const char *base_rel_prefix, const char *rel,
                           const char *target, const char *abs_link)
{
    if (target[0] == '/') {
        char real[PATH_MAX];
        const char *p = realpath(target, real) ? real : target;
        return !(strncmp(p, "/System/", 8) == 0 || strncmp(p, "/Library/", 9) == 0);
    }
    /* Lexical: count the depth below the bundle root of the link's directory, then walk the
     * target's components; going above the root leaves the bundle. */
    size_t depth = 0;
    for (const char *p = base_rel_prefix; *p; p++)
        depth += *p == '/';
    for (const char *p = rel; *p; p++)
        depth += *p == '/';
    const char *p = target;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t cl = q ? (size_t)(q - p) : strlen(p);
        if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (depth == 0)
                return true;
            depth--;
        } else if (!(cl == 0 || (cl == 1 && p[0] == '.'))) {
            depth++;
        }
        p = q ? q + 1 : p + cl;
    }
    bool leaves = false;
    char real[PATH_MAX];
    char *abs = NULL;
    char *dir = sx_path_dirname(abs_link);
    if (!dir || asprintf(&abs, "%s/%s", dir, target) < 0) {
        free(dir);
        return true;
    }
    free(dir);
    if (realpath(abs, real)) {
        leaves = !path_under(real, bundle_real) && strncmp(real, "/System/", 8) != 0 &&
                 strncmp(real, "/Library/", 9) != 0;
    }
    free(abs);
    return leaves;
}

static bool is_known_component(const char *name)
{
    static const char *const fixed[] = {"CodeDirectory",   "CodeRequirements",
                                        "CodeResources",   "CodeEntitlements",
                                        "CodeEntitlementDER", "CodeSignature",
                                        "CodeTopDirectory", "CodeRepSpecific",
                                        "LibraryConstraint"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(fixed); i++)
        if (strcmp(name, fixed[i]) == 0)
            return true;
    if (strncmp(name, "CodeRequirements-", 17) == 0 && name[17] >= '1' && name[17] <= '5' &&
        name[18] == 0)
        return true;
    if (strncmp(name, "LaunchConstraint", 16) == 0 && strlen(name) < 40)
        return true;
    return false;
}

/* Strict structure: _CodeSignature holds only component files (7.3); a deep bundle's root
 * holds only Contents and a few Finder files (7.4). */
static int check_structure(const sx_seal_options *o, const char *base, sx_report *report)
{
    char *sig = sx_path_join(base, "_CodeSignature");
    if (!sig)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    DIR *d = opendir(sig);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            struct stat st;
            bool reg = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                       S_ISREG(st.st_mode);
            if (!reg || !is_known_component(de->d_name))
                sx_report_add(report, SX_SEV_ERROR, "unsealed-content", "_CodeSignature", NULL,
                              "unsealed contents present in the bundle root: _CodeSignature/%s",
                              de->d_name);
        }
        closedir(d);
    }
    free(sig);
    if (o->flat)
        return 0;
    d = opendir(o->bundle_path);
    if (!d)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", o->bundle_path);
    static const char *const allowed[] = {"Contents", ".DS_Store", ".LSOverride", "Icon\r",
                                          ".SoftwareDepot.tracking"};
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        bool ok = false;
        for (size_t i = 0; i < SX_ARRAY_SIZE(allowed); i++)
            ok = ok || strcmp(de->d_name, allowed[i]) == 0;
        if (!ok)
            sx_report_add(report, SX_SEV_ERROR, "unsealed-content", de->d_name, NULL,
                          "unsealed contents present in the bundle root: %s", de->d_name);
    }
    closedir(d);
    return 0;
}

static bool digest_matches(const sx_seal_entry *e, const sx_hash_job *j)
{
    if (e->has_sha256)
        return memcmp(e->sha256, j->sha256, 32) == 0;
    if (e->has_sha256t)
        return memcmp(e->sha256t, j->sha256, 20) == 0;
    return memcmp(e->sha1, j->sha1, 20) == 0;
}

int sx_seal_verify(const sx_seal_options *o, const uint8_t *xml, size_t len, bool strict,
                   sx_nested_check_fn check, void *payload, sx_report *report)
{
    SX_ASSERT_ARG(o);
    SX_ASSERT_ARG(o->bundle_path);
    SX_ASSERT_ARG(report);
    sx_seal *s = NULL;
    sx_seal_rules rs = {0};
    walker w = {0};
    bool *seen = NULL;
    sx_hash_job *jobs = NULL;
    const sx_seal_entry **job_entry = NULL;
    size_t njobs = 0;
    char *base = NULL, *bundle_real = NULL;
    size_t errors_before = sx_report_count(report, SX_SEV_ERROR);
    size_t nfiles = 0, nlinks = 0, nnested = 0;
    sx_hash_stats hs = {0};
    int rc = sx_seal_parse(xml, len, "CodeResources", &s);
    if (rc < 0) {
        sx_report_add(report, SX_SEV_ERROR, "seal-malformed", "_CodeSignature/CodeResources", NULL,
                      "%s", sx_errmsg());
        return rc == SYSEXT_ENOMEM ? rc : SYSEXT_EFORMAT;
    }
    const sx_seal_entry *ents = s->has_v2 ? s->files2 : s->files;
    size_t nents = s->has_v2 ? s->nfiles2 : s->nfiles;
    const char *rkey = s->has_v2 ? "rules2" : "rules";
    if (!(base = resource_base(o))) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = sx_seal_rules_copy(s->has_v2 ? &s->rules2 : &s->rules, &rs)) < 0 ||
        (rc = add_exclusions(&rs, o)) < 0)
        goto out;
    if ((rc = sx_seal_rules_compile(&rs, "CodeResources", rkey)) < 0) {
        sx_report_add(report, SX_SEV_ERROR, "seal-malformed", "_CodeSignature/CodeResources", rkey,
                      "%s", sx_errmsg());
        rc = SYSEXT_EFORMAT;
        goto out;
    }
    if (strict) {
        const char *weak = s->has_v2 ? sx_seal_rules_weakness(&s->rules2, o->flat)
                                     : "resource envelope is obsolete (version 1 signature)";
        if (weak)
            sx_report_add(report, SX_SEV_ERROR, "weak-rules", "_CodeSignature/CodeResources", rkey,
                          "%s", weak);
        bundle_real = realpath(o->bundle_path, NULL);
        if (!bundle_real) {
            rc = sx_err_errno(sx_errno_code(errno), errno, "%s", o->bundle_path);
            goto out;
        }
        if ((rc = check_structure(o, base, report)) < 0)
            goto out;
    }

    w.what = base;
    w.rs2 = &rs;
    if ((rc = walk_base(&w, base)) < 0)
        goto out;

    seen = calloc(nents ? nents : 1, sizeof(*seen));
    jobs = calloc(w.n ? w.n : 1, sizeof(*jobs));
    job_entry = calloc(w.n ? w.n : 1, sizeof(*job_entry));
    if (!seen || !jobs || !job_entry) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < w.n; i++) {
        const walk_item *it = &w.v[i];
        if (it->type == W_LINK && is_dsstore(it->rel) && it->r2 && !is_excluded(it->r2)) {
            sx_report_add(report, SX_SEV_ERROR, "dsstore-symlink", it->rel, NULL,
                          ".DS_Store files cannot be a symlink: %s", it->rel);
            continue;
        }
        if (!it->r2) {
            if (strict)
                sx_report_add(report, SX_SEV_ERROR, "unsealed-content", it->rel, NULL,
                              "resources are present but not sealed by signature: %s", it->rel);
            continue;
        }
        if (!wanted(it->r2))
            continue;
        if (it->type == W_OTHER) {
            sx_report_add(report, SX_SEV_ERROR, "unsupported-resource", it->rel, NULL,
                          "unsupported resource found (something not a directory, file or "
                          "symlink): %s",
                          it->rel);
            continue;
        }
        const sx_seal_entry *e = sx_seal_find(ents, nents, it->rel);
        if (!e) {
            if (!s->has_v2 && it->type == W_LINK)
                continue; /* version 1 ignores symlinks */
            sx_report_add(report, SX_SEV_ERROR, "file-added", it->rel, NULL, "file added: %s",
                          it->rel);
            continue;
        }
        seen[e - ents] = true;
        char *abs = sx_path_join(base, it->rel);
        if (!abs) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        if (e->kind == SX_SEAL_NESTED) {
            nnested++;
            if (it->type == W_LINK) {
                sx_report_add(report, SX_SEV_ERROR, "file-modified", it->rel, NULL,
                              "file modified: %s", it->rel);
            } else if (check) {
                if (check(abs, e->has_cdhash ? e->cdhash : NULL, e->requirement, payload) != 0)
                    sx_report_add(report, SX_SEV_ERROR, "nested-invalid", it->rel, NULL,
                                  "nested code is modified or invalid: %s", it->rel);
            } else if (o->nested) {
                sx_nested_info ni;
                memset(&ni, 0, sizeof(ni));
                int nrc = o->nested(abs, &ni, o->nested_payload);
                if (nrc != 0 || (e->has_cdhash && memcmp(ni.cdhash, e->cdhash, 20) != 0))
                    sx_report_add(report, SX_SEV_ERROR, "nested-invalid", it->rel, NULL,
                                  "nested code is modified or invalid: %s", it->rel);
                free(ni.requirement);
            } else {
                sx_report_add(report, SX_SEV_NOTE, "nested-unchecked", it->rel, NULL,
                              "nested code not validated: %s", it->rel);
            }
        } else if (e->kind == SX_SEAL_SYMLINK) {
            nlinks++;
            if (it->type != W_LINK) {
                sx_report_add(report, SX_SEV_ERROR, "file-modified", it->rel, NULL,
                              "file modified: %s", it->rel);
            } else if (strcmp(it->link, e->symlink) != 0) {
                sx_report_add(report, SX_SEV_ERROR, "symlink-changed", it->rel, NULL,
                              "file modified: %s", it->rel);
            } else if (strict && symlink_leaves(bundle_real, o->flat ? "" : "Contents/", it->rel,
                                                it->link, abs)) {
                sx_report_add(report, SX_SEV_ERROR, "symlink-outside", it->rel, NULL,
                              "invalid destination for symbolic link in bundle: %s -> %s",
                              it->rel, it->link);
            }
        } else {
            nfiles++;
            if (it->type != W_FILE || (!e->has_sha1 && !e->has_sha256 && !e->has_sha256t)) {
                /* a type change, or only a digest we do not compute (hash4) */
                if (it->type == W_FILE)
                    sx_report_add(report, SX_SEV_ERROR, "file-modified", it->rel, NULL,
                                  "file modified: %s (no supported digest in the seal)", it->rel);
                else
                    sx_report_add(report, SX_SEV_ERROR, "file-modified", it->rel, NULL,
                                  "file modified: %s", it->rel);
            } else {
                sx_hash_job *j = &jobs[njobs];
                j->path = abs;
                abs = NULL;
                j->rel = it->rel;
                j->want_sha256 = e->has_sha256 || e->has_sha256t;
                j->want_sha1 = !j->want_sha256;
                if (it->dirfd >= 0) {
                    j->has_dirfd = true;
                    j->dirfd = it->dirfd;
                    j->name = it->name;
                }
                job_entry[njobs++] = e;
            }
        }
        free(abs);
    }

    rc = sx_hash_jobs_run(jobs, njobs, o->threads, NULL, &hs);
    if (rc < 0)
        sx_err_clear();
    rc = 0;
    for (size_t i = 0; i < njobs; i++) {
        const sx_hash_job *j = &jobs[i];
        const sx_seal_entry *e = job_entry[i];
        if (j->rc == SYSEXT_ENOTFOUND) {
            if (!e->optional)
                sx_report_add(report, SX_SEV_ERROR, "file-missing", e->path, NULL,
                              "file missing: %s", e->path);
        } else if (j->rc == SYSEXT_EFORMAT) {
            sx_report_add(report, SX_SEV_ERROR, "file-modified", e->path, NULL,
                          "file modified: %s", e->path);
        } else if (j->rc < 0) {
            rc = sx_err(j->rc, "%s", j->errmsg ? j->errmsg : j->path);
            goto out;
        } else if (!digest_matches(e, j)) {
            sx_report_add(report, SX_SEV_ERROR, "file-modified", e->path, NULL,
                          "file modified: %s", e->path);
        }
    }
    for (size_t i = 0; i < nents; i++)
        if (!seen[i] && !ents[i].optional)
            sx_report_add(report, SX_SEV_ERROR, "file-missing", ents[i].path, NULL,
                          "file missing: %s", ents[i].path);
    if (report->oom) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory while reporting");
        goto out;
    }
    if (o->stats) {
        o->stats->files = nfiles;
        o->stats->symlinks = nlinks;
        o->stats->nested = nnested;
        o->stats->files_hashed = hs.files_hashed;
        o->stats->files_cached = 0;
        o->stats->bytes_hashed = hs.bytes_hashed;
    }
    if (sx_report_count(report, SX_SEV_ERROR) > errors_before)
        rc = sx_err(SYSEXT_ESIGNATURE, "a sealed resource is missing or invalid");
out:
    free(bundle_real);
    free(job_entry);
    sx_hash_jobs_free(jobs, njobs);
    free(seen);
    walker_free(&w);
    sx_seal_rules_free(&rs);
    free(base);
    sx_seal_free(s);
    return rc;
}
