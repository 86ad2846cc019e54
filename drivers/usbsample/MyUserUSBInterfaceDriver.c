/* The sample USB driver of the talk, in C on the sysext runtime: the flow of Apple's
 * USBDriverKit sample ("System Extensions and DriverKit", WWDC 2019) against the virtual sensor.
 *
 *   Start:        super Start, provider -> IOUSBHostInterface, Open, find the interrupt IN
 *                 endpoint, CopyPipe, CreateIOBuffer, CreateActionReadComplete, AsyncIO.
 *   ReadComplete: parse the 16-byte sample (counter, device timestamp), push a record into the
 *                 data queue the app maps, re-arm AsyncIO unless stopping or aborted.
 *   Stop:         Abort the pipe (synchronous), Close the interface, super Stop.
 *   free:         release everything.
 *
 * Every failing step is logged with its IOReturn name. A broken reply never crashes it: a short
 * sample is counted and skipped, a stall is cleared (ClearStall) and the read re-armed, a gone
 * device or too many consecutive errors end the reading. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "MyUserUSBInterfaceDriver.h"
#include "usbsample_internal.h"
#include "usbsample_protocol.h"

/* Consecutive failed reads (not stalls that clear) after which the driver stops re-arming. */
#define USBSAMPLE_MAX_ERRORS 16u

struct MyUserUSBInterfaceDriver_IVars {
    IOUSBHostInterface *interface; /* +1 while open */
    IOUSBHostPipe *inPipe;
    IOBufferMemoryDescriptor *inBuffer;
    OSAction *readAction;
    IODataQueueDispatchSource *dataQueue;
    IOMemoryDescriptor *dataQueueMemory; /* the ring's memfd, handed to the app */
    uint16_t maxPacketSize;
    uint8_t endpointAddress;
    atomic_bool opened; /* read by SetSampleRate on the user client's queue */
    bool haveCounter;
    uint64_t lastCounter;
    uint32_t errors; /* consecutive */
    uint32_t pendingMissed;
    atomic_bool stopping;
    atomic_bool reading; /* a read is armed (or its completion not yet handled) */
    atomic_uint rate;
    atomic_uint_fast64_t delivered, dropped, stalls, shortReads;
};

/* ------------------------------------------------------------------ logging */

static usbsample_log_sink g_sink;
static void *g_sinkContext;

void usbsample_set_log_sink(usbsample_log_sink sink, void *context)
{
    g_sink = sink;
    g_sinkContext = context;
}

void usbsample_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (g_sink)
        g_sink(line, g_sinkContext);
    else
        fprintf(stderr, "MyUserUSBInterfaceDriver[v%d]: %s\n", USBSAMPLE_VERSION, line);
}

#define LOG_FAIL(step, r) usbsample_log("%s failed: %s (0x%x)", step, IOReturn_Name(r), (unsigned)(r))

/* ------------------------------------------------------------------ lifecycle */

bool MyUserUSBInterfaceDriver_init_Impl(MyUserUSBInterfaceDriver *self)
{
    self->ivars = calloc(1, sizeof(*self->ivars));
    return self->ivars != NULL;
}

void MyUserUSBInterfaceDriver_free_Impl(MyUserUSBInterfaceDriver *self)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    if (!iv)
        return;
    if (iv->readAction)
        OSAction_Cancel(iv->readAction, NULL, NULL);
    OSSafeReleaseNULL(iv->readAction);
    OSSafeReleaseNULL(iv->inPipe);
    OSSafeReleaseNULL(iv->inBuffer);
    OSSafeReleaseNULL(iv->dataQueueMemory);
    OSSafeReleaseNULL(iv->dataQueue);
    OSSafeReleaseNULL(iv->interface);
    free(iv);
    self->ivars = NULL;
    usbsample_log("freed");
}

