#include "util/common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <libusb.h>

#include "usb/libusb_backend.h"
#include "util/error.h"

struct sx_libusb {
    libusb_context *ctx;
    unsigned flags;
    int epfd;
    bool hotplug_registered;
    libusb_hotplug_callback_handle hotplug;
    sx_libusb_hotplug_cb hotplug_cb;
    void *hotplug_ud;
};

typedef struct lu_xfer lu_xfer;

struct sx_libusb_dev {
    sx_libusb *l;
    libusb_device_handle *h;
    int fd;
    bool gone;
    size_t pending;
    lu_xfer *list; /* the pending transfers */
};

/* Per-transfer state behind t->priv. */
struct lu_xfer {
    struct libusb_transfer *lt;
    sx_usb_transfer *t;
    sx_libusb_dev *d;
    struct lu_xfer *prev, *next;
    uint8_t *bounce; /* control: setup + data */
};

static int code_of(int e)
{
    switch (e) {
    case LIBUSB_ERROR_INVALID_PARAM:
        return SYSEXT_EINVAL;
    case LIBUSB_ERROR_ACCESS:
        return SYSEXT_EPERM;
    case LIBUSB_ERROR_NOT_FOUND:
        return SYSEXT_ENOTFOUND;
    case LIBUSB_ERROR_BUSY:
        return SYSEXT_EBUSY;
    case LIBUSB_ERROR_TIMEOUT:
        return SYSEXT_ETIMEOUT;
    case LIBUSB_ERROR_NO_MEM:
        return SYSEXT_ENOMEM;
    case LIBUSB_ERROR_NOT_SUPPORTED:
        return SYSEXT_EUNSUPPORTED;
    default:
        return SYSEXT_EIO;
    }
}

static int lu_err(int e, const char *what)
{
    return sx_err(code_of(e), "%s: %s (%s)", what, libusb_error_name(e), libusb_strerror(e));
}

/* ---------------------------------------------------------------- poll integration */

