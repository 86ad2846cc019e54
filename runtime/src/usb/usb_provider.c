/* Provider factories for the USB nubs sysextd hands a driver (DKIPC_RegisterProviderFactory):
 * "IOUSBHostDevice" and "IOUSBHostInterface".
 *
 * The Create message (DKIPC.h) carries [0] the class name, then the nub's properties as pairs
 * STRING key + U64|STRING|BYTES value, then FD arguments. For a USB/IP device the FD is the
 * imported connection, already in the URB phase (sysextd did the import and read the
 * descriptors, then stopped using it); the properties USBIPBusNum / USBIPDevNum / USBIPSpeed /
 * USBIPBusID describe it. The factory builds the USB/IP client and its transport in the driver
 * process, the device nub over it (IOUSBHostDevice_HostCreate) and, for an interface,
 * IOUSBHostDevice_HostCreateInterface(bInterfaceNumber). The nub's properties are set on the
 * provider (IOService_SetProperties) so the driver reads idVendor & co. as on macOS.
 *
 * The nub's "SysextTransport" property says which kind of descriptor the FD is: absent (sysextd
 * leaves USB/IP nubs unmarked: their Create has no argument to spare) or "usbip" for the USB/IP
 * connection above, "usbfs" for a real device whose usbfs node sysextd opened
 * (sysextd/hotplug.c). For usbfs the factory wraps
 * the descriptor with libusb (a context of its own with device discovery off, LIBUSB_OPTION_NO_DEVICE_
 * DISCOVERY: libusb opens nothing; libusb_wrap_sys_device only reads the descriptors and
 * issues ioctls on the fd it is given), builds the libusb transport over it and then takes
 * the same IOUSBHostDevice_HostCreate / HostCreateInterface path; for an interface it claims
 * the interface (detaching a kernel driver bound to it). When the wrap fails (the fd is not a
 * usbfs device node) the Create fails with kIOReturnNoDevice (kIOReturnNotPermitted for
 * LIBUSB_ERROR_ACCESS), a line naming libusb's error goes to stderr and the thread's sx_errmsg
 * keeps it ("libusb_wrap_sys_device(fd N): LIBUSB_ERROR_IO ...").
 *
 * The client (or libusb device) and its transport live as long as the process (a driver
 * process serves one provider; the host ends it when the device goes). */
#include "util/common.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>
#include <sysext/driverkit/DriverKit.h>

#include "usb/libusb_backend.h"
#include "usb/usbip_client.h"
#include "usb_host.h"
#include "util/error.h"

/* Registered as built-ins by ipc/ipc_provider.c (a constructor here would be dropped by a
 * static link of the runtime). */

typedef struct usb_session {
    sx_usbip_client *client; /* USB/IP, or */
    sx_libusb *lusb;         /* usbfs: its own libusb context (no discovery; its events are
                              * handled only by this device's event thread), */
    sx_libusb_dev *ldev;     /* the wrapped device (over lfd) */
    int lfd;
    sx_usb_transport transport;
    IOUSBHostDevice *device;
} usb_session;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static usb_session g_sessions[8];

static bool arg_key(const DKIPCArg *a, const char *key)
{
    size_t n = strlen(key);
    size_t len = a->length;
    if (len && a->data[len - 1] == '\0')
        len--;
    return a->type == kDKIPCArgString && len == n && !memcmp(a->data, key, n);
}

/* The value after the STRING key `key` among the property pairs (args 1..), or NULL. */
static const DKIPCArg *prop(const DKIPCMessage *m, const char *key)
{
    for (uint32_t i = 1; i + 1 < m->argCount; i += 2) {
        if (m->args[i].type != kDKIPCArgString)
            break; /* the FD arguments */
        if (arg_key(&m->args[i], key))
            return &m->args[i + 1];
    }
    return NULL;
}

static bool prop_u64(const DKIPCMessage *m, const char *key, uint64_t *out)
{
    const DKIPCArg *a = prop(m, key);
    if (!a || a->type != kDKIPCArgU64)
        return false;
    *out = a->value;
    return true;
}

static bool prop_is(const DKIPCMessage *m, const char *key, const char *value)
{
    const DKIPCArg *a = prop(m, key);
    return a && arg_key(a, value);
}

/* The first FD argument's descriptor, or -1. */
static int create_fd(const DKIPCMessage *m)
{
    for (uint32_t i = 1; i < m->argCount; i++)
        if (m->args[i].type == kDKIPCArgFD && m->args[i].value < m->fdCount)
            return m->fds[m->args[i].value];
    return -1;
}

