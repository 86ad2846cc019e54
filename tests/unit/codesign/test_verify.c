#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/signfixture.h"
#include "sysext/codesign.h"
#include "util/common.h"
#include "util/fs.h"

TestSuite(codesign_verify, .init = sx_fx_setup, .fini = sx_fx_teardown, .timeout = 120);

#define DEXT_IN_APP "Host.app/Contents/Library/SystemExtensions/com.example.sensor.dext"

static void flip_byte(const char *rel, long off)
{
    int fd = open(sx_fx_path(rel), O_RDWR);
    cr_assert_geq(fd, 0, "open %s", rel);
    off_t size = lseek(fd, 0, SEEK_END);
    if (off < 0)
        off = (long)size + off;
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x01;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void expect(const char *code, const char *where)
{
    sx_report r;
    sx_report_init(&r);
    int rc = sx_fx_verify("Host.app", &r);
    if (!sx_fx_report_has(&r, code, where)) {
        fprintf(stderr, "expected [%s] at %s, got:\n", code, where ? where : "-");
        sx_fx_dump(&r);
    }
    cr_assert_eq(rc, SYSEXT_EINVALID);
    cr_assert(sx_fx_report_has(&r, code, where), "expected %s at %s", code, where);
    sx_report_free(&r);
}

static void signed_app(void)
{
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12");
}

Test(codesign_verify, tampered_resource_file)
{
    signed_app();
    flip_byte("Host.app/Contents/Resources/icon.txt", 0);
    expect("file-modified", "Resources/icon.txt");
}

Test(codesign_verify, tampered_file_inside_embedded_extension)
{
    signed_app();
    flip_byte(DEXT_IN_APP "/Resources.txt", 0);
    expect("file-modified", "com.example.sensor.dext/Resources.txt");
}

Test(codesign_verify, tampered_info_plist)
{
    signed_app();
    /* Still a well-formed plist: CFBundleVersion 1.0 becomes 1.1. */
    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_read_file(sx_fx_path("Host.app/Contents/Info.plist"), 1 << 20, &d, &n), 0);
    char *v = strstr((char *)d, "<string>1.0</string>");
    cr_assert_not_null(v);
    v[10] = '1';
    cr_assert_eq(sx_write_file_atomic(sx_fx_path("Host.app/Contents/Info.plist"), d, n, 0644), 0);
    free(d);
    expect("info-plist-modified", "Info.plist");
}

Test(codesign_verify, malformed_info_plist)
{
    signed_app();
    sx_fx_write("Host.app/Contents/Info.plist", "<plist><dict><key>oops", 0644);
    expect("bundle-format", NULL);
}

Test(codesign_verify, tampered_executable)
{
    signed_app();
    flip_byte("Host.app/Contents/MacOS/Host", 3);
    expect("code-modified", "page 0");
}

Test(codesign_verify, tampered_embedded_executable)
{
    signed_app();
    flip_byte(DEXT_IN_APP "/sensor", 3);
    /* The app's seal catches it file by file, and --deep the extension's own signature too. */
    expect("file-modified", "com.example.sensor.dext/sensor");
    expect("code-modified", "page 0");
}

Test(codesign_verify, tampered_components)
{
    const char *comps[][2] = {
        {"CodeDirectory", NULL},  {"CodeRequirements", "signature-modified"},
        {"CodeResources", "resources-modified"}, {"CodeEntitlements", "signature-modified"},
        {"CodeEntitlementDER", "signature-modified"}, {"CodeSignature", "cms-invalid"},
    };
    for (size_t i = 0; i < SX_ARRAY_SIZE(comps); i++) {
        sx_fx_teardown();
        sx_fx_setup();
        signed_app();
        char rel[256];
        snprintf(rel, sizeof(rel), "Host.app/Contents/_CodeSignature/%s", comps[i][0]);
        flip_byte(rel, -3);
        sx_report r;
        sx_report_init(&r);
        int rc = sx_fx_verify("Host.app", &r);
        if (rc != SYSEXT_EINVALID || (comps[i][1] && !sx_fx_report_has(&r, comps[i][1], NULL))) {
            fprintf(stderr, "after tampering %s:\n", comps[i][0]);
            sx_fx_dump(&r);
        }
        cr_assert_eq(rc, SYSEXT_EINVALID, "tampered %s must fail", comps[i][0]);
        if (comps[i][1])
            cr_assert(sx_fx_report_has(&r, comps[i][1], NULL), "%s: expected %s", comps[i][0],
                      comps[i][1]);
        sx_report_free(&r);
    }
}

