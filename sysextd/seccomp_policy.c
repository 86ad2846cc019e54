/* The first seccomp stage of a driver process, installed by the host before exec: the
 * system calls a driver never needs answer EPERM. The driver adds the second stage itself
 * (DKDriverSandboxStage2: no open/openat/execve/socket) once its loader is done.
 *
 * It is a deny list over a default of allow: the dynamic loader, the C library, the
 * sanitizers and the runtime's threads stay unaffected, and what a driver must not do
 * (network, tracing, mounts, namespaces, kernel modules, keyrings, signalling others, ...)
 * fails with EPERM rather than killing it, so a driver can report the failure. */
#include "util/common.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sysextd/host_internal.h"

static const char *const denied[] = {
    "socket", "connect", "bind", "listen", "accept", "accept4", "socketcall",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "unshare", "setns", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "userfaultfd", "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "acct", "quotactl",
    "mknod", "mknodat", "iopl", "ioperm", "fanotify_init", "lookup_dcookie",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "pidfd_send_signal",
    "pidfd_getfd", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "setfsuid", "setfsgid", "capset", "vhangup", "syslog", "sethostname",
    "setdomainname", "uselib", "nfsservctl",
};

int sxd_seccomp_stage1(struct sock_filter **out, size_t *count)
{
    int rc = 0, mfd = -1;
    struct sock_filter *prog = NULL;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return sx_err(SYSEXT_ENOMEM, "seccomp: out of memory");
    for (size_t i = 0; i < SX_ARRAY_SIZE(denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not on this architecture */
        int e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (e < 0 && e != -EDOM) {
            rc = sx_err_errno(SYSEXT_EIO, -e, "seccomp: rule for %s", denied[i]);
            goto out;
        }
    }
    /* signals only to itself: kill(pid != self) (groups included), tkill, tgkill(tgid !=
     * self) -> EPERM; raise/abort (tgkill to itself) keep working. */
    int e;
    if ((e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                              SCMP_A0(SCMP_CMP_GT, SXD_SECCOMP_PID_PLACEHOLDER))) < 0 ||
        (e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                              SCMP_A0(SCMP_CMP_LT, SXD_SECCOMP_PID_PLACEHOLDER))) < 0 ||
        (e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tgkill), 1,
                              SCMP_A0(SCMP_CMP_NE, SXD_SECCOMP_PID_PLACEHOLDER))) < 0 ||
        (e = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tkill), 0)) < 0) {
        rc = sx_err_errno(SYSEXT_EIO, -e, "seccomp: signal rules");
        goto out;
    }
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
