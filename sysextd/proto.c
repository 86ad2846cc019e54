#include "util/common.h"

#include "sysextd/proto.h"

plist_t sxd_msg_new(const char *type)
{
    plist_t d = plist_new_dict();
    if (!d)
        return NULL;
    plist_dict_set_item(d, "v", plist_new_uint(SXD_PROTO_VERSION));
    plist_dict_set_item(d, "type", plist_new_string(type));
    return d;
}

const char *sxd_dict_str(plist_t dict, const char *key)
{
    if (!dict || plist_get_node_type(dict) != PLIST_DICT)
        return NULL;
    plist_t n = plist_dict_get_item(dict, key);
    if (!n || plist_get_node_type(n) != PLIST_STRING)
        return NULL;
    return plist_get_string_ptr(n, NULL);
}

uint64_t sxd_dict_uint(plist_t dict, const char *key, uint64_t fallback)
{
    if (!dict || plist_get_node_type(dict) != PLIST_DICT)
        return fallback;
    plist_t n = plist_dict_get_item(dict, key);
    if (!n || plist_get_node_type(n) != PLIST_UINT)
        return fallback;
    uint64_t v = 0;
    plist_get_uint_val(n, &v);
    return v;
}

int sxd_dict_bool(plist_t dict, const char *key, int fallback)
{
    if (!dict || plist_get_node_type(dict) != PLIST_DICT)
        return fallback;
    plist_t n = plist_dict_get_item(dict, key);
    if (!n || plist_get_node_type(n) != PLIST_BOOLEAN)
        return fallback;
    uint8_t v = 0;
    plist_get_bool_val(n, &v);
    return v != 0;
}

void sxd_dict_set_str(plist_t dict, const char *key, const char *val)
{
    if (val)
        plist_dict_set_item(dict, key, plist_new_string(val));
}

void sxd_dict_set_uint(plist_t dict, const char *key, uint64_t val)
{
    plist_dict_set_item(dict, key, plist_new_uint(val));
}

void sxd_dict_set_bool(plist_t dict, const char *key, int val)
{
    plist_dict_set_item(dict, key, plist_new_bool(val ? 1 : 0));
}

int sxd_msg_encode(plist_t msg, sx_buf *out)
{
    char *bin = NULL;
    uint32_t n = 0;
    if (!msg || plist_get_node_type(msg) != PLIST_DICT)
        return sx_err(SYSEXT_EINVAL, "sysextd message: not a dictionary");
    plist_to_bin(msg, &bin, &n);
    if (!bin)
        return sx_err(SYSEXT_ENOMEM, "sysextd message: cannot encode the plist");
    if (n > SXD_PROTO_MAX) {
        plist_to_bin_free(bin);
        return sx_err(SYSEXT_ELIMIT, "sysextd message: %u bytes, above the limit of %u", n,
                      SXD_PROTO_MAX);
    }
    int rc = sx_buf_put_u32be(out, n);
    if (rc == 0)
        rc = sx_buf_append(out, bin, n);
    plist_to_bin_free(bin);
    return rc;
}

int sxd_msg_decode(const uint8_t *data, size_t len, size_t max, plist_t *msg, size_t *consumed)
{
    *msg = NULL;
    *consumed = 0;
    if (len < 4)
        return 0;
    uint32_t n = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 |
                 (uint32_t)data[3];
    if (n > max)
        return sx_err(SYSEXT_ELIMIT, "sysextd message: frame of %u bytes, above the limit of %zu",
                      n, max);
    if (len - 4 < n)
        return 0;
    *consumed = (size_t)n + 4;
    const uint8_t *body = data + 4;
    if (n < 8 || memcmp(body, "bplist00", 8) != 0)
        return sx_err(SYSEXT_EFORMAT, "sysextd message: body at offset 4 is not a binary plist");
    plist_t p = NULL;
    plist_from_bin((const char *)body, n, &p);
    if (!p)
        return sx_err(SYSEXT_EFORMAT, "sysextd message: malformed binary plist (%u bytes)", n);
    if (plist_get_node_type(p) != PLIST_DICT) {
        plist_free(p);
        return sx_err(SYSEXT_EFORMAT, "sysextd message: root is not a dictionary");
    }
    plist_t v = plist_dict_get_item(p, "v");
    uint64_t ver = 0;
    if (!v || plist_get_node_type(v) != PLIST_UINT) {
        plist_free(p);
        return sx_err(SYSEXT_EFORMAT, "sysextd message: key 'v': expected an unsigned integer");
    }
    plist_get_uint_val(v, &ver);
    if (ver != SXD_PROTO_VERSION) {
        plist_free(p);
        return sx_err(SYSEXT_EUNSUPPORTED,
                      "sysextd message: protocol version %llu, expected %u",
                      (unsigned long long)ver, SXD_PROTO_VERSION);
    }
    const char *type = sxd_dict_str(p, "type");
    if (!type || !*type) {
        plist_free(p);
        return sx_err(SYSEXT_EFORMAT, "sysextd message: key 'type': expected a non-empty string");
    }
    *msg = p;
    return 1;
}
