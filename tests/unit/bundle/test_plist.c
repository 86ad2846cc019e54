/* Reading plists and opening bundles: XML, binary, malformed, limits, layouts, schemas. */
#include "helpers.h"

TestSuite(bundle_plist, .init = scratch_setup, .fini = scratch_teardown);

Test(bundle_plist, xml_and_binary_parse_the_same)
{
    plist_t a = NULL, b = NULL;
    cr_assert_eq(sx_plist_read_file(DATA "dext.plist", 1 << 20, &a), 0);
    cr_assert_eq(sx_plist_read_file(DATA "dext.bplist", 1 << 20, &b), 0);
    cr_assert_str_eq(sx_plist_string(a, "CFBundleIdentifier"), "com.example.test.driver");
    cr_assert_str_eq(sx_plist_string(b, "CFBundleIdentifier"), "com.example.test.driver");
    cr_assert_eq(plist_dict_get_size(a), plist_dict_get_size(b));
    cr_assert_str_eq(sx_plist_type_name(plist_dict_get_item(a, "IOKitPersonalities")), "dict");
    plist_free(a);
    plist_free(b);
}

Test(bundle_plist, malformed_names_the_file)
{
    plist_t p = NULL;
    cr_assert_eq(sx_plist_read_file(DATA "malformed.plist", 1 << 20, &p), SYSEXT_EFORMAT);
    cr_assert_null(p);
    cr_assert_not_null(strstr(sx_errmsg(), "malformed.plist: malformed property list"), "%s",
                       sx_errmsg());
    cr_assert_eq(sx_plist_parse("", 0, "x.plist", &p), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "x.plist: empty"));
    cr_assert_eq(sx_plist_parse("<plist>\0</plist>", 16, "nul", &p), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "NUL byte at offset 7"), "%s", sx_errmsg());
    cr_assert_eq(sx_plist_parse("bplist00garbage-garbage-garbage-garbage", 39, "b", &p),
                 SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "b: binary property list of 39 bytes is truncated"),
                       "%s", sx_errmsg());
}

Test(bundle_plist, size_limit)
{
    plist_t p = NULL;
    cr_assert_eq(sx_plist_read_file(DATA "dext.plist", 100, &p), SYSEXT_ELIMIT);
}

Test(bundle_plist, deep_nesting_refused)
{
    sx_buf b = SX_BUF_INIT;
    sx_buf_puts(&b, "<plist>");
    for (int i = 0; i < 100; i++)
        sx_buf_puts(&b, "<array>");
    for (int i = 0; i < 100; i++)
        sx_buf_puts(&b, "</array>");
    sx_buf_puts(&b, "</plist>");
    plist_t p = NULL;
    cr_assert_eq(sx_plist_parse(b.data, b.len, "deep", &p), SYSEXT_ELIMIT);
    cr_assert_not_null(strstr(sx_errmsg(), "deep: containers nested deeper than 64"));
    sx_buf_free(&b);
    /* 60 levels, and empty <dict/>s that do not count, are fine. */
    sx_buf_puts(&b, "<plist>");
    for (int i = 0; i < 60; i++)
        sx_buf_puts(&b, "<array><dict/>");
    for (int i = 0; i < 60; i++)
        sx_buf_puts(&b, "</array>");
    sx_buf_puts(&b, "</plist>");
    cr_assert_eq(sx_plist_parse(b.data, b.len, "ok", &p), 0, "%s", sx_errmsg());
    plist_free(p);
    sx_buf_free(&b);
}

Test(bundle_plist, kinds)
{
    cr_assert_eq(sx_bundle_kind_from_path("/a/X.app"), SX_BUNDLE_APP);
    cr_assert_eq(sx_bundle_kind_from_path("X.dext/"), SX_BUNDLE_DEXT);
    cr_assert_eq(sx_bundle_kind_from_path("a.b.systemextension"), SX_BUNDLE_SYSEXT);
    cr_assert_eq(sx_bundle_kind_from_path("/a/.app"), SX_BUNDLE_UNKNOWN);
    cr_assert_eq(sx_bundle_kind_from_path("X.kext"), SX_BUNDLE_UNKNOWN);
    cr_assert_eq(sx_bundle_kind_parse("sysext"), SX_BUNDLE_SYSEXT);
    cr_assert_eq(sx_bundle_kind_parse("systemextension"), SX_BUNDLE_SYSEXT);
    cr_assert_eq(sx_bundle_kind_parse("kext"), SX_BUNDLE_UNKNOWN);
    cr_assert_str_eq(sx_bundle_kind_package_type(SX_BUNDLE_DEXT), "DEXT");
    cr_assert_str_eq(sysext_bundle_kind_name(SYSEXT_BUNDLE_SYSEXT), "sysext");
    cr_assert_str_eq(sysext_bundle_kind_name((sysext_bundle_kind)42), "unknown");
}

