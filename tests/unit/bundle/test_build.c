/* Building: layouts per kind, template overrides, XML/binary, atomicity. */
#include "helpers.h"

#include <dirent.h>

TestSuite(bundle_build, .init = scratch_setup, .fini = scratch_teardown);

static bool exists_in(const char *bundle, const char *rel)
{
    char *p = sx_path_join(bundle, rel);
    bool e = sx_path_exists(p);
    free(p);
    return e;
}

static bool is_binary_plist(const char *file)
{
    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_read_file(file, 1 << 20, &d, &n), 0);
    bool b = n >= 8 && !memcmp(d, "bplist00", 8);
    free(d);
    return b;
}

/* Only the given names (and no hidden temp dirs) are left in the scratch dir. */
static size_t count_entries(const char *prefix)
{
    DIR *d = opendir(scratch);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strcmp(e->d_name, ".") &&
            strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void round_trip(sysext_bundle_kind kind, const char *tmpl, const char *out, bool binary_out)
{
    char *exe = make_exe("exe");
    cr_assert_eq(chmod(exe, 0750), 0);
    char *outp = sp(out);
    char tpath[512];
    snprintf(tpath, sizeof(tpath), DATA "%s", tmpl);
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    o.type = kind;
    o.info = tpath;
    o.executable = exe;
    o.output = outp;
    o.bundle_version = "7.8.9";
    o.binary_plist = binary_out;
    cr_assert_eq(sysext_bundle_build(&o), 0, "%s", sysext_last_error());

    /* Layout. */
    bool flat = kind == SYSEXT_BUNDLE_DEXT;
    const char *info_rel = flat ? "Info.plist" : "Contents/Info.plist";
    const char *exe_rel = flat ? "exe" : "Contents/MacOS/exe";
    cr_assert(exists_in(outp, info_rel));
    cr_assert(exists_in(outp, exe_rel));
    cr_assert_eq(exists_in(outp, "Contents"), !flat);
    if (!flat)
        cr_assert(exists_in(outp, "Contents/Resources"));
    char *ip = sx_path_join(outp, info_rel);
    cr_assert_eq(is_binary_plist(ip), binary_out);
    free(ip);
    char *ep = sx_path_join(outp, exe_rel);
    struct stat st;
    cr_assert_eq(stat(ep, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0750, "mode %o", st.st_mode & 07777);
    free(ep);

    /* Open: the public handle sees the keys and the override. */
    sysext_bundle *b = NULL;
    cr_assert_eq(sysext_bundle_open(&b, outp), 0, "%s", sysext_last_error());
    cr_assert_eq(sysext_bundle_get_kind(b), kind);
    cr_assert_str_eq(sysext_bundle_version(b), "7.8.9");
    cr_assert_not_null(sysext_bundle_identifier(b));
    cr_assert_not_null(sysext_bundle_short_version(b));
    cr_assert_str_eq(sysext_bundle_path(b), outp);
    char *want_exe = sx_path_join(outp, exe_rel);
    cr_assert_str_eq(sysext_bundle_executable_path(b), want_exe);
    free(want_exe);
    sysext_bundle_free(b);

    /* Validate and inspect. */
    sx_report r;
    validate(outp, &r);
    cr_assert_eq(sx_report_count(&r, SX_SEV_ERROR), 0);
    sx_report_free(&r);
    char *t = NULL;
    cr_assert_eq(sysext_bundle_inspect(outp, 0, &t), 0);
    cr_assert_not_null(strstr(t, "7.8.9"));
    free(t);
    free(outp);
    free(exe);
}

Test(bundle_build, dext_xml_template)
{
    round_trip(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", false);
}

Test(bundle_build, dext_binary_template_binary_output)
{
    round_trip(SYSEXT_BUNDLE_DEXT, "dext.bplist", "com.example.test.driver.dext", true);
}

Test(bundle_build, sysext_xml_and_binary)
{
    round_trip(SYSEXT_BUNDLE_SYSEXT, "sysext.plist", "com.example.test.filter.systemextension",
               false);
}

Test(bundle_build, sysext_binary_template)
{
    round_trip(SYSEXT_BUNDLE_SYSEXT, "sysext.bplist", "com.example.test.filter.systemextension",
               true);
}

Test(bundle_build, app_xml_template)
{
    round_trip(SYSEXT_BUNDLE_APP, "app.plist", "Test.app", false);
}

Test(bundle_build, app_binary_template)
{
    round_trip(SYSEXT_BUNDLE_APP, "app.bplist", "Test.app", false);
}

Test(bundle_build, app_with_embeds_and_overrides)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
    char *s = build(SYSEXT_BUNDLE_SYSEXT, "sysext.plist",
                    "com.example.test.filter.systemextension", NULL, 0);
    char *exe = make_exe("App");
    char *icon = make_file("AppIcon.icns", "icon", 0644);
    char *out = sp("Test.app");
    const char *embeds[] = {d, s};
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    o.type = SYSEXT_BUNDLE_APP;
    o.info = DATA "app.plist";
    o.executable = exe;
    o.output = out;
    o.identifier = "com.example.other";
    o.bundle_version = "2";
    o.short_version = "2.0";
    o.display_name = "Other App";
    o.icon = icon;
    o.embeds = embeds;
    o.n_embeds = 2;
    cr_assert_eq(sysext_bundle_build(&o), 0, "%s", sysext_last_error());
    cr_assert(exists_in(out, "Contents/Library/SystemExtensions/com.example.test.driver.dext/"
                             "Info.plist"));
    cr_assert(exists_in(out, "Contents/Library/SystemExtensions/"
                             "com.example.test.filter.systemextension/Contents/MacOS/ext-exe"));
    cr_assert(exists_in(out, "Contents/Resources/AppIcon.icns"));
    plist_t info = load_info(out);
    cr_assert_str_eq(sx_plist_string(info, "CFBundleIdentifier"), "com.example.other");
    cr_assert_str_eq(sx_plist_string(info, "CFBundleVersion"), "2");
    cr_assert_str_eq(sx_plist_string(info, "CFBundleShortVersionString"), "2.0");
    cr_assert_str_eq(sx_plist_string(info, "CFBundleDisplayName"), "Other App");
    cr_assert_str_eq(sx_plist_string(info, "CFBundleIconFile"), "AppIcon.icns");
    cr_assert_str_eq(sx_plist_string(info, "CFBundlePackageType"), "APPL");
    cr_assert_str_eq(sx_plist_string(info, "CFBundleExecutable"), "App");
    plist_free(info);
    sx_report r;
    validate(out, &r);
    expect_clean(&r);
    sx_report_free(&r);
    free(out);
    free(icon);
    free(exe);
    free(s);
    free(d);
}

Test(bundle_build, template_names_the_executable)
{
    plist_t t = NULL;
    cr_assert_eq(sx_plist_read_file(DATA "dext.plist", 1 << 20, &t), 0);
    plist_dict_set_item(t, "CFBundleExecutable", plist_new_string("TestDriver"));
    plist_dict_set_item(t, "CFBundlePackageType", plist_new_string("APPL"));
    char *xml;
    uint32_t len;
    plist_to_xml(t, &xml, &len);
    plist_free(t);
    char *tp = sp("tmpl.plist");
    cr_assert_eq(sx_write_file_atomic(tp, xml, len, 0644), 0);
    plist_to_xml_free(xml);
    char *exe = make_exe("build-output-name");
    char *out = sp("com.example.test.driver.dext");
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    o.type = SYSEXT_BUNDLE_DEXT;
    o.info = tp;
    o.executable = exe;
    o.output = out;
    cr_assert_eq(sysext_bundle_build(&o), 0, "%s", sysext_last_error());
    cr_assert(exists_in(out, "TestDriver"));
    plist_t info = load_info(out);
    cr_assert_str_eq(sx_plist_string(info, "CFBundlePackageType"), "DEXT");
    plist_free(info);
    free(out);
    free(exe);
    free(tp);
}

Test(bundle_build, failure_leaves_nothing)
{
    char *out = sp("com.example.test.driver.dext");
    char *missing = sp("no-such-exe");
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    o.type = SYSEXT_BUNDLE_DEXT;
    o.info = DATA "dext.plist";
    o.executable = missing;
    o.output = out;
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_ENOTFOUND);
    cr_assert_not_null(strstr(sysext_last_error(), "no-such-exe"), "%s", sysext_last_error());
    cr_assert_not(sx_path_exists(out));
    cr_assert_eq(count_entries(""), 0);

    /* A failure after the temp dir exists (an embed that cannot be copied) cleans it up. */
    char *exe = make_exe("exe");
    char *bad = sp("bad.dext");
    cr_assert_eq(sx_mkdir_p(bad, 0755), 0);
    /* A FIFO cannot be copied into a bundle: the copy fails midway. */
    char *unreadable = sp("bad.dext/fifo");
    cr_assert_eq(mkfifo(unreadable, 0644), 0);
    const char *embeds[] = {bad};
    char *app = sp("Test.app");
    o.type = SYSEXT_BUNDLE_APP;
    o.info = DATA "app.plist";
    o.executable = exe;
    o.output = app;
    o.embeds = embeds;
    o.n_embeds = 1;
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EUNSUPPORTED, "%s", sysext_last_error());
    cr_assert_not_null(strstr(sysext_last_error(), "fifo"), "%s", sysext_last_error());
    cr_assert_not(sx_path_exists(app));
    cr_assert_eq(count_entries(".Test.app"), 0);
    /* A malformed template: nothing either. */
    o.info = DATA "malformed.plist";
    o.embeds = NULL;
    o.n_embeds = 0;
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sysext_last_error(), "malformed.plist"));
    cr_assert_not(sx_path_exists(app));
    cr_assert_eq(count_entries(".Test.app"), 0);
    free(app);
    free(unreadable);
    free(bad);
    free(exe);
    free(missing);
    free(out);
}

