#include "util/common.h"

#include "tests/unit/registry/registry_fixture.h"

void fx_device_bytes(uint8_t d[18], uint16_t vid, uint16_t pid, uint16_t bcd, uint8_t cls,
                     uint8_t sub, uint8_t proto)
{
    const uint8_t b[18] = {18, 1, 0x00, 0x02, cls, sub, proto, 64, (uint8_t)vid,
                           (uint8_t)(vid >> 8), (uint8_t)pid, (uint8_t)(pid >> 8), (uint8_t)bcd,
                           (uint8_t)(bcd >> 8), 1, 2, 3, 1};
    memcpy(d, b, 18);
}

sx_usb_device_descriptor fx_device(uint16_t vid, uint16_t pid, uint16_t bcd, uint8_t cls,
                                   uint8_t sub, uint8_t proto)
{
    uint8_t b[18];
    sx_usb_device_descriptor d;
    fx_device_bytes(b, vid, pid, bcd, cls, sub, proto);
    if (sx_usb_parse_device_descriptor(b, sizeof(b), &d) < 0)
        abort();
    return d;
}

static void put(uint8_t *buf, size_t cap, size_t *off, const uint8_t *p, size_t n)
{
    if (*off + n > cap)
        abort();
    memcpy(buf + *off, p, n);
    *off += n;
}

size_t fx_config(uint8_t *buf, size_t cap, uint8_t value, const fx_iface *ifaces, size_t n)
{
    size_t off = 0;
    const uint8_t head[9] = {9, 2, 0, 0, (uint8_t)n, value, 0, 0x80, 50};
    put(buf, cap, &off, head, 9);
    for (size_t i = 0; i < n; i++) {
        for (uint8_t alt = 0; alt <= ifaces[i].n_alts; alt++) {
            const uint8_t in[9] = {9, 4, ifaces[i].number, alt, 1, ifaces[i].cls, ifaces[i].sub,
                                   ifaces[i].proto, 0};
            const uint8_t ep[7] = {7, 5, (uint8_t)(0x81 + i), 2, 0, 2, 0};
            put(buf, cap, &off, in, 9);
            put(buf, cap, &off, ep, 7);
        }
    }
    buf[2] = (uint8_t)off;
    buf[3] = (uint8_t)(off >> 8);
    return off;
}

plist_t fx_dict(const char *first, ...)
{
    plist_t d = plist_new_dict();
    va_list ap;
    va_start(ap, first);
    for (const char *k = first; k; k = va_arg(ap, const char *)) {
        if (k[0] == 's') {
            plist_dict_set_item(d, k + 2, plist_new_string(va_arg(ap, const char *)));
        } else if (k[0] == 'u') {
            plist_dict_set_item(d, k + 2, plist_new_uint((uint64_t)(int64_t)va_arg(ap, int)));
        } else if (k[0] == 'a') {
            int n = va_arg(ap, int);
            plist_t a = plist_new_array();
            for (int i = 0; i < n; i++)
                plist_array_append_item(a, plist_new_uint((uint64_t)va_arg(ap, int)));
            plist_dict_set_item(d, k + 2, a);
        } else {
            abort();
        }
    }
    va_end(ap);
    return d;
}

sx_personality fx_personality(const char *bundle, const char *version, const char *name,
                              plist_t dict)
{
    sx_personality p = {strdup(bundle), strdup(version), strdup(name), dict};
    return p;
}

void fx_personality_free(sx_personality *p)
{
    free(p->bundle_id);
    free(p->bundle_version);
    free(p->name);
    plist_free(p->dict);
    memset(p, 0, sizeof(*p));
}
