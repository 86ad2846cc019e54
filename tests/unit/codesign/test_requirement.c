#include <criterion/criterion.h>

#include "util/common.h"
#include "codesign/codedirectory.h"
#include "codesign/requirement.h"
#include "codesign/superblob.h"
#include "util/fs.h"
#include "util/hex.h"

#include <openssl/cms.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#define APPLE SYSEXT_SHARED_DIR "/samples/apple/"

/* ---- sample access ---- */

typedef struct sample {
    uint8_t *file;
    size_t len;
    sx_superblob sb; /* first slice's signature */
} sample;

static sample open_macho(const char *rel, size_t slice)
{
    sample s = {0};
    char path[512];
    sx_macho_slice *sl = NULL;
    size_t n;
    snprintf(path, sizeof(path), "%s%s", APPLE, rel);
    cr_assert_eq(sx_read_file(path, 1 << 20, &s.file, &s.len), 0);
    cr_assert_eq(sx_macho_slices(s.file, s.len, rel, &sl, &n), 0);
    cr_assert_gt(n, slice);
    const uint8_t *sig = s.file + sl[slice].offset + sl[slice].sig_offset;
    cr_assert_eq(sx_superblob_parse(sig, sl[slice].sig_size, rel, &s.sb), 0);
    free(sl);
    return s;
}

static void close_sample(sample *s)
{
    sx_superblob_free(&s->sb);
    free(s->file);
}

static uint8_t *load(const char *rel, size_t *len)
{
    char path[512];
    uint8_t *d = NULL;
    snprintf(path, sizeof(path), "%s%s", APPLE, rel);
    cr_assert_eq(sx_read_file(path, 1 << 20, &d, len), 0, "%s", sx_errmsg());
    return d;
}

/* The certificates of a CMS blob, ordered leaf first, anchor last. */
static STACK_OF(X509) * chain_of(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    cr_assert_not_null(cms);
    STACK_OF(X509) *all = CMS_get1_certs(cms);
    CMS_ContentInfo_free(cms);
    cr_assert_not_null(all);
    X509 *leaf = NULL;
    for (int i = 0; i < sk_X509_num(all) && !leaf; i++) {
        X509 *c = sk_X509_value(all, i);
        bool issues_other = false;
        for (int j = 0; j < sk_X509_num(all); j++)
            if (j != i && X509_check_issued(c, sk_X509_value(all, j)) == X509_V_OK)
                issues_other = true;
        if (!issues_other)
            leaf = c;
    }
    cr_assert_not_null(leaf);
    STACK_OF(X509) *chain = sk_X509_new_null();
    for (X509 *cur = leaf; cur;) {
        X509_up_ref(cur);
        sk_X509_push(chain, cur);
        X509 *next = NULL;
        if (X509_check_issued(cur, cur) != X509_V_OK)
            for (int j = 0; j < sk_X509_num(all); j++)
                if (X509_check_issued(sk_X509_value(all, j), cur) == X509_V_OK)
                    next = sk_X509_value(all, j);
        cur = next;
        cr_assert_leq(sk_X509_num(chain), 8);
    }
    sk_X509_pop_free(all, X509_free);
    return chain;
}

static STACK_OF(X509) * chain_of_sample(const sample *s)
{
    const sx_blob_ref *w = sx_superblob_find(&s->sb, SX_CSSLOT_SIGNATURE);
    cr_assert_not_null(w);
    return chain_of(w->data + 8, w->len - 8);
}

static void designated(const sample *s, const uint8_t **dr, size_t *n)
{
    const sx_blob_ref *set = sx_superblob_find(&s->sb, 2);
    cr_assert_not_null(set);
    cr_assert_eq(sx_reqset_find(set->data, set->len, SX_REQ_DESIGNATED, dr, n), 0, "%s",
                 sx_errmsg());
}

