#include "util/common.h"

#include "registry/matching.h"

enum {
    K_VENDOR = 1u << 0,
    K_PRODUCT = 1u << 1,
    K_BCD = 1u << 2,
    K_DCLASS = 1u << 3,
    K_DSUB = 1u << 4,
    K_DPROTO = 1u << 5,
    K_CONFIG = 1u << 6,
    K_IFNUM = 1u << 7,
    K_ICLASS = 1u << 8,
    K_ISUB = 1u << 9,
    K_IPROTO = 1u << 10,
};

/* The USB keys a personality may use, with their bit (0 for the modifiers). */
static const struct {
    const char *key;
    unsigned bit;
} usb_keys[] = {
    {"idVendor", K_VENDOR},         {"idProduct", K_PRODUCT},
    {"bcdDevice", K_BCD},           {"bDeviceClass", K_DCLASS},
    {"bDeviceSubClass", K_DSUB},    {"bDeviceProtocol", K_DPROTO},
    {"bConfigurationValue", K_CONFIG}, {"bInterfaceNumber", K_IFNUM},
    {"bInterfaceClass", K_ICLASS},  {"bInterfaceSubClass", K_ISUB},
    {"bInterfaceProtocol", K_IPROTO}, {"idProductArray", 0},
    {"idProductMask", 0},           {"USBSpeed", 0},
    {"USBPortType", 0},
};

enum { VENDOR_SPECIFIC_NONE, VENDOR_SPECIFIC_ONLY, VENDOR_SPECIFIC_NEVER };

typedef struct usb_row {
    unsigned keys;
    int64_t score;
    int condition;       /* VENDOR_SPECIFIC_*: on the nub's class key */
} usb_row;

static const usb_row device_rows[] = {
    {K_VENDOR | K_PRODUCT | K_BCD, 100000, VENDOR_SPECIFIC_NONE},
    {K_VENDOR | K_PRODUCT, 90000, VENDOR_SPECIFIC_NONE},
    {K_VENDOR | K_DSUB | K_DPROTO, 80000, VENDOR_SPECIFIC_ONLY},
    {K_VENDOR | K_DSUB, 70000, VENDOR_SPECIFIC_ONLY},
    {K_DCLASS | K_DSUB | K_DPROTO, 60000, VENDOR_SPECIFIC_NEVER},
    {K_DCLASS | K_DSUB, 50000, VENDOR_SPECIFIC_NEVER},
};

static const usb_row interface_rows[] = {
    {K_VENDOR | K_PRODUCT | K_IFNUM | K_CONFIG | K_BCD, 100000, VENDOR_SPECIFIC_NONE},
    {K_VENDOR | K_PRODUCT | K_IFNUM | K_CONFIG, 90000, VENDOR_SPECIFIC_NONE},
    {K_VENDOR | K_ISUB | K_IPROTO, 80000, VENDOR_SPECIFIC_ONLY},
    {K_VENDOR | K_ISUB, 70000, VENDOR_SPECIFIC_ONLY},
    {K_ICLASS | K_ISUB | K_IPROTO, 60000, VENDOR_SPECIFIC_NEVER},
    {K_ICLASS | K_ISUB, 50000, VENDOR_SPECIFIC_NEVER},
};

#define USB_MODIFIER_BONUS 100

static bool get_int(plist_t dict, const char *key, bool *present, uint64_t *out)
{
    plist_t v = plist_dict_get_item(dict, key);
    *present = v != NULL;
    if (!v)
        return true;
    if (plist_get_node_type(v) != PLIST_UINT)
        return false;
    plist_get_uint_val(v, out);
    return true;
}

static const char *get_str(plist_t dict, const char *key, bool *bad)
{
    plist_t v = plist_dict_get_item(dict, key);
    if (!v)
        return NULL;
    if (plist_get_node_type(v) != PLIST_STRING) {
        *bad = true;
        return NULL;
    }
    return plist_get_string_ptr(v, NULL);
}

