/* CMS signature: sign/verify round trips with a development identity, tampering, the exact
 * attribute shapes, OpenSSL interoperability, Apple's own signatures (samples/apple), and
 * malformed input. */
#include <criterion/criterion.h>
#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/common.h"
#include "codesign/cms.h"
#include "codesign/hash.h"
#include "codesign/identity.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/hex.h"

#define SAMPLES SYSEXT_SHARED_DIR "/samples/apple"
#define SSTEST SAMPLES "/sstest.app/Contents/_CodeSignature"

static char dir[] = "/tmp/sx-test-cms-XXXXXX";
static char *ca_dir, *p12;

static char *join(const char *name)
{
    char *p = sx_path_join(dir, name);
    cr_assert_not_null(p);
    return p;
}

/* RSA key generation dominates the run time, so the CA and the identity are made once per
 * run, in the runner process before the test workers start, and shared read-only through
 * the environment. */
static char fixture[] = "/tmp/sx-test-cms-fixture-XXXXXX";

static int make_fixture(const char *base)
{
    char *ca = sx_path_join(base, "ca"), *id = sx_path_join(base, "id.p12");
    int r = sx_ca_init(ca);
    if (r == 0)
        r = sx_identity_create(ca, "ABCDE12345", "Test Signer", SX_ID_DEVELOPER_ID, "", id);
    free(ca);
    free(id);
    return r;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (mkdtemp(fixture) && make_fixture(fixture) == 0)
        setenv("SX_TEST_CMS_FIXTURE", fixture, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    if (getenv("SX_TEST_CMS_FIXTURE"))
        sx_rm_rf(fixture);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    const char *base = getenv("SX_TEST_CMS_FIXTURE");
    if (!base) {
        cr_assert_eq(make_fixture(dir), 0, "%s", sx_errmsg());
        base = dir;
    }
    ca_dir = sx_path_join(base, "ca");
    p12 = sx_path_join(base, "id.p12");
}

static void teardown(void)
{
    sx_rm_rf(dir);
    free(ca_dir);
    free(p12);
}

TestSuite(codesign_cms, .init = setup, .fini = teardown);

static void slurp(const char *path, uint8_t **data, size_t *len)
{
    cr_assert_eq(sx_read_file(path, 64u << 20, data, len), 0, "%s", sx_errmsg());
}

static void spit(const char *path, const void *data, size_t len)
{
    cr_assert_eq(sx_write_file_atomic(path, data, len, 0644), 0, "%s", sx_errmsg());
}

/* The sstest sample's two CodeDirectories (SHA-1 slot 0, SHA-256 alternate). */
struct cds {
    uint8_t *cd0, *cd1;
    size_t len0, len1;
    uint8_t h0[20], h1[32];
    sx_cms_cd v[2];
};

static void load_sstest_cds(struct cds *c)
{
    slurp(SSTEST "/CodeDirectory", &c->cd0, &c->len0);
    slurp(SSTEST "/CodeRequirements-1", &c->cd1, &c->len1);
    cr_assert_eq(sx_hash(SX_HASH_SHA1, c->cd0, c->len0, c->h0), 0);
    cr_assert_eq(sx_hash(SX_HASH_SHA256, c->cd1, c->len1, c->h1), 0);
    c->v[0] = (sx_cms_cd){SX_HASH_SHA1, c->h0, 20};
    c->v[1] = (sx_cms_cd){SX_HASH_SHA256, c->h1, 32};
}

static void free_cds(struct cds *c)
{
    free(c->cd0);
    free(c->cd1);
}

static sx_identity *load_id(void)
{
    sx_identity *id = NULL;
    cr_assert_eq(sx_identity_load(p12, NULL, "", &id), 0, "%s", sx_errmsg());
    return id;
}

static sx_trust *trust_of(const char *path)
{
    sx_trust *t = NULL;
    cr_assert_eq(sx_trust_new(&t), 0);
    cr_assert_eq(sx_trust_add_path(t, path), 0, "%s", sx_errmsg());
    return t;
}

static void sign_sstest(struct cds *c, time_t when, sx_buf *sig)
{
    sx_identity *id = load_id();
    load_sstest_cds(c);
    cr_assert_eq(sx_cms_sign(id, c->cd0, c->len0, c->v, 2, when, sig), 0, "%s", sx_errmsg());
    sx_identity_free(id);
}

Test(codesign_cms, round_trip_trusted)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    time_t when = time(NULL) - 60;
    sign_sstest(&c, when, &sig);
    char *root = sx_path_join(ca_dir, SX_CA_ROOT_CERT);
    sx_trust *t = trust_of(root);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, t, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.signing_time, when);
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    cr_assert_eq(info.chain_checked_at, when);
    cr_assert_eq(info.anchor_is_apple, 0);
    cr_assert_eq(info.has_timestamp, 0);
    cr_assert_eq(info.timestamp_valid, 0);
    cr_assert_eq(info.timestamp_time, 0);
    cr_assert_eq(sk_X509_num(info.chain), 3);
    char *team = sx_cert_team_id(info.leaf);
    cr_assert_str_eq(team, "ABCDE12345");
    free(team);
    char *subj = sx_cert_subject_line(info.leaf);
    cr_assert_str_eq(subj, "UID=ABCDE12345, CN=Test Signer, OU=ABCDE12345, O=Test Signer, C=US");
    free(subj);
    cr_assert_eq(sx_signer_kind_of(info.leaf, info.chain), SX_SIGNER_DEVELOPER_ID);
    /* 9.1: truncated cdhashes in order; 9.2: full hashes. */
    cr_assert_eq(info.n_v1, 2);
    cr_assert_eq(memcmp(info.v1_hashes[0], c.h0, 20), 0);
    cr_assert_eq(memcmp(info.v1_hashes[1], c.h1, 20), 0);
    cr_assert_eq(info.n_v2, 2);
    cr_assert_eq(info.v2_hashes[0].hash_type, SX_HASH_SHA1);
    cr_assert_eq(info.v2_hashes[0].len, 20);
    cr_assert_eq(memcmp(info.v2_hashes[0].hash, c.h0, 20), 0);
    cr_assert_eq(info.v2_hashes[1].hash_type, SX_HASH_SHA256);
    cr_assert_eq(info.v2_hashes[1].len, 32);
    cr_assert_eq(memcmp(info.v2_hashes[1].hash, c.h1, 32), 0);
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 2), 0, "%s", sx_errmsg());
    /* A CD the attributes do not bind. */
    uint8_t other[32];
    memcpy(other, c.h1, 32);
    other[31] ^= 1;
    sx_cms_cd v2[2] = {c.v[0], {SX_HASH_SHA256, other, 32}};
    cr_assert_eq(sx_cms_check_cdhashes(&info, v2, 2), SYSEXT_ESIGNATURE);
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 1), SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    sx_trust_free(t);
    free(root);
    sx_buf_free(&sig);
    free_cds(&c);
}

