/* The USB family (IOUSBHostDevice / IOUSBHostInterface / IOUSBHostPipe) over USB/IP against
 * sysext-vusb: a driver written as in the USBDriverKit sample reads sensor samples through
 * AsyncIO + OSAction, bulk loopback with many requests in flight, Abort, stall + ClearStall,
 * disconnect, and the API's refusals. */
#include "util/common.h"

#include <stdatomic.h>

#include "runtime/src/usb/usb_host.h"
#include "tests/unit/runtime/rt_test.h"
#include "tests/unit/usb/vusb_harness.h"

/* ---------------------------------------------------------------- attach / detach */

typedef struct attached {
    sx_usbip_client *client;
    IOUSBHostDevice *dev;
    IOUSBHostInterface *intf;
} attached;

static attached at;

static void harness_unused(void) __attribute__((unused));
static void harness_unused(void)
{
    (void)run_for;
    (void)run_until;
}

static void attach(const char *busid)
{
    at.client = vusb_import(busid);
    sx_usb_transport tr;
    sx_usbip_client_transport(at.client, &tr);
    kern_return_t r = IOUSBHostDevice_HostCreate(&tr, kIOUSBHostConnectionSpeedHigh, &at.dev);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
    r = IOUSBHostDevice_HostCreateInterface(at.dev, 0, &at.intf);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
}

static void detach(void)
{
    if (at.dev)
        IOUSBHostDevice_HostDetach(at.dev);
    sx_usbip_client_free(at.client); /* completes anything still in the transport */
    at.client = NULL;
    OSSafeReleaseNULL(at.intf);
    OSSafeReleaseNULL(at.dev);
}

static void teardown(void)
{
    detach();
    vusb_stop();
}

TestSuite(usbfam, .fini = teardown, .timeout = 60);

/* ---------------------------------------------------------------- a driver class */

#define TDrv_ReadComplete_ID 0x7e57d21f00000001ULL

typedef struct TDrv {
    IOService service;
    IOUSBHostInterface *intf;
    IOUSBHostPipe *in;
    IOBufferMemoryDescriptor *buf;
    OSAction *action;
    uint16_t mps;
    atomic_bool stopping;
    /* what the completions saw */
    pthread_mutex_t m;
    uint64_t counters[256];
    unsigned nsamples;
    unsigned aborted, other;
    kern_return_t lastOther;
    bool wrongThread;
    struct rt_counter events;
} TDrv;

extern const OSClass TDrv_Class;

static void TDrv_ReadComplete(OSObject *target, OSAction *action, IOReturn status, uint32_t actual, uint64_t ts)
{
    (void)ts;
    TDrv *d = (TDrv *)target;
    if (!IODispatchQueue_OnQueue(IOService_GetDispatchQueue(&d->service)))
        d->wrongThread = true;
    pthread_mutex_lock(&d->m);
    if (status == kIOReturnAborted) {
        d->aborted++;
    } else if (status != kIOReturnSuccess || actual != 16) {
        d->other++;
        d->lastOther = status;
    } else if (d->nsamples < 256) {
        IOAddressSegment seg;
        IOBufferMemoryDescriptor_GetAddressRange(d->buf, &seg);
        const uint8_t *p = (const uint8_t *)(uintptr_t)seg.address;
        uint64_t c = 0;
        for (int i = 7; i >= 0; i--)
            c = c << 8 | p[i];
        d->counters[d->nsamples++] = c;
    }
    pthread_mutex_unlock(&d->m);
    if (status == kIOUSBPipeStalled)
        (void)IOUSBHostPipe_ClearStall(d->in, true);
    if (status != kIOReturnAborted && status != kIOReturnNoDevice && !atomic_load(&d->stopping))
        (void)IOUSBHostPipe_AsyncIO(d->in, (IOMemoryDescriptor *)d->buf, d->mps, action, 0);
    rt_counter_add(&d->events);
}

static kern_return_t TDrv_Start(IOService *self, IOService *provider)
{
    TDrv *d = (TDrv *)self;
    kern_return_t r = IOService_Start_Super(&TDrv_Class, self, provider);
    if (r != kIOReturnSuccess)
        return r;
    d->intf = OSDynamicCast(IOUSBHostInterface, provider);
    if (!d->intf)
        return kIOReturnNoDevice;
    r = IOUSBHostInterface_Open(d->intf, self, 0, NULL);
    if (r != kIOReturnSuccess)
        return r;
    const IOUSBConfigurationDescriptor *cfg = IOUSBHostInterface_CopyConfigurationDescriptor(d->intf);
    const IOUSBInterfaceDescriptor *id = IOUSBHostInterface_GetInterfaceDescriptor(d->intf, cfg);
    const IOUSBEndpointDescriptor *ep = NULL;
    uint8_t addr = 0;
    while ((ep = IOUSBGetNextEndpointDescriptor(cfg, id, (const IOUSBDescriptorHeader *)ep)) != NULL) {
        if (IOUSBGetEndpointType(ep) == kIOUSBEndpointTypeInterrupt &&
            IOUSBGetEndpointDirection(ep) == kIOUSBEndpointDirectionIn) {
            addr = IOUSBGetEndpointAddress(ep);
            d->mps = IOUSBGetEndpointMaxPacketSize(ep);
            break;
        }
    }
    IOUSBHostFreeDescriptor(cfg);
    if (!addr)
        return kIOReturnNotFound;
    r = IOUSBHostInterface_CopyPipe(d->intf, addr, &d->in);
    if (r == kIOReturnSuccess)
        r = IOUSBHostInterface_CreateIOBuffer(d->intf, kIOMemoryDirectionIn, d->mps, &d->buf);
    if (r == kIOReturnSuccess)
        r = OSAction_Create(&self->object, TDrv_ReadComplete_ID, IOUSBHostPipe_CompleteAsyncIO_ID, NULL, 0,
                            &d->action);
    if (r == kIOReturnSuccess)
        r = IOUSBHostPipe_AsyncIO(d->in, (IOMemoryDescriptor *)d->buf, d->mps, d->action, 0);
    if (r != kIOReturnSuccess)
        return r;
    return IOService_RegisterService(self);
}

