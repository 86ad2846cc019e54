/* Validation: every bad-bundle case reports the exact code and key path; warnings do not fail. */
#include "helpers.h"

TestSuite(bundle_validate, .init = scratch_setup, .fini = scratch_teardown);

static char *good_dext(void)
{
    return build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
}

static char *good_sysext(void)
{
    return build(SYSEXT_BUNDLE_SYSEXT, "sysext.plist", "com.example.test.filter.systemextension",
                 NULL, 0);
}

#define CHECK_ONE(bundle, code, key, path)                                                         \
    do {                                                                                           \
        sx_report r_;                                                                              \
        validate(bundle, &r_);                                                                     \
        expect_error(&r_, code, key, path);                                                        \
        sx_report_free(&r_);                                                                       \
        char *t_ = NULL;                                                                           \
        cr_assert_eq(sysext_bundle_validate(bundle, 0, &t_), SYSEXT_EINVALID);                     \
        cr_assert_not_null(t_);                                                                    \
        cr_assert_not_null(strstr(t_, "[" code "]"), "%s", t_);                                    \
        free(t_);                                                                                  \
    } while (0)

Test(bundle_validate, good_bundles_are_clean)
{
    char *d = good_dext(), *s = good_sysext();
    sx_report r;
    validate(d, &r);
    expect_clean(&r);
    sx_report_free(&r);
    validate(s, &r);
    expect_clean(&r);
    sx_report_free(&r);
    char *t = NULL;
    cr_assert_eq(sysext_bundle_validate(d, 0, &t), 0);
    cr_assert_not_null(strstr(t, ": valid (0 errors, 0 warnings)"), "%s", t);
    free(t);
    free(d);
    free(s);
}

Test(bundle_validate, missing_identifier)
{
    char *d = good_dext();
    set_key(d, "CFBundleIdentifier", NULL);
    CHECK_ONE(d, "missing-key", "CFBundleIdentifier", "Info.plist");
    free(d);
}

Test(bundle_validate, identifier_not_reverse_dns)
{
    char *d = good_dext();
    set_key(d, "CFBundleIdentifier", plist_new_string("testdriver"));
    CHECK_ONE(d, "invalid-identifier", "CFBundleIdentifier", "Info.plist");
    set_key(d, "CFBundleIdentifier", plist_new_string("com..example"));
    CHECK_ONE(d, "invalid-identifier", "CFBundleIdentifier", "Info.plist");
    free(d);
}

Test(bundle_validate, identifier_wrong_type)
{
    char *d = good_dext();
    set_key(d, "CFBundleIdentifier", plist_new_uint(42));
    sx_report r;
    validate(d, &r);
    expect_error(&r, "wrong-type", "CFBundleIdentifier", "Info.plist");
    cr_assert_not_null(strstr(r.v[0].message, "expected string, got integer"), "%s",
                       r.v[0].message);
    sx_report_free(&r);
    free(d);
}

Test(bundle_validate, bad_bundle_version)
{
    char *d = good_dext();
    set_key(d, "CFBundleVersion", plist_new_string("1.x"));
    CHECK_ONE(d, "invalid-version", "CFBundleVersion", "Info.plist");
    set_key(d, "CFBundleVersion", plist_new_string("1.2.3.4"));
    CHECK_ONE(d, "invalid-version", "CFBundleVersion", "Info.plist");
    free(d);
}

Test(bundle_validate, missing_short_version)
{
    char *s = good_sysext();
    set_key(s, "CFBundleShortVersionString", NULL);
    CHECK_ONE(s, "missing-key", "CFBundleShortVersionString", "Contents/Info.plist");
    free(s);
}

Test(bundle_validate, missing_executable_key)
{
    char *d = good_dext();
    set_key(d, "CFBundleExecutable", NULL);
    CHECK_ONE(d, "missing-key", "CFBundleExecutable", "Info.plist");
    free(d);
}

Test(bundle_validate, executable_file_missing)
{
    char *s = good_sysext();
    char *exe = sx_path_join(s, "Contents/MacOS/ext-exe");
    cr_assert_eq(unlink(exe), 0);
    CHECK_ONE(s, "missing-executable", "CFBundleExecutable", "Contents/Info.plist");
    free(exe);
    free(s);
}

Test(bundle_validate, executable_not_executable)
{
    char *d = good_dext();
    char *exe = sx_path_join(d, "ext-exe");
    cr_assert_eq(chmod(exe, 0644), 0);
    CHECK_ONE(d, "executable-not-executable", "CFBundleExecutable", "Info.plist");
    free(exe);
    free(d);
}

