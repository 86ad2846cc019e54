#include "util/common.h"
#include "util/buf.h"

void sx_buf_init(sx_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

int sx_buf_reserve(sx_buf *b, size_t extra)
{
    size_t need, max = b->max ? b->max : SIZE_MAX - 1;
    if (SX_ADD_OVERFLOW(b->len, extra, &need) || need > max)
        return sx_err(SYSEXT_ELIMIT, "buffer limit of %zu bytes exceeded", max);
    if (need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) {
        if (cap > SIZE_MAX / 2) {
            cap = need + 1;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

int sx_buf_append(sx_buf *b, const void *p, size_t n)
{
    int r = sx_buf_reserve(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int sx_buf_puts(sx_buf *b, const char *s)
{
    return sx_buf_append(b, s, strlen(s));
}

int sx_buf_putc(sx_buf *b, char c)
{
    return sx_buf_append(b, &c, 1);
}

int sx_buf_printf(sx_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return sx_err(SYSEXT_EINVAL, "bad format string");
    }
    int r = sx_buf_reserve(b, (size_t)n);
    if (r < 0) {
        va_end(ap2);
        return r;
    }
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

int sx_buf_put_u32be(sx_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return sx_buf_append(b, x, 4);
}

int sx_buf_put_u64be(sx_buf *b, uint64_t v)
{
    int r = sx_buf_put_u32be(b, (uint32_t)(v >> 32));
    return r < 0 ? r : sx_buf_put_u32be(b, (uint32_t)v);
}

int sx_buf_put_u32le(sx_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return sx_buf_append(b, x, 4);
}

void sx_buf_set_u32be(sx_buf *b, size_t off, uint32_t v)
{
    if (off > b->len || b->len - off < 4)
        return;
    b->data[off] = (uint8_t)(v >> 24);
    b->data[off + 1] = (uint8_t)(v >> 16);
    b->data[off + 2] = (uint8_t)(v >> 8);
    b->data[off + 3] = (uint8_t)v;
}

uint8_t *sx_buf_steal(sx_buf *b, size_t *len_out)
{
    uint8_t *p = b->data;
    if (len_out)
        *len_out = b->len;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

char *sx_buf_steal_str(sx_buf *b)
{
    return (char *)sx_buf_steal(b, NULL);
}

void sx_buf_free(sx_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
