/* Ticket format: build/parse round trip, signature and key-id checks, every malformed header
 * and body case with its exact code and offset, stapling locations. */
#include <criterion/criterion.h>

#include "util/common.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "codesign/ticket.h"
#include "sysext/errors.h"
#include "util/error.h"
#include "util/fs.h"

static char dir[64];
static EVP_PKEY *key, *key2;
static X509 *cert, *cert2;

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert_not_null(k);
    return k;
}

static X509 *make_cert(EVP_PKEY *k, const char *cn)
{
    X509 *x = X509_new();
    cr_assert_not_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    cr_assert_gt(X509_sign(x, k, EVP_sha256()), 0);
    return x;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sx-ticket-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    key = make_key();
    key2 = make_key();
    cert = make_cert(key, "Notary");
    cert2 = make_cert(key2, "Other notary");
}

static void teardown(void)
{
    X509_free(cert);
    X509_free(cert2);
    EVP_PKEY_free(key);
    EVP_PKEY_free(key2);
    sx_rm_rf(dir);
}

TestSuite(ticket, .init = setup, .fini = teardown);

static const sx_ticket_entry ents[] = {
    {2, {0x1b, 0x74, 0x7f, 0xaf, 0x22, 0x37, 0x50, 0xde, 0x74, 0xfe,
         0xbe, 0xd7, 0x92, 0x9f, 0x14, 0xa7, 0x3a, 0xf8, 0xc9, 0x33}},
    {1, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
    {2, {0x1b, 0x74, 0x7f, 0xaf, 0x22, 0x37, 0x50, 0xde, 0x74, 0xfe, /* duplicate */
         0xbe, 0xd7, 0x92, 0x9f, 0x14, 0xa7, 0x3a, 0xf8, 0xc9, 0x33}},
};

static sx_buf build(void)
{
    static const char *const ids[] = {"com.example.host", "com.example.sensor"};
    sx_ticket_content c = {.issued = 1764000000, .team_id = "ABCDE12345", .bundle_ids = ids,
                           .n_bundle_ids = 2, .entries = ents, .n_entries = 3};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ticket_build(&c, key, cert, &b), 0, "%s", sx_errmsg());
    return b;
}

/* Body layout from docs/ticket-format.md: offsets of fields in a built ticket. */
enum {
    OFF_BODY = 20,
    OFF_KEYID = 28,
    OFF_TEAM = 60,                    /* u16 len + "ABCDE12345" */
    OFF_NIDS = OFF_TEAM + 2 + 10,     /* 72 */
    OFF_ID0 = OFF_NIDS + 2,           /* u16 len + 16 chars */
    OFF_NENT = OFF_ID0 + 2 + 16 + 2 + 18, /* 112 */
    OFF_ENT0 = OFF_NENT + 4,          /* 116 */
    OFF_SIG = OFF_ENT0 + 2 * 22,      /* 160 */
};

Test(ticket, round_trip)
{
    sx_buf b = build();
    cr_assert_eq(memcmp(b.data, "sxtk\0\1\0\0", 8), 0);
    cr_assert_eq(b.data[OFF_NENT + 3], 2, "duplicates are dropped");
    sx_ticket t;
    cr_assert_eq(sx_ticket_verify(b.data, b.len, "t", cert, &t), 0, "%s", sx_errmsg());
    cr_assert_eq(t.version, 1);
    cr_assert_eq(t.issued, 1764000000);
    cr_assert_str_eq(t.team_id, "ABCDE12345");
    cr_assert_eq(t.n_bundle_ids, 2);
    cr_assert_str_eq(t.bundle_ids[0], "com.example.host");
    cr_assert_str_eq(t.bundle_ids[1], "com.example.sensor");
    cr_assert_eq(t.n_entries, 2);
    cr_assert_eq(t.signed_len, OFF_SIG);
    cr_assert_eq(t.sig_len, b.len - OFF_SIG);
    cr_assert(sx_ticket_covers(&t, 2, ents[0].cdhash));
    cr_assert(sx_ticket_covers(&t, SX_HASH_NONE, ents[1].cdhash));
    cr_assert_not(sx_ticket_covers(&t, 2, ents[1].cdhash), "hash type must match");
    uint8_t other[SX_CDHASH_LEN] = {0};
    cr_assert_not(sx_ticket_covers(&t, SX_HASH_NONE, other));
    uint8_t kid[SX_TICKET_KEY_ID_LEN];
    cr_assert_eq(sx_ticket_key_id(cert, kid), 0);
    cr_assert_eq(memcmp(t.key_id, kid, sizeof kid), 0);
    cr_assert_eq(memcmp(b.data + OFF_KEYID, kid, sizeof kid), 0);
    sx_ticket_free(&t);
    sx_buf_free(&b);
}

