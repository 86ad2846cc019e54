/* Driver hosting (sysextd/host.h): servers (driver processes), instances (a driver object on
 * a provider), the lifecycle messages, crash handling with backoff, user-client opening.
 *
 * All descriptors (driver sockets, pidfds) live in the host's own epoll set; the daemon polls
 * that one descriptor (sxd_host_fds). Host messages are sent on a non-blocking socket and
 * their replies matched by sequence in sxd_host_dispatch; a driver that sends anything
 * unexpected (a malformed message, a reply to nothing, a reply about another object, a
 * message type the host does not take) is killed and handled as a crash. */
#include "util/common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

#include "sysextd/host_internal.h"
#include "sysextd/owner.h"

#define SXD_HOST_STABLE_MS 10000 /* a Start that stays up this long resets the crash count */
#define SXD_DEFAULT_DRIVER_ID 65534u

typedef enum out_kind {
    OUT_CREATE_PROVIDER, OUT_CREATE_DRIVER, OUT_START, OUT_STOP, OUT_TERMINATE,
    OUT_FREE_DRIVER, OUT_FREE_PROVIDER, OUT_FREE, OUT_CALL,
} out_kind;

static const char *const out_names[] = {"Create (provider)", "Create (driver)", "Start", "Stop",
                                        "Terminate", "Free", "Free", "Free", "Call"};

typedef struct sync_wait {
    bool done, failed;
    DKIPCMessage reply;
} sync_wait;

typedef struct outstanding {
    uint64_t seq, object, inst;
    out_kind kind;
    int64_t deadline;
    sync_wait *wait;
} outstanding;

typedef struct server {
    struct server *next;
    uint64_t id;
    pid_t pid;
    int pidfd, cmd, call;
    char *bundle_id, *server_name;
    bool one_process;
    bool dying;   /* killed after a failure: waiting for the exit */
    bool closing; /* we closed fd 3: the exit is expected */
    int64_t kill_at;
    char *why;
    uint64_t next_obj, next_seq;
    outstanding *out;
    size_t nout, capout;
    size_t ninst;
} server;

typedef struct instance {
    struct instance *next;
    uint64_t id;
    server *srv;
    const char *state;
    char *why;
    unsigned crashes, restarts;
    int64_t running_since, relaunch_at;
    uint64_t provider_obj, driver_obj;
    bool stop_requested;
    char *bundle_id, *bundle_path, *executable, *server_name, *user_class;
    plist_t personality;
    bool one_process;
    uint64_t registry_id;
    char *class_name;
    plist_t props;
    int *fds;
    size_t n_fds;
} instance;

struct sxd_host {
    sxd_host_config cfg;
    char *runtime_dir, *root_dir;
    int epfd;
    server *servers;
    instance *insts;
    uint64_t next_server, next_inst;
    struct sock_filter *filter;
    size_t filter_len;
    bool no_sandbox;
};

enum { TAG_CMD = 0, TAG_CALL = 1, TAG_PID = 2 };

/* ---- small helpers -------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void set_why(char **dst, const char *fmt, ...) SX_PRINTF(2, 3);
static void set_why(char **dst, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    free(*dst);
    *dst = s;
}

static void set_state(sxd_host *h, instance *in, const char *state)
{
    in->state = state;
    fprintf(stderr, "sysextd: driver %" PRIu64 " (%s %s): %s%s%s\n", in->id, in->bundle_id, in->user_class,
            state, in->why ? ": " : "", in->why ? in->why : "");
    if (h->cfg.on_state)
        h->cfg.on_state(h->cfg.ctx, in->id, state, in->why);
}

static bool is_state(const instance *in, const char *state)
{
    return in->state && !strcmp(in->state, state);
}

static server *server_by_id(sxd_host *h, uint64_t id)
{
    for (server *s = h->servers; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static instance *inst_by_id(sxd_host *h, uint64_t id)
{
    for (instance *i = h->insts; i; i = i->next)
        if (i->id == id)
            return i;
    return NULL;
}

static void inst_free(instance *in)
{
    free(in->why);
    free(in->bundle_id);
    free(in->bundle_path);
    free(in->executable);
    free(in->server_name);
    free(in->user_class);
    free(in->class_name);
    if (in->personality)
        plist_free(in->personality);
    if (in->props)
        plist_free(in->props);
    for (size_t i = 0; i < in->n_fds; i++)
        close(in->fds[i]);
    free(in->fds);
    free(in);
}

static void inst_remove(sxd_host *h, instance *in)
{
    for (instance **pp = &h->insts; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    inst_free(in);
}

static void epoll_del(sxd_host *h, int *fd)
{
    if (*fd >= 0) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, *fd, NULL);
        close(*fd);
        *fd = -1;
    }
}

static void fail_waits(server *s)
{
    for (size_t i = 0; i < s->nout; i++)
        if (s->out[i].wait) {
            s->out[i].wait->done = true;
            s->out[i].wait->failed = true;
        }
    s->nout = 0;
}

/* The driver broke the protocol or stopped answering: kill it; its exit is the crash. */
static void server_fail(sxd_host *h, server *s, const char *fmt, ...) SX_PRINTF(3, 4);
static void server_fail(sxd_host *h, server *s, const char *fmt, ...)
{
    if (s->dying)
        return;
    if (!s->why) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&s->why, fmt, ap) < 0)
            s->why = NULL;
        va_end(ap);
    }
    fprintf(stderr, "sysextd: driver server %" PRIu64 " (pid %d, %s): %s; killing it\n", s->id, (int)s->pid,
            s->bundle_id, s->why ? s->why : "failed");
    s->dying = true;
    kill(s->pid, SIGKILL);
    epoll_del(h, &s->cmd);
    epoll_del(h, &s->call);
    fail_waits(s);
}

