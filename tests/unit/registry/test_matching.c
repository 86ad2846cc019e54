/* Matching: every row of the USB precedence table (device and interface), probe scores, ties,
 * IOResourceMatch, IOMatchCategory, invalid combinations, and rematch on upgrade, removal,
 * hot-plug and unplug. */
#include <criterion/criterion.h>

#include "util/common.h"
#include "tests/unit/registry/registry_fixture.h"

static sx_registry *reg;
static sx_nub *dev_vendor; /* bDeviceClass 0xFF, configured: if0 (0xFF), if1 (HID) */
static sx_nub *dev_class;  /* bDeviceClass 0x02, unconfigured */
static sx_nub *if_vendor, *if_hid;

static void setup(void)
{
    cr_assert_eq(sx_registry_new(&reg), 0);
    sx_usb_device_descriptor a = fx_device(0x1234, 0x5678, 0x0100, 0xff, 0x11, 0x22);
    uint8_t cfg[256];
    const fx_iface ifs[] = {{0, 0xff, 0x33, 0x44, 0}, {1, 0x03, 0x01, 0x02, 0}};
    size_t cl = fx_config(cfg, sizeof(cfg), 1, ifs, 2);
    sx_usb_device_info ia = {.device = &a, .config = cfg, .config_len = cl,
                             .location_id = 0x01100000, .speed = SX_USB_SPEED_HIGH};
    cr_assert_eq(sx_registry_add_usb_device(reg, &ia, &dev_vendor), 0, "%s", sx_errmsg());
    sx_usb_device_descriptor c = fx_device(0x1234, 0x5679, 0x0200, 0x02, 0x11, 0x22);
    sx_usb_device_info ic = {.device = &c, .location_id = 0x01200000, .speed = SX_USB_SPEED_FULL};
    cr_assert_eq(sx_registry_add_usb_device(reg, &ic, &dev_class), 0, "%s", sx_errmsg());
    if_vendor = dev_vendor->children[0];
    if_hid = dev_vendor->children[1];
}

static void teardown(void)
{
    sx_registry_free(reg);
    reg = NULL;
}

TestSuite(matching, .init = setup, .fini = teardown);

/* A personality for `provider` whose `keys` take the nub's values, key `bump` (or -1) off by
 * one, plus an optional extra key. */
static plist_t row_dict(const sx_nub *nub, const char *provider, const char *const *keys,
                        int bump, const char *extra)
{
    plist_t d = fx_dict("s:IOProviderClass", provider, "s:IOClass", "IOUserService",
                        "s:IOUserClass", "Drv", "s:IOUserServerName", "com.example.drv", NULL);
    for (int i = 0; keys[i]; i++) {
        uint64_t v = 0;
        cr_assert(sx_nub_get_uint(nub, keys[i], &v), "%s", keys[i]);
        plist_dict_set_item(d, keys[i], plist_new_uint(v + (i == bump)));
    }
    if (extra)
        plist_dict_set_item(d, extra, plist_new_uint(1));
    return d;
}

static int match(const sx_nub *nub, plist_t dict, sx_match *m)
{
    sx_personality p = fx_personality("com.example.drv", "1", "P", dict);
    int rc = sx_match_personality(nub, &p, m);
    fx_personality_free(&p);
    return rc;
}

typedef struct row_case {
    const char *keys[6];
    int64_t score;
} row_case;

static void check_rows(const row_case *rows, size_t n, const sx_nub *const *ok_nub,
                       const sx_nub *const *wrong_class_nub, const char *provider,
                       const char *foreign_key)
{
    for (size_t r = 0; r < n; r++) {
        sx_match m;
        cr_assert_eq(match(ok_nub[r], row_dict(ok_nub[r], provider, rows[r].keys, -1, NULL), &m),
                     1, "row %zu matches", r);
        cr_assert_eq(m.base_score, rows[r].score, "row %zu score", r);
        cr_assert_eq(m.score, rows[r].score);
        for (int k = 0; rows[r].keys[k]; k++)
            cr_assert_eq(match(ok_nub[r], row_dict(ok_nub[r], provider, rows[r].keys, k, NULL),
                               &m), 0, "row %zu with %s differing", r, rows[r].keys[k]);
        cr_assert_eq(match(ok_nub[r], row_dict(ok_nub[r], provider, rows[r].keys, -1, foreign_key),
                           &m), 0, "row %zu plus %s is no valid combination", r, foreign_key);
        if (wrong_class_nub[r])
            cr_assert_eq(match(wrong_class_nub[r],
                               row_dict(wrong_class_nub[r], provider, rows[r].keys, -1, NULL), &m),
                         0, "row %zu's class condition", r);
    }
}