static uint8_t speed_of(uint64_t linux_speed)
{
    switch (linux_speed) {
    case 1: return kIOUSBHostConnectionSpeedLow;
    case 2: return kIOUSBHostConnectionSpeedFull;
    case 3: return kIOUSBHostConnectionSpeedHigh;
    case 5: return kIOUSBHostConnectionSpeedSuper;
    case 6: return kIOUSBHostConnectionSpeedSuperPlus;
    default: return kIOUSBHostConnectionSpeedFull;
    }
}

/* The nub's properties as an OSDictionary on `svc`. */
static kern_return_t set_props(IOService *svc, const DKIPCMessage *m)
{
    OSDictionary *d = OSDictionary_WithCapacity(16);
    if (!d)
        return kIOReturnNoMemory;
    for (uint32_t i = 1; i + 1 < m->argCount; i += 2) {
        const DKIPCArg *k = &m->args[i], *v = &m->args[i + 1];
        if (k->type != kDKIPCArgString)
            break;
        char key[128];
        size_t kl = k->length < sizeof(key) - 1 ? k->length : sizeof(key) - 1;
        memcpy(key, k->data, kl);
        key[kl] = '\0';
        if (v->type == kDKIPCArgU64) {
            OSDictionary_SetNumberValue(d, key, v->value);
        } else if (v->type == kDKIPCArgString) {
            char *s = strndup((const char *)v->data, v->length);
            if (s)
                OSDictionary_SetStringValue(d, key, s);
            free(s);
        } else if (v->type == kDKIPCArgBytes) {
            OSData *data = OSData_WithBytes(v->data, v->length);
            if (data) {
                OSDictionary_SetObject(d, key, (OSObject *)data);
                OSObject_Release((OSObject *)data);
            }
        }
    }
    kern_return_t r = IOService_SetProperties(svc, d);
    OSObject_Release((OSObject *)d);
    return r;
}

static void session_end(usb_session *s)
{
    if (s->device) {
        IOUSBHostDevice_HostDetach(s->device);
        OSObject_Release((OSObject *)s->device);
    }
    sx_usbip_client_free(s->client);
    sx_libusb_dev_free(s->ldev); /* before closing the fd it wraps */
    if (s->ldev)
        close(s->lfd);
    sx_libusb_free(s->lusb);
    memset(s, 0, sizeof(*s));
}

/* A free session slot (g_lock held), or NULL. */
static usb_session *session_slot(void)
{
    for (size_t i = 0; i < SX_ARRAY_SIZE(g_sessions); i++)
        if (!g_sessions[i].client && !g_sessions[i].lusb)
            return &g_sessions[i];
    return NULL;
}

static kern_return_t kr_of_wrap(int code)
{
    switch (code) {
    case SYSEXT_EPERM: return kIOReturnNotPermitted;
    case SYSEXT_ENOMEM: return kIOReturnNoMemory;
    case SYSEXT_EINVAL: return kIOReturnBadArgument;
    default: return kIOReturnNoDevice;
    }
}

/* The device over the Create's usbfs descriptor, wrapped by libusb (discovery off); for an
 * interface (`number` >= 0) that interface claimed. */
static kern_return_t usbfs_device(DKIPCMessage *m, int number, IOUSBHostDevice **out)
{
    int fd = create_fd(m);
    if (fd < 0)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&g_lock);
    kern_return_t r = kIOReturnSuccess;
    usb_session *s = session_slot();
    if (!s) {
        r = kIOReturnNoResources;
        goto out;
    }
    int e = sx_libusb_new(&s->lusb, SX_LIBUSB_NO_DISCOVERY);
    if (e < 0) {
        fprintf(stderr, "usb provider: usbfs device: %s\n", sx_errmsg());
        s->lusb = NULL;
        r = e == SYSEXT_ENOMEM ? kIOReturnNoMemory : kIOReturnError;
        goto out;
    }
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* the message closes its copy */
    if (own < 0) {
        session_end(s);
        r = kIOReturnNoResources;
        goto out;
    }
    e = sx_libusb_wrap(s->lusb, own, &s->ldev);
    if (e < 0) {
        fprintf(stderr, "usb provider: usbfs device: %s\n", sx_errmsg());
        s->ldev = NULL;
        close(own);
        session_end(s); /* leaves the thread's error message as it is */
        r = kr_of_wrap(e);
        goto out;
    }
    s->lfd = own;
    if (number >= 0 && (e = sx_libusb_dev_claim(s->ldev, (uint8_t)number)) < 0) {
        fprintf(stderr, "usb provider: usbfs device: %s\n", sx_errmsg());
        r = e == SYSEXT_EBUSY ? kIOReturnExclusiveAccess : kr_of_wrap(e);
        session_end(s);
        goto out;
    }
    sx_libusb_dev_transport(s->ldev, &s->transport);
    /* libusb_speed (1 low .. 5 super+) to the USB/IP numbering speed_of takes */
    static const uint8_t speeds[] = {0, 1, 2, 3, 5, 6};
    uint8_t ls = sx_libusb_dev_speed(s->ldev);
    r = IOUSBHostDevice_HostCreate(&s->transport, speed_of(ls < sizeof(speeds) ? speeds[ls] : 0),
                                   &s->device);
    if (r != kIOReturnSuccess) {
        s->device = NULL;
        session_end(s);
        goto out;
    }
    OSObject_Retain((OSObject *)s->device); /* the session's reference */
    *out = s->device;
