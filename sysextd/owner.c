#include "util/common.h"

#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/owner.h"
#include "util/fs.h"

typedef struct watched_app {
    char *path;
    char *dir;
    const char *name; /* into path */
    int wd;
    int64_t deadline; /* monotonic ms, 0 when no grace period runs */
} watched_app;

struct sxd_owner {
    int fd;
    int64_t grace_ms;
    watched_app *v;
    size_t n, cap;
};

int64_t sxd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sxd_owner_open(double grace_seconds, sxd_owner **out)
{
    sxd_owner *o = calloc(1, sizeof(*o));
    if (!o)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    o->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (o->fd < 0) {
        int rc = sx_err_errno(SYSEXT_EIO, errno, "sysextd: inotify_init1");
        free(o);
        return rc;
    }
    o->grace_ms = grace_seconds < 0 ? 0 : (int64_t)(grace_seconds * 1000.0);
    *out = o;
    return 0;
}

void sxd_owner_close(sxd_owner *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].path);
        free(o->v[i].dir);
    }
    free(o->v);
    close(o->fd);
    free(o);
}

int sxd_owner_fd(const sxd_owner *o)
{
    return o->fd;
}

static watched_app *find(sxd_owner *o, const char *path)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->v[i].path, path))
            return &o->v[i];
    return NULL;
}

int sxd_owner_add(sxd_owner *o, const char *app_path)
{
    if (find(o, app_path))
        return 0;
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 8, bytes;
        if (SX_MUL_OVERFLOW(ncap, sizeof(*o->v), &bytes))
            return sx_err(SYSEXT_ELIMIT, "too many watched apps");
        watched_app *nv = realloc(o->v, bytes);
        if (!nv)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        o->v = nv;
        o->cap = ncap;
    }
    watched_app *w = &o->v[o->n];
    memset(w, 0, sizeof(*w));
    w->path = strdup(app_path);
    w->dir = sx_path_dirname(app_path);
    if (!w->path || !w->dir) {
        free(w->path);
        free(w->dir);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    w->name = sx_path_basename(w->path);
    w->wd = inotify_add_watch(o->fd, w->dir,
                              IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |
                                  IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    o->n++;
    if (w->wd < 0 || !sx_path_exists(app_path))
        sxd_owner_touch(o, app_path); /* the folder is gone already: decide after the grace */
    return 0;
}

void sxd_owner_remove(sxd_owner *o, const char *app_path)
{
    watched_app *w = find(o, app_path);
    if (!w)
        return;
    int wd = w->wd;
    free(w->path);
    free(w->dir);
    *w = o->v[--o->n];
    bool shared = false;
    for (size_t i = 0; i < o->n; i++)
        shared |= o->v[i].wd == wd;
    if (!shared && wd >= 0)
        inotify_rm_watch(o->fd, wd);
}

void sxd_owner_touch(sxd_owner *o, const char *app_path)
{
    watched_app *w = find(o, app_path);
    if (w && !w->deadline)
        w->deadline = sxd_now_ms() + o->grace_ms;
}

int sxd_owner_handle(sxd_owner *o)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(o->fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            return sx_err_errno(SYSEXT_EIO, errno, "sysextd: inotify read");
        }
        if (n == 0)
            return 0;
        for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)n;) {
            const struct inotify_event *e = (const struct inotify_event *)(buf + off);
            size_t step = sizeof(*e) + e->len;
            if (off + step > (size_t)n)
                break;
            for (size_t i = 0; i < o->n; i++) {
                watched_app *w = &o->v[i];
                if (e->mask & IN_Q_OVERFLOW) {
                    sxd_owner_touch(o, w->path);
                    continue;
                }
                if (w->wd != e->wd)
                    continue;
                if ((e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) ||
                    (e->len && !strcmp(e->name, w->name)))
                    sxd_owner_touch(o, w->path);
                if (e->mask & IN_IGNORED)
                    w->wd = -1;
            }
            off += step;
        }
    }
}

int sxd_owner_timeout_ms(const sxd_owner *o)
{
    int64_t best = -1, now = sxd_now_ms();
    for (size_t i = 0; i < o->n; i++) {
        if (!o->v[i].deadline)
            continue;
        int64_t left = o->v[i].deadline - now;
        if (left < 0)
            left = 0;
        if (best < 0 || left < best)
            best = left;
    }
    return best > 100000 ? 100000 : (int)best;
}

char *sxd_owner_take_due(sxd_owner *o)
{
    int64_t now = sxd_now_ms();
    for (size_t i = 0; i < o->n; i++) {
        watched_app *w = &o->v[i];
        if (w->deadline && w->deadline <= now) {
            w->deadline = 0;
            /* Re-arm the watch when the folder came back (or was replaced). */
            if (w->wd < 0)
                w->wd = inotify_add_watch(o->fd, w->dir,
                                          IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |
                                              IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
            return strdup(w->path);
        }
    }
    return NULL;
}
