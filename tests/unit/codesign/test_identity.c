/* Development CA and code-signing identities: files and modes, chain validity (checked with the
 * openssl CLI), leaf contents, PKCS#12 / PEM loading, passwords, the CLI. */
#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/common.h"
#include "codesign/cms.h"
#include "codesign/identity.h"
#include "util/fs.h"

#define SYSEXTCTL SYSEXT_BINARY_DIR "/sysextctl/sysextctl"

static char dir[] = "/tmp/sx-test-identity-XXXXXX";
static char *ca_dir;

static char *join(const char *name)
{
    char *p = sx_path_join(dir, name);
    cr_assert_not_null(p);
    return p;
}

static char *ca_file(const char *name)
{
    char *p = sx_path_join(ca_dir, name);
    cr_assert_not_null(p);
    return p;
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    ca_dir = join("ca");
}

static void teardown(void)
{
    sx_rm_rf(dir);
    free(ca_dir);
}

TestSuite(codesign_identity, .init = setup, .fini = teardown);

static int run(const char *fmt, ...) SX_PRINTF(1, 2);
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(cmd));
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "%s", cmd);
    return WEXITSTATUS(st);
}

static mode_t mode_of(const char *p)
{
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    return st.st_mode & 07777;
}

static void make_ca(void)
{
    cr_assert_eq(sx_ca_init(ca_dir), 0, "%s", sx_errmsg());
}

/* Tests that only issue identities share one CA made in the runner process before the
 * workers start (RSA key generation dominates the run time); it is only read. */
static char fixture[] = "/tmp/sx-test-identity-ca-XXXXXX";

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (mkdtemp(fixture) && rmdir(fixture) == 0 && sx_ca_init(fixture) == 0)
        setenv("SX_TEST_IDENTITY_CA", fixture, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    if (getenv("SX_TEST_IDENTITY_CA"))
        sx_rm_rf(fixture);
}

static void use_shared_ca(void)
{
    const char *shared = getenv("SX_TEST_IDENTITY_CA");
    if (!shared) {
        make_ca();
        return;
    }
    free(ca_dir);
    ca_dir = strdup(shared);
}