Test(ticket, other_notary_rejected)
{
    sx_buf b = build();
    sx_ticket t;
    cr_assert_eq(sx_ticket_verify(b.data, b.len, "t", cert2, &t), SYSEXT_ESIGNATURE);
    cr_assert(strstr(sx_errmsg(), "another notary key"), "%s", sx_errmsg());
    sx_ticket_free(&t);
    sx_buf_free(&b);
}

Test(ticket, every_byte_flip_detected)
{
    sx_buf b = build();
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x01;
        sx_ticket t;
        int rc = sx_ticket_verify(b.data, b.len, "t", cert, &t);
        cr_assert_lt(rc, 0, "flip at %zu accepted", i);
        sx_ticket_free(&t);
        b.data[i] ^= 0x01;
    }
    sx_buf_free(&b);
}

Test(ticket, forged_with_same_key_id_fails_signature)
{
    sx_buf b = build();
    /* Change a cdhash byte and keep everything else: the signature must fail. */
    b.data[OFF_ENT0 + 2] ^= 0xff;
    sx_ticket t;
    cr_assert_eq(sx_ticket_verify(b.data, b.len, "t", cert, &t), SYSEXT_ESIGNATURE);
    cr_assert(strstr(sx_errmsg(), "does not verify"), "%s", sx_errmsg());
    sx_ticket_free(&t);
    sx_buf_free(&b);
}

