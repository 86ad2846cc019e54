#include "util/common.h"

#include "sysextd/policy.h"
#include "util/fs.h"

#define POLICY_MAX (4u << 20)

int sxd_policy_init_empty(sxd_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->allow_user_overrides = true;
    p->allowed_teams = plist_new_array();
    p->allowed_extensions = plist_new_dict();
    p->allowed_types = plist_new_dict();
    p->removable = plist_new_dict();
    p->non_removable = plist_new_dict();
    p->non_removable_from_ui = plist_new_dict();
    if (!p->allowed_teams || !p->allowed_extensions || !p->allowed_types || !p->removable ||
        !p->non_removable || !p->non_removable_from_ui) {
        sxd_policy_free(p);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    return 0;
}

void sxd_policy_free(sxd_policy *p)
{
    plist_t *f[] = {&p->allowed_teams, &p->allowed_extensions, &p->allowed_types,
                    &p->removable,     &p->non_removable,      &p->non_removable_from_ui};
    for (size_t i = 0; i < SX_ARRAY_SIZE(f); i++) {
        if (*f[i])
            plist_free(*f[i]);
        *f[i] = NULL;
    }
}

static bool str_in_array(plist_t arr, const char *s)
{
    if (!arr || plist_get_node_type(arr) != PLIST_ARRAY || !s)
        return false;
    uint32_t n = plist_array_get_size(arr);
    for (uint32_t i = 0; i < n; i++) {
        plist_t it = plist_array_get_item(arr, i);
        if (plist_get_node_type(it) == PLIST_STRING) {
            const char *v = plist_get_string_ptr(it, NULL);
            if (v && !strcmp(v, s))
                return true;
        }
    }
    return false;
}

/* Append every string of `src` (already type-checked) missing from `dst`. */
static void merge_strings(plist_t dst, plist_t src)
{
    uint32_t n = plist_array_get_size(src);
    for (uint32_t i = 0; i < n; i++) {
        const char *v = plist_get_string_ptr(plist_array_get_item(src, i), NULL);
        if (!str_in_array(dst, v))
            plist_array_append_item(dst, plist_new_string(v));
    }
}

static int check_string_array(plist_t arr, const char *what, const char *key)
{
    if (plist_get_node_type(arr) != PLIST_ARRAY)
        return sx_err(SYSEXT_EFORMAT, "%s: %s: expected an array of strings", what, key);
    uint32_t n = plist_array_get_size(arr);
    for (uint32_t i = 0; i < n; i++)
        if (plist_get_node_type(plist_array_get_item(arr, i)) != PLIST_STRING)
            return sx_err(SYSEXT_EFORMAT, "%s: %s[%u]: expected a string", what, key, i);
    return 0;
}

static const char *const TYPES[] = {"DriverExtension", "NetworkExtension",
                                    "EndpointSecurityExtension"};

/* dict team -> array of strings, merged into `dst`. */
static int merge_team_map(plist_t dst, plist_t src, const char *what, const char *key,
                          bool types)
{
    if (plist_get_node_type(src) != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "%s: %s: expected a dictionary of team ID to array", what,
                      key);
    plist_dict_iter it = NULL;
    plist_dict_new_iter(src, &it);
    int rc = 0;
    for (;;) {
        char *team = NULL;
        plist_t val = NULL;
        plist_dict_next_item(src, it, &team, &val);
        if (!val) {
            free(team);
            break;
        }
        char sub[300];
        snprintf(sub, sizeof(sub), "%s.%s", key, team ? team : "?");
        if ((rc = check_string_array(val, what, sub)) < 0) {
            free(team);
            break;
        }
        if (types) {
            uint32_t n = plist_array_get_size(val);
            for (uint32_t i = 0; i < n && rc == 0; i++) {
                const char *t = plist_get_string_ptr(plist_array_get_item(val, i), NULL);
                bool ok = false;
                for (size_t k = 0; k < SX_ARRAY_SIZE(TYPES); k++)
                    ok |= t && !strcmp(t, TYPES[k]);
                if (!ok)
                    rc = sx_err(SYSEXT_EFORMAT,
                                "%s: %s[%u]: '%s' is not DriverExtension, NetworkExtension or "
                                "EndpointSecurityExtension",
                                what, sub, i, t ? t : "");
            }
            if (rc < 0) {
                free(team);
                break;
            }
        }
        plist_t cur = plist_dict_get_item(dst, team);
        if (!cur) {
            cur = plist_new_array();
            plist_dict_set_item(dst, team, cur);
        }
        merge_strings(cur, val);
        free(team);
    }
    free(it);
    return rc;
}

static int merge_payload(sxd_policy *p, plist_t d, const char *what)
{
    if (plist_get_node_type(d) != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "%s: expected a dictionary", what);
    int rc = 0;
    plist_t n;
    if ((n = plist_dict_get_item(d, "AllowUserOverrides"))) {
        if (plist_get_node_type(n) != PLIST_BOOLEAN)
            return sx_err(SYSEXT_EFORMAT, "%s: AllowUserOverrides: expected a boolean", what);
        uint8_t b = 1;
        plist_get_bool_val(n, &b);
        if (!b)
            p->allow_user_overrides = false;
    }
    if ((n = plist_dict_get_item(d, "AllowedTeamIdentifiers"))) {
        if ((rc = check_string_array(n, what, "AllowedTeamIdentifiers")) < 0)
            return rc;
        merge_strings(p->allowed_teams, n);
    }
    struct {
        const char *key;
        plist_t dst;
        bool types;
    } maps[] = {
        {"AllowedSystemExtensions", p->allowed_extensions, false},
        {"AllowedSystemExtensionTypes", p->allowed_types, true},
        {"RemovableSystemExtensions", p->removable, false},
        {"NonRemovableSystemExtensions", p->non_removable, false},
        {"NonRemovableFromUISystemExtensions", p->non_removable_from_ui, false},
    };
    for (size_t i = 0; i < SX_ARRAY_SIZE(maps); i++)
        if ((n = plist_dict_get_item(d, maps[i].key)) &&
            (rc = merge_team_map(maps[i].dst, n, what, maps[i].key, maps[i].types)) < 0)
            return rc;
    return 0;
}

int sxd_policy_parse(const void *data, size_t len, const char *what, sxd_policy *out)
{
    plist_t root = NULL;
    int rc;
    if (len > POLICY_MAX || len < 8)
        return sx_err(SYSEXT_EFORMAT, "%s: %zu bytes is not a policy plist", what, len);
    plist_from_memory(data, (uint32_t)len, &root);
    if (!root)
        return sx_err(SYSEXT_EFORMAT, "%s: not a property list (XML or binary)", what);
    sxd_policy p;
    if ((rc = sxd_policy_init_empty(&p)) < 0) {
        plist_free(root);
        return rc;
    }
    plist_t content = plist_get_node_type(root) == PLIST_DICT
                          ? plist_dict_get_item(root, "PayloadContent")
                          : NULL;
    if (content) {
        if (plist_get_node_type(content) != PLIST_ARRAY) {
            rc = sx_err(SYSEXT_EFORMAT, "%s: PayloadContent: expected an array", what);
        } else {
            uint32_t n = plist_array_get_size(content);
            for (uint32_t i = 0; i < n && rc == 0; i++) {
                char sub[600];
                snprintf(sub, sizeof(sub), "%s: PayloadContent[%u]", what, i);
                rc = merge_payload(&p, plist_array_get_item(content, i), sub);
            }
        }
    } else {
        rc = merge_payload(&p, root, what);
    }
    plist_free(root);
    if (rc < 0) {
        sxd_policy_free(&p);
        return rc;
    }
    /* Apple: a team must not be both in AllowedTeamIdentifiers and a key of
     * AllowedSystemExtensions; both allow, so we accept it. */
    *out = p;
    return 0;
}

int sxd_policy_load(const char *path, sxd_policy *p)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sx_read_file(path, POLICY_MAX, &data, &len);
    if (rc < 0)
        return rc;
    rc = sxd_policy_parse(data, len, path, p);
    free(data);
    return rc;
}

