#include <criterion/criterion.h>
#include <plist/plist.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/common.h"
#include "codesign/hash.h"
#include "codesign/seal.h"
#include "codesign/seal_internal.h"
#include "util/fs.h"
#include "util/hex.h"

#define SAMPLES SYSEXT_SHARED_DIR "/samples/apple"
#define SPLITWG SAMPLES "/coderesources/KilimcininKorOglu_SplitWG.CodeResources"
#define WZC SAMPLES "/coderesources/iOSDeveloperWZC_WZCCustomButton.framework.CodeResources"

static char dir[] = "/tmp/sx-test-seal-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    sx_rm_rf(dir);
}

TestSuite(codesign_seal, .init = setup, .fini = teardown);

static char *at(const char *rel)
{
    char *p = sx_path_join(dir, rel);
    cr_assert_not_null(p);
    return p;
}

static void put(const char *rel, const char *content)
{
    char *p = at(rel);
    char *d = sx_path_dirname(p);
    cr_assert_eq(sx_mkdir_p(d, 0755), 0);
    cr_assert_eq(sx_write_file_atomic(p, content, strlen(content), 0644), 0, "%s", sx_errmsg());
    free(d);
    free(p);
}

static void link_at(const char *rel, const char *target)
{
    char *p = at(rel);
    unlink(p);
    cr_assert_eq(symlink(target, p), 0);
    free(p);
}

static void load(const char *path, uint8_t **data, size_t *len)
{
    cr_assert_eq(sx_read_file(path, 1 << 24, data, len), 0, "%s", sx_errmsg());
}

/* ---- parsing Apple's seals ---- */

Test(codesign_seal, parse_splitwg)
{
    uint8_t *d;
    size_t n;
    sx_seal *s = NULL;
    load(SPLITWG, &d, &n);
    cr_assert_eq(sx_seal_parse(d, n, "SplitWG", &s), 0, "%s", sx_errmsg());
    cr_assert(s->has_v1 && s->has_v2);
    cr_assert_eq(s->nfiles, 1);
    cr_assert_eq(s->nfiles2, 1);
    cr_assert_str_eq(s->files2[0].path, "Resources/AppIcon.icns");
    cr_assert(s->files2[0].has_sha256);
    cr_assert_not(s->files2[0].has_sha1);
    char hex[65];
    sx_hex_encode(s->files2[0].sha256, 32, hex);
    cr_assert_str_eq(hex, "998564fce27a305e270adf1039e48c57b3173ff53f7fccdaa476e238ec02b219");
    cr_assert(s->files[0].has_sha1);
    sx_hex_encode(s->files[0].sha1, 20, hex);
    cr_assert_str_eq(hex, "cf3e4e9c9954a34d350a987fca7c1cbbb5f75d4f");
    cr_assert_eq(s->rules.n, 5);
    cr_assert_eq(s->rules2.n, 13);
    sx_seal_free(s);
    free(d);
}

Test(codesign_seal, parse_wzc_flat_old_template)
{
    uint8_t *d;
    size_t n;
    sx_seal *s = NULL;
    load(WZC, &d, &n);
    cr_assert_eq(sx_seal_parse(d, n, "WZC", &s), 0, "%s", sx_errmsg());
    cr_assert_eq(s->nfiles, 4);
    cr_assert_eq(s->nfiles2, 3);
    cr_assert_not_null(sx_seal_find(s->files, s->nfiles, "Info.plist"));
    cr_assert_null(sx_seal_find(s->files2, s->nfiles2, "Info.plist"));
    const sx_seal_entry *e = sx_seal_find(s->files2, s->nfiles2, "Modules/module.modulemap");
    cr_assert_not_null(e);
    cr_assert(e->has_sha1 && e->has_sha256);
    char hex[41];
    sx_hex_encode(e->sha1, 20, hex);
    cr_assert_str_eq(hex, "e19d5c65d6e8411e1d59cb76d510946f8f9b28ce");
    cr_assert_eq(s->rules.n, 4);
    cr_assert_eq(s->rules2.n, 12);
    sx_seal_free(s);
    free(d);
}

Test(codesign_seal, parse_binary_plist)
{
    uint8_t *d;
    size_t n;
    load(WZC, &d, &n);
    plist_t p = NULL;
    plist_from_memory((const char *)d, (uint32_t)n, &p);
    cr_assert_not_null(p);
    char *bin = NULL;
    uint32_t blen = 0;
    plist_to_bin(p, &bin, &blen);
    sx_seal *s = NULL;
    cr_assert_eq(sx_seal_parse((const uint8_t *)bin, blen, "bin", &s), 0, "%s", sx_errmsg());
    cr_assert_eq(s->nfiles2, 3);
    sx_seal_free(s);
    plist_to_bin_free(bin);
    plist_free(p);
    free(d);
}