static void on_pollfd_added(int fd, short events, void *ud)
{
    sx_libusb *l = ud;
    struct epoll_event ev = {.events = (uint32_t)events, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
        (void)epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void on_pollfd_removed(int fd, void *ud)
{
    sx_libusb *l = ud;
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int sx_libusb_new(sx_libusb **out, unsigned flags)
{
    if (!out || (flags & ~SX_LIBUSB_NO_DISCOVERY))
        return sx_err(SYSEXT_EINVAL, "libusb: bad arguments (flags 0x%x)", flags);
    sx_libusb *l = calloc(1, sizeof(*l));
    if (!l)
        return sx_err(SYSEXT_ENOMEM, "libusb: out of memory");
    l->flags = flags;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = errno;
        free(l);
        return sx_err_errno(SYSEXT_EIO, e, "libusb: epoll_create1");
    }
    /* 1.0.26 has no libusb_init_context: the option is a default for contexts created after it */
    if (flags & SX_LIBUSB_NO_DISCOVERY) {
        int e = libusb_set_option(NULL, LIBUSB_OPTION_NO_DEVICE_DISCOVERY);
        if (e != LIBUSB_SUCCESS) {
            close(l->epfd);
            free(l);
            return lu_err(e, "libusb_set_option(NO_DEVICE_DISCOVERY)");
        }
    }
    int e = libusb_init(&l->ctx);
    if (e != LIBUSB_SUCCESS) {
        close(l->epfd);
        free(l);
        return lu_err(e, "libusb_init");
    }
    libusb_set_pollfd_notifiers(l->ctx, on_pollfd_added, on_pollfd_removed, l);
    const struct libusb_pollfd **pfds = libusb_get_pollfds(l->ctx);
    if (pfds) {
        for (size_t i = 0; pfds[i]; i++)
            on_pollfd_added(pfds[i]->fd, pfds[i]->events, l);
        libusb_free_pollfds(pfds);
    }
    *out = l;
    return 0;
}

void sx_libusb_free(sx_libusb *l)
{
    if (!l)
        return;
    if (l->hotplug_registered)
        libusb_hotplug_deregister_callback(l->ctx, l->hotplug);
    libusb_set_pollfd_notifiers(l->ctx, NULL, NULL, NULL);
    libusb_exit(l->ctx);
    close(l->epfd);
    free(l);
}

int sx_libusb_fd(const sx_libusb *l)
{
    return l ? l->epfd : -1;
}

int sx_libusb_next_timeout_ms(sx_libusb *l)
{
    if (!l || libusb_pollfds_handle_timeouts(l->ctx))
        return -1; /* Linux: a timerfd among the pollfds */
    struct timeval tv;
    int r = libusb_get_next_timeout(l->ctx, &tv);
    if (r <= 0)
        return -1;
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    return ms > 60000 ? 60000 : (int)ms;
}

int sx_libusb_handle_events(sx_libusb *l)
{
    if (!l)
        return sx_err(SYSEXT_EINVAL, "libusb: no context");
    struct timeval zero = {0, 0};
    int e = libusb_handle_events_timeout_completed(l->ctx, &zero, NULL);
    if (e != LIBUSB_SUCCESS && e != LIBUSB_ERROR_INTERRUPTED)
        return lu_err(e, "libusb_handle_events_timeout_completed");
    return 0;
}

/* ---------------------------------------------------------------- enumeration, hot-plug */

static void fill_info(libusb_device *dev, sx_libusb_devinfo *info)
{
    memset(info, 0, sizeof(*info));
    struct libusb_device_descriptor dd;
    if (libusb_get_device_descriptor(dev, &dd) == LIBUSB_SUCCESS) {
        info->vendor = dd.idVendor;
        info->product = dd.idProduct;
        info->bcd_device = dd.bcdDevice;
        info->device_class = dd.bDeviceClass;
    }
    info->bus = libusb_get_bus_number(dev);
    info->address = libusb_get_device_address(dev);
    int sp = libusb_get_device_speed(dev);
    info->speed = sp >= 0 && sp <= 255 ? (uint8_t)sp : 0;
    (void)snprintf(info->path, sizeof(info->path), "/dev/bus/usb/%03u/%03u", info->bus, info->address);
}

int sx_libusb_enumerate(sx_libusb *l, sx_libusb_devinfo **out, size_t *count)
{
    if (!l || !out || !count)
        return sx_err(SYSEXT_EINVAL, "libusb: bad arguments");
    if (l->flags & SX_LIBUSB_NO_DISCOVERY)
        return sx_err(SYSEXT_EUNSUPPORTED, "libusb: enumeration on a context without device discovery");
    libusb_device **list = NULL;
    ssize_t n = libusb_get_device_list(l->ctx, &list);
    if (n < 0)
        return lu_err((int)n, "libusb_get_device_list");
    sx_libusb_devinfo *v = NULL;
    if (n > 0) {
        v = calloc((size_t)n, sizeof(*v));
        if (!v) {
            libusb_free_device_list(list, 1);
            return sx_err(SYSEXT_ENOMEM, "libusb: out of memory for %zd devices", n);
        }
        for (ssize_t i = 0; i < n; i++)
            fill_info(list[i], &v[i]);
    }
    libusb_free_device_list(list, 1);
    *out = v;
    *count = (size_t)n;
    return 0;
}

static int LIBUSB_CALL on_hotplug(libusb_context *ctx, libusb_device *dev, libusb_hotplug_event ev, void *ud)
{
    (void)ctx;
    sx_libusb *l = ud;
    sx_libusb_devinfo info;
    fill_info(dev, &info);
    if (l->hotplug_cb)
        l->hotplug_cb(l, ev == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, &info, l->hotplug_ud);
    return 0;
}

int sx_libusb_hotplug_register(sx_libusb *l, sx_libusb_hotplug_cb cb, void *user_data)
{
    if (!l || !cb)
        return sx_err(SYSEXT_EINVAL, "libusb: bad arguments");
    if (l->flags & SX_LIBUSB_NO_DISCOVERY)
        return sx_err(SYSEXT_EUNSUPPORTED, "libusb: hot-plug on a context without device discovery");
    if (l->hotplug_registered)
        return sx_err(SYSEXT_EBUSY, "libusb: a hot-plug callback is already registered");
    if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG))
        return sx_err(SYSEXT_EUNSUPPORTED, "libusb: no hot-plug support on this platform");
    l->hotplug_cb = cb;
    l->hotplug_ud = user_data;
    int e = libusb_hotplug_register_callback(
        l->ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, LIBUSB_HOTPLUG_ENUMERATE,
        LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, l, &l->hotplug);
    if (e != LIBUSB_SUCCESS) {
        l->hotplug_cb = NULL;
        return lu_err(e, "libusb_hotplug_register_callback");
    }
    l->hotplug_registered = true;
    return 0;
}

/* ---------------------------------------------------------------- daemon side: open */

int sx_libusb_open_device_fd(uint8_t bus, uint8_t address, int *fd)
{
    if (!fd || bus == 0 || address == 0 || address > 127)
        return sx_err(SYSEXT_EINVAL, "libusb: bad device bus %u address %u", bus, address);
    char path[32];
    (void)snprintf(path, sizeof(path), "/dev/bus/usb/%03u/%03u", bus, address);
    int f = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (f < 0) {
        int e = errno;
        int code = e == ENOENT ? SYSEXT_ENOTFOUND : (e == EACCES || e == EPERM) ? SYSEXT_EPERM : SYSEXT_EIO;
        return sx_err_errno(code, e, "%s: cannot open the USB device node", path);
    }
    *fd = f;
    return 0;
}

