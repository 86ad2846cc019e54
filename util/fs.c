#include "util/common.h"
#include "util/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

char *sx_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n;
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[0] == '/') {
        b++;
        lb--;
    }
    if (SX_ADD_OVERFLOW(la, lb, &n) || SX_ADD_OVERFLOW(n, (size_t)2, &n))
        return NULL;
    char *p = malloc(n);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/' && lb)
        p[o++] = '/';
    memcpy(p + o, b, lb);
    p[o + lb] = '\0';
    return p;
}

char *sx_path_dirname(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return strdup(".");
    if (s == path)
        return strdup("/");
    return strndup(path, (size_t)(s - path));
}

const char *sx_path_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

bool sx_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

bool sx_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int sx_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return sx_err_errno(SYSEXT_EIO, e, "%s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sx_err(SYSEXT_EFORMAT, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return sx_err(SYSEXT_ELIMIT, "%s: %lld bytes is over the limit of %zu", path,
                      (long long)st.st_size, max);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    uint8_t *p = malloc(cap);
    if (!p) {
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 == cap) {
            /* Full: either the file ends here or it grew while we read it. */
            uint8_t probe;
            ssize_t k = read(fd, &probe, 1);
            if (k < 0 && errno == EINTR)
                continue;
            if (k == 0)
                break;
            if (k < 0 || n >= max) {
                int e = errno;
                free(p);
                close(fd);
                return k < 0 ? sx_err_errno(SYSEXT_EIO, e, "%s", path)
                             : sx_err(SYSEXT_ELIMIT, "%s: over the limit of %zu bytes", path, max);
            }
            size_t ncap = cap > max / 2 ? max + 1 : cap * 2;
            uint8_t *q = realloc(p, ncap);
            if (!q) {
                free(p);
                close(fd);
                return sx_err(SYSEXT_ENOMEM, "%s: out of memory", path);
            }
            p = q;
            cap = ncap;
            p[n++] = probe;
            continue;
        }
        ssize_t k = read(fd, p + n, cap - 1 - n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(p);
            close(fd);
            return sx_err_errno(SYSEXT_EIO, e, "%s", path);
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    p[n] = 0;
    *data = p;
    *len = n;
    return 0;
}

int sx_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", dir);
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r < 0 && e != EINVAL)
        return sx_err_errno(SYSEXT_EIO, e, "fsync %s", dir);
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int sx_write_cache_file(const char *path, const void *data, size_t len)
{
    char *dir = sx_path_dirname(path), *tmp = NULL;
    if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, sx_path_basename(path)) < 0) {
        free(dir);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    free(dir);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int rc = sx_err_errno(sx_errno_code(errno), errno, "%s", path);
        free(tmp);
        return rc;
    }
    const uint8_t *p = data;
    int e = 0;
    size_t off = 0;
    while (off < len && !e) {
        ssize_t k = write(fd, p + off, len - off);
        if (k < 0 && errno != EINTR)
            e = errno;
        else if (k > 0)
            off += (size_t)k;
    }
    if (close(fd) < 0 && !e)
        e = errno;
    /* Unlink first: a rename over an existing file makes ext4 (auto_da_alloc) start writing
     * the new data back at once, and the signer's own fsync a moment later would then wait
     * for megabytes of cache. A reader in between finds no cache, which only costs a full
     * rehash. */
    if (!e && unlink(path) < 0 && errno != ENOENT)
        e = errno;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e)
        unlink(tmp);
    free(tmp);
    return e ? sx_err_errno(SYSEXT_EIO, e, "%s", path) : 0;
}

int sx_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    _sx_cleanup_free_ char *dir = sx_path_dirname(path);
    _sx_cleanup_free_ char *tmp = NULL;
    if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, sx_path_basename(path)) < 0)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s: cannot create a temporary file",
                            dir);
    int r = write_all(fd, data, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return sx_err_errno(SYSEXT_EIO, -r, "%s", path);
    }
    return sx_fsync_dir(dir);
}

