/* A dext's transport entitlement as the USB family applies it: the dictionaries of
 * com.apple.developer.driverkit.transport.usb are an extra matching filter on the real device
 * (reference 5). A dext whose entitlement does not cover the device is not started on it,
 * whatever its personality matched ("Entitlements check failed"). */
#include "util/common.h"

#include <inttypes.h>

#include "codesign/entitlements.h"
#include "sysextd/devices.h"
#include "sysextd/proto.h"
#include "util/fs.h"

#define ENT_USB "com.apple.developer.driverkit.transport.usb"
#define MAX_ENT_BLOB (1u << 20)

/* The signed entitlements of a staged bundle (flat dext layout, or Contents/). */
static int read_entitlements(const char *staged, plist_t *out)
{
    static const char *const where[] = {"_CodeSignature/CodeEntitlements",
                                        "Contents/_CodeSignature/CodeEntitlements"};
    *out = NULL;
    for (size_t i = 0; i < SX_ARRAY_SIZE(where); i++) {
        _sx_cleanup_free_ char *p = sx_path_join(staged, where[i]);
        if (!p)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        if (!sx_path_exists(p))
            continue;
        uint8_t *blob = NULL;
        size_t len = 0;
        int rc = sx_read_file(p, MAX_ENT_BLOB, &blob, &len);
        if (rc == 0)
            rc = sx_ent_parse_xml_blob(blob, len, out);
        free(blob);
        return rc < 0 ? sx_err_prefix(rc, "%s", p) : 0;
    }
    return 0; /* no entitlements at all */
}

/* One key of a transport.usb dictionary against the device's property. */
static bool key_matches(const sx_nub *nub, const char *key, plist_t want, plist_t dict)
{
    if (plist_get_node_type(want) == PLIST_STRING) {
        const char *s = plist_get_string_ptr(want, NULL);
        return s && !strcmp(s, "*");
    }
    uint64_t have = 0;
    if (!strcmp(key, "idProductMask"))
        return true; /* applied with idProduct */
    if (!strcmp(key, "idProductArray")) {
        if (plist_get_node_type(want) != PLIST_ARRAY || !sx_nub_get_uint(nub, "idProduct", &have))
            return false;
        for (uint32_t i = 0; i < plist_array_get_size(want); i++) {
            uint64_t v = 0;
            plist_t it = plist_array_get_item(want, i);
            if (plist_get_node_type(it) == PLIST_UINT && (plist_get_uint_val(it, &v), v == have))
                return true;
        }
        return false;
    }
    if (plist_get_node_type(want) != PLIST_UINT || !sx_nub_get_uint(nub, key, &have))
        return false;
    uint64_t v = 0;
    plist_get_uint_val(want, &v);
    if (!strcmp(key, "idProduct")) {
        uint64_t mask = sxd_dict_uint(dict, "idProductMask", UINT64_MAX);
        return (v & mask) == (have & mask);
    }
    return v == have;
}

static bool dict_covers(const sx_nub *nub, plist_t dict)
{
    if (plist_get_node_type(dict) != PLIST_DICT || plist_dict_get_size(dict) == 0)
        return false;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(dict, &it);
    bool ok = it != NULL;
    while (ok) {
        char *key = NULL;
        plist_t v = NULL;
        plist_dict_next_item(dict, it, &key, &v);
        if (!key)
            break;
        ok = key_matches(nub, key, v, dict);
        free(key);
    }
    free(it);
    return ok;
}

int sxd_transport_entitled(const char *staged_path, const sx_nub *nub, char *why, size_t whylen)
{
    if (strcmp(nub->class_name, "IOUSBHostDevice") && strcmp(nub->class_name, "IOUSBHostInterface"))
        return 1; /* other providers (IOUserResources, ...) need no transport entitlement */
    plist_t ents = NULL;
    int rc = read_entitlements(staged_path, &ents);
    if (rc < 0) {
        snprintf(why, whylen, "Entitlements check failed: %s", sx_errmsg());
        return 0;
    }
    plist_t usb = ents ? plist_dict_get_item(ents, ENT_USB) : NULL;
    bool ok = false;
    if (usb && plist_get_node_type(usb) == PLIST_ARRAY)
        for (uint32_t i = 0; i < plist_array_get_size(usb) && !ok; i++)
            ok = dict_covers(nub, plist_array_get_item(usb, i));
    if (!ok) {
        uint64_t vid = 0, pid = 0;
        sx_nub_get_uint(nub, "idVendor", &vid);
        sx_nub_get_uint(nub, "idProduct", &pid);
        snprintf(why, whylen,
                 "Entitlements check failed: %s %s device %04" PRIx64 ":%04" PRIx64,
                 ENT_USB, usb ? "does not cover" : "is missing for", vid, pid);
    }
    plist_free(ents);
    return ok ? 1 : 0;
}
