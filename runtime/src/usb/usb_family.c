/* The USB family: IOUSBHostDevice, IOUSBHostInterface and IOUSBHostPipe over a usb/transport.h
 * transport. See usb_host.h for the threading model. */
#include "rt_internal.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sysext/errors.h>

#include "usb/usb_host.h"

#define USB_CTRL_TIMEOUT_MS 5000u
#define USB_DETACH_WAIT_MS 2000
#define USB_PIPE_SLOTS 32

typedef struct usb_core usb_core;
typedef struct usb_req usb_req;

struct usb_req {
    sx_usb_transfer t;
    usb_req *prev, *next;
    IOUSBHostDevice *dev;   /* retained: keeps the core alive */
    IOUSBHostPipe *pipe;    /* retained; NULL for control */
    OSAction *action;       /* retained; NULL for a synchronous request */
    IOMemoryDescriptor *md; /* retained; may be NULL */
    IOMemoryMap *map;       /* when md is not an IOBufferMemoryDescriptor */
    kern_return_t abortError; /* != 0: cancelled by Abort/Close/Detach, complete with this */
    bool done;
    kern_return_t result;
    uint32_t actual;
};

struct usb_core {
    pthread_mutex_t m; /* recursive: transport callbacks run under it inside dispatch */
    pthread_cond_t cv;
    sx_usb_transport tr;
    int wakefd;
    pthread_t thread;
    bool threadRunning, stop, gone;
    usb_req list; /* sentinel of the pending requests */
    uint32_t pending;
};

struct IOUSBHostDevice {
    IOService service;
    usb_core *core;
    IOService *opener;
    uint8_t speed;
    bool matchInterfaces;
    IOUSBDeviceDescriptor ddesc;
    IOUSBConfigurationDescriptor *cfg;
};

struct IOUSBHostInterface {
    IOService service;
    IOUSBHostDevice *dev;
    IOService *opener;
    uint8_t number, alt;
    IOUSBHostPipe *pipes[USB_PIPE_SLOTS];
};

struct IOUSBHostPipe {
    OSObject object;
    IOUSBHostDevice *dev;
    IOUSBEndpointDescriptor ep;
    bool valid;
    uint32_t pending;
};

/* ---------------------------------------------------------------- descriptor helpers */

const IOUSBDescriptorHeader *IOUSBGetNextDescriptor(const IOUSBConfigurationDescriptor *cfg,
                                                    const IOUSBDescriptorHeader *current)
{
    if (!cfg || cfg->bLength < 2)
        return NULL;
    const uint8_t *base = (const uint8_t *)cfg;
    size_t total = cfg->wTotalLength, off;
    if (!current) {
        off = cfg->bLength;
    } else {
        const uint8_t *c = (const uint8_t *)current;
        if (c < base || (size_t)(c - base) >= total || current->bLength < 2)
            return NULL;
        off = (size_t)(c - base) + current->bLength;
    }
    if (off + 2 > total)
        return NULL;
    const IOUSBDescriptorHeader *h = (const IOUSBDescriptorHeader *)(base + off);
    if (h->bLength < 2 || off + h->bLength > total)
        return NULL;
    return h;
}

const IOUSBInterfaceDescriptor *IOUSBGetNextInterfaceDescriptor(const IOUSBConfigurationDescriptor *cfg,
                                                                const IOUSBDescriptorHeader *current)
{
    const IOUSBDescriptorHeader *h = current;
    while ((h = IOUSBGetNextDescriptor(cfg, h)) != NULL)
        if (h->bDescriptorType == kIOUSBDescriptorTypeInterface && h->bLength >= sizeof(IOUSBInterfaceDescriptor))
            return (const IOUSBInterfaceDescriptor *)h;
    return NULL;
}

const IOUSBEndpointDescriptor *IOUSBGetNextEndpointDescriptor(const IOUSBConfigurationDescriptor *cfg,
                                                              const IOUSBInterfaceDescriptor *intf,
                                                              const IOUSBDescriptorHeader *current)
{
    if (!intf)
        return NULL;
    const IOUSBDescriptorHeader *h = current ? current : (const IOUSBDescriptorHeader *)intf;
    while ((h = IOUSBGetNextDescriptor(cfg, h)) != NULL) {
        if (h->bDescriptorType == kIOUSBDescriptorTypeInterface)
            return NULL;
        if (h->bDescriptorType == kIOUSBDescriptorTypeEndpoint && h->bLength >= sizeof(IOUSBEndpointDescriptor))
            return (const IOUSBEndpointDescriptor *)h;
    }
    return NULL;
}

uint8_t IOUSBGetEndpointAddress(const IOUSBEndpointDescriptor *d) { return d->bEndpointAddress; }
uint8_t IOUSBGetEndpointNumber(const IOUSBEndpointDescriptor *d) { return d->bEndpointAddress & 0x0f; }
uint8_t IOUSBGetEndpointDirection(const IOUSBEndpointDescriptor *d)
{
    return (d->bEndpointAddress & 0x80) ? kIOUSBEndpointDirectionIn : kIOUSBEndpointDirectionOut;
}
uint8_t IOUSBGetEndpointType(const IOUSBEndpointDescriptor *d) { return d->bmAttributes & 3; }
uint16_t IOUSBGetEndpointMaxPacketSize(const IOUSBEndpointDescriptor *d) { return d->wMaxPacketSize & 0x7ff; }
void IOUSBHostFreeDescriptor(const void *descriptor) { free((void *)descriptor); }