/* text(blob) == codesign's text, and compile(text) == blob; likewise for alternate spellings. */
static void assert_text_and_bytes(const uint8_t *blob, size_t n, const char *text,
                                  const char *alt_text)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_req_to_text(blob, n, &b), 0, "%s", sx_errmsg());
    cr_assert_str_eq((const char *)b.data, text);
    b.len = 0;
    cr_assert_eq(sx_req_compile(text, &b), 0, "%s", sx_errmsg());
    cr_assert_eq(b.len, n, "compiled %zu bytes, Apple's blob has %zu", b.len, n);
    cr_assert_eq(memcmp(b.data, blob, n), 0, "compiled bytes differ from Apple's");
    if (alt_text) {
        b.len = 0;
        cr_assert_eq(sx_req_compile(alt_text, &b), 0, "%s", sx_errmsg());
        cr_assert_eq(b.len, n);
        cr_assert_eq(memcmp(b.data, blob, n), 0, "alternate spelling compiles differently");
    }
    sx_buf_free(&b);
}

#define LIBEXPAT_DR                                                                                \
    "identifier \"libexpat.1\" and anchor apple generic and certificate "                          \
    "1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate "                              \
    "leaf[field.1.2.840.113635.100.6.1.13] /* exists */ and certificate leaf[subject.OU] = "       \
    "EG7KH642X6"
#define TESTMACOS_DR                                                                               \
    "identifier \"com.supermorte.TestMacos\" and anchor apple generic and certificate "            \
    "leaf[subject.CN] = \"Apple Development: Francesco Tamagni (EKF6CY57W8)\" and certificate "    \
    "1[field.1.2.840.113635.100.6.2.1] /* exists */"
#define SSTEST_DR                                                                                  \
    "identifier \"com.example.myapp\" and certificate leaf = "                                     \
    "H\"b16a4f0b85342e3769478bfb9e48a590790de8f0\""
#define BASH_HOST "identifier \"com.apple.bash\" and anchor apple"

Test(codesign_requirement, designated_requirements_of_the_samples)
{
    const uint8_t *dr;
    size_t n;
    sample s = open_macho("macho/libexpat.1.dylib", 1);
    designated(&s, &dr, &n);
    cr_assert_eq(n, 152);
    assert_text_and_bytes(dr, n, LIBEXPAT_DR,
                          "identifier \"libexpat.1\" and anchor apple generic and certificate "
                          "1[field.1.2.840.113635.100.6.2.6] exists and certificate "
                          "leaf[field.1.2.840.113635.100.6.1.13] exists and certificate "
                          "leaf[subject.OU] = EG7KH642X6");
    close_sample(&s);

    s = open_macho("macho/TestMacOS-arm64e", 0);
    designated(&s, &dr, &n);
    assert_text_and_bytes(dr, n, TESTMACOS_DR, NULL);
    close_sample(&s);

    s = open_macho("macho/ls-osx-x86_64", 0);
    designated(&s, &dr, &n);
    assert_text_and_bytes(dr, n, "identifier \"com.apple.ls\" and anchor apple", NULL);
    const sx_blob_ref *set = sx_superblob_find(&s.sb, 2);
    cr_assert_eq(sx_reqset_find(set->data, set->len, SX_REQ_LIBRARY, &dr, &n), 0);
    /* codesign prints no parentheses around `and` inside `or`; PROVENANCE.md quotes the
     * parenthesised form, which must compile to the same bytes. */
    assert_text_and_bytes(
        dr, n,
        "identifier \"com.apple.libutil1\" and anchor apple or identifier \"libncurses.5\" and "
        "anchor apple or identifier \"libSystem.B\" and anchor apple",
        "(identifier \"com.apple.libutil1\" and anchor apple) or (identifier \"libncurses.5\" and "
        "anchor apple) or (identifier \"libSystem.B\" and anchor apple)");
    close_sample(&s);
}

