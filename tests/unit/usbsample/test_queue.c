/* The app-side consumer of the sample driver's data queue (drivers/usbsample/sample_queue.c)
 * against the runtime's own producer (rt_ring, what IODataQueueDispatchSource writes): the same
 * layout, records in order across many wraps, foreign entries skipped, every corruption refused,
 * and the app's print loop (gap and driver-change lines). */
#include "util/common.h"

#include <criterion/criterion.h>
#include <stddef.h>

#include "drivers/usbsample/sample_queue.h"
#include "runtime/src/rt_ring.h"

static uint32_t ring_mem[(RT_RING_HEADER_SIZE + 4096) / 4];

static void fill(void *data, size_t size, void *ctx)
{
    memcpy(data, ctx, size);
}

static void put(struct rt_ring *r, const void *p, uint32_t len)
{
    kern_return_t k = rt_ring_enqueue(r, len, fill, (void *)(uintptr_t)p);
    cr_assert_eq(k, kIOReturnSuccess, "%s", IOReturn_Name(k));
}

static struct rt_ring make_ring(uint32_t data_size)
{
    memset(ring_mem, 0, sizeof(ring_mem));
    rt_ring_format(ring_mem, data_size);
    struct rt_ring r;
    cr_assert_eq(rt_ring_attach(&r, ring_mem, RT_RING_HEADER_SIZE + data_size), kIOReturnSuccess);
    return r;
}

static usbsample_record rec(uint64_t counter, uint32_t version, uint32_t missed)
{
    usbsample_record x = { .counter = counter, .device_ns = counter * 1000u + 7u, .host_ns = counter * 2000u,
                           .version = version, .missed = missed };
    return x;
}

Test(usbsample_queue, layout_is_the_runtime_ring)
{
    cr_assert_eq(RT_RING_MAGIC, 0x314b5144u);
    cr_assert_eq(RT_RING_HEADER_SIZE, 256u);
    cr_assert_eq(offsetof(struct rt_ring_header, data_size), 8u);
    cr_assert_eq(offsetof(struct rt_ring_header, header_size), 12u);
    cr_assert_eq(offsetof(struct rt_ring_header, head), 64u);
    cr_assert_eq(offsetof(struct rt_ring_header, tail), 128u);
    cr_assert_eq(RT_RING_WRAP, 0xffffffffu);
    cr_assert_eq(sizeof(usbsample_record), 32u);
}

Test(usbsample_queue, records_in_order_across_many_wraps)
{
    struct rt_ring r = make_ring(256); /* 7 records at most: wraps every few */
    usbsample_queue q;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), 0);
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 500; round++) {
        int burst = 1 + round % 5;
        for (int i = 0; i < burst; i++) {
            kern_return_t err;
            if (!rt_ring_can_enqueue(&r, sizeof(usbsample_record), &err))
                break;
            usbsample_record x = rec(next_in++, 1, 0);
            put(&r, &x, sizeof(x));
        }
        int take = 1 + round % 3;
        for (int i = 0; i < take; i++) {
            usbsample_record y;
            int got = usbsample_queue_next(&q, &y);
            cr_assert_geq(got, 0, "round %d", round);
            if (!got)
                break;
            cr_assert_eq(y.counter, next_out, "round %d", round);
            cr_assert_eq(y.device_ns, next_out * 1000u + 7u);
            next_out++;
            /* the producer sees the consumer's head */
            cr_assert_eq(__atomic_load_n(&r.hdr->head, __ATOMIC_SEQ_CST), q.head);
        }
    }
    usbsample_record y;
    while (usbsample_queue_next(&q, &y) == 1)
        cr_assert_eq(y.counter, next_out++);
    cr_assert_eq(next_out, next_in);
    cr_assert_gt(next_in, 100);
}

Test(usbsample_queue, foreign_entries_are_skipped)
{
    struct rt_ring r = make_ring(1024);
    usbsample_queue q;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), 0);
    uint8_t odd[64] = { 1, 2, 3 };
    usbsample_record a = rec(1, 1, 0), b = rec(2, 1, 0);
    put(&r, odd, 13);
    put(&r, &a, sizeof(a));
    put(&r, odd, 8);
    put(&r, odd, 40);
    put(&r, &b, sizeof(b));
    usbsample_record y;
    cr_assert_eq(usbsample_queue_next(&q, &y), 1);
    cr_assert_eq(y.counter, 1);
    cr_assert_eq(usbsample_queue_next(&q, &y), 1);
    cr_assert_eq(y.counter, 2);
    cr_assert_eq(usbsample_queue_next(&q, &y), 0);
    cr_assert_eq(q.foreign, 3);
}