/* Find the first interrupt IN endpoint of the interface's current alternate setting. */
static kern_return_t find_interrupt_in(struct MyUserUSBInterfaceDriver_IVars *iv)
{
    const IOUSBConfigurationDescriptor *cfg = IOUSBHostInterface_CopyConfigurationDescriptor(iv->interface);
    if (!cfg)
        return kIOReturnNoMemory;
    const IOUSBInterfaceDescriptor *id = IOUSBHostInterface_GetInterfaceDescriptor(iv->interface, cfg);
    const IOUSBEndpointDescriptor *ep = NULL;
    kern_return_t r = kIOReturnNotFound;
    while (id && (ep = IOUSBGetNextEndpointDescriptor(cfg, id, (const IOUSBDescriptorHeader *)ep)) != NULL) {
        if (IOUSBGetEndpointType(ep) != kIOUSBEndpointTypeInterrupt ||
            IOUSBGetEndpointDirection(ep) != kIOUSBEndpointDirectionIn)
            continue;
        uint16_t mps = IOUSBGetEndpointMaxPacketSize(ep);
        if (mps < USBSAMPLE_DEVICE_SAMPLE_LEN) {
            usbsample_log("endpoint 0x%02x: wMaxPacketSize %u is below the %d-byte sample", IOUSBGetEndpointAddress(ep),
                          mps, USBSAMPLE_DEVICE_SAMPLE_LEN);
            r = kIOReturnUnsupported;
            break;
        }
        iv->endpointAddress = IOUSBGetEndpointAddress(ep);
        iv->maxPacketSize = mps;
        r = kIOReturnSuccess;
        break;
    }
    IOUSBHostFreeDescriptor(cfg);
    return r;
}

static uint32_t read_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_le64(const uint8_t *p)
{
    return (uint64_t)read_le32(p) | (uint64_t)read_le32(p + 4) << 32;
}

/* The device's current rate (vendor GET_RATE); 0 when it does not answer. */
static uint32_t query_rate(IOUSBHostInterface *intf)
{
    IOBufferMemoryDescriptor *b = NULL;
    kern_return_t r = IOUSBHostInterface_CreateIOBuffer(intf, kIOMemoryDirectionIn, 4, &b);
    if (r != kIOReturnSuccess) {
        LOG_FAIL("CreateIOBuffer (rate)", r);
        return 0;
    }
    uint16_t n = 0;
    uint32_t rate = 0;
    r = IOUSBHostInterface_DeviceRequest(intf, 0xc0, USBSAMPLE_REQ_GET_RATE, 0, 0, 4, (IOMemoryDescriptor *)b, &n,
                                         2000);
    IOAddressSegment seg;
    if (r != kIOReturnSuccess)
        LOG_FAIL("DeviceRequest GET_RATE", r);
    else if (n != 4)
        usbsample_log("DeviceRequest GET_RATE: %u bytes, expected 4", n);
    else if (IOBufferMemoryDescriptor_GetAddressRange(b, &seg) == kIOReturnSuccess)
        rate = read_le32((const uint8_t *)(uintptr_t)seg.address);
    OSSafeReleaseNULL(b);
    return rate;
}

static kern_return_t arm_read(MyUserUSBInterfaceDriver *self)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    kern_return_t r = IOUSBHostPipe_AsyncIO(iv->inPipe, (IOMemoryDescriptor *)iv->inBuffer, iv->maxPacketSize,
                                            iv->readAction, 0);
    atomic_store(&iv->reading, r == kIOReturnSuccess);
    if (r != kIOReturnSuccess)
        LOG_FAIL("AsyncIO", r);
    return r;
}

