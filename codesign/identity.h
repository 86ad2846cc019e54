/* Signing identities: a private development PKI (ca init, identity create), and loading a
 * developer's existing PKCS#12 or PEM key + chain through OpenSSL 3. */
#ifndef SX_CS_IDENTITY_H
#define SX_CS_IDENTITY_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codesign/requirement.h"

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

#endif