/* ---------------------------------------------------------------- driver side: wrap */

int sx_libusb_wrap(sx_libusb *l, int fd, sx_libusb_dev **out)
{
    if (!l || !out || fd < 0)
        return sx_err(SYSEXT_EINVAL, "libusb_wrap_sys_device: bad arguments (fd %d)", fd);
    if (fcntl(fd, F_GETFD) < 0)
        return sx_err_errno(SYSEXT_EINVAL, errno, "libusb_wrap_sys_device: fd %d is not open", fd);
    sx_libusb_dev *d = calloc(1, sizeof(*d));
    if (!d)
        return sx_err(SYSEXT_ENOMEM, "libusb: out of memory");
    int e = libusb_wrap_sys_device(l->ctx, (intptr_t)fd, &d->h);
    if (e != LIBUSB_SUCCESS) {
        free(d);
        char what[64];
        (void)snprintf(what, sizeof(what), "libusb_wrap_sys_device(fd %d)", fd);
        return sx_err_prefix(lu_err(e, what), "not a usbfs device node");
    }
    d->l = l;
    d->fd = fd;
    *out = d;
    return 0;
}

static void unlink_x(sx_libusb_dev *d, lu_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        d->list = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    d->pending--;
}

static void LIBUSB_CALL on_transfer(struct libusb_transfer *lt)
{
    lu_xfer *x = lt->user_data;
    sx_usb_transfer *t = x->t;
    sx_libusb_dev *d = x->d;
    unlink_x(d, x);
    t->backend_status = (int32_t)lt->status;
    t->status = (unsigned)lt->status <= SX_USB_OVERFLOW ? (sx_usb_status)lt->status : SX_USB_ERROR;
    uint32_t actual = lt->actual_length > 0 ? (uint32_t)lt->actual_length : 0;
    if (actual > t->length)
        actual = t->length;
    if (t->type == SX_USB_XFER_CONTROL && (t->setup[0] & 0x80) && actual)
        memcpy(t->buffer, x->bounce + LIBUSB_CONTROL_SETUP_SIZE, actual);
    t->actual_length = actual;
    if (t->status == SX_USB_NO_DEVICE)
        d->gone = true;
    t->priv = NULL;
    free(x->bounce);
    libusb_free_transfer(lt);
    free(x);
    t->callback(t);
}

static int lu_submit(void *impl, sx_usb_transfer *t)
{
    sx_libusb_dev *d = impl;
    if (!t || !t->callback || (t->length && !t->buffer) || t->type == SX_USB_XFER_ISOCHRONOUS || t->type > 3)
        return sx_err(SYSEXT_EINVAL, "libusb: bad transfer");
    if (d->gone)
        return sx_err(SYSEXT_EIO, "libusb: the device is gone");
    if (d->pending >= SX_LIBUSB_MAX_IN_FLIGHT)
        return sx_err(SYSEXT_EBUSY, "libusb: %zu transfers in flight", d->pending);
    if (t->length > INT32_MAX - LIBUSB_CONTROL_SETUP_SIZE)
        return sx_err(SYSEXT_EINVAL, "libusb: transfer of %u bytes", t->length);
    lu_xfer *x = calloc(1, sizeof(*x));
    struct libusb_transfer *lt = libusb_alloc_transfer(0);
    if (!x || !lt) {
        free(x);
        libusb_free_transfer(lt);
        return sx_err(SYSEXT_ENOMEM, "libusb: out of memory");
    }
    x->lt = lt;
    x->t = t;
    x->d = d;
    unsigned timeout = t->timeout_ms;
    switch (t->type) {
    case SX_USB_XFER_CONTROL: {
        uint16_t wlen = (uint16_t)(t->setup[6] | t->setup[7] << 8);
        if (wlen != t->length) {
            free(x);
            libusb_free_transfer(lt);
            return sx_err(SYSEXT_EINVAL, "libusb: control wLength %u but %u bytes of buffer", wlen, t->length);
        }
        x->bounce = malloc(LIBUSB_CONTROL_SETUP_SIZE + (size_t)t->length);
        if (!x->bounce) {
            free(x);
            libusb_free_transfer(lt);
            return sx_err(SYSEXT_ENOMEM, "libusb: out of memory");
        }
        memcpy(x->bounce, t->setup, LIBUSB_CONTROL_SETUP_SIZE);
        if (!(t->setup[0] & 0x80) && t->length)
            memcpy(x->bounce + LIBUSB_CONTROL_SETUP_SIZE, t->buffer, t->length);
        libusb_fill_control_transfer(lt, d->h, x->bounce, on_transfer, x, timeout);
        break;
    }
    case SX_USB_XFER_BULK:
        libusb_fill_bulk_transfer(lt, d->h, t->endpoint, t->buffer, (int)t->length, on_transfer, x, timeout);
        break;
    default:
        libusb_fill_interrupt_transfer(lt, d->h, t->endpoint, t->buffer, (int)t->length, on_transfer, x, timeout);
        break;
    }
    if (t->flags & SX_USB_XFER_SHORT_NOT_OK)
        lt->flags |= LIBUSB_TRANSFER_SHORT_NOT_OK;
    if (t->flags & SX_USB_XFER_ZERO_PACKET)
        lt->flags |= LIBUSB_TRANSFER_ADD_ZERO_PACKET;
    t->priv = x;
    int e = libusb_submit_transfer(lt);
    if (e != LIBUSB_SUCCESS) {
        t->priv = NULL;
        free(x->bounce);
        free(x);
        libusb_free_transfer(lt);
        if (e == LIBUSB_ERROR_NO_DEVICE)
            d->gone = true;
        return lu_err(e, "libusb_submit_transfer");
    }
    x->next = d->list;
    if (x->next)
        x->next->prev = x;
    d->list = x;
    d->pending++;
    return 0;
}

