/* USB/IP devices through the daemon: device-attach / device-detach / device-list, and the
 * ioreg message.
 *
 * Attach is synchronous on the event loop: the connect and the import each wait at most
 * ATTACH_TIMEOUT_MS, the descriptor reads CONTROL_TIMEOUT_MS each (a device that does not answer
 * costs the loop a few seconds at worst, once). The daemon reads the device and active
 * configuration descriptors (and the three strings) over the imported connection, publishes the
 * IOUSBHostDevice nub and its IOUSBHostInterface nubs, and rematches. From then on the daemon
 * never reads or writes that connection again: the driver started on the device (or one of its
 * interfaces) gets a duplicate of the socket with its provider's Create and owns the USB/IP
 * session. The daemon keeps its descriptor only to notice the connection going away
 * (EPOLLRDHUP/EPOLLHUP, no EPOLLIN: it never consumes the driver's data) and to end the
 * session on detach (shutdown(2) reaches the driver's duplicate too).
 *
 * The nubs carry USBIPBusNum, USBIPDevNum, USBIPSpeed and USBIPBusID besides the registry
 * properties (the real devices hotplug.c publishes through sxd_usb_add carry SysextTransport =
 * "usbfs" instead), so the driver process can build its client on the descriptor (the devid of every
 * CMD_SUBMIT is busnum << 16 | devnum). */
#include "util/common.h"

#include <time.h>

#include <inttypes.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/devices.h"
#include "sysextd/proto.h"
#include "usb/libusb_backend.h"
#include "usb/usbip_client.h"

#define ATTACH_TIMEOUT_MS 2000
#define CONTROL_TIMEOUT_MS 1000
#define MAX_CONFIG_LEN 4096

/* usbip://HOST[:PORT]/BUSID or HOST[:PORT] (remote lists). IPv6 hosts in brackets. */
static int parse_hostport(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port,
                          const char *what)
{
    const char *colon = NULL;
    const char *h = s;
    size_t hl = len;
    if (len && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb)
            return sx_err(SYSEXT_EINVAL, "%s: '[' without ']'", what);
        h = s + 1;
        hl = (size_t)(rb - s - 1);
        if ((size_t)(rb - s) + 1 < len) {
            if (rb[1] != ':')
                return sx_err(SYSEXT_EINVAL, "%s: expected ':' after ']'", what);
            colon = rb + 1;
        }
    } else {
        colon = memchr(s, ':', len);
        if (colon)
            hl = (size_t)(colon - s);
    }
    if (!hl || hl >= hostlen)
        return sx_err(SYSEXT_EINVAL, "%s: missing or too long host", what);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = SX_USBIP_DEFAULT_PORT;
    if (colon) {
        size_t pl = len - (size_t)(colon + 1 - s);
        unsigned long v = 0;
        if (!pl || pl > 5)
            return sx_err(SYSEXT_EINVAL, "%s: bad port", what);
        for (size_t i = 0; i < pl; i++) {
            char c = colon[1 + i];
            if (c < '0' || c > '9')
                return sx_err(SYSEXT_EINVAL, "%s: bad port", what);
            v = v * 10 + (unsigned long)(c - '0');
        }
        if (!v || v > 65535)
            return sx_err(SYSEXT_EINVAL, "%s: port out of range", what);
        *port = (uint16_t)v;
    }
    return 0;
}

int sxd_usb_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    return parse_hostport(s, strlen(s), host, hostlen, port, s);
}

int sxd_usb_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *busid,
                      size_t busidlen)
{
    static const char pfx[] = "usbip://";
    if (strncmp(url, pfx, sizeof(pfx) - 1))
        return sx_err(SYSEXT_EINVAL, "'%s': expected usbip://HOST[:PORT]/BUSID", url);
    const char *s = url + sizeof(pfx) - 1;
    const char *slash = strchr(s, '/');
    if (!slash)
        return sx_err(SYSEXT_EINVAL, "'%s': no /BUSID", url);
    int rc = parse_hostport(s, (size_t)(slash - s), host, hostlen, port, url);
    if (rc < 0)
        return rc;
    const char *b = slash + 1;
    size_t bl = strlen(b);
    if (!bl || bl >= busidlen || bl > SX_USBIP_BUSID_LEN)
        return sx_err(SYSEXT_EINVAL, "'%s': missing or too long bus id", url);
    for (size_t i = 0; i < bl; i++)
        if (!((b[i] >= '0' && b[i] <= '9') || b[i] == '-' || b[i] == '.' || b[i] == ':'))
            return sx_err(SYSEXT_EINVAL, "'%s': bus id may hold digits, '-', '.', ':'", url);
    memcpy(busid, b, bl + 1);
    return 0;
}

