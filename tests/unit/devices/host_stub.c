/* A test-only stand-in for sysextd/host.h, linked into sysextd on a tree without the real host
 * (sysextd/host.c). It spawns nothing: every request is appended as one line to the file named
 * by $SXD_HOST_STUB_LOG (when set), and states are reported through on_state synchronously:
 *   start:      "start id=N bundle=B class=C server=S exe=E provider=P nub=0xID fds=K fdok=0|1"
 *               then STARTING and RUNNING (or START_FAILED when the personality sets
 *               SysextTestStartFails = true)
 *   stop:       "stop id=N" then STOPPED
 *   stop-bundle "stop-bundle B" then STOPPED for each of its instances.
 * fdok says whether every handed descriptor was open at the time of the call. */
#include "util/common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "sysextd/host.h"
#include "sysextd/proto.h"

typedef struct stub_inst {
    uint64_t id;
    char *bundle;
    const char *state;
} stub_inst;

struct sxd_host {
    sxd_host_config cfg;
    stub_inst *v;
    size_t n;
    uint64_t next;
};

static void logf_(const char *fmt, ...) SX_PRINTF(1, 2);
static void logf_(const char *fmt, ...)
{
    const char *p = getenv("SXD_HOST_STUB_LOG");
    if (!p)
        return;
    FILE *f = fopen(p, "a");
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void report(sxd_host *h, uint64_t id, const char *state, const char *why)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].id == id)
            h->v[i].state = state;
    if (h->cfg.on_state)
        h->cfg.on_state(h->cfg.ctx, id, state, why);
}

int sxd_host_new(const sxd_host_config *cfg, sxd_host **out)
{
    sxd_host *h = calloc(1, sizeof(*h));
    if (!h)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    h->cfg = *cfg;
    *out = h;
    return 0;
}

void sxd_host_free(sxd_host *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i].bundle);
    free(h->v);
    free(h);
}

size_t sxd_host_fds(sxd_host *h, int *fds, size_t max)
{
    SX_UNUSED(h);
    SX_UNUSED(fds);
    SX_UNUSED(max);
    return 0;
}

void sxd_host_dispatch(sxd_host *h)
{
    SX_UNUSED(h);
}

int sxd_host_next_timeout(sxd_host *h)
{
    SX_UNUSED(h);
    return -1;
}

int sxd_host_start(sxd_host *h, const sxd_launch *l, const sxd_provider *p, uint64_t *instance)
{
    stub_inst *nv = reallocarray(h->v, h->n + 1, sizeof(*nv));
    if (!nv)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    h->v = nv;
    uint64_t id = ++h->next;
    h->v[h->n].id = id;
    h->v[h->n].bundle = strdup(l->bundle_id);
    h->v[h->n].state = SXD_DRV_STARTING;
    h->n++;
    bool fdok = true;
    for (size_t i = 0; i < p->n_fds; i++)
        fdok = fdok && fcntl(p->fds[i], F_GETFD) >= 0;
    logf_("start id=%" PRIu64 " bundle=%s class=%s server=%s exe=%s provider=%s nub=%#" PRIx64
          " fds=%zu fdok=%d\n",
          id, l->bundle_id, l->user_class, l->server_name, l->executable, p->class_name,
          p->registry_id, p->n_fds, fdok);
    *instance = id;
    report(h, id, SXD_DRV_STARTING, NULL);
    if (sxd_dict_bool(l->personality, "SysextTestStartFails", 0))
        report(h, id, SXD_DRV_START_FAILED, "Start returned kIOReturnError");
    else
        report(h, id, SXD_DRV_RUNNING, NULL);
    return 0;
}

int sxd_host_stop(sxd_host *h, uint64_t instance)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].id == instance && strcmp(h->v[i].state, SXD_DRV_STOPPED)) {
            logf_("stop id=%" PRIu64 "\n", instance);
            report(h, instance, SXD_DRV_STOPPED, "stopped");
            return 0;
        }
    return sx_err(SYSEXT_ENOTFOUND, "no instance %" PRIu64, instance);
}

int sxd_host_set_provider_fds(sxd_host *h, uint64_t instance, const int *fds, size_t n)
{
    (void)fds;
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].id == instance) {
            logf_("provider-fds id=%" PRIu64 " n=%zu\n", instance, n);
            return 0;
        }
    return sx_err(SYSEXT_ENOTFOUND, "no instance %" PRIu64, instance);
}

int sxd_host_stop_bundle(sxd_host *h, const char *bundle_id)
{
    logf_("stop-bundle %s\n", bundle_id);
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->v[i].bundle, bundle_id) && strcmp(h->v[i].state, SXD_DRV_STOPPED))
            report(h, h->v[i].id, SXD_DRV_STOPPED, "extension stopped");
    return 0;
}

int sxd_host_open_user_client(sxd_host *h, uint64_t instance, uint32_t type, int *app_fd)
{
    SX_UNUSED(h);
    SX_UNUSED(instance);
    SX_UNUSED(type);
    SX_UNUSED(app_fd);
    return sx_err(SYSEXT_EUNSUPPORTED, "the test host stand-in opens no user clients");
}

int sxd_host_snapshot(sxd_host *h, plist_t *out)
{
    plist_t a = plist_new_array();
    for (size_t i = 0; i < h->n; i++) {
        plist_t e = plist_new_dict();
        sxd_dict_set_uint(e, "id", h->v[i].id);
        sxd_dict_set_str(e, "bundle_id", h->v[i].bundle);
        sxd_dict_set_str(e, "state", h->v[i].state);
        plist_array_append_item(a, e);
    }
    *out = a;
    return 0;
}

const char *sxd_host_state(sxd_host *h, uint64_t instance)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].id == instance)
            return h->v[i].state;
    return NULL;
}