out:
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* The device over the Create's USB/IP descriptor (the session is kept for the process). */
static kern_return_t usbip_device(DKIPCMessage *m, IOUSBHostDevice **out)
{
    uint64_t bus = 0, dev = 0, speed = 0;
    int fd = create_fd(m);
    if (fd < 0 || !prop_u64(m, "USBIPBusNum", &bus) || !prop_u64(m, "USBIPDevNum", &dev) ||
        bus > UINT16_MAX || dev > UINT16_MAX)
        return kIOReturnBadArgument;
    prop_u64(m, "USBIPSpeed", &speed);
    sx_usbip_device info;
    memset(&info, 0, sizeof(info));
    info.busnum = (uint32_t)bus;
    info.devnum = (uint32_t)dev;
    info.speed = (uint32_t)speed;
    const DKIPCArg *b = prop(m, "USBIPBusID");
    if (b && b->type == kDKIPCArgString) {
        size_t n = b->length < sizeof(info.busid) - 1 ? b->length : sizeof(info.busid) - 1;
        memcpy(info.busid, b->data, n);
        info.busid[n] = '\0';
    }
    pthread_mutex_lock(&g_lock);
    usb_session *s = session_slot();
    if (!s) {
        pthread_mutex_unlock(&g_lock);
        return kIOReturnNoResources;
    }
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* the message closes its copy */
    if (own < 0) {
        pthread_mutex_unlock(&g_lock);
        return kIOReturnNoResources;
    }
    if (sx_usbip_client_new(&s->client, own, &info) < 0) { /* closes `own` on failure */
        s->client = NULL;
        pthread_mutex_unlock(&g_lock);
        return kIOReturnNoMemory;
    }
    sx_usbip_client_transport(s->client, &s->transport);
    kern_return_t r = IOUSBHostDevice_HostCreate(&s->transport, speed_of(speed), &s->device);
    if (r != kIOReturnSuccess) {
        sx_usbip_client_free(s->client);
        memset(s, 0, sizeof(*s));
        pthread_mutex_unlock(&g_lock);
        return r;
    }
    OSObject_Retain((OSObject *)s->device); /* the session's reference */
    *out = s->device;
    pthread_mutex_unlock(&g_lock);
    return kIOReturnSuccess;
}

kern_return_t rt_usb_provider_create(const char *className, DKIPCMessage *create, IOService **out)
{
    if (!className || !create || !out)
        return kIOReturnBadArgument;
    *out = NULL;
    bool is_dev = !strcmp(className, "IOUSBHostDevice");
    if (!is_dev && strcmp(className, "IOUSBHostInterface"))
        return kIOReturnUnsupported;
    uint64_t number = 0;
    if (!is_dev && (!prop_u64(create, "bInterfaceNumber", &number) || number > 255))
        return kIOReturnBadArgument;
    IOUSBHostDevice *dev = NULL;
    kern_return_t r = prop_is(create, "SysextTransport", "usbfs")
                          ? usbfs_device(create, is_dev ? -1 : (int)number, &dev)
                          : usbip_device(create, &dev);
    if (r != kIOReturnSuccess)
        return r;
    IOService *svc = (IOService *)dev;
    if (!is_dev) {
        IOUSBHostInterface *intf = NULL;
        r = IOUSBHostDevice_HostCreateInterface(dev, (uint8_t)number, &intf);
        OSObject_Release((OSObject *)dev);
        if (r != kIOReturnSuccess)
            return r;
        svc = (IOService *)intf;
    }
    set_props(svc, create);
    *out = svc;
    return kIOReturnSuccess;
}

void rt_usb_provider_reset(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < SX_ARRAY_SIZE(g_sessions); i++) {
        usb_session *s = &g_sessions[i];
        if (s->client || s->lusb)
            session_end(s);
    }
    pthread_mutex_unlock(&g_lock);
}