static const IOUSBInterfaceDescriptor *find_interface(const IOUSBConfigurationDescriptor *cfg, uint8_t number,
                                                      uint8_t alt)
{
    const IOUSBInterfaceDescriptor *i = NULL;
    while ((i = IOUSBGetNextInterfaceDescriptor(cfg, (const IOUSBDescriptorHeader *)i)) != NULL)
        if (i->bInterfaceNumber == number && i->bAlternateSetting == alt)
            return i;
    return NULL;
}

bool rt_usb_config_valid(const uint8_t *cfg, size_t len)
{
    if (!cfg || len < 9 || len > 0xffff || cfg[1] != kIOUSBDescriptorTypeConfiguration || cfg[0] < 9 ||
        cfg[0] > len || (size_t)(cfg[2] | cfg[3] << 8) != len)
        return false;
    /* every descriptor lies inside wTotalLength, none shorter than its header */
    for (size_t off = cfg[0]; off < len;) {
        if (len - off < 2 || cfg[off] < 2 || cfg[off] > len - off)
            return false;
        off += cfg[off];
    }
    return true;
}

/* ---------------------------------------------------------------- the core: lock, thread, requests */

static void core_wake(usb_core *c)
{
    uint64_t one = 1;
    ssize_t w = write(c->wakefd, &one, sizeof(one));
    (void)w; /* EAGAIN: the counter is already non-zero, the thread wakes anyway */
}

static void core_wait(usb_core *c, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->m, &ts);
}

static void *core_thread(void *arg)
{
    usb_core *c = arg;
    pthread_mutex_lock(&c->m);
    while (!c->stop) {
        struct pollfd pf[2] = {{.fd = c->wakefd, .events = POLLIN}, {.fd = -1}};
        nfds_t n = 1;
        int timeout = -1;
        if (!c->gone) {
            pf[1].fd = c->tr.ops->fd(c->tr.impl);
            pf[1].events = c->tr.ops->events(c->tr.impl);
            if (pf[1].fd >= 0)
                n = 2;
            timeout = c->tr.ops->next_timeout_ms(c->tr.impl);
        }
        pthread_mutex_unlock(&c->m);
        (void)poll(pf, n, timeout);
        if (pf[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(c->wakefd, &v, sizeof(v));
            (void)r;
        }
        pthread_mutex_lock(&c->m);
        if (!c->gone && c->tr.ops->dispatch(c->tr.impl) != 0) {
            c->gone = true; /* the transport completed every pending transfer with NO_DEVICE */
            pthread_cond_broadcast(&c->cv);
        }
    }
    pthread_mutex_unlock(&c->m);
    return NULL;
}

static void req_free(usb_req *r)
{
    if (!r)
        return;
    OSSafeReleaseNULL(r->map);
    OSSafeReleaseNULL(r->md);
    OSSafeReleaseNULL(r->action);
    OSSafeReleaseNULL(r->pipe);
    OSSafeReleaseNULL(r->dev);
    free(r);
}

static kern_return_t map_status(sx_usb_status s, kern_return_t abortError)
{
    switch (s) {
    case SX_USB_COMPLETED:
        return kIOReturnSuccess;
    case SX_USB_TIMED_OUT:
        return kIOReturnTimeout;
    case SX_USB_CANCELLED:
        return abortError ? abortError : kIOReturnAborted;
    case SX_USB_STALL:
        return kIOUSBPipeStalled;
    case SX_USB_NO_DEVICE:
        return kIOReturnNoDevice;
    case SX_USB_OVERFLOW:
        return kIOReturnOverrun;
    case SX_USB_ERROR:
    default:
        return kIOReturnIOError;
    }
}

typedef struct cio_args {
    IOReturn status;
    uint32_t actual;
    uint64_t timestamp;
} cio_args;

static void cio_invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)
{
    const cio_args *a = args;
    ((IOUSBHostPipe_CompleteAsyncIO_Handler)fn)(target, action, a->status, a->actual, a->timestamp);
}

static void req_done(sx_usb_transfer *t)
{
    usb_req *r = t->user_data;
    usb_core *c = r->dev->core;
    bool async = r->action != NULL;
    pthread_mutex_lock(&c->m);
    r->prev->next = r->next;
    r->next->prev = r->prev;
    c->pending--;
    if (r->pipe)
        r->pipe->pending--;
    r->actual = t->actual_length <= t->length ? t->actual_length : t->length;
    r->result = map_status(t->status, r->abortError);
    r->done = true;
    if (async) {
        cio_args a = {r->result, r->actual, rt_now_ns(CLOCK_MONOTONIC)};
        /* refused only when the driver cancelled the action: nobody is waiting then */
        (void)OSAction_Invoke(r->action, IOUSBHostPipe_CompleteAsyncIO_ID, cio_invoker, &a, sizeof(a));
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->m);
    if (async)
        req_free(r); /* the synchronous waiter frees its own */
}

static kern_return_t map_submit_error(int e)
{
    switch (e) {
    case SYSEXT_EIO:
        return kIOReturnNoDevice;
    case SYSEXT_EBUSY:
        return kIOReturnNoResources;
    case SYSEXT_EINVAL:
        return kIOReturnBadArgument;
    case SYSEXT_EUNSUPPORTED:
        return kIOReturnUnsupported;
    case SYSEXT_ENOMEM:
        return kIOReturnNoMemory;
    default:
        return kIOReturnIOError;
    }
}

/* With c->m held. On failure nothing was queued and r is still the caller's. */
static kern_return_t core_submit(usb_core *c, usb_req *r)
{
    if (c->gone)
        return kIOReturnNoDevice;
    r->t.callback = req_done;
    r->t.user_data = r;
    int e = c->tr.ops->submit(c->tr.impl, &r->t);
    if (e != 0)
        return map_submit_error(e);
    r->next = &c->list;
    r->prev = c->list.prev;
    c->list.prev->next = r;
    c->list.prev = r;
    c->pending++;
    if (r->pipe)
        r->pipe->pending++;
    core_wake(c);
    return kIOReturnSuccess;
}

