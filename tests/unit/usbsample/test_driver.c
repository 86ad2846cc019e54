/* The sample driver of the talk (drivers/usbsample) in-process, over USB/IP against
 * `sysext-vusb --device sensor`: instantiated from its Info.plist personality, started on the
 * interface nub, its user client opened as the host does for an app (IOService_HostNewUserClient,
 * IOUserClient_HostExternalMethod, CopyClientMemoryForType mapped as the app maps it), the
 * samples read with the app's ring consumer; the rate set; bad arguments refused; stall,
 * disconnect and a malformed reply survived; Stop and free clean (ASan build: no leaks). */
#include "util/common.h"

#include <plist/plist.h>
#include <stdatomic.h>

#include "MyUserUSBInterfaceDriver.h"
#include "MyUserUSBInterfaceDriverUserClient.h"
#include "drivers/usbsample/sample_queue.h"
#include "drivers/usbsample/usbsample_internal.h"
#include "drivers/usbsample/usbsample_protocol.h"
#include "runtime/src/rt_ring.h"
#include "runtime/src/usb/usb_host.h"
#include "tests/unit/runtime/rt_test.h"
#include "tests/unit/usb/vusb_harness.h"

#define INFO_PLIST SYSEXT_SOURCE_DIR "/drivers/usbsample/Info.plist"

/* ---------------------------------------------------------------- captured log */

static struct {
    pthread_mutex_t m;
    char text[64 * 1024];
    size_t len;
} logbuf = { .m = PTHREAD_MUTEX_INITIALIZER };

static void log_sink(const char *line, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&logbuf.m);
    size_t n = strlen(line);
    if (logbuf.len + n + 2 < sizeof(logbuf.text)) {
        memcpy(logbuf.text + logbuf.len, line, n);
        logbuf.len += n;
        logbuf.text[logbuf.len++] = '\n';
        logbuf.text[logbuf.len] = '\0';
    }
    pthread_mutex_unlock(&logbuf.m);
}

static bool log_has(const char *s)
{
    pthread_mutex_lock(&logbuf.m);
    bool found = strstr(logbuf.text, s) != NULL;
    pthread_mutex_unlock(&logbuf.m);
    return found;
}

static bool wait_log(const char *s, int ms)
{
    uint64_t end = vusb_now_ms() + (uint64_t)ms;
    while (!log_has(s) && vusb_now_ms() < end)
        usleep(2000);
    return log_has(s);
}

/* ---------------------------------------------------------------- the personality */

/* A plist value as an OSObject (strings, integers, booleans, dictionaries), +1 or NULL. */
static OSObject *os_from_plist(plist_t p)
{
    switch (plist_get_node_type(p)) {
    case PLIST_STRING: {
        char *s = NULL;
        plist_get_string_val(p, &s);
        OSObject *o = (OSObject *)OSString_WithCString(s);
        free(s);
        return o;
    }
    case PLIST_UINT: {
        uint64_t v = 0;
        plist_get_uint_val(p, &v);
        return (OSObject *)OSNumber_WithNumber(v, 64);
    }
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(p, &b);
        return OSObject_Retain((OSObject *)(b ? kOSBooleanTrue : kOSBooleanFalse));
    }
    case PLIST_DICT: {
        OSDictionary *d = OSDictionary_WithCapacity(plist_dict_get_size(p));
        plist_dict_iter it = NULL;
        plist_dict_new_iter(p, &it);
        for (;;) {
            char *key = NULL;
            plist_t v = NULL;
            plist_dict_next_item(p, it, &key, &v);
            if (!key)
                break;
            OSObject *o = os_from_plist(v);
            if (o) {
                OSDictionary_SetObject(d, key, o);
                OSObject_Release(o);
            }
            free(key);
        }
        free(it);
        return (OSObject *)d;
    }
    default:
        return NULL;
    }
}

static plist_t load_info(void)
{
    FILE *f = fopen(INFO_PLIST, "rb");
    cr_assert_not_null(f, "%s", INFO_PLIST);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    plist_t root = NULL;
    plist_from_memory(buf, (uint32_t)n, &root);
    cr_assert_not_null(root, "Info.plist parses");
    return root;
}

/* The personality of Info.plist as the properties the host gives the driver (+1). */
static OSDictionary *personality(void)
{
    plist_t root = load_info();
    plist_t pers = plist_dict_get_item(plist_dict_get_item(root, "IOKitPersonalities"), "MyUserUSBInterfaceDriver");
    cr_assert_not_null(pers, "IOKitPersonalities.MyUserUSBInterfaceDriver");
    OSDictionary *d = (OSDictionary *)os_from_plist(pers);
    plist_free(root);
    return d;
}

