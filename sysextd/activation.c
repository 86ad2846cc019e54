/* The activation state machine: activate / replace / approve / deactivate / ownership. */
#include "util/common.h"
#include "sysext/activation.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/jobs.h"
#include "sysextd/ioservice.h"
#include "sysextd/proto.h"
#include "sysextd/services.h"
#include "util/fs.h"

#define ENT_INSTALL "com.apple.developer.system-extension.install"
#define ENT_REDIST "com.apple.developer.system-extension.redistributable"

#define CAT_DRIVER "com.apple.system_extension.driver_extension"
#define CAT_NETWORK "com.apple.system_extension.network_extension"
#define CAT_ES "com.apple.system_extension.endpoint_security"
#define CAT_CMIO "com.apple.system_extension.cmio"

/* Error names come from the one table the client library keeps (sysext_os_error_name). */

static bool gone_state(const char *st)
{
    return !strncmp(st, "validating", 10) || !strncmp(st, "terminat", 8) ||
           !strncmp(st, "uninstall", 9);
}

/* ---- messages --------------------------------------------------------------------------- */

static plist_t event_new(uint64_t id, const char *event)
{
    plist_t m = sxd_msg_new("event");
    sxd_dict_set_uint(m, "id", id);
    sxd_dict_set_str(m, "event", event);
    return m;
}

static void send_failed(sxd_daemon *d, sxd_conn *c, uint64_t id, int oserr, const char *msg)
{
    if (!c)
        return;
    if (oserr < 1 || oserr > 13)
        oserr = 1;
    plist_t m = event_new(id, "failed");
    sxd_dict_set_uint(m, "code", (uint64_t)oserr);
    sxd_dict_set_str(m, "name", sysext_os_error_name(oserr));
    sxd_dict_set_str(m, "message", msg && *msg ? msg : sysext_os_error_name(oserr));
    sxd_send(d, c, m);
    fprintf(stderr, "sysextd: request %llu failed with %d (%s): %s\n", (unsigned long long)id,
            oserr, sysext_os_error_name(oserr), msg ? msg : "");
}

static void send_finished(sxd_daemon *d, sxd_conn *c, uint64_t id, unsigned result)
{
    if (!c)
        return;
    plist_t m = event_new(id, "finished");
    sxd_dict_set_uint(m, "result", result);
    sxd_send(d, c, m);
}

static plist_t record_props(const sxd_record *r)
{
    plist_t p = plist_new_dict();
    sxd_dict_set_str(p, "uuid", r->uuid);
    sxd_dict_set_str(p, "identifier", r->identifier);
    sxd_dict_set_str(p, "version", r->version);
    sxd_dict_set_str(p, "short_version", r->short_version);
    sxd_dict_set_str(p, "path", r->staged_path);
    sxd_dict_set_str(p, "team_id", r->team_id);
    sxd_dict_set_str(p, "state", r->state);
    sxd_dict_set_str(p, "category", r->category);
    sxd_dict_set_str(p, "name", r->name);
    sxd_dict_set_str(p, "app_path", r->app_path);
    sxd_dict_set_str(p, "app_identifier", r->app_id);
    sxd_dict_set_bool(p, "enabled", !strcmp(r->state, SXD_ST_ENABLED));
    sxd_dict_set_bool(p, "awaiting_approval", !strcmp(r->state, SXD_ST_WAITING));
    sxd_dict_set_bool(p, "uninstalling",
                      !strncmp(r->state, "terminat", 8) || !strncmp(r->state, "uninstall", 9));
    return p;
}

static void reply(sxd_daemon *d, sxd_conn *c, uint64_t id, int rc, plist_t extra)
{
    plist_t m = sxd_msg_new("reply");
    sxd_dict_set_uint(m, "id", id);
    sxd_dict_set_uint(m, "err", rc < 0 ? (uint64_t)-rc : 0);
    if (rc < 0)
        sxd_dict_set_str(m, "message", sx_errmsg());
    if (extra) {
        plist_dict_merge(&m, extra);
        plist_free(extra);
    }
    sxd_send(d, c, m);
}

/* ---- pending requests ------------------------------------------------------------------- */

static sxd_pending *pending_add(sxd_daemon *d, sxd_conn *c, uint64_t id, sxd_wait wait,
                                const char *new_uuid, const char *old_uuid)
{
    sxd_pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->conn_serial = c->serial;
    p->req_id = id;
    p->wait = wait;
    snprintf(p->new_uuid, sizeof(p->new_uuid), "%s", new_uuid ? new_uuid : "");
    snprintf(p->old_uuid, sizeof(p->old_uuid), "%s", old_uuid ? old_uuid : "");
    p->next = d->pending;
    d->pending = p;
    c->npending++;
    return p;
}

