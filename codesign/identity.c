/* Signing identities: the private development PKI (`sysextctl ca init`, `identity create`)
 * and loading a developer's PKCS#12 or PEM key + chain (reference 5.7).
 *
 * Design decisions:
 * - Keys are RSA 2048 (root, intermediate and leaves): what Apple issues for code signing,
 *   and what every verifier (codesign, rcodesign, OpenSSL, older macOS) accepts.
 * - One intermediate carries BOTH Apple intermediate markers, 6.2.1 (WWDR) and 6.2.6
 *   (Developer ID CA), so the designated requirements codesign generates for either kind of
 *   leaf (reference 3.6: `certificate 1[field.1.2.840.113635.100.6.2.6] exists` for Developer
 *   ID, `... 6.2.1 exists` for Apple Development) are satisfiable by our chains. The markers
 *   are non-critical with a NULL value, as in Apple's intermediates.
 * - Leaf markers are non-critical (Apple marks some critical): generic verifiers such as
 *   `openssl cms -verify` then accept our signatures. The verifier (trust.c) still tolerates
 *   Apple's critical ones.
 * - CA keys are written unencrypted (PEM, PKCS#8) with mode 0600: a development / CI CA.
 * - Identity PKCS#12 files use AES-256-CBC PBE (PBKDF2) for key and certificates, SHA-256
 *   MAC, mode 0600; an existing output file is never overwritten. */
#include "util/common.h"
#include "codesign/identity.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sysext/identity.h"
#include "util/buf.h"
#include "util/fs.h"

#define SX_KEY_BITS 2048
#define SX_CA_DAYS 3650
#define SX_LEAF_DEV_DAYS 365
#define SX_LEAF_DEVID_DAYS (5 * 365)
#define SX_IDENTITY_MAX_FILE (1u << 20) /* a PKCS#12 or PEM bundle is a few KiB */

int sx_ossl_err(int code, const char *fmt, ...)
{
    char msg[512], detail[512];
    size_t used = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    detail[0] = '\0';
    const char *data;
    int flags;
    unsigned long e;
    unsigned count = 0;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (count++ >= 3)
            continue;
        const char *reason = ERR_reason_error_string(e);
        char one[200];
        int k = snprintf(one, sizeof(one), "%s%s%s%s", used ? "; " : "",
                         reason ? reason : "unknown error",
                         (flags & ERR_TXT_STRING) && data && *data ? ": " : "",
                         (flags & ERR_TXT_STRING) && data ? data : "");
        if (k < 0)
            continue;
        size_t kk = (size_t)k < sizeof(one) ? (size_t)k : sizeof(one) - 1;
        if (used + kk + 1 < sizeof(detail)) {
            memcpy(detail + used, one, kk);
            used += kk;
            detail[used] = '\0';
        }
    }
    ERR_clear_error();
    if (used)
        return sx_err(code, "%s (OpenSSL: %s)", msg, detail);
    return sx_err(code, "%s", msg);
}

int sx_team_id_valid(const char *team)
{
    if (!team || strlen(team) != 10)
        return 0;
    for (const char *p = team; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

int sx_cert_has_ext(X509 *cert, const char *oid)
{
    if (!cert)
        return 0;
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    if (!obj)
        return 0;
    int found = X509_get_ext_by_OBJ(cert, obj, -1) >= 0;
    ASN1_OBJECT_free(obj);
    return found;
}

static char *name_entry(X509 *cert, int nid)
{
    X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
    int i = name ? X509_NAME_get_index_by_NID(name, nid, -1) : -1;
    if (i < 0)
        return NULL;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, s);
    if (len < 0)
        return NULL;
    char *out = NULL;
    if (memchr(utf8, '\0', (size_t)len) == NULL)
        out = strndup((const char *)utf8, (size_t)len);
    OPENSSL_free(utf8);
    return out;
}

char *sx_cert_team_id(X509 *cert)
{
    return name_entry(cert, NID_organizationalUnitName);
}

/* The certificate in `chain` that issued `cert` (by name and signature), or NULL. */
static X509 *find_issuer(X509 *cert, STACK_OF(X509) *chain, const int *used)
{
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        if ((used && used[i]) || c == cert)
            continue;
        if (X509_check_issued(c, cert) == X509_V_OK) {
            EVP_PKEY *pk = X509_get0_pubkey(c);
            if (pk && X509_verify(cert, pk) == 1)
                return c;
        }
    }
    ERR_clear_error();
    return NULL;
}