/* No instance left: close fd 3 (the driver's DKDriverMain returns), SIGKILL after the timeout. */
static void server_close(sxd_host *h, server *s)
{
    if (s->closing || s->dying)
        return;
    s->closing = true;
    epoll_del(h, &s->cmd);
    epoll_del(h, &s->call);
    fail_waits(s);
    s->kill_at = sxd_now_ms() + h->cfg.reply_timeout_ms;
}

static void server_unlink_free(sxd_host *h, server *s)
{
    for (server **pp = &h->servers; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    epoll_del(h, &s->cmd);
    epoll_del(h, &s->call);
    epoll_del(h, &s->pidfd);
    fail_waits(s);
    free(s->out);
    free(s->bundle_id);
    free(s->server_name);
    free(s->why);
    free(s);
}

static int send_msg(sxd_host *h, server *s, DKIPCMessage *m, out_kind kind, uint64_t inst, sync_wait *w)
{
    if (s->dying || s->closing || s->cmd < 0)
        return sx_err(SYSEXT_EPROTO, "driver server %" PRIu64 " is going away", s->id);
    if (s->nout == s->capout) {
        size_t cap = s->capout ? s->capout * 2 : 8;
        outstanding *o = realloc(s->out, cap * sizeof(*o));
        if (!o)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        s->out = o;
        s->capout = cap;
    }
    m->sequence = ++s->next_seq;
    kern_return_t r = DKIPC_Send(s->cmd, m);
    if (r != kIOReturnSuccess) {
        int e = errno;
        server_fail(h, s, "sending %s: %s", out_names[kind], r == kIOReturnIPCError ? strerror(e) : IOReturn_Name(r));
        return sx_err(SYSEXT_EPROTO, "driver server %" PRIu64 ": sending %s failed", s->id, out_names[kind]);
    }
    s->out[s->nout++] = (outstanding){m->sequence, m->objectID, inst, kind,
                                      sxd_now_ms() + h->cfg.reply_timeout_ms, w};
    return 0;
}

static int send_simple(sxd_host *h, server *s, DKIPCMessageType type, uint64_t obj, out_kind kind, uint64_t inst)
{
    DKIPCMessage m;
    DKIPCMessage_Init(&m, type, obj, 0, 0);
    int rc = send_msg(h, s, &m, kind, inst, NULL);
    DKIPCMessage_Clear(&m);
    return rc;
}

/* ---- launching --------------------------------------------------------------------------- */

static void crash_instance(sxd_host *h, instance *in, const char *why);

/* Properties cross as STRING key + U64|STRING|BYTES value pairs; a dictionary one level down
 * (UserClientProperties in a personality) as "Parent/Key" pairs, which the runtime nests again
 * (DKIPC_CopyProviderProperties). Arrays, deeper dictionaries, reals and dates do not cross. */
static int add_props_under(DKIPCMessage *m, plist_t dict, const char *parent)
{
    if (!dict || plist_get_node_type(dict) != PLIST_DICT)
        return 0;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(dict, &it);
    if (!it)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = 0;
    for (;;) {
        char *key = NULL;
        plist_t v = NULL;
        plist_dict_next_item(dict, it, &key, &v);
        if (!key)
            break;
        char *full = NULL;
        if (parent ? asprintf(&full, "%s/%s", parent, key) < 0 : !(full = strdup(key))) {
            free(key);
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        kern_return_t r = kIOReturnSuccess;
        switch (plist_get_node_type(v)) {
        case PLIST_STRING: {
            char *sv = NULL;
            plist_get_string_val(v, &sv);
            if (sv && (r = DKIPCMessage_AddString(m, full)) == kIOReturnSuccess)
                r = DKIPCMessage_AddString(m, sv);
            free(sv);
            break;
        }
        case PLIST_UINT: {
            uint64_t u = 0;
            plist_get_uint_val(v, &u);
            if ((r = DKIPCMessage_AddString(m, full)) == kIOReturnSuccess)
                r = DKIPCMessage_AddU64(m, u);
            break;
        }
        case PLIST_BOOLEAN: {
            uint8_t b = 0;
            plist_get_bool_val(v, &b);
            if ((r = DKIPCMessage_AddString(m, full)) == kIOReturnSuccess)
                r = DKIPCMessage_AddU64(m, b ? 1 : 0);
            break;
        }
        case PLIST_DATA: {
            char *d = NULL;
            uint64_t len = 0;
            plist_get_data_val(v, &d, &len);
            if ((r = DKIPCMessage_AddString(m, full)) == kIOReturnSuccess)
                r = DKIPCMessage_AddBytes(m, d ? d : "", (size_t)len);
            free(d);
            break;
        }
        case PLIST_DICT:
            if (!parent && !strchr(key, '/'))
                rc = add_props_under(m, v, key);
            break;
        default:
            break;
        }
        if (r != kIOReturnSuccess)
            rc = sx_err(SYSEXT_ELIMIT, "property '%s': %s", full, IOReturn_Name(r));
        free(full);
        free(key);
        if (rc < 0)
            break;
    }
    free(it);
    return rc;
}

static int add_props(DKIPCMessage *m, plist_t dict)
{
    return add_props_under(m, dict, NULL);
}

static server *server_spawn(sxd_host *h, instance *in)
{
    server *s = calloc(1, sizeof(*s));
    if (!s) {
        sx_err(SYSEXT_ENOMEM, "out of memory");
        return NULL;
    }
    s->pidfd = s->cmd = s->call = -1;
    s->id = ++h->next_server;
    s->bundle_id = xstrdup(in->bundle_id);
    s->server_name = xstrdup(in->server_name);
    s->one_process = in->one_process;
    s->next_obj = 0x1000;
    sxd_spawn sp = {
        .executable = in->executable,
        .bundle_path = in->bundle_path,
        .root_dir = h->root_dir,
        .no_sandbox = h->no_sandbox,
        .filter = h->filter,
        .filter_len = h->filter_len,
    };
    sxd_sandbox_mode mode = h->cfg.sandbox;
    if (mode == SXD_SANDBOX_AUTO)
        mode = geteuid() == 0 ? SXD_SANDBOX_UID : SXD_SANDBOX_USERNS;
    sp.mode = mode;
    if (geteuid() == 0) {
        sp.uid = h->cfg.driver_uid ? h->cfg.driver_uid : SXD_DEFAULT_DRIVER_ID;
        sp.gid = h->cfg.driver_gid ? h->cfg.driver_gid : SXD_DEFAULT_DRIVER_ID;
        sp.switch_id = true;
    } else {
        sp.uid = geteuid();
        sp.gid = getegid();
    }
    if (mode == SXD_SANDBOX_UID && geteuid() != 0) {
        sx_err(SYSEXT_EPERM, "sandbox mode 'uid' needs root");
        goto fail;
    }
    if ((!s->bundle_id || !s->server_name) ||
        sxd_host_spawn(&sp, &s->pid, &s->pidfd, &s->cmd, &s->call) < 0)
        goto fail;
    int fl = fcntl(s->cmd, F_GETFL);
    fcntl(s->cmd, F_SETFL, fl | O_NONBLOCK);
    fl = fcntl(s->call, F_GETFL);
    fcntl(s->call, F_SETFL, fl | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = s->id << 2 | TAG_CMD;
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->cmd, &ev) < 0)
        goto fail_errno;
    ev.data.u64 = s->id << 2 | TAG_CALL;
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->call, &ev) < 0)
        goto fail_errno;
    ev.data.u64 = s->id << 2 | TAG_PID;
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->pidfd, &ev) < 0)
        goto fail_errno;
    s->next = h->servers;
    h->servers = s;
    fprintf(stderr, "sysextd: driver server %" PRIu64 " for %s: pid %d\n", s->id, s->bundle_id, (int)s->pid);
    return s;