Test(codesign_identity, ca_init_writes_a_valid_chain_with_private_keys)
{
    make_ca();
    char *rk = ca_file(SX_CA_ROOT_KEY), *rc = ca_file(SX_CA_ROOT_CERT);
    char *ik = ca_file(SX_CA_INT_KEY), *ic = ca_file(SX_CA_INT_CERT);
    cr_assert_eq(mode_of(rk), 0600);
    cr_assert_eq(mode_of(ik), 0600);
    cr_assert_eq(mode_of(rc), 0644);
    cr_assert_eq(mode_of(ic), 0644);
    cr_assert_eq(run("openssl verify -x509_strict -CAfile '%s' '%s' >/dev/null 2>&1", rc, ic), 0);
    cr_assert_eq(run("openssl verify -x509_strict -CAfile '%s' '%s' >/dev/null 2>&1", rc, rc), 0);
    /* The intermediate: CA, pathlen 0, both Apple intermediate markers. */
    FILE *f = fopen(ic, "r");
    X509 *inter = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(inter);
    cr_assert(X509_check_ca(inter));
    cr_assert_eq(X509_get_pathlen(inter), 0);
    cr_assert(sx_cert_has_ext(inter, SX_OID_APPLE_WWDR_CA));
    cr_assert(sx_cert_has_ext(inter, SX_OID_APPLE_DEVID_CA));
    cr_assert_eq(X509_get_key_usage(inter), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    X509_free(inter);
    free(rk);
    free(rc);
    free(ik);
    free(ic);
}

Test(codesign_identity, ca_init_refuses_to_overwrite)
{
    make_ca();
    char *rk = ca_file(SX_CA_ROOT_KEY);
    uint8_t *before, *after;
    size_t lb, la;
    cr_assert_eq(sx_read_file(rk, 1 << 20, &before, &lb), 0);
    cr_assert_eq(sx_ca_init(ca_dir), SYSEXT_EEXISTS);
    cr_assert_not_null(strstr(sx_errmsg(), "refusing to overwrite"));
    cr_assert_eq(sx_read_file(rk, 1 << 20, &after, &la), 0);
    cr_assert_eq(lb, la);
    cr_assert_eq(memcmp(before, after, lb), 0);
    /* Even when only one of the four files is there. */
    char *other = join("other");
    cr_assert_eq(sx_mkdir_p(other, 0755), 0);
    char *ic = sx_path_join(other, SX_CA_INT_CERT);
    cr_assert_eq(sx_write_file_atomic(ic, "x", 1, 0644), 0);
    cr_assert_eq(sx_ca_init(other), SYSEXT_EEXISTS);
    char *rk2 = sx_path_join(other, SX_CA_ROOT_KEY);
    cr_assert(!sx_path_exists(rk2));
    free(before);
    free(after);
    free(rk);
    free(other);
    free(ic);
    free(rk2);
}

static int ext_critical(X509 *c, int nid)
{
    int i = X509_get_ext_by_NID(c, nid, -1);
    cr_assert_geq(i, 0);
    return X509_EXTENSION_get_critical(X509_get_ext(c, i));
}

static void check_leaf(sx_identity *id, const char *team, const char *cn)
{
    cr_assert_str_eq(id->team_id, team);
    cr_assert_str_eq(id->common_name, cn);
    char *subj = sx_cert_subject_line(id->leaf);
    char want[256];
    snprintf(want, sizeof(want), "UID=%s, CN=%s, OU=%s, O=%s, C=US", team, cn, team, cn);
    cr_assert_str_eq(subj, want);
    free(subj);
    cr_assert(X509_get_extension_flags(id->leaf) & EXFLAG_XKUSAGE);
    cr_assert_eq(X509_get_extended_key_usage(id->leaf), XKU_CODE_SIGN);
    cr_assert(ext_critical(id->leaf, NID_ext_key_usage));
    cr_assert_eq(X509_get_key_usage(id->leaf), KU_DIGITAL_SIGNATURE);
    cr_assert(ext_critical(id->leaf, NID_key_usage));
    cr_assert_eq(X509_check_ca(id->leaf), 0);
    /* chain: intermediate, then root. */
    cr_assert_eq(sk_X509_num(id->chain), 2);
    cr_assert_eq(X509_check_issued(sk_X509_value(id->chain, 0), id->leaf), X509_V_OK);
    cr_assert_eq(X509_check_issued(sk_X509_value(id->chain, 1), sk_X509_value(id->chain, 0)),
                 X509_V_OK);
    /* The serial is random and 16 bytes. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(id->leaf);
    cr_assert_eq(ASN1_STRING_length(serial), 16);
}

/* The marker extension exists and is not critical. */
static void check_marker(X509 *c, const char *oid)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int i = X509_get_ext_by_OBJ(c, obj, -1);
    ASN1_OBJECT_free(obj);
    cr_assert_geq(i, 0, "%s missing", oid);
    cr_assert_eq(X509_EXTENSION_get_critical(X509_get_ext(c, i)), 0, "%s critical", oid);
}

Test(codesign_identity, developer_id_with_password)
{
    use_shared_ca();
    char *p12 = join("devid.p12");
    cr_assert_eq(sx_identity_create(ca_dir, "ABCDE12345", "Jane Doe", SX_ID_DEVELOPER_ID,
                                    "s3cret", p12),
                 0, "%s", sx_errmsg());
    cr_assert_eq(mode_of(p12), 0600);
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "s3cret", &id), 0, "%s", sx_errmsg());
    check_leaf(id, "ABCDE12345", "Jane Doe");
    cr_assert_eq(id->kind, SX_SIGNER_DEVELOPER_ID);
    check_marker(id->leaf, SX_OID_APPLE_DEVID_APP);
    check_marker(id->leaf, SX_OID_APPLE_DEVID_DATE);
    cr_assert(!sx_cert_has_ext(id->leaf, SX_OID_APPLE_MAC_DEV));
    sx_identity_free(id);

    id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "wrong", &id), SYSEXT_EPERM);
    cr_assert_not_null(strstr(sx_errmsg(), "wrong password"), "%s", sx_errmsg());
    cr_assert_null(id);
    cr_assert_eq(sx_identity_load(p12, NULL, "", &id), SYSEXT_EPERM);
    /* The PKCS#12 opens with the openssl CLI too, with AES-256-CBC PBE. */
    cr_assert_eq(run("openssl pkcs12 -in '%s' -passin pass:s3cret -info -noout 2>&1 | "
                     "grep -q 'PBES2, PBKDF2, AES-256-CBC'", p12),
                 0);
    /* Never overwritten. */
    cr_assert_eq(sx_identity_create(ca_dir, "ABCDE12345", "Jane Doe", SX_ID_DEVELOPER_ID, "", p12),
                 SYSEXT_EEXISTS);
    free(p12);
}

