/* SHA-1 and SHA-256 of the same bytes in one pass with the x86 SHA extensions, the two
 * computations interleaved block by block. Each alone is bound by the latency of the SHA
 * round instructions; interleaved, the second mostly fills the first one's stalls, so both
 * digests cost little more than one (the resource seal's V1 `files` needs SHA-1 and `files2`
 * SHA-256 of every file under Resources/). Checked against OpenSSL by
 * tests/unit/codesign/test_shani.c. Where the CPU lacks the extensions (or the environment
 * sets SYSEXT_NO_SHANI), sx_shani_available() is false and callers use OpenSSL. */
#ifndef SX_CS_SHANI_H
#define SX_CS_SHANI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_shani_ctx {
    uint32_t s1[5];
    uint32_t s256[8];
    uint64_t total;
    uint8_t buf[64];
    size_t nbuf;
    bool want1, want256;
} sx_shani_ctx;

bool sx_shani_available(void);
/* At least one of want1 / want256. */
void sx_shani_init(sx_shani_ctx *c, bool want1, bool want256);
void sx_shani_update(sx_shani_ctx *c, const uint8_t *p, size_t n);
/* Writes the wanted digests (the other pointer may be NULL). */
void sx_shani_final(sx_shani_ctx *c, uint8_t sha1[20], uint8_t sha256[32]);

#endif