STACK_OF(X509) *sx_chain_order(X509 *leaf, STACK_OF(X509) *certs)
{
    STACK_OF(X509) *out = sk_X509_new_null();
    int n = certs ? sk_X509_num(certs) : 0;
    int *used = calloc((size_t)n + 1, sizeof(int));
    if (!out || !used)
        goto fail;
    for (int i = 0; i < n; i++)
        if (!X509_cmp(sk_X509_value(certs, i), leaf))
            used[i] = 1; /* the leaf itself (and duplicates of it) */
    X509 *cur = leaf;
    while (cur && !(X509_check_issued(cur, cur) == X509_V_OK)) {
        X509 *iss = find_issuer(cur, certs, used);
        if (!iss)
            break;
        for (int i = 0; i < n; i++)
            if (sk_X509_value(certs, i) == iss)
                used[i] = 1;
        if (!X509_up_ref(iss) || !sk_X509_push(out, iss)) {
            X509_free(iss);
            goto fail;
        }
        cur = iss;
    }
    for (int i = 0; i < n; i++) {
        X509 *c = sk_X509_value(certs, i);
        if (used[i])
            continue;
        if (!X509_up_ref(c) || !sk_X509_push(out, c)) {
            X509_free(c);
            goto fail;
        }
    }
    ERR_clear_error();
    free(used);
    return out;
fail:
    free(used);
    sk_X509_pop_free(out, X509_free);
    return NULL;
}

sx_signer_kind sx_signer_kind_of(X509 *leaf, STACK_OF(X509) *chain)
{
    if (!leaf)
        return SX_SIGNER_ADHOC;
    /* The issuing intermediate, when the chain is known; a lone leaf is judged by its own
     * markers (the DR built from it can only be satisfied with the chain anyway). */
    X509 *issuer = chain && sk_X509_num(chain) > 0 ? find_issuer(leaf, chain, NULL) : NULL;
    int have_chain = chain && sk_X509_num(chain) > 0;
    if (sx_cert_has_ext(leaf, SX_OID_APPLE_DEVID_APP) &&
        (!have_chain || sx_cert_has_ext(issuer, SX_OID_APPLE_DEVID_CA)))
        return SX_SIGNER_DEVELOPER_ID;
    if ((sx_cert_has_ext(leaf, SX_OID_APPLE_DEV_IPHONE) ||
         sx_cert_has_ext(leaf, SX_OID_APPLE_MAC_DEV) ||
         sx_cert_has_ext(leaf, SX_OID_APPLE_MAC_APP) ||
         sx_cert_has_ext(leaf, SX_OID_APPLE_DIST_IPHONE)) &&
        (!have_chain || sx_cert_has_ext(issuer, SX_OID_APPLE_WWDR_CA)))
        return SX_SIGNER_DEVELOPMENT;
    return SX_SIGNER_OTHER;
}

/* ---- files ---------------------------------------------------------------------------- */

/* Create `path` exclusively (never overwrite) with `mode`, write it whole and fsync. */
static int write_new_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        int e = errno;
        if (e == EEXIST)
            return sx_err(SYSEXT_EEXISTS, "%s: already exists; refusing to overwrite", path);
        return sx_err_errno(sx_errno_code(e), e, "%s", path);
    }
    /* The umask may have narrowed the mode; make it exact. */
    if (fchmod(fd, mode) < 0)
        goto io;
    const uint8_t *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            goto io;
        p += k;
        left -= (size_t)k;
    }
    if (fsync(fd) < 0)
        goto io;
    if (close(fd) < 0) {
        int e = errno;
        unlink(path);
        return sx_err_errno(SYSEXT_EIO, e, "%s", path);
    }
    return 0;
io: {
    int e = errno;
    close(fd);
    unlink(path);
    return sx_err_errno(SYSEXT_EIO, e, "%s", path);
}
}

static int bio_to_buf(BIO *bio, sx_buf *out)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    if (n < 0)
        return sx_err(SYSEXT_ERROR, "memory BIO failed");
    return sx_buf_append(out, p, (size_t)n);
}

