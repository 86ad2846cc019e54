/* Notarization tickets: build, sign, parse (bounded), verify, staple. Layout in
 * docs/ticket-format.md. */
#include "util/common.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <time.h>

#include "codesign/identity.h"
#include "codesign/ticket.h"
#include "sysext/errors.h"
#include "util/fs.h"
#include "util/reader.h"

int sx_ticket_key_id(X509 *cert, uint8_t out[SX_TICKET_KEY_ID_LEN])
{
    SX_ASSERT_ARG(cert);
    X509_PUBKEY *pk = X509_get_X509_PUBKEY(cert);
    unsigned char *der = NULL;
    int n = pk ? i2d_X509_PUBKEY(pk, &der) : -1;
    if (n <= 0)
        return sx_ossl_err(SYSEXT_EFORMAT, "notary certificate: cannot encode its public key");
    SHA256(der, (size_t)n, out);
    OPENSSL_free(der);
    return 0;
}

static bool string_ok(const char *s, size_t len)
{
    if (len == 0 || len > SX_TICKET_MAX_STRING)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static int put_u16(sx_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return sx_buf_append(b, x, 2);
}

static int put_str(sx_buf *b, const char *s)
{
    size_t n = strlen(s);
    int rc = put_u16(b, (uint16_t)n);
    return rc < 0 ? rc : sx_buf_append(b, s, n);
}

static bool entry_seen(const sx_ticket_content *c, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (c->entries[j].hash_type == c->entries[i].hash_type &&
            memcmp(c->entries[j].cdhash, c->entries[i].cdhash, SX_CDHASH_LEN) == 0)
            return true;
    return false;
}

static int sign_bytes(EVP_PKEY *key, const uint8_t *p, size_t n, uint8_t **sig, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = 0;
    size_t len = 0;
    *sig = NULL;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &len, p, n) != 1) {
        rc = sx_ossl_err(SYSEXT_ERROR, "ticket: cannot sign with the notary key");
        goto out;
    }
    if (!(*sig = malloc(len))) {
        rc = sx_err(SYSEXT_ENOMEM, "ticket: out of memory");
        goto out;
    }
    if (EVP_DigestSign(ctx, *sig, &len, p, n) != 1) {
        rc = sx_ossl_err(SYSEXT_ERROR, "ticket: cannot sign with the notary key");
        goto out;
    }
    if (len == 0 || len > SX_TICKET_MAX_SIG) {
        rc = sx_err(SYSEXT_EUNSUPPORTED, "ticket: a %zu-byte signature exceeds %u bytes", len,
                    SX_TICKET_MAX_SIG);
        goto out;
    }
    *sig_len = len;
