/* The runtime side of hosting, in-process: provider factories (Create of a provider class with
 * its properties), DKIPC_CopyProviderProperties' checks, and DKDriverServe's exit codes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

TestSuite(provider, .timeout = 30);

static kern_return_t create(DKIPCObjectTable *t, DKIPCMessage *m)
{
    DKIPCMessage reply;
    kern_return_t r = DKIPC_HandleMessage(t, m, &reply);
    cr_assert_eq(reply.status, r);
    DKIPCMessage_Clear(&reply);
    return r;
}

Test(provider, builtin_user_resources_carries_properties)
{
    DKIPCObjectTable *t = DKIPCObjectTable_Create();
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 1);
    DKIPCMessage_AddString(&m, "IOUserResources");
    DKIPCMessage_AddString(&m, "TestValue");
    DKIPCMessage_AddU64(&m, 42);
    DKIPCMessage_AddString(&m, "Name");
    DKIPCMessage_AddString(&m, "res");
    DKIPCMessage_AddString(&m, "Blob");
    DKIPCMessage_AddBytes(&m, "\x01\x02\x03", 3);
    cr_assert_eq(create(t, &m), kIOReturnSuccess);
    DKIPCMessage_Clear(&m);
    IOService *svc = OSDynamicCast(IOService, DKIPCObjectTable_Lookup(t, 0x1000));
    cr_assert_not_null(svc);
    OSDictionary *props = NULL;
    cr_assert_eq(IOService_CopyProperties(svc, &props), kIOReturnSuccess);
    uint64_t v = 0;
    cr_assert(OSDictionary_GetNumberValue(props, "TestValue", &v));
    cr_assert_eq(v, 42);
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(props, "Name"), "res"));
    OSData *blob = OSDynamicCast(OSData, OSDictionary_GetObject(props, "Blob"));
    cr_assert_not_null(blob);
    cr_assert_eq(OSData_GetLength(blob), 3);
    cr_assert_eq(memcmp(OSData_GetBytesNoCopy(blob), "\x01\x02\x03", 3), 0);
    OSObject_Release((OSObject *)props);
    DKIPCObjectTable_Free(t);
}

Test(provider, malformed_properties_are_refused)
{
    DKIPCObjectTable *t = DKIPCObjectTable_Create();
    DKIPCMessage m;
    /* a key without a value */
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 1);
    DKIPCMessage_AddString(&m, "IOService");
    DKIPCMessage_AddString(&m, "Lonely");
    cr_assert_eq(create(t, &m), kIOReturnBadArgument);
    DKIPCMessage_Clear(&m);
    /* a key that is not a string */
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 2);
    DKIPCMessage_AddString(&m, "IOService");
    DKIPCMessage_AddU64(&m, 1);
    DKIPCMessage_AddU64(&m, 2);
    cr_assert_eq(create(t, &m), kIOReturnBadArgument);
    DKIPCMessage_Clear(&m);
    /* an object as value */
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 3);
    DKIPCMessage_AddString(&m, "IOService");
    DKIPCMessage_AddString(&m, "Obj");
    DKIPCMessage_AddObject(&m, 7);
    cr_assert_eq(create(t, &m), kIOReturnBadArgument);
    DKIPCMessage_Clear(&m);
    cr_assert_eq(DKIPCObjectTable_GetCount(t), 0);
    /* a driver class (no factory) takes only its name */
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 4);
    DKIPCMessage_AddString(&m, "NoSuchDriverClass");
    DKIPCMessage_AddString(&m, "extra");
    cr_assert_eq(create(t, &m), kIOReturnBadArgument);
    DKIPCMessage_Clear(&m);
    DKIPCObjectTable_Free(t);
}

static int fd_seen = -1;
static kern_return_t fd_factory(const char *cls, DKIPCMessage *msg, IOService **out)
{
    cr_assert_str_eq(cls, "TestTransportNub");
    cr_assert_eq(msg->argCount, 2);
    cr_assert_eq(DKIPCMessage_TakeFD(msg, 1, &fd_seen), kIOReturnSuccess);
    return IOService_Instantiate("IOService", NULL, out);
}

Test(provider, registered_factory_gets_descriptors)
{
    cr_assert_eq(DKIPC_RegisterProviderFactory("TestTransportNub", fd_factory), kIOReturnSuccess);
    cr_assert_eq(DKIPC_RegisterProviderFactory("TestTransportNub", fd_factory), kIOReturnSuccess);
    cr_assert_eq(DKIPC_RegisterProviderFactory("IOUserResources", fd_factory), kIOReturnPortExists);
    cr_assert_eq(DKIPC_FindProviderFactory("TestTransportNub"), fd_factory);
    cr_assert_null(DKIPC_FindProviderFactory("Nope"));
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    DKIPCMessage m, got;
    DKIPCMessage_Init(&m, kDKIPCCreate, 0x2000, 0, 1);
    DKIPCMessage_AddString(&m, "TestTransportNub");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    DKIPCMessage_AddFD(&m, fds[0]);
    cr_assert_eq(DKIPC_Send(sp[0], &m), kIOReturnSuccess);
    DKIPCMessage_Clear(&m);
    DKIPCObjectTable *t = DKIPCObjectTable_Create();
    cr_assert_eq(DKIPC_Recv(sp[1], t, &got, NULL), kIOReturnSuccess);
    cr_assert_eq(create(t, &got), kIOReturnSuccess);
    DKIPCMessage_Clear(&got);
    cr_assert_geq(fd_seen, 0);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    char c = 0;
    cr_assert_eq(read(fd_seen, &c, 1), 1); /* the factory owns a working descriptor */
    cr_assert_eq(c, 'x');
    close(fd_seen);
    close(fds[0]);
    close(fds[1]);
    close(sp[0]);
    close(sp[1]);
    DKIPCObjectTable_Free(t);
}

static int serve_child(const void *junk, size_t len)
{
    int sp[2], cp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cp), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sp[0]);
        _exit(DKDriverServe(sp[1], cp[1], false));
    }
    close(sp[1]);
    close(cp[1]);
    if (junk) {
        cr_assert_eq(send(sp[0], junk, len, 0), (ssize_t)len);
    } else {
        /* one good exchange first */
        DKIPCMessage m, r;
        DKIPCMessage_Init(&m, kDKIPCCreate, 0x1000, 0, 9);
        DKIPCMessage_AddString(&m, "IOUserResources");
        cr_assert_eq(DKIPC_Send(sp[0], &m), kIOReturnSuccess);
        DKIPCMessage_Clear(&m);
        cr_assert_eq(DKIPC_Recv(sp[0], NULL, &r, NULL), kIOReturnSuccess);
        cr_assert_eq(r.type, kDKIPCReply);
        cr_assert_eq(r.sequence, 9);
        cr_assert_eq(r.status, kIOReturnSuccess);
        DKIPCMessage_Clear(&r);
    }
    close(sp[0]);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    close(cp[0]);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(provider, driver_serve_exit_codes)
{
    cr_assert_eq(serve_child(NULL, 0), 0); /* host closed: exit 0 */
    static const unsigned char junk[48] = {'X', 'X', 'X', 'X'};
    cr_assert_eq(serve_child(junk, sizeof(junk)), 2); /* protocol error: exit 2 */
}
