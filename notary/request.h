/* Request parsing for the notary service's API (docs/notary-api.md), separate from the HTTP
 * library so it can be tested and fuzzed alone: route (method + path), the JSON body of a new
 * submission, and the Authorization header. Everything here handles untrusted input. */
#ifndef SX_NOTARY_REQUEST_H
#define SX_NOTARY_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "codesign/hash.h"

#define SX_NOTARY_ID_LEN 36          /* submission ids are lowercase UUIDs */
#define SX_NOTARY_KEY_LEN 32         /* API keys: 32 random bytes, sent as 64 hex digits */
#define SX_NOTARY_MAX_BODY (64u * 1024)
#define SX_NOTARY_MAX_URL 1024
#define SX_NOTARY_MAX_NAME 255

typedef enum sx_notary_route_kind {
    SX_ROUTE_NONE = 0,
    SX_ROUTE_SUBMISSION_CREATE, /* POST /v1/submissions */
    SX_ROUTE_SUBMISSION_LIST,   /* GET  /v1/submissions */
    SX_ROUTE_SUBMISSION_FILE,   /* PUT  /v1/submissions/{id}/file */
    SX_ROUTE_SUBMISSION_STATUS, /* GET  /v1/submissions/{id} */
    SX_ROUTE_SUBMISSION_LOG,    /* GET  /v1/submissions/{id}/log */
    SX_ROUTE_TICKET_GET,        /* GET  /v1/tickets/{cdhash} */
    SX_ROUTE_TICKET_REVOKE,     /* POST /v1/tickets/{cdhash}/revoke */
} sx_notary_route_kind;

typedef struct sx_notary_route {
    sx_notary_route_kind kind;
    char id[SX_NOTARY_ID_LEN + 1];     /* submission routes */
    uint8_t cdhash[SX_CDHASH_LEN];     /* ticket routes */
} sx_notary_route;

/* Match `method` and `url` (path only; a query string is refused). 0 on a match;
 * SYSEXT_ENOTFOUND for an unknown path (HTTP 404), SYSEXT_EUNSUPPORTED for a known path with
 * the wrong method (405), SYSEXT_EFORMAT for a malformed id or cdhash (400). */
int sx_notary_route_parse(const char *method, const char *url, sx_notary_route *out);

/* The body of POST /v1/submissions: {"submissionName": "X.zip", "sha256": "<64 hex>"}.
 * Unknown keys are ignored (Apple's clients send "notifications"). */
typedef struct sx_notary_create_req {
    char name[SX_NOTARY_MAX_NAME + 1];  /* printable, no '/', no leading '.' */
    uint8_t sha256[32];                 /* of the zip that will be uploaded */
} sx_notary_create_req;

/* Parse a create body (`len` bytes, not NUL-terminated). SYSEXT_EFORMAT naming the key
 * otherwise; SYSEXT_ELIMIT above SX_NOTARY_MAX_BODY. */
int sx_notary_parse_create(const char *body, size_t len, sx_notary_create_req *out);

/* "Bearer <64 hex>" (scheme case-insensitive) to the key bytes. SYSEXT_EPERM when missing or
 * malformed (HTTP 401). */
int sx_notary_parse_bearer(const char *header, uint8_t key[SX_NOTARY_KEY_LEN]);

/* HTTP status for a route/parse error code. */
unsigned sx_notary_http_status(int rc);

#endif