Test(bundle_build, existing_output_refused_unless_forced)
{
    char *d = build(SYSEXT_BUNDLE_DEXT, "dext.plist", "com.example.test.driver.dext", NULL, 0);
    char *exe = make_exe("exe2");
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    o.type = SYSEXT_BUNDLE_DEXT;
    o.info = DATA "dext.plist";
    o.executable = exe;
    o.output = d;
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EEXISTS);
    cr_assert(exists_in(d, "ext-exe"));
    o.force = 1;
    cr_assert_eq(sysext_bundle_build(&o), 0, "%s", sysext_last_error());
    cr_assert(exists_in(d, "exe2"));
    cr_assert_not(exists_in(d, "ext-exe"));
    cr_assert_eq(count_entries(".com.example"), 0);
    free(exe);
    free(d);
}

Test(bundle_build, bad_options)
{
    char *exe = make_exe("exe");
    char *out = sp("x.dext");
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    o.type = SYSEXT_BUNDLE_DEXT;
    o.info = DATA "dext.plist";
    o.executable = exe;
    o.output = sp("x.app"); /* wrong extension for the kind */
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EINVAL);
    free((char *)o.output);
    o.output = out;
    const char *embeds[] = {out};
    o.embeds = embeds;
    o.n_embeds = 1; /* only apps embed */
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EINVAL);
    o.n_embeds = 0;
    o.version = 99;
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EINVAL);
    o.version = SYSEXT_BUILD_OPTIONS_VERSION;
    o.info = NULL;
    cr_assert_eq(sysext_bundle_build(&o), SYSEXT_EINVAL);
    cr_assert_eq(sysext_bundle_build(NULL), SYSEXT_EINVAL);
    cr_assert_not(sx_path_exists(out));
    free(out);
    free(exe);
}

