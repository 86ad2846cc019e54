#include <criterion/criterion.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rt_test.h"

static struct {
    struct rt_counter fired;
    uint64_t fire_mono[8];
    uint64_t fire_arg[8];
    bool on_queue;
    int rearm; /* re-arm this many more times from the handler */
    IOTimerDispatchSource *timer;
    struct rt_counter cancelled;
    int cancel_calls;
    uint64_t irq_count, irq_time;
} T;

static OSObject *target;
static IODispatchQueue *queue;

static void timer_occurred(OSObject *self, OSAction *action, uint64_t time)
{
    (void)self;
    (void)action;
    int n = rt_counter_get(&T.fired);
    if (n < 8) {
        T.fire_mono[n] = rt_test_now_ns();
        T.fire_arg[n] = time;
    }
    T.on_queue = IODispatchQueue_OnQueue(queue);
    if (T.rearm > 0) {
        T.rearm--;
        cr_assert_eq(IOTimerDispatchSource_WakeAtTime(T.timer, kIOTimerClockUptimeRaw, rt_test_now_ns() + 5000000, 0),
                     kIOReturnSuccess);
    }
    rt_counter_add(&T.fired);
}

static void interrupt_occurred(OSObject *self, OSAction *action, uint64_t count, uint64_t time)
{
    (void)self;
    (void)action;
    T.irq_count += count;
    T.irq_time = time;
    T.on_queue = IODispatchQueue_OnQueue(queue);
    rt_counter_add(&T.fired);
}

static void on_cancel(void *arg)
{
    (void)arg;
    T.cancel_calls++;
    rt_counter_add(&T.cancelled);
}

static const OSClass Target_Class = { "TestTimerTarget", &OSObject_Class, sizeof(OSObject), NULL, NULL, NULL, 0 };

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    T.fired = (struct rt_counter)RT_COUNTER_INIT;
    T.cancelled = (struct rt_counter)RT_COUNTER_INIT;
    cr_assert_eq(OSObject_Alloc(&Target_Class, &target), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Create("timer", 0, 0, &queue), kIOReturnSuccess);
    cr_assert_eq(OSObject_SetDispatchQueue(target, kIOServiceDefaultQueueName, queue), kIOReturnSuccess);
}

static void teardown(void)
{
    OSObject_Release(target);
    OSObject_Release((OSObject *)queue);
}

TestSuite(runtime_timer, .init = setup, .fini = teardown, .timeout = 30);

static IOTimerDispatchSource *make_timer(OSAction **out_action)
{
    IOTimerDispatchSource *t = NULL;
    OSAction *a = NULL;
    cr_assert_eq(IOTimerDispatchSource_Create(queue, &t), kIOReturnSuccess);
    cr_assert_eq(OSAction_Create(target, 0, IOTimerDispatchSource_TimerOccurred_ID, (OSMethodFunction)timer_occurred,
                                 0, &a),
                 kIOReturnSuccess);
    cr_assert_eq(IOTimerDispatchSource_SetHandler(t, a), kIOReturnSuccess);
    *out_action = a;
    T.timer = t;
    return t;
}

Test(runtime_timer, fires_once_near_the_deadline)
{
    OSAction *a;
    IOTimerDispatchSource *t = make_timer(&a);
    cr_assert_eq(IOTimerDispatchSource_SetEnable(t, true), kIOReturnSuccess);
    uint64_t deadline = rt_test_now_ns() + 50000000; /* 50 ms */
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, deadline, 0), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.fired, 1, 5000));
    cr_assert_geq(T.fire_mono[0], deadline, "never early");
    cr_assert_lt(T.fire_mono[0] - deadline, 1000000000ull, "late by %llu ns",
                 (unsigned long long)(T.fire_mono[0] - deadline));
    cr_assert_geq(T.fire_arg[0], deadline, "handler time is on the deadline's clock");
    cr_assert(T.on_queue);
    rt_sleep_ms(100);
    cr_assert_eq(rt_counter_get(&T.fired), 1, "one-shot");
    cr_assert_eq(IOTimerDispatchSource_Cancel(t, on_cancel, NULL), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.cancelled, 1, 5000));
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
}

Test(runtime_timer, disabled_does_not_fire_until_enabled)
{
    OSAction *a;
    IOTimerDispatchSource *t = make_timer(&a);
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, rt_test_now_ns() + 10000000, 0),
                 kIOReturnSuccess);
    rt_sleep_ms(80);
    cr_assert_eq(rt_counter_get(&T.fired), 0);
    cr_assert_eq(IOTimerDispatchSource_SetEnable(t, true), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.fired, 1, 5000), "a passed deadline fires once enabled");
    IOTimerDispatchSource_Cancel(t, NULL, NULL);
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
}

Test(runtime_timer, cancel_before_deadline_never_fires)
{
    OSAction *a;
    IOTimerDispatchSource *t = make_timer(&a);
    IOTimerDispatchSource_SetEnable(t, true);
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, rt_test_now_ns() + 60000000, 0),
                 kIOReturnSuccess);
    cr_assert_eq(IOTimerDispatchSource_Cancel(t, on_cancel, NULL), kIOReturnSuccess);
    cr_assert_eq(IOTimerDispatchSource_Cancel(t, on_cancel, NULL), kIOReturnAborted);
    cr_assert(rt_counter_wait(&T.cancelled, 1, 5000));
    rt_sleep_ms(150);
    cr_assert_eq(rt_counter_get(&T.fired), 0, "fired after Cancel");
    cr_assert_eq(T.cancel_calls, 1);
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, 0, 0), kIOReturnAborted);
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
}

