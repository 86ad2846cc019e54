/* Inspect: identity, executable, personalities and embedded extensions, as text and JSON. */
#include "helpers.h"

TestSuite(bundle_inspect, .init = scratch_setup, .fini = scratch_teardown);

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "no key %s", key);
    return v;
}

static char *app_with_dext(void)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
    char *s = build(SYSEXT_BUNDLE_SYSEXT, "sysext.bplist",
                    "com.example.test.filter.systemextension", NULL, 0);
    const char *embeds[] = {d, s};
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", embeds, 2);
    free(s);
    free(d);
    return a;
}

Test(bundle_inspect, json)
{
    char *a = app_with_dext();
    char *t = NULL;
    cr_assert_eq(sysext_bundle_inspect(a, SYSEXT_OUTPUT_JSON, &t), 0, "%s", sysext_last_error());
    json_object *o = json_tokener_parse(t);
    cr_assert_not_null(o, "%s", t);
    cr_assert_str_eq(json_object_get_string(get(o, "kind")), "app");
    cr_assert_str_eq(json_object_get_string(get(o, "identifier")), "com.example.test");
    cr_assert_str_eq(json_object_get_string(get(o, "version")), "1");
    cr_assert_str_eq(json_object_get_string(get(o, "short_version")), "1.0");
    cr_assert_str_eq(json_object_get_string(get(o, "executable")), "Contents/MacOS/app-exe");
    json_object *emb = get(o, "embedded");
    cr_assert_eq(json_object_array_length(emb), 2);
    json_object *d = json_object_array_get_idx(emb, 0);
    cr_assert_str_eq(json_object_get_string(get(d, "path")),
                     "Contents/Library/SystemExtensions/com.example.test.driver.dext");
    cr_assert_str_eq(json_object_get_string(get(d, "kind")), "dext");
    cr_assert_str_eq(json_object_get_string(get(d, "executable")), "ext-exe");
    json_object *ps = get(d, "personalities");
    cr_assert_eq(json_object_array_length(ps), 1);
    json_object *p = json_object_array_get_idx(ps, 0);
    cr_assert_str_eq(json_object_get_string(get(p, "name")), "Test");
    cr_assert_str_eq(json_object_get_string(get(p, "IOClass")), "IOUserService");
    cr_assert_str_eq(json_object_get_string(get(p, "IOProviderClass")), "IOUSBHostInterface");
    cr_assert_eq(json_object_get_int64(get(p, "IOProbeScore")), 1000);
    json_object *m = get(p, "matching");
    cr_assert_eq(json_object_object_length(m), 3);
    cr_assert_eq(json_object_get_int64(get(m, "idVendor")), 0x1209);
    cr_assert_eq(json_object_get_int64(get(m, "idProduct")), 1);
    cr_assert_eq(json_object_get_int64(get(m, "bInterfaceNumber")), 0);
    json_object *s = json_object_array_get_idx(emb, 1);
    cr_assert_str_eq(json_object_get_string(get(s, "kind")), "sysext");
    cr_assert_str_eq(json_object_get_string(get(s, "identifier")), "com.example.test.filter");
    json_object_put(o);
    free(t);
    free(a);
}

Test(bundle_inspect, text)
{
    char *a = app_with_dext();
    char *t = NULL;
    cr_assert_eq(sysext_bundle_inspect(a, 0, &t), 0);
    cr_assert_not_null(strstr(t, "kind            app\n"), "%s", t);
    cr_assert_not_null(strstr(t, "identifier      com.example.test\n"), "%s", t);
    cr_assert_not_null(strstr(t, "embedded extensions:\n"), "%s", t);
    cr_assert_not_null(strstr(t, "    Test\n"), "%s", t);
    cr_assert_not_null(strstr(t, "IOProviderClass   IOUSBHostInterface\n"), "%s", t);
    cr_assert_not_null(strstr(t, "idVendor=0x1209"), "%s", t);
    cr_assert_not_null(strstr(t, "bInterfaceNumber=0"), "%s", t);
    free(t);
    free(a);
}

Test(bundle_inspect, broken_embedded_is_described_not_fatal)
{
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", NULL, 0);
    char *e = sx_path_join(a, "Contents/Library/SystemExtensions/x.dext");
    cr_assert_eq(sx_mkdir_p(e, 0755), 0);
    char *t = NULL;
    cr_assert_eq(sysext_bundle_inspect(a, SYSEXT_OUTPUT_JSON, &t), 0);
    json_object *o = json_tokener_parse(t);
    json_object *x = json_object_array_get_idx(get(o, "embedded"), 0);
    cr_assert_not_null(strstr(json_object_get_string(get(x, "error")), "x.dext/Info.plist"));
    json_object_put(o);
    free(t);
    free(e);
    free(a);
}

Test(bundle_inspect, cli)
{
    char *a = app_with_dext();
    cr_assert_eq(run_cli((const char *[]){"inspect", a, NULL}), 0);
    char *out = read_scratch("cli.out");
    cr_assert_not_null(strstr(out, "com.example.test.driver"), "%s", out);
    free(out);
    cr_assert_eq(run_cli((const char *[]){"inspect", "--json", a, NULL}), 0);
    out = read_scratch("cli.out");
    json_object *o = json_tokener_parse(out);
    cr_assert_not_null(o, "%s", out);
    json_object_put(o);
    free(out);
    char *missing = sp("missing.app");
    cr_assert_eq(run_cli((const char *[]){"inspect", missing, NULL}), 2);
    char *bad = sp("bad.dext");
    cr_assert_eq(sx_mkdir_p(bad, 0755), 0);
    free(make_file("bad.dext/Info.plist", "<plist><dict>", 0644));
    cr_assert_eq(run_cli((const char *[]){"inspect", bad, NULL}), 1);
    char *err = read_scratch("cli.err");
    cr_assert_not_null(strstr(err, "bad.dext/Info.plist: malformed"), "%s", err);
    free(err);
    cr_assert_eq(run_cli((const char *[]){"inspect", NULL}), 2);
    free(bad);
    free(missing);
    free(a);
}