/* libplist re-serializes Apple's seal to the same bytes (6.9). */
Test(codesign_seal, reserialize_is_byte_identical)
{
    const char *paths[] = {SPLITWG, WZC};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *d;
        size_t n;
        load(paths[i], &d, &n);
        plist_t p = NULL;
        plist_from_memory((const char *)d, (uint32_t)n, &p);
        cr_assert_not_null(p);
        char *x = NULL;
        uint32_t xl = 0;
        plist_to_xml(p, &x, &xl);
        cr_assert_eq(xl, n, "%s: %u vs %zu", paths[i], xl, n);
        cr_assert_eq(memcmp(x, d, n), 0, "%s", paths[i]);
        plist_to_xml_free(x);
        plist_free(p);
        free(d);
    }
}

/* Our deep template + seal of the same input reproduces Apple's file byte for byte. */
Test(codesign_seal, build_reproduces_splitwg_bytes)
{
    uint8_t *icon, *want;
    size_t icon_len, want_len;
    load(SAMPLES "/coderesources/KilimcininKorOglu_SplitWG.inputs/Resources/AppIcon.icns", &icon,
         &icon_len);
    load(SPLITWG, &want, &want_len);
    put("S.app/Contents/Info.plist", "<plist/>");
    put("S.app/Contents/PkgInfo", "APPL????");
    put("S.app/Contents/MacOS/S", "#!/bin/sh\n");
    put("S.app/Contents/_CodeSignature/CodeResources", "old");
    char *ip = at("S.app/Contents/Resources/AppIcon.icns");
    char *ipd = sx_path_dirname(ip);
    cr_assert_eq(sx_mkdir_p(ipd, 0755), 0);
    cr_assert_eq(sx_write_file_atomic(ip, icon, icon_len, 0644), 0);
    char *app = at("S.app");
    sx_seal_options o = {.bundle_path = app, .main_exe_rel = "MacOS/S"};
    sx_buf out = SX_BUF_INIT;
    cr_assert_eq(sx_seal_build(&o, &out), 0, "%s", sx_errmsg());
    cr_assert_eq(out.len, want_len, "%.*s", (int)out.len, (char *)out.data);
    cr_assert_eq(memcmp(out.data, want, want_len), 0, "%s", (char *)out.data);
    sx_buf_free(&out);
    free(app);
    free(ip);
    free(ipd);
    free(icon);
    free(want);
}

/* The flat template equals the reference's 6.5 tables. */
Test(codesign_seal, flat_template_matches_reference)
{
    static const struct {
        const char *p;
        unsigned w, f;
    } r1[] = {{"^.*", 1, 0},
              {"^.*\\.lproj/", 1000, SX_RULE_OPTIONAL},
              {"^.*\\.lproj/locversion.plist$", 1100, SX_RULE_OMIT},
              {"^Base\\.lproj/", 1010, 0},
              {"^version.plist$", 1, 0}},
      r2[] = {{".*\\.dSYM($|/)", 11, 0},
              {"^(.*/)?\\.DS_Store$", 2000, SX_RULE_OMIT},
              {"^.*", 1, 0},
              {"^.*\\.lproj/", 1000, SX_RULE_OPTIONAL},
              {"^.*\\.lproj/locversion.plist$", 1100, SX_RULE_OMIT},
              {"^Base\\.lproj/", 1010, 0},
              {"^Info\\.plist$", 20, SX_RULE_OMIT},
              {"^PkgInfo$", 20, SX_RULE_OMIT},
              {"^embedded\\.provisionprofile$", 20, 0},
              {"^version\\.plist$", 20, 0}};
    for (int v = 1; v <= 2; v++) {
        plist_t t = sx_seal_rules_template(true, v);
        sx_seal_rules rs = {0};
        cr_assert_eq(sx_seal_rules_from_plist(t, "t", "r", &rs), 0);
        size_t n = v == 1 ? SX_ARRAY_SIZE(r1) : SX_ARRAY_SIZE(r2);
        cr_assert_eq(rs.n, n);
        for (size_t i = 0; i < n; i++) {
            const char *p = v == 1 ? r1[i].p : r2[i].p;
            cr_assert_str_eq(rs.v[i].pattern, p);
            cr_assert_eq(rs.v[i].weight, v == 1 ? r1[i].w : r2[i].w, "%s", p);
            cr_assert_eq(rs.v[i].flags, v == 1 ? r1[i].f : r2[i].f, "%s", p);
            if (i > 0)
                cr_assert_lt(strcmp(rs.v[i - 1].pattern, p), 0, "sorted order");
        }
        /* "true" is written for weight-1 flag-less rules */
        cr_assert_eq(plist_get_node_type(plist_dict_get_item(t, "^.*")), PLIST_BOOLEAN);
        sx_seal_rules_free(&rs);
        plist_free(t);
    }
}

