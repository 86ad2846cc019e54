#include <criterion/criterion.h>
#include <dirent.h>
#include <plist/plist.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codesign/codedirectory.h"
#include "codesign/sigfiles.h"
#include "tests/support/signfixture.h"
#include "sysext/codesign.h"
#include "util/common.h"
#include "util/fs.h"
#include "util/hex.h"

TestSuite(codesign_sign, .init = sx_fx_setup, .fini = sx_fx_teardown, .timeout = 120);

static void run_ok(const char *cmd)
{
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}

Test(codesign_sign, app_with_dext_and_sysext_verifies_strict_deep)
{
    sx_report r;
    sx_report_init(&r);
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12");
    int rc = sx_fx_verify("Host.app", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0, "a freshly signed app must verify strict+deep");
    cr_assert_eq(r.n, 0);
    sx_report_free(&r);
}

Test(codesign_sign, writes_detached_components)
{
    sx_fx_make_bundles();
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", "a.p12", "ents/dext.plist"), 0, "%s",
                 sx_errmsg());
    /* A dext is flat: its _CodeSignature sits at the top. */
    const char *names[] = {"CodeDirectory", "CodeRequirements", "CodeResources",
                           "CodeEntitlements", "CodeEntitlementDER", "CodeSignature"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(names); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "src/com.example.sensor.dext/_CodeSignature/%s", names[i]);
        cr_assert(sx_path_exists(sx_fx_path(rel)), "missing %s", rel);
    }
    sx_sigfiles s;
    cr_assert_eq(sx_sigfiles_load(sx_fx_path("src/com.example.sensor.dext/_CodeSignature"), &s), 0);
    cr_assert_eq(s.n_cds, 1);
    cr_assert_eq(s.cd[0].hash_type, SX_HASH_SHA256);
    cr_assert_eq(s.cd[0].version, 0x20200, "team-signed generic code is v0x20200");
    cr_assert_eq(s.cd[0].page_size_log2, 0, "one page over the whole non-Mach-O executable");
    cr_assert_eq(s.cd[0].n_code, 1);
    cr_assert_eq(s.cd[0].n_special, 7);
    cr_assert_str_eq(s.cd[0].identifier, "com.example.sensor");
    cr_assert_str_eq(s.cd[0].team_id, "TEAMAAAAAA");
    cr_assert_eq(s.cd[0].code_limit, strlen("#!/bin/sh\necho driver\n"));
    sx_sigfiles_free(&s);
}

Test(codesign_sign, cms_verifies_with_openssl_and_seal_hashes_match_files)
{
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12");
    char cmd[4096];
    /* A standard CMS tool accepts our detached signature over the CodeDirectory file. */
    snprintf(cmd, sizeof(cmd),
             "openssl cms -verify -binary -inform DER -in '%s' -content '%s' -CAfile '%s' "
             "-purpose any -out /dev/null 2>/dev/null",
             sx_fx_path("Host.app/Contents/_CodeSignature/CodeSignature"),
             sx_fx_path("Host.app/Contents/_CodeSignature/CodeDirectory"),
             sx_fx_path("ca/root.cert.pem"));
    run_ok(cmd);
    /* CodeResources is a standard plist and its hash2 values are the files' SHA-256. */
    uint8_t *data;
    size_t len;
    cr_assert_eq(sx_read_file(sx_fx_path("Host.app/Contents/_CodeSignature/CodeResources"), 1 << 20,
                              &data, &len),
                 0);
    plist_t p = NULL;
    plist_from_memory((const char *)data, (uint32_t)len, &p);
    free(data);
    cr_assert_not_null(p);
    plist_t files2 = plist_dict_get_item(p, "files2");
    cr_assert_not_null(files2);
    const char *rels[] = {"Resources/icon.txt", "Library/SystemExtensions/com.example.sensor.dext/sensor",
                          "Library/SystemExtensions/com.example.sensor.dext/_CodeSignature/CodeResources"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(rels); i++) {
        plist_t e = plist_dict_get_item(files2, rels[i]);
        cr_assert_not_null(e, "files2 lacks %s", rels[i]);
        plist_t h2 = plist_dict_get_item(e, "hash2");
        cr_assert_not_null(h2);
        char *d = NULL;
        uint64_t dl = 0;
        plist_get_data_val(h2, &d, &dl);
        char path[512];
        snprintf(path, sizeof(path), "Host.app/Contents/%s", rels[i]);
        uint8_t *fd;
        size_t fl;
        cr_assert_eq(sx_read_file(sx_fx_path(path), 1 << 20, &fd, &fl), 0);
        uint8_t h[32];
        sx_hash(SX_HASH_SHA256, fd, fl, h);
        cr_assert_eq(dl, 32);
        cr_assert_arr_eq(d, h, 32, "hash2 of %s", rels[i]);
        free(fd);
        free(d);
    }
    cr_assert_null(plist_dict_get_item(files2, "MacOS/Host"), "the main executable is not sealed");
    plist_free(p);
}