Test(codesign_requirement, script_bundle_sets)
{
    size_t n;
    uint8_t *set = load("sstest.app/Contents/_CodeSignature/CodeRequirements", &n);
    const uint8_t *r;
    size_t rn;
    cr_assert_eq(sx_reqset_find(set, n, SX_REQ_HOST, &r, &rn), 0);
    assert_text_and_bytes(r, rn, BASH_HOST, NULL);
    const uint8_t *host = r;
    size_t host_len = rn;
    cr_assert_eq(sx_reqset_find(set, n, SX_REQ_DESIGNATED, &r, &rn), 0);
    assert_text_and_bytes(r, rn, SSTEST_DR, NULL);
    cr_assert_eq(sx_reqset_find(set, n, SX_REQ_LIBRARY, &r, &rn), SYSEXT_ENOTFOUND);

    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_reqset_to_text(set, n, &b), 0);
    cr_assert_str_eq((const char *)b.data, "host => " BASH_HOST "\ndesignated => " SSTEST_DR "\n");

    /* rebuilding the set from its two entries gives Apple's 148 bytes */
    b.len = 0;
    uint32_t types[] = {SX_REQ_DESIGNATED, SX_REQ_HOST};
    const uint8_t *reqs[] = {r, host};
    cr_assert_eq(sx_reqset_find(set, n, SX_REQ_DESIGNATED, &r, &rn), 0);
    reqs[0] = r;
    size_t lens[] = {rn, host_len};
    cr_assert_eq(sx_reqset_build_entries(types, reqs, lens, 2, &b), 0, "%s", sx_errmsg());
    cr_assert_eq(b.len, n);
    cr_assert_eq(memcmp(b.data, set, n), 0);
    sx_buf_free(&b);
    free(set);

    set = load("install-apk-adhoc.app/Contents/_CodeSignature/CodeRequirements", &n);
    cr_assert_eq(sx_reqset_find(set, n, SX_REQ_HOST, &r, &rn), 0);
    assert_text_and_bytes(r, rn, BASH_HOST, NULL);
    cr_assert_eq(sx_reqset_find(set, n, SX_REQ_DESIGNATED, &r, &rn), SYSEXT_ENOTFOUND);
    free(set);
}

Test(codesign_requirement, set_build)
{
    sample s = open_macho("macho/libexpat.1.dylib", 0);
    const uint8_t *dr;
    size_t n;
    designated(&s, &dr, &n);
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_reqset_build(dr, n, &b), 0);
    const sx_blob_ref *set = sx_superblob_find(&s.sb, 2);
    cr_assert_eq(b.len, 172);
    cr_assert_eq(memcmp(b.data, set->data, 172), 0);
    b.len = 0;
    cr_assert_eq(sx_reqset_build(NULL, 0, &b), 0);
    static const uint8_t empty[] = {0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 12, 0, 0, 0, 0};
    cr_assert_eq(b.len, 12);
    cr_assert_eq(memcmp(b.data, empty, 12), 0);
    sx_buf_free(&b);
    close_sample(&s);
}

static X509 *leaf_of(STACK_OF(X509) * chain)
{
    return sk_X509_value(chain, 0);
}

/* ---- evaluation ---- */

static int eval_text(const char *text, const sx_req_context *ctx)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_req_compile(text, &b), 0, "%s: %s", text, sx_errmsg());
    int r = sx_req_evaluate(b.data, b.len, ctx);
    sx_buf_free(&b);
    return r;
}