fail_errno:
    sx_err_errno(SYSEXT_EIO, errno, "epoll_ctl");
fail:
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (s->cmd >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, s->cmd, NULL), close(s->cmd);
    if (s->call >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, s->call, NULL), close(s->call);
    if (s->pidfd >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, s->pidfd, NULL), close(s->pidfd);
    free(s->bundle_id);
    free(s->server_name);
    free(s);
    return NULL;
}

/* Spawn or join the server and send the provider's Create. */
static void launch(sxd_host *h, instance *in)
{
    in->relaunch_at = 0;
    in->running_since = 0;
    server *s = NULL;
    if (in->one_process)
        for (server *t = h->servers; t && !s; t = t->next)
            if (t->one_process && !t->dying && !t->closing && !strcmp(t->bundle_id, in->bundle_id) &&
                !strcmp(t->server_name, in->server_name))
                s = t;
    set_state(h, in, SXD_DRV_STARTING);
    if (!s && !(s = server_spawn(h, in))) {
        crash_instance(h, in, sx_errmsg());
        return;
    }
    in->srv = s;
    s->ninst++;
    in->provider_obj = s->next_obj++;
    in->driver_obj = s->next_obj++;
    DKIPCMessage m;
    DKIPCMessage_Init(&m, kDKIPCCreate, in->provider_obj, 0, 0);
    int rc = DKIPCMessage_AddString(&m, in->class_name) == kIOReturnSuccess ? 0
             : sx_err(SYSEXT_ELIMIT, "provider class name");
    if (rc == 0)
        rc = add_props(&m, in->props);
    for (size_t i = 0; rc == 0 && i < in->n_fds; i++)
        if (DKIPCMessage_AddFD(&m, in->fds[i]) != kIOReturnSuccess)
            rc = sx_err(SYSEXT_ELIMIT, "more than %u provider descriptors", DK_IPC_MAX_FDS);
    if (rc == 0)
        rc = send_msg(h, s, &m, OUT_CREATE_PROVIDER, in->id, NULL);
    DKIPCMessage_Clear(&m);
    if (rc < 0 && !s->dying) {
        /* our side could not build the message: not the driver's fault, do not retry */
        set_why(&in->why, "%s", sx_errmsg());
        in->srv = NULL;
        if (--s->ninst == 0)
            server_close(h, s);
        set_state(h, in, SXD_DRV_START_FAILED);
    }
}