static int pem_key(EVP_PKEY *key, sx_buf *out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int r;
    if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        r = sx_ossl_err(SYSEXT_ERROR, "encoding a private key as PEM");
    else
        r = bio_to_buf(bio, out);
    BIO_free(bio);
    return r;
}

static int pem_cert(X509 *cert, sx_buf *out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int r;
    if (!bio || !PEM_write_bio_X509(bio, cert))
        r = sx_ossl_err(SYSEXT_ERROR, "encoding a certificate as PEM");
    else
        r = bio_to_buf(bio, out);
    BIO_free(bio);
    return r;
}

/* ---- certificate building --------------------------------------------------------------- */

static int add_conf_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex)
        return sx_ossl_err(SYSEXT_ERROR, "building extension %s = %s", OBJ_nid2sn(nid), value);
    int ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : sx_ossl_err(SYSEXT_ERROR, "adding extension %s", OBJ_nid2sn(nid));
}

/* An Apple marker extension: `der` is the complete DER value (e.g. NULL = 05 00). */
static int add_marker(X509 *cert, const char *oid, const uint8_t *der, size_t der_len)
{
    int r = 0;
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ex = NULL;
    if (!obj || !os || !ASN1_OCTET_STRING_set(os, der, (int)der_len) ||
        !(ex = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os)) || !X509_add_ext(cert, ex, -1))
        r = sx_ossl_err(SYSEXT_ERROR, "adding marker extension %s", oid);
    X509_EXTENSION_free(ex);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return r;
}

static const uint8_t der_null[] = {0x05, 0x00};

static int set_name(X509_NAME *name, const char *const *kv, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        if (!X509_NAME_add_entry_by_txt(name, kv[i], MBSTRING_UTF8, (const unsigned char *)kv[i + 1],
                                        -1, -1, 0))
            return sx_ossl_err(SYSEXT_EINVAL, "subject %s = \"%s\" is not acceptable", kv[i],
                               kv[i + 1]);
    return 0;
}

