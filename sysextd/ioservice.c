/* ioservice-match / ioservice-open: finding driver services and opening user clients for
 * apps. The daemon checks who may open (reference 6, "User-client open checks"), asks the
 * host for a connection to the driver and hands the app its end; it is not on the data path.
 */
#include "util/common.h"

#include <sys/socket.h>
#include <unistd.h>

#include "sysext/errors.h"
#include "sysextd/daemon.h"
#include "sysextd/host.h"
#include "sysextd/ioservice.h"
#include "sysextd/proto.h"
#include "sysextd/services.h"

static bool has_key(plist_t ents, const char *key, bool admin)
{
    if (admin && !strcmp(key, SXD_ENT_ADMIN))
        return true;
    return ents && plist_get_node_type(ents) == PLIST_DICT && plist_dict_get_item(ents, key);
}

static const char *str_of(plist_t n)
{
    return n && plist_get_node_type(n) == PLIST_STRING ? plist_get_string_ptr(n, NULL) : NULL;
}

/* A leaf: a string, or an array of strings that must all be present. */
static bool leaf_met(plist_t leaf, plist_t ents, bool admin, const char **missing)
{
    const char *s = str_of(leaf);
    if (s) {
        if (has_key(ents, s, admin))
            return true;
        *missing = s;
        return false;
    }
    if (!leaf || plist_get_node_type(leaf) != PLIST_ARRAY) {
        *missing = "(a malformed IOServiceDEXTEntitlements element)";
        return false;
    }
    for (uint32_t i = 0; i < plist_array_get_size(leaf); i++) {
        const char *k = str_of(plist_array_get_item(leaf, i));
        if (!k || !has_key(ents, k, admin)) {
            *missing = k ? k : "(a malformed IOServiceDEXTEntitlements element)";
            return false;
        }
    }
    return true;
}

bool sxd_dext_entitlements_met(plist_t req, plist_t ents, bool admin, const char **missing)
{
    *missing = NULL;
    if (!req)
        return true;
    if (plist_get_node_type(req) == PLIST_STRING)
        return leaf_met(req, ents, admin, missing);
    if (plist_get_node_type(req) != PLIST_ARRAY) {
        *missing = "(IOServiceDEXTEntitlements of an unsupported type)";
        return false;
    }
    uint32_t n = plist_array_get_size(req);
    if (n == 0)
        return true;
    const char *first = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const char *m = NULL;
        if (leaf_met(plist_array_get_item(req, i), ents, admin, &m))
            return true;
        if (!first)
            first = m;
    }
    *missing = first;
    return false;
}

int sxd_uc_access_check(plist_t app_ents, const char *dext_id, plist_t dext_ents, plist_t uc_template, bool admin)
{
    bool allowed = false;
    plist_t any = dext_ents && plist_get_node_type(dext_ents) == PLIST_DICT
                      ? plist_dict_get_item(dext_ents, SXD_ENT_UC_ANY)
                      : NULL;
    uint8_t b = 0;
    if (any && plist_get_node_type(any) == PLIST_BOOLEAN) {
        plist_get_bool_val(any, &b);
        allowed = b != 0;
    }
    if (!allowed) {
        plist_t acc = app_ents && plist_get_node_type(app_ents) == PLIST_DICT
                          ? plist_dict_get_item(app_ents, SXD_ENT_UC_ACCESS)
                          : NULL;
        if (!acc)
            return sx_err(SYSEXT_EPERM,
                          "kIOReturnNotPermitted: the app lacks the entitlement %s (naming %s) and %s does not "
                          "have %s",
                          SXD_ENT_UC_ACCESS, dext_id, dext_id, SXD_ENT_UC_ANY);
        if (plist_get_node_type(acc) != PLIST_ARRAY)
            return sx_err(SYSEXT_EPERM,
                          "kIOReturnNotPermitted: the app's entitlement %s must be an array of driver bundle "
                          "identifiers naming %s",
                          SXD_ENT_UC_ACCESS, dext_id);
        for (uint32_t i = 0; i < plist_array_get_size(acc) && !allowed; i++) {
            const char *s = str_of(plist_array_get_item(acc, i));
            allowed = s && !strcmp(s, dext_id);
        }
        if (!allowed)
            return sx_err(SYSEXT_EPERM, "kIOReturnNotPermitted: the app's entitlement %s does not name %s",
                          SXD_ENT_UC_ACCESS, dext_id);
    }
    plist_t req = uc_template && plist_get_node_type(uc_template) == PLIST_DICT
                      ? plist_dict_get_item(uc_template, "IOServiceDEXTEntitlements")
                      : NULL;
    const char *missing = NULL;
    if (!sxd_dext_entitlements_met(req, app_ents, admin, &missing))
        return sx_err(SYSEXT_EPERM,
                      "kIOReturnNotPermitted: the user client of %s requires the entitlement %s "
                      "(UserClientProperties.IOServiceDEXTEntitlements), which the app lacks",
                      dext_id, missing ? missing : "?");
    return 0;
}

