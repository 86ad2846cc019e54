/* The USB provider factory (runtime/src/usb/usb_provider.c) in-process: a Create message built
 * by hand as sysextd sends it (class name, the nub's properties, the imported USB/IP socket as
 * an FD argument), passed through a SOCK_SEQPACKET pair so the descriptor arrives as a driver
 * receives it, then turned into the IOUSBHostInterface / IOUSBHostDevice provider.
 * For SysextTransport = "usbfs" (a real device, no hardware here) the tests hand descriptors
 * that are not usbfs nodes and prove the factory got as far as libusb_wrap_sys_device. */
#include "util/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <sysext/driverkit/DKIPC.h>

#include "runtime/src/usb/usb_host.h"
#include "tests/unit/runtime/rt_test.h"
#include "tests/unit/usb/vusb_harness.h"
#include "util/error.h"

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

enum { WITH_FD = 1, WITH_NUMBER = 2, WITH_BUS = 4, WITH_USBIP_MARK = 8 };

/* Send `m` through a SOCK_SEQPACKET pair into *rx (clears m). */
static void deliver(DKIPCMessage *m, DKIPCMessage *rx)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(DKIPC_Send(sv[0], m), kIOReturnSuccess);
    DKIPCMessage_Clear(m);
    DKIPCError err;
    kern_return_t r = DKIPC_Recv(sv[1], NULL, rx, &err);
    cr_assert_eq(r, kIOReturnSuccess, "%s", err.message);
    close(sv[0]);
    close(sv[1]);
}

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
    if (what & WITH_USBIP_MARK) {
        DKIPCMessage_AddString(&m, "SysextTransport");
        DKIPCMessage_AddString(&m, "usbip");
    }
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
    deliver(&m, rx);
}

/* A Create as sysextd sends it for a real device (hotplug.c): SysextTransport = "usbfs", no
 * USB/IP properties, `fd` (if >= 0) as the FD argument; bInterfaceNumber `number` if >= 0. */
static void make_usbfs_create(const char *cls, int fd, int number, DKIPCMessage *rx)
{
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCreate, 7, 0, 1);
    cr_assert_eq(DKIPCMessage_AddString(&m, cls), kIOReturnSuccess);
    DKIPCMessage_AddString(&m, "idVendor");
    DKIPCMessage_AddU64(&m, 0x1209);
    DKIPCMessage_AddString(&m, "SysextDeviceURL");
    DKIPCMessage_AddString(&m, "usb:001-002");
    DKIPCMessage_AddString(&m, "SysextTransport");
    DKIPCMessage_AddString(&m, "usbfs");
    if (number >= 0) {
        DKIPCMessage_AddString(&m, "bInterfaceNumber");
        DKIPCMessage_AddU64(&m, (uint64_t)number);
    }
    if (fd >= 0)
        cr_assert_eq(DKIPCMessage_AddFD(&m, fd), kIOReturnSuccess);
    deliver(&m, rx);
}

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    size_t n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* rt_usb_provider_create with stderr captured into `err` (NUL-terminated). */
static kern_return_t create_capturing(const char *cls, DKIPCMessage *rx, IOService **svc, char *err,
                                      size_t errlen)
{
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(tmp), STDERR_FILENO), 0);
    kern_return_t r = rt_usb_provider_create(cls, rx, svc);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(err, 1, errlen - 1, tmp);
    err[n] = '\0';
    fclose(tmp);
    return r;
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

Test(provider, usbip_marker_takes_the_usbip_path)
{
    DKIPCMessage rx;
    make_create("IOUSBHostDevice", WITH_FD | WITH_BUS | WITH_USBIP_MARK, 0, &rx);
    IOService *svc = NULL;
    kern_return_t r = rt_usb_provider_create("IOUSBHostDevice", &rx, &svc);
    DKIPCMessage_Clear(&rx);
    cr_assert_eq(r, kIOReturnSuccess, "%s", IOReturn_Name(r));
    OSDictionary *props = NULL;
    cr_assert_eq(IOService_CopyProperties(svc, &props), kIOReturnSuccess);
    OSString *t = OSDictionary_GetString(props, "SysextTransport");
    cr_assert(t && OSString_IsEqualToCString(t, "usbip"));
    OSObject_Release((OSObject *)props);
    OSObject_Release((OSObject *)svc);
}

