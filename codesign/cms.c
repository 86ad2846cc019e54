/* The CMS signature over the slot-0 CodeDirectory (reference section 5): signing with
 * Apple's attributes, and verification.
 *
 * Signing (5.1-5.5, 5.9): detached SignedData, SHA-256 digest, signed attributes
 * contentType, signingTime (explicit), messageDigest, 9.2 (ONE attribute, one
 * SEQUENCE{OID, OCTET STRING} value per CD) and 9.1 (OCTET STRING holding the exact 5.4 XML);
 * OpenSSL DER-sorts the attribute SET and the certificate SET. The certificates are the leaf
 * and the identity's whole chain, root included. OpenSSL 3.0 writes rsaEncryption as the
 * SignerInfo signature algorithm for RSA PKCS#1 v1.5; it is rewritten to
 * sha256WithRSAEncryption as Apple writes it (the field is outside the signed attributes).
 *
 * Verification: decode (bounded), require signedData / id-data / detached / one signer,
 * CMS_verify over cd0 (messageDigest + signature, not the chain), then build the chain
 * ourselves against the caller's anchors (trust.c). The chain is checked at the time of a
 * valid RFC 3161 timestamp (as Apple does), else at the signing time (stricter than Apple,
 * which tolerates expiry without a timestamp: a certificate must at least have been valid when
 * the signer says it signed), else with no validity-period check (Apple's behaviour; Apple's
 * platform binaries carry no signingTime). Apple's verifier instead ignores expiry unless there
 * is a secure timestamp (5.8 step 5); checking at the (self-asserted, but signed) signingTime
 * is a middle ground: an expired leaf still verifies for code it signed while valid, and a
 * certificate is never accepted outside its validity period. */
#include "util/common.h"
#include "codesign/cms.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>
#include <time.h>

#include "codesign/hash.h"

#define SX_CMS_MAX_CDS 6      /* slot 0 + five alternates */
#define SX_CMS_MAX_CERTS 32
#define SX_CMS_MAX_PLIST (64u * 1024)

size_t sx_cms_full_hash_len(uint8_t hash_type)
{
    switch (hash_type) {
    case SX_HASH_SHA1:
        return 20;
    case SX_HASH_SHA256:
    case SX_HASH_SHA256_TRUNCATED:
        return 32;
    case SX_HASH_SHA384:
        return 48;
    default:
        return 0;
    }
}

static int digest_nid(uint8_t hash_type)
{
    switch (hash_type) {
    case SX_HASH_SHA1:
        return NID_sha1;
    case SX_HASH_SHA256:
    case SX_HASH_SHA256_TRUNCATED:
        return NID_sha256;
    case SX_HASH_SHA384:
        return NID_sha384;
    default:
        return NID_undef;
    }
}

static int check_cds(const sx_cms_cd *cds, size_t n_cds)
{
    if (n_cds == 0 || n_cds > SX_CMS_MAX_CDS)
        return sx_err(SYSEXT_EINVAL, "CMS: %zu CodeDirectories, expected 1 to %d", n_cds,
                      SX_CMS_MAX_CDS);
    for (size_t i = 0; i < n_cds; i++) {
        size_t want = sx_cms_full_hash_len(cds[i].hash_type);
        if (!want)
            return sx_err(SYSEXT_EINVAL, "CMS: CodeDirectory %zu: unknown hash type %u", i,
                          cds[i].hash_type);
        if (!cds[i].full_hash || cds[i].full_len != want)
            return sx_err(SYSEXT_EINVAL, "CMS: CodeDirectory %zu: %s hash of %zu bytes, expected %zu",
                          i, sx_hash_name(cds[i].hash_type), cds[i].full_len, want);
        if (i > 0 && cds[i].hash_type <= cds[i - 1].hash_type)
            return sx_err(SYSEXT_EINVAL, "CMS: CodeDirectories not in ascending hash type order");
    }
    return 0;
}

