#include "rt_internal.h"

static kern_return_t base_external_method(IOUserClient *self, uint64_t selector,
                                          IOUserClientMethodArguments *args,
                                          const IOUserClientMethodDispatch *d, OSObject *target,
                                          void *reference)
{
    (void)self;
    (void)selector;
    if (!d)
        return kIOReturnUnsupported;
    if (!args)
        return kIOReturnBadArgument;
    const uint32_t any = kIOUserClientVariableStructureSize;
    if (d->checkCompletionExists != any && ((d->checkCompletionExists != 0) != (args->completion != NULL)))
        return kIOReturnBadArgument;
    if (d->checkScalarInputCount != any && d->checkScalarInputCount != args->scalarInputCount)
        return kIOReturnBadArgument;
    if (d->checkStructureInputSize != any) {
        uint64_t in = 0;
        if (args->structureInput)
            in = OSData_GetLength(args->structureInput);
        else if (args->structureInputDescriptor &&
                 IOMemoryDescriptor_GetLength(args->structureInputDescriptor, &in) != kIOReturnSuccess)
            return kIOReturnBadArgument;
        if (d->checkStructureInputSize != in)
            return kIOReturnBadArgument;
    }
    if (d->checkScalarOutputCount != any && d->checkScalarOutputCount != args->scalarOutputCount)
        return kIOReturnBadArgument;
    if (d->checkStructureOutputSize != any && d->checkStructureOutputSize != args->structureOutputMaximumSize)
        return kIOReturnBadArgument;
    if (!d->function)
        return kIOReturnNoCompletion;
    return d->function(target, reference, args);
}

static kern_return_t base_copy_client_memory(IOUserClient *self, uint64_t type, uint64_t *options,
                                             IOMemoryDescriptor **memory)
{
    (void)self;
    (void)type;
    (void)options;
    (void)memory;
    return kIOReturnUnsupported;
}

static const OSMethod uc_methods[] = {
    OS_METHOD_QUEUE(IOUserClient_ExternalMethod_ID, base_external_method, kIOUserClientQueueNameExternalMethod),
    OS_METHOD(IOUserClient_CopyClientMemoryForType_ID, base_copy_client_memory),
};

const OSClass IOUserClient_Class = {
    .name = "IOUserClient",
    .superClass = &IOService_Class,
    .instanceSize = sizeof(IOUserClient),
    .methods = uc_methods,
    .methodCount = DK_ARRAY_SIZE(uc_methods),
};

static bool is_uc(IOUserClient *uc)
{
    return uc && OSObject_IsKindOf(&uc->service.object, &IOUserClient_Class);
}

kern_return_t IOUserClient_ExternalMethod(IOUserClient *self, uint64_t selector,
                                          IOUserClientMethodArguments *arguments,
                                          const IOUserClientMethodDispatch *dispatch, OSObject *target,
                                          void *reference)
{
    if (!is_uc(self))
        return kIOReturnBadArgument;
    const OSMethod *m = OSClass_FindMethod(self->service.object.meta, IOUserClient_ExternalMethod_ID);
    if (!m)
        return kIOReturnUnsupported;
    return ((IOUserClient_ExternalMethod_Fn)m->function)(self, selector, arguments, dispatch, target, reference);
}

kern_return_t IOUserClient_ExternalMethod_Super(const OSClass *cls, IOUserClient *self, uint64_t selector,
                                                IOUserClientMethodArguments *arguments,
                                                const IOUserClientMethodDispatch *dispatch,
                                                OSObject *target, void *reference)
{
    if (!is_uc(self) || !cls)
        return kIOReturnBadArgument;
    const OSMethod *m = OSClass_FindSuperMethod(cls, IOUserClient_ExternalMethod_ID);
    if (!m)
        return kIOReturnUnsupported;
    return ((IOUserClient_ExternalMethod_Fn)m->function)(self, selector, arguments, dispatch, target, reference);
}

kern_return_t IOUserClient_CopyClientMemoryForType(IOUserClient *self, uint64_t type, uint64_t *options,
                                                   IOMemoryDescriptor **memory)
{
    if (!is_uc(self))
        return kIOReturnBadArgument;
    const OSMethod *m = OSClass_FindMethod(self->service.object.meta, IOUserClient_CopyClientMemoryForType_ID);
    if (!m)
        return kIOReturnUnsupported;
    return ((IOUserClient_CopyClientMemoryForType_Fn)m->function)(self, type, options, memory);
}

