/* Pack a bundle folder into a deterministic zip, like `ditto -c -k --keepParent`. */
#include "util/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "bundle/zip.h"
#include "sysext/archive.h"
#include "util/fs.h"

/* Bundles deeper than this are refused rather than recursed into. */
#define PACK_MAX_DEPTH 128

typedef struct pack_entry {
    char *name;      /* entry name: "<Bundle>/..." with a trailing '/' for directories */
    char *path;      /* the file on disk */
    mode_t type;     /* S_IFDIR, S_IFREG or S_IFLNK */
    mode_t perm;     /* permission bits, 0777 */
    uint64_t size;   /* regular files: size at scan time */
    char *target;    /* symlinks: the target */
    size_t target_len;
    /* regular files: the state of the read source libzip pulls from at zip_close() */
    int fd;
    uint64_t pos;
    zip_error_t zerr;
    struct pack_state *st;
} pack_entry;

typedef struct pack_state {
    pack_entry *v;
    size_t n, cap;
    int rc; /* the first error a file source hit (its message is the thread's message) */
} pack_state;

static void pack_state_free(pack_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->v[i].name);
        free(st->v[i].path);
        free(st->v[i].target);
        if (st->v[i].fd >= 0)
            close(st->v[i].fd);
        zip_error_fini(&st->v[i].zerr);
    }
    free(st->v);
}

static int pack_add(pack_state *st, char *name, char *path, const struct stat *sb)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        pack_entry *v;
        if (SX_MUL_OVERFLOW(cap, sizeof(*v), &(size_t){0}) || !(v = realloc(st->v, cap * sizeof(*v)))) {
            free(name);
            free(path);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        st->v = v;
        st->cap = cap;
    }
    pack_entry *e = &st->v[st->n++];
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->path = path;
    e->type = sb->st_mode & S_IFMT;
    e->perm = sb->st_mode & 0777;
    e->size = S_ISREG(sb->st_mode) ? (uint64_t)sb->st_size : 0;
    e->fd = -1;
    e->st = st;
    zip_error_init(&e->zerr);
    return 0;
}

/* Add `path` (entry name `rel`, without a trailing '/') and, for a directory, its contents. */
static int pack_walk(pack_state *st, const char *path, const char *rel, size_t rel_len, int depth)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    if (depth > PACK_MAX_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "%s: more than %d levels of directories", path, PACK_MAX_DEPTH);
    int r = sx_zip_check_name(rel, rel_len, path);
    if (r < 0)
        return r;

    if (S_ISLNK(sb.st_mode)) {
        char target[SX_ZIP_NAME_MAX + 1];
        ssize_t k = readlink(path, target, sizeof(target));
        if (k < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "readlink %s", path);
        if ((size_t)k > SX_ZIP_NAME_MAX)
            return sx_err(SYSEXT_EUNSAFE, "%s: symlink target longer than %u bytes", path,
                          SX_ZIP_NAME_MAX);
        r = sx_zip_check_symlink(rel, target, (size_t)k);
        if (r < 0)
            return sx_err_prefix(r, "%s", path);
        char *name = strdup(rel), *p = strdup(path), *t = malloc((size_t)k + 1);
        if (!name || !p || !t) {
            free(name);
            free(p);
            free(t);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        memcpy(t, target, (size_t)k);
        t[k] = '\0';
        r = pack_add(st, name, p, &sb);
        if (r < 0) {
            free(t);
            return r;
        }
        st->v[st->n - 1].target = t;
        st->v[st->n - 1].target_len = (size_t)k;
        return 0;
    }
    if (S_ISREG(sb.st_mode)) {
        char *name = strdup(rel), *p = strdup(path);
        if (!name || !p) {
            free(name);
            free(p);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        return pack_add(st, name, p, &sb);
    }
    if (!S_ISDIR(sb.st_mode))
        return sx_err(SYSEXT_EUNSUPPORTED, "%s: not a file, directory or symlink", path);

    char *name = NULL, *p = strdup(path);
    if (!p || asprintf(&name, "%s/", rel) < 0) {
        free(p);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    r = pack_add(st, name, p, &sb);
    if (r < 0)
        return r;

    DIR *d = opendir(path);
    if (!d)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    struct dirent *de;
    errno = 0;
    while (r == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        _sx_cleanup_free_ char *child = sx_path_join(path, de->d_name);
        _sx_cleanup_free_ char *crel = NULL;
        if (!child || asprintf(&crel, "%s/%s", rel, de->d_name) < 0) {
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        r = pack_walk(st, child, crel, strlen(crel), depth + 1);
        errno = 0;
    }
    if (r == 0 && errno != 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "readdir %s", path);
    closedir(d);
    return r;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const pack_entry *)a)->name, ((const pack_entry *)b)->name);
}

