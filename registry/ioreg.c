/* Rendering registry snapshots (docs/ioreg.md) like `ioreg -l`, or as JSON. */
#include "util/common.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <plist/plist.h>

#include "sysext/ioreg.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/plist_json.h"

#define IOREG_MAX_DEPTH 64        /* registry tree depth */
#define IOREG_MAX_VALUE_DEPTH 16  /* nesting inside one property value */
#define IOREG_MAX_SNAPSHOT (64u * 1024 * 1024)
#define IOREG_MAX_TEXT (256u * 1024 * 1024)

/* ---- validation ----------------------------------------------------------------------- */

static int check_type(plist_t d, const char *key, plist_type t, bool required, const char *path)
{
    plist_t v = plist_dict_get_item(d, key);
    if (!v) {
        if (required)
            return sx_err(SYSEXT_EFORMAT, "registry snapshot: %s: missing key %s", path, key);
        return 0;
    }
    if (plist_get_node_type(v) != t)
        return sx_err(SYSEXT_EFORMAT, "registry snapshot: %s/%s: wrong type, expected %s", path,
                      key,
                      t == PLIST_STRING ? "a string"
                      : t == PLIST_UINT ? "an integer"
                      : t == PLIST_BOOLEAN ? "a boolean"
                      : t == PLIST_ARRAY ? "an array"
                                         : "a dictionary");
    return 0;
}

static int check_entry(plist_t e, const char *path, int depth)
{
    if (depth > IOREG_MAX_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "registry snapshot: %s: tree deeper than %d", path,
                      IOREG_MAX_DEPTH);
    if (plist_get_node_type(e) != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "registry snapshot: %s: expected a dictionary", path);
    int rc;
    if ((rc = check_type(e, "IORegistryEntryName", PLIST_STRING, true, path)) < 0 ||
        (rc = check_type(e, "IOObjectClass", PLIST_STRING, true, path)) < 0 ||
        (rc = check_type(e, "IORegistryEntryID", PLIST_UINT, true, path)) < 0 ||
        (rc = check_type(e, "IORegistryEntryLocation", PLIST_STRING, false, path)) < 0 ||
        (rc = check_type(e, "Registered", PLIST_BOOLEAN, false, path)) < 0 ||
        (rc = check_type(e, "Matched", PLIST_BOOLEAN, false, path)) < 0 ||
        (rc = check_type(e, "Terminated", PLIST_BOOLEAN, false, path)) < 0 ||
        (rc = check_type(e, "BusyState", PLIST_UINT, false, path)) < 0 ||
        (rc = check_type(e, "IORegistryEntryProperties", PLIST_DICT, false, path)) < 0 ||
        (rc = check_type(e, "IORegistryEntryDrivers", PLIST_ARRAY, false, path)) < 0 ||
        (rc = check_type(e, "IORegistryEntryChildren", PLIST_ARRAY, false, path)) < 0)
        return rc;
    char sub[512];
    plist_t drivers = plist_dict_get_item(e, "IORegistryEntryDrivers");
    uint32_t nd = drivers ? plist_array_get_size(drivers) : 0;
    for (uint32_t i = 0; i < nd; i++) {
        plist_t d = plist_array_get_item(drivers, i);
        snprintf(sub, sizeof(sub), "%s/IORegistryEntryDrivers[%u]", path, i);
        if (plist_get_node_type(d) != PLIST_DICT)
            return sx_err(SYSEXT_EFORMAT, "registry snapshot: %s: expected a dictionary", sub);
        static const char *const keys[] = {"IOMatchCategory", "CFBundleIdentifier",
                                           "CFBundleVersion", "IOPersonalityName",
                                           "IOUserServerName", "IOUserClass", "IOClass", "State"};
        for (size_t k = 0; k < SX_ARRAY_SIZE(keys); k++)
            if ((rc = check_type(d, keys[k], PLIST_STRING, false, sub)) < 0)
                return rc;
        if ((rc = check_type(d, "MatchScore", PLIST_UINT, false, sub)) < 0)
            return rc;
    }
    plist_t children = plist_dict_get_item(e, "IORegistryEntryChildren");
    uint32_t nc = children ? plist_array_get_size(children) : 0;
    for (uint32_t i = 0; i < nc; i++) {
        int n = snprintf(sub, sizeof(sub), "%s/IORegistryEntryChildren[%u]", path, i);
        if (n < 0 || (size_t)n >= sizeof(sub)) /* deep paths: keep the tail */
            snprintf(sub, sizeof(sub), ".../IORegistryEntryChildren[%u]@%d", i, depth + 1);
        if ((rc = check_entry(plist_array_get_item(children, i), sub, depth + 1)) < 0)
            return rc;
    }
    return 0;
}

