/* Unpack a hostile zip safely.
 *
 * Two phases. First every entry is checked without writing anything: names, types, sizes
 * and ratios, duplicates and clashes, entries below a symlink or file, symlink targets. Then
 * the archive is extracted into a fresh 0700 directory inside DIR, walking every path
 * component with O_NOFOLLOW relative to that directory's fd, counting the bytes each entry
 * really decompresses to. Only when all of it succeeded are the top-level items renamed into
 * DIR (RENAME_NOREPLACE); otherwise the temporary directory is removed.
 *
 * Why the symlink rule is enough: no entry may sit below a symlink or a file, and a symlink's
 * target may only be leading ".." components (never climbing out of its top-level item)
 * followed by plain names. Resolving such a target walks up real directories we created, then
 * down names inside the item; a name that is itself a symlink obeys the same rule. So every
 * link resolves inside its own top-level item, whatever else DIR holds.
 */
#include "util/common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "bundle/zip.h"
#include "sysext/archive.h"
#include "util/fs.h"
#include "util/reader.h"

#define COPY_CHUNK (64u << 10)

/* ---- the name and symlink rules, shared with pack ---- */

/* Length of the UTF-8 sequence at p (at most `left` bytes), 0 if it is not valid UTF-8. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t n;
    unsigned min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The byte-level rules for names and targets: no NUL, control characters, backslashes or
 * invalid UTF-8. */
static int check_bytes(const char *s, size_t len, const char *what, const char *kind)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] == 0)
            return sx_err(SYSEXT_EUNSAFE, "%s: NUL byte in the %s at byte %zu", what, kind, i);
        if (p[i] < 0x20 || p[i] == 0x7f)
            return sx_err(SYSEXT_EUNSAFE, "%s: control character 0x%02x in the %s at byte %zu",
                          what, p[i], kind, i);
        if (p[i] == '\\')
            return sx_err(SYSEXT_EUNSAFE, "%s: backslash in the %s at byte %zu", what, kind, i);
        size_t n = utf8_seq(p + i, len - i);
        if (!n)
            return sx_err(SYSEXT_EUNSAFE, "%s: the %s is not valid UTF-8 at byte %zu", what, kind,
                          i);
        i += n;
    }
    return 0;
}

int sx_zip_check_name(const char *name, size_t len, const char *what)
{
    if (len == 0)
        return sx_err(SYSEXT_EUNSAFE, "%s: empty name", what);
    if (len > SX_ZIP_NAME_MAX)
        return sx_err(SYSEXT_EUNSAFE, "%s: name longer than %u bytes", what, SX_ZIP_NAME_MAX);
    if (name[0] == '/')
        return sx_err(SYSEXT_EUNSAFE, "%s: absolute path", what);
    int r = check_bytes(name, len, what, "name");
    if (r < 0)
        return r;
    for (size_t i = 0; i <= len;) {
        const char *c = name + i;
        const char *slash = memchr(c, '/', len - i);
        size_t n = slash ? (size_t)(slash - c) : len - i;
        if (n == 0)
            return sx_err(SYSEXT_EUNSAFE, "%s: empty path component", what);
        if (n == 1 && c[0] == '.')
            return sx_err(SYSEXT_EUNSAFE, "%s: '.' path component", what);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return sx_err(SYSEXT_EUNSAFE, "%s: '..' path component", what);
        if (n > SX_ZIP_COMPONENT_MAX)
            return sx_err(SYSEXT_EUNSAFE, "%s: path component longer than %u bytes", what,
                          SX_ZIP_COMPONENT_MAX);
        i += n + 1;
    }
    return 0;
}

int sx_zip_check_symlink(const char *link_name, const char *target, size_t len)
{
    if (len == 0)
        return sx_err(SYSEXT_EUNSAFE, "symlink '%s': empty target", link_name);
    if (len > SX_ZIP_NAME_MAX)
        return sx_err(SYSEXT_EUNSAFE, "symlink '%s': target longer than %u bytes", link_name,
                      SX_ZIP_NAME_MAX);
    char what[64 + SX_ZIP_NAME_MAX];
    snprintf(what, sizeof(what), "symlink '%s'", link_name); /* truncation only shortens it */
    int r = check_bytes(target, len, what, "target");
    if (r < 0)
        return r;
    if (target[0] == '/')
        return sx_err(SYSEXT_EUNSAFE, "symlink '%s': absolute target '%.*s'", link_name, (int)len,
                      target);
    /* The link's own directory is `depth` levels below the root of the extracted tree; it may
     * climb at most depth - 1 of them, staying inside its top-level item. */
    size_t depth = 0, ups = 0;
    for (const char *s = link_name; *s; s++)
        depth += *s == '/';
    bool descended = false;
    for (size_t i = 0; i <= len;) {
        const char *c = target + i;
        const char *slash = memchr(c, '/', len - i);
        size_t n = slash ? (size_t)(slash - c) : len - i;
        if (n == 0 || (n == 1 && c[0] == '.'))
            return sx_err(SYSEXT_EUNSAFE, "symlink '%s': target '%.*s' has an empty or '.' component",
                          link_name, (int)len, target);
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            if (descended)
                return sx_err(SYSEXT_EUNSAFE,
                              "symlink '%s': target '%.*s' has '..' after a name (only leading "
                              "'..' components are allowed)",
                              link_name, (int)len, target);
            ups++;
        } else {
            descended = true;
        }
        i += n + 1;
    }
    if (depth == 0)
        return sx_err(SYSEXT_EUNSAFE, "symlink '%s': a top-level item may not be a symlink",
                      link_name);
    if (ups > depth - 1)
        return sx_err(SYSEXT_EUNSAFE, "symlink '%s': target '%.*s' resolves outside the archive's "
                      "top-level item", link_name, (int)len, target);
    return 0;
}

