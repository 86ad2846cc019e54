/* The first seccomp stage of a driver process, installed by the host just before exec: an
 * allow list (everything else answers EPERM, so a driver can report the failure instead of
 * dying). It has to let the dynamic loader, the C library, the runtime's threads and the
 * sanitizers work, so it still allows open/openat and execve (the exec of the driver itself
 * comes after it); the driver removes those with the second stage (DKDriverSandboxStage2)
 * once its loader is done. Not allowed, among others: socket/connect/bind/listen/accept
 * (socketpair and messages on inherited sockets are), ptrace, process_vm_*, mount and
 * friends, unshare/setns, clone with namespace flags (clone3 answers ENOSYS, so the C library
 * falls back to clone, whose flags can be checked), modules, bpf, perf, keyrings, id changes,
 * and signals or prlimit to any process but itself. */
#include "util/common.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sysextd/host_internal.h"

static const char *const allowed[] = {
    /* I/O on descriptors it has */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "lseek", "ioctl", "fsync",
    "fdatasync", "ftruncate", "fallocate", "sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg",
    "recvmmsg", "shutdown", "socketpair", "getsockopt", "setsockopt", "getsockname", "getpeername",
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "signalfd", "signalfd4", "pipe", "pipe2",
    "memfd_create",
    /* the loader and the file system it sees (stage 2 removes open/exec) */
    "open", "openat", "openat2", "execve", "execveat", "access", "faccessat", "faccessat2",
    "stat", "lstat", "fstat", "newfstatat", "statx", "fstatfs", "statfs", "readlink",
    "readlinkat", "getcwd", "getdents64", "uname",
    /* memory */
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mincore", "mlock",
    "munlock", "membarrier",
    /* threads, time, identity, signals to itself */
    "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "prctl",
    "futex", "futex_waitv", "sched_yield", "sched_getaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min", "getpriority",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
    "getresuid", "getresgid", "getpgrp", "getpgid", "getsid", "getrandom", "sysinfo",
    "getrusage", "times", "getrlimit", "personality", "rt_sigaction", "rt_sigprocmask",
    "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend", "sigaltstack",
    "restart_syscall", "exit", "exit_group", "wait4", "waitid",
};

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, const struct scmp_arg_cmp *a)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR || nr < 0)
        return 0; /* not on this architecture */
    int e = n ? seccomp_rule_add_array(ctx, action, nr, n, a) : seccomp_rule_add(ctx, action, nr, 0);
    if (e < 0 && e != -EDOM && e != -EEXIST)
        return sx_err_errno(SYSEXT_EIO, -e, "seccomp: rule for %s", name);
    return 0;
}

int sxd_seccomp_stage1(struct sock_filter **out, size_t *count)
{
    int rc = 0, mfd = -1, e;
    struct sock_filter *prog = NULL;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return sx_err(SYSEXT_ENOMEM, "seccomp: out of memory");
    for (size_t i = 0; i < SX_ARRAY_SIZE(allowed); i++)
        if ((rc = add(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL)) < 0)
            goto out;
    /* threads (and fork) without new namespaces */
    const uint64_t ns = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                        CLONE_NEWCGROUP;
    struct scmp_arg_cmp no_ns = SCMP_A0(SCMP_CMP_MASKED_EQ, ns, 0);
    if ((rc = add(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_ns)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL)) < 0)
        goto out;
    /* only itself: the child patches its pid over the placeholder */
    /* spelled out: libseccomp's SCMP_A0 leaves datum_b out, which clang refuses with -Werror */
    struct scmp_arg_cmp self = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = SXD_SECCOMP_PID_PLACEHOLDER, .datum_b = 0};
    struct scmp_arg_cmp zero = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = 0, .datum_b = 0};
    if ((rc = add(ctx, SCMP_ACT_ALLOW, "kill", 1, &self)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &self)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ALLOW, "rt_tgsigqueueinfo", 1, &self)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &self)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &zero)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ALLOW, "setrlimit", 0, NULL)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ALLOW, "sched_setaffinity", 1, &zero)) < 0)
        goto out;
    mfd = memfd_create("sxd-seccomp", MFD_CLOEXEC);
    if (mfd < 0) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "seccomp: memfd_create");
        goto out;
    }
    if ((e = seccomp_export_bpf(ctx, mfd)) < 0) {
        rc = sx_err_errno(SYSEXT_EIO, -e, "seccomp: export");
        goto out;
    }
    off_t len = lseek(mfd, 0, SEEK_END);
    if (len <= 0 || len % (off_t)sizeof(struct sock_filter) || len > 65536) {
        rc = sx_err(SYSEXT_EIO, "seccomp: exported program of %lld bytes", (long long)len);
        goto out;
    }
    prog = malloc((size_t)len);
    if (!prog) {
        rc = sx_err(SYSEXT_ENOMEM, "seccomp: out of memory");
        goto out;
    }
    if (pread(mfd, prog, (size_t)len, 0) != len) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "seccomp: reading the exported program");
        goto out;
    }
    *out = prog;
    *count = (size_t)len / sizeof(struct sock_filter);
    prog = NULL;
out:
    free(prog);
    if (mfd >= 0)
        close(mfd);
    seccomp_release(ctx);
    return rc;
}