static int lu_cancel(void *impl, sx_usb_transfer *t)
{
    (void)impl;
    lu_xfer *x = t ? t->priv : NULL;
    if (!x)
        return sx_err(SYSEXT_ENOTFOUND, "libusb: the transfer is not pending");
    int e = libusb_cancel_transfer(x->lt);
    if (e == LIBUSB_ERROR_NOT_FOUND)
        return sx_err(SYSEXT_ENOTFOUND, "libusb: the transfer is not pending");
    return e == LIBUSB_SUCCESS ? 0 : lu_err(e, "libusb_cancel_transfer");
}

static int lu_fd(void *impl)
{
    return ((sx_libusb_dev *)impl)->l->epfd;
}

static short lu_events(void *impl)
{
    (void)impl;
    return POLLIN;
}

static int lu_dispatch(void *impl)
{
    sx_libusb_dev *d = impl;
    int r = sx_libusb_handle_events(d->l);
    if (r != 0)
        return r;
    if (d->gone && d->pending == 0)
        return sx_err(SYSEXT_EIO, "libusb: the device is gone");
    return 0;
}

static int lu_next_timeout(void *impl)
{
    return sx_libusb_next_timeout_ms(((sx_libusb_dev *)impl)->l);
}

static const sx_usb_transport_ops lu_ops = {
    .name = "libusb",
    .submit = lu_submit,
    .cancel = lu_cancel,
    .fd = lu_fd,
    .events = lu_events,
    .dispatch = lu_dispatch,
    .next_timeout_ms = lu_next_timeout,
};

void sx_libusb_dev_transport(sx_libusb_dev *d, sx_usb_transport *out)
{
    out->ops = &lu_ops;
    out->impl = d;
}

void sx_libusb_dev_free(sx_libusb_dev *d)
{
    if (!d)
        return;
    for (lu_xfer *x = d->list; x; x = x->next)
        (void)libusb_cancel_transfer(x->lt);
    for (int i = 0; i < 200 && d->pending; i++) {
        struct timeval tv = {0, 10000};
        (void)libusb_handle_events_timeout_completed(d->l->ctx, &tv, NULL);
    }
    libusb_close(d->h); /* does not close d->fd: the caller owns it */
    free(d);
}

int sx_libusb_dev_claim(sx_libusb_dev *d, uint8_t number)
{
    if (!d)
        return sx_err(SYSEXT_EINVAL, "libusb: no device");
    (void)libusb_set_auto_detach_kernel_driver(d->h, 1);
    int e = libusb_claim_interface(d->h, number);
    if (e != LIBUSB_SUCCESS) {
        char what[48];
        (void)snprintf(what, sizeof(what), "libusb_claim_interface(%u)", number);
        return lu_err(e, what);
    }
    return 0;
}

uint8_t sx_libusb_dev_speed(const sx_libusb_dev *d)
{
    if (!d)
        return 0;
    int sp = libusb_get_device_speed(libusb_get_device(d->h));
    return sp >= 0 && sp <= 255 ? (uint8_t)sp : 0;
}

size_t sx_libusb_dev_pending(const sx_libusb_dev *d)
{
    return d ? d->pending : 0;
}
