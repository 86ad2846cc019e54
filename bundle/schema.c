/* Loading schemas/ and checking plist dictionaries against them; the entitlement catalogue. */
#include "util/common.h"
#include "bundle/schema.h"
#include "util/fs.h"

#include <ctype.h>

#define SX_SCHEMA_MAX (1u << 20)
/* "each" may point from one schema to another; a schema dir given through the environment
 * could make that a loop, so nesting is bounded. */
#define SX_SCHEMA_MAX_DEPTH 8

static int parse_json(const char *text, size_t len, const char *what, json_object **out)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (len > INT32_MAX) {
        json_tokener_free(tok);
        return sx_err(SYSEXT_ELIMIT, "%s: too large", what);
    }
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || e != json_tokener_success) {
        json_object_put(o);
        return sx_err(SYSEXT_EFORMAT, "%s: invalid JSON at byte %zu: %s", what, off,
                      json_tokener_error_desc(e));
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return sx_err(SYSEXT_EFORMAT, "%s: expected a JSON object at the top level", what);
    }
    *out = o;
    return 0;
}

int sx_schema_load(const char *name, json_object **out)
{
    if (!sx_bundle_safe_name(name))
        return sx_err(SYSEXT_EINVAL, "schema name '%s' is not a plain name", name ? name : "");
    const char *dir = secure_getenv("SYSEXT_SCHEMA_DIR");
    if (dir && *dir) {
        _sx_cleanup_free_ char *file = NULL;
        if (asprintf(&file, "%s/%s.json", dir, name) < 0)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        uint8_t *data = NULL;
        size_t len = 0;
        int r = sx_read_file(file, SX_SCHEMA_MAX, &data, &len);
        if (r < 0)
            return r;
        r = parse_json((const char *)data, len, file, out);
        free(data);
        return r;
    }
    for (size_t i = 0; i < sx_schema_blob_count; i++) {
        if (strcmp(sx_schema_blobs[i].name, name))
            continue;
        char what[128];
        int n = snprintf(what, sizeof(what), "schemas/%s.json", name);
        if (n < 0 || (size_t)n >= sizeof(what))
            what[0] = '\0';
        return parse_json(sx_schema_blobs[i].text, sx_schema_blobs[i].len, what, out);
    }
    return sx_err(SYSEXT_ENOTFOUND, "no schema named '%s'", name);
}

bool sx_is_reverse_dns(const char *s)
{
    /* Two or more non-empty labels of letters, digits and '-', separated by single dots. */
    size_t labels = 0, cur = 0;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (cur == 0)
                return false;
            labels++;
            cur = 0;
            if (*p == '\0')
                break;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-')
            return false;
        cur++;
    }
    return labels >= 2;
}

bool sx_is_bundle_version(const char *s)
{
    size_t parts = 0, digits = 0;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (digits == 0 || digits > 9)
                return false;
            parts++;
            digits = 0;
            if (*p == '\0')
                break;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            return false;
        digits++;
    }
    return parts >= 1 && parts <= 3;
}

/* --- the generic checker ------------------------------------------------------------------- */

struct check {
    sx_report *r;
    const char *path;
    const char *bundle_id;
    int depth;
};

static char *join_key(const char *prefix, const char *key)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", key) < 0)
        return NULL;
    return s;
}

static bool type_matches(const char *want, plist_t v)
{
    if (!strcmp(want, "any"))
        return true;
    return !strcmp(want, sx_plist_type_name(v));
}

