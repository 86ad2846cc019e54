/* Trust anchors and chain building for code-signing certificates (reference 5.7, 5.8).
 *
 * - Anchors are whatever the caller adds (PEM or DER files, or directories of them); there is
 *   no implicit system store. Chains must end at a self-signed anchor (no partial chains), so
 *   "anchor_is_apple" means the root itself is one of Apple's.
 * - Apple marks its leaf markers (1.2.840.113635.100.6.1.x) critical. OpenSSL rejects unknown
 *   critical extensions, so the verify callback accepts X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION
 *   only when every critical extension of that certificate is either one OpenSSL handles or
 *   one of Apple's marker OIDs listed below; anything else stays fatal.
 * - Purpose: OpenSSL 3.0 has no code-signing purpose, so the chain is built with purpose
 *   "any" and the leaf's extended key usage, when present, must include codeSigning (or
 *   anyExtendedKeyUsage). */
#include "util/common.h"
#include "codesign/cms.h"

#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "util/fs.h"
#include "util/hex.h"

#define SX_TRUST_MAX_FILE (4u << 20)
#define SX_TRUST_MAX_FILES 4096

struct sx_trust {
    X509_STORE *store;
    int n_anchors;
};

/* Apple's certificate markers that Apple may mark critical (reference 5.7). */
static const char *const apple_marker_oids[] = {
    "1.2.840.113635.100.6.1.2",  "1.2.840.113635.100.6.1.3",  "1.2.840.113635.100.6.1.4",
    "1.2.840.113635.100.6.1.7",  "1.2.840.113635.100.6.1.8",  "1.2.840.113635.100.6.1.9",
    "1.2.840.113635.100.6.1.12", "1.2.840.113635.100.6.1.13", "1.2.840.113635.100.6.1.14",
    "1.2.840.113635.100.6.1.18", "1.2.840.113635.100.6.1.22", "1.2.840.113635.100.6.1.30",
    "1.2.840.113635.100.6.1.33", "1.2.840.113635.100.6.2.1",  "1.2.840.113635.100.6.2.3",
    "1.2.840.113635.100.6.2.6",  "1.2.840.113635.100.6.2.9",  "1.2.840.113635.100.6.2.14",
    "1.2.840.113635.100.6.2.17", "1.2.840.113635.100.6.2.31",
};

/* SHA-256 fingerprints of Apple Root CA, Apple Root CA - G2, Apple Root CA - G3
 * (samples/apple/PROVENANCE.md section 4). */
static const char *const apple_root_sha256[] = {
    "b0b1730ecbc7ff4505142c49f1295e6eda6bcaed7e2c68c5be91b5a11001f024",
    "c2b9b042dd57830e7d117dac55ac8ae19407d38e41d88f3215bc3a890444a050",
    "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179",
};

int sx_cert_is_apple_root(X509 *cert)
{
    uint8_t md[32];
    unsigned n = 0;
    char hex[65];
    if (!cert || !X509_digest(cert, EVP_sha256(), md, &n) || n != 32) {
        ERR_clear_error();
        return 0;
    }
    sx_hex_encode(md, 32, hex);
    for (size_t i = 0; i < SX_ARRAY_SIZE(apple_root_sha256); i++)
        if (!strcmp(hex, apple_root_sha256[i]))
            return 1;
    return 0;
}

static int is_apple_marker(const ASN1_OBJECT *obj)
{
    char txt[80];
    int n = OBJ_obj2txt(txt, sizeof(txt), obj, 1);
    if (n <= 0 || (size_t)n >= sizeof(txt))
        return 0;
    for (size_t i = 0; i < SX_ARRAY_SIZE(apple_marker_oids); i++)
        if (!strcmp(txt, apple_marker_oids[i]))
            return 1;
    return 0;
}