static void pending_drop(sxd_daemon *d, sxd_pending *p)
{
    for (sxd_pending **pp = &d->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    sxd_conn *c = sxd_conn_by_serial(d, p->conn_serial);
    if (c && c->npending)
        c->npending--;
    free(p);
}

/* Tell everyone waiting on `uuid` for approval: finished (ok) or failed. */
static void notify_waiters(sxd_daemon *d, const char *uuid, int oserr, const char *msg)
{
    for (sxd_pending *p = d->pending, *next; p; p = next) {
        next = p->next;
        if (p->wait != SXD_WAIT_APPROVAL || strcmp(p->new_uuid, uuid))
            continue;
        sxd_conn *c = sxd_conn_by_serial(d, p->conn_serial);
        if (oserr)
            send_failed(d, c, p->req_id, oserr, msg);
        else
            send_finished(d, c, p->req_id, 0);
        pending_drop(d, p);
    }
}

/* ---- store transitions ------------------------------------------------------------------ */

/* Uninstall one record: terminating_for_uninstall -> uninstalling -> copy removed -> row gone.
 * (The driver host stops its processes between the first two steps, issue 6.) */
static int uninstall_record(sxd_daemon *d, const sxd_record *r)
{
    int rc;
    if ((rc = sxd_store_set_state(d->store, r->uuid, SXD_ST_TERM_UNINSTALL)) < 0 ||
        (rc = sxd_store_set_state(d->store, r->uuid, SXD_ST_UNINSTALLING)) < 0 ||
        (rc = sxd_store_unstage(d->store, r->uuid)) < 0 ||
        (rc = sxd_store_delete(d->store, r->uuid)) < 0)
        return rc;
    sxd_services_extensions_changed(d);
    notify_waiters(d, r->uuid, 11, "the extension was uninstalled");
    fprintf(stderr, "sysextd: uninstalled %s (%s/%s) %s\n", r->identifier, r->short_version,
            r->version, r->uuid);
    return 0;
}

/* Drop a staged copy that never became a live record. */
static void drop_staged(sxd_daemon *d, const char *uuid, bool has_row)
{
    if (sxd_store_unstage(d->store, uuid) == 0 && has_row)
        sxd_store_delete(d->store, uuid);
}

static void refresh_watches(sxd_daemon *d)
{
    sxd_record *v = NULL;
    size_t n = 0;
    if (sxd_store_list(d->store, NULL, &v, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        sxd_owner_add(d->owner, v[i].app_path);
    sxd_records_free(v, n);
}

/* ---- the caller ------------------------------------------------------------------------- */

static bool is_admin(const sxd_daemon *d, const sxd_conn *c)
{
    return sxd_is_admin(d, &c->peer);
}

static int resolve_app(sxd_daemon *d, sxd_conn *c, int *oserr)
{
    if (!c->app_resolved) {
        c->app_resolved = true;
        if (sxd_peer_app(&c->peer, d->cfg.trust, d->cfg.n_trust, &c->app, &c->app_oserr) < 0)
            c->app_error = strdup(sx_errmsg());
    }
    *oserr = c->app_oserr;
    if (c->app_oserr)
        return sx_err(SYSEXT_EPERM, "%s", c->app_error ? c->app_error : "unknown caller");
    if (!sxd_peer_alive(&c->peer)) {
        *oserr = 1;
        return sx_err(SYSEXT_EPERM, "the calling process is gone");
    }
    return 0;
}

int sxd_conn_app(sxd_daemon *d, sxd_conn *c, int *oserr)
{
    return resolve_app(d, c, oserr);
}

static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return !strncmp(path, dir, n) && path[n] == '/' && !strchr(path + n + 1, '/');
}

static bool location_allowed(const sxd_config *cfg, const char *app_path)
{
    static const char *const defaults[] = {"/Applications", "/opt/applications"};
    const char *const *v = cfg->n_allowed ? cfg->allowed : defaults;
    size_t n = cfg->n_allowed ? cfg->n_allowed : SX_ARRAY_SIZE(defaults);
    for (size_t i = 0; i < n; i++)
        if (path_under(app_path, v[i]))
            return true;
    return false;
}

static bool ext_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 200 || !strcmp(id, ".") || !strcmp(id, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!(ch == '.' || ch == '-' || ch == '_' || (ch >= '0' && ch <= '9') ||
              (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            return false;
    }
    return true;
}

static char *find_extension(const char *app_path, const char *ext_id)
{
    static const char *const sfx[] = {".dext", ".systemextension"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(sfx); i++) {
        char *p = NULL;
        if (asprintf(&p, "%s/Contents/Library/SystemExtensions/%s%s", app_path, ext_id, sfx[i]) <
            0)
            return NULL;
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            return p;
        free(p);
    }
    return NULL;
}

static const char *category_of(const sxd_code *x)
{
    if (x->kind == SXD_KIND_DEXT)
        return CAT_DRIVER;
    if (x->kind != SXD_KIND_SYSEXT)
        return NULL;
    if (x->info && plist_dict_get_item(x->info, "NetworkExtension"))
        return CAT_NETWORK;
    if (x->entitlements &&
        plist_dict_get_item(x->entitlements, "com.apple.developer.networking.networkextension"))
        return CAT_NETWORK;
    if (sxd_ent_true(x->entitlements, "com.apple.developer.endpoint-security.client"))
        return CAT_ES;
    if (x->info && plist_dict_get_item(x->info, "CMIOExtension"))
        return CAT_CMIO;
    return NULL;
}

static const char *policy_type_of(const char *category)
{
    if (!strcmp(category, CAT_DRIVER))
        return "DriverExtension";
    if (!strcmp(category, CAT_NETWORK))
        return "NetworkExtension";
    if (!strcmp(category, CAT_ES))
        return "EndpointSecurityExtension";
    return "";
}

/* ---- activation ------------------------------------------------------------------------- */

static int why_set(char *why, size_t len, int code, const char *fmt, ...) SX_PRINTF(4, 5);
static int why_set(char *why, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return code;
}

/* Checks 7-12 of reference 2.1 on the staged copy. Returns the OS error code, 0 when fine. */
/* Runs on a worker thread: reads only the immutable configuration. The policy check, which
 * a reload may change, happens on the loop (policy_check). */
static int validate_copy(const sxd_config *cfg, bool developer_mode, const sxd_code *app,
                         const char *ext_id, sxd_code *x, char *why, size_t whylen)
{
#define WHY(code, ...) return why_set(why, whylen, code, __VA_ARGS__)
    if (!x->identifier)
        WHY(5, "%s: Info.plist has no CFBundleIdentifier", x->path);
    if (strcmp(x->identifier, ext_id))
        WHY(4, "%s: CFBundleIdentifier is '%s', the request names '%s'", x->path,
                   x->identifier, ext_id);
    if (sxd_code_verify(x, cfg->trust, cfg->n_trust, true) < 0)
        WHY(8, "%s: %s", x->path, sx_errmsg());
    if (!x->sig_valid)
        WHY(8, "%s: code signature invalid: %s", x->path,
                   x->problems ? x->problems : "not signed");
    const char *team = x->team_id ? x->team_id : "";
    const char *app_team = app->team_id ? app->team_id : "";
    if (strcmp(team, app_team) && !sxd_ent_true(x->entitlements, ENT_REDIST))
        WHY(8, "%s: team ID '%s' differs from the app's '%s' and the extension is not "
                   "redistributable",
                   x->path, team, app_team);
    if (x->developer_id && cfg->notary_cert && !developer_mode &&
        !sxd_ticket_valid(x, app, cfg->notary_cert))
        WHY(8, "%s: Developer ID signed code without a valid stapled notarization ticket",
                   x->path);
    const char *cat = category_of(x);
    if (!cat)
        WHY(7, "%s: cannot tell the extension's category", x->path);
    if (!x->ents_ok)
        WHY(9, "%s: entitlements not allowed for its kind: %s", x->path,
                   x->problems ? x->problems : "?");
    if (x->kind == SXD_KIND_DEXT) {
        static const char *const req[] = {"CFBundleShortVersionString", "CFBundleVersion",
                                          "OSBundleUsageDescription"};
        for (size_t i = 0; i < SX_ARRAY_SIZE(req); i++)
            if (!sxd_info_str(x, req[i]))
                WHY(9, "%s: driver_extension category extensions must carry %s", x->path,
                           req[i]);
    } else {
        static const char *const req[] = {"CFBundleShortVersionString", "CFBundleVersion",
                                          "NSSystemExtensionUsageDescription"};
        for (size_t i = 0; i < SX_ARRAY_SIZE(req); i++)
            if (!sxd_info_str(x, req[i]))
                WHY(9, "%s: system extensions must carry %s", x->path, req[i]);
    }
    return 0;
#undef WHY
}

static int policy_check(const sxd_daemon *d, const sxd_code *x, char *why, size_t whylen)
{
    const char *team = x->team_id ? x->team_id : "";
    const char *type = policy_type_of(category_of(x));
    if (!sxd_policy_type_allowed(&d->policy, team, type))
        return why_set(why, whylen, 10,
                       "policy: team %s may not install %s extensions (AllowedSystemExtensionTypes)",
                       team, type);
    return 0;
}

static const char *initial_state(sxd_daemon *d, const sxd_record *r)
{
    return sxd_policy_allows(&d->policy, r->team_id, r->identifier) ? SXD_ST_ENABLED
                                                                     : SXD_ST_WAITING;
}

/* Record is now live in `state`: tell the client. */
static void announce(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *uuid, const char *state)
{
    sxd_services_extensions_changed(d);
    if (!strcmp(state, SXD_ST_ENABLED)) {
        send_finished(d, c, id, 0);
        return;
    }
    if (!pending_add(d, c, id, SXD_WAIT_APPROVAL, uuid, NULL)) {
        send_failed(d, c, id, 1, "out of memory");
        return;
    }
    sxd_send(d, c, event_new(id, "needs-user-approval"));
}

/* An activation in flight: the worker resolves the caller, stages and verifies the copy; the
 * loop then decides against the store (activation_done). */
typedef struct activate_job {
    const sxd_config *cfg;   /* immutable while the daemon runs */
    const char *ext_dir;     /* the store's extensions folder, immutable */
    bool developer_mode;     /* as it was when the request came */
    uint64_t conn_serial, id;
    char *ext_id;
    sxd_peer peer;           /* a copy: the connection may go while the worker runs */
    /* results */
    int oserr;
    char why[1024];
    sxd_code app, x;
    sxd_record rec;
    char *src;
    bool staged;
} activate_job;

static void activate_job_free(sxd_daemon *d, activate_job *j)
{
    if (j->staged && d && d->store)
        drop_staged(d, j->rec.uuid, false);
    free(j->ext_id);
    free(j->src);
    sxd_peer_clear(&j->peer);
    sxd_code_clear(&j->app);
    sxd_code_clear(&j->x);
    sxd_record_clear(&j->rec);
    free(j);
}

static int peer_copy(const sxd_peer *src, sxd_peer *dst)
{
    *dst = *src;
    dst->exe = NULL;
    dst->pidfd = -1;
    if (src->exe && !(dst->exe = strdup(src->exe)))
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (src->pidfd >= 0 && (dst->pidfd = fcntl(src->pidfd, F_DUPFD_CLOEXEC, 3)) < 0) {
        free(dst->exe);
        dst->exe = NULL;
        return sx_err_errno(SYSEXT_EIO, errno, "sysextd: dup pidfd");
    }
    return 0;
}

static void activate_work(void *arg)
{
    activate_job *j = arg;
    const sxd_config *cfg = j->cfg;
#define FAIL(code, ...)                                                                           \
    do {                                                                                          \
        j->oserr = (code);                                                                        \
        snprintf(j->why, sizeof(j->why), __VA_ARGS__);                                            \
        return;                                                                                   \
    } while (0)
    int oserr = 0;
    if (sxd_peer_app(&j->peer, cfg->trust, cfg->n_trust, &j->app, &oserr) < 0)
        FAIL(oserr ? oserr : 1, "%s", sx_errmsg());
    if (!sxd_peer_alive(&j->peer))
        FAIL(1, "the calling process is gone");
    const sxd_code *app = &j->app;
    if (!sxd_ent_true(app->entitlements, ENT_INSTALL))
        FAIL(2, "%s lacks the %s entitlement", app->path, ENT_INSTALL);
    if (!j->developer_mode && !location_allowed(cfg, app->path))
        FAIL(3, "%s is not in an allowed Applications folder", app->path);
    if (!ext_id_ok(j->ext_id) || !(j->src = find_extension(app->path, j->ext_id)))
        FAIL(4, "no extension '%s' in %s/Contents/Library/SystemExtensions", j->ext_id, app->path);
    /* Stage, then verify THE COPY. */
    if (sxd_store_stage_in(j->ext_dir, j->src, &j->rec) < 0)
        FAIL(1, "staging %s: %s", j->src, sx_errmsg());
    j->staged = true;
    if (sxd_code_open(j->rec.staged_path, &j->x) < 0)
        FAIL(9, "%s", sx_errmsg());
    j->oserr = validate_copy(cfg, j->developer_mode, app, j->ext_id, &j->x, j->why, sizeof(j->why));
#undef FAIL
}

static void activation_done(sxd_daemon *d, void *arg, bool cancelled);

static void do_activate(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *ext_id)
{
    activate_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->ext_id = strdup(ext_id)) || peer_copy(&c->peer, &j->peer) < 0) {
        if (j)
            free(j->ext_id);
        free(j);
        send_failed(d, c, id, 1, "out of memory");
        return;
    }
    j->cfg = &d->cfg;
    j->ext_dir = sxd_store_dir(d->store);
    j->developer_mode = d->developer_mode;
    j->conn_serial = c->serial;
    j->id = id;
    if (sxd_jobs_submit(d->jobs, activate_work, activation_done, j) < 0) {
        send_failed(d, c, id, 1, sx_errmsg());
        activate_job_free(d, j);
        return;
    }
    /* Requests on one connection are answered in order: hold its later frames until done. */
    c->busy = true;
}

static void activation_done(sxd_daemon *d, void *arg, bool cancelled)
{
    activate_job *j = arg;
    sxd_conn *c = cancelled ? NULL : sxd_conn_by_serial(d, j->conn_serial);
    if (!c || c->dead) {
        activate_job_free(d, j);
        return;
    }
    uint64_t id = j->id;
    const char *ext_id = j->ext_id;
    int oserr = j->oserr;
    char *why = j->why;
    const sxd_code *app = &j->app;
    sxd_code *xp = &j->x;
    sxd_record rec = j->rec; /* moved: j->rec is cleared below */
    memset(&j->rec, 0, sizeof(j->rec));
    bool staged = j->staged;
    j->staged = false;
    const char *src = j->src;
    sxd_record *all = NULL;
    size_t nall = 0;
    if (oserr)
        goto fail;
    if ((oserr = policy_check(d, xp, why, sizeof(j->why))) != 0)
        goto fail;
    const sxd_code *x = xp;
    rec.identifier = strdup(x->identifier);
    rec.team_id = strdup(x->team_id ? x->team_id : "");
    rec.version = strdup(x->version ? x->version : "");
    rec.short_version = strdup(x->short_version ? x->short_version : "");
    rec.category = strdup(category_of(x));
    rec.name = strdup(x->name ? x->name : x->identifier);
    rec.origin_path = strdup(src);
    rec.app_path = strdup(app->path);
    rec.app_id = strdup(app->identifier ? app->identifier : "");
    rec.app_team = strdup(app->team_id ? app->team_id : "");
    rec.app_cdhash = strdup(app->cdhash);
    rec.cdhash = strdup(x->cdhash);
    rec.created = (int64_t)time(NULL);
    if (!rec.identifier || !rec.team_id || !rec.version || !rec.short_version || !rec.category ||
        !rec.name || !rec.origin_path || !rec.app_path || !rec.app_id || !rec.app_team ||
        !rec.app_cdhash || !rec.cdhash) {
        snprintf(why, sizeof(j->why), "out of memory");
        oserr = 1;
        goto fail;
    }

    if (sxd_store_list(d->store, ext_id, &all, &nall) < 0) {
        snprintf(why, sizeof(j->why), "%s", sx_errmsg());
        oserr = 1;
        goto fail;
    }
    const sxd_record *existing = NULL;
    for (size_t i = 0; i < nall; i++) {
        if (gone_state(all[i].state))
            continue;
        if (strcmp(all[i].team_id, rec.team_id)) {
            snprintf(why, sizeof(j->why), "'%s' is already installed by team '%s'", ext_id,
                     all[i].team_id);
            oserr = 6;
            goto fail;
        }
        existing = &all[i];
    }
    if (existing) {
        bool same = !strcmp(existing->version, rec.version) &&
                    !strcmp(existing->short_version, rec.short_version);
        if (same && !d->developer_mode) {
            drop_staged(d, rec.uuid, false);
            staged = false;
            announce(d, c, id, existing->uuid, existing->state);
            goto out;
        }
        rec.state = strdup(SXD_ST_VALIDATING);
        if (!rec.state || sxd_store_insert(d->store, &rec) < 0) {
            snprintf(why, sizeof(j->why), "%s", rec.state ? sx_errmsg() : "out of memory");
            oserr = 1;
            goto fail;
        }
        if (!pending_add(d, c, id, SXD_WAIT_REPLACE, rec.uuid, existing->uuid)) {
            drop_staged(d, rec.uuid, true);
            staged = false;
            snprintf(why, sizeof(j->why), "out of memory");
            oserr = 1;
            goto fail;
        }
        plist_t m = event_new(id, "replacing");
        plist_dict_set_item(m, "existing", record_props(existing));
        plist_dict_set_item(m, "new", record_props(&rec));
        sxd_send(d, c, m);
        goto out;
    }
    rec.state = strdup(initial_state(d, &rec));
    if (!rec.state || sxd_store_insert(d->store, &rec) < 0) {
        snprintf(why, sizeof(j->why), "%s", rec.state ? sx_errmsg() : "out of memory");
        oserr = 1;
        goto fail;
    }
    sxd_owner_add(d->owner, rec.app_path);
    fprintf(stderr, "sysextd: activated %s (%s/%s) team %s from %s: %s\n", rec.identifier,
            rec.short_version, rec.version, rec.team_id, rec.app_path, rec.state);
    announce(d, c, id, rec.uuid, rec.state);
    goto out;
fail:
    if (staged)
        drop_staged(d, rec.uuid, false);
    send_failed(d, c, id, oserr, why);
out:
    sxd_records_free(all, nall);
    sxd_record_clear(&rec);
    activate_job_free(d, j);
    sxd_conn_resume(d, c);
}

static void do_replace_answer(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *action)
{
    sxd_pending *p = d->pending;
    for (; p; p = p->next)
        if (p->conn_serial == c->serial && p->req_id == id && p->wait == SXD_WAIT_REPLACE)
            break;
    if (!p)
        return; /* no question was asked: ignore */
    char new_uuid[37], old_uuid[37];
    memcpy(new_uuid, p->new_uuid, sizeof(new_uuid));
    memcpy(old_uuid, p->old_uuid, sizeof(old_uuid));
    pending_drop(d, p);
    if (!action || strcmp(action, "replace")) {
        drop_staged(d, new_uuid, true);
        send_failed(d, c, id, 11, "the delegate canceled the replacement");
        return;
    }
    sxd_record old, nw;
    memset(&old, 0, sizeof(old));
    memset(&nw, 0, sizeof(nw));
    if (sxd_store_get(d->store, new_uuid, &nw) < 0) {
        send_failed(d, c, id, 1, sx_errmsg());
        return;
    }
    const char *state;
    sx_err_clear();
    if (sxd_store_get(d->store, old_uuid, &old) < 0) {
        /* The record this question was about went away meanwhile (another request replaced
         * or removed it): this request is superseded. */
        drop_staged(d, new_uuid, true);
        send_failed(d, c, id, 12, "another request changed this extension meanwhile");
        goto out;
    }
    /* An approved extension's upgrade from the same team needs no new approval. */
    state = !strcmp(old.state, SXD_ST_ENABLED) && !strcmp(old.team_id, nw.team_id)
                ? SXD_ST_ENABLED
                : initial_state(d, &nw);
    if (sxd_store_replace(d->store, old_uuid, new_uuid, state) < 0) {
        drop_staged(d, new_uuid, true);
        send_failed(d, c, id, 1, sx_errmsg());
        goto out;
    }
    /* The old version stops (driver host, issue 6), then its copy and row go. */
    if (sxd_store_unstage(d->store, old_uuid) == 0)
        sxd_store_delete(d->store, old_uuid);
    notify_waiters(d, old_uuid, 12, "a newer request replaced this extension");
    sxd_owner_add(d->owner, nw.app_path);
    fprintf(stderr, "sysextd: replaced %s (%s/%s) with (%s/%s): %s\n", nw.identifier,
            old.short_version, old.version, nw.short_version, nw.version, state);
    announce(d, c, id, new_uuid, state);
out:
    sxd_record_clear(&old);
    sxd_record_clear(&nw);
}

static void do_deactivate(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *ext_id)
{
    int oserr = 0;
    if (resolve_app(d, c, &oserr) < 0) {
        send_failed(d, c, id, oserr, sx_errmsg());
        return;
    }
    const sxd_code *app = &c->app;
    if (!sxd_ent_true(app->entitlements, ENT_INSTALL)) {
        char why[600];
        snprintf(why, sizeof(why), "%s lacks the %s entitlement", app->path, ENT_INSTALL);
        send_failed(d, c, id, 2, why);
        return;
    }
    sxd_record *v = NULL;
    size_t n = 0;
    if (sxd_store_list(d->store, ext_id, &v, &n) < 0) {
        send_failed(d, c, id, 1, sx_errmsg());
        return;
    }
    size_t owned = 0;
    int fail = 0;
    char why[600] = "";
    for (size_t i = 0; i < n; i++) {
        const sxd_record *r = &v[i];
        if (gone_state(r->state) || strcmp(r->app_path, app->path) ||
            strcmp(r->app_id, app->identifier ? app->identifier : ""))
            continue;
        owned++;
        if (sxd_policy_non_removable(&d->policy, r->team_id, r->identifier) &&
            !d->developer_mode) {
            snprintf(why, sizeof(why), "policy: %s is in NonRemovableSystemExtensions",
                     r->identifier);
            fail = 10;
        } else if (!is_admin(d, c) &&
                   !sxd_policy_removable(&d->policy, r->team_id, r->identifier)) {
            snprintf(why, sizeof(why),
                     "deactivating %s needs an administrator (or RemovableSystemExtensions)",
                     r->identifier);
            fail = 13;
        }
    }
    if (!owned) {
        snprintf(why, sizeof(why), "no extension '%s' activated by %s", ext_id, app->path);
        fail = 4;
    }
    if (fail) {
        send_failed(d, c, id, fail, why);
        sxd_records_free(v, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const sxd_record *r = &v[i];
        if (gone_state(r->state) || strcmp(r->app_path, app->path))
            continue;
        if (uninstall_record(d, r) < 0) {
            send_failed(d, c, id, 1, sx_errmsg());
            sxd_records_free(v, n);
            return;
        }
    }
    sxd_records_free(v, n);
    send_finished(d, c, id, 0);
}

static void do_properties(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *ext_id)
{
    sxd_record *v = NULL;
    size_t n = 0;
    if (sxd_store_list(d->store, ext_id, &v, &n) < 0) {
        send_failed(d, c, id, 1, sx_errmsg());
        return;
    }
    plist_t m = event_new(id, "properties");
    plist_t arr = plist_new_array();
    for (size_t i = 0; i < n; i++)
        plist_array_append_item(arr, record_props(&v[i]));
    plist_dict_set_item(m, "items", arr);
    sxd_send(d, c, m);
    sxd_records_free(v, n);
    send_finished(d, c, id, 0);
}

/* ---- administration --------------------------------------------------------------------- */

static int enable_record(sxd_daemon *d, const sxd_record *r)
{
    int rc;
    if ((rc = sxd_store_set_state(d->store, r->uuid, SXD_ST_ENABLING)) < 0 ||
        (rc = sxd_store_set_state(d->store, r->uuid, SXD_ST_ENABLED)) < 0)
        return rc;
    sxd_services_extensions_changed(d);
    notify_waiters(d, r->uuid, 0, NULL);
    return 0;
}

static int admin_approve(sxd_daemon *d, const char *ext_id)
{
    sxd_record *v = NULL;
    size_t n = 0;
    int rc = sxd_store_list(d->store, ext_id, &v, &n);
    if (rc < 0)
        return rc;
    size_t done = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (strcmp(v[i].state, SXD_ST_WAITING))
            continue;
        if (!d->policy.allow_user_overrides &&
            !sxd_policy_allows(&d->policy, v[i].team_id, v[i].identifier)) {
            rc = sx_err(SYSEXT_EREJECTED,
                        "policy: AllowUserOverrides is false and %s is not allowed by policy",
                        ext_id);
            break;
        }
        if ((rc = enable_record(d, &v[i])) == 0)
            done++;
    }
    sxd_records_free(v, n);
    if (rc == 0 && !done)
        rc = sx_err(SYSEXT_ENOTFOUND, "no extension '%s' is waiting for approval", ext_id);
    return rc;
}

typedef bool (*record_filter)(sxd_daemon *d, const sxd_record *r, const void *arg);

static int uninstall_matching(sxd_daemon *d, record_filter f, const void *arg, plist_t removed,
                              size_t *count)
{
    sxd_record *v = NULL;
    size_t n = 0;
    *count = 0;
    int rc = sxd_store_list(d->store, NULL, &v, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!f(d, &v[i], arg))
            continue;
        if ((rc = uninstall_record(d, &v[i])) == 0) {
            (*count)++;
            if (removed) {
                char line[600];
                snprintf(line, sizeof(line), "%s\t%s (%s/%s)", v[i].team_id, v[i].identifier,
                         v[i].short_version, v[i].version);
                plist_array_append_item(removed, plist_new_string(line));
            }
        }
    }
    sxd_records_free(v, n);
    return rc;
}

