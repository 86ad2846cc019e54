#include "rt_internal.h"

struct IOTimerDispatchSource {
    OSObject object;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    IODispatchQueue *queue;
    OSAction *handler;
    clockid_t clock;
    uint64_t deadline_mono;
    bool armed, enabled, cancelled, stop, thread_running, thread_self_release;
    pthread_t thread;
};

struct timer_fire {
    IOTimerDispatchSource *src;
};

static void timer_invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)
{
    ((IOTimerDispatchSource_TimerOccurred_Handler)fn)(target, action, *(uint64_t *)args);
}

/* On the source's queue: deliver unless cancelled or disabled meanwhile. */
static void timer_fire_work(void *arg)
{
    struct timer_fire *f = arg;
    IOTimerDispatchSource *s = f->src;
    free(f);
    pthread_mutex_lock(&s->lock);
    OSAction *a = (!s->cancelled && s->enabled) ? (OSAction *)OSObject_Retain((OSObject *)s->handler) : NULL;
    clockid_t clock = s->clock;
    pthread_mutex_unlock(&s->lock);
    if (a) {
        uint64_t now = rt_now_ns(clock);
        (void)rt_action_invoke(a, IOTimerDispatchSource_TimerOccurred_ID, timer_invoker, &now, sizeof(now),
                               RT_INVOKE_INLINE_IF_ON_QUEUE);
        OSObject_Release((OSObject *)a);
    }
    OSObject_Release(&s->object);
}

