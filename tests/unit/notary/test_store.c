/* The notary store and the worker's processing, end to end without HTTP: keys (hashed, per
 * team), submissions (team isolation), uploads (digest checked, temp file renamed only when
 * complete), processing (accepted -> one ticket covering every cdhash), stapling + assess,
 * revocation, restart keeps everything, 20 submissions processed concurrently. */
#include <criterion/criterion.h>

#include "util/common.h"

#include <openssl/sha.h>
#include <pthread.h>

#include "codesign/ticket.h"
#include "notary/store.h"
#include "tests/support/signfixture.h"
#include "sysext/archive.h"
#include "sysext/notary.h"
#include "util/fs.h"

static void setup(void)
{
    sx_fx_setup();
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12"); /* team TEAMAAAAAA */
    cr_assert_eq(sysext_pack(sx_fx_path("Host.app"), sx_fx_path("host.zip"), 0), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_store_init(sx_fx_path("store")), 0, "%s", sx_errmsg());
}

TestSuite(store, .init = setup, .fini = sx_fx_teardown);

static sx_store *open_store(void)
{
    sx_store *s;
    cr_assert_eq(sx_store_open(sx_fx_path("store"), &s), 0, "%s", sx_errmsg());
    return s;
}

static void upload(sx_store *s, const char *team, const char *zip_rel, char id[SX_NOTARY_ID_LEN + 1])
{
    sx_notary_create_req req = {.name = "host.zip"};
    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_read_file(sx_fx_path(zip_rel), 1 << 26, &d, &n), 0);
    SHA256(d, n, req.sha256);
    cr_assert_eq(sx_store_submission_create(s, team, &req, id), 0, "%s", sx_errmsg());
    char *tmp = sx_store_upload_tmp(s, id);
    cr_assert_eq(sx_write_file_atomic(tmp, d, n, 0600), 0);
    cr_assert_eq(sx_store_upload_commit(s, id, tmp), 0, "%s", sx_errmsg());
    cr_assert_not(sx_path_exists(tmp));
    free(tmp);
    free(d);
}

static char trust_path[1024];
static const char *trust_roots[1] = {trust_path};

static void process(sx_store *s, const char *id)
{
    snprintf(trust_path, sizeof trust_path, "%s", sx_fx_path("ca/root.cert.pem"));
    sx_notary_check_opts o = {.trust = trust_roots, .n_trust = 1};
    cr_assert_eq(sx_store_process(s, id, &o), 0, "%s", sx_errmsg());
}

Test(store, init_refuses_existing_and_keys_are_hashed)
{
    cr_assert_eq(sx_store_init(sx_fx_path("store")), SYSEXT_EEXISTS);
    sx_store *s = open_store();
    char hex[65];
    cr_assert_eq(sx_store_key_create(s, "bad", false, hex), SYSEXT_EINVAL);
    cr_assert_eq(sx_store_key_create(s, "TEAMAAAAAA", true, hex), 0, "%s", sx_errmsg());
    cr_assert_eq(strlen(hex), 64);
    uint8_t key[SX_NOTARY_KEY_LEN];
    char hdr[80];
    snprintf(hdr, sizeof hdr, "Bearer %s", hex);
    cr_assert_eq(sx_notary_parse_bearer(hdr, key), 0);
    char *team;
    bool admin;
    cr_assert_eq(sx_store_key_lookup(s, key, &team, &admin), 0, "%s", sx_errmsg());
    cr_assert_str_eq(team, "TEAMAAAAAA");
    cr_assert(admin);
    free(team);
    key[0] ^= 1;
    cr_assert_eq(sx_store_key_lookup(s, key, &team, &admin), SYSEXT_EPERM);
    sx_store_close(s);
    /* The raw key appears nowhere in the database file. */
    uint8_t *db;
    size_t n;
    cr_assert_eq(sx_read_file(sx_fx_path("store/notary.db"), 1 << 24, &db, &n), 0);
    key[0] ^= 1;
    cr_assert_null(memmem(db, n, key, sizeof key));
    free(db);
    cr_assert(sx_path_exists(sx_fx_path("store/notary.pem")));
}

