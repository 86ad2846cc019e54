/* Reading property lists (XML or binary) from untrusted bytes, and a few typed helpers. */
#include "util/common.h"
#include "bundle/bundle.h"
#include "util/fs.h"
#include "util/reader.h"

#include <ctype.h>

/* libplist 2.2 recurses once per nesting level in both parsers; a hostile file with a few
 * hundred thousand nested containers would exhaust the stack. No real Info.plist or
 * entitlements file nests deeper than a handful of levels. */
#define SX_PLIST_MAX_DEPTH 64

static int xml_depth_ok(const char *s, size_t len, const char *what)
{
    size_t depth = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '<')
            continue;
        const char *t = s + i + 1;
        size_t left = len - i - 1;
        bool close = t[0] == '/';
        if (close) {
            t++;
            left--;
        }
        bool dict = left >= 4 && !memcmp(t, "dict", 4);
        bool array = left >= 5 && !memcmp(t, "array", 5);
        if (!dict && !array)
            continue;
        size_t nlen = dict ? 4 : 5;
        /* "<dict/>" opens and closes at once. */
        size_t j = nlen;
        while (j < left && isspace((unsigned char)t[j]))
            j++;
        bool empty = j < left && t[j] == '/';
        if (close) {
            if (depth)
                depth--;
        } else if (!empty && ++depth > SX_PLIST_MAX_DEPTH) {
            return sx_err(SYSEXT_ELIMIT, "%s: containers nested deeper than %d levels at byte %zu",
                          what, SX_PLIST_MAX_DEPTH, i);
        }
    }
    return 0;
}

static int rd_be(sx_reader *r, unsigned n, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b;
        int e = sx_rd_u8(r, &b);
        if (e < 0)
            return e;
        v = v << 8 | b;
    }
    *out = v;
    return 0;
}

/* libplist 2.2 asserts (aborts) when a dictionary key holding a NUL byte is read back, and a
 * binary plist can carry one in an ASCII (0x5_) or UTF-16 (0x6_) string object. Walk the object
 * table first and refuse any string with a NUL; a structure we cannot walk is refused too.
 * (The XML parser already refuses NULs, raw or as character references.) */
static int bplist_strings_ok(const uint8_t *data, size_t len, const char *what)
{
    sx_reader r;
    uint64_t nobj = 0, top = 0, table = 0, off = 0, count = 0;
    uint8_t offsz = 0, refsz = 0;
    if (len < 8 + 32)
        return sx_err(SYSEXT_EFORMAT, "%s: binary property list of %zu bytes is truncated", what,
                      len);
    sx_reader_init(&r, data, len, what);
    int e = sx_rd_seek(&r, len - 32 + 6);
    if (e == 0)
        e = sx_rd_u8(&r, &offsz);
    if (e == 0)
        e = sx_rd_u8(&r, &refsz);
    if (e == 0)
        e = sx_rd_u64be(&r, &nobj);
    if (e == 0)
        e = sx_rd_u64be(&r, &top);
    if (e == 0)
        e = sx_rd_u64be(&r, &table);
    if (e < 0)
        return e;
    size_t body = len - 32;
    uint64_t tsize;
    if (offsz < 1 || offsz > 8 || refsz < 1 || refsz > 8 || nobj == 0 || top >= nobj ||
        table < 8 || SX_MUL_OVERFLOW(nobj, (uint64_t)offsz, &tsize) || table > body ||
        tsize > body - table)
        return sx_err(SYSEXT_EFORMAT, "%s: binary property list trailer at offset %zu is "
                      "inconsistent", what, body);
    for (uint64_t i = 0; i < nobj; i++) {
        sx_reader_init(&r, data, body, what);
        if ((e = sx_rd_seek(&r, (size_t)(table + i * offsz))) < 0 ||
            (e = rd_be(&r, offsz, &off)) < 0)
            return e;
        uint8_t marker, im;
        if (off < 8 || off >= body)
            return sx_err(SYSEXT_EFORMAT, "%s: object %llu at offset %llu is outside the data",
                          what, (unsigned long long)i, (unsigned long long)off);
        if ((e = sx_rd_seek(&r, (size_t)off)) < 0 || (e = sx_rd_u8(&r, &marker)) < 0)
            return e;
        unsigned kind = marker >> 4;
        if (kind != 0x5 && kind != 0x6)
            continue;
        count = marker & 0xf;
        if (count == 0xf) {
            if ((e = sx_rd_u8(&r, &im)) < 0)
                return e;
            if ((im >> 4) != 0x1 || (im & 0xf) > 3)
                return sx_err(SYSEXT_EFORMAT, "%s: string at offset %llu has a bad length "
                              "marker 0x%02x", what, (unsigned long long)off, im);
            if ((e = rd_be(&r, 1u << (im & 0xf), &count)) < 0)
                return e;
        }
        uint64_t bytes = kind == 0x6 ? count * 2 : count;
        const uint8_t *p;
        if (count > body || bytes > sx_reader_left(&r))
            return sx_err(SYSEXT_EFORMAT, "%s: string at offset %llu runs past the data", what,
                          (unsigned long long)off);
        if ((e = sx_rd_bytes(&r, (size_t)bytes, &p)) < 0)
            return e;
        for (uint64_t k = 0; k < count; k++) {
            bool nul = kind == 0x5 ? p[k] == 0 : (p[2 * k] == 0 && p[2 * k + 1] == 0);
            if (nul)
                return sx_err(SYSEXT_EFORMAT, "%s: string at offset %llu holds a NUL character",
                              what, (unsigned long long)off);
        }
    }
    return 0;
}