/* Every critical extension is one OpenSSL handles or a known Apple marker. */
static int critical_exts_acceptable(X509 *cert)
{
    int n = X509_get_ext_count(cert);
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ex = X509_get_ext(cert, i);
        if (!X509_EXTENSION_get_critical(ex))
            continue;
        if (X509_supported_extension(ex))
            continue;
        if (!is_apple_marker(X509_EXTENSION_get_object(ex)))
            return 0;
    }
    return 1;
}

static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION) {
        X509 *c = X509_STORE_CTX_get_current_cert(ctx);
        if (c && critical_exts_acceptable(c)) {
            X509_STORE_CTX_set_error(ctx, X509_V_OK);
            return 1;
        }
    }
    return ok;
}

int sx_trust_new(sx_trust **out)
{
    SX_ASSERT_ARG(out);
    sx_trust *t = calloc(1, sizeof(*t));
    if (!t)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (!(t->store = X509_STORE_new())) {
        free(t);
        return sx_ossl_err(SYSEXT_ENOMEM, "creating a certificate store");
    }
    *out = t;
    return 0;
}

void sx_trust_free(sx_trust *t)
{
    if (!t)
        return;
    X509_STORE_free(t->store);
    free(t);
}

int sx_trust_count(const sx_trust *t)
{
    return t ? t->n_anchors : 0;
}

static int add_cert(sx_trust *t, X509 *c, const char *path)
{
    if (!X509_STORE_add_cert(t->store, c)) {
        unsigned long e = ERR_peek_last_error();
        /* The same anchor twice is harmless. */
        if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
            return sx_ossl_err(SYSEXT_ERROR, "%s: adding the certificate to the trust store", path);
        ERR_clear_error();
        return 0;
    }
    t->n_anchors++;
    return 0;
}

int sx_trust_add_cert(sx_trust *t, X509 *cert)
{
    SX_ASSERT_ARG(t);
    SX_ASSERT_ARG(cert);
    return add_cert(t, cert, "certificate");
}

/* Add the certificates in one file. `strict`: a file without any certificate is an error
 * (explicit file) rather than skipped (directory scan: key files, READMEs). */
static int add_file(sx_trust *t, const char *path, int strict)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r = sx_read_file(path, SX_TRUST_MAX_FILE, &data, &len);
    if (r < 0)
        return r;
    int found = 0;
    if (memmem(data, len, "-----BEGIN ", 11)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        X509 *c;
        if (!bio) {
            r = sx_ossl_err(SYSEXT_ENOMEM, "%s", path);
            goto out;
        }
        while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            r = add_cert(t, c, path);
            X509_free(c);
            if (r < 0) {
                BIO_free(bio);
                goto out;
            }
            found++;
        }
        BIO_free(bio);
        unsigned long e = ERR_peek_last_error();
        if (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
            r = sx_ossl_err(SYSEXT_EFORMAT, "%s: malformed PEM certificate", path);
            goto out;
        }
        ERR_clear_error();
    } else {
        const unsigned char *p = data;
        X509 *c = d2i_X509(NULL, &p, (long)len);
        if (c) {
            r = add_cert(t, c, path);
            X509_free(c);
            if (r < 0)
                goto out;
            found++;
        }
        ERR_clear_error();
    }
    if (!found && strict)
        r = sx_err(SYSEXT_EFORMAT, "%s: no certificate (expected PEM or DER X.509)", path);
out:
    free(data);
    return r;
}

int sx_trust_add_path(sx_trust *t, const char *path)
{
    SX_ASSERT_ARG(t);
    SX_ASSERT_ARG(path);
    struct stat st;
    if (stat(path, &st) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    if (!S_ISDIR(st.st_mode))
        return add_file(t, path, 1);
    DIR *d = opendir(path);
    if (!d)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    struct dirent *e;
    int r = 0, before = t->n_anchors, files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (++files > SX_TRUST_MAX_FILES) {
            r = sx_err(SYSEXT_ELIMIT, "%s: more than %d files", path, SX_TRUST_MAX_FILES);
            break;
        }
        char *p = sx_path_join(path, e->d_name);
        if (!p) {
            r = sx_err(SYSEXT_ENOMEM, "%s: path too long", path);
            break;
        }
        struct stat fst;
        if (stat(p, &fst) == 0 && S_ISREG(fst.st_mode))
            r = add_file(t, p, 0);
        free(p);
        if (r < 0)
            break;
    }
    closedir(d);
    if (r == 0 && t->n_anchors == before)
        r = sx_err(SYSEXT_ENOTFOUND, "%s: no certificate in this directory", path);
    return r;
}

