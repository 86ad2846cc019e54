/* Spawning a driver process in its sandbox.
 *
 * Parent: socketpairs for fd 3 (host -> driver) and fd 4 (driver -> host), two pipes (child
 * -> parent status, parent -> child "go"), fork. Child, in this order:
 *   1. fds: 0 = /dev/null, 1 and 2 kept (the daemon's log), 3 and 4 the sockets, rest closed;
 *      setsid; PR_SET_PDEATHSIG stays unset (drivers are watched through pidfds).
 *   2. namespaces: USERNS mode unshare(user, mount, net, ipc, uts) and waits while the parent
 *      writes uid_map/gid_map (one id mapped: the caller's uid, or, when the daemon is root,
 *      the driver user, 65534 by default; a root daemon enters the user namespace only after
 *      step 3); UID mode unshare(mount, net, ipc, uts).
 *   3. mount namespace: everything private, a tmpfs on `root_dir` with only: the staged
 *      bundle (read-only, at the same absolute path), the loader's system directories (/usr,
 *      /lib*, /etc/ld.so.cache; read-only; symlinks recreated as symlinks), /dev/null and, in
 *      sanitizer builds, a read-only /proc (ASan reads /proc/self/maps at start-up);
 *      pivot_root, detach the old root, the tmpfs remounted read-only, chdir /.
 *   4. bounding capabilities dropped; supplementary groups dropped and the driver's gid/uid
 *      set (UID mode; USERNS mode when the daemon is root: the mapped driver user);
 *   5. all capabilities dropped (ambient, effective/permitted/inheritable),
 *      PR_SET_NO_NEW_PRIVS, seccomp stage 1 (seccomp_policy.c, own pid patched in), execve.
 * A failing step is written to the status pipe ("sandbox: mount tmpfs on X: ...") and the
 * child exits 127; the parent returns it as the error. Nothing in the child allocates. */
#define _GNU_SOURCE 1
#include "util/common.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sysextd/host_internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Sanitizer builds: ASan reads /proc/self/maps at start-up, so /proc is mounted read-only in
 * the sandbox, and LeakSanitizer (ptrace at exit) is turned off in the driver. */
#if defined(__SANITIZE_ADDRESS__)
#define SXD_SANDBOX_PROC 1
#define SXD_SANDBOX_ASAN 1
#else
#define SXD_SANDBOX_ASAN 0
#endif

extern char **environ;

enum mkind { M_DIR, M_FILE, M_LINK };
typedef struct mentry {
    char src[PATH_MAX];
    char dst[PATH_MAX];  /* inside the new root (root_dir + src) */
    char link[PATH_MAX]; /* M_LINK: the symlink's text */
    enum mkind kind;
    bool rw;
} mentry;

#define MAX_MOUNTS 12
typedef struct plan {
    mentry m[MAX_MOUNTS];
    size_t n;
    char old[PATH_MAX];
    char *argv[2];
    char *envp[4];
    char env_asan[512], env_ubsan[512];
} plan;

/* ---- child side: no allocation, errors to the status pipe ---- */

static void child_fail(int st, const char *what, const char *arg, int e)
{
    char msg[PATH_MAX + 256];
    int n = snprintf(msg, sizeof(msg), "Esandbox: %s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
                     strerror(e));
    if (n > 0)
        (void)!write(st, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    _exit(127);
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int r = mkdir(path, 0755);
        *p = '/';
        if (r < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

static unsigned long locked_flags(const char *src)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(src, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID)
            f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
            f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
            f |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME)
            f |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME)
            f |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME)
            f |= MS_RELATIME;
    }
    return f;
}

