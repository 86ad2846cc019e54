/* Stapling, offline staple validation and assessment (sysext/notary.h) on bundles signed by
 * the fixture's dev CA: Developer ID code needs a ticket covering its cdhash; tampering after
 * stapling, a foreign notary, untrusted roots and ad-hoc signatures are rejected. */
#include <criterion/criterion.h>

#include "util/common.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <sys/wait.h>

#include "codesign/identity.h"
#include "codesign/ticket.h"
#include "tests/support/signfixture.h"
#include "sysext/notary.h"
#include "util/fs.h"
#include "util/hex.h"

static EVP_PKEY *nkey;
static X509 *ncert;

static X509 *self_signed(EVP_PKEY *k)
{
    X509 *x = X509_new();
    cr_assert_not_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Test Notary", -1, -1, 0);
    X509_set_issuer_name(x, n);
    cr_assert_gt(X509_sign(x, k, EVP_sha256()), 0);
    return x;
}

static void write_cert(const char *rel, X509 *x)
{
    FILE *f = fopen(sx_fx_path(rel), "w");
    cr_assert_not_null(f);
    cr_assert_eq(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void setup(void)
{
    sx_fx_setup();
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12"); /* team A: Developer ID Application */
    nkey = EVP_EC_gen("P-256");
    cr_assert_not_null(nkey);
    ncert = self_signed(nkey);
    write_cert("notary.pem", ncert);
}

static void teardown(void)
{
    X509_free(ncert);
    EVP_PKEY_free(nkey);
    sx_fx_teardown();
}

TestSuite(assess, .init = setup, .fini = teardown);

/* Issue a ticket for the code at `rel` with `key`/`cert` and staple it. */
static void notarize_with(const char *rel, EVP_PKEY *key, X509 *cert)
{
    sx_ticket_entry e;
    cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path(rel), &e), 0, "%s", sx_errmsg());
    static const char *const ids[] = {"com.example.host"};
    sx_ticket_content c = {.team_id = "TEAMAAAAAA", .bundle_ids = ids, .n_bundle_ids = 1,
                           .entries = &e, .n_entries = 1};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ticket_build(&c, key, cert, &b), 0, "%s", sx_errmsg());
    cr_assert_eq(sysext_staple_ticket(sx_fx_path(rel), b.data, b.len), 0, "%s", sx_errmsg());
    sx_buf_free(&b);
}

static int assess(const char *rel, const char *notary, char **text)
{
    const char *trust[] = {sx_fx_path("ca/root.cert.pem")};
    sysext_assess_options o = SYSEXT_ASSESS_OPTIONS_INIT;
    o.trust = trust;
    o.n_trust = 1;
    char nc[1024];
    if (notary) {
        snprintf(nc, sizeof nc, "%s", sx_fx_path(notary));
        o.notary_cert = nc;
    }
    *text = NULL;
    return sysext_assess(sx_fx_path(rel), &o, text);
}

static void expect(const char *rel, int code, const char *needle)
{
    char *text;
    int rc = assess(rel, "notary.pem", &text);
    cr_assert_eq(rc, code, "rc %d: %s", rc, text ? text : sx_errmsg());
    cr_assert_not_null(text);
    cr_assert(strstr(text, needle), "'%s' lacks '%s'", text, needle);
    free(text);
}

static int run_cli(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", SYSEXT_BINARY_DIR "/sysextctl/sysextctl",
             args);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(assess, developer_id_needs_a_stapled_ticket)
{
    expect("Host.app", SYSEXT_EREJECTED, "Developer ID code is not notarized: no stapled ticket");
    char *text;
    cr_assert_eq(sysext_staple_validate(sx_fx_path("Host.app"), sx_fx_path("notary.pem"), 0, &text),
                 SYSEXT_EINVALID);
    cr_assert(strstr(text, "no stapled ticket"), "%s", text);
    free(text);

    notarize_with("Host.app", nkey, ncert);
    cr_assert(sx_path_exists(sx_fx_path("Host.app/Contents/CodeResources")));
    /* Stapling must not break the seal. */
    sx_report r;
    sx_report_init(&r);
    cr_assert_eq(sx_fx_verify("Host.app", &r), 0);
    sx_report_free(&r);
    cr_assert_eq(sysext_staple_validate(sx_fx_path("Host.app"), sx_fx_path("notary.pem"),
                                        SYSEXT_OUTPUT_JSON, &text), 0, "%s", sx_errmsg());
    cr_assert(strstr(text, "\"valid\": true"), "%s", text);
    cr_assert(strstr(text, "\"team_id\": \"TEAMAAAAAA\""), "%s", text);
    free(text);
    expect("Host.app", 0, "source=Notarized Developer ID");

    char args[2048];
    snprintf(args, sizeof args, "assess --trust %s --notary-cert %s %s",
             sx_fx_path("ca/root.cert.pem"), sx_fx_path("notary.pem"), sx_fx_path("Host.app"));
    cr_assert_eq(run_cli(args), 0);
    snprintf(args, sizeof args, "staple --validate --notary-cert %s %s", sx_fx_path("notary.pem"),
             sx_fx_path("Host.app"));
    cr_assert_eq(run_cli(args), 0);
    snprintf(args, sizeof args, "staple --validate --notary-cert %s %s", sx_fx_path("notary.pem"),
             sx_fx_path("src/com.example.sensor.dext"));
    cr_assert_eq(run_cli(args), 1);
    snprintf(args, sizeof args, "staple --validate %s", sx_fx_path("Host.app"));
    cr_assert_eq(run_cli(args), 2);
    /* No notary certificate: Developer ID code cannot be accepted. */
    cr_assert_eq(assess("Host.app", NULL, &text), SYSEXT_EREJECTED);
    cr_assert(strstr(text, "no notary certificate was given"), "%s", text);
    free(text);
}