struct team_id {
    const char *team, *id;
};

static bool match_team_id(sxd_daemon *d, const sxd_record *r, const void *arg)
{
    const struct team_id *t = arg;
    SX_UNUSED(d);
    const char *team = strcmp(t->team, "-") ? t->team : "";
    return !strcmp(r->team_id, team) && !strcmp(r->identifier, t->id);
}

static bool match_all(sxd_daemon *d, const sxd_record *r, const void *arg)
{
    SX_UNUSED(d);
    SX_UNUSED(r);
    SX_UNUSED(arg);
    return true;
}

static bool match_app(sxd_daemon *d, const sxd_record *r, const void *arg)
{
    SX_UNUSED(d);
    return !strcmp(r->app_path, (const char *)arg);
}

/* gc: records whose app is gone or is no longer the same app. */
static bool match_orphan(sxd_daemon *d, const sxd_record *r, const void *arg)
{
    SX_UNUSED(d);
    SX_UNUSED(arg);
    if (!sx_is_dir(r->app_path))
        return true;
    sxd_code app;
    if (sxd_code_open(r->app_path, &app) < 0)
        return true;
    bool orphan = !app.identifier || strcmp(app.identifier, r->app_id);
    sxd_code_clear(&app);
    return orphan;
}

static void handle_admin(sxd_daemon *d, sxd_conn *c, uint64_t id, const char *type, plist_t msg)
{
    if (!is_admin(d, c)) {
        reply(d, c, id,
              d->has_admin_gid
                  ? sx_err(SYSEXT_EPERM, "'%s' needs root, the daemon's user (uid %u) or group %u",
                           type, (unsigned)d->admin_uid, (unsigned)d->admin_gid)
                  : sx_err(SYSEXT_EPERM, "'%s' needs root or the daemon's user (uid %u)", type,
                           (unsigned)d->admin_uid),
              NULL);
        return;
    }
    int rc = 0;
    plist_t extra = plist_new_dict();
    if (!strcmp(type, "list")) {
        sxd_record *v = NULL;
        size_t n = 0;
        if ((rc = sxd_store_list(d->store, NULL, &v, &n)) == 0) {
            plist_t arr = plist_new_array();
            for (size_t i = 0; i < n; i++)
                plist_array_append_item(arr, record_props(&v[i]));
            plist_dict_set_item(extra, "records", arr);
            sxd_dict_set_bool(extra, "developer", d->developer_mode);
            plist_t drivers = NULL;
            if (d->host && sxd_host_snapshot(d->host, &drivers) == 0)
                plist_dict_set_item(extra, "drivers", drivers);
        }
        sxd_records_free(v, n);
    } else if (!strcmp(type, "approve")) {
        const char *ext = sxd_dict_str(msg, "ext");
        rc = ext ? admin_approve(d, ext) : sx_err(SYSEXT_EINVAL, "approve: no 'ext'");
    } else if (!strcmp(type, "uninstall")) {
        struct team_id t = {sxd_dict_str(msg, "team"), sxd_dict_str(msg, "ext")};
        size_t cnt = 0;
        if (!t.team || !t.id)
            rc = sx_err(SYSEXT_EINVAL, "uninstall: needs 'team' and 'ext'");
        else if (sxd_policy_non_removable(&d->policy, strcmp(t.team, "-") ? t.team : "", t.id) &&
                 !d->developer_mode)
            rc = sx_err(SYSEXT_EREJECTED, "policy: %s is in NonRemovableSystemExtensions", t.id);
        else if ((rc = uninstall_matching(d, match_team_id, &t, NULL, &cnt)) == 0 && !cnt)
            rc = sx_err(SYSEXT_ENOTFOUND, "no extension %s of team %s", t.id, t.team);
    } else if (!strcmp(type, "developer")) {
        const char *mode = sxd_dict_str(msg, "mode");
        if (mode && (!strcmp(mode, "on") || !strcmp(mode, "off"))) {
            if ((rc = sxd_store_set_setting(d->store, "developer_mode", mode)) == 0)
                d->developer_mode = !strcmp(mode, "on") || d->cfg.developer_mode;
        } else if (mode) {
            rc = sx_err(SYSEXT_EINVAL, "developer: mode must be on or off, not '%s'", mode);
        }
        sxd_dict_set_bool(extra, "developer", d->developer_mode);
    } else if (!strcmp(type, "reset")) {
        size_t cnt = 0;
        plist_t removed = plist_new_array();
        rc = uninstall_matching(d, match_all, NULL, removed, &cnt);
        plist_dict_set_item(extra, "removed", removed);
    } else if (!strcmp(type, "gc")) {
        size_t cnt = 0;
        plist_t removed = plist_new_array();
        rc = uninstall_matching(d, match_orphan, NULL, removed, &cnt);
        plist_dict_set_item(extra, "removed", removed);
    } else if (!strcmp(type, "policy-show")) {
        plist_dict_set_item(extra, "policy", sxd_policy_to_plist(&d->policy));
        sxd_dict_set_str(extra, "path", d->cfg.policy_path);
    } else if (sxd_services_handle_admin(d, type, msg, extra, &rc)) {
    } else {
        rc = sx_err(SYSEXT_EUNSUPPORTED, "unknown request type '%s'", type);
    }
    reply(d, c, id, rc, extra);
}