/* ---- limits and results ---- */

void sx_zip_limits_resolve(const sysext_unpack_limits *in, sysext_unpack_limits *out)
{
    sysext_unpack_limits l = {0};
    if (in)
        l = *in;
    if (!l.max_total_bytes)
        l.max_total_bytes = SYSEXT_UNPACK_DEFAULT_MAX_TOTAL;
    if (!l.max_entries)
        l.max_entries = SYSEXT_UNPACK_DEFAULT_MAX_ENTRIES;
    if (!l.max_ratio)
        l.max_ratio = SYSEXT_UNPACK_DEFAULT_MAX_RATIO;
    *out = l;
}

void sx_zip_items_free(sx_zip_items *items)
{
    if (!items)
        return;
    for (size_t i = 0; i < items->n; i++)
        free(items->v[i]);
    free(items->v);
    items->v = NULL;
    items->n = 0;
}

/* ---- phase 1: read the directory and check everything ---- */

typedef struct ent {
    char *name; /* without the trailing '/' of a directory */
    zip_uint64_t index;
    mode_t type; /* S_IFDIR, S_IFREG, S_IFLNK */
    mode_t perm;
    uint64_t size, comp_size;
    char *target; /* symlinks */
} ent;

typedef struct unpack {
    zip_t *za;
    const char *what; /* the archive, for messages */
    uint64_t archive_size;
    sysext_unpack_limits lim;
    ent *v;
    size_t n;
    uint8_t *chunk;
    struct cdname {
        uint16_t len; /* stored length of each central directory name */
        bool nul;     /* it holds a NUL byte (which libzip turns into a space) */
    } *names;
    uint64_t n_names;
    bool dup_at_open;   /* libzip saw duplicate names */
} unpack;

/* "x.zip: entry 'name'" with control bytes escaped, for messages. */
static void entry_label(char *out, size_t cap, const char *what, const char *name)
{
    int k = snprintf(out, cap, "%s: entry '", what);
    size_t o = (k < 0 || (size_t)k >= cap) ? cap - 1 : (size_t)k;
    bool utf8 = true;
    size_t len = strlen(name);
    for (size_t i = 0, n; i < len && utf8; i += n)
        utf8 = (n = utf8_seq((const unsigned char *)name + i, len - i)) != 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 6 < cap; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8))
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    if (o + 2 <= cap) {
        out[o++] = '\'';
    }
    out[o < cap ? o : cap - 1] = '\0';
}

#define LABEL_MAX (256 + 4 * SX_ZIP_NAME_MAX)

/* Read entry `e` into `fd` (or into `buf` of `cap` bytes when fd < 0), refusing more bytes than
 * declared. */
static int read_entry(unpack *u, const ent *e, const char *label, int fd, char *buf, size_t cap)
{
    zip_file_t *zf = zip_fopen_index(u->za, e->index, 0);
    if (!zf)
        return sx_err(SYSEXT_EFORMAT, "%s: cannot open: %s", label, zip_strerror(u->za));
    uint64_t total = 0;
    int r = 0;
    for (;;) {
        zip_int64_t k = zip_fread(zf, u->chunk, COPY_CHUNK);
        if (k < 0) {
            r = sx_err(SYSEXT_EFORMAT, "%s: %s", label, zip_file_strerror(zf));
            break;
        }
        if (k == 0)
            break;
        if (SX_ADD_OVERFLOW(total, (uint64_t)k, &total) || total > e->size) {
            r = sx_err(SYSEXT_ELIMIT, "%s: decompresses to more than its declared %llu bytes",
                       label, (unsigned long long)e->size);
            break;
        }
        if (fd < 0) {
            if (total > cap) {
                r = sx_err(SYSEXT_ELIMIT, "%s: longer than %zu bytes", label, cap);
                break;
            }
            memcpy(buf + (total - (uint64_t)k), u->chunk, (size_t)k);
            continue;
        }
        const uint8_t *p = u->chunk;
        size_t left = (size_t)k;
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                r = sx_err_errno(sx_errno_code(errno), errno, "%s: write", label);
                break;
            }
            p += w;
            left -= (size_t)w;
        }
        if (r < 0)
            break;
    }
    int c = zip_fclose(zf);
    if (r == 0 && c != 0) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, c);
        r = sx_err(SYSEXT_EFORMAT, "%s: %s", label, zip_error_strerror(&ze));
        zip_error_fini(&ze);
    }
    if (r == 0 && total != e->size)
        r = sx_err(SYSEXT_EFORMAT, "%s: holds %llu bytes, not the declared %llu", label,
                   (unsigned long long)total, (unsigned long long)e->size);
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const ent *)a)->name, ((const ent *)b)->name);
}

