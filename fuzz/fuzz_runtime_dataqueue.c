/* The consumer (and producer) side of the shared-memory data queue ring against a hostile peer:
 * the input is the ring's memory (header + entries) plus a script of peer writes to the head/tail
 * offsets between operations. Nothing may read or write outside the ring, whatever it holds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t consumed;

static void on_entry(const void *data, size_t size, void *ctx)
{
    (void)ctx;
    const volatile uint8_t *p = data;
    uint8_t acc = 0;
    for (size_t i = 0; i < size; i++) /* touch every byte handed out: ASan checks the bounds */
        acc ^= p[i];
    consumed += size + acc;
}

static void on_fill(void *data, size_t size, void *ctx)
{
    (void)ctx;
    memset(data, 0xa5, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    /* byte 0: data area size (16..1036, multiple of 4); byte 1: flags */
    uint32_t area = 16u + 4u * (uint32_t)data[0] % 1024u;
    area &= ~3u;
    uint8_t flags = data[1];
    data += 2;
    size -= 2;
    size_t total = RT_RING_HEADER_SIZE + area;
    uint8_t *mem = calloc(1, total); /* exact size: any overread is an ASan report */
    if (!mem)
        return 0;
    size_t n = size < total ? size : total;
    memcpy(mem, data, n);
    if (!(flags & 1)) { /* usually keep the header well-formed so the entries get parsed */
        struct rt_ring_header *h = (struct rt_ring_header *)mem;
        h->magic = RT_RING_MAGIC;
        h->version = RT_RING_VERSION;
        h->header_size = RT_RING_HEADER_SIZE;
        h->data_size = area;
        if (flags & 2) {
            h->head %= area;
            h->head &= ~3u;
            h->tail %= area;
            h->tail &= ~3u;
        }
    }
    struct rt_ring r;
    if (rt_ring_attach(&r, mem, total) == kIOReturnSuccess) {
        const uint8_t *script = data + n;
        size_t left = size - n;
        for (int op = 0; op < 256; op++) {
            uint8_t c = left ? *script : (uint8_t)op;
            if (left) {
                script++;
                left--;
            }
            switch (c & 7) {
            case 0: /* the hostile producer moves tail */
            case 1: {
                uint32_t v = 0;
                size_t k = left < 4 ? left : 4;
                memcpy(&v, script, k);
                script += k;
                left -= k;
                __atomic_store_n(c & 1 ? &r.hdr->head : &r.hdr->tail, v, __ATOMIC_RELEASE);
                break;
            }
            case 2: /* the hostile producer rewrites the length at our head */
                if (left >= 4 && r.head < area) {
                    memcpy(r.data + r.head, script, 4);
                    script += 4;
                    left -= 4;
                }
                break;
            case 3:
                (void)rt_ring_dequeue(&r, on_entry, NULL, false);
                break;
            case 4: {
                kern_return_t err;
                (void)rt_ring_has_data(&r, &err);
                (void)rt_ring_can_enqueue(&r, (uint32_t)c * 3u, &err);
                break;
            }
            case 5: /* our own producer side against a hostile head */
                (void)rt_ring_enqueue(&r, 1u + (uint32_t)(c >> 3) * 5u, on_fill, NULL);
                break;
            default:
                (void)rt_ring_dequeue(&r, on_entry, NULL, true);
                break;
            }
        }
    }
    free(mem);
    return 0;
}
