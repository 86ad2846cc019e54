#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_ring.h"
#include "rt_test.h"

TestSuite(runtime_dataqueue, .timeout = 60);

/* Message i: a 4-byte sequence number, then (i % 61) bytes of (i + k) & 0xff. */
static uint32_t msg_size(uint32_t i)
{
    return 4 + i % 61;
}

static void fill_msg(void *data, size_t size, void *ctx)
{
    uint32_t i = *(uint32_t *)ctx;
    uint8_t *p = data;
    memcpy(p, &i, 4);
    for (size_t k = 4; k < size; k++)
        p[k] = (uint8_t)(i + k);
}

struct check {
    uint32_t expect;
    bool ok;
};

static void check_msg(const void *data, size_t size, void *ctx)
{
    struct check *c = ctx;
    const uint8_t *p = data;
    uint32_t i;
    if (size < 4) {
        c->ok = false;
        return;
    }
    memcpy(&i, p, 4);
    if (i != c->expect || size != msg_size(i))
        c->ok = false;
    for (size_t k = 4; k < size && c->ok; k++)
        if (p[k] != (uint8_t)(i + k))
            c->ok = false;
    c->expect++;
}

Test(runtime_dataqueue, enqueue_dequeue_peek_underrun_overrun)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(256, NULL, &s), kIOReturnSuccess);
    cr_assert_eq(IODataQueueDispatchSource_GetDataQueueEntryHeaderSize(), 4);
    struct check c = { 0, true };
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, check_msg, &c), kIOReturnUnderrun);
    cr_assert_not(IODataQueueDispatchSource_IsDataAvailable(s));
    uint32_t i = 0;
    int n = 0;
    kern_return_t r;
    while ((r = IODataQueueDispatchSource_Enqueue(s, msg_size(i), fill_msg, &i)) == kIOReturnSuccess) {
        i++;
        n++;
    }
    cr_assert_eq(r, kIOReturnOverrun);
    cr_assert_gt(n, 3);
    cr_assert_not(IODataQueueDispatchSource_CanEnqueueData(s, msg_size(i)));
    cr_assert(IODataQueueDispatchSource_IsDataAvailable(s));
    cr_assert_eq(IODataQueueDispatchSource_Peek(s, check_msg, &c), kIOReturnSuccess);
    cr_assert_eq(c.expect, 1);
    c.expect = 0;
    for (int k = 0; k < n; k++)
        cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, check_msg, &c), kIOReturnSuccess);
    cr_assert(c.ok);
    cr_assert_eq(c.expect, (uint32_t)n);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, check_msg, &c), kIOReturnUnderrun);
    cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, 0, fill_msg, &i), kIOReturnBadArgument);
    cr_assert_eq(IODataQueueDispatchSource_GetMaxEntrySize(s), 120);
    cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, 121, fill_msg, &i), kIOReturnBadArgument, "too large");
    cr_assert(IODataQueueDispatchSource_CanEnqueueData(s, 120), "the max fits an empty ring at any offset");
    for (int k = 0; k < 40; k++) { /* walk the offsets around the ring with max-size entries */
        cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, 120, NULL, NULL), kIOReturnSuccess, "at step %d", k);
        cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, NULL, NULL), kIOReturnSuccess);
        cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, (uint32_t)(4 + k % 9), NULL, NULL), kIOReturnSuccess);
        cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, NULL, NULL), kIOReturnSuccess);
    }
    OSObject_Release((OSObject *)s);
}

Test(runtime_dataqueue, create_arguments)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(8, NULL, &s), kIOReturnBadArgument);
    cr_assert_eq(IODataQueueDispatchSource_Create(kIODataQueueMaxByteCount + 1, NULL, &s), kIOReturnBadArgument);
    cr_assert_eq(IODataQueueDispatchSource_CreateWithFDs(-1, 0, 0, NULL, &s), kIOReturnBadArgument);
    cr_assert_null(s);
}

