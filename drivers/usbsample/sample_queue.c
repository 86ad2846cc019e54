/* The app-side consumer of the sample driver's data queue. See sample_queue.h. */
#include "sample_queue.h"

#include <string.h>
#include <time.h>

/* IODataQueueDispatchSource's ring (runtime/src/rt_ring.h; the usbsample test checks these
 * against it). */
#define Q_MAGIC 0x314b5144u /* "DQK1" */
#define Q_VERSION 1u
#define Q_HEADER_SIZE 256u
#define Q_WRAP 0xffffffffu
#define Q_MIN_SIZE 32u
#define Q_MAX_SIZE (1u << 30)
#define Q_OFF_MAGIC 0u
#define Q_OFF_VERSION 4u
#define Q_OFF_DATA_SIZE 8u
#define Q_OFF_HEADER_SIZE 12u
#define Q_OFF_HEAD 64u /* consumer-owned */
#define Q_OFF_TAIL 128u /* producer-owned */

static uint32_t ld(const uint8_t *base, uint32_t off)
{
    return __atomic_load_n((const uint32_t *)(const void *)(base + off), __ATOMIC_SEQ_CST);
}

static void st(uint8_t *base, uint32_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)(base + off), v, __ATOMIC_SEQ_CST);
}

static uint32_t rd_len(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static bool offset_ok(const usbsample_queue *q, uint32_t off)
{
    return off < q->size && (off & 3u) == 0;
}

int usbsample_queue_attach(usbsample_queue *q, void *mem, size_t len)
{
    memset(q, 0, sizeof(*q));
    if (!mem || len < Q_HEADER_SIZE || ((uintptr_t)mem & 3u))
        return -1;
    uint8_t *b = mem;
    uint32_t size = ld(b, Q_OFF_DATA_SIZE);
    if (ld(b, Q_OFF_MAGIC) != Q_MAGIC || ld(b, Q_OFF_VERSION) != Q_VERSION ||
        ld(b, Q_OFF_HEADER_SIZE) != Q_HEADER_SIZE || size < Q_MIN_SIZE || size > Q_MAX_SIZE || (size & 3u) ||
        (size_t)size > len - Q_HEADER_SIZE)
        return -1;
    q->base = b;
    q->data = b + Q_HEADER_SIZE;
    q->size = size;
    q->head = ld(b, Q_OFF_HEAD);
    if (!offset_ok(q, q->head))
        return -1;
    return 0;
}

int usbsample_queue_next(usbsample_queue *q, usbsample_record *out)
{
    for (;;) {
        uint32_t tail = ld(q->base, Q_OFF_TAIL), head = q->head;
        if (!offset_ok(q, tail))
            return -1;
        if (head == tail)
            return 0;
        uint32_t len = rd_len(q->data + head); /* head < size and 4-aligned: inside */
        if (len == Q_WRAP) {
            if (tail > head) /* live bytes are [head, tail): no room for a wrap there */
                return -1;
            head = 0;
            if (head == tail)
                return -1;
            len = rd_len(q->data);
        }
        uint32_t avail = tail > head ? tail - head : q->size - head;
        if (len == 0 || len == Q_WRAP || len > avail)
            return -1;
        uint32_t need = 4u + ((len + 3u) & ~3u);
        if (need > avail)
            return -1;
        bool ours = len == sizeof(*out);
        if (ours)
            memcpy(out, q->data + head + 4, sizeof(*out));
        uint32_t nh = head + need;
        if (nh == q->size)
            nh = 0;
        q->head = nh;
        st(q->base, Q_OFF_HEAD, nh);
        if (ours)
            return 1;
        q->foreign++;
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int usbsample_print_loop(usbsample_queue *q, FILE *out, uint64_t max, unsigned idle_ms, unsigned poll_us,
                         volatile sig_atomic_t *stop, usbsample_print_stats *stats)
{
    uint64_t last_seen = now_ms();
    while (!(stop && *stop) && (max == 0 || stats->samples < max)) {
        usbsample_record r;
        int got = usbsample_queue_next(q, &r);
        if (got < 0) {
            fprintf(out, "data queue corrupt: stopping\n");
            return -1;
        }
        if (got == 0) {
            if (idle_ms && now_ms() - last_seen >= idle_ms)
                break;
            struct timespec ts = { 0, (long)(poll_us ? poll_us : 1000u) * 1000L };
            nanosleep(&ts, NULL);
            continue;
        }
        last_seen = now_ms();
        if (stats->samples > 0 && (r.counter <= stats->last_counter || r.version != stats->last_version)) {
            stats->restarts++;
            fprintf(out, "driver changed: v%u counter %llu -> v%u counter %llu\n", stats->last_version,
                    (unsigned long long)stats->last_counter, r.version, (unsigned long long)r.counter);
        } else if (stats->samples > 0 && r.counter - stats->last_counter > 1) {
            /* the counter gap, which is what the driver reports in `missed` */
            uint64_t gap = r.counter - stats->last_counter - 1;
            stats->missed += gap;
            fprintf(out, "gap: %llu samples missed\n", (unsigned long long)gap);
        } else if (stats->samples == 0 && r.missed) {
            stats->missed += r.missed;
            fprintf(out, "gap: %u samples missed\n", r.missed);
        }
        fprintf(out, "sample %llu device %llu.%06llus v%u\n", (unsigned long long)r.counter,
                (unsigned long long)(r.device_ns / 1000000000u),
                (unsigned long long)(r.device_ns % 1000000000u / 1000u), r.version);
        stats->samples++;
        stats->last_counter = r.counter;
        stats->last_version = r.version;
    }
    fflush(out);
    return 0;
}