Test(codesign_cms, untrusted_without_or_with_foreign_anchors)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 0, &sig);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, NULL, &info), 0);
    cr_assert_eq(info.chain_trusted, 0);
    cr_assert_str_eq(info.trust_error, "no trust anchors given");
    /* Still leaf first, then the path as found: intermediate, root. */
    cr_assert_eq(sk_X509_num(info.chain), 3);
    cr_assert_eq(info.leaf, sk_X509_value(info.chain, 0));
    cr_assert(info.signing_time >= time(NULL) - 60 && info.signing_time <= time(NULL));
    sx_cms_info_free(&info);

    sx_trust *apple = trust_of(SAMPLES "/certs");
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, apple, &info), 0);
    cr_assert_eq(info.chain_trusted, 0);
    cr_assert_eq(info.anchor_is_apple, 0);
    cr_assert_not_null(strstr(info.trust_error, "certificate"), "%s", info.trust_error);
    sx_cms_info_free(&info);
    sx_trust_free(apple);
    sx_buf_free(&sig);
    free_cds(&c);
}

Test(codesign_cms, tampered_cd_byte_fails)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 0, &sig);
    for (size_t off = 0; off < c.len0; off += 37) {
        c.cd0[off] ^= 0x01;
        sx_cms_info info;
        cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, NULL, &info),
                     SYSEXT_ESIGNATURE, "offset %zu", off);
        sx_cms_info_free(&info);
        c.cd0[off] ^= 0x01;
    }
    /* One byte shorter. */
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0 - 1, NULL, &info),
                 SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    sx_buf_free(&sig);
    free_cds(&c);
}

Test(codesign_cms, tampered_signature_byte_fails)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 0, &sig);
    /* The RSA signature value is the last 256 bytes (no unsigned attributes). */
    sig.data[sig.len - 7] ^= 0x40;
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, NULL, &info), SYSEXT_ESIGNATURE);
    cr_assert_not_null(strstr(sx_errmsg(), "does not verify"), "%s", sx_errmsg());
    sx_cms_info_free(&info);
    sig.data[sig.len - 7] ^= 0x40;
    /* A byte inside the signed attributes (the 9.1 plist text). */
    uint8_t *xml = memmem(sig.data, sig.len, "<key>cdhashes</key>", 19);
    cr_assert_not_null(xml);
    xml[6] = 'X';
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, NULL, &info), SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    sx_buf_free(&sig);
    free_cds(&c);
}

/* The attribute's OCTET STRING contents as OpenSSL decodes them. */
static void attr_octets(CMS_SignerInfo *si, const char *oid, uint8_t **out, size_t *len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    int i = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    cr_assert_geq(i, 0);
    X509_ATTRIBUTE *a = CMS_signed_get_attr(si, i);
    ASN1_TYPE *v = X509_ATTRIBUTE_get0_type(a, 0);
    cr_assert_eq(v->type, V_ASN1_OCTET_STRING);
    *len = (size_t)ASN1_STRING_length(v->value.octet_string);
    *out = malloc(*len);
    memcpy(*out, ASN1_STRING_get0_data(v->value.octet_string), *len);
    ASN1_OBJECT_free(obj);
}

static CMS_ContentInfo *decode(const uint8_t *p, size_t len)
{
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    cr_assert_not_null(cms);
    return cms;
}

