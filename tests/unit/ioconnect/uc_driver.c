#include <sys/socket.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>
#include <sysext/driverkit/DriverKit.h>

#include "rt_userclient_conn.h"
#include "uc_driver.h"

static atomic_int add_calls;
static atomic_bool uc_stopped;
static IOBufferMemoryDescriptor *shared_md;
static OSAction *held;

static kern_return_t sel_add(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    atomic_fetch_add(&add_calls, 1);
    a->scalarOutput[0] = a->scalarInput[0] + a->scalarInput[1];
    a->scalarOutputCount = 1;
    return kIOReturnSuccess;
}

static kern_return_t sel_reverse(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    size_t n = a->structureInput ? OSData_GetLength(a->structureInput) : 0;
    if (n > a->structureOutputMaximumSize)
        return kIOReturnNoSpace;
    uint8_t buf[64];
    if (n > sizeof(buf))
        return kIOReturnBadArgument;
    const uint8_t *p = n ? OSData_GetBytesNoCopy(a->structureInput) : NULL;
    for (size_t i = 0; i < n; i++)
        buf[i] = p[n - 1 - i];
    a->structureOutput = OSData_WithBytes(buf, n);
    return a->structureOutput ? kIOReturnSuccess : kIOReturnNoMemory;
}

static kern_return_t sel_async(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)ref;
    uint64_t v[2] = { a->scalarInput[0] * 2, 7 };
    return IOUserClient_AsyncCompletion((IOUserClient *)target, a->completion, kIOReturnSuccess, v, 2);
}

static kern_return_t sel_count(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    a->scalarOutput[0] = (uint64_t)atomic_load(&add_calls);
    a->scalarOutputCount = 1;
    return kIOReturnSuccess;
}

static kern_return_t sel_exit(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    (void)a;
    _exit(0);
}

static kern_return_t sel_peek(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    IOAddressSegment seg;
    if (!shared_md || IOBufferMemoryDescriptor_GetAddressRange(shared_md, &seg) != kIOReturnSuccess)
        return kIOReturnNotReady;
    uint64_t v;
    memcpy(&v, (const uint8_t *)(uintptr_t)seg.address + 64, sizeof(v));
    a->scalarOutput[0] = v;
    a->scalarOutputCount = 1;
    return kIOReturnSuccess;
}

static kern_return_t sel_hold(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    held = (OSAction *)OSObject_Retain((OSObject *)a->completion);
    return kIOReturnSuccess;
}

static kern_return_t sel_echo(OSObject *target, void *ref, IOUserClientMethodArguments *a)
{
    (void)target;
    (void)ref;
    a->scalarOutput[0] = a->scalarInput[0];
    a->scalarOutputCount = 1;
    return kIOReturnSuccess;
}

#define ANY kIOUserClientVariableStructureSize
static const IOUserClientMethodDispatch table[] = {
    [0] = { sel_add, 0, 2, 0, 1, 0 },
    [1] = { sel_reverse, 0, 0, ANY, 0, ANY },
    [2] = { sel_async, 1, 1, 0, 0, 0 },
    [3] = { sel_count, 0, 0, 0, 1, 0 },
    [4] = { sel_exit, ANY, ANY, ANY, ANY, ANY },
    [5] = { sel_peek, 0, 0, 0, 1, 0 },
    [6] = { sel_hold, 1, 0, 0, 0, 0 },
    [7] = { sel_echo, 0, 1, 0, 1, 0 },
};

static const OSClass TestUC_Class;

static kern_return_t TestUC_ExternalMethod(IOUserClient *self, uint64_t selector, IOUserClientMethodArguments *args,
                                           const IOUserClientMethodDispatch *dispatch, OSObject *target,
                                           void *reference)
{
    (void)dispatch;
    (void)target;
    if (selector >= sizeof(table) / sizeof(table[0]))
        return kIOReturnBadArgument;
    return IOUserClient_ExternalMethod_Super(&TestUC_Class, self, selector, args, &table[selector], (OSObject *)self,
                                             reference);
}