/* "string" or ["string","array"]: true when `v` has one of them; *desc describes them. */
static bool types_match(json_object *type, plist_t v, char *desc, size_t cap)
{
    desc[0] = '\0';
    if (!type)
        return true;
    if (json_object_is_type(type, json_type_string)) {
        snprintf(desc, cap, "%s", json_object_get_string(type));
        return type_matches(json_object_get_string(type), v);
    }
    bool ok = false;
    size_t n = json_object_is_type(type, json_type_array) ? json_object_array_length(type) : 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = json_object_get_string(json_object_array_get_idx(type, i));
        if (!t)
            continue;
        ok = ok || type_matches(t, v);
        int k = snprintf(desc + o, cap - o, "%s%s", i ? " or " : "", t);
        if (k > 0 && (size_t)k < cap - o)
            o += (size_t)k;
    }
    return n == 0 || ok;
}

static bool rule_flag(json_object *rule, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(rule, name, &v) && json_object_get_boolean(v);
}

static void check_dict(struct check *c, json_object *schema, plist_t dict, const char *prefix);

/* The first two dot-separated components of `s` as a length, or 0 if it has fewer. */
static size_t org_prefix_len(const char *s)
{
    const char *d1 = strchr(s, '.');
    if (!d1 || d1 == s)
        return 0;
    const char *d2 = strchr(d1 + 1, '.');
    size_t n = d2 ? (size_t)(d2 - s) : strlen(s);
    return n > (size_t)(d1 - s) + 1 ? n : 0;
}