static void expect_parse(const uint8_t *p, size_t n, int code, const char *needle)
{
    sx_ticket t;
    int rc = sx_ticket_parse(p, n, "t", &t);
    sx_ticket_free(&t);
    cr_assert_eq(rc, code, "rc %d, want %d: %s", rc, code, sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "message '%s' lacks '%s'", sx_errmsg(), needle);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

Test(ticket, malformed_header)
{
    sx_buf b = build();
    uint8_t *c = malloc(b.len);
    cr_assert_not_null(c);
#define FRESH() memcpy(c, b.data, b.len)
    expect_parse(c, 0, SYSEXT_EFORMAT, "t");
    FRESH();
    expect_parse(c, 3, SYSEXT_EFORMAT, "t");
    FRESH();
    c[0] = 'X';
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 0: bad magic");
    FRESH();
    c[5] = 2;
    expect_parse(c, b.len, SYSEXT_EUNSUPPORTED, "version 2 is not supported");
    FRESH();
    c[7] = 1;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 6: flags");
    FRESH();
    c[19] = 1;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 16: reserved");
    FRESH();
    put32(c + 12, 0);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 12: signature length 0");
    FRESH();
    put32(c + 12, 5000);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 12: signature length 5000");
    FRESH();
    put32(c + 8, 0xffffffffu);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 8: header says");
    FRESH();
    expect_parse(c, b.len - 1, SYSEXT_EFORMAT, "offset 8: header says");
    expect_parse(c, SX_TICKET_MAX_SIZE + 1, SYSEXT_EFORMAT, "exceeds");
    free(c);
    sx_buf_free(&b);
}

Test(ticket, malformed_body)
{
    sx_buf b = build();
    uint8_t *c = malloc(b.len);
    cr_assert_not_null(c);
    FRESH();
    c[OFF_TEAM + 2] = ' ';
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 60: team ID");
    FRESH();
    c[OFF_TEAM] = 0;
    c[OFF_TEAM + 1] = 0;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 60: team ID");
    FRESH();
    c[OFF_NIDS] = 0x7f;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 72:");
    FRESH();
    c[OFF_ID0 + 3] = 0x80;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 74: bundle id");
    FRESH();
    put32(c + OFF_NENT, 0);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 112: 0 cdhashes");
    FRESH();
    put32(c + OFF_NENT, 3);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 112: 3 cdhashes do not fit");
    FRESH();
    put32(c + OFF_NENT, 0x40000000u);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 112:");
    FRESH();
    put32(c + OFF_NENT, 1);
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 138: 22 unexpected bytes");
    FRESH();
    c[OFF_ENT0] = 9;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 116: cdhash 0 has unknown hash type 9");
    FRESH();
    c[OFF_ENT0 + 22 + 1] = 32;
    expect_parse(c, b.len, SYSEXT_EFORMAT, "offset 139: cdhash 1 is 32 bytes");
    free(c);
    sx_buf_free(&b);
}

Test(ticket, build_rejects_bad_content)
{
    sx_buf b = SX_BUF_INIT;
    sx_ticket_content c = {.team_id = "ABCDE12345", .entries = ents, .n_entries = 0};
    cr_assert_eq(sx_ticket_build(&c, key, cert, &b), SYSEXT_EINVAL);
    c.n_entries = 1;
    c.team_id = "bad team";
    cr_assert_eq(sx_ticket_build(&c, key, cert, &b), SYSEXT_EINVAL);
    c.team_id = "ABCDE12345";
    sx_ticket_entry e = {7, {0}};
    c.entries = &e;
    cr_assert_eq(sx_ticket_build(&c, key, cert, &b), SYSEXT_EINVAL);
    cr_assert_eq(b.len, 0);
}

Test(ticket, staple_locations)
{
    char deep[128], flat[128], file[128];
    snprintf(deep, sizeof deep, "%s/Host.app", dir);
    snprintf(flat, sizeof flat, "%s/Sensor.dext", dir);
    snprintf(file, sizeof file, "%s/plain", dir);
    char contents[160];
    snprintf(contents, sizeof contents, "%s/Contents", deep);
    cr_assert_eq(sx_mkdir_p(contents, 0755), 0);
    cr_assert_eq(sx_mkdir_p(flat, 0755), 0);
    cr_assert_eq(sx_write_file_atomic(file, "x", 1, 0644), 0);

    char *p = sx_ticket_staple_path(deep);
    cr_assert(strstr(p, "/Host.app/Contents/CodeResources"), "%s", p);
    free(p);
    p = sx_ticket_staple_path(flat);
    cr_assert(strstr(p, "/Sensor.dext/CodeResources"), "%s", p);
    free(p);

    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_ticket_staple_read(deep, &d, &n), SYSEXT_ENOTFOUND);
    sx_buf b = build();
    cr_assert_eq(sx_ticket_staple_write(deep, b.data, b.len), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_ticket_staple_write(flat, b.data, b.len), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_ticket_staple_write(file, b.data, b.len), SYSEXT_EINVAL);
    cr_assert_eq(sx_ticket_staple_read(deep, &d, &n), 0, "%s", sx_errmsg());
    cr_assert_eq(n, b.len);
    cr_assert_eq(memcmp(d, b.data, n), 0);
    free(d);
    cr_assert_eq(sx_ticket_staple_read(flat, &d, &n), 0, "%s", sx_errmsg());
    cr_assert_eq(n, b.len);
    free(d);
    sx_buf_free(&b);
}

Test(ticket, load_cert_pem_and_der)
{
    char pem[128], der[128], junk[128];
    snprintf(pem, sizeof pem, "%s/n.pem", dir);
    snprintf(der, sizeof der, "%s/n.der", dir);
    snprintf(junk, sizeof junk, "%s/junk", dir);
    FILE *f = fopen(pem, "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, cert);
    fclose(f);
    unsigned char *d = NULL;
    int n = i2d_X509(cert, &d);
    cr_assert_gt(n, 0);
    cr_assert_eq(sx_write_file_atomic(der, d, (size_t)n, 0644), 0);
    OPENSSL_free(d);
    cr_assert_eq(sx_write_file_atomic(junk, "nope", 4, 0644), 0);
    X509 *x;
    cr_assert_eq(sx_ticket_load_cert(pem, &x), 0, "%s", sx_errmsg());
    cr_assert_eq(X509_cmp(x, cert), 0);
    X509_free(x);
    cr_assert_eq(sx_ticket_load_cert(der, &x), 0, "%s", sx_errmsg());
    cr_assert_eq(X509_cmp(x, cert), 0);
    X509_free(x);
    cr_assert_eq(sx_ticket_load_cert(junk, &x), SYSEXT_EFORMAT);
    cr_assert_null(x);
}