static void crash_instance(sxd_host *h, instance *in, const char *why)
{
    int64_t now = sxd_now_ms();
    in->srv = NULL;
    set_why(&in->why, "%s", why ? why : "driver process failed");
    if (in->stop_requested) {
        set_state(h, in, SXD_DRV_STOPPED);
        inst_remove(h, in);
        return;
    }
    if (in->running_since && now - in->running_since >= SXD_HOST_STABLE_MS)
        in->crashes = 0;
    in->running_since = 0;
    in->crashes++;
    if (in->crashes >= h->cfg.restart_limit) {
        set_state(h, in, SXD_DRV_GAVE_UP);
        return;
    }
    uint64_t delay = h->cfg.backoff_ms;
    for (unsigned i = 1; i < in->crashes && delay < h->cfg.backoff_max_ms; i++)
        delay *= 2;
    if (delay > h->cfg.backoff_max_ms)
        delay = h->cfg.backoff_max_ms;
    in->relaunch_at = now + (int64_t)delay;
    in->restarts++;
    set_state(h, in, SXD_DRV_CRASHED);
}

/* Start failed (Create or Start refused): free what the driver has and leave it. */
static void start_failed(sxd_host *h, instance *in, server *s, const char *what, kern_return_t status)
{
    set_why(&in->why, "%s returned %s", what, IOReturn_Name(status));
    in->srv = NULL;
    (void)send_simple(h, s, kDKIPCFree, in->driver_obj, OUT_FREE, 0);
    (void)send_simple(h, s, kDKIPCFree, in->provider_obj, OUT_FREE, 0);
    if (--s->ninst == 0)
        server_close(h, s);
    set_state(h, in, SXD_DRV_START_FAILED);
    if (in->stop_requested) {
        set_state(h, in, SXD_DRV_STOPPED);
        inst_remove(h, in);
    }
}

static void begin_stop(sxd_host *h, instance *in)
{
    server *s = in->srv;
    set_state(h, in, SXD_DRV_STOPPING);
    if (send_simple(h, s, kDKIPCStop, in->driver_obj, OUT_STOP, in->id) < 0 ||
        send_simple(h, s, kDKIPCTerminate, in->driver_obj, OUT_TERMINATE, in->id) < 0 ||
        send_simple(h, s, kDKIPCFree, in->driver_obj, OUT_FREE_DRIVER, in->id) < 0 ||
        send_simple(h, s, kDKIPCFree, in->provider_obj, OUT_FREE_PROVIDER, in->id) < 0)
        return; /* the server failed: its exit stops the instance */
}

/* ---- replies ----------------------------------------------------------------------------- */

