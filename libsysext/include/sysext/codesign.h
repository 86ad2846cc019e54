/**
 * Code signing in Apple's on-disk format: sign, verify and display bundles.
 *
 * Signatures are written as the detached component files codesign writes in `_CodeSignature/`
 * for a bundle whose main executable is not Mach-O: CodeDirectory, CodeRequirements,
 * CodeResources, CodeEntitlements, CodeEntitlementDER and CodeSignature (CMS, empty when
 * ad-hoc). A `.dext` is flat, so its `_CodeSignature/` sits at the bundle's top.
 */
#ifndef SYSEXT_CODESIGN_H
#define SYSEXT_CODESIGN_H

#include <stddef.h>
#include <time.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

#ifndef SYSEXT_OUTPUT_JSON
/** Output flag: render a report as JSON instead of text. */
#define SYSEXT_OUTPUT_JSON 0x1u
#endif
/** display: include the entitlements. */
#define SYSEXT_DISPLAY_ENTITLEMENTS 0x2u
/** display: include the requirements as text. */
#define SYSEXT_DISPLAY_REQUIREMENTS 0x4u

#define SYSEXT_SIGN_OPTIONS_VERSION 1
typedef struct sysext_sign_options {
    unsigned version;          /**< SYSEXT_SIGN_OPTIONS_VERSION */
    const char *identity;      /**< PKCS#12, or a PEM key (+ chain); NULL when adhoc */
    const char *chain;         /**< PEM certificate chain when `identity` is a PEM key alone */
    const char *password_file; /**< first line is the identity's password; NULL: empty */
    const char *entitlements;  /**< entitlements plist (XML or binary); NULL: none */
    int adhoc;                 /**< sign without an identity (flags adhoc, no CMS) */
    int incremental;           /**< reuse digests of unchanged files from a cache */
    const char *cache_dir;     /**< where the incremental cache lives; NULL: XDG cache dir */
    unsigned threads;          /**< hashing threads; 0 = all online CPUs */
    time_t signing_time;       /**< 0 = now */
} sysext_sign_options;
#define SYSEXT_SIGN_OPTIONS_INIT {SYSEXT_SIGN_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, 0}

/**
 * Sign the bundle at `path` alone. Embedded system extensions must already be signed: an app
 * whose `Contents/Library/SystemExtensions/` holds an unsigned one is refused, naming it.
 * Atomic: on failure the previous signature state is left as it was.
 * @return 0; SYSEXT_EINVALID for an unsigned embedded extension; others with a message.
 */
SYSEXT_API int sysext_sign(const char *path, const sysext_sign_options *opts);

#define SYSEXT_VERIFY_OPTIONS_VERSION 1
typedef struct sysext_verify_options {
    unsigned version;           /**< SYSEXT_VERIFY_OPTIONS_VERSION */
    int strict;                 /**< no unsealed files, no symlink leaving the bundle, ... */
    int deep;                   /**< verify nested code and embedded extensions fully */
    const char *const *trust;   /**< anchor certificates (PEM/DER files or folders) */
    size_t n_trust;
    unsigned flags;             /**< SYSEXT_OUTPUT_JSON */
} sysext_verify_options;
#define SYSEXT_VERIFY_OPTIONS_INIT {SYSEXT_VERIFY_OPTIONS_VERSION, 0, 0, NULL, 0, 0}

/**
 * Verify the signature of a bundle (or a Mach-O file with an embedded signature).
 * @param[out] out_text  the report (text, or JSON with SYSEXT_OUTPUT_JSON), owned by the
 *                       caller (free()); set whenever the return is 0 or SYSEXT_EINVALID
 * @return 0 valid; SYSEXT_EINVALID invalid (every failure is in the report); others on error
 */
SYSEXT_API int sysext_verify(const char *path, const sysext_verify_options *opts, char **out_text);

/**
 * Describe a signature: format, identifier, team ID, cdhashes and hash types, page size,
 * flags, signing chain, signing time, entitlements, designated requirement.
 * @param flags  SYSEXT_OUTPUT_JSON | SYSEXT_DISPLAY_ENTITLEMENTS | SYSEXT_DISPLAY_REQUIREMENTS
 * @param[out] out_text  owned by the caller (free())
 */
SYSEXT_API int sysext_display(const char *path, unsigned flags, char **out_text);

SYSEXT_END_DECLS

#endif
