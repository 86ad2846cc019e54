#include <criterion/criterion.h>
#include <stdlib.h>

#include "rt_test.h"

/* A provider whose UserClientProperties name the user-client class, and the user client. */
static struct {
    int calls[8];
    uint64_t sum;
    bool on_em_queue;
    IODispatchQueue *em_queue;
    IOBufferMemoryDescriptor *shared;
    struct rt_counter completions;
    IOReturn status;
    uint64_t data[16];
    uint32_t count;
} T;

static kern_return_t sel_add(OSObject *target, void *reference, IOUserClientMethodArguments *args)
{
    (void)target;
    (void)reference;
    T.calls[0]++;
    args->scalarOutput[0] = args->scalarInput[0] + args->scalarInput[1];
    args->scalarOutputCount = 1;
    if (T.em_queue)
        T.on_em_queue = IODispatchQueue_OnQueue(T.em_queue);
    return kIOReturnSuccess;
}

static kern_return_t sel_sum_bytes(OSObject *target, void *reference, IOUserClientMethodArguments *args)
{
    (void)target;
    (void)reference;
    T.calls[1]++;
    const uint8_t *p = OSData_GetBytesNoCopy(args->structureInput);
    T.sum = 0;
    for (size_t i = 0; i < OSData_GetLength(args->structureInput); i++)
        T.sum += p[i];
    return kIOReturnSuccess;
}

static kern_return_t sel_async(OSObject *target, void *reference, IOUserClientMethodArguments *args)
{
    (void)reference;
    T.calls[2]++;
    uint64_t v[3] = { 1, 2, 3 };
    return IOUserClient_AsyncCompletion((IOUserClient *)target, args->completion, kIOReturnSuccess, v, 3);
}

static kern_return_t sel_struct_out(OSObject *target, void *reference, IOUserClientMethodArguments *args)
{
    (void)target;
    (void)reference;
    T.calls[4]++;
    args->structureOutput = OSData_WithBytes("0123456789abcdef", 16);
    return kIOReturnSuccess;
}

static const IOUserClientMethodDispatch table[] = {
    [0] = { sel_add, 0, 2, 0, 1, 0 },
    [1] = { sel_sum_bytes, 0, 0, kIOUserClientVariableStructureSize, 0, 0 },
    [2] = { sel_async, 1, 0, 0, 0, 0 },
    [3] = { NULL, 0, 0, 0, 0, 0 },
    [4] = { sel_struct_out, kIOUserClientVariableStructureSize, 0, 0, 0, 16 },
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
    if (type != 7)
        return kIOReturnBadArgument;
    *options |= kIOUserClientMemoryReadOnly;
    *memory = (IOMemoryDescriptor *)OSObject_Retain((OSObject *)T.shared); /* same one every time */
    return kIOReturnSuccess;
}

static const OSMethod TestUC_methods[] = {
    OS_METHOD(IOUserClient_ExternalMethod_ID, TestUC_ExternalMethod), /* QUEUENAME inherited */
    OS_METHOD(IOUserClient_CopyClientMemoryForType_ID, TestUC_CopyClientMemoryForType),
};
static const OSClass TestUC_Class = { "TestUC", &IOUserClient_Class, sizeof(IOUserClient), NULL, NULL,
                                      TestUC_methods, 2 };
OS_CLASS_REGISTER(TestUC_Class)

static IOService *provider;
static IOUserClient *uc;

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    T.completions = (struct rt_counter)RT_COUNTER_INIT;
    OSDictionary *props = OSDictionary_WithCapacity(1), *ucp = OSDictionary_WithCapacity(1);
    OSDictionary_SetStringValue(ucp, "IOUserClass", "TestUC");
    OSDictionary_SetObject(props, "UserClientProperties", (OSObject *)ucp);
    cr_assert_eq(IOService_Instantiate("IOService", props, &provider), kIOReturnSuccess);
    OSObject_Release((OSObject *)props);
    OSObject_Release((OSObject *)ucp);
    cr_assert_eq(IOService_HostStart(provider, NULL), kIOReturnSuccess);
    cr_assert_eq(IOService_HostNewUserClient(provider, 0, &uc), kIOReturnSuccess);
    cr_assert_str_eq(OSObject_GetClassName((OSObject *)uc), "TestUC");
    cr_assert_eq(IOService_GetProvider(&uc->service), provider);
}

static void teardown(void)
{
    IOService_Terminate(provider, 0);
    for (int i = 0; i < 1000 && IOService_GetState(&uc->service) != kIOServiceStateStopped; i++)
        rt_sleep_ms(2);
    OSObject_Release((OSObject *)uc);
    OSObject_Release((OSObject *)provider);
    OSObject_Release((OSObject *)T.shared);
}

TestSuite(runtime_userclient, .init = setup, .fini = teardown, .timeout = 30);

static IOUserClientMethodArguments args_init(void)
{
    IOUserClientMethodArguments a;
    memset(&a, 0, sizeof(a));
    a.version = kIOUserClientMethodArgumentsCurrentVersion;
    return a;
}