static uint8_t speed_of(uint32_t usbip_speed)
{
    /* Linux enum usb_device_speed -> kUSBHostSpeed*. */
    switch (usbip_speed) {
    case 1: return SX_USB_SPEED_LOW;
    case 2: return SX_USB_SPEED_FULL;
    case 3: return SX_USB_SPEED_HIGH;
    case 5: return SX_USB_SPEED_SUPER;
    case 6: return SX_USB_SPEED_SUPER_PLUS;
    default: return SX_USB_SPEED_FULL;
    }
}

static int get_descriptor(sx_usbip_client *c, uint16_t value, uint16_t index, uint8_t *buf,
                          uint16_t len, uint32_t *got, const char *what)
{
    sx_usb_status st = SX_USB_COMPLETED;
    int rc = sx_usbip_client_control(c, 0x80, 6, value, index, buf, len, CONTROL_TIMEOUT_MS, got,
                                     &st);
    if (rc < 0)
        return sx_err_prefix(rc, "reading the %s descriptor", what);
    if (st != SX_USB_COMPLETED)
        return sx_err(SYSEXT_EIO, "reading the %s descriptor: %s", what, sx_usb_status_name(st));
    return 0;
}

/* String descriptor `index` (US English) as ASCII ('?' for the rest); NULL if absent. */
static char *get_string(sx_usbip_client *c, uint8_t index)
{
    if (!index)
        return NULL;
    uint8_t buf[255];
    uint32_t got = 0;
    if (get_descriptor(c, (uint16_t)(0x0300 | index), 0x0409, buf, sizeof(buf), &got, "string") <
            0 ||
        got < 2 || buf[1] != 3) {
        sx_err_clear();
        return NULL;
    }
    size_t n = buf[0] < got ? buf[0] : got;
    char *s = calloc(n / 2 + 1, 1);
    if (!s)
        return NULL;
    size_t k = 0;
    for (size_t i = 2; i + 1 < n; i += 2) {
        uint16_t u = (uint16_t)(buf[i] | buf[i + 1] << 8);
        s[k++] = u >= 0x20 && u < 0x7f ? (char)u : '?';
    }
    return s;
}

static void set_usbip_props(plist_t props, const sx_usbip_device *dev)
{
    sxd_dict_set_uint(props, "USBIPBusNum", dev->busnum);
    sxd_dict_set_uint(props, "USBIPDevNum", dev->devnum);
    sxd_dict_set_uint(props, "USBIPSpeed", dev->speed);
    sxd_dict_set_str(props, "USBIPBusID", dev->busid);
}

static int remove_device(sxd_daemon *d, size_t slot, const char *why);

static ssize_t dev_slot(sxd_services *sv, uint64_t nub_id)
{
    for (size_t i = 0; i < SXD_MAX_DEVICES; i++)
        if (sv->devs[i] && sv->devs[i]->nub_id == nub_id)
            return (ssize_t)i;
    return -1;
}

static void dev_free(sxd_daemon *d, size_t slot)
{
    sxd_usbdev *u = d->services->devs[slot];
    if (!u)
        return;
    if (u->watched && d->epfd > 0)
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, u->fd, NULL);
    if (u->fd >= 0)
        shutdown(u->fd, SHUT_RDWR); /* ends the session for the driver's duplicate too */
    if (u->client)
        sx_usbip_client_free(u->client); /* closes u->fd */
    else if (u->fd >= 0)
        close(u->fd);
    free(u->url);
    free(u);
    d->services->devs[slot] = NULL;
}

