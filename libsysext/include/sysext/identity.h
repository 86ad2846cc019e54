/**
 * Signing identities: a private development PKI and code-signing leaf certificates.
 *
 * `sysext_ca_init()` creates a root CA and an intermediate in a directory (PEM files, private
 * keys mode 0600); `sysext_identity_create()` issues a code-signing leaf from that
 * intermediate and saves key + leaf + intermediate + root as a PKCS#12 file. The leaf is
 * marked like an Apple Development or Developer ID Application certificate (subject OU = team
 * ID, EKU codeSigning, Apple's marker extensions), so the designated requirements Apple's
 * codesign generates for those kinds are satisfiable against this PKI's root.
 */
#ifndef SYSEXT_IDENTITY_H
#define SYSEXT_IDENTITY_H

#include <stddef.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

/**
 * Create a development CA in `dir` (created if missing): root.key.pem, root.cert.pem,
 * intermediate.key.pem, intermediate.cert.pem. RSA 2048 keys, unencrypted PKCS#8 PEM, mode
 * 0600; certificates mode 0644, valid 10 years. The intermediate carries both Apple
 * intermediate markers (1.2.840.113635.100.6.2.1 WWDR and .6.2.6 Developer ID CA).
 *
 * @return 0; SYSEXT_EEXISTS if any of those files already exists (nothing is overwritten);
 *         SYSEXT_EIO and friends on file errors
 */
SYSEXT_API int sysext_ca_init(const char *dir);

typedef enum sysext_identity_kind {
    SYSEXT_IDENTITY_DEVELOPMENT = 0,  /**< Apple Development: leaf markers 6.1.2 + 6.1.12 */
    SYSEXT_IDENTITY_DEVELOPER_ID = 1, /**< Developer ID Application: 6.1.13 + 6.1.33 date */
} sysext_identity_kind;

/** Parse "development" or "developer-id". @return 0 or SYSEXT_EINVAL */
SYSEXT_API int sysext_identity_kind_parse(const char *name, sysext_identity_kind *out);

#define SYSEXT_IDENTITY_OPTIONS_VERSION 1

/** What sysext_identity_create() needs. Strings are borrowed for the call only. */
typedef struct sysext_identity_options {
    int version;                /**< SYSEXT_IDENTITY_OPTIONS_VERSION */
    const char *ca_dir;         /**< a directory made by sysext_ca_init() */
    const char *team_id;        /**< exactly 10 of [A-Z0-9]; becomes subject OU and UID */
    const char *common_name;    /**< subject CN and O */
    sysext_identity_kind kind;
    const char *output;         /**< the PKCS#12 file to write (mode 0600); must not exist */
    const char *password;       /**< PKCS#12 password; NULL means "" */
    const char *password_file;  /**< if set, its first line is the password (wins over password) */
} sysext_identity_options;

#define SYSEXT_IDENTITY_OPTIONS_INIT                                                               \
    { SYSEXT_IDENTITY_OPTIONS_VERSION, NULL, NULL, NULL, SYSEXT_IDENTITY_DEVELOPMENT, NULL, NULL, NULL }

/**
 * Issue a code-signing leaf from the CA in `opts->ca_dir` and write it, its fresh RSA 2048
 * key, the intermediate and the root to `opts->output` as PKCS#12 (AES-256-CBC PBE, SHA-256
 * MAC). Subject: UID=TEAM, CN=name, OU=TEAM, O=name, C=US; basicConstraints CA:FALSE, key
 * usage digitalSignature and EKU codeSigning (all critical); random 127-bit serial; valid 1
 * year (development) or 5 years (Developer ID), never beyond the intermediate.
 *
 * @return 0; SYSEXT_EINVAL for a bad team ID or kind; SYSEXT_EEXISTS if the output exists;
 *         SYSEXT_ENOTFOUND / SYSEXT_EFORMAT if the CA directory is missing or damaged
 */
SYSEXT_API int sysext_identity_create(const sysext_identity_options *opts);

SYSEXT_END_DECLS

#endif