/* The nub's integer property, or for USBSpeed/USBPortType on an interface, its device's. */
static bool nub_uint(const sx_nub *nub, const char *key, uint64_t *out)
{
    if (sx_nub_get_uint(nub, key, out))
        return true;
    if (nub->parent && strcmp(nub->class_name, "IOUSBHostInterface") == 0 &&
        (strcmp(key, "USBSpeed") == 0 || strcmp(key, "USBPortType") == 0))
        return sx_nub_get_uint(nub->parent, key, out);
    return false;
}

/* 1 with *base set when the USB keys of `p` select `nub`, 0 if not. */
static int match_usb(const sx_nub *nub, plist_t p, bool is_device, int64_t *base)
{
    unsigned mask = 0;
    for (size_t i = 0; i < SX_ARRAY_SIZE(usb_keys); i++)
        if (plist_dict_get_item(p, usb_keys[i].key))
            mask |= usb_keys[i].bit;
    plist_t parray = plist_dict_get_item(p, "idProductArray");
    if (parray) {
        if (mask & K_PRODUCT)
            return 0; /* idProduct and idProductArray together: ambiguous */
        if (plist_get_node_type(parray) != PLIST_ARRAY)
            return 0;
        mask |= K_PRODUCT;
    }
    if (!mask)
        return 0;

    const usb_row *rows = is_device ? device_rows : interface_rows;
    size_t n_rows = is_device ? SX_ARRAY_SIZE(device_rows) : SX_ARRAY_SIZE(interface_rows);
    unsigned class_bit = is_device ? K_DCLASS : K_ICLASS;
    const char *class_key = is_device ? "bDeviceClass" : "bInterfaceClass";
    uint64_t nub_class = 0;
    if (!nub_uint(nub, class_key, &nub_class))
        return 0;
    const usb_row *row = NULL;
    for (size_t i = 0; i < n_rows && !row; i++) {
        if (mask == rows[i].keys)
            row = &rows[i];
        else if (rows[i].condition == VENDOR_SPECIFIC_ONLY && mask == (rows[i].keys | class_bit))
            row = &rows[i]; /* the class key is allowed here, and must then say 0xFF */
    }
    if (!row)
        return 0;
    if (row->condition == VENDOR_SPECIFIC_ONLY && nub_class != 0xFF)
        return 0;
    if (row->condition == VENDOR_SPECIFIC_NEVER && nub_class == 0xFF)
        return 0;

    /* Every key of the row (and the optional class key) must be an equal integer. */
    for (size_t i = 0; i < SX_ARRAY_SIZE(usb_keys); i++) {
        unsigned bit = usb_keys[i].bit;
        if (!bit || !(mask & bit))
            continue;
        if (bit == K_PRODUCT && parray)
            continue;
        bool present;
        uint64_t want = 0, have = 0;
        if (!get_int(p, usb_keys[i].key, &present, &want) || !present)
            return 0;
        if (!nub_uint(nub, usb_keys[i].key, &have))
            return 0;
        if (bit == K_PRODUCT) {
            bool mpresent;
            uint64_t m = 0;
            if (!get_int(p, "idProductMask", &mpresent, &m))
                return 0;
            if (mpresent) {
                want &= m;
                have &= m;
            }
        }
        if (want != have)
            return 0;
    }
    if (parray) {
        bool mpresent;
        uint64_t m = 0;
        if (!get_int(p, "idProductMask", &mpresent, &m) || mpresent)
            return 0; /* idProductMask goes with idProduct only */
        uint64_t have = 0;
        if (!nub_uint(nub, "idProduct", &have))
            return 0;
        bool hit = false;
        uint32_t n = plist_array_get_size(parray);
        for (uint32_t i = 0; i < n; i++) {
            plist_t e = plist_array_get_item(parray, i);
            if (!e || plist_get_node_type(e) != PLIST_UINT)
                return 0;
            uint64_t v = 0;
            plist_get_uint_val(e, &v);
            if (v == have)
                hit = true;
        }
        if (!hit)
            return 0;
    }
    int64_t score = row->score;
    static const char *const modifiers[] = {"USBSpeed", "USBPortType"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(modifiers); i++) {
        bool present;
        uint64_t want = 0, have = 0;
        if (!get_int(p, modifiers[i], &present, &want))
            return 0;
        if (!present)
            continue;
        if (!nub_uint(nub, modifiers[i], &have) || have != want)
            return 0;
        score += USB_MODIFIER_BONUS;
    }
    *base = score;
    return 1;
}

