/* Resource rules (reference 6.3-6.6): the default templates exactly as codesign writes them,
 * reading rules from a seal, matching with weights and implicit exclusions. */
#include "util/common.h"
#include "codesign/seal_internal.h"

#include <math.h>

typedef struct tmpl_rule {
    const char *pattern;
    unsigned weight; /* 0: written as <true/> */
    unsigned flags;
} tmpl_rule;

/* Each table is in the plist's sorted key order (byte order), as codesign writes it. */
static const tmpl_rule deep_rules[] = {
    {"^Resources/", 0, 0},
    {"^Resources/.*\\.lproj/", 1000, SX_RULE_OPTIONAL},
    {"^Resources/.*\\.lproj/locversion.plist$", 1100, SX_RULE_OMIT},
    {"^Resources/Base\\.lproj/", 1010, 0},
    {"^version.plist$", 0, 0},
};

static const tmpl_rule deep_rules2[] = {
    {".*\\.dSYM($|/)", 11, 0},
    {"^(.*/)?\\.DS_Store$", 2000, SX_RULE_OMIT},
    {"^(Frameworks|SharedFrameworks|PlugIns|Plug-ins|XPCServices|Helpers|MacOS|Library/"
     "(Automator|Spotlight|LoginItems))/",
     10, SX_RULE_NESTED},
    {"^.*", 0, 0},
    {"^Info\\.plist$", 20, SX_RULE_OMIT},
    {"^PkgInfo$", 20, SX_RULE_OMIT},
    {"^Resources/", 20, 0},
    {"^Resources/.*\\.lproj/", 1000, SX_RULE_OPTIONAL},
    {"^Resources/.*\\.lproj/locversion.plist$", 1100, SX_RULE_OMIT},
    {"^Resources/Base\\.lproj/", 1010, 0},
    {"^[^/]+$", 10, SX_RULE_NESTED},
    {"^embedded\\.provisionprofile$", 20, 0},
    {"^version\\.plist$", 20, 0},
};

static const tmpl_rule flat_rules[] = {
    {"^.*", 0, 0},
    {"^.*\\.lproj/", 1000, SX_RULE_OPTIONAL},
    {"^.*\\.lproj/locversion.plist$", 1100, SX_RULE_OMIT},
    {"^Base\\.lproj/", 1010, 0},
    {"^version.plist$", 0, 0},
};

static const tmpl_rule flat_rules2[] = {
    {".*\\.dSYM($|/)", 11, 0},
    {"^(.*/)?\\.DS_Store$", 2000, SX_RULE_OMIT},
    {"^.*", 0, 0},
    {"^.*\\.lproj/", 1000, SX_RULE_OPTIONAL},
    {"^.*\\.lproj/locversion.plist$", 1100, SX_RULE_OMIT},
    {"^Base\\.lproj/", 1010, 0},
    {"^Info\\.plist$", 20, SX_RULE_OMIT},
    {"^PkgInfo$", 20, SX_RULE_OMIT},
    {"^embedded\\.provisionprofile$", 20, 0},
    {"^version\\.plist$", 20, 0},
};

plist_t sx_seal_rules_template(bool flat, int version)
{
    const tmpl_rule *t;
    size_t n;
    if (version == 1) {
        t = flat ? flat_rules : deep_rules;
        n = flat ? SX_ARRAY_SIZE(flat_rules) : SX_ARRAY_SIZE(deep_rules);
    } else {
        t = flat ? flat_rules2 : deep_rules2;
        n = flat ? SX_ARRAY_SIZE(flat_rules2) : SX_ARRAY_SIZE(deep_rules2);
    }
    plist_t d = plist_new_dict();
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        plist_t v;
        if (t[i].weight == 0 && t[i].flags == 0) {
            v = plist_new_bool(1);
        } else {
            /* Keys sorted: nested < omit < optional < weight. */
            v = plist_new_dict();
            if (v) {
                if (t[i].flags & SX_RULE_NESTED)
                    plist_dict_set_item(v, "nested", plist_new_bool(1));
                if (t[i].flags & SX_RULE_OMIT)
                    plist_dict_set_item(v, "omit", plist_new_bool(1));
                if (t[i].flags & SX_RULE_OPTIONAL)
                    plist_dict_set_item(v, "optional", plist_new_bool(1));
                plist_dict_set_item(v, "weight", plist_new_real(t[i].weight ? t[i].weight : 1));
            }
        }
        if (!v) {
            plist_free(d);
            return NULL;
        }
        plist_dict_set_item(d, t[i].pattern, v);
    }
    return d;
}

