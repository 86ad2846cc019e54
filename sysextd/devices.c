/* The daemon's device services (services.h): the registry, the personalities of the enabled
 * driver extensions, matching, and the driver instances started through the host.
 *
 * Flow: a change of the enabled set (sxd_services_extensions_changed) or of the devices
 * (attach, detach, loss) reruns sx_registry_rematch. Its callback only records what changed;
 * afterwards the lost drivers are stopped (sxd_host_stop) and the new winners started
 * (sxd_host_start), outside the registry walk. The host reports each instance's state through
 * sxd_services_driver_state: RUNNING adds the driver service nub (class = IOUserClass, child of
 * its provider), STOPPED / CRASHED / GAVE_UP / START_FAILED terminate it; the binding's state
 * string on the provider mirrors the host's. Nubs terminated from a host callback are reaped
 * on the next loop iteration (sxd_services_tick), never inside the host's own dispatch. */
#include "util/common.h"

#include <inttypes.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/devices.h"
#include "sysextd/host.h"
#include "sysextd/proto.h"
#include "sysextd/services.h"
#include "util/fs.h"

#define CAT_DRIVER "com.apple.system_extension.driver_extension"
#define MAX_INFO_PLIST (4u << 20)

/* ---- the enabled dexts ----------------------------------------------------------------- */

static void dext_clear(sxd_dext *x)
{
    free(x->bundle_id);
    free(x->version);
    free(x->staged_path);
    free(x->executable);
    memset(x, 0, sizeof(*x));
}

static void dexts_free(sxd_dext *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dext_clear(&v[i]);
    free(v);
}

static const sxd_dext *dext_find(const sxd_services *sv, const char *bundle_id)
{
    for (size_t i = 0; i < sv->n_dexts; i++)
        if (!strcmp(sv->dexts[i].bundle_id, bundle_id))
            return &sv->dexts[i];
    return NULL;
}

