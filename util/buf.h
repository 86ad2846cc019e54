/* A growable byte buffer with a hard ceiling: appends past `max` fail cleanly, which is
 * what input from a hostile zip, socket or plist needs. data is always NUL-terminated. */
#ifndef SX_BUF_H
#define SX_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct sx_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 means SIZE_MAX - 1 */
} sx_buf;

#define SX_BUF_INIT {NULL, 0, 0, 0}

void sx_buf_init(sx_buf *b, size_t max);
int sx_buf_reserve(sx_buf *b, size_t extra);
int sx_buf_append(sx_buf *b, const void *p, size_t n);
int sx_buf_puts(sx_buf *b, const char *s);
int sx_buf_putc(sx_buf *b, char c);
int sx_buf_printf(sx_buf *b, const char *fmt, ...) SX_PRINTF(2, 3);
int sx_buf_put_u32be(sx_buf *b, uint32_t v);
int sx_buf_put_u64be(sx_buf *b, uint64_t v);
int sx_buf_put_u32le(sx_buf *b, uint32_t v);
/* Overwrite 4 bytes at `off` (which must already be inside the buffer). */
void sx_buf_set_u32be(sx_buf *b, size_t off, uint32_t v);
/* Hand the data to the caller (free() it); the buffer is left empty. */
uint8_t *sx_buf_steal(sx_buf *b, size_t *len_out);
char *sx_buf_steal_str(sx_buf *b);
void sx_buf_free(sx_buf *b);

#endif
