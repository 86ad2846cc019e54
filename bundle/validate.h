/* Bundle validation: layout and Info.plist against the rules in schemas/, every problem
 * reported (not just the first) through util/report.h. */
#ifndef SX_BUNDLE_VALIDATE_H
#define SX_BUNDLE_VALIDATE_H

#include <plist/plist.h>

#include "bundle/bundle.h"
#include "util/report.h"

/* Validate the bundle at `path` (and, for an app, every extension it embeds) into `r`.
 * Returns 0 when the check ran (look at the report for errors), or a negative SYSEXT_E* when
 * there is nothing to check: path missing, not a directory, or not named like a bundle. */
int sx_validate_bundle(const char *path, sx_report *r);

/* The Info.plist-only checks (schema, package type, Info.plist-derived sysext category) on an
 * already-parsed dictionary, reported under file `info_rel`. No file system access. */
void sx_validate_info(plist_t info, sx_bundle_kind kind, const char *info_rel, sx_report *r);

/* Parse `data` as an Info.plist of a `kind` bundle and run sx_validate_info; a parse failure
 * is reported as a malformed-plist error. The fuzz target's entry point. */
void sx_validate_info_mem(const void *data, size_t len, sx_bundle_kind kind, sx_report *r);

/* Render a finished report for `path` as text or, with as_json, as a JSON document:
 * {"path","kind","valid","errors","warnings","diagnostics":[...]}. *out is malloc'd. */
int sx_validate_render(const sx_report *r, const char *path, sx_bundle_kind kind, bool as_json,
                       char **out);

#endif
