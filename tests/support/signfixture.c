#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codesign/identity.h"
#include "signfixture.h"
#include "sysext/codesign.h"
#include "util/common.h"
#include "util/fs.h"

char sx_fx_dir[64];

const char *sx_fx_path(const char *rel)
{
    static char bufs[8][1024];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 1024, "%s/%s", sx_fx_dir, rel);
    return b;
}

void sx_fx_write(const char *rel, const char *content, int mode)
{
    char *dir = sx_path_dirname(sx_fx_path(rel));
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0, "%s", sx_errmsg());
    free(dir);
    cr_assert_eq(sx_write_file_atomic(sx_fx_path(rel), content, strlen(content), (mode_t)mode), 0,
                 "%s", sx_errmsg());
}

void sx_fx_ents(const char *rel, const char *const *true_keys)
{
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof(buf),
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC "
                                "\"-//Apple//DTD PLIST 1.0//EN\" "
                                "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                                "<plist version=\"1.0\">\n<dict>\n");
    for (size_t i = 0; true_keys && true_keys[i]; i++) {
        /* Transport and network-extension entitlements are arrays, as Apple issues them. */
        if (!strcmp(true_keys[i], "com.apple.developer.driverkit.transport.usb"))
            o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                                  "\t<key>%s</key>\n\t<array>\n\t\t<dict>\n\t\t\t<key>idVendor</key>\n"
                                  "\t\t\t<integer>4617</integer>\n\t\t</dict>\n\t</array>\n",
                                  true_keys[i]);
        else if (!strcmp(true_keys[i], "com.apple.developer.networking.networkextension"))
            o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                                  "\t<key>%s</key>\n\t<array>\n\t\t<string>content-filter-provider"
                                  "</string>\n\t</array>\n",
                                  true_keys[i]);
        else
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\t<key>%s</key>\n\t<true/>\n",
                                  true_keys[i]);
    }
    snprintf(buf + o, sizeof(buf) - o, "</dict>\n</plist>\n");
    sx_fx_write(rel, buf, 0644);
}

static void info(const char *rel, const char *id, const char *exe, const char *type,
                 const char *extra)
{
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD "
             "PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist "
             "version=\"1.0\">\n<dict>\n\t<key>CFBundleIdentifier</key>\n\t<string>%s</string>\n"
             "\t<key>CFBundleExecutable</key>\n\t<string>%s</string>\n"
             "\t<key>CFBundlePackageType</key>\n\t<string>%s</string>\n"
             "\t<key>CFBundleVersion</key>\n\t<string>1.0</string>\n"
             "\t<key>CFBundleShortVersionString</key>\n\t<string>1.0</string>\n%s</dict>\n</plist>\n",
             id, exe, type, extra);
    sx_fx_write(rel, buf, 0644);
}

void sx_fx_setup(void)
{
    snprintf(sx_fx_dir, sizeof(sx_fx_dir), "/tmp/sx-sign-XXXXXX");
    cr_assert_not_null(mkdtemp(sx_fx_dir));
    /* The incremental cache must not leak into the user's home. */
    setenv("XDG_CACHE_HOME", sx_fx_path("cache"), 1);
    cr_assert_eq(sx_ca_init(sx_fx_path("ca")), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_identity_create(sx_fx_path("ca"), "TEAMAAAAAA", "Developer ID Application: A",
                                    SX_ID_DEVELOPER_ID, "", sx_fx_path("a.p12")),
                 0, "%s", sx_errmsg());
    cr_assert_eq(sx_identity_create(sx_fx_path("ca"), "TEAMBBBBBB", "Apple Development: B",
                                    SX_ID_DEVELOPMENT, "", sx_fx_path("b.p12")),
                 0, "%s", sx_errmsg());
}

void sx_fx_teardown(void)
{
    sx_rm_rf(sx_fx_dir);
}

