/* The device calls of the client library: device-attach / device-detach / device-list / ioreg
 * requests to sysextd, and their rendering. */
#include "util/common.h"

#include <inttypes.h>
#include <json-c/json.h>

#include "libsysext/src/client.h"
#include "sysext/device.h"
#include "sysextd/proto.h"
#include "util/buf.h"
#include "util/plist_json.h"

int sysext_device_attach(const char *socket_path, const char *url, uint64_t *out_id)
{
    SX_ASSERT_ARG(url);
    plist_t m = sxd_msg_new("device-attach");
    sxd_dict_set_str(m, "url", url);
    plist_t r = NULL;
    int rc = sx_client_admin_call(socket_path, m, &r);
    if (rc < 0)
        return rc;
    plist_t id = plist_dict_get_item(r, "device");
    if (!id || plist_get_node_type(id) != PLIST_UINT) {
        plist_free(r);
        return sx_err(SYSEXT_EPROTO, "sysextd: device-attach reply without a device id");
    }
    uint64_t v = 0;
    plist_get_uint_val(id, &v);
    if (out_id)
        *out_id = v;
    plist_free(r);
    return 0;
}

int sysext_device_detach(const char *socket_path, uint64_t id)
{
    plist_t m = sxd_msg_new("device-detach");
    sxd_dict_set_uint(m, "device", id);
    return sx_client_admin_call(socket_path, m, NULL);
}

static const char *speed_name(uint64_t s)
{
    static const char *const names[] = {"unknown", "low", "full", "high", "wireless", "super",
                                        "super+"};
    return s < SX_ARRAY_SIZE(names) ? names[s] : "?";
}

static int render(plist_t arr, bool remote, unsigned flags, char **out)
{
    if (flags & SYSEXT_OUTPUT_JSON) {
        json_object *o = sx_plist_to_json(arr);
        const char *s = json_object_to_json_string_ext(
            o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE | JSON_C_TO_STRING_SPACED);
        if (!s || asprintf(out, "%s\n", s) < 0)
            *out = NULL;
        json_object_put(o);
        return *out ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    sx_buf b;
    sx_buf_init(&b, 1u << 24);
    int rc = 0;
    uint32_t n = plist_array_get_size(arr);
    if (remote)
        rc = sx_buf_printf(&b, "%-10s %-9s %-7s %-5s %s\n", "BUSID", "VID:PID", "SPEED", "CLASS",
                           "INTERFACES");
    else
        rc = sx_buf_printf(&b, "%-12s %-9s %-10s %-24s %s\n", "ID", "VID:PID", "INTERFACES",
                           "NAME", "URL");
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        plist_t e = plist_array_get_item(arr, i);
        if (remote)
            rc = sx_buf_printf(&b,
                               "%-10s %04" PRIx64 ":%04" PRIx64 " %-7s %02" PRIx64 "    %" PRIu64
                               "\n",
                               sxd_dict_str(e, "busid") ? sxd_dict_str(e, "busid") : "?",
                               sxd_dict_uint(e, "idVendor", 0), sxd_dict_uint(e, "idProduct", 0),
                               speed_name(sxd_dict_uint(e, "speed", 0)),
                               sxd_dict_uint(e, "bDeviceClass", 0),
                               sxd_dict_uint(e, "bNumInterfaces", 0));
        else
            rc = sx_buf_printf(&b,
                               "%#-12" PRIx64 " %04" PRIx64 ":%04" PRIx64 " %-10" PRIu64
                               " %-24s %s\n",
                               sxd_dict_uint(e, "id", 0), sxd_dict_uint(e, "idVendor", 0),
                               sxd_dict_uint(e, "idProduct", 0),
                               sxd_dict_uint(e, "interfaces", 0),
                               sxd_dict_str(e, "name") ? sxd_dict_str(e, "name") : "",
                               sxd_dict_str(e, "url") ? sxd_dict_str(e, "url") : "");
    }
    if (rc == 0 && !n)
        rc = sx_buf_puts(&b, remote ? "(the server exports no device)\n"
                                    : "(no device attached)\n");
    if (rc == 0)
        rc = sx_buf_append(&b, "", 1);
    if (rc < 0) {
        sx_buf_free(&b);
        return rc;
    }
    *out = (char *)b.data;
    return 0;
}

int sysext_device_list(const char *socket_path, const char *remote, unsigned flags,
                       char **out_text)
{
    SX_ASSERT_ARG(out_text);
    *out_text = NULL;
    plist_t m = sxd_msg_new("device-list");
    sxd_dict_set_str(m, "remote", remote);
    plist_t r = NULL;
    int rc = sx_client_admin_call(socket_path, m, &r);
    if (rc < 0)
        return rc;
    plist_t arr = plist_dict_get_item(r, remote ? "remote" : "devices");
    if (!arr || plist_get_node_type(arr) != PLIST_ARRAY)
        rc = sx_err(SYSEXT_EPROTO, "sysextd: device-list reply without its list");
    else
        rc = render(arr, remote != NULL, flags, out_text);
    plist_free(r);
    return rc;
}

int sysext_device_registry(const char *socket_path, void **out, size_t *out_len)
{
    SX_ASSERT_ARG(out);
    SX_ASSERT_ARG(out_len);
    *out = NULL;
    *out_len = 0;
    plist_t r = NULL;
    int rc = sx_client_admin_call(socket_path, sxd_msg_new("ioreg"), &r);
    if (rc < 0)
        return rc;
    plist_t reg = plist_dict_get_item(r, "registry");
    if (!reg) {
        plist_free(r);
        return sx_err(SYSEXT_EPROTO, "sysextd: ioreg reply without a registry");
    }
    char *bin = NULL;
    uint32_t len = 0;
    plist_to_bin(reg, &bin, &len);
    plist_free(r);
    if (!bin)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *out = malloc(len ? len : 1);
    if (*out)
        memcpy(*out, bin, len);
    plist_to_bin_free(bin);
    if (!*out)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *out_len = len;
    return 0;
}