int sxd_usb_add(sxd_daemon *d, const sx_usb_device_info *info, const char *url,
                sx_usbip_client *client, int fd, uint64_t *nub_id)
{
    sxd_services *sv = d->services;
    size_t slot = 0;
    while (slot < SXD_MAX_DEVICES && sv->devs[slot])
        slot++;
    sxd_usbdev *u = slot < SXD_MAX_DEVICES ? calloc(1, sizeof(*u)) : NULL;
    char *urlc = u ? strdup(url) : NULL;
    if (!urlc) {
        free(u);
        if (client)
            sx_usbip_client_free(client);
        else if (fd >= 0)
            close(fd);
        return slot < SXD_MAX_DEVICES ? sx_err(SYSEXT_ENOMEM, "out of memory")
                                      : sx_err(SYSEXT_ELIMIT, "more than %d attached devices",
                                               SXD_MAX_DEVICES);
    }
    u->url = urlc;
    u->client = client;
    u->fd = fd;
    sv->devs[slot] = u;
    sx_nub *nub = NULL;
    int rc = sx_registry_add_usb_device(d->registry, info, &nub);
    if (rc < 0) {
        dev_free(d, slot);
        return sx_err_prefix(rc, "%s", url);
    }
    u->nub_id = nub->id;
    /* Without a USB/IP client the FD is the usbfs node hotplug.c opened: tell the driver's
     * provider factory (runtime/src/usb/usb_provider.c) to wrap it with libusb. Set before the
     * rematch sends a Create. USB/IP nubs stay unmarked: their Create already fills the 32
     * arguments of a DKIPC message (the factory reads a missing marker as USB/IP). */
    if (!client) {
        sxd_dict_set_str(nub->props, "SysextTransport", "usbfs");
        for (size_t i = 0; i < nub->n_children; i++)
            sxd_dict_set_str(nub->children[i]->props, "SysextTransport", "usbfs");
    }
    if (client) {
        const sx_usbip_device *dev = sx_usbip_client_device(client);
        set_usbip_props(nub->props, dev);
        for (size_t i = 0; i < nub->n_children; i++)
            set_usbip_props(nub->children[i]->props, dev);
    }
    sxd_dict_set_str(nub->props, "SysextDeviceURL", url);
    if (d->epfd > 0) {
        struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = SXD_TAG_DEVICE0 + slot};
        u->watched = epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
    }
    *nub_id = nub->id;
    fprintf(stderr, "sysextd: attached %s as %#" PRIx64 " (%04x:%04x)\n", url, nub->id,
            info->device->idVendor, info->device->idProduct);
    sxd_services_rematch(d);
    return 0;
}

int sxd_usb_attach(sxd_daemon *d, const char *url, uint64_t *nub_id)
{
    char host[256], busid[SX_USBIP_BUSID_LEN + 1];
    uint16_t port = 0;
    int rc = sxd_usb_parse_url(url, host, sizeof(host), &port, busid, sizeof(busid));
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < SXD_MAX_DEVICES; i++)
        if (d->services->devs[i] && !strcmp(d->services->devs[i]->url, url))
            return sx_err(SYSEXT_EEXISTS, "%s is already attached as %#" PRIx64, url,
                          d->services->devs[i]->nub_id);
    sx_usbip_client *c = NULL;
    if ((rc = sx_usbip_import(&c, host, port, busid, ATTACH_TIMEOUT_MS)) < 0)
        return sx_err_prefix(rc, "%s", url);
    uint8_t ddesc[18];
    uint8_t *cfg = NULL;
    char *mfr = NULL, *prod = NULL, *serial = NULL;
    uint32_t got = 0;
    sx_usb_device_descriptor dd;
    if ((rc = get_descriptor(c, 0x0100, 0, ddesc, sizeof(ddesc), &got, "device")) < 0)
        goto fail;
    if ((rc = sx_usb_parse_device_descriptor(ddesc, got, &dd)) < 0)
        goto fail;
    uint8_t head[9];
    if ((rc = get_descriptor(c, 0x0200, 0, head, sizeof(head), &got, "configuration")) < 0)
        goto fail;
    if (got < 4) {
        rc = sx_err(SYSEXT_EFORMAT, "configuration descriptor: %u bytes", (unsigned)got);
        goto fail;
    }
    uint16_t total = (uint16_t)(head[2] | head[3] << 8);
    if (total < 9 || total > MAX_CONFIG_LEN) {
        rc = sx_err(SYSEXT_EFORMAT, "configuration descriptor: wTotalLength %u out of 9..%u",
                    total, MAX_CONFIG_LEN);
        goto fail;
    }
    if (!(cfg = malloc(total))) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = get_descriptor(c, 0x0200, 0, cfg, total, &got, "configuration")) < 0)
        goto fail;
    mfr = get_string(c, dd.iManufacturer);
    prod = get_string(c, dd.iProduct);
    serial = get_string(c, dd.iSerialNumber);
    if (sx_usbip_client_gone(c)) {
        rc = sx_err(SYSEXT_EIO, "%s", sx_usbip_client_error(c));
        goto fail;
    }
    const sx_usbip_device *dev = sx_usbip_client_device(c);
    sx_usb_device_info info = {
        .device = &dd,
        .config = cfg,
        .config_len = got,
        .location_id = d->services->next_location,
        .address = (uint8_t)dev->devnum,
        .speed = speed_of(dev->speed),
        .manufacturer = mfr,
        .product = prod,
        .serial = serial,
    };
    d->services->next_location += 0x00010000u;
    rc = sxd_usb_add(d, &info, url, c, sx_usbip_client_fd(c), nub_id);
    c = NULL; /* taken, freed on failure too */