kern_return_t MyUserUSBInterfaceDriver_Start_Impl(MyUserUSBInterfaceDriver *self, IOService *provider)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    IOService *svc = (IOService *)self;
    kern_return_t r = IOService_Start_Super(&MyUserUSBInterfaceDriver_Class, svc, provider);
    if (r != kIOReturnSuccess) {
        LOG_FAIL("Start (super)", r);
        return r;
    }
    IOUSBHostInterface *intf = OSDynamicCast(IOUSBHostInterface, provider);
    if (!intf) {
        usbsample_log("Start: provider is a %s, not an IOUSBHostInterface",
                      provider ? OSObject_GetClassName((OSObject *)provider) : "(none)");
        r = kIOReturnNoDevice;
        goto fail;
    }
    iv->interface = (IOUSBHostInterface *)OSObject_Retain((OSObject *)intf);
    if ((r = IOUSBHostInterface_Open(intf, svc, 0, NULL)) != kIOReturnSuccess) {
        LOG_FAIL("Open", r);
        goto fail;
    }
    atomic_store(&iv->opened, true);
    if ((r = find_interrupt_in(iv)) != kIOReturnSuccess) {
        LOG_FAIL("finding the interrupt IN endpoint", r);
        goto fail;
    }
    if ((r = IOUSBHostInterface_CopyPipe(intf, iv->endpointAddress, &iv->inPipe)) != kIOReturnSuccess) {
        LOG_FAIL("CopyPipe", r);
        goto fail;
    }
    if ((r = IOUSBHostInterface_CreateIOBuffer(intf, kIOMemoryDirectionIn, iv->maxPacketSize, &iv->inBuffer)) !=
        kIOReturnSuccess) {
        LOG_FAIL("CreateIOBuffer", r);
        goto fail;
    }
    if ((r = IODataQueueDispatchSource_Create(USBSAMPLE_DATA_QUEUE_BYTES, IOService_GetDispatchQueue(svc),
                                              &iv->dataQueue)) != kIOReturnSuccess) {
        LOG_FAIL("IODataQueueDispatchSource::Create", r);
        goto fail;
    }
    if ((r = IOMemoryDescriptor_CreateFromFD(IODataQueueDispatchSource_GetMemoryFD(iv->dataQueue),
                                             kIOMemoryDirectionInOut, 0, &iv->dataQueueMemory)) != kIOReturnSuccess) {
        LOG_FAIL("IOMemoryDescriptor::CreateFromFD (data queue)", r);
        goto fail;
    }
    uint32_t rate = query_rate(intf);
    atomic_store(&iv->rate, rate);
    if ((r = MyUserUSBInterfaceDriver_CreateActionReadComplete(self, 0, &iv->readAction)) != kIOReturnSuccess) {
        LOG_FAIL("CreateActionReadComplete", r);
        goto fail;
    }
    if ((r = arm_read(self)) != kIOReturnSuccess)
        goto fail;
    if ((r = IOService_RegisterService(svc)) != kIOReturnSuccess) {
        LOG_FAIL("RegisterService", r);
        goto fail;
    }
    usbsample_log("started on interface %u, endpoint 0x%02x (%u bytes), %u Hz",
                  IOUSBHostInterface_GetInterfaceNumber(intf), iv->endpointAddress, iv->maxPacketSize, rate);
    return kIOReturnSuccess;

fail:
    atomic_store(&iv->stopping, true);
    if (iv->inPipe && atomic_load(&iv->reading))
        (void)IOUSBHostPipe_Abort(iv->inPipe, kIOUSBAbortSynchronous, kIOReturnAborted, svc);
    if (atomic_exchange(&iv->opened, false))
        (void)IOUSBHostInterface_Close(iv->interface, svc, 0);
    if (iv->readAction)
        OSAction_Cancel(iv->readAction, NULL, NULL);
    return r;
}