Test(bundle_validate, executable_name_escapes_bundle)
{
    char *d = good_dext();
    set_key(d, "CFBundleExecutable", plist_new_string("../evil"));
    CHECK_ONE(d, "invalid-file-name", "CFBundleExecutable", "Info.plist");
    free(d);
}

Test(bundle_validate, wrong_package_type)
{
    char *d = good_dext();
    set_key(d, "CFBundlePackageType", plist_new_string("APPL"));
    CHECK_ONE(d, "wrong-package-type", "CFBundlePackageType", "Info.plist");
    free(d);
}

Test(bundle_validate, dext_missing_usage_description)
{
    char *d = good_dext();
    set_key(d, "OSBundleUsageDescription", NULL);
    CHECK_ONE(d, "missing-key", "OSBundleUsageDescription", "Info.plist");
    free(d);
}

Test(bundle_validate, sysext_missing_usage_description)
{
    char *s = good_sysext();
    set_key(s, "NSSystemExtensionUsageDescription", NULL);
    CHECK_ONE(s, "missing-key", "NSSystemExtensionUsageDescription", "Contents/Info.plist");
    free(s);
}

Test(bundle_validate, dext_without_personalities)
{
    char *d = good_dext();
    set_key(d, "IOKitPersonalities", NULL);
    CHECK_ONE(d, "missing-key", "IOKitPersonalities", "Info.plist");
    set_key(d, "IOKitPersonalities", plist_new_dict());
    CHECK_ONE(d, "empty-value", "IOKitPersonalities", "Info.plist");
    free(d);
}

Test(bundle_validate, personality_missing_ioclass)
{
    char *d = good_dext();
    set_pers_key(d, "Test", "IOClass", NULL);
    CHECK_ONE(d, "missing-key", "IOKitPersonalities.Test.IOClass", "Info.plist");
    free(d);
}

Test(bundle_validate, server_name_wrong_organization)
{
    char *d = good_dext();
    set_pers_key(d, "Test", "IOUserServerName", plist_new_string("org.other.test.driver"));
    CHECK_ONE(d, "server-name-prefix", "IOKitPersonalities.Test.IOUserServerName", "Info.plist");
    /* Same organization, other server name: fine. */
    set_pers_key(d, "Test", "IOUserServerName", plist_new_string("com.example.server"));
    sx_report r;
    validate(d, &r);
    expect_clean(&r);
    sx_report_free(&r);
    free(d);
}

Test(bundle_validate, personality_identifier_mismatch)
{
    char *d = good_dext();
    set_pers_key(d, "Test", "CFBundleIdentifier", plist_new_string("com.example.other"));
    CHECK_ONE(d, "identifier-mismatch", "IOKitPersonalities.Test.CFBundleIdentifier",
              "Info.plist");
    free(d);
}

Test(bundle_validate, id_vendor_as_string)
{
    char *d = good_dext();
    set_pers_key(d, "Test", "idVendor", plist_new_string("0x1209"));
    CHECK_ONE(d, "wrong-type", "IOKitPersonalities.Test.idVendor", "Info.plist");
    set_pers_key(d, "Test", "idVendor", plist_new_uint(70000));
    CHECK_ONE(d, "out-of-range", "IOKitPersonalities.Test.idVendor", "Info.plist");
    set_pers_key(d, "Test", "IOProbeScore", plist_new_string("high"));
    CHECK_ONE(d, "wrong-type", "IOKitPersonalities.Test.IOProbeScore", "Info.plist");
    free(d);
}

Test(bundle_validate, personality_not_a_dict)
{
    char *d = good_dext();
    plist_t info = load_info(d);
    plist_dict_set_item(plist_dict_get_item(info, "IOKitPersonalities"), "Bad",
                        plist_new_string("x"));
    save_info(d, info);
    CHECK_ONE(d, "wrong-type", "IOKitPersonalities.Bad", "Info.plist");
    free(d);
}

Test(bundle_validate, embedded_extension_misnamed)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "wrong.dext", NULL, 0);
    const char *embeds[] = {d};
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", embeds, 1);
    CHECK_ONE(a, "embedded-misnamed", NULL, "Contents/Library/SystemExtensions/wrong.dext");
    /* Standalone, the same name is only a warning. */
    sx_report r;
    validate(d, &r);
    expect(&r, SX_SEV_WARNING, "bundle-name-mismatch", NULL, NULL);
    cr_assert_eq(sx_report_count(&r, SX_SEV_ERROR), 0);
    sx_report_free(&r);
    free(a);
    free(d);
}

