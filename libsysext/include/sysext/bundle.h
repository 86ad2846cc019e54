/**
 * Bundles: build, validate and inspect .app, .dext and .systemextension bundles, and open one
 * to read its identity.
 *
 * Layouts (Apple's):
 *   App.app/Contents/{Info.plist, MacOS/<exe>, Resources/, Library/SystemExtensions/<id>.dext}
 *   <id>.systemextension/Contents/{Info.plist, MacOS/<exe>, Resources/}
 *   <id>.dext/{Info.plist, <exe>}        (flat: no Contents/ folder)
 */
#ifndef SYSEXT_BUNDLE_H
#define SYSEXT_BUNDLE_H

#include <stddef.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

typedef enum sysext_bundle_kind {
    SYSEXT_BUNDLE_UNKNOWN = 0,
    SYSEXT_BUNDLE_APP = 1,    /**< .app, CFBundlePackageType APPL */
    SYSEXT_BUNDLE_DEXT = 2,   /**< .dext, DEXT */
    SYSEXT_BUNDLE_SYSEXT = 3, /**< .systemextension, SYSX */
} sysext_bundle_kind;

/** "app", "dext", "sysext"; "unknown" for anything else. Never NULL. */
SYSEXT_API const char *sysext_bundle_kind_name(sysext_bundle_kind kind);
/** Parse "app", "dext", "sysext" (or "systemextension"); SYSEXT_BUNDLE_UNKNOWN otherwise. */
SYSEXT_API sysext_bundle_kind sysext_bundle_kind_parse(const char *name);

/* --- building ------------------------------------------------------------------------------ */

#define SYSEXT_BUILD_OPTIONS_VERSION 1

/**
 * What sysext_bundle_build() makes. Initialise with SYSEXT_BUILD_OPTIONS_INIT; every string is
 * borrowed for the duration of the call. NULL means "not given".
 */
typedef struct sysext_build_options {
    int version;             /**< SYSEXT_BUILD_OPTIONS_VERSION */
    sysext_bundle_kind type; /**< required */
    const char *info;        /**< required: the Info.plist template (XML or binary) */
    const char *executable;  /**< required: copied in with its mode */
    const char *output;      /**< required: the bundle to create; must end in the kind's extension */
    const char *identifier;      /**< overrides CFBundleIdentifier */
    const char *bundle_version;  /**< overrides CFBundleVersion */
    const char *short_version;   /**< overrides CFBundleShortVersionString */
    const char *display_name;    /**< overrides CFBundleDisplayName */
    const char *icon;            /**< copied into Resources (a .dext: its root); sets CFBundleIconFile */
    const char *const *embeds;   /**< apps only: extension bundles copied into
                                      Contents/Library/SystemExtensions/ */
    size_t n_embeds;
    int binary_plist; /**< write Info.plist as a binary plist instead of XML */
    int force;        /**< replace an existing output instead of refusing */
} sysext_build_options;

#define SYSEXT_BUILD_OPTIONS_INIT                                                                  \
    {SYSEXT_BUILD_OPTIONS_VERSION, SYSEXT_BUNDLE_UNKNOWN, NULL, NULL, NULL, NULL, NULL,            \
     NULL, NULL, NULL, NULL, 0, 0, 0}

/**
 * Build a bundle from an Info.plist template and an executable.
 *
 * The template's keys are kept; the options override CFBundleIdentifier, CFBundleVersion,
 * CFBundleShortVersionString, CFBundleDisplayName and CFBundleIconFile. CFBundleExecutable is the
 * executable's file name unless the template names one; CFBundlePackageType is set per kind.
 * The bundle is assembled in a temporary directory beside the output and renamed into place:
 * on failure nothing is left behind.
 *
 * @return 0; SYSEXT_EINVAL for a bad option; SYSEXT_EEXISTS if the output exists (and
 *         force is not set); SYSEXT_ENOTFOUND / SYSEXT_EIO for an input that cannot be read;
 *         SYSEXT_EFORMAT for a malformed template. See sysext_last_error().
 */
SYSEXT_API int sysext_bundle_build(const sysext_build_options *opts);

/* --- validating and inspecting -------------------------------------------------------------- */

/**
 * Check the bundle at `path` (and every extension an app embeds) against the rules in
 * schemas/: layout, Info.plist keys and types, executable, personalities, embedded names,
 * sysext category, entitlements when signed. Every problem is reported, not just the first.
 *
 * @param flags     SYSEXT_OUTPUT_JSON for a JSON report, else text
 * @param[out] out_text  the report (may be NULL if not wanted); malloc'd, the caller frees it;
 *                  set whenever the check ran, i.e. when returning 0 or SYSEXT_EINVALID
 * @return 0 when valid (warnings allowed); SYSEXT_EINVALID when there is at least one error;
 *         SYSEXT_ENOTFOUND / SYSEXT_EINVAL when `path` is not a bundle directory.
 */
SYSEXT_API int sysext_bundle_validate(const char *path, unsigned flags, char **out_text);

/**
 * Describe the bundle at `path`: kind, identifier, versions, executable, personalities (name,
 * IOClass, IOProviderClass, matching keys) and embedded extensions, recursively.
 *
 * @param flags     SYSEXT_OUTPUT_JSON for JSON, else text
 * @param[out] out_text  malloc'd, the caller frees it; written only on success
 * @return 0; SYSEXT_ENOTFOUND, SYSEXT_EINVAL, SYSEXT_EFORMAT when it cannot be opened.
 */
SYSEXT_API int sysext_bundle_inspect(const char *path, unsigned flags, char **out_text);

/* --- an open bundle ------------------------------------------------------------------------- */

typedef struct sysext_bundle sysext_bundle;

/**
 * Open the bundle at `path`: find its layout from its extension and parse its Info.plist
 * (XML or binary). Does not validate.
 *
 * @param[out] out  new handle, owned by the caller, released with sysext_bundle_free();
 *                  untouched on failure
 * @return 0; SYSEXT_ENOTFOUND if there is no such directory or Info.plist; SYSEXT_EINVAL if the
 *         name does not end in .app/.dext/.systemextension; SYSEXT_EFORMAT if Info.plist is
 *         malformed.
 */
SYSEXT_API int sysext_bundle_open(sysext_bundle **out, const char *path);
/** Release `b`. NULL is a no-op. */
SYSEXT_API void sysext_bundle_free(sysext_bundle *b);

/* Getters: strings are borrowed, valid until sysext_bundle_free(); NULL when the key is absent
 * or not a string. */
SYSEXT_API sysext_bundle_kind sysext_bundle_get_kind(const sysext_bundle *b);
/** The path as given (without trailing '/'). */
SYSEXT_API const char *sysext_bundle_path(const sysext_bundle *b);
SYSEXT_API const char *sysext_bundle_identifier(const sysext_bundle *b);
SYSEXT_API const char *sysext_bundle_version(const sysext_bundle *b);
SYSEXT_API const char *sysext_bundle_short_version(const sysext_bundle *b);
/** Full path of the main executable; NULL when CFBundleExecutable is absent or not a plain
 *  file name. */
SYSEXT_API const char *sysext_bundle_executable_path(const sysext_bundle *b);

SYSEXT_END_DECLS

#endif