/* Random sizes against a model, so every wrap position is exercised. */
Test(runtime_dataqueue, wraparound_matches_model)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(1000, NULL, &s), kIOReturnSuccess);
    uint32_t next_in = 0;
    struct check c = { 0, true };
    srand(1234);
    for (int step = 0; step < 200000; step++) {
        if (rand() % 2) {
            kern_return_t r = IODataQueueDispatchSource_Enqueue(s, msg_size(next_in), fill_msg, &next_in);
            cr_assert(r == kIOReturnSuccess || r == kIOReturnOverrun, "%s", IOReturn_Name(r));
            if (r == kIOReturnSuccess)
                next_in++;
        } else {
            kern_return_t r = IODataQueueDispatchSource_Dequeue(s, check_msg, &c);
            cr_assert(r == kIOReturnSuccess || (r == kIOReturnUnderrun && c.expect == next_in), "%s", IOReturn_Name(r));
        }
    }
    cr_assert(c.ok);
    cr_assert_gt(c.expect, 50000);
    OSObject_Release((OSObject *)s);
}

enum { FORK_MESSAGES = 100000 };

static int produce(int memfd, int availfd, int servfd)
{
    IODataQueueDispatchSource *p = NULL;
    if (IODataQueueDispatchSource_CreateWithFDs(memfd, availfd, servfd, NULL, &p) != kIOReturnSuccess)
        return 10;
    for (uint32_t i = 0; i < FORK_MESSAGES;) {
        kern_return_t r = IODataQueueDispatchSource_Enqueue(p, msg_size(i), fill_msg, &i);
        if (r == kIOReturnSuccess) {
            i++;
        } else if (r == kIOReturnOverrun) {
            if (IODataQueueDispatchSource_WaitForSpace(p, msg_size(i), 10000000000ull) != kIOReturnSuccess)
                return 11;
        } else {
            return 12;
        }
    }
    OSObject_Release((OSObject *)p);
    return 0;
}

Test(runtime_dataqueue, two_processes_move_100k_messages_in_order)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(4096, NULL, &s), kIOReturnSuccess);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(produce(IODataQueueDispatchSource_GetMemoryFD(s), IODataQueueDispatchSource_GetDataAvailableFD(s),
                      IODataQueueDispatchSource_GetDataServicedFD(s)));
    struct check c = { 0, true };
    while (c.expect < FORK_MESSAGES && c.ok) {
        kern_return_t r = IODataQueueDispatchSource_Dequeue(s, check_msg, &c);
        if (r == kIOReturnUnderrun)
            r = IODataQueueDispatchSource_WaitForData(s, 10000000000ull);
        cr_assert_eq(r, kIOReturnSuccess, "%s after %u messages", IOReturn_Name(r), c.expect);
    }
    cr_assert(c.ok, "message %u out of order or corrupt", c.expect);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer failed: %d", WEXITSTATUS(status));
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, check_msg, &c), kIOReturnUnderrun);
    OSObject_Release((OSObject *)s);
}

/* The consumer uses a DataAvailable handler on a driver queue. */
static struct {
    IODataQueueDispatchSource *consumer;
    struct check c;
    struct rt_counter done;
    IODispatchQueue *queue;
    bool on_queue;
    int calls;
} H;

static void data_available(OSObject *self, OSAction *action)
{
    (void)self;
    (void)action;
    H.calls++;
    H.on_queue = IODispatchQueue_OnQueue(H.queue);
    while (IODataQueueDispatchSource_Dequeue(H.consumer, check_msg, &H.c) == kIOReturnSuccess)
        ;
    if (H.c.expect >= 20000 || !H.c.ok)
        rt_counter_add(&H.done);
}

static const OSClass Target_Class = { "TestDQTarget", &OSObject_Class, sizeof(OSObject), NULL, NULL, NULL, 0 };