Test(bundle_plist, formats)
{
    cr_assert(sx_is_reverse_dns("com.example"));
    cr_assert(sx_is_reverse_dns("com.example.my-driver2"));
    cr_assert_not(sx_is_reverse_dns("example"));
    cr_assert_not(sx_is_reverse_dns("com.example."));
    cr_assert_not(sx_is_reverse_dns(".com.example"));
    cr_assert_not(sx_is_reverse_dns("com.exa mple"));
    cr_assert_not(sx_is_reverse_dns("com.exa_mple"));
    cr_assert(sx_is_bundle_version("1"));
    cr_assert(sx_is_bundle_version("1.2.3"));
    cr_assert_not(sx_is_bundle_version("1.2.3.4"));
    cr_assert_not(sx_is_bundle_version("1..2"));
    cr_assert_not(sx_is_bundle_version(""));
    cr_assert_not(sx_is_bundle_version("1.0b1"));
    cr_assert_not(sx_is_bundle_version("1234567890"));
}

Test(bundle_plist, open_layouts)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
    sx_bundle *b = NULL;
    cr_assert_eq(sx_bundle_open(d, &b), 0, "%s", sx_errmsg());
    cr_assert(b->flat);
    cr_assert_str_eq(b->exe_relpath, "ext-exe");
    cr_assert_str_eq(b->identifier, "com.example.test.driver");
    cr_assert_str_eq(b->version, "1.0.3");
    sx_bundle_free(b);

    /* A .dext with a Contents/ folder (seen in third-party builds) is accepted. */
    char *deep = sp("deep.dext");
    char *contents = sx_path_join(deep, "Contents");
    cr_assert_eq(sx_mkdir_p(contents, 0755), 0);
    char *info = sx_path_join(contents, "Info.plist");
    uint8_t *data;
    size_t len;
    cr_assert_eq(sx_read_file(DATA "dext.plist", 1 << 20, &data, &len), 0);
    cr_assert_eq(sx_write_file_atomic(info, data, len, 0644), 0);
    free(data);
    cr_assert_eq(sx_bundle_open(deep, &b), 0, "%s", sx_errmsg());
    cr_assert_not(b->flat);
    cr_assert_null(b->exe_relpath); /* the template names no executable */
    sx_bundle_free(b);
    free(info);
    free(contents);
    free(deep);
    free(d);
}

Test(bundle_plist, open_failures)
{
    sx_bundle *b = NULL;
    char *p = sp("none.dext");
    cr_assert_eq(sx_bundle_open(p, &b), SYSEXT_ENOTFOUND);
    cr_assert_eq(sx_mkdir_p(p, 0755), 0);
    cr_assert_eq(sx_bundle_open(p, &b), SYSEXT_ENOTFOUND);
    cr_assert_not_null(strstr(sx_errmsg(), "none.dext/Info.plist"), "%s", sx_errmsg());
    free(make_file("none.dext/Info.plist", "<plist><array/></plist>", 0644));
    cr_assert_eq(sx_bundle_open(p, &b), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "expected a dictionary at the top level, got array"));
    cr_assert_eq(sx_bundle_open(scratch, &b), SYSEXT_EINVAL);
    sysext_bundle *h = NULL;
    cr_assert_eq(sysext_bundle_open(&h, p), SYSEXT_EFORMAT);
    cr_assert_null(h);
    cr_assert_eq(sysext_bundle_open(NULL, p), SYSEXT_EINVAL);
    sysext_bundle_free(NULL);
    free(p);
}

Test(bundle_plist, unsafe_executable_name_gets_no_path)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
    set_key(d, "CFBundleExecutable", plist_new_string("../../bin/sh"));
    sx_bundle *b = NULL;
    cr_assert_eq(sx_bundle_open(d, &b), 0);
    cr_assert_null(b->exe_path);
    cr_assert_str_eq(b->executable, "../../bin/sh");
    sx_bundle_free(b);
    free(d);
}