static bool TDrv_init(OSObject *self)
{
    if (!OSObject_SuperInit(&TDrv_Class, self))
        return false;
    TDrv *d = (TDrv *)self;
    pthread_mutex_init(&d->m, NULL);
    pthread_mutex_init(&d->events.m, NULL);
    pthread_cond_init(&d->events.c, NULL);
    return true;
}

static void TDrv_free(OSObject *self)
{
    TDrv *d = (TDrv *)self;
    OSSafeReleaseNULL(d->in);
    OSSafeReleaseNULL(d->buf);
    OSSafeReleaseNULL(d->action);
    pthread_mutex_destroy(&d->m);
    OSObject_SuperFree(&TDrv_Class, self);
}

static const OSMethod TDrv_methods[] = {
    OS_METHOD(IOService_Start_ID, TDrv_Start),
    OS_METHOD(TDrv_ReadComplete_ID, TDrv_ReadComplete),
};
const OSClass TDrv_Class = {"TestUSBDriver", &IOService_Class, sizeof(TDrv), TDrv_init, TDrv_free,
                            TDrv_methods, 2};

static TDrv *new_driver(void)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&TDrv_Class, &o), kIOReturnSuccess);
    return (TDrv *)o;
}

/* Stop as the sample does, on the driver's queue: set stopping, abort synchronously (the armed
 * read completes with kIOReturnAborted), close. */
static void TDrv_StopWork(void *ctx)
{
    TDrv *d = ctx;
    atomic_store(&d->stopping, true);
    (void)IOUSBHostPipe_Abort(d->in, kIOUSBAbortSynchronous, kIOReturnAborted, &d->service);
}

static void stop_driver(TDrv *d)
{
    int before = rt_counter_get(&d->events);
    cr_assert_eq(IODispatchQueue_DispatchSync(IOService_GetDispatchQueue(&d->service), TDrv_StopWork, d),
                 kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_GetPendingCount(d->in), 0);
    cr_assert(rt_counter_wait(&d->events, before + 1, 2000), "the aborted completion came");
    cr_assert_eq(IOUSBHostInterface_Close(d->intf, &d->service, 0), kIOReturnSuccess);
    OSAction_Cancel(d->action, NULL, NULL);
}

static unsigned samples(TDrv *d)
{
    pthread_mutex_lock(&d->m);
    unsigned n = d->nsamples;
    pthread_mutex_unlock(&d->m);
    return n;
}

static bool wait_samples(TDrv *d, unsigned n, int ms)
{
    uint64_t end = vusb_now_ms() + (uint64_t)ms;
    while (samples(d) < n && vusb_now_ms() < end)
        usleep(2000);
    return samples(d) >= n;
}

/* ---------------------------------------------------------------- tests */