static void check_value(struct check *c, json_object *rule, plist_t v, const char *key)
{
    char want[128];
    json_object *x;
    if (!json_object_object_get_ex(rule, "type", &x))
        x = NULL;
    if (!types_match(x, v, want, sizeof(want))) {
        sx_report_add(c->r, SX_SEV_ERROR, "wrong-type", c->path, key, "expected %s, got %s", want,
                      sx_plist_type_name(v));
        return;
    }
    plist_type t = plist_get_node_type(v);
    if (t == PLIST_STRING) {
        const char *s = plist_get_string_ptr(v, NULL);
        if (!s)
            s = "";
        const char *fmt = json_object_object_get_ex(rule, "format", &x) ? json_object_get_string(x)
                                                                      : NULL;
        if (rule_flag(rule, "non_empty") && !*s)
            sx_report_add(c->r, SX_SEV_ERROR, "empty-value", c->path, key,
                          "must not be an empty string");
        if (fmt && !strcmp(fmt, "reverse-dns") && !sx_is_reverse_dns(s))
            sx_report_add(c->r, SX_SEV_ERROR, "invalid-identifier", c->path, key,
                          "'%s' is not a reverse-DNS identifier (like com.example.driver)", s);
        else if (fmt && !strcmp(fmt, "bundle-version") && !sx_is_bundle_version(s))
            sx_report_add(c->r, SX_SEV_ERROR, "invalid-version", c->path, key,
                          "'%s' is not 1-3 dot-separated integers (like 1.2.3)", s);
        else if (fmt && !strcmp(fmt, "short-version") && !sx_is_bundle_version(s))
            sx_report_add(c->r, SX_SEV_ERROR, "invalid-short-version", c->path, key,
                          "'%s' is not 1-3 dot-separated integers (like 1.0)", s);
        else if (fmt && !strcmp(fmt, "file-name") && !sx_bundle_safe_name(s))
            sx_report_add(c->r, SX_SEV_ERROR, "invalid-file-name", c->path, key,
                          "'%s' is not a plain file name", s);
        if (rule_flag(rule, "same_as_bundle_identifier") && c->bundle_id &&
            strcmp(s, c->bundle_id))
            sx_report_add(c->r, SX_SEV_ERROR, "identifier-mismatch", c->path, key,
                          "'%s' differs from the bundle's CFBundleIdentifier '%s'", s,
                          c->bundle_id);
        if (rule_flag(rule, "organization_prefix") && c->bundle_id) {
            size_t a = org_prefix_len(s), b = org_prefix_len(c->bundle_id);
            if (!a || a != b || memcmp(s, c->bundle_id, a))
                sx_report_add(c->r, SX_SEV_ERROR, "server-name-prefix", c->path, key,
                              "'%s' does not share the organization prefix (first two "
                              "components) of the bundle identifier '%s'",
                              s, c->bundle_id);
        }
    } else if (t == PLIST_UINT) {
        uint64_t u = 0;
        plist_get_uint_val(v, &u);
        if (json_object_object_get_ex(rule, "range", &x) &&
            json_object_is_type(x, json_type_array) && json_object_array_length(x) == 2) {
            int64_t lo = json_object_get_int64(json_object_array_get_idx(x, 0));
            int64_t hi = json_object_get_int64(json_object_array_get_idx(x, 1));
            /* libplist 2.2 keeps negative integers as their two's complement in a uint64. */
            int64_t sv = (int64_t)u;
            if (sv < lo || sv > hi)
                sx_report_add(c->r, SX_SEV_ERROR, "out-of-range", c->path, key,
                              "%lld is outside %lld..%lld", (long long)sv, (long long)lo,
                              (long long)hi);
        }
    } else if (t == PLIST_DICT || t == PLIST_ARRAY) {
        uint32_t n = t == PLIST_DICT ? plist_dict_get_size(v) : plist_array_get_size(v);
        if (json_object_object_get_ex(rule, "min_entries", &x) &&
            (int64_t)n < json_object_get_int64(x))
            sx_report_add(c->r, SX_SEV_ERROR, "empty-value", c->path, key,
                          "needs at least %lld entries, has %u",
                          (long long)json_object_get_int64(x), n);
        if (t == PLIST_DICT && json_object_object_get_ex(rule, "keys", &x))
            check_dict(c, rule, v, key);
        if (t == PLIST_ARRAY && json_object_object_get_ex(rule, "items", &x)) {
            for (uint32_t i = 0; i < n; i++) {
                char *k = NULL;
                if (asprintf(&k, "%s[%u]", key, i) < 0) {
                    c->r->oom = true;
                    return;
                }
                check_value(c, x, plist_array_get_item(v, i), k);
                free(k);
            }
        }
        if (t == PLIST_DICT && json_object_object_get_ex(rule, "each", &x)) {
            json_object *sub = NULL;
            const char *name = json_object_get_string(x);
            if (c->depth >= SX_SCHEMA_MAX_DEPTH || sx_schema_load(name, &sub) < 0) {
                sx_report_add(c->r, SX_SEV_ERROR, "schema-error", c->path, key,
                              "cannot use schema '%s': %s", name ? name : "",
                              c->depth >= SX_SCHEMA_MAX_DEPTH ? "nested too deeply"
                                                              : sx_errmsg());
                return;
            }
            plist_dict_iter it = NULL;
            plist_dict_new_iter(v, &it);
            for (uint32_t i = 0; it && i < n; i++) {
                char *ek = NULL;
                plist_t ev = NULL;
                plist_dict_next_item(v, it, &ek, &ev);
                if (!ek || !ev) {
                    free(ek);
                    break;
                }
                char *kp = join_key(key, ek);
                if (!kp) {
                    c->r->oom = true;
                } else if (plist_get_node_type(ev) != PLIST_DICT) {
                    sx_report_add(c->r, SX_SEV_ERROR, "wrong-type", c->path, kp,
                                  "expected dict, got %s", sx_plist_type_name(ev));
                } else {
                    c->depth++;
                    check_dict(c, sub, ev, kp);
                    c->depth--;
                }
                free(kp);
                free(ek);
            }
            free(it);
            json_object_put(sub);
        }
    }
}