Test(bundle_plist, entitlements_blob)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
    plist_t e = NULL;
    cr_assert_eq(sx_bundle_read_entitlements(d, &e), 0);
    cr_assert_null(e); /* unsigned */
    char *dir = sx_path_join(d, "_CodeSignature");
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    char *f = sx_path_join(dir, "CodeEntitlements");
    const char xml[] = "<plist><dict><key>a</key><true/></dict></plist>";
    sx_buf b = SX_BUF_INIT;
    sx_buf_put_u32be(&b, 0xfade7171);
    sx_buf_put_u32be(&b, (uint32_t)(8 + strlen(xml)));
    sx_buf_puts(&b, xml);
    cr_assert_eq(sx_write_file_atomic(f, b.data, b.len, 0644), 0);
    cr_assert_eq(sx_bundle_read_entitlements(d, &e), 0, "%s", sx_errmsg());
    cr_assert_not_null(plist_dict_get_item(e, "a"));
    plist_free(e);
    /* Wrong magic, named with its offset. */
    b.data[3] = 0x72;
    cr_assert_eq(sx_write_file_atomic(f, b.data, b.len, 0644), 0);
    cr_assert_eq(sx_bundle_read_entitlements(d, &e), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "magic 0xfade7172 at offset 0"), "%s", sx_errmsg());
    /* Truncated header. */
    cr_assert_eq(sx_write_file_atomic(f, b.data, 6, 0644), 0);
    cr_assert_eq(sx_bundle_read_entitlements(d, &e), SYSEXT_EFORMAT);
    /* Length below the header. */
    b.data[3] = 0x71;
    sx_buf_set_u32be(&b, 4, 4);
    cr_assert_eq(sx_write_file_atomic(f, b.data, b.len, 0644), 0);
    cr_assert_eq(sx_bundle_read_entitlements(d, &e), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "blob length 4 at offset 4"), "%s", sx_errmsg());
    sx_buf_free(&b);
    free(f);
    free(dir);
    free(d);
}

Test(bundle_plist, schemas_compiled_in)
{
    static const char *const names[] = {"app", "dext", "sysext", "personality", "entitlements"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(names); i++) {
        json_object *o = NULL;
        cr_assert_eq(sx_schema_load(names[i], &o), 0, "%s: %s", names[i], sx_errmsg());
        json_object_put(o);
    }
    json_object *o = NULL;
    cr_assert_eq(sx_schema_load("nope", &o), SYSEXT_ENOTFOUND);
    cr_assert_eq(sx_schema_load("../etc/passwd", &o), SYSEXT_EINVAL);
    /* The override dir: a broken file is reported with its byte offset. */
    char *dir = sp("schemas");
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    free(make_file("schemas/app.json", "{\"keys\": [", 0644));
    setenv("SYSEXT_SCHEMA_DIR", dir, 1);
    cr_assert_eq(sx_schema_load("app", &o), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "schemas/app.json: invalid JSON at byte"), "%s",
                       sx_errmsg());
    cr_assert_eq(sx_schema_load("dext", &o), SYSEXT_ENOTFOUND);
    unsetenv("SYSEXT_SCHEMA_DIR");
    free(dir);
}