fail:
    if (rc < 0) {
        sx_err_prefix(rc, "%s", url);
        fprintf(stderr, "sysextd: attaching %s failed: %s\n", url, sx_errmsg());
    }
    sx_usbip_client_free(c);
    free(cfg);
    free(mfr);
    free(prod);
    free(serial);
    return rc;
}

/* The attached device whose nub is `nub_id` or one of its interfaces. */
static ssize_t dev_slot_of_nub(sxd_daemon *d, uint64_t nub_id)
{
    ssize_t slot = dev_slot(d->services, nub_id);
    sx_nub *nub = slot < 0 ? sx_registry_find(d->registry, nub_id) : NULL;
    if (nub && nub->parent)
        slot = dev_slot(d->services, nub->parent->id);
    return slot;
}

int sxd_usb_reset(sxd_daemon *d, uint64_t nub_id, uint64_t *device_nub, int *fd)
{
    ssize_t slot = dev_slot_of_nub(d, nub_id);
    if (slot < 0)
        return sx_err(SYSEXT_ENOTFOUND, "no attached device for nub %#" PRIx64, nub_id);
    sxd_usbdev *u = d->services->devs[slot];
    *device_nub = u->nub_id;
    *fd = -1;
    if (!u->client) {
        /* usbfs: the dead driver's open file still holds its claims and URBs; a fresh open of
         * the node gives the relaunch a clean one (the old descriptor closes with the host's) */
        unsigned bus = 0, addr = 0;
        int nfd = -1;
        if (sscanf(u->url, "usb:%u-%u", &bus, &addr) != 2 || bus > 255 || addr > 255)
            return sx_err(SYSEXT_EINVAL, "%s: not a usb:BUS-ADDRESS device", u->url);
        int rc = sx_libusb_open_device_fd((uint8_t)bus, (uint8_t)addr, &nfd);
        if (rc < 0) {
            sx_err_prefix(rc, "%s: reopening after a driver crash", u->url);
            return remove_device(d, (size_t)slot, sx_errmsg());
        }
        if (u->watched && d->epfd > 0)
            epoll_ctl(d->epfd, EPOLL_CTL_DEL, u->fd, NULL);
        u->watched = false;
        close(u->fd);
        u->fd = nfd;
        if (d->epfd > 0) {
            struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = SXD_TAG_DEVICE0 + (uint64_t)slot};
            u->watched = epoll_ctl(d->epfd, EPOLL_CTL_ADD, u->fd, &ev) == 0;
        }
        *fd = u->fd;
        return 0;
    }
    char host[256], busid[SX_USBIP_BUSID_LEN + 1];
    uint16_t port = 0;
    int rc = sxd_usb_parse_url(u->url, host, sizeof(host), &port, busid, sizeof(busid));
    if (rc < 0)
        return rc;
    /* End the old session everywhere (the host's duplicate too), so the server lets the
     * device go, then import it again; the server may take a moment to notice. */
    if (u->watched && d->epfd > 0)
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, u->fd, NULL);
    u->watched = false;
    shutdown(u->fd, SHUT_RDWR);
    sx_usbip_client_free(u->client);
    u->client = NULL;
    u->fd = -1;
    sx_usbip_client *c = NULL;
    for (int i = 0; i < 20; i++) {
        if ((rc = sx_usbip_import(&c, host, port, busid, ATTACH_TIMEOUT_MS)) == 0)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc < 0) {
        sx_err_prefix(rc, "%s: importing again after a driver crash", u->url);
        return remove_device(d, (size_t)slot, sx_errmsg());
    }
    u->client = c;
    u->fd = sx_usbip_client_fd(c);
    if (d->epfd > 0) {
        struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = SXD_TAG_DEVICE0 + (uint64_t)slot};
        u->watched = epoll_ctl(d->epfd, EPOLL_CTL_ADD, u->fd, &ev) == 0;
    }
    fprintf(stderr, "sysextd: device %#" PRIx64 " (%s): new USB/IP session for its next driver\n",
            u->nub_id, u->url);
    *fd = u->fd;
    return 0;
}

