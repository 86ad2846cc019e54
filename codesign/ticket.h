/* Notarization tickets (our format, docs/ticket-format.md; reference section 8 for Apple's):
 * a versioned, big-endian binary structure listing the cdhashes a notary accepted, with the
 * team ID, bundle ids, issue time and the notary key id, signed (SHA-256) with the notary's
 * key. Used by the notary service to issue tickets and by staple / assess to check them
 * offline with the notary's certificate (DIR/notary.pem). */
#ifndef SX_CS_TICKET_H
#define SX_CS_TICKET_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codesign/hash.h"
#include "util/buf.h"

#define SX_TICKET_MAGIC "sxtk"
#define SX_TICKET_VERSION 1
#define SX_TICKET_HEADER_SIZE 20
#define SX_TICKET_KEY_ID_LEN 32      /* SHA-256 of the notary key's SubjectPublicKeyInfo DER */
#define SX_TICKET_MAX_SIZE (1u << 20) /* largest ticket any reader accepts */
#define SX_TICKET_MAX_ENTRIES 4096
#define SX_TICKET_MAX_BUNDLE_IDS 256
#define SX_TICKET_MAX_STRING 255     /* team ID and each bundle id */
#define SX_TICKET_MAX_SIG 1024
/* The stapled ticket's file name in the resource base (Contents/ of a deep bundle, the root of
 * a flat .dext); excluded from the seal by the fixed `CodeResources` exclusion. */
#define SX_TICKET_STAPLE_NAME "CodeResources"

typedef struct sx_ticket_entry {
    uint8_t hash_type;              /* SX_HASH_* of the CodeDirectory */
    uint8_t cdhash[SX_CDHASH_LEN];  /* its cdhash (first 20 bytes of the CD's hash) */
} sx_ticket_entry;

typedef struct sx_ticket {
    uint16_t version;
    int64_t issued;                          /* Unix seconds */
    uint8_t key_id[SX_TICKET_KEY_ID_LEN];
    char *team_id;                           /* owned */
    char **bundle_ids;                       /* owned, n_bundle_ids strings */
    size_t n_bundle_ids;
    sx_ticket_entry *entries;                /* owned */
    size_t n_entries;
    size_t signed_len;                       /* bytes covered by the signature */
    uint8_t *sig;                            /* owned copy of the signature */
    size_t sig_len;
} sx_ticket;

/* What a notary puts in a new ticket (all borrowed). */
typedef struct sx_ticket_content {
    int64_t issued;                  /* 0 = now */
    const char *team_id;             /* 1..255 printable ASCII */
    const char *const *bundle_ids;   /* may be NULL when n_bundle_ids == 0 */
    size_t n_bundle_ids;
    const sx_ticket_entry *entries;  /* 1..SX_TICKET_MAX_ENTRIES; duplicates are dropped */
    size_t n_entries;
} sx_ticket_content;

/* Key id of a notary certificate: SHA-256 of its SubjectPublicKeyInfo DER. */
int sx_ticket_key_id(X509 *cert, uint8_t out[SX_TICKET_KEY_ID_LEN]);

/* Build and sign a ticket with `key` (EC or RSA; SHA-256), whose certificate is `cert`. */
int sx_ticket_build(const sx_ticket_content *c, EVP_PKEY *key, X509 *cert, sx_buf *out);

/* Parse the structure only (no signature check). `what` names the input in messages.
 * SYSEXT_EFORMAT naming the byte offset on any malformation, SYSEXT_EUNSUPPORTED for an
 * unknown version. `out` is zeroed first; sx_ticket_free is safe after any return. */
int sx_ticket_parse(const uint8_t *data, size_t len, const char *what, sx_ticket *out);

/* Parse, then check that the ticket was issued by `notary_cert`: its key id matches and the
 * signature verifies. SYSEXT_ESIGNATURE when it does not. */
int sx_ticket_verify(const uint8_t *data, size_t len, const char *what, X509 *notary_cert,
                     sx_ticket *out);

/* The ticket lists this cdhash (with this hash type; SX_HASH_NONE matches any type). */
bool sx_ticket_covers(const sx_ticket *t, uint8_t hash_type, const uint8_t cdhash[SX_CDHASH_LEN]);

void sx_ticket_free(sx_ticket *t);

/* The cdhash and hash type of the best CodeDirectory of a bundle or Mach-O (what a ticket must
 * cover for it); SYSEXT_ENOTFOUND when it is not signed. (codesign/assess.c) */
int sx_ticket_code_cdhash(const char *path, sx_ticket_entry *out);

/* Load a certificate (PEM or DER) from a file. */
int sx_ticket_load_cert(const char *path, X509 **out);

/* Where a bundle's stapled ticket lives: <b>/Contents/CodeResources for a deep bundle (when
 * <b>/Contents is a folder), <b>/CodeResources for a flat one. Newly allocated. */
char *sx_ticket_staple_path(const char *bundle_path);
/* Write the ticket there atomically (0644). */
int sx_ticket_staple_write(const char *bundle_path, const uint8_t *data, size_t len);
/* Read the stapled ticket; SYSEXT_ENOTFOUND when the bundle has none. */
int sx_ticket_staple_read(const char *bundle_path, uint8_t **data, size_t *len);

#endif