Test(codesign_requirement, designated_text_generation)
{
    sx_buf b = SX_BUF_INIT;
    sample s = open_macho("macho/libexpat.1.dylib", 0);
    STACK_OF(X509) *chain = chain_of_sample(&s);
    cr_assert_eq(sk_X509_num(chain), 3);
    cr_assert_eq(sx_req_designated_text("libexpat.1", SX_SIGNER_DEVELOPER_ID, leaf_of(chain), NULL,
                                        NULL, &b),
                 0, "%s", sx_errmsg());
    cr_assert_str_eq((const char *)b.data, LIBEXPAT_DR);
    sk_X509_pop_free(chain, X509_free);
    close_sample(&s);

    b.len = 0;
    s = open_macho("macho/TestMacOS-arm64e", 0);
    chain = chain_of_sample(&s);
    cr_assert_eq(sx_req_designated_text("com.supermorte.TestMacos", SX_SIGNER_DEVELOPMENT,
                                        leaf_of(chain), "7JJ26R4EJS", NULL, &b),
                 0);
    cr_assert_str_eq((const char *)b.data, TESTMACOS_DR);
    sk_X509_pop_free(chain, X509_free);
    close_sample(&s);

    b.len = 0;
    size_t n;
    uint8_t *cms = load("sstest.app/Contents/_CodeSignature/CodeSignature", &n);
    chain = chain_of(cms, n);
    cr_assert_eq(sk_X509_num(chain), 1);
    cr_assert_eq(sx_req_designated_text("com.example.myapp", SX_SIGNER_OTHER, leaf_of(chain), NULL,
                                        NULL, &b),
                 0);
    cr_assert_str_eq((const char *)b.data, SSTEST_DR);
    sk_X509_pop_free(chain, X509_free);
    free(cms);

    /* codesign's non-Apple rule over a whole chain: ls's certificates all carry O=Apple Inc.,
     * so the pin climbs to the root (Apple Root CA's SHA-1); libexpat's leaf is VMware's. */
    sample ls = open_macho("macho/ls-osx-x86_64", 0);
    chain = chain_of_sample(&ls);
    b.len = 0;
    cr_assert_eq(sx_req_designated_text_chain("com.apple.ls", chain, &b), 0, "%s", sx_errmsg());
    cr_assert_str_eq((const char *)b.data, "identifier \"com.apple.ls\" and certificate root = "
                                           "H\"611e5b662c593a08ff58d14ae22452d198df6c60\"");
    sx_req_context lctx = {.identifier = "com.apple.ls", .chain = chain};
    cr_assert_eq(eval_text((const char *)b.data, &lctx), 0, "%s", sx_errmsg());
    sk_X509_pop_free(chain, X509_free);
    close_sample(&ls);
    s = open_macho("macho/libexpat.1.dylib", 0);
    chain = chain_of_sample(&s);
    b.len = 0;
    cr_assert_eq(sx_req_designated_text_chain("libexpat.1", chain, &b), 0);
    cr_assert(strncmp((const char *)b.data, "identifier \"libexpat.1\" and certificate leaf = H\"",
                      49) == 0,
              "%s", (const char *)b.data);
    sk_X509_pop_free(chain, X509_free);
    close_sample(&s);

    b.len = 0;
    uint8_t h[20];
    sx_hex_decode("0c810928dca9279dfdce75907235504c1418eb90", h, 20);
    cr_assert_eq(sx_req_designated_text("x", SX_SIGNER_ADHOC, NULL, NULL, h, &b), 0);
    cr_assert_str_eq((const char *)b.data, "cdhash H\"0c810928dca9279dfdce75907235504c1418eb90\"");
    sx_buf_free(&b);
}

