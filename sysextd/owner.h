/* Watching the owning apps: an inotify watch on each app's parent folder. When an app's
 * entry changes (deleted, moved away, replaced) a grace period starts; when it ends the daemon
 * decides (sxd_owner_take_due): ownership carries over to a valid app of the same bundle id and
 * team at that path, otherwise the app's extensions are uninstalled. */
#ifndef SXD_OWNER_H
#define SXD_OWNER_H

#include <stdint.h>

typedef struct sxd_owner sxd_owner;

int sxd_owner_open(double grace_seconds, sxd_owner **out);
void sxd_owner_close(sxd_owner *o);
int sxd_owner_fd(const sxd_owner *o);
/* Watch `app_path` (idempotent). */
int sxd_owner_add(sxd_owner *o, const char *app_path);
void sxd_owner_remove(sxd_owner *o, const char *app_path);
/* Start the grace period for `app_path` now (if not already running). */
void sxd_owner_touch(sxd_owner *o, const char *app_path);
/* Read pending inotify events. */
int sxd_owner_handle(sxd_owner *o);
/* Milliseconds until the next grace period ends, -1 when none runs. */
int sxd_owner_timeout_ms(const sxd_owner *o);
/* The path of one app whose grace period has ended (malloc'd), or NULL. */
char *sxd_owner_take_due(sxd_owner *o);
int64_t sxd_now_ms(void);

#endif