static void handle_reply(sxd_host *h, server *s, DKIPCMessage *m)
{
    size_t k = 0;
    while (k < s->nout && s->out[k].seq != m->sequence)
        k++;
    if (k == s->nout) {
        server_fail(h, s, "replied to sequence %" PRIu64 ", which it was never sent", m->sequence);
        return;
    }
    outstanding o = s->out[k];
    if (m->objectID != o.object) {
        server_fail(h, s, "replied to %s on object %" PRIu64 " about object %" PRIu64, out_names[o.kind], o.object,
                    m->objectID);
        return;
    }
    memmove(&s->out[k], &s->out[k + 1], (s->nout - k - 1) * sizeof(*s->out));
    s->nout--;
    if (o.kind == OUT_CALL) {
        if (o.wait) {
            o.wait->reply = *m;
            memset(m, 0, sizeof(*m)); /* moved, with its descriptors */
            o.wait->done = true;
        }
        return;
    }
    instance *in = o.inst ? inst_by_id(h, o.inst) : NULL;
    if (!in || in->srv != s)
        return;
    switch (o.kind) {
    case OUT_CREATE_PROVIDER: {
        if (m->status != kIOReturnSuccess) {
            start_failed(h, in, s, "Create of the provider", m->status);
            return;
        }
        /* the driver object gets its personality as its properties, as in DriverKit (the
         * runtime's NewUserClient reads UserClientProperties from them) */
        DKIPCMessage c;
        DKIPCMessage_Init(&c, kDKIPCCreate, in->driver_obj, 0, 0);
        if (DKIPCMessage_AddString(&c, in->user_class) != kIOReturnSuccess)
            start_failed(h, in, s, "Create of the driver object (class name)", kIOReturnNoSpace);
        else if (add_props(&c, in->personality) < 0)
            start_failed(h, in, s, "Create of the driver object (personality too large)",
                         kIOReturnNoSpace);
        else
            (void)send_msg(h, s, &c, OUT_CREATE_DRIVER, in->id, NULL);
        DKIPCMessage_Clear(&c);
        return;
    }
    case OUT_CREATE_DRIVER: {
        if (m->status != kIOReturnSuccess) {
            start_failed(h, in, s, "Create of the driver object", m->status);
            return;
        }
        DKIPCMessage c;
        DKIPCMessage_Init(&c, kDKIPCStart, in->driver_obj, 0, 0);
        if (DKIPCMessage_AddObject(&c, in->provider_obj) == kIOReturnSuccess)
            (void)send_msg(h, s, &c, OUT_START, in->id, NULL);
        DKIPCMessage_Clear(&c);
        return;
    }
    case OUT_START:
        if (m->status != kIOReturnSuccess) {
            start_failed(h, in, s, "Start", m->status);
            return;
        }
        free(in->why);
        in->why = NULL;
        in->running_since = sxd_now_ms();
        set_state(h, in, SXD_DRV_RUNNING);
        if (in->stop_requested)
            begin_stop(h, in);
        return;
    case OUT_FREE_PROVIDER:
        in->srv = NULL;
        set_state(h, in, SXD_DRV_STOPPED);
        inst_remove(h, in);
        if (--s->ninst == 0)
            server_close(h, s);
        return;
    default:
        return; /* Stop, Terminate, Free: errors there change nothing */
    }
}

static void read_cmd(sxd_host *h, server *s)
{
    for (int budget = 0; budget < 64 && s->cmd >= 0 && !s->dying; budget++) {
        struct pollfd p = {s->cmd, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0)
            return;
        DKIPCMessage m;
        DKIPCError err;
        kern_return_t r = DKIPC_Recv(s->cmd, NULL, &m, &err);
        if (r == kIOReturnNotReady) {
            /* usually it is dying: let the exit status tell why, kill it if it lingers */
            s->dying = true;
            epoll_del(h, &s->cmd);
            epoll_del(h, &s->call);
            fail_waits(s);
            s->kill_at = sxd_now_ms() + 1000;
            return;
        }
        if (r == kIOReturnIPCError && (errno == EAGAIN || errno == EINTR))
            return;
        if (r != kIOReturnSuccess) {
            server_fail(h, s, "malformed message at offset %zu: %s", err.offset, err.message);
            return;
        }
        if (m.type != kDKIPCReply)
            server_fail(h, s, "sent a %s on the host connection", DKIPCMessageType_Name(m.type));
        else
            handle_reply(h, s, &m);
        DKIPCMessage_Clear(&m);
    }
}

/* Driver -> host calls (KERNEL methods): none is implemented by the host yet. */
static void read_call(sxd_host *h, server *s)
{
    for (int budget = 0; budget < 64 && s->call >= 0 && !s->dying; budget++) {
        struct pollfd p = {s->call, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0)
            return;
        DKIPCMessage m;
        DKIPCError err;
        kern_return_t r = DKIPC_Recv(s->call, NULL, &m, &err);
        if (r == kIOReturnNotReady) {
            epoll_del(h, &s->call); /* the exit or fd 3 tells the rest */
            return;
        }
        if (r == kIOReturnIPCError && (errno == EAGAIN || errno == EINTR))
            return;
        if (r != kIOReturnSuccess) {
            server_fail(h, s, "malformed call at offset %zu: %s", err.offset, err.message);
            return;
        }
        if (m.type == kDKIPCCall) {
            DKIPCMessage rep;
            DKIPCMessage_Init(&rep, kDKIPCReply, m.objectID, m.methodID, m.sequence);
            rep.status = kIOReturnUnsupported;
            if (DKIPC_Send(s->call, &rep) != kIOReturnSuccess)
                server_fail(h, s, "does not take the reply to its call");
            DKIPCMessage_Clear(&rep);
        } else if (m.type != kDKIPCCompletion) {
            server_fail(h, s, "sent a %s on the call connection", DKIPCMessageType_Name(m.type));
        }
        DKIPCMessage_Clear(&m);
    }
}

static void reap(sxd_host *h, server *s)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid(s->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return;
    bool expected = s->closing && s->ninst == 0;
    char why[256];
    if (s->why)
        snprintf(why, sizeof(why), "%s", s->why);
    else if (r > 0 && WIFSIGNALED(st))
        snprintf(why, sizeof(why), "exited with signal %d", WTERMSIG(st));
    else if (r > 0)
        snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(st));
    else
        snprintf(why, sizeof(why), "exited");
    if (!expected)
        fprintf(stderr, "sysextd: driver server %" PRIu64 " (pid %d, %s) %s\n", s->id, (int)s->pid, s->bundle_id,
                why);
    s->dying = true;
    for (instance *in = h->insts, *next; in; in = next) {
        next = in->next;
        if (in->srv == s)
            crash_instance(h, in, why);
    }
    server_unlink_free(h, s);
}