Test(usbfam, sensor_driver_reads_monotonic_samples_and_sets_the_rate)
{
    const char *const args[] = {"--device", "sensor", NULL};
    vusb_start(args);
    attach("1-1");
    TDrv *d = new_driver();
    kern_return_t r = IOService_HostStart(&d->service, (IOService *)at.intf);
    cr_assert_eq(r, kIOReturnSuccess, "Start: %s", IOReturn_Name(r));
    cr_assert_eq(d->mps, 16);
    cr_assert(wait_samples(d, 5, 5000), "got %u samples", samples(d));

    /* vendor request: rate 1000 Hz, read it back */
    uint16_t n = 0;
    cr_assert_eq(IOUSBHostInterface_DeviceRequest(at.intf, 0x40, 1, 1000, 0, 0, NULL, &n, 2000), kIOReturnSuccess);
    IOBufferMemoryDescriptor *rb = NULL;
    cr_assert_eq(IOUSBHostInterface_CreateIOBuffer(at.intf, kIOMemoryDirectionIn, 4, &rb), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_DeviceRequest(at.intf, 0xc0, 2, 0, 0, 4, (IOMemoryDescriptor *)rb, &n, 2000),
                 kIOReturnSuccess);
    cr_assert_eq(n, 4);
    IOAddressSegment seg;
    IOBufferMemoryDescriptor_GetAddressRange(rb, &seg);
    const uint8_t *p = (const uint8_t *)(uintptr_t)seg.address;
    cr_assert_eq(p[0] | p[1] << 8, 1000);
    /* a refused request is a stall */
    cr_assert_eq(IOUSBHostInterface_DeviceRequest(at.intf, 0x40, 1, 0, 0, 0, NULL, &n, 2000), kIOUSBPipeStalled);
    OSSafeReleaseNULL(rb);

    /* at 1000 Hz, 100 more samples come well within a second (100 Hz would need 1 s) */
    unsigned have = samples(d);
    uint64_t t0 = vusb_now_ms();
    cr_assert(wait_samples(d, have + 100, 5000));
    cr_assert_lt(vusb_now_ms() - t0, 900, "rate change took effect");

    /* Back to 1 Hz so the armed read is surely pending when the driver stops. Samples sent
     * at 1000 Hz may still be arriving: wait until one comes after a gap of half a second,
     * then the next is about a second away (stopping right after a fast sample raced with
     * its completion, and the read finished before it could be aborted). */
    cr_assert_eq(IOUSBHostInterface_DeviceRequest(at.intf, 0x40, 1, 1, 0, 0, NULL, &n, 2000), kIOReturnSuccess);
    bool slow = false;
    for (int tries = 0; tries < 6 && !slow; tries++) {
        have = samples(d);
        uint64_t t = vusb_now_ms();
        cr_assert(wait_samples(d, have + 1, 3000));
        slow = vusb_now_ms() - t >= 500;
    }
    cr_assert(slow, "the rate never went down to 1 Hz");
    stop_driver(d);
    cr_assert_eq(d->aborted, 1, "the armed read completes with kIOReturnAborted");
    cr_assert_eq(d->other, 0, "unexpected status %s", IOReturn_Name(d->lastOther));
    cr_assert_not(d->wrongThread, "completions run on the driver's default queue");
    for (unsigned i = 1; i < d->nsamples; i++)
        cr_assert_eq(d->counters[i], d->counters[i - 1] + 1, "sample %u: %lu after %lu", i,
                     (unsigned long)d->counters[i], (unsigned long)d->counters[i - 1]);
    OSObject_Release(&d->service.object);
}

/* ---- bulk loopback through AsyncIO, 8 OUT and 8 IN in flight */

#define LB_SLOTS 8
#define LB_CHUNK 4096u
#define LB_TOTAL (512u * 1024u)

typedef struct lb_ref {
    unsigned slot;
    bool in;
} lb_ref;

static struct loopback {
    IOUSBHostPipe *out, *in;
    IOBufferMemoryDescriptor *obuf[LB_SLOTS], *ibuf[LB_SLOTS];
    OSAction *oact[LB_SLOTS], *iact[LB_SLOTS];
    uint8_t *src, *dst;
    size_t sent, received;
    unsigned inflightIn, failures;
    kern_return_t lastError;
    struct rt_counter done;
} lb;

static void lb_send(unsigned slot)
{
    if (lb.sent >= LB_TOTAL)
        return;
    IOAddressSegment seg;
    IOBufferMemoryDescriptor_GetAddressRange(lb.obuf[slot], &seg);
    memcpy((void *)(uintptr_t)seg.address, lb.src + lb.sent, LB_CHUNK);
    lb.sent += LB_CHUNK;
    kern_return_t r = IOUSBHostPipe_AsyncIO(lb.out, (IOMemoryDescriptor *)lb.obuf[slot], LB_CHUNK, lb.oact[slot], 0);
    if (r != kIOReturnSuccess) {
        lb.failures++;
        lb.lastError = r;
    }
}

static void lb_start(void *ctx)
{
    (void)ctx;
    for (unsigned i = 0; i < LB_SLOTS; i++)
        lb_send(i);
}

static void LB_Complete(OSObject *target, OSAction *action, IOReturn status, uint32_t actual, uint64_t ts)
{
    (void)target;
    (void)ts;
    const lb_ref *ref = OSAction_GetReference(action);
    if (status != kIOReturnSuccess) {
        if (!(ref->in && status == kIOReturnAborted)) {
            lb.failures++;
            lb.lastError = status;
        }
        return;
    }
    if (!ref->in) {
        lb_send(ref->slot);
        return;
    }
    IOAddressSegment seg;
    IOBufferMemoryDescriptor_GetAddressRange(lb.ibuf[ref->slot], &seg);
    if (lb.received + actual > LB_TOTAL) {
        lb.failures++;
        return;
    }
    memcpy(lb.dst + lb.received, (const void *)(uintptr_t)seg.address, actual);
    lb.received += actual;
    if (lb.received == LB_TOTAL)
        rt_counter_add(&lb.done);
    else
        (void)IOUSBHostPipe_AsyncIO(lb.in, (IOMemoryDescriptor *)lb.ibuf[ref->slot], LB_CHUNK, action, 0);
}

static const OSMethod LB_methods[] = {OS_METHOD(TDrv_ReadComplete_ID, LB_Complete)};
static const OSClass LB_Class = {"TestLoopbackClient", &IOService_Class, sizeof(IOService), NULL, NULL,
                                 LB_methods, 1};

