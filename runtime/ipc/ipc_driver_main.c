/* The main loop of a driver process started by sysextd (see sysextd/host.h): host messages
 * on fd 3, calls to the host on fd 4. Before the first message the driver tightens its own
 * sandbox with a second seccomp stage (after the dynamic loader and the constructors ran, so
 * nothing legitimate opens files or executes programs any more). */
#include "rt_internal.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

#if defined(__x86_64__)
#define RT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define RT_AUDIT_ARCH AUDIT_ARCH_RISCV64
#endif

#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
                 BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

kern_return_t DKDriverSandboxStage2(void)
{
#ifdef RT_AUDIT_ARCH
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RT_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef SYS_open
        DENY(SYS_open),
#endif
#ifdef SYS_creat
        DENY(SYS_creat),
#endif
        DENY(SYS_openat),
#ifdef SYS_openat2
        DENY(SYS_openat2),
#else
        DENY(437),
#endif
        DENY(SYS_execve),
        DENY(SYS_execveat),
        DENY(SYS_socket),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { (unsigned short)DK_ARRAY_SIZE(f), f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return kIOReturnNotPermitted;
    return kIOReturnSuccess;
#else
    return kIOReturnUnsupported;
#endif
}

int DKDriverServe(int hostFD, int callFD, bool sandbox)
{
    if (sandbox) {
        kern_return_t s = DKDriverSandboxStage2();
        if (s != kIOReturnSuccess) {
            fprintf(stderr, "driver: cannot install the sandbox's second stage: %s\n", IOReturn_Name(s));
            return 2;
        }
    }
    DKIPCObjectTable *table = DKIPCObjectTable_Create();
    if (!table) {
        fprintf(stderr, "driver: out of memory\n");
        return 2;
    }
    DKIPC_SetHostConnection(callFD);
    int status = 0;
    for (;;) {
        DKIPCMessage msg, reply;
        DKIPCError err;
        kern_return_t r = DKIPC_Recv(hostFD, table, &msg, &err);
        if (r == kIOReturnNotReady || (r == kIOReturnIPCError && errno == ECONNRESET))
            break; /* the host closed the connection: we are done */
        if (r != kIOReturnSuccess) {
            fprintf(stderr, "driver: host message at offset %zu: %s (%s)\n", err.offset,
                    err.message[0] ? err.message : "receive failed", IOReturn_Name(r));
            status = 2;
            break;
        }
        memset(&reply, 0, sizeof(reply));
        (void)DKIPC_HandleMessage(table, &msg, &reply);
        r = DKIPC_Send(hostFD, &reply);
        DKIPCMessage_Clear(&reply);
        DKIPCMessage_Clear(&msg);
        if (r != kIOReturnSuccess) {
            if (errno == EPIPE || errno == ECONNRESET)
                break;
            fprintf(stderr, "driver: sending a reply to the host: %s\n", strerror(errno));
            status = 2;
            break;
        }
    }
    DKIPC_SetHostConnection(-1);
    DKIPCObjectTable_Free(table);
    return status;
}

int DKDriverMain(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return DKDriverServe(3, 4, true);
}