/* The dext's entitlements and the user-client template of its personality for the service's
 * class, from the enabled staged copy. `user_class` NULL: the template of the first
 * personality that has one. */
static int dext_info(sxd_daemon *d, const char *bundle_id, const char *user_class, plist_t *ents,
                     plist_t *uc_template)
{
    *ents = NULL;
    *uc_template = NULL;
    sxd_record *v = NULL;
    size_t n = 0;
    int rc = sxd_store_list(d->store, bundle_id, &v, &n);
    if (rc < 0)
        return rc;
    const sxd_record *r = NULL;
    for (size_t i = 0; i < n && !r; i++)
        if (!strcmp(v[i].state, SXD_ST_ENABLED))
            r = &v[i];
    if (!r) {
        sxd_records_free(v, n);
        return sx_err(SYSEXT_ENOTFOUND, "%s is not an enabled driver extension", bundle_id);
    }
    sxd_code x;
    memset(&x, 0, sizeof(x));
    if ((rc = sxd_code_open(r->staged_path, &x)) == 0)
        rc = sxd_code_verify(&x, d->cfg.trust, d->cfg.n_trust, false);
    if (rc == 0 && !x.sig_valid)
        rc = sx_err(SYSEXT_EPERM, "%s: the staged driver's signature no longer verifies", r->staged_path);
    if (rc == 0) {
        if (x.entitlements)
            *ents = plist_copy(x.entitlements);
        plist_t pers = plist_dict_get_item(x.info, "IOKitPersonalities");
        if (pers && plist_get_node_type(pers) == PLIST_DICT) {
            plist_dict_iter it = NULL;
            plist_dict_new_iter(pers, &it);
            for (;;) {
                char *key = NULL;
                plist_t p = NULL;
                plist_dict_next_item(pers, it, &key, &p);
                free(key);
                if (!p)
                    break;
                if (plist_get_node_type(p) != PLIST_DICT)
                    continue;
                const char *cls = str_of(plist_dict_get_item(p, "IOUserClass"));
                plist_t t = plist_dict_get_item(p, "UserClientProperties");
                if (t && (!user_class || (cls && !strcmp(cls, user_class)))) {
                    *uc_template = plist_copy(t);
                    break;
                }
            }
            free(it);
        }
    }
    sxd_code_clear(&x);
    sxd_records_free(v, n);
    return rc;
}

static void reply_err(sxd_daemon *d, sxd_conn *c, uint64_t id, int rc)
{
    plist_t m = sxd_msg_new("reply");
    sxd_dict_set_uint(m, "id", id);
    sxd_dict_set_uint(m, "err", (uint64_t)-rc);
    sxd_dict_set_str(m, "message", sx_errmsg());
    sxd_send(d, c, m);
}

/* Queue the reply frame with `fd` attached to its first byte (sent now, with SCM_RIGHTS; the
 * rest goes through the connection's output buffer). Needs an empty output buffer, so the
 * descriptor cannot land on another frame's byte. */
