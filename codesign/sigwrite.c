/* Writing a signature folder (see sigwrite.h). */
#include "util/common.h"
#include "codesign/sigwrite.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/fs.h"

/* Compared a chunk at a time, written a page at a time. */
#define CMP_CHUNK (64u * 1024)
#define PAGE 4096u

static int write_all_at(int fd, const uint8_t *p, size_t n, off_t off)
{
    while (n) {
        ssize_t k = pwrite(fd, p, n, off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

/* Make the spare open as `fd` (its size `old`) hold `data`. A re-sign changes a few entries of
 * a CodeResources of megabytes and nothing else, so most pages are already right: they are
 * compared (read from the page cache only, RWF_NOWAIT: a spare no longer cached is just
 * written over) and only the differing ones written. Returns 0 or -errno. */
static int write_over(int fd, const uint8_t *data, size_t len, uint64_t old)
{
    static _Thread_local uint8_t buf[CMP_CHUNK];
    bool compare = true;
    size_t off = 0;
    int e = 0;
    while (off < len && e == 0) {
        size_t n = len - off < CMP_CHUNK ? len - off : CMP_CHUNK;
        ssize_t k = -1;
        if (compare && off < old) {
            struct iovec iov = {buf, n};
            k = preadv2(fd, &iov, 1, (off_t)off, RWF_NOWAIT);
            if (k < 0)
                compare = false; /* not in the page cache (or no RWF_NOWAIT): write it all */
        }
        if (k == (ssize_t)n && memcmp(buf, data + off, n) == 0) {
            off += n;
            continue;
        }
        /* Pages of this chunk that were read and match stay; the rest is written. */
        size_t have = k > 0 ? (size_t)k : 0;
        for (size_t p = 0; p < n && e == 0; p += PAGE) {
            size_t m = n - p < PAGE ? n - p : PAGE;
            if (p + m <= have && memcmp(buf + p, data + off + p, m) == 0)
                continue;
            e = write_all_at(fd, data + off + p, m, (off_t)(off + p));
        }
        off += n;
    }
    if (e == 0 && ftruncate(fd, (off_t)len) < 0)
        e = -errno;
    return e;
}

/* A file of our own to write over, if `p` is one: a regular file with no other link. -1 when
 * not, after removing whatever is there; *size gets its size. */
static int open_spare(const char *p, uint64_t *size)
{
    struct stat st;
    int fd = open(p, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
        st.st_uid == geteuid()) {
        *size = (uint64_t)st.st_size;
        return fd;
    }
    if (fd >= 0)
        close(fd);
    (void)sx_rm_rf(p); /* whatever it is, a fresh file takes its place */
    return -1;
}

int sx_sigwrite_component(const char *dir, const char *name, const void *data, size_t len,
                          bool over)
{
    _sx_cleanup_free_ char *p = sx_path_join(dir, name);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    uint64_t old = 0;
    int fd = over ? open_spare(p, &old) : -1, e;
    if (fd >= 0) {
        e = write_over(fd, data, len, old);
    } else {
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "%s", p);
        e = write_all_at(fd, data, len, 0);
    }
    /* Start writeback now (block allocation included), so that the fsyncs after the last
     * component find the data on its way and one journal commit covers every file. */
    if (e == 0)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (close(fd) < 0 && e == 0)
        e = -errno;
    return e ? sx_err_errno(SYSEXT_EIO, -e, "%s", p) : 0;
}

int sx_sigwrite_sync(const char *dir, const char *name)
{
    _sx_cleanup_free_ char *p = sx_path_join(dir, name);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", p);
    int r = fsync(fd), e = errno;
    close(fd);
    return r < 0 ? sx_err_errno(SYSEXT_EIO, e, "fsync %s", p) : 0;
}

bool sx_sigwrite_recycle(const char *trash, const char *dir)
{
    /* Only a folder of our own that nobody else may write to: its files become a signature. */
    struct stat st;
    return lstat(trash, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH)) && rename(trash, dir) == 0;
}

int sx_sigwrite_prune(const char *dir, const char *const *keep, size_t nkeep)
{
    DIR *d = opendir(dir);
    if (!d)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", dir);
    int r = 0;
    for (struct dirent *e; r == 0 && (e = readdir(d));) {
        bool kept = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
        for (size_t i = 0; i < nkeep && !kept; i++)
            kept = !strcmp(e->d_name, keep[i]);
        if (kept)
            continue;
        _sx_cleanup_free_ char *p = sx_path_join(dir, e->d_name);
        r = p ? sx_rm_rf(p) : sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    closedir(d);
    return r;
}

int sx_sigwrite_swap(const char *fresh, const char *target, bool *had_old)
{
    *had_old = false;
    if (!sx_path_exists(target)) {
        if (rename(fresh, target) < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "rename to %s", target);
        return 0;
    }
    if (renameat2(AT_FDCWD, fresh, AT_FDCWD, target, RENAME_EXCHANGE) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "swap %s", target);
    *had_old = true;
    return 0;
}