int sx_cms_cdhashes_plist(const sx_cms_cd *cds, size_t n_cds, sx_buf *out)
{
    int r = check_cds(cds, n_cds);
    if (r < 0)
        return r;
    r = sx_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                         "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                         "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                         "<plist version=\"1.0\">\n"
                         "<dict>\n"
                         "\t<key>cdhashes</key>\n"
                         "\t<array>\n");
    for (size_t i = 0; r == 0 && i < n_cds; i++) {
        unsigned char b64[32];
        int n = EVP_EncodeBlock(b64, cds[i].full_hash, SX_CDHASH_LEN);
        if (n != 28)
            return sx_err(SYSEXT_ERROR, "base64 encoding failed");
        r = sx_buf_printf(out, "\t\t<data>\n\t\t%s\n\t\t</data>\n", (const char *)b64);
    }
    if (r == 0)
        r = sx_buf_puts(out, "\t</array>\n</dict>\n</plist>\n");
    return r;
}

/* DER of SEQUENCE { OBJECT IDENTIFIER digest, OCTET STRING hash }. */
static int cdhash_v2_value(const sx_cms_cd *cd, sx_buf *out)
{
    ASN1_OBJECT *obj = OBJ_nid2obj(digest_nid(cd->hash_type));
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    unsigned char *a = NULL, *b = NULL;
    int r = 0;
    if (!obj || !os || !ASN1_OCTET_STRING_set(os, cd->full_hash, (int)cd->full_len)) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: building the 9.2 value");
        goto out;
    }
    int na = i2d_ASN1_OBJECT(obj, &a), nb = i2d_ASN1_OCTET_STRING(os, &b);
    if (na <= 0 || nb <= 0) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: encoding the 9.2 value");
        goto out;
    }
    int content = na + nb;
    int total = ASN1_object_size(1, content, V_ASN1_SEQUENCE);
    if (total <= 0 || (r = sx_buf_reserve(out, (size_t)total)) < 0) {
        r = r < 0 ? r : sx_err(SYSEXT_ERROR, "CMS: 9.2 value size");
        goto out;
    }
    unsigned char *p = out->data + out->len;
    ASN1_put_object(&p, 1, content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    memcpy(p, a, (size_t)na);
    memcpy(p + na, b, (size_t)nb);
    out->len += (size_t)total;
out:
    OPENSSL_free(a);
    OPENSSL_free(b);
    ASN1_OCTET_STRING_free(os);
    return r;
}

static int add_cdhashes_v2(CMS_SignerInfo *si, const sx_cms_cd *cds, size_t n_cds)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(SX_OID_CDHASHES_V2, 1);
    X509_ATTRIBUTE *attr = X509_ATTRIBUTE_new();
    int r = 0;
    if (!obj || !attr || !X509_ATTRIBUTE_set1_object(attr, obj)) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: creating attribute 9.2");
        goto out;
    }
    for (size_t i = 0; i < n_cds; i++) {
        sx_buf v = SX_BUF_INIT;
        if ((r = cdhash_v2_value(&cds[i], &v)) < 0) {
            sx_buf_free(&v);
            goto out;
        }
        int ok = X509_ATTRIBUTE_set1_data(attr, V_ASN1_SEQUENCE, v.data, (int)v.len);
        sx_buf_free(&v);
        if (!ok) {
            r = sx_ossl_err(SYSEXT_ERROR, "CMS: adding a value to attribute 9.2");
            goto out;
        }
    }
    if (!CMS_signed_add1_attr(si, attr))
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: adding attribute 9.2");
out:
    X509_ATTRIBUTE_free(attr);
    ASN1_OBJECT_free(obj);
    return r;
}

