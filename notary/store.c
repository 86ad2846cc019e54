/* The notary's embedded store (notary/store.h). */
#include "util/common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codesign/identity.h"
#include "notary/store.h"
#include "util/fs.h"
#include "util/hex.h"

struct sx_store {
    char *dir;
    sqlite3 *db;
    pthread_mutex_t lock;
    EVP_PKEY *key;
    X509 *cert;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS keys(id INTEGER PRIMARY KEY, team TEXT NOT NULL,"
    " key_sha256 BLOB NOT NULL UNIQUE, admin INTEGER NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS submissions(id TEXT PRIMARY KEY, team TEXT NOT NULL,"
    " name TEXT NOT NULL, sha256 BLOB NOT NULL, status TEXT NOT NULL, uploaded INTEGER NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, log TEXT);"
    "CREATE INDEX IF NOT EXISTS submissions_team ON submissions(team, created);"
    "CREATE TABLE IF NOT EXISTS tickets(cdhash BLOB NOT NULL, hash_type INTEGER NOT NULL,"
    " submission TEXT NOT NULL, ticket BLOB NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    " revoked_at INTEGER, PRIMARY KEY(cdhash, hash_type));";

static int db_err(sqlite3 *db, const char *what)
{
    return sx_err(SYSEXT_EIO, "notary store: %s: %s", what, db ? sqlite3_errmsg(db) : "no database");
}

static char *join(const sx_store *s, const char *rel)
{
    return sx_path_join(s->dir, rel);
}

const char *sx_store_dir(const sx_store *s)
{
    return s->dir;
}

static int make_identity(const char *dir)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int rc = 0;
    _sx_cleanup_free_ char *kp = sx_path_join(dir, SX_STORE_KEY);
    _sx_cleanup_free_ char *cp = sx_path_join(dir, SX_STORE_CERT);
    BIO *kb = NULL, *cb = NULL;
    if (!k || !x || !kp || !cp) {
        rc = sx_ossl_err(SYSEXT_ENOMEM, "notary store: cannot create the notary key");
        goto out;
    }
    uint64_t serial;
    RAND_bytes((unsigned char *)&serial, sizeof serial);
    X509_set_version(x, 2);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 20L * 365 * 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"sysext notary", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"sysext", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (X509_sign(x, k, EVP_sha256()) <= 0) {
        rc = sx_ossl_err(SYSEXT_ERROR, "notary store: cannot sign the notary certificate");
        goto out;
    }
    kb = BIO_new(BIO_s_mem());
    cb = BIO_new(BIO_s_mem());
    if (!kb || !cb || PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(cb, x) != 1) {
        rc = sx_ossl_err(SYSEXT_ENOMEM, "notary store: cannot encode the notary key");
        goto out;
    }
    char *p;
    long len = BIO_get_mem_data(kb, &p);
    if ((rc = sx_write_file_atomic(kp, p, (size_t)len, 0600)) < 0)
        goto out;
    len = BIO_get_mem_data(cb, &p);
    rc = sx_write_file_atomic(cp, p, (size_t)len, 0644);
out:
    BIO_free(kb);
    BIO_free(cb);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int sx_store_init(const char *dir)
{
    SX_ASSERT_ARG(dir);
    int rc = sx_mkdir_p(dir, 0700);
    if (rc < 0)
        return rc;
    _sx_cleanup_free_ char *db = sx_path_join(dir, SX_STORE_DB);
    _sx_cleanup_free_ char *blobs = sx_path_join(dir, "blobs");
    _sx_cleanup_free_ char *tmp = sx_path_join(dir, "tmp");
    if (!db || !blobs || !tmp)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (sx_path_exists(db))
        return sx_err(SYSEXT_EEXISTS, "%s: a notary store already exists here", dir);
    if ((rc = sx_mkdir_p(blobs, 0700)) < 0 || (rc = sx_mkdir_p(tmp, 0700)) < 0 ||
        (rc = make_identity(dir)) < 0)
        return rc;
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
        sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)
        rc = db_err(h, db);
    sqlite3_close(h);
    return rc;
}

