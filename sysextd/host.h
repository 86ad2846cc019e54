/* Driver hosting: sysextd runs each matched driver in its own sandboxed process and speaks
 * the IOUserServer protocol (runtime/include/sysext/driverkit/DKIPC.h) with it.
 *
 * A *server* is one driver process: by default one per (extension, provider); one per
 * (extension, IOUserServerName) when the personality sets IOUserServerOneProcess. An
 * *instance* is one driver object started on one provider inside a server. Instances are
 * named by a daemon-unique id that is never reused.
 *
 * The driver process gets two SOCK_SEQPACKET sockets: fd 3 carries host -> driver messages
 * (Create, Start, Stop, Terminate, Free, Call; the driver answers each with a Reply), fd 4
 * carries driver -> host calls (KERNEL methods, DKIPC_HostCall) and completions. Nothing else
 * is inherited except stdin (/dev/null), stdout and stderr (the daemon's log).
 *
 * Everything here runs on the daemon's event loop thread; nothing blocks on a driver: a driver
 * that does not answer within the host's timeout is killed and treated as crashed. */
#ifndef SXD_HOST_H
#define SXD_HOST_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sxd_host sxd_host;

typedef enum sxd_sandbox_mode {
    SXD_SANDBOX_AUTO = 0, /* root: SXD_SANDBOX_UID; otherwise SXD_SANDBOX_USERNS */
    SXD_SANDBOX_UID,      /* root only: setuid/setgid to driver_uid/driver_gid, new mount + net ns */
    SXD_SANDBOX_USERNS,   /* any uid: new user (mapped to the caller's uid) + mount + net ns */
} sxd_sandbox_mode;

/* States an instance goes through, as `sysextctl list` and the logs show them. */
#define SXD_DRV_STARTING "starting"     /* process spawned, Start sent, no answer yet */
#define SXD_DRV_RUNNING "running"       /* Start answered kIOReturnSuccess */
#define SXD_DRV_START_FAILED "start-failed" /* Start answered an error: not restarted */
#define SXD_DRV_CRASHED "crashed"       /* process died; a relaunch is scheduled */
#define SXD_DRV_GAVE_UP "gave-up"       /* crashed restart_limit times in a row */
#define SXD_DRV_STOPPING "stopping"     /* Stop/Terminate sent */
#define SXD_DRV_STOPPED "stopped"       /* gone for good (device removed, extension replaced) */

typedef struct sxd_host_config {
    const char *runtime_dir;  /* scratch for per-server files (created 0700) */
    sxd_sandbox_mode sandbox;
    uid_t driver_uid;         /* SXD_SANDBOX_UID: the dedicated driver user */
    gid_t driver_gid;
    unsigned restart_limit;   /* consecutive crashes before giving up (0: default 5) */
    unsigned backoff_ms;      /* first relaunch delay, doubled per crash (0: default 250) */
    unsigned backoff_max_ms;  /* cap of the delay (0: default 30000) */
    unsigned reply_timeout_ms; /* a driver must answer a host message within this (0: 5000) */
    /* Called on every state change of an instance (may be NULL). `why` is a human-readable
     * reason ("exited with signal 11", "Start returned kIOReturnNoDevice"), or NULL. */
    void (*on_state)(void *ctx, uint64_t instance, const char *state, const char *why);
    void *ctx;
} sxd_host_config;

/* What the driver is started on: a registry nub, recreated inside the driver process as an
 * object of `class_name` by the runtime's provider factory for that class
 * (DKIPC_RegisterProviderFactory). */
typedef struct sxd_provider {
    uint64_t registry_id;     /* the nub's id in the daemon's registry */
    const char *class_name;   /* "IOUserResources", "IOUSBHostDevice", "IOUSBHostInterface", ... */
    plist_t properties;       /* borrowed dictionary of the nub's properties (strings, integers,
                               * booleans, data); sent with Create */
    const int *fds;           /* borrowed descriptors handed to the driver with Create (e.g. the
                               * imported USB/IP socket, a usbfs fd); the host dups what it keeps */
    size_t n_fds;
} sxd_provider;