static void check_dict(struct check *c, json_object *schema, plist_t dict, const char *prefix)
{
    json_object *keys, *x;
    if (!json_object_object_get_ex(schema, "keys", &keys) ||
        !json_object_is_type(keys, json_type_object))
        return;
    json_object_object_foreach(keys, name, rule)
    {
        char *kp = join_key(prefix, name);
        if (!kp) {
            c->r->oom = true;
            return;
        }
        plist_t v = plist_dict_get_item(dict, name);
        if (!v) {
            if (rule_flag(rule, "required"))
                sx_report_add(c->r, SX_SEV_ERROR, "missing-key", c->path, kp,
                              "required key is missing");
            else if (rule_flag(rule, "recommended"))
                sx_report_add(c->r, SX_SEV_WARNING, "missing-recommended-key", c->path, kp,
                              "recommended key is missing");
        } else {
            check_value(c, rule, v, kp);
        }
        free(kp);
    }
    if (json_object_object_get_ex(schema, "recommended_one_of", &x) &&
        json_object_is_type(x, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(x); i++) {
            json_object *alt = json_object_array_get_idx(x, i), *ks, *code, *msg;
            if (!json_object_object_get_ex(alt, "keys", &ks) ||
                !json_object_is_type(ks, json_type_array))
                continue;
            bool any = false;
            for (size_t j = 0; j < json_object_array_length(ks); j++) {
                const char *k = json_object_get_string(json_object_array_get_idx(ks, j));
                any = any || (k && plist_dict_get_item(dict, k));
            }
            if (any)
                continue;
            sx_report_add(c->r, SX_SEV_WARNING,
                          json_object_object_get_ex(alt, "code", &code)
                              ? json_object_get_string(code)
                              : "missing-recommended-key",
                          c->path, prefix,
                          "%s", json_object_object_get_ex(alt, "message", &msg)
                                    ? json_object_get_string(msg)
                                    : "a recommended key is missing");
        }
    }
}

void sx_schema_check_dict(json_object *schema, plist_t dict, const char *prefix,
                          const char *bundle_id, const char *path, sx_report *r)
{
    struct check c = {r, path, bundle_id, 0};
    if (!dict || plist_get_node_type(dict) != PLIST_DICT) {
        sx_report_add(r, SX_SEV_ERROR, "wrong-type", path, prefix, "expected dict, got %s",
                      sx_plist_type_name(dict));
        return;
    }
    check_dict(&c, schema, dict, prefix);
}

/* --- entitlement catalogue ----------------------------------------------------------------- */

struct sx_ent_catalog {
    json_object *json;
    sx_ent_rule *rules;
    size_t n;
    json_object *groups;
};

static unsigned kinds_mask(json_object *arr)
{
    unsigned m = 0;
    size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(arr, i));
        if (!s)
            continue;
        if (!strcmp(s, "app-with-extensions"))
            m |= SX_ENT_APP_WITH_EXTENSIONS;
        else if (sx_bundle_kind_parse(s) != SX_BUNDLE_UNKNOWN)
            m |= SX_KIND_BIT(sx_bundle_kind_parse(s));
    }
    return m;
}

void sx_ent_catalog_free(sx_ent_catalog *c)
{
    if (!c)
        return;
    free(c->rules);
    json_object_put(c->json);
    free(c);
}

