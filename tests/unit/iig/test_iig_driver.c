/* TestDriver.iig compiled by sysext_iig() and run in an in-process host: instantiate, Start,
 * call methods through the generated dispatch with encoded IPC messages over a socketpair,
 * typed OSAction checks, and a KERNEL method sent to a host thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "TestDriver.h"

extern uint64_t TestDriver_lastPing;
extern int TestDriver_pings;
extern int TestDriver_frees;
OSAction *TestDriver_GetAction(TestDriver *self);
const char *TestDriver_GetName(TestDriver *self);
bool TestDriver_GetMove(TestDriver *self, TestPoint *p, uint8_t tag[4], bool *onSpecial);

static IOService *root, *drv;
static DKIPCObjectTable *table; /* what the host gave the driver: the driver itself */
static int sv[2];               /* [0] host end, [1] driver end */

static void setup(void)
{
    cr_assert_eq(IOService_Instantiate("IOService", NULL, &root), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(root, NULL), kIOReturnSuccess);
    cr_assert_eq(IOService_Instantiate("TestDriver", NULL, &drv), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(drv, root), kIOReturnSuccess);
    table = DKIPCObjectTable_Create();
    cr_assert_eq(DKIPCObjectTable_Add(table, OSObject_GetID((OSObject *)drv), (OSObject *)drv), kIOReturnSuccess);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
    DKIPCObjectTable_Free(table);
    IOService_Terminate(drv, 0);
    for (int i = 0; i < 500 && IOService_GetState(drv) != kIOServiceStateStopped; i++)
        usleep(2000);
    OSObject_Release((OSObject *)drv);
    OSObject_Release((OSObject *)root);
    close(sv[0]);
    close(sv[1]);
}

TestSuite(iig_driver, .init = setup, .fini = teardown, .timeout = 30);

/* Host sends `call`; the driver side receives, dispatches through the generated code, replies;
 * the host receives the reply into `reply`. Returns the driver-side dispatch result. */
static kern_return_t round_trip(DKIPCMessage *call, DKIPCMessage *reply)
{
    cr_assert_eq(DKIPC_Send(sv[0], call), kIOReturnSuccess);
    DKIPCMessage in, out;
    DKIPCError e;
    cr_assert_eq(DKIPC_Recv(sv[1], table, &in, &e), kIOReturnSuccess, "%s", e.message);
    OSObject *target = DKIPCObjectTable_Lookup(table, in.objectID);
    cr_assert_not_null(target);
    kern_return_t r = TestDriver_Dispatch(target, &in, &out);
    cr_assert_eq(DKIPC_Send(sv[1], &out), kIOReturnSuccess);
    DKIPCMessage_Clear(&in);
    DKIPCMessage_Clear(&out);
    cr_assert_eq(DKIPC_Recv(sv[0], NULL, reply, &e), kIOReturnSuccess, "%s", e.message);
    cr_assert_eq(reply->type, kDKIPCReply);
    cr_assert_eq(reply->sequence, call->sequence);
    return r;
}

static uint64_t drv_id(void)
{
    return OSObject_GetID((OSObject *)drv);
}

Test(iig_driver, class_registered_and_started)
{
    cr_assert_eq(OSClass_Find("TestDriver"), &TestDriver_Class);
    cr_assert_eq(TestDriver_Class.superClass, &IOService_Class);
    cr_assert(IOService_IsRegistered(drv), "Start_Impl ran and registered");
    cr_assert_eq(TestDriver_Start_ID, IOService_Start_ID);
    cr_assert_eq(TestDriver_Add_ID, 0xdcf861ea6607e3daULL);
    cr_assert_eq(kTestDriverMagic, 0x5a5a);
}

Test(iig_driver, call_with_out_param_over_ipc)
{
    DKIPCMessage call, reply;
    cr_assert_eq(TestDriver_Add_Marshal(&call, drv_id(), 41, 40, 2), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnSuccess);
    cr_assert_eq(reply.status, kIOReturnSuccess);
    uint64_t sum = 0;
    cr_assert_eq(DKIPCMessage_GetU64(&reply, 0, &sum), kIOReturnSuccess);
    cr_assert_eq(sum, 42u);
    cr_assert_eq(TestDriver_Counter((TestDriver *)drv), 1u, "LOCALONLY call");
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);
    /* the in-process virtual call stub reaches the same implementation */
    cr_assert_eq(TestDriver_Add((TestDriver *)drv, 1, 2, &sum), kIOReturnSuccess);
    cr_assert_eq(sum, 3u);
}