Test(codesign_sign, refuses_app_with_unsigned_extension)
{
    sx_fx_make_bundles();
    cr_assert_eq(sx_copy_tree(sx_fx_path("src/com.example.sensor.dext"),
                              sx_fx_path("Host.app/Contents/Library/SystemExtensions/"
                                         "com.example.sensor.dext")),
                 0);
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), SYSEXT_EINVALID);
    cr_assert(strstr(sx_errmsg(), "com.example.sensor.dext") != NULL, "names it: %s", sx_errmsg());
    cr_assert(!sx_path_exists(sx_fx_path("Host.app/Contents/_CodeSignature")),
              "nothing written on refusal");
}

Test(codesign_sign, resign_replaces_cleanly_and_failure_keeps_old_signature)
{
    sx_fx_make_bundles();
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", "a.p12", "ents/dext.plist"), 0);
    uint8_t *before;
    size_t blen;
    cr_assert_eq(sx_read_file(sx_fx_path("src/com.example.sensor.dext/_CodeSignature/CodeDirectory"),
                              1 << 20, &before, &blen),
                 0);
    /* Re-sign ad hoc without entitlements: the entitlement files must disappear. */
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", NULL, NULL), 0, "%s", sx_errmsg());
    cr_assert(!sx_path_exists(sx_fx_path("src/com.example.sensor.dext/_CodeSignature/CodeEntitlements")));
    /* A failing sign (bad identity) leaves the ad-hoc signature untouched. */
    uint8_t *adhoc;
    size_t alen;
    cr_assert_eq(sx_read_file(sx_fx_path("src/com.example.sensor.dext/_CodeSignature/CodeDirectory"),
                              1 << 20, &adhoc, &alen),
                 0);
    cr_assert_lt(sx_fx_sign("src/com.example.sensor.dext", "missing.p12", NULL), 0);
    uint8_t *after;
    size_t aflen;
    cr_assert_eq(sx_read_file(sx_fx_path("src/com.example.sensor.dext/_CodeSignature/CodeDirectory"),
                              1 << 20, &after, &aflen),
                 0);
    cr_assert_eq(alen, aflen);
    cr_assert_arr_eq(adhoc, after, alen);
    /* No temporary folders left behind. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep -v -e '^_CodeSignature$' -e '^Info.plist$' -e '^sensor$' -e '^Resources.txt$')\"",
             sx_fx_path("src/com.example.sensor.dext"));
    run_ok(cmd);
    free(before);
    free(adhoc);
    free(after);
}

Test(codesign_sign, adhoc_has_no_cms_and_flag)
{
    sx_fx_make_bundles();
    cr_assert_eq(sx_fx_sign("src/com.example.sensor.dext", NULL, "ents/dext.plist"), 0, "%s",
                 sx_errmsg());
    struct stat st;
    cr_assert_eq(stat(sx_fx_path("src/com.example.sensor.dext/_CodeSignature/CodeSignature"), &st), 0);
    cr_assert_eq(st.st_size, 0, "ad-hoc: empty CodeSignature file");
    sx_sigfiles s;
    cr_assert_eq(sx_sigfiles_load(sx_fx_path("src/com.example.sensor.dext/_CodeSignature"), &s), 0);
    cr_assert(s.cd[0].flags & SX_CS_ADHOC);
    cr_assert_null(s.cd[0].team_id);
    cr_assert_eq(s.reqs.len, 12, "ad-hoc: empty requirement set");
    sx_sigfiles_free(&s);
}

Test(codesign_sign, incremental_resign_matches_full)
{
    sx_fx_make_bundles();
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    o.adhoc = 1;
    o.incremental = 1;
    char cache[1024];
    snprintf(cache, sizeof(cache), "%s", sx_fx_path("cache"));
    o.cache_dir = cache;
    const char *app = sx_fx_path("Host.app");
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    sx_fx_write("Host.app/Contents/Resources/icon.txt", "changed icon\n", 0644);
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    uint8_t *inc;
    size_t ilen;
    cr_assert_eq(sx_read_file(sx_fx_path("Host.app/Contents/_CodeSignature/CodeResources"), 1 << 20,
                              &inc, &ilen),
                 0);
    o.incremental = 0;
    cr_assert_eq(sysext_sign(app, &o), 0);
    uint8_t *full;
    size_t flen;
    cr_assert_eq(sx_read_file(sx_fx_path("Host.app/Contents/_CodeSignature/CodeResources"), 1 << 20,
                              &full, &flen),
                 0);
    cr_assert_eq(ilen, flen);
    cr_assert_arr_eq(inc, full, ilen, "incremental seal equals a full one");
    free(inc);
    free(full);
}

/* The path of the one entry of `dir` ending in `suffix`, or "" when there is none. */
static void find_entry(const char *dir, const char *suffix, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = 0;
    cr_assert_not_null(d, "%s", dir);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name), k = strlen(suffix);
        if (n >= k && !strcmp(e->d_name + n - k, suffix))
            snprintf(out, cap, "%s/%s", dir, e->d_name);
    }
    closedir(d);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s", path);
    return st.st_ino;
}

