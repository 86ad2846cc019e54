#include "util/common.h"
#include "util/reader.h"

void sx_reader_init(sx_reader *r, const void *data, size_t len, const char *what)
{
    r->base = data;
    r->len = len;
    r->pos = 0;
    r->origin = 0;
    r->what = what ? what : "input";
}

size_t sx_reader_left(const sx_reader *r)
{
    return r->len - r->pos;
}

size_t sx_reader_offset(const sx_reader *r)
{
    return r->origin + r->pos;
}

static int need(const sx_reader *r, size_t n)
{
    if (r->len - r->pos < n)
        return sx_err(SYSEXT_EFORMAT, "%s: truncated at offset %zu: need %zu bytes, %zu left",
                      r->what, sx_reader_offset(r), n, r->len - r->pos);
    return 0;
}

#define P(r) ((r)->base + (r)->origin + (r)->pos)

int sx_rd_u8(sx_reader *r, uint8_t *out)
{
    int e = need(r, 1);
    if (e < 0)
        return e;
    *out = P(r)[0];
    r->pos += 1;
    return 0;
}

int sx_rd_u16be(sx_reader *r, uint16_t *out)
{
    int e = need(r, 2);
    if (e < 0)
        return e;
    const uint8_t *p = P(r);
    *out = (uint16_t)(p[0] << 8 | p[1]);
    r->pos += 2;
    return 0;
}

int sx_rd_u32be(sx_reader *r, uint32_t *out)
{
    int e = need(r, 4);
    if (e < 0)
        return e;
    const uint8_t *p = P(r);
    *out = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->pos += 4;
    return 0;
}

int sx_rd_u64be(sx_reader *r, uint64_t *out)
{
    uint32_t hi, lo;
    int e = need(r, 8);
    if (e < 0)
        return e;
    sx_rd_u32be(r, &hi);
    sx_rd_u32be(r, &lo);
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}

int sx_rd_u16le(sx_reader *r, uint16_t *out)
{
    int e = need(r, 2);
    if (e < 0)
        return e;
    const uint8_t *p = P(r);
    *out = (uint16_t)(p[1] << 8 | p[0]);
    r->pos += 2;
    return 0;
}

int sx_rd_u32le(sx_reader *r, uint32_t *out)
{
    int e = need(r, 4);
    if (e < 0)
        return e;
    const uint8_t *p = P(r);
    *out = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
    r->pos += 4;
    return 0;
}

int sx_rd_u64le(sx_reader *r, uint64_t *out)
{
    uint32_t lo, hi;
    int e = need(r, 8);
    if (e < 0)
        return e;
    sx_rd_u32le(r, &lo);
    sx_rd_u32le(r, &hi);
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}

int sx_rd_bytes(sx_reader *r, size_t n, const uint8_t **out)
{
    int e = need(r, n);
    if (e < 0)
        return e;
    *out = P(r);
    r->pos += n;
    return 0;
}

int sx_rd_skip(sx_reader *r, size_t n)
{
    int e = need(r, n);
    if (e < 0)
        return e;
    r->pos += n;
    return 0;
}

int sx_rd_seek(sx_reader *r, size_t off)
{
    if (off > r->len)
        return sx_err(SYSEXT_EFORMAT, "%s: offset %zu is past the end (%zu bytes)", r->what,
                      r->origin + off, r->len);
    r->pos = off;
    return 0;
}

int sx_rd_window(const sx_reader *r, size_t off, size_t n, sx_reader *out, const char *what)
{
    if (off > r->len || r->len - off < n)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: %s of %zu bytes at offset %zu lies outside the %zu-byte input", r->what,
                      what ? what : "range", n, r->origin + off, r->len);
    out->base = r->base;
    out->origin = r->origin + off;
    out->len = n;
    out->pos = 0;
    out->what = what ? what : r->what;
    return 0;
}