int sx_plist_parse(const void *data, size_t len, const char *what, plist_t *out)
{
    plist_t p = NULL;
    if (!what)
        what = "property list";
    if (len == 0)
        return sx_err(SYSEXT_EFORMAT, "%s: empty file, expected an XML or binary property list",
                      what);
    if (len > UINT32_MAX)
        return sx_err(SYSEXT_ELIMIT, "%s: %zu bytes is too large for a property list", what, len);
    if (len >= 8 && !memcmp(data, "bplist00", 8)) {
        int r = bplist_strings_ok(data, len, what);
        if (r < 0)
            return r;
        plist_from_bin(data, (uint32_t)len, &p);
        if (!p)
            return sx_err(SYSEXT_EFORMAT, "%s: malformed binary property list", what);
    } else {
        /* The XML parser wants a terminated string it can scan freely: give it a copy. */
        char *s = malloc(len + 1);
        if (!s)
            return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
        memcpy(s, data, len);
        s[len] = '\0';
        size_t n = strlen(s);
        if (n != len) {
            free(s);
            return sx_err(SYSEXT_EFORMAT, "%s: NUL byte at offset %zu in an XML property list",
                          what, n);
        }
        int r = xml_depth_ok(s, len, what);
        if (r < 0) {
            free(s);
            return r;
        }
        plist_from_xml(s, (uint32_t)len, &p);
        free(s);
        if (!p)
            return sx_err(SYSEXT_EFORMAT,
                          "%s: malformed property list (neither valid XML plist nor bplist00)",
                          what);
    }
    *out = p;
    return 0;
}

int sx_plist_read_file(const char *path, size_t max, plist_t *out)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r = sx_read_file(path, max, &data, &len);
    if (r < 0)
        return r;
    r = sx_plist_parse(data, len, path, out);
    free(data);
    return r;
}

const char *sx_plist_type_name(plist_t node)
{
    if (!node)
        return "nothing";
    switch (plist_get_node_type(node)) {
    case PLIST_BOOLEAN:
        return "bool";
    case PLIST_UINT:
        return "integer";
    case PLIST_REAL:
        return "real";
    case PLIST_STRING:
        return "string";
    case PLIST_ARRAY:
        return "array";
    case PLIST_DICT:
        return "dict";
    case PLIST_DATE:
        return "date";
    case PLIST_DATA:
        return "data";
    case PLIST_KEY:
        return "key";
    case PLIST_UID:
        return "uid";
    default:
        return "unknown";
    }
}

const char *sx_plist_string(plist_t dict, const char *key)
{
    if (!dict || plist_get_node_type(dict) != PLIST_DICT)
        return NULL;
    plist_t v = plist_dict_get_item(dict, key);
    if (!v || plist_get_node_type(v) != PLIST_STRING)
        return NULL;
    return plist_get_string_ptr(v, NULL);
}
