/* A userspace USB/IP importer (the client role of Linux's vhci_hcd), no kernel module needed.
 *
 * Management calls (list, import) are short request/reply exchanges on their own connection
 * and block for at most `timeout_ms`. After an import the connection carries URBs and is
 * driven without blocking: poll sx_usbip_client_fd() for sx_usbip_client_events(), then call
 * sx_usbip_client_dispatch(), which reads and writes what is ready and runs completion
 * callbacks (see usb/transport.h for the transfer life cycle).
 *
 * Every reply is checked against the request it answers (seqnum, direction, length); a server
 * that lies, or a connection that drops, ends the device: every pending transfer completes
 * with SX_USB_NO_DEVICE, later submits fail with SYSEXT_EIO, and sx_usbip_client_error() says
 * why. The client is never left in an undefined state and never crashes on input.
 * Single-threaded: use one client from one thread. */
#ifndef SX_USBIP_CLIENT_H
#define SX_USBIP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usb/transport.h"
#include "usb/usbip_wire.h"

typedef struct sx_usbip_client sx_usbip_client;

/* Most transfers one client keeps in flight. */
#define SX_USBIP_MAX_IN_FLIGHT 4096u

/* Connect to HOST:PORT (a name or a numeric address), within timeout_ms. *fd is blocking
 * mode off, close-on-exec, TCP_NODELAY. */
int sx_usbip_connect(const char *host, uint16_t port, int timeout_ms, int *fd);

/* The devices a server exports (OP_REQ_DEVLIST). *out is freed with sx_usbip_devlist_free.
 * SYSEXT_ENETWORK (cannot connect), SYSEXT_ETIMEOUT, SYSEXT_EFORMAT/ELIMIT (bad reply),
 * SYSEXT_EREJECTED (the server answered an error status). */
int sx_usbip_list(const char *host, uint16_t port, int timeout_ms, sx_usbip_devlist *out);

/* Import `busid` (OP_REQ_IMPORT) and return a client for it, owned by the caller
 * (sx_usbip_client_free). SYSEXT_EREJECTED when the server refuses (the message names the
 * ST_* status: no such bus id, busy, ...), SYSEXT_EPROTO when it answers for another bus id. */
int sx_usbip_import(sx_usbip_client **out, const char *host, uint16_t port, const char *busid,
                    int timeout_ms);

/* A client on `fd`, a connection already in the URB phase for `dev` (for tests, fuzzing, or a
 * transport that did its own import). Takes ownership of fd (closed on failure too). */
int sx_usbip_client_new(sx_usbip_client **out, int fd, const sx_usbip_device *dev);

/* Close the connection. Pending transfers complete with SX_USB_CANCELLED before it returns.
 * NULL is a no-op. Never call it from a completion callback. */
void sx_usbip_client_free(sx_usbip_client *c);

/* The imported device as the server described it. Borrowed, valid while c lives. */
const sx_usbip_device *sx_usbip_client_device(const sx_usbip_client *c);

int sx_usbip_client_fd(const sx_usbip_client *c);
short sx_usbip_client_events(const sx_usbip_client *c);
/* 0, or the code that ended the device: SYSEXT_EIO (connection closed or failed),
 * SYSEXT_EPROTO (the server broke the protocol), SYSEXT_ENOMEM. Once the device has
 * ended, every call returns that code again. */
int sx_usbip_client_dispatch(sx_usbip_client *c);
/* Milliseconds until a pending transfer times out (0: now, -1: no timeout pending). */
int sx_usbip_client_next_timeout(const sx_usbip_client *c);
/* Wait up to timeout_ms (-1: forever; shortened to the next transfer timeout) for the fd,
 * then dispatch. */
int sx_usbip_client_run(sx_usbip_client *c, int timeout_ms);

int sx_usbip_client_submit(sx_usbip_client *c, sx_usb_transfer *t);
int sx_usbip_client_cancel(sx_usbip_client *c, sx_usb_transfer *t);

/* Synchronous control transfer (runs the loop until done; not from a callback). On timeout
 * the request is cancelled and SYSEXT_ETIMEOUT returned. A completed transfer with a
 * non-COMPLETED status returns 0 with *status set; status/actual may be NULL. */
int sx_usbip_client_control(sx_usbip_client *c, uint8_t bm_request_type, uint8_t b_request,
                            uint16_t w_value, uint16_t w_index, uint8_t *data,
                            uint16_t w_length, int timeout_ms, uint32_t *actual,
                            sx_usb_status *status);

bool sx_usbip_client_gone(const sx_usbip_client *c);
/* Why the device ended ("" while it is alive). Borrowed, valid while c lives. */
const char *sx_usbip_client_error(const sx_usbip_client *c);
size_t sx_usbip_client_pending(const sx_usbip_client *c);

/* Called once when the device ends, after the pending transfers completed. */
typedef void (*sx_usbip_gone_cb)(sx_usbip_client *c, int code, const char *why, void *user_data);
void sx_usbip_client_on_gone(sx_usbip_client *c, sx_usbip_gone_cb cb, void *user_data);

/* This client as a generic transport; valid while c lives. */
void sx_usbip_client_transport(sx_usbip_client *c, sx_usb_transport *out);

#endif