static int by_folded_name(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    int c = strcasecmp(x->name, y->name);
    return c ? c : strcmp(x->name, y->name);
}

static const char *type_name(mode_t t)
{
    return t == S_IFDIR ? "directory" : t == S_IFLNK ? "symlink" : "file";
}

/* The entry named exactly by the first `len` bytes of `key`, in the name-sorted array. */
static const ent *find_prefix(const unpack *u, const char *key, size_t len)
{
    size_t lo = 0, hi = u->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *nm = u->v[mid].name;
        int c = strncmp(nm, key, len);
        if (c == 0 && nm[len] != '\0')
            c = 1;
        if (c == 0)
            return &u->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int scan_entry(unpack *u, zip_uint64_t i, uint64_t *total)
{
    zip_stat_t zs;
    char label[LABEL_MAX];
    if (zip_stat_index(u->za, i, ZIP_FL_ENC_RAW, &zs) < 0 || !(zs.valid & ZIP_STAT_NAME))
        return sx_err(SYSEXT_EFORMAT, "%s: entry %llu: %s", u->what, (unsigned long long)i,
                      zip_strerror(u->za));
    entry_label(label, sizeof(label), u->what, zs.name);
    if ((zs.valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD)) !=
        (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD))
        return sx_err(SYSEXT_EFORMAT, "%s: sizes unknown", label);
    if ((zs.valid & ZIP_STAT_ENCRYPTION_METHOD) && zs.encryption_method != ZIP_EM_NONE)
        return sx_err(SYSEXT_EFORMAT, "%s: encrypted entries are not supported", label);
    if (zs.comp_method != ZIP_CM_STORE && zs.comp_method != ZIP_CM_DEFLATE)
        return sx_err(SYSEXT_EFORMAT, "%s: compression method %u is not store or deflate",
                      label, (unsigned)zs.comp_method);

    size_t len = strlen(zs.name);
    if (i >= u->n_names || len != u->names[i].len || u->names[i].nul) {
        bool nul = i < u->n_names && u->names[i].nul;
        return sx_err(nul ? SYSEXT_EUNSAFE : SYSEXT_EFORMAT, "%s: %s", label,
                      nul ? "NUL byte in the name"
                          : "the central directory disagrees with libzip about this name");
    }
    bool slash = len > 0 && zs.name[len - 1] == '/';
    zip_uint8_t opsys;
    zip_uint32_t attr;
    if (zip_file_get_external_attributes(u->za, i, 0, &opsys, &attr) < 0)
        return sx_err(SYSEXT_EFORMAT, "%s: %s", label, zip_strerror(u->za));
    mode_t mode = opsys == ZIP_OPSYS_UNIX ? (mode_t)(attr >> 16) : 0;
    mode_t type = mode & S_IFMT;
    if (type == 0)
        type = slash ? S_IFDIR : S_IFREG;
    if (type != S_IFDIR && type != S_IFREG && type != S_IFLNK)
        return sx_err(SYSEXT_EUNSAFE, "%s: special file (mode 0%o): only files, directories "
                      "and symlinks may be unpacked", label, (unsigned)mode);
    if (slash && type != S_IFDIR)
        return sx_err(SYSEXT_EUNSAFE, "%s: name ends in '/' but the entry is a %s", label,
                      type_name(type));
    if (type == S_IFDIR && zs.size != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: directory with %llu bytes of data", label,
                      (unsigned long long)zs.size);
    size_t nlen = slash ? len - 1 : len;
    int r = sx_zip_check_name(zs.name, nlen, label);
    if (r < 0)
        return r;

    if (SX_ADD_OVERFLOW(*total, zs.size, total) || *total > u->lim.max_total_bytes)
        return sx_err(SYSEXT_ELIMIT, "%s: the archive's total uncompressed size exceeds the "
                      "limit of %llu bytes", label, (unsigned long long)u->lim.max_total_bytes);
    uint64_t cap;
    if (SX_MUL_OVERFLOW(zs.comp_size, (uint64_t)u->lim.max_ratio, &cap))
        cap = UINT64_MAX;
    if (zs.size >= SYSEXT_UNPACK_RATIO_FLOOR && zs.size > cap)
        return sx_err(SYSEXT_ELIMIT, "%s: compression ratio %llu:1 exceeds the limit of %u:1 "
                      "(%llu bytes from %llu)", label,
                      (unsigned long long)(zs.size / (zs.comp_size ? zs.comp_size : 1)),
                      u->lim.max_ratio, (unsigned long long)zs.size,
                      (unsigned long long)zs.comp_size);

    ent *e = &u->v[u->n];
    memset(e, 0, sizeof(*e));
    e->name = strndup(zs.name, nlen);
    if (!e->name)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    u->n++;
    e->index = i;
    e->type = type;
    e->size = zs.size;
    e->comp_size = zs.comp_size;
    if (mode & 0777)
        e->perm = mode & 0777;
    else
        e->perm = type == S_IFREG ? 0644 : 0755;
    if (type == S_IFDIR)
        e->perm |= 0500; /* the owner can always enter and list what we made */
    if (type == S_IFLNK) {
        if (zs.size > SX_ZIP_NAME_MAX)
            return sx_err(SYSEXT_EUNSAFE, "%s: symlink target longer than %u bytes", label,
                          SX_ZIP_NAME_MAX);
        e->target = calloc(1, (size_t)zs.size + 1);
        if (!e->target)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        r = read_entry(u, e, label, -1, e->target, (size_t)zs.size);
        if (r < 0)
            return r;
        r = sx_zip_check_symlink(e->name, e->target, (size_t)zs.size);
        if (r < 0)
            return sx_err_prefix(r, "%s", u->what);
    }
    return 0;
}

