/* CodeResources XML written directly, byte for byte as libplist 2.2's plist_to_xml lays it
 * out (tests/unit/codesign/test_seal_xml.c compares the two). Building a libplist tree of
 * 20,000 dictionaries and serialising it was most of an incremental re-sign. */
#include "util/common.h"
#include "codesign/seal_internal.h"

#define MAX_DEPTH 16u

static int indent(sx_buf *b, unsigned depth)
{
    static const char tabs[MAX_DEPTH] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
    if (depth > MAX_DEPTH)
        return sx_err(SYSEXT_EINVAL, "xml: depth %u too deep", depth);
    return sx_buf_append(b, tabs, depth);
}

/* Text with & < > escaped, as libplist 2.2 does for keys and strings (quotes and control
 * characters are written as they are). */
static int text(sx_buf *b, const char *s)
{
    const char *run = s;
    int rc;
    for (; *s; s++) {
        const char *ent;
        switch (*s) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        default:
            continue;
        }
        if ((rc = sx_buf_append(b, run, (size_t)(s - run))) < 0 || (rc = sx_buf_puts(b, ent)) < 0)
            return rc;
        run = s + 1;
    }
    return sx_buf_append(b, run, (size_t)(s - run));
}

int sx_xml_tag(sx_buf *b, unsigned depth, const char *tag)
{
    int rc;
    if ((rc = indent(b, depth)) < 0 || (rc = sx_buf_puts(b, tag)) < 0)
        return rc;
    return sx_buf_putc(b, '\n');
}

int sx_xml_key(sx_buf *b, unsigned depth, const char *key)
{
    int rc;
    if ((rc = indent(b, depth)) < 0 || (rc = sx_buf_append(b, "<key>", 5)) < 0 ||
        (rc = text(b, key)) < 0)
        return rc;
    return sx_buf_append(b, "</key>\n", 7);
}

int sx_xml_string(sx_buf *b, unsigned depth, const char *s)
{
    int rc;
    if ((rc = indent(b, depth)) < 0 || (rc = sx_buf_append(b, "<string>", 8)) < 0 ||
        (rc = text(b, s)) < 0)
        return rc;
    return sx_buf_append(b, "</string>\n", 10);
}

int sx_xml_bool(sx_buf *b, unsigned depth, bool v)
{
    return sx_xml_tag(b, depth, v ? "<true/>" : "<false/>");
}

int sx_xml_data(sx_buf *b, unsigned depth, const uint8_t *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[48];
    size_t k = 0;
    int rc;
    if (n > 32)
        return sx_err(SYSEXT_EINVAL, "xml: data of %zu bytes (at most 32)", n);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        line[k++] = b64[(v >> 18) & 63];
        line[k++] = b64[(v >> 12) & 63];
        line[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        line[k++] = i + 2 < n ? b64[v & 63] : '=';
    }
    if ((rc = sx_xml_tag(b, depth, "<data>")) < 0)
        return rc;
    if (k && ((rc = indent(b, depth)) < 0 || (rc = sx_buf_append(b, line, k)) < 0 ||
              (rc = sx_buf_putc(b, '\n')) < 0))
        return rc;
    return sx_xml_tag(b, depth, "</data>");
}