Test(codesign_verify, added_and_removed_files)
{
    signed_app();
    sx_fx_write("Host.app/Contents/Resources/extra.txt", "new\n", 0644);
    expect("file-added", "Resources/extra.txt");
    unlink(sx_fx_path("Host.app/Contents/Resources/extra.txt"));
    unlink(sx_fx_path("Host.app/Contents/Resources/icon.txt"));
    expect("file-missing", "Resources/icon.txt");
}

Test(codesign_verify, symlink_pointing_outside)
{
    sx_fx_make_bundles();
    cr_assert_eq(symlink("/etc/passwd", sx_fx_path("Host.app/Contents/Resources/link")), 0);
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", NULL), 0, "%s", sx_errmsg());
    expect("symlink-outside", "Resources/link");
}

Test(codesign_verify, unsigned_and_untrusted)
{
    sx_fx_make_bundles();
    sx_report r;
    sx_report_init(&r);
    cr_assert_eq(sx_fx_verify("Host.app", &r), SYSEXT_EINVALID);
    cr_assert(sx_fx_report_has(&r, "unsigned", NULL));
    cr_assert_str_eq(r.v[0].message, "code object is not signed at all");
    sx_report_free(&r);
    /* Signed, but verified without the CA as anchor. */
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), 0);
    sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
    char *text = NULL;
    cr_assert_eq(sysext_verify(sx_fx_path("Host.app"), &o, &text), SYSEXT_EINVALID);
    cr_assert(strstr(text, "not trusted") != NULL, "%s", text);
    free(text);
}

Test(codesign_verify, team_mismatch_fails_and_redistributable_passes)
{
    sx_fx_make_bundles();
    /* Extensions signed by team B inside team A's app. */
    sx_fx_sign_all("b.p12");
    expect("team-mismatch", "com.example.sensor.dext");
    /* The same, with the dext marked redistributable and the sysext removed. */
    sx_fx_teardown();
    sx_fx_setup();
    sx_fx_make_bundles();
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", "b.p12", "ents/redistributable.plist"), 0);
    cr_assert_eq(sx_copy_tree(sx_fx_path("src/com.example.sensor.dext"), sx_fx_path(DEXT_IN_APP)), 0);
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), 0);
    sx_report r;
    sx_report_init(&r);
    int rc = sx_fx_verify("Host.app", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0, "a redistributable extension may carry another team's signature");
    sx_report_free(&r);
}

Test(codesign_verify, missing_required_entitlements)
{
    sx_fx_make_bundles();
    /* The dext without driverkit entitlements, the app without the install entitlement. */
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", "a.p12", "ents/none.plist"), 0);
    cr_assert_eq(sx_copy_tree(sx_fx_path("src/com.example.sensor.dext"), sx_fx_path(DEXT_IN_APP)), 0);
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/none.plist"), 0);
    expect("missing-entitlement", "com.example.sensor.dext:com.apple.developer.driverkit");
    expect("missing-entitlement", "com.example.sensor.dext:driverkit-transport");
    expect("missing-entitlement", "Host.app:com.apple.developer.system-extension.install");
}

Test(codesign_verify, cli_json_and_exit_codes)
{
    signed_app();
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/sysextctl/sysextctl' verify --strict --deep --json --trust '%s' '%s' > '%s'",
             SYSEXT_BINARY_DIR, sx_fx_path("ca/root.cert.pem"), sx_fx_path("Host.app"),
             sx_fx_path("out.json"));
    cr_assert_eq(system(cmd), 0, "valid → exit 0");
    uint8_t *out;
    size_t len;
    cr_assert_eq(sx_read_file(sx_fx_path("out.json"), 1 << 20, &out, &len), 0);
    cr_assert(strstr((char *)out, "\"valid\": true") != NULL, "%s", out);
    free(out);
    flip_byte("Host.app/Contents/Resources/icon.txt", 0);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "invalid → exit 1");
    snprintf(cmd, sizeof(cmd), "'%s/sysextctl/sysextctl' verify --no-such-flag x 2>/dev/null",
             SYSEXT_BINARY_DIR);
    rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "usage → exit 2");
}

/* Apple-made signatures: the structural checks work on real codesign output. */
static int verify_sample(const char *rel, const char *anchor, sx_report *r)
{
    char path[1024], trust[1024];
    snprintf(path, sizeof(path), "%s/samples/apple/%s", SYSEXT_SHARED_DIR, rel);
    sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
    const char *t[1];
    if (anchor) {
        snprintf(trust, sizeof(trust), "%s/samples/apple/%s", SYSEXT_SHARED_DIR, anchor);
        t[0] = trust;
        o.trust = t;
        o.n_trust = 1;
    }
    sx_vresult v;
    memset(&v, 0, sizeof(v));
    int rc = sx_verify_path(path, &o, r, &v);
    sx_vresult_free(&v);
    return rc;
}

