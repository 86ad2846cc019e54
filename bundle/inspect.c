/* Describing a bundle: identity, executable, personalities, embedded extensions. */
#include "util/common.h"
#include "bundle/bundle.h"
#include "bundle/schema.h"
#include "sysext/bundle.h"
#include "util/buf.h"
#include "util/fs.h"

#include <dirent.h>

#define SX_INSPECT_MAX_DEPTH 4

static json_object *plist_to_json(plist_t v, int depth)
{
    if (!v || depth > 16)
        return NULL;
    switch (plist_get_node_type(v)) {
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(v, &b);
        return json_object_new_boolean(b);
    }
    case PLIST_UINT: {
        uint64_t u = 0;
        plist_get_uint_val(v, &u);
        return json_object_new_int64((int64_t)u);
    }
    case PLIST_REAL: {
        double d = 0;
        plist_get_real_val(v, &d);
        return json_object_new_double(d);
    }
    case PLIST_STRING:
        return json_object_new_string(plist_get_string_ptr(v, NULL));
    case PLIST_ARRAY: {
        json_object *a = json_object_new_array();
        for (uint32_t i = 0; a && i < plist_array_get_size(v); i++)
            json_object_array_add(a, plist_to_json(plist_array_get_item(v, i), depth + 1));
        return a;
    }
    case PLIST_DICT: {
        json_object *o = json_object_new_object();
        plist_dict_iter it = NULL;
        plist_dict_new_iter(v, &it);
        for (uint32_t i = 0; o && it && i < plist_dict_get_size(v); i++) {
            char *k = NULL;
            plist_t x = NULL;
            plist_dict_next_item(v, it, &k, &x);
            if (!k)
                break;
            json_object_object_add(o, k, plist_to_json(x, depth + 1));
            free(k);
        }
        free(it);
        return o;
    }
    default:
        return json_object_new_string(sx_plist_type_name(v));
    }
}