/* The deep template equals SplitWG's rules/rules2 as plists. */
Test(codesign_seal, deep_template_equals_apple)
{
    uint8_t *d;
    size_t n;
    load(SPLITWG, &d, &n);
    plist_t p = NULL;
    plist_from_memory((const char *)d, (uint32_t)n, &p);
    for (int v = 1; v <= 2; v++) {
        plist_t t = sx_seal_rules_template(false, v);
        char *a = NULL, *b = NULL;
        uint32_t al = 0, bl = 0;
        plist_to_xml(t, &a, &al);
        plist_to_xml(plist_dict_get_item(p, v == 1 ? "rules" : "rules2"), &b, &bl);
        cr_assert_eq(al, bl);
        cr_assert_str_eq(a, b);
        plist_to_xml_free(a);
        plist_to_xml_free(b);
        plist_free(t);
    }
    plist_free(p);
    free(d);
}

Test(codesign_seal, rule_matching_weights)
{
    plist_t t = sx_seal_rules_template(false, 2);
    sx_seal_rules rs = {0};
    cr_assert_eq(sx_seal_rules_from_plist(t, "t", "rules2", &rs), 0);
    cr_assert_eq(sx_seal_rules_add_exclusion(&rs, "MacOS/App"), 0);
    cr_assert_eq(sx_seal_rules_compile(&rs, "t", "rules2"), 0, "%s", sx_errmsg());
    const sx_seal_rule *r;
    r = sx_seal_rules_match(&rs, "Resources/en.lproj/locversion.plist");
    cr_assert(r->flags & SX_RULE_OMIT);
    r = sx_seal_rules_match(&rs, "Resources/en.lproj/x.strings");
    cr_assert_eq(r->flags, SX_RULE_OPTIONAL);
    r = sx_seal_rules_match(&rs, "Resources/Base.lproj/x.nib");
    cr_assert_eq(r->weight, 1010);
    r = sx_seal_rules_match(&rs, "Info.plist");
    cr_assert(r->flags & SX_RULE_OMIT);
    r = sx_seal_rules_match(&rs, "MacOS/App");
    cr_assert(r->flags & SX_RULE_EXCLUSION);
    r = sx_seal_rules_match(&rs, "MacOS/helper");
    cr_assert(r->flags & SX_RULE_NESTED);
    r = sx_seal_rules_match(&rs, "foo");
    cr_assert(r->flags & SX_RULE_NESTED);
    r = sx_seal_rules_match(&rs, "Library/SystemExtensions/x.dext/Info.plist");
    cr_assert_str_eq(r->pattern, "^.*");
    r = sx_seal_rules_match(&rs, "Resources/a/.DS_Store");
    cr_assert(r->flags & SX_RULE_OMIT);
    r = sx_seal_rules_match(&rs, "Resources/x.dSYM/y");
    cr_assert_eq(r->weight, 20); /* ^Resources/ (20) beats .dSYM (11) */
    r = sx_seal_rules_match(&rs, "versionXplist");
    cr_assert(r->flags & SX_RULE_NESTED); /* ^version\.plist$ is escaped in rules2 */
    sx_seal_rules_free(&rs);
    plist_free(t);
}

/* ---- verifying real trees ---- */

Test(codesign_seal, verify_splitwg_inputs)
{
    uint8_t *d;
    size_t n;
    load(SPLITWG, &d, &n);
    sx_seal_options o = {.bundle_path = SAMPLES "/coderesources/KilimcininKorOglu_SplitWG.inputs",
                         .flat = true};
    sx_report rep;
    sx_report_init(&rep);
    int rc = sx_seal_verify(&o, d, n, false, NULL, NULL, &rep);
    sx_buf t = SX_BUF_INIT;
    sx_report_render_text(&rep, &t);
    cr_assert_eq(rc, 0, "%s", t.data ? (char *)t.data : sx_errmsg());
    cr_assert_eq(rep.n, 0);
    sx_buf_free(&t);
    sx_report_free(&rep);
    free(d);
}

static bool has_diag(const sx_report *r, const char *code, const char *path)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].code, code) == 0 && r->v[i].path && strcmp(r->v[i].path, path) == 0)
            return true;
    return false;
}

Test(codesign_seal, verify_wzc_framework_three_missing)
{
    uint8_t *d;
    size_t n;
    load(SAMPLES "/wzccustombutton.framework/_CodeSignature/CodeResources", &d, &n);
    for (int strict = 0; strict <= 1; strict++) {
        sx_seal_options o = {.bundle_path = SAMPLES "/wzccustombutton.framework",
                             .flat = true,
                             .main_exe_rel = "WZCCustomButton"};
        sx_report rep;
        sx_report_init(&rep);
        int rc = sx_seal_verify(&o, d, n, strict, NULL, NULL, &rep);
        sx_buf t = SX_BUF_INIT;
        sx_report_render_text(&rep, &t);
        cr_assert_eq(rc, SYSEXT_ESIGNATURE, "%d %s", rc, sx_errmsg());
        cr_assert_eq(rep.n, 3, "%s", (char *)t.data);
        cr_assert(has_diag(&rep, "file-missing", "Headers/FisteLineBtn.h"));
        cr_assert(has_diag(&rep, "file-missing", "Modules/module.modulemap"));
        cr_assert(has_diag(&rep, "file-missing", "PrivateHeaders/WZCCustomButton.h"));
        cr_assert(strstr((char *)t.data, "file missing: Modules/module.modulemap"));
        sx_buf_free(&t);
        sx_report_free(&rep);
    }
    free(d);
}