int sx_ent_catalog_load(sx_ent_catalog **out)
{
    sx_ent_catalog *c = calloc(1, sizeof(*c));
    if (!c)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int r = sx_schema_load("entitlements", &c->json);
    if (r < 0) {
        free(c);
        return r;
    }
    json_object *ents;
    if (!json_object_object_get_ex(c->json, "entitlements", &ents) ||
        !json_object_is_type(ents, json_type_object)) {
        sx_ent_catalog_free(c);
        return sx_err(SYSEXT_EFORMAT, "schemas/entitlements.json: no \"entitlements\" object");
    }
    if (!json_object_object_get_ex(c->json, "groups", &c->groups))
        c->groups = NULL;
    size_t n = (size_t)json_object_object_length(ents);
    c->rules = calloc(n ? n : 1, sizeof(*c->rules));
    if (!c->rules) {
        sx_ent_catalog_free(c);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    json_object_object_foreach(ents, key, rule)
    {
        json_object *x;
        sx_ent_rule *e = &c->rules[c->n++];
        e->key = key;
        e->type = json_object_object_get_ex(rule, "type", &x) ? json_object_get_string(x) : "any";
        e->on = json_object_object_get_ex(rule, "on", &x) ? kinds_mask(x) : 0;
        e->required_by = json_object_object_get_ex(rule, "required_by", &x) ? kinds_mask(x) : 0;
        e->group = json_object_object_get_ex(rule, "group", &x) ? json_object_get_string(x) : NULL;
        e->category =
            json_object_object_get_ex(rule, "category", &x) ? json_object_get_string(x) : NULL;
        e->deprecated = rule_flag(rule, "deprecated");
    }
    *out = c;
    return 0;
}

const sx_ent_rule *sx_ent_catalog_find(const sx_ent_catalog *c, const char *key)
{
    for (size_t i = 0; c && key && i < c->n; i++)
        if (!strcmp(c->rules[i].key, key))
            return &c->rules[i];
    return NULL;
}

size_t sx_ent_catalog_count(const sx_ent_catalog *c)
{
    return c ? c->n : 0;
}

const sx_ent_rule *sx_ent_catalog_at(const sx_ent_catalog *c, size_t i)
{
    return c && i < c->n ? &c->rules[i] : NULL;
}

void sx_ent_check(const sx_ent_catalog *c, plist_t ents, sx_bundle_kind kind,
                  bool embeds_extensions, const char *path, sx_report *r)
{
    if (!ents || plist_get_node_type(ents) != PLIST_DICT) {
        sx_report_add(r, SX_SEV_ERROR, "wrong-type", path, NULL,
                      "entitlements: expected dict, got %s", sx_plist_type_name(ents));
        return;
    }
    unsigned me = SX_KIND_BIT(kind);
    if (kind == SX_BUNDLE_APP && embeds_extensions)
        me |= SX_ENT_APP_WITH_EXTENSIONS;
    for (size_t i = 0; i < c->n; i++) {
        const sx_ent_rule *e = &c->rules[i];
        plist_t v = plist_dict_get_item(ents, e->key);
        if (!v) {
            if (e->required_by & me)
                sx_report_add(r, SX_SEV_ERROR, "missing-entitlement", path, e->key,
                              "a %s%s needs this entitlement", sx_bundle_kind_name(kind),
                              (e->required_by & me & SX_ENT_APP_WITH_EXTENSIONS)
                                  ? " that embeds system extensions"
                                  : "");
            continue;
        }
        if (!type_matches(e->type, v))
            sx_report_add(r, SX_SEV_ERROR, "entitlement-wrong-type", path, e->key,
                          "expected %s, got %s", e->type, sx_plist_type_name(v));
        if (e->on && !(e->on & SX_KIND_BIT(kind)))
            sx_report_add(r, SX_SEV_ERROR, "entitlement-not-allowed", path, e->key,
                          "this entitlement does not belong on a %s", sx_bundle_kind_name(kind));
        if (e->deprecated)
            sx_report_add(r, SX_SEV_WARNING, "deprecated-entitlement", path, e->key,
                          "this entitlement is defunct and does nothing");
    }
    if (!c->groups || !json_object_is_type(c->groups, json_type_object))
        return;
    json_object_object_foreach(c->groups, gname, g)
    {
        json_object *x;
        unsigned req = json_object_object_get_ex(g, "required_by", &x) ? kinds_mask(x) : 0;
        if (!(req & me))
            continue;
        bool have = false;
        for (size_t i = 0; i < c->n && !have; i++)
            have = c->rules[i].group && !strcmp(c->rules[i].group, gname) &&
                   plist_dict_get_item(ents, c->rules[i].key);
        if (!have)
            sx_report_add(r, SX_SEV_ERROR, "missing-entitlement", path, gname, "%s",
                          json_object_object_get_ex(g, "message", &x)
                              ? json_object_get_string(x)
                              : "an entitlement of this group is required");
    }
}
