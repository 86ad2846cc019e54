#ifndef SX_HEX_H
#define SX_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of `n` bytes into `out`, which must hold 2n+1 chars. */
void sx_hex_encode(const uint8_t *p, size_t n, char *out);
/* Decode exactly `n` bytes from 2n hex digits; SYSEXT_EFORMAT otherwise. */
int sx_hex_decode(const char *s, uint8_t *out, size_t n);

#endif
