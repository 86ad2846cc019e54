/* App-side user clients in the daemon: the ioservice-match and ioservice-open requests
 * (libsysext's sysext/ioconnect.h is the client). */
#ifndef SXD_IOSERVICE_H
#define SXD_IOSERVICE_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sxd_daemon;
struct sxd_conn;

#define SXD_ENT_UC_ACCESS "com.apple.developer.driverkit.userclient-access"
#define SXD_ENT_UC_ANY "com.apple.developer.driverkit.allow-any-userclient-access"
#define SXD_ENT_ADMIN "com.apple.developer.driverkit.administrator"

/* Handle "ioservice-match" {matching: dict} -> reply {ids: [uint]} and "ioservice-open"
 * {service: uint, uctype: uint} -> reply with the app's end of the driver connection attached
 * (SCM_RIGHTS) to the first byte of the reply frame. Errors are replies with err/message. */
void sxd_ioservice_handle(struct sxd_daemon *d, struct sxd_conn *c, uint64_t id, const char *type, plist_t msg);

/* The successful ioservice-open reply {id, err: 0}: `fd` (borrowed; the caller closes its copy)
 * rides with SCM_RIGHTS on the frame's first byte, sent at once; the rest of the frame is
 * queued on c->out for the event loop's flush. SYSEXT_EBUSY while c->out is not empty (the
 * descriptor would land on another frame), SYSEXT_EIO when the send fails. */
int sxd_ioservice_reply_fd(struct sxd_conn *c, uint64_t id, int fd);

/* The user-client open check of reference 6 (IOUserServer::serviceNewUserClient), for an app
 * with entitlements `app_ents` opening a service of the dext `dext_id` with entitlements
 * `dext_ents`, whose user-client template is `uc_template` (the personality's
 * UserClientProperties, may be NULL); `admin`: the caller is root or the daemon's admin (the
 * kernel then adds com.apple.developer.driverkit.administrator to the app's entitlements).
 * 0 when allowed; SYSEXT_EPERM with a message naming the missing entitlement. */
int sxd_uc_access_check(plist_t app_ents, const char *dext_id, plist_t dext_ents, plist_t uc_template, bool admin);

/* IOServiceDEXTEntitlements semantics: a string, an array of strings or an array of arrays of
 * strings; passes if any top-level element passes; a leaf array passes only if all of its
 * strings are keys of `ents` (`admin` adds the administrator key). On failure *missing names
 * the first missing key (borrowed from `req`). */
bool sxd_dext_entitlements_met(plist_t req, plist_t ents, bool admin, const char **missing);

#endif
