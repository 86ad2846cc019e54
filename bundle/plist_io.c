/* Reading property lists (XML or binary) from untrusted bytes, and a few typed helpers. */
#include "util/common.h"
#include "bundle/bundle.h"
#include "util/fs.h"
#include "util/reader.h"

#include <ctype.h>

/* No real Info.plist or entitlements file nests deeper than a handful of levels. */
#define SX_PLIST_MAX_DEPTH 64

static bool at(const char *s, size_t len, size_t i, const char *lit)
{
    size_t n = strlen(lit);
    return i <= len && len - i >= n && !memcmp(s + i, lit, n);
}

/* Index just past the first `lit` at or after `from`, or `len`. */
static size_t past(const char *s, size_t len, size_t from, const char *lit)
{
    size_t n = strlen(lit);
    for (size_t i = from; i + n <= len; i++)
        if (!memcmp(s + i, lit, n))
            return i + n;
    return len;
}

/* "<dict" or "<array" at i, not written as an empty element ("<dict/>"). Any such text counts,
 * even inside comments or attributes: counting too many opens is only stricter. */
static bool container_open(const char *s, size_t len, size_t i)
{
    size_t n = at(s, len, i, "<dict") ? 5 : at(s, len, i, "<array") ? 6 : 0;
    if (!n)
        return false;
    size_t j = i + n;
    while (j < len && isspace((unsigned char)s[j]))
        j++;
    return !at(s, len, j, "/>");
}

static bool container_close(const char *s, size_t len, size_t i)
{
    size_t n = at(s, len, i, "</dict") ? 6 : at(s, len, i, "</array") ? 7 : 0;
    return n && i + n < len && (isspace((unsigned char)s[i + n]) || s[i + n] == '>');
}

/* libplist 2.2's XML parser and writer recurse once per nesting level (a plist nested a few
 * hundred thousand levels deep crashes plist_to_xml, and the parser itself on a smaller
 * stack), so nesting is measured before parsing. The count must never come out low: every
 * opening tag counts, wherever it is, while a closing tag counts only outside comments,
 * CDATA, processing instructions, declarations and quoted attribute values, as libplist
 * reads them. */
