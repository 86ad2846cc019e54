/* Entitlement blobs (reference 4): the XML blob keeps the caller's bytes; the DER blob is
 * Apple's CoreEntitlements encoding (4.2), built and parsed here with a bounded reader. */
#include "util/common.h"
#include "codesign/entitlements.h"

#include "codesign/codedirectory.h"
#include "util/reader.h"

#define DER_MAX_DEPTH 32         /* nesting of dicts/arrays accepted either way */
#define ENT_MAX_BLOB (16u << 20) /* 16 MiB: far above any real entitlements plist */

enum {
    TAG_BOOLEAN = 0x01,
    TAG_INTEGER = 0x02,
    TAG_UTF8 = 0x0c,
    TAG_SEQUENCE = 0x30,
    TAG_SET = 0x31,
    TAG_APP16 = 0x70, /* [APPLICATION 16] constructed: the top level */
    TAG_CTX16 = 0xb0, /* [CONTEXT 16] constructed: a dictionary */
};

static int blob_header(sx_buf *out, uint32_t magic, size_t payload)
{
    if (payload > ENT_MAX_BLOB)
        return sx_err(SYSEXT_ELIMIT, "entitlements: %zu bytes exceed the %u-byte limit", payload,
                      ENT_MAX_BLOB);
    int e = sx_buf_put_u32be(out, magic);
    if (e < 0)
        return e;
    return sx_buf_put_u32be(out, (uint32_t)(payload + 8));
}

int sx_ent_xml_blob(const uint8_t *xml, size_t len, sx_buf *out)
{
    SX_ASSERT_ARG(xml || len == 0);
    SX_ASSERT_ARG(out);
    size_t base = out->len;
    int e = blob_header(out, SX_CSMAGIC_EMBEDDED_ENTITLEMENTS, len);
    if (e >= 0)
        e = sx_buf_append(out, xml, len);
    if (e < 0)
        out->len = base;
    return e;
}

/* ---- DER writer ---- */

static int der_put_tlv(sx_buf *out, uint8_t tag, const uint8_t *content, size_t len)
{
    uint8_t hdr[6];
    size_t n = 0;
    hdr[n++] = tag;
    if (len < 0x80) {
        hdr[n++] = (uint8_t)len;
    } else {
        uint8_t tmp[4];
        size_t k = 0;
        for (size_t v = len; v; v >>= 8)
            tmp[k++] = (uint8_t)v;
        if (k > 4)
            return sx_err(SYSEXT_ELIMIT, "entitlements DER: element of %zu bytes is too large",
                          len);
        hdr[n++] = (uint8_t)(0x80 | k);
        while (k)
            hdr[n++] = tmp[--k];
    }
    int e = sx_buf_append(out, hdr, n);
    if (e >= 0 && len)
        e = sx_buf_append(out, content, len);
    return e;
}

static int der_put_int(sx_buf *out, int64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)((uint64_t)v & 0xff);
        v = (int64_t)((uint64_t)v >> 8 | ((uint64_t)(v < 0 ? 0xff : 0) << 56));
    }
    size_t s = 0; /* drop redundant leading 0x00 / 0xff bytes */
    while (s < 7 && ((b[s] == 0x00 && !(b[s + 1] & 0x80)) || (b[s] == 0xff && (b[s + 1] & 0x80))))
        s++;
    return der_put_tlv(out, TAG_INTEGER, b + s, 8 - s);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int der_value(plist_t node, const char *path, unsigned depth, sx_buf *out);

static int der_dict(plist_t dict, const char *path, unsigned depth, sx_buf *out)
{
    uint32_t n = plist_dict_get_size(dict);
    char **keys = n ? calloc(n, sizeof(*keys)) : NULL;
    sx_buf body = SX_BUF_INIT, entry = SX_BUF_INIT;
    int e = 0;
    if (n && !keys)
        return sx_err(SYSEXT_ENOMEM, "entitlements: out of memory");
    plist_dict_iter it = NULL;
    plist_dict_new_iter(dict, &it);
    uint32_t got = 0;
    for (; got < n; got++) {
        char *k = NULL;
        plist_t v = NULL;
        plist_dict_next_item(dict, it, &k, &v);
        if (!k)
            break;
        keys[got] = k;
    }
    free(it);
    if (got > 1)
        qsort(keys, got, sizeof(*keys), cmp_keys);
    for (uint32_t i = 0; i < got && e >= 0; i++) {
        _sx_cleanup_free_ char *sub = NULL;
        if (asprintf(&sub, "%s%s%s", path, *path ? "." : "", keys[i]) < 0) {
            sub = NULL;
            e = sx_err(SYSEXT_ENOMEM, "entitlements: out of memory");
            break;
        }
        entry.len = 0;
        if ((e = der_put_tlv(&entry, TAG_UTF8, (const uint8_t *)keys[i], strlen(keys[i]))) < 0 ||
            (e = der_value(plist_dict_get_item(dict, keys[i]), sub, depth + 1, &entry)) < 0)
            break;
        e = der_put_tlv(&body, TAG_SEQUENCE, entry.data, entry.len);
    }
    if (e >= 0)
        e = der_put_tlv(out, TAG_CTX16, body.data, body.len);
    for (uint32_t i = 0; i < got; i++)
        free(keys[i]);
    free(keys);
    sx_buf_free(&body);
    sx_buf_free(&entry);
    return e;
}