Test(runtime_userclient, good_call_passes_checks)
{
    uint64_t in[2] = { 40, 2 }, out[1] = { 0 };
    IOUserClientMethodArguments a = args_init();
    a.scalarInput = in;
    a.scalarInputCount = 2;
    a.scalarOutput = out;
    a.scalarOutputCount = 1;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnSuccess);
    cr_assert_eq(out[0], 42);
    cr_assert_eq(T.calls[0], 1);
}

Test(runtime_userclient, each_check_rejects_before_the_driver_runs)
{
    uint64_t in[3] = { 1, 2, 3 }, out[2] = { 0 };
    IOUserClientMethodArguments a;

    a = args_init(); /* scalar input count */
    a.scalarInput = in;
    a.scalarInputCount = 3;
    a.scalarOutput = out;
    a.scalarOutputCount = 1;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnBadArgument);

    a = args_init(); /* scalar output count */
    a.scalarInput = in;
    a.scalarInputCount = 2;
    a.scalarOutput = out;
    a.scalarOutputCount = 2;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnBadArgument);

    a = args_init(); /* structure input size */
    a.scalarInput = in;
    a.scalarInputCount = 2;
    a.scalarOutput = out;
    a.scalarOutputCount = 1;
    a.structureInput = OSData_WithBytes("x", 1);
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnBadArgument);
    OSObject_Release((OSObject *)a.structureInput);

    a = args_init(); /* structure output size */
    a.scalarInput = in;
    a.scalarInputCount = 2;
    a.scalarOutput = out;
    a.scalarOutputCount = 1;
    a.structureOutputMaximumSize = 8;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnBadArgument);

    a = args_init(); /* structure output size, exact required */
    a.structureOutputMaximumSize = 15;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 4, &a), kIOReturnBadArgument);

    cr_assert_eq(T.calls[0], 0, "the driver's function never ran");
    cr_assert_eq(T.calls[4], 0);
}

Test(runtime_userclient, completion_presence_is_checked)
{
    OSAction *act = NULL;
    cr_assert_eq(OSAction_Create((OSObject *)uc, 0, IOUserClient_AsyncCompletion_ID, (OSMethodFunction)sel_add, 0, &act),
                 kIOReturnSuccess);
    uint64_t in[2] = { 1, 2 }, out[1];
    IOUserClientMethodArguments a = args_init();
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 2, &a), kIOReturnBadArgument, "async selector needs a completion");
    a = args_init();
    a.scalarInput = in;
    a.scalarInputCount = 2;
    a.scalarOutput = out;
    a.scalarOutputCount = 1;
    a.completion = act;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnBadArgument, "sync selector refuses one");
    cr_assert_eq(T.calls[0] + T.calls[2], 0);
    OSObject_Release((OSObject *)act);
}

Test(runtime_userclient, variable_structure_size_accepted)
{
    uint8_t bytes[300];
    for (int i = 0; i < 300; i++)
        bytes[i] = 1;
    size_t sizes[] = { 0, 1, 17, 300 };
    for (size_t k = 0; k < 4; k++) {
        IOUserClientMethodArguments a = args_init();
        a.structureInput = OSData_WithBytes(bytes, sizes[k]);
        cr_assert_eq(IOUserClient_HostExternalMethod(uc, 1, &a), kIOReturnSuccess);
        cr_assert_eq(T.sum, sizes[k]);
        OSObject_Release((OSObject *)a.structureInput);
    }
    /* a descriptor's length counts as the input size */
    IOUserClientMethodArguments a = args_init();
    IOBufferMemoryDescriptor *md = NULL;
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, 64, 0, &md), kIOReturnSuccess);
    IOBufferMemoryDescriptor_SetLength(md, 5);
    a.structureInputDescriptor = (IOMemoryDescriptor *)md;
    a.structureOutputMaximumSize = 16;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 4, &a), kIOReturnBadArgument, "selector 4 wants no input");
    OSObject_Release((OSObject *)md);
    cr_assert_eq(T.calls[1], 4);
}

Test(runtime_userclient, structure_output_and_no_function)
{
    IOUserClientMethodArguments a = args_init();
    a.structureOutputMaximumSize = 16;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 4, &a), kIOReturnSuccess);
    cr_assert_eq(OSData_GetLength(a.structureOutput), 16);
    OSObject_Release((OSObject *)a.structureOutput);
    a = args_init();
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 3, &a), kIOReturnNoCompletion);
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 99, &a), kIOReturnBadArgument, "selector range");
    a.version = 1;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 3, &a), kIOReturnBadArgument, "argument block version");
    a = args_init();
    a.scalarInputCount = 17;
    uint64_t big[17] = { 0 };
    a.scalarInput = big;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnBadArgument, "more than 16 scalars");
    cr_assert_eq(IOUserClient_ExternalMethod(uc, 0, &a, NULL, NULL, NULL), kIOReturnBadArgument,
                 "the override range-checks");
}

