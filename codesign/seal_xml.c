/* CodeResources XML written directly, byte for byte as libplist 2.2's plist_to_xml lays it
 * out (tests/unit/codesign/test_seal_xml.c compares the two). Building a libplist tree of
 * 20,000 dictionaries and serialising it was most of an incremental re-sign. */
#include "util/common.h"
#include "codesign/seal_internal.h"

#define MAX_DEPTH 16u

/* Each element is written through a cursor after one sx_buf_reserve for its longest form: a
 * seal of 10,000 files is 20,000 entries of a dozen pieces each, and an append per piece was
 * most of the time spent here. */
static int room(sx_buf *b, unsigned depth, size_t text_len, size_t fixed, char **cursor)
{
    size_t need;
    if (depth > MAX_DEPTH)
        return sx_err(SYSEXT_EINVAL, "xml: depth %u too deep", depth);
    /* An escaped character takes at most 5 bytes ("&amp;"). */
    if (SX_MUL_OVERFLOW(text_len, (size_t)5, &need) || SX_ADD_OVERFLOW(need, fixed, &need) ||
        SX_ADD_OVERFLOW(need, (size_t)(3 * depth), &need))
        return sx_err(SYSEXT_ELIMIT, "xml: element too long");
    int rc = sx_buf_reserve(b, need);
    if (rc < 0)
        return rc;
    *cursor = (char *)b->data + b->len;
    return 0;
}

static int done(sx_buf *b, const char *end)
{
    b->len = (size_t)((const uint8_t *)end - b->data);
    b->data[b->len] = 0;
    return 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *tabs(char *p, unsigned depth)
{
    memset(p, '\t', depth);
    return p + depth;
}

/* Text with & < > escaped, as libplist 2.2 does for keys and strings (quotes and control
 * characters are written as they are). */
static char *text(char *p, const char *s)
{
    for (;;) {
        size_t run = strcspn(s, "&<>");
        p = put(p, s, run);
        s += run;
        switch (*s) {
        case '&':
            p = put(p, "&amp;", 5);
            break;
        case '<':
            p = put(p, "&lt;", 4);
            break;
        case '>':
            p = put(p, "&gt;", 4);
            break;
        default:
            return p;
        }
        s++;
    }
}

int sx_xml_tag(sx_buf *b, unsigned depth, const char *tag)
{
    size_t n = strlen(tag);
    char *p;
    int rc = room(b, depth, 0, n + 1, &p);
    if (rc < 0)
        return rc;
    p = tabs(p, depth);
    p = put(p, tag, n);
    *p++ = '\n';
    return done(b, p);
}

static int element(sx_buf *b, unsigned depth, const char *open, size_t olen, const char *s,
                   const char *close, size_t clen)
{
    char *p;
    int rc = room(b, depth, strlen(s), olen + clen, &p);
    if (rc < 0)
        return rc;
    p = tabs(p, depth);
    p = put(p, open, olen);
    p = text(p, s);
    p = put(p, close, clen);
    return done(b, p);
}

int sx_xml_key(sx_buf *b, unsigned depth, const char *key)
{
    return element(b, depth, "<key>", 5, key, "</key>\n", 7);
}

int sx_xml_string(sx_buf *b, unsigned depth, const char *s)
{
    return element(b, depth, "<string>", 8, s, "</string>\n", 10);
}

int sx_xml_bool(sx_buf *b, unsigned depth, bool v)
{
    return sx_xml_tag(b, depth, v ? "<true/>" : "<false/>");
}

int sx_xml_data(sx_buf *b, unsigned depth, const uint8_t *d, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *p;
    int rc;
    if (n > 32)
        return sx_err(SYSEXT_EINVAL, "xml: data of %zu bytes (at most 32)", n);
    /* <data>, the base64 line (at most 44 characters), </data>: three lines. */
    if ((rc = room(b, depth, 0, 7 + 45 + 8, &p)) < 0)
        return rc;
    p = tabs(p, depth);
    p = put(p, "<data>\n", 7);
    if (n) {
        p = tabs(p, depth);
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v = (uint32_t)d[i] << 16;
            if (i + 1 < n)
                v |= (uint32_t)d[i + 1] << 8;
            if (i + 2 < n)
                v |= d[i + 2];
            *p++ = b64[(v >> 18) & 63];
            *p++ = b64[(v >> 12) & 63];
            *p++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
            *p++ = i + 2 < n ? b64[v & 63] : '=';
        }
        *p++ = '\n';
    }
    p = tabs(p, depth);
    p = put(p, "</data>\n", 8);
    return done(b, p);
}