static int rules_push(sx_seal_rules *rs, sx_seal_rule **out)
{
    if (rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 16, bytes;
        if (SX_MUL_OVERFLOW(ncap, sizeof(*rs->v), &bytes))
            return sx_err(SYSEXT_ENOMEM, "too many rules");
        sx_seal_rule *nv = realloc(rs->v, bytes);
        if (!nv)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        rs->v = nv;
        rs->cap = ncap;
    }
    sx_seal_rule *r = &rs->v[rs->n++];
    memset(r, 0, sizeof(*r));
    r->weight = 1;
    *out = r;
    return 0;
}

static int get_bool(plist_t v, const char *what, const char *key, const char *pat,
                    const char *field, bool *out)
{
    if (plist_get_node_type(v) != PLIST_BOOLEAN)
        return sx_err(SYSEXT_EFORMAT, "%s: %s.%s.%s: expected a boolean", what, key, pat, field);
    uint8_t b = 0;
    plist_get_bool_val(v, &b);
    *out = b != 0;
    return 0;
}

int sx_seal_rules_from_plist(plist_t dict, const char *what, const char *key, sx_seal_rules *out)
{
    if (plist_get_node_type(dict) != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "%s: %s: expected a dictionary", what, key);
    plist_dict_iter it = NULL;
    plist_dict_new_iter(dict, &it);
    if (!it)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = 0;
    for (;;) {
        char *pat = NULL;
        plist_t v = NULL;
        plist_dict_next_item(dict, it, &pat, &v);
        if (!v) {
            free(pat);
            break;
        }
        sx_seal_rule *r;
        rc = rules_push(out, &r);
        if (rc < 0) {
            free(pat);
            break;
        }
        r->pattern = pat;
        if (!pat) {
            out->n--;
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        plist_type t = plist_get_node_type(v);
        if (t == PLIST_BOOLEAN) {
            uint8_t b = 0;
            plist_get_bool_val(v, &b);
            if (!b)
                r->flags |= SX_RULE_OMIT;
        } else if (t == PLIST_DICT) {
            plist_t w = plist_dict_get_item(v, "weight");
            if (w) {
                double d;
                if (plist_get_node_type(w) == PLIST_REAL) {
                    plist_get_real_val(w, &d);
                } else if (plist_get_node_type(w) == PLIST_UINT) {
                    uint64_t u = 0;
                    plist_get_uint_val(w, &u);
                    d = (double)u;
                } else {
                    rc = sx_err(SYSEXT_EFORMAT, "%s: %s.%s.weight: expected a number", what, key,
                                pat);
                    break;
                }
                if (!isfinite(d) || d < 0 || d > 4294967295.0) {
                    rc = sx_err(SYSEXT_EFORMAT, "%s: %s.%s.weight: out of range", what, key, pat);
                    break;
                }
                r->weight = (unsigned)d;
            }
            static const struct {
                const char *name;
                unsigned flag;
            } bools[] = {{"omit", SX_RULE_OMIT},
                         {"optional", SX_RULE_OPTIONAL},
                         {"nested", SX_RULE_NESTED}};
            for (size_t i = 0; i < SX_ARRAY_SIZE(bools); i++) {
                plist_t b = plist_dict_get_item(v, bools[i].name);
                bool on = false;
                if (!b)
                    continue;
                rc = get_bool(b, what, key, pat, bools[i].name, &on);
                if (rc < 0)
                    break;
                if (on)
                    r->flags |= bools[i].flag;
            }
            if (rc < 0)
                break;
        } else {
            rc = sx_err(SYSEXT_EFORMAT, "%s: %s.%s: expected a boolean or a dictionary", what, key,
                        pat);
            break;
        }
    }
    free(it);
    return rc;
}

int sx_seal_rules_add_exclusion(sx_seal_rules *rs, const char *rel)
{
    sx_seal_rule *r;
    int rc = rules_push(rs, &r);
    if (rc < 0)
        return rc;
    r->pattern = strdup(rel);
    r->literal = strdup(rel);
    if (!r->pattern || !r->literal) {
        free(r->pattern);
        free(r->literal);
        rs->n--;
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    r->literal_len = strlen(rel);
    r->mode = SX_RM_EXACT;
    r->flags = SX_RULE_EXCLUSION;
    r->compiled = false;
    return 0;
}

/* The regex-needing patterns of the default templates, matched in C with exactly regexec's
 * result for byte strings ('.' = any byte; tests compare both on many paths). */
static bool has_at(const char *s, size_t len, size_t at, const char *lit)
{
    size_t n = strlen(lit);
    return at <= len && len - at >= n && memcmp(s + at, lit, n) == 0;
}

static bool m_dsym(const char *s, size_t len) /* .*\.dSYM($|/) */
{
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), ".dSYM", 5)); p++)
        if ((size_t)(p - s) + 5 == len || p[5] == '/')
            return true;
    return false;
}