Test(store, upload_digest_mismatch_leaves_nothing)
{
    sx_store *s = open_store();
    sx_notary_create_req req = {.name = "x.zip"};
    char id[SX_NOTARY_ID_LEN + 1];
    cr_assert_eq(sx_store_submission_create(s, "TEAMAAAAAA", &req, id), 0);
    char *tmp = sx_store_upload_tmp(s, id);
    cr_assert_eq(sx_write_file_atomic(tmp, "partial", 7, 0600), 0);
    cr_assert_eq(sx_store_upload_commit(s, id, tmp), SYSEXT_EINVALID);
    cr_assert_not(sx_path_exists(tmp));
    free(tmp);
    sx_submission sub;
    cr_assert_eq(sx_store_submission_get(s, id, "TEAMAAAAAA", &sub), 0);
    cr_assert_not(sub.uploaded);
    cr_assert_eq(sub.status, SX_NOTARY_IN_PROGRESS);
    sx_submission_free(&sub);
    /* Another team does not see it. */
    cr_assert_eq(sx_store_submission_get(s, id, "TEAMBBBBBB", &sub), SYSEXT_ENOTFOUND);
    char **ids;
    size_t n;
    cr_assert_eq(sx_store_pending(s, &ids, &n), 0);
    cr_assert_eq(n, 0);
    free(ids);
    sx_store_close(s);
}

Test(store, end_to_end_ticket_staple_assess_revoke_restart)
{
    sx_store *s = open_store();
    char id[SX_NOTARY_ID_LEN + 1];
    upload(s, "TEAMAAAAAA", "host.zip", id);
    char **ids;
    size_t n;
    cr_assert_eq(sx_store_pending(s, &ids, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0], id);
    free(ids[0]);
    free(ids);
    process(s, id);
    sx_submission sub;
    cr_assert_eq(sx_store_submission_get(s, id, "TEAMAAAAAA", &sub), 0);
    cr_assert_eq(sub.status, SX_NOTARY_ACCEPTED, "%s", sub.log_json);
    cr_assert(strstr(sub.log_json, "\"status\":\"Accepted\""), "%s", sub.log_json);
    sx_submission_free(&sub);

    sx_ticket_entry e;
    cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path("Host.app"), &e), 0);
    uint8_t *t;
    size_t tl;
    bool revoked;
    cr_assert_eq(sx_store_ticket_get(s, e.cdhash, &t, &tl, &revoked), 0, "%s", sx_errmsg());
    cr_assert_not(revoked);
    cr_assert_eq(sysext_staple_ticket(sx_fx_path("Host.app"), t, tl), 0, "%s", sx_errmsg());
    free(t);
    char *text;
    cr_assert_eq(sysext_staple_validate(sx_fx_path("Host.app"), sx_fx_path("store/notary.pem"), 0,
                                        &text), 0, "%s", sx_errmsg());
    free(text);
    const char *trust[] = {sx_fx_path("ca/root.cert.pem")};
    sysext_assess_options ao = SYSEXT_ASSESS_OPTIONS_INIT;
    ao.trust = trust;
    ao.n_trust = 1;
    char nc[1024];
    snprintf(nc, sizeof nc, "%s", sx_fx_path("store/notary.pem"));
    ao.notary_cert = nc;
    cr_assert_eq(sysext_assess(sx_fx_path("Host.app"), &ao, &text), 0, "%s", sx_errmsg());
    free(text);
    /* The embedded dext is covered by the same ticket. */
    cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path("Host.app/Contents/Library/SystemExtensions/"
                                                  "com.example.sensor.dext"), &e), 0);
    cr_assert_eq(sx_store_ticket_get(s, e.cdhash, &t, &tl, &revoked), 0, "%s", sx_errmsg());
    free(t);

    /* Revoke, restart: the state survives. */
    cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path("Host.app"), &e), 0);
    cr_assert_eq(sx_store_ticket_revoke(s, e.cdhash), 0, "%s", sx_errmsg());
    uint8_t unknown[SX_CDHASH_LEN] = {0};
    cr_assert_eq(sx_store_ticket_revoke(s, unknown), SYSEXT_ENOTFOUND);
    cr_assert_eq(sx_store_ticket_get(s, unknown, &t, &tl, &revoked), SYSEXT_ENOTFOUND);
    sx_store_close(s);
    s = open_store();
    cr_assert_eq(sx_store_ticket_get(s, e.cdhash, &t, &tl, &revoked), 0);
    cr_assert(revoked);
    free(t);
    cr_assert_eq(sx_store_submission_get(s, id, "TEAMAAAAAA", &sub), 0);
    cr_assert_eq(sub.status, SX_NOTARY_ACCEPTED);
    sx_submission_free(&sub);
    char *list;
    cr_assert_eq(sx_store_submission_list(s, "TEAMAAAAAA", &list), 0);
    cr_assert(strstr(list, id), "%s", list);
    free(list);
    cr_assert_eq(sx_store_submission_list(s, "TEAMBBBBBB", &list), 0);
    cr_assert_str_eq(list, "[]");
    free(list);
    sx_store_close(s);
}