static int check_all(unpack *u)
{
    zip_int64_t n = zip_get_num_entries(u->za, 0);
    if (n < 0)
        return sx_err(SYSEXT_EFORMAT, "%s: %s", u->what, zip_strerror(u->za));
    if (n == 0)
        return sx_err(SYSEXT_EFORMAT, "%s: the archive has no entries", u->what);
    if ((uint64_t)n > u->lim.max_entries)
        return sx_err(SYSEXT_ELIMIT, "%s: %lld entries exceed the limit of %llu", u->what,
                      (long long)n, (unsigned long long)u->lim.max_entries);
    u->v = calloc((size_t)n, sizeof(*u->v));
    if (!u->v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    uint64_t total = 0;
    for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
        int r = scan_entry(u, i, &total);
        if (r < 0)
            return r;
    }
    uint64_t cap;
    if (SX_MUL_OVERFLOW(u->archive_size, (uint64_t)u->lim.max_ratio, &cap))
        cap = UINT64_MAX;
    if (total >= SYSEXT_UNPACK_RATIO_FLOOR && total > cap)
        return sx_err(SYSEXT_ELIMIT, "%s: compression ratio of the whole archive exceeds the "
                      "limit of %u:1 (%llu bytes from %llu)", u->what, u->lim.max_ratio,
                      (unsigned long long)total, (unsigned long long)u->archive_size);

    char label[LABEL_MAX];
    /* Duplicates, a file/dir/symlink clash, and names equal but for ASCII case. */
    qsort(u->v, u->n, sizeof(*u->v), by_folded_name);
    for (size_t i = 1; i < u->n; i++) {
        const ent *a = &u->v[i - 1], *b = &u->v[i];
        if (strcasecmp(a->name, b->name))
            continue;
        entry_label(label, sizeof(label), u->what, b->name);
        if (!strcmp(a->name, b->name)) {
            if (a->type == b->type)
                return sx_err(SYSEXT_EUNSAFE, "%s: duplicate name", label);
            return sx_err(SYSEXT_EUNSAFE, "%s: duplicate name (both a %s and a %s)", label,
                          type_name(a->type), type_name(b->type));
        }
        return sx_err(SYSEXT_EUNSAFE, "%s: differs only in case from '%s'", label, a->name);
    }
    /* Nothing below a symlink or a file. */
    qsort(u->v, u->n, sizeof(*u->v), by_name);
    for (size_t i = 0; i < u->n; i++) {
        const char *nm = u->v[i].name;
        for (const char *s = strchr(nm, '/'); s; s = strchr(s + 1, '/')) {
            const ent *p = find_prefix(u, nm, (size_t)(s - nm));
            if (p && p->type != S_IFDIR) {
                entry_label(label, sizeof(label), u->what, nm);
                return sx_err(SYSEXT_EUNSAFE, "%s: lies below '%s', which is a %s", label,
                              p->name, type_name(p->type));
            }
        }
    }
    return 0;
}

/* ---- phase 2: extract into a private directory ---- */

/* The directories leading to the previous entry, as a stack of open fds: entries come sorted,
 * so the next one shares most of its path and only the components that differ are opened.
 * That keeps a deep archive linear instead of walking every path from the root. */
#define DIRCACHE_MAX (SX_ZIP_NAME_MAX / 2 + 1)
typedef struct dircache {
    int root;
    size_t depth;                     /* components open */
    char path[SX_ZIP_NAME_MAX + 1];   /* their path, '/'-separated */
    size_t ends[DIRCACHE_MAX];        /* ends[i]: length of the path of the first i+1 */
    int fds[DIRCACHE_MAX];            /* fds[i]: that directory */
} dircache;

