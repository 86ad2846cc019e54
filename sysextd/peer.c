#include "util/common.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sysextd/peer.h"
#include "util/fs.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -1 : (int)fd;
#else
    SX_UNUSED(pid);
    return -1;
#endif
}

bool sxd_peer_alive(const sxd_peer *p)
{
#ifdef SYS_pidfd_send_signal
    if (p->pidfd >= 0)
        return syscall(SYS_pidfd_send_signal, p->pidfd, 0, NULL, 0) == 0;
#endif
    return kill(p->pid, 0) == 0 || errno == EPERM;
}

int sxd_peer_from_fd(int fd, sxd_peer *p)
{
    memset(p, 0, sizeof(*p));
    p->pidfd = -1;
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "sysextd: SO_PEERCRED");
    p->pid = cr.pid;
    p->uid = cr.uid;
    p->gid = cr.gid;
    int pfd = -1;
    len = sizeof(pfd);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &len) == 0 && pfd >= 0)
        p->pidfd = pfd;
    else if (p->pid > 0)
        p->pidfd = pidfd_open_compat(p->pid);
    if (p->pid <= 0)
        return 0;
    char proc[64], buf[4096];
    snprintf(proc, sizeof(proc), "/proc/%d/exe", (int)p->pid);
    ssize_t n = readlink(proc, buf, sizeof(buf) - 1);
    struct stat st;
    if (n > 0 && stat(proc, &st) == 0) {
        buf[n] = '\0';
        p->exe = strdup(buf);
        p->dev = st.st_dev;
        p->ino = st.st_ino;
    }
    /* The pid must still be the process that connected (a pidfd pins it). */
    if (p->exe && !sxd_peer_alive(p)) {
        free(p->exe);
        p->exe = NULL;
    }
    return 0;
}

void sxd_peer_clear(sxd_peer *p)
{
    if (p->pidfd >= 0)
        close(p->pidfd);
    free(p->exe);
    memset(p, 0, sizeof(*p));
    p->pidfd = -1;
}

char *sxd_app_path_of_exe(const char *exe)
{
    /* .../X.app/Contents/MacOS/<name> */
    const char *slash3 = strrchr(exe, '/');
    if (!slash3 || slash3 == exe || !slash3[1])
        return NULL;
    const char *suffix = "/Contents/MacOS";
    size_t sl = strlen(suffix);
    size_t head = (size_t)(slash3 - exe);
    if (head < sl + 5 || strncmp(exe + head - sl, suffix, sl) != 0)
        return NULL;
    size_t app_len = head - sl;
    if (app_len < 5 || strncmp(exe + app_len - 4, ".app", 4) != 0 || exe[app_len - 5] == '/')
        return NULL;
    return strndup(exe, app_len);
}

int sxd_peer_app(const sxd_peer *p, const char *const *trust, size_t n_trust, sxd_code *app,
                 int *oserr)
{
    memset(app, 0, sizeof(*app));
    *oserr = 1;
    if (!p->exe)
        return sx_err(SYSEXT_EPERM, "caller pid %d: its executable cannot be read", (int)p->pid);
    if (strstr(p->exe, " (deleted)"))
        return sx_err(SYSEXT_EPERM, "caller pid %d: its executable %s was deleted", (int)p->pid,
                      p->exe);
    _sx_cleanup_free_ char *app_path = sxd_app_path_of_exe(p->exe);
    if (!app_path) {
        *oserr = 3;
        return sx_err(SYSEXT_EPERM,
                      "caller %s is not the main executable of an app bundle "
                      "(X.app/Contents/MacOS/<exe>)",
                      p->exe);
    }
    int rc = sxd_code_open(app_path, app);
    if (rc < 0) {
        *oserr = 1;
        return sx_err_prefix(SYSEXT_EPERM, "caller app %s", app_path);
    }
    if (!app->executable || !app->exe_path || strcmp(sx_path_basename(p->exe), app->executable)) {
        *oserr = 1;
        rc = sx_err(SYSEXT_EPERM, "caller %s is not the CFBundleExecutable (%s) of %s", p->exe,
                    app->executable ? app->executable : "none", app_path);
        goto fail;
    }
    if ((rc = sxd_code_verify(app, trust, n_trust, false)) < 0) {
        *oserr = 8;
        goto fail;
    }
    if (!app->sig_valid) {
        *oserr = 8;
        rc = sx_err(SYSEXT_ESIGNATURE, "caller app %s: signature invalid: %s", app_path,
                    app->problems ? app->problems : "unknown problem");
        goto fail;
    }
    /* The signed executable must be the running one (checked after verification). */
    struct stat st;
    if (stat(app->exe_path, &st) < 0 || st.st_dev != p->dev || st.st_ino != p->ino) {
        *oserr = 8;
        rc = sx_err(SYSEXT_ESIGNATURE,
                    "caller pid %d: the running executable is not the signed %s", (int)p->pid,
                    app->exe_path);
        goto fail;
    }
    *oserr = 0;
    return 0;
fail:
    sxd_code_clear(app);
    return rc;
}