Test(codesign_identity, development_without_password)
{
    use_shared_ca();
    char *p12 = join("dev.p12");
    cr_assert_eq(sx_identity_create(ca_dir, "Z9Y8X7W6V5", "Apple Development: Jo (Z9Y8X7W6V5)",
                                    SX_ID_DEVELOPMENT, "", p12),
                 0, "%s", sx_errmsg());
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "", &id), 0, "%s", sx_errmsg());
    check_leaf(id, "Z9Y8X7W6V5", "Apple Development: Jo (Z9Y8X7W6V5)");
    cr_assert_eq(id->kind, SX_SIGNER_DEVELOPMENT);
    check_marker(id->leaf, SX_OID_APPLE_DEV_IPHONE);
    check_marker(id->leaf, SX_OID_APPLE_MAC_DEV);
    cr_assert(!sx_cert_has_ext(id->leaf, SX_OID_APPLE_DEVID_APP));
    sx_identity_free(id);
    id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, NULL, &id), 0, "%s", sx_errmsg());
    sx_identity_free(id);
    id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "nope", &id), SYSEXT_EPERM);
    /* The leaf chains to the root with openssl's default (non-critical markers). */
    char *leaf = join("leaf.pem"), *root = ca_file(SX_CA_ROOT_CERT), *ic = ca_file(SX_CA_INT_CERT);
    cr_assert_eq(run("openssl pkcs12 -in '%s' -passin pass: -nokeys -clcerts -out '%s' 2>/dev/null",
                     p12, leaf),
                 0);
    cr_assert_eq(run("openssl verify -x509_strict -CAfile '%s' -untrusted '%s' -purpose any '%s' "
                     ">/dev/null 2>&1",
                     root, ic, leaf),
                 0);
    free(leaf);
    free(root);
    free(ic);
    free(p12);
}

Test(codesign_identity, bad_team_ids_are_refused)
{
    use_shared_ca();
    static const char *const bad[] = {"abcde12345", "ABCDE1234", "ABCDE123456", "ABCDE-1234",
                                      "", "ABCDÉ12345"};
    char *p12 = join("bad.p12");
    for (size_t i = 0; i < SX_ARRAY_SIZE(bad); i++) {
        cr_assert_eq(sx_identity_create(ca_dir, bad[i], "X", SX_ID_DEVELOPMENT, "", p12),
                     SYSEXT_EINVAL, "%s", bad[i]);
        cr_assert_not_null(strstr(sx_errmsg(), "team ID"));
        cr_assert(!sx_path_exists(p12));
    }
    cr_assert_eq(sx_identity_create(ca_dir, NULL, "X", SX_ID_DEVELOPMENT, "", p12), SYSEXT_EINVAL);
    cr_assert(sx_team_id_valid("0123456789"));
    cr_assert(sx_team_id_valid("ABCDEFGHIJ"));
    free(p12);
}

Test(codesign_identity, missing_ca_is_an_error)
{
    char *p12 = join("x.p12");
    int r = sx_identity_create(ca_dir, "ABCDE12345", "X", SX_ID_DEVELOPMENT, "", p12);
    cr_assert_eq(r, SYSEXT_ENOTFOUND, "%d %s", r, sx_errmsg());
    cr_assert_not_null(strstr(sx_errmsg(), SX_CA_INT_KEY));
    cr_assert(!sx_path_exists(p12));
    free(p12);
}

static void write_pem(const char *path, EVP_PKEY *key, X509 *leaf, STACK_OF(X509) *chain)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    if (key)
        cr_assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
    if (leaf)
        cr_assert(PEM_write_X509(f, leaf));
    for (int i = 0; chain && i < sk_X509_num(chain); i++)
        cr_assert(PEM_write_X509(f, sk_X509_value(chain, i)));
    fclose(f);
}