static bool property_dict_matches(const sx_nub *nub, plist_t want)
{
    if (plist_get_node_type(want) != PLIST_DICT)
        return false;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(want, &it);
    if (!it)
        return false;
    bool ok = true;
    for (;;) {
        char *key = NULL;
        plist_t v = NULL;
        plist_dict_next_item(want, it, &key, &v);
        if (!key)
            break;
        plist_t have = plist_dict_get_item(nub->props, key);
        if (!have || plist_get_node_type(have) != plist_get_node_type(v) ||
            !plist_compare_node_value(have, v))
            ok = false;
        free(key);
        if (!ok)
            break;
    }
    free(it);
    return ok;
}

static bool property_match(const sx_nub *nub, plist_t pm)
{
    if (plist_get_node_type(pm) == PLIST_ARRAY) { /* any one of the dictionaries */
        uint32_t n = plist_array_get_size(pm);
        for (uint32_t i = 0; i < n; i++)
            if (property_dict_matches(nub, plist_array_get_item(pm, i)))
                return true;
        return false;
    }
    return property_dict_matches(nub, pm);
}

int sx_match_personality(const sx_nub *nub, const sx_personality *p, sx_match *out)
{
    SX_ASSERT_ARG(nub);
    SX_ASSERT_ARG(p);
    SX_ASSERT_ARG(out);
    memset(out, 0, sizeof(*out));
    if (!p->dict || plist_get_node_type(p->dict) != PLIST_DICT)
        return 0;
    if (nub->state & SX_NUB_TERMINATED)
        return 0;
    bool bad = false;
    const char *provider = get_str(p->dict, "IOProviderClass", &bad);
    if (bad || !provider || strcmp(provider, nub->class_name) != 0)
        return 0;
    const char *category = get_str(p->dict, "IOMatchCategory", &bad);
    const char *resource = get_str(p->dict, "IOResourceMatch", &bad);
    if (bad)
        return 0;
    if (resource) {
        sx_nub *res = sx_registry_resources(nub->registry);
        if (!res || !plist_dict_get_item(res->props, resource))
            return 0;
    }
    plist_t pm = plist_dict_get_item(p->dict, "IOPropertyMatch");
    if (pm && !property_match(nub, pm))
        return 0;
    int64_t base = 0;
    bool is_device = strcmp(nub->class_name, "IOUSBHostDevice") == 0;
    bool is_iface = strcmp(nub->class_name, "IOUSBHostInterface") == 0;
    if ((is_device || is_iface) && match_usb(nub, p->dict, is_device, &base) != 1)
        return 0;
    bool present;
    uint64_t probe_u = 0;
    if (!get_int(p->dict, "IOProbeScore", &present, &probe_u))
        return 0;
    int64_t probe = (int64_t)probe_u;
    if (probe < INT32_MIN || probe > INT32_MAX)
        return 0; /* IOProbeScore is an SInt32 */
    out->personality = p;
    out->category = category ? category : SX_DEFAULT_MATCH_CATEGORY;
    out->base_score = base;
    out->probe_score = probe;
    out->score = base + probe; /* |base| < 2^17, |probe| < 2^31: no overflow */
    return 1;
}

static int strcmp0(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

int sx_match_compare(const sx_match *a, const sx_match *b)
{
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->base_score != b->base_score)
        return a->base_score > b->base_score ? -1 : 1;
    int c = strcmp0(a->personality->bundle_id, b->personality->bundle_id);
    if (c)
        return c;
    return strcmp0(a->personality->name, b->personality->name);
}

static int by_category(const void *a, const void *b)
{
    return strcmp(((const sx_match *)a)->category, ((const sx_match *)b)->category);
}

void sx_match_results_free(sx_match_results *r)
{
    if (!r)
        return;
    free(r->winners);
    r->winners = NULL;
    r->n = 0;
}