kern_return_t MyUserUSBInterfaceDriver_Stop_Impl(MyUserUSBInterfaceDriver *self, IOService *provider)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    IOService *svc = (IOService *)self;
    atomic_store(&iv->stopping, true);
    kern_return_t r;
    if (iv->inPipe) {
        r = IOUSBHostPipe_Abort(iv->inPipe, kIOUSBAbortSynchronous, kIOReturnAborted, svc);
        if (r != kIOReturnSuccess && r != kIOReturnNoDevice)
            LOG_FAIL("Abort", r);
    }
    if (atomic_exchange(&iv->opened, false)) {
        r = IOUSBHostInterface_Close(iv->interface, svc, 0);
        if (r != kIOReturnSuccess)
            LOG_FAIL("Close", r);
    }
    /* No ReadComplete starts after this; the aborted completion may still be queued. */
    if (iv->readAction)
        OSAction_Cancel(iv->readAction, NULL, NULL);
    usbsample_log("stopped: %llu samples delivered, %llu dropped, %llu stalls, %llu short reads",
                  (unsigned long long)atomic_load(&iv->delivered), (unsigned long long)atomic_load(&iv->dropped),
                  (unsigned long long)atomic_load(&iv->stalls), (unsigned long long)atomic_load(&iv->shortReads));
    r = IOService_Stop_Super(&MyUserUSBInterfaceDriver_Class, svc, provider);
    if (r != kIOReturnSuccess)
        LOG_FAIL("Stop (super)", r);
    return r;
}

/* ------------------------------------------------------------------ the read path */

struct fill_ctx {
    const usbsample_record *rec;
};

static void fill_record(void *data, size_t size, void *context)
{
    const struct fill_ctx *c = context;
    if (size == sizeof(*c->rec))
        memcpy(data, c->rec, sizeof(*c->rec));
}

static void deliver(MyUserUSBInterfaceDriver *self, const uint8_t *p, uint64_t completionTimestamp)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    usbsample_record rec = {
        .counter = read_le64(p),
        .device_ns = read_le64(p + 8),
        .host_ns = completionTimestamp,
        .version = USBSAMPLE_VERSION,
    };
    uint64_t missed = iv->pendingMissed;
    if (iv->haveCounter && rec.counter > iv->lastCounter + 1) {
        uint64_t gap = rec.counter - iv->lastCounter - 1;
        missed += gap;
        atomic_fetch_add(&iv->dropped, gap);
    } else if (iv->haveCounter && rec.counter <= iv->lastCounter) {
        usbsample_log("sample counter went back from %llu to %llu (device reset?)",
                      (unsigned long long)iv->lastCounter, (unsigned long long)rec.counter);
    }
    iv->haveCounter = true;
    iv->lastCounter = rec.counter;
    rec.missed = missed > UINT32_MAX ? UINT32_MAX : (uint32_t)missed;
    struct fill_ctx c = { &rec };
    kern_return_t r = IODataQueueDispatchSource_Enqueue(iv->dataQueue, sizeof(rec), fill_record, &c);
    if (r == kIOReturnSuccess) {
        iv->pendingMissed = 0;
        atomic_fetch_add(&iv->delivered, 1);
        return;
    }
    /* The app does not keep up: the sample is lost; the next record says so. */
    if (iv->pendingMissed < UINT32_MAX)
        iv->pendingMissed = rec.missed + 1 < rec.missed ? UINT32_MAX : rec.missed + 1;
    atomic_fetch_add(&iv->dropped, 1);
    if (r != kIOReturnOverrun)
        LOG_FAIL("data queue Enqueue", r);
}

