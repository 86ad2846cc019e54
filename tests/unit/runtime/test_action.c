#include <criterion/criterion.h>

#include "rt_test.h"

/* A target object with a default queue and a QUEUENAME method. */
#define Target_Ping_ID 0xa1a1ull
#define Target_Special_ID 0xa2a2ull
#define Type_Ping_ID 0xb1b1ull
#define Type_Other_ID 0xb2b2ull

struct ping_args {
    uint64_t value;
};

static struct {
    struct rt_counter calls;
    uint64_t last;
    IODispatchQueue *expect_queue;
    bool on_expected_queue;
    struct rt_counter gate_entered;
    struct rt_counter gate_open;
    bool gate;
    int cancels;
    struct rt_counter cancel_done;
    bool handler_running_at_cancel;
} T;

static void ping_impl(OSObject *target, OSAction *action, uint64_t value)
{
    (void)target;
    (void)action;
    if (T.gate) {
        rt_counter_add(&T.gate_entered);
        cr_assert(rt_counter_wait(&T.gate_open, 1, 5000));
    }
    T.on_expected_queue = IODispatchQueue_OnQueue(T.expect_queue);
    T.last = value;
    rt_counter_add(&T.calls);
}

static void ping_invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)
{
    ((void (*)(OSObject *, OSAction *, uint64_t))fn)(target, action, ((struct ping_args *)args)->value);
}

static kern_return_t invoke_ping(OSAction *a, uint64_t type, uint64_t v)
{
    struct ping_args args = { v };
    return OSAction_Invoke(a, type, ping_invoker, &args, sizeof(args));
}

static const OSMethod target_methods[] = {
    OS_METHOD(Target_Ping_ID, ping_impl),
    OS_METHOD_QUEUE(Target_Special_ID, ping_impl, "Special"),
};
static const OSClass Target_Class = { "TestActionTarget", &OSObject_Class, sizeof(OSObject), NULL, NULL,
                                      target_methods, 2 };

static OSObject *target;
static IODispatchQueue *queue;

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    T.calls = (struct rt_counter)RT_COUNTER_INIT;
    T.gate_entered = (struct rt_counter)RT_COUNTER_INIT;
    T.gate_open = (struct rt_counter)RT_COUNTER_INIT;
    T.cancel_done = (struct rt_counter)RT_COUNTER_INIT;
    cr_assert_eq(OSObject_Alloc(&Target_Class, &target), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Create("target", 0, 0, &queue), kIOReturnSuccess);
    cr_assert_eq(OSObject_SetDispatchQueue(target, kIOServiceDefaultQueueName, queue), kIOReturnSuccess);
    T.expect_queue = queue;
}

static void teardown(void)
{
    OSObject_Release(target);
    OSObject_Release((OSObject *)queue);
}

TestSuite(runtime_action, .init = setup, .fini = teardown, .timeout = 30);

Test(runtime_action, invoke_runs_on_target_queue_with_args)
{
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, (OSMethodFunction)ping_impl, 0, &a),
                 kIOReturnSuccess);
    cr_assert_eq(OSAction_GetTypeID(a), Type_Ping_ID);
    cr_assert_eq(OSAction_GetTarget(a), target);
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 42), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.calls, 1, 5000));
    cr_assert_eq(T.last, 42);
    cr_assert(T.on_expected_queue);
    OSObject_Release((OSObject *)a);
}

Test(runtime_action, type_mismatch_is_refused_before_anything_runs)
{
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnSuccess);
    cr_assert_eq(invoke_ping(a, Type_Other_ID, 1), kIOReturnBadArgument);
    rt_sleep_ms(50);
    cr_assert_eq(rt_counter_get(&T.calls), 0);
    /* the timer's handler slot checks the type too */
    IOTimerDispatchSource *t = NULL;
    cr_assert_eq(IOTimerDispatchSource_Create(queue, &t), kIOReturnSuccess);
    cr_assert_eq(IOTimerDispatchSource_SetHandler(t, a), kIOReturnBadArgument);
    cr_assert_eq(IOTimerDispatchSource_Cancel(t, NULL, NULL), kIOReturnSuccess);
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
}

Test(runtime_action, method_lookup_by_id)
{
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, 0xdead, Type_Ping_ID, NULL, 0, &a), kIOReturnBadArgument);
    cr_assert_null(a);
    cr_assert_eq(OSAction_Create(NULL, Target_Ping_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnBadArgument);
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnSuccess);
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 7), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.calls, 1, 5000));
    cr_assert_eq(T.last, 7);
    OSObject_Release((OSObject *)a);
}

Test(runtime_action, queuename_method_runs_on_its_queue)
{
    IODispatchQueue *special = NULL;
    cr_assert_eq(IODispatchQueue_Create("special", 0, 0, &special), kIOReturnSuccess);
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, Target_Special_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnSuccess);
    /* no "Special" queue yet: the default queue */
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 1), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.calls, 1, 5000));
    cr_assert(T.on_expected_queue);
    cr_assert_eq(OSObject_SetDispatchQueue(target, "Special", special), kIOReturnSuccess);
    T.expect_queue = special;
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 2), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.calls, 2, 5000));
    cr_assert(T.on_expected_queue);
    cr_assert_eq(OSObject_GetQueueForMethod(target, Target_Special_ID), special);
    OSObject_Release((OSObject *)a);
    OSObject_Release((OSObject *)special);
}