static void dircache_init(dircache *dc, int root)
{
    dc->root = root;
    dc->depth = 0;
}

static void dircache_pop(dircache *dc, size_t keep)
{
    while (dc->depth > keep)
        close(dc->fds[--dc->depth]);
}

/* An fd for the parent directory of `name` (relative to the root), creating missing
 * directories; every component is opened with O_NOFOLLOW. Borrowed from the cache. */
static int open_parent(dircache *dc, const char *name, const char *label, int *out)
{
    const char *slash = strrchr(name, '/');
    size_t plen = slash ? (size_t)(slash - name) : 0;
    if (plen > SX_ZIP_NAME_MAX)
        return sx_err(SYSEXT_EUNSAFE, "%s: name too long", label);
    /* Keep the cached components that are a prefix of the new parent. */
    size_t keep = 0;
    while (keep < dc->depth && dc->ends[keep] <= plen &&
           (dc->ends[keep] == plen || name[dc->ends[keep]] == '/') &&
           !memcmp(dc->path, name, dc->ends[keep]))
        keep++;
    dircache_pop(dc, keep);
    size_t at = keep ? dc->ends[keep - 1] + 1 : 0;
    while (at < plen + (plen > 0)) {
        const char *c = name + at;
        const char *e = memchr(c, '/', plen - at);
        size_t n = e ? (size_t)(e - c) : plen - at;
        char comp[SX_ZIP_COMPONENT_MAX + 1];
        if (n == 0 || n > SX_ZIP_COMPONENT_MAX || dc->depth >= DIRCACHE_MAX)
            return sx_err(SYSEXT_EUNSAFE, "%s: bad path", label);
        memcpy(comp, c, n);
        comp[n] = '\0';
        int fd = dc->depth ? dc->fds[dc->depth - 1] : dc->root;
        if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST)
            return sx_err_errno(sx_errno_code(errno), errno, "%s: mkdir", label);
        int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0)
            return sx_err_errno(errno == ELOOP || errno == ENOTDIR ? SYSEXT_EUNSAFE
                                                                   : sx_errno_code(errno),
                                errno, "%s: opening its directory", label);
        if (at)
            dc->path[at - 1] = '/';
        memcpy(dc->path + at, c, n);
        dc->ends[dc->depth] = at + n;
        dc->fds[dc->depth++] = nfd;
        at += n + 1;
    }
    *out = dc->depth ? dc->fds[dc->depth - 1] : dc->root;
    return 0;
}

static int extract_one(unpack *u, dircache *dc, const ent *e)
{
    char label[LABEL_MAX];
    entry_label(label, sizeof(label), u->what, e->name);
    int pfd;
    int r = open_parent(dc, e->name, label, &pfd);
    if (r < 0)
        return r;
    const char *leaf = strrchr(e->name, '/');
    leaf = leaf ? leaf + 1 : e->name;
    if (e->type == S_IFDIR) {
        if (mkdirat(pfd, leaf, 0700) < 0) {
            struct stat sb;
            if (errno != EEXIST || fstatat(pfd, leaf, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
                !S_ISDIR(sb.st_mode))
                return sx_err_errno(sx_errno_code(errno), errno, "%s: mkdir", label);
        }
        return 0;
    }
    if (e->type == S_IFLNK) {
        if (symlinkat(e->target, pfd, leaf) < 0)
            return sx_err_errno(sx_errno_code(errno), errno, "%s: symlink", label);
        return 0;
    }
    int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s: create", label);
    r = read_entry(u, e, label, fd, NULL, 0);
    if (r == 0 && fchmod(fd, e->perm) < 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "%s: chmod", label);
    if (close(fd) < 0 && r == 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "%s: close", label);
    return r;
}

/* Directory modes last, deepest first, so a read-only directory does not block its children.
 * `relax` instead gives every directory owner rwx again, so a failed unpack can be removed; it
 * goes on past errors (a directory may not have been made yet). */
static int set_dir_modes(unpack *u, int root, bool relax)
{
    _sx_cleanup_free_ dircache *dc = malloc(sizeof(*dc));
    if (!dc)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    dircache_init(dc, root);
    int r = 0;
    for (size_t i = u->n; (r == 0 || relax) && i-- > 0;) {
        const ent *e = &u->v[i];
        if (e->type != S_IFDIR)
            continue;
        char label[LABEL_MAX];
        entry_label(label, sizeof(label), u->what, e->name);
        int pfd;
        r = open_parent(dc, e->name, label, &pfd);
        if (r == 0) {
            const char *leaf = strrchr(e->name, '/');
            leaf = leaf ? leaf + 1 : e->name;
            int fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || fchmod(fd, relax ? 0700 : e->perm) < 0)
                r = sx_err_errno(SYSEXT_EIO, errno, "%s: chmod", label);
            if (fd >= 0)
                close(fd);
        }
    }
    dircache_pop(dc, 0);
    return r;
}

