/**
 * Notarization on the client side: stapled tickets and Gatekeeper-like assessment.
 *
 * A ticket (docs/ticket-format.md) is issued by a sysext notary for accepted code and is
 * checked offline with the notary's certificate. It is stapled into a bundle at
 * `Contents/CodeResources` (deep bundle) or `<bundle>/CodeResources` (flat .dext).
 */
#ifndef SYSEXT_NOTARY_H
#define SYSEXT_NOTARY_H

#include <stddef.h>
#include <stdint.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

/**
 * Check the ticket stapled to the bundle at `path` offline: present, well-formed, signed by
 * the notary whose certificate (PEM or DER) is `notary_cert`, and covering the cdhash of the
 * bundle's main code (its best CodeDirectory).
 * @param flags     SYSEXT_OUTPUT_JSON for a JSON report
 * @param[out] out_text  the result (text or JSON), owned by the caller (free()); set whenever
 *                  the return is 0 or SYSEXT_EINVALID
 * @return 0 valid; SYSEXT_EINVALID (no ticket, malformed, not from this notary, or not for
 *         this code: the reason is in the text and the message); others on error
 */
SYSEXT_API int sysext_staple_validate(const char *path, const char *notary_cert, unsigned flags,
                                      char **out_text);

/**
 * Staple a ticket (raw bytes, as the notary returns it) to the bundle at `path`, atomically.
 * The ticket is parsed first; it is not checked against a notary certificate.
 * @return 0; SYSEXT_EFORMAT for a malformed ticket; SYSEXT_EINVAL if `path` is not a bundle
 */
SYSEXT_API int sysext_staple_ticket(const char *path, const uint8_t *ticket, size_t len);

#define SYSEXT_ASSESS_OPTIONS_VERSION 1
typedef struct sysext_assess_options {
    unsigned version;           /**< SYSEXT_ASSESS_OPTIONS_VERSION */
    const char *const *trust;   /**< trusted developer roots (PEM/DER files or folders) */
    size_t n_trust;
    const char *notary_cert;    /**< the notary's certificate; needed for Developer ID code */
    const char *online_url;     /**< notary server to ask for a ticket / revocation, or NULL */
    unsigned flags;             /**< SYSEXT_OUTPUT_JSON */
} sysext_assess_options;
#define SYSEXT_ASSESS_OPTIONS_INIT {SYSEXT_ASSESS_OPTIONS_VERSION, NULL, 0, NULL, NULL, 0}

/**
 * Assess code like Gatekeeper: accepted only if its signature is valid (strict, deep) and
 * chains to one of `trust`, and, when the signer is a Developer ID Application certificate
 * (marker 1.2.840.113635.100.6.1.13), a ticket verified with `notary_cert` covers its cdhash.
 * @param[out] out_text  "PATH: accepted|rejected" with the source and reason (or JSON), owned
 *                  by the caller; set whenever the return is 0 or SYSEXT_EREJECTED
 * With `online_url`, the notary is asked for the ticket of the code's cdhash: an answer of
 * "revoked" rejects, a valid ticket there counts like a stapled one.
 * @return 0 accepted; SYSEXT_EREJECTED rejected (the reason is also the message); others on
 *         error (SYSEXT_ENETWORK when the notary cannot be reached)
 */
SYSEXT_API int sysext_assess(const char *path, const sysext_assess_options *opts, char **out_text);

/* ---- the notary client (libcurl; API in docs/notary-api.md) ---- */

#define SYSEXT_NOTARY_PROGRESS 0x100u /**< draw an upload progress bar on stderr (if a TTY) */

#define SYSEXT_NOTARY_OPTIONS_VERSION 1
typedef struct sysext_notary_options {
    unsigned version;      /**< SYSEXT_NOTARY_OPTIONS_VERSION */
    const char *server;    /**< base URL, e.g. "http://127.0.0.1:8443" */
    const char *key_file;  /**< file holding the API key (64 hex digits); not needed to staple */
    unsigned flags;        /**< SYSEXT_OUTPUT_JSON | SYSEXT_NOTARY_PROGRESS */
    unsigned retries;      /**< attempts after a transient failure (refused, 5xx); 0 = 4 */
    int wait;              /**< submit: wait until processing ends */
    unsigned timeout_s;    /**< submit --wait: give up after this many seconds (0 = 3600) */
    int staple;            /**< submit: staple the ticket once accepted (implies wait) */
} sysext_notary_options;
#define SYSEXT_NOTARY_OPTIONS_INIT {SYSEXT_NOTARY_OPTIONS_VERSION, NULL, NULL, 0, 0, 0, 0, 0}

/**
 * Submit `path` (a zip, or a bundle folder, which is zipped first) to the notary.
 * @param[out] out_text  id and status (text or JSON), owned by the caller
 * @return 0 submitted (and, when waiting, Accepted); SYSEXT_EREJECTED when processing ended
 *         Invalid or Rejected (out_text set; see sysext_notary_log); SYSEXT_ETIMEOUT; network
 *         errors SYSEXT_ENETWORK; SYSEXT_EPERM for a refused key; others with a message
 */
SYSEXT_API int sysext_notary_submit(const char *path, const sysext_notary_options *opts,
                                    char **out_text);
/** Status of one submission. @return 0, SYSEXT_ENOTFOUND, ... */
SYSEXT_API int sysext_notary_info(const char *id, const sysext_notary_options *opts, char **out_text);
/** The processing log of a submission (JSON). */
SYSEXT_API int sysext_notary_log(const char *id, const sysext_notary_options *opts, char **out_text);
/** The key's team's submissions. */
SYSEXT_API int sysext_notary_history(const sysext_notary_options *opts, char **out_text);
/**
 * Fetch the ticket for the bundle's cdhash from `opts->server` and staple it (no key needed).
 * @return 0; SYSEXT_ENOTFOUND when the notary has no ticket; SYSEXT_EREJECTED when revoked
 */
SYSEXT_API int sysext_staple_fetch(const char *path, const sysext_notary_options *opts,
                                   char **out_text);

SYSEXT_END_DECLS

#endif
