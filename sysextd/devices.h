/* Internal state of the daemon's device services (services.h), shared by devices.c (matching,
 * driver instances), usb_attach.c (USB/IP devices) and hotplug.c (libusb devices). */
#ifndef SXD_DEVICES_H
#define SXD_DEVICES_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry/matching.h"
#include "registry/registry.h"

struct sxd_daemon;
struct sx_usbip_client;

/* One enabled driver extension, from its staged copy. */
typedef struct sxd_dext {
    char *bundle_id, *version, *staged_path, *executable;
} sxd_dext;

/* One driver instance the daemon asked the host for. */
typedef struct sxd_instance {
    uint64_t id;          /* host instance id (0 while sxd_host_start runs) */
    uint64_t provider_id; /* the nub it was started on */
    uint64_t service_id;  /* its driver service nub, 0 while not running */
    char *category, *bundle_id, *user_class, *server_name, *personality;
    char *kernel_class; /* the personality's IOClass (IOUserService when it names none) */
    char state[16];
} sxd_instance;

/* One attached device (USB/IP import or libusb). The daemon keeps the connection but does
 * not read it: the driver that gets the descriptor owns the USB session. */
typedef struct sxd_usbdev {
    uint64_t nub_id;      /* IOUSBHostDevice nub */
    char *url;            /* usbip://HOST:PORT/BUSID, or "usb:BUS-ADDR" */
    struct sx_usbip_client *client; /* USB/IP; NULL for libusb */
    int fd;               /* the descriptor handed to drivers */
    bool watched;         /* in the daemon's epoll set */
    bool used;            /* a driver has had this session: the next one gets a fresh one */
    void *libusb_handle;  /* hotplug.c */
} sxd_usbdev;

#define SXD_MAX_DEVICES 64

typedef struct sxd_services {
    sx_personality_set set;
    sxd_dext *dexts;
    size_t n_dexts;
    sxd_instance *inst;
    size_t n_inst, cap_inst;
    ssize_t launching;    /* index of the instance whose sxd_host_start is running, -1 */
    bool need_rematch;    /* a driver service nub went away: reap it on the next tick */
    bool need_reset;      /* a driver on an attached device crashed: fresh sessions first */
    /* Drivers told to stop whose process may still hold their device's session, and the starts
     * that wait for them (a new driver gets the device only after the old one let go, as
     * DriverKit parks an upgrade until the old server finalizes). */
    struct sxd_draining { uint64_t instance, device; } *draining;
    size_t n_draining;
    struct sxd_deferred { uint64_t nub, device; char *category, *bundle_id, *personality; } *deferred;
    size_t n_deferred;
    bool need_deferred;   /* a draining driver finished: try the waiting starts */
    bool own_host;        /* the host was created here (freed here) */
    sxd_usbdev *devs[SXD_MAX_DEVICES];
    uint32_t next_location;
    void *hotplug;        /* hotplug.c state */
} sxd_services;

/* Rematch every nub against the personalities in effect and start/stop drivers. */
int sxd_services_rematch(struct sxd_daemon *d);
/* Stop the drivers on `nub_id` and its subtree, terminate it, rematch. */
int sxd_services_remove_nub(struct sxd_daemon *d, uint64_t nub_id);
/* The descriptors a driver on `nub` gets (the device's session), n = 0 or 1. */
size_t sxd_services_nub_fds(struct sxd_daemon *d, const sx_nub *nub, int *fds);

/* usb_attach.c */
/* usbip://HOST[:PORT]/BUSID (IPv6 hosts in brackets; port 3240 by default; bus id of digits,
 * '-', '.', ':'), and HOST[:PORT]. SYSEXT_EINVAL naming what is wrong. */
int sxd_usb_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *busid,
                      size_t busidlen);
int sxd_usb_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);
int sxd_usb_attach(struct sxd_daemon *d, const char *url, uint64_t *nub_id);
int sxd_usb_detach(struct sxd_daemon *d, uint64_t nub_id);
/* transport_ents.c: 1 when the staged dext's transport entitlement covers the device of `nub`
 * (or the nub needs none), 0 with the reason in `why` otherwise. */
int sxd_transport_entitled(const char *staged_path, const struct sx_nub *nub, char *why, size_t whylen);
/* A driver on the device crashed: the USB/IP session it owned is in an unknown state (URBs in
 * flight, replies unread), so end it and import the device again, like a port reset, and give
 * the new session to its drivers' next launch: *device_nub is the device's nub, *fd the new
 * session (borrowed): a new USB/IP import, or the usbfs node opened again. SYSEXT_ENOTFOUND:
 * not an attached device. */
int sxd_usb_reset(struct sxd_daemon *d, uint64_t nub_id, uint64_t *device_nub, int *fd);
/* Before a driver gets the session of the device of `nub_id`: a session another driver had is
 * renewed first (sxd_usb_reset: late replies to that driver's URBs would reach the new one).
 * 0 also for nubs of no attached device. */
int sxd_usb_prepare_session(struct sxd_daemon *d, uint64_t nub_id);
int sxd_usb_list(struct sxd_daemon *d, const char *remote, plist_t out);
void sxd_usb_free_all(struct sxd_daemon *d);
/* Add a device read by a backend: registry nubs + table entry (fd is taken). */
int sxd_usb_add(struct sxd_daemon *d, const sx_usb_device_info *info, const char *url,
                struct sx_usbip_client *client, int fd, uint64_t *nub_id);

/* hotplug.c: libusb hot-plug (--usb). */
int sxd_hotplug_start(struct sxd_daemon *d);
void sxd_hotplug_stop(struct sxd_daemon *d);
/* Watch libusb's fd (once the loop runs) and handle its events when `ready` or due; returns
 * the ms until libusb needs a call again (-1 none). */
int sxd_hotplug_poll(struct sxd_daemon *d, bool ready);

#endif