static int random_serial(X509 *cert)
{
    BIGNUM *bn = BN_new();
    int r = 0;
    /* 127 random bits with the top one set: positive, 16 bytes, never zero. */
    if (!bn || !BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
        r = sx_ossl_err(SYSEXT_ERROR, "generating a certificate serial number");
    BN_free(bn);
    return r;
}

/* A certificate for `key`'s public half with subject `subj`, signed by `issuer_key`
 * (self-signed when issuer is NULL), valid from 5 minutes ago for `days` days but never
 * beyond the issuer's notAfter. */
static int new_cert(EVP_PKEY *key, const char *const *subj, size_t nsubj, X509 *issuer,
                    long days, X509 **out)
{
    int r;
    X509 *c = X509_new();
    if (!c)
        return sx_ossl_err(SYSEXT_ENOMEM, "allocating a certificate");
    if (!X509_set_version(c, 2) || !X509_set_pubkey(c, key) ||
        !X509_gmtime_adj(X509_getm_notBefore(c), -300) ||
        !X509_time_adj_ex(X509_getm_notAfter(c), (int)days, 0, NULL)) {
        r = sx_ossl_err(SYSEXT_ERROR, "setting certificate fields");
        goto fail;
    }
    if ((r = random_serial(c)) < 0 || (r = set_name(X509_get_subject_name(c), subj, nsubj)) < 0)
        goto fail;
    if (issuer) {
        if (ASN1_TIME_compare(X509_get0_notAfter(c), X509_get0_notAfter(issuer)) > 0 &&
            !X509_set1_notAfter(c, X509_get0_notAfter(issuer))) {
            r = sx_ossl_err(SYSEXT_ERROR, "setting notAfter");
            goto fail;
        }
        if (!X509_set_issuer_name(c, X509_get_subject_name(issuer))) {
            r = sx_ossl_err(SYSEXT_ERROR, "setting the issuer name");
            goto fail;
        }
    } else if (!X509_set_issuer_name(c, X509_get_subject_name(c))) {
        r = sx_ossl_err(SYSEXT_ERROR, "setting the issuer name");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    X509_free(c);
    return r;
}

static int sign_cert(X509 *c, EVP_PKEY *issuer_key)
{
    if (X509_sign(c, issuer_key, EVP_sha256()) <= 0)
        return sx_ossl_err(SYSEXT_ERROR, "signing a certificate");
    return 0;
}

static int gen_key(EVP_PKEY **out)
{
    EVP_PKEY *k = EVP_RSA_gen(SX_KEY_BITS);
    if (!k)
        return sx_ossl_err(SYSEXT_ERROR, "generating an RSA %d key", SX_KEY_BITS);
    *out = k;
    return 0;
}

/* ---- ca init ----------------------------------------------------------------------------- */

int sx_ca_init(const char *dir)
{
    SX_ASSERT_ARG(dir && *dir);
    static const char *const names[4] = {SX_CA_ROOT_KEY, SX_CA_ROOT_CERT, SX_CA_INT_KEY,
                                         SX_CA_INT_CERT};
    char *paths[4] = {NULL, NULL, NULL, NULL};
    sx_buf pem[4] = {SX_BUF_INIT, SX_BUF_INIT, SX_BUF_INIT, SX_BUF_INIT};
    EVP_PKEY *root_key = NULL, *int_key = NULL;
    X509 *root = NULL, *inter = NULL;
    int created = 0, r;

    for (int i = 0; i < 4; i++) {
        if (!(paths[i] = sx_path_join(dir, names[i]))) {
            r = sx_err(SYSEXT_ENOMEM, "%s: path too long", dir);
            goto out;
        }
        if (access(paths[i], F_OK) == 0) {
            r = sx_err(SYSEXT_EEXISTS, "%s: a CA already exists here (%s); refusing to overwrite",
                       dir, names[i]);
            goto out;
        }
        if (errno != ENOENT) {
            r = sx_err_errno(sx_errno_code(errno), errno, "%s", paths[i]);
            goto out;
        }
    }
    if ((r = sx_mkdir_p(dir, 0755)) < 0)
        goto out;

    static const char *const root_subj[] = {"CN", "sysext Development Root CA", "OU",
                                            "sysext Certification Authority", "O", "sysext",
                                            "C", "US"};
    static const char *const int_subj[] = {"CN", "sysext Developer Intermediate CA", "OU",
                                           "sysext Certification Authority", "O", "sysext",
                                           "C", "US"};
    if ((r = gen_key(&root_key)) < 0 || (r = gen_key(&int_key)) < 0)
        goto out;
    if ((r = new_cert(root_key, root_subj, SX_ARRAY_SIZE(root_subj), NULL, SX_CA_DAYS, &root)) <
            0 ||
        (r = add_conf_ext(root, NULL, NID_basic_constraints, "critical,CA:TRUE")) < 0 ||
        (r = add_conf_ext(root, NULL, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (r = add_conf_ext(root, NULL, NID_subject_key_identifier, "hash")) < 0 ||
        (r = sign_cert(root, root_key)) < 0)
        goto out;
    if ((r = new_cert(int_key, int_subj, SX_ARRAY_SIZE(int_subj), root, SX_CA_DAYS, &inter)) < 0 ||
        (r = add_conf_ext(inter, root, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
        (r = add_conf_ext(inter, root, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (r = add_conf_ext(inter, root, NID_subject_key_identifier, "hash")) < 0 ||
        (r = add_conf_ext(inter, root, NID_authority_key_identifier, "keyid:always")) < 0 ||
        (r = add_marker(inter, SX_OID_APPLE_WWDR_CA, der_null, sizeof(der_null))) < 0 ||
        (r = add_marker(inter, SX_OID_APPLE_DEVID_CA, der_null, sizeof(der_null))) < 0 ||
        (r = sign_cert(inter, root_key)) < 0)
        goto out;
    if ((r = pem_key(root_key, &pem[0])) < 0 || (r = pem_cert(root, &pem[1])) < 0 ||
        (r = pem_key(int_key, &pem[2])) < 0 || (r = pem_cert(inter, &pem[3])) < 0)
        goto out;
    for (created = 0; created < 4; created++) {
        mode_t mode = (created % 2 == 0) ? 0600 : 0644;
        if ((r = write_new_file(paths[created], pem[created].data, pem[created].len, mode)) < 0)
            goto out;
    }
    r = sx_fsync_dir(dir);
out:
    if (r < 0)
        for (int i = 0; i < created; i++)
            unlink(paths[i]);
    for (int i = 0; i < 4; i++) {
        free(paths[i]);
        sx_buf_free(&pem[i]);
    }
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(int_key);
    X509_free(root);
    X509_free(inter);
    return r;
}

/* ---- PEM reading ------------------------------------------------------------------------- */

static int read_small_file(const char *path, uint8_t **data, size_t *len)
{
    int r = sx_read_file(path, SX_IDENTITY_MAX_FILE, data, len);
    return r;
}

static int pem_pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pass = u;
    if (!pass)
        return 0;
    size_t n = strlen(pass);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, pass, n);
    return (int)n;
}

/* Every certificate in a PEM buffer, appended to `certs`. */
static int pem_read_certs(const char *what, const uint8_t *data, size_t len, STACK_OF(X509) *certs)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio)
        return sx_ossl_err(SYSEXT_ENOMEM, "%s: reading", what);
    X509 *c;
    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(certs, c)) {
            X509_free(c);
            BIO_free(bio);
            return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
        }
    }
    BIO_free(bio);
    /* The loop ends with "no start line" at the end of the input: not an error. */
    unsigned long e = ERR_peek_last_error();
    if (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return sx_ossl_err(SYSEXT_EFORMAT, "%s: malformed PEM certificate", what);
    ERR_clear_error();
    return 0;
}

static int pem_read_key(const char *what, const uint8_t *data, size_t len, const char *password,
                        EVP_PKEY **out)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio)
        return sx_ossl_err(SYSEXT_ENOMEM, "%s: reading", what);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, pem_pass_cb, (void *)password);
    BIO_free(bio);
    if (!k) {
        unsigned long e = ERR_peek_last_error();
        if (e && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
            ERR_clear_error();
            return sx_err(SYSEXT_ENOTFOUND, "%s: no private key in this PEM file", what);
        }
        return sx_ossl_err(SYSEXT_EFORMAT,
                           "%s: the private key cannot be read (wrong password or malformed)",
                           what);
    }
    *out = k;
    return 0;
}