Test(runtime_timer, wake_at_time_replaces_the_deadline)
{
    OSAction *a;
    IOTimerDispatchSource *t = make_timer(&a);
    IOTimerDispatchSource_SetEnable(t, true);
    uint64_t now = rt_test_now_ns();
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, now + 20000000, 0), kIOReturnSuccess);
    uint64_t later = now + 150000000;
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, later, 0), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.fired, 1, 5000));
    cr_assert_geq(T.fire_mono[0], later, "fired at the replaced deadline");
    rt_sleep_ms(50);
    cr_assert_eq(rt_counter_get(&T.fired), 1);
    IOTimerDispatchSource_Cancel(t, NULL, NULL);
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
}

Test(runtime_timer, rearm_from_handler_repeats)
{
    OSAction *a;
    IOTimerDispatchSource *t = make_timer(&a);
    IOTimerDispatchSource_SetEnable(t, true);
    T.rearm = 2;
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockMonotonicRaw, 0, 0), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.fired, 3, 5000));
    rt_sleep_ms(40);
    cr_assert_eq(rt_counter_get(&T.fired), 3);
    cr_assert_eq(IOTimerDispatchSource_WakeAtTime(t, 0x1234, 0, 0), kIOReturnBadArgument, "unknown clock");
    IOTimerDispatchSource_Cancel(t, NULL, NULL);
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
}

Test(runtime_timer, release_without_cancel_stops_cleanly)
{
    OSAction *a;
    IOTimerDispatchSource *t = make_timer(&a);
    IOTimerDispatchSource_SetEnable(t, true);
    IOTimerDispatchSource_WakeAtTime(t, kIOTimerClockUptimeRaw, rt_test_now_ns() + 1000000000ull, 0);
    OSObject_Release((OSObject *)t);
    OSObject_Release((OSObject *)a);
    cr_assert_eq(rt_counter_get(&T.fired), 0);
}

TestSuite(runtime_interrupt, .init = setup, .fini = teardown, .timeout = 30);

static IOInterruptDispatchSource *make_irq(int efd, OSAction **out)
{
    IOInterruptDispatchSource *s = NULL;
    cr_assert_eq(IOInterruptDispatchSource_CreateWithEventFD(efd, queue, &s), kIOReturnSuccess);
    cr_assert_eq(OSAction_Create(target, 0, IOInterruptDispatchSource_InterruptOccurred_ID,
                                 (OSMethodFunction)interrupt_occurred, 0, out),
                 kIOReturnSuccess);
    cr_assert_eq(IOInterruptDispatchSource_SetHandler(s, *out), kIOReturnSuccess);
    return s;
}

Test(runtime_interrupt, eventfd_delivers_count_and_time)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    OSAction *a;
    IOInterruptDispatchSource *s = make_irq(efd, &a);
    cr_assert_eq(IOInterruptDispatchSource_SetEnable(s, true), kIOReturnSuccess);
    uint64_t before = rt_test_now_ns(), three = 3;
    cr_assert_eq(write(efd, &three, sizeof(three)), (ssize_t)sizeof(three));
    cr_assert(rt_counter_wait(&T.fired, 1, 5000));
    cr_assert_eq(T.irq_count, 3);
    cr_assert_geq(T.irq_time, before);
    cr_assert(T.on_queue);
    uint64_t c = 0, tm = 0;
    cr_assert_eq(IOInterruptDispatchSource_GetLastInterrupt(s, &c, &tm), kIOReturnSuccess);
    cr_assert_eq(c, 3);
    cr_assert_eq(tm, T.irq_time);
    cr_assert_eq(IOInterruptDispatchSource_Cancel(s, on_cancel, NULL), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&T.cancelled, 1, 5000));
    cr_assert_eq(write(efd, &three, sizeof(three)), (ssize_t)sizeof(three));
    rt_sleep_ms(50);
    cr_assert_eq(rt_counter_get(&T.fired), 1, "nothing after Cancel");
    OSObject_Release((OSObject *)s);
    OSObject_Release((OSObject *)a);
    close(efd);
}

Test(runtime_interrupt, disabled_interrupts_accumulate)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    OSAction *a;
    IOInterruptDispatchSource *s = make_irq(efd, &a);
    uint64_t one = 1;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(write(efd, &one, sizeof(one)), (ssize_t)sizeof(one));
    rt_sleep_ms(50);
    cr_assert_eq(rt_counter_get(&T.fired), 0);
    IOInterruptDispatchSource_SetEnable(s, true);
    cr_assert(rt_counter_wait(&T.fired, 1, 5000));
    cr_assert_eq(T.irq_count, 5);
    IOInterruptDispatchSource_Cancel(s, NULL, NULL);
    OSObject_Release((OSObject *)s);
    OSObject_Release((OSObject *)a);
    close(efd);
}

Test(runtime_interrupt, bad_arguments)
{
    IOInterruptDispatchSource *s = NULL;
    cr_assert_eq(IOInterruptDispatchSource_CreateWithEventFD(-1, queue, &s), kIOReturnBadArgument);
    cr_assert_eq(IOInterruptDispatchSource_CreateWithEventFD(9999, queue, &s), kIOReturnBadArgument);
    cr_assert_null(s);
}