kern_return_t IOUserClient_CopyClientMemoryForType_Super(const OSClass *cls, IOUserClient *self, uint64_t type,
                                                         uint64_t *options, IOMemoryDescriptor **memory)
{
    if (!is_uc(self) || !cls)
        return kIOReturnBadArgument;
    const OSMethod *m = OSClass_FindSuperMethod(cls, IOUserClient_CopyClientMemoryForType_ID);
    if (!m)
        return kIOReturnUnsupported;
    return ((IOUserClient_CopyClientMemoryForType_Fn)m->function)(self, type, options, memory);
}

struct completion_args {
    IOReturn status;
    uint32_t count;
    uint64_t data[kIOUserClientAsyncArgumentsCountMax];
};

static void completion_invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)
{
    struct completion_args *a = args;
    ((IOUserClient_AsyncCompletion_Handler)fn)(target, action, a->status, a->data, a->count);
}

kern_return_t IOUserClient_AsyncCompletion(IOUserClient *self, OSAction *action, IOReturn status,
                                           const uint64_t *asyncData, uint32_t asyncDataCount)
{
    (void)self;
    if (!action || asyncDataCount > kIOUserClientAsyncArgumentsCountMax || (asyncDataCount && !asyncData))
        return kIOReturnBadArgument;
    struct completion_args a = { .status = status, .count = asyncDataCount };
    if (asyncDataCount)
        memcpy(a.data, asyncData, asyncDataCount * sizeof(uint64_t));
    return rt_action_invoke(action, IOUserClient_AsyncCompletion_ID, completion_invoker, &a, sizeof(a), 0);
}

struct em_call {
    IOUserClient *uc;
    uint64_t selector;
    IOUserClientMethodArguments *args;
    kern_return_t ret;
};

static void em_on_queue(void *arg)
{
    struct em_call *c = arg;
    c->ret = IOUserClient_ExternalMethod(c->uc, c->selector, c->args, NULL, NULL, NULL);
}

kern_return_t IOUserClient_HostExternalMethod(IOUserClient *client, uint64_t selector,
                                              IOUserClientMethodArguments *args)
{
    if (!is_uc(client) || !args || args->version != kIOUserClientMethodArgumentsCurrentVersion)
        return kIOReturnBadArgument;
    if (args->scalarInputCount > kIOUserClientScalarArrayCountMax ||
        args->scalarOutputCount > kIOUserClientScalarArrayCountMax ||
        (args->scalarInputCount && !args->scalarInput) || (args->scalarOutputCount && !args->scalarOutput))
        return kIOReturnBadArgument;
    if (IOService_GetState(&client->service) != kIOServiceStateStarted)
        return kIOReturnNotReady;
    args->selector = selector;
    IODispatchQueue *q = rt_object_copy_queue_for_method(&client->service.object, IOUserClient_ExternalMethod_ID);
    if (!q)
        return kIOReturnNotReady;
    struct em_call c = { client, selector, args, kIOReturnError };
    kern_return_t r = rt_queue_run_sync(q, em_on_queue, &c);
    OSObject_Release((OSObject *)q);
    return r == kIOReturnSuccess ? c.ret : r;
}

struct mem_call {
    IOUserClient *uc;
    uint64_t type, *options;
    IOMemoryDescriptor **md;
    kern_return_t ret;
};

static void mem_on_queue(void *arg)
{
    struct mem_call *c = arg;
    c->ret = IOUserClient_CopyClientMemoryForType(c->uc, c->type, c->options, c->md);
}

kern_return_t IOUserClient_HostCopyClientMemoryForType(IOUserClient *client, uint64_t type, uint64_t *options,
                                                       IOMemoryDescriptor **memory)
{
    if (!is_uc(client) || !options || !memory)
        return kIOReturnBadArgument;
    IODispatchQueue *q =
        rt_object_copy_queue_for_method(&client->service.object, IOUserClient_CopyClientMemoryForType_ID);
    if (!q)
        return kIOReturnNotReady;
    IOMemoryDescriptor *md = NULL;
    uint64_t opts = *options;
    struct mem_call c = { client, type, &opts, &md, kIOReturnError };
    kern_return_t r = rt_queue_run_sync(q, mem_on_queue, &c);
    OSObject_Release((OSObject *)q);
    if (r == kIOReturnSuccess)
        r = c.ret;
    if (r == kIOReturnSuccess && !md)
        r = kIOReturnError;
    if (r != kIOReturnSuccess) {
        OSObject_Release((OSObject *)md);
        return r;
    }
    *options = opts;
    *memory = md;
    return kIOReturnSuccess;
}