Test(codesign_requirement, evaluate_developer_id_and_development)
{
    sample ex = open_macho("macho/libexpat.1.dylib", 0);
    sample tm = open_macho("macho/TestMacOS-arm64e", 0);
    STACK_OF(X509) *ex_chain = chain_of_sample(&ex), *tm_chain = chain_of_sample(&tm);
    const uint8_t *dr;
    size_t n;
    designated(&ex, &dr, &n);
    sx_req_context ctx = {
        .identifier = "libexpat.1", .chain = ex_chain, .anchor_is_apple = 1, .anchor_trusted = 1};
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), 0, "%s", sx_errmsg());

    ctx.anchor_is_apple = 0;
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: anchor apple generic");
    ctx.anchor_is_apple = 1;
    ctx.identifier = "libexpat.2";
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: identifier \"libexpat.1\"");
    /* an Apple Development chain does not satisfy a Developer ID DR */
    ctx.identifier = "libexpat.1";
    ctx.chain = tm_chain;
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: certificate "
                                  "1[field.1.2.840.113635.100.6.2.6] /* exists */");
    ctx.chain = NULL; /* ad-hoc code satisfies no certificate clause */
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), SYSEXT_EINVALID);

    designated(&tm, &dr, &n);
    sx_req_context tctx = {
        .identifier = "com.supermorte.TestMacos", .chain = tm_chain, .anchor_is_apple = 1};
    cr_assert_eq(sx_req_evaluate(dr, n, &tctx), 0, "%s", sx_errmsg());
    tctx.chain = ex_chain;
    cr_assert_eq(sx_req_evaluate(dr, n, &tctx), SYSEXT_EINVALID);
    cr_assert(strstr(sx_errmsg(), "certificate leaf[subject.CN] = \"Apple Development:"), "%s",
              sx_errmsg());

    ctx.chain = ex_chain;
    cr_assert_eq(eval_text("certificate leaf[subject.OU] = EG7KH642X6", &ctx), 0);
    cr_assert_eq(eval_text("certificate leaf[subject.CN] = \"Developer ID Application:\"*", &ctx),
                 0, "%s", sx_errmsg());
    cr_assert_eq(eval_text("certificate leaf[subject.CN] ~ VMware", &ctx), 0);
    cr_assert_eq(eval_text("certificate leaf[subject.CN] = *VMware", &ctx), SYSEXT_EINVALID);
    cr_assert_eq(eval_text("certificate root[subject.CN] = \"Apple Root CA\"", &ctx), 0);
    cr_assert_eq(eval_text("certificate -2[field.1.2.840.113635.100.6.2.6]", &ctx), 0);
    cr_assert_eq(eval_text("certificate leaf[subject.O] absent", &ctx), SYSEXT_EINVALID);
    cr_assert_eq(eval_text("certificate leaf[subject.ST] absent", &ctx), 0);
    cr_assert_eq(eval_text("certificate 5[subject.CN] exists", &ctx), SYSEXT_EINVALID);
    cr_assert_eq(eval_text("certificate leaf[policy.1.2.840.113635.100.5.1]", &ctx), 0);
    cr_assert_eq(eval_text("anchor trusted and certificate 1 trusted", &ctx), 0);
    cr_assert_eq(eval_text("anchor apple", &ctx), SYSEXT_EINVALID, "not Apple's own CA");
    cr_assert_eq(eval_text("notarized", &ctx), SYSEXT_EINVALID);
    ctx.notarized = 1;
    cr_assert_eq(eval_text("notarized", &ctx), 0);

    sk_X509_pop_free(ex_chain, X509_free);
    sk_X509_pop_free(tm_chain, X509_free);
    close_sample(&ex);
    close_sample(&tm);
}

Test(codesign_requirement, evaluate_apple_anchor_and_pinned_leaf)
{
    sample ls = open_macho("macho/ls-osx-x86_64", 0);
    STACK_OF(X509) *chain = chain_of_sample(&ls);
    const uint8_t *dr;
    size_t n;
    designated(&ls, &dr, &n);
    sx_req_context ctx = {.identifier = "com.apple.ls", .chain = chain, .anchor_is_apple = 1};
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), 0, "%s", sx_errmsg());
    ctx.anchor_is_apple = 0;
    cr_assert_eq(sx_req_evaluate(dr, n, &ctx), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: anchor apple");

    size_t cn, sn;
    uint8_t *cms = load("sstest.app/Contents/_CodeSignature/CodeSignature", &cn);
    uint8_t *set = load("sstest.app/Contents/_CodeSignature/CodeRequirements", &sn);
    STACK_OF(X509) *own = chain_of(cms, cn);
    cr_assert_eq(sx_reqset_find(set, sn, SX_REQ_DESIGNATED, &dr, &n), 0);
    sx_req_context sctx = {.identifier = "com.example.myapp", .chain = own};
    cr_assert_eq(sx_req_evaluate(dr, n, &sctx), 0, "%s", sx_errmsg());
    sctx.chain = chain;
    cr_assert_eq(sx_req_evaluate(dr, n, &sctx), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: certificate leaf = "
                                  "H\"b16a4f0b85342e3769478bfb9e48a590790de8f0\"");
    sk_X509_pop_free(own, X509_free);
    sk_X509_pop_free(chain, X509_free);
    free(cms);
    free(set);
    close_sample(&ls);
}