Test(codesign_verify, apple_sstest_intact_but_untrusted)
{
    sx_report r;
    sx_report_init(&r);
    int rc = verify_sample("sstest.app", NULL, &r);
    sx_fx_dump(&r);
    /* Hashes, CMS and seal intact; only trust fails (self-signed, not an anchor of ours). */
    cr_assert_eq(rc, SYSEXT_EINVALID);
    for (size_t i = 0; i < r.n; i++)
        cr_assert_str_eq(r.v[i].code, "untrusted", "unexpected problem %s: %s", r.v[i].code,
                         r.v[i].message);
    sx_report_free(&r);
}

Test(codesign_verify, apple_install_apk_info_plist_modified)
{
    sx_report r;
    sx_report_init(&r);
    cr_assert_eq(verify_sample("install-apk-adhoc.app", NULL, &r), SYSEXT_EINVALID);
    cr_assert(sx_fx_report_has(&r, "info-plist-modified", "Info.plist"));
    cr_assert(!sx_fx_report_has(&r, "code-modified", NULL), "the script itself is intact");
    sx_report_free(&r);
}

Test(codesign_verify, apple_macho_page_hashes)
{
    sx_report r;
    sx_report_init(&r);
    verify_sample("macho/hello-macos-arm64-chained", NULL, &r);
    cr_assert(!sx_fx_report_has(&r, "code-modified", NULL), "linker-signed ad-hoc binary is intact");
    sx_report_free(&r);
    sx_report_init(&r);
    cr_assert_eq(verify_sample("macho/r2_hang_test", NULL, &r), SYSEXT_EINVALID);
    cr_assert(sx_fx_report_has(&r, "code-modified", "page 2"));
    cr_assert(!sx_fx_report_has(&r, "code-modified", "page 1"));
    sx_report_free(&r);
}

Test(codesign_verify, apple_chains_verify_with_apple_root)
{
    sx_report r;
    sx_report_init(&r);
    /* Developer ID (with a secure timestamp) and Apple's own platform signing. */
    int rc = verify_sample("macho/libexpat.1.dylib", "certs/AppleIncRootCertificate.cer", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0, "VMware's Developer ID signature chains to Apple Root CA");
    sx_report_free(&r);
    sx_report_init(&r);
    cr_assert_eq(verify_sample("macho/ls-osx-x86_64", "certs/AppleIncRootCertificate.cer", &r), 0);
    sx_report_free(&r);
    /* Without the anchor the same chain is untrusted, and only that. */
    sx_report_init(&r);
    cr_assert_eq(verify_sample("macho/libexpat.1.dylib", NULL, &r), SYSEXT_EINVALID);
    cr_assert(sx_fx_report_has(&r, "untrusted", NULL));
    cr_assert(!sx_fx_report_has(&r, "code-modified", NULL));
    sx_report_free(&r);
}

Test(codesign_verify, nested_code_must_keep_the_sealed_cdhash)
{
    sx_fx_make_bundles();
    /* A framework at a true nested-code location, sealed by cdhash and requirement. */
    sx_fx_write("Host.app/Contents/Frameworks/Util.framework/Info.plist",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n"
                "\t<key>CFBundleIdentifier</key>\n\t<string>com.example.util</string>\n"
                "\t<key>CFBundleExecutable</key>\n\t<string>Util</string>\n</dict>\n</plist>\n",
                0644);
    sx_fx_write("Host.app/Contents/Frameworks/Util.framework/Util", "library v1\n", 0755);
    cr_assert_eq(sx_fx_sign("Host.app/Contents/Frameworks/Util.framework", "a.p12", NULL), 0, "%s",
                 sx_errmsg());
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), 0, "%s", sx_errmsg());
    sx_report r;
    sx_report_init(&r);
    int rc = sx_fx_verify("Host.app", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0);
    sx_report_free(&r);
    /* Replace the framework's code and re-sign it alone: valid by itself, but not the code the
     * app sealed. */
    sx_fx_write("Host.app/Contents/Frameworks/Util.framework/Util", "library v2\n", 0755);
    cr_assert_eq(sx_fx_sign("Host.app/Contents/Frameworks/Util.framework", "a.p12", NULL), 0);
    expect("nested-invalid", "Util.framework");
}
