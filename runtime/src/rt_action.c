#include "rt_internal.h"

struct OSAction {
    OSObject object;
    pthread_mutex_t lock;
    OSObject *target;
    uint64_t target_msgid, type_id;
    OSMethodFunction fn;
    void *reference;
    size_t reference_size;
    bool cancelled, completion_ran;
    uint32_t inflight; /* invocations queued or running */
    OSActionCancelHandler cancel_fn;
    void *cancel_ctx;
};

static bool action_init(OSObject *o)
{
    if (!OSObject_SuperInit(&OSAction_Class, o))
        return false;
    pthread_mutex_init(&((OSAction *)o)->lock, NULL);
    return true;
}

static void action_free(OSObject *o)
{
    OSAction *a = (OSAction *)o;
    OSObject_Release(a->target);
    free(a->reference);
    pthread_mutex_destroy(&a->lock);
    OSObject_SuperFree(&OSAction_Class, o);
}

const OSClass OSAction_Class = {
    .name = "OSAction",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(OSAction),
    .init = action_init,
    .free = action_free,
};

kern_return_t OSAction_Create(OSObject *target, uint64_t targetMsgID, uint64_t msgID,
                              OSMethodFunction function, size_t referenceSize, OSAction **action)
{
    if (!target || !action)
        return kIOReturnBadArgument;
    if (!function) {
        const OSMethod *m = OSClass_FindMethod(target->meta, targetMsgID);
        if (!m)
            return kIOReturnBadArgument;
        function = m->function;
    }
    OSObject *o = NULL;
    kern_return_t ret = OSObject_Alloc(&OSAction_Class, &o);
    if (ret != kIOReturnSuccess)
        return ret;
    OSAction *a = (OSAction *)o;
    if (referenceSize) {
        a->reference = calloc(1, referenceSize);
        if (!a->reference) {
            OSObject_Release(o);
            return kIOReturnNoMemory;
        }
        a->reference_size = referenceSize;
    }
    a->target = OSObject_Retain(target);
    a->target_msgid = targetMsgID;
    a->type_id = msgID;
    a->fn = function;
    *action = a;
    return kIOReturnSuccess;
}

struct invocation {
    OSAction *action;
    rt_action_invoker invoker;
    size_t size;
    uint64_t args[]; /* aligned for any argument struct */
};

/* One invocation is over (ran or dropped): the last one after a cancel completes it. */
static void invocation_done(OSAction *a)
{
    OSActionCancelHandler fn = NULL;
    void *ctx = NULL;
    OSObject *target = NULL;
    bool complete = false;
    pthread_mutex_lock(&a->lock);
    a->inflight--;
    if (a->cancelled && a->inflight == 0 && !a->completion_ran) {
        a->completion_ran = complete = true;
        fn = a->cancel_fn;
        ctx = a->cancel_ctx;
        target = a->target;
        a->target = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    if (complete) {
        if (fn)
            fn(ctx);
        OSObject_Release(target);
    }
}

static void run_invocation(void *arg)
{
    struct invocation *inv = arg;
    OSAction *a = inv->action;
    pthread_mutex_lock(&a->lock);
    bool run = !a->cancelled;
    OSObject *target = OSObject_Retain(a->target);
    pthread_mutex_unlock(&a->lock);
    if (run)
        inv->invoker(a, target, a->fn, inv->args);
    OSObject_Release(target);
    invocation_done(a);
    free(inv);
    OSObject_Release(&a->object);
}

kern_return_t rt_action_invoke(OSAction *a, uint64_t typeID, rt_action_invoker invoker,
                               const void *args, size_t argsSize, unsigned flags)
{
    if (!a || !invoker || (argsSize && !args))
        return kIOReturnBadArgument;
    if (a->type_id != typeID)
        return kIOReturnBadArgument;
    size_t total;
    if (DK_ADD_OVERFLOW(sizeof(struct invocation), argsSize, &total))
        return kIOReturnBadArgument;
    struct invocation *inv = calloc(1, total);
    if (!inv)
        return kIOReturnNoMemory;
    if (argsSize)
        memcpy(inv->args, args, argsSize);
    inv->size = argsSize;
    inv->invoker = invoker;

    pthread_mutex_lock(&a->lock);
    if (a->cancelled) {
        pthread_mutex_unlock(&a->lock);
        free(inv);
        return kIOReturnAborted;
    }
    a->inflight++; /* keeps the target until this invocation is over */
    pthread_mutex_unlock(&a->lock);
    IODispatchQueue *q = rt_object_copy_queue_for_method(a->target, a->target_msgid);
    if (!q) {
        free(inv);
        invocation_done(a);
        return kIOReturnNotReady;
    }
    inv->action = (OSAction *)OSObject_Retain(&a->object);
    kern_return_t ret;
    if ((flags & RT_INVOKE_INLINE_IF_ON_QUEUE) && IODispatchQueue_OnQueue(q)) {
        run_invocation(inv);
        ret = kIOReturnSuccess;
    } else if (flags & RT_INVOKE_WAIT) {
        ret = IODispatchQueue_DispatchSync(q, run_invocation, inv);
    } else {
        ret = IODispatchQueue_DispatchAsync(q, run_invocation, inv);
    }
    if (ret != kIOReturnSuccess) {
        free(inv);
        invocation_done(a);
        OSObject_Release(&a->object);
    }
    OSObject_Release((OSObject *)q);
    return ret;
}

kern_return_t OSAction_Invoke(OSAction *action, uint64_t typeID, OSActionInvoker invoker,
                              const void *args, size_t argsSize)
{
    return rt_action_invoke(action, typeID, invoker, args, argsSize, 0);
}

kern_return_t OSAction_Cancel(OSAction *a, OSActionCancelHandler handler, void *context)
{
    if (!a)
        return kIOReturnBadArgument;
    OSObject *target = NULL;
    bool complete = false;
    pthread_mutex_lock(&a->lock);
    if (a->cancelled) {
        pthread_mutex_unlock(&a->lock);
        return kIOReturnAborted;
    }
    a->cancelled = true;
    a->cancel_fn = handler;
    a->cancel_ctx = context;
    if (a->inflight == 0) {
        a->completion_ran = complete = true;
        target = a->target;
        a->target = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    if (complete) {
        if (handler)
            handler(context);
        OSObject_Release(target);
    }
    return kIOReturnSuccess;
}

bool OSAction_IsCancelled(OSAction *a)
{
    if (!a)
        return true;
    pthread_mutex_lock(&a->lock);
    bool c = a->cancelled;
    pthread_mutex_unlock(&a->lock);
    return c;
}

void *OSAction_GetReference(OSAction *a)
{
    return a ? a->reference : NULL;
}
size_t OSAction_GetReferenceSize(OSAction *a)
{
    return a ? a->reference_size : 0;
}
uint64_t OSAction_GetTypeID(OSAction *a)
{
    return a ? a->type_id : 0;
}
OSObject *OSAction_GetTarget(OSAction *a)
{
    if (!a)
        return NULL;
    pthread_mutex_lock(&a->lock);
    OSObject *t = a->target;
    pthread_mutex_unlock(&a->lock);
    return t;
}