/* ---- synthetic bundles ---- */

static int nested_calls;

static int stub_nested(const char *path, sx_nested_info *out, void *payload)
{
    (void)payload;
    nested_calls++;
    const char *b = sx_path_basename(path);
    uint8_t h[20];
    sx_hash(SX_HASH_SHA1, b, strlen(b), h);
    memcpy(out->cdhash, h, 20);
    char hex[41];
    sx_hex_encode(h, 20, hex);
    return asprintf(&out->requirement, "cdhash H\"%s\"", hex) < 0 ? SYSEXT_ENOMEM : 0;
}

static int check_ok(const char *path, const uint8_t cdhash[20], const char *req, void *payload)
{
    (void)cdhash;
    const char *bad = payload;
    return bad && strcmp(sx_path_basename(path), bad) == 0 ? -1 : (req ? 0 : -1);
}

static void make_app(void)
{
    put("App.app/Contents/Info.plist", "<plist/>");
    put("App.app/Contents/PkgInfo", "APPL????");
    put("App.app/Contents/MacOS/App", "\x7f" "ELF main");
    put("App.app/Contents/MacOS/helper", "\x7f" "ELF helper");
    put("App.app/Contents/Resources/a.txt", "alpha");
    put("App.app/Contents/Resources/en.lproj/Loc.strings", "\"k\" = \"v\";");
    put("App.app/Contents/Resources/en.lproj/locversion.plist", "<plist/>");
    put("App.app/Contents/Resources/.DS_Store", "junk");
    link_at("App.app/Contents/Resources/link", "a.txt");
    put("App.app/Contents/Frameworks/F.framework/Versions/A/F", "fw");
    put("App.app/Contents/Library/SystemExtensions/com.x.drv.dext/Info.plist", "<dext/>");
    put("App.app/Contents/Library/SystemExtensions/com.x.drv.dext/drv", "\x7f" "ELF drv");
    put("App.app/Contents/Library/SystemExtensions/com.x.drv.dext/_CodeSignature/CodeResources",
        "<seal/>");
    put("App.app/Contents/version.plist", "<v/>");
    put("App.app/Contents/embedded.provisionprofile", "profile");
    put("App.app/Contents/_CodeSignature/CodeResources", "old seal");
}

static sx_seal_options app_opts(char *app)
{
    sx_seal_options o = {.bundle_path = app, .main_exe_rel = "MacOS/App", .nested = stub_nested};
    return o;
}

static void build_app_seal(sx_buf *out)
{
    char *app = at("App.app");
    sx_seal_options o = app_opts(app);
    cr_assert_eq(sx_seal_build(&o, out), 0, "%s", sx_errmsg());
    char *p = at("App.app/Contents/_CodeSignature/CodeResources");
    cr_assert_eq(sx_write_file_atomic(p, out->data, out->len, 0644), 0);
    free(p);
    free(app);
}

