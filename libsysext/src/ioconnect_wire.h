/* The app side's own codec of the user-client protocol (DKIPC messages, format in
 * runtime/include/sysext/driverkit/DKIPC.h, protocol in DKUserClientProtocol.h): libsysext
 * does not link the driver runtime. Decoding trusts nothing (util/reader.h) and is fuzzed
 * (fuzz/fuzz_libsysext_ucwire.c). */
#ifndef SX_IOCONNECT_WIRE_H
#define SX_IOCONNECT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define SX_UC_MAGIC 0x50494b44u
#define SX_UC_VERSION 1u
#define SX_UC_HEADER 48u
#define SX_UC_MAX_MESSAGE 65536u
#define SX_UC_MAX_ARGS 32u
#define SX_UC_MAX_FDS 16u

enum { SX_UC_CALL = 6, SX_UC_REPLY = 7, SX_UC_COMPLETION = 8 };
enum { SX_UC_ARG_U64 = 1, SX_UC_ARG_BYTES = 2, SX_UC_ARG_STRING = 3, SX_UC_ARG_OBJECT = 4, SX_UC_ARG_FD = 5 };

typedef struct sx_uc_arg {
    uint32_t type, len;
    const uint8_t *data; /* BYTES / STRING payload, inside the decoded buffer */
    uint64_t value;      /* U64, OBJECT id, FD index */
} sx_uc_arg;

typedef struct sx_uc_msg {
    uint16_t type;
    uint64_t object, method, seq;
    int32_t status;
    uint32_t nargs, nfds;
    sx_uc_arg args[SX_UC_MAX_ARGS];
} sx_uc_msg;

/* Decode one datagram of `len` bytes that arrived with `nfds` descriptors. Every field is
 * checked as the runtime's decoder does; SYSEXT_EPROTO with the byte offset of the first bad
 * one. `out` points into `data`. */
int sx_uc_decode(const uint8_t *data, size_t len, size_t nfds, sx_uc_msg *out);

/* Building: begin, add arguments, finish (patches length and count). SYSEXT_ELIMIT past the
 * protocol's limits. */
typedef struct sx_uc_builder {
    sx_buf buf;
    uint32_t nargs;
    int err;
} sx_uc_builder;
void sx_uc_begin(sx_uc_builder *b, uint16_t type, uint64_t object, uint64_t method, uint64_t seq);
void sx_uc_add_u64(sx_uc_builder *b, uint64_t v);
void sx_uc_add_bytes(sx_uc_builder *b, const void *p, size_t n);
/* 0 with the message in b->buf (the caller frees it with sx_buf_free), or the first error. */
int sx_uc_finish(sx_uc_builder *b);

/* The argument at `i` as a type; SYSEXT_EPROTO naming it otherwise. */
int sx_uc_get_u64(const sx_uc_msg *m, uint32_t i, uint64_t *v);
int sx_uc_get_bytes(const sx_uc_msg *m, uint32_t i, const uint8_t **p, size_t *n);

#endif