Test(iig_driver, string_enum_struct_array_and_queue)
{
    DKIPCMessage call, reply;
    cr_assert_eq(TestDriver_SetName_Marshal(&call, drv_id(), 1, "widget", kTestModeOn, 0x80), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnSuccess);
    cr_assert_eq(reply.status, kIOReturnSuccess);
    cr_assert_str_eq(TestDriver_GetName((TestDriver *)drv), "widget");
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    TestPoint pt = { -5, 7 };
    uint8_t tag[4] = { 1, 2, 3, 4 };
    cr_assert_eq(TestDriver_Move_Marshal(&call, drv_id(), 2, pt, tag), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnSuccess);
    cr_assert_eq(reply.status, kIOReturnSuccess);
    TestPoint got;
    uint8_t gtag[4];
    bool onSpecial = false;
    TestDriver_GetMove((TestDriver *)drv, &got, gtag, &onSpecial);
    cr_assert_eq(got.x, -5);
    cr_assert_eq(got.y, 7);
    cr_assert_eq(memcmp(gtag, tag, 4), 0);
    cr_assert(onSpecial, "QUEUENAME(Special): Move ran on the Special queue");
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);
}

Test(iig_driver, method_status_and_bad_calls)
{
    DKIPCMessage call, reply;
    cr_assert_eq(TestDriver_Fail_Marshal(&call, drv_id(), 3, (int32_t)kIOReturnNoDevice), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnSuccess);
    cr_assert_eq(reply.status, kIOReturnNoDevice, "the method's result travels in the reply");
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    /* a uint32_t argument out of range */
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id(), TestDriver_Add_ID, 4);
    DKIPCMessage_AddU64(&call, 1ull << 32);
    DKIPCMessage_AddU64(&call, 1);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnBadArgument);
    cr_assert_eq(reply.status, kIOReturnBadArgument);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    /* wrong argument count / type */
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id(), TestDriver_Add_ID, 5);
    DKIPCMessage_AddU64(&call, 1);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnBadArgument);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id(), TestDriver_SetName_ID, 6);
    DKIPCMessage_AddU64(&call, 1);
    DKIPCMessage_AddU64(&call, 1);
    DKIPCMessage_AddU64(&call, 1);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnBadArgument, "a U64 where a string is declared");
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    /* a struct of the wrong size */
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id(), TestDriver_Move_ID, 7);
    DKIPCMessage_AddBytes(&call, "abc", 3);
    DKIPCMessage_AddBytes(&call, "abcd", 4);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnBadArgument);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    /* an object argument of the wrong class: the driver itself where an OSAction is declared */
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id(), TestDriver_Ping_ID, 8);
    DKIPCMessage_AddObject(&call, drv_id());
    DKIPCMessage_AddU64(&call, 1);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnBadArgument);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    /* an unknown method */
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id(), 0x1234, 9);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnUnsupported);
    cr_assert_eq(reply.status, kIOReturnUnsupported);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);

    /* an object the driver was not given never reaches the dispatch */
    DKIPCMessage_Init(&call, kDKIPCCall, drv_id() + 1000, TestDriver_Fail_ID, 10);
    DKIPCMessage_AddU64(&call, 0);
    cr_assert_eq(DKIPC_Send(sv[0], &call), kIOReturnSuccess);
    DKIPCMessage in;
    DKIPCError e;
    cr_assert_eq(DKIPC_Recv(sv[1], table, &in, &e), kIOReturnNotFound);
    cr_assert_eq(e.offset, 16u);
    DKIPCMessage_Clear(&call);
}