Test(codesign_seal, build_deep_app)
{
    make_app();
    char *app = at("App.app");
    sx_seal_stats st = {0};
    sx_seal_options o = app_opts(app);
    o.stats = &st;
    o.digests = SX_SEAL_DIGEST(SX_HASH_SHA1) | SX_SEAL_DIGEST(SX_HASH_SHA256);
    sx_buf out = SX_BUF_INIT;
    nested_calls = 0;
    cr_assert_eq(sx_seal_build(&o, &out), 0, "%s", sx_errmsg());
    cr_assert_eq(nested_calls, 2);
    cr_assert_eq(st.nested, 2);
    cr_assert_eq(st.symlinks, 1);
    sx_seal *s = NULL;
    cr_assert_eq(sx_seal_parse(out.data, out.len, "built", &s), 0, "%s", sx_errmsg());
    static const char *in2[] = {
        "Frameworks/F.framework",
        "Library/SystemExtensions/com.x.drv.dext/Info.plist",
        "Library/SystemExtensions/com.x.drv.dext/_CodeSignature/CodeResources",
        "Library/SystemExtensions/com.x.drv.dext/drv",
        "MacOS/helper",
        "Resources/a.txt",
        "Resources/en.lproj/Loc.strings",
        "Resources/link",
        "embedded.provisionprofile",
        "version.plist",
    };
    cr_assert_eq(s->nfiles2, SX_ARRAY_SIZE(in2), "%s", (char *)out.data);
    for (size_t i = 0; i < SX_ARRAY_SIZE(in2); i++) {
        cr_assert_str_eq(s->files2[i].path, in2[i]);
    }
    const sx_seal_entry *e = sx_seal_find(s->files2, s->nfiles2, "Frameworks/F.framework");
    cr_assert_eq(e->kind, SX_SEAL_NESTED);
    cr_assert(e->has_cdhash);
    cr_assert(strncmp(e->requirement, "cdhash H\"", 9) == 0);
    e = sx_seal_find(s->files2, s->nfiles2, "MacOS/helper");
    cr_assert_eq(e->kind, SX_SEAL_NESTED);
    e = sx_seal_find(s->files2, s->nfiles2, "Resources/link");
    cr_assert_eq(e->kind, SX_SEAL_SYMLINK);
    cr_assert_str_eq(e->symlink, "a.txt");
    e = sx_seal_find(s->files2, s->nfiles2, "Resources/en.lproj/Loc.strings");
    cr_assert(e->optional);
    e = sx_seal_find(s->files2, s->nfiles2, "Resources/a.txt");
    cr_assert(e->has_sha1 && e->has_sha256 && !e->optional);
    uint8_t h[32];
    sx_hash(SX_HASH_SHA256, "alpha", 5, h);
    cr_assert_eq(memcmp(h, e->sha256, 32), 0);
    sx_hash(SX_HASH_SHA1, "alpha", 5, h);
    cr_assert_eq(memcmp(h, e->sha1, 20), 0);
    /* V1: only Resources/ (not symlinks; .DS_Store is not omitted by V1 rules) and
     * version.plist */
    cr_assert_eq(s->nfiles, 4);
    cr_assert_str_eq(s->files[0].path, "Resources/.DS_Store");
    cr_assert_str_eq(s->files[1].path, "Resources/a.txt");
    cr_assert_str_eq(s->files[2].path, "Resources/en.lproj/Loc.strings");
    cr_assert(s->files[2].optional);
    cr_assert_str_eq(s->files[3].path, "version.plist");
    /* the raw XML shows the V1 shapes */
    cr_assert(strstr((char *)out.data, "<key>optional</key>\n\t\t\t<true/>"));
    sx_seal_free(s);
    sx_buf_free(&out);

    /* default digest set: SHA-256 only in files2 */
    o.digests = 0;
    cr_assert_eq(sx_seal_build(&o, &out), 0);
    cr_assert_eq(sx_seal_parse(out.data, out.len, "built", &s), 0);
    e = sx_seal_find(s->files2, s->nfiles2, "Resources/a.txt");
    cr_assert(e->has_sha256 && !e->has_sha1);
    sx_seal_free(s);
    sx_buf_free(&out);
    free(app);
}

Test(codesign_seal, build_without_nested_callback_fails)
{
    make_app();
    char *app = at("App.app");
    sx_seal_options o = {.bundle_path = app, .main_exe_rel = "MacOS/App"};
    sx_buf out = SX_BUF_INIT;
    cr_assert_eq(sx_seal_build(&o, &out), SYSEXT_EUNSUPPORTED);
    cr_assert(strstr(sx_errmsg(), "Frameworks/F.framework"), "%s", sx_errmsg());
    free(app);
}

Test(codesign_seal, build_flat_dext)
{
    put("d.dext/Info.plist", "<plist/>");
    put("d.dext/drv", "\x7f" "ELF");
    put("d.dext/data.bin", "data");
    put("d.dext/en.lproj/L.strings", "s");
    put("d.dext/sub/x.bundle/y", "y"); /* no nested rules in flat bundles */
    put("d.dext/_CodeSignature/CodeDirectory", "cd");
    char *b = at("d.dext");
    sx_seal_options o = {.bundle_path = b, .flat = true, .main_exe_rel = "drv"};
    sx_buf out = SX_BUF_INIT;
    cr_assert_eq(sx_seal_build(&o, &out), 0, "%s", sx_errmsg());
    sx_seal *s = NULL;
    cr_assert_eq(sx_seal_parse(out.data, out.len, "flat", &s), 0);
    cr_assert_eq(s->nfiles2, 3, "%s", (char *)out.data);
    cr_assert_str_eq(s->files2[0].path, "data.bin");
    cr_assert_str_eq(s->files2[1].path, "en.lproj/L.strings");
    cr_assert(s->files2[1].optional);
    cr_assert_str_eq(s->files2[2].path, "sub/x.bundle/y");
    cr_assert_eq(s->nfiles, 4); /* Info.plist is in V1 */
    cr_assert_str_eq(s->files[0].path, "Info.plist");
    cr_assert_eq(s->rules2.n, 10);
    cr_assert_eq(s->rules.n, 5);
    sx_seal_free(s);

    sx_report rep;
    sx_report_init(&rep);
    char *cr = at("d.dext/_CodeSignature/CodeResources");
    cr_assert_eq(sx_write_file_atomic(cr, out.data, out.len, 0644), 0);
    cr_assert_eq(sx_seal_verify(&o, out.data, out.len, true, NULL, NULL, &rep), 0);
    cr_assert_eq(rep.n, 0);
    sx_report_free(&rep);
    free(cr);
    sx_buf_free(&out);
    free(b);
}