static void child_mounts(int st, const sxd_spawn *s, plan *p)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(st, "make / private", NULL, errno);
    if (mount("tmpfs", s->root_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
        child_fail(st, "mount tmpfs on", s->root_dir, errno);
    for (size_t i = 0; i < p->n; i++) {
        mentry *m = &p->m[i];
        if (mkdirs(m->dst) < 0)
            child_fail(st, "mkdir for", m->dst, errno);
        if (m->kind == M_LINK) {
            if (symlink(m->link, m->dst) < 0)
                child_fail(st, "symlink", m->dst, errno);
            continue;
        }
        if (m->kind == M_DIR) {
            if (mkdir(m->dst, 0755) < 0 && errno != EEXIST)
                child_fail(st, "mkdir", m->dst, errno);
        } else {
            int fd = open(m->dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            if (fd < 0)
                child_fail(st, "create", m->dst, errno);
            close(fd);
        }
        if (mount(m->src, m->dst, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail(st, "bind", m->src, errno);
        if (!m->rw && mount(NULL, m->dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(m->src), NULL) < 0)
            child_fail(st, "remount read-only", m->dst, errno);
    }
    if (mkdir(p->old, 0700) < 0)
        child_fail(st, "mkdir", p->old, errno);
    if (syscall(SYS_pivot_root, s->root_dir, p->old) < 0)
        child_fail(st, "pivot_root to", s->root_dir, errno);
    if (chdir("/") < 0)
        child_fail(st, "chdir", "/", errno);
    if (umount2("/.old", MNT_DETACH) < 0)
        child_fail(st, "detach the old root", NULL, errno);
    if (rmdir("/.old") < 0)
        child_fail(st, "rmdir", "/.old", errno);
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        child_fail(st, "remount the new root read-only", NULL, errno);
}

static void child_drop_caps(int st)
{
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0)
        child_fail(st, "capset", NULL, errno);
}

static void child_seccomp(int st, const sxd_spawn *s)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(st, "no_new_privs", NULL, errno);
    if (!s->filter)
        return;
    /* the filter is the parent's copy-on-write memory: patch our pid in place */
    struct sock_filter *f = (struct sock_filter *)s->filter;
    uint32_t pid = (uint32_t)getpid();
    for (size_t i = 0; i < s->filter_len; i++)
        if (BPF_CLASS(f[i].code) == BPF_JMP && f[i].k == SXD_SECCOMP_PID_PLACEHOLDER)
            f[i].k = pid;
    struct sock_fprog prog = {(unsigned short)s->filter_len, f};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        child_fail(st, "seccomp", NULL, errno);
}

static void child_wait_maps(int st, int go)
{
    char c = 'U';
    if (write(st, &c, 1) != 1 || read(go, &c, 1) != 1 || c != 'G')
        _exit(127);
}

static int move_high(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 100);
}

static void child(const sxd_spawn *s, plan *p, int cmd, int call, int st, int go)
{
    /* 1. descriptors */
    int h3 = move_high(cmd), h4 = move_high(call), hst = move_high(st), hgo = move_high(go);
    if (h3 < 0 || h4 < 0 || hst < 0 || hgo < 0)
        _exit(127);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(h3, 3) < 0 || dup2(h4, 4) < 0 || dup2(hst, 5) < 0 ||
        dup2(hgo, 6) < 0)
        _exit(127);
    st = 5;
    go = 6;
    (void)fcntl(st, F_SETFD, FD_CLOEXEC);
    (void)fcntl(go, F_SETFD, FD_CLOEXEC);
    if (syscall(SYS_close_range, 7, ~0U, 0) < 0)
        for (int fd = 7; fd < 1024; fd++)
            close(fd);
    (void)setsid();
    (void)signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (s->no_sandbox) {
        execve(p->argv[0], p->argv, p->envp);
        child_fail(st, "execve", p->argv[0], errno);
    }
    /* 2. namespaces. A root daemon mounts as root first and then enters the user namespace
     * (a tmpfs made inside it would be owned by it, and root is not mapped there); an
     * unprivileged one needs the user namespace to be allowed to mount at all. */
    bool userns = s->mode == SXD_SANDBOX_USERNS;
    bool mounts_first = userns && s->switch_id;
    int ns = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    if (userns && !mounts_first)
        ns |= CLONE_NEWUSER;
    if (unshare(ns) < 0)
        child_fail(st, "unshare", userns && !mounts_first ? "(user namespace)" : NULL, errno);
    if (userns && !mounts_first)
        child_wait_maps(st, go);
    /* 3. file system (while we still hold the capabilities to mount) */
    child_mounts(st, s, p);
    if (mounts_first) {
        if (unshare(CLONE_NEWUSER) < 0)
            child_fail(st, "unshare", "(user namespace)", errno);
        child_wait_maps(st, go);
    }
    /* 4. the driver's identity, 5. privileges */
    for (int c = 0; c <= 63; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(st, "drop the capability bounding set", NULL, errno);
    if (s->switch_id) {
        if (setgroups(0, NULL) < 0)
            child_fail(st, "setgroups", NULL, errno);
        if (setresgid(s->gid, s->gid, s->gid) < 0)
            child_fail(st, "setresgid", NULL, errno);
        if (setresuid(s->uid, s->uid, s->uid) < 0)
            child_fail(st, "setresuid", NULL, errno);
    }
    child_drop_caps(st);
    child_seccomp(st, s);
    execve(p->argv[0], p->argv, p->envp);
    child_fail(st, "execve", p->argv[0], errno);
}

/* ---- parent side ---- */

static int plan_add(plan *p, const sxd_spawn *s, const char *src, bool rw)
{
    struct stat st;
    if (lstat(src, &st) < 0)
        return 0; /* not on this system */
    if (p->n == MAX_MOUNTS)
        return sx_err(SYSEXT_ELIMIT, "sandbox: more than %d mounts", MAX_MOUNTS);
    mentry *m = &p->m[p->n];
    memset(m, 0, sizeof(*m));
    int n1 = snprintf(m->src, sizeof(m->src), "%s", src);
    int n2 = snprintf(m->dst, sizeof(m->dst), "%s%s", s->root_dir, src);
    if (n1 < 0 || (size_t)n1 >= sizeof(m->src) || n2 < 0 || (size_t)n2 >= sizeof(m->dst))
        return sx_err(SYSEXT_ELIMIT, "sandbox: path too long: %s%s", s->root_dir, src);
    m->rw = rw;
    if (S_ISLNK(st.st_mode)) {
        ssize_t k = readlink(src, m->link, sizeof(m->link) - 1);
        if (k < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "sandbox: readlink %s", src);
        m->link[k] = 0;
        m->kind = M_LINK;
    } else {
        m->kind = S_ISDIR(st.st_mode) ? M_DIR : M_FILE;
    }
    p->n++;
    return 0;
}

static void env_with_no_leaks(char *dst, size_t cap, const char *name)
{
    const char *v = getenv(name);
    /* LeakSanitizer needs ptrace and /proc at exit: both are denied in the sandbox */
    int n = snprintf(dst, cap, "%s=%s%sdetect_leaks=0", name, v ? v : "", v && *v ? ":" : "");
    if (n < 0 || (size_t)n >= cap)
        snprintf(dst, cap, "%s=detect_leaks=0", name);
}

static int plan_build(plan *p, const sxd_spawn *s)
{
    static const char *const sys[] = {"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache"};
    memset(p, 0, sizeof(*p));
    int rc;
    if (!s->no_sandbox) {
        for (size_t i = 0; i < SX_ARRAY_SIZE(sys); i++)
            if ((rc = plan_add(p, s, sys[i], false)) < 0)
                return rc;
        if ((rc = plan_add(p, s, "/dev/null", true)) < 0)
            return rc;
#ifdef SXD_SANDBOX_PROC
        if ((rc = plan_add(p, s, "/proc", false)) < 0)
            return rc;
#endif
        size_t before = p->n;
        if ((rc = plan_add(p, s, s->bundle_path, false)) < 0)
            return rc;
        if (p->n == before || p->m[p->n - 1].kind != M_DIR)
            return sx_err(SYSEXT_ENOTFOUND, "sandbox: bundle %s is not a directory", s->bundle_path);
        int n = snprintf(p->old, sizeof(p->old), "%s/.old", s->root_dir);
        if (n < 0 || (size_t)n >= sizeof(p->old))
            return sx_err(SYSEXT_ELIMIT, "sandbox: path too long: %s", s->root_dir);
    }
    p->argv[0] = (char *)s->executable;
    size_t e = 0;
    if (getenv("ASAN_OPTIONS") || SXD_SANDBOX_ASAN) {
        env_with_no_leaks(p->env_asan, sizeof(p->env_asan), "ASAN_OPTIONS");
        p->envp[e++] = p->env_asan;
    }
    if (getenv("UBSAN_OPTIONS")) {
        snprintf(p->env_ubsan, sizeof(p->env_ubsan), "UBSAN_OPTIONS=%s", getenv("UBSAN_OPTIONS"));
        p->envp[e++] = p->env_ubsan;
    }
    return 0;
}

static int read_status(int st, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (;;) {
        if (*len + 1 >= cap)
            return 0;
        ssize_t n = read(st, buf + *len, cap - 1 - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
        if (buf[0] == 'U')
            break; /* the child waits for its maps */
    }
    buf[*len] = 0;
    return 0;
}

static int write_file(pid_t pid, const char *name, const char *text)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "sandbox: open %s", path);
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    if (n != (ssize_t)strlen(text))
        return sx_err_errno(SYSEXT_EIO, e, "sandbox: write '%s' to %s", text, path);
    return 0;
}

