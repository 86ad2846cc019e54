/* The notary's checks on one submission (what the service's worker runs on an uploaded zip):
 * safe unpack, strict+deep verification against the notary's trusted developer roots, every
 * top-level item signed code, the signer's team equal to the submitting key's team, and every
 * executable (ELF or Mach-O anywhere inside, docs/notary-api.md) covered by a valid signature:
 * the main executable of a signed bundle or a signed Mach-O ("unsigned-executable"). The log
 * lists every issue with path, severity and message; an accepted submission yields the
 * content of its ticket: every cdhash (each CodeDirectory of the code and of all nested
 * bundles and embedded extensions) and the bundle ids. */
#ifndef SX_NOTARY_CHECK_H
#define SX_NOTARY_CHECK_H

#include <json-c/json.h>
#include <stdbool.h>

#include "codesign/ticket.h"
#include "sysext/archive.h"
#include "util/report.h"

typedef enum sx_notary_status {
    SX_NOTARY_IN_PROGRESS = 0,
    SX_NOTARY_ACCEPTED,
    SX_NOTARY_INVALID,  /* the archive unpacked, but the code failed a check */
    SX_NOTARY_REJECTED, /* the archive itself was refused (not a zip, bomb, traversal, empty) */
} sx_notary_status;

/* "In Progress", "Accepted", "Invalid", "Rejected" (Apple's notary API spelling). */
const char *sx_notary_status_name(sx_notary_status s);

typedef struct sx_notary_check_opts {
    const char *const *trust;            /* trusted developer roots */
    size_t n_trust;
    const char *team_id;                 /* the submitting key's team */
    const sysext_unpack_limits *limits;  /* NULL = defaults */
    const char *scratch_dir;             /* where to unpack (a temp dir is made inside); NULL = /tmp */
} sx_notary_check_opts;

typedef struct sx_notary_result {
    sx_notary_status status;
    sx_report log;                       /* every issue; paths relative to the archive root */
    sx_ticket_entry *entries;            /* accepted: what the ticket covers */
    size_t n_entries;
    char **bundle_ids;
    size_t n_bundle_ids;
} sx_notary_result;

/* Check the zip at `zip_path`. Returns 0 with out->status ACCEPTED, INVALID or REJECTED (the
 * log says why); < 0 only for hard errors (I/O, memory), with the message set. `out` is
 * initialised first; sx_notary_result_free is safe after any return. */
int sx_notary_check_zip(const char *zip_path, const sx_notary_check_opts *o, sx_notary_result *out);
void sx_notary_result_free(sx_notary_result *r);

/* The submission log as JSON, modelled on Apple's: {"jobId", "status", "statusSummary",
 * "archiveFilename", "teamId", "ticketContents": [{"path"?, "cdhash", "digestAlgorithm"}],
 * "issues": [{"severity", "code", "path", "message"}]}. New reference. */
json_object *sx_notary_log_json(const sx_notary_result *r, const char *job_id,
                                const char *archive_name, const char *team_id);

#endif