static IOService *lb_client(void)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&LB_Class, &o), kIOReturnSuccess);
    return (IOService *)o;
}

static OSAction *lb_action(IOService *client, unsigned slot, bool in)
{
    OSAction *a = NULL;
    cr_assert_eq(OSAction_Create(&client->object, TDrv_ReadComplete_ID, IOUSBHostPipe_CompleteAsyncIO_ID, NULL,
                                 sizeof(lb_ref), &a),
                 kIOReturnSuccess);
    lb_ref *ref = OSAction_GetReference(a);
    ref->slot = slot;
    ref->in = in;
    return a;
}

static void lb_setup(IOService *client)
{
    memset(&lb, 0, sizeof(lb));
    pthread_mutex_init(&lb.done.m, NULL);
    pthread_cond_init(&lb.done.c, NULL);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, client, 0, NULL), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x02, &lb.out), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x82, &lb.in), kIOReturnSuccess);
    for (unsigned i = 0; i < LB_SLOTS; i++) {
        cr_assert_eq(IOUSBHostInterface_CreateIOBuffer(at.intf, kIOMemoryDirectionOut, LB_CHUNK, &lb.obuf[i]), 0);
        cr_assert_eq(IOUSBHostInterface_CreateIOBuffer(at.intf, kIOMemoryDirectionIn, LB_CHUNK, &lb.ibuf[i]), 0);
        lb.oact[i] = lb_action(client, i, false);
        lb.iact[i] = lb_action(client, i, true);
    }
}

static void lb_teardown(IOService *client)
{
    for (unsigned i = 0; i < LB_SLOTS; i++) {
        OSAction_Cancel(lb.oact[i], NULL, NULL);
        OSAction_Cancel(lb.iact[i], NULL, NULL);
        OSSafeReleaseNULL(lb.oact[i]);
        OSSafeReleaseNULL(lb.iact[i]);
        OSSafeReleaseNULL(lb.obuf[i]);
        OSSafeReleaseNULL(lb.ibuf[i]);
    }
    OSSafeReleaseNULL(lb.out);
    OSSafeReleaseNULL(lb.in);
    OSObject_Release(&client->object);
}

Test(usbfam, bulk_loopback_with_many_asyncio_in_flight)
{
    const char *const args[] = {"--device", "loopback", NULL};
    vusb_start(args);
    attach("1-1");
    IOService *client = lb_client();
    lb_setup(client);
    lb.src = malloc(LB_TOTAL);
    lb.dst = malloc(LB_TOTAL);
    uint32_t x = 777;
    for (size_t i = 0; i < LB_TOTAL; i++) {
        x = x * 1103515245u + 12345u;
        lb.src[i] = (uint8_t)(x >> 16);
    }
    for (unsigned i = 0; i < LB_SLOTS; i++)
        cr_assert_eq(IOUSBHostPipe_AsyncIO(lb.in, (IOMemoryDescriptor *)lb.ibuf[i], LB_CHUNK, lb.iact[i], 0),
                     kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_GetPendingCount(lb.in), LB_SLOTS);
    /* start the senders on the client's queue, where the completions run too */
    cr_assert_eq(IODispatchQueue_DispatchSync(IOService_GetDispatchQueue(client), lb_start, NULL), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&lb.done, 1, 30000), "received %zu of %u (failures %u, %s)", lb.received, LB_TOTAL,
              lb.failures, IOReturn_Name(lb.lastError));
    cr_assert_eq(lb.failures, 0, "%s", IOReturn_Name(lb.lastError));
    cr_assert_eq(memcmp(lb.src, lb.dst, LB_TOTAL), 0, "bytes come back equal and in order");
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, client, 0), kIOReturnSuccess, "Close aborts the spare INs");
    cr_assert_eq(IOUSBHostDevice_HostPendingCount(at.dev), 0);
    lb_teardown(client);
    free(lb.src);
    free(lb.dst);
}

/* ---- Abort, stall, disconnect with a simple counting completion */

static struct counts {
    pthread_mutex_t m;
    unsigned n, aborted, nodev, stalled, success, other;
    kern_return_t custom;
    unsigned customN;
} cnt = {.m = PTHREAD_MUTEX_INITIALIZER};
static struct rt_counter cnt_events = RT_COUNTER_INIT;

static void Count_Complete(OSObject *target, OSAction *action, IOReturn status, uint32_t actual, uint64_t ts)
{
    (void)target;
    (void)action;
    (void)actual;
    (void)ts;
    pthread_mutex_lock(&cnt.m);
    cnt.n++;
    if (status == kIOReturnAborted)
        cnt.aborted++;
    else if (status == kIOReturnNoDevice)
        cnt.nodev++;
    else if (status == kIOUSBPipeStalled)
        cnt.stalled++;
    else if (status == kIOReturnSuccess)
        cnt.success++;
    else if (cnt.custom && status == cnt.custom)
        cnt.customN++;
    else
        cnt.other++;
    pthread_mutex_unlock(&cnt.m);
    rt_counter_add(&cnt_events);
}