/* ---- entry points ----------------------------------------------------------------------- */

void sxd_handle_message(sxd_daemon *d, sxd_conn *c, plist_t msg)
{
    const char *type = sxd_dict_str(msg, "type");
    uint64_t id = sxd_dict_uint(msg, "id", 0);
    if (!strcmp(type, "ioservice-match") || !strcmp(type, "ioservice-open")) {
        sxd_ioservice_handle(d, c, id, type, msg);
        return;
    }
    if (!strcmp(type, "replace-answer")) {
        do_replace_answer(d, c, id, sxd_dict_str(msg, "action"));
        return;
    }
    bool is_req = !strcmp(type, "activate") || !strcmp(type, "deactivate") ||
                  !strcmp(type, "properties");
    if (!is_req) {
        handle_admin(d, c, id, type, msg);
        return;
    }
    const char *ext = sxd_dict_str(msg, "ext");
    if (!ext || !*ext) {
        send_failed(d, c, id, 5, "the request names no extension identifier");
        return;
    }
    if (c->npending >= SXD_MAX_PENDING_PER_CONN) {
        send_failed(d, c, id, 1, "too many pending requests on this connection");
        return;
    }
    /* A newer request for the same identifier from this connection supersedes older ones. */
    if (!strcmp(type, "activate")) {
        do_activate(d, c, id, ext);
    } else if (!strcmp(type, "deactivate")) {
        do_deactivate(d, c, id, ext);
    } else {
        do_properties(d, c, id, ext);
    }
}