static int der_value(plist_t node, const char *path, unsigned depth, sx_buf *out)
{
    if (depth > DER_MAX_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "entitlements: %s: nested deeper than %u levels", path,
                      DER_MAX_DEPTH);
    switch (plist_get_node_type(node)) {
    case PLIST_DICT:
        return der_dict(node, path, depth, out);
    case PLIST_ARRAY: {
        sx_buf body = SX_BUF_INIT;
        int e = 0;
        uint32_t n = plist_array_get_size(node);
        for (uint32_t i = 0; i < n && e >= 0; i++) {
            char sub[32];
            snprintf(sub, sizeof(sub), "[%u]", i); /* only for messages; truncation harmless */
            e = der_value(plist_array_get_item(node, i), *path ? path : sub, depth + 1, &body);
        }
        if (e >= 0)
            e = der_put_tlv(out, TAG_SEQUENCE, body.data, body.len);
        sx_buf_free(&body);
        return e;
    }
    case PLIST_STRING: {
        uint64_t len = 0;
        const char *s = plist_get_string_ptr(node, &len);
        return der_put_tlv(out, TAG_UTF8, (const uint8_t *)s, s ? strlen(s) : 0);
    }
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(node, &b);
        uint8_t v = b ? 0xff : 0x00;
        return der_put_tlv(out, TAG_BOOLEAN, &v, 1);
    }
    case PLIST_UINT: {
        uint64_t v = 0;
        plist_get_uint_val(node, &v);
        return der_put_int(out, (int64_t)v);
    }
    default:
        return sx_err(SYSEXT_EINVALID,
                      "entitlements: %s: data, date and real values cannot be encoded as DER",
                      *path ? path : "(root)");
    }
}

int sx_ent_der_blob(plist_t dict, sx_buf *out)
{
    SX_ASSERT_ARG(dict);
    SX_ASSERT_ARG(out);
    if (plist_get_node_type(dict) != PLIST_DICT)
        return sx_err(SYSEXT_EINVALID, "entitlements: the top level is not a dictionary");
    sx_buf body = SX_BUF_INIT, top = SX_BUF_INIT;
    int e = der_put_int(&body, 1);
    if (e >= 0)
        e = der_dict(dict, "", 0, &body);
    if (e >= 0)
        e = der_put_tlv(&top, TAG_APP16, body.data, body.len);
    size_t base = out->len;
    if (e >= 0)
        e = blob_header(out, SX_CSMAGIC_EMBEDDED_DER_ENTITLEMENTS, top.len);
    if (e >= 0)
        e = sx_buf_append(out, top.data, top.len);
    if (e < 0)
        out->len = base;
    sx_buf_free(&body);
    sx_buf_free(&top);
    return e;
}

/* ---- parsing ---- */

static int blob_payload(const uint8_t *blob, size_t len, uint32_t magic, const char *what,
                        sx_reader *payload)
{
    sx_reader r;
    uint32_t m, l;
    int e;
    sx_reader_init(&r, blob, len, what);
    if ((e = sx_rd_u32be(&r, &m)) < 0 || (e = sx_rd_u32be(&r, &l)) < 0)
        return e;
    if (m != magic)
        return sx_err(SYSEXT_EFORMAT, "%s: magic 0x%08x at offset 0, expected 0x%08x", what, m,
                      magic);
    if (l < 8 || l > len)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: blob length %u at offset 4 does not fit the %zu bytes "
                      "given",
                      what, l, len);
    return sx_rd_window(&r, 8, l - 8, payload, what);
}

