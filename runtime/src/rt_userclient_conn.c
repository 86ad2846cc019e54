/* The driver side of user-client connections: one thread per connection reads the app's
 * calls (DKIPC messages, DKUserClientProtocol.h), runs them through IOUserClient's host entry
 * points (the dispatch-table checks happen there, on the user client's queue) and replies;
 * async completions come back from the driver's queues through an OSAction per async call.
 *
 * Lifetime: a connection is in a global list under `conns_lock` while it is served and holds
 * a reference count; a completion looks its connection up by id (never by pointer), so an
 * action the driver keeps after the app left finds nothing and sends nothing. */
#include "rt_internal.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>
#include <sysext/driverkit/DKUserClientProtocol.h>

#include "rt_userclient_conn.h"

_Static_assert(DK_UC_METHOD_EXTERNAL == IOUserClient_ExternalMethod_ID, "protocol method id");
_Static_assert(DK_UC_METHOD_MEMORY == IOUserClient_CopyClientMemoryForType_ID, "protocol method id");
_Static_assert(DK_UC_METHOD_COMPLETION == IOUserClient_AsyncCompletion_ID, "protocol method id");
_Static_assert(DK_UC_MAX_SCALARS == kIOUserClientScalarArrayCountMax, "scalar limit");
_Static_assert(DK_UC_MAX_ASYNC_ARGS == kIOUserClientAsyncArgumentsCountMax, "async limit");

struct uc_conn {
    struct uc_conn *next;
    uint64_t id;
    unsigned refs; /* under conns_lock */
    int fd;
    IOUserClient *uc;
    unsigned inflight; /* calls queued on the user client's queue, under conns_lock */
    pthread_cond_t drained;
};

/* At most this many calls of one connection wait on the driver's queue at a time. */
#define UC_MAX_INFLIGHT 16u

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uc_conn *conns;
static uint64_t next_conn_id = 1;

/* What an async call's action carries (its reference storage). */
struct uc_async_ref {
    uint64_t conn_id;
    uint64_t async_ref;
    uint64_t sequence;
};

static void conn_unref(struct uc_conn *c)
{
    pthread_mutex_lock(&conns_lock);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&conns_lock);
    if (!last)
        return;
    close(c->fd);
    OSObject_Release((OSObject *)c->uc);
    pthread_cond_destroy(&c->drained);
    free(c);
}

static struct uc_conn *conn_find(uint64_t id)
{
    pthread_mutex_lock(&conns_lock);
    struct uc_conn *c = conns;
    while (c && c->id != id)
        c = c->next;
    if (c)
        c->refs++;
    pthread_mutex_unlock(&conns_lock);
    return c;
}

static void conn_unlink(struct uc_conn *c)
{
    pthread_mutex_lock(&conns_lock);
    for (struct uc_conn **pp = &conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    pthread_mutex_unlock(&conns_lock);
}

size_t rt_uc_conn_count(void)
{
    size_t n = 0;
    pthread_mutex_lock(&conns_lock);
    for (struct uc_conn *c = conns; c; c = c->next)
        n++;
    pthread_mutex_unlock(&conns_lock);
    return n;
}

/* TYPE(IOUserClient::AsyncCompletion) handler of the actions we give the driver: runs on the
 * user client's queue and forwards the completion to the app. */
static void completion_handler(OSObject *target, OSAction *action, IOReturn status, const uint64_t *data,
                               uint32_t count)
{
    (void)target;
    const struct uc_async_ref *ref = OSAction_GetReference(action);
    if (!ref || OSAction_GetReferenceSize(action) != sizeof(*ref))
        return;
    struct uc_conn *c = conn_find(ref->conn_id);
    if (!c)
        return; /* the app is gone */
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCompletion, ref->async_ref, IOUserClient_AsyncCompletion_ID, ref->sequence);
    m.status = status;
    kern_return_t r = kIOReturnSuccess;
    for (uint32_t i = 0; i < count && i < DK_UC_MAX_ASYNC_ARGS && r == kIOReturnSuccess; i++)
        r = DKIPCMessage_AddU64(&m, data[i]);
    if (r == kIOReturnSuccess)
        (void)DKIPC_Send(c->fd, &m); /* a failed send means the app left: nobody to tell */
    DKIPCMessage_Clear(&m);
    conn_unref(c);
}

