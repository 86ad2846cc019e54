/* The host<->driver IPC codec: round trips, descriptor passing over a socketpair, the object
 * table, and malformed messages each refused with the expected code and byte offset. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>
#include <sysext/driverkit/DriverKit.h>

static DKIPCObjectTable *table;
static OSObject *objA, *objB;

static void setup(void)
{
    table = DKIPCObjectTable_Create();
    cr_assert_not_null(table);
    cr_assert_eq(OSObject_Alloc(&OSObject_Class, &objA), kIOReturnSuccess);
    cr_assert_eq(OSObject_Alloc(&OSObject_Class, &objB), kIOReturnSuccess);
    cr_assert_eq(DKIPCObjectTable_Add(table, 100, objA), kIOReturnSuccess);
    cr_assert_eq(DKIPCObjectTable_Add(table, 200, objB), kIOReturnSuccess);
}

static void teardown(void)
{
    DKIPCObjectTable_Free(table);
    OSObject_Release(objA);
    OSObject_Release(objB);
}

TestSuite(ipc, .init = setup, .fini = teardown);

/* Encode a call on object 100 with one argument of each kind but FD. */
static void encode_sample(uint8_t **buf, size_t *len)
{
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCall, 100, 0x1122334455667788ull, 7);
    cr_assert_eq(DKIPCMessage_AddU64(&m, 0xdeadbeefcafef00dull), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_AddBytes(&m, "abc", 3), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_AddString(&m, "hello"), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_AddObject(&m, 200), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_Encode(&m, buf, len), kIOReturnSuccess);
    DKIPCMessage_Clear(&m);
}

Test(ipc, round_trip)
{
    uint8_t *buf;
    size_t len;
    encode_sample(&buf, &len);
    /* 48 header + u64 16 + bytes(3) 16 + string(6) 16 + object 16 */
    cr_assert_eq(len, 48u + 64u);
    cr_assert_eq(buf[0], 'D');
    cr_assert_eq(buf[3], 'P');
    DKIPCMessage d;
    DKIPCError e;
    cr_assert_eq(DKIPCMessage_Decode(buf, len, NULL, 0, table, &d, &e), kIOReturnSuccess, "%s", e.message);
    cr_assert_eq(d.type, kDKIPCCall);
    cr_assert_eq(d.objectID, 100u);
    cr_assert_eq(d.methodID, 0x1122334455667788ull);
    cr_assert_eq(d.sequence, 7u);
    cr_assert_eq(d.argCount, 4u);
    uint64_t v;
    cr_assert_eq(DKIPCMessage_GetU64(&d, 0, &v), kIOReturnSuccess);
    cr_assert_eq(v, 0xdeadbeefcafef00dull);
    const void *p;
    size_t n;
    cr_assert_eq(DKIPCMessage_GetBytes(&d, 1, &p, &n), kIOReturnSuccess);
    cr_assert_eq(n, 3u);
    cr_assert_eq(memcmp(p, "abc", 3), 0);
    const char *s;
    cr_assert_eq(DKIPCMessage_GetString(&d, 2, &s), kIOReturnSuccess);
    cr_assert_str_eq(s, "hello");
    OSObject *o;
    cr_assert_eq(DKIPCMessage_GetObject(&d, 3, &o), kIOReturnSuccess);
    cr_assert_eq(o, objB);
    /* wrong type / index */
    cr_assert_eq(DKIPCMessage_GetU64(&d, 1, &v), kIOReturnBadArgument);
    cr_assert_eq(DKIPCMessage_GetU64(&d, 4, &v), kIOReturnBadArgument);
    /* re-encoding the decoded message gives the same bytes */
    uint8_t *buf2;
    size_t len2;
    cr_assert_eq(DKIPCMessage_Encode(&d, &buf2, &len2), kIOReturnSuccess);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(buf, buf2, len), 0);
    free(buf2);
    DKIPCMessage_Clear(&d);
    free(buf);
}

Test(ipc, reply_status_round_trip)
{
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCReply, 0, 0, 42);
    m.status = kIOReturnNotPermitted;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(DKIPCMessage_Encode(&m, &buf, &len), kIOReturnSuccess);
    DKIPCMessage_Clear(&m);
    DKIPCMessage d;
    cr_assert_eq(DKIPCMessage_Decode(buf, len, NULL, 0, table, &d, NULL), kIOReturnSuccess);
    cr_assert_eq(d.status, kIOReturnNotPermitted);
    cr_assert_eq(d.sequence, 42u);
    DKIPCMessage_Clear(&d);
    free(buf);
}

