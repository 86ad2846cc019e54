/* The bundle model shared by build, validate, sign, verify and the daemon.
 *
 * Layouts (Apple's):
 *   .app              App.app/Contents/{Info.plist, MacOS/<exe>, Resources/, Library/SystemExtensions/}
 *   .systemextension  X.systemextension/Contents/{Info.plist, MacOS/<exe>, Resources/}
 *   .dext             X.dext/{Info.plist, <exe>}            (flat: no Contents/)
 */
#ifndef SX_BUNDLE_H
#define SX_BUNDLE_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sx_bundle_kind {
    SX_BUNDLE_UNKNOWN = 0,
    SX_BUNDLE_APP,
    SX_BUNDLE_DEXT,
    SX_BUNDLE_SYSEXT,
} sx_bundle_kind;

typedef struct sx_bundle {
    char *path;          /* as given, without trailing '/' */
    sx_bundle_kind kind; /* from the folder's extension */
    bool flat;           /* .dext: no Contents/ folder */
    char *contents;      /* path/Contents, or path when flat */
    char *info_path;     /* contents/Info.plist */
    plist_t info;        /* parsed Info.plist (owned) */
    const char *identifier;    /* CFBundleIdentifier, borrowed from info; NULL if absent */
    const char *executable;    /* CFBundleExecutable, borrowed; NULL if absent */
    const char *version;       /* CFBundleVersion, borrowed; NULL if absent */
    const char *short_version; /* CFBundleShortVersionString, borrowed; NULL if absent */
    char *exe_path;      /* contents/MacOS/<exe>, or path/<exe> when flat; NULL if no executable key */
    char *exe_relpath;   /* the same relative to `path`, e.g. "Contents/MacOS/App" */
} sx_bundle;

/* Size limit for any Info.plist we read. */
#define SX_INFO_PLIST_MAX (4u << 20)

sx_bundle_kind sx_bundle_kind_from_path(const char *path);
const char *sx_bundle_kind_name(sx_bundle_kind kind); /* "app", "dext", "sysext" */
const char *sx_bundle_kind_extension(sx_bundle_kind kind); /* ".app", ".dext", ".systemextension" */

/* Open a bundle: find its layout from the extension and parse its Info.plist (XML or binary).
 * Does not validate beyond what it needs; SYSEXT_ENOTFOUND / SYSEXT_EFORMAT with a message
 * naming the file. */
int sx_bundle_open(const char *path, sx_bundle **out);
/* The same for any signed bundle: a .framework or .bundle too (kind SX_BUNDLE_UNKNOWN, flat
 * unless it has a Contents/ folder). For code signing, which seals any bundle. */
int sx_bundle_open_any(const char *path, sx_bundle **out);
void sx_bundle_free(sx_bundle *b);
/* Where a bundle of `kind` at `path` keeps Info.plist: *contents = path/Contents, or path for a
 * flat .dext (a .dext with only Contents/Info.plist is taken as deep). */
int sx_bundle_layout(const char *path, sx_bundle_kind kind, bool *flat, char **contents);
/* Read contents/_CodeSignature/CodeEntitlements (an 8-byte header: magic 0xfade7171 and the
 * big-endian length of the whole blob, then an XML plist), bounded. *out is NULL when the file
 * does not exist (unsigned bundle); SYSEXT_EFORMAT naming the file and offset when malformed. */
int sx_bundle_read_entitlements(const char *contents, plist_t *out);
/* The same from memory: `what` names the blob in messages. */
int sx_bundle_parse_entitlements_blob(const uint8_t *data, size_t len, const char *what,
                                      plist_t *out);
#define SX_ENTITLEMENTS_MAX (1u << 20)
#define SX_ENTITLEMENTS_MAGIC 0xfade7171u

/* Describe a bundle (kind, identity, executable, personalities, embedded extensions) as JSON;
 * *out is a new reference. The same document `sysextctl inspect --json` prints. */
struct json_object;
int sx_bundle_inspect_json(const char *path, struct json_object **out);

/* Parse plist bytes (XML or binary), with a message naming `what` on failure. */
int sx_plist_parse(const void *data, size_t len, const char *what, plist_t *out);
int sx_plist_read_file(const char *path, size_t max, plist_t *out);
/* "string", "integer", "bool", "dict", "array", "data", "date", "real", "uid"; "nothing" for NULL. */
const char *sx_plist_type_name(plist_t node);
/* The string value of dict[key], borrowed; NULL when absent or not a string. */
const char *sx_plist_string(plist_t dict, const char *key);

/* Parse "dext", "sysext"/"systemextension", "app"; SX_BUNDLE_UNKNOWN otherwise. */
sx_bundle_kind sx_bundle_kind_parse(const char *name);
/* The package type a kind carries: "APPL", "DEXT", "SYSX". */
const char *sx_bundle_kind_package_type(sx_bundle_kind kind);
/* True when `name` can be a single path component: not empty, no '/', not "." or "..". */
bool sx_bundle_safe_name(const char *name);

#endif