/* ---- public ------------------------------------------------------------------------------ */

int sxd_host_new(const sxd_host_config *cfg, sxd_host **out)
{
    SX_ASSERT_ARG(cfg && out && cfg->runtime_dir);
    sxd_host *h = calloc(1, sizeof(*h));
    if (!h)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    h->cfg = *cfg;
    if (!h->cfg.restart_limit)
        h->cfg.restart_limit = 5;
    if (!h->cfg.backoff_ms)
        h->cfg.backoff_ms = 250;
    if (!h->cfg.backoff_max_ms)
        h->cfg.backoff_max_ms = 30000;
    if (!h->cfg.reply_timeout_ms)
        h->cfg.reply_timeout_ms = 5000;
    h->epfd = -1;
    int rc = 0;
    h->runtime_dir = strdup(cfg->runtime_dir);
    if (!h->runtime_dir || asprintf(&h->root_dir, "%s/root", cfg->runtime_dir) < 0) {
        h->root_dir = NULL;
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto fail;
    }
    if ((mkdir(h->runtime_dir, 0700) < 0 && errno != EEXIST) || (mkdir(h->root_dir, 0700) < 0 && errno != EEXIST)) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "driver runtime directory %s", h->root_dir);
        goto fail;
    }
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "epoll_create1");
        goto fail;
    }
    if ((rc = sxd_seccomp_stage1(&h->filter, &h->filter_len)) < 0)
        goto fail;
    *out = h;
    return 0;
fail:
    sxd_host_free(h);
    return rc;
}

void sxd_host_set_no_sandbox(sxd_host *h, bool no_sandbox)
{
    if (h)
        h->no_sandbox = no_sandbox;
}