/* The Info.plist of a staged dext (flat layout, or Contents/ as a fallback). */
static int read_info(const char *staged, plist_t *out)
{
    *out = NULL;
    _sx_cleanup_free_ char *p = sx_path_join(staged, "Info.plist");
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (!sx_path_exists(p)) {
        free(p);
        if (asprintf(&p, "%s/Contents/Info.plist", staged) < 0) {
            p = NULL;
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sx_read_file(p, MAX_INFO_PLIST, &data, &len);
    if (rc < 0)
        return rc;
    plist_t root = NULL;
    if (len <= UINT32_MAX)
        plist_from_memory((const char *)data, (uint32_t)len, &root);
    free(data);
    if (!root || plist_get_node_type(root) != PLIST_DICT) {
        plist_free(root);
        return sx_err(SYSEXT_EFORMAT, "%s: not a plist dictionary", p);
    }
    *out = root;
    return 0;
}

/* The enabled driver extensions and their personalities, from the store. */
static int load_enabled(sxd_daemon *d, sxd_dext **out, size_t *n_out, sx_personality_set *set)
{
    sxd_record *v = NULL;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    int rc = sxd_store_list(d->store, NULL, &v, &n);
    if (rc < 0)
        return rc;
    sxd_dext *dx = n ? calloc(n, sizeof(*dx)) : NULL;
    size_t nd = 0;
    if (n && !dx) {
        sxd_records_free(v, n);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const sxd_record *r = &v[i];
        if (strcmp(r->state, SXD_ST_ENABLED) || strcmp(r->category, CAT_DRIVER))
            continue;
        plist_t info = NULL;
        if (read_info(r->staged_path, &info) < 0) {
            fprintf(stderr, "sysextd: %s: personalities not loaded: %s\n", r->identifier,
                    sx_errmsg());
            continue;
        }
        const char *exe = sxd_dict_str(info, "CFBundleExecutable");
        plist_t pers = plist_dict_get_item(info, "IOKitPersonalities");
        sxd_dext *x = &dx[nd];
        x->bundle_id = strdup(r->identifier);
        x->version = strdup(r->version);
        x->staged_path = strdup(r->staged_path);
        if (exe && !strchr(exe, '/') && strcmp(exe, "..") &&
            asprintf(&x->executable, "%s/%s", r->staged_path, exe) < 0)
            x->executable = NULL;
        if (!x->executable)
            x->executable = strdup("");
        if (!x->bundle_id || !x->version || !x->staged_path || !x->executable) {
            plist_free(info);
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        nd++;
        if (pers && plist_get_node_type(pers) == PLIST_DICT &&
            (rc = sx_personality_set_add_bundle(set, r->identifier, r->version, pers)) < 0) {
            plist_free(info);
            break;
        }
        plist_free(info);
    }
    sxd_records_free(v, n);
    if (rc < 0) {
        dexts_free(dx, nd);
        return rc;
    }
    *out = dx;
    *n_out = nd;
    return 0;
}

/* ---- instances ------------------------------------------------------------------------- */

static void inst_clear(sxd_instance *in)
{
    free(in->category);
    free(in->bundle_id);
    free(in->user_class);
    free(in->kernel_class);
    free(in->server_name);
    free(in->personality);
    memset(in, 0, sizeof(*in));
}

static sxd_instance *inst_by_id(sxd_services *sv, uint64_t id)
{
    for (size_t i = 0; i < sv->n_inst; i++)
        if (sv->inst[i].id == id && id)
            return &sv->inst[i];
    return NULL;
}

static ssize_t inst_index_on(sxd_services *sv, uint64_t nub, const char *category)
{
    for (size_t i = 0; i < sv->n_inst; i++)
        if (sv->inst[i].provider_id == nub && !strcmp(sv->inst[i].category, category))
            return (ssize_t)i;
    return -1;
}

/* The driver service nub of `in` goes (terminated now, reaped at the next rematch). */
static void inst_drop_service(sxd_daemon *d, sxd_instance *in)
{
    if (!in->service_id)
        return;
    sx_nub *n = sx_registry_find(d->registry, in->service_id);
    if (n && !(n->state & SX_NUB_TERMINATED))
        sx_registry_terminate(d->registry, n);
    in->service_id = 0;
    d->services->need_rematch = true;
}

static void inst_remove(sxd_daemon *d, size_t i)
{
    sxd_services *sv = d->services;
    inst_drop_service(d, &sv->inst[i]);
    inst_clear(&sv->inst[i]);
    memmove(&sv->inst[i], &sv->inst[i + 1], (sv->n_inst - i - 1) * sizeof(*sv->inst));
    sv->n_inst--;
    if (sv->launching == (ssize_t)i)
        sv->launching = -2; /* removed while its start runs */
    else if (sv->launching > (ssize_t)i)
        sv->launching--;
}

/* Forget the instance first, then tell the host (whose on_state may come back at once). */
/* The attached USB device a nub belongs to (itself or its parent), 0 for other nubs. */
static uint64_t device_of(sxd_daemon *d, uint64_t nub_id)
{
    sx_nub *n = sx_registry_find(d->registry, nub_id);
    if (!n)
        return 0;
    if (!strcmp(n->class_name, "IOUSBHostDevice"))
        return n->id;
    if (!strcmp(n->class_name, "IOUSBHostInterface") && n->parent)
        return n->parent->id;
    return 0;
}

static bool device_draining(const sxd_services *sv, uint64_t device)
{
    for (size_t i = 0; device && i < sv->n_draining; i++)
        if (sv->draining[i].device == device)
            return true;
    return false;
}

static void inst_stop(sxd_daemon *d, size_t i)
{
    uint64_t id = d->services->inst[i].id;
    sxd_services *sv = d->services;
    uint64_t dev = device_of(d, sv->inst[i].provider_id);
    if (id && dev) {
        struct sxd_draining *nv = reallocarray(sv->draining, sv->n_draining + 1, sizeof(*nv));
        if (nv) {
            sv->draining = nv;
            sv->draining[sv->n_draining++] = (struct sxd_draining){id, dev};
        }
    }
    fprintf(stderr, "sysextd: stopping driver instance %" PRIu64 " (%s on nub %#" PRIx64 ")\n",
            id, d->services->inst[i].bundle_id, d->services->inst[i].provider_id);
    inst_remove(d, i);
    if (id && sxd_host_stop(d->host, id) < 0)
        fprintf(stderr, "sysextd: stopping driver instance %" PRIu64 ": %s\n", id, sx_errmsg());
}

static int set_binding_state(sxd_daemon *d, uint64_t nub_id, const char *category,
                             const char *state)
{
    sx_nub *n = sx_registry_find(d->registry, nub_id);
    return n ? sx_nub_set_driver_state(n, category, state) : SYSEXT_ENOTFOUND;
}

static int add_service_nub(sxd_daemon *d, sxd_instance *in)
{
    sx_nub *prov = sx_registry_find(d->registry, in->provider_id);
    if (!prov || (prov->state & SX_NUB_TERMINATED))
        return sx_err(SYSEXT_ENOTFOUND, "provider %#" PRIx64 " is gone", in->provider_id);
    plist_t props = plist_new_dict();
    const char *cls = *in->user_class ? in->user_class : "IOUserService";
    sxd_dict_set_str(props, "IOUserClass", cls);
    sxd_dict_set_str(props, "IOClass", in->kernel_class);
    sxd_dict_set_str(props, "CFBundleIdentifier", in->bundle_id);
    sxd_dict_set_str(props, "IOUserServerName", in->server_name);
    sxd_dict_set_str(props, "IOPersonalityName", in->personality);
    sxd_dict_set_str(props, "IOMatchCategory", in->category);
    sxd_dict_set_uint(props, "DriverInstance", in->id);
    sx_nub *n = NULL;
    int rc = sx_registry_add_nub(d->registry, prov, cls, cls, props, &n);
    plist_free(props);
    if (rc < 0)
        return rc;
    in->service_id = n->id;
    return 0;
}

void sxd_services_driver_state(void *daemon, uint64_t instance, const char *state,
                               const char *why)
{
    sxd_daemon *d = daemon;
    sxd_services *sv = d ? d->services : NULL;
    if (!sv || !state)
        return;
    if (strcmp(state, SXD_DRV_STOPPING) && strcmp(state, SXD_DRV_RUNNING) &&
        strcmp(state, SXD_DRV_STARTING))
        for (size_t i = 0; i < sv->n_draining; i++)
            if (sv->draining[i].instance == instance) {
                sv->draining[i] = sv->draining[--sv->n_draining];
                sv->need_deferred = true; /* its device is free for the starts that wait */
                break;
            }
    sxd_instance *in = inst_by_id(sv, instance);
    if (!in && sv->launching >= 0 && !sv->inst[sv->launching].id) {
        in = &sv->inst[sv->launching];
        in->id = instance;
    }
    if (!in)
        return; /* an instance the daemon already let go of */
    fprintf(stderr, "sysextd: driver instance %" PRIu64 " (%s): %s%s%s\n", instance,
            in->bundle_id, state, why ? ": " : "", why ? why : "");
    snprintf(in->state, sizeof(in->state), "%s", state);
    set_binding_state(d, in->provider_id, in->category, state);
    if (!strcmp(state, SXD_DRV_CRASHED))
        sv->need_reset = true; /* on the next tick, before the host's relaunch is due */
    if (!strcmp(state, SXD_DRV_RUNNING)) {
        if (!in->service_id && add_service_nub(d, in) < 0)
            fprintf(stderr, "sysextd: driver instance %" PRIu64 ": %s\n", instance, sx_errmsg());
    } else if (strcmp(state, SXD_DRV_STARTING) && strcmp(state, SXD_DRV_STOPPING)) {
        inst_drop_service(d, in);
        if (!strcmp(state, SXD_DRV_STOPPED))
            inst_remove(d, (size_t)(in - sv->inst));
    }
}

/* ---- rematch ---------------------------------------------------------------------------- */

typedef struct change {
    uint64_t nub;
    char *category;
    char *bundle_id, *personality; /* the winner, NULL when the driver was only lost */
    bool lost;                      /* a previous driver went (or was replaced) */
} change;

typedef struct changes {
    change *v;
    size_t n;
    int rc;
} changes;

static void changes_free(changes *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].category);
        free(c->v[i].bundle_id);
        free(c->v[i].personality);
    }
    free(c->v);
}