Test(codesign_cms, attribute_shapes_match_apple)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 1739171615, &sig); /* the sample's signing time */
    uint8_t *apple_sig;
    size_t apple_len;
    slurp(SSTEST "/CodeSignature", &apple_sig, &apple_len);
    CMS_ContentInfo *ours = decode(sig.data, sig.len), *apple = decode(apple_sig, apple_len);
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(ours), 0);
    CMS_SignerInfo *asi = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(apple), 0);

    /* 9.1: byte-identical to what Apple's codesign wrote for the same two CDs (328 bytes). */
    uint8_t *x1, *x2;
    size_t l1, l2;
    attr_octets(si, SX_OID_CDHASHES_PLIST, &x1, &l1);
    attr_octets(asi, SX_OID_CDHASHES_PLIST, &x2, &l2);
    cr_assert_eq(l1, 328);
    cr_assert_eq(l2, 328);
    cr_assert_eq(memcmp(x1, x2, l1), 0, "ours:\n%.*s", (int)l1, (char *)x1);
    static const char expected[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n<dict>\n\t<key>cdhashes</key>\n\t<array>\n"
        "\t\t<data>\n\t\t7Ob9W9S5Yjj425rZ3L4oZgcCIP8=\n\t\t</data>\n"
        "\t\t<data>\n\t\tne9Q5v07JjsJOAmBPS8RyG6JkBU=\n\t\t</data>\n"
        "\t</array>\n</dict>\n</plist>\n";
    cr_assert_eq(l1, strlen(expected));
    cr_assert_eq(memcmp(x1, expected, l1), 0);
    /* One CD: 278 bytes. */
    sx_buf one = SX_BUF_INIT;
    cr_assert_eq(sx_cms_cdhashes_plist(c.v, 1, &one), 0);
    cr_assert_eq(one.len, 278);
    sx_buf_free(&one);
    free(x1);
    free(x2);

    /* Signed attributes in the same (DER-sorted) order as Apple's, and 9.2 is ONE attribute
     * with one value per CD whose encoding equals Apple's. */
    cr_assert_eq(CMS_signed_get_attr_count(si), 5);
    cr_assert_eq(CMS_signed_get_attr_count(asi), 5);
    for (int i = 0; i < 5; i++) {
        X509_ATTRIBUTE *a = CMS_signed_get_attr(si, i), *b = CMS_signed_get_attr(asi, i);
        cr_assert_eq(OBJ_cmp(X509_ATTRIBUTE_get0_object(a), X509_ATTRIBUTE_get0_object(b)), 0,
                     "attribute %d", i);
        if (OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a)) == NID_pkcs9_messageDigest)
            continue;
        cr_assert_eq(X509_ATTRIBUTE_count(a), X509_ATTRIBUTE_count(b));
        unsigned char *da = NULL, *db = NULL;
        int na = i2d_X509_ATTRIBUTE(a, &da), nb = i2d_X509_ATTRIBUTE(b, &db);
        cr_assert_eq(na, nb, "attribute %d", i);
        cr_assert_eq(memcmp(da, db, (size_t)na), 0, "attribute %d differs from Apple's", i);
        OPENSSL_free(da);
        OPENSSL_free(db);
    }
    /* Signature algorithm rewritten to sha256WithRSAEncryption, digest SHA-256. */
    X509_ALGOR *dig = NULL, *alg = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &alg);
    cr_assert_eq(OBJ_obj2nid(alg->algorithm), NID_sha256WithRSAEncryption);
    cr_assert_eq(OBJ_obj2nid(dig->algorithm), NID_sha256);
    /* No SMIMECapabilities; detached; id-data; the whole chain including the root. */
    cr_assert_lt(CMS_signed_get_attr_by_NID(si, NID_SMIMECapabilities, -1), 0);
    cr_assert_eq(CMS_is_detached(ours), 1);
    cr_assert_eq(OBJ_obj2nid(CMS_get0_eContentType(ours)), NID_pkcs7_data);
    STACK_OF(X509) *certs = CMS_get1_certs(ours);
    cr_assert_eq(sk_X509_num(certs), 3);
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(ours);
    CMS_ContentInfo_free(apple);
    free(apple_sig);
    sx_buf_free(&sig);
    free_cds(&c);
}

Test(codesign_cms, openssl_cli_verifies_our_signature)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 0, &sig);
    char *sigp = join("CodeSignature"), *cdp = join("CodeDirectory");
    char *root = sx_path_join(ca_dir, SX_CA_ROOT_CERT);
    spit(sigp, sig.data, sig.len);
    spit(cdp, c.cd0, c.len0);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "openssl cms -verify -binary -inform DER -in '%s' -content '%s' -CAfile '%s' "
             "-purpose any -out /dev/null 2>/dev/null",
             sigp, cdp, root);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    /* ...and rejects it over another CD. */
    spit(cdp, c.cd1, c.len1);
    cr_assert_neq(system(cmd), 0);
    free(sigp);
    free(cdp);
    free(root);
    sx_buf_free(&sig);
    free_cds(&c);
}

Test(codesign_cms, sign_rejects_bad_cd_lists)
{
    struct cds c;
    sx_identity *id = load_id();
    load_sstest_cds(&c);
    sx_buf sig = SX_BUF_INIT;
    sx_cms_cd rev[2] = {c.v[1], c.v[0]};
    cr_assert_eq(sx_cms_sign(id, c.cd0, c.len0, rev, 2, 0, &sig), SYSEXT_EINVAL);
    sx_cms_cd bad = {SX_HASH_SHA256, c.h1, 20};
    cr_assert_eq(sx_cms_sign(id, c.cd0, c.len0, &bad, 1, 0, &sig), SYSEXT_EINVAL);
    cr_assert_eq(sx_cms_sign(id, c.cd0, c.len0, c.v, 0, 0, &sig), SYSEXT_EINVAL);
    sx_buf_free(&sig);
    sx_identity_free(id);
    free_cds(&c);
}