Test(iig_driver, typed_action)
{
    DKIPCMessage call, reply;
    cr_assert_eq(TestDriver_ArmPing_Marshal(&call, drv_id(), 11), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnSuccess);
    cr_assert_eq(reply.status, kIOReturnSuccess);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);
    OSAction *a = TestDriver_GetAction((TestDriver *)drv);
    cr_assert_not_null(a);
    cr_assert_eq(OSAction_GetTypeID(a), TestDriver_Ping_ID, "TYPE(TestDriver::Ping)");

    int before = __atomic_load_n(&TestDriver_pings, __ATOMIC_SEQ_CST);
    cr_assert_eq(TestDriver_Pong_Invoke(a, 5), kIOReturnBadArgument, "invoked as the wrong type: refused");
    cr_assert_eq(TestDriver_OnPing_Invoke(a, 5), kIOReturnBadArgument, "its own method is not its type");
    cr_assert_eq(TestDriver_Ping_Invoke(a, 77), kIOReturnSuccess);
    for (int i = 0; i < 1000 && __atomic_load_n(&TestDriver_pings, __ATOMIC_SEQ_CST) == before; i++)
        usleep(2000);
    cr_assert_eq(__atomic_load_n(&TestDriver_pings, __ATOMIC_SEQ_CST), before + 1, "only the right type ran");
    cr_assert_eq(TestDriver_lastPing, 77u);

    /* an OSAction parameter declared TYPE(TestDriver::Ping): an action of another type is refused
     * by the generated dispatch before the implementation runs */
    OSAction *pong = NULL;
    cr_assert_eq(OSAction_Create((OSObject *)drv, TestDriver_Pong_ID, TestDriver_Pong_ID, NULL, 0, &pong),
                 kIOReturnSuccess);
    cr_assert_eq(DKIPCObjectTable_Add(table, OSObject_GetID((OSObject *)a), (OSObject *)a), kIOReturnSuccess);
    cr_assert_eq(DKIPCObjectTable_Add(table, OSObject_GetID((OSObject *)pong), (OSObject *)pong), kIOReturnSuccess);
    cr_assert_eq(TestDriver_SetCallback_Marshal(&call, drv_id(), 12, a), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnSuccess);
    cr_assert_eq(reply.status, kIOReturnSuccess);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);
    cr_assert_eq(TestDriver_SetCallback_Marshal(&call, drv_id(), 13, pong), kIOReturnSuccess);
    cr_assert_eq(round_trip(&call, &reply), kIOReturnBadArgument);
    cr_assert_eq(reply.status, kIOReturnBadArgument);
    DKIPCMessage_Clear(&call);
    DKIPCMessage_Clear(&reply);
    DKIPCObjectTable_Remove(table, OSObject_GetID((OSObject *)pong));
    DKIPCObjectTable_Remove(table, OSObject_GetID((OSObject *)a));
    OSAction_Cancel(pong, NULL, NULL);
    OSObject_Release((OSObject *)pong);
}

static void *host_thread(void *arg)
{
    (void)arg;
    DKIPCMessage in, out;
    DKIPCError e;
    if (DKIPC_Recv(sv[0], NULL, &in, &e) != kIOReturnSuccess)
        return (void *)"recv";
    const char *text = NULL;
    uint64_t level = 0;
    const char *bad = NULL;
    if (in.methodID != TestDriver_HostLog_ID || in.objectID != drv_id() ||
        DKIPCMessage_GetString(&in, 0, &text) != kIOReturnSuccess || strcmp(text, "hello host") != 0 ||
        DKIPCMessage_GetU64(&in, 1, &level) != kIOReturnSuccess || level != 3)
        bad = "content";
    DKIPCMessage_Init(&out, kDKIPCReply, in.objectID, in.methodID, in.sequence);
    DKIPCMessage_AddU64(&out, 99);
    if (DKIPC_Send(sv[0], &out) != kIOReturnSuccess)
        bad = "send";
    DKIPCMessage_Clear(&in);
    DKIPCMessage_Clear(&out);
    return (void *)bad;
}

Test(iig_driver, kernel_method_goes_to_the_host)
{
    uint64_t cookie = 0;
    DKIPC_SetHostConnection(-1);
    cr_assert_eq(TestDriver_HostLog((TestDriver *)drv, "hello host", 3, &cookie), kIOReturnNotReady);
    DKIPC_SetHostConnection(sv[1]);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, host_thread, NULL), 0);
    kern_return_t r = TestDriver_HostLog((TestDriver *)drv, "hello host", 3, &cookie);
    void *bad;
    pthread_join(t, &bad);
    DKIPC_SetHostConnection(-1);
    cr_assert_null(bad, "host saw: %s", (const char *)bad);
    cr_assert_eq(r, kIOReturnSuccess);
    cr_assert_eq(cookie, 99u);
    /* KERNEL methods are not in the driver's method table */
    cr_assert_null(OSClass_FindMethod(&TestDriver_Class, TestDriver_HostLog_ID));
}

/* The whole lifecycle over the socketpair through DKIPC_HandleMessage, as a driver process
 * serves its host: Create, Start with a provider, Call, Terminate, Free. */