out:
    if (rc < 0) {
        free(*sig);
        *sig = NULL;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

int sx_ticket_build(const sx_ticket_content *c, EVP_PKEY *key, X509 *cert, sx_buf *out)
{
    SX_ASSERT_ARG(c && key && cert && out);
    if (!c->team_id || !string_ok(c->team_id, strlen(c->team_id)))
        return sx_err(SYSEXT_EINVAL, "ticket: team ID must be 1..%d printable ASCII characters",
                      SX_TICKET_MAX_STRING);
    if (c->n_bundle_ids > SX_TICKET_MAX_BUNDLE_IDS || (c->n_bundle_ids && !c->bundle_ids))
        return sx_err(SYSEXT_EINVAL, "ticket: %zu bundle ids (at most %d)", c->n_bundle_ids,
                      SX_TICKET_MAX_BUNDLE_IDS);
    for (size_t i = 0; i < c->n_bundle_ids; i++)
        if (!c->bundle_ids[i] || !string_ok(c->bundle_ids[i], strlen(c->bundle_ids[i])))
            return sx_err(SYSEXT_EINVAL, "ticket: bundle id %zu must be 1..%d printable ASCII "
                          "characters", i, SX_TICKET_MAX_STRING);
    if (c->n_entries == 0 || c->n_entries > SX_TICKET_MAX_ENTRIES || !c->entries)
        return sx_err(SYSEXT_EINVAL, "ticket: %zu cdhashes (need 1..%d)", c->n_entries,
                      SX_TICKET_MAX_ENTRIES);
    size_t n_unique = 0;
    for (size_t i = 0; i < c->n_entries; i++) {
        if (sx_hash_size(c->entries[i].hash_type) == 0)
            return sx_err(SYSEXT_EINVAL, "ticket: cdhash %zu has unknown hash type %u", i,
                          c->entries[i].hash_type);
        if (!entry_seen(c, i))
            n_unique++;
    }
    uint8_t key_id[SX_TICKET_KEY_ID_LEN];
    int rc = sx_ticket_key_id(cert, key_id);
    if (rc < 0)
        return rc;

    sx_buf body = SX_BUF_INIT;
    sx_buf all = SX_BUF_INIT;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    int64_t issued = c->issued ? c->issued : (int64_t)time(NULL);
    if ((rc = sx_buf_put_u64be(&body, (uint64_t)issued)) < 0 ||
        (rc = sx_buf_append(&body, key_id, sizeof key_id)) < 0 ||
        (rc = put_str(&body, c->team_id)) < 0 ||
        (rc = put_u16(&body, (uint16_t)c->n_bundle_ids)) < 0)
        goto out;
    for (size_t i = 0; i < c->n_bundle_ids; i++)
        if ((rc = put_str(&body, c->bundle_ids[i])) < 0)
            goto out;
    if ((rc = sx_buf_put_u32be(&body, (uint32_t)n_unique)) < 0)
        goto out;
    for (size_t i = 0; i < c->n_entries; i++) {
        if (entry_seen(c, i))
            continue;
        uint8_t hdr[2] = {c->entries[i].hash_type, SX_CDHASH_LEN};
        if ((rc = sx_buf_append(&body, hdr, 2)) < 0 ||
            (rc = sx_buf_append(&body, c->entries[i].cdhash, SX_CDHASH_LEN)) < 0)
            goto out;
    }
    /* Header; the signature length is known only after signing, so it is signed as 0 and
     * the signature covers header (with sig_len 0) + body. */
    if ((rc = sx_buf_append(&all, SX_TICKET_MAGIC, 4)) < 0 ||
        (rc = put_u16(&all, SX_TICKET_VERSION)) < 0 || (rc = put_u16(&all, 0)) < 0 ||
        (rc = sx_buf_put_u32be(&all, (uint32_t)body.len)) < 0 ||
        (rc = sx_buf_put_u32be(&all, 0)) < 0 || (rc = sx_buf_put_u32be(&all, 0)) < 0 ||
        (rc = sx_buf_append(&all, body.data, body.len)) < 0)
        goto out;
    if ((rc = sign_bytes(key, all.data, all.len, &sig, &sig_len)) < 0)
        goto out;
    if ((rc = sx_buf_append(out, all.data, all.len)) < 0 ||
        (rc = sx_buf_append(out, sig, sig_len)) < 0)
        goto out;
    sx_buf_set_u32be(out, out->len - all.len - sig_len + 12, (uint32_t)sig_len);
out:
    free(sig);
    sx_buf_free(&body);
    sx_buf_free(&all);
    return rc;
}

static int rd_str(sx_reader *r, const char *field, char **out)
{
    uint16_t n;
    const uint8_t *p;
    size_t off = sx_reader_offset(r);
    int rc;
    if ((rc = sx_rd_u16be(r, &n)) < 0 || (rc = sx_rd_bytes(r, n, &p)) < 0)
        return rc;
    if (!string_ok((const char *)p, n))
        return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: %s must be 1..%d printable ASCII "
                      "characters", r->what, off, field, SX_TICKET_MAX_STRING);
    if (!(*out = strndup((const char *)p, n)))
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", r->what);
    return 0;
}

