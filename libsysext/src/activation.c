/* The app-side activation client and the admin calls: a thin layer over sysextd's protocol. */
#include "util/common.h"

#include <json-c/json.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sysext/activation.h"
#include "libsysext/src/client.h"
#include "sysextd/proto.h"
#include "util/buf.h"
#include "util/plist_json.h"

struct sysext_request {
    struct sysext_request *next;
    sysext_client *client;
    uint64_t id;
    sysext_request_kind kind;
    char *identifier;
    sysext_request_delegate delegate;
};

struct sysext_client {
    int fd;
    uint64_t next_id;
    sx_buf in;
    sysext_request *reqs;
    size_t npending;
    bool broken;
};

static const char *const OSERR_NAMES[] = {
    "OSSystemExtensionErrorUnknown",
    "OSSystemExtensionErrorUnknown",
    "OSSystemExtensionErrorMissingEntitlement",
    "OSSystemExtensionErrorUnsupportedParentBundleLocation",
    "OSSystemExtensionErrorExtensionNotFound",
    "OSSystemExtensionErrorExtensionMissingIdentifier",
    "OSSystemExtensionErrorDuplicateExtensionIdentifer",
    "OSSystemExtensionErrorUnknownExtensionCategory",
    "OSSystemExtensionErrorCodeSignatureInvalid",
    "OSSystemExtensionErrorValidationFailed",
    "OSSystemExtensionErrorForbiddenBySystemPolicy",
    "OSSystemExtensionErrorRequestCanceled",
    "OSSystemExtensionErrorRequestSuperseded",
    "OSSystemExtensionErrorAuthorizationRequired",
};

const char *sysext_os_error_name(int code)
{
    if (code < 1 || code > 13)
        return OSERR_NAMES[0];
    return OSERR_NAMES[code];
}

static const char *socket_of(const char *path)
{
    if (path && *path)
        return path;
    const char *e = getenv("SYSEXT_SOCKET");
    return e && *e ? e : SXD_DEFAULT_SOCKET;
}

