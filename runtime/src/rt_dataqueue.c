#include "rt_internal.h"
#include "rt_ring.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct IODataQueueDispatchSource {
    OSObject object;
    pthread_mutex_t lock;
    struct rt_ring ring;
    void *mem;
    size_t mem_size;
    int memfd, avail_fd, serviced_fd, wake_fd;
    IODispatchQueue *queue;
    OSAction *avail_handler, *serviced_handler;
    bool cancelled, watcher_running;
};

static bool dq_init(OSObject *o)
{
    IODataQueueDispatchSource *s = (IODataQueueDispatchSource *)o;
    s->memfd = s->avail_fd = s->serviced_fd = s->wake_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    return OSObject_SuperInit(&IODataQueueDispatchSource_Class, o);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void dq_free(OSObject *o)
{
    IODataQueueDispatchSource *s = (IODataQueueDispatchSource *)o;
    if (s->mem)
        munmap(s->mem, s->mem_size);
    close_fd(&s->memfd);
    close_fd(&s->avail_fd);
    close_fd(&s->serviced_fd);
    close_fd(&s->wake_fd);
    OSObject_Release((OSObject *)s->avail_handler);
    OSObject_Release((OSObject *)s->serviced_handler);
    OSObject_Release((OSObject *)s->queue);
    pthread_mutex_destroy(&s->lock);
    OSObject_SuperFree(&IODataQueueDispatchSource_Class, o);
}

const OSClass IODataQueueDispatchSource_Class = {
    .name = "IODataQueueDispatchSource",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(IODataQueueDispatchSource),
    .init = dq_init,
    .free = dq_free,
};

static kern_return_t map_ring(IODataQueueDispatchSource *s, size_t size)
{
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
    if (m == MAP_FAILED)
        return kIOReturnVMError;
    s->mem = m;
    s->mem_size = size;
    return kIOReturnSuccess;
}

kern_return_t IODataQueueDispatchSource_Create(uint64_t queueByteCount, IODispatchQueue *queue,
                                               IODataQueueDispatchSource **source)
{
    if (!source || queueByteCount < RT_RING_MIN_SIZE || queueByteCount > kIODataQueueMaxByteCount)
        return kIOReturnBadArgument;
    uint32_t data_size = (uint32_t)((queueByteCount + 3u) & ~3ull);
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IODataQueueDispatchSource_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IODataQueueDispatchSource *s = (IODataQueueDispatchSource *)o;
    size_t total = RT_RING_HEADER_SIZE + (size_t)data_size;
    s->memfd = memfd_create("IODataQueueDispatchSource", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    s->avail_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->serviced_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->memfd < 0 || s->avail_fd < 0 || s->serviced_fd < 0) {
        r = kIOReturnNoResources;
        goto fail;
    }
    if (ftruncate(s->memfd, (off_t)total) != 0 ||
        fcntl(s->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        r = kIOReturnNoMemory;
        goto fail;
    }
    if ((r = map_ring(s, total)) != kIOReturnSuccess)
        goto fail;
    rt_ring_format(s->mem, data_size);
    if ((r = rt_ring_attach(&s->ring, s->mem, s->mem_size)) != kIOReturnSuccess)
        goto fail;
    s->queue = (IODispatchQueue *)OSObject_Retain((OSObject *)queue);
    *source = s;
    return kIOReturnSuccess;
fail:
    OSObject_Release(o);
    return r;
}

kern_return_t IODataQueueDispatchSource_CreateWithFDs(int memoryFD, int dataAvailableFD, int dataServicedFD,
                                                      IODispatchQueue *queue, IODataQueueDispatchSource **source)
{
    if (memoryFD < 0 || dataAvailableFD < 0 || dataServicedFD < 0 || !source)
        return kIOReturnBadArgument;
    struct stat st;
    if (fstat(memoryFD, &st) != 0 || !S_ISREG(st.st_mode))
        return kIOReturnBadArgument;
    int seals = fcntl(memoryFD, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return kIOReturnNotPermitted;
    if (st.st_size < (off_t)RT_RING_HEADER_SIZE || (uint64_t)st.st_size > RT_RING_HEADER_SIZE + (uint64_t)RT_RING_MAX_SIZE)
        return kIOReturnError;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IODataQueueDispatchSource_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IODataQueueDispatchSource *s = (IODataQueueDispatchSource *)o;
    s->memfd = fcntl(memoryFD, F_DUPFD_CLOEXEC, 3);
    s->avail_fd = fcntl(dataAvailableFD, F_DUPFD_CLOEXEC, 3);
    s->serviced_fd = fcntl(dataServicedFD, F_DUPFD_CLOEXEC, 3);
    if (s->memfd < 0 || s->avail_fd < 0 || s->serviced_fd < 0) {
        r = kIOReturnBadArgument;
        goto fail;
    }
    int fl;
    if ((fl = fcntl(s->avail_fd, F_GETFL)) < 0 || fcntl(s->avail_fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        (fl = fcntl(s->serviced_fd, F_GETFL)) < 0 || fcntl(s->serviced_fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        r = kIOReturnBadArgument;
        goto fail;
    }
    if ((r = map_ring(s, (size_t)st.st_size)) != kIOReturnSuccess)
        goto fail;
    if ((r = rt_ring_attach(&s->ring, s->mem, s->mem_size)) != kIOReturnSuccess)
        goto fail;
    s->queue = (IODispatchQueue *)OSObject_Retain((OSObject *)queue);
    *source = s;
    return kIOReturnSuccess;
fail:
    OSObject_Release(o);
    return r;
}

int IODataQueueDispatchSource_GetMemoryFD(IODataQueueDispatchSource *s)
{
    return s ? s->memfd : -1;
}
int IODataQueueDispatchSource_GetDataAvailableFD(IODataQueueDispatchSource *s)
{
    return s ? s->avail_fd : -1;
}
int IODataQueueDispatchSource_GetDataServicedFD(IODataQueueDispatchSource *s)
{
    return s ? s->serviced_fd : -1;
}

uint32_t IODataQueueDispatchSource_GetMaxEntrySize(IODataQueueDispatchSource *s)
{
    return s ? rt_ring_max_entry(&s->ring) : 0;
}

size_t IODataQueueDispatchSource_GetDataQueueEntryHeaderSize(void)
{
    return sizeof(uint32_t);
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    (void)!write(fd, &one, sizeof(one));
}

static void drain_fd(int fd)
{
    uint64_t v;
    (void)!read(fd, &v, sizeof(v));
}

static kern_return_t enqueue_common(IODataQueueDispatchSource *s, uint32_t size, bool *notify,
                                    IODataQueueEnqueueFunction fn, void *context)
{
    if (!s)
        return kIOReturnBadArgument;
    kern_return_t r = rt_ring_enqueue(&s->ring, size, fn, context);
    if (r == kIOReturnOverrun) {
        /* Ask for DataServiced, then look again: the consumer may have made room meanwhile. */
        __atomic_store_n(&s->ring.hdr->producer_waiting, 1u, __ATOMIC_SEQ_CST);
        r = rt_ring_enqueue(&s->ring, size, fn, context);
    }
    if (r != kIOReturnSuccess)
        return r;
    /* tail was published seq_cst: either we see the consumer's flag or it sees our entry */
    if (__atomic_load_n(&s->ring.hdr->consumer_waiting, __ATOMIC_SEQ_CST))
        *notify = true;
    return kIOReturnSuccess;
}

kern_return_t IODataQueueDispatchSource_Enqueue(IODataQueueDispatchSource *s, uint32_t size,
                                                IODataQueueEnqueueFunction fn, void *context)
{
    bool notify = false;
    kern_return_t r = enqueue_common(s, size, &notify, fn, context);
    if (notify)
        signal_fd(s->avail_fd);
    return r;
}

kern_return_t IODataQueueDispatchSource_EnqueueWithCoalesce(IODataQueueDispatchSource *s, uint32_t size,
                                                            bool *sendDataAvailable,
                                                            IODataQueueEnqueueFunction fn, void *context)
{
    if (!sendDataAvailable)
        return kIOReturnBadArgument;
    return enqueue_common(s, size, sendDataAvailable, fn, context);
}

static kern_return_t dequeue_common(IODataQueueDispatchSource *s, IODataQueueDequeueFunction fn, void *context,
                                    bool remove, bool *notify)
{
    if (!s)
        return kIOReturnBadArgument;
    kern_return_t r = rt_ring_dequeue(&s->ring, fn, context, remove);
    if (r != kIOReturnSuccess || !remove)
        return r;
    /* head was published seq_cst: either we see the producer's flag or it sees the room */
    if (__atomic_load_n(&s->ring.hdr->producer_waiting, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&s->ring.hdr->producer_waiting, 0u, __ATOMIC_SEQ_CST))
        *notify = true;
    return kIOReturnSuccess;
}

kern_return_t IODataQueueDispatchSource_Dequeue(IODataQueueDispatchSource *s, IODataQueueDequeueFunction fn,
                                                void *context)
{
    bool notify = false;
    kern_return_t r = dequeue_common(s, fn, context, true, &notify);
    if (notify)
        signal_fd(s->serviced_fd);
    return r;
}

kern_return_t IODataQueueDispatchSource_DequeueWithCoalesce(IODataQueueDispatchSource *s, bool *sendDataServiced,
                                                            IODataQueueDequeueFunction fn, void *context)
{
    if (!sendDataServiced)
        return kIOReturnBadArgument;
    return dequeue_common(s, fn, context, true, sendDataServiced);
}

kern_return_t IODataQueueDispatchSource_Peek(IODataQueueDispatchSource *s, IODataQueueDequeueFunction fn,
                                             void *context)
{
    bool unused = false;
    return dequeue_common(s, fn, context, false, &unused);
}

bool IODataQueueDispatchSource_IsDataAvailable(IODataQueueDispatchSource *s)
{
    kern_return_t err;
    return s && rt_ring_has_data(&s->ring, &err);
}

bool IODataQueueDispatchSource_CanEnqueueData(IODataQueueDispatchSource *s, uint32_t size)
{
    kern_return_t err;
    return s && rt_ring_can_enqueue(&s->ring, size, &err);
}

kern_return_t IODataQueueDispatchSource_SendDataAvailable(IODataQueueDispatchSource *s)
{
    if (!s)
        return kIOReturnBadArgument;
    signal_fd(s->avail_fd);
    return kIOReturnSuccess;
}

kern_return_t IODataQueueDispatchSource_SendDataServiced(IODataQueueDispatchSource *s)
{
    if (!s)
        return kIOReturnBadArgument;
    signal_fd(s->serviced_fd);
    return kIOReturnSuccess;
}

/* ---- blocking waits (spin briefly, then sleep on the eventfd) ---- */

static kern_return_t wait_common(IODataQueueDispatchSource *s, bool for_data, uint32_t size, uint64_t timeoutNs)
{
    uint32_t *flag = for_data ? &s->ring.hdr->consumer_waiting : &s->ring.hdr->producer_waiting;
    int fd = for_data ? s->avail_fd : s->serviced_fd;
    uint64_t deadline = rt_now_ns(CLOCK_MONOTONIC), now;
    if (DK_ADD_OVERFLOW(deadline, timeoutNs, &deadline))
        deadline = UINT64_MAX;
    for (unsigned spin = 0;; spin++) {
        kern_return_t err;
        bool ready = for_data ? rt_ring_has_data(&s->ring, &err) : rt_ring_can_enqueue(&s->ring, size, &err);
        if (err != kIOReturnSuccess)
            return err;
        if (ready)
            return kIOReturnSuccess;
        if (spin < 256) {
            sched_yield();
            continue;
        }
        __atomic_store_n(flag, 1u, __ATOMIC_SEQ_CST);
        ready = for_data ? rt_ring_has_data(&s->ring, &err) : rt_ring_can_enqueue(&s->ring, size, &err);
        if (err != kIOReturnSuccess || ready) {
            __atomic_store_n(flag, 0u, __ATOMIC_SEQ_CST);
            return err;
        }
        now = rt_now_ns(CLOCK_MONOTONIC);
        if (now >= deadline) {
            __atomic_store_n(flag, 0u, __ATOMIC_SEQ_CST);
            return kIOReturnTimeout;
        }
        uint64_t ms = (deadline - now + 999999u) / 1000000u;
        struct pollfd pfd = { fd, POLLIN, 0 };
        (void)poll(&pfd, 1, ms > 60000 ? 60000 : (int)ms);
        drain_fd(fd);
        if (for_data)
            __atomic_store_n(flag, 0u, __ATOMIC_SEQ_CST);
    }
}

kern_return_t IODataQueueDispatchSource_WaitForData(IODataQueueDispatchSource *s, uint64_t timeoutNs)
{
    return s ? wait_common(s, true, 0, timeoutNs) : kIOReturnBadArgument;
}

kern_return_t IODataQueueDispatchSource_WaitForSpace(IODataQueueDispatchSource *s, uint32_t size, uint64_t timeoutNs)
{
    if (!s || size == 0 || size > rt_ring_max_entry(&s->ring))
        return kIOReturnBadArgument;
    return wait_common(s, false, size, timeoutNs);
}

/* ---- handlers: a watcher thread per source, started by the first SetHandler ---- */

struct dq_fire {
    IODataQueueDispatchSource *src;
    bool avail;
};

static void dq_invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)
{
    (void)args;
    ((IODataQueueDispatchSource_DataAvailable_Handler)fn)(target, action);
}

/* On the source's queue: invoke the handler unless cancelled (same queue as the cancel handler,
 * so nothing runs after it). */
static void dq_fire_work(void *arg)
{
    struct dq_fire *f = arg;
    IODataQueueDispatchSource *s = f->src;
    pthread_mutex_lock(&s->lock);
    OSAction *h = s->cancelled ? NULL : (f->avail ? s->avail_handler : s->serviced_handler);
    OSObject_Retain((OSObject *)h);
    pthread_mutex_unlock(&s->lock);
    if (h) {
        uint64_t type = f->avail ? IODataQueueDispatchSource_DataAvailable_ID : IODataQueueDispatchSource_DataServiced_ID;
        (void)rt_action_invoke(h, type, dq_invoker, NULL, 0, RT_INVOKE_INLINE_IF_ON_QUEUE | RT_INVOKE_WAIT);
        OSObject_Release((OSObject *)h);
    }
}

static void *dq_watcher(void *arg)
{
    IODataQueueDispatchSource *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        bool stop = s->cancelled, want_avail = s->avail_handler != NULL, want_serv = s->serviced_handler != NULL;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            break;
        bool fire_avail = false, fire_serv = false;
        if (want_avail) {
            __atomic_store_n(&s->ring.hdr->consumer_waiting, 1u, __ATOMIC_SEQ_CST);
            kern_return_t err;
            fire_avail = rt_ring_has_data(&s->ring, &err);
        }
        if (!fire_avail) {
            struct pollfd pfd[3] = { { s->wake_fd, POLLIN, 0 }, { s->avail_fd, want_avail ? POLLIN : 0, 0 },
                                     { s->serviced_fd, want_serv ? POLLIN : 0, 0 } };
            if (poll(pfd, 3, -1) < 0 && errno != EINTR)
                break;
            if (pfd[0].revents & POLLIN)
                drain_fd(s->wake_fd);
            if (pfd[1].revents & POLLIN) {
                drain_fd(s->avail_fd);
                fire_avail = true;
            }
            if (pfd[2].revents & POLLIN) {
                drain_fd(s->serviced_fd);
                fire_serv = true;
            }
        }
        if (want_avail)
            __atomic_store_n(&s->ring.hdr->consumer_waiting, 0u, __ATOMIC_SEQ_CST);
        for (int i = 0; i < 2; i++) {
            struct dq_fire f = { s, i == 0 };
            if (!(i == 0 ? fire_avail : fire_serv))
                continue;
            if (IODispatchQueue_DispatchSync(s->queue, dq_fire_work, &f) != kIOReturnSuccess)
                goto out;
        }
    }
out:
    pthread_detach(pthread_self());
    OSObject_Release(&s->object); /* the watcher's reference; may free the source */
    return NULL;
}

static kern_return_t set_handler(IODataQueueDispatchSource *s, OSAction *action, bool avail)
{
    uint64_t type = avail ? IODataQueueDispatchSource_DataAvailable_ID : IODataQueueDispatchSource_DataServiced_ID;
    if (!s || (action && OSAction_GetTypeID(action) != type))
        return kIOReturnBadArgument;
    if (!s->queue)
        return kIOReturnNotReady;
    kern_return_t r = kIOReturnSuccess;
    OSAction *old;
    pthread_mutex_lock(&s->lock);
    if (s->cancelled) {
        pthread_mutex_unlock(&s->lock);
        return kIOReturnAborted;
    }
    OSAction **slot = avail ? &s->avail_handler : &s->serviced_handler;
    old = *slot;
    *slot = (OSAction *)OSObject_Retain((OSObject *)action);
    if (!s->watcher_running && action) {
        if (s->wake_fd < 0)
            s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pthread_t t;
        OSObject_Retain(&s->object);
        if (s->wake_fd < 0 || pthread_create(&t, NULL, dq_watcher, s) != 0) {
            OSObject_Release(&s->object); /* not the last: the caller holds one */
            *slot = old;
            old = action;
            r = kIOReturnNoResources;
        } else {
            pthread_setname_np(t, "dk-dataqueue");
            s->watcher_running = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (r == kIOReturnSuccess && s->wake_fd >= 0)
        signal_fd(s->wake_fd);
    OSObject_Release((OSObject *)old);
    return r;
}

kern_return_t IODataQueueDispatchSource_SetDataAvailableHandler(IODataQueueDispatchSource *s, OSAction *action)
{
    return set_handler(s, action, true);
}

kern_return_t IODataQueueDispatchSource_SetDataServicedHandler(IODataQueueDispatchSource *s, OSAction *action)
{
    return set_handler(s, action, false);
}

kern_return_t IODataQueueDispatchSource_Cancel(IODataQueueDispatchSource *s, IODispatchSourceCancelHandler handler,
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
    OSAction *a = s->avail_handler, *b = s->serviced_handler;
    s->avail_handler = s->serviced_handler = NULL;
    pthread_mutex_unlock(&s->lock);
    if (s->wake_fd >= 0)
        signal_fd(s->wake_fd);
    OSObject_Release((OSObject *)a);
    OSObject_Release((OSObject *)b);
    return rt_source_finish_cancel(s->queue, &s->object, handler, context);
}