static int parse_body(sx_reader *r, sx_ticket *t)
{
    uint64_t issued;
    const uint8_t *kid;
    uint16_t n_ids;
    uint32_t n_ent;
    int rc;
    if ((rc = sx_rd_u64be(r, &issued)) < 0 || (rc = sx_rd_bytes(r, SX_TICKET_KEY_ID_LEN, &kid)) < 0)
        return rc;
    if (issued > INT64_MAX)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 20: issue time out of range", r->what);
    t->issued = (int64_t)issued;
    memcpy(t->key_id, kid, SX_TICKET_KEY_ID_LEN);
    if ((rc = rd_str(r, "team ID", &t->team_id)) < 0)
        return rc;
    size_t off = sx_reader_offset(r);
    if ((rc = sx_rd_u16be(r, &n_ids)) < 0)
        return rc;
    if (n_ids > SX_TICKET_MAX_BUNDLE_IDS)
        return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: %u bundle ids (at most %d)", r->what, off,
                      n_ids, SX_TICKET_MAX_BUNDLE_IDS);
    if (n_ids && !(t->bundle_ids = calloc(n_ids, sizeof *t->bundle_ids)))
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", r->what);
    for (size_t i = 0; i < n_ids; i++) {
        if ((rc = rd_str(r, "bundle id", &t->bundle_ids[i])) < 0)
            return rc;
        t->n_bundle_ids++;
    }
    off = sx_reader_offset(r);
    if ((rc = sx_rd_u32be(r, &n_ent)) < 0)
        return rc;
    if (n_ent == 0 || n_ent > SX_TICKET_MAX_ENTRIES)
        return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: %u cdhashes (need 1..%d)", r->what, off,
                      n_ent, SX_TICKET_MAX_ENTRIES);
    /* Each entry is 22 bytes: check the count against what is left before allocating. */
    if (sx_reader_left(r) / (2 + SX_CDHASH_LEN) < n_ent)
        return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: %u cdhashes do not fit in the %zu bytes "
                      "left", r->what, off, n_ent, sx_reader_left(r));
    if (!(t->entries = calloc(n_ent, sizeof *t->entries)))
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", r->what);
    for (uint32_t i = 0; i < n_ent; i++) {
        uint8_t type, hlen;
        const uint8_t *h;
        off = sx_reader_offset(r);
        if ((rc = sx_rd_u8(r, &type)) < 0 || (rc = sx_rd_u8(r, &hlen)) < 0)
            return rc;
        if (sx_hash_size(type) == 0)
            return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: cdhash %u has unknown hash type %u",
                          r->what, off, i, type);
        if (hlen != SX_CDHASH_LEN)
            return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: cdhash %u is %u bytes, expected %d",
                          r->what, off + 1, i, hlen, SX_CDHASH_LEN);
        if ((rc = sx_rd_bytes(r, SX_CDHASH_LEN, &h)) < 0)
            return rc;
        t->entries[i].hash_type = type;
        memcpy(t->entries[i].cdhash, h, SX_CDHASH_LEN);
        t->n_entries++;
    }
    if (sx_reader_left(r) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s at offset %zu: %zu unexpected bytes after the cdhashes",
                      r->what, sx_reader_offset(r), sx_reader_left(r));
    return 0;
}

int sx_ticket_parse(const uint8_t *data, size_t len, const char *what, sx_ticket *out)
{
    SX_ASSERT_ARG(out);
    memset(out, 0, sizeof *out);
    SX_ASSERT_ARG(data || len == 0);
    if (!what)
        what = "ticket";
    if (len > SX_TICKET_MAX_SIZE)
        return sx_err(SYSEXT_EFORMAT, "%s: %zu bytes exceeds the %u-byte limit", what, len,
                      SX_TICKET_MAX_SIZE);
    sx_reader r;
    sx_reader_init(&r, data, len, what);
    const uint8_t *magic;
    uint16_t version, flags;
    uint32_t body_len, sig_len, reserved;
    int rc;
    if ((rc = sx_rd_bytes(&r, 4, &magic)) < 0)
        return rc;
    if (memcmp(magic, SX_TICKET_MAGIC, 4) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 0: bad magic, expected '%s'", what,
                      SX_TICKET_MAGIC);
    if ((rc = sx_rd_u16be(&r, &version)) < 0 || (rc = sx_rd_u16be(&r, &flags)) < 0 ||
        (rc = sx_rd_u32be(&r, &body_len)) < 0 || (rc = sx_rd_u32be(&r, &sig_len)) < 0 ||
        (rc = sx_rd_u32be(&r, &reserved)) < 0)
        return rc;
    if (version != SX_TICKET_VERSION)
        return sx_err(SYSEXT_EUNSUPPORTED, "%s at offset 4: version %u is not supported "
                      "(expected %d)", what, version, SX_TICKET_VERSION);
    if (flags != 0)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 6: flags 0x%04x, expected 0", what, flags);
    if (reserved != 0)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 16: reserved field 0x%08x, expected 0", what,
                      reserved);
    if (sig_len == 0 || sig_len > SX_TICKET_MAX_SIG)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 12: signature length %u (need 1..%d)", what,
                      sig_len, SX_TICKET_MAX_SIG);
    size_t total;
    if (SX_ADD_OVERFLOW((size_t)SX_TICKET_HEADER_SIZE, (size_t)body_len, &total) ||
        SX_ADD_OVERFLOW(total, (size_t)sig_len, &total) || total != len)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 8: header says %u body + %u signature bytes, "
                      "but the ticket has %zu bytes after the %d-byte header", what, body_len,
                      sig_len, len - SX_TICKET_HEADER_SIZE, SX_TICKET_HEADER_SIZE);
    out->version = version;
    sx_reader body;
    if ((rc = sx_rd_window(&r, SX_TICKET_HEADER_SIZE, body_len, &body, what)) < 0 ||
        (rc = parse_body(&body, out)) < 0)
        return rc;
    out->signed_len = SX_TICKET_HEADER_SIZE + (size_t)body_len;
    if (!(out->sig = malloc(sig_len)))
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
    memcpy(out->sig, data + out->signed_len, sig_len);
    out->sig_len = sig_len;
    return 0;
}