static void on_rematch(void *ctx, const sx_nub *nub, const sx_binding *winner,
                       const sx_binding *previous)
{
    changes *c = ctx;
    change *nv = reallocarray(c->v, c->n + 1, sizeof(*nv));
    if (!nv) {
        c->rc = SYSEXT_ENOMEM;
        return;
    }
    c->v = nv;
    change *ch = &c->v[c->n];
    memset(ch, 0, sizeof(*ch));
    const sx_binding *b = winner ? winner : previous;
    ch->nub = nub->id;
    ch->category = strdup(b->category);
    ch->lost = previous != NULL;
    if (winner) {
        ch->bundle_id = strdup(winner->bundle_id);
        ch->personality = strdup(winner->personality);
    }
    if (!ch->category || (winner && (!ch->bundle_id || !ch->personality))) {
        free(ch->category);
        free(ch->bundle_id);
        free(ch->personality);
        c->rc = SYSEXT_ENOMEM;
        return;
    }
    c->n++;
}

static const sx_personality *personality_find(const sxd_services *sv, const char *bundle_id,
                                              const char *name)
{
    for (size_t i = 0; i < sv->set.n; i++)
        if (!strcmp(sv->set.items[i].bundle_id, bundle_id) && !strcmp(sv->set.items[i].name, name))
            return &sv->set.items[i];
    return NULL;
}