static int top_items(const unpack *u, sx_zip_items *items)
{
    items->v = calloc(u->n, sizeof(char *));
    if (!items->v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (size_t i = 0; i < u->n; i++) {
        const char *nm = u->v[i].name;
        const char *s = strchr(nm, '/');
        size_t n = s ? (size_t)(s - nm) : strlen(nm);
        /* Sorted by name, so the entries of one item are adjacent. */
        if (items->n && strlen(items->v[items->n - 1]) == n &&
            !strncmp(items->v[items->n - 1], nm, n))
            continue;
        if (!(items->v[items->n] = strndup(nm, n)))
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        items->n++;
    }
    return 0;
}

/* Rename every top-level item from the temp dir into `dir`, all or none. */
static int move_items(const sx_zip_items *items, int tmpfd, const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", dir);
    int r = 0;
    size_t moved = 0;
    struct stat sb;
    for (size_t i = 0; i < items->n && r == 0; i++)
        if (fstatat(dfd, items->v[i], &sb, AT_SYMLINK_NOFOLLOW) == 0)
            r = sx_err(SYSEXT_EEXISTS, "%s/%s already exists", dir, items->v[i]);
    for (; r == 0 && moved < items->n; moved++) {
        const char *nm = items->v[moved];
        if (renameat2(tmpfd, nm, dfd, nm, RENAME_NOREPLACE) == 0)
            continue;
        if (errno == EINVAL || errno == ENOSYS) {
            /* The file system has no RENAME_NOREPLACE: we checked above. */
            if (fstatat(dfd, nm, &sb, AT_SYMLINK_NOFOLLOW) == 0)
                errno = EEXIST;
            else if (renameat(tmpfd, nm, dfd, nm) == 0)
                continue;
        }
        r = errno == EEXIST ? sx_err(SYSEXT_EEXISTS, "%s/%s already exists", dir, nm)
                            : sx_err_errno(sx_errno_code(errno), errno, "rename into %s/%s", dir, nm);
        break;
    }
    if (r < 0)
        while (moved-- > 0)
            (void)renameat(dfd, items->v[moved], tmpfd, items->v[moved]);
    close(dfd);
    return r;
}

static int extract_all(unpack *u, const char *dir, sx_zip_items *items)
{
    _sx_cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s/.sysext-unpack.XXXXXX", dir) < 0)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (!mkdtemp(tmp))
        return sx_err_errno(sx_errno_code(errno), errno, "%s: cannot create a temporary directory",
                            dir);
    int root = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0) {
        int en = errno;
        rmdir(tmp);
        return sx_err_errno(sx_errno_code(en), en, "%s", tmp);
    }
    dircache *dc = malloc(sizeof(*dc));
    int r = dc ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
    if (dc)
        dircache_init(dc, root);
    for (size_t i = 0; i < u->n && r == 0; i++)
        r = extract_one(u, dc, &u->v[i]);
    if (dc)
        dircache_pop(dc, 0);
    free(dc);
    if (r == 0)
        r = set_dir_modes(u, root, false);
    sx_zip_items it = {0};
    if (r == 0)
        r = top_items(u, &it);
    if (r == 0)
        r = move_items(&it, root, dir);
    if (r < 0) {
        /* Keep the message across the cleanup; give every directory owner rwx back first,
         * or a read-only one would stop the removal. */
        char *msg = strdup(sx_errmsg());
        (void)set_dir_modes(u, root, true);
        close(root);
        sx_rm_rf(tmp);
        sx_err(r, "%s", msg ? msg : "out of memory");
        free(msg);
        sx_zip_items_free(&it);
        return r;
    }
    close(root);
    sx_rm_rf(tmp);
    if (items)
        *items = it;
    else
        sx_zip_items_free(&it);
    return 0;
}

/* Check, then extract. Frees what the checks allocated in *up. */
static int unpack_archive(unpack *up, const char *dir, sx_zip_items *items)
{
    unpack u = *up;
    int r = 0;
    bool created = false;
    if (!(u.chunk = malloc(COPY_CHUNK)))
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
    if (r == 0)
        r = check_all(&u);
    if (r == 0 && u.dup_at_open)
        r = sx_err(SYSEXT_EUNSAFE, "%s: duplicate entry names", u.what);
    if (r == 0) {
        struct stat sb;
        if (stat(dir, &sb) < 0 && errno == ENOENT) {
            if (mkdir(dir, 0777) < 0)
                r = sx_err_errno(sx_errno_code(errno), errno, "mkdir %s", dir);
            else
                created = true;
        } else if (!sx_is_dir(dir)) {
            r = sx_err(SYSEXT_EINVAL, "%s: not a directory", dir);
        }
    }
    if (r == 0 && u.chunk)
        r = extract_all(&u, dir, items);
    if (r < 0 && created)
        rmdir(dir);
    for (size_t i = 0; i < u.n; i++) {
        free(u.v[i].name);
        free(u.v[i].target);
    }
    free(u.v);
    free(u.chunk);
    return r;
}