int sx_store_open(const char *dir, sx_store **out)
{
    SX_ASSERT_ARG(dir && out);
    *out = NULL;
    sx_store *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    int rc = 0;
    _sx_cleanup_free_ char *db = join(s, SX_STORE_DB);
    _sx_cleanup_free_ char *kp = join(s, SX_STORE_KEY);
    _sx_cleanup_free_ char *cp = join(s, SX_STORE_CERT);
    if (!db || !kp || !cp) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if (!sx_path_exists(db)) {
        rc = sx_err(SYSEXT_ENOTFOUND, "%s: no notary store (run 'sysext-notaryd init --store %s')",
                    dir, dir);
        goto out;
    }
    if (sqlite3_open_v2(db, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 10000) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_err(s->db, db);
        goto out;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if ((rc = sx_read_file(kp, 1 << 16, &data, &len)) < 0)
        goto out;
    BIO *b = BIO_new_mem_buf(data, (int)len);
    s->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    free(data);
    if (!s->key) {
        rc = sx_ossl_err(SYSEXT_EFORMAT, "%s: not a PEM private key", kp);
        goto out;
    }
    if ((rc = sx_ticket_load_cert(cp, &s->cert)) < 0)
        goto out;
out:
    if (rc < 0) {
        sx_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sx_store_close(sx_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    EVP_PKEY_free(s->key);
    X509_free(s->cert);
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}

/* One connection is shared by the HTTP and worker threads: every statement runs under the
 * (recursive) store lock, from prep() to fin(), and a transaction holds it throughout, so no
 * other thread's statement can slip into it. */
static int prep(sx_store *s, const char *sql, sqlite3_stmt **st)
{
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        int rc = db_err(s->db, "prepare");
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    return 0;
}

static void fin(sx_store *s, sqlite3_stmt *st)
{
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
}

int sx_store_key_create(sx_store *s, const char *team, bool admin, char hex_out[65])
{
    SX_ASSERT_ARG(s && team && hex_out);
    if (!sx_team_id_valid(team))
        return sx_err(SYSEXT_EINVAL, "team ID '%s': expected 10 of [A-Z0-9]", team);
    uint8_t key[SX_NOTARY_KEY_LEN], h[32];
    if (RAND_bytes(key, sizeof key) != 1)
        return sx_ossl_err(SYSEXT_ERROR, "no randomness for a new key");
    SHA256(key, sizeof key, h);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "INSERT INTO keys(team, key_sha256, admin, created) VALUES(?,?,?,?)", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, team, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, admin);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s->db, "key create");
    fin(s, st);
    if (rc == 0)
        sx_hex_encode(key, sizeof key, hex_out);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int sx_store_key_lookup(sx_store *s, const uint8_t key[SX_NOTARY_KEY_LEN], char **team, bool *admin)
{
    SX_ASSERT_ARG(s && key && team && admin);
    *team = NULL;
    uint8_t h[32];
    SHA256(key, SX_NOTARY_KEY_LEN, h);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT team, admin FROM keys WHERE key_sha256 = ?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *team = strdup((const char *)sqlite3_column_text(st, 0));
        *admin = sqlite3_column_int(st, 1) != 0;
        rc = *team ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
    } else if (r == SQLITE_DONE) {
        rc = sx_err(SYSEXT_EPERM, "unknown API key");
    } else {
        rc = db_err(s->db, "key lookup");
    }
    fin(s, st);
    return rc;
}

static void new_uuid(char out[SX_NOTARY_ID_LEN + 1])
{
    uint8_t b[16];
    RAND_bytes(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    sx_hex_encode(b, sizeof b, hex);
    snprintf(out, SX_NOTARY_ID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

static sx_notary_status status_of(const char *s)
{
    if (!strcmp(s, "Accepted"))
        return SX_NOTARY_ACCEPTED;
    if (!strcmp(s, "Invalid"))
        return SX_NOTARY_INVALID;
    if (!strcmp(s, "Rejected"))
        return SX_NOTARY_REJECTED;
    return SX_NOTARY_IN_PROGRESS;
}

int sx_store_submission_create(sx_store *s, const char *team, const sx_notary_create_req *req,
                               char id[SX_NOTARY_ID_LEN + 1])
{
    SX_ASSERT_ARG(s && team && req && id);
    new_uuid(id);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "INSERT INTO submissions(id, team, name, sha256, status, uploaded, created, "
                     "updated) VALUES(?,?,?,?,'In Progress',0,?,?)", &st);
    if (rc < 0)
        return rc;
    sqlite3_int64 now = (sqlite3_int64)time(NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, team, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, req->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, req->sha256, sizeof req->sha256, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s->db, "submission create");
    fin(s, st);
    return rc;
}

void sx_submission_free(sx_submission *sub)
{
    if (!sub)
        return;
    free(sub->team);
    free(sub->name);
    free(sub->log_json);
    memset(sub, 0, sizeof *sub);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

int sx_store_submission_get(sx_store *s, const char *id, const char *team, sx_submission *out)
{
    SX_ASSERT_ARG(s && id && out);
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT team, name, sha256, status, uploaded, created, updated, log FROM "
                     "submissions WHERE id = ?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW && (!team || !strcmp((const char *)sqlite3_column_text(st, 0), team))) {
        snprintf(out->id, sizeof out->id, "%s", id);
        out->team = col_dup(st, 0);
        out->name = col_dup(st, 1);
        if (sqlite3_column_bytes(st, 2) == 32)
            memcpy(out->sha256, sqlite3_column_blob(st, 2), 32);
        out->status = status_of((const char *)sqlite3_column_text(st, 3));
        out->uploaded = sqlite3_column_int(st, 4) != 0;
        out->created = sqlite3_column_int64(st, 5);
        out->updated = sqlite3_column_int64(st, 6);
        out->log_json = col_dup(st, 7);
        if (!out->team || !out->name)
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
    } else if (r == SQLITE_ROW || r == SQLITE_DONE) {
        rc = sx_err(SYSEXT_ENOTFOUND, "submission %s: not found", id);
    } else {
        rc = db_err(s->db, "submission get");
    }
    fin(s, st);
    if (rc < 0)
        sx_submission_free(out);
    return rc;
}

int sx_store_submission_list(sx_store *s, const char *team, char **json_out)
{
    SX_ASSERT_ARG(s && team && json_out);
    *json_out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT id, name, status, created FROM submissions WHERE team = ? "
                     "ORDER BY created DESC, rowid DESC", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, team, -1, SQLITE_TRANSIENT);
    json_object *a = json_object_new_array();
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string((const char *)sqlite3_column_text(st, 0)));
        json_object_object_add(o, "name", json_object_new_string((const char *)sqlite3_column_text(st, 1)));
        json_object_object_add(o, "status", json_object_new_string((const char *)sqlite3_column_text(st, 2)));
        json_object_object_add(o, "createdDate", json_object_new_int64(sqlite3_column_int64(st, 3)));
        json_object_array_add(a, o);
    }
    if (r != SQLITE_DONE)
        rc = db_err(s->db, "submission list");
    else if (!(*json_out = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN))))
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
    json_object_put(a);
    fin(s, st);
    return rc;
}

