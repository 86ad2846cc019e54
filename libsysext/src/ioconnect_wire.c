/* Encoding and bounded decoding of user-client messages on the app side. */
#include "util/common.h"

#include "libsysext/src/ioconnect_wire.h"
#include "util/reader.h"

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static const char *arg_type_name(uint32_t t)
{
    switch (t) {
    case SX_UC_ARG_U64: return "U64";
    case SX_UC_ARG_BYTES: return "BYTES";
    case SX_UC_ARG_STRING: return "STRING";
    case SX_UC_ARG_OBJECT: return "OBJECT";
    case SX_UC_ARG_FD: return "FD";
    default: return "?";
    }
}

int sx_uc_decode(const uint8_t *data, size_t len, size_t nfds, sx_uc_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (!data || len < SX_UC_HEADER)
        return sx_err(SYSEXT_EPROTO, "driver message: %zu bytes, the header needs %u", len, SX_UC_HEADER);
    if (len > SX_UC_MAX_MESSAGE)
        return sx_err(SYSEXT_EPROTO, "driver message: %zu bytes, above the limit %u", len, SX_UC_MAX_MESSAGE);
    sx_reader r;
    sx_reader_init(&r, data, len, "driver message");
    uint32_t magic = 0, length = 0, reserved = 0, status = 0;
    uint16_t version = 0, type = 0, fdc = 0, argc = 0;
    /* the header fits (checked above): these reads cannot fail */
    (void)sx_rd_u32le(&r, &magic);
    (void)sx_rd_u16le(&r, &version);
    (void)sx_rd_u16le(&r, &type);
    (void)sx_rd_u32le(&r, &length);
    (void)sx_rd_u16le(&r, &fdc);
    (void)sx_rd_u16le(&r, &argc);
    (void)sx_rd_u64le(&r, &out->object);
    (void)sx_rd_u64le(&r, &out->method);
    (void)sx_rd_u64le(&r, &out->seq);
    (void)sx_rd_u32le(&r, &status);
    (void)sx_rd_u32le(&r, &reserved);
    if (magic != SX_UC_MAGIC)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 0: bad magic 0x%08x", magic);
    if (version != SX_UC_VERSION)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 4: unsupported version %u (expected %u)", version,
                      SX_UC_VERSION);
    if (type < 1 || type > SX_UC_COMPLETION)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 6: unknown message type %u", type);
    if (length != len)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 8: length field %u but %zu bytes received", length,
                      len);
    if (fdc != nfds)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 12: fdCount %u but %zu descriptors received", fdc,
                      nfds);
    if (argc > SX_UC_MAX_ARGS)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 14: argCount %u above the limit %u", argc,
                      SX_UC_MAX_ARGS);
    if (reserved != 0)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 44: reserved field 0x%08x, must be 0", reserved);
    if (out->object == 0 && type != SX_UC_REPLY)
        return sx_err(SYSEXT_EPROTO, "driver message at offset 16: objectID 0 in a message of type %u", type);
    out->type = type;
    out->status = (int32_t)status;
    out->nfds = fdc;
    bool used[SX_UC_MAX_FDS] = { false };
    for (uint32_t i = 0; i < argc; i++) {
        size_t at = sx_reader_offset(&r);
        uint32_t t = 0, alen = 0;
        const uint8_t *p = NULL;
        if (sx_rd_u32le(&r, &t) < 0 || sx_rd_u32le(&r, &alen) < 0)
            return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: truncated header", at, i);
        if (sx_rd_bytes(&r, alen, &p) < 0)
            return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: length %u but %zu bytes left",
                          at + 4, i, alen, sx_reader_left(&r));
        size_t padded = pad8(alen);
        const uint8_t *pad = NULL;
        if (sx_rd_bytes(&r, padded - alen, &pad) < 0)
            return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: padding truncated",
                          at + 8 + alen, i);
        for (size_t k = 0; k < padded - alen; k++)
            if (pad[k])
                return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: nonzero padding byte",
                              at + 8 + alen + k, i);
        sx_uc_arg *a = &out->args[i];
        a->type = t;
        a->len = alen;
        uint32_t want = t == SX_UC_ARG_U64 || t == SX_UC_ARG_OBJECT ? 8 : t == SX_UC_ARG_FD ? 4 : UINT32_MAX;
        if (want != UINT32_MAX && alen != want)
            return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: length %u, %s has %u", at + 4,
                          i, alen, arg_type_name(t), want);
        switch (t) {
        case SX_UC_ARG_U64:
        case SX_UC_ARG_OBJECT: {
            uint64_t v = 0;
            for (int k = 7; k >= 0; k--)
                v = v << 8 | p[k];
            a->value = v;
            if (t == SX_UC_ARG_OBJECT && v == 0)
                return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: object id 0", at + 8, i);
            break;
        }
        case SX_UC_ARG_FD: {
            uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (v >= fdc)
                return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: fd index %u but %u attached",
                              at + 8, i, v, fdc);
            if (used[v])
                return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: fd index %u used twice",
                              at + 8, i, v);
            used[v] = true;
            a->value = v;
            break;
        }
        case SX_UC_ARG_STRING:
            if (alen == 0 || p[alen - 1] != 0 || memchr(p, 0, alen) != p + alen - 1)
                return sx_err(SYSEXT_EPROTO,
                              "driver message at offset %zu: argument %u: string not NUL-terminated exactly at its end",
                              at + 8, i);
            a->data = p;
            break;
        case SX_UC_ARG_BYTES:
            a->data = alen ? p : NULL;
            break;
        default:
            return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: argument %u: unknown type %u", at, i, t);
        }
    }
    if (sx_reader_left(&r))
        return sx_err(SYSEXT_EPROTO, "driver message at offset %zu: %zu trailing bytes after %u arguments",
                      sx_reader_offset(&r), sx_reader_left(&r), argc);
    for (uint32_t i = 0; i < fdc; i++)
        if (!used[i])
            return sx_err(SYSEXT_EPROTO, "driver message: descriptor %u attached but named by no argument", i);
    out->nargs = argc;
    return 0;
}

