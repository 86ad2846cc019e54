/* Code requirements (reference section 3): the binary expression language, its text form,
 * the designated requirement codesign generates, and evaluation against signed code. */
#ifndef SX_CS_REQUIREMENT_H
#define SX_CS_REQUIREMENT_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Requirement types in a requirement set. */
enum { SX_REQ_HOST = 1, SX_REQ_GUEST = 2, SX_REQ_DESIGNATED = 3, SX_REQ_LIBRARY = 4 };

/* Compile requirement text (the grammar `codesign -r` accepts, at least: identifier, anchor
 * apple [generic], anchor trusted, certificate N|leaf|root [field.OID] exists / = / subject.X,
 * cdhash H"..", entitlement["k"], info["k"], and/or/not/parentheses) into a 0xfade0c00 blob. */
int sx_req_compile(const char *text, sx_buf *out);
/* Decompile a 0xfade0c00 blob to text the way `codesign -d -r-` prints it. */
int sx_req_to_text(const uint8_t *blob, size_t len, sx_buf *out);

/* Build a requirement set (0xfade0c01) holding one designated requirement blob; with
 * dr == NULL, an empty set (12 bytes) as ad-hoc codesign writes. */
int sx_reqset_build(const uint8_t *dr, size_t dr_len, sx_buf *out);
/* A set with several entries (e.g. host + designated for a script); each reqs[i] is a
 * 0xfade0c00 blob of lens[i] bytes; entries are sorted by type. At most 16. */
int sx_reqset_build_entries(const uint32_t *types, const uint8_t *const *reqs, const size_t *lens,
                            size_t n, sx_buf *out);
/* A whole set as `codesign -d -r-` prints it: one "designated => ..." line per entry. */
int sx_reqset_to_text(const uint8_t *set, size_t len, sx_buf *out);
/* Find the requirement of `type` in a set; *req borrows from the input. SYSEXT_ENOTFOUND
 * when absent. */
int sx_reqset_find(const uint8_t *set, size_t len, uint32_t type, const uint8_t **req,
                   size_t *req_len);

/* The kind of identity a signature was made with, for the DR template (reference 3.6). */
typedef enum sx_signer_kind {
    SX_SIGNER_ADHOC,
    SX_SIGNER_DEVELOPMENT,  /* Apple Development: leaf has 1.2.840.113635.100.6.1.2 / .12 */
    SX_SIGNER_DEVELOPER_ID, /* Developer ID Application: 6.2.6 intermediate + 6.1.13 leaf */
    SX_SIGNER_OTHER,        /* anything else: a generic certificate */
} sx_signer_kind;

/* The DR text codesign would generate for this code. For ad-hoc, `cdhash` (20 bytes) is
 * used ("cdhash H\"...\""); otherwise leaf/team fields come from `leaf` (Developer ID: the
 * team is `team_id`, or the leaf's subject OU when NULL). SX_SIGNER_OTHER pins the leaf
 * itself (`certificate leaf = H"<sha1>"`); when the whole chain is known, prefer
 * sx_req_designated_text_chain(), which follows codesign's rule exactly. */
int sx_req_designated_text(const char *identifier, sx_signer_kind kind, X509 *leaf,
                           const char *team_id, const uint8_t *cdhash, sx_buf *out);

/* The DR codesign makes for a chain that does not end at an Apple root (DRMaker's
 * nonAppleAnchor): pin the highest certificate, counting up from the leaf, whose subject O
 * equals the leaf's ("root" if that reaches the anchor; the leaf itself if it has no O):
 * `identifier "X" and certificate root = H"<sha1>"`. `chain` is leaf first, anchor last.
 * This is the right DR for code signed with a private (non-Apple) PKI. */
int sx_req_designated_text_chain(const char *identifier, STACK_OF(X509) *chain, sx_buf *out);

/* What a requirement is evaluated against. */
typedef struct sx_req_context {
    const char *identifier;
    const uint8_t *const *cdhashes; /* every CD's 20-byte cdhash */
    size_t n_cdhashes;
    STACK_OF(X509) *chain;          /* leaf first, anchor last; NULL for ad-hoc */
    int anchor_is_apple;            /* the chain ends at an Apple root (by fingerprint) */
    int anchor_trusted;             /* the chain ends at a root the verifier trusts */
    const void *info_plist;         /* plist_t or NULL */
    const void *entitlements;       /* plist_t or NULL */
    int notarized;                  /* a valid notarization ticket covers this code */
    /* The chain ends at one of the developer roots this system trusts (verify --trust, the
     * daemon's and the notary's trust lists). On Linux those roots stand where Apple's CA roots
     * stand on macOS, so `anchor apple generic` accepts them; `anchor apple` (Apple's own
     * software) still needs a real Apple root. */
    int developer_anchor;
} sx_req_context;

/* 0 if satisfied, SYSEXT_EINVALID with a message naming the failing clause if not,
 * SYSEXT_EFORMAT if the blob is malformed. */
int sx_req_evaluate(const uint8_t *blob, size_t len, const sx_req_context *ctx);

#endif