int sx_cms_sign(const sx_identity *id, const uint8_t *cd0, size_t cd0_len, const sx_cms_cd *cds,
                size_t n_cds, time_t when, sx_buf *out)
{
    SX_ASSERT_ARG(id && id->key && id->leaf);
    SX_ASSERT_ARG(cd0 && cd0_len > 0);
    SX_ASSERT_ARG(out);
    if (cd0_len > INT32_MAX)
        return sx_err(SYSEXT_ELIMIT, "CMS: CodeDirectory of %zu bytes is too large", cd0_len);
    int r = check_cds(cds, n_cds);
    if (r < 0)
        return r;
    const unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP | CMS_PARTIAL;
    CMS_ContentInfo *cms = NULL;
    ASN1_TIME *t = NULL;
    ASN1_OBJECT *obj91 = NULL;
    BIO *in = NULL;
    unsigned char *der = NULL;
    sx_buf xml = SX_BUF_INIT;

    if (!(cms = CMS_sign(NULL, NULL, NULL, NULL, flags))) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: creating SignedData");
        goto out;
    }
    CMS_SignerInfo *si = CMS_add1_signer(cms, id->leaf, id->key, EVP_sha256(), flags);
    if (!si) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: adding the signer");
        goto out;
    }
    /* signingTime: UTCTime like Apple's (GeneralizedTime only outside 1950-2049). */
    if (!when)
        when = time(NULL);
    if (!(t = ASN1_UTCTIME_set(NULL, when)) && !(t = ASN1_TIME_set(NULL, when))) {
        r = sx_ossl_err(SYSEXT_EINVAL, "CMS: signing time %lld", (long long)when);
        goto out;
    }
    ERR_clear_error();
    if (!CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, t->type, t, -1)) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: adding signingTime");
        goto out;
    }
    if ((r = add_cdhashes_v2(si, cds, n_cds)) < 0 || (r = sx_cms_cdhashes_plist(cds, n_cds, &xml)) < 0)
        goto out;
    if (!(obj91 = OBJ_txt2obj(SX_OID_CDHASHES_PLIST, 1)) ||
        !CMS_signed_add1_attr_by_OBJ(si, obj91, V_ASN1_OCTET_STRING, xml.data, (int)xml.len)) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: adding attribute 9.1");
        goto out;
    }
    for (int i = 0; id->chain && i < sk_X509_num(id->chain); i++) {
        X509 *c = sk_X509_value(id->chain, i);
        if (!X509_cmp(c, id->leaf))
            continue;
        if (!CMS_add1_cert(cms, c)) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_REASON(e) != CMS_R_CERTIFICATE_ALREADY_PRESENT) {
                r = sx_ossl_err(SYSEXT_ERROR, "CMS: adding chain certificate %d", i);
                goto out;
            }
            ERR_clear_error();
        }
    }
    if (!(in = BIO_new_mem_buf(cd0, (int)cd0_len)) || !CMS_final(cms, in, NULL, flags & ~CMS_PARTIAL)) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: signing the CodeDirectory");
        goto out;
    }
    if (EVP_PKEY_is_a(id->key, "RSA")) {
        X509_ALGOR *sig = NULL;
        CMS_SignerInfo_get0_algs(si, NULL, NULL, NULL, &sig);
        if (sig && OBJ_obj2nid(sig->algorithm) == NID_rsaEncryption &&
            !X509_ALGOR_set0(sig, OBJ_nid2obj(NID_sha256WithRSAEncryption), V_ASN1_NULL, NULL)) {
            r = sx_ossl_err(SYSEXT_ERROR, "CMS: setting the signature algorithm");
            goto out;
        }
    }
    int n = i2d_CMS_ContentInfo(cms, &der);
    if (n <= 0) {
        r = sx_ossl_err(SYSEXT_ERROR, "CMS: encoding");
        goto out;
    }
    out->len = 0;
    r = sx_buf_append(out, der, (size_t)n);
out:
    OPENSSL_free(der);
    BIO_free(in);
    ASN1_OBJECT_free(obj91);
    ASN1_TIME_free(t);
    CMS_ContentInfo_free(cms);
    sx_buf_free(&xml);
    return r;
}

/* ---- verification ------------------------------------------------------------------------ */

void sx_cms_info_free(sx_cms_info *info)
{
    if (!info)
        return;
    sk_X509_pop_free(info->chain, X509_free);
    free(info->v1_hashes);
    free(info->v2_hashes);
    free(info->trust_error);
    free(info->timestamp_error);
    memset(info, 0, sizeof(*info));
}

/* The only attribute with `obj` among the signed attributes; NULL when absent. */
static int single_attr(CMS_SignerInfo *si, const ASN1_OBJECT *obj, const char *name,
                       X509_ATTRIBUTE **out)
{
    int i = CMS_signed_get_attr_by_OBJ(si, obj, -1);
    *out = NULL;
    if (i < 0)
        return 0;
    if (CMS_signed_get_attr_by_OBJ(si, obj, i) >= 0)
        return sx_err(SYSEXT_EFORMAT, "CMS: signed attribute %s appears more than once", name);
    *out = CMS_signed_get_attr(si, i);
    if (X509_ATTRIBUTE_count(*out) < 1)
        return sx_err(SYSEXT_EFORMAT, "CMS: signed attribute %s has no value", name);
    return 0;
}