void sxd_conn_gone(sxd_daemon *d, sxd_conn *c)
{
    for (sxd_pending *p = d->pending, *next; p; p = next) {
        next = p->next;
        if (p->conn_serial != c->serial)
            continue;
        /* A question nobody will answer: the staged copy goes. A request waiting for
         * approval is dropped; its record stays waiting (as Apple's does). */
        if (p->wait == SXD_WAIT_REPLACE)
            drop_staged(d, p->new_uuid, true);
        pending_drop(d, p);
    }
}

void sxd_owner_due(sxd_daemon *d, const char *app_path)
{
    sxd_record *v = NULL;
    size_t n = 0;
    if (sxd_store_list(d->store, NULL, &v, &n) < 0)
        return;
    const sxd_record *ref = NULL;
    for (size_t i = 0; i < n && !ref; i++)
        if (!strcmp(v[i].app_path, app_path))
            ref = &v[i];
    if (!ref) {
        sxd_owner_remove(d->owner, app_path);
        sxd_records_free(v, n);
        return;
    }
    bool keep = false;
    sxd_code app;
    memset(&app, 0, sizeof(app));
    if (sx_is_dir(app_path) && sxd_code_open(app_path, &app) == 0 && app.identifier &&
        !strcmp(app.identifier, ref->app_id)) {
        if (sxd_code_verify(&app, d->cfg.trust, d->cfg.n_trust, false) == 0 && app.sig_valid &&
            !strcmp(app.team_id ? app.team_id : "", ref->app_team)) {
            keep = true;
            if (strcmp(app.cdhash, ref->app_cdhash)) {
                sxd_store_update_owner(d->store, app_path, app.cdhash);
                fprintf(stderr, "sysextd: %s was replaced by a valid update: ownership kept\n",
                        app_path);
            }
        } else {
            keep = false;
        }
    }
    sxd_code_clear(&app);
    sxd_records_free(v, n);
    if (keep)
        return;
    fprintf(stderr, "sysextd: %s is gone: uninstalling its extensions\n", app_path);
    size_t cnt = 0;
    uninstall_matching(d, match_app, app_path, NULL, &cnt);
    sxd_owner_remove(d->owner, app_path);
}