int sxd_ioservice_reply_fd(sxd_conn *c, uint64_t id, int fd)
{
    if (c->out.len)
        return sx_err(SYSEXT_EBUSY, "ioservice-open: earlier replies are still unsent on this connection");
    plist_t m = sxd_msg_new("reply");
    sxd_dict_set_uint(m, "id", id);
    sxd_dict_set_uint(m, "err", 0);
    sx_buf b = SX_BUF_INIT;
    int rc = sxd_msg_encode(m, &b);
    plist_free(m);
    if (rc < 0)
        return rc;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { b.data, 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof(int));
    ssize_t n;
    do
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "ioservice-open: passing the driver connection to the app");
    } else if (b.len > 1) {
        /* server.c's flush after this message sends the rest */
        rc = sx_buf_append(&c->out, b.data + 1, b.len - 1);
    }
    sx_buf_free(&b);
    return rc;
}

static int do_match(sxd_daemon *d, plist_t msg, plist_t *extra)
{
    plist_t matching = plist_dict_get_item(msg, "matching");
    if (!matching || plist_get_node_type(matching) != PLIST_DICT)
        return sx_err(SYSEXT_EINVAL, "ioservice-match: 'matching' must be a dictionary");
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = sxd_services_match(d, matching, &ids, &n);
    if (rc < 0)
        return rc;
    plist_t arr = plist_new_array();
    for (size_t i = 0; i < n; i++)
        plist_array_append_item(arr, plist_new_uint(ids[i]));
    free(ids);
    *extra = plist_new_dict();
    plist_dict_set_item(*extra, "ids", arr);
    return 0;
}

static int do_open(sxd_daemon *d, sxd_conn *c, uint64_t id, plist_t msg)
{
    plist_t sn = plist_dict_get_item(msg, "service"), tn = plist_dict_get_item(msg, "uctype");
    if (!sn || plist_get_node_type(sn) != PLIST_UINT || (tn && plist_get_node_type(tn) != PLIST_UINT))
        return sx_err(SYSEXT_EINVAL, "ioservice-open: needs 'service' (and optional 'uctype') as integers");
    uint64_t service = sxd_dict_uint(msg, "service", 0), type = sxd_dict_uint(msg, "uctype", 0);
    if (type > UINT32_MAX)
        return sx_err(SYSEXT_EINVAL, "ioservice-open: type %llu above UINT32_MAX", (unsigned long long)type);
    /* the calling app, exactly as activation identifies it */
    int oserr = 0;
    int rc = sxd_conn_app(d, c, &oserr);
    if (rc < 0)
        return sx_err_prefix(rc, "ioservice-open: the caller is not a verified app");
    uint64_t instance = 0;
    const char *bid = NULL;
    if ((rc = sxd_services_lookup(d, service, &instance, &bid)) < 0)
        return rc;
    char *bundle_id = strdup(bid);
    if (!bundle_id)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    plist_t ents = NULL, tmpl = NULL;
    if ((rc = dext_info(d, bundle_id, NULL, &ents, &tmpl)) == 0) {
        bool admin = sxd_is_admin(d, &c->peer);
        rc = sxd_uc_access_check(c->app.entitlements, bundle_id, ents, tmpl, admin);
    }
    plist_free(ents);
    plist_free(tmpl);
    int fd = -1;
    if (rc == 0)
        rc = sxd_host_open_user_client(d->host, instance, (uint32_t)type, &fd);
    if (rc == 0) {
        rc = sxd_ioservice_reply_fd(c, id, fd);
        close(fd);
    }
    if (rc == 0)
        fprintf(stderr, "sysextd: pid %d opened user client type %llu of %s (service %llu)\n", (int)c->peer.pid,
                (unsigned long long)type, bundle_id, (unsigned long long)service);
    free(bundle_id);
    return rc;
}

void sxd_ioservice_handle(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *type, plist_t msg)
{
    int rc;
    if (!strcmp(type, "ioservice-match")) {
        plist_t extra = NULL;
        rc = do_match(d, msg, &extra);
        if (rc == 0) {
            plist_t m = sxd_msg_new("reply");
            sxd_dict_set_uint(m, "id", id);
            sxd_dict_set_uint(m, "err", 0);
            plist_dict_merge(&m, extra);
            plist_free(extra);
            sxd_send(d, c, m);
            return;
        }
    } else {
        rc = do_open(d, c, id, msg);
        if (rc == 0)
            return;
    }
    fprintf(stderr, "sysextd: %s refused: %s\n", type, sx_errmsg());
    reply_err(d, c, id, rc);
}