Test(store, wrong_team_is_invalid_with_log)
{
    sx_store *s = open_store();
    char id[SX_NOTARY_ID_LEN + 1];
    upload(s, "TEAMBBBBBB", "host.zip", id);
    process(s, id);
    sx_submission sub;
    cr_assert_eq(sx_store_submission_get(s, id, "TEAMBBBBBB", &sub), 0);
    cr_assert_eq(sub.status, SX_NOTARY_INVALID);
    cr_assert(strstr(sub.log_json, "\"code\":\"team-mismatch\""), "%s", sub.log_json);
    cr_assert(strstr(sub.log_json, "\"path\":\"Host.app\""), "%s", sub.log_json);
    sx_submission_free(&sub);
    sx_ticket_entry e;
    cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path("Host.app"), &e), 0);
    uint8_t *t;
    size_t tl;
    bool revoked;
    cr_assert_eq(sx_store_ticket_get(s, e.cdhash, &t, &tl, &revoked), SYSEXT_ENOTFOUND);
    sx_store_close(s);
}

typedef struct job {
    sx_store *s;
    char id[SX_NOTARY_ID_LEN + 1];
    int rc;
} job;

static void *worker(void *p)
{
    job *j = p;
    sx_notary_check_opts o = {.trust = trust_roots, .n_trust = 1};
    j->rc = sx_store_process(j->s, j->id, &o);
    return NULL;
}

Test(store, twenty_concurrent_submissions)
{
    sx_store *s = open_store();
    snprintf(trust_path, sizeof trust_path, "%s", sx_fx_path("ca/root.cert.pem"));
    job jobs[20];
    pthread_t th[20];
    for (int i = 0; i < 20; i++) {
        jobs[i].s = s;
        upload(s, "TEAMAAAAAA", "host.zip", jobs[i].id);
    }
    for (int i = 0; i < 20; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    for (int i = 0; i < 20; i++)
        pthread_join(th[i], NULL);
    sx_store_close(s);
    s = open_store();
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(jobs[i].rc, 0, "job %d", i);
        sx_submission sub;
        cr_assert_eq(sx_store_submission_get(s, jobs[i].id, "TEAMAAAAAA", &sub), 0);
        cr_assert_eq(sub.status, SX_NOTARY_ACCEPTED, "job %d: %s", i, sub.log_json);
        sx_submission_free(&sub);
    }
    sx_store_close(s);
}