Test(codesign_identity, pem_key_and_chain)
{
    use_shared_ca();
    char *p12 = join("devid.p12");
    cr_assert_eq(sx_identity_create(ca_dir, "ABCDE12345", "Jane Doe", SX_ID_DEVELOPER_ID, "", p12),
                 0);
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "", &id), 0);
    char *keyp = join("key.pem"), *chainp = join("chain.pem"), *both = join("both.pem");
    /* Separate key and chain files, root first to prove the order is rebuilt. */
    write_pem(keyp, id->key, NULL, NULL);
    STACK_OF(X509) *rev = sk_X509_new_null();
    sk_X509_push(rev, sk_X509_value(id->chain, 1));
    sk_X509_push(rev, sk_X509_value(id->chain, 0));
    write_pem(chainp, NULL, id->leaf, rev);
    sk_X509_free(rev);
    write_pem(both, id->key, id->leaf, id->chain);

    sx_identity *a = NULL, *b = NULL;
    cr_assert_eq(sx_identity_load(keyp, chainp, NULL, &a), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_identity_load(both, NULL, NULL, &b), 0, "%s", sx_errmsg());
    for (int k = 0; k < 2; k++) {
        sx_identity *x = k ? b : a;
        cr_assert_eq(X509_cmp(x->leaf, id->leaf), 0);
        cr_assert_eq(EVP_PKEY_eq(x->key, id->key), 1);
        cr_assert_eq(sk_X509_num(x->chain), 2);
        cr_assert_eq(X509_cmp(sk_X509_value(x->chain, 0), sk_X509_value(id->chain, 0)), 0);
        cr_assert_eq(X509_cmp(sk_X509_value(x->chain, 1), sk_X509_value(id->chain, 1)), 0);
        cr_assert_str_eq(x->team_id, "ABCDE12345");
        cr_assert_eq(x->kind, SX_SIGNER_DEVELOPER_ID);
    }
    sx_identity_free(a);
    sx_identity_free(b);

    /* A key with no matching certificate. */
    char *other = join("other.p12");
    cr_assert_eq(sx_identity_create(ca_dir, "ABCDE12345", "Other", SX_ID_DEVELOPER_ID, "", other), 0);
    sx_identity *o = NULL;
    cr_assert_eq(sx_identity_load(other, NULL, "", &o), 0);
    char *okey = join("okey.pem");
    write_pem(okey, o->key, NULL, NULL);
    a = NULL;
    cr_assert_eq(sx_identity_load(okey, chainp, NULL, &a), SYSEXT_ENOTFOUND);
    cr_assert_not_null(strstr(sx_errmsg(), "no certificate matches the private key"));
    /* Not PEM and not PKCS#12. */
    char *junk = join("junk.bin");
    cr_assert_eq(sx_write_file_atomic(junk, "\x30\x03\x02\x01\x05", 5, 0600), 0);
    cr_assert_eq(sx_identity_load(junk, NULL, NULL, &a), SYSEXT_EFORMAT);
    sx_identity_free(o);
    sx_identity_free(id);
    free(okey);
    free(other);
    free(junk);
    free(keyp);
    free(chainp);
    free(both);
    free(p12);
}

Test(codesign_identity, password_file_first_line)
{
    char *pf = join("pw");
    cr_assert_eq(sx_write_file_atomic(pf, "hunter2\r\nsecond line\n", 21, 0600), 0);
    char *pw = NULL;
    cr_assert_eq(sx_read_password_file(pf, &pw), 0);
    cr_assert_str_eq(pw, "hunter2");
    free(pw);
    cr_assert_eq(sx_write_file_atomic(pf, "", 0, 0600), 0);
    cr_assert_eq(sx_read_password_file(pf, &pw), 0);
    cr_assert_str_eq(pw, "");
    free(pw);
    free(pf);
}