/* ---------------------------------------------------------------- fixture */

static struct {
    sx_usbip_client *client;
    IOUSBHostDevice *dev;
    IOUSBHostInterface *intf;
    IOService *drv;
    IOUserClient *uc;
    IOMemoryDescriptor *qmem;
    IOMemoryMap *qmap;
    usbsample_queue q;
} at;

static void start_sensor(const char *const *vusb_args)
{
    usbsample_set_log_sink(log_sink, NULL);
    vusb_start(vusb_args);
    at.client = vusb_import("1-1");
    sx_usb_transport tr;
    sx_usbip_client_transport(at.client, &tr);
    kern_return_t r = IOUSBHostDevice_HostCreate(&tr, kIOUSBHostConnectionSpeedHigh, &at.dev);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
    r = IOUSBHostDevice_HostCreateInterface(at.dev, 0, &at.intf);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));

    OSDictionary *props = personality();
    OSString *cls = OSDictionary_GetString(props, "IOUserClass");
    cr_assert_not_null(cls);
    r = IOService_Instantiate(OSString_GetCStringNoCopy(cls), props, &at.drv);
    OSObject_Release((OSObject *)props);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
    cr_assert_not_null(OSDynamicCast(MyUserUSBInterfaceDriver, at.drv));
    r = IOService_HostStart(at.drv, (IOService *)at.intf);
    cr_assert_eq(r, kIOReturnSuccess, "Start: %s\n%s", IOReturn_Name(r), logbuf.text);
    cr_assert(IOService_IsRegistered(at.drv));
    cr_assert(log_has("started on interface 0, endpoint 0x81 (16 bytes), 100 Hz"), "%s", logbuf.text);
}

/* Open the user client as the host does for an app and map the data queue as the app does. */
static void open_user_client(void)
{
    kern_return_t r = IOService_HostNewUserClient(at.drv, USBSAMPLE_USER_CLIENT_TYPE, &at.uc);
    cr_assert_eq(r, kIOReturnSuccess, "NewUserClient: %s", IOReturn_Name(r));
    cr_assert_str_eq(OSObject_GetClassName((OSObject *)at.uc), "MyUserUSBInterfaceDriverUserClient");
    uint64_t options = 0;
    r = IOUserClient_HostCopyClientMemoryForType(at.uc, USBSAMPLE_MEMORY_DATA_QUEUE, &options, &at.qmem);
    cr_assert_eq(r, kIOReturnSuccess, "CopyClientMemoryForType: %s", IOReturn_Name(r));
    cr_assert_eq(options & kIOUserClientMemoryReadOnly, 0, "the app writes the consumer offset");
    /* what the app gets is the fd: map it through a fresh descriptor, as another process would */
    IOMemoryDescriptor *app = NULL;
    cr_assert_eq(IOMemoryDescriptor_CreateFromFD(IOMemoryDescriptor_GetFD(at.qmem), 0, 0, &app), kIOReturnSuccess);
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(app, 0, 0, 0, 0, 0, &at.qmap), kIOReturnSuccess);
    OSObject_Release((OSObject *)app);
    cr_assert_eq(usbsample_queue_attach(&at.q, (void *)(uintptr_t)IOMemoryMap_GetAddress(at.qmap),
                                        (size_t)IOMemoryMap_GetLength(at.qmap)),
                 0);
}

static void wait_stopped(IOService *s)
{
    for (int i = 0; i < 2500 && IOService_GetState(s) != kIOServiceStateStopped; i++)
        usleep(2000);
    cr_assert_eq(IOService_GetState(s), kIOServiceStateStopped);
}

/* Terminate the driver (its user client first), as the host does when the device goes away. */
static void stop_driver(void)
{
    cr_assert_eq(IOService_Terminate(at.drv, 0), kIOReturnSuccess);
    wait_stopped(at.drv);
    if (at.uc)
        wait_stopped(&at.uc->service);
    cr_assert(log_has("stopped: "), "%s", logbuf.text);
}