static int read_signing_time(CMS_SignerInfo *si, time_t *out)
{
    X509_ATTRIBUTE *a;
    int r = single_attr(si, OBJ_nid2obj(NID_pkcs9_signingTime), "signingTime", &a);
    if (r < 0 || !a)
        return r;
    if (X509_ATTRIBUTE_count(a) != 1)
        return sx_err(SYSEXT_EFORMAT, "CMS: signingTime has %d values, expected 1",
                      X509_ATTRIBUTE_count(a));
    ASN1_TYPE *v = X509_ATTRIBUTE_get0_type(a, 0);
    if (!v || (v->type != V_ASN1_UTCTIME && v->type != V_ASN1_GENERALIZEDTIME))
        return sx_err(SYSEXT_EFORMAT, "CMS: signingTime is not a UTCTime or GeneralizedTime");
    struct tm tm;
    if (!ASN1_TIME_to_tm((const ASN1_TIME *)v->value.asn1_string, &tm)) {
        ERR_clear_error();
        return sx_err(SYSEXT_EFORMAT, "CMS: signingTime is malformed");
    }
    *out = timegm(&tm);
    return 0;
}

static int read_v1(CMS_SignerInfo *si, sx_cms_info *info)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(SX_OID_CDHASHES_PLIST, 1);
    X509_ATTRIBUTE *a;
    plist_t root = NULL;
    int r = obj ? single_attr(si, obj, "9.1 (cdhashes plist)", &a)
                : sx_ossl_err(SYSEXT_ENOMEM, "OID");
    ASN1_OBJECT_free(obj);
    if (r < 0 || !a)
        return r;
    ASN1_TYPE *v = X509_ATTRIBUTE_get0_type(a, 0);
    if (X509_ATTRIBUTE_count(a) != 1 || !v || v->type != V_ASN1_OCTET_STRING)
        return sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.1 is not a single OCTET STRING");
    const ASN1_OCTET_STRING *os = v->value.octet_string;
    int len = ASN1_STRING_length(os);
    if (len <= 0 || (unsigned)len > SX_CMS_MAX_PLIST)
        return sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.1: plist of %d bytes (limit %u)", len,
                      SX_CMS_MAX_PLIST);
    plist_from_memory((const char *)ASN1_STRING_get0_data(os), (uint32_t)len, &root);
    if (!root || plist_get_node_type(root) != PLIST_DICT)
        goto bad;
    plist_t arr = plist_dict_get_item(root, "cdhashes");
    if (!arr || plist_get_node_type(arr) != PLIST_ARRAY)
        goto bad;
    uint32_t n = plist_array_get_size(arr);
    if (n > SX_CMS_MAX_CDS) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.1 lists %u cdhashes (at most %d)", n,
                   SX_CMS_MAX_CDS);
        goto out;
    }
    /* Allocated even for an empty array: non-NULL means "the attribute is present". */
    if (!(info->v1_hashes = calloc(n ? n : 1, sizeof(*info->v1_hashes)))) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        plist_t item = plist_array_get_item(arr, i);
        char *data = NULL;
        uint64_t dlen = 0;
        if (!item || plist_get_node_type(item) != PLIST_DATA)
            goto bad;
        plist_get_data_val(item, &data, &dlen);
        if (!data || dlen != SX_CDHASH_LEN) {
            free(data);
            r = sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.1: cdhashes[%u] is %llu bytes, expected %d",
                       i, (unsigned long long)dlen, SX_CDHASH_LEN);
            goto out;
        }
        memcpy(info->v1_hashes[i], data, SX_CDHASH_LEN);
        free(data);
    }
    info->n_v1 = n;
    r = 0;
    goto out;
bad:
    r = sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.1 is not a plist dictionary with a "
                               "'cdhashes' array of data");
out:
    if (root)
        plist_free(root);
    return r;
}