static kern_return_t get_u64(const DKIPCMessage *m, uint32_t i, uint64_t *v)
{
    return DKIPCMessage_GetU64(m, i, v);
}

/* One ExternalMethod call on its way through the user client's queue. */
struct em_work {
    struct uc_conn *conn; /* a reference */
    DKIPCMessage msg;     /* the call (owned) */
    IODispatchQueue *queue;
};

static void send_reply(struct uc_conn *c, DKIPCMessage *reply, uint64_t mid, uint64_t seq, kern_return_t r)
{
    if (r != kIOReturnSuccess) {
        DKIPCMessage_Clear(reply);
        DKIPCMessage_Init(reply, kDKIPCReply, DK_UC_CONNECTION_ID, mid, seq);
    }
    reply->status = r;
    if (DKIPC_Send(c->fd, reply) != kIOReturnSuccess)
        (void)shutdown(c->fd, SHUT_RDWR); /* the app left or cannot take it: the connection ends */
    DKIPCMessage_Clear(reply);
}

/* ExternalMethod, on the user client's external-method queue: decode the call (layout in
 * DKUserClientProtocol.h), run it with dispatch = NULL as the system does (the driver's
 * override checks the arguments against its dispatch table before its function runs) and
 * reply from here, so a call costs one hand-off between threads, not two. */
static kern_return_t run_external_method(struct uc_conn *c, const DKIPCMessage *m, DKIPCMessage *reply)
{
    uint64_t sel = 0, cap = 0, smax = 0, aref = 0;
    const void *in = NULL;
    size_t inlen = 0;
    if (m->argCount < DK_UC_ARG_SCALARS_IN || m->argCount > DK_UC_ARG_SCALARS_IN + DK_UC_MAX_SCALARS ||
        get_u64(m, DK_UC_ARG_SELECTOR, &sel) || get_u64(m, DK_UC_ARG_SCALAR_OUT_CAP, &cap) ||
        get_u64(m, DK_UC_ARG_STRUCT_OUT_MAX, &smax) || get_u64(m, DK_UC_ARG_ASYNC_REF, &aref) ||
        DKIPCMessage_GetBytes(m, DK_UC_ARG_STRUCT_IN, &in, &inlen) || cap > DK_UC_MAX_SCALARS ||
        smax > DK_UC_MAX_STRUCT || inlen > DK_UC_MAX_STRUCT)
        return kIOReturnBadArgument;
    uint64_t sin[DK_UC_MAX_SCALARS] = { 0 }, sout[DK_UC_MAX_SCALARS] = { 0 };
    uint32_t nin = m->argCount - DK_UC_ARG_SCALARS_IN;
    for (uint32_t i = 0; i < nin; i++)
        if (get_u64(m, DK_UC_ARG_SCALARS_IN + i, &sin[i]))
            return kIOReturnBadArgument;
    if (IOService_GetState(&c->uc->service) != kIOServiceStateStarted)
        return kIOReturnNotReady;

    IOUserClientMethodArguments a;
    memset(&a, 0, sizeof(a));
    a.version = kIOUserClientMethodArgumentsCurrentVersion;
    a.selector = sel;
    a.scalarInput = sin;
    a.scalarInputCount = nin;
    a.scalarOutput = sout;
    a.scalarOutputCount = (uint32_t)cap;
    a.structureOutputMaximumSize = smax;
    kern_return_t r = kIOReturnSuccess;
    OSData *sd = NULL;
    OSAction *act = NULL;
    if (inlen && !(sd = OSData_WithBytes(in, inlen)))
        return kIOReturnNoMemory;
    a.structureInput = sd;
    if (aref) {
        r = OSAction_Create((OSObject *)c->uc, IOUserClient_ExternalMethod_ID, IOUserClient_AsyncCompletion_ID,
                            (OSMethodFunction)completion_handler, sizeof(struct uc_async_ref), &act);
        if (r != kIOReturnSuccess)
            goto out;
        struct uc_async_ref *ref = OSAction_GetReference(act);
        ref->conn_id = c->id;
        ref->async_ref = aref;
        ref->sequence = m->sequence;
        a.completion = act;
    }
    r = IOUserClient_ExternalMethod(c->uc, sel, &a, NULL, NULL, NULL);
    if (r != kIOReturnSuccess)
        goto out;
    if (a.scalarOutputCount > cap) {
        r = kIOReturnInternalError; /* the driver claims more outputs than there is room for */
        goto out;
    }
    const void *outp = a.structureOutput ? OSData_GetBytesNoCopy(a.structureOutput) : NULL;
    size_t outlen = a.structureOutput ? OSData_GetLength(a.structureOutput) : 0;
    if (outlen > smax) {
        r = kIOReturnNoSpace;
        goto out;
    }
    if ((r = DKIPCMessage_AddBytes(reply, outp, outlen)) != kIOReturnSuccess)
        goto out;
    for (uint32_t i = 0; i < a.scalarOutputCount && r == kIOReturnSuccess; i++)
        r = DKIPCMessage_AddU64(reply, sout[i]);
out:
    OSObject_Release((OSObject *)a.structureOutput);
    OSObject_Release((OSObject *)sd);
    OSObject_Release((OSObject *)act);
    return r;
}