/* ---- our own look at the central directory ----
 *
 * libzip hands out entry names as C strings, so a name with a NUL byte inside would silently
 * be changed (libzip 1.7 turns it into a space). Walk the central directory ourselves (bounded
 * reader) and note each name's stored length and any NUL in it; scan_entry() refuses those and
 * any name libzip reports differently. */

typedef struct rawsrc {
    const uint8_t *mem; /* the archive in memory, or NULL to pread() fd */
    int fd;
    uint64_t size;
} rawsrc;

#define CDIR_MAX (256u << 20)

static int raw_read(const rawsrc *s, const char *what, uint64_t off, size_t n, uint8_t *out)
{
    uint64_t end;
    if (SX_ADD_OVERFLOW(off, (uint64_t)n, &end) || end > s->size)
        return sx_err(SYSEXT_EFORMAT, "%s: %zu bytes at offset %llu lie past the end (%llu bytes)",
                      what, n, (unsigned long long)off, (unsigned long long)s->size);
    if (s->mem) {
        if (n)
            memcpy(out, s->mem + off, n);
        return 0;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(s->fd, out + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? sx_err_errno(SYSEXT_EIO, errno, "%s", what)
                         : sx_err(SYSEXT_EFORMAT, "%s: shorter than expected", what);
        got += (size_t)k;
    }
    return 0;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Fill u->names[i] from the stored central directory names. */
static int walk_cdir(unpack *u, const rawsrc *s)
{
    size_t cap = 22 + 65535;
    size_t tl = s->size < cap ? (size_t)s->size : cap;
    uint64_t tail_off = s->size - tl;
    _sx_cleanup_free_ uint8_t *tail = malloc(tl ? tl : 1);
    if (!tail)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int r = raw_read(s, u->what, tail_off, tl, tail);
    if (r < 0)
        return r;
    size_t at = SIZE_MAX;
    for (size_t i = tl >= 22 ? tl - 22 + 1 : 0; i-- > 0;)
        if (le32(tail + i) == 0x06054b50u && i + 22 + le16(tail + i + 20) <= tl) {
            at = i;
            break;
        }
    if (at == SIZE_MAX)
        return sx_err(SYSEXT_EFORMAT, "%s: no end of central directory record", u->what);
    const uint8_t *eocd = tail + at;
    uint64_t n = le16(eocd + 10), cd_size = le32(eocd + 12), cd_off = le32(eocd + 16);
    if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        uint8_t loc[20], z64[56];
        uint64_t eocd_abs = tail_off + at;
        if (eocd_abs < 20 || (r = raw_read(s, u->what, eocd_abs - 20, 20, loc)) < 0 ||
            le32(loc) != 0x07064b50u)
            return r < 0 ? r : sx_err(SYSEXT_EFORMAT, "%s: no zip64 end of central directory "
                                      "locator", u->what);
        sx_reader rl;
        uint64_t z64_off = 0;
        sx_reader_init(&rl, loc + 8, 8, "zip64 locator");
        sx_rd_u64le(&rl, &z64_off);
        if ((r = raw_read(s, u->what, z64_off, sizeof(z64), z64)) < 0)
            return r;
        if (le32(z64) != 0x06064b50u)
            return sx_err(SYSEXT_EFORMAT, "%s: no zip64 end of central directory at offset %llu",
                          u->what, (unsigned long long)z64_off);
        sx_reader rz;
        sx_reader_init(&rz, z64 + 32, 24, "zip64 end of central directory");
        sx_rd_u64le(&rz, &n);
        sx_rd_u64le(&rz, &cd_size);
        sx_rd_u64le(&rz, &cd_off);
    }
    if (n > u->lim.max_entries)
        return sx_err(SYSEXT_ELIMIT, "%s: %llu entries exceed the limit of %llu", u->what,
                      (unsigned long long)n, (unsigned long long)u->lim.max_entries);
    if (cd_size > CDIR_MAX)
        return sx_err(SYSEXT_ELIMIT, "%s: central directory of %llu bytes is over the limit of %u",
                      u->what, (unsigned long long)cd_size, CDIR_MAX);
    _sx_cleanup_free_ uint8_t *cd = malloc(cd_size ? (size_t)cd_size : 1);
    u->names = calloc(n ? (size_t)n : 1, sizeof(*u->names));
    if (!cd || !u->names)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    r = raw_read(s, u->what, cd_off, (size_t)cd_size, cd);
    sx_reader rd;
    sx_reader_init(&rd, cd, (size_t)cd_size, "central directory");
    for (uint64_t i = 0; r == 0 && i < n; i++) {
        uint32_t sig;
        uint16_t nl, xl, cl;
        const uint8_t *name;
        if ((r = sx_rd_u32le(&rd, &sig)) < 0)
            break;
        if (sig != 0x02014b50u) {
            r = sx_err(SYSEXT_EFORMAT, "%s: central directory entry %llu at offset %llu: bad "
                       "signature", u->what, (unsigned long long)i,
                       (unsigned long long)(cd_off + sx_reader_offset(&rd) - 4));
            break;
        }
        if ((r = sx_rd_skip(&rd, 24)) < 0 || (r = sx_rd_u16le(&rd, &nl)) < 0 ||
            (r = sx_rd_u16le(&rd, &xl)) < 0 || (r = sx_rd_u16le(&rd, &cl)) < 0 ||
            (r = sx_rd_skip(&rd, 12)) < 0 || (r = sx_rd_bytes(&rd, nl, &name)) < 0 ||
            (r = sx_rd_skip(&rd, (size_t)xl + cl)) < 0) {
            r = sx_err_prefix(r, "%s", u->what);
            break;
        }
        u->names[i].len = nl;
        u->names[i].nul = nl && memchr(name, 0, nl) != NULL;
    }
    u->n_names = r == 0 ? n : 0;
    return r;
}

/* ---- entry points ---- */

static int open_error(const char *what, zip_error_t *ze)
{
    int code = zip_error_code_zip(ze);
    int r = code == ZIP_ER_MEMORY ? SYSEXT_ENOMEM
            : code == ZIP_ER_READ || code == ZIP_ER_SEEK ? SYSEXT_EIO
                                                          : SYSEXT_EFORMAT;
    return sx_err(r, "%s: not a valid zip archive: %s", what, zip_error_strerror(ze));
}

/* Open `src` (which this consumes) and unpack it; `raw` reads the same bytes. */
static int unpack_source(zip_source_t *src, const rawsrc *raw, const char *what, const char *dir,
                         const sysext_unpack_limits *limits, sx_zip_items *items)
{
    unpack u = {.what = what, .archive_size = raw->size};
    sx_zip_limits_resolve(limits, &u.lim);
    zip_error_t ze;
    zip_error_init(&ze);
    /* Keep our reference: a failed open leaves the source to us, and we may try twice. */
    zip_source_keep(src);
    u.za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!u.za && zip_error_code_zip(&ze) == ZIP_ER_EXISTS) {
        /* libzip refuses duplicate names under ZIP_CHECKCONS without saying which: open it
         * leniently so the checks can name the entry, and refuse it whatever they say. */
        zip_error_fini(&ze);
        zip_error_init(&ze);
        u.dup_at_open = true;
        u.za = zip_open_from_source(src, ZIP_RDONLY, &ze);
    }
    int r = 0;
    if (!u.za) {
        r = open_error(what, &ze);
        zip_source_free(src); /* the reference kept for libzip, which did not take it */
    }
    zip_error_fini(&ze);
    if (r == 0)
        r = walk_cdir(&u, raw);
    if (r == 0)
        r = unpack_archive(&u, dir, items);
    if (u.za)
        zip_discard(u.za);
    zip_source_free(src);
    free(u.names);
    return r;
}