Test(runtime_dataqueue, data_available_handler_across_processes)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(2048, NULL, &s), kIOReturnSuccess);
    int memfd = IODataQueueDispatchSource_GetMemoryFD(s), af = IODataQueueDispatchSource_GetDataAvailableFD(s),
        sf = IODataQueueDispatchSource_GetDataServicedFD(s);
    pid_t pid = fork(); /* before any thread exists in this process */
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        IODataQueueDispatchSource *p = NULL;
        if (IODataQueueDispatchSource_CreateWithFDs(memfd, af, sf, NULL, &p) != kIOReturnSuccess)
            _exit(10);
        for (uint32_t i = 0; i < 20000;) {
            kern_return_t r = IODataQueueDispatchSource_Enqueue(p, msg_size(i), fill_msg, &i);
            if (r == kIOReturnSuccess)
                i++;
            else if (r != kIOReturnOverrun ||
                     IODataQueueDispatchSource_WaitForSpace(p, msg_size(i), 10000000000ull) != kIOReturnSuccess)
                _exit(11);
        }
        _exit(0);
    }
    memset(&H, 0, sizeof(H));
    H.c.ok = true;
    H.done = (struct rt_counter)RT_COUNTER_INIT;
    OSObject *target = NULL;
    cr_assert_eq(OSObject_Alloc(&Target_Class, &target), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Create("consumer", 0, 0, &H.queue), kIOReturnSuccess);
    OSObject_SetDispatchQueue(target, kIOServiceDefaultQueueName, H.queue);
    cr_assert_eq(IODataQueueDispatchSource_CreateWithFDs(memfd, af, sf, H.queue, &H.consumer), kIOReturnSuccess);
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, 0, IODataQueueDispatchSource_DataServiced_ID, (OSMethodFunction)data_available,
                                 0, &a),
                 kIOReturnSuccess);
    cr_assert_eq(IODataQueueDispatchSource_SetDataAvailableHandler(H.consumer, a), kIOReturnBadArgument,
                 "a DataServiced-typed action is refused");
    OSObject_Release((OSObject *)a);
    cr_assert_eq(OSAction_Create(target, 0, IODataQueueDispatchSource_DataAvailable_ID,
                                 (OSMethodFunction)data_available, 0, &a),
                 kIOReturnSuccess);
    cr_assert_eq(IODataQueueDispatchSource_SetDataAvailableHandler(H.consumer, a), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&H.done, 1, 20000), "stalled at %u messages", H.c.expect);
    cr_assert(H.c.ok, "message %u out of order or corrupt", H.c.expect);
    cr_assert(H.on_queue);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer failed: %d", WEXITSTATUS(status));
    struct rt_counter cancelled = RT_COUNTER_INIT;
    cr_assert_eq(IODataQueueDispatchSource_Cancel(H.consumer, (IODispatchSourceCancelHandler)rt_counter_add, &cancelled),
                 kIOReturnSuccess);
    cr_assert(rt_counter_wait(&cancelled, 1, 5000));
    OSObject_Release((OSObject *)a);
    OSObject_Release((OSObject *)H.consumer);
    OSObject_Release((OSObject *)s);
    OSObject_Release(target);
    OSObject_Release((OSObject *)H.queue);
}

static void data_serviced(OSObject *self, OSAction *action)
{
    (void)self;
    (void)action;
    rt_counter_add(&H.done);
}

Test(runtime_dataqueue, data_serviced_after_overrun)
{
    memset(&H, 0, sizeof(H));
    H.done = (struct rt_counter)RT_COUNTER_INIT;
    OSObject *target = NULL;
    cr_assert_eq(OSObject_Alloc(&Target_Class, &target), kIOReturnSuccess);
    cr_assert_eq(IODispatchQueue_Create("producer", 0, 0, &H.queue), kIOReturnSuccess);
    OSObject_SetDispatchQueue(target, kIOServiceDefaultQueueName, H.queue);
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(128, H.queue, &s), kIOReturnSuccess);
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(target, 0, IODataQueueDispatchSource_DataServiced_ID, (OSMethodFunction)data_serviced,
                                 0, &a),
                 kIOReturnSuccess);
    cr_assert_eq(IODataQueueDispatchSource_SetDataServicedHandler(s, a), kIOReturnSuccess);
    uint32_t i = 0;
    while (IODataQueueDispatchSource_Enqueue(s, 20, fill_msg, &i) == kIOReturnSuccess)
        ;
    rt_sleep_ms(30);
    cr_assert_eq(rt_counter_get(&H.done), 0);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, NULL, NULL), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&H.done, 1, 5000), "DataServiced after the consumer made room");
    cr_assert_eq(IODataQueueDispatchSource_Cancel(s, NULL, NULL), kIOReturnSuccess);
    cr_assert_eq(IODataQueueDispatchSource_Cancel(s, NULL, NULL), kIOReturnAborted);
    rt_sleep_ms(20);
    OSObject_Release((OSObject *)a);
    OSObject_Release((OSObject *)s);
    OSObject_Release(target);
    OSObject_Release((OSObject *)H.queue);
}

