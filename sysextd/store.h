/* The daemon's state: one SQLite database (STATE/sysextd.db) and the staged copies
 * (STATE/extensions/<uuid>/<identifier>.<dext|systemextension>).
 *
 * Rules: each transition is one transaction; a staged copy is complete and fsynced before the
 * row that points at it commits; a row is deleted only after its copy is gone. On open,
 * sxd_store_reconcile() makes the folder and the table agree again after a crash. */
#ifndef SXD_STORE_H
#define SXD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* States (reference 2.4). */
#define SXD_ST_VALIDATING "validating"
#define SXD_ST_WAITING "activated_waiting_for_user"
#define SXD_ST_ENABLING "activated_enabling"
#define SXD_ST_ENABLED "activated_enabled"
#define SXD_ST_TERM_UPGRADE "terminating_for_upgrade_via_delegate"
#define SXD_ST_TERM_UNINSTALL "terminating_for_uninstall"
#define SXD_ST_UNINSTALLING "uninstalling"

typedef struct sxd_record {
    char uuid[37];
    char *identifier, *team_id, *version, *short_version, *category, *name, *state;
    char *origin_path;  /* the bundle inside the app at activation time */
    char *staged_path;  /* STATE/extensions/<uuid>/<identifier>.<ext> */
    char *app_path, *app_id, *app_team, *app_cdhash; /* the owning app */
    char *cdhash;       /* of the staged copy, hex */
    int64_t created;
} sxd_record;

typedef struct sxd_store sxd_store;

/* Open (creating) STATE/sysextd.db and STATE/extensions/. Does not reconcile. */
int sxd_store_open(const char *state_dir, sxd_store **out);
void sxd_store_close(sxd_store *s);
const char *sxd_store_dir(const sxd_store *s); /* STATE/extensions */

/* Copy `src` into a new STATE/extensions/<uuid>/<basename(src)>, fsync the copy and the
 * folders. Fills rec->uuid and rec->staged_path. No row is written. */
int sxd_store_stage(sxd_store *s, const char *src, sxd_record *rec);
/* The same, given only the store's extensions folder (sxd_store_dir): safe on a worker
 * thread, since it touches no database state. */
int sxd_store_stage_in(const char *ext_dir, const char *src, sxd_record *rec);
/* Remove the staged folder of `uuid` (and fsync the parent). A missing folder is fine. */
int sxd_store_unstage(sxd_store *s, const char *uuid);

int sxd_store_insert(sxd_store *s, const sxd_record *rec);
int sxd_store_set_state(sxd_store *s, const char *uuid, const char *state);
/* One transaction: old -> terminating_for_upgrade_via_delegate, new -> new_state. */
int sxd_store_replace(sxd_store *s, const char *old_uuid, const char *new_uuid,
                      const char *new_state);
int sxd_store_delete(sxd_store *s, const char *uuid);
/* The owning app at `app_path` now has cdhash `cdhash` (an update carried ownership over). */
int sxd_store_update_owner(sxd_store *s, const char *app_path, const char *cdhash);

/* Records, oldest first; `identifier` NULL for all. *out owned by the caller. */
int sxd_store_list(sxd_store *s, const char *identifier, sxd_record **out, size_t *n);
int sxd_store_get(sxd_store *s, const char *uuid, sxd_record *out);
void sxd_record_clear(sxd_record *r);
void sxd_records_free(sxd_record *v, size_t n);
int sxd_record_copy(const sxd_record *src, sxd_record *dst);

int sxd_store_get_setting(sxd_store *s, const char *key, char **val); /* *val NULL if unset */
int sxd_store_set_setting(sxd_store *s, const char *key, const char *val);

/* Startup: drop unverified ("validating") rows and their copies, finish pending uninstalls and
 * upgrades, finish "enabling", drop folders without a row and rows without a folder.
 * *changed counts the fixes made. */
int sxd_store_reconcile(sxd_store *s, unsigned *changed);

/* A crash point for the kill -9 tests: when SYSEXTD_CRASH_AT=N is set, the Nth call _exits. */
void sxd_crashpoint(const char *what);
void sxd_crashpoint_init(void);

#endif