Test(runtime_action, reference_storage)
{
    OSAction *a = NULL, *b = NULL;
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 64, &a), kIOReturnSuccess);
    uint8_t *ref = OSAction_GetReference(a);
    cr_assert_not_null(ref);
    cr_assert_eq(OSAction_GetReferenceSize(a), 64);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(ref[i], 0, "zero-filled");
    memset(ref, 0xab, 64);
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 0, &b), kIOReturnSuccess);
    cr_assert_null(OSAction_GetReference(b));
    OSObject_Release((OSObject *)a);
    OSObject_Release((OSObject *)b);
}

static void on_cancel(void *arg)
{
    (void)arg;
    T.cancels++;
    rt_counter_add(&T.cancel_done);
}

Test(runtime_action, cancel_without_inflight_completes_once_and_refuses_invoke)
{
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnSuccess);
    uint32_t rc = OSObject_GetRetainCount(target);
    cr_assert_eq(OSAction_Cancel(a, on_cancel, NULL), kIOReturnSuccess);
    cr_assert_eq(T.cancels, 1, "no invocation in flight: completion runs in Cancel");
    cr_assert_eq(OSObject_GetRetainCount(target), rc - 1, "target released once cancelled");
    cr_assert_eq(OSAction_Cancel(a, on_cancel, NULL), kIOReturnAborted);
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 1), kIOReturnAborted);
    cr_assert(OSAction_IsCancelled(a));
    rt_sleep_ms(30);
    cr_assert_eq(T.cancels, 1);
    cr_assert_eq(rt_counter_get(&T.calls), 0);
    OSObject_Release((OSObject *)a);
}

Test(runtime_action, cancel_waits_for_inflight_and_drops_queued)
{
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnSuccess);
    T.gate = true;
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 1), kIOReturnSuccess);
    cr_assert_eq(invoke_ping(a, Type_Ping_ID, 2), kIOReturnSuccess); /* queued behind the first */
    cr_assert(rt_counter_wait(&T.gate_entered, 1, 5000));
    cr_assert_eq(OSAction_Cancel(a, on_cancel, NULL), kIOReturnSuccess);
    rt_sleep_ms(30);
    cr_assert_eq(T.cancels, 0, "completion waits for the invocation in flight");
    rt_counter_add(&T.gate_open);
    cr_assert(rt_counter_wait(&T.cancel_done, 1, 5000));
    rt_sleep_ms(30);
    cr_assert_eq(rt_counter_get(&T.calls), 1, "the queued invocation was dropped");
    cr_assert_eq(T.last, 1);
    cr_assert_eq(T.cancels, 1, "exactly once");
    OSObject_Release((OSObject *)a);
}

static void noop(void *arg)
{
    (void)arg;
}

static void *invoker_thread(void *arg)
{
    OSAction *a = arg;
    for (int i = 0; i < 2000; i++)
        if (invoke_ping(a, Type_Ping_ID, (uint64_t)i) == kIOReturnAborted)
            break;
    return NULL;
}

Test(runtime_action, cancel_racing_invocations_completes_once)
{
    for (int round = 0; round < 20; round++) {
        OSAction *a = NULL;
        cr_assert_eq(OSAction_Create(target, Target_Ping_ID, Type_Ping_ID, NULL, 0, &a), kIOReturnSuccess);
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, invoker_thread, a);
        rt_sleep_ms(1);
        int before = T.cancels;
        cr_assert_eq(OSAction_Cancel(a, on_cancel, NULL), kIOReturnSuccess);
        int calls_at_cancel_done;
        cr_assert(rt_counter_wait(&T.cancel_done, round + 1, 5000));
        calls_at_cancel_done = rt_counter_get(&T.calls);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        cr_assert_eq(IODispatchQueue_DispatchSync(queue, noop, NULL), kIOReturnSuccess); /* flush */
        rt_sleep_ms(10);
        cr_assert_eq(rt_counter_get(&T.calls), calls_at_cancel_done, "no invocation after the completion");
        cr_assert_eq(T.cancels, before + 1);
        OSObject_Release((OSObject *)a);
    }
}

struct dispatch_ctx {
    uint64_t value;
    bool on_queue;
    IODispatchQueue *expect;
};

static void call_ping(OSObject *obj, OSMethodFunction impl, void *context)
{
    struct dispatch_ctx *c = context;
    c->on_queue = IODispatchQueue_OnQueue(c->expect);
    ((void (*)(OSObject *, OSAction *, uint64_t))impl)(obj, NULL, c->value);
}

Test(runtime_action, dispatch_method_by_id_on_its_queue)
{
    IODispatchQueue *special = NULL;
    cr_assert_eq(IODispatchQueue_Create("special", 0, 0, &special), kIOReturnSuccess);
    cr_assert_eq(OSObject_SetDispatchQueue(target, "Special", special), kIOReturnSuccess);
    struct dispatch_ctx c = { 5, false, queue };
    cr_assert_eq(OSObject_DispatchMethod(target, Target_Ping_ID, call_ping, &c), kIOReturnSuccess);
    cr_assert(c.on_queue, "default queue");
    cr_assert_eq(T.last, 5);
    c = (struct dispatch_ctx){ 6, false, special };
    T.expect_queue = special;
    cr_assert_eq(OSObject_DispatchMethod(target, Target_Special_ID, call_ping, &c), kIOReturnSuccess);
    cr_assert(c.on_queue, "QUEUENAME queue");
    cr_assert_eq(T.last, 6);
    cr_assert_eq(OSObject_DispatchMethod(target, 0x9999, call_ping, &c), kIOReturnUnsupported);
    OSObject *bare = NULL;
    cr_assert_eq(OSObject_Alloc(&Target_Class, &bare), kIOReturnSuccess);
    cr_assert_eq(OSObject_DispatchMethod(bare, Target_Ping_ID, call_ping, &c), kIOReturnNotReady, "no queue");
    OSObject_Release(bare);
    OSObject_Release((OSObject *)special);
}