/* What to run: the winning personality of an enabled extension. */
typedef struct sxd_launch {
    const char *bundle_id;    /* CFBundleIdentifier of the dext */
    const char *bundle_path;  /* the daemon's staged, verified copy (mounted read-only) */
    const char *executable;   /* absolute path of the driver executable inside bundle_path */
    const char *server_name;  /* IOUserServerName */
    const char *user_class;   /* IOUserClass: the class the runtime instantiates */
    plist_t personality;      /* borrowed: the whole personality dictionary */
    bool one_process;         /* IOUserServerOneProcess */
} sxd_launch;

int sxd_host_new(const sxd_host_config *cfg, sxd_host **out);
/* Stops every instance (Stop, then SIGKILL after the reply timeout) and frees. NULL ok. */
void sxd_host_free(sxd_host *h);

/* Event loop integration: the host owns one signalfd-free child watcher (pidfds) plus the
 * driver sockets. `sxd_host_fds` lists the descriptors to poll for input right now;
 * `sxd_host_dispatch` handles whatever is ready on them and due timers (backoff relaunches,
 * reply timeouts); `sxd_host_next_timeout` is the ms until the next timer (-1 none). */
size_t sxd_host_fds(sxd_host *h, int *fds, size_t max);
void sxd_host_dispatch(sxd_host *h);
int sxd_host_next_timeout(sxd_host *h);

/* Start `l->user_class` of `l`'s extension on provider `p`: spawn (or reuse, for
 * one_process) the sandboxed server, Create the provider and the driver object in it and
 * send Start. Returns at once with the instance id; the outcome arrives through on_state. */
int sxd_host_start(sxd_host *h, const sxd_launch *l, const sxd_provider *p, uint64_t *instance);
/* Replace the descriptors handed to the instance's provider at its next (re)launch, e.g. a
 * fresh USB/IP session after a crash left the old one in an unknown state. The host dups them;
 * the old ones are closed. SYSEXT_ENOTFOUND: no such instance. */
int sxd_host_set_provider_fds(sxd_host *h, uint64_t instance, const int *fds, size_t n);
/* Stop then Terminate the instance (device removed, extension replaced or uninstalled);
 * the server exits when its last instance is gone. Its user-client sessions are closed. */
int sxd_host_stop(sxd_host *h, uint64_t instance);
/* sxd_host_stop for every instance of an extension. */
int sxd_host_stop_bundle(sxd_host *h, const char *bundle_id);

/* Open a user client of `type` on a running instance (IOService::NewUserClient in the driver)
 * and return the app's end of a fresh SOCK_SEQPACKET pair whose other end the driver now
 * serves; the data path then runs between app and driver without the daemon.
 * SYSEXT_ENOTFOUND: no such instance; SYSEXT_EBUSY: not running; SYSEXT_EPERM or SYSEXT_EPROTO
 * with the driver's IOReturn name in the message when it refuses. */
int sxd_host_open_user_client(sxd_host *h, uint64_t instance, uint32_t type, int *app_fd);

/* A dictionary per instance (id, bundle_id, user_class, server pid, state, restarts,
 * provider registry id, last reason), for `list` and `ioreg`. *out owned by the caller. */
int sxd_host_snapshot(sxd_host *h, plist_t *out);
/* The instance's current state (SXD_DRV_*), NULL if unknown. Borrowed. */
const char *sxd_host_state(sxd_host *h, uint64_t instance);
/* The pid of the instance's driver process, 0 when it has none right now. */
pid_t sxd_host_pid(sxd_host *h, uint64_t instance);

/* For tests, tools and benchmarks; these run the host's part of the loop until the answer:
 * send `call` (a message built with DKIPCMessage_Init(kDKIPCCall, 0, methodID, 0) plus
 * arguments; the object id and sequence are filled in) to the instance's driver object and
 * wait for the Reply (*reply: caller clears). SYSEXT_ENOTFOUND, SYSEXT_EBUSY (not running),
 * SYSEXT_EPROTO when the driver failed before answering. */
struct DKIPCMessage;
int sxd_host_call(sxd_host *h, uint64_t instance, struct DKIPCMessage *call, struct DKIPCMessage *reply);
/* Spawn drivers with plain fork + exec, without any sandbox (bench baseline, debugging). */
void sxd_host_set_no_sandbox(sxd_host *h, bool no_sandbox);

#endif
