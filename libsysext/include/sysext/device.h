/**
 * Devices through sysextd: attach a USB/IP device (usbip://HOST[:PORT]/BUSID), detach it, list
 * the attached devices or those a USB/IP server exports, and fetch the daemon's device
 * registry. All are admin calls (root or the daemon's own uid).
 *
 * `socket_path` NULL means $SYSEXT_SOCKET or the default /run/sysextd.sock.
 */
#ifndef SYSEXT_DEVICE_H
#define SYSEXT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

/**
 * Import the device at `url` into sysextd (which publishes its nubs and starts the driver
 * that matches). *out_id (may be NULL) is the device's registry id, what
 * sysext_device_detach takes. SYSEXT_EINVAL for a malformed URL, SYSEXT_ENETWORK /
 * SYSEXT_ETIMEOUT / SYSEXT_EREJECTED / SYSEXT_EPROTO when the server cannot be reached,
 * refuses, or lies; SYSEXT_EEXISTS when already attached.
 */
SYSEXT_API int sysext_device_attach(const char *socket_path, const char *url, uint64_t *out_id);

/** Stop the device's drivers and remove its nubs; SYSEXT_ENOTFOUND for an unknown id. */
SYSEXT_API int sysext_device_detach(const char *socket_path, uint64_t id);

/**
 * The attached devices (remote NULL) or the devices the USB/IP server `remote`
 * ("HOST[:PORT]") exports, as a table or as JSON (SYSEXT_OUTPUT_JSON). *out_text is freed by
 * the caller with free().
 */
SYSEXT_API int sysext_device_list(const char *socket_path, const char *remote, unsigned flags,
                                  char **out_text);

/**
 * The daemon's registry snapshot (binary plist, docs/ioreg.md), as sysext_ioreg_render takes
 * it. *out (free()) holds *out_len bytes.
 */
SYSEXT_API int sysext_device_registry(const char *socket_path, void **out, size_t *out_len);

SYSEXT_END_DECLS

#endif