void MyUserUSBInterfaceDriver_ReadComplete_Impl(MyUserUSBInterfaceDriver *self, OSAction *action, IOReturn status,
                                                uint32_t actualByteCount, uint64_t completionTimestamp)
{
    (void)action;
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    atomic_store(&iv->reading, false);
    if (status == kIOReturnAborted || atomic_load(&iv->stopping))
        return; /* Stop's Abort, or a read completing while we stop: do not re-arm */
    switch (status) {
    case kIOReturnSuccess:
        if (actualByteCount < USBSAMPLE_DEVICE_SAMPLE_LEN || actualByteCount > iv->maxPacketSize) {
            atomic_fetch_add(&iv->shortReads, 1);
            usbsample_log("ReadComplete: %u bytes, expected %d: sample skipped", actualByteCount,
                          USBSAMPLE_DEVICE_SAMPLE_LEN);
            iv->errors++;
            break;
        }
        IOAddressSegment seg;
        if (IOBufferMemoryDescriptor_GetAddressRange(iv->inBuffer, &seg) != kIOReturnSuccess ||
            seg.length < USBSAMPLE_DEVICE_SAMPLE_LEN) {
            usbsample_log("ReadComplete: the I/O buffer has no mapping");
            iv->errors++;
            break;
        }
        deliver(self, (const uint8_t *)(uintptr_t)seg.address, completionTimestamp);
        iv->errors = 0;
        break;
    case kIOUSBPipeStalled: {
        atomic_fetch_add(&iv->stalls, 1);
        iv->errors++;
        LOG_FAIL("ReadComplete", status);
        kern_return_t r = IOUSBHostPipe_ClearStall(iv->inPipe, true);
        if (r != kIOReturnSuccess) {
            LOG_FAIL("ClearStall", r);
            return; /* the endpoint stays halted: reading ends here */
        }
        break;
    }
    case kIOReturnNoDevice:
    case kIOReturnNotOpen:
    case kIOReturnNotAttached:
        LOG_FAIL("ReadComplete (device gone, reading ends)", status);
        return;
    default:
        iv->errors++;
        LOG_FAIL("ReadComplete", status);
        break;
    }
    if (iv->errors >= USBSAMPLE_MAX_ERRORS) {
        usbsample_log("%u consecutive failed reads: reading ends", iv->errors);
        return;
    }
    (void)arm_read(self);
}

/* ------------------------------------------------------------------ user client support */

kern_return_t MyUserUSBInterfaceDriver_NewUserClient_Impl(MyUserUSBInterfaceDriver *self, uint32_t type,
                                                          IOUserClient **userClient)
{
    if (type != USBSAMPLE_USER_CLIENT_TYPE) {
        usbsample_log("NewUserClient: type %u refused (only %u)", type, USBSAMPLE_USER_CLIENT_TYPE);
        return kIOReturnBadArgument;
    }
    if (atomic_load(&self->ivars->stopping))
        return kIOReturnNotReady;
    IOUserClient *uc = NULL;
    kern_return_t r =
        IOService_NewUserClient_Super(&MyUserUSBInterfaceDriver_Class, (IOService *)self, type, &uc);
    if (r != kIOReturnSuccess) {
        LOG_FAIL("NewUserClient (UserClientProperties)", r);
        return r;
    }
    *userClient = uc;
    return kIOReturnSuccess;
}

kern_return_t MyUserUSBInterfaceDriver_SetSampleRate(MyUserUSBInterfaceDriver *self, uint32_t hz)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    if (hz < USBSAMPLE_RATE_MIN || hz > USBSAMPLE_RATE_MAX)
        return kIOReturnBadArgument;
    if (atomic_load(&iv->stopping) || !atomic_load(&iv->opened))
        return kIOReturnNotReady;
    uint16_t n = 0;
    kern_return_t r = IOUSBHostInterface_DeviceRequest(iv->interface, 0x40, USBSAMPLE_REQ_SET_RATE, (uint16_t)hz, 0, 0,
                                                       NULL, &n, 2000);
    if (r != kIOReturnSuccess) {
        LOG_FAIL("DeviceRequest SET_RATE", r);
        return r;
    }
    atomic_store(&iv->rate, hz);
    usbsample_log("rate set to %u Hz", hz);
    return kIOReturnSuccess;
}

void MyUserUSBInterfaceDriver_GetStatistics(MyUserUSBInterfaceDriver *self, uint32_t *rate, uint64_t *delivered,
                                            uint64_t *dropped)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    *rate = atomic_load(&iv->rate);
    *delivered = atomic_load(&iv->delivered);
    *dropped = atomic_load(&iv->dropped);
}

kern_return_t MyUserUSBInterfaceDriver_CopyDataQueueMemory(MyUserUSBInterfaceDriver *self, IOMemoryDescriptor **memory)
{
    struct MyUserUSBInterfaceDriver_IVars *iv = self->ivars;
    if (!iv->dataQueueMemory)
        return kIOReturnNotReady;
    *memory = (IOMemoryDescriptor *)OSObject_Retain((OSObject *)iv->dataQueueMemory);
    return kIOReturnSuccess;
}