int sx_ent_parse_xml_blob(const uint8_t *blob, size_t len, plist_t *out)
{
    SX_ASSERT_ARG(blob || len == 0);
    SX_ASSERT_ARG(out);
    const char *what = "entitlements blob";
    sx_reader p;
    int e = blob_payload(blob, len, SX_CSMAGIC_EMBEDDED_ENTITLEMENTS, what, &p);
    if (e < 0)
        return e;
    const uint8_t *xml;
    size_t n = sx_reader_left(&p);
    sx_rd_bytes(&p, n, &xml);
    if (n == 0 || n > ENT_MAX_BLOB || !memmem(xml, n, "<plist", 6))
        return sx_err(SYSEXT_EFORMAT, "%s: the payload at offset 8 is not an XML plist", what);
    plist_t pl = NULL;
    plist_from_xml((const char *)xml, (uint32_t)n, &pl);
    if (!pl)
        return sx_err(SYSEXT_EFORMAT, "%s: the XML plist at offset 8 does not parse", what);
    if (plist_get_node_type(pl) != PLIST_DICT) {
        plist_free(pl);
        return sx_err(SYSEXT_EFORMAT, "%s: the XML plist at offset 8 is not a dictionary", what);
    }
    *out = pl;
    return 0;
}

typedef struct der_tlv {
    uint8_t tag;
    size_t at; /* absolute offset of the tag, for messages */
    sx_reader content;
} der_tlv;

static int der_next(sx_reader *r, der_tlv *t)
{
    uint8_t tag, l0;
    int e;
    t->at = sx_reader_offset(r);
    if ((e = sx_rd_u8(r, &tag)) < 0 || (e = sx_rd_u8(r, &l0)) < 0)
        return e;
    if ((tag & 0x1f) == 0x1f)
        return sx_err(SYSEXT_EFORMAT, "%s: multi-byte DER tag at offset %zu", r->what, t->at);
    size_t len = l0;
    if (l0 & 0x80) {
        unsigned k = l0 & 0x7f;
        if (k == 0 || k > 4)
            return sx_err(SYSEXT_EFORMAT, "%s: DER length form 0x%02x at offset %zu not supported",
                          r->what, l0, t->at + 1);
        len = 0;
        for (unsigned i = 0; i < k; i++) {
            uint8_t b;
            if ((e = sx_rd_u8(r, &b)) < 0)
                return e;
            len = len << 8 | b;
        }
    }
    if (len > sx_reader_left(r))
        return sx_err(SYSEXT_EFORMAT, "%s: DER element at offset %zu claims %zu bytes, %zu left",
                      r->what, t->at, len, sx_reader_left(r));
    t->tag = tag;
    sx_rd_window(r, r->pos, len, &t->content, r->what);
    sx_rd_skip(r, len);
    return 0;
}

static int der_parse_value(const der_tlv *t, unsigned depth, plist_t *out);

static int der_parse_dict(const der_tlv *t, unsigned depth, plist_t *out)
{
    sx_reader r = t->content;
    plist_t dict = plist_new_dict();
    int e = 0;
    while (sx_reader_left(&r) > 0) {
        der_tlv ent, key, val;
        if ((e = der_next(&r, &ent)) < 0)
            break;
        if (ent.tag != TAG_SEQUENCE) {
            e = sx_err(SYSEXT_EFORMAT,
                       "%s: dictionary entry at offset %zu: tag 0x%02x, expected "
                       "SEQUENCE",
                       r.what, ent.at, ent.tag);
            break;
        }
        if ((e = der_next(&ent.content, &key)) < 0)
            break;
        if (key.tag != TAG_UTF8) {
            e = sx_err(SYSEXT_EFORMAT,
                       "%s: dictionary key at offset %zu: tag 0x%02x, expected "
                       "UTF8String",
                       r.what, key.at, key.tag);
            break;
        }
        if ((e = der_next(&ent.content, &val)) < 0)
            break;
        if (sx_reader_left(&ent.content) != 0) {
            e = sx_err(SYSEXT_EFORMAT, "%s: dictionary entry at offset %zu has trailing bytes",
                       r.what, ent.at);
            break;
        }
        const uint8_t *kb;
        size_t kl = sx_reader_left(&key.content);
        sx_rd_bytes(&key.content, kl, &kb);
        if (memchr(kb, 0, kl)) {
            e = sx_err(SYSEXT_EFORMAT, "%s: dictionary key at offset %zu contains NUL", r.what,
                       key.at);
            break;
        }
        _sx_cleanup_free_ char *k = strndup((const char *)kb, kl);
        if (!k) {
            e = sx_err(SYSEXT_ENOMEM, "entitlements: out of memory");
            break;
        }
        if (plist_dict_get_item(dict, k)) {
            e = sx_err(SYSEXT_EFORMAT, "%s: dictionary key '%s' at offset %zu appears twice",
                       r.what, k, key.at);
            break;
        }
        plist_t v = NULL;
        if ((e = der_parse_value(&val, depth + 1, &v)) < 0)
            break;
        plist_dict_set_item(dict, k, v);
    }
    if (e < 0) {
        plist_free(dict);
        return e;
    }
    *out = dict;
    return 0;
}