char *sx_store_upload_tmp(sx_store *s, const char *id)
{
    char rel[128];
    uint8_t r[8];
    char hex[17];
    RAND_bytes(r, sizeof r);
    sx_hex_encode(r, sizeof r, hex);
    snprintf(rel, sizeof rel, "tmp/%s.%s.part", id, hex);
    return join(s, rel);
}

static char *blob_path(sx_store *s, const char *id)
{
    char rel[128];
    snprintf(rel, sizeof rel, "blobs/%s.zip", id);
    return join(s, rel);
}

static int file_sha256(const char *path, uint8_t out[32])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rc = 0;
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        rc = sx_ossl_err(SYSEXT_ENOMEM, "sha256");
        goto out;
    }
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(c, buf, n);
    if (ferror(f))
        rc = sx_err(SYSEXT_EIO, "%s: read error", path);
    else
        EVP_DigestFinal_ex(c, out, NULL);
out:
    EVP_MD_CTX_free(c);
    fclose(f);
    return rc;
}

int sx_store_upload_commit(sx_store *s, const char *id, const char *tmp_path)
{
    SX_ASSERT_ARG(s && id && tmp_path);
    sx_submission sub;
    int rc = sx_store_submission_get(s, id, NULL, &sub);
    if (rc < 0) {
        unlink(tmp_path);
        return rc;
    }
    uint8_t h[32];
    _sx_cleanup_free_ char *dst = blob_path(s, id);
    _sx_cleanup_free_ char *blobs = join(s, "blobs");
    if (sub.uploaded) {
        rc = sx_err(SYSEXT_EEXISTS, "submission %s: already uploaded", id);
    } else if ((rc = file_sha256(tmp_path, h)) == 0 && memcmp(h, sub.sha256, 32) != 0) {
        rc = sx_err(SYSEXT_EINVALID, "submission %s: the upload's SHA-256 differs from the one "
                    "announced", id);
    } else if (rc == 0 && (!dst || !blobs)) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
    } else if (rc == 0) {
        /* fsync the data, rename into place, then record it: a crash before the row update
         * leaves an unreferenced blob that the next upload of the same id overwrites. */
        int fd = open(tmp_path, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        if (rename(tmp_path, dst) < 0) {
            rc = sx_err_errno(SYSEXT_EIO, errno, "%s", dst);
        } else {
            sx_fsync_dir(blobs);
            sqlite3_stmt *st = NULL;
            if ((rc = prep(s, "UPDATE submissions SET uploaded = 1, updated = ? WHERE id = ? AND "
                              "uploaded = 0", &st)) == 0) {
                sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
                sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) != SQLITE_DONE)
                    rc = db_err(s->db, "upload commit");
                else if (sqlite3_changes(s->db) != 1)
                    rc = sx_err(SYSEXT_EEXISTS, "submission %s: already uploaded", id);
                fin(s, st);
            }
        }
    }
    if (rc < 0)
        unlink(tmp_path);
    sx_submission_free(&sub);
    return rc;
}