/* Strings with an embedded NUL (possible in XML and binary plists) make libplist's
 * plist_get_string_val assert, and would be cut short when printed: refuse them anywhere in the
 * document, as well as nesting deeper than the renderers go. */
static int check_strings(plist_t v, int depth)
{
    if (depth > IOREG_MAX_DEPTH + IOREG_MAX_VALUE_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "registry snapshot: values nested deeper than %d",
                      IOREG_MAX_DEPTH + IOREG_MAX_VALUE_DEPTH);
    switch (plist_get_node_type(v)) {
    case PLIST_STRING:
    case PLIST_KEY: {
        uint64_t n = 0;
        const char *s = plist_get_string_ptr(v, &n);
        if (!s || strlen(s) != n)
            return sx_err(SYSEXT_EFORMAT, "registry snapshot: a string contains a NUL byte");
        return 0;
    }
    case PLIST_ARRAY: {
        uint32_t n = plist_array_get_size(v);
        for (uint32_t i = 0; i < n; i++) {
            int rc = check_strings(plist_array_get_item(v, i), depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case PLIST_DICT: {
        plist_dict_iter it = NULL;
        plist_dict_new_iter(v, &it);
        if (!it)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        int rc = 0;
        for (;;) {
            plist_t c = NULL;
            plist_dict_next_item(v, it, NULL, &c); /* keys are not read: see check_raw_strings */
            if (!c)
                break;
            if (rc == 0)
                rc = check_strings(c, depth + 1);
        }
        free(it);
        return rc;
    }
    default:
        return 0;
    }
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* libplist 2.2 asserts (aborts) when a dictionary key holds a NUL byte, and offers no way to
 * read a key's length without that assertion. So before parsing, refuse inputs whose strings
 * could hold one: for a binary plist, every ASCII or UTF-16 string object is scanned through
 * the offset table; for XML, raw NUL bytes and character references to U+0000. */
static int check_raw_strings(const uint8_t *d, size_t len)
{
    if (len >= 8 && memcmp(d, "bplist00", 8) == 0) {
        if (len < 8 + 32)
            return sx_err(SYSEXT_EFORMAT, "registry snapshot: binary plist shorter than its trailer");
        const uint8_t *t = d + len - 32;
        size_t osz = t[6];
        uint64_t nobj = be(t + 8, 8), table = be(t + 24, 8);
        size_t tbytes;
        if (osz < 1 || osz > 8 || nobj > len || table > len ||
            SX_MUL_OVERFLOW((size_t)nobj, osz, &tbytes) || tbytes > len - table)
            return sx_err(SYSEXT_EFORMAT, "registry snapshot: binary plist trailer out of bounds");
        for (uint64_t i = 0; i < nobj; i++) {
            uint64_t off = be(d + table + i * osz, osz);
            if (off >= len)
                return sx_err(SYSEXT_EFORMAT,
                              "registry snapshot: object %" PRIu64 " at offset %" PRIu64
                              " is out of bounds", i, off);
            uint8_t m = d[off];
            if ((m >> 4) != 5 && (m >> 4) != 6)
                continue;
            uint64_t count = m & 0x0f, start = off + 1;
            if (count == 0x0f) {
                if (start >= len || (d[start] >> 4) != 1 || (d[start] & 0x0f) > 3)
                    return sx_err(SYSEXT_EFORMAT,
                                  "registry snapshot: string at offset %" PRIu64
                                  " has a bad length", off);
                size_t isz = (size_t)1 << (d[start] & 0x0f);
                if (len - start - 1 < isz)
                    return sx_err(SYSEXT_EFORMAT, "registry snapshot: string at offset %" PRIu64
                                  " is truncated", off);
                count = be(d + start + 1, isz);
                start += 1 + isz;
            }
            uint64_t unit = (m >> 4) == 6 ? 2 : 1;
            if (count > (len - start) / unit)
                return sx_err(SYSEXT_EFORMAT, "registry snapshot: string at offset %" PRIu64
                              " is truncated", off);
            for (uint64_t k = 0; k < count; k++) {
                bool nul = unit == 1 ? d[start + k] == 0
                                     : d[start + 2 * k] == 0 && d[start + 2 * k + 1] == 0;
                if (nul)
                    return sx_err(SYSEXT_EFORMAT,
                                  "registry snapshot: string at offset %" PRIu64
                                  " contains a NUL", off);
            }
        }
        return 0;
    }
    if (memchr(d, 0, len))
        return sx_err(SYSEXT_EFORMAT, "registry snapshot: XML with a NUL byte at offset %zu",
                      (size_t)((const uint8_t *)memchr(d, 0, len) - d));
    for (size_t i = 0; i + 2 < len; i++) {
        if (d[i] != '&' || d[i + 1] != '#')
            continue;
        size_t j = i + 2;
        bool hex = j < len && (d[j] == 'x' || d[j] == 'X');
        if (hex)
            j++;
        bool nonzero = false, digits = false;
        for (; j < len && j < i + 16 && d[j] != ';'; j++) {
            if (d[j] != '0')
                nonzero = true;
            digits = true;
        }
        if (digits && !nonzero)
            return sx_err(SYSEXT_EFORMAT, "registry snapshot: XML character reference to U+0000 "
                          "at offset %zu", i);
    }
    return 0;
}

static int parse_snapshot(const void *data, size_t len, plist_t *out)
{
    *out = NULL;
    if (len > IOREG_MAX_SNAPSHOT)
        return sx_err(SYSEXT_ELIMIT, "registry snapshot: %zu bytes, the limit is %u", len,
                      IOREG_MAX_SNAPSHOT);
    if (len < 8)
        return sx_err(SYSEXT_EFORMAT, "registry snapshot: %zu bytes is not a plist", len);
    int crc = check_raw_strings(data, len);
    if (crc < 0)
        return crc;
    plist_t doc = NULL;
    plist_from_memory(data, (uint32_t)len, &doc);
    if (!doc)
        return sx_err(SYSEXT_EFORMAT, "registry snapshot: not a binary or XML plist");
    int rc = check_strings(doc, 0);
    if (rc == 0 && plist_get_node_type(doc) != PLIST_DICT)
        rc = sx_err(SYSEXT_EFORMAT, "registry snapshot: the top level is not a dictionary");
    if (rc == 0)
        rc = check_type(doc, "SXRegistrySnapshotVersion", PLIST_UINT, true, "(top)");
    if (rc == 0) {
        uint64_t v = 0;
        plist_get_uint_val(plist_dict_get_item(doc, "SXRegistrySnapshotVersion"), &v);
        if (v != 1)
            rc = sx_err(SYSEXT_EUNSUPPORTED,
                        "registry snapshot: SXRegistrySnapshotVersion %" PRIu64 ", expected 1", v);
    }
    if (rc == 0)
        rc = check_type(doc, "IORegistryRoot", PLIST_DICT, true, "(top)");
    if (rc == 0)
        rc = check_entry(plist_dict_get_item(doc, "IORegistryRoot"), "IORegistryRoot", 0);
    if (rc < 0) {
        plist_free(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

/* ---- text ----------------------------------------------------------------------------- */

static const char *str_of(plist_t d, const char *key, const char *dflt)
{
    plist_t v = plist_dict_get_item(d, key);
    const char *s = v && plist_get_node_type(v) == PLIST_STRING ? plist_get_string_ptr(v, NULL)
                                                                : NULL;
    return s ? s : dflt;
}

static uint64_t uint_of(plist_t d, const char *key)
{
    plist_t v = plist_dict_get_item(d, key);
    uint64_t u = 0;
    if (v && plist_get_node_type(v) == PLIST_UINT)
        plist_get_uint_val(v, &u);
    return u;
}

static bool bool_of(plist_t d, const char *key)
{
    plist_t v = plist_dict_get_item(d, key);
    uint8_t b = 0;
    if (v && plist_get_node_type(v) == PLIST_BOOLEAN)
        plist_get_bool_val(v, &b);
    return b != 0;
}

static int put_quoted(sx_buf *b, const char *s)
{
    int rc = sx_buf_putc(b, '"');
    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = sx_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            rc = sx_buf_printf(b, "\\x%02x", c);
        else
            rc = sx_buf_putc(b, (char)c);
    }
    return rc ? rc : sx_buf_putc(b, '"');
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The dictionary's keys, sorted; free each and the array. */
static char **sorted_keys(plist_t d, uint32_t *n_out)
{
    uint32_t n = plist_dict_get_size(d);
    *n_out = 0;
    char **keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return NULL;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(d, &it);
    if (!it) {
        free(keys);
        return NULL;
    }
    uint32_t i = 0;
    for (;;) {
        char *k = NULL;
        plist_t v = NULL;
        plist_dict_next_item(d, it, &k, &v);
        if (!k)
            break;
        if (i < n)
            keys[i++] = k;
        else
            free(k);
    }
    free(it);
    qsort(keys, i, sizeof(*keys), cmp_str);
    *n_out = i;
    return keys;
}

static void free_keys(char **keys, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* A value in ioreg's notation: "string", 123, Yes/No, <hex>, (a,b), {"k"=v}. */
static int put_value(sx_buf *b, plist_t v, int depth)
{
    if (depth > IOREG_MAX_VALUE_DEPTH)
        return sx_buf_puts(b, "...");
    switch (plist_get_node_type(v)) {
    case PLIST_STRING: {
        const char *s = plist_get_string_ptr(v, NULL);
        return put_quoted(b, s ? s : "");
    }
    case PLIST_UINT: {
        uint64_t u = 0;
        plist_get_uint_val(v, &u);
        return sx_buf_printf(b, "%" PRIu64, u);
    }
    case PLIST_BOOLEAN: {
        uint8_t x = 0;
        plist_get_bool_val(v, &x);
        return sx_buf_puts(b, x ? "Yes" : "No");
    }
    case PLIST_REAL: {
        double d = 0;
        plist_get_real_val(v, &d);
        return sx_buf_printf(b, "%g", d);
    }
    case PLIST_DATA: {
        uint64_t n = 0;
        const char *p = plist_get_data_ptr(v, &n);
        int rc = sx_buf_putc(b, '<');
        for (uint64_t i = 0; rc == 0 && p && i < n; i++)
            rc = sx_buf_printf(b, "%02x", (unsigned char)p[i]);
        return rc ? rc : sx_buf_putc(b, '>');
    }
    case PLIST_ARRAY: {
        int rc = sx_buf_putc(b, '(');
        uint32_t n = plist_array_get_size(v);
        for (uint32_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = sx_buf_putc(b, ',');
            if (rc == 0)
                rc = put_value(b, plist_array_get_item(v, i), depth + 1);
        }
        return rc ? rc : sx_buf_putc(b, ')');
    }
    case PLIST_DICT: {
        uint32_t n = 0;
        char **keys = sorted_keys(v, &n);
        if (!keys)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        int rc = sx_buf_putc(b, '{');
        for (uint32_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = sx_buf_putc(b, ',');
            if (rc == 0)
                rc = put_quoted(b, keys[i]);
            if (rc == 0)
                rc = sx_buf_putc(b, '=');
            if (rc == 0)
                rc = put_value(b, plist_dict_get_item(v, keys[i]), depth + 1);
        }
        free_keys(keys, n);
        return rc ? rc : sx_buf_putc(b, '}');
    }
    default:
        return sx_buf_puts(b, "<unsupported>");
    }
}

static int put_driver(sx_buf *b, const char *prefix, bool last, plist_t d)
{
    const char *uc = str_of(d, "IOUserClass", "");
    const char *name = *uc ? uc : str_of(d, "IOPersonalityName", "driver");
    const char *ver = str_of(d, "CFBundleVersion", "");
    int rc = sx_buf_printf(b, "%s+-o %s  <class %s, driver %s%s%s, personality ", prefix, name,
                           *str_of(d, "IOClass", "") ? str_of(d, "IOClass", "") : "IOUserService",
                           str_of(d, "CFBundleIdentifier", "?"), *ver ? " " : "", ver);
    if (rc == 0)
        rc = put_quoted(b, str_of(d, "IOPersonalityName", ""));
    if (rc == 0)
        rc = sx_buf_printf(b, ", category %s", str_of(d, "IOMatchCategory", "IODefaultMatchCategory"));
    if (rc == 0 && *str_of(d, "IOUserServerName", ""))
        rc = sx_buf_printf(b, ", server %s", str_of(d, "IOUserServerName", ""));
    if (rc == 0)
        rc = sx_buf_printf(b, ", score %" PRIu64 ", state %s>\n", uint_of(d, "MatchScore"),
                           str_of(d, "State", "matched"));
    (void)last;
    return rc;
}

static int put_entry(sx_buf *b, plist_t e, const char *prefix, bool last, unsigned flags)
{
    const char *loc = str_of(e, "IORegistryEntryLocation", NULL);
    bool terminated = bool_of(e, "Terminated");
    int rc = sx_buf_printf(b, "%s+-o %s%s%s  <class %s, id 0x%" PRIx64 ", %sregistered, %smatched, "
                           "%s, busy %" PRIu64 ">\n",
                           prefix, str_of(e, "IORegistryEntryName", "?"), loc ? "@" : "",
                           loc ? loc : "", str_of(e, "IOObjectClass", "?"),
                           uint_of(e, "IORegistryEntryID"), bool_of(e, "Registered") ? "" : "!",
                           bool_of(e, "Matched") ? "" : "!", terminated ? "inactive" : "active",
                           uint_of(e, "BusyState"));
    if (rc < 0)
        return rc;
    plist_t drivers = plist_dict_get_item(e, "IORegistryEntryDrivers");
    plist_t children = plist_dict_get_item(e, "IORegistryEntryChildren");
    uint32_t nd = drivers ? plist_array_get_size(drivers) : 0;
    uint32_t nc = children ? plist_array_get_size(children) : 0;
    sx_buf sub = SX_BUF_INIT;
    if ((rc = sx_buf_printf(&sub, "%s%s", prefix, last ? "  " : "| ")) < 0)
        return rc;
    const char *cp = (const char *)sub.data;
    const char *bar = nd + nc ? "| " : "  ";
    plist_t props = plist_dict_get_item(e, "IORegistryEntryProperties");
    if (props && !(flags & SYSEXT_IOREG_NO_PROPERTIES)) {
        uint32_t nk = 0;
        char **keys = sorted_keys(props, &nk);
        if (!keys) {
            sx_buf_free(&sub);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        rc = sx_buf_printf(b, "%s%s{\n", cp, bar);
        for (uint32_t i = 0; rc == 0 && i < nk; i++) {
            rc = sx_buf_printf(b, "%s%s  ", cp, bar);
            if (rc == 0)
                rc = put_quoted(b, keys[i]);
            if (rc == 0)
                rc = sx_buf_puts(b, " = ");
            if (rc == 0)
                rc = put_value(b, plist_dict_get_item(props, keys[i]), 0);
            if (rc == 0)
                rc = sx_buf_putc(b, '\n');
        }
        free_keys(keys, nk);
        if (rc == 0)
            rc = sx_buf_printf(b, "%s%s}\n%s%s", cp, bar, cp, nd + nc ? "|" : "");
        while (rc == 0 && b->len && b->data[b->len - 1] == ' ') /* no trailing blanks */
            b->data[--b->len] = 0;
        if (rc == 0)
            rc = sx_buf_putc(b, '\n');
    }
    for (uint32_t i = 0; rc == 0 && i < nd; i++)
        rc = put_driver(b, cp, i + 1 == nd && nc == 0, plist_array_get_item(drivers, i));
    for (uint32_t i = 0; rc == 0 && i < nc; i++)
        rc = put_entry(b, plist_array_get_item(children, i), cp, i + 1 == nc, flags);
    sx_buf_free(&sub);
    return rc;
}

SYSEXT_API int sysext_ioreg_render(const void *snapshot, size_t len, unsigned flags,
                                   char **out_text)
{
    SX_ASSERT_ARG(snapshot || !len);
    SX_ASSERT_ARG(out_text);
    *out_text = NULL;
    plist_t doc = NULL;
    int rc = parse_snapshot(snapshot, len, &doc);
    if (rc < 0)
        return rc;
    plist_t root = plist_dict_get_item(doc, "IORegistryRoot");
    if (flags & SYSEXT_OUTPUT_JSON) {
        json_object *j = sx_plist_to_json(doc);
        plist_free(doc);
        if (!j)
            return sx_err(SYSEXT_ENOMEM, "registry snapshot: JSON conversion failed");
        const char *s = json_object_to_json_string_ext(
            j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        char *copy = s ? strdup(s) : NULL;
        json_object_put(j);
        if (!copy)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        *out_text = copy;
        return 0;
    }
    sx_buf b;
    sx_buf_init(&b, IOREG_MAX_TEXT);
    rc = put_entry(&b, root, "", true, flags);
    plist_free(doc);
    if (rc < 0) {
        sx_buf_free(&b);
        return rc;
    }
    *out_text = sx_buf_steal_str(&b);
    if (!*out_text)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    return 0;
}

SYSEXT_API int sysext_ioreg_render_file(const char *path, unsigned flags, char **out_text)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(out_text);
    *out_text = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sx_read_file(path, IOREG_MAX_SNAPSHOT, &data, &len);
    if (rc < 0)
        return rc;
    rc = sysext_ioreg_render(data, len, flags, out_text);
    free(data);
    if (rc < 0)
        return sx_err_prefix(rc, "%s", path);
    return 0;
}
