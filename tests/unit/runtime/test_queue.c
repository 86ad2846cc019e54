#include <criterion/criterion.h>
#include <stdlib.h>

#include "rt_test.h"

TestSuite(runtime_queue, .timeout = 30);

struct order_ctx {
    int *log;
    int n;
    pthread_t thread;
    bool same_thread;
    IODispatchQueue *q;
    bool on_queue;
};

struct order_item {
    struct order_ctx *ctx;
    int value;
};

static void append(void *arg)
{
    struct order_item *it = arg;
    struct order_ctx *c = it->ctx;
    if (c->n == 0)
        c->thread = pthread_self();
    else if (!pthread_equal(c->thread, pthread_self()))
        c->same_thread = false;
    if (!IODispatchQueue_OnQueue(c->q))
        c->on_queue = false;
    c->log[c->n++] = it->value;
}

static void noop(void *arg)
{
    (void)arg;
}

Test(runtime_queue, fifo_order_on_one_thread)
{
    IODispatchQueue *q = NULL;
    cr_assert_eq(IODispatchQueue_Create("fifo", 0, 0, &q), kIOReturnSuccess);
    cr_assert_str_eq(IODispatchQueue_GetName(q), "fifo");
    enum { N = 20000 };
    struct order_ctx c = { .log = calloc(N, sizeof(int)), .same_thread = true, .q = q, .on_queue = true };
    struct order_item *items = calloc(N, sizeof(*items));
    for (int i = 0; i < N; i++) {
        items[i] = (struct order_item){ &c, i };
        cr_assert_eq(IODispatchQueue_DispatchAsync(q, append, &items[i]), kIOReturnSuccess);
    }
    cr_assert_eq(IODispatchQueue_DispatchSync(q, noop, NULL), kIOReturnSuccess); /* barrier */
    cr_assert_eq(c.n, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(c.log[i], i, "item %d ran out of order", i);
    cr_assert(c.same_thread, "one thread per queue");
    cr_assert(c.on_queue);
    cr_assert(!pthread_equal(c.thread, pthread_self()));
    cr_assert_not(IODispatchQueue_OnQueue(q));
    free(c.log);
    free(items);
    OSObject_Release((OSObject *)q);
}

Test(runtime_queue, bad_arguments)
{
    IODispatchQueue *q = NULL;
    cr_assert_eq(IODispatchQueue_Create("", 0, 0, &q), kIOReturnBadArgument);
    cr_assert_eq(IODispatchQueue_Create(NULL, 0, 0, &q), kIOReturnBadArgument);
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    cr_assert_eq(IODispatchQueue_Create(long_name, 0, 0, &q), kIOReturnBadArgument);
    cr_assert_null(q);
    cr_assert_eq(IODispatchQueue_DispatchAsync(NULL, noop, NULL), kIOReturnBadArgument);
}

struct self_sync {
    IODispatchQueue *q;
    int depth;
    bool inner_on_queue;
};

static void inner(void *arg)
{
    struct self_sync *s = arg;
    s->depth++;
    s->inner_on_queue = IODispatchQueue_OnQueue(s->q);
}

static void outer(void *arg)
{
    struct self_sync *s = arg;
    /* Sync to the queue we are running on: must run inline, not deadlock. */
    cr_assert_eq(IODispatchQueue_DispatchSync(s->q, inner, s), kIOReturnSuccess);
    s->depth++;
}

Test(runtime_queue, sync_to_self_runs_inline)
{
    IODispatchQueue *q = NULL;
    cr_assert_eq(IODispatchQueue_Create("self", 0, 0, &q), kIOReturnSuccess);
    struct self_sync s = { q, 0, false };
    cr_assert_eq(IODispatchQueue_DispatchSync(q, outer, &s), kIOReturnSuccess);
    cr_assert_eq(s.depth, 2);
    cr_assert(s.inner_on_queue);
    OSObject_Release((OSObject *)q);
}

struct pair {
    IODispatchQueue *a, *b;
    pthread_barrier_t barrier;
    struct rt_counter done;
    int ran_on_a, ran_on_b;
    bool a_was_on_a, b_was_on_b;
};

static void mark_on_a(void *arg)
{
    struct pair *p = arg;
    p->ran_on_a++;
    p->a_was_on_a = IODispatchQueue_OnQueue(p->a);
}
static void mark_on_b(void *arg)
{
    struct pair *p = arg;
    p->ran_on_b++;
    p->b_was_on_b = IODispatchQueue_OnQueue(p->b);
}

static void nested_b(void *arg)
{
    struct pair *p = arg;
    /* B (running for A, which is blocked on us) syncs back to A. */
    cr_assert_eq(IODispatchQueue_DispatchSync(p->a, mark_on_a, p), kIOReturnSuccess);
}

static void nested_a(void *arg)
{
    struct pair *p = arg;
    cr_assert_eq(IODispatchQueue_DispatchSync(p->b, nested_b, p), kIOReturnSuccess);
    rt_counter_add(&p->done);
}

Test(runtime_queue, sync_a_to_b_to_a_does_not_deadlock)
{
    struct pair p = { .done = RT_COUNTER_INIT };
    cr_assert_eq(IODispatchQueue_Create("A", 0, 0, &p.a), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Create("B", 0, 0, &p.b), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_DispatchAsync(p.a, nested_a, &p), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&p.done, 1, 5000), "deadlock: A -> B -> A did not finish");
    cr_assert_eq(p.ran_on_a, 1);
    cr_assert(p.a_was_on_a);
    OSObject_Release((OSObject *)p.a);
    OSObject_Release((OSObject *)p.b);
}