static void put(sx_uc_builder *b, uint64_t v, unsigned bytes)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < bytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    if (!b->err && sx_buf_append(&b->buf, tmp, bytes) < 0)
        b->err = sx_err(SYSEXT_ELIMIT, "user-client message above %u bytes", SX_UC_MAX_MESSAGE);
}

void sx_uc_begin(sx_uc_builder *b, uint16_t type, uint64_t object, uint64_t method, uint64_t seq)
{
    sx_buf_init(&b->buf, SX_UC_MAX_MESSAGE);
    b->nargs = 0;
    b->err = 0;
    put(b, SX_UC_MAGIC, 4);
    put(b, SX_UC_VERSION, 2);
    put(b, type, 2);
    put(b, 0, 4);  /* length, patched */
    put(b, 0, 2);  /* fds: the app never sends any */
    put(b, 0, 2);  /* argCount, patched */
    put(b, object, 8);
    put(b, method, 8);
    put(b, seq, 8);
    put(b, 0, 4);
    put(b, 0, 4);
}

static void add_arg(sx_uc_builder *b, uint32_t type, const void *p, size_t n)
{
    if (b->err)
        return;
    if (b->nargs >= SX_UC_MAX_ARGS || n > SX_UC_MAX_MESSAGE) {
        b->err = sx_err(SYSEXT_ELIMIT, "user-client message: more than %u arguments or %zu bytes", SX_UC_MAX_ARGS,
                        n);
        return;
    }
    put(b, type, 4);
    put(b, (uint32_t)n, 4);
    if (!b->err && n && sx_buf_append(&b->buf, p, n) < 0)
        b->err = sx_err(SYSEXT_ELIMIT, "user-client message above %u bytes", SX_UC_MAX_MESSAGE);
    static const uint8_t zero[8];
    if (!b->err && pad8(n) != n && sx_buf_append(&b->buf, zero, pad8(n) - n) < 0)
        b->err = sx_err(SYSEXT_ELIMIT, "user-client message above %u bytes", SX_UC_MAX_MESSAGE);
    b->nargs++;
}

void sx_uc_add_u64(sx_uc_builder *b, uint64_t v)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < 8; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    add_arg(b, SX_UC_ARG_U64, tmp, 8);
}

void sx_uc_add_bytes(sx_uc_builder *b, const void *p, size_t n)
{
    add_arg(b, SX_UC_ARG_BYTES, p, n);
}

int sx_uc_finish(sx_uc_builder *b)
{
    if (b->err) {
        sx_buf_free(&b->buf);
        return b->err;
    }
    uint8_t *d = b->buf.data;
    uint32_t len = (uint32_t)b->buf.len;
    for (unsigned i = 0; i < 4; i++)
        d[8 + i] = (uint8_t)(len >> (8 * i));
    d[14] = (uint8_t)b->nargs;
    d[15] = (uint8_t)(b->nargs >> 8);
    return 0;
}

int sx_uc_get_u64(const sx_uc_msg *m, uint32_t i, uint64_t *v)
{
    if (i >= m->nargs || m->args[i].type != SX_UC_ARG_U64)
        return sx_err(SYSEXT_EPROTO, "driver reply: argument %u is not a U64", i);
    *v = m->args[i].value;
    return 0;
}

int sx_uc_get_bytes(const sx_uc_msg *m, uint32_t i, const uint8_t **p, size_t *n)
{
    if (i >= m->nargs || m->args[i].type != SX_UC_ARG_BYTES)
        return sx_err(SYSEXT_EPROTO, "driver reply: argument %u is not BYTES", i);
    *p = m->args[i].data;
    *n = m->args[i].len;
    return 0;
}