static const char *pstr(plist_t dict, const char *key)
{
    const char *s = sxd_dict_str(dict, key);
    return s ? s : "";
}

static int start_one(sxd_daemon *d, const change *ch)
{
    sxd_services *sv = d->services;
    const sx_personality *p = personality_find(sv, ch->bundle_id, ch->personality);
    const sxd_dext *x = dext_find(sv, ch->bundle_id);
    sx_nub *nub = sx_registry_find(d->registry, ch->nub);
    if (!p || !x || !nub)
        return sx_err(SYSEXT_ENOTFOUND, "%s/%s on nub %#" PRIx64 ": gone before its start",
                      ch->bundle_id, ch->personality, ch->nub);
    char why[256];
    if (!sxd_transport_entitled(x->staged_path, nub, why, sizeof(why))) {
        fprintf(stderr, "sysextd: not starting %s (%s) on nub %#" PRIx64 ": %s\n", ch->bundle_id,
                ch->personality, ch->nub, why);
        set_binding_state(d, ch->nub, ch->category, SXD_DRV_START_FAILED);
        return 0;
    }
    if (sv->n_inst == sv->cap_inst) {
        size_t cap = sv->cap_inst ? sv->cap_inst * 2 : 8;
        sxd_instance *nv = reallocarray(sv->inst, cap, sizeof(*nv));
        if (!nv)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        sv->inst = nv;
        sv->cap_inst = cap;
    }
    sxd_instance *in = &sv->inst[sv->n_inst];
    memset(in, 0, sizeof(*in));
    in->provider_id = ch->nub;
    in->category = strdup(ch->category);
    in->bundle_id = strdup(ch->bundle_id);
    in->user_class = strdup(pstr(p->dict, "IOUserClass"));
    in->kernel_class = strdup(*pstr(p->dict, "IOClass") ? pstr(p->dict, "IOClass") : "IOUserService");
    in->server_name = strdup(pstr(p->dict, "IOUserServerName"));
    in->personality = strdup(ch->personality);
    snprintf(in->state, sizeof(in->state), "%s", SXD_DRV_STARTING);
    if (!in->category || !in->bundle_id || !in->user_class || !in->server_name ||
        !in->personality || !in->kernel_class) {
        inst_clear(in);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    size_t idx = sv->n_inst++;
    set_binding_state(d, ch->nub, ch->category, SXD_DRV_STARTING);

    if (sxd_usb_prepare_session(d, nub->id) < 0) {
        fprintf(stderr, "sysextd: starting %s on nub %#" PRIx64 ": %s\n", ch->bundle_id, ch->nub,
                sx_errmsg());
        set_binding_state(d, ch->nub, ch->category, SXD_DRV_START_FAILED);
        inst_remove(d, idx);
        return 0;
    }
    nub = sx_registry_find(d->registry, ch->nub); /* a failed renewal removes the device */
    if (!nub) {
        inst_remove(d, idx);
        return 0;
    }
    int fds[1];
    size_t n_fds = sxd_services_nub_fds(d, nub, fds);
    uint8_t one = 0;
    plist_t op = plist_dict_get_item(p->dict, "IOUserServerOneProcess");
    if (op && plist_get_node_type(op) == PLIST_BOOLEAN)
        plist_get_bool_val(op, &one);
    sxd_launch l = {
        .bundle_id = x->bundle_id,
        .bundle_path = x->staged_path,
        .executable = x->executable,
        .server_name = sv->inst[idx].server_name,
        .user_class = sv->inst[idx].user_class,
        .personality = p->dict,
        .one_process = one != 0,
    };
    sxd_provider prov = {
        .registry_id = nub->id,
        .class_name = nub->class_name,
        .properties = nub->props,
        .fds = n_fds ? fds : NULL,
        .n_fds = n_fds,
    };
    uint64_t instance = 0;
    sv->launching = (ssize_t)idx;
    int rc = sxd_host_start(d->host, &l, &prov, &instance);
    ssize_t at = sv->launching; /* on_state may have removed entries, this one too */
    sv->launching = -1;
    if (rc < 0) {
        fprintf(stderr, "sysextd: starting %s (%s) on nub %#" PRIx64 ": %s\n", ch->bundle_id,
                ch->personality, ch->nub, sx_errmsg());
        set_binding_state(d, ch->nub, ch->category, SXD_DRV_START_FAILED);
        if (at >= 0)
            inst_remove(d, (size_t)at);
        return rc;
    }
    if (at >= 0)
        sv->inst[at].id = instance;
    fprintf(stderr, "sysextd: started %s (%s, %s) on nub %#" PRIx64 " as instance %" PRIu64 "\n",
            ch->bundle_id, ch->personality, l.user_class, ch->nub, instance);
    return 0;
}

int sxd_services_rematch(sxd_daemon *d)
{
    sxd_services *sv = d->services;
    int rc = 0;
    /* A terminated driver service nub needs one more pass to be reaped. */
    for (int pass = 0; pass < 4; pass++) {
        sv->need_rematch = false;
        changes c = {0};
        rc = sx_registry_rematch(d->registry, &sv->set, on_rematch, &c);
        if (rc == 0 && c.rc < 0)
            rc = sx_err(c.rc, "rematch: out of memory");
        /* Stops first (a replaced driver goes before its successor starts), then starts. */
        for (size_t i = 0; i < c.n; i++) {
            if (!c.v[i].lost)
                continue;
            ssize_t k = inst_index_on(sv, c.v[i].nub, c.v[i].category);
            if (k >= 0)
                inst_stop(d, (size_t)k);
        }
        for (size_t i = 0; i < c.n; i++) {
            if (!c.v[i].bundle_id)
                continue;
            uint64_t dev = device_of(d, c.v[i].nub);
            if (!device_draining(sv, dev)) {
                start_one(d, &c.v[i]);
                continue;
            }
            struct sxd_deferred *nv = reallocarray(sv->deferred, sv->n_deferred + 1, sizeof(*nv));
            if (!nv)
                continue;
            sv->deferred = nv;
            struct sxd_deferred *df = &sv->deferred[sv->n_deferred++];
            *df = (struct sxd_deferred){c.v[i].nub, dev, c.v[i].category, c.v[i].bundle_id,
                                        c.v[i].personality};
            c.v[i].category = c.v[i].bundle_id = c.v[i].personality = NULL; /* moved */
            fprintf(stderr, "sysextd: %s waits for the previous driver of device %#" PRIx64
                    " to finish\n", df->bundle_id, dev);
        }
        changes_free(&c);
        if (rc < 0 || !sv->need_rematch)
            break;
    }
    return rc;
}

/* ---- services.h ------------------------------------------------------------------------- */

static void unbind(sxd_daemon *d, uint64_t nub_id, const char *category)
{
    sx_nub *n = sx_registry_find(d->registry, nub_id);
    for (size_t i = 0; n && i < n->n_bindings; i++)
        if (!strcmp(n->bindings[i].category, category)) {
            sx_nub_unbind(n, i);
            return;
        }
}

void sxd_services_extensions_changed(sxd_daemon *d)
{
    sxd_services *sv = d->services;
    if (!sv)
        return;
    sx_personality_set set;
    sx_personality_set_init(&set);
    sxd_dext *dx = NULL;
    size_t nd = 0;
    if (load_enabled(d, &dx, &nd, &set) < 0) {
        fprintf(stderr, "sysextd: loading the enabled extensions: %s\n", sx_errmsg());
        sx_personality_set_free(&set);
        return;
    }
    /* Extensions no longer enabled: their drivers stop. An extension whose staged copy
     * changed (an upgrade, or a reinstall of the same version in developer mode): each of its
     * drivers stops and is unbound, so the rematch starts the new copy in its place. */
    for (size_t i = 0; i < sv->n_dexts; i++) {
        const sxd_dext *old = &sv->dexts[i];
        bool same_id = false, kept = false;
        for (size_t j = 0; j < nd && !kept; j++) {
            if (strcmp(dx[j].bundle_id, old->bundle_id))
                continue;
            same_id = true;
            kept = !strcmp(dx[j].staged_path, old->staged_path);
        }
        if (kept)
            continue;
        bool any = false;
        for (size_t k = sv->n_inst; k-- > 0;) {
            if (strcmp(sv->inst[k].bundle_id, old->bundle_id))
                continue;
            any = true;
            if (same_id) {
                unbind(d, sv->inst[k].provider_id, sv->inst[k].category);
                inst_stop(d, k);
            } else {
                inst_remove(d, k);
            }
        }
        if (any && !same_id) {
            fprintf(stderr, "sysextd: %s is no longer enabled: stopping its drivers\n",
                    old->bundle_id);
            if (sxd_host_stop_bundle(d->host, old->bundle_id) < 0)
                fprintf(stderr, "sysextd: stopping %s: %s\n", old->bundle_id, sx_errmsg());
        }
    }
    sx_personality_set_free(&sv->set);
    sv->set = set;
    dexts_free(sv->dexts, sv->n_dexts);
    sv->dexts = dx;
    sv->n_dexts = nd;
    if (sxd_services_rematch(d) < 0)
        fprintf(stderr, "sysextd: rematch: %s\n", sx_errmsg());
}

static bool class_matches(plist_t v, const char *cls)
{
    if (!v || plist_get_node_type(v) != PLIST_STRING)
        return false;
    return !strcmp(plist_get_string_ptr(v, NULL), cls);
}

static bool name_matches(plist_t v, const char *name)
{
    if (!v)
        return true;
    if (plist_get_node_type(v) == PLIST_STRING)
        return !strcmp(plist_get_string_ptr(v, NULL), name);
    if (plist_get_node_type(v) != PLIST_ARRAY)
        return false;
    for (uint32_t i = 0; i < plist_array_get_size(v); i++)
        if (name_matches(plist_array_get_item(v, i), name))
            return true;
    return false;
}

static bool props_match(plist_t want, plist_t have)
{
    if (!want)
        return true;
    if (plist_get_node_type(want) != PLIST_DICT)
        return false;
    bool ok = true;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(want, &it);
    for (;;) {
        char *k = NULL;
        plist_t v = NULL;
        plist_dict_next_item(want, it, &k, &v);
        if (!v) {
            free(k);
            break;
        }
        plist_t h = plist_dict_get_item(have, k);
        free(k);
        if (!h || plist_get_node_type(h) != plist_get_node_type(v) ||
            !plist_compare_node_value(h, v)) {
            ok = false;
            break;
        }
    }
    free(it);
    return ok;
}

/* The superclasses of the kernel classes a DriverKit service is published as (the
 * personality's IOClass); any other class derives from IOService directly. */
static const struct {
    const char *cls, *super;
} kernel_supers[] = {
    {"IOUserService", "IOService"},
    {"IOUserHIDEventService", "IOHIDEventService"},
    {"IOHIDEventService", "IOService"},
    {"IOUserHIDDevice", "IOHIDDevice"},
    {"IOHIDDevice", "IOService"},
    {"IOUserSerial", "IOSerialStreamSync"},
    {"IOSerialStreamSync", "IOService"},
};

/* IOKit matches a class name against an object's whole class chain (IOServiceMatching
 * ("IOService") finds every service): a driver service is its user class (the dext's own),
 * and its kernel class with that class's ancestors. */
static bool is_kind_of(plist_t v, const sx_nub *n)
{
    if (class_matches(v, n->class_name))
        return true;
    const char *k = sxd_dict_str(n->props, "IOClass");
    for (int depth = 0; k && depth < 16; depth++) {
        if (class_matches(v, k))
            return true;
        if (!strcmp(k, "IOService"))
            return false;
        const char *super = "IOService";
        for (size_t i = 0; i < SX_ARRAY_SIZE(kernel_supers); i++)
            if (!strcmp(kernel_supers[i].cls, k))
                super = kernel_supers[i].super;
        k = super;
    }
    return false;
}

static bool service_matches(const sx_nub *n, plist_t m)
{
    plist_t v;
    if ((v = plist_dict_get_item(m, "IOProviderClass")) && !is_kind_of(v, n))
        return false;
    if ((v = plist_dict_get_item(m, "IOClass")) && !is_kind_of(v, n))
        return false;
    const char *cls = n->class_name;
    if ((v = plist_dict_get_item(m, "IOUserClass")) && !class_matches(v, cls))
        return false;
    if (!name_matches(plist_dict_get_item(m, "IONameMatch"), n->name))
        return false;
    if (!props_match(plist_dict_get_item(m, "IOPropertyMatch"), n->props))
        return false;
    if ((v = plist_dict_get_item(m, "CFBundleIdentifier"))) {
        const char *b = sxd_dict_str(n->props, "CFBundleIdentifier");
        if (!b || !class_matches(v, b))
            return false;
    }
    if ((v = plist_dict_get_item(m, "IORegistryEntryID"))) {
        uint64_t id = 0;
        if (plist_get_node_type(v) != PLIST_UINT)
            return false;
        plist_get_uint_val(v, &id);
        if (id != n->id)
            return false;
    }
    return true;
}

int sxd_services_match(sxd_daemon *d, plist_t matching, uint64_t **ids, size_t *n)
{
    SX_ASSERT_ARG(ids);
    SX_ASSERT_ARG(n);
    *ids = NULL;
    *n = 0;
    if (!matching || plist_get_node_type(matching) != PLIST_DICT)
        return sx_err(SYSEXT_EINVAL, "matching: expected a dictionary");
    sxd_services *sv = d->services;
    if (!sv || !sv->n_inst)
        return 0;
    uint64_t *v = calloc(sv->n_inst, sizeof(*v));
    if (!v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < sv->n_inst; i++) {
        const sxd_instance *in = &sv->inst[i];
        if (!in->service_id)
            continue;
        const sx_nub *s = sx_registry_find(d->registry, in->service_id);
        if (s && !(s->state & SX_NUB_TERMINATED) && service_matches(s, matching))
            v[k++] = s->id;
    }
    if (!k) {
        free(v);
        return 0;
    }
    *ids = v;
    *n = k;
    return 0;
}

int sxd_services_lookup(sxd_daemon *d, uint64_t registry_id, uint64_t *instance,
                        const char **bundle_id)
{
    sxd_services *sv = d->services;
    for (size_t i = 0; sv && i < sv->n_inst; i++) {
        const sxd_instance *in = &sv->inst[i];
        if (in->service_id && in->service_id == registry_id) {
            if (instance)
                *instance = in->id;
            if (bundle_id)
                *bundle_id = in->bundle_id;
            return 0;
        }
    }
    return sx_err(SYSEXT_ENOTFOUND, "no driver service with registry id %#" PRIx64,
                  registry_id);
}

int sxd_services_remove_nub(sxd_daemon *d, uint64_t nub_id)
{
    sx_nub *n = sx_registry_find(d->registry, nub_id);
    if (!n)
        return sx_err(SYSEXT_ENOTFOUND, "no registry entry %#" PRIx64, nub_id);
    int rc = sx_registry_terminate(d->registry, n);
    if (rc < 0)
        return rc;
    /* The rematch reports every driver of the subtree lost: inst_stop for each. */
    return sxd_services_rematch(d);
}

/* ---- life cycle ------------------------------------------------------------------------- */

int sxd_services_start(sxd_daemon *d)
{
    sxd_services *sv = calloc(1, sizeof(*sv));
    if (!sv)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    sx_personality_set_init(&sv->set);
    sv->launching = -1;
    sv->next_location = 0x01000000u;
    int rc = sx_registry_new(&d->registry);
    if (rc < 0) {
        free(sv);
        return rc;
    }
    d->services = sv;
    if (!d->host) {
        _sx_cleanup_free_ char *rt = NULL;
        if (asprintf(&rt, "%s/run", d->cfg.state_dir) < 0) {
            rt = NULL;
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        sxd_host_config hc = {
            .runtime_dir = rt,
            .on_state = sxd_services_driver_state,
            .ctx = d,
        };
        if ((rc = sxd_host_new(&hc, &d->host)) < 0)
            return rc;
        sv->own_host = true;
    }
    /* No USB stack here (no usbfs, libusb fails): the daemon goes on without it. */
    if (d->usb_hotplug && sxd_hotplug_start(d) < 0)
        fprintf(stderr, "sysextd: USB: %s; real USB devices will not be published\n",
                sx_errmsg());
    sxd_services_extensions_changed(d);
    return 0;
}

void sxd_services_stop(sxd_daemon *d)
{
    sxd_services *sv = d->services;
    if (!sv)
        return;
    sxd_hotplug_stop(d);
    for (size_t i = sv->n_inst; i-- > 0;)
        inst_stop(d, i);
    sxd_usb_free_all(d);
    if (sv->own_host) {
        sxd_host_free(d->host);
        d->host = NULL;
    }
    free(sv->inst);
    for (size_t i = 0; i < sv->n_deferred; i++) {
        free(sv->deferred[i].category);
        free(sv->deferred[i].bundle_id);
        free(sv->deferred[i].personality);
    }
    free(sv->deferred);
    free(sv->draining);
    dexts_free(sv->dexts, sv->n_dexts);
    sx_personality_set_free(&sv->set);
    free(sv);
    d->services = NULL;
    sx_registry_free(d->registry);
    d->registry = NULL;
}

int sxd_services_timeout(sxd_daemon *d)
{
    if (!d->services)
        return -1;
    if (d->services->need_rematch)
        return 0;
    return sxd_hotplug_poll(d, false);
}

/* Fresh device sessions for the instances that crashed (sxd_usb_reset), handed to the host
 * for their relaunch. Not from the host's callback: this calls back into the host. */
static void reset_crashed(sxd_daemon *d)
{
    sxd_services *sv = d->services;
    sv->need_reset = false;
    for (size_t i = 0; i < sv->n_inst; i++) {
        sxd_instance *in = &sv->inst[i];
        if (strcmp(in->state, SXD_DRV_CRASHED) || !in->id)
            continue;
        /* only once per crash: the host reports STARTING when it relaunches */
        snprintf(in->state, sizeof(in->state), "%s", "resetting");
        uint64_t dev = 0;
        int fd = -1;
        if (sxd_usb_reset(d, in->provider_id, &dev, &fd) < 0) {
            fprintf(stderr, "sysextd: driver instance %" PRIu64 ": %s\n", in->id, sx_errmsg());
            continue;
        }
        if (fd < 0)
            continue;
        /* every instance on the device (or one of its interfaces) gets the new session */
        for (size_t k = 0; k < sv->n_inst; k++) {
            sxd_instance *o = &sv->inst[k];
            sx_nub *n = o->id ? sx_registry_find(d->registry, o->provider_id) : NULL;
            if (n && (n->id == dev || (n->parent && n->parent->id == dev)) &&
                sxd_host_set_provider_fds(d->host, o->id, &fd, 1) < 0)
                fprintf(stderr, "sysextd: driver instance %" PRIu64 ": %s\n", o->id, sx_errmsg());
        }
    }
}

/* Starts whose device's previous driver has now let go, if their binding still stands. */
static void run_deferred(sxd_daemon *d)
{
    sxd_services *sv = d->services;
    sv->need_deferred = false;
    for (size_t i = 0; i < sv->n_deferred;) {
        struct sxd_deferred *df = &sv->deferred[i];
        if (device_draining(sv, df->device)) {
            i++;
            continue;
        }
        sx_nub *nub = sx_registry_find(d->registry, df->nub);
        const sx_binding *b = nub && !(nub->state & SX_NUB_TERMINATED)
                                  ? sx_nub_driver(nub, df->category) : NULL;
        if (b && !strcmp(b->bundle_id, df->bundle_id) && !strcmp(b->personality, df->personality)) {
            change ch = {df->nub, df->category, df->bundle_id, df->personality, false};
            start_one(d, &ch);
        }
        free(df->category);
        free(df->bundle_id);
        free(df->personality);
        sv->deferred[i] = sv->deferred[--sv->n_deferred];
    }
}

void sxd_services_tick(sxd_daemon *d)
{
    if (d->services && d->services->need_deferred)
        run_deferred(d);
    if (d->services && d->services->need_reset)
        reset_crashed(d);
    if (d->services && d->services->need_rematch && sxd_services_rematch(d) < 0)
        fprintf(stderr, "sysextd: rematch: %s\n", sx_errmsg());
}
