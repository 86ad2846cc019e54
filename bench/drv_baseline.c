/* The fork+exec baseline of the driver benchmarks (drv_baseline.h). */
#include "util/common.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

#include "drv_baseline.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int sx_bench_fork_exec_once(const char *exe, double *out_us)
{
    int a[2], b[2];
    double t0 = now_us();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b) < 0) {
        close(a[0]);
        close(a[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(a[1], 3);
        dup2(b[1], 4);
        char *argv[] = {(char *)exe, NULL};
        char *envp[] = {NULL};
        execve(exe, argv, envp);
        _exit(127);
    }
    close(a[1]);
    close(b[1]);
    if (pid < 0) {
        close(a[0]);
        close(b[0]);
        return -1;
    }
    DKIPCMessage m, r;
    memset(&r, 0, sizeof(r));
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 1);
    DKIPCMessage_AddString(&m, "IOUserResources");
    kern_return_t kr = DKIPC_Send(a[0], &m);
    DKIPCMessage_Clear(&m);
    if (kr == kIOReturnSuccess)
        kr = DKIPC_Recv(a[0], NULL, &r, NULL);
    bool ok = kr == kIOReturnSuccess && r.status == kIOReturnSuccess;
    if (kr == kIOReturnSuccess)
        DKIPCMessage_Clear(&r);
    if (ok)
        *out_us = now_us() - t0;
    close(a[0]);
    close(b[0]);
    waitpid(pid, NULL, 0);
    if (!ok) {
        fprintf(stderr, "%s: baseline driver did not answer\n", exe);
        return -1;
    }
    return 0;
}