static void teardown(void)
{
    if (at.drv && IOService_GetState(at.drv) == kIOServiceStateStarted) {
        IOService_Terminate(at.drv, 0);
        for (int i = 0; i < 2500 && IOService_GetState(at.drv) != kIOServiceStateStopped; i++)
            usleep(2000);
    }
    OSSafeReleaseNULL(at.qmap);
    OSSafeReleaseNULL(at.qmem);
    OSSafeReleaseNULL(at.uc);
    OSSafeReleaseNULL(at.drv);
    if (at.dev)
        IOUSBHostDevice_HostDetach(at.dev);
    sx_usbip_client_free(at.client);
    at.client = NULL;
    OSSafeReleaseNULL(at.intf);
    OSSafeReleaseNULL(at.dev);
    vusb_stop();
    usbsample_set_log_sink(NULL, NULL);
}

TestSuite(usbsample, .fini = teardown, .timeout = 60);

static void harness_unused(void) __attribute__((unused));
static void harness_unused(void)
{
    (void)run_for;
    (void)run_until;
}

/* ---------------------------------------------------------------- helpers */

static kern_return_t call(uint64_t selector, const uint64_t *in, uint32_t nin, uint64_t *out, uint32_t *nout)
{
    IOUserClientMethodArguments a;
    memset(&a, 0, sizeof(a));
    a.version = kIOUserClientMethodArgumentsCurrentVersion;
    a.scalarInput = in;
    a.scalarInputCount = nin;
    a.scalarOutput = out;
    a.scalarOutputCount = nout ? *nout : 0;
    kern_return_t r = IOUserClient_HostExternalMethod(at.uc, selector, &a);
    if (nout)
        *nout = a.scalarOutputCount;
    return r;
}

static void stats(uint64_t out[4])
{
    uint32_t n = 4;
    kern_return_t r = call(kUSBSampleSelectorGetStats, NULL, 0, out, &n);
    cr_assert_eq(r, kIOReturnSuccess, "GetStats: %s", IOReturn_Name(r));
    cr_assert_eq(n, 4);
}

static kern_return_t set_rate(uint64_t hz)
{
    return call(kUSBSampleSelectorSetRate, &hz, 1, NULL, NULL);
}

/* Read up to `max` records within `ms`. */
static size_t read_records(usbsample_record *recs, size_t max, int ms)
{
    size_t n = 0;
    uint64_t end = vusb_now_ms() + (uint64_t)ms;
    while (n < max && vusb_now_ms() < end) {
        int got = usbsample_queue_next(&at.q, &recs[n]);
        cr_assert_geq(got, 0, "the ring is consistent");
        if (got)
            n++;
        else
            usleep(1000);
    }
    return n;
}

/* Drain what is queued now. */
static void drain(void)
{
    usbsample_record r;
    while (usbsample_queue_next(&at.q, &r) == 1)
        ;
}

/* Samples delivered over `ms` of wall time, the ring drained as the app does. */
static size_t count_for(int ms, usbsample_record *last)
{
    size_t n = 0;
    uint64_t end = vusb_now_ms() + (uint64_t)ms;
    while (vusb_now_ms() < end) {
        int got = usbsample_queue_next(&at.q, last);
        cr_assert_geq(got, 0);
        if (got)
            n++;
        else
            usleep(1000);
    }
    return n;
}

/* ---------------------------------------------------------------- tests */

Test(usbsample, personality_matches_the_sensor_and_names_both_classes)
{
    OSDictionary *p = personality();
    uint64_t v = 0;
    cr_assert(OSDictionary_GetNumberValue(p, "idVendor", &v));
    cr_assert_eq(v, USBSAMPLE_VENDOR_ID);
    cr_assert(OSDictionary_GetNumberValue(p, "idProduct", &v));
    cr_assert_eq(v, USBSAMPLE_PRODUCT_ID);
    cr_assert(OSDictionary_GetNumberValue(p, "bInterfaceNumber", &v));
    cr_assert_eq(v, USBSAMPLE_INTERFACE);
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(p, "IOProviderClass"), "IOUSBHostInterface"));
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(p, "IOClass"), "IOUserService"));
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(p, "IOUserClass"), "MyUserUSBInterfaceDriver"));
    OSDictionary *ucp = OSDictionary_GetDictionary(p, "UserClientProperties");
    cr_assert_not_null(ucp);
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(ucp, "IOClass"), "IOUserUserClient"));
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(ucp, "IOUserClass"),
                                        "MyUserUSBInterfaceDriverUserClient"));
    cr_assert_eq(OSClass_Find("MyUserUSBInterfaceDriver"), &MyUserUSBInterfaceDriver_Class);
    cr_assert_eq(OSClass_Find("MyUserUSBInterfaceDriverUserClient"), &MyUserUSBInterfaceDriverUserClient_Class);
    OSObject_Release((OSObject *)p);
}

