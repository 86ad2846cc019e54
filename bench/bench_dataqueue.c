/* Data queue throughput between two processes: IODataQueueDispatchSource (with its DataAvailable
 * / DataServiced eventfd notifications and blocking waits) against the named baseline, a bare
 * SPSC ring in the same kind of shared memory with the same entry format and no notifications
 * (a side that finds the ring full/empty just calls sched_yield and retries; pure spinning
 * collapses on a machine with fewer free cores than the two processes). Ratio = data queue / bare ring; the goal is >= 0.5x.
 *
 *   bench_dataqueue [messages] [payload-bytes] [rounds]     (defaults 1000000 64 5)
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sysext/driverkit/DriverKit.h>

#include "rt_ring.h"

#define RING_BYTES (64u * 1024u)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fill(void *data, size_t size, void *ctx)
{
    uint64_t seq = *(uint64_t *)ctx;
    memset(data, (int)(seq & 0xff), size);
    memcpy(data, &seq, sizeof(seq));
}

struct sink {
    uint64_t expect;
    int bad;
};

static void consume(const void *data, size_t size, void *ctx)
{
    struct sink *s = ctx;
    uint64_t seq;
    memcpy(&seq, data, sizeof(seq));
    if (seq != s->expect || ((const uint8_t *)data)[size - 1] != (uint8_t)(seq & 0xff))
        s->bad++;
    s->expect++;
}

static int wait_child(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "producer failed (status %d)\n", st);
        return -1;
    }
    return 0;
}

/* Baseline: the bare ring, both sides spinning. */
static double run_bare(uint64_t n, uint32_t size)
{
    size_t total = RT_RING_HEADER_SIZE + RING_BYTES;
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    rt_ring_format(mem, RING_BYTES);
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        struct rt_ring r;
        if (rt_ring_attach(&r, mem, total) != kIOReturnSuccess)
            _exit(2);
        for (uint64_t i = 0; i < n;) {
            kern_return_t k = rt_ring_enqueue(&r, size, fill, &i);
            if (k == kIOReturnSuccess)
                i++;
            else if (k == kIOReturnOverrun)
                sched_yield();
            else
                _exit(3);
        }
        _exit(0);
    }
    struct rt_ring r;
    struct sink s = { 0, 0 };
    if (rt_ring_attach(&r, mem, total) != kIOReturnSuccess)
        return -1;
    while (s.expect < n) {
        kern_return_t k = rt_ring_dequeue(&r, consume, &s, true);
        if (k == kIOReturnUnderrun)
            sched_yield();
        else if (k != kIOReturnSuccess)
            return -1;
    }
    uint64_t t1 = now_ns();
    munmap(mem, total);
    if (wait_child(pid) || s.bad)
        return -1;
    return (double)n / ((double)(t1 - t0) / 1e9);
}

/* The runtime's data queue: the child attaches from the fds, as another process would. */
static double run_dataqueue(uint64_t n, uint32_t size)
{
    IODataQueueDispatchSource *q = NULL;
    if (IODataQueueDispatchSource_Create(RING_BYTES, NULL, &q) != kIOReturnSuccess)
        return -1;
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        IODataQueueDispatchSource *p = NULL;
        if (IODataQueueDispatchSource_CreateWithFDs(IODataQueueDispatchSource_GetMemoryFD(q),
                                                    IODataQueueDispatchSource_GetDataAvailableFD(q),
                                                    IODataQueueDispatchSource_GetDataServicedFD(q), NULL,
                                                    &p) != kIOReturnSuccess)
            _exit(2);
        for (uint64_t i = 0; i < n;) {
            kern_return_t k = IODataQueueDispatchSource_Enqueue(p, size, fill, &i);
            if (k == kIOReturnSuccess)
                i++;
            else if (k != kIOReturnOverrun || IODataQueueDispatchSource_WaitForSpace(p, size, 10000000000ull))
                _exit(3);
        }
        _exit(0);
    }
    struct sink s = { 0, 0 };
    while (s.expect < n) {
        kern_return_t k = IODataQueueDispatchSource_Dequeue(q, consume, &s);
        if (k == kIOReturnUnderrun)
            k = IODataQueueDispatchSource_WaitForData(q, 10000000000ull);
        if (k != kIOReturnSuccess)
            return -1;
    }
    uint64_t t1 = now_ns();
    OSObject_Release((OSObject *)q);
    if (wait_child(pid) || s.bad)
        return -1;
    return (double)n / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint32_t size = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 64;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (n == 0 || size < 8 || size > 4096 || rounds < 1) {
        fprintf(stderr, "usage: bench_dataqueue [messages>0] [payload 8..4096] [rounds>0]\n");
        return 2;
    }
    double best_bare = 0, best_dq = 0;
    for (int r = 0; r < rounds; r++) {
        double b = run_bare(n, size), d = run_dataqueue(n, size);
        if (b < 0 || d < 0) {
            fprintf(stderr, "round %d failed\n", r);
            return 2;
        }
        printf("round %d: bare ring %.2f Mmsg/s, data queue %.2f Mmsg/s\n", r, b / 1e6, d / 1e6);
        if (b > best_bare)
            best_bare = b;
        if (d > best_dq)
            best_dq = d;
    }
    printf("data queue throughput, %llu x %u-byte messages between two processes (best of %d):\n",
           (unsigned long long)n, size, rounds);
    printf("  baseline bare SPSC ring (no notify, yield):  %.2f Mmsg/s (%.0f MB/s)\n", best_bare / 1e6,
           best_bare * size / 1e6);
    printf("  IODataQueueDispatchSource (eventfd notify):  %.2f Mmsg/s (%.0f MB/s)\n", best_dq / 1e6,
           best_dq * size / 1e6);
    printf("  ratio data queue / bare ring: %.2fx (goal >= 0.5x)\n", best_dq / best_bare);
    return 0;
}
