/* The rules in schemas/ (data, not code): one file per bundle kind (app, dext, sysext), one for
 * IOKitPersonalities entries (personality) and the entitlement catalogue (entitlements).
 *
 * They are compiled into the library as a string table generated at build time; when the
 * environment variable SYSEXT_SCHEMA_DIR is set, schemas/<name>.json is read from there
 * instead (for development). */
#ifndef SX_BUNDLE_SCHEMA_H
#define SX_BUNDLE_SCHEMA_H

#include <json-c/json.h>
#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>

#include "bundle/bundle.h"
#include "util/report.h"

typedef struct sx_schema_blob {
    const char *name; /* file name without ".json" */
    const char *text; /* NUL-terminated */
    size_t len;
} sx_schema_blob;

/* The generated table (build/gen/sx_schemas.c). */
extern const sx_schema_blob sx_schema_blobs[];
extern const size_t sx_schema_blob_count;

/* Load and parse schemas/<name>.json; *out is a new reference (json_object_put). */
int sx_schema_load(const char *name, json_object **out);

/* Check `dict` against a schema object (one with "keys", and optionally "recommended_one_of"):
 * required and recommended keys, types, formats, ranges, nested "keys" and "each" (every entry
 * of a dictionary checked against another schema). Problems go to `r` with file `path` and key
 * paths under `prefix` (NULL at the top level). `bundle_id` is what personalities compare
 * their CFBundleIdentifier and IOUserServerName against (may be NULL). */
void sx_schema_check_dict(json_object *schema, plist_t dict, const char *prefix,
                          const char *bundle_id, const char *path, sx_report *r);

/* Formats the schemas name. */
bool sx_is_reverse_dns(const char *s);
bool sx_is_bundle_version(const char *s); /* 1-3 dot-separated decimal integers */

/* --- the entitlement catalogue (schemas/entitlements.json) --------------------------------- */

#define SX_KIND_BIT(kind) (1u << (unsigned)(kind))
/* In required_by: an app that embeds at least one system extension. */
#define SX_ENT_APP_WITH_EXTENSIONS (1u << 8)

typedef struct sx_ent_rule {
    const char *key;
    const char *type;     /* "bool", "array", "string", "dict", "integer" */
    unsigned on;          /* SX_KIND_BIT() of each kind that may carry it */
    unsigned required_by; /* kinds that must carry it, plus SX_ENT_APP_WITH_EXTENSIONS */
    const char *group;    /* NULL, or a group of which a kind needs one (driverkit-transport) */
    const char *category; /* NULL, or the sysext category it implies ("network", ...) */
    bool deprecated;
} sx_ent_rule;

typedef struct sx_ent_catalog sx_ent_catalog;

/* Load the catalogue; free with sx_ent_catalog_free. Strings in the rules are borrowed from it. */
int sx_ent_catalog_load(sx_ent_catalog **out);
void sx_ent_catalog_free(sx_ent_catalog *c);
/* The rule for `key`, or NULL for an entitlement the catalogue does not know. */
const sx_ent_rule *sx_ent_catalog_find(const sx_ent_catalog *c, const char *key);
size_t sx_ent_catalog_count(const sx_ent_catalog *c);
const sx_ent_rule *sx_ent_catalog_at(const sx_ent_catalog *c, size_t i);

/* Check an entitlements dictionary for a bundle of `kind`: known keys have the right type and
 * are allowed on this kind, required keys and groups are present. Reported under file `path`
 * with codes missing-entitlement, entitlement-wrong-type, entitlement-not-allowed,
 * deprecated-entitlement. */
void sx_ent_check(const sx_ent_catalog *c, plist_t ents, sx_bundle_kind kind,
                  bool embeds_extensions, const char *path, sx_report *r);

#endif