Test(runtime_userclient, runs_on_the_external_method_queue)
{
    cr_assert_eq(IODispatchQueue_Create("em", 0, 0, &T.em_queue), kIOReturnSuccess);
    cr_assert_eq(IOService_SetDispatchQueue(&uc->service, kIOUserClientQueueNameExternalMethod, T.em_queue),
                 kIOReturnSuccess);
    uint64_t in[2] = { 1, 2 }, out[1];
    IOUserClientMethodArguments a = args_init();
    a.scalarInput = in;
    a.scalarInputCount = 2;
    a.scalarOutput = out;
    a.scalarOutputCount = 1;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 0, &a), kIOReturnSuccess);
    cr_assert(T.on_em_queue);
    OSObject_Release((OSObject *)T.em_queue);
}

static void on_completion(OSObject *target, OSAction *action, IOReturn status, const uint64_t *data, uint32_t count)
{
    (void)target;
    (void)action;
    T.status = status;
    T.count = count;
    memcpy(T.data, data, count * sizeof(uint64_t));
    rt_counter_add(&T.completions);
}

Test(runtime_userclient, async_completion_through_an_action)
{
    OSAction *act = NULL;
    cr_assert_eq(OSAction_Create((OSObject *)provider, 0, IOUserClient_AsyncCompletion_ID,
                                 (OSMethodFunction)on_completion, 0, &act),
                 kIOReturnSuccess);
    IOUserClientMethodArguments a = args_init();
    a.completion = act;
    cr_assert_eq(IOUserClient_HostExternalMethod(uc, 2, &a), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.completions, 1, 5000));
    cr_assert_eq(T.status, kIOReturnSuccess);
    cr_assert_eq(T.count, 3);
    cr_assert_eq(T.data[2], 3);

    uint64_t many[17] = { 0 };
    cr_assert_eq(IOUserClient_AsyncCompletion(uc, act, kIOReturnSuccess, many, 17), kIOReturnBadArgument);
    OSAction *wrong = NULL;
    cr_assert_eq(OSAction_Create((OSObject *)provider, 0, IOTimerDispatchSource_TimerOccurred_ID,
                                 (OSMethodFunction)on_completion, 0, &wrong),
                 kIOReturnSuccess);
    cr_assert_eq(IOUserClient_AsyncCompletion(uc, wrong, kIOReturnSuccess, many, 1), kIOReturnBadArgument,
                 "an action of another type");
    cr_assert_eq(OSAction_Cancel(act, NULL, NULL), kIOReturnSuccess);
    cr_assert_eq(IOUserClient_AsyncCompletion(uc, act, kIOReturnAborted, NULL, 0), kIOReturnAborted);
    rt_sleep_ms(20);
    cr_assert_eq(rt_counter_get(&T.completions), 1);
    OSObject_Release((OSObject *)wrong);
    OSObject_Release((OSObject *)act);
}

Test(runtime_userclient, copy_client_memory_for_type)
{
    cr_assert_eq(IOBufferMemoryDescriptor_Create(kIOMemoryDirectionInOut, 4096, 0, &T.shared), kIOReturnSuccess);
    uint64_t opts = 0;
    IOMemoryDescriptor *md = NULL, *md2 = NULL;
    cr_assert_eq(IOUserClient_HostCopyClientMemoryForType(uc, 7, &opts, &md), kIOReturnSuccess);
    cr_assert_eq(md, (IOMemoryDescriptor *)T.shared);
    cr_assert_eq(opts & kIOUserClientMemoryReadOnly, kIOUserClientMemoryReadOnly);
    cr_assert_geq(IOMemoryDescriptor_GetFD(md), 0, "shareable");
    cr_assert_eq(IOUserClient_HostCopyClientMemoryForType(uc, 7, &opts, &md2), kIOReturnSuccess);
    cr_assert_eq(md2, md, "the same descriptor for the same type");
    cr_assert_eq(IOUserClient_HostCopyClientMemoryForType(uc, 8, &opts, &md2), kIOReturnBadArgument);
    OSObject_Release((OSObject *)md);
    OSObject_Release((OSObject *)md2);
}

Test(runtime_userclient, base_class_defaults)
{
    /* A plain IOService without UserClientProperties: Apple's default NewUserClient error. */
    IOService *plain = NULL;
    IOUserClient *none = NULL;
    cr_assert_eq(IOService_Instantiate("IOService", NULL, &plain), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(plain, NULL), kIOReturnSuccess);
    cr_assert_eq(IOService_HostNewUserClient(plain, 0, &none), kIOReturnError);
    cr_assert_null(none);
    OSObject_Release((OSObject *)plain);
    /* the base ExternalMethod without a dispatch entry */
    IOUserClientMethodArguments a = args_init();
    cr_assert_eq(IOUserClient_ExternalMethod_Super(&TestUC_Class, uc, 0, &a, NULL, NULL, NULL), kIOReturnUnsupported);
    uint64_t opts = 0;
    IOMemoryDescriptor *md = NULL;
    cr_assert_eq(IOUserClient_CopyClientMemoryForType_Super(&TestUC_Class, uc, 7, &opts, &md), kIOReturnUnsupported);
}