int sx_match_nub(const sx_nub *nub, const sx_personality *const *personalities, size_t n,
                 sx_match_results *results)
{
    SX_ASSERT_ARG(nub);
    SX_ASSERT_ARG(results);
    SX_ASSERT_ARG(personalities || !n);
    results->winners = NULL;
    results->n = 0;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        sx_match m;
        int rc = sx_match_personality(nub, personalities[i], &m);
        if (rc < 0) {
            sx_match_results_free(results);
            return rc;
        }
        if (rc == 0)
            continue;
        size_t j = 0;
        while (j < results->n && strcmp(results->winners[j].category, m.category) != 0)
            j++;
        if (j < results->n) {
            /* Strictly better only: on a full tie the earlier personality stays. */
            if (sx_match_compare(&m, &results->winners[j]) < 0)
                results->winners[j] = m;
            continue;
        }
        if (results->n == cap) {
            size_t ncap = cap ? cap * 2 : 2;
            sx_match *w = reallocarray(results->winners, ncap, sizeof(*w));
            if (!w) {
                sx_match_results_free(results);
                return sx_err(SYSEXT_ENOMEM, "out of memory");
            }
            results->winners = w;
            cap = ncap;
        }
        results->winners[results->n++] = m;
    }
    if (results->n > 1)
        qsort(results->winners, results->n, sizeof(*results->winners), by_category);
    return 0;
}

/* ---- personality sets ----------------------------------------------------------------- */

void sx_personality_set_init(sx_personality_set *set)
{
    set->items = NULL;
    set->n = 0;
}

static void personality_clear(sx_personality *p)
{
    free(p->bundle_id);
    free(p->bundle_version);
    free(p->name);
    plist_free(p->dict);
    memset(p, 0, sizeof(*p));
}

void sx_personality_set_free(sx_personality_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        personality_clear(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

int sx_personality_set_remove_bundle(sx_personality_set *set, const char *bundle_id)
{
    SX_ASSERT_ARG(set);
    SX_ASSERT_ARG(bundle_id);
    size_t w = 0;
    bool found = false;
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->items[i].bundle_id, bundle_id) == 0) {
            personality_clear(&set->items[i]);
            found = true;
        } else {
            set->items[w++] = set->items[i];
        }
    }
    set->n = w;
    if (!found)
        return sx_err(SYSEXT_ENOTFOUND, "no personalities of %s are enabled", bundle_id);
    return 0;
}