static void expect_refused(const uint8_t *buf, size_t len, kern_return_t code, size_t offset, const char *needle)
{
    DKIPCMessage d;
    DKIPCError e;
    kern_return_t r = DKIPCMessage_Decode(buf, len, NULL, 0, table, &d, &e);
    cr_assert_eq(r, code, "got %s (%s)", IOReturn_Name(r), e.message);
    cr_assert_eq(e.code, code);
    cr_assert_eq(e.offset, offset, "offset %zu: %s", e.offset, e.message);
    cr_assert_not_null(strstr(e.message, needle), "message: %s", e.message);
    cr_assert_eq(d.argCount, 0u);
    cr_assert_null(d.buf);
}

Test(ipc, truncated)
{
    uint8_t *buf;
    size_t len;
    encode_sample(&buf, &len);
    expect_refused(buf, 20, kIOReturnUnderrun, 20, "truncated: 20 bytes");
    /* header intact but length field agrees with the shorter buffer: the args run out */
    buf[8] = (uint8_t)(len - 8);
    expect_refused(buf, len - 8, kIOReturnUnderrun, 48 + 48 + 4, "argument 3: length 8 but 0 bytes left");
    free(buf);
}

Test(ipc, wrong_version_magic_type_reserved)
{
    uint8_t *buf;
    size_t len;
    encode_sample(&buf, &len);
    buf[4] = 2;
    expect_refused(buf, len, kIOReturnUnsupported, 4, "unsupported version 2");
    buf[4] = 1;
    buf[0] = 'X';
    expect_refused(buf, len, kIOReturnBadArgument, 0, "bad magic");
    buf[0] = 'D';
    buf[6] = 99;
    expect_refused(buf, len, kIOReturnBadArgument, 6, "unknown message type 99");
    buf[6] = kDKIPCCall;
    buf[44] = 1;
    expect_refused(buf, len, kIOReturnBadArgument, 44, "reserved");
    free(buf);
}

Test(ipc, length_lies)
{
    uint8_t *buf;
    size_t len;
    encode_sample(&buf, &len);
    buf[8] = (uint8_t)(len + 8);
    expect_refused(buf, len, kIOReturnBadArgument, 8, "length field 120 but 112 bytes received");
    buf[8] = (uint8_t)len;
    /* argument 1 (bytes) claims 200 bytes */
    buf[48 + 16 + 4] = 200;
    expect_refused(buf, len, kIOReturnUnderrun, 48 + 16 + 4, "argument 1: length 200 but");
    buf[48 + 16 + 4] = 3;
    /* u64 argument with length 4 */
    buf[48 + 4] = 4;
    expect_refused(buf, len, kIOReturnBadArgument, 52, "argument 0: length 4, a U64 has 8");
    buf[48 + 4] = 8;
    /* argCount too high: runs out of bytes */
    buf[14] = 5;
    expect_refused(buf, len, kIOReturnUnderrun, len, "argument 4: truncated header");
    buf[14] = 3;
    expect_refused(buf, len, kIOReturnBadArgument, 48 + 48, "16 trailing bytes after 3 arguments");
    buf[14] = 200;
    expect_refused(buf, len, kIOReturnBadArgument, 14, "argCount 200 exceeds");
    buf[14] = 4;
    /* padding of the bytes argument must be zero */
    buf[48 + 16 + 8 + 3] = 1;
    expect_refused(buf, len, kIOReturnBadArgument, 48 + 16 + 8 + 3, "nonzero padding");
    buf[48 + 16 + 8 + 3] = 0;
    /* string without its NUL */
    buf[48 + 32 + 8 + 5] = 'x';
    expect_refused(buf, len, kIOReturnBadArgument, 48 + 32 + 8, "string not NUL-terminated");
    free(buf);
}

Test(ipc, unknown_object_ids)
{
    uint8_t *buf;
    size_t len;
    encode_sample(&buf, &len);
    buf[16] = 101; /* header object id 101 */
    expect_refused(buf, len, kIOReturnNotFound, 16, "unknown object id 101");
    buf[16] = 100;
    buf[48 + 48 + 8] = 201; /* object argument */
    expect_refused(buf, len, kIOReturnNotFound, 48 + 48 + 8, "argument 3: unknown object id 201");
    /* once removed, an id is refused */
    buf[48 + 48 + 8] = 200;
    cr_assert_eq(DKIPCObjectTable_Remove(table, 200), kIOReturnSuccess);
    expect_refused(buf, len, kIOReturnNotFound, 48 + 48 + 8, "unknown object id 200");
    cr_assert_eq(DKIPCObjectTable_Remove(table, 200), kIOReturnNotFound);
    /* Create announces a new id: the header id need not be known */
    buf[6] = kDKIPCCreate;
    buf[16] = 55;
    cr_assert_eq(DKIPCObjectTable_Add(table, 200, objB), kIOReturnSuccess);
    DKIPCMessage d;
    cr_assert_eq(DKIPCMessage_Decode(buf, len, NULL, 0, table, &d, NULL), kIOReturnSuccess);
    DKIPCMessage_Clear(&d);
    free(buf);
}

