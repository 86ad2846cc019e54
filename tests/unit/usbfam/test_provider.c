/* The USB provider factory (runtime/src/usb/usb_provider.c) in-process: a Create message built
 * by hand as sysextd sends it (class name, the nub's properties, the imported USB/IP socket as
 * an FD argument), passed through a SOCK_SEQPACKET pair so the descriptor arrives as a driver
 * receives it, then turned into the IOUSBHostInterface / IOUSBHostDevice provider. */
#include "util/common.h"

#include <sys/socket.h>

#include <sysext/driverkit/DKIPC.h>

#include "runtime/src/usb/usb_host.h"
#include "tests/unit/runtime/rt_test.h"
#include "tests/unit/usb/vusb_harness.h"

static sx_usbip_client *g_client;

static void harness_unused(void) __attribute__((unused));
static void harness_unused(void)
{
    (void)run_for;
    (void)run_until;
}

static void fini(void)
{
    rt_usb_provider_reset();
    sx_usbip_client_free(g_client);
    g_client = NULL;
    vusb_stop();
}

TestSuite(provider, .fini = fini, .timeout = 60);

enum { WITH_FD = 1, WITH_NUMBER = 2, WITH_BUS = 4 };

/* Import 1-1 (the test plays sysextd) and deliver a Create for `cls` to *rx. */
static void make_create(const char *cls, unsigned what, uint64_t number, DKIPCMessage *rx)
{
    if (!g_client) {
        const char *const args[] = {"--device", "sensor", NULL};
        vusb_start(args);
        g_client = vusb_import("1-1");
    }
    const sx_usbip_device *dev = sx_usbip_client_device(g_client);
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCreate, 7, 0, 1);
    cr_assert_eq(DKIPCMessage_AddString(&m, cls), kIOReturnSuccess);
    DKIPCMessage_AddString(&m, "idVendor");
    DKIPCMessage_AddU64(&m, 0x1209);
    DKIPCMessage_AddString(&m, "idProduct");
    DKIPCMessage_AddU64(&m, 1);
    DKIPCMessage_AddString(&m, "SysextDeviceURL");
    DKIPCMessage_AddString(&m, "usbip://127.0.0.1/1-1");
    if (what & WITH_BUS) {
        DKIPCMessage_AddString(&m, "USBIPBusNum");
        DKIPCMessage_AddU64(&m, dev->busnum);
        DKIPCMessage_AddString(&m, "USBIPDevNum");
        DKIPCMessage_AddU64(&m, dev->devnum);
        DKIPCMessage_AddString(&m, "USBIPSpeed");
        DKIPCMessage_AddU64(&m, dev->speed);
        DKIPCMessage_AddString(&m, "USBIPBusID");
        DKIPCMessage_AddString(&m, dev->busid);
    }
    if (what & WITH_NUMBER) {
        DKIPCMessage_AddString(&m, "bInterfaceNumber");
        DKIPCMessage_AddU64(&m, number);
    }
    if (what & WITH_FD)
        cr_assert_eq(DKIPCMessage_AddFD(&m, sx_usbip_client_fd(g_client)), kIOReturnSuccess);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(DKIPC_Send(sv[0], &m), kIOReturnSuccess);
    DKIPCMessage_Clear(&m);
    DKIPCError err;
    kern_return_t r = DKIPC_Recv(sv[1], NULL, rx, &err);
    cr_assert_eq(r, kIOReturnSuccess, "%s", err.message);
    close(sv[0]);
    close(sv[1]);
}

Test(provider, interface_from_a_create_with_the_imported_socket)
{
    DKIPCMessage rx;
    make_create("IOUSBHostInterface", WITH_FD | WITH_NUMBER | WITH_BUS, 0, &rx);
    IOService *svc = NULL;
    kern_return_t r = rt_usb_provider_create("IOUSBHostInterface", &rx, &svc);
    DKIPCMessage_Clear(&rx); /* closes the received copy: the factory keeps its own */
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
    cr_assert(OSObject_IsKindOf((OSObject *)svc, &IOUSBHostInterface_Class));
    IOUSBHostInterface *intf = (IOUSBHostInterface *)svc;
    cr_assert_eq(IOUSBHostInterface_GetInterfaceNumber(intf), 0);
    /* The descriptors came over the handed socket (HostCreate reads them). */
    IOUSBHostDevice *dev = NULL;
    cr_assert_eq(IOUSBHostInterface_CopyDevice(intf, &dev), kIOReturnSuccess);
    const IOUSBDeviceDescriptor *dd = IOUSBHostDevice_CopyDeviceDescriptor(dev);
    cr_assert_not_null(dd);
    cr_assert_eq(dd->idVendor, 0x1209);
    cr_assert_eq(dd->idProduct, 1);
    IOUSBHostFreeDescriptor(dd);
    uint8_t speed = 0;
    cr_assert_eq(IOUSBHostDevice_GetSpeed(dev, &speed), kIOReturnSuccess);
    cr_assert_eq(speed, kIOUSBHostConnectionSpeedHigh);
    OSObject_Release((OSObject *)dev);
    /* The nub's properties are the provider's. */
    OSDictionary *props = NULL;
    cr_assert_eq(IOService_CopyProperties(svc, &props), kIOReturnSuccess);
    uint64_t v = 0;
    cr_assert(OSDictionary_GetNumberValue(props, "idVendor", &v));
    cr_assert_eq(v, 0x1209);
    cr_assert(OSDictionary_GetNumberValue(props, "bInterfaceNumber", &v));
    cr_assert_eq(v, 0);
    OSObject_Release((OSObject *)props);
    OSObject_Release((OSObject *)svc);
}

Test(provider, device_from_a_create)
{
    DKIPCMessage rx;
    make_create("IOUSBHostDevice", WITH_FD | WITH_BUS, 0, &rx);
    IOService *svc = NULL;
    kern_return_t r = rt_usb_provider_create("IOUSBHostDevice", &rx, &svc);
    DKIPCMessage_Clear(&rx);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
    cr_assert(OSObject_IsKindOf((OSObject *)svc, &IOUSBHostDevice_Class));
    OSObject_Release((OSObject *)svc);
}

Test(provider, refusals)
{
    DKIPCMessage rx;
    IOService *svc = NULL;
    make_create("IOUSBHostInterface", WITH_NUMBER | WITH_BUS, 0, &rx);
    cr_assert_eq(rt_usb_provider_create("IOUSBHostInterface", &rx, &svc), kIOReturnBadArgument,
                 "no FD");
    DKIPCMessage_Clear(&rx);
    make_create("IOUSBHostInterface", WITH_FD | WITH_BUS, 0, &rx);
    cr_assert_eq(rt_usb_provider_create("IOUSBHostInterface", &rx, &svc), kIOReturnBadArgument,
                 "no bInterfaceNumber");
    DKIPCMessage_Clear(&rx);
    make_create("IOUSBHostDevice", WITH_FD, 0, &rx);
    cr_assert_eq(rt_usb_provider_create("IOUSBHostDevice", &rx, &svc), kIOReturnBadArgument,
                 "no USBIPBusNum");
    cr_assert_eq(rt_usb_provider_create("IOFooDevice", &rx, &svc), kIOReturnUnsupported);
    DKIPCMessage_Clear(&rx);
    make_create("IOUSBHostInterface", WITH_FD | WITH_NUMBER | WITH_BUS, 5, &rx);
    cr_assert_eq(rt_usb_provider_create("IOUSBHostInterface", &rx, &svc), kIOReturnNotFound,
                 "no interface 5");
    DKIPCMessage_Clear(&rx);
    cr_assert_null(svc);
}