/* ---- Apple's signatures ------------------------------------------------------------------- */

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = s};
    return timegm(&tm);
}

static void hex_eq(const uint8_t *p, size_t n, const char *hex)
{
    char buf[129];
    sx_hex_encode(p, n, buf);
    cr_assert_str_eq(buf, hex);
}

Test(codesign_cms, apple_sstest_sample)
{
    uint8_t *sig, *cd0, *cd1;
    size_t sig_len, l0, l1;
    slurp(SSTEST "/CodeSignature", &sig, &sig_len);
    slurp(SSTEST "/CodeDirectory", &cd0, &l0);
    slurp(SSTEST "/CodeRequirements-1", &cd1, &l1);
    sx_cms_info info;
    /* Valid over the SHA-1 slot-0 CD; untrusted without anchors. */
    cr_assert_eq(sx_cms_verify(sig, sig_len, cd0, l0, NULL, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.signing_time, utc(2025, 2, 10, 7, 13, 35));
    cr_assert_eq(info.has_timestamp, 0);
    cr_assert_eq(info.n_v1, 2);
    hex_eq(info.v1_hashes[0], 20, "ece6fd5bd4b96238f8db9ad9dcbe2866070220ff");
    hex_eq(info.v1_hashes[1], 20, "9def50e6fd3b263b093809813d2f11c86e899015");
    cr_assert_eq(info.n_v2, 2);
    cr_assert_eq(info.v2_hashes[0].hash_type, SX_HASH_SHA1);
    hex_eq(info.v2_hashes[0].hash, 20, "ece6fd5bd4b96238f8db9ad9dcbe2866070220ff");
    cr_assert_eq(info.v2_hashes[1].hash_type, SX_HASH_SHA256);
    hex_eq(info.v2_hashes[1].hash, 32,
           "9def50e6fd3b263b093809813d2f11c86e8990152e5176f08b740728563897ee");
    cr_assert_eq(sk_X509_num(info.chain), 1);
    char *subj = sx_cert_subject_line(info.leaf);
    cr_assert_str_eq(subj, "CN=MySelfSignedCert, C=IN");
    free(subj);
    cr_assert_eq(sx_signer_kind_of(info.leaf, info.chain), SX_SIGNER_OTHER);
    /* The DR pins SHA-1 of the leaf: b16a4f0b...e8f0. */
    uint8_t sha1[20];
    unsigned n = 0;
    cr_assert(X509_digest(info.leaf, EVP_sha1(), sha1, &n));
    hex_eq(sha1, 20, "b16a4f0b85342e3769478bfb9e48a590790de8f0");
    struct cds c;
    load_sstest_cds(&c);
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 2), 0, "%s", sx_errmsg());
    free_cds(&c);

    /* Self-signed leaf as anchor: trusted at the signing time (it expired 2026-02-10). */
    char *leafp = join("sstest-leaf.pem");
    FILE *f = fopen(leafp, "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, info.leaf);
    fclose(f);
    sx_cms_info_free(&info);
    sx_trust *self = trust_of(leafp);
    cr_assert_eq(sx_cms_verify(sig, sig_len, cd0, l0, self, &info), 0);
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    cr_assert_eq(info.anchor_is_apple, 0);
    sx_cms_info_free(&info);
    sx_trust_free(self);
    free(leafp);

    /* Against Apple's roots: signature valid, signer untrusted. */
    sx_trust *apple = trust_of(SAMPLES "/certs");
    cr_assert_eq(sx_cms_verify(sig, sig_len, cd0, l0, apple, &info), 0);
    cr_assert_eq(info.chain_trusted, 0);
    cr_assert_eq(info.anchor_is_apple, 0);
    cr_assert_not_null(info.trust_error);
    sx_cms_info_free(&info);
    sx_trust_free(apple);

    /* Not over the SHA-256 alternate CD. */
    cr_assert_eq(sx_cms_verify(sig, sig_len, cd1, l1, NULL, &info), SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    free(sig);
    free(cd0);
    free(cd1);
}

Test(codesign_cms, apple_adhoc_sample_has_no_cms)
{
    uint8_t *sig, *cd0;
    size_t sig_len, l0;
    slurp(SAMPLES "/install-apk-adhoc.app/Contents/_CodeSignature/CodeSignature", &sig, &sig_len);
    slurp(SAMPLES "/install-apk-adhoc.app/Contents/_CodeSignature/CodeDirectory", &cd0, &l0);
    cr_assert_eq(sig_len, 0);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig, sig_len, cd0, l0, NULL, &info), SYSEXT_EFORMAT);
    cr_assert_eq(info.chain, NULL);
    free(sig);
    free(cd0);
}