static int write_maps(pid_t pid, const sxd_spawn *s)
{
    char line[64];
    int rc;
    snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)s->uid, (unsigned)(geteuid() ? geteuid() : s->uid));
    if ((rc = write_file(pid, "uid_map", line)) < 0)
        return rc;
    /* an unprivileged parent may map its gid only after denying setgroups */
    if (geteuid() != 0 && (rc = write_file(pid, "setgroups", "deny")) < 0)
        return rc;
    snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)s->gid, (unsigned)(geteuid() ? getegid() : s->gid));
    return write_file(pid, "gid_map", line);
}

int sxd_host_spawn(const sxd_spawn *s, pid_t *pid, int *pidfd, int *cmd, int *call)
{
    int rc = 0;
    int sp3[2] = {-1, -1}, sp4[2] = {-1, -1}, stp[2] = {-1, -1}, gop[2] = {-1, -1}, pfd = -1;
    pid_t child_pid = -1;
    plan *p = calloc(1, sizeof(*p));
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "sandbox: out of memory");
    if ((rc = plan_build(p, s)) < 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp3) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp4) < 0 || pipe2(stp, O_CLOEXEC) < 0 ||
        pipe2(gop, O_CLOEXEC) < 0) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "sandbox: socketpair/pipe");
        goto out;
    }
    child_pid = fork();
    if (child_pid < 0) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "sandbox: fork");
        goto out;
    }
    if (child_pid == 0)
        child(s, p, sp3[1], sp4[1], stp[1], gop[0]);
    close(sp3[1]);
    close(sp4[1]);
    close(stp[1]);
    close(gop[0]);
    sp3[1] = sp4[1] = stp[1] = gop[0] = -1;
    pfd = (int)syscall(SYS_pidfd_open, child_pid, 0);
    if (pfd < 0) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "sandbox: pidfd_open");
        goto out;
    }
    (void)fcntl(pfd, F_SETFD, FD_CLOEXEC);
    char msg[PATH_MAX + 300];
    size_t len = 0;
    read_status(stp[0], msg, sizeof(msg), &len);
    if (len == 1 && msg[0] == 'U') {
        if ((rc = write_maps(child_pid, s)) < 0)
            goto out;
        char g = 'G';
        if (write(gop[1], &g, 1) != 1) {
            rc = sx_err_errno(SYSEXT_EIO, errno, "sandbox: waking the child");
            goto out;
        }
        read_status(stp[0], msg, sizeof(msg), &len);
    }
    if (len > 0) {
        rc = sx_err(SYSEXT_EIO, "%s: %s", s->executable, msg[0] == 'E' ? msg + 1 : "the child failed to start");
        goto out;
    }
    *pid = child_pid;
    *pidfd = pfd;
    *cmd = sp3[0];
    *call = sp4[0];
    sp3[0] = sp4[0] = pfd = -1;
    child_pid = -1;
out:
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        while (waitpid(child_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    int all[] = {sp3[0], sp3[1], sp4[0], sp4[1], stp[0], stp[1], gop[0], gop[1], pfd};
    for (size_t i = 0; i < SX_ARRAY_SIZE(all); i++)
        if (all[i] >= 0)
            close(all[i]);
    free(p);
    return rc;
}
