/* Digest types as Apple numbers them in the CodeDirectory (kSecCodeSignatureHash*). */
#ifndef SX_CS_HASH_H
#define SX_CS_HASH_H

#include <stddef.h>
#include <stdint.h>

enum {
    SX_HASH_NONE = 0,
    SX_HASH_SHA1 = 1,
    SX_HASH_SHA256 = 2,
    SX_HASH_SHA256_TRUNCATED = 3, /* SHA-256 cut to 20 bytes */
    SX_HASH_SHA384 = 4,
    SX_HASH_MAX_SIZE = 48,
};

#define SX_CDHASH_LEN 20 /* a cdhash as recorded in seals, CMS attributes and tickets */

/* Digest length for a type, 0 if unknown. */
size_t sx_hash_size(uint8_t type);
const char *sx_hash_name(uint8_t type); /* "sha1", "sha256", ... */
/* One-shot digest; out must hold sx_hash_size(type). */
int sx_hash(uint8_t type, const void *data, size_t len, uint8_t *out);

#endif
