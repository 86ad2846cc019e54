/* Signing identities: a private development PKI (ca init, identity create), and loading a
 * developer's existing PKCS#12 or PEM key + chain through OpenSSL 3. */
#ifndef SX_CS_IDENTITY_H
#define SX_CS_IDENTITY_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codesign/requirement.h"
#include "util/error.h"

typedef struct sx_identity {
    EVP_PKEY *key;
    X509 *leaf;
    STACK_OF(X509) *chain; /* intermediates and root, not the leaf; may be empty */
    char *team_id;         /* first subject OU of the leaf, NULL if none */
    char *common_name;
    sx_signer_kind kind;   /* from the leaf's Apple marker OIDs */
} sx_identity;

/* `dir`/root.key.pem, root.cert.pem, intermediate.key.pem, intermediate.cert.pem, keys 0600.
 * Refuses to overwrite an existing CA. */
int sx_ca_init(const char *dir);

typedef enum sx_identity_kind { SX_ID_DEVELOPMENT, SX_ID_DEVELOPER_ID } sx_identity_kind;

/* Issue a code-signing leaf from the CA's intermediate and save key + leaf + chain as
 * PKCS#12 at `out_p12` (0600). team_id: 10 upper-case alphanumerics. password may be "". */
int sx_identity_create(const char *ca_dir, const char *team_id, const char *common_name,
                       sx_identity_kind kind, const char *password, const char *out_p12);

/* Load a PKCS#12 file, or a PEM file holding the key and the certificate chain (leaf first),
 * or `path` = key PEM and `chain_pem` = certificates PEM. */
int sx_identity_load(const char *path, const char *chain_pem, const char *password,
                     sx_identity **out);
void sx_identity_free(sx_identity *id);

/* Read a password file: first line, without the newline. */
int sx_read_password_file(const char *path, char **out);

/* Team ID rule: exactly 10 of [A-Z0-9]. */
int sx_team_id_valid(const char *team);

/* Classify a leaf by Apple's marker OIDs (reference 5.7). */
sx_signer_kind sx_signer_kind_of(X509 *leaf, STACK_OF(X509) *chain);
/* First subject OU of a certificate, newly allocated, or NULL. */
char *sx_cert_team_id(X509 *cert);

/* Files sx_ca_init writes inside its directory. */
#define SX_CA_ROOT_KEY "root.key.pem"
#define SX_CA_ROOT_CERT "root.cert.pem"
#define SX_CA_INT_KEY "intermediate.key.pem"
#define SX_CA_INT_CERT "intermediate.cert.pem"

/* Apple's marker OIDs (reference 5.7), all under 1.2.840.113635.100. */
#define SX_OID_APPLE_DEV_IPHONE "1.2.840.113635.100.6.1.2"  /* Apple/iPhone Development */
#define SX_OID_APPLE_DIST_IPHONE "1.2.840.113635.100.6.1.4" /* iPhone Distribution */
#define SX_OID_APPLE_MAC_APP "1.2.840.113635.100.6.1.7"     /* Mac app signing */
#define SX_OID_APPLE_MAC_DEV "1.2.840.113635.100.6.1.12"    /* Mac Developer */
#define SX_OID_APPLE_DEVID_APP "1.2.840.113635.100.6.1.13"  /* Developer ID Application */
#define SX_OID_APPLE_DEVID_DATE "1.2.840.113635.100.6.1.33" /* Developer ID date */
#define SX_OID_APPLE_WWDR_CA "1.2.840.113635.100.6.2.1"     /* WWDR intermediate */
#define SX_OID_APPLE_DEVID_CA "1.2.840.113635.100.6.2.6"    /* Developer ID intermediate */

/* True when `cert` carries an extension with that dotted OID (critical or not). */
int sx_cert_has_ext(X509 *cert, const char *oid);

/* Order `certs` as a path from `leaf` upward (each the issuer of the one before, by name and
 * signature); certificates off the path follow in their original order. The leaf itself is
 * left out. Returns a new stack holding new references, or NULL on allocation failure. */
STACK_OF(X509) *sx_chain_order(X509 *leaf, STACK_OF(X509) *certs);

/* sx_err() with the OpenSSL error queue (drained) appended: "msg (OpenSSL: reason...)". */
int sx_ossl_err(int code, const char *fmt, ...) SX_PRINTF(2, 3);

#endif