/* ---- a hostile producer: corrupt header fields never lead outside the ring ---- */

static struct rt_ring_header *map_header(IODataQueueDispatchSource *s, size_t *len)
{
    *len = RT_RING_HEADER_SIZE + 256;
    void *m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, IODataQueueDispatchSource_GetMemoryFD(s), 0);
    cr_assert_neq(m, MAP_FAILED);
    return m;
}

static IODataQueueDispatchSource *attach(IODataQueueDispatchSource *s, kern_return_t *r)
{
    IODataQueueDispatchSource *c = NULL;
    *r = IODataQueueDispatchSource_CreateWithFDs(IODataQueueDispatchSource_GetMemoryFD(s),
                                                 IODataQueueDispatchSource_GetDataAvailableFD(s),
                                                 IODataQueueDispatchSource_GetDataServicedFD(s), NULL, &c);
    return c;
}

Test(runtime_dataqueue, corrupt_header_refused_at_attach)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(256, NULL, &s), kIOReturnSuccess);
    size_t len;
    struct rt_ring_header *h = map_header(s, &len);
    kern_return_t r;
    IODataQueueDispatchSource *c;

    h->magic = 0x12345678;
    c = attach(s, &r);
    cr_assert_eq(r, kIOReturnError, "bad magic");
    cr_assert_null(c);
    h->magic = RT_RING_MAGIC;

    h->data_size = 4096; /* larger than the memfd */
    attach(s, &r);
    cr_assert_eq(r, kIOReturnError, "data size beyond the file");
    h->data_size = 254; /* not a multiple of 4 */
    attach(s, &r);
    cr_assert_eq(r, kIOReturnError);
    h->data_size = 256;

    h->tail = 300;
    attach(s, &r);
    cr_assert_eq(r, kIOReturnError, "tail out of range");
    h->tail = 0;
    h->version = 99;
    attach(s, &r);
    cr_assert_eq(r, kIOReturnError, "unknown version");
    h->version = RT_RING_VERSION;

    c = attach(s, &r);
    cr_assert_eq(r, kIOReturnSuccess);
    OSObject_Release((OSObject *)c);
    munmap(h, len);
    OSObject_Release((OSObject *)s);
}

static int dequeue_calls;
static void count_dequeue(const void *data, size_t size, void *ctx)
{
    (void)data;
    (void)size;
    (void)ctx;
    dequeue_calls++;
}