/* Submit r and wait for its completion; frees r. */
static kern_return_t core_run_sync(usb_core *c, usb_req *r, uint32_t *actual)
{
    pthread_mutex_lock(&c->m);
    kern_return_t ret = core_submit(c, r);
    if (ret == kIOReturnSuccess) {
        while (!r->done)
            pthread_cond_wait(&c->cv, &c->m);
        ret = r->result;
        if (actual)
            *actual = r->actual;
    }
    pthread_mutex_unlock(&c->m);
    req_free(r);
    return ret;
}

/* Cancel the pending requests of `pipe` (all when pipe is NULL), with c->m held. */
static void core_cancel(usb_core *c, IOUSBHostPipe *pipe, kern_return_t withError)
{
    for (usb_req *r = c->list.next; r != &c->list; r = r->next) {
        if (pipe && r->pipe != pipe)
            continue;
        if (r->abortError == 0) {
            r->abortError = withError;
            (void)c->tr.ops->cancel(c->tr.impl, &r->t);
        }
    }
    core_wake(c);
}

static usb_req *req_new(IOUSBHostDevice *dev)
{
    usb_req *r = calloc(1, sizeof(*r));
    if (r)
        r->dev = (IOUSBHostDevice *)OSObject_Retain(&dev->service.object);
    return r;
}

/* Point r->t at `length` bytes of md. */
static kern_return_t req_set_buffer(usb_req *r, IOMemoryDescriptor *md, uint32_t length)
{
    if (!md)
        return length ? kIOReturnBadArgument : kIOReturnSuccess;
    uint64_t addr = 0, cap = 0;
    IOBufferMemoryDescriptor *b = OSDynamicCast(IOBufferMemoryDescriptor, md);
    if (b) {
        IOAddressSegment seg;
        if (IOBufferMemoryDescriptor_GetAddressRange(b, &seg) != kIOReturnSuccess)
            return kIOReturnBadArgument;
        addr = seg.address;
        cap = IOBufferMemoryDescriptor_GetCapacity(b);
    } else {
        kern_return_t ret = IOMemoryDescriptor_CreateMapping(md, 0, 0, 0, 0, 0, &r->map);
        if (ret != kIOReturnSuccess)
            return ret;
        addr = IOMemoryMap_GetAddress(r->map);
        cap = IOMemoryMap_GetLength(r->map);
    }
    if (length > cap)
        return kIOReturnBadArgument;
    r->md = (IOMemoryDescriptor *)OSObject_Retain((OSObject *)md);
    r->t.buffer = (uint8_t *)(uintptr_t)addr;
    r->t.length = length;
    return kIOReturnSuccess;
}

static void fill_setup(sx_usb_transfer *t, uint8_t bm, uint8_t req, uint16_t val, uint16_t idx, uint16_t len)
{
    t->type = SX_USB_XFER_CONTROL;
    t->endpoint = bm & 0x80;
    t->setup[0] = bm;
    t->setup[1] = req;
    t->setup[2] = (uint8_t)val;
    t->setup[3] = (uint8_t)(val >> 8);
    t->setup[4] = (uint8_t)idx;
    t->setup[5] = (uint8_t)(idx >> 8);
    t->setup[6] = (uint8_t)len;
    t->setup[7] = (uint8_t)(len >> 8);
}

/* A control transfer into/from `md` (or raw `buf` when md is NULL). */
static kern_return_t dev_control(IOUSBHostDevice *dev, uint8_t bm, uint8_t req, uint16_t val, uint16_t idx,
                                 uint16_t len, IOMemoryDescriptor *md, uint8_t *buf, uint16_t *done,
                                 uint32_t timeoutMs)
{
    usb_req *r = req_new(dev);
    if (!r)
        return kIOReturnNoMemory;
    fill_setup(&r->t, bm, req, val, idx, len);
    r->t.timeout_ms = timeoutMs;
    if (md || !buf) {
        kern_return_t ret = req_set_buffer(r, md, len);
        if (ret != kIOReturnSuccess) {
            req_free(r);
            return ret;
        }
    } else {
        r->t.buffer = buf;
        r->t.length = len;
    }
    uint32_t actual = 0;
    kern_return_t ret = core_run_sync(dev->core, r, &actual);
    if (done)
        *done = (uint16_t)actual;
    return ret;
}

/* ---------------------------------------------------------------- IOUSBHostDevice */

static bool dev_init(OSObject *self)
{
    if (!OSObject_SuperInit(&IOUSBHostDevice_Class, self))
        return false;
    IOUSBHostDevice *d = (IOUSBHostDevice *)self;
    usb_core *c = calloc(1, sizeof(*c));
    if (!c)
        return false;
    c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wakefd < 0) {
        free(c);
        return false;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->m, &a);
    pthread_mutexattr_destroy(&a);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->list.next = c->list.prev = &c->list;
    c->gone = true; /* until HostCreate gives it a transport */
    d->core = c;
    return true;
}

static void dev_free(OSObject *self)
{
    IOUSBHostDevice *d = (IOUSBHostDevice *)self;
    if (d->core) {
        /* the event thread holds a reference, so it was stopped by HostDetach */
        close(d->core->wakefd);
        pthread_mutex_destroy(&d->core->m);
        pthread_cond_destroy(&d->core->cv);
        free(d->core);
        d->core = NULL;
    }
    OSSafeReleaseNULL(d->opener);
    free(d->cfg);
    d->cfg = NULL;
    OSObject_SuperFree(&IOUSBHostDevice_Class, self);
}