int sxd_usb_prepare_session(sxd_daemon *d, uint64_t nub_id)
{
    ssize_t slot = dev_slot_of_nub(d, nub_id);
    if (slot < 0)
        return 0;
    sxd_usbdev *u = d->services->devs[slot];
    if (u->used) {
        uint64_t dev = 0;
        int fd = -1;
        int rc = sxd_usb_reset(d, nub_id, &dev, &fd);
        if (rc < 0)
            return rc;
    }
    if (d->services->devs[slot])
        d->services->devs[slot]->used = true;
    return 0;
}

static int remove_device(sxd_daemon *d, size_t slot, const char *why)
{
    uint64_t id = d->services->devs[slot]->nub_id;
    fprintf(stderr, "sysextd: device %#" PRIx64 " (%s): %s\n", id, d->services->devs[slot]->url,
            why);
    /* Drivers first (Stop), then the session ends. */
    int rc = sxd_services_remove_nub(d, id);
    dev_free(d, slot);
    return rc;
}

int sxd_usb_detach(sxd_daemon *d, uint64_t nub_id)
{
    ssize_t slot = dev_slot(d->services, nub_id);
    if (slot < 0)
        return sx_err(SYSEXT_ENOTFOUND, "no attached device with id %#" PRIx64, nub_id);
    return remove_device(d, (size_t)slot, "detached");
}

void sxd_services_fd_ready(sxd_daemon *d, uint64_t tag, uint32_t events)
{
    uint64_t slot = tag - SXD_TAG_DEVICE0;
    if (slot == SXD_MAX_DEVICES) {
        sxd_hotplug_poll(d, true);
        return;
    }
    if (!d->services || slot >= SXD_MAX_DEVICES || !d->services->devs[slot])
        return;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        remove_device(d, (size_t)slot, "connection lost");
}

size_t sxd_services_nub_fds(sxd_daemon *d, const sx_nub *nub, int *fds)
{
    const sx_nub *dev = nub;
    if (!strcmp(nub->class_name, "IOUSBHostInterface") && nub->parent)
        dev = nub->parent;
    ssize_t slot = dev_slot(d->services, dev->id);
    if (slot < 0 || d->services->devs[slot]->fd < 0)
        return 0;
    fds[0] = d->services->devs[slot]->fd;
    return 1;
}

void sxd_usb_free_all(sxd_daemon *d)
{
    for (size_t i = 0; i < SXD_MAX_DEVICES; i++)
        dev_free(d, i);
}