Test(matching, every_device_row)
{
    static const row_case rows[] = {
        {{"idVendor", "idProduct", "bcdDevice"}, 100000},
        {{"idVendor", "idProduct"}, 90000},
        {{"idVendor", "bDeviceSubClass", "bDeviceProtocol"}, 80000},
        {{"idVendor", "bDeviceSubClass"}, 70000},
        {{"bDeviceClass", "bDeviceSubClass", "bDeviceProtocol"}, 60000},
        {{"bDeviceClass", "bDeviceSubClass"}, 50000},
    };
    const sx_nub *ok[] = {dev_vendor, dev_vendor, dev_vendor, dev_vendor, dev_class, dev_class};
    const sx_nub *wrong[] = {NULL, NULL, dev_class, dev_class, dev_vendor, dev_vendor};
    check_rows(rows, 6, ok, wrong, "IOUSBHostDevice", "bInterfaceNumber");
}

Test(matching, every_interface_row)
{
    static const row_case rows[] = {
        {{"idVendor", "idProduct", "bInterfaceNumber", "bConfigurationValue", "bcdDevice"}, 100000},
        {{"idVendor", "idProduct", "bInterfaceNumber", "bConfigurationValue"}, 90000},
        {{"idVendor", "bInterfaceSubClass", "bInterfaceProtocol"}, 80000},
        {{"idVendor", "bInterfaceSubClass"}, 70000},
        {{"bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"}, 60000},
        {{"bInterfaceClass", "bInterfaceSubClass"}, 50000},
    };
    const sx_nub *ok[] = {if_hid, if_vendor, if_vendor, if_vendor, if_hid, if_hid};
    const sx_nub *wrong[] = {NULL, NULL, if_hid, if_hid, if_vendor, if_vendor};
    check_rows(rows, 6, ok, wrong, "IOUSBHostInterface", "bDeviceClass");
}

Test(matching, invalid_combinations_and_values)
{
    sx_match m;
    const char *vendor_only[] = {"idVendor", NULL};
    cr_assert_eq(match(dev_vendor, row_dict(dev_vendor, "IOUSBHostDevice", vendor_only, -1, NULL),
                       &m), 0, "idVendor alone is no row");
    const char *none[] = {NULL};
    cr_assert_eq(match(dev_vendor, row_dict(dev_vendor, "IOUSBHostDevice", none, -1, NULL), &m), 0,
                 "a USB provider needs USB keys");
    const char *vp[] = {"idVendor", "idProduct", NULL};
    cr_assert_eq(match(dev_vendor, row_dict(dev_vendor, "IOUSBHostInterface", vp, -1, NULL), &m),
                 0, "provider class first");
    cr_assert_eq(match(if_vendor, row_dict(if_vendor, "IOUSBHostInterface", vp, -1, NULL), &m), 0,
                 "device rows do not apply to interfaces");
    /* values must be integers */
    plist_t d = row_dict(dev_vendor, "IOUSBHostDevice", vp, -1, NULL);
    plist_dict_set_item(d, "idVendor", plist_new_string("0x1234"));
    cr_assert_eq(match(dev_vendor, d, &m), 0);
    d = row_dict(dev_vendor, "IOUSBHostDevice", vp, -1, NULL);
    plist_dict_set_item(d, "IOProbeScore", plist_new_string("10"));
    cr_assert_eq(match(dev_vendor, d, &m), 0, "IOProbeScore must be an integer");
    d = row_dict(dev_vendor, "IOUSBHostDevice", vp, -1, NULL);
    plist_dict_set_item(d, "IOProviderClass", plist_new_uint(3));
    cr_assert_eq(match(dev_vendor, d, &m), 0);
    /* the vendor-specific rows accept bDeviceClass = 0xFF, and nothing else */
    const char *vs[] = {"idVendor", "bDeviceSubClass", NULL};
    d = row_dict(dev_vendor, "IOUSBHostDevice", vs, -1, NULL);
    plist_dict_set_item(d, "bDeviceClass", plist_new_uint(0xff));
    cr_assert_eq(match(dev_vendor, d, &m), 1);
    cr_assert_eq(m.base_score, 70000);
    plist_dict_set_item(d = row_dict(dev_vendor, "IOUSBHostDevice", vs, -1, NULL), "bDeviceClass",
                        plist_new_uint(0xfe));
    cr_assert_eq(match(dev_vendor, d, &m), 0);
}

