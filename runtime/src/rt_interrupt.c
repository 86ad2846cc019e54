#include "rt_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct IOInterruptDispatchSource {
    OSObject object;
    pthread_mutex_t lock;
    IODispatchQueue *queue;
    OSAction *handler;
    int efd;  /* the host's interrupt eventfd (our dup) */
    int wake; /* wakes the thread: enable changes, cancel, free */
    bool enabled, cancelled, stop, thread_running, thread_self_release;
    uint64_t last_count, last_time;
    pthread_t thread;
};

struct irq_fire {
    IOInterruptDispatchSource *src;
    uint64_t count, time;
};

struct irq_args {
    uint64_t count, time;
};

static void irq_invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)
{
    struct irq_args *a = args;
    ((IOInterruptDispatchSource_InterruptOccurred_Handler)fn)(target, action, a->count, a->time);
}

static void irq_fire_work(void *arg)
{
    struct irq_fire *f = arg;
    IOInterruptDispatchSource *s = f->src;
    struct irq_args a = { f->count, f->time };
    free(f);
    pthread_mutex_lock(&s->lock);
    OSAction *h = !s->cancelled ? (OSAction *)OSObject_Retain((OSObject *)s->handler) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (h) {
        (void)rt_action_invoke(h, IOInterruptDispatchSource_InterruptOccurred_ID, irq_invoker, &a, sizeof(a),
                               RT_INVOKE_INLINE_IF_ON_QUEUE);
        OSObject_Release((OSObject *)h);
    }
    OSObject_Release(&s->object);
}

static void *irq_thread(void *arg)
{
    IOInterruptDispatchSource *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        bool stop = s->stop, enabled = s->enabled && !s->cancelled;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            break;
        struct pollfd pfd[2] = { { s->wake, POLLIN, 0 }, { s->efd, POLLIN, 0 } };
        int n = poll(pfd, enabled ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        uint64_t v;
        if (pfd[0].revents & POLLIN)
            (void)!read(s->wake, &v, sizeof(v));
        if (!enabled || !(pfd[1].revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        if (read(s->efd, &v, sizeof(v)) != (ssize_t)sizeof(v))
            continue;
        uint64_t now = rt_now_ns(CLOCK_MONOTONIC);
        pthread_mutex_lock(&s->lock);
        s->last_count = v;
        s->last_time = now;
        pthread_mutex_unlock(&s->lock);
        struct irq_fire *f = malloc(sizeof(*f));
        if (!f)
            continue;
        f->src = (IOInterruptDispatchSource *)OSObject_Retain(&s->object);
        f->count = v;
        f->time = now;
        if (IODispatchQueue_DispatchAsync(s->queue, irq_fire_work, f) != kIOReturnSuccess) {
            free(f);
            pthread_mutex_lock(&s->lock);
            s->stop = true;
            s->thread_self_release = true;
            pthread_mutex_unlock(&s->lock);
            pthread_detach(pthread_self());
            OSObject_Release(&s->object);
            return NULL;
        }
    }
    return NULL;
}

static void irq_poke(IOInterruptDispatchSource *s)
{
    uint64_t one = 1;
    (void)!write(s->wake, &one, sizeof(one));
}

static void irq_stop_thread(IOInterruptDispatchSource *s)
{
    pthread_mutex_lock(&s->lock);
    bool join = s->thread_running && !s->thread_self_release && !pthread_equal(pthread_self(), s->thread);
    s->stop = true;
    s->thread_running = false;
    pthread_mutex_unlock(&s->lock);
    if (s->wake >= 0)
        irq_poke(s);
    if (join)
        pthread_join(s->thread, NULL);
}

static bool irq_init(OSObject *o)
{
    IOInterruptDispatchSource *s = (IOInterruptDispatchSource *)o;
    s->efd = s->wake = -1;
    pthread_mutex_init(&s->lock, NULL);
    return OSObject_SuperInit(&IOInterruptDispatchSource_Class, o);
}

static void irq_free(OSObject *o)
{
    IOInterruptDispatchSource *s = (IOInterruptDispatchSource *)o;
    irq_stop_thread(s);
    if (s->efd >= 0)
        close(s->efd);
    if (s->wake >= 0)
        close(s->wake);
    OSObject_Release((OSObject *)s->handler);
    OSObject_Release((OSObject *)s->queue);
    pthread_mutex_destroy(&s->lock);
    OSObject_SuperFree(&IOInterruptDispatchSource_Class, o);
}

const OSClass IOInterruptDispatchSource_Class = {
    .name = "IOInterruptDispatchSource",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(IOInterruptDispatchSource),
    .init = irq_init,
    .free = irq_free,
};

kern_return_t IOInterruptDispatchSource_CreateWithEventFD(int eventFD, IODispatchQueue *queue,
                                                          IOInterruptDispatchSource **source)
{
    if (eventFD < 0 || !queue || !source)
        return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOInterruptDispatchSource_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOInterruptDispatchSource *s = (IOInterruptDispatchSource *)o;
    s->queue = (IODispatchQueue *)OSObject_Retain((OSObject *)queue);
    s->efd = fcntl(eventFD, F_DUPFD_CLOEXEC, 3);
    if (s->efd < 0) {
        OSObject_Release(o);
        return errno == EBADF ? kIOReturnBadArgument : kIOReturnNoResources;
    }
    int fl = fcntl(s->efd, F_GETFL);
    if (fl < 0 || fcntl(s->efd, F_SETFL, fl | O_NONBLOCK) != 0) {
        OSObject_Release(o);
        return kIOReturnBadArgument;
    }
    s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake < 0 || rt_source_start_thread(&s->lock, &s->thread, &s->thread_running,
                                              irq_thread, s, "dk-interrupt") != kIOReturnSuccess) {
        OSObject_Release(o);
        return kIOReturnNoResources;
    }
    *source = s;
    return kIOReturnSuccess;
}

kern_return_t IOInterruptDispatchSource_SetHandler(IOInterruptDispatchSource *s, OSAction *action)
{
    if (!s)
        return kIOReturnBadArgument;
    return rt_source_set_handler(&s->lock, &s->cancelled, &s->handler, action,
                                 IOInterruptDispatchSource_InterruptOccurred_ID);
}

kern_return_t IOInterruptDispatchSource_SetEnable(IOInterruptDispatchSource *s, bool enable)
{
    if (!s)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&s->lock);
    s->enabled = enable;
    pthread_mutex_unlock(&s->lock);
    irq_poke(s);
    return kIOReturnSuccess;
}

kern_return_t IOInterruptDispatchSource_GetLastInterrupt(IOInterruptDispatchSource *s, uint64_t *count,
                                                         uint64_t *time)
{
    if (!s || !count || !time)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&s->lock);
    *count = s->last_count;
    *time = s->last_time;
    pthread_mutex_unlock(&s->lock);
    return kIOReturnSuccess;
}

kern_return_t IOInterruptDispatchSource_Cancel(IOInterruptDispatchSource *s, IODispatchSourceCancelHandler handler,
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
    OSAction *h = s->handler;
    s->handler = NULL;
    pthread_mutex_unlock(&s->lock);
    irq_stop_thread(s);
    OSObject_Release((OSObject *)h);
    return rt_source_finish_cancel(s->queue, &s->object, handler, context);
}