static bool m_dsstore(const char *s, size_t len) /* ^(.*\/)?\.DS_Store$ */
{
    return (len == 9 && memcmp(s, ".DS_Store", 9) == 0) ||
           (len >= 10 && memcmp(s + len - 10, "/.DS_Store", 10) == 0);
}

static bool m_nested_dirs(const char *s, size_t len) /* ^(Frameworks|...)/ */
{
    static const char *const dirs[] = {"Frameworks/",        "SharedFrameworks/",
                                       "PlugIns/",           "Plug-ins/",
                                       "XPCServices/",       "Helpers/",
                                       "MacOS/",             "Library/Automator/",
                                       "Library/Spotlight/", "Library/LoginItems/"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(dirs); i++)
        if (has_at(s, len, 0, dirs[i]))
            return true;
    return false;
}

static bool m_top_level(const char *s, size_t len) /* ^[^/]+$ */
{
    return len > 0 && !memchr(s, '/', len);
}

static bool lproj_in(const char *s, size_t len, size_t from) /* .*\.lproj/ from `from` */
{
    return from <= len && memmem(s + from, len - from, ".lproj/", 7) != NULL;
}

/* .*\.lproj/locversion.plist$ from `from`: the last 23 bytes are ".lproj/locversion?plist" */
static bool locversion_in(const char *s, size_t len, size_t from)
{
    return len >= from + 23 && memcmp(s + len - 23, ".lproj/locversion", 17) == 0 &&
           memcmp(s + len - 5, "plist", 5) == 0;
}

static bool m_res_lproj(const char *s, size_t len)
{
    return has_at(s, len, 0, "Resources/") && lproj_in(s, len, 10);
}

static bool m_res_locversion(const char *s, size_t len)
{
    return has_at(s, len, 0, "Resources/") && locversion_in(s, len, 10);
}

static bool m_lproj(const char *s, size_t len)
{
    return lproj_in(s, len, 0);
}

static bool m_locversion(const char *s, size_t len)
{
    return locversion_in(s, len, 0);
}

static bool m_version_plist(const char *s, size_t len) /* ^version.plist$ */
{
    return len == 13 && memcmp(s, "version", 7) == 0 && memcmp(s + 8, "plist", 5) == 0;
}

