/* Managed policy: the keys of Apple's com.apple.system-extension-policy payload (reference 4),
 * read from one plist file (XML or binary). The file is either one payload dictionary, or a
 * profile whose "PayloadContent" array holds several; several payloads merge as Apple merges
 * them (AllowUserOverrides false if any says false, everything else a union). */
#ifndef SXD_POLICY_H
#define SXD_POLICY_H

#include <plist/plist.h>
#include <stdbool.h>

typedef struct sxd_policy {
    bool allow_user_overrides;     /* default true */
    plist_t allowed_teams;         /* array of string */
    plist_t allowed_extensions;    /* dict team -> array of bundle ids */
    plist_t allowed_types;         /* dict team -> array of type names */
    plist_t removable;             /* dict team -> array of bundle ids */
    plist_t non_removable;         /* dict team -> array of bundle ids */
    plist_t non_removable_from_ui; /* dict team -> array of bundle ids */
} sxd_policy;

/* An empty policy (nothing pre-approved, user overrides allowed). */
int sxd_policy_init_empty(sxd_policy *p);
/* Parse a policy file. On error *p is untouched, the message names the key path. */
int sxd_policy_load(const char *path, sxd_policy *p);
int sxd_policy_parse(const void *data, size_t len, const char *what, sxd_policy *p);
void sxd_policy_free(sxd_policy *p);

/* Pre-approved by AllowedTeamIdentifiers or AllowedSystemExtensions. */
bool sxd_policy_allows(const sxd_policy *p, const char *team, const char *bundle_id);
/* AllowedSystemExtensionTypes: a team without an entry may install any type.
 * type: "DriverExtension", "NetworkExtension", "EndpointSecurityExtension". */
bool sxd_policy_type_allowed(const sxd_policy *p, const char *team, const char *type);
bool sxd_policy_removable(const sxd_policy *p, const char *team, const char *bundle_id);
bool sxd_policy_non_removable(const sxd_policy *p, const char *team, const char *bundle_id);

/* The merged policy as an XML-able plist dict with Apple's key names (for policy show). */
plist_t sxd_policy_to_plist(const sxd_policy *p);

#endif
