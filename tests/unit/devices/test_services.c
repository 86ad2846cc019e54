/* The daemon's device services in-process (sysextd/devices.c) against the host stand-in:
 * IOUserResources personalities, IOResourceMatch, probe score and categories, driver service
 * nubs, sxd_services_match / sxd_services_lookup, start failures, removal. */
#include "util/common.h"

#include <criterion/criterion.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/devices.h"
#include "sysextd/host.h"
#include "sysextd/proto.h"
#include "sysextd/services.h"
#include "util/fs.h"

/* These tests observe the host stand-in (tests/unit/devices/host_stub.c): synchronous states
 * and a log of the requests. With the real host in the tree they are not built. */
#ifdef SXD_HOST_STUB

static char dir[64];
static char logpath[128];
static sxd_daemon d;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sxd-svc-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(logpath, sizeof(logpath), "%s/host.log", dir);
    setenv("SXD_HOST_STUB_LOG", logpath, 1);
    memset(&d, 0, sizeof(d));
    d.services = calloc(1, sizeof(*d.services));
    sx_personality_set_init(&d.services->set);
    d.services->launching = -1;
    cr_assert_eq(sx_registry_new(&d.registry), 0);
    sxd_host_config hc = {.runtime_dir = dir, .on_state = sxd_services_driver_state, .ctx = &d};
    cr_assert_eq(sxd_host_new(&hc, &d.host), 0);
    d.services->own_host = true;
}

static void teardown(void)
{
    sxd_services_stop(&d);
    sx_rm_rf(dir);
}

TestSuite(services, .init = setup, .fini = teardown, .timeout = 30);

static char *host_log(void)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (sx_read_file(logpath, 1u << 20, &data, &len) < 0)
        return strdup("");
    char *s = calloc(1, len + 1);
    memcpy(s, data, len);
    free(data);
    return s;
}

/* A personality dictionary on IOUserResources. */
static plist_t pers(const char *bundle, const char *user_class, int64_t probe,
                    const char *category, const char *resource)
{
    plist_t p = plist_new_dict();
    sxd_dict_set_str(p, "CFBundleIdentifier", bundle);
    sxd_dict_set_str(p, "IOClass", "IOUserService");
    sxd_dict_set_str(p, "IOProviderClass", "IOUserResources");
    sxd_dict_set_str(p, "IOUserClass", user_class);
    sxd_dict_set_str(p, "IOUserServerName", bundle);
    if (probe)
        plist_dict_set_item(p, "IOProbeScore", plist_new_uint((uint64_t)probe));
    sxd_dict_set_str(p, "IOMatchCategory", category);
    sxd_dict_set_str(p, "IOResourceMatch", resource);
    return p;
}

/* Enable `bundle` with personalities {name: dict} (consumed). */
static void enable(const char *bundle, const char *name, plist_t dict)
{
    plist_t all = plist_new_dict();
    plist_dict_set_item(all, name, dict);
    cr_assert_eq(sx_personality_set_add_bundle(&d.services->set, bundle, "1", all), 0);
    plist_free(all);
    sxd_services *sv = d.services;
    sxd_dext *nv = reallocarray(sv->dexts, sv->n_dexts + 1, sizeof(*nv));
    cr_assert_not_null(nv);
    sv->dexts = nv;
    sxd_dext *x = &sv->dexts[sv->n_dexts++];
    x->bundle_id = strdup(bundle);
    x->version = strdup("1");
    x->staged_path = strdup(dir);
    cr_assert_neq(asprintf(&x->executable, "%s/drv", dir), -1);
}

static size_t match_ids(const char *key, const char *val, uint64_t **ids)
{
    plist_t m = plist_new_dict();
    sxd_dict_set_str(m, key, val);
    size_t n = 0;
    cr_assert_eq(sxd_services_match(&d, m, ids, &n), 0);
    plist_free(m);
    return n;
}

