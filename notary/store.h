/* The notary's embedded store: DIR/notary.db (SQLite, WAL) with API keys (hashed),
 * submissions and tickets; DIR/blobs/<id>.zip the uploads; DIR/tmp/ uploads in progress
 * (renamed into blobs/ only when complete); DIR/notary.key.pem (0600) the ticket-signing key
 * and DIR/notary.pem its certificate, for clients. Safe to use from several threads (one
 * connection, serialized). */
#ifndef SX_NOTARY_STORE_H
#define SX_NOTARY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notary/check.h"
#include "notary/request.h"

#define SX_STORE_DB "notary.db"
#define SX_STORE_KEY "notary.key.pem"
#define SX_STORE_CERT "notary.pem"

typedef struct sx_store sx_store;

/* Create the store in `dir` (created if missing; refuses a dir that already has a database). */
int sx_store_init(const char *dir);
int sx_store_open(const char *dir, sx_store **out);
void sx_store_close(sx_store *s);
const char *sx_store_dir(const sx_store *s);

/* A new API key for `team`: 32 random bytes, only its SHA-256 is stored. `hex_out` receives
 * the key (64 hex digits + NUL) to hand to the client, once. */
int sx_store_key_create(sx_store *s, const char *team, bool admin, char hex_out[65]);
/* The team of a key. SYSEXT_EPERM for an unknown key. *team newly allocated. */
int sx_store_key_lookup(sx_store *s, const uint8_t key[SX_NOTARY_KEY_LEN], char **team, bool *admin);

typedef struct sx_submission {
    char id[SX_NOTARY_ID_LEN + 1];
    char *team, *name, *log_json;
    sx_notary_status status;
    bool uploaded;
    int64_t created, updated;
    uint8_t sha256[32];
} sx_submission;
void sx_submission_free(sx_submission *sub);

/* Record a new submission (status In Progress, nothing uploaded yet); `id` receives its id. */
int sx_store_submission_create(sx_store *s, const char *team, const sx_notary_create_req *req,
                               char id[SX_NOTARY_ID_LEN + 1]);
/* SYSEXT_ENOTFOUND for an unknown id, or one of another team when `team` is not NULL. */
int sx_store_submission_get(sx_store *s, const char *id, const char *team, sx_submission *out);
/* Every submission of a team, newest first, as a JSON array string (newly allocated). */
int sx_store_submission_list(sx_store *s, const char *team, char **json_out);

/* Accept a complete upload at `tmp_path` (inside DIR/tmp): checks its SHA-256 against the one
 * announced, renames it to DIR/blobs/<id>.zip, marks the submission uploaded. SYSEXT_EINVALID
 * (and the temp file removed) when the digest differs; SYSEXT_EEXISTS if already uploaded. */
int sx_store_upload_commit(sx_store *s, const char *id, const char *tmp_path);
/* A fresh temp file path in DIR/tmp for an upload (newly allocated). */
char *sx_store_upload_tmp(sx_store *s, const char *id);

/* Run the checks on an uploaded submission and record the result in one transaction: status,
 * log and, when accepted, one signed ticket covering every cdhash. */
int sx_store_process(sx_store *s, const char *id, const sx_notary_check_opts *o);
/* Submissions uploaded but still In Progress (for a worker after a restart); ids newly
 * allocated in *ids. */
int sx_store_pending(sx_store *s, char ***ids, size_t *n);

/* The ticket covering `cdhash` (any hash type). SYSEXT_ENOTFOUND if none. */
int sx_store_ticket_get(sx_store *s, const uint8_t cdhash[SX_CDHASH_LEN], uint8_t **ticket,
                        size_t *len, bool *revoked);
/* Revoke every ticket entry for `cdhash`. SYSEXT_ENOTFOUND if there is none. */
int sx_store_ticket_revoke(sx_store *s, const uint8_t cdhash[SX_CDHASH_LEN]);

#endif