/* Verify the app, after `mutate`, expecting exactly one diagnostic `code` on `path`. */
static void expect_one(bool strict, const char *code, const char *path, const char *bad_nested)
{
    uint8_t *d;
    size_t n;
    char *cr = at("App.app/Contents/_CodeSignature/CodeResources");
    load(cr, &d, &n);
    char *app = at("App.app");
    sx_seal_options o = app_opts(app);
    sx_report rep;
    sx_report_init(&rep);
    int rc = sx_seal_verify(&o, d, n, strict, check_ok, (void *)bad_nested, &rep);
    sx_buf t = SX_BUF_INIT;
    sx_report_render_text(&rep, &t);
    if (!code) {
        cr_assert_eq(rc, 0, "%s", t.data ? (char *)t.data : sx_errmsg());
        cr_assert_eq(rep.n, 0);
    } else {
        cr_assert_eq(rc, SYSEXT_ESIGNATURE, "rc %d: %s", rc, sx_errmsg());
        cr_assert_eq(rep.n, 1, "%s", (char *)t.data);
        cr_assert_str_eq(rep.v[0].code, code, "%s", (char *)t.data);
        cr_assert_str_eq(rep.v[0].path, path, "%s", (char *)t.data);
    }
    sx_buf_free(&t);
    sx_report_free(&rep);
    free(app);
    free(cr);
    free(d);
}

Test(codesign_seal, verify_own_seal_strict)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    expect_one(true, NULL, NULL, NULL);
    expect_one(false, NULL, NULL, NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, tamper_modify_byte)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    put("App.app/Contents/Resources/a.txt", "alphA");
    expect_one(false, "file-modified", "Resources/a.txt", NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, tamper_dext_signature_inside_app)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    put("App.app/Contents/Library/SystemExtensions/com.x.drv.dext/_CodeSignature/CodeResources",
        "<seaL/>");
    expect_one(false, "file-modified",
               "Library/SystemExtensions/com.x.drv.dext/_CodeSignature/CodeResources", NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, tamper_add_remove)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    put("App.app/Contents/Resources/new.txt", "x");
    expect_one(false, "file-added", "Resources/new.txt", NULL);
    char *p = at("App.app/Contents/Resources/new.txt");
    unlink(p);
    free(p);
    p = at("App.app/Contents/version.plist");
    unlink(p);
    free(p);
    expect_one(false, "file-missing", "version.plist", NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, optional_may_be_missing_omitted_may_change)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    char *p = at("App.app/Contents/Resources/en.lproj/Loc.strings");
    unlink(p);
    free(p);
    put("App.app/Contents/Info.plist", "<changed/>");
    put("App.app/Contents/Resources/en.lproj/locversion.plist", "<changed/>");
    put("App.app/Contents/MacOS/App", "changed main");
    expect_one(true, NULL, NULL, NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, tamper_symlink_and_type)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    link_at("App.app/Contents/Resources/link", "version.plist");
    expect_one(false, "symlink-changed", "Resources/link", NULL);
    link_at("App.app/Contents/Resources/link", "a.txt");
    char *p = at("App.app/Contents/Resources/a.txt");
    unlink(p);
    free(p);
    link_at("App.app/Contents/Resources/a.txt", "link");
    expect_one(false, "file-modified", "Resources/a.txt", NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, symlink_outside_strict)
{
    make_app();
    link_at("App.app/Contents/Resources/out", "../../../../../../../../etc/passwd");
    link_at("App.app/Contents/Resources/abs", "/etc/passwd");
    link_at("App.app/Contents/Resources/sys", "/Library/Foo");
    link_at("App.app/Contents/Resources/in", "../../Contents/version.plist");
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    expect_one(false, NULL, NULL, NULL);
    uint8_t *d;
    size_t n;
    char *cr = at("App.app/Contents/_CodeSignature/CodeResources");
    load(cr, &d, &n);
    char *app = at("App.app");
    sx_seal_options o = app_opts(app);
    sx_report rep;
    sx_report_init(&rep);
    cr_assert_eq(sx_seal_verify(&o, d, n, true, check_ok, NULL, &rep), SYSEXT_ESIGNATURE);
    cr_assert_eq(rep.n, 2);
    cr_assert(has_diag(&rep, "symlink-outside", "Resources/out"));
    cr_assert(has_diag(&rep, "symlink-outside", "Resources/abs"));
    sx_report_free(&rep);
    free(app);
    free(cr);
    free(d);
    sx_buf_free(&out);
}

Test(codesign_seal, nested_invalid)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    expect_one(false, "nested-invalid", "MacOS/helper", "helper");
    sx_buf_free(&out);
}

Test(codesign_seal, strict_unsealed_content)
{
    make_app();
    sx_buf out = SX_BUF_INIT;
    build_app_seal(&out);
    put("App.app/Contents/_CodeSignature/Extra", "x");
    expect_one(true, "unsealed-content", "_CodeSignature", NULL);
    expect_one(false, NULL, NULL, NULL);
    char *p = at("App.app/Contents/_CodeSignature/Extra");
    unlink(p);
    free(p);
    put("App.app/README", "x");
    expect_one(true, "unsealed-content", "README", NULL);
    sx_buf_free(&out);
}