Test(bundle_validate, embedded_extension_invalid_reported_with_its_path)
{
    char *d = good_dext();
    set_pers_key(d, "Test", "IOClass", NULL);
    char *s = good_sysext();
    set_key(s, "CFBundleVersion", plist_new_string("one"));
    const char *embeds[] = {d, s};
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", embeds, 2);
    sx_report r;
    validate(a, &r);
    expect_error(&r, "missing-key", "IOKitPersonalities.Test.IOClass",
                 "Contents/Library/SystemExtensions/com.example.test.driver.dext/Info.plist");
    expect_error(&r, "invalid-version", "CFBundleVersion",
                 "Contents/Library/SystemExtensions/com.example.test.filter.systemextension/"
                 "Contents/Info.plist");
    cr_assert_eq(sx_report_count(&r, SX_SEV_ERROR), 2);
    sx_report_free(&r);
    free(a);
    free(s);
    free(d);
}

Test(bundle_validate, embedded_unknown_kind)
{
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", NULL, 0);
    char *dir = sx_path_join(a, "Contents/Library/SystemExtensions/helper.bundle");
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    CHECK_ONE(a, "embedded-unknown-kind", NULL,
              "Contents/Library/SystemExtensions/helper.bundle");
    free(dir);
    free(a);
}

Test(bundle_validate, embedded_symlink_not_followed)
{
    char *d = good_dext();
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", NULL, 0);
    char *dir = sx_path_join(a, "Contents/Library/SystemExtensions");
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    char *link = sx_path_join(dir, "com.example.test.driver.dext");
    cr_assert_eq(symlink(d, link), 0);
    CHECK_ONE(a, "embedded-not-a-bundle", NULL,
              "Contents/Library/SystemExtensions/com.example.test.driver.dext");
    free(link);
    free(dir);
    free(a);
    free(d);
}

Test(bundle_validate, malformed_info_plist)
{
    char *d = good_dext();
    char *info = sx_path_join(d, "Info.plist");
    uint8_t *bad;
    size_t len;
    cr_assert_eq(sx_read_file(DATA "malformed.plist", 4096, &bad, &len), 0);
    cr_assert_eq(sx_write_file_atomic(info, bad, len, 0644), 0);
    sx_report r;
    validate(d, &r);
    expect_error(&r, "malformed-plist", NULL, "Info.plist");
    cr_assert_not_null(strstr(r.v[0].message, "Info.plist: malformed property list"), "%s",
                       r.v[0].message);
    sx_report_free(&r);
    free(bad);
    free(info);
    free(d);
}

Test(bundle_validate, missing_info_plist)
{
    char *d = good_dext();
    char *info = sx_path_join(d, "Info.plist");
    cr_assert_eq(unlink(info), 0);
    CHECK_ONE(d, "missing-info-plist", NULL, "Info.plist");
    free(info);
    free(d);
}

Test(bundle_validate, sysext_without_category)
{
    char *s = good_sysext();
    set_key(s, "NetworkExtension", NULL);
    CHECK_ONE(s, "missing-category", NULL, "Contents/Info.plist");
    free(s);
}

static void write_entitlements(const char *bundle, const char *codesig_dir, const char *xml)
{
    char *dir = sx_path_join(bundle, codesig_dir);
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    char *f = sx_path_join(dir, "CodeEntitlements");
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_buf_put_u32be(&b, SX_ENTITLEMENTS_MAGIC), 0);
    cr_assert_eq(sx_buf_put_u32be(&b, (uint32_t)(8 + strlen(xml))), 0);
    cr_assert_eq(sx_buf_puts(&b, xml), 0);
    cr_assert_eq(sx_write_file_atomic(f, b.data, b.len, 0644), 0);
    sx_buf_free(&b);
    free(f);
    free(dir);
}

#define ENTS(body)                                                                                 \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n" body           \
    "</dict>\n</plist>\n"

Test(bundle_validate, sysext_category_from_entitlements)
{
    char *s = good_sysext();
    set_key(s, "NetworkExtension", NULL);
    write_entitlements(s, "Contents/_CodeSignature",
                       ENTS("<key>com.apple.developer.endpoint-security.client</key><true/>\n"));
    sx_report r;
    validate(s, &r);
    expect_clean(&r);
    sx_report_free(&r);
    free(s);
}

