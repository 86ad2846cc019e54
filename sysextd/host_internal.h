/* Private to the driver host (host*.c, sandbox.c, seccomp_policy.c). */
#ifndef SXD_HOST_INTERNAL_H
#define SXD_HOST_INTERNAL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <sys/types.h>

#include "sysextd/host.h"

/* A placeholder in the stage-1 filter's kill/tgkill rules that the child replaces with its
 * own pid after fork (the filter is built once, before fork, because libseccomp allocates). */
#define SXD_SECCOMP_PID_PLACEHOLDER 0x7ffffffeu

/* The stage-1 seccomp program (raw BPF from libseccomp): an allow list, EPERM for the rest
 * (socket, connect, bind, ptrace, mount, unshare, ...; signals only to itself). *out is
 * malloc'd (free it). */
int sxd_seccomp_stage1(struct sock_filter **out, size_t *count);

/* What the child of sxd_host_spawn does; everything is prepared by the parent before fork
 * (the child does not allocate). */
typedef struct sxd_spawn {
    const char *executable;   /* absolute, inside bundle_path */
    const char *bundle_path;  /* bind-mounted read-only at the same path */
    const char *root_dir;     /* an existing directory: the new root's tmpfs is mounted on it */
    sxd_sandbox_mode mode;    /* resolved: SXD_SANDBOX_UID or SXD_SANDBOX_USERNS */
    uid_t uid;                /* the driver's uid/gid: the user (UID) or the mapped id (USERNS) */
    gid_t gid;
    bool switch_id;           /* setgroups/setresgid/setresuid to uid/gid in the child */
    bool no_sandbox;          /* bench baseline / debugging: plain fork + exec */
    const struct sock_filter *filter;
    size_t filter_len;
} sxd_spawn;

/* Fork and exec the driver in its sandbox. On success *pid, *pidfd (watch for exit), *cmd
 * (host -> driver, the child's fd 3) and *call (driver -> host, fd 4), all CLOEXEC, are the
 * caller's. Returns once the child has exec'd (or failed: the error names the step). */
int sxd_host_spawn(const sxd_spawn *s, pid_t *pid, int *pidfd, int *cmd, int *call);

#endif