static int connect_to(const char *path, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    path = socket_of(path);
    if (strlen(path) >= sizeof(sa.sun_path))
        return sx_err(SYSEXT_EINVAL, "%s: socket path too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int rc = sx_err_errno(SYSEXT_EIO, errno, "cannot reach sysextd at %s", path);
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static int send_msg(int fd, plist_t msg)
{
    sx_buf b = SX_BUF_INIT;
    int rc = sxd_msg_encode(msg, &b);
    plist_free(msg);
    size_t off = 0;
    while (rc == 0 && off < b.len) {
        ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = sx_err_errno(SYSEXT_EIO, errno, "sending to sysextd");
            break;
        }
        off += (size_t)n;
    }
    sx_buf_free(&b);
    return rc;
}

/* ---- client ---------------------------------------------------------------------------- */

int sysext_client_open(const char *socket_path, sysext_client **out)
{
    SX_ASSERT_ARG(out);
    *out = NULL;
    sysext_client *c = calloc(1, sizeof(*c));
    if (!c)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    sx_buf_init(&c->in, SXD_PROTO_MAX + 8);
    int rc = connect_to(socket_path, &c->fd);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void req_free(sysext_request *r)
{
    free(r->identifier);
    free(r);
}

void sysext_client_free(sysext_client *c)
{
    if (!c)
        return;
    while (c->reqs) {
        sysext_request *r = c->reqs;
        c->reqs = r->next;
        req_free(r);
    }
    close(c->fd);
    sx_buf_free(&c->in);
    free(c);
}

int sysext_client_fd(const sysext_client *c)
{
    return c ? c->fd : -1;
}

size_t sysext_client_pending(const sysext_client *c)
{
    return c ? c->npending : 0;
}

const char *sysext_request_identifier(const sysext_request *r)
{
    return r ? r->identifier : NULL;
}

sysext_request_kind sysext_request_get_kind(const sysext_request *r)
{
    return r ? r->kind : SYSEXT_REQUEST_ACTIVATE;
}

int sysext_client_submit(sysext_client *c, sysext_request_kind kind, const char *identifier,
                         const sysext_request_delegate *delegate, sysext_request **out_req)
{
    SX_ASSERT_ARG(c);
    SX_ASSERT_ARG(identifier);
    static const char *const types[] = {"activate", "deactivate", "properties"};
    if ((unsigned)kind > SYSEXT_REQUEST_PROPERTIES)
        return sx_err(SYSEXT_EINVAL, "sysext_client_submit: unknown request kind %d", (int)kind);
    if (c->broken)
        return sx_err(SYSEXT_EIO, "the connection to sysextd is closed");
    sysext_request *r = calloc(1, sizeof(*r));
    if (!r || !(r->identifier = strdup(identifier))) {
        free(r);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    r->client = c;
    r->id = ++c->next_id;
    r->kind = kind;
    if (delegate)
        r->delegate = *delegate;
    plist_t m = sxd_msg_new(types[kind]);
    sxd_dict_set_uint(m, "id", r->id);
    sxd_dict_set_str(m, "ext", identifier);
    int rc = send_msg(c->fd, m);
    if (rc < 0) {
        req_free(r);
        return rc;
    }
    r->next = c->reqs;
    c->reqs = r;
    c->npending++;
    if (out_req)
        *out_req = r;
    return 0;
}

static sysext_request *find_req(sysext_client *c, uint64_t id)
{
    for (sysext_request *r = c->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void unlink_req(sysext_client *c, sysext_request *r)
{
    for (sysext_request **pp = &c->reqs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            c->npending--;
            break;
        }
}

static void props_from(plist_t d, sysext_extension_properties *p)
{
    memset(p, 0, sizeof(*p));
    p->identifier = sxd_dict_str(d, "identifier");
    p->version = sxd_dict_str(d, "version");
    p->short_version = sxd_dict_str(d, "short_version");
    p->path = sxd_dict_str(d, "path");
    p->team_id = sxd_dict_str(d, "team_id");
    p->state = sxd_dict_str(d, "state");
    p->enabled = sxd_dict_bool(d, "enabled", 0);
    p->awaiting_user_approval = sxd_dict_bool(d, "awaiting_approval", 0);
    p->uninstalling = sxd_dict_bool(d, "uninstalling", 0);
}

static void fail_req(sysext_client *c, sysext_request *r, int code, const char *name,
                     const char *msg)
{
    unlink_req(c, r);
    if (r->delegate.failed)
        r->delegate.failed(r, code, name ? name : sysext_os_error_name(code), msg,
                           r->delegate.ctx);
    req_free(r);
}

static void fail_all(sysext_client *c, const char *msg)
{
    c->broken = true;
    while (c->reqs)
        fail_req(c, c->reqs, SYSEXT_OSERR_UNKNOWN, NULL, msg);
}

static int handle_event(sysext_client *c, plist_t m)
{
    const char *type = sxd_dict_str(m, "type");
    if (!strcmp(type, "error")) {
        int rc = sx_err(SYSEXT_EPROTO, "sysextd refused the connection: %s",
                        sxd_dict_str(m, "message") ? sxd_dict_str(m, "message") : "?");
        fail_all(c, sx_errmsg());
        return rc;
    }
    if (strcmp(type, "event"))
        return 0;
    sysext_request *r = find_req(c, sxd_dict_uint(m, "id", 0));
    const char *ev = sxd_dict_str(m, "event");
    if (!r || !ev)
        return 0;
    void *ctx = r->delegate.ctx;
    if (!strcmp(ev, "needs-user-approval")) {
        if (r->delegate.needs_user_approval)
            r->delegate.needs_user_approval(r, ctx);
    } else if (!strcmp(ev, "replacing")) {
        sysext_extension_properties old, nw;
        props_from(plist_dict_get_item(m, "existing"), &old);
        props_from(plist_dict_get_item(m, "new"), &nw);
        sysext_replacement_action a = r->delegate.action_for_replacing
                                          ? r->delegate.action_for_replacing(r, &old, &nw, ctx)
                                          : SYSEXT_REPLACEMENT_REPLACE;
        plist_t ans = sxd_msg_new("replace-answer");
        sxd_dict_set_uint(ans, "id", r->id);
        sxd_dict_set_str(ans, "action", a == SYSEXT_REPLACEMENT_REPLACE ? "replace" : "cancel");
        int rc = send_msg(c->fd, ans);
        if (rc < 0) {
            fail_all(c, sx_errmsg());
            return rc;
        }
    } else if (!strcmp(ev, "properties")) {
        plist_t items = plist_dict_get_item(m, "items");
        uint32_t n = items && plist_get_node_type(items) == PLIST_ARRAY
                         ? plist_array_get_size(items)
                         : 0;
        sysext_extension_properties *v = n ? calloc(n, sizeof(*v)) : NULL;
        if (n && !v)
            n = 0;
        for (uint32_t i = 0; i < n; i++)
            props_from(plist_array_get_item(items, i), &v[i]);
        if (r->delegate.found_properties)
            r->delegate.found_properties(r, v, n, ctx);
        free(v);
    } else if (!strcmp(ev, "finished")) {
        unlink_req(c, r);
        if (r->delegate.finished)
            r->delegate.finished(r, (sysext_request_result)sxd_dict_uint(m, "result", 0), ctx);
        req_free(r);
    } else if (!strcmp(ev, "failed")) {
        fail_req(c, r, (int)sxd_dict_uint(m, "code", 1), sxd_dict_str(m, "name"),
                 sxd_dict_str(m, "message"));
    }
    return 0;
}

int sysext_client_dispatch(sysext_client *c)
{
    SX_ASSERT_ARG(c);
    if (c->broken)
        return sx_err(SYSEXT_EIO, "the connection to sysextd is closed");
    uint8_t tmp[16384];
    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            int rc = n == 0 ? sx_err(SYSEXT_EIO, "sysextd closed the connection")
                            : sx_err_errno(SYSEXT_EIO, errno, "reading from sysextd");
            fail_all(c, sx_errmsg());
            return rc;
        }
        if (sx_buf_append(&c->in, tmp, (size_t)n) < 0) {
            int rc = sx_err(SYSEXT_EPROTO, "sysextd sent a message above the size limit");
            fail_all(c, sx_errmsg());
            return rc;
        }
        size_t off = 0;
        for (;;) {
            plist_t m = NULL;
            size_t used = 0;
            int rc = sxd_msg_decode(c->in.data + off, c->in.len - off, SXD_PROTO_MAX, &m, &used);
            if (rc == 0)
                break;
            if (rc < 0) {
                rc = sx_err_prefix(SYSEXT_EPROTO, "from sysextd");
                fail_all(c, sx_errmsg());
                return rc;
            }
            off += used;
            rc = handle_event(c, m);
            plist_free(m);
            if (rc < 0)
                return rc;
        }
        memmove(c->in.data, c->in.data + off, c->in.len - off);
        c->in.len -= off;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sysext_client_wait(sysext_client *c, int timeout_ms)
{
    SX_ASSERT_ARG(c);
    int64_t end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    while (c->npending) {
        int left = -1;
        if (end >= 0) {
            int64_t l = end - now_ms();
            if (l <= 0)
                return sx_err(SYSEXT_ETIMEOUT, "no answer from sysextd within %d ms", timeout_ms);
            left = l > 1000000 ? 1000000 : (int)l;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, left);
        if (n < 0 && errno != EINTR)
            return sx_err_errno(SYSEXT_EIO, errno, "poll");
        if (n > 0) {
            int rc = sysext_client_dispatch(c);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ---- administration -------------------------------------------------------------------- */

#define ADMIN_TIMEOUT_MS 120000

/* Send `msg` (consumed) and wait up to `timeout_ms` for its reply. A descriptor the daemon
 * attaches (SCM_RIGHTS, the ioservice-open reply: sysextd/proto.h) goes to *fd_out (-1 when
 * none) when fd_out is not NULL; otherwise it is closed. */
static int admin_call(const char *socket_path, plist_t msg, plist_t *reply_out, int *fd_out,
                      int timeout_ms)
{
    *reply_out = NULL;
    if (fd_out)
        *fd_out = -1;
    int fd = -1, got_fd = -1;
    int rc = connect_to(socket_path, &fd);
    if (rc < 0) {
        plist_free(msg);
        return rc;
    }
    sxd_dict_set_uint(msg, "id", 1);
    if ((rc = send_msg(fd, msg)) < 0) {
        close(fd);
        return rc;
    }
    sx_buf in;
    sx_buf_init(&in, SXD_PROTO_MAX + 8);
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        plist_t m = NULL;
        size_t used = 0;
        rc = sxd_msg_decode(in.data, in.len, SXD_PROTO_MAX, &m, &used);
        if (rc < 0)
            break;
        if (rc == 1) {
            const char *type = sxd_dict_str(m, "type");
            if (!strcmp(type, "reply") || !strcmp(type, "error")) {
                uint64_t err = sxd_dict_uint(m, "err", 0);
                if (err) {
                    const char *message = sxd_dict_str(m, "message");
                    rc = sx_err(err > 30 ? SYSEXT_ERROR : -(int)err, "sysextd: %s",
                                message ? message : "request failed");
                    plist_free(m);
                } else {
                    rc = 0;
                    *reply_out = m;
                }
                break;
            }
            plist_free(m);
            memmove(in.data, in.data + used, in.len - used);
            in.len -= used;
            continue;
        }
        int64_t left = end - now_ms();
        if (left <= 0) {
            rc = sx_err(SYSEXT_ETIMEOUT, "no reply from sysextd");
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
            rc = sx_err_errno(SYSEXT_EIO, errno, "poll");
            break;
        }
        uint8_t tmp[16384];
        union {
            char buf[CMSG_SPACE(sizeof(int) * 4)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {tmp, sizeof(tmp)};
        struct msghdr mh = {0};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        for (struct cmsghdr *h = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len < CMSG_LEN(0))
                continue;
            size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int f;
                memcpy(&f, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                if (got_fd < 0)
                    got_fd = f;
                else
                    close(f);
            }
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            rc = sx_err(SYSEXT_EIO, "sysextd closed the connection");
            break;
        }
        if ((rc = sx_buf_append(&in, tmp, (size_t)n)) < 0)
            break;
    }
    sx_buf_free(&in);
    close(fd);
    if (rc == 0 && fd_out) {
        *fd_out = got_fd;
        got_fd = -1;
    }
    if (got_fd >= 0)
        close(got_fd);
    return rc;
}

static int simple_call(const char *socket_path, plist_t msg, plist_t *reply_out)
{
    plist_t r = NULL;
    int rc = admin_call(socket_path, msg, &r, NULL, ADMIN_TIMEOUT_MS);
    if (reply_out)
        *reply_out = r;
    else if (r)
        plist_free(r);
    return rc;
}

static const char *state_printed(const char *state, char *buf, size_t len)
{
    snprintf(buf, len, "%s", state ? state : "");
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = ' ';
    return buf;
}

/* The driver processes the daemon runs (its "drivers" array), as JSON objects. */
static json_object *drivers_json(plist_t drv)
{
    json_object *arr = json_object_new_array();
    uint32_t n = drv && plist_get_node_type(drv) == PLIST_ARRAY ? plist_array_get_size(drv) : 0;
    for (uint32_t i = 0; i < n; i++) {
        plist_t d = plist_array_get_item(drv, i);
        json_object *e = json_object_new_object();
        static const char *const strs[] = {"bundle_id", "user_class", "server_name", "state",
                                           "provider_class", "reason"};
        static const char *const nums[] = {"id", "pid", "restarts", "provider"};
        for (size_t k = 0; k < SX_ARRAY_SIZE(strs); k++) {
            const char *v = sxd_dict_str(d, strs[k]);
            json_object_object_add(e, strs[k], v ? json_object_new_string(v) : NULL);
        }
        for (size_t k = 0; k < SX_ARRAY_SIZE(nums); k++)
            json_object_object_add(e, nums[k],
                                   json_object_new_uint64(sxd_dict_uint(d, nums[k], 0)));
        json_object_array_add(arr, e);
    }
    return arr;
}

/* "--- drivers" lines under the extensions: one per driver instance. */
static int drivers_text(sx_buf *b, plist_t drv)
{
    uint32_t n = drv && plist_get_node_type(drv) == PLIST_ARRAY ? plist_array_get_size(drv) : 0;
    if (n == 0)
        return 0;
    int rc = sx_buf_printf(b, "--- drivers\nid\tpid\tbundleID\tclass\tprovider\t[state]\trestarts\n");
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        plist_t d = plist_array_get_item(drv, i);
        const char *why = sxd_dict_str(d, "reason");
        rc = sx_buf_printf(b, "%llu\t%llu\t%s\t%s\t%s %#llx\t[%s]\t%llu%s%s\n",
                           (unsigned long long)sxd_dict_uint(d, "id", 0),
                           (unsigned long long)sxd_dict_uint(d, "pid", 0),
                           sxd_dict_str(d, "bundle_id") ? sxd_dict_str(d, "bundle_id") : "?",
                           sxd_dict_str(d, "user_class") ? sxd_dict_str(d, "user_class") : "?",
                           sxd_dict_str(d, "provider_class") ? sxd_dict_str(d, "provider_class") : "?",
                           (unsigned long long)sxd_dict_uint(d, "provider", 0),
                           sxd_dict_str(d, "state") ? sxd_dict_str(d, "state") : "?",
                           (unsigned long long)sxd_dict_uint(d, "restarts", 0), why ? "\t" : "",
                           why ? why : "");
    }
    return rc;
}

static int render_list(plist_t recs, plist_t drivers, bool developer, unsigned flags, char **out)
{
    uint32_t n = recs && plist_get_node_type(recs) == PLIST_ARRAY ? plist_array_get_size(recs) : 0;
    if (flags & SYSEXT_OUTPUT_JSON) {
        json_object *o = json_object_new_object(), *arr = json_object_new_array();
        for (uint32_t i = 0; i < n; i++) {
            plist_t d = plist_array_get_item(recs, i);
            json_object *e = json_object_new_object();
            static const char *const keys[] = {"uuid",     "identifier", "version", "short_version",
                                               "team_id",  "name",       "state",   "category",
                                               "path",     "app_path",   "app_identifier"};
            for (size_t k = 0; k < SX_ARRAY_SIZE(keys); k++) {
                const char *v = sxd_dict_str(d, keys[k]);
                json_object_object_add(e, keys[k], v ? json_object_new_string(v) : NULL);
            }
            json_object_object_add(e, "enabled",
                                   json_object_new_boolean(sxd_dict_bool(d, "enabled", 0)));
            json_object_object_add(e, "active",
                                   json_object_new_boolean(sxd_dict_bool(d, "enabled", 0)));
            json_object_object_add(
                e, "awaiting_user_approval",
                json_object_new_boolean(sxd_dict_bool(d, "awaiting_approval", 0)));
            json_object_object_add(e, "uninstalling",
                                   json_object_new_boolean(sxd_dict_bool(d, "uninstalling", 0)));
            json_object_array_add(arr, e);
        }
        json_object_object_add(o, "count", json_object_new_int((int)n));
        json_object_object_add(o, "developer_mode", json_object_new_boolean(developer));
        json_object_object_add(o, "extensions", arr);
        json_object_object_add(o, "drivers", drivers_json(drivers));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                              JSON_C_TO_STRING_SPACED);
        *out = s ? strdup(s) : NULL;
        json_object_put(o);
        return *out ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    sx_buf b = SX_BUF_INIT;
    int rc = sx_buf_printf(&b, "%u extension(s)\n", n);
    /* Group by category, categories in order of first appearance. */
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const char *cat = sxd_dict_str(plist_array_get_item(recs, i), "category");
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++) {
            const char *c2 = sxd_dict_str(plist_array_get_item(recs, j), "category");
            seen = c2 && cat && !strcmp(c2, cat);
        }
        if (seen)
            continue;
        const char *pane = cat && strstr(cat, "driver")    ? "Driver Extensions"
                           : cat && strstr(cat, "network") ? "Network Extensions"
                           : cat && strstr(cat, "endpoint") ? "Endpoint Security Extensions"
                                                            : "Extensions";
        rc = sx_buf_printf(&b,
                           "--- %s (Go to 'System Settings > General > Login Items & Extensions "
                           "> %s' to modify these system extension(s))\n"
                           "enabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n",
                           cat ? cat : "?", pane);
        for (uint32_t j = i; j < n && rc == 0; j++) {
            plist_t d = plist_array_get_item(recs, j);
            const char *c2 = sxd_dict_str(d, "category");
            if (!c2 || !cat || strcmp(c2, cat))
                continue;
            char st[128];
            bool en = sxd_dict_bool(d, "enabled", 0);
            const char *team = sxd_dict_str(d, "team_id");
            rc = sx_buf_printf(&b, "%s\t%s\t%s\t%s (%s/%s)\t%s\t[%s]\n", en ? "*" : "",
                               en ? "*" : "", team && *team ? team : "-",
                               sxd_dict_str(d, "identifier"), sxd_dict_str(d, "short_version"),
                               sxd_dict_str(d, "version"), sxd_dict_str(d, "name"),
                               state_printed(sxd_dict_str(d, "state"), st, sizeof(st)));
        }
    }
    if (rc == 0)
        rc = drivers_text(&b, drivers);
    if (rc < 0) {
        sx_buf_free(&b);
        return rc;
    }
    *out = sx_buf_steal_str(&b);
    return *out ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

int sysext_admin_list(const char *socket_path, unsigned flags, char **out_text)
{
    SX_ASSERT_ARG(out_text);
    plist_t r = NULL;
    int rc = simple_call(socket_path, sxd_msg_new("list"), &r);
    if (rc < 0)
        return rc;
    rc = render_list(plist_dict_get_item(r, "records"), plist_dict_get_item(r, "drivers"),
                     sxd_dict_bool(r, "developer", 0), flags, out_text);
    plist_free(r);
    return rc;
}

int sysext_admin_approve(const char *socket_path, const char *identifier)
{
    SX_ASSERT_ARG(identifier);
    plist_t m = sxd_msg_new("approve");
    sxd_dict_set_str(m, "ext", identifier);
    return simple_call(socket_path, m, NULL);
}

int sysext_admin_uninstall(const char *socket_path, const char *team_id, const char *identifier)
{
    SX_ASSERT_ARG(team_id);
    SX_ASSERT_ARG(identifier);
    plist_t m = sxd_msg_new("uninstall");
    sxd_dict_set_str(m, "team", team_id);
    sxd_dict_set_str(m, "ext", identifier);
    return simple_call(socket_path, m, NULL);
}

int sysext_admin_developer(const char *socket_path, int mode, int *out_enabled)
{
    plist_t m = sxd_msg_new("developer");
    if (mode >= 0)
        sxd_dict_set_str(m, "mode", mode ? "on" : "off");
    plist_t r = NULL;
    int rc = simple_call(socket_path, m, &r);
    if (rc == 0 && out_enabled)
        *out_enabled = sxd_dict_bool(r, "developer", 0);
    if (r)
        plist_free(r);
    return rc;
}

static int removed_text(plist_t r, char **out)
{
    plist_t arr = plist_dict_get_item(r, "removed");
    uint32_t n = arr && plist_get_node_type(arr) == PLIST_ARRAY ? plist_array_get_size(arr) : 0;
    sx_buf b = SX_BUF_INIT;
    int rc = sx_buf_puts(&b, "");
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const char *s = plist_get_string_ptr(plist_array_get_item(arr, i), NULL);
        rc = sx_buf_printf(&b, "Successfully cleaned up %s\n", s ? s : "?");
    }
    if (rc < 0) {
        sx_buf_free(&b);
        return rc;
    }
    *out = sx_buf_steal_str(&b);
    return 0;
}

int sysext_admin_reset(const char *socket_path, char **out_text)
{
    plist_t r = NULL;
    int rc = simple_call(socket_path, sxd_msg_new("reset"), &r);
    if (rc == 0 && out_text)
        rc = removed_text(r, out_text);
    if (r)
        plist_free(r);
    return rc;
}

int sysext_admin_gc(const char *socket_path, char **out_text)
{
    plist_t r = NULL;
    int rc = simple_call(socket_path, sxd_msg_new("gc"), &r);
    if (rc == 0 && out_text)
        rc = removed_text(r, out_text);
    if (r)
        plist_free(r);
    return rc;
}

int sysext_admin_policy_show(const char *socket_path, unsigned flags, char **out_text)
{
    SX_ASSERT_ARG(out_text);
    plist_t r = NULL;
    int rc = simple_call(socket_path, sxd_msg_new("policy-show"), &r);
    if (rc < 0)
        return rc;
    plist_t pol = plist_dict_get_item(r, "policy");
    if (!pol) {
        plist_free(r);
        return sx_err(SYSEXT_EPROTO, "sysextd: policy-show reply without a policy");
    }
    if (flags & SYSEXT_OUTPUT_JSON) {
        json_object *o = json_object_new_object();
        const char *path = sxd_dict_str(r, "path");
        json_object_object_add(o, "path", path ? json_object_new_string(path) : NULL);
        json_object_object_add(o, "policy", sx_plist_to_json(pol));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                              JSON_C_TO_STRING_SPACED);
        *out_text = s ? strdup(s) : NULL;
        json_object_put(o);
    } else {
        char *xml = NULL;
        uint32_t len = 0;
        plist_to_xml(pol, &xml, &len);
        *out_text = xml ? strndup(xml, len) : NULL;
        if (xml)
            plist_to_xml_free(xml);
    }
    plist_free(r);
    return *out_text ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

/* For the other client calls of the library (device.c): one admin request and its reply. */
int sx_client_admin_call(const char *socket_path, plist_t msg, plist_t *reply_out)
{
    return simple_call(socket_path, msg, reply_out);
}

int sx_client_call(const char *socket_path, plist_t msg, plist_t *reply_out, int *fd_out,
                   int timeout_ms)
{
    return admin_call(socket_path, msg, reply_out, fd_out, timeout_ms);
}