/* An incremental sign keeps the signature it replaced in its cache folder and the next one
 * writes its CodeResources over that file, unless the file has another link; the bundle keeps
 * no trace of either, and every signature verifies. */
Test(codesign_sign, incremental_resign_recycles_the_replaced_signature)
{
    sx_fx_make_bundles();
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    o.adhoc = 1;
    o.incremental = 1;
    char cache[1024], trash[1200], spare[1300], keep[1024], cr[1024];
    snprintf(cache, sizeof(cache), "%s", sx_fx_path("cache"));
    snprintf(keep, sizeof(keep), "%s", sx_fx_path("keep"));
    snprintf(cr, sizeof(cr), "%s", sx_fx_path("Host.app/Contents/_CodeSignature/CodeResources"));
    o.cache_dir = cache;
    char app[1024];
    snprintf(app, sizeof(app), "%s", sx_fx_path("Host.app"));
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    find_entry(cache, ".old", trash, sizeof(trash));
    cr_assert_str_eq(trash, "", "nothing was replaced by the first signature");

    sx_fx_write("Host.app/Contents/Resources/icon.txt", "second\n", 0644);
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    find_entry(cache, ".old", trash, sizeof(trash));
    cr_assert_str_neq(trash, "", "the replaced signature is kept in the cache folder");
    snprintf(spare, sizeof(spare), "%s/CodeResources", trash);
    ino_t spare_ino = inode_of(spare);
    DIR *d = opendir(sx_fx_path("Host.app/Contents"));
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        cr_assert(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || e->d_name[0] != '.',
                  "left in the bundle: %s", e->d_name);
    closedir(d);

    sx_fx_write("Host.app/Contents/Resources/icon.txt", "third, and longer than before\n", 0644);
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    cr_assert_eq(inode_of(cr), spare_ino, "CodeResources was written over the spare");
    sx_report r;
    sx_report_init(&r);
    int rc = sx_fx_verify("Host.app", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0, "a recycled CodeResources holds exactly the new seal");
    sx_report_free(&r);

    /* A spare with another link belongs to someone else too: never written over. */
    find_entry(cache, ".old", trash, sizeof(trash));
    snprintf(spare, sizeof(spare), "%s/CodeResources", trash);
    cr_assert_eq(link(spare, keep), 0, "%s", strerror(errno));
    uint8_t *before, *after;
    size_t blen, alen;
    cr_assert_eq(sx_read_file(keep, 1 << 20, &before, &blen), 0);
    sx_fx_write("Host.app/Contents/Resources/icon.txt", "fourth\n", 0644);
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    cr_assert_neq(inode_of(cr), inode_of(keep));
    cr_assert_eq(sx_read_file(keep, 1 << 20, &after, &alen), 0);
    cr_assert_eq(alen, blen);
    cr_assert_arr_eq(after, before, blen, "the hard-linked copy is untouched");
    sx_report_init(&r);
    rc = sx_fx_verify("Host.app", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0);
    sx_report_free(&r);
    free(before);
    free(after);

    /* A recycled folder keeps only what the new signature has: entitlements signed once, then
     * not, leave no CodeEntitlements behind once that signature's folder comes round again. */
    static const char *const keys[] = {"com.apple.developer.system-extension.install", NULL};
    sx_fx_ents("ents.plist", keys);
    char ents[1024];
    snprintf(ents, sizeof(ents), "%s", sx_fx_path("ents.plist"));
    o.entitlements = ents;
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    o.entitlements = NULL;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    cr_assert_not(sx_path_exists(sx_fx_path("Host.app/Contents/_CodeSignature/CodeEntitlements")));
    cr_assert_not(
        sx_path_exists(sx_fx_path("Host.app/Contents/_CodeSignature/CodeEntitlementDER")));
    sx_report_init(&r);
    rc = sx_fx_verify("Host.app", &r);
    sx_fx_dump(&r);
    cr_assert_eq(rc, 0);
    sx_report_free(&r);

    /* A folder someone else may write to (a shared cache folder) is never taken. */
    find_entry(cache, ".old", trash, sizeof(trash));
    snprintf(spare, sizeof(spare), "%s/CodeResources", trash);
    spare_ino = inode_of(spare);
    cr_assert_eq(chmod(trash, 0777), 0);
    sx_fx_write("Host.app/Contents/Resources/icon.txt", "fifth\n", 0644);
    cr_assert_eq(sysext_sign(app, &o), 0, "%s", sx_errmsg());
    cr_assert_neq(inode_of(cr), spare_ino, "a group- or world-writable spare is not recycled");
    sx_report_init(&r);
    rc = sx_fx_verify("Host.app", &r);
    cr_assert_eq(rc, 0);
    sx_report_free(&r);
}