void sxd_host_free(sxd_host *h)
{
    if (!h)
        return;
    for (instance *in = h->insts; in; in = in->next)
        in->stop_requested = true;
    for (server *s = h->servers; s; s = s->next) {
        for (instance *in = h->insts; in; in = in->next)
            if (in->srv == s && !s->dying && !s->closing && is_state(in, SXD_DRV_RUNNING))
                (void)send_simple(h, s, kDKIPCStop, in->driver_obj, OUT_STOP, 0);
        s->ninst = 0;
        server_close(h, s);
    }
    int64_t deadline = sxd_now_ms() + h->cfg.reply_timeout_ms;
    while (h->servers) {
        server *s = h->servers;
        int64_t left = deadline - sxd_now_ms();
        struct pollfd p = {s->pidfd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        h->servers = s->next;
        epoll_del(h, &s->cmd);
        epoll_del(h, &s->call);
        epoll_del(h, &s->pidfd);
        free(s->out);
        free(s->bundle_id);
        free(s->server_name);
        free(s->why);
        free(s);
    }
    while (h->insts) {
        instance *in = h->insts;
        h->insts = in->next;
        inst_free(in);
    }
    if (h->epfd >= 0)
        close(h->epfd);
    free(h->filter);
    free(h->runtime_dir);
    free(h->root_dir);
    free(h);
}

int sxd_host_set_provider_fds(sxd_host *h, uint64_t id, const int *fds, size_t n)
{
    SX_ASSERT_ARG(h && (fds || !n));
    instance *in = inst_by_id(h, id);
    if (!in)
        return sx_err(SYSEXT_ENOTFOUND, "no driver instance %" PRIu64, id);
    if (n > DK_IPC_MAX_FDS)
        return sx_err(SYSEXT_ELIMIT, "%zu provider descriptors, at most %u", n, DK_IPC_MAX_FDS);
    int *nv = n ? calloc(n, sizeof(int)) : NULL;
    if (n && !nv)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        nv[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (nv[i] < 0) {
            int e = errno;
            while (i-- > 0)
                close(nv[i]);
            free(nv);
            return sx_err_errno(SYSEXT_EIO, e, "driver instance %" PRIu64 ": dup", id);
        }
    }
    for (size_t i = 0; i < in->n_fds; i++)
        close(in->fds[i]);
    free(in->fds);
    in->fds = nv;
    in->n_fds = n;
    return 0;
}

size_t sxd_host_fds(sxd_host *h, int *fds, size_t max)
{
    if (!h || max < 1)
        return 0;
    fds[0] = h->epfd;
    return 1;
}

void sxd_host_dispatch(sxd_host *h)
{
    if (!h)
        return;
    struct epoll_event evs[16];
    int n = epoll_wait(h->epfd, evs, 16, 0);
    for (int i = 0; i < n; i++) {
        server *s = server_by_id(h, evs[i].data.u64 >> 2);
        if (!s)
            continue;
        switch (evs[i].data.u64 & 3) {
        case TAG_CMD: read_cmd(h, s); break;
        case TAG_CALL: read_call(h, s); break;
        case TAG_PID: reap(h, s); break;
        default: break;
        }
    }
    int64_t now = sxd_now_ms();
    for (server *s = h->servers, *next; s; s = next) {
        next = s->next;
        if ((s->closing || s->dying) && s->kill_at && now >= s->kill_at) {
            if (!s->closing && !s->why)
                s->why = strdup("closed its host connection");
            kill(s->pid, SIGKILL);
            s->kill_at = 0;
        }
        for (size_t k = 0; k < s->nout; k++)
            if (now >= s->out[k].deadline) {
                server_fail(h, s, "did not answer %s within %u ms", out_names[s->out[k].kind],
                            h->cfg.reply_timeout_ms);
                break;
            }
    }
    for (instance *in = h->insts, *next; in; in = next) {
        next = in->next;
        if (!in->srv && in->relaunch_at && now >= in->relaunch_at && is_state(in, SXD_DRV_CRASHED))
            launch(h, in);
    }
}

int sxd_host_next_timeout(sxd_host *h)
{
    if (!h)
        return -1;
    int64_t now = sxd_now_ms(), best = -1;
#define CONSIDER(t)                                                                                                  \
    do {                                                                                                             \
        int64_t left_ = (t)-now;                                                                                     \
        if (left_ < 0)                                                                                               \
            left_ = 0;                                                                                               \
        if (best < 0 || left_ < best)                                                                                \
            best = left_;                                                                                            \
    } while (0)
    for (server *s = h->servers; s; s = s->next) {
        if ((s->closing || s->dying) && s->kill_at)
            CONSIDER(s->kill_at);
        for (size_t k = 0; k < s->nout; k++)
            CONSIDER(s->out[k].deadline);
    }
    for (instance *in = h->insts; in; in = in->next)
        if (!in->srv && in->relaunch_at && is_state(in, SXD_DRV_CRASHED))
            CONSIDER(in->relaunch_at);
#undef CONSIDER
    return best > INT32_MAX ? INT32_MAX : (int)best;
}

static plist_t copy_or_null(plist_t p)
{
    return p ? plist_copy(p) : NULL;
}

int sxd_host_start(sxd_host *h, const sxd_launch *l, const sxd_provider *p, uint64_t *instance_id)
{
    SX_ASSERT_ARG(h && l && p && instance_id);
    if (!l->bundle_id || !l->bundle_path || !l->executable || !l->user_class || !p->class_name)
        return sx_err(SYSEXT_EINVAL, "driver start: bundle id, path, executable, IOUserClass and provider class "
                                     "are required");
    if (l->executable[0] != '/')
        return sx_err(SYSEXT_EINVAL, "driver start: executable '%s' is not an absolute path", l->executable);
    if (p->n_fds > DK_IPC_MAX_FDS)
        return sx_err(SYSEXT_ELIMIT, "driver start: %zu provider descriptors, at most %u", p->n_fds,
                      DK_IPC_MAX_FDS);
    instance *in = calloc(1, sizeof(*in));
    if (!in)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    in->bundle_id = xstrdup(l->bundle_id);
    in->bundle_path = xstrdup(l->bundle_path);
    in->executable = xstrdup(l->executable);
    in->server_name = xstrdup(l->server_name ? l->server_name : l->bundle_id);
    in->user_class = xstrdup(l->user_class);
    in->personality = copy_or_null(l->personality);
    in->one_process = l->one_process;
    in->registry_id = p->registry_id;
    in->class_name = xstrdup(p->class_name);
    in->props = copy_or_null(p->properties);
    in->fds = p->n_fds ? calloc(p->n_fds, sizeof(int)) : NULL;
    bool ok = in->bundle_id && in->bundle_path && in->executable && in->server_name && in->user_class &&
              in->class_name && (!p->n_fds || in->fds);
    for (size_t i = 0; ok && i < p->n_fds; i++) {
        int fd = fcntl(p->fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            inst_free(in);
            return sx_err_errno(SYSEXT_EIO, errno, "driver start: provider descriptor %zu", i);
        }
        in->fds[in->n_fds++] = fd;
    }
    if (!ok) {
        inst_free(in);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    in->id = ++h->next_inst;
    in->next = h->insts;
    h->insts = in;
    *instance_id = in->id;
    launch(h, in);
    return 0;
}

int sxd_host_stop(sxd_host *h, uint64_t id)
{
    SX_ASSERT_ARG(h);
    instance *in = inst_by_id(h, id);
    if (!in)
        return sx_err(SYSEXT_ENOTFOUND, "no driver instance %" PRIu64, id);
    if (in->stop_requested)
        return 0;
    in->stop_requested = true;
    if (!in->srv) {
        set_state(h, in, SXD_DRV_STOPPED);
        inst_remove(h, in);
        return 0;
    }
    if (is_state(in, SXD_DRV_RUNNING))
        begin_stop(h, in);
    /* STARTING: the Start reply continues with the stop */
    return 0;
}

int sxd_host_stop_bundle(sxd_host *h, const char *bundle_id)
{
    SX_ASSERT_ARG(h && bundle_id);
    uint64_t ids[256];
    size_t n;
    do {
        n = 0;
        for (instance *in = h->insts; in && n < SX_ARRAY_SIZE(ids); in = in->next)
            if (!strcmp(in->bundle_id, bundle_id) && !in->stop_requested)
                ids[n++] = in->id;
        for (size_t i = 0; i < n; i++)
            (void)sxd_host_stop(h, ids[i]);
    } while (n == SX_ARRAY_SIZE(ids));
    return 0;
}

/* Run the loop (only the host's descriptors) until `w` is answered or its server fails. */
static void wait_for(sxd_host *h, sync_wait *w)
{
    while (!w->done) {
        int t = sxd_host_next_timeout(h);
        struct pollfd p = {h->epfd, POLLIN, 0};
        (void)poll(&p, 1, t < 0 ? (int)h->cfg.reply_timeout_ms : t);
        sxd_host_dispatch(h);
    }
}

int sxd_host_call(sxd_host *h, uint64_t id, DKIPCMessage *call, DKIPCMessage *reply)
{
    SX_ASSERT_ARG(h && call && reply);
    memset(reply, 0, sizeof(*reply));
    instance *in = inst_by_id(h, id);
    if (!in)
        return sx_err(SYSEXT_ENOTFOUND, "no driver instance %" PRIu64, id);
    if (!in->srv || !is_state(in, SXD_DRV_RUNNING))
        return sx_err(SYSEXT_EBUSY, "driver instance %" PRIu64 " is %s", id, in->state);
    sync_wait w;
    memset(&w, 0, sizeof(w));
    call->type = kDKIPCCall;
    call->objectID = in->driver_obj;
    int rc = send_msg(h, in->srv, call, OUT_CALL, id, &w);
    if (rc < 0)
        return rc;
    wait_for(h, &w);
    if (w.failed)
        return sx_err(SYSEXT_EPROTO, "driver instance %" PRIu64 ": the driver failed before answering", id);
    *reply = w.reply;
    return 0;
}

int sxd_host_open_user_client(sxd_host *h, uint64_t id, uint32_t type, int *app_fd)
{
    SX_ASSERT_ARG(h && app_fd);
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "user client: socketpair");
    DKIPCMessage call, reply;
    DKIPCMessage_Init(&call, kDKIPCCall, 0, IOService_NewUserClient_ID, 0);
    int rc = 0;
    if (DKIPCMessage_AddU64(&call, type) != kIOReturnSuccess || DKIPCMessage_AddFD(&call, sp[1]) != kIOReturnSuccess)
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
    else
        rc = sxd_host_call(h, id, &call, &reply);
    DKIPCMessage_Clear(&call);
    close(sp[1]);
    if (rc < 0) {
        close(sp[0]);
        return rc;
    }
    kern_return_t st = reply.status;
    DKIPCMessage_Clear(&reply);
    if (st != kIOReturnSuccess) {
        close(sp[0]);
        if (st == kIOReturnNotPermitted || st == kIOReturnNotPrivileged)
            return sx_err(SYSEXT_EPERM, "driver instance %" PRIu64 " refused user client type %u: %s", id, type,
                          IOReturn_Name(st));
        return sx_err(SYSEXT_EPROTO, "driver instance %" PRIu64 " refused user client type %u: %s", id, type,
                      IOReturn_Name(st));
    }
    *app_fd = sp[0];
    return 0;
}

static void dict_str(plist_t d, const char *k, const char *v)
{
    if (v)
        plist_dict_set_item(d, k, plist_new_string(v));
}

int sxd_host_snapshot(sxd_host *h, plist_t *out)
{
    SX_ASSERT_ARG(h && out);
    plist_t arr = plist_new_array();
    if (!arr)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (instance *in = h->insts; in; in = in->next) {
        plist_t d = plist_new_dict();
        plist_dict_set_item(d, "id", plist_new_uint(in->id));
        dict_str(d, "bundle_id", in->bundle_id);
        dict_str(d, "user_class", in->user_class);
        dict_str(d, "server_name", in->server_name);
        plist_dict_set_item(d, "pid", plist_new_uint(in->srv ? (uint64_t)in->srv->pid : 0));
        dict_str(d, "state", in->state);
        plist_dict_set_item(d, "restarts", plist_new_uint(in->restarts));
        plist_dict_set_item(d, "provider", plist_new_uint(in->registry_id));
        dict_str(d, "provider_class", in->class_name);
        dict_str(d, "reason", in->why);
        plist_array_append_item(arr, d);
    }
    *out = arr;
    return 0;
}

const char *sxd_host_state(sxd_host *h, uint64_t id)
{
    instance *in = h ? inst_by_id(h, id) : NULL;
    return in ? in->state : NULL;
}

pid_t sxd_host_pid(sxd_host *h, uint64_t id)
{
    instance *in = h ? inst_by_id(h, id) : NULL;
    return in && in->srv ? in->srv->pid : 0;
}
