/* sysextd's shared state: configuration, the store, the policy, the connections and the
 * requests that wait for a client's answer or an admin's approval. */
#ifndef SXD_DAEMON_H
#define SXD_DAEMON_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sysextd/host.h"
#include "sysextd/owner.h"
#include "sysextd/peer.h"
#include "sysextd/policy.h"
#include "sysextd/store.h"
#include "sysextd/verify.h"
#include "util/buf.h"

/* Limits against bad clients. */
#define SXD_MAX_CONNS 256
#define SXD_MAX_PENDING_PER_CONN 16
#define SXD_MAX_OUTBUF (1u << 20)
#define SXD_PARTIAL_TIMEOUT_MS 5000

typedef struct sxd_config {
    const char *state_dir;
    const char *socket_path;
    const char **trust;
    size_t n_trust;
    const char *notary_cert;
    const char *policy_path;
    double grace_period;
    bool developer_mode;   /* forced on from the command line */
    const char **allowed;  /* allowed app locations */
    size_t n_allowed;
    const char *admin_group; /* name or gid whose members may administer, or NULL */
    /* driver hosting */
    const char *runtime_dir;  /* default: <state_dir>/run */
    sxd_sandbox_mode sandbox;
    const char *driver_user;  /* SXD_SANDBOX_UID (and root + userns): the driver user, default nobody */
} sxd_config;

typedef struct sxd_conn {
    int fd;
    uint64_t serial;
    sx_buf in, out;
    sxd_peer peer;
    bool app_resolved;
    int app_oserr;
    char *app_error;
    sxd_code app;
    int64_t partial_since; /* monotonic ms when an incomplete frame started, 0 if none */
    unsigned npending;
    bool closing;          /* flush `out`, then close */
    bool busy;             /* a request of this connection is being worked on: hold the rest */
    bool dead;
} sxd_conn;

typedef enum sxd_wait { SXD_WAIT_REPLACE, SXD_WAIT_APPROVAL } sxd_wait;

typedef struct sxd_pending {
    struct sxd_pending *next;
    uint64_t conn_serial;
    uint64_t req_id;
    sxd_wait wait;
    char new_uuid[37]; /* the record this request waits on */
    char old_uuid[37]; /* replace: the record it would replace */
} sxd_pending;

typedef struct sxd_daemon {
    sxd_config cfg;
    sxd_store *store;
    sxd_policy policy;
    sxd_owner *owner;
    sxd_host *host;  /* the driver processes (host.h) */
    bool developer_mode;
    uid_t admin_uid; /* the daemon's own uid counts as admin (tests run unprivileged) */
    gid_t admin_gid; /* --admin-group, when has_admin_gid */
    bool has_admin_gid;
    int epfd, listen_fd, sig_fd;
    sxd_conn *conns[SXD_MAX_CONNS];
    size_t nconns;
    uint64_t next_serial;
    sxd_pending *pending;
    struct sxd_jobs *jobs; /* bundle copies and verification, off the loop */
    bool quit;
    /* Devices and drivers (devices.c, services.h). */
    struct sx_registry *registry;     /* the nubs drivers match against */
    struct sxd_services *services;    /* personalities, driver instances, attached devices */
    bool usb_hotplug;                 /* --usb: libusb hot-plug (hotplug.c) */
} sxd_daemon;

/* admin.c */
int sxd_admin_group_resolve(const char *name, gid_t *out);
bool sxd_is_admin(const sxd_daemon *d, const sxd_peer *p);

/* server.c */
int sxd_run(sxd_daemon *d);
/* Queue `msg` (consumed) to the connection; marks it closing when its buffer is full. */
void sxd_send(sxd_daemon *d, sxd_conn *c, plist_t msg);
sxd_conn *sxd_conn_by_serial(sxd_daemon *d, uint64_t serial);
/* The connection's request finished (c->busy cleared here): go on with its buffered frames. */
void sxd_conn_resume(sxd_daemon *d, sxd_conn *c);

/* host_daemon.c: create d->host from d->cfg (runtime dir, sandbox, driver user) */
int sxd_host_start_daemon(sxd_daemon *d);

/* activation.c */
int sxd_daemon_start(sxd_daemon *d); /* store, reconcile, policy, owner watches */
void sxd_daemon_stop(sxd_daemon *d);
void sxd_handle_message(sxd_daemon *d, sxd_conn *c, plist_t msg);
void sxd_conn_gone(sxd_daemon *d, sxd_conn *c);
void sxd_owner_due(sxd_daemon *d, const char *app_path);
int sxd_reload_policy(sxd_daemon *d);
/* The calling app of `c` (c->app), resolved and verified once per connection as activation
 * does; SYSEXT_EPERM with *oserr and the reason when it is not a verified app. */
int sxd_conn_app(sxd_daemon *d, sxd_conn *c, int *oserr);

/* devices.c: create / free the registry, the host (unless already set) and the services. */
int sxd_services_start(sxd_daemon *d);
void sxd_services_stop(sxd_daemon *d);
/* usb_attach.c / devices.c: admin messages device-attach, device-detach, device-list, ioreg.
 * true when `type` was one of them (a reply was sent). */
bool sxd_services_handle_admin(sxd_daemon *d, const char *type, plist_t msg, plist_t extra,
                               int *rc);
/* server.c: epoll tags at or above SXD_TAG_DEVICE0 (below the connections' tags) belong to
 * attached devices; the loop passes them here. */
#define SXD_TAG_DEVICE0 (UINT64_C(1) << 32)
void sxd_services_fd_ready(sxd_daemon *d, uint64_t tag, uint32_t events);
int sxd_services_timeout(sxd_daemon *d);
void sxd_services_tick(sxd_daemon *d);

#endif