static void add_str(json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

static json_object *personalities(plist_t info)
{
    plist_t p = plist_dict_get_item(info, "IOKitPersonalities");
    if (!p || plist_get_node_type(p) != PLIST_DICT)
        return NULL;
    json_object *schema = NULL, *keys = NULL;
    if (sx_schema_load("personality", &schema) == 0 &&
        !json_object_object_get_ex(schema, "keys", &keys))
        keys = NULL;
    json_object *a = json_object_new_array();
    plist_dict_iter it = NULL;
    plist_dict_new_iter(p, &it);
    for (uint32_t i = 0; a && it && i < plist_dict_get_size(p); i++) {
        char *name = NULL;
        plist_t v = NULL;
        plist_dict_next_item(p, it, &name, &v);
        if (!name)
            break;
        json_object *o = json_object_new_object();
        add_str(o, "name", name);
        free(name);
        static const char *const ids[] = {"IOClass", "IOProviderClass", "IOUserClass",
                                          "IOUserServerName", "CFBundleIdentifier"};
        for (size_t k = 0; k < SX_ARRAY_SIZE(ids); k++)
            add_str(o, ids[k], sx_plist_string(v, ids[k]));
        json_object *m = json_object_new_object();
        if (keys && plist_get_node_type(v) == PLIST_DICT) {
            json_object_object_foreach(keys, key, rule)
            {
                json_object *x;
                plist_t mv = plist_dict_get_item(v, key);
                if (mv && json_object_object_get_ex(rule, "matching", &x) &&
                    json_object_get_boolean(x))
                    json_object_object_add(m, key, plist_to_json(mv, 0));
            }
        }
        json_object_object_add(o, "matching", m);
        plist_t score = plist_dict_get_item(v, "IOProbeScore");
        if (score)
            json_object_object_add(o, "IOProbeScore", plist_to_json(score, 0));
        json_object_array_add(a, o);
    }
    free(it);
    json_object_put(schema);
    return a;
}

static int embedded_filter(const struct dirent *e)
{
    return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

static int describe(const char *path, const char *shown, int depth, json_object **out)
{
    sx_bundle *b = NULL;
    int r = sx_bundle_open(path, &b);
    if (r < 0)
        return r;
    json_object *o = json_object_new_object();
    if (!o) {
        sx_bundle_free(b);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    add_str(o, "path", shown);
    add_str(o, "kind", sx_bundle_kind_name(b->kind));
    add_str(o, "identifier", b->identifier);
    add_str(o, "version", b->version);
    add_str(o, "short_version", b->short_version);
    add_str(o, "display_name", sx_plist_string(b->info, "CFBundleDisplayName"));
    add_str(o, "package_type", sx_plist_string(b->info, "CFBundlePackageType"));
    add_str(o, "executable", b->exe_relpath);
    json_object *p = personalities(b->info);
    if (p)
        json_object_object_add(o, "personalities", p);

    if (b->kind == SX_BUNDLE_APP && depth < SX_INSPECT_MAX_DEPTH) {
        _sx_cleanup_free_ char *dir = sx_path_join(b->contents, "Library/SystemExtensions");
        struct dirent **list = NULL;
        int n = dir ? scandir(dir, &list, embedded_filter, alphasort) : -1;
        json_object *a = json_object_new_array();
        for (int i = 0; i < n; i++) {
            _sx_cleanup_free_ char *full = sx_path_join(dir, list[i]->d_name);
            _sx_cleanup_free_ char *rel = NULL;
            if (asprintf(&rel, "%sLibrary/SystemExtensions/%s",
                         b->flat ? "" : "Contents/", list[i]->d_name) < 0)
                rel = NULL;
            json_object *e = NULL;
            if (full && rel && describe(full, rel, depth + 1, &e) < 0) {
                e = json_object_new_object();
                add_str(e, "path", rel);
                add_str(e, "error", sx_errmsg());
            }
            if (e)
                json_object_array_add(a, e);
        }
        for (int i = 0; i < n; i++)
            free(list[i]);
        free(list);
        json_object_object_add(o, "embedded", a);
    }
    sx_bundle_free(b);
    *out = o;
    return 0;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static void render_value(sx_buf *b, const char *key, json_object *v)
{
    if (json_object_is_type(v, json_type_int)) {
        int64_t x = json_object_get_int64(v);
        bool hex = (!strncmp(key, "id", 2) || !strncmp(key, "bcd", 3)) && x >= 0;
        sx_buf_printf(b, hex ? "0x%04llx" : "%lld", (long long)x);
    } else if (json_object_is_type(v, json_type_array)) {
        sx_buf_putc(b, '[');
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i)
                sx_buf_putc(b, ',');
            render_value(b, key, json_object_array_get_idx(v, i));
        }
        sx_buf_putc(b, ']');
    } else {
        sx_buf_puts(b, json_object_get_string(v));
    }
}

static void render_text(sx_buf *b, json_object *o, int indent)
{
    static const struct {
        const char *key, *label;
    } rows[] = {{"path", "path"},
                {"kind", "kind"},
                {"identifier", "identifier"},
                {"version", "version"},
                {"short_version", "short version"},
                {"display_name", "display name"},
                {"executable", "executable"},
                {"error", "error"}};
    for (size_t i = 0; i < SX_ARRAY_SIZE(rows); i++) {
        const char *v = jstr(o, rows[i].key);
        if (v)
            sx_buf_printf(b, "%*s%-15s %s\n", indent, "", rows[i].label, v);
    }
    json_object *ps, *es;
    if (json_object_object_get_ex(o, "personalities", &ps) && ps) {
        sx_buf_printf(b, "%*spersonalities:\n", indent, "");
        for (size_t i = 0; i < json_object_array_length(ps); i++) {
            json_object *p = json_object_array_get_idx(ps, i), *m;
            sx_buf_printf(b, "%*s  %s\n", indent, "", jstr(p, "name"));
            static const char *const ids[] = {"IOClass", "IOProviderClass", "IOUserClass",
                                              "IOUserServerName", "IOProbeScore"};
            for (size_t k = 0; k < SX_ARRAY_SIZE(ids); k++)
                if (jstr(p, ids[k]))
                    sx_buf_printf(b, "%*s    %-17s %s\n", indent, "", ids[k], jstr(p, ids[k]));
            if (json_object_object_get_ex(p, "matching", &m) && json_object_object_length(m)) {
                sx_buf_printf(b, "%*s    %-17s", indent, "", "matching");
                json_object_object_foreach(m, key, val)
                {
                    sx_buf_printf(b, " %s=", key);
                    render_value(b, key, val);
                }
                sx_buf_putc(b, '\n');
            }
        }
    }
    if (json_object_object_get_ex(o, "embedded", &es) && es && json_object_array_length(es)) {
        sx_buf_printf(b, "%*sembedded extensions:\n", indent, "");
        for (size_t i = 0; i < json_object_array_length(es); i++)
            render_text(b, json_object_array_get_idx(es, i), indent + 2);
    }
}

int sx_bundle_inspect_json(const char *path, json_object **out)
{
    return describe(path, path, 0, out);
}

int sysext_bundle_inspect(const char *path, unsigned flags, char **out_text)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(out_text);
    json_object *o = NULL;
    int r = describe(path, path, 0, &o);
    if (r < 0)
        return r;
    char *text = NULL;
    if (flags & SYSEXT_OUTPUT_JSON) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
        text = s ? strdup(s) : NULL;
    } else {
        sx_buf b = SX_BUF_INIT;
        render_text(&b, o, 0);
        text = sx_buf_steal_str(&b);
    }
    json_object_put(o);
    if (!text)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *out_text = text;
    return 0;
}