static int der_parse_value(const der_tlv *t, unsigned depth, plist_t *out)
{
    sx_reader c = t->content;
    size_t n = sx_reader_left(&c);
    const uint8_t *p = NULL;
    if (depth > DER_MAX_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "%s: element at offset %zu nested deeper than %u levels",
                      c.what, t->at, DER_MAX_DEPTH);
    switch (t->tag) {
    case TAG_CTX16:
        return der_parse_dict(t, depth, out);
    case TAG_SEQUENCE: {
        plist_t arr = plist_new_array();
        while (sx_reader_left(&c) > 0) {
            der_tlv item;
            plist_t v = NULL;
            int e = der_next(&c, &item);
            if (e >= 0)
                e = der_parse_value(&item, depth + 1, &v);
            if (e < 0) {
                plist_free(arr);
                return e;
            }
            plist_array_append_item(arr, v);
        }
        *out = arr;
        return 0;
    }
    case TAG_UTF8: {
        sx_rd_bytes(&c, n, &p);
        if (n && memchr(p, 0, n))
            return sx_err(SYSEXT_EFORMAT, "%s: UTF8String at offset %zu contains NUL", c.what,
                          t->at);
        char *s = strndup(n ? (const char *)p : "", n);
        if (!s)
            return sx_err(SYSEXT_ENOMEM, "entitlements: out of memory");
        *out = plist_new_string(s);
        free(s);
        return 0;
    }
    case TAG_BOOLEAN:
        sx_rd_bytes(&c, n, &p);
        if (n != 1 || (p[0] != 0 && p[0] != 0xff))
            return sx_err(SYSEXT_EFORMAT, "%s: BOOLEAN at offset %zu is not 00 or ff", c.what,
                          t->at);
        *out = plist_new_bool(p[0] != 0);
        return 0;
    case TAG_INTEGER: {
        sx_rd_bytes(&c, n, &p);
        if (n < 1 || n > 8)
            return sx_err(SYSEXT_EFORMAT, "%s: INTEGER at offset %zu has %zu bytes (1..8)", c.what,
                          t->at, n);
        uint64_t v = (p[0] & 0x80) ? UINT64_MAX : 0;
        for (size_t i = 0; i < n; i++)
            v = v << 8 | p[i];
        *out = plist_new_uint(v);
        return 0;
    }
    default:
        return sx_err(SYSEXT_EFORMAT, "%s: unexpected DER tag 0x%02x at offset %zu", c.what, t->tag,
                      t->at);
    }
}

int sx_ent_parse_der_blob(const uint8_t *blob, size_t len, plist_t *out)
{
    SX_ASSERT_ARG(blob || len == 0);
    SX_ASSERT_ARG(out);
    const char *what = "DER entitlements blob";
    sx_reader p;
    int e = blob_payload(blob, len, SX_CSMAGIC_EMBEDDED_DER_ENTITLEMENTS, what, &p);
    if (e < 0)
        return e;
    der_tlv top, ver, dict;
    if ((e = der_next(&p, &top)) < 0)
        return e;
    if (sx_reader_left(&p) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: %zu trailing bytes after the DER at offset %zu", what,
                      sx_reader_left(&p), sx_reader_offset(&p));
    if (top.tag == TAG_SET) { /* tolerated top-level form (reference 4.2): entries only */
        top.tag = TAG_CTX16;
        return der_parse_dict(&top, 0, out);
    }
    if (top.tag != TAG_APP16)
        return sx_err(SYSEXT_EFORMAT, "%s: top-level DER tag 0x%02x at offset 8, expected 0x70",
                      what, top.tag);
    if ((e = der_next(&top.content, &ver)) < 0)
        return e;
    const uint8_t *vb;
    if (ver.tag != TAG_INTEGER || sx_reader_left(&ver.content) != 1 ||
        (sx_rd_bytes(&ver.content, 1, &vb), vb[0] != 1))
        return sx_err(SYSEXT_EFORMAT, "%s: version at offset %zu is not INTEGER 1", what, ver.at);
    if ((e = der_next(&top.content, &dict)) < 0)
        return e;
    if (dict.tag != TAG_CTX16)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: root at offset %zu has tag 0x%02x, expected a "
                      "dictionary (0xb0)",
                      what, dict.at, dict.tag);
    if (sx_reader_left(&top.content) != 0)
        return sx_err(SYSEXT_EFORMAT, "%s: trailing bytes after the root dictionary at offset %zu",
                      what, sx_reader_offset(&top.content));
    return der_parse_dict(&dict, 0, out);
}
