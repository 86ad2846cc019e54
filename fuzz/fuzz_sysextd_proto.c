/* sysextd's wire decoder on hostile bytes: frames are decoded one after another, as the
 * daemon does with a connection's input buffer, and every decoded message is read with the
 * typed getters and re-encoded. */
#include "util/common.h"

#include "sysextd/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        plist_t m = NULL;
        size_t used = 0;
        int rc = sxd_msg_decode(data + off, size - off, SXD_PROTO_MAX, &m, &used);
        if (rc <= 0) {
            if (rc == SYSEXT_EUNSUPPORTED && used) {
                off += used;
                continue;
            }
            break;
        }
        (void)sxd_dict_str(m, "type");
        (void)sxd_dict_str(m, "ext");
        (void)sxd_dict_uint(m, "id", 0);
        (void)sxd_dict_bool(m, "enabled", 0);
        plist_t items = plist_dict_get_item(m, "items");
        if (items && plist_get_node_type(items) == PLIST_ARRAY)
            for (uint32_t i = 0; i < plist_array_get_size(items) && i < 64; i++)
                (void)sxd_dict_str(plist_array_get_item(items, i), "identifier");
        sx_buf b = SX_BUF_INIT;
        (void)sxd_msg_encode(m, &b);
        sx_buf_free(&b);
        plist_free(m);
        off += used;
    }
    return 0;
}
