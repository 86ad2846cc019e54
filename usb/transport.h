/* The transfer interface every USB backend implements (USB/IP client now, libusb later), so
 * the USB family code above it is shared. It follows libusb's asynchronous model:
 *
 *   fill an sx_usb_transfer -> submit -> (dispatch runs) -> callback once, with a status
 *
 * - A transfer is owned by the caller. Between a successful submit and the start of its
 *   callback it must not be modified or freed, and `buffer` must stay valid.
 * - Every successfully submitted transfer gets exactly one callback, from inside the
 *   backend's dispatch (never from inside submit or cancel), on the dispatching thread.
 *   The callback may submit again (the same transfer too) and cancel others; it must not
 *   destroy the transport.
 * - cancel is asynchronous: the callback still comes, with SX_USB_CANCELLED, or with the
 *   transfer's real result if it completed first.
 * - When the device goes away, every pending transfer completes with SX_USB_NO_DEVICE and
 *   later submits fail.
 * Backends are single-threaded: call them from one thread (the one that polls their fd). */
#ifndef SX_USB_TRANSPORT_H
#define SX_USB_TRANSPORT_H

#include <stdint.h>

/* Values as libusb_transfer_status, so a libusb backend maps 1:1. */
typedef enum sx_usb_status {
    SX_USB_COMPLETED = 0,
    SX_USB_ERROR = 1,
    SX_USB_TIMED_OUT = 2,
    SX_USB_CANCELLED = 3,
    SX_USB_STALL = 4,
    SX_USB_NO_DEVICE = 5,
    SX_USB_OVERFLOW = 6,
} sx_usb_status;

/* USB endpoint transfer types (bmAttributes & 3). */
typedef enum sx_usb_xfer_type {
    SX_USB_XFER_CONTROL = 0,
    SX_USB_XFER_ISOCHRONOUS = 1,
    SX_USB_XFER_BULK = 2,
    SX_USB_XFER_INTERRUPT = 3,
} sx_usb_xfer_type;

#define SX_USB_XFER_SHORT_NOT_OK 0x01u /* a short IN transfer is an error */
#define SX_USB_XFER_ZERO_PACKET 0x08u  /* end an OUT transfer of a multiple of wMaxPacketSize with a ZLP */

typedef struct sx_usb_transfer sx_usb_transfer;
typedef void (*sx_usb_transfer_cb)(sx_usb_transfer *t);

struct sx_usb_transfer {
    /* Set by the caller before submit. */
    uint8_t type;     /* sx_usb_xfer_type */
    uint8_t endpoint; /* bEndpointAddress (bit 7 = IN); 0 for control (direction from setup) */
    uint32_t flags;   /* SX_USB_XFER_* */
    uint32_t interval;
    uint32_t timeout_ms; /* 0: none. On expiry the transfer is cancelled and completes with
                          * SX_USB_TIMED_OUT (or its real result if that came first). */
    uint8_t setup[8]; /* control only: the SETUP packet as on the bus (little-endian fields) */
    uint8_t *buffer;  /* data stage / payload; control: exactly wLength bytes */
    uint32_t length;
    sx_usb_transfer_cb callback;
    void *user_data;
    /* Set by the backend before the callback. */
    sx_usb_status status;
    int32_t backend_status; /* the raw status (USB/IP: 0 or a negative Linux errno) */
    uint32_t actual_length; /* bytes transferred (IN: bytes written into buffer) */
    /* Backend-private. */
    void *priv;
};

typedef struct sx_usb_transport_ops {
    const char *name;
    /* 0, or SYSEXT_EINVAL (bad transfer), SYSEXT_EIO (device gone), SYSEXT_EBUSY (too many
     * in flight), SYSEXT_EUNSUPPORTED; no callback is made when submit fails. */
    int (*submit)(void *impl, sx_usb_transfer *t);
    /* 0 (the callback will come), SYSEXT_ENOTFOUND if `t` is not pending. */
    int (*cancel)(void *impl, sx_usb_transfer *t);
    /* The fd to poll and the events to wait for (POLLIN, plus POLLOUT while output waits). */
    int (*fd)(void *impl);
    short (*events)(void *impl);
    /* Do what is ready without blocking and run callbacks: 0, or the error that ended the
     * device (every pending transfer has then completed with SX_USB_NO_DEVICE). */
    int (*dispatch)(void *impl);
    /* Milliseconds until dispatch must run even if the fd stays quiet (a transfer timeout),
     * 0 if now, -1 if never: use it as the poll timeout. */
    int (*next_timeout_ms)(void *impl);
} sx_usb_transport_ops;

typedef struct sx_usb_transport {
    const sx_usb_transport_ops *ops;
    void *impl;
} sx_usb_transport;

static inline int sx_usb_submit(const sx_usb_transport *tr, sx_usb_transfer *t)
{
    return tr->ops->submit(tr->impl, t);
}

static inline int sx_usb_cancel(const sx_usb_transport *tr, sx_usb_transfer *t)
{
    return tr->ops->cancel(tr->impl, t);
}

/* Fill a control transfer: setup from the arguments, length = wLength. */
void sx_usb_fill_control(sx_usb_transfer *t, uint8_t bm_request_type, uint8_t b_request,
                         uint16_t w_value, uint16_t w_index, uint8_t *data, uint16_t w_length,
                         sx_usb_transfer_cb cb, void *user_data);
/* Fill a bulk or interrupt transfer on `endpoint`. */
void sx_usb_fill_pipe(sx_usb_transfer *t, sx_usb_xfer_type type, uint8_t endpoint,
                      uint8_t *data, uint32_t length, sx_usb_transfer_cb cb, void *user_data);

/* USB/IP (Linux errno) status -> transfer status, as usb-transport.md table 1.5. */
sx_usb_status sx_usb_status_from_errno(int32_t wire);
const char *sx_usb_status_name(sx_usb_status s);

#endif