static int is_pem(const uint8_t *data, size_t len)
{
    return memmem(data, len, "-----BEGIN ", 11) != NULL;
}

/* ---- PKCS#12 ----------------------------------------------------------------------------- */

/* OpenSSL 3 moved RC2/3DES PBEs (older Keychain exports) into the legacy provider; load it
 * (with default beside it) on demand. */
static void load_legacy_once(void)
{
    OSSL_PROVIDER_load(NULL, "default");
    OSSL_PROVIDER_load(NULL, "legacy");
    ERR_clear_error();
}

static void load_legacy_provider(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load_legacy_once);
}

static int p12_parse(const char *path, const uint8_t *data, size_t len, const char *password,
                     EVP_PKEY **key, X509 **leaf, STACK_OF(X509) **ca)
{
    const unsigned char *p = data;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (!p12)
        return sx_ossl_err(SYSEXT_EFORMAT, "%s: neither PEM nor a PKCS#12 file", path);
    const char *pass = password ? password : "";
    int r = 0;
    if (PKCS12_mac_present(p12)) {
        /* "" and NULL are different PKCS#12 passwords; codesign-style exports use either. */
        if (PKCS12_verify_mac(p12, pass, -1))
            ;
        else if (!*pass && PKCS12_verify_mac(p12, NULL, 0))
            pass = NULL;
        else {
            ERR_clear_error();
            r = sx_err(SYSEXT_EPERM, "%s: wrong password (the PKCS#12 MAC does not verify)", path);
            goto out;
        }
    }
    if (!PKCS12_parse(p12, pass, key, leaf, ca)) {
        load_legacy_provider();
        if (!PKCS12_parse(p12, pass, key, leaf, ca)) {
            r = sx_ossl_err(SYSEXT_EFORMAT, "%s: the PKCS#12 contents cannot be decrypted", path);
            goto out;
        }
    }
    if (!*key || !*leaf) {
        r = sx_err(SYSEXT_EFORMAT, "%s: the PKCS#12 holds no %s", path,
                   !*key ? "private key" : "certificate matching the key");
        goto out;
    }
out:
    PKCS12_free(p12);
    return r;
}