static int xml_depth_ok(const char *s, size_t len, const char *what)
{
    size_t depth = 0, i = 0;
    while (i < len) {
        if (s[i] != '<') {
            i++;
            continue;
        }
        size_t end;
        if (at(s, len, i, "<!--"))
            end = past(s, len, i + 4, "-->");
        else if (at(s, len, i, "<![CDATA["))
            end = past(s, len, i + 9, "]]>");
        else if (at(s, len, i, "<?"))
            end = past(s, len, i + 2, "?>");
        else if (at(s, len, i, "<!"))
            end = past(s, len, i + 2, ">");
        else {
            char q = 0;
            size_t j = i + 1;
            for (; j < len; j++) {
                if (q) {
                    if (s[j] == q)
                        q = 0;
                } else if (s[j] == '"' || s[j] == '\'') {
                    q = s[j];
                } else if (s[j] == '>') {
                    break;
                }
            }
            end = j < len ? j + 1 : len;
            if (container_close(s, len, i) && depth)
                depth--;
        }
        for (size_t k = i; k < end; k++) {
            if (s[k] == '<' && container_open(s, len, k) && ++depth > SX_PLIST_MAX_DEPTH)
                return sx_err(SYSEXT_ELIMIT,
                              "%s: containers nested deeper than %d levels at byte %zu", what,
                              SX_PLIST_MAX_DEPTH, k);
        }
        i = end;
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

struct bpl {
    const uint8_t *data;
    size_t body; /* bytes before the trailer */
    uint64_t nobj, table;
    uint8_t offsz, refsz;
    const char *what;
};

/* A reader at object `i`, past its marker byte. */
static int bpl_object(const struct bpl *b, uint64_t i, sx_reader *r, uint8_t *marker,
                      uint64_t *off)
{
    int e;
    sx_reader_init(r, b->data, b->body, b->what);
    if ((e = sx_rd_seek(r, (size_t)(b->table + i * b->offsz))) < 0 ||
        (e = rd_be(r, b->offsz, off)) < 0)
        return e;
    if (*off < 8 || *off >= b->body)
        return sx_err(SYSEXT_EFORMAT, "%s: object %llu at offset %llu is outside the data",
                      b->what, (unsigned long long)i, (unsigned long long)*off);
    if ((e = sx_rd_seek(r, (size_t)*off)) < 0 || (e = sx_rd_u8(r, marker)) < 0)
        return e;
    return 0;
}

/* The element count of a string or container whose marker is `marker`. */
static int bpl_count(const struct bpl *b, sx_reader *r, uint8_t marker, uint64_t off,
                     uint64_t *count)
{
    uint8_t im;
    int e;
    *count = marker & 0xf;
    if (*count != 0xf)
        return 0;
    if ((e = sx_rd_u8(r, &im)) < 0)
        return e;
    if ((im >> 4) != 0x1 || (im & 0xf) > 3)
        return sx_err(SYSEXT_EFORMAT, "%s: object at offset %llu has a bad length marker 0x%02x",
                      b->what, (unsigned long long)off, im);
    return rd_be(r, 1u << (im & 0xf), count);
}

/* libplist 2.2 parses binary plists recursively, without a depth limit (a few hundred thousand
 * nested arrays overflow the stack) and follows references into cycles. Walk the containers
 * from the top object first, iteratively, each once, refusing cycles and deep nesting. */
static int bpl_depth_ok(const struct bpl *b, uint64_t top)
{
    struct frame {
        uint64_t obj, next, n; /* object, next child slot, child slots */
        size_t refs;           /* offset of its first reference */
        unsigned below;        /* levels of containers below it seen so far */
    } stack[SX_PLIST_MAX_DEPTH];
    /* Per object: 0 unseen, 1 on the stack, 2 done (depth[] then holds its depth). */
    uint8_t *state = calloc((size_t)b->nobj, 2);
    if (!state)
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", b->what);
    uint8_t *depth = state + b->nobj;
    size_t sp = 0;
    int e = 0;
    uint64_t cur = top;
    for (;;) {
        /* Enter `cur`. */
        sx_reader r;
        uint8_t marker;
        uint64_t off, count, slots = 0;
        if ((e = bpl_object(b, cur, &r, &marker, &off)) < 0)
            break;
        unsigned kind = marker >> 4;
        if (kind == 0xa || kind == 0xc || kind == 0xd) {
            if ((e = bpl_count(b, &r, marker, off, &count)) < 0)
                break;
            slots = kind == 0xd ? count * 2 : count;
            uint64_t bytes;
            if (count > b->body || SX_MUL_OVERFLOW(slots, (uint64_t)b->refsz, &bytes) ||
                bytes > sx_reader_left(&r)) {
                e = sx_err(SYSEXT_EFORMAT, "%s: container at offset %llu runs past the data",
                           b->what, (unsigned long long)off);
                break;
            }
        }
        if (slots == 0) {
            state[cur] = 2;
            depth[cur] = 0;
            if (sp && stack[sp - 1].below < 1)
                stack[sp - 1].below = 1;
        } else {
            if (sp == SX_PLIST_MAX_DEPTH) {
                e = sx_err(SYSEXT_ELIMIT, "%s: containers nested deeper than %d levels at offset "
                           "%llu", b->what, SX_PLIST_MAX_DEPTH, (unsigned long long)off);
                break;
            }
            state[cur] = 1;
            stack[sp++] = (struct frame){cur, 0, slots, r.pos, 0};
        }
        /* Find the next child to enter, finishing containers on the way up. */
        bool entered = false;
        while (sp && !entered) {
            struct frame *f = &stack[sp - 1];
            if (f->next == f->n) {
                state[f->obj] = 2;
                depth[f->obj] = (uint8_t)f->below;
                unsigned d = f->below;
                sp--;
                if (sp && stack[sp - 1].below < d + 1)
                    stack[sp - 1].below = d + 1;
                continue;
            }
            sx_reader rr;
            uint64_t child;
            sx_reader_init(&rr, b->data, b->body, b->what);
            if ((e = sx_rd_seek(&rr, f->refs + (size_t)(f->next * b->refsz))) < 0 ||
                (e = rd_be(&rr, b->refsz, &child)) < 0)
                break;
            f->next++;
            if (child >= b->nobj) {
                e = sx_err(SYSEXT_EFORMAT, "%s: reference to object %llu of %llu", b->what,
                           (unsigned long long)child, (unsigned long long)b->nobj);
                break;
            }
            if (state[child] == 1) {
                e = sx_err(SYSEXT_EFORMAT, "%s: object %llu contains itself", b->what,
                           (unsigned long long)child);
                break;
            }
            if (state[child] == 2) {
                /* Shared and already measured: where we are plus its depth must fit. */
                if (sp + depth[child] > SX_PLIST_MAX_DEPTH) {
                    e = sx_err(SYSEXT_ELIMIT, "%s: containers nested deeper than %d levels",
                               b->what, SX_PLIST_MAX_DEPTH);
                    break;
                }
                if (f->below < (unsigned)depth[child] + 1)
                    f->below = (unsigned)depth[child] + 1;
                continue;
            }
            cur = child;
            entered = true;
        }
        if (e < 0 || !entered)
            break;
    }
    free(state);
    return e;
}

/* Check a binary plist before libplist 2.2 parses it: the trailer and offset table are
 * consistent, the containers nest at most SX_PLIST_MAX_DEPTH deep without cycles (above), and
 * no ASCII (0x5_) or UTF-16 (0x6_) string holds a NUL: libplist asserts (aborts) when a
 * dictionary key with a NUL is read back. (Its XML parser refuses NULs, raw or as character
 * references.) A structure we cannot walk is refused. */
static int bplist_ok(const uint8_t *data, size_t len, const char *what)
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
    struct bpl b = {data, body, nobj, table, offsz, refsz, what};
    if ((e = bpl_depth_ok(&b, top)) < 0)
        return e;
    for (uint64_t i = 0; i < nobj; i++) {
        uint8_t marker;
        if ((e = bpl_object(&b, i, &r, &marker, &off)) < 0)
            return e;
        unsigned kind = marker >> 4;
        if (kind != 0x5 && kind != 0x6)
            continue;
        if ((e = bpl_count(&b, &r, marker, off, &count)) < 0)
            return e;
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
        int r = bplist_ok(data, len, what);
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
