/* The driver side of the protocol: a registry of generated per-class dispatch functions and
 * the handler of one host message (lifecycle: Create, Start, Stop, Terminate, Free; Call). */
#include "rt_internal.h"

#include <fcntl.h>

#include <sysext/driverkit/DKIPC.h>

#include "rt_userclient_conn.h"

#define MAX_DISPATCH 256

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const OSClass *cls;
    DKIPCDispatchFunction fn;
} reg[MAX_DISPATCH];
static size_t nreg;

kern_return_t DKIPC_RegisterDispatch(const OSClass *cls, DKIPCDispatchFunction fn)
{
    if (!cls || !fn)
        return kIOReturnBadArgument;
    kern_return_t r = kIOReturnSuccess;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nreg; i++)
        if (reg[i].cls == cls) {
            r = reg[i].fn == fn ? kIOReturnSuccess : kIOReturnPortExists;
            goto out;
        }
    if (nreg == MAX_DISPATCH)
        r = kIOReturnNoResources;
    else
    {
        reg[nreg].cls = cls;
        reg[nreg].fn = fn;
        nreg++;
    }
out:
    pthread_mutex_unlock(&reg_lock);
    return r;
}

static DKIPCDispatchFunction find_dispatch(const OSClass *cls)
{
    DKIPCDispatchFunction fn = NULL;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nreg && !fn; i++)
        if (reg[i].cls == cls)
            fn = reg[i].fn;
    pthread_mutex_unlock(&reg_lock);
    return fn;
}

static void reply_status(const DKIPCMessage *msg, DKIPCMessage *reply, kern_return_t status)
{
    DKIPCMessage_Init(reply, kDKIPCReply, msg->objectID, msg->methodID, msg->sequence);
    reply->status = status;
}

kern_return_t DKIPC_DispatchCall(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply)
{
    if (!obj || !msg || !reply)
        return kIOReturnBadArgument;
    /* most-derived class first; a class that does not declare the method answers Unsupported */
    for (const OSClass *cls = OSObject_GetClass(obj); cls; cls = cls->superClass) {
        DKIPCDispatchFunction fn = find_dispatch(cls);
        if (!fn)
            continue;
        kern_return_t r = fn(obj, msg, reply);
        if (r != kIOReturnUnsupported || reply->status != kIOReturnUnsupported)
            return r;
        DKIPCMessage_Clear(reply);
    }
    reply_status(msg, reply, kIOReturnUnsupported);
    return kIOReturnUnsupported;
}

static kern_return_t handle(DKIPCObjectTable *table, const DKIPCMessage *msg, DKIPCMessage *reply)
{
    OSObject *obj = DKIPCObjectTable_Lookup(table, msg->objectID);
    IOService *svc = obj ? OSDynamicCast(IOService, obj) : NULL;
    switch (msg->type) {
    case kDKIPCCreate: {
        const char *cls = NULL;
        if (obj)
            return kIOReturnPortExists; /* the id is taken */
        if (msg->argCount < 1 || DKIPCMessage_GetString(msg, 0, &cls) != kIOReturnSuccess)
            return kIOReturnBadArgument;
        IOService *created = NULL;
        kern_return_t r;
        /* a provider the host announces (IOUserResources, a USB nub, ...), else a driver class */
        DKIPCProviderFactory factory = DKIPC_FindProviderFactory(cls);
        if (factory) {
            r = factory(cls, (DKIPCMessage *)msg, &created);
        } else {
            /* a driver class, with its personality as properties (no descriptors) */
            OSDictionary *props = NULL;
            if (msg->fdCount)
                return kIOReturnBadArgument;
            if (msg->argCount > 1 && (r = DKIPC_CopyProviderProperties(msg, &props)) != kIOReturnSuccess)
                return r;
            r = IOService_Instantiate(cls, props, &created);
            if (props)
                OSObject_Release((OSObject *)props);
        }
        if (r == kIOReturnSuccess && !created)
            r = kIOReturnError;
        if (r != kIOReturnSuccess)
            return r;
        r = DKIPCObjectTable_Add(table, msg->objectID, (OSObject *)created);
        OSObject_Release((OSObject *)created);
        return r;
    }
    case kDKIPCStart: {
        OSObject *p = NULL;
        if (!svc)
            return kIOReturnBadArgument;
        if (msg->argCount > 1 || (msg->argCount == 1 && DKIPCMessage_GetObject(msg, 0, &p) != kIOReturnSuccess))
            return kIOReturnBadArgument;
        IOService *provider = p ? OSDynamicCast(IOService, p) : NULL;
        if (p && !provider)
            return kIOReturnBadArgument;
        return IOService_HostStart(svc, provider);
    }
    case kDKIPCStop:
    case kDKIPCTerminate:
        if (!svc || msg->argCount != 0)
            return kIOReturnBadArgument;
        return IOService_Terminate(svc, 0);
    case kDKIPCFree:
        if (msg->argCount != 0)
            return kIOReturnBadArgument;
        return DKIPCObjectTable_Remove(table, msg->objectID);
    case kDKIPCCall:
        if (!obj)
            return kIOReturnNotFound;
        /* the lifecycle goes through Start/Stop/Terminate, which keep the service's state */
        if (msg->methodID == IOService_Start_ID || msg->methodID == IOService_Stop_ID)
            return kIOReturnNotPermitted;
        return kIOReturnSuccess; /* handled by the caller */
    default:
        return kIOReturnUnsupported;
    }
}

kern_return_t DKIPC_HandleMessage(DKIPCObjectTable *table, const DKIPCMessage *msg, DKIPCMessage *reply)
{
    if (!table || !msg || !reply)
        return kIOReturnBadArgument;
    /* IOService::NewUserClient from the host: [0] U64 type, [1] FD the driver's end of the
     * app's connection (DKUserClientProtocol.h). Without these arguments it is an ordinary Call. */
    if (msg->type == kDKIPCCall && msg->methodID == IOService_NewUserClient_ID && msg->argCount == 2 &&
        msg->args[1].type == kDKIPCArgFD) {
        uint64_t type = 0;
        OSObject *obj = DKIPCObjectTable_Lookup(table, msg->objectID);
        IOService *svc = obj ? OSDynamicCast(IOService, obj) : NULL;
        kern_return_t r;
        int fd = -1;
        if (!svc)
            r = kIOReturnNotFound;
        else if (DKIPCMessage_GetU64(msg, 0, &type) != kIOReturnSuccess || type > UINT32_MAX ||
                 msg->args[1].value >= msg->fdCount)
            r = kIOReturnBadArgument;
        else if ((fd = fcntl(msg->fds[msg->args[1].value], F_DUPFD_CLOEXEC, 0)) < 0)
            r = kIOReturnNoResources;
        else
            r = rt_uc_conn_open(svc, (uint32_t)type, fd);
        reply_status(msg, reply, r);
        return r;
    }
    kern_return_t r = handle(table, msg, reply);
    if (r == kIOReturnSuccess && msg->type == kDKIPCCall)
        return DKIPC_DispatchCall(DKIPCObjectTable_Lookup(table, msg->objectID), msg, reply);
    reply_status(msg, reply, r);
    return r;
}