Test(bundle_validate, signed_dext_entitlements_checked)
{
    char *d = good_dext();
    write_entitlements(d, "_CodeSignature",
                       ENTS("<key>com.apple.developer.driverkit</key><string>yes</string>\n"
                            "<key>com.apple.developer.system-extension.install</key><true/>\n"));
    sx_report r;
    validate(d, &r);
    const char *ep = "_CodeSignature/CodeEntitlements";
    expect_error(&r, "entitlement-wrong-type", "com.apple.developer.driverkit", ep);
    expect_error(&r, "missing-entitlement", "driverkit-transport", ep);
    expect_error(&r, "entitlement-not-allowed", "com.apple.developer.system-extension.install",
                 ep);
    sx_report_free(&r);

    write_entitlements(d, "_CodeSignature",
                       ENTS("<key>com.apple.developer.driverkit</key><true/>\n"
                            "<key>com.apple.developer.driverkit.transport.usb</key>"
                            "<array><dict><key>idVendor</key><integer>4617</integer></dict>"
                            "</array>\n"));
    validate(d, &r);
    expect_clean(&r);
    sx_report_free(&r);
    free(d);
}

Test(bundle_validate, app_embedding_needs_install_entitlement)
{
    char *d = good_dext();
    const char *embeds[] = {d};
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", embeds, 1);
    write_entitlements(a, "Contents/_CodeSignature",
                       ENTS("<key>com.apple.security.app-sandbox</key><true/>\n"));
    CHECK_ONE(a, "missing-entitlement", "com.apple.developer.system-extension.install",
              "Contents/_CodeSignature/CodeEntitlements");
    free(a);
    free(d);
}

Test(bundle_validate, malformed_entitlements_blob)
{
    char *d = good_dext();
    char *dir = sx_path_join(d, "_CodeSignature");
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    free(dir);
    /* Length field larger than the file. */
    char *f = sx_path_join(d, "_CodeSignature/CodeEntitlements");
    const uint8_t blob[] = {0xfa, 0xde, 0x71, 0x71, 0x00, 0x00, 0x10, 0x00, '<', 'p'};
    cr_assert_eq(sx_write_file_atomic(f, blob, sizeof(blob), 0644), 0);
    CHECK_ONE(d, "malformed-entitlements", NULL, "_CodeSignature/CodeEntitlements");
    free(f);
    free(d);
}

Test(bundle_validate, recommended_keys_are_warnings)
{
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", NULL, 0);
    set_key(a, "CFBundleDisplayName", NULL);
    set_key(a, "CFBundleIconName", NULL);
    sx_report r;
    validate(a, &r);
    expect(&r, SX_SEV_WARNING, "missing-recommended-key", "CFBundleDisplayName",
           "Contents/Info.plist");
    expect(&r, SX_SEV_WARNING, "missing-icon", NULL, "Contents/Info.plist");
    cr_assert_eq(sx_report_count(&r, SX_SEV_ERROR), 0);
    sx_report_free(&r);
    char *t = NULL;
    cr_assert_eq(sysext_bundle_validate(a, 0, &t), 0);
    cr_assert_not_null(strstr(t, "valid (0 errors, 2 warnings)"), "%s", t);
    free(t);
    /* An icon file named but absent is a warning too. */
    set_key(a, "CFBundleIconFile", plist_new_string("AppIcon.icns"));
    validate(a, &r);
    expect(&r, SX_SEV_WARNING, "missing-icon-file", "CFBundleIconFile", "Contents/Info.plist");
    sx_report_free(&r);
    free(a);
}

Test(bundle_validate, every_problem_reported)
{
    char *d = good_dext();
    set_key(d, "CFBundleIdentifier", plist_new_string("bad"));
    set_key(d, "CFBundleVersion", plist_new_string(""));
    set_key(d, "OSBundleUsageDescription", NULL);
    set_pers_key(d, "Test", "idProduct", plist_new_bool(1));
    sx_report r;
    validate(d, &r);
    expect_error(&r, "invalid-identifier", "CFBundleIdentifier", "Info.plist");
    expect_error(&r, "invalid-version", "CFBundleVersion", "Info.plist");
    expect_error(&r, "missing-key", "OSBundleUsageDescription", "Info.plist");
    expect_error(&r, "wrong-type", "IOKitPersonalities.Test.idProduct", "Info.plist");
    /* The personality's own identifier and server name now differ from "bad" too. */
    expect_error(&r, "identifier-mismatch", "IOKitPersonalities.Test.CFBundleIdentifier",
                 "Info.plist");
    sx_report_free(&r);
    free(d);
}