int sx_personality_set_add_bundle(sx_personality_set *set, const char *bundle_id,
                                  const char *bundle_version, plist_t personalities)
{
    SX_ASSERT_ARG(set);
    SX_ASSERT_ARG(bundle_id);
    SX_ASSERT_ARG(personalities);
    if (plist_get_node_type(personalities) != PLIST_DICT)
        return sx_err(SYSEXT_EFORMAT, "%s: IOKitPersonalities is not a dictionary", bundle_id);
    uint32_t count = plist_dict_get_size(personalities);
    size_t total;
    if (SX_ADD_OVERFLOW(set->n, (size_t)count, &total))
        return sx_err(SYSEXT_ELIMIT, "%s: too many personalities", bundle_id);
    /* Build the new entries first, so a failure leaves the set as it was. */
    sx_personality *fresh = calloc(count ? count : 1, sizeof(*fresh));
    if (!fresh)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    size_t nf = 0;
    int rc = 0;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(personalities, &it);
    if (!it) {
        free(fresh);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    for (;;) {
        char *key = NULL;
        plist_t v = NULL;
        plist_dict_next_item(personalities, it, &key, &v);
        if (!key)
            break;
        if (nf >= count || plist_get_node_type(v) != PLIST_DICT) {
            free(key);
            continue;
        }
        sx_personality *p = &fresh[nf];
        p->name = key;
        p->bundle_id = strdup(bundle_id);
        p->bundle_version = strdup(bundle_version ? bundle_version : "");
        p->dict = plist_copy(v);
        nf++;
        if (!p->bundle_id || !p->bundle_version || !p->dict) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
    }
    free(it);
    sx_personality *items = NULL;
    if (rc == 0) {
        items = reallocarray(set->items, set->n + nf ? set->n + nf : 1, sizeof(*items));
        if (!items)
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        for (size_t i = 0; i < nf; i++)
            personality_clear(&fresh[i]);
        free(fresh);
        return rc;
    }
    set->items = items;
    (void)sx_personality_set_remove_bundle(set, bundle_id); /* an upgrade replaces */
    sx_err_clear();
    memcpy(set->items + set->n, fresh, nf * sizeof(*fresh));
    set->n += nf;
    free(fresh);
    return 0;
}

/* ---- rematch -------------------------------------------------------------------------- */

static bool same_driver(const sx_binding *b, const sx_match *m)
{
    return strcmp0(b->bundle_id, m->personality->bundle_id) == 0 &&
           strcmp0(b->bundle_version, m->personality->bundle_version) == 0 &&
           strcmp0(b->personality, m->personality->name) == 0;
}

static const char *pstr(const sx_personality *p, const char *key)
{
    bool bad = false;
    const char *s = get_str(p->dict, key, &bad);
    return s ? s : "";
}

typedef struct rematch_ctx {
    const sx_personality *const *ps;
    size_t n;
    sx_rematch_cb cb;
    void *ctx;
} rematch_ctx;

static int rematch_nub(sx_nub *nub, const rematch_ctx *rc_ctx)
{
    int rc = 0;
    if (nub->state & SX_NUB_TERMINATED) {
        while (nub->n_bindings) {
            if (rc_ctx->cb)
                rc_ctx->cb(rc_ctx->ctx, nub, NULL, &nub->bindings[0]);
            sx_nub_unbind(nub, 0);
        }
    } else {
        sx_match_results res;
        rc = sx_match_nub(nub, rc_ctx->ps, rc_ctx->n, &res);
        if (rc < 0)
            return rc;
        /* Categories that lost their winner. */
        for (size_t i = 0; i < nub->n_bindings;) {
            bool kept = false;
            for (size_t j = 0; j < res.n && !kept; j++)
                kept = strcmp(res.winners[j].category, nub->bindings[i].category) == 0;
            if (kept) {
                i++;
                continue;
            }
            if (rc_ctx->cb)
                rc_ctx->cb(rc_ctx->ctx, nub, NULL, &nub->bindings[i]);
            sx_nub_unbind(nub, i);
        }
        for (size_t j = 0; j < res.n && rc == 0; j++) {
            const sx_match *m = &res.winners[j];
            const sx_binding *cur = sx_nub_driver(nub, m->category);
            if (cur && same_driver(cur, m))
                continue;
            sx_binding prev = {0};
            if (cur && (rc = sx_binding_copy(&prev, cur)) < 0)
                break;
            sx_binding nb = {
                .category = (char *)m->category,
                .bundle_id = m->personality->bundle_id,
                .bundle_version = m->personality->bundle_version,
                .personality = m->personality->name,
                .server_name = (char *)pstr(m->personality, "IOUserServerName"),
                .user_class = (char *)pstr(m->personality, "IOUserClass"),
                .io_class = (char *)pstr(m->personality, "IOClass"),
                .state = (char *)"matched",
                .score = m->score,
            };
            rc = sx_nub_bind(nub, &nb);
            if (rc == 0 && rc_ctx->cb)
                rc_ctx->cb(rc_ctx->ctx, nub, sx_nub_driver(nub, m->category),
                           cur ? &prev : NULL);
            sx_binding_clear(&prev);
        }
        sx_match_results_free(&res);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < nub->n_children; i++) {
        rc = rematch_nub(nub->children[i], rc_ctx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sx_registry_rematch(sx_registry *reg, const sx_personality_set *set, sx_rematch_cb cb,
                        void *ctx)
{
    SX_ASSERT_ARG(reg);
    size_t n = set ? set->n : 0;
    const sx_personality **ps = calloc(n ? n : 1, sizeof(*ps));
    if (!ps)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ps[i] = &set->items[i];
    rematch_ctx c = {ps, n, cb, ctx};
    int rc = rematch_nub(sx_registry_root(reg), &c);
    free(ps);
    if (rc == 0)
        sx_registry_reap(reg);
    return rc;
}