static const struct {
    const char *pattern;
    bool (*fn)(const char *, size_t);
} known_patterns[] = {
    {".*\\.dSYM($|/)", m_dsym},
    {"^(.*/)?\\.DS_Store$", m_dsstore},
    {"^(Frameworks|SharedFrameworks|PlugIns|Plug-ins|XPCServices|Helpers|MacOS|Library/"
     "(Automator|Spotlight|LoginItems))/",
     m_nested_dirs},
    {"^[^/]+$", m_top_level},
    {"^Resources/.*\\.lproj/", m_res_lproj},
    {"^Resources/.*\\.lproj/locversion.plist$", m_res_locversion},
    {"^.*\\.lproj/", m_lproj},
    {"^.*\\.lproj/locversion.plist$", m_locversion},
    {"^version.plist$", m_version_plist},
};

/* Recognise "^.*", "^lit" and "^lit$" where lit has only plain characters and escaped
 * metacharacters: these match exactly like regexec would, without calling it. */
static void classify(sx_seal_rule *r)
{
    const char *p = r->pattern;
    if (strcmp(p, "^.*") == 0) {
        r->mode = SX_RM_ALL;
        return;
    }
    for (size_t i = 0; i < SX_ARRAY_SIZE(known_patterns); i++)
        if (strcmp(p, known_patterns[i].pattern) == 0) {
            r->mode = SX_RM_FUNC;
            r->fn = known_patterns[i].fn;
            return;
        }
    if (p[0] != '^')
        return;
    size_t n = strlen(p);
    char *lit = malloc(n + 1);
    if (!lit)
        return; /* falls back to regexec */
    size_t k = 0;
    bool exact = false;
    for (size_t i = 1; i < n; i++) {
        char c = p[i];
        if (c == '\\') {
            char e = p[i + 1];
            if (e && strchr(".[]()*+?{}|^$\\/-", e)) {
                lit[k++] = e;
                i++;
                continue;
            }
            free(lit);
            return;
        }
        if (c == '$' && i == n - 1) {
            exact = true;
            break;
        }
        if (strchr(".[]()*+?{}|^$", c) || (unsigned char)c >= 0x80) {
            free(lit);
            return;
        }
        lit[k++] = c;
    }
    lit[k] = 0;
    r->literal = lit;
    r->literal_len = k;
    r->mode = exact ? SX_RM_EXACT : SX_RM_PREFIX;
}

/* Patterns come from a signed seal, but keep regcomp/regexec bounded anyway: no
 * back-references, few bounded repetitions, limited length. */
static bool pattern_is_tame(const char *p)
{
    size_t n = strlen(p), braces = 0;
    if (n > 1024)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && p[i + 1] >= '0' && p[i + 1] <= '9')
            return false;
        if (p[i] == '{')
            braces++;
    }
    return braces <= 2;
}

int sx_seal_rules_compile(sx_seal_rules *rs, const char *what, const char *key)
{
    for (size_t i = 0; i < rs->n; i++) {
        sx_seal_rule *r = &rs->v[i];
        if (r->flags & SX_RULE_EXCLUSION)
            continue;
        if (r->compiled || r->literal || r->mode != SX_RM_REGEX)
            continue;
        classify(r);
        if (r->mode != SX_RM_REGEX)
            continue;
        if (!pattern_is_tame(r->pattern))
            return sx_err(SYSEXT_EFORMAT, "%s: %s: rule '%.80s': pattern too complex", what, key,
                          r->pattern);
        int e = regcomp(&r->re, r->pattern, REG_EXTENDED | REG_NOSUB);
        if (e != 0) {
            char msg[128];
            regerror(e, &r->re, msg, sizeof(msg));
            return sx_err(SYSEXT_EFORMAT, "%s: %s: rule '%.80s': invalid regular expression: %s",
                          what, key, r->pattern, msg);
        }
        r->compiled = true;
    }
    return 0;
}