Test(ipc, object_table_grows_and_refuses_duplicates)
{
    for (uint64_t id = 1000; id < 1500; id++)
        cr_assert_eq(DKIPCObjectTable_Add(table, id, objA), kIOReturnSuccess);
    cr_assert_eq(DKIPCObjectTable_GetCount(table), 502u);
    cr_assert_eq(DKIPCObjectTable_Add(table, 1234, objB), kIOReturnPortExists);
    cr_assert_eq(DKIPCObjectTable_Add(table, 0, objB), kIOReturnBadArgument);
    for (uint64_t id = 1000; id < 1500; id += 2)
        cr_assert_eq(DKIPCObjectTable_Remove(table, id), kIOReturnSuccess);
    for (uint64_t id = 1000; id < 1500; id++)
        cr_assert_eq(DKIPCObjectTable_Lookup(table, id), (id & 1) ? objA : NULL, "id %lu", (unsigned long)id);
    cr_assert_eq(OSObject_GetRetainCount(objA), 2u + 250u);
    cr_assert_null(DKIPCObjectTable_Lookup(table, 0));
}

Test(ipc, builder_limits)
{
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCall, 100, 1, 1);
    for (unsigned i = 0; i < DK_IPC_MAX_ARGS; i++)
        cr_assert_eq(DKIPCMessage_AddU64(&m, i), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_AddU64(&m, 0), kIOReturnNoSpace);
    DKIPCMessage_Clear(&m);
    DKIPCMessage_Init(&m, kDKIPCCall, 100, 1, 1);
    static uint8_t big[DK_IPC_MAX_MESSAGE];
    cr_assert_eq(DKIPCMessage_AddBytes(&m, big, sizeof(big)), kIOReturnNoSpace);
    cr_assert_eq(DKIPCMessage_AddBytes(&m, big, DK_IPC_MAX_MESSAGE - DK_IPC_HEADER_SIZE - 8), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_AddU64(&m, 0), kIOReturnNoSpace);
    cr_assert_eq(DKIPCMessage_AddFD(&m, -1), kIOReturnBadArgument);
    cr_assert_eq(DKIPCMessage_AddObject(&m, 0), kIOReturnBadArgument);
    DKIPCMessage_Clear(&m);
}

Test(ipc, fd_passing_over_socketpair)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "ping", 4), 4);

    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCall, 100, 9, 3);
    cr_assert_eq(DKIPCMessage_AddString(&m, "memory"), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_AddFD(&m, p[0]), kIOReturnSuccess);
    cr_assert_eq(DKIPC_Send(sv[0], &m), kIOReturnSuccess);
    DKIPCMessage_Clear(&m); /* fds are borrowed by the builder */
    close(p[0]);

    DKIPCMessage d;
    DKIPCError e;
    cr_assert_eq(DKIPC_Recv(sv[1], table, &d, &e), kIOReturnSuccess, "%s", e.message);
    cr_assert_eq(d.fdCount, 1u);
    int fd;
    cr_assert_eq(DKIPCMessage_TakeFD(&d, 1, &fd), kIOReturnSuccess);
    cr_assert_eq(DKIPCMessage_TakeFD(&d, 1, &fd), kIOReturnBadArgument); /* taken once */
    DKIPCMessage_Clear(&d);
    char got[4];
    cr_assert_eq(read(fd, got, 4), 4); /* still open after Clear */
    cr_assert_eq(memcmp(got, "ping", 4), 0);
    close(fd);
    close(p[1]);

    /* an fd attached without an FD argument is refused, and closed */
    uint8_t *buf;
    size_t len;
    encode_sample(&buf, &len);
    int q[2];
    cr_assert_eq(pipe(q), 0);
    cr_assert_eq(DKIPCMessage_Decode(buf, len, &q[0], 1, table, &d, &e), kIOReturnBadArgument);
    cr_assert_eq(e.offset, 12u, "%s", e.message);
    cr_assert_eq(fcntl(q[0], F_GETFD), -1); /* closed by the decoder */
    close(q[1]);
    free(buf);

    /* peer closed: end of stream */
    close(sv[0]);
    cr_assert_eq(DKIPC_Recv(sv[1], table, &d, &e), kIOReturnNotReady);
    close(sv[1]);
}

Test(ipc, unknown_object_over_socket_is_refused)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCStart, 4242, 0, 1);
    cr_assert_eq(DKIPCMessage_AddObject(&m, 100), kIOReturnSuccess);
    cr_assert_eq(DKIPC_Send(sv[0], &m), kIOReturnSuccess);
    DKIPCMessage_Clear(&m);
    DKIPCMessage d;
    DKIPCError e;
    cr_assert_eq(DKIPC_Recv(sv[1], table, &d, &e), kIOReturnNotFound);
    cr_assert_eq(e.offset, 16u);
    cr_assert_str_eq(e.message, "IPC message offset 16: unknown object id 4242");
    close(sv[0]);
    close(sv[1]);
}