static int read_v2(CMS_SignerInfo *si, sx_cms_info *info)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(SX_OID_CDHASHES_V2, 1);
    X509_ATTRIBUTE *a;
    int r = obj ? single_attr(si, obj, "9.2 (cdhashes)", &a) : sx_ossl_err(SYSEXT_ENOMEM, "OID");
    ASN1_OBJECT_free(obj);
    if (r < 0 || !a)
        return r;
    int n = X509_ATTRIBUTE_count(a);
    if (n > SX_CMS_MAX_CDS)
        return sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.2 has %d values (at most %d)", n,
                      SX_CMS_MAX_CDS);
    if (!(info->v2_hashes = calloc((size_t)n, sizeof(*info->v2_hashes))))
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        ASN1_TYPE *v = X509_ATTRIBUTE_get0_type(a, i);
        if (!v || v->type != V_ASN1_SEQUENCE)
            return sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.2 value %d is not a SEQUENCE", i);
        const unsigned char *p = ASN1_STRING_get0_data(v->value.sequence);
        long len = ASN1_STRING_length(v->value.sequence);
        const unsigned char *end = p + len;
        ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
        ERR_clear_error();
        if (!seq || p != end || sk_ASN1_TYPE_num(seq) != 2) {
            sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
            return sx_err(SYSEXT_EFORMAT,
                          "CMS: attribute 9.2 value %d: expected SEQUENCE { OID, OCTET STRING }", i);
        }
        ASN1_TYPE *t0 = sk_ASN1_TYPE_value(seq, 0), *t1 = sk_ASN1_TYPE_value(seq, 1);
        int ok = t0->type == V_ASN1_OBJECT && t1->type == V_ASN1_OCTET_STRING;
        int nid = ok ? OBJ_obj2nid(t0->value.object) : NID_undef;
        uint8_t type = nid == NID_sha1 ? SX_HASH_SHA1 : nid == NID_sha256 ? SX_HASH_SHA256
                     : nid == NID_sha384 ? SX_HASH_SHA384 : 0;
        int hlen = ok ? ASN1_STRING_length(t1->value.octet_string) : -1;
        if (!ok || !type || hlen != (int)sx_cms_full_hash_len(type)) {
            sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
            if (!ok)
                return sx_err(SYSEXT_EFORMAT,
                              "CMS: attribute 9.2 value %d: expected SEQUENCE { OID, OCTET STRING }", i);
            if (!type)
                return sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.2 value %d: unknown digest algorithm", i);
            return sx_err(SYSEXT_EFORMAT, "CMS: attribute 9.2 value %d: %s hash of %d bytes", i,
                          sx_hash_name(type), hlen);
        }
        info->v2_hashes[i].hash_type = type;
        info->v2_hashes[i].len = (size_t)hlen;
        memcpy(info->v2_hashes[i].hash, ASN1_STRING_get0_data(t1->value.octet_string), (size_t)hlen);
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    }
    info->n_v2 = (size_t)n;
    return 0;
}

/* The RFC 3161 token in the unsigned attributes (reference 5.6). It is outside the signature,
 * so a broken token never fails the signature: it is reported in timestamp_error. Valid means:
 * the token's messageImprint is the hash of this SignerInfo's signature value, the TSA's
 * signature over the TSTInfo verifies, and the TSA certificate chains to an anchor at genTime
 * with the timeStamping EKU. (ESSCertID binding of the TSA certificate is not checked.) */
static int ts_fail(sx_cms_info *info, const char *why)
{
    free(info->timestamp_error);
    info->timestamp_error = strdup(why);
    ERR_clear_error();
    return 0;
}