Test(assess, flat_dext_staple)
{
    notarize_with("src/com.example.sensor.dext", nkey, ncert);
    cr_assert(sx_path_exists(sx_fx_path("src/com.example.sensor.dext/CodeResources")));
    sx_report r;
    sx_report_init(&r);
    cr_assert_eq(sx_fx_verify("src/com.example.sensor.dext", &r), 0);
    sx_report_free(&r);
    expect("src/com.example.sensor.dext", 0, "accepted");
}

Test(assess, tampered_after_stapling)
{
    notarize_with("Host.app", nkey, ncert);
    sx_fx_write("Host.app/Contents/Resources/icon.txt", "evil\n", 0644);
    expect("Host.app", SYSEXT_EREJECTED, "signature not valid");
    /* Re-signed after the change: the signature is valid again but the cdhash is new. */
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), 0, "%s", sx_errmsg());
    expect("Host.app", SYSEXT_EREJECTED, "stapled ticket does not cover this code");
    char *text;
    cr_assert_eq(sysext_staple_validate(sx_fx_path("Host.app"), sx_fx_path("notary.pem"), 0, &text),
                 SYSEXT_EINVALID);
    cr_assert(strstr(text, "does not cover"), "%s", text);
    free(text);
}

Test(assess, tampered_ticket_and_foreign_notary)
{
    EVP_PKEY *k2 = EVP_EC_gen("P-256");
    X509 *c2 = self_signed(k2);
    notarize_with("Host.app", k2, c2);
    expect("Host.app", SYSEXT_EREJECTED, "issued by another notary key");
    X509_free(c2);
    EVP_PKEY_free(k2);

    notarize_with("Host.app", nkey, ncert);
    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_ticket_staple_read(sx_fx_path("Host.app"), &d, &n), 0);
    d[n - 30] ^= 0x40; /* inside the signature */
    cr_assert_eq(sx_write_file_atomic(sx_fx_path("Host.app/Contents/CodeResources"), d, n, 0644), 0);
    free(d);
    expect("Host.app", SYSEXT_EREJECTED, "does not verify");
    sx_fx_write("Host.app/Contents/CodeResources", "garbage", 0644);
    expect("Host.app", SYSEXT_EREJECTED, "bad magic");
}

Test(assess, development_adhoc_untrusted)
{
    /* Apple Development (team B): trusted, not Developer ID, no ticket needed. */
    cr_assert_eq(sx_fx_sign("src/com.example.filter.systemextension", "b.p12", "ents/sysext.plist"),
                 0, "%s", sx_errmsg());
    expect("src/com.example.filter.systemextension", 0, "not Developer ID");
    cr_assert_eq(sx_fx_sign("src/com.example.filter.systemextension", NULL, "ents/sysext.plist"), 0,
                 "%s", sx_errmsg());
    expect("src/com.example.filter.systemextension", SYSEXT_EREJECTED, "ad hoc");

    /* A root that is not the signer's. */
    cr_assert_eq(sx_ca_init(sx_fx_path("ca2")), 0, "%s", sx_errmsg());
    const char *trust[] = {sx_fx_path("ca2/root.cert.pem")};
    sysext_assess_options o = SYSEXT_ASSESS_OPTIONS_INIT;
    o.trust = trust;
    o.n_trust = 1;
    char *text = NULL;
    int rc = sysext_assess(sx_fx_path("Host.app"), &o, &text);
    cr_assert_eq(rc, SYSEXT_EREJECTED, "%d %s", rc, text ? text : sx_errmsg());
    cr_assert(strstr(text, "rejected"), "%s", text);
    free(text);
    /* An unreachable notary is an error, not a verdict. */
    char root[1024], nc[1024];
    snprintf(root, sizeof root, "%s", sx_fx_path("ca/root.cert.pem"));
    snprintf(nc, sizeof nc, "%s", sx_fx_path("notary.pem"));
    trust[0] = root;
    o.notary_cert = nc;
    o.online_url = "http://127.0.0.1:1";
    text = NULL;
    cr_assert_eq(sysext_assess(sx_fx_path("Host.app"), &o, &text), SYSEXT_ENETWORK, "%s", sx_errmsg());
    cr_assert_null(text);
}