Test(usbsample, delivers_monotonic_samples_to_the_app_and_stops_cleanly)
{
    const char *const args[] = { "--device", "sensor", NULL };
    start_sensor(args);
    open_user_client();
    usbsample_record recs[30];
    size_t n = read_records(recs, 30, 5000);
    cr_assert_eq(n, 30, "got %zu samples", n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(recs[i].version, USBSAMPLE_VERSION, "the record says which driver made it");
        if (i == 0)
            continue;
        cr_assert_eq(recs[i].counter, recs[i - 1].counter + 1, "sample %zu: %llu after %llu", i,
                     (unsigned long long)recs[i].counter, (unsigned long long)recs[i - 1].counter);
        cr_assert_eq(recs[i].missed, 0);
        /* samples the device's timer produced in one tick share a timestamp */
        cr_assert_geq(recs[i].device_ns, recs[i - 1].device_ns, "device timestamps do not go back");
        cr_assert_geq(recs[i].host_ns, recs[i - 1].host_ns, "completion timestamps do not go back");
    }
    /* 29 periods of 10 ms at the default 100 Hz, give or take the timer's batching */
    uint64_t span = recs[n - 1].device_ns - recs[0].device_ns;
    cr_assert(span >= 150000000u && span <= 600000000u, "device time for 30 samples: %llu ns",
              (unsigned long long)span);
    uint64_t s[4];
    stats(s);
    cr_assert_eq(s[0], 100, "the device's default rate, read at Start");
    cr_assert_geq(s[1], 30, "delivered");
    cr_assert_eq(s[2], 0, "dropped");
    cr_assert_eq(s[3], USBSAMPLE_VERSION, "driver version (this file is built against v1 and v2)");

    stop_driver();
    cr_assert_eq(call(kUSBSampleSelectorGetStats, NULL, 0, s, &(uint32_t){ 4 }), kIOReturnNotReady,
                 "a stopped user client refuses calls");
    cr_assert_not(log_has("failed"), "no step failed:\n%s", logbuf.text);
    /* the app lets go of its mapping and connection, the host of the driver: freed */
    OSSafeReleaseNULL(at.qmap);
    OSSafeReleaseNULL(at.qmem);
    OSSafeReleaseNULL(at.uc);
    cr_assert_not(log_has("freed"));
    OSSafeReleaseNULL(at.drv);
    cr_assert(log_has("freed"), "the driver object is freed once released:\n%s", logbuf.text);
}

Test(usbsample, set_rate_reaches_the_device_and_the_sample_rate_follows)
{
    const char *const args[] = { "--device", "sensor", NULL };
    start_sensor(args);
    open_user_client();
    usbsample_record last;
    cr_assert_eq(set_rate(500), kIOReturnSuccess);
    cr_assert(log_has("rate set to 500 Hz"));
    uint64_t s[4];
    stats(s);
    cr_assert_eq(s[0], 500);
    usleep(100000);
    drain();
    size_t n = count_for(1000, &last);
    cr_assert(n >= 300 && n <= 700, "500 Hz: %zu samples in 1 s", n);

    cr_assert_eq(set_rate(50), kIOReturnSuccess);
    usleep(100000);
    drain();
    n = count_for(1000, &last);
    cr_assert(n >= 30 && n <= 70, "50 Hz: %zu samples in 1 s", n);
    stats(s);
    cr_assert_eq(s[0], 50);
    cr_assert_eq(s[2], 0, "nothing dropped while the app keeps up");
    stop_driver();
}

