/* The app's side of the sample driver's data queue: a consumer over the ring memory the user
 * client hands out (CopyClientMemoryForType(USBSAMPLE_MEMORY_DATA_QUEUE), mapped read/write
 * by the app with IOConnectMapMemory64 / sysext_ioconnect_map_memory), with no runtime
 * dependency. The layout is IODataQueueDispatchSource's (runtime/src/rt_ring.h): a 256-byte
 * header, then entries of a 4-byte length + bytes padded to 4, a 0xffffffff length meaning
 * "wrapped to offset 0". Only the memory crosses, no eventfd: an empty queue is polled.
 *
 * Nothing the driver writes is trusted: the data size is fixed at attach time against the
 * mapping, the consumer keeps its own head, and every tail, length and wrap is checked before
 * a byte is read. A corrupt ring is an error, never a read outside the mapping. */
#ifndef USBSAMPLE_SAMPLE_QUEUE_H
#define USBSAMPLE_SAMPLE_QUEUE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "usbsample_protocol.h"

typedef struct usbsample_queue {
    uint8_t *base; /* the mapping (header + data) */
    uint8_t *data;
    uint32_t size; /* data area, fixed at attach */
    uint32_t head; /* our own consumer offset */
    uint64_t foreign; /* entries of another size, skipped */
} usbsample_queue;

/* Attach to a mapped ring of `len` bytes. 0, or -1 when the header is not a valid ring that
 * fits `len`. */
int usbsample_queue_attach(usbsample_queue *q, void *mem, size_t len);
/* Take the oldest record: 1 and *out filled, 0 when empty, -1 when the ring is corrupt. Entries
 * that are not a usbsample_record are skipped (counted in q->foreign). */
int usbsample_queue_next(usbsample_queue *q, usbsample_record *out);

/* What the print loop saw. */
typedef struct usbsample_print_stats {
    uint64_t samples;  /* records printed */
    uint64_t missed;   /* samples the driver reported lost (sum of record.missed) */
    uint64_t restarts; /* times the counter went back or the version changed (new driver) */
    uint64_t last_counter;
    uint32_t last_version;
} usbsample_print_stats;

/* The app's loop: print each record as a line to `out` ("sample 42 device 1.234567s v1"), a
 * "gap" line when samples were lost (the counter jumps; before the first record, what the driver
 * reports in `missed`) and a "driver changed" line when the counter goes back or the version
 * changes, until `max` records (0 = no limit), `*stop` becomes
 * nonzero, or `idle_ms` pass without a record (0 = wait forever). Polls every `poll_us` µs when
 * empty. Returns 0 (stopped, idle or max reached) or -1 when the ring is corrupt. */
int usbsample_print_loop(usbsample_queue *q, FILE *out, uint64_t max, unsigned idle_ms, unsigned poll_us,
                         volatile sig_atomic_t *stop, usbsample_print_stats *stats);

#endif