/* ---- load -------------------------------------------------------------------------------- */

void sx_identity_free(sx_identity *id)
{
    if (!id)
        return;
    EVP_PKEY_free(id->key);
    X509_free(id->leaf);
    sk_X509_pop_free(id->chain, X509_free);
    free(id->team_id);
    free(id->common_name);
    free(id);
}

int sx_identity_load(const char *path, const char *chain_pem, const char *password,
                     sx_identity **out)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(out);
    uint8_t *data = NULL, *chain_data = NULL;
    size_t len = 0, chain_len = 0;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    STACK_OF(X509) *certs = NULL, *chain = NULL;
    sx_identity *id = NULL;
    int r;

    if ((r = read_small_file(path, &data, &len)) < 0)
        goto out;
    if (chain_pem && (r = read_small_file(chain_pem, &chain_data, &chain_len)) < 0)
        goto out;
    if (!(certs = sk_X509_new_null())) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if (is_pem(data, len)) {
        if ((r = pem_read_key(path, data, len, password, &key)) < 0 ||
            (r = pem_read_certs(path, data, len, certs)) < 0)
            goto out;
    } else {
        if (chain_pem) {
            r = sx_err(SYSEXT_EINVAL, "%s: a certificate chain file goes with a PEM key, not a "
                                      "PKCS#12 file", path);
            goto out;
        }
        if ((r = p12_parse(path, data, len, password, &key, &leaf, &certs)) < 0)
            goto out;
    }
    if (chain_data) {
        if (!is_pem(chain_data, chain_len)) {
            r = sx_err(SYSEXT_EFORMAT, "%s: expected PEM certificates", chain_pem);
            goto out;
        }
        if ((r = pem_read_certs(chain_pem, chain_data, chain_len, certs)) < 0)
            goto out;
    }
    if (!leaf) {
        /* The leaf is the certificate whose public key matches the private key. */
        for (int i = 0; i < sk_X509_num(certs); i++) {
            X509 *c = sk_X509_value(certs, i);
            if (X509_check_private_key(c, key) == 1) {
                if (!X509_up_ref(c)) {
                    r = sx_ossl_err(SYSEXT_ERROR, "reference count");
                    goto out;
                }
                leaf = c;
                break;
            }
        }
        ERR_clear_error();
        if (!leaf) {
            r = sx_err(SYSEXT_ENOTFOUND, "%s%s%s: no certificate matches the private key", path,
                       chain_pem ? " + " : "", chain_pem ? chain_pem : "");
            goto out;
        }
    } else if (X509_check_private_key(leaf, key) != 1) {
        r = sx_ossl_err(SYSEXT_EINVALID, "%s: the certificate does not match the private key",
                        path);
        goto out;
    }
    if (!(chain = sx_chain_order(leaf, certs))) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if (!(id = calloc(1, sizeof(*id)))) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    id->team_id = sx_cert_team_id(leaf);
    id->common_name = name_entry(leaf, NID_commonName);
    id->kind = sx_signer_kind_of(leaf, chain);
    id->key = SX_TAKE_PTR(key);
    id->leaf = SX_TAKE_PTR(leaf);
    id->chain = SX_TAKE_PTR(chain);
    *out = SX_TAKE_PTR(id);
    r = 0;
out:
    free(data);
    free(chain_data);
    EVP_PKEY_free(key);
    X509_free(leaf);
    sk_X509_pop_free(certs, X509_free);
    sk_X509_pop_free(chain, X509_free);
    sx_identity_free(id);
    return r;
}

int sx_read_password_file(const char *path, char **out)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(out);
    uint8_t *data = NULL;
    size_t len = 0;
    int r = sx_read_file(path, 64 * 1024, &data, &len);
    if (r < 0)
        return r;
    size_t n = 0;
    while (n < len && data[n] != '\n' && data[n] != '\0')
        n++;
    if (n > 0 && data[n - 1] == '\r')
        n--;
    char *s = strndup((const char *)data, n);
    explicit_bzero(data, len);
    free(data);
    if (!s)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *out = s;
    return 0;
}

/* ---- identity create --------------------------------------------------------------------- */