Test(bundle_plist, entitlement_catalogue)
{
    sx_ent_catalog *c = NULL;
    cr_assert_eq(sx_ent_catalog_load(&c), 0, "%s", sx_errmsg());
    cr_assert_gt(sx_ent_catalog_count(c), 20);
    const sx_ent_rule *r = sx_ent_catalog_find(c, "com.apple.developer.driverkit");
    cr_assert_not_null(r);
    cr_assert_str_eq(r->type, "bool");
    cr_assert_eq(r->on, SX_KIND_BIT(SX_BUNDLE_DEXT));
    cr_assert_eq(r->required_by, SX_KIND_BIT(SX_BUNDLE_DEXT));
    r = sx_ent_catalog_find(c, "com.apple.developer.driverkit.transport.usb");
    cr_assert_str_eq(r->group, "driverkit-transport");
    cr_assert_str_eq(r->type, "array");
    r = sx_ent_catalog_find(c, "com.apple.developer.system-extension.install");
    cr_assert_eq(r->required_by, SX_ENT_APP_WITH_EXTENSIONS);
    cr_assert_eq(r->on, SX_KIND_BIT(SX_BUNDLE_APP));
    r = sx_ent_catalog_find(c, "com.apple.developer.networking.networkextension");
    cr_assert_str_eq(r->category, "network");
    r = sx_ent_catalog_find(c, "com.apple.developer.endpoint-security.client");
    cr_assert_str_eq(r->category, "endpoint-security");
    cr_assert_not_null(sx_ent_catalog_find(c, "com.apple.developer.system-extension.redistributable"));
    cr_assert_null(sx_ent_catalog_find(c, "com.example.unknown"));

    /* An app without extensions needs no install entitlement; with them, it does. */
    plist_t e = plist_new_dict();
    sx_report rep;
    sx_report_init(&rep);
    sx_ent_check(c, e, SX_BUNDLE_APP, false, "E", &rep);
    cr_assert_eq(rep.n, 0);
    sx_ent_check(c, e, SX_BUNDLE_APP, true, "E", &rep);
    expect_error(&rep, "missing-entitlement", "com.apple.developer.system-extension.install", "E");
    sx_report_free(&rep);
    sx_report_init(&rep);
    plist_dict_set_item(e, "com.apple.developer.driverkit.family.hid.virtual.device",
                        plist_new_bool(1));
    sx_ent_check(c, e, SX_BUNDLE_DEXT, false, "E", &rep);
    expect_error(&rep, "missing-entitlement", "com.apple.developer.driverkit", "E");
    expect_error(&rep, "missing-entitlement", "driverkit-transport", "E");
    expect(&rep, SX_SEV_WARNING, "deprecated-entitlement",
           "com.apple.developer.driverkit.family.hid.virtual.device", "E");
    sx_report_free(&rep);
    plist_free(e);
    sx_ent_catalog_free(c);
}

/* Found by fuzz_bundle_infoplist: libplist 2.2 aborts (assertion in plist_get_key_val) when a
 * binary plist's dictionary key holds a NUL byte and the key is read back. */
Test(bundle_plist, bplist_string_with_nul_refused)
{
    plist_t p = NULL;
    cr_assert_eq(sx_plist_read_file(SYSEXT_SOURCE_DIR "/fuzz/corpus/fuzz_bundle_infoplist/"
                                                      "crash-bplist-key-with-nul-asserts-in-"
                                                      "libplist.bplist",
                                    1 << 20, &p),
                 SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "holds a NUL character"), "%s", sx_errmsg());
    /* The same shape built by hand: {"a\0b": "x"} as bplist00. */
    static const uint8_t bp[] = {
        'b', 'p', 'l', 'i', 's', 't', '0', '0',
        0xd1, 0x01, 0x02,          /* obj0 @8: dict, 1 entry, key ref 1, value ref 2 */
        0x53, 'a', 0x00, 'b',      /* obj1 @11: ASCII string of 3 */
        0x51, 'x',                 /* obj2 @15: ASCII string of 1 */
        0x08, 0x0b, 0x0f,          /* offset table @17 */
        0, 0, 0, 0, 0, 0, 1, 1,    /* trailer: offset size 1, ref size 1 */
        0, 0, 0, 0, 0, 0, 0, 3,    /* 3 objects */
        0, 0, 0, 0, 0, 0, 0, 0,    /* top object 0 */
        0, 0, 0, 0, 0, 0, 0, 17,   /* offset table at 17 */
    };
    cr_assert_eq(sx_plist_parse(bp, sizeof(bp), "k", &p), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "k: string at offset 11 holds a NUL character"), "%s",
                       sx_errmsg());
    /* Without the NUL it parses. */
    uint8_t ok[sizeof(bp)];
    memcpy(ok, bp, sizeof(bp));
    ok[13] = 'z';
    cr_assert_eq(sx_plist_parse(ok, sizeof(ok), "k", &p), 0, "%s", sx_errmsg());
    cr_assert_not_null(plist_dict_get_item(p, "azb"));
    plist_free(p);
    /* A trailer pointing outside the data. */
    ok[sizeof(ok) - 1] = 200;
    cr_assert_eq(sx_plist_parse(ok, sizeof(ok), "k", &p), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "trailer"), "%s", sx_errmsg());
}

/* n nested one-element arrays (object i holds a reference to i+1; the last is empty), with
 * `cycle` the last one refers back to object 0 instead. 4-byte offsets and references. */
