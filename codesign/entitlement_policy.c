/* Which entitlements each kind of bundle must hold (reference section 6). */
#include "util/common.h"

#include "codesign/verify_internal.h"

static bool ent_true(plist_t ents, const char *key)
{
    plist_t n = ents ? plist_dict_get_item(ents, key) : NULL;
    uint8_t b = 0;
    if (n && plist_get_node_type(n) == PLIST_BOOLEAN)
        plist_get_bool_val(n, &b);
    /* A transport entitlement may also be an array or dictionary of matching rules. */
    return b || (n && (plist_get_node_type(n) == PLIST_ARRAY || plist_get_node_type(n) == PLIST_DICT));
}

static bool has_prefix_key(plist_t ents, const char *prefix)
{
    if (!ents || plist_get_node_type(ents) != PLIST_DICT)
        return false;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(ents, &it);
    bool found = false;
    for (;;) {
        char *key = NULL;
        plist_t val = NULL;
        plist_dict_next_item(ents, it, &key, &val);
        if (!key)
            break;
        if (!strncmp(key, prefix, strlen(prefix)) && ent_true(ents, key))
            found = true;
        free(key);
    }
    free(it);
    return found;
}

void sx_report_add_entitlement_problems(sx_report *r, sx_bundle_kind kind, plist_t ents,
                                        bool embeds_extensions, const char *shown)
{
    if (kind == SX_BUNDLE_DEXT) {
        if (!ent_true(ents, "com.apple.developer.driverkit"))
            sx_report_add(r, SX_SEV_ERROR, "entitlement-missing", shown,
                          "com.apple.developer.driverkit",
                          "a driver extension needs the com.apple.developer.driverkit entitlement");
        if (!has_prefix_key(ents, "com.apple.developer.driverkit.transport."))
            sx_report_add(r, SX_SEV_ERROR, "entitlement-missing", shown,
                          "com.apple.developer.driverkit.transport",
                          "a driver extension needs a transport entitlement "
                          "(com.apple.developer.driverkit.transport.*)");
    }
    if (kind == SX_BUNDLE_APP && embeds_extensions &&
        !ent_true(ents, "com.apple.developer.system-extension.install"))
        sx_report_add(r, SX_SEV_ERROR, "entitlement-missing", shown,
                      "com.apple.developer.system-extension.install",
                      "an app that embeds system extensions needs the "
                      "com.apple.developer.system-extension.install entitlement");
}
