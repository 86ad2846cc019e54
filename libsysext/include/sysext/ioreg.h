/**
 * The device registry as `ioreg` shows it.
 *
 * sysextd keeps an IOService-style registry of nubs (USB devices and interfaces, IOResources,
 * IOUserResources) with the drivers bound to them. It hands out a snapshot of it: a plist
 * (binary, or XML) whose format is documented in docs/ioreg.md. These calls render such a
 * snapshot for people (like `ioreg -l`) or as JSON.
 */
#ifndef SYSEXT_IOREG_H
#define SYSEXT_IOREG_H

#include <stddef.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

/** sysext_ioreg_render() flag: leave the property dictionaries out (like `ioreg` without -l). */
#define SYSEXT_IOREG_NO_PROPERTIES 0x100u

/**
 * Render a registry snapshot (`len` bytes of a binary or XML plist) as text, or as JSON with
 * SYSEXT_OUTPUT_JSON. On success *out_text is a NUL-terminated string the caller frees with
 * free(). SYSEXT_EFORMAT names the key path of the first malformed entry.
 */
SYSEXT_API int sysext_ioreg_render(const void *snapshot, size_t len, unsigned flags,
                                   char **out_text);

/** The same, reading the snapshot from the file at `path`. */
SYSEXT_API int sysext_ioreg_render_file(const char *path, unsigned flags, char **out_text);

SYSEXT_END_DECLS

#endif