static int read_timestamp(CMS_SignerInfo *si, const sx_trust *trust, sx_cms_info *info)
{
    int idx = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1);
    if (idx < 0)
        return 0;
    info->has_timestamp = 1;
    X509_ATTRIBUTE *a = CMS_unsigned_get_attr(si, idx);
    ASN1_TYPE *v = X509_ATTRIBUTE_count(a) == 1 ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
    if (!v || v->type != V_ASN1_SEQUENCE)
        return ts_fail(info, "the timestamp attribute does not hold one ContentInfo");
    const unsigned char *p = ASN1_STRING_get0_data(v->value.sequence);
    long len = ASN1_STRING_length(v->value.sequence);
    const unsigned char *end = p + len;
    PKCS7 *token = d2i_PKCS7(NULL, &p, len);
    TS_TST_INFO *tst = NULL;
    STACK_OF(X509) *signers = NULL, *built = NULL;
    BIO *bio = NULL;
    char *why = NULL;
    int apple = 0;
    if (!token || p != end || !PKCS7_type_is_signed(token)) {
        ts_fail(info, "the timestamp token is not a SignedData");
        goto out;
    }
    if (!(tst = PKCS7_to_TS_TST_INFO(token))) {
        ts_fail(info, "the timestamp token does not hold a TSTInfo");
        goto out;
    }
    struct tm tm;
    const ASN1_GENERALIZEDTIME *gt = TS_TST_INFO_get_time(tst);
    if (!gt || !ASN1_TIME_to_tm(gt, &tm)) {
        ts_fail(info, "the timestamp's genTime is malformed");
        goto out;
    }
    info->timestamp_time = timegm(&tm);

    TS_MSG_IMPRINT *mi = TS_TST_INFO_get_msg_imprint(tst);
    X509_ALGOR *alg = mi ? TS_MSG_IMPRINT_get_algo(mi) : NULL;
    ASN1_OCTET_STRING *imprint = mi ? TS_MSG_IMPRINT_get_msg(mi) : NULL;
    const EVP_MD *md = alg ? EVP_get_digestbyobj(alg->algorithm) : NULL;
    ASN1_OCTET_STRING *sigval = CMS_SignerInfo_get0_signature(si);
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned hlen = 0;
    if (!md || !imprint || !sigval ||
        !EVP_Digest(ASN1_STRING_get0_data(sigval), (size_t)ASN1_STRING_length(sigval), h, &hlen,
                    md, NULL)) {
        ts_fail(info, "the timestamp's messageImprint cannot be checked");
        goto out;
    }
    if ((int)hlen != ASN1_STRING_length(imprint) ||
        memcmp(h, ASN1_STRING_get0_data(imprint), hlen) != 0) {
        ts_fail(info, "the timestamp is not over this signature (messageImprint mismatch)");
        goto out;
    }
    /* The TSA's own signature over the TSTInfo; its chain is checked below. */
    if (!(bio = BIO_new(BIO_s_null())) ||
        PKCS7_verify(token, NULL, NULL, NULL, bio, PKCS7_NOVERIFY | PKCS7_BINARY) != 1) {
        ts_fail(info, "the timestamp's signature does not verify");
        goto out;
    }
    if (!(signers = PKCS7_get0_signers(token, NULL, 0)) || sk_X509_num(signers) != 1) {
        ts_fail(info, "the timestamp does not have exactly one signer");
        goto out;
    }
    if (!trust || sx_trust_count(trust) == 0) {
        ts_fail(info, "no trust anchors given for the timestamp authority");
        goto out;
    }
    int r = sx_trust_verify_chain(trust, sk_X509_value(signers, 0), token->d.sign->cert,
                                  info->timestamp_time, SX_TRUST_TIMESTAMPING, &built, &apple, &why);
    if (r == SYSEXT_EUNTRUSTED) {
        char msg[512];
        snprintf(msg, sizeof(msg), "timestamp authority: %s", why ? why : "not trusted");
        ts_fail(info, msg);
    } else if (r < 0) {
        free(info->timestamp_error);
        info->timestamp_error = strdup(sx_errmsg());
    } else {
        info->timestamp_valid = 1;
    }
out:
    free(why);
    sk_X509_pop_free(built, X509_free);
    sk_X509_free(signers);
    BIO_free(bio);
    TS_TST_INFO_free(tst);
    PKCS7_free(token);
    ERR_clear_error();
    return 0;
}