Test(codesign_requirement, evaluate_cdhash_plists_and_logic)
{
    uint8_t h1[20], h2[20];
    sx_hex_decode("0c810928dca9279dfdce75907235504c1418eb90", h1, 20);
    sx_hex_decode("6762a807174618b7eccfc1a2f55245df55e1a496", h2, 20);
    const uint8_t *const hashes[] = {h1, h2};
    size_t n;
    uint8_t *info_xml = load("sstest.app/Contents/Info.plist", &n);
    plist_t info = NULL;
    plist_from_xml((const char *)info_xml, (uint32_t)n, &info);
    cr_assert_not_null(info);
    plist_t ent = plist_new_dict();
    plist_dict_set_item(ent, "com.apple.security.app-sandbox", plist_new_bool(1));
    plist_t groups = plist_new_array();
    plist_array_append_item(groups, plist_new_string("TEAM.group.one"));
    plist_dict_set_item(ent, "com.apple.security.application-groups", groups);
    sx_req_context ctx = {.identifier = "com.example.myapp",
                          .cdhashes = hashes,
                          .n_cdhashes = 2,
                          .info_plist = info,
                          .entitlements = ent};

    cr_assert_eq(eval_text("cdhash H\"6762a807174618b7eccfc1a2f55245df55e1a496\"", &ctx), 0);
    cr_assert_eq(eval_text("cdhash H\"6762a807174618b7eccfc1a2f55245df55e1a497\"", &ctx),
                 SYSEXT_EINVALID);
    cr_assert_eq(eval_text("info[CFBundleIdentifier] = com.example.myapp", &ctx), 0);
    cr_assert_eq(eval_text("info[CFBundleExecutable] = MyApp and info[NoSuchKey] absent", &ctx), 0,
                 "%s", sx_errmsg());
    cr_assert_eq(eval_text("entitlement[\"com.apple.security.app-sandbox\"] = true", &ctx), 0);
    cr_assert_eq(eval_text("entitlement[com.apple.security.application-groups] = "
                           "TEAM.group.one",
                           &ctx),
                 0, "arrays match any element");
    cr_assert_eq(eval_text("entitlement[com.apple.security.get-task-allow] exists", &ctx),
                 SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(),
                     "requirement not satisfied: "
                     "entitlement[\"com.apple.security.get-task-allow\"] /* exists */");
    /* the failing clause is the one that decided, not an earlier false branch of an `or` */
    cr_assert_eq(eval_text("(never or identifier com.example.myapp) and identifier other", &ctx),
                 SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: identifier other");
    cr_assert_eq(eval_text("! identifier other and always", &ctx), 0);
    cr_assert_eq(eval_text("! identifier com.example.myapp", &ctx), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(), "requirement not satisfied: ! identifier \"com.example.myapp\"");
    cr_assert_eq(eval_text("anchor apple generic", &ctx), SYSEXT_EINVALID, "no chain");
    plist_free(info);
    plist_free(ent);
    free(info_xml);
}

Test(codesign_requirement, text_round_trip_and_printing_rules)
{
    static const char *const texts[] = {
        "always",
        "never or ! (identifier a or identifier b)",
        "(identifier a or identifier b) and identifier c",
        "info[CFBundleVersion] >= \"2\" and info[Key] < abc and info[K] <= x and info[K] > y",
        "entitlement[\"a b\"] = \"quote\\\"back\\\\slash\" and entitlement[x.y] = abc* and "
        "entitlement[z] = *abc and entitlement[w] ~ mid",
        "certificate 2[policy.1.2.3] /* exists */ and certificate root = "
        "H\"0000000000000000000000000000000000000000\" and certificate leaf trusted",
        "anchor apple Foo and anchor trusted and platform = 2 and notarized and legacy",
        "identifier \"and\" and identifier Enginio and identifier \"9lives\" and identifier "
        "\"tab\there\"",
        "certificate leaf[timestamp.1.2.840.113635.100.6.1.33] absent ",
    };
    for (size_t i = 0; i < SX_ARRAY_SIZE(texts); i++) {
        sx_buf b = SX_BUF_INIT, t = SX_BUF_INIT, b2 = SX_BUF_INIT;
        cr_assert_eq(sx_req_compile(texts[i], &b), 0, "%s: %s", texts[i], sx_errmsg());
        cr_assert_eq(sx_req_to_text(b.data, b.len, &t), 0, "%s", sx_errmsg());
        cr_assert_str_eq((const char *)t.data, texts[i]);
        cr_assert_eq(sx_req_compile((const char *)t.data, &b2), 0);
        cr_assert_eq(b2.len, b.len);
        cr_assert_eq(memcmp(b.data, b2.data, b.len), 0);
        sx_buf_free(&b);
        sx_buf_free(&t);
        sx_buf_free(&b2);
    }
    /* non-printable data prints as hex */
    static const uint8_t bin[] = {0xfa, 0xde, 0x0c, 0x00, 0, 0, 0, 24, 0,    0,    0, 1,
                                  0,    0,    0,    2,    0, 0, 0, 2,  0x01, 0xff, 0, 0};
    sx_buf t = SX_BUF_INIT;
    cr_assert_eq(sx_req_to_text(bin, sizeof(bin), &t), 0);
    cr_assert_str_eq((const char *)t.data, "identifier 0x01ff");
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_req_compile("identifier 0x01ff", &b), 0);
    cr_assert_eq(b.len, sizeof(bin));
    cr_assert_eq(memcmp(b.data, bin, sizeof(bin)), 0, "0x<hex> compiles to binary data");
    sx_buf_free(&b);
    sx_buf_free(&t);
}