Test(services, user_resources_driver_starts_gets_a_service_nub_and_is_found)
{
    enable("com.example.a", "A", pers("com.example.a", "ADriver", 0, NULL, NULL));
    cr_assert_eq(sxd_services_rematch(&d), 0);
    char *log = host_log();
    char want[256];
    snprintf(want, sizeof(want),
             "start id=1 bundle=com.example.a class=ADriver server=com.example.a exe=%s/drv "
             "provider=IOUserResources nub=%#llx fds=0 fdok=1\n",
             dir, (unsigned long long)sx_registry_user_resources(d.registry)->id);
    cr_assert_str_eq(log, want);
    free(log);
    sx_nub *ur = sx_registry_user_resources(d.registry);
    cr_assert_str_eq(sx_nub_driver(ur, NULL)->state, "running");
    cr_assert_eq(ur->n_children, 1);
    sx_nub *svc = ur->children[0];
    cr_assert_str_eq(svc->class_name, "ADriver");

    uint64_t *ids = NULL;
    cr_assert_eq(match_ids("IOProviderClass", "ADriver", &ids), 1);
    cr_assert_eq(ids[0], svc->id);
    free(ids);
    cr_assert_eq(match_ids("IOUserClass", "ADriver", &ids), 1);
    free(ids);
    cr_assert_eq(match_ids("CFBundleIdentifier", "com.example.a", &ids), 1);
    free(ids);
    cr_assert_eq(match_ids("IOProviderClass", "BDriver", &ids), 0);
    cr_assert_null(ids);
    /* A class name matches the whole chain: the kernel class and its ancestors. */
    cr_assert_eq(match_ids("IOProviderClass", "IOService", &ids), 1);
    cr_assert_eq(ids[0], svc->id);
    free(ids);
    cr_assert_eq(match_ids("IOClass", "IOUserService", &ids), 1);
    free(ids);
    cr_assert_eq(match_ids("IOProviderClass", "IOUSBHostInterface", &ids), 0);
    cr_assert_eq(match_ids("IOUserClass", "IOService", &ids), 0, "IOUserClass is the dext's own");
    cr_assert_eq(match_ids("CFBundleIdentifier", "com.example.b", &ids), 0);
    plist_t m = plist_new_dict();
    plist_t pm = plist_new_dict();
    sxd_dict_set_str(pm, "IOUserServerName", "com.example.a");
    plist_dict_set_item(m, "IOPropertyMatch", pm);
    plist_dict_set_item(m, "IORegistryEntryID", plist_new_uint(svc->id));
    size_t n = 0;
    cr_assert_eq(sxd_services_match(&d, m, &ids, &n), 0);
    cr_assert_eq(n, 1);
    free(ids);
    plist_dict_set_item(m, "IORegistryEntryID", plist_new_uint(svc->id + 1));
    cr_assert_eq(sxd_services_match(&d, m, &ids, &n), 0);
    cr_assert_eq(n, 0);
    plist_free(m);
    cr_assert_eq(sxd_services_match(&d, NULL, &ids, &n), SYSEXT_EINVAL);

    uint64_t inst = 0;
    const char *bid = NULL;
    cr_assert_eq(sxd_services_lookup(&d, svc->id, &inst, &bid), 0);
    cr_assert_eq(inst, 1);
    cr_assert_str_eq(bid, "com.example.a");
    cr_assert_eq(sxd_services_lookup(&d, ur->id, &inst, &bid), SYSEXT_ENOTFOUND);

    /* The extension goes: its driver stops, the service nub is reaped. */
    uint64_t svc_id = svc->id;
    sx_personality_set_remove_bundle(&d.services->set, "com.example.a");
    cr_assert_eq(sxd_services_rematch(&d), 0);
    log = host_log();
    cr_assert(strstr(log, "stop id=1\n"), "%s", log);
    free(log);
    cr_assert_eq(ur->n_children, 0);
    cr_assert_null(sx_nub_driver(ur, NULL));
    cr_assert_eq(sxd_services_lookup(&d, svc_id, &inst, &bid), SYSEXT_ENOTFOUND);
}

Test(services, resource_match_waits_for_the_resource)
{
    enable("com.example.a", "A", pers("com.example.a", "ADriver", 0, NULL, "com.example.res"));
    cr_assert_eq(sxd_services_rematch(&d), 0);
    char *log = host_log();
    cr_assert_str_eq(log, "");
    free(log);
    cr_assert_eq(sx_registry_publish_resource(d.registry, "com.example.res"), 0);
    cr_assert_eq(sxd_services_rematch(&d), 0);
    log = host_log();
    cr_assert(strstr(log, "start id=1 bundle=com.example.a"), "%s", log);
    free(log);
    cr_assert_eq(sx_registry_unpublish_resource(d.registry, "com.example.res"), 0);
    cr_assert_eq(sxd_services_rematch(&d), 0);
    log = host_log();
    cr_assert(strstr(log, "stop id=1\n"), "%s", log);
    free(log);
}

Test(services, probe_score_picks_one_per_category_and_categories_run_side_by_side)
{
    enable("com.example.low", "L", pers("com.example.low", "Low", 100, NULL, NULL));
    enable("com.example.high", "H", pers("com.example.high", "High", 200, NULL, NULL));
    enable("com.example.other", "O", pers("com.example.other", "Other", 0, "OtherCategory", NULL));
    cr_assert_eq(sxd_services_rematch(&d), 0);
    char *log = host_log();
    cr_assert(strstr(log, "bundle=com.example.high class=High"), "%s", log);
    cr_assert(strstr(log, "bundle=com.example.other class=Other"), "%s", log);
    cr_assert_null(strstr(log, "bundle=com.example.low"), "%s", log);
    free(log);
    sx_nub *ur = sx_registry_user_resources(d.registry);
    cr_assert_eq(ur->n_children, 2);
    /* A rematch without changes starts nothing again. */
    cr_assert_eq(sxd_services_rematch(&d), 0);
    log = host_log();
    size_t starts = 0;
    for (const char *p = log; (p = strstr(p, "start ")); p++)
        starts++;
    cr_assert_eq(starts, 2, "%s", log);
    free(log);
}

Test(services, a_failed_start_leaves_no_service_nub)
{
    plist_t p = pers("com.example.a", "ADriver", 0, NULL, NULL);
    plist_dict_set_item(p, "SysextTestStartFails", plist_new_bool(1));
    enable("com.example.a", "A", p);
    cr_assert_eq(sxd_services_rematch(&d), 0);
    sx_nub *ur = sx_registry_user_resources(d.registry);
    cr_assert_str_eq(sx_nub_driver(ur, NULL)->state, "start-failed");
    cr_assert_eq(ur->n_children, 0);
    uint64_t *ids = NULL;
    cr_assert_eq(match_ids("IOProviderClass", "ADriver", &ids), 0);
}
#else
Test(services, needs_the_host_stand_in)
{
    cr_skip_test("built with the real driver host");
}
#endif