void sx_fx_make_bundles(void)
{
    info("src/com.example.sensor.dext/Info.plist", "com.example.sensor", "sensor", "DEXT",
         "\t<key>OSBundleUsageDescription</key>\n\t<string>Reads the sensor</string>\n");
    sx_fx_write("src/com.example.sensor.dext/sensor", "#!/bin/sh\necho driver\n", 0755);
    sx_fx_write("src/com.example.sensor.dext/Resources.txt", "a resource\n", 0644);
    info("src/com.example.filter.systemextension/Contents/Info.plist", "com.example.filter",
         "filter", "SYSX",
         "\t<key>NSSystemExtensionUsageDescription</key>\n\t<string>Filters</string>\n");
    sx_fx_write("src/com.example.filter.systemextension/Contents/MacOS/filter", "#!/bin/sh\n", 0755);
    sx_fx_write("src/com.example.filter.systemextension/Contents/Resources/en.txt", "x\n", 0644);
    info("Host.app/Contents/Info.plist", "com.example.host", "Host", "APPL", "");
    sx_fx_write("Host.app/Contents/MacOS/Host", "#!/bin/sh\necho host\n", 0755);
    sx_fx_write("Host.app/Contents/Resources/icon.txt", "icon\n", 0644);
    cr_assert_eq(sx_mkdir_p(sx_fx_path("Host.app/Contents/Library/SystemExtensions"), 0755), 0);
    static const char *const dext[] = {"com.apple.developer.driverkit",
                                       "com.apple.developer.driverkit.transport.usb", NULL};
    static const char *const app[] = {"com.apple.developer.system-extension.install", NULL};
    static const char *const sysx[] = {"com.apple.developer.networking.networkextension", NULL};
    static const char *const red[] = {"com.apple.developer.driverkit",
                                      "com.apple.developer.driverkit.transport.usb",
                                      "com.apple.developer.system-extension.redistributable", NULL};
    sx_fx_ents("ents/dext.plist", dext);
    sx_fx_ents("ents/app.plist", app);
    sx_fx_ents("ents/sysext.plist", sysx);
    sx_fx_ents("ents/redistributable.plist", red);
    sx_fx_ents("ents/none.plist", NULL);
}

int sx_fx_sign(const char *bundle_rel, const char *identity, const char *ents_rel)
{
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    char id[1024], ents[1024];
    if (identity) {
        snprintf(id, sizeof(id), "%s", sx_fx_path(identity));
        o.identity = id;
    } else {
        o.adhoc = 1;
    }
    if (ents_rel) {
        snprintf(ents, sizeof(ents), "%s", sx_fx_path(ents_rel));
        o.entitlements = ents;
    }
    return sysext_sign(sx_fx_path(bundle_rel), &o);
}

void sx_fx_sign_all(const char *ext_identity)
{
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", ext_identity, "ents/dext.plist"), 0,
                 "%s", sx_errmsg());
    cr_assert_eq(sx_fx_sign("src/com.example.filter.systemextension", ext_identity,
                            "ents/sysext.plist"),
                 0, "%s", sx_errmsg());
    cr_assert_eq(sx_copy_tree(sx_fx_path("src/com.example.sensor.dext"),
                              sx_fx_path("Host.app/Contents/Library/SystemExtensions/"
                                         "com.example.sensor.dext")),
                 0, "%s", sx_errmsg());
    cr_assert_eq(sx_copy_tree(sx_fx_path("src/com.example.filter.systemextension"),
                              sx_fx_path("Host.app/Contents/Library/SystemExtensions/"
                                         "com.example.filter.systemextension")),
                 0, "%s", sx_errmsg());
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), 0, "%s", sx_errmsg());
}

int sx_fx_verify(const char *rel, sx_report *report)
{
    const char *trust[] = {sx_fx_path("ca/root.cert.pem")};
    sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
    o.strict = 1;
    o.deep = 1;
    o.trust = trust;
    o.n_trust = 1;
    sx_vresult v;
    memset(&v, 0, sizeof(v));
    int r = sx_verify_path(sx_fx_path(rel), &o, report, &v);
    sx_vresult_free(&v);
    return r;
}

bool sx_fx_report_has(const sx_report *r, const char *code, const char *path_suffix)
{
    for (size_t i = 0; i < r->n; i++) {
        const sx_diag *d = &r->v[i];
        if (strcmp(d->code, code))
            continue;
        if (!path_suffix)
            return true;
        char full[2048];
        snprintf(full, sizeof(full), "%s%s%s", d->path ? d->path : "", d->key ? ":" : "",
                 d->key ? d->key : "");
        size_t a = strlen(full), b = strlen(path_suffix);
        if (strstr(full, path_suffix) || (a >= b && !strcmp(full + a - b, path_suffix)))
            return true;
    }
    return false;
}

void sx_fx_dump(const sx_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        fprintf(stderr, "  [%s] %s %s: %s\n", r->v[i].code, r->v[i].path ? r->v[i].path : "-",
                r->v[i].key ? r->v[i].key : "-", r->v[i].message);
}