static bool rule_matches(const sx_seal_rule *r, const char *rel, size_t len)
{
    switch (r->mode) {
    case SX_RM_ALL:
        return true;
    case SX_RM_PREFIX:
        return len >= r->literal_len && memcmp(rel, r->literal, r->literal_len) == 0;
    case SX_RM_EXACT:
        return len == r->literal_len && memcmp(rel, r->literal, len) == 0;
    case SX_RM_FUNC:
        return r->fn(rel, len);
    default:
        return r->compiled && regexec(&r->re, rel, 0, NULL, 0) == 0;
    }
}

const sx_seal_rule *sx_seal_rules_match(const sx_seal_rules *rs, const char *rel)
{
    const sx_seal_rule *best = NULL;
    size_t len = strlen(rel);
    for (size_t i = 0; i < rs->n; i++) {
        const sx_seal_rule *r = &rs->v[i];
        if (!rule_matches(r, rel, len))
            continue;
        if (r->flags & SX_RULE_EXCLUSION)
            return r;
        if (!best || r->weight > best->weight ||
            (r->weight == best->weight && (r->flags & SX_RULE_OMIT) && !(best->flags & SX_RULE_OMIT)))
            best = r;
    }
    return best;
}

int sx_seal_rules_compile_regex_only(sx_seal_rules *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        sx_seal_rule *r = &rs->v[i];
        if ((r->flags & SX_RULE_EXCLUSION) || r->compiled)
            continue;
        free(r->literal);
        r->literal = NULL;
        r->fn = NULL;
        r->mode = SX_RM_REGEX;
        if (regcomp(&r->re, r->pattern, REG_EXTENDED | REG_NOSUB) != 0)
            return sx_err(SYSEXT_EFORMAT, "rule '%s': invalid regular expression", r->pattern);
        r->compiled = true;
    }
    return 0;
}

int sx_seal_rules_copy(const sx_seal_rules *src, sx_seal_rules *dst)
{
    for (size_t i = 0; i < src->n; i++) {
        const sx_seal_rule *s = &src->v[i];
        sx_seal_rule *r;
        int rc = rules_push(dst, &r);
        if (rc < 0)
            return rc;
        r->pattern = strdup(s->pattern);
        if (!r->pattern) {
            dst->n--;
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        r->weight = s->weight;
        r->flags = s->flags;
        if (s->flags & SX_RULE_EXCLUSION) {
            r->literal = strdup(s->literal);
            if (!r->literal)
                return sx_err(SYSEXT_ENOMEM, "out of memory");
            r->literal_len = s->literal_len;
            r->mode = SX_RM_EXACT;
        }
    }
    return 0;
}

void sx_seal_rules_free(sx_seal_rules *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].pattern);
        free(rs->v[i].literal);
        if (rs->v[i].compiled)
            regfree(&rs->v[i].re);
    }
    free(rs->v);
    rs->v = NULL;
    rs->n = rs->cap = 0;
}

const char *sx_seal_rules_weakness(const sx_seal_rules *rules2, bool flat)
{
    static const char *const allowed_deep[] = {"^(.*/)?\\.DS_Store$", "^Info\\.plist$",
                                               "^PkgInfo$",
                                               "^Resources/.*\\.lproj/locversion.plist$"};
    static const char *const allowed_flat[] = {"^(.*/)?\\.DS_Store$", "^Info\\.plist$",
                                               "^PkgInfo$", "^.*\\.lproj/locversion.plist$"};
    const char *const *allowed = flat ? allowed_flat : allowed_deep;
    bool covers_all = false;
    for (size_t i = 0; i < rules2->n; i++) {
        const sx_seal_rule *r = &rules2->v[i];
        if (r->flags & SX_RULE_EXCLUSION)
            continue;
        if (strcmp(r->pattern, "^.*") == 0 && r->flags == 0 && r->weight == 1)
            covers_all = true;
        if (r->flags & SX_RULE_OMIT) {
            bool ok = false;
            for (size_t k = 0; k < 4; k++)
                ok = ok || strcmp(r->pattern, allowed[k]) == 0;
            if (!ok)
                return "resource envelope is obsolete (custom omit rules)";
        }
    }
    return covers_all ? NULL : "resource envelope is obsolete (custom omit rules)";
}