Test(codesign_seal, strict_weak_rules)
{
    put("w/a", "a");
    char *b = at("w");
    const char *v1only = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
                         "<key>files</key><dict/><key>rules</key><dict><key>^.*</key><true/>"
                         "<key>^a$</key><false/></dict></dict></plist>";
    const char *custom = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
                         "<key>files2</key><dict/><key>rules2</key><dict><key>^.*</key><true/>"
                         "<key>^a$</key><dict><key>omit</key><true/><key>weight</key>"
                         "<real>50</real></dict></dict></dict></plist>";
    sx_seal_options o = {.bundle_path = b, .flat = true};
    for (int i = 0; i < 2; i++) {
        const char *x = i ? custom : v1only;
        sx_report rep;
        sx_report_init(&rep);
        cr_assert_eq(sx_seal_verify(&o, (const uint8_t *)x, strlen(x), false, NULL, NULL, &rep), 0,
                     "%s", sx_errmsg());
        cr_assert_eq(sx_seal_verify(&o, (const uint8_t *)x, strlen(x), true, NULL, NULL, &rep),
                     SYSEXT_ESIGNATURE);
        cr_assert_eq(rep.n, 1);
        cr_assert_str_eq(rep.v[0].code, "weak-rules");
        cr_assert(strstr(rep.v[0].message, i ? "custom omit rules" : "version 1 signature"));
        sx_report_free(&rep);
    }
    free(b);
}

/* ---- malformed seals ---- */

static void expect_malformed(const char *xml, const char *needle)
{
    sx_seal *s = NULL;
    int rc = sx_seal_parse((const uint8_t *)xml, strlen(xml), "CR", &s);
    cr_assert_eq(rc, SYSEXT_EFORMAT, "%d for %s", rc, xml);
    cr_assert_null(s);
    cr_assert(strstr(sx_errmsg(), needle), "'%s' lacks '%s'", sx_errmsg(), needle);
}

#define PL(body) "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">" body "</plist>"
#define R2 "<key>rules2</key><dict><key>^.*</key><true/></dict>"

Test(codesign_seal, malformed_seals)
{
    expect_malformed("this is not a plist", "not a property list");
    expect_malformed(PL("<array/>"), "top level");
    expect_malformed(PL("<dict/>"), "files2/files");
    expect_malformed(PL("<dict><key>files2</key><array/>" R2 "</dict>"),
                     "files2: expected a dictionary");
    expect_malformed(PL("<dict><key>files2</key><dict/></dict>"), "rules2: missing");
    expect_malformed(PL("<dict><key>files2</key><dict><key>a/b</key><dict><key>hash2</key>"
                        "<data>AAAA</data></dict></dict>" R2 "</dict>"),
                     "files2.a/b.hash2: expected 32 bytes");
    expect_malformed(PL("<dict><key>files2</key><dict><key>a</key><string>x</string></dict>" R2
                        "</dict>"),
                     "files2.a: expected data or a dictionary");
    expect_malformed(PL("<dict><key>files2</key><dict><key>a</key><dict><key>symlink</key>"
                        "<integer>1</integer></dict></dict>" R2 "</dict>"),
                     "files2.a.symlink: expected a string");
    expect_malformed(PL("<dict><key>files2</key><dict><key>a</key><dict><key>optional</key>"
                        "<string>yes</string></dict></dict>" R2 "</dict>"),
                     "files2.a.optional: expected a boolean");
    expect_malformed(PL("<dict><key>files2</key><dict><key>a</key><dict/></dict>" R2 "</dict>"),
                     "files2.a: no hash");
    expect_malformed(PL("<dict><key>files2</key><dict/><key>rules2</key><dict><key>^x</key>"
                        "<dict><key>weight</key><string>9</string></dict></dict></dict>"),
                     "rules2.^x.weight: expected a number");
    expect_malformed(PL("<dict><key>files2</key><dict/><key>rules2</key><dict><key>^x</key>"
                        "<integer>3</integer></dict></dict>"),
                     "rules2.^x: expected a boolean or a dictionary");
    expect_malformed(PL("<dict><key>files</key><dict><key>a</key><dict><key>symlink</key>"
                        "<string>b</string></dict></dict><key>rules</key><dict/></dict>"),
                     "files.a.hash");
}