Test(usbsample, bad_external_method_arguments_are_refused)
{
    const char *const args[] = { "--device", "sensor", NULL };
    start_sensor(args);
    open_user_client();
    uint64_t in[2] = { 200, 1 }, out[8];
    uint32_t nout;
    /* selector out of the table */
    cr_assert_eq(call(kUSBSampleSelectorCount, in, 1, NULL, NULL), kIOReturnBadArgument);
    cr_assert_eq(call(UINT64_MAX, in, 1, NULL, NULL), kIOReturnBadArgument);
    /* SetRate: one scalar in, nothing out, in range */
    cr_assert_eq(call(kUSBSampleSelectorSetRate, in, 0, NULL, NULL), kIOReturnBadArgument);
    cr_assert_eq(call(kUSBSampleSelectorSetRate, in, 2, NULL, NULL), kIOReturnBadArgument);
    nout = 1;
    cr_assert_eq(call(kUSBSampleSelectorSetRate, in, 1, out, &nout), kIOReturnBadArgument);
    cr_assert_eq(set_rate(0), kIOReturnBadArgument);
    cr_assert_eq(set_rate(USBSAMPLE_RATE_MAX + 1), kIOReturnBadArgument);
    cr_assert_eq(set_rate(1ull << 32 | 100), kIOReturnBadArgument, "no truncation to 100");
    cr_assert(log_has("SetRate: 0 Hz is outside 1..10000"), "%s", logbuf.text);
    /* a struct input where none is declared */
    IOUserClientMethodArguments a;
    memset(&a, 0, sizeof(a));
    a.version = kIOUserClientMethodArgumentsCurrentVersion;
    a.scalarInput = in;
    a.scalarInputCount = 1;
    a.structureInput = OSData_WithBytes("xx", 2);
    cr_assert_eq(IOUserClient_HostExternalMethod(at.uc, kUSBSampleSelectorSetRate, &a), kIOReturnBadArgument);
    OSSafeReleaseNULL(a.structureInput);
    /* GetStats: exactly 4 scalars out, nothing in */
    nout = 3;
    cr_assert_eq(call(kUSBSampleSelectorGetStats, NULL, 0, out, &nout), kIOReturnBadArgument);
    nout = 4;
    cr_assert_eq(call(kUSBSampleSelectorGetStats, in, 1, out, &nout), kIOReturnBadArgument);
    /* nothing reached the device */
    uint64_t s[4];
    stats(s);
    cr_assert_eq(s[0], 100, "the rate is unchanged");
    /* memory types and user-client types */
    uint64_t options = 0;
    IOMemoryDescriptor *md = NULL;
    cr_assert_eq(IOUserClient_HostCopyClientMemoryForType(at.uc, 1, &options, &md), kIOReturnBadArgument);
    cr_assert_null(md);
    IOUserClient *other = NULL;
    cr_assert_eq(IOService_HostNewUserClient(at.drv, 1, &other), kIOReturnBadArgument);
    cr_assert_null(other);
    /* a second app gets its own user client over the same queue memory */
    cr_assert_eq(IOService_HostNewUserClient(at.drv, 0, &other), kIOReturnSuccess);
    cr_assert_neq(other, at.uc);
    cr_assert_eq(IOUserClient_HostCopyClientMemoryForType(other, 0, &options, &md), kIOReturnSuccess);
    cr_assert_eq(IOMemoryDescriptor_GetFD(md), IOMemoryDescriptor_GetFD(at.qmem));
    OSSafeReleaseNULL(md);
    stop_driver();
    wait_stopped(&other->service);
    OSSafeReleaseNULL(other);
}

Test(usbsample, stall_is_cleared_and_reading_continues)
{
    const char *const args[] = { "--device", "sensor", "--inject", "stall@5:0x81", NULL };
    start_sensor(args);
    open_user_client();
    usbsample_record recs[20];
    cr_assert_eq(read_records(recs, 20, 5000), 20, "samples continue after the stall\n%s", logbuf.text);
    cr_assert(log_has("ReadComplete failed: kIOUSBPipeStalled"), "%s", logbuf.text);
    cr_assert_not(log_has("ClearStall failed"), "%s", logbuf.text);
    for (size_t i = 1; i < 20; i++)
        cr_assert_gt(recs[i].counter, recs[i - 1].counter);
    stop_driver();
}

Test(usbsample, device_gone_ends_reading_and_stop_still_works)
{
    const char *const args[] = { "--device", "sensor", "--inject", "disconnect@5:0x81", NULL };
    start_sensor(args);
    open_user_client();
    usbsample_record recs[8];
    size_t n = read_records(recs, 8, 1500);
    cr_assert_geq(n, 3, "samples before the disconnect");
    cr_assert_leq(n, 4, "none after it");
    cr_assert(wait_log("reading ends", 3000), "%s", logbuf.text);
    cr_assert(log_has("kIOReturnNoDevice"), "%s", logbuf.text);
    cr_assert_neq(set_rate(200), kIOReturnSuccess, "the device is gone");
    stop_driver();
}