/* Leaf first, then the rest of the embedded certificates in path order ("as found"). */
static int chain_as_found(X509 *leaf, STACK_OF(X509) *certs, STACK_OF(X509) **out)
{
    STACK_OF(X509) *rest = sx_chain_order(leaf, certs);
    if (!rest || !X509_up_ref(leaf)) {
        sk_X509_pop_free(rest, X509_free);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    if (!sk_X509_unshift(rest, leaf)) {
        X509_free(leaf);
        sk_X509_pop_free(rest, X509_free);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    *out = rest;
    return 0;
}

/* Find the signer's certificate among `certs` by its SignerIdentifier. */
static X509 *find_signer(CMS_SignerInfo *si, STACK_OF(X509) *certs)
{
    for (int i = 0; i < sk_X509_num(certs); i++)
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0)
            return sk_X509_value(certs, i);
    return NULL;
}

int sx_cms_verify(const uint8_t *cms_der, size_t len, const uint8_t *cd0, size_t cd0_len,
                  const sx_trust *trust, sx_cms_info *info)
{
    SX_ASSERT_ARG(info);
    memset(info, 0, sizeof(*info));
    SX_ASSERT_ARG(cd0 || cd0_len == 0);
    if (!cms_der || len == 0)
        return sx_err(SYSEXT_EFORMAT, "CMS: empty signature (ad-hoc code has no CMS)");
    if (len > SX_CMS_MAX_SIZE)
        return sx_err(SYSEXT_EFORMAT, "CMS: %zu bytes exceeds the limit of %u", len,
                      SX_CMS_MAX_SIZE);
    if (cd0_len > INT32_MAX)
        return sx_err(SYSEXT_ELIMIT, "CMS: CodeDirectory of %zu bytes is too large", cd0_len);

    CMS_ContentInfo *cms = NULL;
    STACK_OF(X509) *certs = NULL;
    BIO *content = NULL;
    int r;
    const unsigned char *p = cms_der;
    ERR_clear_error();
    cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (!cms) {
        r = sx_ossl_err(SYSEXT_EFORMAT, "CMS: not a DER/BER ContentInfo");
        goto out;
    }
    for (size_t off = (size_t)(p - cms_der); off < len; off++)
        if (cms_der[off] != 0) {
            r = sx_err(SYSEXT_EFORMAT, "CMS: trailing data at byte offset %zu",
                       (size_t)(p - cms_der));
            goto out;
        }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: content type is not signedData");
        goto out;
    }
    const ASN1_OBJECT *ect = CMS_get0_eContentType(cms);
    if (!ect || OBJ_obj2nid(ect) != NID_pkcs7_data) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: encapsulated content type is not id-data");
        goto out;
    }
    if (CMS_is_detached(cms) != 1) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: content is embedded, expected a detached signature");
        goto out;
    }
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
    if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: %d SignerInfos, expected exactly 1",
                   sis ? sk_CMS_SignerInfo_num(sis) : 0);
        goto out;
    }
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(sis, 0);
    if (!(certs = CMS_get1_certs(cms)) || sk_X509_num(certs) == 0) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: no certificates");
        goto out;
    }
    if (sk_X509_num(certs) > SX_CMS_MAX_CERTS) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: %d certificates (at most %d)", sk_X509_num(certs),
                   SX_CMS_MAX_CERTS);
        goto out;
    }
    X509 *leaf = find_signer(si, certs);
    if (!leaf) {
        r = sx_err(SYSEXT_EFORMAT, "CMS: the signer's certificate is not included");
        goto out;
    }
    if ((r = chain_as_found(leaf, certs, &info->chain)) < 0)
        goto out;
    info->leaf = sk_X509_value(info->chain, 0);

    /* messageDigest over cd0 and the signer's signature; the chain is ours to check. */
    /* OpenSSL 3.0's CMS_verify copies a memory-BIO content into a temporary BIO that it
     * leaks when the SignedData names an unusable digest (found by fuzzing); a buffering
     * filter on top keeps it on the plain path. */
    BIO *mem = BIO_new_mem_buf(cd0 ? (const void *)cd0 : "", (int)cd0_len);
    if (!mem || !(content = BIO_new(BIO_f_buffer()))) {
        BIO_free(mem);
        r = sx_ossl_err(SYSEXT_ENOMEM, "CMS: content buffer");
        goto out;
    }
    BIO_push(content, mem);
    if (CMS_verify(cms, certs, NULL, content, NULL,
                   CMS_DETACHED | CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
        r = sx_ossl_err(SYSEXT_ESIGNATURE,
                        "CMS: the signature does not verify over the CodeDirectory");
        info->trust_error = strdup("the CMS signature is invalid");
        goto out;
    }
    /* Only digests Apple's verifier knows bind the CodeDirectory (no MD5 and the like). */
    X509_ALGOR *dig = NULL;
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
    int dnid = dig ? OBJ_obj2nid(dig->algorithm) : NID_undef;
    if (dnid != NID_sha1 && dnid != NID_sha256 && dnid != NID_sha384 && dnid != NID_sha512) {
        r = sx_err(SYSEXT_ESIGNATURE, "CMS: digest algorithm %s is not accepted (expected "
                                      "SHA-256, or SHA-1/SHA-384/SHA-512)",
                   dnid == NID_undef ? "(unknown)" : OBJ_nid2sn(dnid));
        info->trust_error = strdup("the CMS signature uses an unacceptable digest");
        goto out;
    }
    /* Attributes are read only once the signature covers them. */
    if ((r = read_signing_time(si, &info->signing_time)) < 0 || (r = read_v1(si, info)) < 0 ||
        (r = read_v2(si, info)) < 0)
        goto out;
    if ((r = read_timestamp(si, trust, info)) < 0)
        goto out;

    time_t at = info->timestamp_valid ? info->timestamp_time : info->signing_time;
    if (!trust || sx_trust_count(trust) == 0) {
        info->trust_error = strdup("no trust anchors given");
    } else {
        STACK_OF(X509) *built = NULL;
        char *why = NULL;
        int tr = sx_trust_verify_chain(trust, leaf, certs, at, SX_TRUST_CODE_SIGNING, &built,
                                       &info->anchor_is_apple,
                                       &why);
        info->chain_checked_at = at;
        if (tr == 0) {
            sk_X509_pop_free(info->chain, X509_free);
            info->chain = built;
            info->leaf = sk_X509_value(built, 0);
            info->chain_trusted = 1;
        } else if (tr == SYSEXT_EUNTRUSTED) {
            sk_X509_pop_free(built, X509_free);
            info->anchor_is_apple = 0;
            info->trust_error = why ? why : strdup("the chain is not trusted");
        } else {
            r = tr;
            goto out;
        }
    }
    r = 0;
out:
    ERR_clear_error();
    BIO_free_all(content);
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    if (r < 0 && r != SYSEXT_ESIGNATURE)
        sx_cms_info_free(info);
    return r;
}