static void cross_from_a(void *arg)
{
    struct pair *p = arg;
    pthread_barrier_wait(&p->barrier); /* both queues are now busy at the same time */
    cr_assert_eq(IODispatchQueue_DispatchSync(p->b, mark_on_b, p), kIOReturnSuccess);
    rt_counter_add(&p->done);
}

static void cross_from_b(void *arg)
{
    struct pair *p = arg;
    pthread_barrier_wait(&p->barrier);
    cr_assert_eq(IODispatchQueue_DispatchSync(p->a, mark_on_a, p), kIOReturnSuccess);
    rt_counter_add(&p->done);
}

Test(runtime_queue, concurrent_a_sync_b_and_b_sync_a_does_not_deadlock)
{
    for (int round = 0; round < 200; round++) {
        struct pair p = { .done = RT_COUNTER_INIT };
        pthread_barrier_init(&p.barrier, NULL, 2);
        cr_assert_eq(IODispatchQueue_Create("A", 0, 0, &p.a), kIOReturnSuccess);
        cr_assert_eq(IODispatchQueue_Create("B", 0, 0, &p.b), kIOReturnSuccess);
        cr_assert_eq(IODispatchQueue_DispatchAsync(p.a, cross_from_a, &p), kIOReturnSuccess);
        cr_assert_eq(IODispatchQueue_DispatchAsync(p.b, cross_from_b, &p), kIOReturnSuccess);
        cr_assert(rt_counter_wait(&p.done, 2, 5000), "deadlock in round %d", round);
        cr_assert_eq(p.ran_on_a, 1);
        cr_assert_eq(p.ran_on_b, 1);
        cr_assert(p.a_was_on_a && p.b_was_on_b, "each function ran holding its queue");
        OSObject_Release((OSObject *)p.a);
        OSObject_Release((OSObject *)p.b);
        pthread_barrier_destroy(&p.barrier);
    }
}

struct ring3 {
    IODispatchQueue *q[3];
    pthread_barrier_t barrier;
    struct rt_counter done;
    int ran;
};
struct ring3_item {
    struct ring3 *r;
    int i;
};
static void ring3_mark(void *arg)
{
    struct ring3 *r = arg;
    __atomic_fetch_add(&r->ran, 1, __ATOMIC_RELAXED);
}
static void ring3_step(void *arg)
{
    struct ring3_item *it = arg;
    pthread_barrier_wait(&it->r->barrier);
    cr_assert_eq(IODispatchQueue_DispatchSync(it->r->q[(it->i + 1) % 3], ring3_mark, it->r), kIOReturnSuccess);
    rt_counter_add(&it->r->done);
}