Test(usbsample_queue, corrupt_rings_are_refused)
{
    usbsample_queue q;
    struct rt_ring r = make_ring(256);
    struct rt_ring_header *h = r.hdr;
    cr_assert_eq(usbsample_queue_attach(&q, NULL, 1000), -1);
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, 255), -1, "shorter than the header");
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, RT_RING_HEADER_SIZE + 252), -1, "data beyond the mapping");
    cr_assert_eq(usbsample_queue_attach(&q, (uint8_t *)ring_mem + 1, 1000), -1, "unaligned");
    h->magic ^= 1;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), -1, "magic");
    h->magic ^= 1;
    h->version = 2;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), -1, "version");
    h->version = 1;
    h->data_size = 16;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), -1, "too small");
    h->data_size = 258;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), -1, "not a multiple of 4");
    h->data_size = 256;
    h->head = 300;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), -1, "head outside");
    h->head = 0;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), 0);

    usbsample_record y, a = rec(5, 1, 0);
    put(&r, &a, sizeof(a));
    uint32_t tail = h->tail;
    h->tail = 256;
    cr_assert_eq(usbsample_queue_next(&q, &y), -1, "tail outside the data");
    h->tail = 6;
    cr_assert_eq(usbsample_queue_next(&q, &y), -1, "unaligned tail");
    h->tail = 8;
    cr_assert_eq(usbsample_queue_next(&q, &y), -1, "entry longer than the live bytes");
    h->tail = tail;
    memcpy(r.data, &(uint32_t){ 0 }, 4);
    cr_assert_eq(usbsample_queue_next(&q, &y), -1, "zero length");
    memcpy(r.data, &(uint32_t){ RT_RING_WRAP }, 4);
    cr_assert_eq(usbsample_queue_next(&q, &y), -1, "a wrap marker with tail ahead of head");
    memcpy(r.data, &(uint32_t){ 0x7ffffff0u }, 4);
    cr_assert_eq(usbsample_queue_next(&q, &y), -1, "huge length");
    memcpy(r.data, &(uint32_t){ sizeof(a) }, 4);
    cr_assert_eq(usbsample_queue_next(&q, &y), 1, "repaired");
    cr_assert_eq(y.counter, 5);
    cr_assert_eq(q.head, tail);

    /* a wrap marker at head with tail at 0 would loop: refused */
    h->tail = 0;
    q.head = 128;
    memcpy(r.data + 128, &(uint32_t){ RT_RING_WRAP }, 4);
    cr_assert_eq(usbsample_queue_next(&q, &y), -1);
}

static char *print(usbsample_queue *q, uint64_t max, usbsample_print_stats *st, int *ret)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    *ret = usbsample_print_loop(q, f, max, 30, 500, NULL, st);
    fclose(f);
    return text;
}

Test(usbsample_queue, print_loop_reports_samples_gaps_and_a_new_driver)
{
    struct rt_ring r = make_ring(1024);
    usbsample_queue q;
    cr_assert_eq(usbsample_queue_attach(&q, ring_mem, sizeof(ring_mem)), 0);
    usbsample_record x[] = { rec(10, 1, 4), rec(11, 1, 0), rec(14, 1, 2), rec(3, 2, 0), rec(4, 2, 0),
                             rec(9, 2, 0) };
    for (size_t i = 0; i < 6; i++)
        put(&r, &x[i], sizeof(x[i]));
    usbsample_print_stats st = { 0 };
    int ret;
    char *text = print(&q, 0, &st, &ret);
    cr_assert_eq(ret, 0, "idle after 30 ms");
    cr_assert_str_eq(text, "gap: 4 samples missed\n"
                           "sample 10 device 0.000010s v1\n"
                           "sample 11 device 0.000011s v1\n"
                           "gap: 2 samples missed\n"
                           "sample 14 device 0.000014s v1\n"
                           "driver changed: v1 counter 14 -> v2 counter 3\n"
                           "sample 3 device 0.000003s v2\n"
                           "sample 4 device 0.000004s v2\n"
                           "gap: 4 samples missed\n"
                           "sample 9 device 0.000009s v2\n");
    free(text);
    cr_assert_eq(st.samples, 6);
    cr_assert_eq(st.missed, 10, "the counter gaps, whatever a record's missed says");
    cr_assert_eq(st.restarts, 1);
    cr_assert_eq(st.last_counter, 9);
    cr_assert_eq(st.last_version, 2);

    /* max stops early; a corrupt ring ends the loop with -1 */
    put(&r, &x[0], sizeof(x[0]));
    put(&r, &x[1], sizeof(x[1]));
    usbsample_print_stats st2 = { 0 };
    text = print(&q, 1, &st2, &ret);
    cr_assert_eq(ret, 0);
    cr_assert_eq(st2.samples, 1);
    free(text);
    r.hdr->tail = 3;
    text = print(&q, 0, &st2, &ret);
    cr_assert_eq(ret, -1);
    cr_assert(strstr(text, "data queue corrupt") != NULL);
    free(text);
}