static kern_return_t TestUC_CopyClientMemoryForType(IOUserClient *self, uint64_t type, uint64_t *options,
                                                    IOMemoryDescriptor **memory)
{
    (void)self;
    (void)options;
    if (type != 0)
        return kIOReturnBadArgument;
    if (!shared_md) {
        if (IOBufferMemoryDescriptor_Create(kIOMemoryDirectionInOut, 4096, 0, &shared_md) != kIOReturnSuccess)
            return kIOReturnNoMemory;
        IOBufferMemoryDescriptor_SetLength(shared_md, 4096);
        IOAddressSegment seg;
        IOBufferMemoryDescriptor_GetAddressRange(shared_md, &seg);
        memcpy((void *)(uintptr_t)seg.address, "hello from driver", 18);
    }
    *memory = (IOMemoryDescriptor *)OSObject_Retain((OSObject *)shared_md);
    return kIOReturnSuccess;
}

static kern_return_t TestUC_Stop(IOService *self, IOService *provider)
{
    /* complete a held action after the app left: must go nowhere, harmlessly */
    if (held) {
        uint64_t v = 1;
        (void)IOUserClient_AsyncCompletion((IOUserClient *)self, held, kIOReturnAborted, &v, 1);
        OSObject_Release((OSObject *)held);
        held = NULL;
    }
    atomic_store(&uc_stopped, true);
    return IOService_Stop_Super(&TestUC_Class, self, provider);
}

static const OSMethod TestUC_methods[] = {
    OS_METHOD(IOUserClient_ExternalMethod_ID, TestUC_ExternalMethod),
    OS_METHOD(IOUserClient_CopyClientMemoryForType_ID, TestUC_CopyClientMemoryForType),
    OS_METHOD(IOService_Stop_ID, TestUC_Stop),
};
static const OSClass TestUC_Class = { "TestUC", &IOUserClient_Class, sizeof(IOUserClient), NULL, NULL,
                                      TestUC_methods, 3 };
OS_CLASS_REGISTER(TestUC_Class)

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int child_main(int drv_fd)
{
    IOService *provider = NULL;
    OSDictionary *props = OSDictionary_WithCapacity(1), *ucp = OSDictionary_WithCapacity(1);
    OSDictionary_SetStringValue(ucp, "IOUserClass", "TestUC");
    OSDictionary_SetObject(props, "UserClientProperties", (OSObject *)ucp);
    if (IOService_Instantiate("IOService", props, &provider) != kIOReturnSuccess ||
        IOService_HostStart(provider, NULL) != kIOReturnSuccess)
        return 2;
    OSObject_Release((OSObject *)props);
    OSObject_Release((OSObject *)ucp);
    /* as the host does it: a NewUserClient Call carrying the driver's end */
    DKIPCObjectTable *t = DKIPCObjectTable_Create();
    DKIPCObjectTable_Add(t, 100, (OSObject *)provider);
    DKIPCMessage m, reply;
    DKIPCMessage_Init(&m, kDKIPCCall, 100, IOService_NewUserClient_ID, 1);
    DKIPCMessage_AddU64(&m, 0);
    DKIPCMessage_AddFD(&m, drv_fd);
    kern_return_t r = DKIPC_HandleMessage(t, &m, &reply);
    DKIPCMessage_Clear(&reply);
    DKIPCMessage_Clear(&m);
    close(drv_fd); /* the runtime serves its own duplicate */
    if (r != kIOReturnSuccess)
        return 2;
    int rc = 3;
    for (int i = 0; i < 5000; i++) {
        if (rt_uc_conn_count() == 0 && atomic_load(&uc_stopped)) {
            rc = 0;
            break;
        }
        sleep_ms(2);
    }
    return rc;
}

pid_t uc_driver_spawn(int *app_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        _exit(child_main(sv[1]));
    }
    close(sv[1]);
    *app_fd = sv[0];
    return pid;
}