const OSClass IOUSBHostDevice_Class = {
    .name = "IOUSBHostDevice",
    .superClass = &IOService_Class,
    .instanceSize = sizeof(IOUSBHostDevice),
    .init = dev_init,
    .free = dev_free,
};

static bool is_dev(IOUSBHostDevice *d)
{
    return d && OSObject_IsKindOf(&d->service.object, &IOUSBHostDevice_Class) && d->core;
}

static kern_return_t read_descriptors(IOUSBHostDevice *d)
{
    uint8_t buf[18];
    uint16_t n = 0;
    kern_return_t r = dev_control(d, 0x80, kIOUSBDeviceRequestGetDescriptor, 0x0100, 0, 18, NULL, buf, &n,
                                  USB_CTRL_TIMEOUT_MS);
    if (r != kIOReturnSuccess)
        return r;
    if (n != 18 || buf[0] != 18 || buf[1] != kIOUSBDescriptorTypeDevice)
        return kIOReturnDeviceError;
    memcpy(&d->ddesc, buf, 18);
    uint8_t head[9];
    r = dev_control(d, 0x80, kIOUSBDeviceRequestGetDescriptor, 0x0200, 0, 9, NULL, head, &n, USB_CTRL_TIMEOUT_MS);
    if (r != kIOReturnSuccess)
        return r;
    if (n != 9 || head[0] < 9 || head[1] != kIOUSBDescriptorTypeConfiguration)
        return kIOReturnDeviceError;
    uint16_t total = (uint16_t)(head[2] | head[3] << 8);
    if (total < 9)
        return kIOReturnDeviceError;
    uint8_t *cfg = malloc(total);
    if (!cfg)
        return kIOReturnNoMemory;
    r = dev_control(d, 0x80, kIOUSBDeviceRequestGetDescriptor, 0x0200, 0, total, NULL, cfg, &n,
                    USB_CTRL_TIMEOUT_MS);
    if (r == kIOReturnSuccess && (n != total || !rt_usb_config_valid(cfg, total)))
        r = kIOReturnDeviceError;
    if (r != kIOReturnSuccess) {
        free(cfg);
        return r;
    }
    d->cfg = (IOUSBConfigurationDescriptor *)cfg;
    return kIOReturnSuccess;
}

kern_return_t IOUSBHostDevice_HostCreate(const sx_usb_transport *transport, uint8_t speed, IOUSBHostDevice **device)
{
    if (!transport || !transport->ops || !device)
        return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOUSBHostDevice_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOUSBHostDevice *d = (IOUSBHostDevice *)o;
    usb_core *c = d->core;
    c->tr = *transport;
    c->gone = false;
    d->speed = speed;
    OSObject_Retain(o); /* the event thread's reference, dropped by HostDetach */
    if (pthread_create(&c->thread, NULL, core_thread, c) != 0) {
        c->gone = true;
        OSObject_Release(o);
        OSObject_Release(o);
        return kIOReturnNoResources;
    }
    c->threadRunning = true;
    r = read_descriptors(d);
    if (r != kIOReturnSuccess) {
        IOUSBHostDevice_HostDetach(d);
        OSObject_Release(o);
        return r;
    }
    *device = d;
    return kIOReturnSuccess;
}

void IOUSBHostDevice_HostDetach(IOUSBHostDevice *d)
{
    if (!is_dev(d))
        return;
    usb_core *c = d->core;
    pthread_mutex_lock(&c->m);
    if (!c->threadRunning) {
        c->gone = true;
        pthread_mutex_unlock(&c->m);
        return;
    }
    if (!c->gone)
        core_cancel(c, NULL, kIOReturnNoDevice);
    uint64_t end = rt_now_ns(CLOCK_MONOTONIC) + (uint64_t)USB_DETACH_WAIT_MS * 1000000u;
    while (c->pending && !c->gone && rt_now_ns(CLOCK_MONOTONIC) < end)
        core_wait(c, 50);
    c->gone = true;
    c->stop = true;
    core_wake(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->m);
    pthread_join(c->thread, NULL);
    pthread_mutex_lock(&c->m);
    c->threadRunning = false;
    pthread_mutex_unlock(&c->m);
    OSObject_Release(&d->service.object); /* the thread's reference */
}

uint32_t IOUSBHostDevice_HostPendingCount(IOUSBHostDevice *d)
{
    if (!is_dev(d))
        return 0;
    pthread_mutex_lock(&d->core->m);
    uint32_t n = d->core->pending;
    pthread_mutex_unlock(&d->core->m);
    return n;
}

bool IOUSBHostDevice_IsGone(IOUSBHostDevice *d)
{
    if (!is_dev(d))
        return true;
    pthread_mutex_lock(&d->core->m);
    bool g = d->core->gone;
    pthread_mutex_unlock(&d->core->m);
    return g;
}

kern_return_t IOUSBHostDevice_Open(IOUSBHostDevice *d, IOService *forClient, IOOptionBits options, uintptr_t arg)
{
    (void)options;
    (void)arg;
    if (!is_dev(d) || !forClient)
        return kIOReturnBadArgument;
    kern_return_t r = kIOReturnSuccess;
    pthread_mutex_lock(&d->core->m);
    if (d->core->gone)
        r = kIOReturnNoDevice;
    else if (d->opener && d->opener != forClient)
        r = kIOReturnExclusiveAccess;
    else if (!d->opener)
        d->opener = (IOService *)OSObject_Retain(&forClient->object);
    pthread_mutex_unlock(&d->core->m);
    return r;
}