/* libzip pulls each file through this at zip_close(): opened then (so only one file is open at
 * a time), never through a symlink, and it must still be the size we scanned. */
static zip_int64_t file_source(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
    pack_entry *e = ud;
    switch (cmd) {
    case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE,
                                              ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
                                              -1);
    case ZIP_SOURCE_OPEN: {
        e->fd = open(e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat sb;
        if (e->fd < 0 || fstat(e->fd, &sb) < 0) {
            int en = errno;
            if (!e->st->rc)
                e->st->rc = sx_err_errno(SYSEXT_EIO, en, "%s", e->path);
            zip_error_set(&e->zerr, ZIP_ER_OPEN, en);
            return -1;
        }
        if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e->size) {
            if (!e->st->rc)
                e->st->rc = sx_err(SYSEXT_EIO, "%s: changed while packing", e->path);
            zip_error_set(&e->zerr, ZIP_ER_CHANGED, 0);
            return -1;
        }
        e->pos = 0;
        return 0;
    }
    case ZIP_SOURCE_READ: {
        uint64_t want = e->size - e->pos;
        if (want > len)
            want = len;
        if (want > (uint64_t)SSIZE_MAX)
            want = SSIZE_MAX;
        ssize_t k;
        do {
            k = want ? read(e->fd, data, (size_t)want) : 0;
        } while (k < 0 && errno == EINTR);
        if (k < 0) {
            int en = errno;
            if (!e->st->rc)
                e->st->rc = sx_err_errno(SYSEXT_EIO, en, "%s", e->path);
            zip_error_set(&e->zerr, ZIP_ER_READ, en);
            return -1;
        }
        if (k == 0 && e->pos != e->size) {
            if (!e->st->rc)
                e->st->rc = sx_err(SYSEXT_EIO, "%s: shrank while packing", e->path);
            zip_error_set(&e->zerr, ZIP_ER_CHANGED, 0);
            return -1;
        }
        e->pos += (uint64_t)k;
        return k;
    }
    case ZIP_SOURCE_CLOSE:
        if (e->fd >= 0)
            close(e->fd);
        e->fd = -1;
        return 0;
    case ZIP_SOURCE_STAT: {
        zip_stat_t *zs = data;
        if (len < sizeof(*zs))
            return -1;
        zip_stat_init(zs);
        zs->valid = ZIP_STAT_SIZE;
        zs->size = e->size;
        return (zip_int64_t)sizeof(*zs);
    }
    case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&e->zerr, data, len);
    case ZIP_SOURCE_FREE:
        return 0;
    default:
        zip_error_set(&e->zerr, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
}

/* The time_t libzip turns into the DOS fields 1980-01-01 00:00:00. libzip converts with
 * localtime(), so ask mktime() for local midnight rather than using a fixed UTC instant:
 * the stored bytes are then the same in every time zone. */
static time_t dos_epoch(void)
{
    struct tm tm = {.tm_year = 80, .tm_mon = 0, .tm_mday = 1, .tm_isdst = -1};
    return mktime(&tm);
}