static void expect_compile_error(const char *text, int code, const char *msg)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_req_compile(text, &b), code, "%s: %s", text, sx_errmsg());
    cr_assert_str_eq(sx_errmsg(), msg);
    cr_assert_eq(b.len, 0);
    sx_buf_free(&b);
}

Test(codesign_requirement, compile_errors)
{
    expect_compile_error("identifier", SYSEXT_EFORMAT,
                         "requirement text: expected an identifier at the end");
    expect_compile_error("identifier a and", SYSEXT_EFORMAT,
                         "requirement text: expected a requirement clause at the end");
    expect_compile_error("identifier a b", SYSEXT_EFORMAT,
                         "requirement text: expected 'and', 'or' or the end at column 14");
    expect_compile_error("(identifier a", SYSEXT_EFORMAT,
                         "requirement text: expected ')' at the end");
    expect_compile_error("identifier \"abc", SYSEXT_EFORMAT,
                         "requirement text: unterminated string at column 12");
    expect_compile_error("cdhash H\"abc\"", SYSEXT_EFORMAT,
                         "requirement text: hash at column 8 needs an even, non-zero number of "
                         "hex digits");
    expect_compile_error("certificate leaf[field.1.x]", SYSEXT_EFORMAT,
                         "requirement text: bad OID at column 18");
    expect_compile_error("certificate 999[subject.CN]", SYSEXT_EFORMAT,
                         "requirement text: expected a certificate index (leaf, root or a number) "
                         "at column 13");
    expect_compile_error("identifier a; rm", SYSEXT_EFORMAT,
                         "requirement text: unexpected character ';' at column 13");
    char deep[300];
    memset(deep, '(', 100);
    memcpy(deep + 100, "always", 7);
    expect_compile_error(deep, SYSEXT_ELIMIT,
                         "requirement text: nested deeper than 64 at column 65");
    /* 300 clauses in one `and` chain nest 299 deep in the blob: refused at compile time,
     * since no reader would accept the result (found by fuzz_codesign_requirement) */
    sx_buf chain = SX_BUF_INIT;
    sx_buf_puts(&chain, "always");
    for (int i = 0; i < 299; i++)
        sx_buf_puts(&chain, " and always");
    expect_compile_error((const char *)chain.data, SYSEXT_ELIMIT,
                         "requirement text: more than 256 nested clauses");
    chain.len = 0;
    sx_buf_puts(&chain, "always");
    for (int i = 0; i < 200; i++)
        sx_buf_puts(&chain, " or always");
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_req_compile((const char *)chain.data, &b), 0, "200 clauses are fine");
    sx_req_context ctx = {0};
    cr_assert_eq(sx_req_evaluate(b.data, b.len, &ctx), 0);
    sx_buf_free(&b);
    sx_buf_free(&chain);
}

