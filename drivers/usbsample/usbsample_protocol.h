/* What the sample driver and its app agree on: the user client's selectors and memory type,
 * the record the driver puts in the shared data queue for every sensor sample, and the sensor's
 * vendor requests. Plain C, no runtime or libsysext types: both sides include it. */
#ifndef USBSAMPLE_PROTOCOL_H
#define USBSAMPLE_PROTOCOL_H

#include <stdint.h>

#ifndef USBSAMPLE_VERSION
#define USBSAMPLE_VERSION 1 /* the lead builds usbsample-driver-v2 with -DUSBSAMPLE_VERSION=2 */
#endif

/* The virtual sensor (drivers/vusb, `sysext-vusb --device sensor`). */
#define USBSAMPLE_VENDOR_ID 0x1209
#define USBSAMPLE_PRODUCT_ID 0x0001
#define USBSAMPLE_INTERFACE 0
#define USBSAMPLE_DEVICE_SAMPLE_LEN 16 /* le64 counter, le64 device CLOCK_MONOTONIC ns */
#define USBSAMPLE_REQ_SET_RATE 0x01    /* vendor OUT to the device, wValue = Hz */
#define USBSAMPLE_REQ_GET_RATE 0x02    /* vendor IN, 4 bytes little-endian */
#define USBSAMPLE_RATE_MIN 1u
#define USBSAMPLE_RATE_MAX 10000u

/* User client (type 0). */
#define USBSAMPLE_USER_CLIENT_TYPE 0u
enum {
    kUSBSampleSelectorSetRate = 0,  /* scalar in: [0] rate in Hz (USBSAMPLE_RATE_MIN..MAX) */
    kUSBSampleSelectorGetStats = 1, /* scalars out: rate Hz, samples delivered, dropped, driver version */
    kUSBSampleSelectorCount
};
#define USBSAMPLE_STATS_COUNT 4u
#define USBSAMPLE_MEMORY_DATA_QUEUE 0u /* CopyClientMemoryForType: the data queue ring (read-only) */
#define USBSAMPLE_DATA_QUEUE_BYTES (64u * 1024u)

/* One entry of the data queue, host byte order. `missed` counts the samples lost just before
 * this one (device counter gap plus entries the driver could not enqueue because the ring was
 * full): an app sees a gap without guessing. */
typedef struct usbsample_record {
    uint64_t counter;     /* the device's sample counter, +1 per sample */
    uint64_t device_ns;   /* the device's CLOCK_MONOTONIC timestamp of the sample */
    uint64_t host_ns;     /* completion timestamp of the read that delivered it */
    uint32_t version;     /* USBSAMPLE_VERSION of the driver that produced it */
    uint32_t missed;
} usbsample_record;
_Static_assert(sizeof(usbsample_record) == 32, "usbsample_record layout");

#endif
