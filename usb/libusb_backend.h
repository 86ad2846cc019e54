/* The libusb-1.0 backend: real USB hardware behind the usb/transport.h interface.
 *
 * Two roles, as in the broker/sandbox design (usb-transport.md 3.6):
 *   - daemon side: a discovering context (sx_libusb_new(.., 0)) enumerates devices and
 *     registers for hot-plug; sx_libusb_open_device_fd() opens the usbfs node that is then
 *     handed to the sandboxed driver process (SCM_RIGHTS);
 *   - driver side: a context with SX_LIBUSB_NO_DISCOVERY (libusb never scans sysfs or opens
 *     device nodes) wraps the received fd with sx_libusb_wrap() (libusb_wrap_sys_device) and
 *     drives it through the transport interface.
 * Event handling integrates with poll: sx_libusb_fd() is one epoll fd that covers every
 * libusb pollfd (kept up to date through libusb's pollfd notifiers).
 * Single-threaded: use a context and its devices from one thread. libusb 1.0.26. */
#ifndef SX_USB_LIBUSB_BACKEND_H
#define SX_USB_LIBUSB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usb/transport.h"

typedef struct sx_libusb sx_libusb;
typedef struct sx_libusb_dev sx_libusb_dev;

/* Driver side: no device discovery and no hot-plug; only sx_libusb_wrap. */
#define SX_LIBUSB_NO_DISCOVERY 0x1u

/* Most transfers one wrapped device keeps in flight. */
#define SX_LIBUSB_MAX_IN_FLIGHT 4096u

typedef struct sx_libusb_devinfo {
    uint8_t bus, address;
    uint8_t speed; /* libusb_speed: 0 unknown, 1 low, 2 full, 3 high, 4 super, 5 super+ */
    uint16_t vendor, product, bcd_device;
    uint8_t device_class;
    char path[32]; /* /dev/bus/usb/BBB/DDD */
} sx_libusb_devinfo;

/* A libusb context. SYSEXT_EIO (with libusb's error name) when libusb_init fails. */
int sx_libusb_new(sx_libusb **out, unsigned flags);
/* Deregisters hot-plug, closes nothing the caller owns. Wrapped devices must be freed first.
 * NULL is a no-op. */
void sx_libusb_free(sx_libusb *l);

/* The devices present now. *out (free()) holds *count entries (0 on a machine without USB).
 * SYSEXT_EUNSUPPORTED on a NO_DISCOVERY context. */
int sx_libusb_enumerate(sx_libusb *l, sx_libusb_devinfo **out, size_t *count);

typedef void (*sx_libusb_hotplug_cb)(sx_libusb *l, bool arrived, const sx_libusb_devinfo *dev, void *user_data);
/* Hot-plug callbacks (ARRIVED for the devices present too, then arrivals and removals),
 * delivered from sx_libusb_handle_events. SYSEXT_EUNSUPPORTED when libusb has no hot-plug
 * here or the context is NO_DISCOVERY (the daemon then falls back to enumeration);
 * SYSEXT_EBUSY when a callback is already registered. */
int sx_libusb_hotplug_register(sx_libusb *l, sx_libusb_hotplug_cb cb, void *user_data);

/* Poll integration: an fd (POLLIN), a poll timeout (-1: none) and the non-blocking dispatch
 * (runs hot-plug and transfer callbacks). */
int sx_libusb_fd(const sx_libusb *l);
int sx_libusb_next_timeout_ms(sx_libusb *l);
int sx_libusb_handle_events(sx_libusb *l);

/* Daemon side: open the usbfs node of bus/address read-write, close-on-exec, to hand to a
 * driver. SYSEXT_EINVAL for bus or address 0; SYSEXT_ENOTFOUND / SYSEXT_EPERM / SYSEXT_EIO
 * with the path and errno. */
int sx_libusb_open_device_fd(uint8_t bus, uint8_t address, int *fd);

/* Driver side: wrap an open usbfs fd (the caller keeps it open until sx_libusb_dev_free and
 * closes it afterwards; libusb never closes it). Any context works; the driver uses a
 * NO_DISCOVERY one. SYSEXT_EINVAL for a negative fd; SYSEXT_EIO / SYSEXT_EPERM /
 * SYSEXT_EUNSUPPORTED naming libusb's error when the fd is not a usbfs device node. */
int sx_libusb_wrap(sx_libusb *l, int fd, sx_libusb_dev **out);
/* Cancels pending transfers and runs their callbacks (SX_USB_CANCELLED) before closing.
 * NULL is a no-op. Never from a completion callback. */
void sx_libusb_dev_free(sx_libusb_dev *d);
/* Claim interface `number` (detaching a kernel driver if needed). */
int sx_libusb_dev_claim(sx_libusb_dev *d, uint8_t number);
uint8_t sx_libusb_dev_speed(const sx_libusb_dev *d);
size_t sx_libusb_dev_pending(const sx_libusb_dev *d);
/* This device as a generic transport; valid while d lives. */
void sx_libusb_dev_transport(sx_libusb_dev *d, sx_usb_transport *out);

#endif
