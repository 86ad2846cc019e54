/* sysext-vusb internals: emulated devices (vusb_dev.c) and the USB/IP server around them
 * (vusb_main.c). Single-threaded: everything runs in the poll loop. */
#ifndef SX_VUSB_H
#define SX_VUSB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usb/usbip_wire.h"

typedef enum vusb_kind { VUSB_SENSOR, VUSB_LOOPBACK } vusb_kind;

#define VUSB_VENDOR 0x1209
#define VUSB_PRODUCT_SENSOR 0x0001
#define VUSB_PRODUCT_LOOPBACK 0x0002
#define VUSB_SENSOR_SAMPLE_LEN 16
#define VUSB_SENSOR_MAX_RATE 10000
#define VUSB_REQ_SET_RATE 0x01 /* vendor OUT, wValue = rate in Hz */
#define VUSB_REQ_GET_RATE 0x02 /* vendor IN, 4 bytes little-endian */

/* One CMD_SUBMIT the device has not answered yet. */
typedef struct vusb_urb {
    struct vusb_urb *next;
    uint32_t seqnum, ep, dir, len, flags;
    uint32_t done; /* OUT bytes already taken by the device */
    uint8_t setup[8];
    uint8_t *data; /* OUT data (len bytes); NULL for IN */
    bool owns_data; /* false: data points into the receive buffer and is valid only during
                     * vusb_device_submit; a device that keeps the URB calls vusb_urb_keep */
} vusb_urb;

struct vusb_conn;

typedef struct vusb_device {
    vusb_kind kind;
    sx_usbip_device info;
    struct vusb_conn *owner; /* the connection that imported it, or NULL */
    uint8_t config, alt;
    bool halted[32]; /* index ep + 16 * dir */
    /* sensor */
    uint32_t rate_hz, default_rate_hz;
    int timerfd;
    uint64_t counter;
    uint8_t samples[64][VUSB_SENSOR_SAMPLE_LEN];
    unsigned s_head, s_count;
    /* loopback */
    uint8_t *fifo;
    size_t fifo_cap, f_head, f_len;
    vusb_urb *in_q, *out_q; /* pending data URBs, oldest first */
} vusb_device;

int vusb_device_init(vusb_device *d, vusb_kind kind, unsigned index, uint32_t rate_hz);
void vusb_device_destroy(vusb_device *d);
/* Imported by `c`: configured, counters reset, sensor timer armed. */
int vusb_device_attach(vusb_device *d, struct vusb_conn *c);
/* Connection gone: pending URBs freed, state back to the power-on defaults. */
void vusb_device_detach(vusb_device *d);
/* Takes ownership of `u`; answers now or queues it. `stall` forces a STALL (injection). */
void vusb_device_submit(vusb_device *d, vusb_urb *u, bool stall);
/* true when the URB was still pending (it is dropped: the caller answers -ECONNRESET). */
bool vusb_device_unlink(vusb_device *d, uint32_t seqnum);
/* The sensor's timerfd fired. */
void vusb_device_tick(vusb_device *d);

/* Provided by the server: send RET_SUBMIT for `u` to its connection and free `u`. */
void vusb_complete(struct vusb_conn *c, vusb_urb *u, int32_t status, const void *data,
                   uint32_t len);
/* Same, the IN data given as two pieces (a wrapped ring buffer). */
void vusb_complete2(struct vusb_conn *c, vusb_urb *u, int32_t status, const void *a,
                    uint32_t alen, const void *b, uint32_t blen);
void vusb_urb_free(vusb_urb *u);
/* Copy borrowed OUT data so the URB can be queued: 0, or -1 without memory. */
int vusb_urb_keep(vusb_urb *u);

#endif