static void nested_bplist(sx_buf *b, uint32_t n, bool cycle)
{
    sx_buf_puts(b, "bplist00");
    uint32_t *offs = calloc(n, sizeof(*offs));
    for (uint32_t i = 0; i < n; i++) {
        offs[i] = (uint32_t)b->len;
        if (i + 1 < n || cycle) {
            sx_buf_putc(b, (char)0xa1);
            sx_buf_put_u32be(b, i + 1 < n ? i + 1 : 0);
        } else {
            sx_buf_putc(b, (char)0xa0);
        }
    }
    uint32_t table = (uint32_t)b->len;
    for (uint32_t i = 0; i < n; i++)
        sx_buf_put_u32be(b, offs[i]);
    for (int i = 0; i < 6; i++)
        sx_buf_putc(b, 0);
    sx_buf_putc(b, 4);
    sx_buf_putc(b, 4);
    sx_buf_put_u64be(b, n);
    sx_buf_put_u64be(b, 0);
    sx_buf_put_u64be(b, table);
    free(offs);
}

/* libplist 2.2 recurses without a limit through binary plists: 200000 nested arrays crash it
 * with a stack overflow, and a cycle recurses forever. Both are refused before it runs. */
Test(bundle_plist, bplist_deep_nesting_and_cycles_refused)
{
    plist_t p = NULL;
    sx_buf b = SX_BUF_INIT;
    nested_bplist(&b, 200000, false);
    cr_assert_eq(sx_plist_parse(b.data, b.len, "deep", &p), SYSEXT_ELIMIT);
    cr_assert_not_null(strstr(sx_errmsg(), "deep: containers nested deeper than 64 levels"),
                       "%s", sx_errmsg());
    sx_buf_free(&b);
    nested_bplist(&b, 10, true);
    cr_assert_eq(sx_plist_parse(b.data, b.len, "cyc", &p), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "cyc: object 0 contains itself"), "%s", sx_errmsg());
    sx_buf_free(&b);
    nested_bplist(&b, 60, false);
    cr_assert_eq(sx_plist_parse(b.data, b.len, "ok", &p), 0, "%s", sx_errmsg());
    cr_assert_eq(plist_get_node_type(p), PLIST_ARRAY);
    plist_free(p);
    sx_buf_free(&b);
}

/* A tree whose one shared subtree is referenced from many places is walked once per object. */
Test(bundle_plist, bplist_shared_subtrees)
{
    /* obj0: array of 3 refs to obj1; obj1: array of 1 ref to obj2; obj2: "s". */
    static const uint8_t bp[] = {
        'b', 'p', 'l', 'i', 's', 't', '0', '0',
        0xa3, 0x01, 0x01, 0x01, /* @8 */
        0xa1, 0x02,             /* @12 */
        0x51, 's',              /* @14 */
        0x08, 0x0c, 0x0e,       /* table @16 */
        0, 0, 0, 0, 0, 0, 1, 1,
        0, 0, 0, 0, 0, 0, 0, 3,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 16,
    };
    plist_t p = NULL;
    cr_assert_eq(sx_plist_parse(bp, sizeof(bp), "shared", &p), 0, "%s", sx_errmsg());
    cr_assert_eq(plist_array_get_size(p), 3);
    plist_free(p);
}

/* The nesting count cannot be fooled by closing tags libplist does not see as closing tags. */
Test(bundle_plist, xml_depth_not_fooled)
{
    static const char *const units[] = {
        "<array><!-- </array> -->",
        "<array><?pi </array> ?>",
        "<array a=\"</array>\">",
        "<dict x='</dict>'><key>k</key>",
    };
    for (size_t u = 0; u < SX_ARRAY_SIZE(units); u++) {
        sx_buf b = SX_BUF_INIT;
        sx_buf_puts(&b, "<plist>");
        for (int i = 0; i < 100; i++)
            sx_buf_puts(&b, units[u]);
        sx_buf_puts(&b, "</plist>");
        plist_t p = NULL;
        cr_assert_eq(sx_plist_parse(b.data, b.len, "x", &p), SYSEXT_ELIMIT, "%s", units[u]);
        sx_buf_free(&b);
    }
    /* Ordinary comments, attributes and empty elements are fine. */
    const char ok[] = "<?xml version=\"1.0\"?><!DOCTYPE plist><plist version=\"1.0\"><dict>"
                      "<!-- <array> </array> --><key>a</key><array/><key>b</key>"
                      "<dict ></dict ><key>c</key><array><dict/></array></dict></plist>";
    plist_t p = NULL;
    cr_assert_eq(sx_plist_parse(ok, strlen(ok), "ok", &p), 0, "%s", sx_errmsg());
    cr_assert_eq(plist_dict_get_size(p), 3);
    plist_free(p);
}
