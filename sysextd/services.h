/* The daemon's device registry as the rest of sysextd sees it: nubs for devices and
 * resources, matched against the personalities of enabled driver extensions; each started
 * driver appears as a child nub of its provider (class = its IOUserClass), which is what apps
 * find with a matching dictionary and open user clients on.
 *
 * Implemented in sysextd/devices.c (registry, matching, attach/detach, rematch) on top of
 * registry/ and sysextd/host.h. All on the event loop thread. */
#ifndef SXD_SERVICES_H
#define SXD_SERVICES_H

#include <plist/plist.h>
#include <stddef.h>
#include <stdint.h>

struct sxd_daemon;

/* Called after any change of the set of enabled extensions (activation, approval, replacement,
 * deactivation, uninstall, owning app gone): stops the drivers of extensions no longer
 * enabled, and rematches every nub against the personalities of the enabled ones. */
void sxd_services_extensions_changed(struct sxd_daemon *d);

/* Registry ids of the driver services (started driver objects) whose properties match
 * `matching` (keys: IOProviderClass or IOClass / IOUserClass naming the driver's class or a
 * superclass, IONameMatch, IOPropertyMatch, CFBundleIdentifier, IORegistryEntryID).
 * *ids owned by the caller (free). 0 with *n == 0 when nothing matches. */
int sxd_services_match(struct sxd_daemon *d, plist_t matching, uint64_t **ids, size_t *n);

/* The running driver instance (sxd_host instance id) behind a driver service's registry id,
 * and its extension's bundle identifier (borrowed, valid until the next registry change).
 * SYSEXT_ENOTFOUND when `registry_id` is not a live driver service. */
int sxd_services_lookup(struct sxd_daemon *d, uint64_t registry_id, uint64_t *instance,
                        const char **bundle_id);

/* The host's on_state callback for the daemon (sxd_host_config.on_state with ctx = the
 * daemon): a driver service nub appears on RUNNING and goes on STOPPED / CRASHED / GAVE_UP /
 * START_FAILED; the binding's state on its provider mirrors `state`. Never calls back into
 * the host: anything that needs a rematch is done on the next loop iteration. */
void sxd_services_driver_state(void *daemon, uint64_t instance, const char *state,
                               const char *why);

#endif