static const OSMethod Count_methods[] = {OS_METHOD(TDrv_ReadComplete_ID, Count_Complete)};
static const OSClass Count_Class = {"TestCountingClient", &IOService_Class, sizeof(IOService), NULL, NULL,
                                    Count_methods, 1};

static IOService *count_client(OSAction **action)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&Count_Class, &o), kIOReturnSuccess);
    if (action)
        cr_assert_eq(OSAction_Create(o, TDrv_ReadComplete_ID, IOUSBHostPipe_CompleteAsyncIO_ID, NULL, 0, action),
                     kIOReturnSuccess);
    return (IOService *)o;
}

static IOBufferMemoryDescriptor *buffer(uint64_t cap)
{
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOUSBHostInterface_CreateIOBuffer(at.intf, kIOMemoryDirectionInOut, cap, &b), kIOReturnSuccess);
    return b;
}

static void fill(IOBufferMemoryDescriptor *b, const void *data, size_t n)
{
    IOAddressSegment seg;
    IOBufferMemoryDescriptor_GetAddressRange(b, &seg);
    memcpy((void *)(uintptr_t)seg.address, data, n);
}

Test(usbfam, abort_completes_pending_asyncio_with_aborted)
{
    const char *const args[] = {"--device", "loopback", NULL};
    vusb_start(args);
    attach("1-1");
    OSAction *act = NULL;
    IOService *client = count_client(&act);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, client, 0, NULL), kIOReturnSuccess);
    IOUSBHostPipe *in = NULL, *out = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x82, &in), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x02, &out), kIOReturnSuccess);
    IOBufferMemoryDescriptor *b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = buffer(512);
        cr_assert_eq(IOUSBHostPipe_AsyncIO(in, (IOMemoryDescriptor *)b[i], 512, act, 0), kIOReturnSuccess);
    }
    usleep(50000); /* they are at the device, pending (no data) */
    cr_assert_eq(IOUSBHostPipe_GetPendingCount(in), 8);
    cr_assert_eq(rt_counter_get(&cnt_events), 0);
    cr_assert_eq(IOUSBHostPipe_Abort(in, kIOUSBAbortSynchronous, kIOReturnAborted, client), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_GetPendingCount(in), 0, "synchronous abort waits for the completions");
    cr_assert(rt_counter_wait(&cnt_events, 8, 3000));
    cr_assert_eq(cnt.aborted, 8);
    cr_assert_eq(cnt.other + cnt.success, 0);

    /* Abort with another error code: completions carry it */
    cnt.custom = kIOReturnOffline;
    cr_assert_eq(IOUSBHostPipe_AsyncIO(in, (IOMemoryDescriptor *)b[0], 512, act, 0), kIOReturnSuccess);
    usleep(20000);
    cr_assert_eq(IOUSBHostPipe_Abort(in, kIOUSBAbortAsynchronous, kIOReturnOffline, client), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&cnt_events, 9, 3000));
    cr_assert_eq(cnt.customN, 1);

    /* the pipes still work: a synchronous round trip */
    uint32_t n = 0;
    fill(b[1], "ping", 4);
    cr_assert_eq(IOUSBHostPipe_IO(out, (IOMemoryDescriptor *)b[1], 4, &n, 2000), kIOReturnSuccess);
    cr_assert_eq(n, 4);
    cr_assert_eq(IOUSBHostPipe_IO(in, (IOMemoryDescriptor *)b[2], 512, &n, 2000), kIOReturnSuccess);
    cr_assert_eq(n, 4);
    IOAddressSegment seg;
    IOBufferMemoryDescriptor_GetAddressRange(b[2], &seg);
    cr_assert_eq(memcmp((void *)(uintptr_t)seg.address, "ping", 4), 0);
    /* a synchronous IN with nothing to read times out */
    cr_assert_eq(IOUSBHostPipe_IO(in, (IOMemoryDescriptor *)b[2], 512, &n, 100), kIOReturnTimeout);
    /* ... and so does an asynchronous one, through its completion */
    pthread_mutex_lock(&cnt.m);
    cnt.custom = kIOReturnTimeout;
    cnt.customN = 0;
    pthread_mutex_unlock(&cnt.m);
    cr_assert_eq(IOUSBHostPipe_AsyncIO(in, (IOMemoryDescriptor *)b[3], 512, act, 50), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&cnt_events, 10, 3000));
    cr_assert_eq(cnt.customN, 1, "kIOReturnTimeout");

    /* Close aborts what is still pending on the interface's pipes */
    cr_assert_eq(IOUSBHostPipe_AsyncIO(in, (IOMemoryDescriptor *)b[4], 512, act, 0), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, client, 0), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&cnt_events, 11, 3000));
    cr_assert_eq(cnt.aborted, 9);
    cr_assert_eq(cnt.other, 0);
    cr_assert_eq(IOUSBHostPipe_IO(out, (IOMemoryDescriptor *)b[1], 4, &n, 2000), kIOReturnNotOpen,
                 "a pipe of a closed interface is dead");
    OSAction_Cancel(act, NULL, NULL);
    OSSafeReleaseNULL(act);
    for (int i = 0; i < 8; i++)
        OSSafeReleaseNULL(b[i]);
    OSSafeReleaseNULL(in);
    OSSafeReleaseNULL(out);
    OSObject_Release(&client->object);
}