/* Minimal Mach-O walk for the test: first slice, LC_CODE_SIGNATURE, slots 0 and 0x10000. */
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static void macho_sig(const uint8_t *file, size_t len, const uint8_t **cd, size_t *cd_len,
                      const uint8_t **cms, size_t *cms_len)
{
    size_t base = 0;
    cr_assert_geq(len, 32);
    if (be32(file) == 0xcafebabe) {
        cr_assert_geq(be32(file + 4), 1);
        base = be32(file + 8 + 8);
    }
    const uint8_t *m = file + base;
    uint32_t magic = le32(m);
    cr_assert(magic == 0xfeedfacf || magic == 0xfeedface);
    size_t off = magic == 0xfeedfacf ? 32 : 28;
    uint32_t ncmds = le32(m + 16);
    const uint8_t *sb = NULL;
    for (uint32_t i = 0; i < ncmds; i++) {
        cr_assert_lt(base + off + 16, len);
        uint32_t cmd = le32(m + off), size = le32(m + off + 4);
        if (cmd == 0x1d)
            sb = m + le32(m + off + 8);
        off += size;
    }
    cr_assert_not_null(sb);
    cr_assert_eq(be32(sb), 0xfade0cc0);
    uint32_t count = be32(sb + 8);
    *cd = *cms = NULL;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t type = be32(sb + 12 + 8 * i), o = be32(sb + 16 + 8 * i);
        if (type == 0) {
            *cd = sb + o;
            *cd_len = be32(sb + o + 4);
        } else if (type == 0x10000) {
            cr_assert_eq(be32(sb + o), 0xfade0b01);
            *cms = sb + o + 8;
            *cms_len = be32(sb + o + 4) - 8;
        }
    }
    cr_assert_not_null(*cd);
    cr_assert_not_null(*cms);
}

