#include "util/common.h"

#include <dirent.h>
#include <sqlite3.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/store.h"
#include "util/fs.h"

struct sxd_store {
    sqlite3 *db;
    char *state_dir;
    char *ext_dir;
};

static long crash_at = -1;
static long crash_count;

void sxd_crashpoint_init(void)
{
    const char *e = getenv("SYSEXTD_CRASH_AT");
    crash_at = -1;
    crash_count = 0;
    if (e && *e) {
        char *end = NULL;
        long v = strtol(e, &end, 10);
        if (end && !*end && v > 0)
            crash_at = v;
    }
}

void sxd_crashpoint(const char *what)
{
    crash_count++;
    if (crash_at > 0 && crash_count == crash_at) {
        char msg[160];
        int n = snprintf(msg, sizeof(msg), "sysextd: crash point %ld (%s)\n", crash_count, what);
        if (n > 0 && (size_t)n < sizeof(msg) && write(2, msg, (size_t)n) < 0)
            n = 0;
        _exit(99);
    }
}

static const char *const COLS =
    "uuid, identifier, team_id, version, short_version, category, name, state, origin_path, "
    "staged_path, app_path, app_id, app_team, app_cdhash, cdhash, created";

static int db_err(sxd_store *s, int rc, const char *what)
{
    return sx_err(rc == SQLITE_FULL || rc == SQLITE_IOERR ? SYSEXT_EIO : SYSEXT_ERROR,
                  "sysextd store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec(sxd_store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int r = sx_err(SYSEXT_EIO, "sysextd store: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

int sxd_store_open(const char *state_dir, sxd_store **out)
{
    *out = NULL;
    sxd_store *s = calloc(1, sizeof(*s));
    if (!s)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = SYSEXT_ENOMEM;
    s->state_dir = strdup(state_dir);
    s->ext_dir = sx_path_join(state_dir, "extensions");
    _sx_cleanup_free_ char *dbpath = sx_path_join(state_dir, "sysextd.db");
    if (!s->state_dir || !s->ext_dir || !dbpath) {
        sx_err(rc, "out of memory");
        goto fail;
    }
    if ((rc = sx_mkdir_p(s->ext_dir, 0700)) < 0)
        goto fail;
    if (sqlite3_open_v2(dbpath, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = sx_err(SYSEXT_EIO, "sysextd store: %s: %s", dbpath,
                    s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 2000);
    if ((rc = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")) < 0 ||
        (rc = exec(s, "CREATE TABLE IF NOT EXISTS extensions ("
                      " uuid TEXT PRIMARY KEY, identifier TEXT NOT NULL, team_id TEXT NOT NULL,"
                      " version TEXT NOT NULL, short_version TEXT NOT NULL, category TEXT NOT NULL,"
                      " name TEXT NOT NULL, state TEXT NOT NULL, origin_path TEXT NOT NULL,"
                      " staged_path TEXT NOT NULL, app_path TEXT NOT NULL, app_id TEXT NOT NULL,"
                      " app_team TEXT NOT NULL, app_cdhash TEXT NOT NULL, cdhash TEXT NOT NULL,"
                      " created INTEGER NOT NULL);"
                      "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT);")) <
            0)
        goto fail;
    *out = s;
    return 0;
fail:
    sxd_store_close(s);
    return rc;
}

void sxd_store_close(sxd_store *s)
{
    if (!s)
        return;
    if (s->db)
        sqlite3_close(s->db);
    free(s->state_dir);
    free(s->ext_dir);
    free(s);
}

const char *sxd_store_dir(const sxd_store *s)
{
    return s->ext_dir;
}

static void new_uuid(char out[37])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n <= 0) {
            /* Not reachable on Linux >= 3.17; fall back to something unique enough. */
            uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)got;
            for (; got < sizeof(b); got++)
                b[got] = (uint8_t)(t >> (8 * (got % 8)));
            break;
        }
        got += (size_t)n;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static bool uuid_ok(const char *u)
{
    if (strlen(u) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char c = u[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

int sxd_store_stage(sxd_store *s, const char *src, sxd_record *rec)
{
    return sxd_store_stage_in(s->ext_dir, src, rec);
}

int sxd_store_stage_in(const char *ext_dir, const char *src, sxd_record *rec)
{
    new_uuid(rec->uuid);
    _sx_cleanup_free_ char *dir = sx_path_join(ext_dir, rec->uuid);
    char *dst = dir ? sx_path_join(dir, sx_path_basename(src)) : NULL;
    if (!dst)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc;
    if (mkdir(dir, 0700) < 0) {
        rc = sx_err_errno(sx_errno_code(errno), errno, "sysextd store: mkdir %s", dir);
        free(dst);
        return rc;
    }
    sxd_crashpoint("stage: folder made");
    if ((rc = sx_copy_tree(src, dst)) < 0)
        goto fail;
    sxd_crashpoint("stage: copied");
    if ((rc = sx_fsync_tree(dst)) < 0 || (rc = sx_fsync_dir(dir)) < 0 ||
        (rc = sx_fsync_dir(ext_dir)) < 0)
        goto fail;
    sxd_crashpoint("stage: fsynced");
    free(rec->staged_path);
    rec->staged_path = dst;
    return 0;
fail:
    free(dst);
    sx_rm_rf(dir);
    return rc;
}

int sxd_store_unstage(sxd_store *s, const char *uuid)
{
    if (!uuid_ok(uuid))
        return sx_err(SYSEXT_EINVAL, "sysextd store: bad uuid '%s'", uuid);
    _sx_cleanup_free_ char *dir = sx_path_join(s->ext_dir, uuid);
    if (!dir)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = sx_rm_rf(dir);
    if (rc < 0)
        return rc;
    sxd_crashpoint("unstage: removed");
    return sx_fsync_dir(s->ext_dir);
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

int sxd_store_insert(sxd_store *s, const sxd_record *r)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "INSERT INTO extensions (uuid, identifier, team_id, version, short_version,"
                      " category, name, state, origin_path, staged_path, app_path, app_id,"
                      " app_team, app_cdhash, cdhash, created)"
                      " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(s, SQLITE_ERROR, "insert");
    const char *v[] = {r->uuid,        r->identifier, r->team_id,     r->version,
                       r->short_version, r->category, r->name,        r->state,
                       r->origin_path, r->staged_path, r->app_path,   r->app_id,
                       r->app_team,    r->app_cdhash, r->cdhash};
    for (int i = 0; i < (int)SX_ARRAY_SIZE(v); i++)
        bind_text(st, i + 1, v[i]);
    sqlite3_bind_int64(st, 16, r->created ? r->created : (int64_t)time(NULL));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_err(s, rc, "insert");
    sxd_crashpoint("insert: committed");
    return 0;
}

static int exec_bind(sxd_store *s, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(s, SQLITE_ERROR, sql);
    if (a)
        bind_text(st, 1, a);
    if (b)
        bind_text(st, 2, b);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_err(s, rc, sql);
    return 0;
}

int sxd_store_set_state(sxd_store *s, const char *uuid, const char *state)
{
    int rc = exec_bind(s, "UPDATE extensions SET state = ?1 WHERE uuid = ?2", state, uuid);
    if (rc == 0)
        sxd_crashpoint("state: committed");
    return rc;
}

int sxd_store_delete(sxd_store *s, const char *uuid)
{
    int rc = exec_bind(s, "DELETE FROM extensions WHERE uuid = ?1", uuid, NULL);
    if (rc == 0)
        sxd_crashpoint("delete: committed");
    return rc;
}

int sxd_store_replace(sxd_store *s, const char *old_uuid, const char *new_uuid,
                      const char *new_state)
{
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    if ((rc = exec_bind(s, "UPDATE extensions SET state = ?1 WHERE uuid = ?2", SXD_ST_TERM_UPGRADE,
                        old_uuid)) < 0 ||
        (rc = exec_bind(s, "UPDATE extensions SET state = ?1 WHERE uuid = ?2", new_state,
                        new_uuid)) < 0) {
        exec(s, "ROLLBACK");
        return rc;
    }
    if ((rc = exec(s, "COMMIT")) < 0) {
        exec(s, "ROLLBACK");
        return rc;
    }
    sxd_crashpoint("replace: committed");
    return 0;
}

int sxd_store_update_owner(sxd_store *s, const char *app_path, const char *cdhash)
{
    return exec_bind(s, "UPDATE extensions SET app_cdhash = ?1 WHERE app_path = ?2", cdhash,
                     app_path);
}

static char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

static int row_to_record(sqlite3_stmt *st, sxd_record *r)
{
    memset(r, 0, sizeof(*r));
    const unsigned char *u = sqlite3_column_text(st, 0);
    snprintf(r->uuid, sizeof(r->uuid), "%s", u ? (const char *)u : "");
    char **f[] = {&r->identifier, &r->team_id,   &r->version,    &r->short_version,
                  &r->category,   &r->name,      &r->state,      &r->origin_path,
                  &r->staged_path, &r->app_path, &r->app_id,     &r->app_team,
                  &r->app_cdhash, &r->cdhash};
    for (int i = 0; i < (int)SX_ARRAY_SIZE(f); i++)
        if (!(*f[i] = col(st, i + 1))) {
            sxd_record_clear(r);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
    r->created = sqlite3_column_int64(st, 15);
    return 0;
}

void sxd_record_clear(sxd_record *r)
{
    if (!r)
        return;
    char **f[] = {&r->identifier, &r->team_id,   &r->version,    &r->short_version,
                  &r->category,   &r->name,      &r->state,      &r->origin_path,
                  &r->staged_path, &r->app_path, &r->app_id,     &r->app_team,
                  &r->app_cdhash, &r->cdhash};
    for (size_t i = 0; i < SX_ARRAY_SIZE(f); i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
}

void sxd_records_free(sxd_record *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        sxd_record_clear(&v[i]);
    free(v);
}

int sxd_record_copy(const sxd_record *src, sxd_record *dst)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->uuid, src->uuid, sizeof(dst->uuid));
    dst->created = src->created;
    const char *s[] = {src->identifier, src->team_id,   src->version,    src->short_version,
                       src->category,   src->name,      src->state,      src->origin_path,
                       src->staged_path, src->app_path, src->app_id,     src->app_team,
                       src->app_cdhash, src->cdhash};
    char **d[] = {&dst->identifier, &dst->team_id,   &dst->version,    &dst->short_version,
                  &dst->category,   &dst->name,      &dst->state,      &dst->origin_path,
                  &dst->staged_path, &dst->app_path, &dst->app_id,     &dst->app_team,
                  &dst->app_cdhash, &dst->cdhash};
    for (size_t i = 0; i < SX_ARRAY_SIZE(d); i++)
        if (s[i] && !(*d[i] = strdup(s[i]))) {
            sxd_record_clear(dst);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
    return 0;
}

int sxd_store_list(sxd_store *s, const char *identifier, sxd_record **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s FROM extensions%s ORDER BY created, rowid", COLS,
             identifier ? " WHERE identifier = ?1" : "");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(s, SQLITE_ERROR, "list");
    if (identifier)
        bind_text(st, 1, identifier);
    sxd_record *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 8, bytes;
            if (SX_MUL_OVERFLOW(ncap, sizeof(*v), &bytes)) {
                rc = sx_err(SYSEXT_ELIMIT, "sysextd store: too many records");
                break;
            }
            sxd_record *nv = realloc(v, bytes);
            if (!nv) {
                rc = sx_err(SYSEXT_ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((rc = row_to_record(st, &v[cnt])) < 0)
            break;
        cnt++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_err(s, step, "list");
    sqlite3_finalize(st);
    if (rc < 0) {
        sxd_records_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int sxd_store_get(sxd_store *s, const char *uuid, sxd_record *out)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s FROM extensions WHERE uuid = ?1", COLS);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_err(s, SQLITE_ERROR, "get");
    bind_text(st, 1, uuid);
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW)
        rc = row_to_record(st, out);
    else if (step == SQLITE_DONE)
        rc = sx_err(SYSEXT_ENOTFOUND, "sysextd store: no record %s", uuid);
    else
        rc = db_err(s, step, "get");
    sqlite3_finalize(st);
    return rc;
}

int sxd_store_get_setting(sxd_store *s, const char *key, char **val)
{
    *val = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM settings WHERE key = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return db_err(s, SQLITE_ERROR, "setting");
    bind_text(st, 1, key);
    int step = sqlite3_step(st), rc = 0;
    if (step == SQLITE_ROW) {
        if (!(*val = col(st, 0)))
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
    } else if (step != SQLITE_DONE) {
        rc = db_err(s, step, "setting");
    }
    sqlite3_finalize(st);
    return rc;
}

int sxd_store_set_setting(sxd_store *s, const char *key, const char *val)
{
    return exec_bind(s, "INSERT INTO settings (key, value) VALUES (?1, ?2)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     key, val);
}

static bool is_state(const char *st, const char *prefix)
{
    return strncmp(st, prefix, strlen(prefix)) == 0;
}

int sxd_store_reconcile(sxd_store *s, unsigned *changed)
{
    unsigned fixes = 0;
    sxd_record *v = NULL;
    size_t n = 0;
    int rc = sxd_store_list(s, NULL, &v, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        sxd_record *r = &v[i];
        bool gone = is_state(r->state, "validating") || is_state(r->state, "terminat") ||
                    is_state(r->state, "uninstall");
        if (!gone && !sx_path_exists(r->staged_path)) {
            /* A committed row always had a complete copy; someone removed it under us. */
            gone = true;
        }
        if (gone) {
            if ((rc = sxd_store_unstage(s, r->uuid)) == 0)
                rc = sxd_store_delete(s, r->uuid);
            fixes++;
        } else if (!strcmp(r->state, SXD_ST_ENABLING)) {
            rc = sxd_store_set_state(s, r->uuid, SXD_ST_ENABLED);
            fixes++;
        }
    }
    if (rc < 0)
        goto out;
    /* Folders without a row: half-staged copies. */
    DIR *d = opendir(s->ext_dir);
    if (!d) {
        rc = sx_err_errno(SYSEXT_EIO, errno, "sysextd store: %s", s->ext_dir);
        goto out;
    }
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            if (!strcmp(v[i].uuid, e->d_name) && !(is_state(v[i].state, "validating") ||
                                                  is_state(v[i].state, "terminat") ||
                                                  is_state(v[i].state, "uninstall")))
                known = true;
        if (known)
            continue;
        _sx_cleanup_free_ char *p = sx_path_join(s->ext_dir, e->d_name);
        if (!p) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        rc = sx_rm_rf(p);
        fixes++;
    }
    closedir(d);
    if (rc == 0)
        rc = sx_fsync_dir(s->ext_dir);
out:
    sxd_records_free(v, n);
    if (changed)
        *changed = fixes;
    return rc;
}