Test(usbfam, stall_then_clearstall)
{
    const char *const args[] = {"--device", "loopback", "--inject", "stall@2:0x02", NULL};
    vusb_start(args);
    attach("1-1");
    OSAction *act = NULL;
    IOService *client = count_client(&act);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, client, 0, NULL), kIOReturnSuccess);
    IOUSBHostPipe *out = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x02, &out), kIOReturnSuccess);
    IOBufferMemoryDescriptor *b = buffer(64);
    fill(b, "abcdefgh", 8);
    uint32_t n = 0;
    cr_assert_eq(IOUSBHostPipe_IO(out, (IOMemoryDescriptor *)b, 8, &n, 2000), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_AsyncIO(out, (IOMemoryDescriptor *)b, 8, act, 0), kIOReturnSuccess);
    cr_assert(rt_counter_wait(&cnt_events, 1, 3000));
    cr_assert_eq(cnt.stalled, 1, "the injected stall reaches the completion as kIOUSBPipeStalled");
    cr_assert_eq(IOUSBHostPipe_IO(out, (IOMemoryDescriptor *)b, 8, &n, 2000), kIOUSBPipeStalled, "still halted");
    cr_assert_eq(IOUSBHostPipe_ClearStall(out, true), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_IO(out, (IOMemoryDescriptor *)b, 8, &n, 2000), kIOReturnSuccess);
    cr_assert_eq(n, 8);
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, client, 0), kIOReturnSuccess);
    OSAction_Cancel(act, NULL, NULL);
    OSSafeReleaseNULL(act);
    OSSafeReleaseNULL(b);
    OSSafeReleaseNULL(out);
    OSObject_Release(&client->object);
}

Test(usbfam, disconnect_mid_transfer_fails_requests_with_no_device)
{
    const char *const args[] = {"--device", "loopback", "--inject", "disconnect@1:0x02", NULL};
    vusb_start(args);
    attach("1-1");
    OSAction *act = NULL;
    IOService *client = count_client(&act);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, client, 0, NULL), kIOReturnSuccess);
    IOUSBHostPipe *in = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x82, &in), kIOReturnSuccess);
    IOBufferMemoryDescriptor *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = buffer(512);
        cr_assert_eq(IOUSBHostPipe_AsyncIO(in, (IOMemoryDescriptor *)b[i], 512, act, 0), kIOReturnSuccess);
    }
    usleep(20000);
    cr_assert_eq(IOUSBHostPipe_GetPendingCount(in), 4);
    /* the first OUT makes the device vanish */
    IOUSBHostPipe *out = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x02, &out), kIOReturnSuccess);
    uint32_t n;
    cr_assert_eq(IOUSBHostPipe_IO(out, (IOMemoryDescriptor *)b[0], 8, &n, 2000), kIOReturnNoDevice);
    OSSafeReleaseNULL(out);
    cr_assert(rt_counter_wait(&cnt_events, 4, 5000), "got %d completions", rt_counter_get(&cnt_events));
    cr_assert_eq(cnt.nodev, 4, "aborted %u success %u other %u", cnt.aborted, cnt.success, cnt.other);
    cr_assert(IOUSBHostDevice_IsGone(at.dev));
    cr_assert_eq(IOUSBHostPipe_AsyncIO(in, (IOMemoryDescriptor *)b[0], 512, act, 0), kIOReturnNoDevice);
    cr_assert_eq(IOUSBHostPipe_IO(in, (IOMemoryDescriptor *)b[0], 512, &n, 100), kIOReturnNoDevice);
    IOUSBHostPipe *again = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x82, &again), kIOReturnNoDevice);
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, client, 0), kIOReturnSuccess);
    OSAction_Cancel(act, NULL, NULL);
    OSSafeReleaseNULL(act);
    for (int i = 0; i < 4; i++)
        OSSafeReleaseNULL(b[i]);
    OSSafeReleaseNULL(in);
    OSObject_Release(&client->object);
}

static void timer_handler(OSObject *t, OSAction *a, uint64_t time)
{
    (void)t;
    (void)a;
    (void)time;
}