Test(matching, product_array_mask_and_speed)
{
    sx_match m;
    plist_t d = fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor", 0x1234,
                        "a:idProductArray", 3, 1, 0x5678, 2, NULL);
    cr_assert_eq(match(dev_vendor, d, &m), 1);
    cr_assert_eq(m.base_score, 90000);
    d = fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor", 0x1234,
                "a:idProductArray", 2, 1, 2, NULL);
    cr_assert_eq(match(dev_vendor, d, &m), 0);
    d = fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor", 0x1234, "u:idProduct",
                0x5600, "u:idProductMask", 0xff00, NULL);
    cr_assert_eq(match(dev_vendor, d, &m), 1);
    cr_assert_eq(match(dev_class, fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                          0x1234, "u:idProduct", 0x5600, "u:idProductMask",
                                          0xff00, NULL), &m), 1);
    d = fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor", 0x1234, "u:idProduct",
                0x5600, "u:idProductMask", 0xffff, NULL);
    cr_assert_eq(match(dev_vendor, d, &m), 0);
    /* USBSpeed: a small bonus when equal, no match when not; interfaces use their device's */
    d = fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor", 0x1234, "u:idProduct",
                0x5678, "u:USBSpeed", SX_USB_SPEED_HIGH, NULL);
    cr_assert_eq(match(dev_vendor, d, &m), 1);
    cr_assert_eq(m.base_score, 90100);
    d = fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor", 0x1234, "u:idProduct",
                0x5678, "u:USBSpeed", SX_USB_SPEED_SUPER, NULL);
    cr_assert_eq(match(dev_vendor, d, &m), 0);
    d = fx_dict("s:IOProviderClass", "IOUSBHostInterface", "u:bInterfaceClass", 3,
                "u:bInterfaceSubClass", 1, "u:USBSpeed", SX_USB_SPEED_HIGH, NULL);
    cr_assert_eq(match(if_hid, d, &m), 1);
    cr_assert_eq(m.base_score, 50100);
}

static sx_personality named(const char *bundle, const char *name, plist_t d)
{
    return fx_personality(bundle, "1", name, d);
}

Test(matching, probe_score_and_ties)
{
    sx_personality ps[5];
    /* A: vid+pid (90000) + 10000 = 100000; B: vid+pid+bcd (100000): a tie on score, B is the
     * more specific row. */
    ps[0] = named("com.a", "A", fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                        0x1234, "u:idProduct", 0x5678, "u:IOProbeScore", 10000,
                                        NULL));
    ps[1] = named("com.b", "B", fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                        0x1234, "u:idProduct", 0x5678, "u:bcdDevice", 0x100,
                                        NULL));
    /* Same score and row as B: bundle id, then the personality name decide. */
    ps[2] = named("com.c", "A", fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                        0x1234, "u:idProduct", 0x5678, "u:bcdDevice", 0x100,
                                        NULL));
    ps[3] = named("com.b", "0", fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                        0x1234, "u:idProduct", 0x5678, "u:bcdDevice", 0x100,
                                        NULL));
    /* A negative IOProbeScore lowers. */
    ps[4] = named("com.a", "Neg", fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                          0x1234, "u:idProduct", 0x5678, "u:bcdDevice", 0x100,
                                          "u:IOProbeScore", -5, NULL));
    sx_match m;
    cr_assert_eq(sx_match_personality(dev_vendor, &ps[0], &m), 1);
    cr_assert_eq(m.score, 100000);
    cr_assert_eq(m.probe_score, 10000);
    cr_assert_eq(sx_match_personality(dev_vendor, &ps[4], &m), 1);
    cr_assert_eq(m.score, 99995);

    const sx_personality *fwd[5], *rev[5];
    for (int i = 0; i < 5; i++) {
        fwd[i] = &ps[i];
        rev[4 - i] = &ps[i];
    }
    sx_match_results r;
    cr_assert_eq(sx_match_nub(dev_vendor, fwd, 5, &r), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.winners[0].personality->bundle_id, "com.b");
    cr_assert_str_eq(r.winners[0].personality->name, "0");
    sx_match_results_free(&r);
    cr_assert_eq(sx_match_nub(dev_vendor, rev, 5, &r), 0);
    cr_assert_str_eq(r.winners[0].personality->name, "0", "the order of the input does not matter");
    sx_match_results_free(&r);
    /* Without the com.b ones, the more specific row beats A's equal total. */
    const sx_personality *ac[3] = {&ps[0], &ps[2], &ps[4]};
    cr_assert_eq(sx_match_nub(dev_vendor, ac, 3, &r), 0);
    cr_assert_str_eq(r.winners[0].personality->bundle_id, "com.c");
    sx_match_results_free(&r);
    for (int i = 0; i < 5; i++)
        fx_personality_free(&ps[i]);
}