/* A usbfs Create whose FD is not a usbfs node (no USB here): the factory wraps it with libusb
 * (discovery off), libusb_wrap_sys_device refuses it (LIBUSB_ERROR_IO: USBDEVFS_CONNECTINFO
 * fails) and the Create fails with kIOReturnNoDevice, the libusb error on stderr and in
 * sx_errmsg, and the factory's duplicate of the fd and the session's libusb context (epoll,
 * eventfd, timerfd) closed at once. */
static void refuse_non_usbfs(const char *cls, int number, int fd)
{
    size_t before = open_fds();
    DKIPCMessage rx;
    make_usbfs_create(cls, fd, number, &rx);
    IOService *svc = NULL;
    char err[1024];
    sx_err_clear();
    kern_return_t r = create_capturing(cls, &rx, &svc, err, sizeof(err));
    DKIPCMessage_Clear(&rx);
    cr_assert_eq(r, kIOReturnNoDevice, "%s: %s (stderr: %s)", cls, IOReturn_Name(r), err);
    cr_assert_null(svc);
    cr_assert(strstr(sx_errmsg(), "libusb_wrap_sys_device(fd "), "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), "LIBUSB_ERROR_IO"), "%s", sx_errmsg());
    cr_assert(strstr(err, "usb provider: usbfs device: "), "stderr: %s", err);
    cr_assert(strstr(err, "libusb_wrap_sys_device(fd "), "stderr: %s", err);
    cr_assert(strstr(err, "LIBUSB_ERROR_IO"), "stderr: %s", err);
    cr_assert_eq(open_fds(), before,
                 "the factory's duplicate of the fd and its libusb context are gone");
}

Test(provider, usbfs_create_reaches_the_wrap_call)
{
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(null_fd, 0);
    refuse_non_usbfs("IOUSBHostDevice", -1, null_fd);
    refuse_non_usbfs("IOUSBHostInterface", 0, null_fd);
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    refuse_non_usbfs("IOUSBHostDevice", -1, p[0]);
    close(p[0]);
    close(p[1]);
    close(null_fd);
}

Test(provider, usbfs_refusals)
{
    DKIPCMessage rx;
    IOService *svc = NULL;
    make_usbfs_create("IOUSBHostDevice", -1, -1, &rx);
    cr_assert_eq(rt_usb_provider_create("IOUSBHostDevice", &rx, &svc), kIOReturnBadArgument,
                 "usbfs without an FD");
    DKIPCMessage_Clear(&rx);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(null_fd, 0);
    make_usbfs_create("IOUSBHostInterface", null_fd, -1, &rx);
    close(null_fd);
    cr_assert_eq(rt_usb_provider_create("IOUSBHostInterface", &rx, &svc), kIOReturnBadArgument,
                 "usbfs interface without bInterfaceNumber");
    DKIPCMessage_Clear(&rx);
    cr_assert_null(svc);
}

/* The same path inside the driver's second seccomp stage (open/openat/socket refused): libusb
 * with discovery off needs none of them to get to the wrap, which then fails on /dev/null as
 * outside the sandbox (an EPERM from a needed syscall would show as another code or error). */
Test(provider, usbfs_create_under_the_stage2_sandbox)
{
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(null_fd, 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (DKDriverSandboxStage2() != kIOReturnSuccess)
            _exit(10);
        errno = 0;
        if (open("/dev/null", O_RDONLY) >= 0 || errno != EPERM)
            _exit(11); /* the stage is not in force */
        DKIPCMessage rx;
        make_usbfs_create("IOUSBHostDevice", null_fd, -1, &rx);
        IOService *svc = NULL;
        kern_return_t r = rt_usb_provider_create("IOUSBHostDevice", &rx, &svc);
        DKIPCMessage_Clear(&rx);
        if (r != kIOReturnNoDevice)
            _exit(12);
        if (!strstr(sx_errmsg(), "libusb_wrap_sys_device(fd ") || !strstr(sx_errmsg(), "LIBUSB_ERROR_IO"))
            _exit(13);
        _exit(0);
    }
    close(null_fd);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "status %#x", st);
    cr_assert_eq(WEXITSTATUS(st), 0,
                 "10: no stage 2, 11: open not refused, 12: not kIOReturnNoDevice, 13: no libusb error");
}
