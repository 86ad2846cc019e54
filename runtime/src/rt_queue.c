#include "rt_internal.h"

struct rt_sync {
    pthread_cond_t cond;
    bool done;
};

struct rt_work {
    struct rt_work *next;
    IODispatchFunction fn;
    void *ctx;
    IODispatchQueue *queue; /* retained for async work; borrowed from the sync caller */
    struct rt_sync *sync;
};

/* The part of a queue shared by the object and its thread; freed by whichever lets go last,
 * so the object can be freed on its own thread (the last release inside a work item). */
struct rt_qcore {
    uint32_t refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct rt_work *head, *tail;
    bool accepting, cancelled, cancel_ran, stopping;
    IODispatchFunction cancel_fn;
    void *cancel_ctx;
    IODispatchQueue *cancel_ref;
    struct rt_qcore *waiting_on; /* guarded by graph_lock */
    pthread_t thread;
};

struct IODispatchQueue {
    OSObject object;
    struct rt_qcore *core;
    char name[kIODispatchQueueNameLength];
};

/* The wait-for graph of DispatchSync: queue X's thread waits for queue X->waiting_on. */
static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;

/* Queues whose work the current thread is running (innermost first), and its own queue. */
struct rt_qctx {
    struct rt_qcore *core;
    struct rt_qctx *prev;
};
static _Thread_local struct rt_qctx *tls_ctx;
static _Thread_local struct rt_qcore *tls_own;

static bool ctx_holds(struct rt_qcore *core)
{
    for (struct rt_qctx *c = tls_ctx; c; c = c->prev)
        if (c->core == core)
            return true;
    return false;
}

static void run_in_ctx(struct rt_qcore *core, IODispatchFunction fn, void *ctx)
{
    struct rt_qctx frame = { core, tls_ctx };
    tls_ctx = &frame;
    fn(ctx);
    tls_ctx = frame.prev;
}