Test(runtime_dataqueue, corrupt_offsets_and_lengths_detected)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(256, NULL, &s), kIOReturnSuccess);
    size_t len;
    struct rt_ring_header *h = map_header(s, &len);
    uint8_t *data = (uint8_t *)h + RT_RING_HEADER_SIZE;
    uint32_t i = 0;
    cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, 10, fill_msg, &i), kIOReturnSuccess);
    cr_assert_eq(h->tail, 16);
    dequeue_calls = 0;

    h->tail = 1000; /* out of range */
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnError);
    h->tail = 6; /* unaligned */
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnError);
    h->tail = 16;

    uint32_t bad = 0x7fffffff; /* entry longer than the ring */
    memcpy(data, &bad, 4);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnError);
    bad = 13; /* crosses the tail */
    memcpy(data, &bad, 4);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnError);
    bad = 0; /* empty entry */
    memcpy(data, &bad, 4);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnError);
    bad = RT_RING_WRAP; /* wrap marker while tail is ahead of head */
    memcpy(data, &bad, 4);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnError);
    cr_assert_eq(dequeue_calls, 0, "nothing was handed out");

    bad = 10; /* repaired: the entry is readable again */
    memcpy(data, &bad, 4);
    cr_assert_eq(IODataQueueDispatchSource_Dequeue(s, count_dequeue, NULL), kIOReturnSuccess);
    cr_assert_eq(dequeue_calls, 1);

    /* the producer side validates the consumer's head too */
    h->head = 1001;
    cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, 10, fill_msg, &i), kIOReturnError);
    munmap(h, len);
    OSObject_Release((OSObject *)s);
}

Test(runtime_dataqueue, unsealed_memory_refused)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(256, NULL, &s), kIOReturnSuccess);
    int fd = memfd_create("plain", MFD_CLOEXEC);
    cr_assert_eq(ftruncate(fd, 4096), 0);
    IODataQueueDispatchSource *c = NULL;
    cr_assert_eq(IODataQueueDispatchSource_CreateWithFDs(fd, IODataQueueDispatchSource_GetDataAvailableFD(s),
                                                         IODataQueueDispatchSource_GetDataServicedFD(s), NULL, &c),
                 kIOReturnNotPermitted);
    close(fd);
    OSObject_Release((OSObject *)s);
}

static bool fd_signalled(int fd)
{
    uint64_t v;
    return read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v); /* the eventfds are non-blocking */
}

Test(runtime_dataqueue, coalesced_notifications)
{
    IODataQueueDispatchSource *s = NULL;
    cr_assert_eq(IODataQueueDispatchSource_Create(64, NULL, &s), kIOReturnSuccess);
    int af = IODataQueueDispatchSource_GetDataAvailableFD(s), sf = IODataQueueDispatchSource_GetDataServicedFD(s);
    size_t len;
    struct rt_ring_header *h = map_header(s, &len);
    bool send = false;
    cr_assert_eq(IODataQueueDispatchSource_EnqueueWithCoalesce(s, 8, &send, NULL, NULL), kIOReturnSuccess);
    cr_assert_not(send, "nobody waits");
    __atomic_store_n(&h->consumer_waiting, 1u, __ATOMIC_SEQ_CST); /* the consumer sleeps */
    cr_assert_eq(IODataQueueDispatchSource_EnqueueWithCoalesce(s, 8, &send, NULL, NULL), kIOReturnSuccess);
    cr_assert(send);
    cr_assert_not(fd_signalled(af), "coalesced: not signalled yet");
    cr_assert_eq(IODataQueueDispatchSource_SendDataAvailable(s), kIOReturnSuccess);
    cr_assert(fd_signalled(af));
    cr_assert_eq(IODataQueueDispatchSource_Enqueue(s, 8, NULL, NULL), kIOReturnSuccess);
    cr_assert(fd_signalled(af), "plain Enqueue signals a waiting consumer");

    while (IODataQueueDispatchSource_Enqueue(s, 8, NULL, NULL) == kIOReturnSuccess)
        ; /* full: the producer now waits for DataServiced */
    send = false;
    cr_assert_eq(IODataQueueDispatchSource_DequeueWithCoalesce(s, &send, NULL, NULL), kIOReturnSuccess);
    cr_assert(send);
    cr_assert_not(fd_signalled(sf));
    send = false;
    cr_assert_eq(IODataQueueDispatchSource_DequeueWithCoalesce(s, &send, NULL, NULL), kIOReturnSuccess);
    cr_assert_not(send, "told once per overrun");
    cr_assert_eq(IODataQueueDispatchSource_EnqueueWithCoalesce(s, 8, NULL, NULL, NULL), kIOReturnBadArgument);
    munmap(h, len);
    OSObject_Release((OSObject *)s);
}
