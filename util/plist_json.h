/* A plist value as JSON, for --json output of Info.plist keys and entitlements. Data becomes a
 * base64 string, dates ISO 8601 strings. */
#ifndef SX_PLIST_JSON_H
#define SX_PLIST_JSON_H

#include <json-c/json.h>
#include <plist/plist.h>

/* New reference; NULL for NULL or unknown nodes. Depth-limited. */
json_object *sx_plist_to_json(plist_t node);

#endif