kern_return_t IOUSBHostDevice_Close(IOUSBHostDevice *d, IOService *forClient, IOOptionBits options)
{
    (void)options;
    if (!is_dev(d) || !forClient)
        return kIOReturnBadArgument;
    IOService *old = NULL;
    pthread_mutex_lock(&d->core->m);
    if (d->opener == forClient) {
        old = d->opener;
        d->opener = NULL;
    }
    pthread_mutex_unlock(&d->core->m);
    if (!old)
        return kIOReturnNotOpen;
    OSObject_Release(&old->object);
    return kIOReturnSuccess;
}

kern_return_t IOUSBHostDevice_DeviceRequest(IOUSBHostDevice *d, IOService *forClient, uint8_t bmRequestType,
                                            uint8_t bRequest, uint16_t wValue, uint16_t wIndex, uint16_t wLength,
                                            IOMemoryDescriptor *data, uint16_t *bytesTransferred, uint32_t timeoutMs)
{
    if (!is_dev(d))
        return kIOReturnBadArgument;
    pthread_mutex_lock(&d->core->m);
    bool open = forClient && d->opener == forClient;
    pthread_mutex_unlock(&d->core->m);
    if (!open)
        return kIOReturnNotOpen;
    if (wLength && !data)
        return kIOReturnBadArgument;
    return dev_control(d, bmRequestType, bRequest, wValue, wIndex, wLength, data, NULL, bytesTransferred,
                       timeoutMs);
}

kern_return_t IOUSBHostDevice_CopyDescriptor(IOUSBHostDevice *d, uint8_t type, uint16_t *length, uint8_t index,
                                             uint16_t languageID, uint8_t requestType, uint8_t requestRecipient,
                                             uint8_t *descriptor)
{
    if (!is_dev(d) || !length || !descriptor)
        return kIOReturnBadArgument;
    if (IOUSBHostDevice_IsGone(d))
        return kIOReturnNoDevice;
    const uint8_t *cached = NULL;
    size_t clen = 0;
    if (requestType == kIOUSBDeviceRequestTypeStandard && requestRecipient == kIOUSBDeviceRequestRecipientDevice) {
        if (type == kIOUSBDescriptorTypeDevice && index == 0) {
            cached = (const uint8_t *)&d->ddesc;
            clen = sizeof(d->ddesc);
        } else if (type == kIOUSBDescriptorTypeConfiguration && index == 0) {
            cached = (const uint8_t *)d->cfg;
            clen = d->cfg->wTotalLength;
        }
    }
    if (cached) {
        size_t n = clen < *length ? clen : *length;
        memcpy(descriptor, cached, n);
        *length = (uint16_t)n;
        return kIOReturnSuccess;
    }
    uint16_t n = 0;
    uint8_t bm = (uint8_t)(0x80 | (requestType & 0x60) | (requestRecipient & 0x1f));
    kern_return_t r = dev_control(d, bm, kIOUSBDeviceRequestGetDescriptor, (uint16_t)(type << 8 | index),
                                  languageID, *length, NULL, descriptor, &n, USB_CTRL_TIMEOUT_MS);
    if (r == kIOUSBPipeStalled)
        return kIOReturnNotFound;
    if (r == kIOReturnSuccess)
        *length = n;
    return r;
}

const IOUSBDeviceDescriptor *IOUSBHostDevice_CopyDeviceDescriptor(IOUSBHostDevice *d)
{
    if (!is_dev(d))
        return NULL;
    IOUSBDeviceDescriptor *c = malloc(sizeof(*c));
    if (c)
        memcpy(c, &d->ddesc, sizeof(*c));
    return c;
}

const IOUSBConfigurationDescriptor *IOUSBHostDevice_CopyConfigurationDescriptor(IOUSBHostDevice *d, uint8_t index)
{
    if (!is_dev(d) || index != 0 || !d->cfg)
        return NULL;
    void *c = malloc(d->cfg->wTotalLength);
    if (c)
        memcpy(c, d->cfg, d->cfg->wTotalLength);
    return c;
}

kern_return_t IOUSBHostDevice_SetConfiguration(IOUSBHostDevice *d, uint8_t value, bool matchInterfaces)
{
    if (!is_dev(d))
        return kIOReturnBadArgument;
    pthread_mutex_lock(&d->core->m);
    bool open = d->opener != NULL, gone = d->core->gone;
    pthread_mutex_unlock(&d->core->m);
    if (gone)
        return kIOReturnNoDevice;
    if (!open)
        return kIOReturnNotOpen;
    if (value != 0 && value != d->cfg->bConfigurationValue)
        return kIOReturnNotFound;
    kern_return_t r = dev_control(d, 0x00, kIOUSBDeviceRequestSetConfiguration, value, 0, 0, NULL, NULL, NULL,
                                  USB_CTRL_TIMEOUT_MS);
    if (r == kIOReturnSuccess)
        d->matchInterfaces = matchInterfaces;
    return r;
}

kern_return_t IOUSBHostDevice_GetSpeed(IOUSBHostDevice *d, uint8_t *speed)
{
    if (!is_dev(d) || !speed)
        return kIOReturnBadArgument;
    *speed = d->speed;
    return kIOReturnSuccess;
}

