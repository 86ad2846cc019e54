/* A SHA-256 of a buffer computed on a thread of its own while the buffer is still being
 * written: the writer publishes how far it got and the thread hashes up to there, so the
 * digest is ready soon after the last byte instead of a whole pass later (CodeResources of a
 * large bundle: megabytes written, then hashed for the CodeDirectory). The buffer must not
 * move or change below what was published until sx_trailing_digest_finish. */
#ifndef SX_CS_TRAILING_DIGEST_H
#define SX_CS_TRAILING_DIGEST_H

#include <stddef.h>
#include <stdint.h>

typedef struct sx_trailing_digest sx_trailing_digest;

/* Start hashing `base`; NULL when no thread could be started (then hash it yourself). */
sx_trailing_digest *sx_trailing_digest_start(const uint8_t *base);
/* The first `len` bytes are final. */
void sx_trailing_digest_publish(sx_trailing_digest *t, size_t len);
/* All `len` bytes are final: wait for the digest. Frees `t`. 0 or SYSEXT_ERROR. */
int sx_trailing_digest_finish(sx_trailing_digest *t, size_t len, uint8_t out[32]);

#endif