/* The identity loads while the seal is computed: its failure is still the one reported (as when
 * it was loaded first), also when the seal fails too, and nothing is written. */
Test(codesign_sign, identity_failure_wins_over_the_seal)
{
    sx_fx_make_bundles();
    sx_fx_write("pw", "wrong\n", 0600);
    char id[1024], pw[1024];
    snprintf(id, sizeof(id), "%s", sx_fx_path("a.p12"));
    snprintf(pw, sizeof(pw), "%s", sx_fx_path("pw"));
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    o.identity = id;
    o.password_file = pw;
    const char *dext = sx_fx_path("src/com.example.sensor.dext");
    cr_assert_eq(sysext_sign(dext, &o), SYSEXT_EPERM, "%s", sx_errmsg());
    cr_assert_not_null(strstr(sx_errmsg(), "wrong password"), "%s", sx_errmsg());
    cr_assert_not(sx_path_exists(sx_fx_path("src/com.example.sensor.dext/_CodeSignature")));

    /* Something the seal rejects (a FIFO): the identity's failure still comes first... */
    cr_assert_eq(mkfifo(sx_fx_path("src/com.example.sensor.dext/pipe"), 0644), 0);
    cr_assert_eq(sysext_sign(dext, &o), SYSEXT_EPERM, "%s", sx_errmsg());
    cr_assert_not_null(strstr(sx_errmsg(), "wrong password"), "%s", sx_errmsg());
    /* ...and with the right password the seal's own error is reported. */
    o.password_file = NULL;
    cr_assert_eq(sysext_sign(dext, &o), SYSEXT_EFORMAT, "%s", sx_errmsg());
    cr_assert_not_null(strstr(sx_errmsg(), "pipe: unsupported resource"), "%s", sx_errmsg());
    cr_assert_not(sx_path_exists(sx_fx_path("src/com.example.sensor.dext/_CodeSignature")));
}