static kern_return_t serve(DKIPCObjectTable *t, DKIPCMessage *m, DKIPCMessage *reply)
{
    cr_assert_eq(DKIPC_Send(sv[0], m), kIOReturnSuccess);
    DKIPCMessage_Clear(m);
    DKIPCMessage in, out;
    DKIPCError e;
    kern_return_t r = DKIPC_Recv(sv[1], t, &in, &e);
    if (r != kIOReturnSuccess) {
        DKIPCMessage_Init(reply, kDKIPCReply, 0, 0, 0);
        reply->status = r;
        return r;
    }
    r = DKIPC_HandleMessage(t, &in, &out);
    cr_assert_eq(out.status, r);
    cr_assert_eq(DKIPC_Send(sv[1], &out), kIOReturnSuccess);
    DKIPCMessage_Clear(&in);
    DKIPCMessage_Clear(&out);
    cr_assert_eq(DKIPC_Recv(sv[0], NULL, reply, &e), kIOReturnSuccess, "%s", e.message);
    return r;
}

Test(iig_driver, lifecycle_over_ipc)
{
    DKIPCObjectTable *t = DKIPCObjectTable_Create();
    cr_assert_eq(DKIPCObjectTable_Add(t, 1, (OSObject *)root), kIOReturnSuccess); /* the provider it was given */
    DKIPCMessage m, reply;

    DKIPCMessage_Init(&m, kDKIPCCreate, 500, 0, 1);
    DKIPCMessage_AddString(&m, "NoSuchClass");
    cr_assert_eq(serve(t, &m, &reply), kIOReturnNotFound);
    DKIPCMessage_Clear(&reply);

    DKIPCMessage_Init(&m, kDKIPCCreate, 500, 0, 2);
    DKIPCMessage_AddString(&m, "TestDriver");
    cr_assert_eq(serve(t, &m, &reply), kIOReturnSuccess);
    DKIPCMessage_Clear(&reply);
    IOService *svc = OSDynamicCast(IOService, DKIPCObjectTable_Lookup(t, 500));
    cr_assert_not_null(svc);
    cr_assert_eq(OSObject_GetClass((OSObject *)svc), &TestDriver_Class);

    DKIPCMessage_Init(&m, kDKIPCStart, 500, 0, 3);
    DKIPCMessage_AddObject(&m, 2); /* not given: refused by the decoder */
    cr_assert_eq(serve(t, &m, &reply), kIOReturnNotFound);
    DKIPCMessage_Clear(&reply);

    DKIPCMessage_Init(&m, kDKIPCStart, 500, 0, 4);
    DKIPCMessage_AddObject(&m, 1);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnSuccess);
    DKIPCMessage_Clear(&reply);
    cr_assert_eq(IOService_GetProvider(svc), root);
    cr_assert(IOService_IsRegistered(svc));

    cr_assert_eq(TestDriver_Add_Marshal(&m, 500, 5, 20, 22), kIOReturnSuccess);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnSuccess);
    uint64_t sum = 0;
    cr_assert_eq(DKIPCMessage_GetU64(&reply, 0, &sum), kIOReturnSuccess);
    cr_assert_eq(sum, 42u);
    cr_assert_eq(reply.sequence, 5u);
    DKIPCMessage_Clear(&reply);

    /* Start as a plain Call would bypass the lifecycle: refused */
    cr_assert_eq(TestDriver_Start_Marshal(&m, 500, 55, root), kIOReturnSuccess);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnNotPermitted);
    DKIPCMessage_Clear(&reply);

    /* a method of the superclass that no generated class declares */
    DKIPCMessage_Init(&m, kDKIPCCall, 500, IOService_NewUserClient_ID, 6);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnUnsupported);
    DKIPCMessage_Clear(&reply);

    DKIPCMessage_Init(&m, kDKIPCTerminate, 500, 0, 7);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnSuccess);
    DKIPCMessage_Clear(&reply);
    for (int i = 0; i < 500 && IOService_GetState(svc) != kIOServiceStateStopped; i++)
        usleep(2000);
    cr_assert_eq(IOService_GetState(svc), kIOServiceStateStopped);

    int frees = TestDriver_frees;
    DKIPCMessage_Init(&m, kDKIPCFree, 500, 0, 8);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnSuccess);
    DKIPCMessage_Clear(&reply);
    cr_assert_eq(TestDriver_frees, frees + 1, "the last reference was the table's");

    DKIPCMessage_Init(&m, kDKIPCCall, 500, TestDriver_Add_ID, 9);
    cr_assert_eq(serve(t, &m, &reply), kIOReturnNotFound, "a freed id cannot be named");
    DKIPCMessage_Clear(&reply);
    DKIPCObjectTable_Free(t);
}
