/* The CMS signature (reference section 5): a detached SignedData over the slot-0
 * CodeDirectory with Apple's cdhash attributes, and its verification. */
#ifndef SX_CS_CMS_H
#define SX_CS_CMS_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "codesign/identity.h"
#include "util/buf.h"

/* One CodeDirectory as the CMS attributes describe it. */
typedef struct sx_cms_cd {
    uint8_t hash_type;
    const uint8_t *full_hash; /* untruncated hash of the CD blob with its own type */
    size_t full_len;
} sx_cms_cd;

/* Sign `cd0` (the slot-0 CD bytes) detached: SHA-256 digest, signingTime = `when`
 * (0 = now), attributes 1.2.840.113635.100.9.1 (plist of truncated cdhashes) and 9.2
 * (one SEQUENCE per CD), the whole chain including the root. `cds` in ascending hash type. */
int sx_cms_sign(const sx_identity *id, const uint8_t *cd0, size_t cd0_len, const sx_cms_cd *cds,
                size_t n_cds, time_t when, sx_buf *out);

/* Trust anchors: PEM or DER certificate files, or directories of them. */
typedef struct sx_trust sx_trust;
int sx_trust_new(sx_trust **out);
int sx_trust_add_path(sx_trust *t, const char *path); /* file or directory */
void sx_trust_free(sx_trust *t);

typedef struct sx_cms_info {
    STACK_OF(X509) *chain;  /* leaf first, as built (or as found when untrusted); owned */
    X509 *leaf;             /* borrowed from chain */
    time_t signing_time;    /* 0 if absent */
    int has_timestamp;      /* an RFC 3161 token is present */
    /* cdhashes from attribute 9.1 (20 bytes each) and 9.2 (full), as found; each array is
     * non-NULL exactly when its attribute is present (even with no entries). */
    uint8_t (*v1_hashes)[20];
    size_t n_v1;
    struct { uint8_t hash_type; uint8_t hash[48]; size_t len; } *v2_hashes;
    size_t n_v2;
    int chain_trusted;      /* chained to an anchor in the trust store */
    int anchor_is_apple;    /* the anchor is one of Apple's roots (by fingerprint) */
    char *trust_error;      /* why the chain is not trusted, if not */
    /* The RFC 3161 timestamp (unsigned attribute), when has_timestamp: */
    time_t timestamp_time;  /* its genTime; 0 if unreadable */
    int timestamp_valid;    /* imprint = hash of this signature, TSA signature valid, and the
                             * TSA chain trusted at genTime (needs a trust store) */
    char *timestamp_error;  /* why not valid, if not */
    time_t chain_checked_at; /* when validity periods were checked; 0 = not checked (no
                              * timestamp and no signingTime: expiry tolerated, as Apple does) */
} sx_cms_info;

/* Verify the signature over `cd0` (messageDigest and signer signature). Then, with a trust
 * store, build the chain to one of its anchors at the time of a valid RFC 3161 timestamp, else
 * at the signing time, else without validity-period checks (Apple tolerates expiry without a
 * secure timestamp; reference 5.8 step 5), tolerating
 * Apple's critical marker extensions. Returns 0 when the signature is valid (trust is
 * reported in info->chain_trusted), SYSEXT_ESIGNATURE when it is not, SYSEXT_EFORMAT when
 * the CMS is malformed.
 * `info` is zeroed first; sx_cms_info_free() is safe after any return. On SYSEXT_ESIGNATURE
 * info->chain / leaf hold the embedded certificates as found (for display) and nothing else.
 * Attributes are only read once the signature verifies. Without a trust store (or an empty
 * one) chain_trusted is 0 and trust_error says so; anchor_is_apple is set only for a trusted
 * chain whose root is Apple Root CA / G2 / G3. v2_hashes report SHA-256 entries as type 2
 * (Apple records a type-3 CD's hash as SHA-256 too). */
int sx_cms_verify(const uint8_t *cms, size_t len, const uint8_t *cd0, size_t cd0_len,
                  const sx_trust *trust, sx_cms_info *info);
void sx_cms_info_free(sx_cms_info *info);

/* One-line subject ("CN=..., OU=..., O=...") newly allocated. */
char *sx_cert_subject_line(X509 *cert);

/* ---- additions ---- */

/* Largest CMS blob sx_cms_verify accepts (Apple's are ~2-10 KiB with a timestamp). */
#define SX_CMS_MAX_SIZE (1u << 20)
/* OID of the cdhashes plist attribute (5.4) and of the cdhashes v2 attribute (5.5). */
#define SX_OID_CDHASHES_PLIST "1.2.840.113635.100.9.1"
#define SX_OID_CDHASHES_V2 "1.2.840.113635.100.9.2"

/* Untruncated hash length of a CD hash type as the CMS attributes carry it (type 3,
 * SHA-256 truncated, is recorded with its full 32-byte SHA-256); 0 if unknown. */
size_t sx_cms_full_hash_len(uint8_t hash_type);

/* The 9.1 attribute's XML (reference 5.4) for these CDs: exact bytes, newly allocated. */
int sx_cms_cdhashes_plist(const sx_cms_cd *cds, size_t n_cds, sx_buf *out);

/* Check the attributes found by sx_cms_verify against the CDs actually present (reference
 * 5.4, 5.5, 5.8 step 3): 9.1, when present, lists exactly the CDs' truncated cdhashes in
 * order; 9.2, when present, has one entry per CD with the CD's full hash (types 2 and 3 are
 * both recorded as SHA-256); with more than one CD at least one of them must be present.
 * SYSEXT_ESIGNATURE naming the mismatch otherwise. */
int sx_cms_check_cdhashes(const sx_cms_info *info, const sx_cms_cd *cds, size_t n_cds);

/* Add one certificate as an anchor (a reference is taken). */
int sx_trust_add_cert(sx_trust *t, X509 *cert);
/* Number of certificates added to the store. */
int sx_trust_count(const sx_trust *t);
/* The certificate is Apple Root CA, G2 or G3 (SHA-256 fingerprint). */
int sx_cert_is_apple_root(X509 *cert);
/* No EKU, or an EKU with codeSigning or anyExtendedKeyUsage. */
int sx_cert_allows_code_signing(X509 *leaf);
/* What the leaf of a chain must be allowed to do (its EKU, when it has one). */
enum { SX_TRUST_CODE_SIGNING = 0, SX_TRUST_TIMESTAMPING = 1 };
/* Build and verify the chain of `leaf` to an anchor of `t` at time `at`, with `untrusted`
 * (may be NULL) as intermediates, for `usage` (SX_TRUST_*); at == 0 skips validity periods. 0 and *chain_out (leaf first, anchor last, caller frees)
 * when trusted; SYSEXT_EUNTRUSTED with *why (newly allocated, may be NULL on OOM) otherwise.
 * *anchor_is_apple is set only on success. */
int sx_trust_verify_chain(const sx_trust *t, X509 *leaf, STACK_OF(X509) *untrusted, time_t at,
                          int usage, STACK_OF(X509) **chain_out, int *anchor_is_apple, char **why);

#endif