Test(runtime_queue, three_queue_cycle_does_not_deadlock)
{
    for (int round = 0; round < 100; round++) {
        struct ring3 r = { .done = RT_COUNTER_INIT };
        struct ring3_item items[3];
        pthread_barrier_init(&r.barrier, NULL, 3);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(IODispatchQueue_Create("ring", 0, 0, &r.q[i]), kIOReturnSuccess);
        for (int i = 0; i < 3; i++) {
            items[i] = (struct ring3_item){ &r, i };
            cr_assert_eq(IODispatchQueue_DispatchAsync(r.q[i], ring3_step, &items[i]), kIOReturnSuccess);
        }
        cr_assert(rt_counter_wait(&r.done, 3, 5000), "deadlock in round %d", round);
        cr_assert_eq(r.ran, 3);
        for (int i = 0; i < 3; i++)
            OSObject_Release((OSObject *)r.q[i]);
        pthread_barrier_destroy(&r.barrier);
    }
}

struct cancel_ctx {
    IODispatchQueue *q;
    int before, handler_calls;
    bool handler_on_queue;
    struct rt_counter done;
};

static void count_before(void *arg)
{
    struct cancel_ctx *c = arg;
    rt_sleep_ms(1);
    c->before++;
}

static void cancel_handler(void *arg)
{
    struct cancel_ctx *c = arg;
    c->handler_calls++;
    c->handler_on_queue = IODispatchQueue_OnQueue(c->q);
    cr_assert_eq(c->before, 20, "handler after the queued work");
    rt_counter_add(&c->done);
}

Test(runtime_queue, cancel_runs_queued_work_then_handler_once)
{
    struct cancel_ctx c = { .done = RT_COUNTER_INIT };
    cr_assert_eq(IODispatchQueue_Create("cancel", 0, 0, &c.q), kIOReturnSuccess);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(IODispatchQueue_DispatchAsync(c.q, count_before, &c), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Cancel(c.q, cancel_handler, &c), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Cancel(c.q, cancel_handler, &c), kIOReturnAborted);
    cr_assert_eq(IODispatchQueue_DispatchAsync(c.q, count_before, &c), kIOReturnAborted);
    cr_assert(rt_counter_wait(&c.done, 1, 5000));
    cr_assert_eq(IODispatchQueue_DispatchSync(c.q, count_before, &c), kIOReturnAborted);
    rt_sleep_ms(20);
    cr_assert_eq(c.handler_calls, 1);
    cr_assert(c.handler_on_queue);
    cr_assert_eq(c.before, 20);
    OSObject_Release((OSObject *)c.q);
}

static void release_self(void *arg)
{
    struct rt_counter *k = *(struct rt_counter **)((void **)arg + 1);
    IODispatchQueue *q = *(IODispatchQueue **)arg;
    OSObject_Release((OSObject *)q); /* the last reference is dropped on the queue's own thread */
    rt_counter_add(k);
}

Test(runtime_queue, last_release_on_own_thread)
{
    struct rt_counter k = RT_COUNTER_INIT;
    IODispatchQueue *q = NULL;
    cr_assert_eq(IODispatchQueue_Create("selfrelease", 0, 0, &q), kIOReturnSuccess);
    void *args[2] = { q, &k };
    cr_assert_eq(IODispatchQueue_DispatchAsync(q, release_self, args), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&k, 1, 5000));
    rt_sleep_ms(20); /* let the detached thread finish; ASan reports a leak or UAF otherwise */
}

static void slow_inc(void *arg)
{
    rt_sleep_ms(2);
    __atomic_fetch_add((int *)arg, 1, __ATOMIC_RELAXED);
}

Test(runtime_queue, release_with_pending_work_runs_it)
{
    int n = 0;
    IODispatchQueue *q = NULL;
    cr_assert_eq(IODispatchQueue_Create("pending", 0, 0, &q), kIOReturnSuccess);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(IODispatchQueue_DispatchAsync(q, slow_inc, &n), kIOReturnSuccess);
    OSObject_Release((OSObject *)q); /* queued work holds the queue */
    for (int i = 0; i < 500 && __atomic_load_n(&n, __ATOMIC_RELAXED) < 10; i++)
        rt_sleep_ms(5);
    cr_assert_eq(__atomic_load_n(&n, __ATOMIC_RELAXED), 10);
    rt_sleep_ms(20);
}