static void core_release(struct rt_qcore *core)
{
    if (__atomic_sub_fetch(&core->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_destroy(&core->lock);
    pthread_cond_destroy(&core->cond);
    free(core);
}

static void *queue_thread(void *arg)
{
    struct rt_qcore *core = arg;
    tls_own = core;
    pthread_mutex_lock(&core->lock);
    for (;;) {
        struct rt_work *w = core->head;
        if (w) {
            core->head = w->next;
            if (!core->head)
                core->tail = NULL;
            pthread_mutex_unlock(&core->lock);
            run_in_ctx(core, w->fn, w->ctx);
            if (w->sync) {
                pthread_mutex_lock(&core->lock);
                w->sync->done = true;
                pthread_cond_signal(&w->sync->cond);
                pthread_mutex_unlock(&core->lock);
            } else {
                IODispatchQueue *q = w->queue;
                free(w);
                OSObject_Release(&q->object); /* may free the queue object: core lives on */
            }
            pthread_mutex_lock(&core->lock);
            continue;
        }
        if (core->cancelled && !core->cancel_ran) {
            core->cancel_ran = true;
            pthread_mutex_unlock(&core->lock);
            if (core->cancel_fn)
                run_in_ctx(core, core->cancel_fn, core->cancel_ctx);
            OSObject_Release(&core->cancel_ref->object);
            pthread_mutex_lock(&core->lock);
            break;
        }
        if (core->stopping)
            break;
        pthread_cond_wait(&core->cond, &core->lock);
    }
    pthread_mutex_unlock(&core->lock);
    tls_own = NULL;
    core_release(core);
    return NULL;
}

static void queue_free(OSObject *o)
{
    IODispatchQueue *q = (IODispatchQueue *)o;
    struct rt_qcore *core = q->core;
    if (core) {
        pthread_mutex_lock(&core->lock);
        core->stopping = true;
        core->accepting = false;
        pthread_cond_signal(&core->cond);
        pthread_mutex_unlock(&core->lock);
        if (pthread_equal(pthread_self(), core->thread))
            pthread_detach(core->thread);
        else
            pthread_join(core->thread, NULL);
        core_release(core);
    }
    OSObject_SuperFree(&IODispatchQueue_Class, o);
}

const OSClass IODispatchQueue_Class = {
    .name = "IODispatchQueue",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(IODispatchQueue),
    .free = queue_free,
};

kern_return_t IODispatchQueue_Create(const char *name, uint64_t options, uint64_t priority,
                                     IODispatchQueue **queue)
{
    (void)options;
    (void)priority;
    if (!name || !name[0] || strlen(name) >= kIODispatchQueueNameLength || !queue)
        return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t ret = OSObject_Alloc(&IODispatchQueue_Class, &o);
    if (ret != kIOReturnSuccess)
        return ret;
    IODispatchQueue *q = (IODispatchQueue *)o;
    (void)rt_copy_name(q->name, sizeof(q->name), name);
    struct rt_qcore *core = calloc(1, sizeof(*core));
    if (!core) {
        OSObject_Release(o);
        return kIOReturnNoMemory;
    }
    core->refs = 2; /* the object and the thread */
    core->accepting = true;
    pthread_mutex_init(&core->lock, NULL);
    pthread_cond_init(&core->cond, NULL);
    if (pthread_create(&core->thread, NULL, queue_thread, core) != 0) {
        pthread_mutex_destroy(&core->lock);
        pthread_cond_destroy(&core->cond);
        free(core);
        OSObject_Release(o);
        return kIOReturnNoResources;
    }
    char tname[16];
    snprintf(tname, sizeof(tname), "dq:%s", name); /* truncation is fine for a thread name */
    pthread_setname_np(core->thread, tname);
    q->core = core;
    *queue = q;
    return kIOReturnSuccess;
}

static bool enqueue(struct rt_qcore *core, struct rt_work *w)
{
    pthread_mutex_lock(&core->lock);
    if (!core->accepting) {
        pthread_mutex_unlock(&core->lock);
        return false;
    }
    w->next = NULL;
    if (core->tail)
        core->tail->next = w;
    else
        core->head = w;
    core->tail = w;
    pthread_cond_signal(&core->cond);
    pthread_mutex_unlock(&core->lock);
    return true;
}

kern_return_t IODispatchQueue_DispatchAsync(IODispatchQueue *queue, IODispatchFunction fn, void *context)
{
    if (!queue || !fn)
        return kIOReturnBadArgument;
    struct rt_work *w = calloc(1, sizeof(*w));
    if (!w)
        return kIOReturnNoMemory;
    w->fn = fn;
    w->ctx = context;
    w->queue = (IODispatchQueue *)OSObject_Retain(&queue->object);
    if (!enqueue(queue->core, w)) {
        OSObject_Release(&queue->object);
        free(w);
        return kIOReturnAborted;
    }
    return kIOReturnSuccess;
}

static bool is_accepting(struct rt_qcore *core)
{
    pthread_mutex_lock(&core->lock);
    bool a = core->accepting;
    pthread_mutex_unlock(&core->lock);
    return a;
}

kern_return_t IODispatchQueue_DispatchSync(IODispatchQueue *queue, IODispatchFunction fn, void *context)
{
    if (!queue || !fn)
        return kIOReturnBadArgument;
    struct rt_qcore *core = queue->core;
    if (!is_accepting(core))
        return kIOReturnAborted;

    /* Held already (directly, or the target waits on us through a chain): run inline. */
    bool inline_run = ctx_holds(core);
    struct rt_qcore *saved_wait = NULL;
    if (!inline_run) {
        pthread_mutex_lock(&graph_lock);
        size_t steps = 0;
        for (struct rt_qcore *c = core; c && steps < 4096; c = c->waiting_on, steps++)
            if (ctx_holds(c)) {
                inline_run = true;
                break;
            }
        if (!inline_run && tls_own) {
            saved_wait = tls_own->waiting_on;
            tls_own->waiting_on = core;
        }
        pthread_mutex_unlock(&graph_lock);
    }
    if (inline_run) {
        run_in_ctx(core, fn, context);
        return kIOReturnSuccess;
    }

    struct rt_sync sync = { .done = false };
    pthread_cond_init(&sync.cond, NULL);
    struct rt_work w = { .fn = fn, .ctx = context, .queue = queue, .sync = &sync };
    OSObject_Retain(&queue->object);
    kern_return_t ret = kIOReturnSuccess;
    if (enqueue(core, &w)) {
        pthread_mutex_lock(&core->lock);
        while (!sync.done)
            pthread_cond_wait(&sync.cond, &core->lock);
        pthread_mutex_unlock(&core->lock);
    } else {
        ret = kIOReturnAborted;
    }
    if (tls_own) {
        pthread_mutex_lock(&graph_lock);
        tls_own->waiting_on = saved_wait;
        pthread_mutex_unlock(&graph_lock);
    }
    pthread_cond_destroy(&sync.cond);
    OSObject_Release(&queue->object);
    return ret;
}

kern_return_t rt_queue_run_sync(IODispatchQueue *q, void (*fn)(void *), void *ctx)
{
    return IODispatchQueue_DispatchSync(q, fn, ctx);
}

bool IODispatchQueue_OnQueue(IODispatchQueue *queue)
{
    return queue && ctx_holds(queue->core);
}

const char *IODispatchQueue_GetName(IODispatchQueue *queue)
{
    return queue ? queue->name : NULL;
}

kern_return_t IODispatchQueue_Cancel(IODispatchQueue *queue, IODispatchFunction handler, void *context)
{
    if (!queue)
        return kIOReturnBadArgument;
    struct rt_qcore *core = queue->core;
    pthread_mutex_lock(&core->lock);
    if (core->cancelled || core->stopping) {
        pthread_mutex_unlock(&core->lock);
        return kIOReturnAborted;
    }
    core->cancelled = true;
    core->accepting = false;
    core->cancel_fn = handler;
    core->cancel_ctx = context;
    core->cancel_ref = (IODispatchQueue *)OSObject_Retain(&queue->object);
    pthread_cond_signal(&core->cond);
    pthread_mutex_unlock(&core->lock);
    return kIOReturnSuccess;
}