int sx_ticket_verify(const uint8_t *data, size_t len, const char *what, X509 *notary_cert,
                     sx_ticket *out)
{
    SX_ASSERT_ARG(notary_cert);
    int rc = sx_ticket_parse(data, len, what, out);
    if (rc < 0)
        return rc;
    if (!what)
        what = "ticket";
    uint8_t kid[SX_TICKET_KEY_ID_LEN];
    if ((rc = sx_ticket_key_id(notary_cert, kid)) < 0)
        return rc;
    if (memcmp(kid, out->key_id, sizeof kid) != 0)
        return sx_err(SYSEXT_ESIGNATURE, "%s: issued by another notary key (key id at offset 28 "
                      "does not match the notary certificate)", what);
    /* The signed bytes are the header with the signature length zeroed, then the body. */
    uint8_t *copy = malloc(out->signed_len);
    if (!copy)
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
    memcpy(copy, data, out->signed_len);
    memset(copy + 12, 0, 4);
    EVP_PKEY *pub = X509_get0_pubkey(notary_cert);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && pub && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, out->sig, out->sig_len, copy, out->signed_len) == 1;
    EVP_MD_CTX_free(ctx);
    free(copy);
    if (!ok) {
        ERR_clear_error();
        return sx_err(SYSEXT_ESIGNATURE, "%s: the signature at offset %zu does not verify with "
                      "the notary certificate (ticket modified or not from this notary)", what,
                      out->signed_len);
    }
    return 0;
}

bool sx_ticket_covers(const sx_ticket *t, uint8_t hash_type, const uint8_t cdhash[SX_CDHASH_LEN])
{
    if (!t || !cdhash)
        return false;
    for (size_t i = 0; i < t->n_entries; i++)
        if ((hash_type == SX_HASH_NONE || t->entries[i].hash_type == hash_type) &&
            memcmp(t->entries[i].cdhash, cdhash, SX_CDHASH_LEN) == 0)
            return true;
    return false;
}

void sx_ticket_free(sx_ticket *t)
{
    if (!t)
        return;
    free(t->team_id);
    for (size_t i = 0; i < t->n_bundle_ids; i++)
        free(t->bundle_ids[i]);
    free(t->bundle_ids);
    free(t->entries);
    free(t->sig);
    memset(t, 0, sizeof *t);
}

int sx_ticket_load_cert(const char *path, X509 **out)
{
    SX_ASSERT_ARG(path && out);
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sx_read_file(path, 1u << 20, &data, &len);
    if (rc < 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (!x) {
        const unsigned char *p = data;
        x = d2i_X509(NULL, &p, (long)len);
    }
    BIO_free(bio);
    free(data);
    if (!x)
        return sx_ossl_err(SYSEXT_EFORMAT, "%s: not a PEM or DER certificate", path);
    ERR_clear_error();
    *out = x;
    return 0;
}

char *sx_ticket_staple_path(const char *bundle_path)
{
    _sx_cleanup_free_ char *contents = sx_path_join(bundle_path, "Contents");
    if (!contents)
        return NULL;
    return sx_path_join(sx_is_dir(contents) ? contents : bundle_path, SX_TICKET_STAPLE_NAME);
}

int sx_ticket_staple_write(const char *bundle_path, const uint8_t *data, size_t len)
{
    SX_ASSERT_ARG(bundle_path && data);
    if (!sx_is_dir(bundle_path))
        return sx_err(SYSEXT_EINVAL, "%s: not a bundle folder (only bundles can be stapled)",
                      bundle_path);
    _sx_cleanup_free_ char *p = sx_ticket_staple_path(bundle_path);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    return sx_write_file_atomic(p, data, len, 0644);
}

int sx_ticket_staple_read(const char *bundle_path, uint8_t **data, size_t *len)
{
    SX_ASSERT_ARG(bundle_path && data && len);
    _sx_cleanup_free_ char *p = sx_ticket_staple_path(bundle_path);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (!sx_path_exists(p))
        return sx_err(SYSEXT_ENOTFOUND, "%s: no stapled ticket (%s is missing)", bundle_path, p);
    return sx_read_file(p, SX_TICKET_MAX_SIZE, data, len);
}
