/* The shared-memory SPSC ring under IODataQueueDispatchSource (private; the fuzz target and the
 * benchmark use it directly).
 *
 * Layout of the shared memory: a 256-byte header, then `data_size` bytes of entries. An entry is
 * a little-endian-in-practice (host order) uint32 length, then the bytes, padded to 4. A length
 * of RT_RING_WRAP means "the next entry is at offset 0". head == tail means empty; the producer
 * always leaves at least 4 bytes free so a full ring never looks empty.
 *
 * Trust: `size`, and the offset each side owns (`head` for the consumer, `tail` for the
 * producer), are private copies; the other side's offset is re-read and validated on every
 * operation, and every length is checked against both the data area and the other side's
 * offset before the bytes are touched. */
#ifndef SYSEXT_RUNTIME_RING_H
#define SYSEXT_RUNTIME_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sysext/driverkit/IOReturn.h>

#define RT_RING_MAGIC 0x314b5144u /* "DQK1" */
#define RT_RING_VERSION 1u
#define RT_RING_HEADER_SIZE 256u
#define RT_RING_WRAP 0xffffffffu
#define RT_RING_MIN_SIZE 32u /* max entry (size / 2 - 8) is then at least 8 bytes */
#define RT_RING_MAX_SIZE (1u << 30)

struct rt_ring_header {
    uint32_t magic, version, data_size, header_size;
    uint8_t pad0[48];
    uint32_t head;             /* consumer-owned */
    uint32_t consumer_waiting; /* consumer sleeps on DataAvailable */
    uint8_t pad1[56];
    uint32_t tail;             /* producer-owned */
    uint32_t producer_waiting; /* producer sleeps on DataServiced */
    uint8_t pad2[120];
};
_Static_assert(sizeof(struct rt_ring_header) == RT_RING_HEADER_SIZE, "ring header layout");

struct rt_ring {
    struct rt_ring_header *hdr;
    uint8_t *data;
    uint32_t size; /* private copy of data_size */
    uint32_t head; /* consumer's own offset */
    uint32_t tail; /* producer's own offset */
};

typedef void (*rt_ring_fill_fn)(void *data, size_t size, void *ctx);
typedef void (*rt_ring_read_fn)(const void *data, size_t size, void *ctx);

/* Write a fresh header into `mem` (RT_RING_HEADER_SIZE + data_size bytes). */
void rt_ring_format(void *mem, uint32_t data_size);
/* Validate the header of `mem` (mem_size bytes, fixed) and set up `r`.
 * kIOReturnError when the header is corrupt or does not fit mem_size. */
kern_return_t rt_ring_attach(struct rt_ring *r, void *mem, size_t mem_size);
/* The largest payload one entry can carry in this ring. */
uint32_t rt_ring_max_entry(const struct rt_ring *r);

/* Producer. kIOReturnOverrun when full, kIOReturnBadArgument when size can never fit,
 * kIOReturnError when the consumer's offset is corrupt. */
kern_return_t rt_ring_enqueue(struct rt_ring *r, uint32_t size, rt_ring_fill_fn fn, void *ctx);
/* true when an entry of `size` would fit now; *err set to kIOReturnError on corruption. */
bool rt_ring_can_enqueue(struct rt_ring *r, uint32_t size, kern_return_t *err);
/* Consumer. kIOReturnUnderrun when empty, kIOReturnError when corrupt. `remove` false = peek. */
kern_return_t rt_ring_dequeue(struct rt_ring *r, rt_ring_read_fn fn, void *ctx, bool remove);
/* Consumer: true when an entry is there; *err set to kIOReturnError on corruption. */
bool rt_ring_has_data(struct rt_ring *r, kern_return_t *err);

#endif