Test(codesign_identity, cli_ca_and_identity)
{
    char *pf = join("pw"), *p12 = join("cli.p12");
    cr_assert_eq(sx_write_file_atomic(pf, "pa ss\n", 6, 0600), 0);
    cr_assert_eq(run("'%s' ca init '%s' >/dev/null", SYSEXTCTL, ca_dir), 0);
    cr_assert_eq(run("'%s' ca init '%s' >/dev/null 2>&1", SYSEXTCTL, ca_dir), 2);
    cr_assert_eq(run("'%s' identity create --ca '%s' --team ABCDE12345 --name 'Jane Doe' "
                     "--kind developer-id --output '%s' --password-file '%s' >/dev/null",
                     SYSEXTCTL, ca_dir, p12, pf),
                 0);
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "pa ss", &id), 0, "%s", sx_errmsg());
    cr_assert_eq(id->kind, SX_SIGNER_DEVELOPER_ID);
    cr_assert_str_eq(id->common_name, "Jane Doe");
    sx_identity_free(id);
    /* Usage errors exit 2. */
    cr_assert_eq(run("'%s' identity create --ca '%s' --team ABCDE12345 --name N --kind bogus "
                     "--output x.p12 >/dev/null 2>&1",
                     SYSEXTCTL, ca_dir),
                 2);
    cr_assert_eq(run("'%s' identity create --ca '%s' --team abc --name N --kind development "
                     "--output '%s.2' >/dev/null 2>&1",
                     SYSEXTCTL, ca_dir, p12),
                 2);
    cr_assert_eq(run("'%s' identity create --ca '%s' >/dev/null 2>&1", SYSEXTCTL, ca_dir), 2);
    cr_assert_eq(run("'%s' identity frobnicate >/dev/null 2>&1", SYSEXTCTL), 2);
    cr_assert_eq(run("'%s' ca --help >/dev/null", SYSEXTCTL), 0);
    cr_assert_eq(run("'%s' identity --help >/dev/null", SYSEXTCTL), 0);
    free(pf);
    free(p12);
}

Test(codesign_identity, signer_kind_needs_the_matching_intermediate)
{
    use_shared_ca();
    char *p12 = join("devid.p12");
    cr_assert_eq(sx_identity_create(ca_dir, "ABCDE12345", "Jane", SX_ID_DEVELOPER_ID, "", p12), 0);
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "", &id), 0);
    /* A chain whose issuer is missing (only the root): the marker is not backed. */
    STACK_OF(X509) *only_root = sk_X509_new_null();
    sk_X509_push(only_root, sk_X509_value(id->chain, 1));
    cr_assert_eq(sx_signer_kind_of(id->leaf, only_root), SX_SIGNER_OTHER);
    cr_assert_eq(sx_signer_kind_of(id->leaf, NULL), SX_SIGNER_DEVELOPER_ID);
    cr_assert_eq(sx_signer_kind_of(NULL, NULL), SX_SIGNER_ADHOC);
    sk_X509_free(only_root);
    sx_identity_free(id);
    free(p12);
}

/* A PKCS#12 as older Keychain exports write it (RC2-40 / 3DES PBE, SHA-1 MAC): OpenSSL 3 needs
 * its legacy provider, which sx_identity_load loads on demand. */
Test(codesign_identity, legacy_pkcs12)
{
    use_shared_ca();
    char *p12 = join("new.p12"), *pem = join("all.pem"), *legacy = join("legacy.p12");
    cr_assert_eq(sx_identity_create(ca_dir, "ABCDE12345", "Old Mac", SX_ID_DEVELOPMENT, "", p12), 0);
    cr_assert_eq(run("openssl pkcs12 -in '%s' -passin pass: -nodes -out '%s' 2>/dev/null", p12, pem), 0);
    cr_assert_eq(run("openssl pkcs12 -export -legacy -in '%s' -passout pass:old -out '%s' 2>/dev/null",
                     pem, legacy),
                 0);
    cr_assert_eq(run("openssl pkcs12 -in '%s' -passin pass:old -info -noout 2>&1 | grep -q RC2", legacy),
                 0);
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(legacy, NULL, "old", &id), 0, "%s", sx_errmsg());
    cr_assert_str_eq(id->team_id, "ABCDE12345");
    cr_assert_eq(id->kind, SX_SIGNER_DEVELOPMENT);
    cr_assert_eq(sk_X509_num(id->chain), 2);
    sx_identity_free(id);
    id = NULL;
    cr_assert_eq(sx_identity_load(legacy, NULL, "new", &id), SYSEXT_EPERM);
    free(p12);
    free(pem);
    free(legacy);
}