static void *timer_thread(void *arg)
{
    IOTimerDispatchSource *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        if (!(s->armed && s->enabled && !s->cancelled)) {
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        uint64_t now = rt_now_ns(CLOCK_MONOTONIC);
        if (now < s->deadline_mono) {
            struct timespec ts = { (time_t)(s->deadline_mono / 1000000000ull),
                                   (long)(s->deadline_mono % 1000000000ull) };
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
            continue;
        }
        s->armed = false; /* one-shot */
        struct timer_fire *f = malloc(sizeof(*f));
        if (!f)
            continue; /* dropped: nothing better to do without memory */
        f->src = (IOTimerDispatchSource *)OSObject_Retain(&s->object);
        pthread_mutex_unlock(&s->lock);
        kern_return_t r = IODispatchQueue_DispatchAsync(s->queue, timer_fire_work, f);
        pthread_mutex_lock(&s->lock);
        if (r != kIOReturnSuccess) {
            /* The queue is gone for good: stop, and drop our reference as the very last step. */
            free(f);
            s->stop = true;
            s->thread_self_release = true;
            pthread_mutex_unlock(&s->lock);
            pthread_detach(pthread_self());
            OSObject_Release(&s->object);
            return NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void timer_stop_thread(IOTimerDispatchSource *s)
{
    pthread_mutex_lock(&s->lock);
    bool join = s->thread_running && !s->thread_self_release && !pthread_equal(pthread_self(), s->thread);
    s->stop = true;
    s->thread_running = false;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(s->thread, NULL);
}

static void timer_free(OSObject *o)
{
    IOTimerDispatchSource *s = (IOTimerDispatchSource *)o;
    timer_stop_thread(s);
    OSObject_Release((OSObject *)s->handler);
    OSObject_Release((OSObject *)s->queue);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    OSObject_SuperFree(&IOTimerDispatchSource_Class, o);
}

static bool timer_init(OSObject *o)
{
    if (!OSObject_SuperInit(&IOTimerDispatchSource_Class, o))
        return false;
    IOTimerDispatchSource *s = (IOTimerDispatchSource *)o;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->lock, NULL);
    s->clock = CLOCK_MONOTONIC;
    return true;
}

const OSClass IOTimerDispatchSource_Class = {
    .name = "IOTimerDispatchSource",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(IOTimerDispatchSource),
    .init = timer_init,
    .free = timer_free,
};

kern_return_t IOTimerDispatchSource_Create(IODispatchQueue *queue, IOTimerDispatchSource **source)
{
    if (!queue || !source)
        return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOTimerDispatchSource_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOTimerDispatchSource *s = (IOTimerDispatchSource *)o;
    s->queue = (IODispatchQueue *)OSObject_Retain((OSObject *)queue);
    if (rt_source_start_thread(&s->lock, &s->thread, &s->thread_running, timer_thread, s,
                               "dk-timer") != kIOReturnSuccess) {
        OSObject_Release(o);
        return kIOReturnNoResources;
    }
    *source = s;
    return kIOReturnSuccess;
}

kern_return_t IOTimerDispatchSource_SetHandler(IOTimerDispatchSource *s, OSAction *action)
{
    if (!s)
        return kIOReturnBadArgument;
    return rt_source_set_handler(&s->lock, &s->cancelled, &s->handler, action,
                                 IOTimerDispatchSource_TimerOccurred_ID);
}

kern_return_t IOTimerDispatchSource_WakeAtTime(IOTimerDispatchSource *s, uint64_t options, uint64_t deadline,
                                               uint64_t leeway)
{
    (void)leeway;
    clockid_t clock;
    if (!s || !rt_clock_from_options(options, &clock))
        return kIOReturnBadArgument;
    uint64_t now_c = rt_now_ns(clock), now_m = rt_now_ns(CLOCK_MONOTONIC);
    uint64_t delta = deadline > now_c ? deadline - now_c : 0, dl;
    if (DK_ADD_OVERFLOW(now_m, delta, &dl) || dl > (uint64_t)INT64_MAX)
        dl = (uint64_t)INT64_MAX;
    pthread_mutex_lock(&s->lock);
    if (s->cancelled) {
        pthread_mutex_unlock(&s->lock);
        return kIOReturnAborted;
    }
    s->clock = clock;
    s->deadline_mono = dl;
    s->armed = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return kIOReturnSuccess;
}

kern_return_t IOTimerDispatchSource_SetEnable(IOTimerDispatchSource *s, bool enable)
{
    if (!s)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&s->lock);
    s->enabled = enable;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return kIOReturnSuccess;
}

struct cancel_call {
    IODispatchSourceCancelHandler fn;
    void *ctx;
    OSObject *src;
};

static void cancel_work(void *arg)
{
    struct cancel_call *c = arg;
    if (c->fn)
        c->fn(c->ctx);
    OSObject_Release(c->src);
    free(c);
}

/* Run the cancel handler on `queue` after what is queued there, or here if the queue is gone. */
kern_return_t rt_source_set_handler(pthread_mutex_t *lock, const bool *cancelled, OSAction **slot,
                                    OSAction *action, uint64_t typeID)
{
    if (!action || OSAction_GetTypeID(action) != typeID)
        return kIOReturnBadArgument;
    pthread_mutex_lock(lock);
    if (*cancelled) {
        pthread_mutex_unlock(lock);
        return kIOReturnAborted;
    }
    OSAction *old = *slot;
    *slot = (OSAction *)OSObject_Retain((OSObject *)action);
    pthread_mutex_unlock(lock);
    OSObject_Release((OSObject *)old);
    return kIOReturnSuccess;
}

kern_return_t rt_source_start_thread(pthread_mutex_t *lock, pthread_t *thread, bool *running,
                                     void *(*fn)(void *), void *arg, const char *name)
{
    pthread_mutex_lock(lock);
    int pr = pthread_create(thread, NULL, fn, arg);
    pthread_mutex_unlock(lock);
    if (pr != 0)
        return kIOReturnNoResources;
    pthread_setname_np(*thread, name);
    pthread_mutex_lock(lock);
    *running = true;
    pthread_mutex_unlock(lock);
    return kIOReturnSuccess;
}

kern_return_t rt_source_finish_cancel(IODispatchQueue *queue, OSObject *src, IODispatchSourceCancelHandler fn,
                                      void *ctx)
{
    struct cancel_call *c = malloc(sizeof(*c));
    if (!c) {
        if (fn)
            fn(ctx);
        return kIOReturnSuccess;
    }
    c->fn = fn;
    c->ctx = ctx;
    c->src = OSObject_Retain(src);
    if (!queue || IODispatchQueue_DispatchAsync(queue, cancel_work, c) != kIOReturnSuccess)
        cancel_work(c);
    return kIOReturnSuccess;
}

kern_return_t IOTimerDispatchSource_Cancel(IOTimerDispatchSource *s, IODispatchSourceCancelHandler handler,
                                           void *context)
{
    if (!s)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&s->lock);
    if (s->cancelled) {
        pthread_mutex_unlock(&s->lock);
        return kIOReturnAborted;
    }
    s->cancelled = true;
    s->armed = false;
    OSAction *h = s->handler;
    s->handler = NULL;
    pthread_mutex_unlock(&s->lock);
    timer_stop_thread(s);
    OSObject_Release((OSObject *)h);
    return rt_source_finish_cancel(s->queue, &s->object, handler, context);
}