Test(codesign_seal, verify_malformed_reports)
{
    put("m/a", "a");
    char *b = at("m");
    sx_seal_options o = {.bundle_path = b, .flat = true};
    sx_report rep;
    sx_report_init(&rep);
    const char *x = "garbage";
    cr_assert_eq(sx_seal_verify(&o, (const uint8_t *)x, strlen(x), false, NULL, NULL, &rep),
                 SYSEXT_EFORMAT);
    cr_assert(sx_report_has(&rep, "seal-malformed"));
    sx_report_free(&rep);
    sx_report_init(&rep);
    x = PL("<dict><key>files2</key><dict/><key>rules2</key><dict><key>^(a</key><true/></dict>"
           "</dict>");
    cr_assert_eq(sx_seal_verify(&o, (const uint8_t *)x, strlen(x), false, NULL, NULL, &rep),
                 SYSEXT_EFORMAT);
    cr_assert(sx_report_has(&rep, "seal-malformed"));
    cr_assert(strstr(rep.v[0].message, "^(a"), "%s", rep.v[0].message);
    sx_report_free(&rep);
    free(b);
}

/* The C matchers for template patterns agree with regexec on many paths. */
Test(codesign_seal, template_fast_matchers_equal_regexec)
{
    static const char *const frags[] = {
        "",          "Resources/", "Resources", "a/",          ".lproj/",        "en.lproj/",
        "locversion.plist", "locversionXplist", ".dSYM", ".dSYM/", "x.dSYMy", ".DS_Store",
        "/",         "Frameworks/", "MacOS",   "Library/LoginItems/", "version.plist",
        "versionXplist", "Base.lproj/", "Info.plist", "a", "PlugIns", "Library/"};
    size_t nf = SX_ARRAY_SIZE(frags), checked = 0;
    for (int flat = 0; flat <= 1; flat++) {
        for (int v = 1; v <= 2; v++) {
            plist_t t = sx_seal_rules_template(flat, v);
            sx_seal_rules fast = {0}, slow = {0};
            cr_assert_eq(sx_seal_rules_from_plist(t, "t", "r", &fast), 0);
            cr_assert_eq(sx_seal_rules_from_plist(t, "t", "r", &slow), 0);
            cr_assert_eq(sx_seal_rules_compile(&fast, "t", "r"), 0);
            cr_assert_eq(sx_seal_rules_compile_regex_only(&slow), 0);
            size_t nfunc = 0;
            for (size_t k = 0; k < fast.n; k++)
                nfunc += fast.v[k].mode != SX_RM_REGEX;
            cr_assert_eq(nfunc, fast.n, "every template rule has a fast matcher");
            for (size_t a = 0; a < nf; a++)
                for (size_t b = 0; b < nf; b++)
                    for (size_t c = 0; c < nf; c++) {
                        char path[256];
                        snprintf(path, sizeof(path), "%s%s%s", frags[a], frags[b], frags[c]);
                        for (size_t k = 0; k < fast.n; k++) {
                            sx_seal_rules one_f = {&fast.v[k], 1, 1}, one_s = {&slow.v[k], 1, 1};
                            bool mf = sx_seal_rules_match(&one_f, path) != NULL;
                            bool ms = sx_seal_rules_match(&one_s, path) != NULL;
                            if (mf != ms)
                                cr_assert_fail("rule %s on '%s': fast %d regex %d",
                                               fast.v[k].pattern, path, mf, ms);
                            checked++;
                        }
                        const sx_seal_rule *wf = sx_seal_rules_match(&fast, path);
                        const sx_seal_rule *ws = sx_seal_rules_match(&slow, path);
                        if ((wf ? wf - fast.v : -1) != (ws ? ws - slow.v : -1))
                            cr_assert_fail("winning rule differs on '%s'", path);
                    }
            sx_seal_rules_free(&fast);
            sx_seal_rules_free(&slow);
            plist_free(t);
        }
    }
    cr_assert_gt(checked, 100000);
}

/* Apple-made seals over real bundles: sstest.app's empty seal holds (strict too);
 * install-apk's seal lists the two Resources files PROVENANCE says were left out. */
Test(codesign_seal, verify_apple_script_bundles)
{
    uint8_t *d;
    size_t n;
    load(SAMPLES "/sstest.app/Contents/_CodeSignature/CodeResources", &d, &n);
    sx_seal_options o = {.bundle_path = SAMPLES "/sstest.app", .main_exe_rel = "MacOS/MyApp"};
    sx_report rep;
    sx_report_init(&rep);
    cr_assert_eq(sx_seal_verify(&o, d, n, true, NULL, NULL, &rep), 0, "%s", sx_errmsg());
    cr_assert_eq(rep.n, 0);
    sx_report_free(&rep);
    free(d);

    load(SAMPLES "/install-apk-adhoc.app/Contents/_CodeSignature/CodeResources", &d, &n);
    sx_seal_options o2 = {.bundle_path = SAMPLES "/install-apk-adhoc.app",
                          .main_exe_rel = "MacOS/InstallAPKs"};
    sx_report_init(&rep);
    cr_assert_eq(sx_seal_verify(&o2, d, n, true, NULL, NULL, &rep), SYSEXT_ESIGNATURE);
    cr_assert_eq(rep.n, 2);
    cr_assert(has_diag(&rep, "file-missing", "Resources/InstallAPKs.icns"));
    cr_assert(has_diag(&rep, "file-missing", "Resources/script.sh"));
    sx_report_free(&rep);
    free(d);
}