Test(codesign_cms, apple_developer_id_sample_libexpat)
{
    uint8_t *file;
    size_t len, cd_len, cms_len;
    const uint8_t *cd, *cms;
    slurp(SAMPLES "/macho/libexpat.1.dylib", &file, &len);
    macho_sig(file, len, &cd, &cd_len, &cms, &cms_len);
    sx_trust *apple = trust_of(SAMPLES "/certs");
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(cms, cms_len, cd, cd_len, apple, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.signing_time, utc(2019, 6, 18, 2, 21, 52));
    cr_assert_eq(info.has_timestamp, 1);
    /* Developer ID leaf with critical Apple markers 6.1.13 and 6.1.18: trusted at signing
     * time, anchored at Apple Root CA. */
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    cr_assert_eq(info.anchor_is_apple, 1);
    cr_assert_eq(sk_X509_num(info.chain), 3);
    cr_assert_eq(sx_signer_kind_of(info.leaf, info.chain), SX_SIGNER_DEVELOPER_ID);
    char *team = sx_cert_team_id(info.leaf);
    cr_assert_str_eq(team, "EG7KH642X6");
    free(team);
    cr_assert_eq(info.n_v2, 0); /* 2019: no 9.2 attribute */
    cr_assert_eq(info.n_v1, 2);
    /* The RFC 3161 token: over this signature, TSA chain (Apple Timestamp CA) trusted at
     * genTime. */
    cr_assert_eq(info.timestamp_time, utc(2019, 6, 18, 2, 21, 52));
    cr_assert_eq(info.timestamp_valid, 1, "%s", info.timestamp_error ? info.timestamp_error : "");
    cr_assert_null(info.timestamp_error);
    sx_cms_info_free(&info);
    sx_trust_free(apple);

    /* Without anchors: the signature is valid, the timestamp is read but not trusted. */
    cr_assert_eq(sx_cms_verify(cms, cms_len, cd, cd_len, NULL, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.has_timestamp, 1);
    cr_assert_eq(info.timestamp_time, utc(2019, 6, 18, 2, 21, 52));
    cr_assert_eq(info.timestamp_valid, 0);
    cr_assert_not_null(strstr(info.timestamp_error, "no trust anchors"));
    cr_assert_eq(info.chain_trusted, 0);
    sx_cms_info_free(&info);

    /* A changed genTime breaks the TSA's signature, not the code signature (the token is an
     * unsigned attribute); the chain is then checked at the signing time. */
    uint8_t *copy = malloc(cms_len);
    memcpy(copy, cms, cms_len);
    uint8_t *gt = memmem(copy, cms_len, "20190618022152", 14);
    cr_assert_not_null(gt);
    gt[13] = '3';
    apple = trust_of(SAMPLES "/certs");
    cr_assert_eq(sx_cms_verify(copy, cms_len, cd, cd_len, apple, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.timestamp_valid, 0);
    cr_assert_not_null(strstr(info.timestamp_error, "signature does not verify"), "%s",
                       info.timestamp_error);
    cr_assert_eq(info.chain_trusted, 1);
    sx_cms_info_free(&info);
    sx_trust_free(apple);
    free(copy);

    /* Only the root as anchor: the embedded intermediates complete both chains. */
    apple = trust_of(SAMPLES "/certs/AppleIncRootCertificate.cer");
    cr_assert_eq(sx_cms_verify(cms, cms_len, cd, cd_len, apple, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    cr_assert_eq(info.timestamp_valid, 1, "%s", info.timestamp_error ? info.timestamp_error : "");
    sx_cms_info_free(&info);
    sx_trust_free(apple);
    free(file);
}

Test(codesign_cms, apple_development_sample_testmacos)
{
    uint8_t *file;
    size_t len, cd_len, cms_len;
    const uint8_t *cd, *cms;
    slurp(SAMPLES "/macho/TestMacOS-arm64e", &file, &len);
    macho_sig(file, len, &cd, &cd_len, &cms, &cms_len);
    sx_trust *apple = trust_of(SAMPLES "/certs/AppleIncRootCertificate.cer");
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(cms, cms_len, cd, cd_len, apple, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.signing_time, utc(2022, 1, 11, 10, 57, 21));
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    cr_assert_eq(info.anchor_is_apple, 1);
    cr_assert_eq(sx_signer_kind_of(info.leaf, info.chain), SX_SIGNER_DEVELOPMENT);
    cr_assert_eq(info.n_v2, 1);
    hex_eq(info.v2_hashes[0].hash, 32,
           "68baf03acb76982553fdad878cf4666cfbbb8df82193006820b8284b12c72f4d");
    cr_assert_eq(info.n_v1, 1);
    hex_eq(info.v1_hashes[0], 20, "68baf03acb76982553fdad878cf4666cfbbb8df8");
    uint8_t full[32];
    cr_assert_eq(sx_hash(SX_HASH_SHA256, cd, cd_len, full), 0);
    sx_cms_cd one = {SX_HASH_SHA256, full, 32};
    cr_assert_eq(sx_cms_check_cdhashes(&info, &one, 1), 0, "%s", sx_errmsg());
    char *subj = sx_cert_subject_line(info.leaf);
    cr_assert_not_null(strstr(subj, "CN=Apple Development: Francesco Tamagni (EKF6CY57W8)"), "%s",
                       subj);
    free(subj);
    sx_cms_info_free(&info);
    sx_trust_free(apple);
    free(file);
}

/* ---- malformed ---------------------------------------------------------------------------- */

Test(codesign_cms, malformed_cms_is_format_error)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 0, &sig);
    sx_cms_info info;
    static const uint8_t garbage[] = "this is not a CMS blob at all";
    cr_assert_eq(sx_cms_verify(garbage, sizeof(garbage), c.cd0, c.len0, NULL, &info),
                 SYSEXT_EFORMAT);
    /* Every truncation is rejected, never accepted. */
    for (size_t n = 1; n < sig.len; n += (n < 64 ? 1 : 97)) {
        int r = sx_cms_verify(sig.data, n, c.cd0, c.len0, NULL, &info);
        cr_assert_eq(r, SYSEXT_EFORMAT, "truncated to %zu: %d %s", n, r, sx_errmsg());
        sx_cms_info_free(&info);
    }
    /* Trailing garbage. */
    sx_buf more = SX_BUF_INIT;
    sx_buf_append(&more, sig.data, sig.len);
    sx_buf_append(&more, "junk", 4);
    cr_assert_eq(sx_cms_verify(more.data, more.len, c.cd0, c.len0, NULL, &info), SYSEXT_EFORMAT);
    /* Huge. */
    size_t huge = SX_CMS_MAX_SIZE + 1;
    uint8_t *big = calloc(1, huge);
    memcpy(big, sig.data, sig.len);
    cr_assert_eq(sx_cms_verify(big, huge, c.cd0, c.len0, NULL, &info), SYSEXT_EFORMAT);
    cr_assert_not_null(strstr(sx_errmsg(), "limit"));
    free(big);
    sx_buf_free(&more);
    sx_buf_free(&sig);
    free_cds(&c);
}

/* Fuzzer find: a SignedData naming an unknown digest made OpenSSL 3.0's CMS_verify leak its
 * temporary content BIO (caught by LeakSanitizer in the ASan build). */
Test(codesign_cms, unknown_digest_algorithm_fails_cleanly)
{
    uint8_t *sig, *cd0;
    size_t sig_len, l0;
    slurp(SYSEXT_SOURCE_DIR "/fuzz/corpus/fuzz_codesign_cms/leak-cms-verify-membio-bad-digest.der",
          &sig, &sig_len);
    slurp(SSTEST "/CodeDirectory", &cd0, &l0);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig, sig_len, cd0, l0, NULL, &info), SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    free(sig);
    free(cd0);
}

static void *read_pem(const char *name, int key)
{
    char *p = sx_path_join(ca_dir, name);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    void *obj = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
                    : (void *)PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    free(p);
    cr_assert_not_null(obj);
    return obj;
}

/* A leaf from the shared CA's intermediate, RSA or EC P-256, carrying one extra CRITICAL
 * extension `oid` when given. */
static sx_identity *make_leaf(const char *oid, int ec)
{
    EVP_PKEY *ikey = read_pem(SX_CA_INT_KEY, 1);
    X509 *inter = read_pem(SX_CA_INT_CERT, 0), *root = read_pem(SX_CA_ROOT_CERT, 0);
    sx_identity *id = calloc(1, sizeof(*id));
    id->key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    cr_assert_not_null(id->key);
    X509 *c = id->leaf = X509_new();
    cr_assert(X509_set_version(c, 2));
    cr_assert(ASN1_INTEGER_set(X509_get_serialNumber(c), 4242));
    cr_assert(X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
                                         (const unsigned char *)"Critical", -1, -1, 0));
    cr_assert(X509_set_issuer_name(c, X509_get_subject_name(inter)));
    cr_assert(X509_gmtime_adj(X509_getm_notBefore(c), -3600));
    cr_assert(X509_gmtime_adj(X509_getm_notAfter(c), 3600));
    cr_assert(X509_set_pubkey(c, id->key));
    if (oid) {
        ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        cr_assert(ASN1_OCTET_STRING_set(os, (const unsigned char *)"\x05\x00", 2));
        X509_EXTENSION *ex = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, os);
        cr_assert(X509_add_ext(c, ex, -1));
        X509_EXTENSION_free(ex);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(obj);
    }
    cr_assert(X509_sign(c, ikey, EVP_sha256()));
    id->chain = sk_X509_new_null();
    sk_X509_push(id->chain, inter);
    sk_X509_push(id->chain, root);
    EVP_PKEY_free(ikey);
    return id;
}