int sx_mkdir_p(const char *path, mode_t mode)
{
    _sx_cleanup_free_ char *p = strdup(path);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return sx_err_errno(sx_errno_code(errno), errno, "mkdir %s", p);
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return sx_err_errno(sx_errno_code(errno), errno, "mkdir %s", p);
    if (!sx_is_dir(p))
        return sx_err(SYSEXT_EEXISTS, "%s exists and is not a directory", p);
    return 0;
}

static int rm_at(int at, const char *name, const char *shown)
{
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : sx_err_errno(SYSEXT_EIO, errno, "%s", shown);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(at, name, 0) < 0 && errno != ENOENT)
            return sx_err_errno(SYSEXT_EIO, errno, "remove %s", shown);
        return 0;
    }
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", shown);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sx_err_errno(SYSEXT_EIO, errno, "%s", shown);
    }
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        r = rm_at(dirfd(d), e->d_name, shown);
    }
    closedir(d);
    if (r < 0)
        return r;
    if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return sx_err_errno(SYSEXT_EIO, errno, "remove %s", shown);
    return 0;
}

int sx_rm_rf(const char *path)
{
    return rm_at(AT_FDCWD, path, path);
}

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
    if (out < 0) {
        int e = errno;
        close(in);
        return sx_err_errno(sx_errno_code(e), e, "%s", dst);
    }
    uint8_t buf[65536];
    int r = 0;
    for (;;) {
        ssize_t k = read(in, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = sx_err_errno(SYSEXT_EIO, errno, "%s", src);
            break;
        }
        if (k == 0)
            break;
        if (write_all(out, buf, (size_t)k) < 0) {
            r = sx_err_errno(SYSEXT_EIO, errno, "%s", dst);
            break;
        }
    }
    /* umask may have narrowed the mode given to open(). */
    if (r == 0 && fchmod(out, mode & 07777) < 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "chmod %s", dst);
    close(in);
    if (close(out) < 0 && r == 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "%s", dst);
    return r;
}

int sx_copy_tree(const char *src, const char *dst)
{
    struct stat st;
    if (lstat(src, &st) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", src);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "readlink %s", src);
        target[n] = '\0';
        if (symlink(target, dst) < 0)
            return sx_err_errno(sx_errno_code(errno), errno, "symlink %s", dst);
        return 0;
    }
    if (S_ISREG(st.st_mode))
        return copy_file(src, dst, st.st_mode);
    if (!S_ISDIR(st.st_mode))
        return sx_err(SYSEXT_EUNSUPPORTED, "%s: not a file, directory or symlink", src);
    if (mkdir(dst, 0700) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "mkdir %s", dst);
    DIR *d = opendir(src);
    if (!d)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", src);
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *s = sx_path_join(src, e->d_name), *t = sx_path_join(dst, e->d_name);
        r = (s && t) ? sx_copy_tree(s, t) : sx_err(SYSEXT_ENOMEM, "out of memory");
        free(s);
        free(t);
    }
    closedir(d);
    if (r == 0 && chmod(dst, st.st_mode & 07777) < 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "chmod %s", dst);
    return r;
}

int sx_fsync_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    if (S_ISLNK(st.st_mode))
        return 0;
    if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
        int r = fsync(fd);
        int e = errno;
        close(fd);
        return r < 0 ? sx_err_errno(SYSEXT_EIO, e, "fsync %s", path) : 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *s = sx_path_join(path, e->d_name);
        r = s ? sx_fsync_tree(s) : sx_err(SYSEXT_ENOMEM, "out of memory");
        free(s);
    }
    closedir(d);
    return r < 0 ? r : sx_fsync_dir(path);
}

int sx_mkdtemp_beside(const char *near, char **out)
{
    _sx_cleanup_free_ char *dir = sx_path_dirname(near);
    char *tmp = NULL;
    if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, sx_path_basename(near)) < 0)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (!mkdtemp(tmp)) {
        int e = errno;
        free(tmp);
        return sx_err_errno(sx_errno_code(e), e, "%s: cannot create a temporary directory", dir);
    }
    *out = tmp;
    return 0;
}