int sx_store_pending(sx_store *s, char ***ids, size_t *n)
{
    SX_ASSERT_ARG(s && ids && n);
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT id FROM submissions WHERE uploaded = 1 AND status = 'In Progress' "
                     "ORDER BY created", &st);
    if (rc < 0)
        return rc;
    int r;
    while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
        char **v = realloc(*ids, (*n + 1) * sizeof *v);
        if (!v || !(v[*n] = col_dup(st, 0))) {
            if (v)
                *ids = v;
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        *ids = v;
        (*n)++;
    }
    fin(s, st);
    return rc;
}

static int exec(sx_store *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_err(s->db, sql);
}

int sx_store_process(sx_store *s, const char *id, const sx_notary_check_opts *o)
{
    SX_ASSERT_ARG(s && id && o);
    sx_submission sub;
    int rc = sx_store_submission_get(s, id, NULL, &sub);
    if (rc < 0)
        return rc;
    if (!sub.uploaded || sub.status != SX_NOTARY_IN_PROGRESS) {
        sx_submission_free(&sub);
        return sx_err(SYSEXT_EINVAL, "submission %s: nothing to process", id);
    }
    _sx_cleanup_free_ char *zip = blob_path(s, id);
    _sx_cleanup_free_ char *scratch = join(s, "tmp");
    sx_notary_check_opts co = *o;
    co.team_id = sub.team;
    co.scratch_dir = scratch;
    sx_notary_result r;
    memset(&r, 0, sizeof r);
    sx_buf ticket = SX_BUF_INIT;
    json_object *log = NULL;
    if (!zip || !scratch) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = sx_notary_check_zip(zip, &co, &r)) < 0)
        goto out;
    if (r.status == SX_NOTARY_ACCEPTED) {
        sx_ticket_content tc = {.team_id = sub.team,
                                .bundle_ids = (const char *const *)r.bundle_ids,
                                .n_bundle_ids = r.n_bundle_ids,
                                .entries = r.entries,
                                .n_entries = r.n_entries};
        if ((rc = sx_ticket_build(&tc, s->key, s->cert, &ticket)) < 0)
            goto out;
    }
    log = sx_notary_log_json(&r, id, sub.name, sub.team);
    pthread_mutex_lock(&s->lock);
    if ((rc = exec(s, "BEGIN IMMEDIATE")) == 0) {
        sqlite3_stmt *st = NULL;
        if ((rc = prep(s, "UPDATE submissions SET status = ?, log = ?, updated = ? WHERE id = ?",
                       &st)) == 0) {
            sqlite3_bind_text(st, 1, sx_notary_status_name(r.status), -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, json_object_to_json_string_ext(log, JSON_C_TO_STRING_PLAIN), -1,
                              SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
            sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = db_err(s->db, "process");
            fin(s, st);
        }
        for (size_t i = 0; rc == 0 && r.status == SX_NOTARY_ACCEPTED && i < r.n_entries; i++) {
            st = NULL;
            if ((rc = prep(s, "INSERT OR REPLACE INTO tickets(cdhash, hash_type, submission, ticket, "
                              "revoked) VALUES(?,?,?,?,0)", &st)) < 0)
                break;
            sqlite3_bind_blob(st, 1, r.entries[i].cdhash, SX_CDHASH_LEN, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, 2, r.entries[i].hash_type);
            sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_blob(st, 4, ticket.data, (int)ticket.len, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = db_err(s->db, "ticket insert");
            fin(s, st);
        }
        if (rc == 0)
            rc = exec(s, "COMMIT");
        else
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&s->lock);
out:
    json_object_put(log);
    sx_buf_free(&ticket);
    sx_notary_result_free(&r);
    sx_submission_free(&sub);
    return rc;
}

int sx_store_ticket_get(sx_store *s, const uint8_t cdhash[SX_CDHASH_LEN], uint8_t **ticket,
                        size_t *len, bool *revoked)
{
    SX_ASSERT_ARG(s && cdhash && ticket && len && revoked);
    *ticket = NULL;
    *len = 0;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT ticket, revoked FROM tickets WHERE cdhash = ? ORDER BY revoked DESC "
                     "LIMIT 1", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_blob(st, 1, cdhash, SX_CDHASH_LEN, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        *ticket = malloc(n > 0 ? (size_t)n : 1);
        if (!*ticket) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        } else {
            if (n > 0)
                memcpy(*ticket, sqlite3_column_blob(st, 0), (size_t)n);
            *len = (size_t)n;
            *revoked = sqlite3_column_int(st, 1) != 0;
        }
    } else if (r == SQLITE_DONE) {
        char hex[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(cdhash, SX_CDHASH_LEN, hex);
        rc = sx_err(SYSEXT_ENOTFOUND, "no ticket for cdhash %s", hex);
    } else {
        rc = db_err(s->db, "ticket get");
    }
    fin(s, st);
    return rc;
}

int sx_store_ticket_revoke(sx_store *s, const uint8_t cdhash[SX_CDHASH_LEN])
{
    SX_ASSERT_ARG(s && cdhash);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "UPDATE tickets SET revoked = 1, revoked_at = ? WHERE cdhash = ?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
    sqlite3_bind_blob(st, 2, cdhash, SX_CDHASH_LEN, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(s->db, "ticket revoke");
    else if (sqlite3_changes(s->db) == 0) {
        char hex[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(cdhash, SX_CDHASH_LEN, hex);
        rc = sx_err(SYSEXT_ENOTFOUND, "no ticket for cdhash %s", hex);
    }
    fin(s, st);
    return rc;
}