char *sx_cert_subject_line(X509 *cert)
{
    if (!cert)
        return NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return NULL;
    char *out = NULL;
    unsigned long flags = XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN | ASN1_STRFLGS_UTF8_CONVERT |
                          ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_ESC_2253;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, flags) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        if (n >= 0)
            out = strndup(p ? p : "", (size_t)n);
    }
    BIO_free(bio);
    ERR_clear_error();
    return out;
}

int sx_cert_allows_code_signing(X509 *leaf)
{
    uint32_t flags = X509_get_extension_flags(leaf);
    if (!(flags & EXFLAG_XKUSAGE))
        return 1;
    uint32_t xku = X509_get_extended_key_usage(leaf);
    return (xku & (XKU_CODE_SIGN | XKU_ANYEKU)) != 0;
}

static int allows_timestamping(X509 *leaf)
{
    uint32_t flags = X509_get_extension_flags(leaf);
    return (flags & EXFLAG_XKUSAGE) && (X509_get_extended_key_usage(leaf) & XKU_TIMESTAMP);
}

int sx_trust_verify_chain(const sx_trust *t, X509 *leaf, STACK_OF(X509) *untrusted, time_t at,
                          int usage, STACK_OF(X509) **chain_out, int *anchor_is_apple, char **why)
{
    SX_ASSERT_ARG(t);
    SX_ASSERT_ARG(leaf);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int r;
    *anchor_is_apple = 0;
    *why = NULL;
    if (!ctx)
        return sx_ossl_err(SYSEXT_ENOMEM, "creating a verification context");
    if (!X509_STORE_CTX_init(ctx, t->store, leaf, untrusted)) {
        r = sx_ossl_err(SYSEXT_ERROR, "initialising chain verification");
        goto out;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    if (at)
        X509_VERIFY_PARAM_set_time(param, at);
    else
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_NO_CHECK_TIME);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
    X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
    int ok = X509_verify_cert(ctx);
    if (ok == 1) {
        STACK_OF(X509) *chain = X509_STORE_CTX_get1_chain(ctx);
        if (!chain) {
            r = sx_ossl_err(SYSEXT_ENOMEM, "copying the verified chain");
            goto out;
        }
        X509 *anchor = sk_X509_value(chain, sk_X509_num(chain) - 1);
        *anchor_is_apple = sx_cert_is_apple_root(anchor);
        *chain_out = chain;
        if (usage == SX_TRUST_CODE_SIGNING && !sx_cert_allows_code_signing(leaf)) {
            *why = strdup("the leaf certificate's extended key usage does not include codeSigning");
            r = SYSEXT_EUNTRUSTED;
        } else if (usage == SX_TRUST_TIMESTAMPING && !allows_timestamping(leaf)) {
            *why = strdup("the TSA certificate's extended key usage does not include timeStamping");
            r = SYSEXT_EUNTRUSTED;
        } else {
            r = 0;
        }
    } else {
        int e = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
        char *subj = bad ? sx_cert_subject_line(bad) : NULL;
        char tbuf[32] = "";
        struct tm tm;
        if (!at)
            snprintf(tbuf, sizeof(tbuf), "no time");
        else if (gmtime_r(&at, &tm))
            strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (asprintf(why, "%s (certificate %d%s%s; checked at %s)",
                     X509_verify_cert_error_string(e), depth, subj ? ", " : "", subj ? subj : "",
                     tbuf) < 0)
            *why = NULL;
        free(subj);
        r = SYSEXT_EUNTRUSTED;
    }
    ERR_clear_error();
out:
    X509_STORE_CTX_free(ctx);
    return r;
}