static void em_work_run(void *arg)
{
    struct em_work *w = arg;
    struct uc_conn *c = w->conn;
    DKIPCMessage reply;
    DKIPCMessage_Init(&reply, kDKIPCReply, DK_UC_CONNECTION_ID, w->msg.methodID, w->msg.sequence);
    kern_return_t r = run_external_method(c, &w->msg, &reply);
    send_reply(c, &reply, w->msg.methodID, w->msg.sequence, r);
    DKIPCMessage_Clear(&w->msg);
    OSObject_Release((OSObject *)w->queue);
    free(w);
    pthread_mutex_lock(&conns_lock);
    c->inflight--;
    pthread_cond_broadcast(&c->drained);
    pthread_mutex_unlock(&conns_lock);
    conn_unref(c);
}

/* Hand an ExternalMethod call (consumed) to the user client's queue. kIOReturnSuccess when
 * queued (the reply comes from there), else the error to reply with. */
static kern_return_t queue_external_method(struct uc_conn *c, DKIPCMessage *m)
{
    IODispatchQueue *q = rt_object_copy_queue_for_method((OSObject *)c->uc, IOUserClient_ExternalMethod_ID);
    if (!q)
        return kIOReturnNotReady;
    struct em_work *w = calloc(1, sizeof(*w));
    if (!w) {
        OSObject_Release((OSObject *)q);
        return kIOReturnNoMemory;
    }
    pthread_mutex_lock(&conns_lock);
    while (c->inflight >= UC_MAX_INFLIGHT)
        pthread_cond_wait(&c->drained, &conns_lock);
    c->inflight++;
    c->refs++;
    pthread_mutex_unlock(&conns_lock);
    w->conn = c;
    w->msg = *m; /* moves the payload and descriptors */
    memset(m, 0, sizeof(*m));
    w->queue = q;
    kern_return_t r = IODispatchQueue_DispatchAsync(q, em_work_run, w);
    if (r != kIOReturnSuccess) {
        *m = w->msg; /* back to the caller, who clears it */
        OSObject_Release((OSObject *)q);
        free(w);
        pthread_mutex_lock(&conns_lock);
        c->inflight--;
        c->refs--; /* the serving thread still holds one */
        pthread_mutex_unlock(&conns_lock);
        return r == kIOReturnAborted ? kIOReturnNotReady : r;
    }
    return kIOReturnSuccess;
}

/* CopyClientMemoryForType on the user client's queue; the reply carries the memfd, which is
 * borrowed from the descriptor, so on success it is sent from here (*sent). */
