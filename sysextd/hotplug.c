/* Real USB hardware in the daemon (--usb): libusb hot-plug (or a one-time enumeration where
 * libusb has no hot-plug). On arrival the daemon opens the device's usbfs node itself, reads
 * the device descriptor and the configuration descriptors from it (usbfs returns them raw,
 * device descriptor first; the first configuration is taken as the active one), publishes the
 * nubs and hands the open descriptor to the matched driver, which wraps it
 * (libusb_wrap_sys_device, discovery off): the driver never opens device nodes itself. The
 * nubs carry SysextTransport = "usbfs" (set by sxd_usb_add for a device without a USB/IP
 * client), which tells the driver's provider factory to wrap the FD with libusb. On
 * removal the device's drivers are stopped and its nubs terminated. */
#include "util/common.h"

#include <inttypes.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/devices.h"
#include "usb/libusb_backend.h"

#define HOTPLUG_TAG (SXD_TAG_DEVICE0 + SXD_MAX_DEVICES)
#define MAX_DESCRIPTORS 65536

typedef struct hotplug {
    sx_libusb *usb;
    bool watched;
} hotplug;

static void url_of(const sx_libusb_devinfo *dev, char *url, size_t len)
{
    snprintf(url, len, "usb:%03u-%03u", dev->bus, dev->address);
}

/* Publish the device at dev->bus/address: open, read its descriptors, sxd_usb_add. */
static int arrived(sxd_daemon *d, const sx_libusb_devinfo *dev)
{
    int fd = -1;
    int rc = sx_libusb_open_device_fd(dev->bus, dev->address, &fd);
    if (rc < 0)
        return rc;
    uint8_t *buf = malloc(MAX_DESCRIPTORS);
    if (!buf) {
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    ssize_t n = pread(fd, buf, MAX_DESCRIPTORS, 0);
    sx_usb_device_descriptor dd;
    if (n < 0) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "%s: reading the descriptors", dev->path);
    } else if ((rc = sx_usb_parse_device_descriptor(buf, (size_t)n, &dd)) == 0) {
        size_t cfg_len = (size_t)n > 18 ? (size_t)n - 18 : 0;
        if (cfg_len >= 4) {
            size_t total = (size_t)(buf[18 + 2] | buf[18 + 3] << 8);
            if (total < cfg_len)
                cfg_len = total;
        }
        char url[64];
        url_of(dev, url, sizeof(url));
        sx_usb_device_info info = {
            .device = &dd,
            .config = cfg_len ? buf + 18 : NULL,
            .config_len = cfg_len,
            .location_id = (uint32_t)dev->bus << 24 | (uint32_t)dev->address << 16,
            .address = dev->address,
            .speed = dev->speed ? (uint8_t)(dev->speed - 1) : SX_USB_SPEED_FULL,
        };
        uint64_t id = 0;
        rc = sxd_usb_add(d, &info, url, NULL, fd, &id);
        fd = -1; /* taken */
    }
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

static void on_hotplug(sx_libusb *l, bool arrival, const sx_libusb_devinfo *dev, void *ud)
{
    SX_UNUSED(l);
    sxd_daemon *d = ud;
    if (arrival) {
        if (arrived(d, dev) < 0)
            fprintf(stderr, "sysextd: USB device %s: %s\n", dev->path, sx_errmsg());
        return;
    }
    char url[64];
    url_of(dev, url, sizeof(url));
    for (size_t i = 0; i < SXD_MAX_DEVICES; i++) {
        const sxd_usbdev *u = d->services->devs[i];
        if (u && !strcmp(u->url, url)) {
            sxd_usb_detach(d, u->nub_id);
            break;
        }
    }
}

int sxd_hotplug_start(sxd_daemon *d)
{
    hotplug *h = calloc(1, sizeof(*h));
    if (!h)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = sx_libusb_new(&h->usb, 0);
    if (rc < 0) {
        free(h);
        return rc;
    }
    d->services->hotplug = h;
    rc = sx_libusb_hotplug_register(h->usb, on_hotplug, d);
    if (rc == SYSEXT_EUNSUPPORTED) {
        /* No hot-plug here: the devices present now, once. */
        sx_libusb_devinfo *v = NULL;
        size_t n = 0;
        if ((rc = sx_libusb_enumerate(h->usb, &v, &n)) < 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            on_hotplug(h->usb, true, &v[i], d);
        free(v);
        fprintf(stderr, "sysextd: USB: no hot-plug support, %zu device(s) enumerated\n", n);
        return 0;
    }
    if (rc < 0)
        return rc;
    fprintf(stderr, "sysextd: USB: hot-plug registered\n");
    return 0;
}

void sxd_hotplug_stop(sxd_daemon *d)
{
    hotplug *h = d->services ? d->services->hotplug : NULL;
    if (!h)
        return;
    if (h->watched && d->epfd > 0)
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, sx_libusb_fd(h->usb), NULL);
    sx_libusb_free(h->usb);
    free(h);
    d->services->hotplug = NULL;
}

/* Called from the loop: make sure libusb's fd is watched; run its events when due. */
int sxd_hotplug_poll(sxd_daemon *d, bool ready)
{
    hotplug *h = d->services ? d->services->hotplug : NULL;
    if (!h)
        return -1;
    if (!h->watched && d->epfd > 0 && sx_libusb_fd(h->usb) >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = HOTPLUG_TAG};
        h->watched = epoll_ctl(d->epfd, EPOLL_CTL_ADD, sx_libusb_fd(h->usb), &ev) == 0;
    }
    if (ready || sx_libusb_next_timeout_ms(h->usb) == 0)
        sx_libusb_handle_events(h->usb);
    return sx_libusb_next_timeout_ms(h->usb);
}