static int trusted_with_critical(const char *oid, char **why)
{
    struct cds c;
    load_sstest_cds(&c);
    sx_identity *id = make_leaf(oid, 0);
    sx_buf sig = SX_BUF_INIT;
    cr_assert_eq(sx_cms_sign(id, c.cd0, c.len0, c.v, 2, 0, &sig), 0, "%s", sx_errmsg());
    char *root = sx_path_join(ca_dir, SX_CA_ROOT_CERT);
    sx_trust *t = trust_of(root);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, t, &info), 0, "%s", sx_errmsg());
    int trusted = info.chain_trusted;
    *why = info.trust_error ? strdup(info.trust_error) : NULL;
    sx_cms_info_free(&info);
    sx_trust_free(t);
    free(root);
    sx_buf_free(&sig);
    sx_identity_free(id);
    free_cds(&c);
    return trusted;
}

/* Apple's markers may be critical (as in real Apple leaves); any other unknown critical
 * extension still makes the chain untrusted. */
Test(codesign_cms, only_apple_critical_extensions_are_tolerated)
{
    char *why = NULL;
    cr_assert_eq(trusted_with_critical(SX_OID_APPLE_DEVID_APP, &why), 1, "%s", why ? why : "");
    free(why);
    cr_assert_eq(trusted_with_critical("1.2.840.113635.100.99.1", &why), 0);
    cr_assert_not_null(strstr(why, "unhandled critical extension"), "%s", why);
    free(why);
    cr_assert_eq(trusted_with_critical("1.3.6.1.4.1.55555.1", &why), 0);
    free(why);
}

/* Apple's own platform binary: Software Signing -> Apple Code Signing Certification Authority
 * -> Apple Root CA. */
Test(codesign_cms, apple_platform_sample_ls)
{
    uint8_t *file;
    size_t len, cd_len, cms_len;
    const uint8_t *cd, *cms;
    slurp(SAMPLES "/macho/ls-osx-x86_64", &file, &len);
    macho_sig(file, len, &cd, &cd_len, &cms, &cms_len);
    sx_trust *apple = trust_of(SAMPLES "/certs/AppleIncRootCertificate.cer");
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(cms, cms_len, cd, cd_len, apple, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    cr_assert_eq(info.anchor_is_apple, 1);
    cr_assert_eq(sk_X509_num(info.chain), 3);
    char *subj = sx_cert_subject_line(sk_X509_value(info.chain, 1));
    cr_assert_not_null(strstr(subj, "CN=Apple Code Signing Certification Authority"), "%s", subj);
    free(subj);
    cr_assert_eq(sx_signer_kind_of(info.leaf, info.chain), SX_SIGNER_OTHER);
    /* No signingTime and no timestamp: the (long expired) intermediate is accepted without a
     * validity check, as Apple's verifier does. */
    cr_assert_eq(info.signing_time, 0);
    cr_assert_eq(info.has_timestamp, 0);
    cr_assert_eq(info.chain_checked_at, 0);
    sx_cms_info_free(&info);
    sx_trust_free(apple);
    free(file);
}

/* A signingTime outside the leaf's validity: the signature verifies, the chain does not. */
Test(codesign_cms, chain_checked_at_signing_time)
{
    struct cds c;
    sx_buf sig = SX_BUF_INIT;
    sign_sstest(&c, 1000000000, &sig); /* 2001, before our CA existed */
    char *root = sx_path_join(ca_dir, SX_CA_ROOT_CERT);
    sx_trust *t = trust_of(root);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, t, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.signing_time, 1000000000);
    cr_assert_eq(info.chain_trusted, 0);
    cr_assert_eq(info.chain_checked_at, 1000000000);
    cr_assert_not_null(strstr(info.trust_error, "not yet valid"), "%s", info.trust_error);
    cr_assert_not_null(strstr(info.trust_error, "2001-09-09T01:46:40Z"), "%s", info.trust_error);
    sx_cms_info_free(&info);
    sx_trust_free(t);
    free(root);
    sx_buf_free(&sig);
    free_cds(&c);
}

/* An EC P-256 signer (a developer's own PEM key): ecdsa-with-SHA256, verifies both here and
 * with the openssl CLI. */