static kern_return_t do_copy_memory(struct uc_conn *c, const DKIPCMessage *m, DKIPCMessage *reply, bool *sent)
{
    *sent = false;
    uint64_t type = 0, opts = 0, len = 0;
    if (m->argCount != 1 || get_u64(m, 0, &type))
        return kIOReturnBadArgument;
    IOMemoryDescriptor *md = NULL;
    kern_return_t r = IOUserClient_HostCopyClientMemoryForType(c->uc, type, &opts, &md);
    if (r != kIOReturnSuccess)
        return r;
    int fd = IOMemoryDescriptor_GetFD(md);
    if (fd < 0 || (r = IOMemoryDescriptor_GetLength(md, &len)) != kIOReturnSuccess) {
        r = fd < 0 ? kIOReturnUnsupported : r; /* not a memfd-backed descriptor */
        goto out;
    }
    if ((r = DKIPCMessage_AddU64(reply, opts)) == kIOReturnSuccess &&
        (r = DKIPCMessage_AddU64(reply, len)) == kIOReturnSuccess)
        r = DKIPCMessage_AddFD(reply, fd);
    if (r != kIOReturnSuccess)
        goto out;
    /* the fd is borrowed from md: send before releasing it */
    reply->status = kIOReturnSuccess;
    if (DKIPC_Send(c->fd, reply) != kIOReturnSuccess)
        r = kIOReturnIPCError;
    else
        *sent = true;
out:
    OSObject_Release((OSObject *)md);
    return r;
}

static void *conn_thread(void *arg)
{
    struct uc_conn *c = arg;
    for (;;) {
        DKIPCMessage m, reply;
        DKIPCError err;
        kern_return_t r = DKIPC_Recv(c->fd, NULL, &m, &err);
        if (r != kIOReturnSuccess)
            break; /* peer closed, I/O error or a malformed message: the connection ends */
        if (m.type != kDKIPCCall || m.objectID != DK_UC_CONNECTION_ID) {
            DKIPCMessage_Clear(&m);
            break;
        }
        uint64_t mid = m.methodID, seq = m.sequence;
        if (mid == IOUserClient_ExternalMethod_ID) {
            r = queue_external_method(c, &m);
            DKIPCMessage_Clear(&m);
            if (r == kIOReturnSuccess)
                continue;
            DKIPCMessage_Init(&reply, kDKIPCReply, DK_UC_CONNECTION_ID, mid, seq);
            send_reply(c, &reply, mid, seq, r);
            continue;
        }
        /* wait for queued calls, so replies keep the order of the calls */
        pthread_mutex_lock(&conns_lock);
        while (c->inflight)
            pthread_cond_wait(&c->drained, &conns_lock);
        pthread_mutex_unlock(&conns_lock);
        DKIPCMessage_Init(&reply, kDKIPCReply, DK_UC_CONNECTION_ID, mid, seq);
        bool sent = false;
        if (mid == IOUserClient_CopyClientMemoryForType_ID)
            r = do_copy_memory(c, &m, &reply, &sent);
        else
            r = kIOReturnUnsupported;
        DKIPCMessage_Clear(&m);
        if (sent)
            DKIPCMessage_Clear(&reply);
        else
            send_reply(c, &reply, mid, seq, r);
    }
    conn_unlink(c);
    (void)shutdown(c->fd, SHUT_RDWR);
    (void)IOService_Terminate(&c->uc->service, 0);
    conn_unref(c);
    return NULL;
}

kern_return_t rt_uc_conn_open(IOService *service, uint32_t type, int fd)
{
    if (fd < 0)
        return kIOReturnBadArgument;
    if (!service) {
        close(fd);
        return kIOReturnBadArgument;
    }
    IOUserClient *uc = NULL;
    kern_return_t r = IOService_HostNewUserClient(service, type, &uc);
    if (r != kIOReturnSuccess) {
        close(fd);
        return r;
    }
    struct uc_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        (void)IOService_Terminate(&uc->service, 0);
        OSObject_Release((OSObject *)uc);
        close(fd);
        return kIOReturnNoMemory;
    }
    c->fd = fd;
    c->uc = uc;
    pthread_cond_init(&c->drained, NULL);
    c->refs = 1; /* the serving thread's */
    pthread_mutex_lock(&conns_lock);
    c->id = next_conn_id++;
    c->next = conns;
    conns = c;
    pthread_mutex_unlock(&conns_lock);
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, conn_thread, c);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        conn_unlink(c);
        (void)IOService_Terminate(&uc->service, 0);
        conn_unref(c);
        return kIOReturnNoResources;
    }
    return kIOReturnSuccess;
}