static plist_t device_entry(const sx_usbip_device *dev)
{
    plist_t e = plist_new_dict();
    sxd_dict_set_str(e, "busid", dev->busid);
    sxd_dict_set_str(e, "path", dev->path);
    sxd_dict_set_uint(e, "busnum", dev->busnum);
    sxd_dict_set_uint(e, "devnum", dev->devnum);
    sxd_dict_set_uint(e, "speed", dev->speed);
    sxd_dict_set_uint(e, "idVendor", dev->id_vendor);
    sxd_dict_set_uint(e, "idProduct", dev->id_product);
    sxd_dict_set_uint(e, "bcdDevice", dev->bcd_device);
    sxd_dict_set_uint(e, "bDeviceClass", dev->device_class);
    sxd_dict_set_uint(e, "bNumInterfaces", dev->num_interfaces);
    plist_t ifs = plist_new_array();
    for (size_t i = 0; i < dev->num_interfaces && i < SX_USBIP_MAX_INTERFACES; i++) {
        plist_t f = plist_new_dict();
        sxd_dict_set_uint(f, "bInterfaceClass", dev->interfaces[i].cls);
        sxd_dict_set_uint(f, "bInterfaceSubClass", dev->interfaces[i].subclass);
        sxd_dict_set_uint(f, "bInterfaceProtocol", dev->interfaces[i].protocol);
        plist_array_append_item(ifs, f);
    }
    plist_dict_set_item(e, "interfaces", ifs);
    return e;
}

int sxd_usb_list(sxd_daemon *d, const char *remote, plist_t out)
{
    plist_t arr = plist_new_array();
    if (remote) {
        char host[256];
        uint16_t port = 0;
        int rc = parse_hostport(remote, strlen(remote), host, sizeof(host), &port, remote);
        sx_usbip_devlist l = {0};
        if (rc == 0)
            rc = sx_usbip_list(host, port, ATTACH_TIMEOUT_MS, &l);
        if (rc < 0) {
            plist_free(arr);
            return sx_err_prefix(rc, "%s", remote);
        }
        for (size_t i = 0; i < l.n; i++)
            plist_array_append_item(arr, device_entry(&l.devices[i]));
        sx_usbip_devlist_free(&l);
        plist_dict_set_item(out, "remote", arr);
        return 0;
    }
    for (size_t i = 0; i < SXD_MAX_DEVICES; i++) {
        const sxd_usbdev *u = d->services->devs[i];
        if (!u)
            continue;
        const sx_nub *n = sx_registry_find(d->registry, u->nub_id);
        plist_t e = plist_new_dict();
        sxd_dict_set_uint(e, "id", u->nub_id);
        sxd_dict_set_str(e, "url", u->url);
        uint64_t v = 0;
        if (n && sx_nub_get_uint(n, "idVendor", &v))
            sxd_dict_set_uint(e, "idVendor", v);
        if (n && sx_nub_get_uint(n, "idProduct", &v))
            sxd_dict_set_uint(e, "idProduct", v);
        if (n)
            sxd_dict_set_str(e, "name", n->name);
        sxd_dict_set_uint(e, "interfaces", n ? n->n_children : 0);
        plist_array_append_item(arr, e);
    }
    plist_dict_set_item(out, "devices", arr);
    return 0;
}

bool sxd_services_handle_admin(sxd_daemon *d, const char *type, plist_t msg, plist_t extra,
                               int *rc)
{
    if (!d->services) {
        if (strcmp(type, "device-attach") && strcmp(type, "device-detach") &&
            strcmp(type, "device-list") && strcmp(type, "ioreg"))
            return false;
        *rc = sx_err(SYSEXT_EUNSUPPORTED, "%s: the device services are not running", type);
        return true;
    }
    if (!strcmp(type, "device-attach")) {
        const char *url = sxd_dict_str(msg, "url");
        uint64_t id = 0;
        *rc = url ? sxd_usb_attach(d, url, &id) : sx_err(SYSEXT_EINVAL, "device-attach: no 'url'");
        if (*rc == 0)
            sxd_dict_set_uint(extra, "device", id);
    } else if (!strcmp(type, "device-detach")) {
        plist_t idn = plist_dict_get_item(msg, "device");
        uint64_t id = 0;
        if (!idn || plist_get_node_type(idn) != PLIST_UINT) {
            *rc = sx_err(SYSEXT_EINVAL, "device-detach: no integer 'device'");
        } else {
            plist_get_uint_val(idn, &id);
            *rc = sxd_usb_detach(d, id);
        }
    } else if (!strcmp(type, "device-list")) {
        *rc = sxd_usb_list(d, sxd_dict_str(msg, "remote"), extra);
    } else if (!strcmp(type, "ioreg")) {
        plist_t snap = NULL;
        if ((*rc = sx_registry_snapshot(d->registry, &snap)) == 0)
            plist_dict_set_item(extra, "registry", snap);
    } else {
        return false;
    }
    return true;
}