Test(matching, categories_give_several_winners)
{
    sx_personality ps[3];
    ps[0] = named("com.a", "A", fx_dict("s:IOProviderClass", "IOUSBHostInterface",
                                        "u:bInterfaceClass", 3, "u:bInterfaceSubClass", 1, NULL));
    ps[1] = named("com.b", "B", fx_dict("s:IOProviderClass", "IOUSBHostInterface",
                                        "u:bInterfaceClass", 3, "u:bInterfaceSubClass", 1,
                                        "u:bInterfaceProtocol", 2, NULL));
    ps[2] = named("com.c", "C", fx_dict("s:IOProviderClass", "IOUSBHostInterface",
                                        "u:bInterfaceClass", 3, "u:bInterfaceSubClass", 1,
                                        "s:IOMatchCategory", "Logger", NULL));
    const sx_personality *all[3] = {&ps[0], &ps[1], &ps[2]};
    sx_match_results r;
    cr_assert_eq(sx_match_nub(if_hid, all, 3, &r), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.winners[0].category, "IODefaultMatchCategory");
    cr_assert_str_eq(r.winners[0].personality->name, "B");
    cr_assert_eq(r.winners[0].score, 60000);
    cr_assert_str_eq(r.winners[1].category, "Logger");
    cr_assert_str_eq(r.winners[1].personality->name, "C");
    sx_match_results_free(&r);
    cr_assert_eq(sx_match_nub(if_vendor, all, 3, &r), 0);
    cr_assert_eq(r.n, 0);
    sx_match_results_free(&r);
    for (int i = 0; i < 3; i++)
        fx_personality_free(&ps[i]);
}

/* ---- rematch -------------------------------------------------------------------------- */

typedef struct event {
    uint64_t nub;
    char kind; /* '+' gained, '~' replaced, '-' lost */
    char what[128];
} event;

static event events[16];
static size_t n_events;

static void on_change(void *ctx, const sx_nub *nub, const sx_binding *winner,
                      const sx_binding *previous)
{
    (void)ctx;
    cr_assert_lt(n_events, SX_ARRAY_SIZE(events));
    event *e = &events[n_events++];
    e->nub = nub->id;
    e->kind = !previous ? '+' : !winner ? '-' : '~';
    const sx_binding *b = winner ? winner : previous;
    snprintf(e->what, sizeof(e->what), "%s %s %s/%s%s%s", b->category, b->bundle_id,
             b->bundle_version, b->personality, previous && winner ? " was " : "",
             previous && winner ? previous->bundle_version : "");
}

static plist_t personalities_v(int probe)
{
    plist_t all = plist_new_dict();
    plist_dict_set_item(all, "HID", fx_dict("s:IOProviderClass", "IOUSBHostInterface",
                                            "u:bInterfaceClass", 3, "u:bInterfaceSubClass", 1,
                                            "u:IOProbeScore", probe, "s:IOUserServerName",
                                            "com.example.hid", "s:IOUserClass", "HidDrv", NULL));
    plist_dict_set_item(all, "Virtual", fx_dict("s:IOProviderClass", "IOUserResources",
                                                "s:IOResourceMatch", "IOKit", NULL));
    plist_dict_set_item(all, "Waits", fx_dict("s:IOProviderClass", "IOUserResources",
                                              "s:IOResourceMatch", "com.example.ready",
                                              "s:IOMatchCategory", "Later", NULL));
    plist_dict_set_item(all, "NotADict", plist_new_string("x"));
    return all;
}

static void rematch(const sx_personality_set *set)
{
    n_events = 0;
    cr_assert_eq(sx_registry_rematch(reg, set, on_change, NULL), 0, "%s", sx_errmsg());
}