Test(usbfam, refusals_wrong_action_type_not_open_exclusive_bad_arguments)
{
    const char *const args[] = {"--device", "sensor", NULL};
    vusb_start(args);
    attach("1-1");
    OSAction *act = NULL;
    IOService *other = count_client(NULL);
    IOService *client = count_client(&act);

    IOUSBHostPipe *pipe = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x81, &pipe), kIOReturnNotOpen);
    uint16_t n16;
    cr_assert_eq(IOUSBHostInterface_DeviceRequest(at.intf, 0x40, 1, 10, 0, 0, NULL, &n16, 100), kIOReturnNotOpen);
    cr_assert_eq(IOUSBHostDevice_DeviceRequest(at.dev, client, 0x40, 1, 10, 0, 0, NULL, &n16, 100), kIOReturnNotOpen);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, client, 0, NULL), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, other, 0, NULL), kIOReturnExclusiveAccess);
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, other, 0), kIOReturnNotOpen);
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x82, &pipe), kIOReturnNotFound);
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x81, &pipe), kIOReturnSuccess);
    IOUSBHostPipe *same = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyPipe(at.intf, 0x81, &same), kIOReturnSuccess);
    cr_assert_eq(same, pipe, "one pipe object per endpoint");
    OSSafeReleaseNULL(same);

    IOBufferMemoryDescriptor *b = buffer(16);
    /* an OSAction of another TYPE is refused before anything is queued */
    OSAction *wrong = NULL;
    cr_assert_eq(OSAction_Create(&client->object, 0, IOTimerDispatchSource_TimerOccurred_ID,
                                 (OSMethodFunction)timer_handler, 0, &wrong),
                 kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_AsyncIO(pipe, (IOMemoryDescriptor *)b, 16, wrong, 0), kIOReturnBadArgument);
    cr_assert_eq(IOUSBHostPipe_AsyncIO(pipe, (IOMemoryDescriptor *)b, 16, NULL, 0), kIOReturnBadArgument);
    cr_assert_eq(IOUSBHostPipe_GetPendingCount(pipe), 0);
    /* interrupt pipes take no timeout; no length beyond the buffer */
    cr_assert_eq(IOUSBHostPipe_AsyncIO(pipe, (IOMemoryDescriptor *)b, 16, act, 100), kIOReturnBadArgument);
    cr_assert_eq(IOUSBHostPipe_AsyncIO(pipe, (IOMemoryDescriptor *)b, 17, act, 0), kIOReturnBadArgument);
    uint32_t n = 0;
    cr_assert_eq(IOUSBHostPipe_IO(pipe, (IOMemoryDescriptor *)b, 16, &n, 100), kIOReturnBadArgument);
    cr_assert_eq(IOUSBHostPipe_IO(pipe, (IOMemoryDescriptor *)b, 16, &n, 0), kIOReturnSuccess);
    cr_assert_eq(n, 16);
    usleep(20000);
    cr_assert_eq(rt_counter_get(&cnt_events), 0, "no completion for a refused request");

    /* descriptors and speed */
    uint8_t speed = 0;
    cr_assert_eq(IOUSBHostPipe_GetSpeed(pipe, &speed), kIOReturnSuccess);
    cr_assert_eq(speed, kIOUSBHostConnectionSpeedHigh);
    IOUSBStandardEndpointDescriptors eds;
    cr_assert_eq(IOUSBHostPipe_GetDescriptors(pipe, &eds, kIOUSBGetEndpointDescriptorOriginal), kIOReturnSuccess);
    cr_assert_eq(eds.bcdUSB, 0x0200);
    cr_assert_eq(eds.descriptor.bEndpointAddress, 0x81);
    cr_assert_eq(eds.descriptor.bmAttributes & 3, kIOUSBEndpointTypeInterrupt);
    cr_assert_eq(eds.descriptor.wMaxPacketSize, 16);

    /* alternate settings: only 0 exists; selecting it invalidates the pipes */
    cr_assert_eq(IOUSBHostInterface_SelectAlternateSetting(at.intf, 1), kIOReturnNotFound);
    cr_assert_eq(IOUSBHostInterface_SelectAlternateSetting(at.intf, 0), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostPipe_IO(pipe, (IOMemoryDescriptor *)b, 16, &n, 0), kIOReturnNotOpen);

    OSAction_Cancel(wrong, NULL, NULL);
    OSSafeReleaseNULL(wrong);
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, client, 0), kIOReturnSuccess);
    OSAction_Cancel(act, NULL, NULL);
    OSSafeReleaseNULL(act);
    OSSafeReleaseNULL(b);
    OSSafeReleaseNULL(pipe);
    OSObject_Release(&client->object);
    OSObject_Release(&other->object);
}