int sxd_reload_policy(sxd_daemon *d)
{
    sxd_policy np;
    int rc = d->cfg.policy_path && sx_path_exists(d->cfg.policy_path)
                 ? sxd_policy_load(d->cfg.policy_path, &np)
                 : sxd_policy_init_empty(&np);
    if (rc < 0)
        return rc;
    sxd_policy_free(&d->policy);
    d->policy = np;
    /* Live effect: a pending extension the policy now allows is enabled. */
    sxd_record *v = NULL;
    size_t n = 0;
    if (sxd_store_list(d->store, NULL, &v, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(v[i].state, SXD_ST_WAITING) &&
                sxd_policy_allows(&d->policy, v[i].team_id, v[i].identifier))
                enable_record(d, &v[i]);
    sxd_records_free(v, n);
    return 0;
}

int sxd_daemon_start(sxd_daemon *d)
{
    int rc;
    unsigned fixed = 0;
    sxd_crashpoint_init();
    d->admin_uid = geteuid();
    if (d->cfg.admin_group) {
        int grc = sxd_admin_group_resolve(d->cfg.admin_group, &d->admin_gid);
        if (grc < 0)
            return grc;
        d->has_admin_gid = true;
    }
    if ((rc = sxd_store_open(d->cfg.state_dir, &d->store)) < 0)
        return rc;
    if ((rc = sxd_jobs_new(2, &d->jobs)) < 0)
        return rc;
    if ((rc = sxd_store_reconcile(d->store, &fixed)) < 0)
        return rc;
    if (fixed)
        fprintf(stderr, "sysextd: reconciled the store: %u fix(es)\n", fixed);
    _sx_cleanup_free_ char *dev = NULL;
    if ((rc = sxd_store_get_setting(d->store, "developer_mode", &dev)) < 0)
        return rc;
    d->developer_mode = d->cfg.developer_mode || (dev && !strcmp(dev, "on"));
    if ((rc = sxd_policy_init_empty(&d->policy)) < 0)
        return rc;
    if ((rc = sxd_reload_policy(d)) < 0)
        return rc;
    if ((rc = sxd_owner_open(d->cfg.grace_period, &d->owner)) < 0)
        return rc;
    refresh_watches(d);
    /* the host first: the device services start drivers on it and hear its states */
    if ((rc = sxd_host_start_daemon(d)) < 0)
        return rc;
    return sxd_services_start(d);
}

void sxd_daemon_stop(sxd_daemon *d)
{
    sxd_jobs_free(d->jobs, d); /* before the store: cancelled jobs drop their staged copies */
    d->jobs = NULL;
    sxd_services_stop(d); /* stops the drivers while the host is still there */
    sxd_host_free(d->host);
    d->host = NULL;
    while (d->pending) {
        sxd_pending *p = d->pending;
        d->pending = p->next;
        free(p);
    }
    sxd_owner_close(d->owner);
    d->owner = NULL;
    sxd_policy_free(&d->policy);
    sxd_store_close(d->store);
    d->store = NULL;
}
