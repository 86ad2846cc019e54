/* The C side of HostTestDriver.iig: a driver executable (linked with sysext_runtime_main)
 * whose methods let the host tests probe the sandbox and the crash handling. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "HostTestDriver.h"

struct HostTestDriver_IVars {
    int unused;
};

bool HostTestDriver_init_Impl(HostTestDriver *self)
{
    self->ivars = calloc(1, sizeof(*self->ivars));
    return self->ivars != NULL;
}

void HostTestDriver_free_Impl(HostTestDriver *self)
{
    free(self->ivars);
    self->ivars = NULL;
}

kern_return_t HostTestDriver_Start_Impl(HostTestDriver *self, IOService *provider)
{
    kern_return_t r = IOService_Start_Super(&HostTestDriver_Class, (IOService *)self, provider);
    if (r != kIOReturnSuccess)
        return r;
    /* a provider asking for it makes Start fail (START_FAILED path) */
    OSDictionary *props = NULL;
    uint64_t fail = 0;
    if (provider && IOService_CopyProperties(provider, &props) == kIOReturnSuccess) {
        (void)OSDictionary_GetNumberValue(props, "FailStart", &fail);
        OSObject_Release((OSObject *)props);
    }
    if (fail)
        return kIOReturnNoDevice;
    return IOService_RegisterService((IOService *)self);
}

kern_return_t HostTestDriver_Ping_Impl(HostTestDriver *self, uint64_t *pid, uint64_t *uid)
{
    (void)self;
    *pid = (uint64_t)getpid();
    *uid = (uint64_t)getuid();
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_ProviderValue_Impl(HostTestDriver *self, uint64_t *value)
{
    IOService *provider = IOService_GetProvider((IOService *)self);
    OSDictionary *props = NULL;
    if (!provider || IOService_CopyProperties(provider, &props) != kIOReturnSuccess)
        return kIOReturnNotFound;
    bool ok = OSDictionary_GetNumberValue(props, "TestValue", value);
    OSObject_Release((OSObject *)props);
    return ok ? kIOReturnSuccess : kIOReturnNotFound;
}

kern_return_t HostTestDriver_Crash_Impl(HostTestDriver *self, uint32_t how)
{
    (void)self;
    /* the sanitizers catch SIGSEGV/SIGABRT and exit with a status: die by the signal itself */
    int sig = how == 2 ? SIGABRT : SIGSEGV;
    signal(sig, SIG_DFL);
    if (how == 2)
        abort();
    raise(SIGSEGV);
    return kIOReturnError;
}

kern_return_t HostTestDriver_TryOpen_Impl(HostTestDriver *self, uint64_t *err)
{
    (void)self;
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    *err = fd < 0 ? (uint64_t)errno : 0;
    if (fd >= 0)
        close(fd);
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_TrySocket_Impl(HostTestDriver *self, uint64_t *err)
{
    (void)self;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *err = fd < 0 ? (uint64_t)errno : 0;
    if (fd >= 0)
        close(fd);
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_TryExec_Impl(HostTestDriver *self, uint64_t *err)
{
    (void)self;
    char *argv[] = {(char *)"/usr/bin/true", NULL};
    char *envp[] = {NULL};
    execve(argv[0], argv, envp);
    *err = (uint64_t)errno;
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_Garbage_Impl(HostTestDriver *self)
{
    (void)self;
    static const unsigned char junk[64] = {'D', 'K', 'I', 'P', 9, 9, 9, 9, 0xff, 0xff, 0xff, 0xff};
    (void)!send(4, junk, sizeof(junk), MSG_NOSIGNAL);
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_Hang_Impl(HostTestDriver *self, uint32_t ms)
{
    (void)self;
    usleep((useconds_t)ms * 1000);
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_TryUnshare_Impl(HostTestDriver *self, uint64_t *err)
{
    (void)self;
    *err = unshare(CLONE_NEWUSER) < 0 ? (uint64_t)errno : 0;
    return kIOReturnSuccess;
}

kern_return_t HostTestDriver_TryKill_Impl(HostTestDriver *self, uint64_t pid, uint64_t *err)
{
    (void)self;
    *err = kill((pid_t)pid, 0) < 0 ? (uint64_t)errno : 0;
    return kIOReturnSuccess;
}