Test(matching, rematch_enable_upgrade_remove_hotplug)
{
    sx_personality_set set;
    sx_personality_set_init(&set);
    plist_t v1 = personalities_v(0);
    cr_assert_eq(sx_personality_set_add_bundle(&set, "com.example.hid", "1", v1), 0);
    plist_free(v1);
    cr_assert_eq(set.n, 3, "the non-dictionary entry is skipped");

    /* enable: the HID interface and IOUserResources gain a driver */
    rematch(&set);
    cr_assert_eq(n_events, 2);
    sx_nub *ur = sx_registry_user_resources(reg);
    cr_assert_eq(events[0].nub, ur->id);
    cr_assert_str_eq(events[0].what, "IODefaultMatchCategory com.example.hid 1/Virtual");
    cr_assert_eq(events[1].nub, if_hid->id);
    cr_assert_eq(events[1].kind, '+');
    const sx_binding *b = sx_nub_driver(if_hid, NULL);
    cr_assert_str_eq(b->server_name, "com.example.hid");
    cr_assert_str_eq(b->user_class, "HidDrv");
    cr_assert_str_eq(b->state, "matched");
    cr_assert(if_hid->state & SX_NUB_MATCHED);
    cr_assert_not(if_vendor->state & SX_NUB_MATCHED);
    cr_assert_eq(sx_nub_set_driver_state(if_hid, NULL, "running"), 0);
    cr_assert_eq(sx_nub_set_driver_state(if_vendor, NULL, "running"), SYSEXT_ENOTFOUND);

    /* nothing changed: no events, state kept */
    rematch(&set);
    cr_assert_eq(n_events, 0);
    cr_assert_str_eq(sx_nub_driver(if_hid, NULL)->state, "running");

    /* a resource appears: the waiting personality binds in its category */
    cr_assert_eq(sx_registry_publish_resource(reg, "com.example.ready"), 0);
    rematch(&set);
    cr_assert_eq(n_events, 1);
    cr_assert_str_eq(events[0].what, "Later com.example.hid 1/Waits");
    cr_assert_eq(ur->n_bindings, 2);
    cr_assert_eq(sx_registry_unpublish_resource(reg, "com.example.ready"), 0);
    rematch(&set);
    cr_assert_eq(n_events, 1);
    cr_assert_eq(events[0].kind, '-');
    cr_assert_eq(ur->n_bindings, 1);

    /* upgrade: version 2 replaces version 1, the nubs are re-bound */
    plist_t v2 = personalities_v(5);
    cr_assert_eq(sx_personality_set_add_bundle(&set, "com.example.hid", "2", v2), 0);
    plist_free(v2);
    cr_assert_eq(set.n, 3);
    rematch(&set);
    cr_assert_eq(n_events, 2);
    cr_assert_eq(events[1].kind, '~');
    cr_assert_str_eq(events[1].what, "IODefaultMatchCategory com.example.hid 2/HID was 1");
    cr_assert_eq(sx_nub_driver(if_hid, NULL)->score, 50005);
    cr_assert_str_eq(sx_nub_driver(if_hid, NULL)->state, "matched");

    /* hot-plug: a second HID device gains the driver; unplug: it loses it */
    sx_usb_device_descriptor dd = fx_device(0x4444, 0x1, 0x1, 0, 0, 0);
    uint8_t cfg[128];
    const fx_iface ifs[] = {{0, 0x03, 0x01, 0x01, 0}};
    size_t cl = fx_config(cfg, sizeof(cfg), 1, ifs, 1);
    sx_usb_device_info info = {.device = &dd, .config = cfg, .config_len = cl,
                               .location_id = 0x02100000};
    sx_nub *kb = NULL;
    cr_assert_eq(sx_registry_add_usb_device(reg, &info, &kb), 0);
    uint64_t kb_if = kb->children[0]->id;
    rematch(&set);
    cr_assert_eq(n_events, 1);
    cr_assert_eq(events[0].nub, kb_if);
    cr_assert_eq(events[0].kind, '+');
    cr_assert_eq(sx_registry_terminate(reg, kb), 0);
    rematch(&set);
    cr_assert_eq(n_events, 1);
    cr_assert_eq(events[0].nub, kb_if);
    cr_assert_eq(events[0].kind, '-');
    cr_assert_str_eq(events[0].what, "IODefaultMatchCategory com.example.hid 2/HID");
    cr_assert_null(sx_registry_find(reg, kb_if));

    /* removal: everything it drove loses its driver */
    cr_assert_eq(sx_personality_set_remove_bundle(&set, "com.example.hid"), 0);
    cr_assert_eq(sx_personality_set_remove_bundle(&set, "com.example.hid"), SYSEXT_ENOTFOUND);
    rematch(&set);
    cr_assert_eq(n_events, 2);
    cr_assert_eq(events[0].kind, '-');
    cr_assert_eq(events[1].kind, '-');
    cr_assert_not(if_hid->state & SX_NUB_MATCHED);
    sx_personality_set_free(&set);
}