Test(bundle_validate, json_report)
{
    char *d = good_dext();
    set_key(d, "CFBundleVersion", plist_new_string("v1"));
    char *t = NULL;
    cr_assert_eq(sysext_bundle_validate(d, SYSEXT_OUTPUT_JSON, &t), SYSEXT_EINVALID);
    json_object *o = json_tokener_parse(t);
    cr_assert_not_null(o, "%s", t);
    json_object *v, *diags;
    cr_assert(json_object_object_get_ex(o, "valid", &v));
    cr_assert_eq(json_object_get_boolean(v), 0);
    cr_assert(json_object_object_get_ex(o, "kind", &v));
    cr_assert_str_eq(json_object_get_string(v), "dext");
    cr_assert(json_object_object_get_ex(o, "diagnostics", &diags));
    cr_assert_eq(json_object_array_length(diags), 1);
    json_object *d0 = json_object_array_get_idx(diags, 0);
    cr_assert(json_object_object_get_ex(d0, "code", &v));
    cr_assert_str_eq(json_object_get_string(v), "invalid-version");
    cr_assert(json_object_object_get_ex(d0, "key", &v));
    cr_assert_str_eq(json_object_get_string(v), "CFBundleVersion");
    cr_assert(json_object_object_get_ex(d0, "severity", &v));
    cr_assert_str_eq(json_object_get_string(v), "error");
    json_object_put(o);
    free(t);
    free(d);
}

Test(bundle_validate, not_a_bundle)
{
    char *p = sp("nothing.dext");
    char *t = NULL;
    cr_assert_eq(sysext_bundle_validate(p, 0, &t), SYSEXT_ENOTFOUND);
    cr_assert_null(t);
    cr_assert_not_null(strstr(sysext_last_error(), "nothing.dext"));
    cr_assert_eq(sysext_bundle_validate(scratch, 0, &t), SYSEXT_EINVAL);
    cr_assert_null(t);
    free(p);
}

Test(bundle_validate, info_from_memory)
{
    sx_report r;
    sx_report_init(&r);
    sx_validate_info_mem("<plist><dict/></plist>", 22, SX_BUNDLE_SYSEXT, &r);
    expect_error(&r, "missing-key", "CFBundleIdentifier", "Info.plist");
    expect_error(&r, "missing-category", NULL, "Info.plist");
    sx_report_free(&r);
    sx_report_init(&r);
    sx_validate_info_mem("garbage", 7, SX_BUNDLE_DEXT, &r);
    expect_error(&r, "malformed-plist", NULL, "Info.plist");
    sx_report_free(&r);
}

Test(bundle_validate, schema_dir_override)
{
    /* A development schema dir that requires an extra key on apps. */
    char *a = build(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", NULL, 0);
    char *dir = sp("schemas");
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0);
    free(make_file("schemas/app.json",
                   "{\"keys\": {\"LSMinimumSystemVersion\": {\"type\": \"string\", "
                   "\"required\": true}}}",
                   0644));
    setenv("SYSEXT_SCHEMA_DIR", dir, 1);
    sx_report r;
    validate(a, &r);
    expect_error(&r, "missing-key", "LSMinimumSystemVersion", "Contents/Info.plist");
    sx_report_free(&r);
    unsetenv("SYSEXT_SCHEMA_DIR");
    validate(a, &r);
    expect_clean(&r);
    sx_report_free(&r);
    free(dir);
    free(a);
}

Test(bundle_validate, cli_exit_codes)
{
    char *d = good_dext();
    cr_assert_eq(run_cli((const char *[]){"validate", d, NULL}), 0);
    char *out = read_scratch("cli.out");
    cr_assert_not_null(strstr(out, "valid (0 errors"), "%s", out);
    free(out);
    cr_assert_eq(run_cli((const char *[]){"validate", "--json", d, NULL}), 0);
    out = read_scratch("cli.out");
    json_object *o = json_tokener_parse(out);
    cr_assert_not_null(o, "%s", out);
    json_object_put(o);
    free(out);

    set_key(d, "CFBundleVersion", plist_new_string("x"));
    cr_assert_eq(run_cli((const char *[]){"validate", d, NULL}), 1);
    out = read_scratch("cli.out");
    cr_assert_not_null(strstr(out, "error: Info.plist: CFBundleVersion: "), "%s", out);
    free(out);

    char *missing = sp("missing.dext");
    cr_assert_eq(run_cli((const char *[]){"validate", missing, NULL}), 2);
    char *err = read_scratch("cli.err");
    cr_assert_not_null(strstr(err, "missing.dext"), "%s", err);
    free(err);
    cr_assert_eq(run_cli((const char *[]){"validate", NULL}), 2);
    cr_assert_eq(run_cli((const char *[]){"validate", "--bogus", d, NULL}), 2);
    cr_assert_eq(run_cli((const char *[]){"validate", "--help", NULL}), 0);
    free(missing);
    free(d);
}