int sx_cms_check_cdhashes(const sx_cms_info *info, const sx_cms_cd *cds, size_t n_cds)
{
    SX_ASSERT_ARG(info);
    int r = check_cds(cds, n_cds);
    if (r < 0)
        return r;
    int have_v1 = info->v1_hashes != NULL;
    int have_v2 = info->v2_hashes != NULL;
    if (n_cds > 1 && !have_v1 && !have_v2)
        return sx_err(SYSEXT_ESIGNATURE, "CMS: %zu CodeDirectories but no cdhash attribute "
                                         "(9.1 or 9.2) binds the alternates", n_cds);
    if (have_v1) {
        if (info->n_v1 != n_cds)
            return sx_err(SYSEXT_ESIGNATURE,
                          "CMS: attribute 9.1 lists %zu cdhashes, the signature has %zu "
                          "CodeDirectories", info->n_v1, n_cds);
        for (size_t i = 0; i < n_cds; i++)
            if (memcmp(info->v1_hashes[i], cds[i].full_hash, SX_CDHASH_LEN) != 0)
                return sx_err(SYSEXT_ESIGNATURE,
                              "CMS: attribute 9.1 cdhashes[%zu] does not match the %s "
                              "CodeDirectory", i, sx_hash_name(cds[i].hash_type));
    }
    if (have_v2) {
        if (info->n_v2 != n_cds)
            return sx_err(SYSEXT_ESIGNATURE,
                          "CMS: attribute 9.2 has %zu cdhashes, the signature has %zu "
                          "CodeDirectories", info->n_v2, n_cds);
        for (size_t i = 0; i < n_cds; i++) {
            uint8_t want = cds[i].hash_type == SX_HASH_SHA256_TRUNCATED ? SX_HASH_SHA256
                                                                         : cds[i].hash_type;
            int found = 0;
            for (size_t j = 0; j < info->n_v2 && !found; j++)
                found = info->v2_hashes[j].hash_type == want &&
                        info->v2_hashes[j].len == cds[i].full_len &&
                        !memcmp(info->v2_hashes[j].hash, cds[i].full_hash, cds[i].full_len);
            if (!found)
                return sx_err(SYSEXT_ESIGNATURE,
                              "CMS: attribute 9.2 has no matching %s cdhash for CodeDirectory %zu",
                              sx_hash_name(cds[i].hash_type), i);
        }
    }
    return 0;
}
