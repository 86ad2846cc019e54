/* A bounded reader for untrusted binary data (signature blobs, tickets, IPC frames, USB
 * descriptors). Every read checks what remains first; failures name `what` and the offset.
 * The cursor moves only on success. */
#ifndef SX_READER_H
#define SX_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sx_reader {
    const uint8_t *base; /* start of the whole input, for absolute offsets */
    size_t len;          /* bytes in this window */
    size_t pos;          /* cursor inside the window */
    size_t origin;       /* offset of the window inside the whole input */
    const char *what;    /* names the input in messages, e.g. "CodeDirectory" */
} sx_reader;

void sx_reader_init(sx_reader *r, const void *data, size_t len, const char *what);
size_t sx_reader_left(const sx_reader *r);
/* Absolute offset of the cursor, for messages. */
size_t sx_reader_offset(const sx_reader *r);
int sx_rd_u8(sx_reader *r, uint8_t *out);
int sx_rd_u16be(sx_reader *r, uint16_t *out);
int sx_rd_u32be(sx_reader *r, uint32_t *out);
int sx_rd_u64be(sx_reader *r, uint64_t *out);
int sx_rd_u16le(sx_reader *r, uint16_t *out);
int sx_rd_u32le(sx_reader *r, uint32_t *out);
int sx_rd_u64le(sx_reader *r, uint64_t *out);
/* Borrow `n` bytes at the cursor. */
int sx_rd_bytes(sx_reader *r, size_t n, const uint8_t **out);
int sx_rd_skip(sx_reader *r, size_t n);
/* A sub-window of `n` bytes at window offset `off`, without moving the cursor. */
int sx_rd_window(const sx_reader *r, size_t off, size_t n, sx_reader *out, const char *what);
int sx_rd_seek(sx_reader *r, size_t off);

#endif