Test(usbsample, malformed_reply_does_not_crash_the_driver)
{
    const char *const args[] = { "--device", "sensor", "--inject", "malformed@4:0x81", NULL };
    start_sensor(args);
    open_user_client();
    usbsample_record recs[8];
    size_t n = read_records(recs, 8, 1500);
    cr_assert_geq(n, 2, "samples before the broken reply");
    cr_assert(wait_log("ReadComplete", 3000), "the broken reply is logged:\n%s", logbuf.text);
    stop_driver();
}

Test(usbsample, start_on_a_device_without_the_endpoint_fails_cleanly)
{
    /* the loopback device has bulk endpoints only */
    usbsample_set_log_sink(log_sink, NULL);
    const char *const args[] = { "--device", "loopback", NULL };
    vusb_start(args);
    at.client = vusb_import("1-1");
    sx_usb_transport tr;
    sx_usbip_client_transport(at.client, &tr);
    cr_assert_eq(IOUSBHostDevice_HostCreate(&tr, kIOUSBHostConnectionSpeedHigh, &at.dev), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostDevice_HostCreateInterface(at.dev, 0, &at.intf), kIOReturnSuccess);
    OSDictionary *props = personality();
    cr_assert_eq(IOService_Instantiate("MyUserUSBInterfaceDriver", props, &at.drv), kIOReturnSuccess);
    OSObject_Release((OSObject *)props);
    kern_return_t r = IOService_HostStart(at.drv, (IOService *)at.intf);
    cr_assert_eq(r, kIOReturnNotFound, "%s", IOReturn_Name(r));
    cr_assert(log_has("finding the interrupt IN endpoint failed: kIOReturnNotFound"), "%s", logbuf.text);
    /* the interface was closed again: another client can open it */
    IOService *other = NULL;
    cr_assert_eq(IOService_Instantiate("IOService", NULL, &other), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_Open(at.intf, other, 0, NULL), kIOReturnSuccess);
    cr_assert_eq(IOUSBHostInterface_Close(at.intf, other, 0), kIOReturnSuccess);
    OSObject_Release((OSObject *)other);
}

Test(usbsample, start_on_a_provider_that_is_not_an_interface_fails)
{
    usbsample_set_log_sink(log_sink, NULL);
    IOService *root = NULL;
    cr_assert_eq(IOService_Instantiate("IOService", NULL, &root), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(root, NULL), kIOReturnSuccess);
    cr_assert_eq(IOService_Instantiate("MyUserUSBInterfaceDriver", NULL, &at.drv), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(at.drv, root), kIOReturnNoDevice);
    cr_assert(log_has("provider is a IOService, not an IOUSBHostInterface"), "%s", logbuf.text);
    IOService_Terminate(root, 0);
    for (int i = 0; i < 500 && IOService_GetState(root) != kIOServiceStateStopped; i++)
        usleep(2000);
    OSObject_Release((OSObject *)root);
}

Test(usbsample, an_app_that_falls_behind_sees_a_gap_not_a_crash)
{
    const char *const args[] = { "--device", "sensor", NULL };
    start_sensor(args);
    open_user_client();
    usbsample_record r;
    cr_assert_eq(read_records(&r, 1, 3000), 1);
    uint64_t before = r.counter;
    /* 10 kHz and nobody reading: the 64 KiB ring (~1800 records) fills in well under a second */
    cr_assert_eq(set_rate(USBSAMPLE_RATE_MAX), kIOReturnSuccess);
    uint64_t s[4];
    uint64_t end = vusb_now_ms() + 5000;
    do {
        usleep(20000);
        stats(s);
    } while (s[2] == 0 && vusb_now_ms() < end);
    cr_assert_gt(s[2], 0, "the driver counts what it could not enqueue");
    cr_assert_eq(set_rate(10), kIOReturnSuccess);
    /* drain: counters strictly increase, and the first record after the overflow reports it */
    uint64_t last = before, missed = 0, n = 0;
    bool gapSeen = false;
    end = vusb_now_ms() + 5000;
    while (!gapSeen && vusb_now_ms() < end) {
        int got = usbsample_queue_next(&at.q, &r);
        cr_assert_geq(got, 0);
        if (!got) {
            usleep(1000);
            continue;
        }
        n++;
        cr_assert_gt(r.counter, last);
        missed += r.missed;
        if (r.missed) {
            gapSeen = true;
            cr_assert_eq(r.counter - last - 1, r.missed, "missed is exactly the counter gap");
        }
        last = r.counter;
    }
    cr_assert(gapSeen, "a record reports the lost samples (read %llu)", (unsigned long long)n);
    stop_driver();
}