int sx_zip_unpack_mem(const void *data, size_t len, const char *what, const char *dir,
                      const sysext_unpack_limits *limits, sx_zip_items *items)
{
    SX_ASSERT_ARG(data || len == 0);
    SX_ASSERT_ARG(dir);
    if (!what)
        what = "archive";
    const uint8_t *bytes = len ? data : (const uint8_t *)"";
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(bytes, len, 0, &ze);
    if (!src) {
        int r = sx_err(SYSEXT_ENOMEM, "%s: %s", what, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return r;
    }
    zip_error_fini(&ze);
    rawsrc raw = {.mem = bytes, .fd = -1, .size = len};
    return unpack_source(src, &raw, what, dir, limits, items);
}

int sx_zip_unpack_file(const char *zip_path, const char *dir, const sysext_unpack_limits *limits,
                       sx_zip_items *items)
{
    SX_ASSERT_ARG(zip_path);
    SX_ASSERT_ARG(dir);
    int fd = open(zip_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", zip_path);
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sx_err(SYSEXT_EFORMAT, "%s: not a regular file", zip_path);
    }
    /* libzip reads through its own FILE on a duplicate of our fd, so what it reads and what
     * walk_cdir() reads are the same file, whatever happens to the path meanwhile. */
    int fd2 = dup(fd);
    FILE *f = fd2 >= 0 ? fdopen(fd2, "rb") : NULL;
    if (!f) {
        if (fd2 >= 0)
            close(fd2);
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_filep_create(f, 0, -1, &ze);
    if (!src) {
        fclose(f);
        close(fd);
        int r = sx_err(SYSEXT_ENOMEM, "%s: %s", zip_path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return r;
    }
    zip_error_fini(&ze);
    rawsrc raw = {.mem = NULL, .fd = fd, .size = (uint64_t)sb.st_size};
    int r = unpack_source(src, &raw, zip_path, dir, limits, items);
    close(fd);
    return r;
}

int sysext_unpack(const char *zip_path, const char *dir, const sysext_unpack_limits *limits)
{
    return sx_zip_unpack_file(zip_path, dir, limits, NULL);
}