Test(usbfam, device_descriptors_configuration_and_strings)
{
    const char *const args[] = {"--device", "sensor", NULL};
    vusb_start(args);
    attach("1-1");
    const IOUSBDeviceDescriptor *dd = IOUSBHostDevice_CopyDeviceDescriptor(at.dev);
    cr_assert_not_null(dd);
    cr_assert_eq(dd->idVendor, 0x1209);
    cr_assert_eq(dd->idProduct, 0x0001);
    cr_assert_eq(dd->bNumConfigurations, 1);
    IOUSBHostFreeDescriptor(dd);

    const IOUSBConfigurationDescriptor *cfg = IOUSBHostDevice_CopyConfigurationDescriptor(at.dev, 0);
    cr_assert_not_null(cfg);
    cr_assert_eq(cfg->wTotalLength, 25);
    cr_assert_null(IOUSBHostDevice_CopyConfigurationDescriptor(at.dev, 1));
    const IOUSBInterfaceDescriptor *id = IOUSBGetNextInterfaceDescriptor(cfg, NULL);
    cr_assert_not_null(id);
    cr_assert_eq(id->bInterfaceClass, 0xff);
    cr_assert_null(IOUSBGetNextInterfaceDescriptor(cfg, (const IOUSBDescriptorHeader *)id));
    cr_assert_eq(IOUSBHostInterface_GetInterfaceDescriptor(at.intf, cfg), id);
    const IOUSBEndpointDescriptor *ep = IOUSBGetNextEndpointDescriptor(cfg, id, NULL);
    cr_assert_not_null(ep);
    cr_assert_eq(IOUSBGetEndpointAddress(ep), 0x81);
    cr_assert_eq(IOUSBGetEndpointNumber(ep), 1);
    cr_assert_eq(IOUSBGetEndpointMaxPacketSize(ep), 16);
    cr_assert_null(IOUSBGetNextEndpointDescriptor(cfg, id, (const IOUSBDescriptorHeader *)ep));
    IOUSBHostFreeDescriptor(cfg);

    uint8_t buf[255];
    uint16_t len = sizeof(buf);
    cr_assert_eq(IOUSBHostDevice_CopyDescriptor(at.dev, kIOUSBDescriptorTypeString, &len, 2, 0x0409,
                                                kIOUSBDeviceRequestTypeStandard, kIOUSBDeviceRequestRecipientDevice,
                                                buf),
                 kIOReturnSuccess);
    const char *want = "sysext virtual sensor";
    cr_assert_eq(len, 2 + 2 * strlen(want));
    cr_assert_eq(buf[2], 's');
    len = 4;
    cr_assert_eq(IOUSBHostDevice_CopyDescriptor(at.dev, kIOUSBDescriptorTypeDevice, &len, 0, 0,
                                                kIOUSBDeviceRequestTypeStandard, kIOUSBDeviceRequestRecipientDevice,
                                                buf),
                 kIOReturnSuccess);
    cr_assert_eq(len, 4, "cut at the caller's capacity");
    cr_assert_eq(buf[0], 18);
    len = sizeof(buf);
    cr_assert_eq(IOUSBHostDevice_CopyDescriptor(at.dev, 7, &len, 0, 0, kIOUSBDeviceRequestTypeStandard,
                                                kIOUSBDeviceRequestRecipientDevice, buf),
                 kIOReturnNotFound);

    /* device session: exclusive, SetConfiguration needs it */
    OSAction *act = NULL;
    IOService *client = count_client(&act);
    cr_assert_eq(IOUSBHostDevice_SetConfiguration(at.dev, 1, false), kIOReturnNotOpen);
    cr_assert_eq(IOUSBHostDevice_Open(at.dev, client, 0, 0), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostDevice_SetConfiguration(at.dev, 2, false), kIOReturnNotFound);
    cr_assert_eq(IOUSBHostDevice_SetConfiguration(at.dev, 1, true), kIOReturnSuccess);
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOUSBHostDevice_CreateIOBuffer(at.dev, kIOMemoryDirectionIn, 8, &b), kIOReturnSuccess);
    uint16_t n = 0;
    cr_assert_eq(IOUSBHostDevice_DeviceRequest(at.dev, client, 0x80, 8, 0, 0, 1, (IOMemoryDescriptor *)b, &n, 1000),
                 kIOReturnSuccess);
    cr_assert_eq(n, 1);
    cr_assert_eq(IOUSBHostDevice_DeviceRequest(at.dev, client, 0x80, 8, 0, 0, 9, (IOMemoryDescriptor *)b, &n, 1000),
                 kIOReturnBadArgument, "wLength above the buffer");
    cr_assert_eq(IOUSBHostDevice_Close(at.dev, client, 0), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostDevice_Close(at.dev, client, 0), kIOReturnNotOpen);
    OSAction_Cancel(act, NULL, NULL);
    OSSafeReleaseNULL(act);
    OSSafeReleaseNULL(b);
    OSObject_Release(&client->object);
}

Test(usbfam, descriptor_helpers_stop_at_malformed_descriptors)
{
    uint8_t cfg[] = {9, 2, 25, 0, 1, 1, 0, 0x80, 50, 9, 4, 0, 0, 1, 0xff, 0, 0, 0, 7, 5, 0x81, 3, 16, 0, 4};
    const IOUSBConfigurationDescriptor *c = (const IOUSBConfigurationDescriptor *)cfg;
    const IOUSBInterfaceDescriptor *i = IOUSBGetNextInterfaceDescriptor(c, NULL);
    cr_assert_not_null(i);
    cr_assert_not_null(IOUSBGetNextEndpointDescriptor(c, i, NULL));
    cfg[18] = 8; /* the endpoint runs past wTotalLength */
    cr_assert_null(IOUSBGetNextEndpointDescriptor(c, i, NULL));
    cfg[18] = 0; /* a zero bLength would loop forever */
    cr_assert_null(IOUSBGetNextEndpointDescriptor(c, i, NULL));
    cfg[18] = 7;
    cfg[2] = 24; /* wTotalLength cuts the endpoint */
    cr_assert_null(IOUSBGetNextEndpointDescriptor(c, i, NULL));
    cfg[2] = 25;
    cfg[9] = 1;
    cr_assert_null(IOUSBGetNextInterfaceDescriptor(c, NULL));
    cr_assert_null(IOUSBGetNextDescriptor(NULL, NULL));
}