Test(bundle_build, cli)
{
    char *exe = make_exe("exe");
    char *out = sp("com.example.test.driver.dext");
    cr_assert_eq(run_cli((const char *[]){"build", "--type", "dext", "--info", DATA "dext.plist",
                                          "--executable", exe, "--output", out, "--id",
                                          "com.example.test.driver", "--binary-plist", NULL}),
                 0);
    char *ip = sx_path_join(out, "Info.plist");
    cr_assert(is_binary_plist(ip));
    free(ip);
    /* Exists: refused with exit 2 and a message. */
    cr_assert_eq(run_cli((const char *[]){"build", "--type", "dext", "--info", DATA "dext.plist",
                                          "--executable", exe, "--output", out, NULL}),
                 2);
    char *err = read_scratch("cli.err");
    cr_assert_not_null(strstr(err, "already exists"), "%s", err);
    free(err);
    cr_assert_eq(run_cli((const char *[]){"build", "--type", "dext", "--info", DATA "dext.plist",
                                          "--executable", exe, "--output", out, "--force", NULL}),
                 0);
    /* Usage errors. */
    cr_assert_eq(run_cli((const char *[]){"build", "--type", "kext", NULL}), 2);
    cr_assert_eq(run_cli((const char *[]){"build", "--info", DATA "dext.plist", NULL}), 2);
    cr_assert_eq(run_cli((const char *[]){"build", "--type", "dext", "--info", DATA "dext.plist",
                                          "--executable", exe, "--output", out, "--embed", out,
                                          NULL}),
                 2);
    cr_assert_eq(run_cli((const char *[]){"build", "--help", NULL}), 0);
    free(out);
    free(exe);
}