Test(matching, better_new_extension_takes_over)
{
    sx_personality_set set;
    sx_personality_set_init(&set);
    plist_t a = plist_new_dict();
    plist_dict_set_item(a, "Class", fx_dict("s:IOProviderClass", "IOUSBHostDevice",
                                            "u:bDeviceClass", 2, "u:bDeviceSubClass", 0x11, NULL));
    plist_t b = plist_new_dict();
    plist_dict_set_item(b, "Exact", fx_dict("s:IOProviderClass", "IOUSBHostDevice", "u:idVendor",
                                            0x1234, "u:idProduct", 0x5679, NULL));
    cr_assert_eq(sx_personality_set_add_bundle(&set, "com.generic", "1", a), 0);
    rematch(&set);
    cr_assert_eq(n_events, 1);
    cr_assert_str_eq(sx_nub_driver(dev_class, NULL)->bundle_id, "com.generic");
    cr_assert_eq(sx_personality_set_add_bundle(&set, "com.vendor", "1", b), 0);
    rematch(&set);
    cr_assert_eq(n_events, 1);
    cr_assert_eq(events[0].kind, '~');
    cr_assert_str_eq(sx_nub_driver(dev_class, NULL)->bundle_id, "com.vendor");
    cr_assert_eq(sx_nub_driver(dev_class, NULL)->score, 90000);
    plist_free(a);
    plist_free(b);
    sx_personality_set_free(&set);
}

Test(matching, other_classes_and_property_match)
{
    sx_nub *n = NULL;
    plist_t props = fx_dict("u:vendor-id", 5, "s:model", "X", NULL);
    cr_assert_eq(sx_registry_add_nub(reg, NULL, "SXTestNub", "test", props, &n), 0);
    plist_free(props);
    sx_match m;
    cr_assert_eq(match(n, fx_dict("s:IOProviderClass", "SXTestNub", "u:IOProbeScore", 7, NULL), &m),
                 1);
    cr_assert_eq(m.base_score, 0);
    cr_assert_eq(m.score, 7);
    plist_t d = fx_dict("s:IOProviderClass", "SXTestNub", NULL);
    plist_dict_set_item(d, "IOPropertyMatch", fx_dict("u:vendor-id", 5, "s:model", "X", NULL));
    cr_assert_eq(match(n, d, &m), 1);
    d = fx_dict("s:IOProviderClass", "SXTestNub", NULL);
    plist_dict_set_item(d, "IOPropertyMatch", fx_dict("u:vendor-id", 6, NULL));
    cr_assert_eq(match(n, d, &m), 0);
    d = fx_dict("s:IOProviderClass", "SXTestNub", NULL);
    plist_dict_set_item(d, "IOPropertyMatch", fx_dict("s:vendor-id", "5", NULL));
    cr_assert_eq(match(n, d, &m), 0, "types must agree");
    /* an array of dictionaries: any one */
    d = fx_dict("s:IOProviderClass", "SXTestNub", NULL);
    plist_t arr = plist_new_array();
    plist_array_append_item(arr, fx_dict("u:vendor-id", 6, NULL));
    plist_array_append_item(arr, fx_dict("s:model", "X", NULL));
    plist_dict_set_item(d, "IOPropertyMatch", arr);
    cr_assert_eq(match(n, d, &m), 1);
    /* terminated nubs match nothing and take no children */
    cr_assert_eq(sx_registry_terminate(reg, n), 0);
    cr_assert_eq(match(n, fx_dict("s:IOProviderClass", "SXTestNub", NULL), &m), 0);
    cr_assert_eq(sx_registry_add_nub(reg, n, "SXTestNub", "child", NULL, NULL), SYSEXT_EINVAL);
}