kern_return_t IOUSBHostDevice_CreateIOBuffer(IOUSBHostDevice *d, IOOptionBits options, uint64_t capacity,
                                             IOBufferMemoryDescriptor **buffer)
{
    if (!is_dev(d) || !buffer)
        return kIOReturnBadArgument;
    IOBufferMemoryDescriptor *b = NULL;
    kern_return_t r = IOBufferMemoryDescriptor_Create(options, capacity, 0, &b);
    if (r != kIOReturnSuccess)
        return r;
    r = IOBufferMemoryDescriptor_SetLength(b, capacity);
    if (r != kIOReturnSuccess) {
        OSObject_Release((OSObject *)b);
        return r;
    }
    *buffer = b;
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- IOUSBHostPipe */

static void pipe_free(OSObject *self)
{
    IOUSBHostPipe *p = (IOUSBHostPipe *)self;
    OSSafeReleaseNULL(p->dev);
    OSObject_SuperFree(&IOUSBHostPipe_Class, self);
}

const OSClass IOUSBHostPipe_Class = {
    .name = "IOUSBHostPipe",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(IOUSBHostPipe),
    .free = pipe_free,
};

static bool is_pipe(IOUSBHostPipe *p)
{
    return p && OSObject_IsKindOf(&p->object, &IOUSBHostPipe_Class) && p->dev;
}

static kern_return_t pipe_request(IOUSBHostPipe *p, IOMemoryDescriptor *buffer, uint32_t length,
                                  OSAction *completion, uint32_t timeoutMs, usb_req **out)
{
    uint8_t type = IOUSBGetEndpointType(&p->ep);
    if (type == kIOUSBEndpointTypeInterrupt && timeoutMs != 0)
        return kIOReturnBadArgument;
    if (type != kIOUSBEndpointTypeBulk && type != kIOUSBEndpointTypeInterrupt)
        return kIOReturnUnsupported;
    usb_req *r = req_new(p->dev);
    if (!r)
        return kIOReturnNoMemory;
    r->t.type = type;
    r->t.endpoint = p->ep.bEndpointAddress;
    r->t.timeout_ms = timeoutMs;
    r->t.interval = p->ep.bInterval;
    kern_return_t ret = req_set_buffer(r, buffer, length);
    if (ret != kIOReturnSuccess) {
        req_free(r);
        return ret;
    }
    r->pipe = (IOUSBHostPipe *)OSObject_Retain(&p->object);
    if (completion)
        r->action = (OSAction *)OSObject_Retain((OSObject *)completion);
    *out = r;
    return kIOReturnSuccess;
}

kern_return_t IOUSBHostPipe_IO(IOUSBHostPipe *p, IOMemoryDescriptor *buffer, uint32_t length,
                               uint32_t *bytesTransferred, uint32_t timeoutMs)
{
    if (!is_pipe(p))
        return kIOReturnBadArgument;
    usb_req *r = NULL;
    kern_return_t ret = pipe_request(p, buffer, length, NULL, timeoutMs, &r);
    if (ret != kIOReturnSuccess)
        return ret;
    usb_core *c = p->dev->core;
    pthread_mutex_lock(&c->m);
    bool valid = p->valid;
    pthread_mutex_unlock(&c->m);
    if (!valid) {
        req_free(r);
        return kIOReturnNotOpen;
    }
    uint32_t actual = 0;
    ret = core_run_sync(c, r, &actual);
    if (bytesTransferred)
        *bytesTransferred = actual;
    return ret;
}

kern_return_t IOUSBHostPipe_AsyncIO(IOUSBHostPipe *p, IOMemoryDescriptor *buffer, uint32_t length,
                                    OSAction *completion, uint32_t timeoutMs)
{
    if (!is_pipe(p) || !completion || OSAction_GetTypeID(completion) != IOUSBHostPipe_CompleteAsyncIO_ID)
        return kIOReturnBadArgument;
    if (OSAction_IsCancelled(completion))
        return kIOReturnAborted;
    usb_req *r = NULL;
    kern_return_t ret = pipe_request(p, buffer, length, completion, timeoutMs, &r);
    if (ret != kIOReturnSuccess)
        return ret;
    usb_core *c = p->dev->core;
    pthread_mutex_lock(&c->m);
    ret = p->valid ? core_submit(c, r) : kIOReturnNotOpen;
    pthread_mutex_unlock(&c->m);
    if (ret != kIOReturnSuccess)
        req_free(r);
    return ret;
}

/* With c->m held: cancel the pipe's requests; wait for their transport completions if `wait`. */
static void pipe_abort_locked(IOUSBHostPipe *p, kern_return_t withError, bool wait)
{
    usb_core *c = p->dev->core;
    core_cancel(c, p, withError ? withError : kIOReturnAborted);
    while (wait && p->pending && !c->gone)
        core_wait(c, 50);
}

kern_return_t IOUSBHostPipe_Abort(IOUSBHostPipe *p, IOOptionBits options, kern_return_t withError,
                                  IOService *forClient)
{
    (void)forClient;
    if (!is_pipe(p))
        return kIOReturnBadArgument;
    pthread_mutex_lock(&p->dev->core->m);
    pipe_abort_locked(p, withError, options & kIOUSBAbortSynchronous);
    pthread_mutex_unlock(&p->dev->core->m);
    return kIOReturnSuccess;
}

kern_return_t IOUSBHostPipe_ClearStall(IOUSBHostPipe *p, bool withRequest)
{
    if (!is_pipe(p))
        return kIOReturnBadArgument;
    usb_core *c = p->dev->core;
    pthread_mutex_lock(&c->m);
    bool valid = p->valid, gone = c->gone;
    if (valid && !gone)
        pipe_abort_locked(p, kIOReturnAborted, true);
    pthread_mutex_unlock(&c->m);
    if (gone)
        return kIOReturnNoDevice;
    if (!valid)
        return kIOReturnNotOpen;
    if (!withRequest)
        return kIOReturnSuccess;
    return dev_control(p->dev, 0x02, kIOUSBDeviceRequestClearFeature, kIOUSBDeviceFeatureSelectorEndpointHalt,
                       p->ep.bEndpointAddress, 0, NULL, NULL, NULL, USB_CTRL_TIMEOUT_MS);
}

kern_return_t IOUSBHostPipe_GetSpeed(IOUSBHostPipe *p, uint8_t *speed)
{
    if (!is_pipe(p))
        return kIOReturnBadArgument;
    return IOUSBHostDevice_GetSpeed(p->dev, speed);
}

kern_return_t IOUSBHostPipe_GetDescriptors(IOUSBHostPipe *p, IOUSBStandardEndpointDescriptors *d,
                                           IOUSBGetEndpointDescriptorOptions type)
{
    if (!is_pipe(p) || !d || type > kIOUSBGetEndpointDescriptorCurrentPolicy)
        return kIOReturnBadArgument;
    memset(d, 0, sizeof(*d));
    d->bcdUSB = p->dev->ddesc.bcdUSB;
    d->descriptor = p->ep;
    return kIOReturnSuccess;
}

uint32_t IOUSBHostPipe_GetPendingCount(IOUSBHostPipe *p)
{
    if (!is_pipe(p))
        return 0;
    pthread_mutex_lock(&p->dev->core->m);
    uint32_t n = p->pending;
    pthread_mutex_unlock(&p->dev->core->m);
    return n;
}

/* ---------------------------------------------------------------- IOUSBHostInterface */

/* With c->m held: abort (waiting) and invalidate every pipe; the references are moved to `out`. */
static void intf_drop_pipes(IOUSBHostInterface *i, IOUSBHostPipe **out)
{
    for (size_t k = 0; k < USB_PIPE_SLOTS; k++) {
        IOUSBHostPipe *p = i->pipes[k];
        out[k] = p;
        i->pipes[k] = NULL;
        if (!p)
            continue;
        p->valid = false;
        pipe_abort_locked(p, kIOReturnAborted, true);
    }
}

static void release_pipes(IOUSBHostPipe **pipes)
{
    for (size_t k = 0; k < USB_PIPE_SLOTS; k++)
        OSSafeReleaseNULL(pipes[k]);
}

static void intf_free(OSObject *self)
{
    IOUSBHostInterface *i = (IOUSBHostInterface *)self;
    if (i->dev) {
        IOUSBHostPipe *old[USB_PIPE_SLOTS];
        pthread_mutex_lock(&i->dev->core->m);
        for (size_t k = 0; k < USB_PIPE_SLOTS; k++) {
            old[k] = i->pipes[k];
            i->pipes[k] = NULL;
            if (old[k])
                old[k]->valid = false;
        }
        pthread_mutex_unlock(&i->dev->core->m);
        release_pipes(old);
    }
    OSSafeReleaseNULL(i->opener);
    OSSafeReleaseNULL(i->dev);
    OSObject_SuperFree(&IOUSBHostInterface_Class, self);
}

const OSClass IOUSBHostInterface_Class = {
    .name = "IOUSBHostInterface",
    .superClass = &IOService_Class,
    .instanceSize = sizeof(IOUSBHostInterface),
    .free = intf_free,
};

static bool is_intf(IOUSBHostInterface *i)
{
    return i && OSObject_IsKindOf(&i->service.object, &IOUSBHostInterface_Class) && i->dev;
}

kern_return_t IOUSBHostDevice_HostCreateInterface(IOUSBHostDevice *d, uint8_t number, IOUSBHostInterface **out)
{
    if (!is_dev(d) || !out)
        return kIOReturnBadArgument;
    if (!find_interface(d->cfg, number, 0))
        return kIOReturnNotFound;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOUSBHostInterface_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOUSBHostInterface *i = (IOUSBHostInterface *)o;
    i->dev = (IOUSBHostDevice *)OSObject_Retain(&d->service.object);
    i->number = number;
    *out = i;
    return kIOReturnSuccess;
}

kern_return_t IOUSBHostInterface_SelectAlternateSetting(IOUSBHostInterface *i, uint8_t alt)
{
    if (!is_intf(i))
        return kIOReturnBadArgument;
    usb_core *c = i->dev->core;
    IOUSBHostPipe *old[USB_PIPE_SLOTS];
    pthread_mutex_lock(&c->m);
    kern_return_t r = kIOReturnSuccess;
    if (c->gone)
        r = kIOReturnNoDevice;
    else if (!i->opener)
        r = kIOReturnNotOpen;
    else if (!find_interface(i->dev->cfg, i->number, alt))
        r = kIOReturnNotFound;
    if (r != kIOReturnSuccess) {
        pthread_mutex_unlock(&c->m);
        return r;
    }
    intf_drop_pipes(i, old);
    pthread_mutex_unlock(&c->m);
    release_pipes(old);
    r = dev_control(i->dev, 0x01, kIOUSBDeviceRequestSetInterface, alt, i->number, 0, NULL, NULL, NULL,
                    USB_CTRL_TIMEOUT_MS);
    if (r == kIOReturnSuccess) {
        pthread_mutex_lock(&c->m);
        i->alt = alt;
        pthread_mutex_unlock(&c->m);
    }
    return r;
}

kern_return_t IOUSBHostInterface_Open(IOUSBHostInterface *i, IOService *forClient, IOOptionBits options,
                                      uint8_t *arg)
{
    if (!is_intf(i) || !forClient)
        return kIOReturnBadArgument;
    if ((options & kIOUSBHostInterfaceOpenOptionSelectAlternateInterface) && !arg)
        return kIOReturnBadArgument;
    usb_core *c = i->dev->core;
    kern_return_t r = kIOReturnSuccess;
    bool fresh = false;
    pthread_mutex_lock(&c->m);
    if (c->gone)
        r = kIOReturnNoDevice;
    else if (i->opener && i->opener != forClient)
        r = kIOReturnExclusiveAccess;
    else if (!i->opener) {
        i->opener = (IOService *)OSObject_Retain(&forClient->object);
        fresh = true;
    }
    pthread_mutex_unlock(&c->m);
    if (r == kIOReturnSuccess && (options & kIOUSBHostInterfaceOpenOptionSelectAlternateInterface)) {
        r = IOUSBHostInterface_SelectAlternateSetting(i, *arg);
        if (r != kIOReturnSuccess && fresh)
            (void)IOUSBHostInterface_Close(i, forClient, 0);
    }
    return r;
}

kern_return_t IOUSBHostInterface_Close(IOUSBHostInterface *i, IOService *forClient, IOOptionBits options)
{
    (void)options;
    if (!is_intf(i) || !forClient)
        return kIOReturnBadArgument;
    usb_core *c = i->dev->core;
    IOUSBHostPipe *old[USB_PIPE_SLOTS];
    pthread_mutex_lock(&c->m);
    if (i->opener != forClient) {
        pthread_mutex_unlock(&c->m);
        return kIOReturnNotOpen;
    }
    intf_drop_pipes(i, old);
    IOService *opener = i->opener;
    i->opener = NULL;
    pthread_mutex_unlock(&c->m);
    release_pipes(old);
    OSObject_Release(&opener->object);
    return kIOReturnSuccess;
}

const IOUSBConfigurationDescriptor *IOUSBHostInterface_CopyConfigurationDescriptor(IOUSBHostInterface *i)
{
    return is_intf(i) ? IOUSBHostDevice_CopyConfigurationDescriptor(i->dev, 0) : NULL;
}

const IOUSBInterfaceDescriptor *IOUSBHostInterface_GetInterfaceDescriptor(IOUSBHostInterface *i,
                                                                          const IOUSBConfigurationDescriptor *cfg)
{
    if (!is_intf(i) || !cfg)
        return NULL;
    return find_interface(cfg, i->number, i->alt);
}

kern_return_t IOUSBHostInterface_CopyPipe(IOUSBHostInterface *i, uint8_t address, IOUSBHostPipe **pipe)
{
    if (!is_intf(i) || !pipe)
        return kIOReturnBadArgument;
    usb_core *c = i->dev->core;
    kern_return_t r = kIOReturnSuccess;
    pthread_mutex_lock(&c->m);
    if (c->gone) {
        r = kIOReturnNoDevice;
        goto out;
    }
    if (!i->opener) {
        r = kIOReturnNotOpen;
        goto out;
    }
    const IOUSBInterfaceDescriptor *id = find_interface(i->dev->cfg, i->number, i->alt);
    const IOUSBEndpointDescriptor *ep = NULL;
    while ((ep = IOUSBGetNextEndpointDescriptor(i->dev->cfg, id, (const IOUSBDescriptorHeader *)ep)) != NULL)
        if (ep->bEndpointAddress == address)
            break;
    if (!ep || (address & 0x0f) == 0) {
        r = kIOReturnNotFound;
        goto out;
    }
    size_t slot = (address & 0x0f) + ((address & 0x80) ? 16u : 0u);
    if (!i->pipes[slot]) {
        OSObject *o = NULL;
        r = OSObject_Alloc(&IOUSBHostPipe_Class, &o);
        if (r != kIOReturnSuccess)
            goto out;
        IOUSBHostPipe *p = (IOUSBHostPipe *)o;
        p->dev = (IOUSBHostDevice *)OSObject_Retain(&i->dev->service.object);
        memcpy(&p->ep, ep, sizeof(p->ep));
        p->valid = true;
        i->pipes[slot] = p;
    }
    *pipe = (IOUSBHostPipe *)OSObject_Retain(&i->pipes[slot]->object);
out:
    pthread_mutex_unlock(&c->m);
    return r;
}

kern_return_t IOUSBHostInterface_CreateIOBuffer(IOUSBHostInterface *i, IOOptionBits options, uint64_t capacity,
                                                IOBufferMemoryDescriptor **buffer)
{
    if (!is_intf(i))
        return kIOReturnBadArgument;
    return IOUSBHostDevice_CreateIOBuffer(i->dev, options, capacity, buffer);
}

kern_return_t IOUSBHostInterface_DeviceRequest(IOUSBHostInterface *i, uint8_t bmRequestType, uint8_t bRequest,
                                               uint16_t wValue, uint16_t wIndex, uint16_t wLength,
                                               IOMemoryDescriptor *data, uint16_t *bytesTransferred,
                                               uint32_t timeoutMs)
{
    if (!is_intf(i))
        return kIOReturnBadArgument;
    pthread_mutex_lock(&i->dev->core->m);
    bool open = i->opener != NULL;
    pthread_mutex_unlock(&i->dev->core->m);
    if (!open)
        return kIOReturnNotOpen;
    if (wLength && !data)
        return kIOReturnBadArgument;
    return dev_control(i->dev, bmRequestType, bRequest, wValue, wIndex, wLength, data, NULL, bytesTransferred,
                       timeoutMs);
}

kern_return_t IOUSBHostInterface_CopyDevice(IOUSBHostInterface *i, IOUSBHostDevice **device)
{
    if (!is_intf(i) || !device)
        return kIOReturnBadArgument;
    *device = (IOUSBHostDevice *)OSObject_Retain(&i->dev->service.object);
    return kIOReturnSuccess;
}

uint8_t IOUSBHostInterface_GetInterfaceNumber(IOUSBHostInterface *i) { return is_intf(i) ? i->number : 0; }
uint8_t IOUSBHostInterface_GetAlternateSetting(IOUSBHostInterface *i) { return is_intf(i) ? i->alt : 0; }

OS_CLASS_REGISTER(IOUSBHostDevice_Class)
OS_CLASS_REGISTER(IOUSBHostInterface_Class)
OS_CLASS_REGISTER(IOUSBHostPipe_Class)