static int add_entries(zip_t *za, pack_state *st, unsigned flags, const char *zip_path)
{
    time_t mtime = dos_epoch();
    for (size_t i = 0; i < st->n; i++) {
        pack_entry *e = &st->v[i];
        zip_int64_t idx;
        uint32_t attr = ((uint32_t)(e->type | e->perm)) << 16;
        if (e->type == S_IFDIR) {
            idx = zip_dir_add(za, e->name, ZIP_FL_ENC_UTF_8);
            attr |= 0x10; /* MS-DOS directory bit, as ditto and Info-ZIP set it */
        } else {
            zip_source_t *src = e->type == S_IFLNK
                                    ? zip_source_buffer(za, e->target, e->target_len, 0)
                                    : zip_source_function(za, file_source, e);
            if (!src)
                return sx_err(SYSEXT_ENOMEM, "%s: %s", e->name, zip_strerror(za));
            idx = zip_file_add(za, e->name, src, ZIP_FL_ENC_UTF_8);
            if (idx < 0)
                zip_source_free(src);
        }
        if (idx < 0)
            return sx_err(SYSEXT_EIO, "%s: adding '%s': %s", zip_path, e->name, zip_strerror(za));
        zip_uint64_t u = (zip_uint64_t)idx;
        bool deflate = e->type == S_IFREG && !(flags & SYSEXT_PACK_STORE);
        if (zip_set_file_compression(za, u, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                     deflate ? SX_ZIP_DEFLATE_LEVEL : 0) < 0 ||
            zip_file_set_external_attributes(za, u, 0, ZIP_OPSYS_UNIX, attr) < 0 ||
            zip_file_set_mtime(za, u, mtime, 0) < 0)
            return sx_err(SYSEXT_EIO, "%s: '%s': %s", zip_path, e->name, zip_strerror(za));
    }
    return 0;
}

/* The bundle's own name: the last component of its path, or of its real path for "." etc. */
static int bundle_name(const char *bundle_path, char **out)
{
    _sx_cleanup_free_ char *p = strdup(bundle_path);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    const char *base = sx_path_basename(p);
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
        _sx_cleanup_free_ char *real = realpath(bundle_path, NULL);
        if (!real)
            return sx_err_errno(sx_errno_code(errno), errno, "%s", bundle_path);
        base = sx_path_basename(real);
        if (!*base)
            return sx_err(SYSEXT_EINVAL, "%s: a bundle cannot be the root directory", bundle_path);
        *out = strdup(base);
    } else {
        *out = strdup(base);
    }
    return *out ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

int sysext_pack(const char *bundle_path, const char *zip_path, unsigned flags)
{
    SX_ASSERT_ARG(bundle_path);
    SX_ASSERT_ARG(zip_path);
    if (flags & ~(unsigned)SYSEXT_PACK_STORE)
        return sx_err(SYSEXT_EINVAL, "sysext_pack: unknown flags 0x%x", flags);
    struct stat sb;
    if (lstat(bundle_path, &sb) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", bundle_path);
    if (!S_ISDIR(sb.st_mode))
        return sx_err(SYSEXT_EINVAL, "%s: not a directory (a bundle is a folder)", bundle_path);

    _sx_cleanup_free_ char *name = NULL;
    _sx_cleanup_free_ char *dir = NULL;
    _sx_cleanup_free_ char *tmp = NULL;
    int r = bundle_name(bundle_path, &name);
    if (r < 0)
        return r;
    pack_state st = {0};
    r = pack_walk(&st, bundle_path, name, strlen(name), 0);
    if (r < 0)
        goto out;
    qsort(st.v, st.n, sizeof(*st.v), entry_cmp);

    dir = sx_path_dirname(zip_path);
    if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, sx_path_basename(zip_path)) < 0) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = sx_err_errno(sx_errno_code(errno), errno, "%s: cannot create a temporary file", dir);
        free(tmp);
        tmp = NULL;
        goto out;
    }
    close(fd);

    int zerr = 0;
    zip_t *za = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        r = sx_err(SYSEXT_EIO, "%s: %s", tmp, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        goto out_unlink;
    }
    r = add_entries(za, &st, flags, zip_path);
    if (r < 0) {
        zip_discard(za);
        goto out_unlink;
    }
    if (zip_close(za) < 0) {
        r = st.rc ? st.rc : sx_err(SYSEXT_EIO, "%s: %s", zip_path, zip_strerror(za));
        zip_discard(za);
        goto out_unlink;
    }
    fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
        r = sx_err_errno(SYSEXT_EIO, errno, "%s", tmp);
        if (fd >= 0)
            close(fd);
        goto out_unlink;
    }
    close(fd);
    if (rename(tmp, zip_path) < 0) {
        r = sx_err_errno(sx_errno_code(errno), errno, "%s", zip_path);
        goto out_unlink;
    }
    r = sx_fsync_dir(dir);
    goto out;

out_unlink:
    unlink(tmp);
out:
    pack_state_free(&st);
    return r;
}