Test(codesign_cms, ec_signer_round_trip)
{
    struct cds c;
    load_sstest_cds(&c);
    sx_identity *id = make_leaf(NULL, 1);
    sx_buf sig = SX_BUF_INIT;
    cr_assert_eq(sx_cms_sign(id, c.cd0, c.len0, c.v, 2, 0, &sig), 0, "%s", sx_errmsg());
    CMS_ContentInfo *cms = decode(sig.data, sig.len);
    X509_ALGOR *alg = NULL;
    CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0), NULL, NULL,
                             NULL, &alg);
    cr_assert_eq(OBJ_obj2nid(alg->algorithm), NID_ecdsa_with_SHA256);
    CMS_ContentInfo_free(cms);
    char *root = sx_path_join(ca_dir, SX_CA_ROOT_CERT);
    sx_trust *t = trust_of(root);
    sx_cms_info info;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, t, &info), 0, "%s", sx_errmsg());
    cr_assert_eq(info.chain_trusted, 1, "%s", info.trust_error ? info.trust_error : "");
    sx_cms_info_free(&info);
    c.cd0[3] ^= 1;
    cr_assert_eq(sx_cms_verify(sig.data, sig.len, c.cd0, c.len0, t, &info), SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    c.cd0[3] ^= 1;
    char *sigp = join("ec.sig"), *cdp = join("ec.cd");
    spit(sigp, sig.data, sig.len);
    spit(cdp, c.cd0, c.len0);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "openssl cms -verify -binary -inform DER -in '%s' -content '%s' -CAfile '%s' "
             "-purpose any -out /dev/null 2>/dev/null",
             sigp, cdp, root);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    free(sigp);
    free(cdp);
    sx_trust_free(t);
    free(root);
    sx_buf_free(&sig);
    sx_identity_free(id);
    free_cds(&c);
}

/* The 9.1/9.2 binding rules on hand-made attribute sets (reference 5.4, 5.5). */
Test(codesign_cms, cdhash_attribute_rules)
{
    struct cds c;
    load_sstest_cds(&c);
    sx_cms_info info;
    memset(&info, 0, sizeof(info));
    /* No attribute at all: fine for one CD (old signatures), not for two. */
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 1), 0);
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 2), SYSEXT_ESIGNATURE);
    /* 9.1 present but empty: a mismatch, not "absent". */
    info.v1_hashes = calloc(1, sizeof(*info.v1_hashes));
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 1), SYSEXT_ESIGNATURE);
    free(info.v1_hashes);
    /* 9.1 in the wrong order. */
    info.v1_hashes = calloc(2, sizeof(*info.v1_hashes));
    info.n_v1 = 2;
    memcpy(info.v1_hashes[0], c.h1, 20);
    memcpy(info.v1_hashes[1], c.h0, 20);
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 2), SYSEXT_ESIGNATURE);
    memcpy(info.v1_hashes[0], c.h0, 20);
    memcpy(info.v1_hashes[1], c.h1, 20);
    cr_assert_eq(sx_cms_check_cdhashes(&info, c.v, 2), 0);
    /* 9.2 records a SHA-256-truncated (type 3) CD with its full SHA-256. */
    info.v2_hashes = calloc(1, sizeof(*info.v2_hashes));
    info.n_v2 = 1;
    info.v2_hashes[0].hash_type = SX_HASH_SHA256;
    info.v2_hashes[0].len = 32;
    memcpy(info.v2_hashes[0].hash, c.h1, 32);
    free(info.v1_hashes);
    info.v1_hashes = NULL;
    info.n_v1 = 0;
    sx_cms_cd t3 = {SX_HASH_SHA256_TRUNCATED, c.h1, 32};
    cr_assert_eq(sx_cms_check_cdhashes(&info, &t3, 1), 0, "%s", sx_errmsg());
    info.v2_hashes[0].hash[5] ^= 1;
    cr_assert_eq(sx_cms_check_cdhashes(&info, &t3, 1), SYSEXT_ESIGNATURE);
    sx_cms_info_free(&info);
    free_cds(&c);
}

/* A detached CMS made by the openssl CLI with an MD5 digest: the signature is
 * cryptographically valid but MD5 does not bind the CodeDirectory. The same command with
 * SHA-256 is accepted (OpenSSL-made signatures interoperate). */
Test(codesign_cms, weak_digest_is_refused)
{
    struct cds c;
    load_sstest_cds(&c);
    char *pem = join("all.pem"), *cdp = join("cd"), *md5 = join("md5.der"), *sha = join("sha.der");
    spit(cdp, c.cd0, c.len0);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "openssl pkcs12 -in '%s' -passin pass: -nodes -out '%s' 2>/dev/null",
             p12, pem);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd),
                 "openssl cms -sign -binary -md %s -signer '%s' -inkey '%s' -in '%s' -outform DER "
                 "-out '%s' 2>/dev/null",
                 i ? "sha256" : "md5", pem, pem, cdp, i ? sha : md5);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    uint8_t *sig;
    size_t len;
    sx_cms_info info;
    slurp(md5, &sig, &len);
    cr_assert_eq(sx_cms_verify(sig, len, c.cd0, c.len0, NULL, &info), SYSEXT_ESIGNATURE);
    cr_assert_not_null(strstr(sx_errmsg(), "MD5 is not accepted"), "%s", sx_errmsg());
    sx_cms_info_free(&info);
    free(sig);
    slurp(sha, &sig, &len);
    cr_assert_eq(sx_cms_verify(sig, len, c.cd0, c.len0, NULL, &info), 0, "%s", sx_errmsg());
    cr_assert_null(info.v1_hashes);
    cr_assert_null(info.v2_hashes);
    sx_cms_info_free(&info);
    free(sig);
    free(pem);
    free(cdp);
    free(md5);
    free(sha);
    free_cds(&c);
}