static void expect_bad_blob(const uint8_t *blob, size_t n, int code, const char *needle)
{
    sx_buf t = SX_BUF_INIT;
    sx_req_context ctx = {.identifier = "a"};
    int got = sx_req_to_text(blob, n, &t);
    cr_assert_eq(got, code, "got %d: %s", got, sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "message '%s' lacks '%s'", sx_errmsg(), needle);
    cr_assert_eq(t.len, 0);
    cr_assert_eq(sx_req_evaluate(blob, n, &ctx), code, "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "message '%s' lacks '%s'", sx_errmsg(), needle);
    sx_buf_free(&t);
}

Test(codesign_requirement, malformed_blobs)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_req_compile("identifier abc and always", &b), 0);
    expect_bad_blob(b.data, 6, SYSEXT_EFORMAT, "requirement: truncated at offset 4");
    expect_bad_blob(b.data, b.len - 1, SYSEXT_EFORMAT, "length 32 at offset 4 does not fit the 31");
    /* 12 and, 16 ident, 20 length 3, 24 "abc\0", 28 always */
    sx_buf_set_u32be(&b, 20, 9); /* identifier data length lies */
    expect_bad_blob(b.data, b.len, SYSEXT_EFORMAT,
                    "data of 9 bytes at offset 20 runs past the end");
    sx_buf_set_u32be(&b, 20, 3);
    sx_buf_set_u32be(&b, 28, 99); /* unknown opcode */
    expect_bad_blob(b.data, b.len, SYSEXT_EFORMAT, "unknown opcode 99 at offset 28");
    sx_buf_set_u32be(&b, 28, 1);
    sx_buf_set_u32be(&b, 8, 2);
    expect_bad_blob(b.data, b.len, SYSEXT_EUNSUPPORTED, "kind 2 at offset 8");
    sx_buf_set_u32be(&b, 8, 1);
    sx_buf_set_u32be(&b, 0, SX_CSMAGIC_REQUIREMENTS);
    expect_bad_blob(b.data, b.len, SYSEXT_EFORMAT, "magic 0xfade0c01 at offset 0");
    sx_buf_free(&b);

    /* 300 nested `not`s: refused before the stack grows */
    sx_buf d = SX_BUF_INIT;
    sx_buf_put_u32be(&d, SX_CSMAGIC_REQUIREMENT);
    sx_buf_put_u32be(&d, 0);
    sx_buf_put_u32be(&d, 1);
    for (int i = 0; i < 300; i++)
        sx_buf_put_u32be(&d, 9);
    sx_buf_put_u32be(&d, 1);
    sx_buf_set_u32be(&d, 4, (uint32_t)d.len);
    expect_bad_blob(d.data, d.len, SYSEXT_EFORMAT, "nested deeper than 256");
    /* trailing garbage after a complete expression */
    d.len = 0;
    sx_buf_put_u32be(&d, SX_CSMAGIC_REQUIREMENT);
    sx_buf_put_u32be(&d, 20);
    sx_buf_put_u32be(&d, 1);
    sx_buf_put_u32be(&d, 1);
    sx_buf_put_u32be(&d, 1);
    expect_bad_blob(d.data, d.len, SYSEXT_EFORMAT,
                    "4 trailing bytes after the expression at "
                    "offset 16");
    sx_buf_free(&d);

    /* a set whose entry is not a requirement */
    static const uint8_t set[] = {0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 28, 0, 0,
                                  0,    1,    0,    0,    0, 3, 0, 0,  0, 20,
                                  0xfa, 0xde, 0x0c, 0x02, 0, 0, 0, 8};
    const uint8_t *r;
    size_t rn;
    cr_assert_eq(sx_reqset_find(set, sizeof(set), 3, &r, &rn), SYSEXT_EFORMAT);
    cr_assert_str_eq(sx_errmsg(), "requirement set: entry of type 3 has magic 0xfade0c02, "
                                  "expected 0xfade0c00");
}