static bool in_team_map(plist_t map, const char *team, const char *id)
{
    if (!map || !team)
        return false;
    return str_in_array(plist_dict_get_item(map, team), id);
}

bool sxd_policy_allows(const sxd_policy *p, const char *team, const char *bundle_id)
{
    return (team && *team && str_in_array(p->allowed_teams, team)) ||
           in_team_map(p->allowed_extensions, team, bundle_id);
}

bool sxd_policy_type_allowed(const sxd_policy *p, const char *team, const char *type)
{
    plist_t arr = team ? plist_dict_get_item(p->allowed_types, team) : NULL;
    if (!arr)
        return true;
    return str_in_array(arr, type);
}

bool sxd_policy_removable(const sxd_policy *p, const char *team, const char *bundle_id)
{
    return in_team_map(p->removable, team, bundle_id);
}

bool sxd_policy_non_removable(const sxd_policy *p, const char *team, const char *bundle_id)
{
    return in_team_map(p->non_removable, team, bundle_id);
}

plist_t sxd_policy_to_plist(const sxd_policy *p)
{
    plist_t d = plist_new_dict();
    if (!d)
        return NULL;
    plist_dict_set_item(d, "AllowUserOverrides", plist_new_bool(p->allow_user_overrides));
    plist_dict_set_item(d, "AllowedTeamIdentifiers", plist_copy(p->allowed_teams));
    plist_dict_set_item(d, "AllowedSystemExtensions", plist_copy(p->allowed_extensions));
    plist_dict_set_item(d, "AllowedSystemExtensionTypes", plist_copy(p->allowed_types));
    plist_dict_set_item(d, "RemovableSystemExtensions", plist_copy(p->removable));
    plist_dict_set_item(d, "NonRemovableSystemExtensions", plist_copy(p->non_removable));
    plist_dict_set_item(d, "NonRemovableFromUISystemExtensions",
                        plist_copy(p->non_removable_from_ui));
    return d;
}
