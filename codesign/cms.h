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
    /* cdhashes from attribute 9.1 (20 bytes each) and 9.2 (full), as found. */
    uint8_t (*v1_hashes)[20];
    size_t n_v1;
    struct { uint8_t hash_type; uint8_t hash[48]; size_t len; } *v2_hashes;
    size_t n_v2;
    int chain_trusted;      /* chained to an anchor in the trust store */
    int anchor_is_apple;    /* the anchor is one of Apple's roots (by fingerprint) */
    char *trust_error;      /* why the chain is not trusted, if not */
} sx_cms_info;

/* Verify the signature over `cd0` (messageDigest and signer signature). Then, with a trust
 * store, build the chain to one of its anchors at the signing time (or now), tolerating
 * Apple's critical marker extensions. Returns 0 when the signature is valid (trust is
 * reported in info->chain_trusted), SYSEXT_ESIGNATURE when it is not, SYSEXT_EFORMAT when
 * the CMS is malformed. */
int sx_cms_verify(const uint8_t *cms, size_t len, const uint8_t *cd0, size_t cd0_len,
                  const sx_trust *trust, sx_cms_info *info);
void sx_cms_info_free(sx_cms_info *info);

/* One-line subject ("CN=..., OU=..., O=...") newly allocated. */
char *sx_cert_subject_line(X509 *cert);

#endif