static int load_ca_part(const char *dir, const char *name, int want_key, EVP_PKEY **key,
                        X509 **cert)
{
    char *p = sx_path_join(dir, name);
    uint8_t *data = NULL;
    size_t len = 0;
    int r;
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "%s: path too long", dir);
    if ((r = read_small_file(p, &data, &len)) < 0)
        goto out;
    if (want_key) {
        r = pem_read_key(p, data, len, NULL, key);
    } else {
        STACK_OF(X509) *certs = sk_X509_new_null();
        if (!certs) {
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        r = pem_read_certs(p, data, len, certs);
        if (r == 0 && sk_X509_num(certs) < 1)
            r = sx_err(SYSEXT_EFORMAT, "%s: no certificate", p);
        if (r == 0)
            *cert = sk_X509_shift(certs);
        sk_X509_pop_free(certs, X509_free);
    }
out:
    free(p);
    free(data);
    return r;
}

int sx_identity_create(const char *ca_dir, const char *team_id, const char *common_name,
                       sx_identity_kind kind, const char *password, const char *out_p12)
{
    SX_ASSERT_ARG(ca_dir);
    SX_ASSERT_ARG(common_name && *common_name);
    SX_ASSERT_ARG(out_p12);
    if (!sx_team_id_valid(team_id))
        return sx_err(SYSEXT_EINVAL,
                      "team ID \"%s\": expected exactly 10 upper-case letters or digits",
                      team_id ? team_id : "");
    if (kind != SX_ID_DEVELOPMENT && kind != SX_ID_DEVELOPER_ID)
        return sx_err(SYSEXT_EINVAL, "unknown identity kind %d", (int)kind);
    if (access(out_p12, F_OK) == 0)
        return sx_err(SYSEXT_EEXISTS, "%s: already exists; refusing to overwrite", out_p12);

    EVP_PKEY *int_key = NULL, *key = NULL;
    X509 *inter = NULL, *root = NULL, *leaf = NULL;
    STACK_OF(X509) *ca = NULL;
    PKCS12 *p12 = NULL;
    unsigned char *der = NULL;
    int r;

    if ((r = load_ca_part(ca_dir, SX_CA_INT_KEY, 1, &int_key, NULL)) < 0 ||
        (r = load_ca_part(ca_dir, SX_CA_INT_CERT, 0, NULL, &inter)) < 0 ||
        (r = load_ca_part(ca_dir, SX_CA_ROOT_CERT, 0, NULL, &root)) < 0)
        goto out;
    if (X509_check_private_key(inter, int_key) != 1) {
        r = sx_ossl_err(SYSEXT_EINVALID, "%s: %s does not match %s", ca_dir, SX_CA_INT_KEY,
                        SX_CA_INT_CERT);
        goto out;
    }
    if ((r = gen_key(&key)) < 0)
        goto out;
    const char *subj[] = {"UID", team_id, "CN", common_name, "OU", team_id,
                          "O",   common_name, "C", "US"};
    long days = kind == SX_ID_DEVELOPER_ID ? SX_LEAF_DEVID_DAYS : SX_LEAF_DEV_DAYS;
    if ((r = new_cert(key, subj, SX_ARRAY_SIZE(subj), inter, days, &leaf)) < 0 ||
        (r = add_conf_ext(leaf, inter, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
        (r = add_conf_ext(leaf, inter, NID_key_usage, "critical,digitalSignature")) < 0 ||
        (r = add_conf_ext(leaf, inter, NID_ext_key_usage, "critical,codeSigning")) < 0 ||
        (r = add_conf_ext(leaf, inter, NID_subject_key_identifier, "hash")) < 0 ||
        (r = add_conf_ext(leaf, inter, NID_authority_key_identifier, "keyid:always")) < 0)
        goto out;
    if (kind == SX_ID_DEVELOPER_ID) {
        /* 6.1.33: the date as a UTF8String "YYYYMMDDhhmmssZ", as in Apple's leaves. */
        char date[32];
        struct tm tm;
        time_t now = time(NULL);
        uint8_t der_date[2 + 32];
        if (!gmtime_r(&now, &tm) || strftime(date, sizeof(date), "%Y%m%d000000Z", &tm) != 15) {
            r = sx_err(SYSEXT_ERROR, "formatting the Developer ID date");
            goto out;
        }
        der_date[0] = 0x0c;
        der_date[1] = 15;
        memcpy(der_date + 2, date, 15);
        if ((r = add_marker(leaf, SX_OID_APPLE_DEVID_APP, der_null, sizeof(der_null))) < 0 ||
            (r = add_marker(leaf, SX_OID_APPLE_DEVID_DATE, der_date, 17)) < 0)
            goto out;
    } else {
        if ((r = add_marker(leaf, SX_OID_APPLE_DEV_IPHONE, der_null, sizeof(der_null))) < 0 ||
            (r = add_marker(leaf, SX_OID_APPLE_MAC_DEV, der_null, sizeof(der_null))) < 0)
            goto out;
    }
    if ((r = sign_cert(leaf, int_key)) < 0)
        goto out;

    if (!(ca = sk_X509_new_null()) || !sk_X509_push(ca, inter)) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    inter = NULL;
    if (!sk_X509_push(ca, root)) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    root = NULL;
    p12 = PKCS12_create_ex(password ? password : "", common_name, key, leaf, ca,
                           NID_aes_256_cbc, NID_aes_256_cbc, PKCS12_DEFAULT_ITER, PKCS12_DEFAULT_ITER,
                           0, NULL, NULL);
    if (!p12) {
        r = sx_ossl_err(SYSEXT_ERROR, "%s: building the PKCS#12", out_p12);
        goto out;
    }
    int n = i2d_PKCS12(p12, &der);
    if (n <= 0) {
        r = sx_ossl_err(SYSEXT_ERROR, "%s: encoding the PKCS#12", out_p12);
        goto out;
    }
    r = write_new_file(out_p12, der, (size_t)n, 0600);
out:
    OPENSSL_free(der);
    PKCS12_free(p12);
    sk_X509_pop_free(ca, X509_free);
    EVP_PKEY_free(int_key);
    EVP_PKEY_free(key);
    X509_free(inter);
    X509_free(root);
    X509_free(leaf);
    return r;
}

/* ---- public API ---------------------------------------------------------------------------- */

SYSEXT_API int sysext_ca_init(const char *dir)
{
    SX_ASSERT_ARG(dir);
    sx_err_clear();
    return sx_ca_init(dir);
}

SYSEXT_API int sysext_identity_kind_parse(const char *name, sysext_identity_kind *out)
{
    SX_ASSERT_ARG(name);
    SX_ASSERT_ARG(out);
    if (!strcmp(name, "development"))
        *out = SYSEXT_IDENTITY_DEVELOPMENT;
    else if (!strcmp(name, "developer-id"))
        *out = SYSEXT_IDENTITY_DEVELOPER_ID;
    else
        return sx_err(SYSEXT_EINVAL, "identity kind \"%s\": expected development or developer-id",
                      name);
    return 0;
}

SYSEXT_API int sysext_identity_create(const sysext_identity_options *opts)
{
    SX_ASSERT_ARG(opts);
    if (opts->version != SYSEXT_IDENTITY_OPTIONS_VERSION)
        return sx_err(SYSEXT_EINVAL, "sysext_identity_options version %d, expected %d",
                      opts->version, SYSEXT_IDENTITY_OPTIONS_VERSION);
    SX_ASSERT_ARG(opts->ca_dir);
    SX_ASSERT_ARG(opts->team_id);
    SX_ASSERT_ARG(opts->common_name);
    SX_ASSERT_ARG(opts->output);
    char *pw = NULL;
    int r;
    if (opts->password_file && (r = sx_read_password_file(opts->password_file, &pw)) < 0)
        return r;
    sx_identity_kind kind;
    switch (opts->kind) {
    case SYSEXT_IDENTITY_DEVELOPMENT:
        kind = SX_ID_DEVELOPMENT;
        break;
    case SYSEXT_IDENTITY_DEVELOPER_ID:
        kind = SX_ID_DEVELOPER_ID;
        break;
    default:
        free(pw);
        return sx_err(SYSEXT_EINVAL, "unknown identity kind %d", (int)opts->kind);
    }
    r = sx_identity_create(opts->ca_dir, opts->team_id, opts->common_name, kind,
                           pw ? pw : (opts->password ? opts->password : ""), opts->output);
    if (pw) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    return r;
}
