/* The daemon's parsers of device-attach URLs (usbip://HOST[:PORT]/BUSID) and device-list
 * remotes (HOST[:PORT]), sysextd/usb_attach.c: any bytes, never a crash; a success yields a
 * non-empty host, a port > 0 and a bus id within its bounds. */
#include "util/common.h"

#include "sysextd/devices.h"
#include "usb/usbip_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = strndup((const char *)data, size);
    if (!s)
        return 0;
    char host[256], busid[SX_USBIP_BUSID_LEN + 1];
    uint16_t port = 0;
    if (sxd_usb_parse_url(s, host, sizeof(host), &port, busid, sizeof(busid)) == 0) {
        if (!host[0] || !port || !busid[0] || strlen(busid) > SX_USBIP_BUSID_LEN)
            __builtin_trap();
    }
    if (sxd_usb_parse_hostport(s, host, sizeof(host), &port) == 0) {
        if (!host[0] || !port || strlen(host) >= sizeof(host))
            __builtin_trap();
    }
    free(s);
    return 0;
}
