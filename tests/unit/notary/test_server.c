/* The notary HTTP API on 127.0.0.1 (ephemeral port), driven with libcurl: create key, submit,
 * upload, wait, fetch the ticket, staple, validate, assess; auth and team isolation; admin-only
 * revocation; a restarted server keeps all state. */
#include <criterion/criterion.h>

#include "util/common.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <dirent.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <time.h>
#include <unistd.h>

#include "codesign/ticket.h"
#include "notary/http.h"
#include "tests/support/signfixture.h"
#include "sysext/archive.h"
#include "sysext/notary.h"
#include "util/fs.h"
#include "util/hex.h"

static sx_store *store;
static sx_notary_server *srv;
static char trust_path[1024];
static const char *trust[1] = {trust_path};
static char key_a[65], key_admin[65], key_b[65];

static void start(void)
{
    cr_assert_eq(sx_store_open(sx_fx_path("store"), &store), 0, "%s", sx_errmsg());
    sx_notary_server_opts o = {.listen = "127.0.0.1:0", .trust = trust, .n_trust = 1};
    cr_assert_eq(sx_notary_server_start(store, &o, &srv), 0, "%s", sx_errmsg());
    cr_assert_neq(sx_notary_server_port(srv), 0);
}

static void stop(void)
{
    sx_notary_server_stop(srv);
    sx_store_close(store);
    srv = NULL;
    store = NULL;
}

static void setup(void)
{
    sx_fx_setup();
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12");
    snprintf(trust_path, sizeof trust_path, "%s", sx_fx_path("ca/root.cert.pem"));
    cr_assert_eq(sysext_pack(sx_fx_path("Host.app"), sx_fx_path("host.zip"), 0), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_store_init(sx_fx_path("store")), 0, "%s", sx_errmsg());
    start();
    cr_assert_eq(sx_store_key_create(store, "TEAMAAAAAA", false, key_a), 0);
    cr_assert_eq(sx_store_key_create(store, "TEAMAAAAAA", true, key_admin), 0);
    cr_assert_eq(sx_store_key_create(store, "TEAMBBBBBB", false, key_b), 0);
}

static void teardown(void)
{
    stop();
    sx_fx_teardown();
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 120);

typedef struct resp {
    long status;
    sx_buf body;
    json_object *json;
} resp;

static size_t on_data(char *p, size_t sz, size_t n, void *u)
{
    resp *r = u;
    return sx_buf_append(&r->body, p, sz * n) < 0 ? 0 : sz * n;
}

/* One request; `upload` is a file to PUT, `body` a JSON body to POST. */
static resp call(const char *method, const char *path, const char *key, const char *body,
                 const char *upload)
{
    resp r = {0};
    sx_buf_init(&r.body, 1 << 20);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[512], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", sx_notary_server_port(srv), path);
    struct curl_slist *h = NULL;
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    FILE *f = NULL;
    if (upload) {
        f = fopen(upload, "rb");
        cr_assert_not_null(f);
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, f);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sz);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (f)
        fclose(f);
    r.json = json_tokener_parse(r.body.data ? (const char *)r.body.data : "");
    return r;
}

static void resp_free(resp *r)
{
    json_object_put(r->json);
    sx_buf_free(&r->body);
}

static const char *jstr(const resp *r, const char *k)
{
    json_object *v;
    return r->json && json_object_object_get_ex(r->json, k, &v) ? json_object_get_string(v) : "";
}

static void submit(const char *key, const char *zip_rel, char id[SX_NOTARY_ID_LEN + 1])
{
    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_read_file(sx_fx_path(zip_rel), 1 << 26, &d, &n), 0);
    uint8_t h[32];
    SHA256(d, n, h);
    free(d);
    char hex[65], body[256];
    sx_hex_encode(h, 32, hex);
    snprintf(body, sizeof body, "{\"submissionName\":\"host.zip\",\"sha256\":\"%s\"}", hex);
    resp r = call("POST", "/v1/submissions", key, body, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    snprintf(id, SX_NOTARY_ID_LEN + 1, "%s", jstr(&r, "id"));
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/submissions/%s/file", id);
    r = call("PUT", path, key, NULL, sx_fx_path(zip_rel));
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    resp_free(&r);
}

static void wait_done(const char *key, const char *id, const char *want)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/submissions/%s", id);
    for (int i = 0; i < 600; i++) {
        resp r = call("GET", path, key, NULL, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body.data);
        if (strcmp(jstr(&r, "status"), "In Progress")) {
            cr_assert_str_eq(jstr(&r, "status"), want);
            resp_free(&r);
            return;
        }
        resp_free(&r);
        usleep(50000);
    }
    cr_assert_fail("submission %s still In Progress", id);
}

Test(server, end_to_end_and_revocation)
{
    char id[SX_NOTARY_ID_LEN + 1];
    submit(key_a, "host.zip", id);
    wait_done(key_a, id, "Accepted");
    char path[160];
    snprintf(path, sizeof path, "/v1/submissions/%s/log", id);
    resp r = call("GET", path, key_a, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(&r, "status"), "Accepted");
    resp_free(&r);
    /* Another team sees nothing of it. */
    r = call("GET", path, key_b, NULL, NULL);
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    r = call("GET", "/v1/submissions", key_b, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_null(strstr((const char *)r.body.data, id));
    resp_free(&r);
    r = call("GET", "/v1/submissions", key_a, NULL, NULL);
    cr_assert(strstr((const char *)r.body.data, id));
    resp_free(&r);

    /* Fetch the ticket, staple, validate, assess. */
    sx_ticket_entry e;
    cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path("Host.app"), &e), 0);
    char hex[41];
    sx_hex_encode(e.cdhash, SX_CDHASH_LEN, hex);
    snprintf(path, sizeof path, "/v1/tickets/%s", hex);
    r = call("GET", path, key_a, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    cr_assert_str_eq(jstr(&r, "status"), "valid");
    const char *b64 = jstr(&r, "ticket");
    uint8_t *t = malloc(strlen(b64));
    int tl = EVP_DecodeBlock(t, (const unsigned char *)b64, (int)strlen(b64));
    cr_assert_gt(tl, 0);
    /* EVP_DecodeBlock counts the '=' padding as zero bytes. */
    size_t pad = strlen(b64) >= 2 ? (b64[strlen(b64) - 1] == '=') + (b64[strlen(b64) - 2] == '=') : 0;
    cr_assert_eq(sysext_staple_ticket(sx_fx_path("Host.app"), t, (size_t)tl - pad), 0, "%s", sx_errmsg());
    free(t);
    resp_free(&r);
    char *text;
    cr_assert_eq(sysext_staple_validate(sx_fx_path("Host.app"), sx_fx_path("store/notary.pem"), 0,
                                        &text), 0, "%s", sx_errmsg());
    free(text);
    const char *tr[] = {trust_path};
    sysext_assess_options ao = SYSEXT_ASSESS_OPTIONS_INIT;
    ao.trust = tr;
    ao.n_trust = 1;
    char nc[1024];
    snprintf(nc, sizeof nc, "%s", sx_fx_path("store/notary.pem"));
    ao.notary_cert = nc;
    cr_assert_eq(sysext_assess(sx_fx_path("Host.app"), &ao, &text), 0, "%s", sx_errmsg());
    free(text);

    /* Revocation: admin only. */
    snprintf(path, sizeof path, "/v1/tickets/%s/revoke", hex);
    r = call("POST", path, key_a, "", NULL);
    cr_assert_eq(r.status, 403, "%s", r.body.data);
    resp_free(&r);
    r = call("POST", path, key_admin, "", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/tickets/%s", hex);
    r = call("GET", path, key_a, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(&r, "status"), "revoked");
    resp_free(&r);
    r = call("GET", path, NULL, NULL, NULL); /* public */
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    r = call("GET", "/v1/tickets/0000000000000000000000000000000000000000", key_a, NULL, NULL);
    cr_assert_eq(r.status, 404);
    resp_free(&r);

    /* Restart: every submission and ticket is still there. */
    stop();
    start();
    snprintf(path, sizeof path, "/v1/submissions/%s", id);
    r = call("GET", path, key_a, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(&r, "status"), "Accepted");
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/tickets/%s", hex);
    r = call("GET", path, key_a, NULL, NULL);
    cr_assert_str_eq(jstr(&r, "status"), "revoked");
    resp_free(&r);
}

Test(server, auth_and_errors)
{
    resp r = call("GET", "/v1/submissions", NULL, NULL, NULL);
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    r = call("GET", "/v1/submissions", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
             NULL, NULL);
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    r = call("GET", "/v1/nothing", key_a, NULL, NULL);
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    r = call("DELETE", "/v1/submissions", key_a, NULL, NULL);
    cr_assert_eq(r.status, 405);
    resp_free(&r);
    r = call("POST", "/v1/submissions", key_a, "{\"submissionName\":\"x.zip\"}", NULL);
    cr_assert_eq(r.status, 400);
    cr_assert(strstr(jstr(&r, "error"), "sha256"), "%s", r.body.data);
    resp_free(&r);
    /* Wrong digest: refused, and the submission stays without a file. */
    r = call("POST", "/v1/submissions", key_a,
             "{\"submissionName\":\"x.zip\",\"sha256\":"
             "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}", NULL);
    cr_assert_eq(r.status, 200);
    char path[160];
    snprintf(path, sizeof path, "/v1/submissions/%s/file", jstr(&r, "id"));
    resp_free(&r);
    r = call("PUT", path, key_b, NULL, sx_fx_path("host.zip"));
    cr_assert_eq(r.status, 404, "other team: %s", r.body.data);
    resp_free(&r);
    r = call("PUT", path, key_a, NULL, sx_fx_path("host.zip"));
    cr_assert_eq(r.status, 400, "%s", r.body.data);
    cr_assert(strstr(jstr(&r, "error"), "SHA-256"), "%s", r.body.data);
    resp_free(&r);
    /* Nothing is left in the upload area. */
    DIR *d = opendir(sx_fx_path("store/tmp"));
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    cr_assert_eq(n, 0);
}

Test(server, wrong_team_log)
{
    char id[SX_NOTARY_ID_LEN + 1];
    submit(key_b, "host.zip", id);
    wait_done(key_b, id, "Invalid");
    char path[160];
    snprintf(path, sizeof path, "/v1/submissions/%s/log", id);
    resp r = call("GET", path, key_b, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr((const char *)r.body.data, "\"code\":\"team-mismatch\""), "%s", r.body.data);
    resp_free(&r);
}

static int cli(char *out, size_t out_len, const char *fmt, ...) SX_PRINTF(3, 4);
static int cli(char *out, size_t out_len, const char *fmt, ...)
{
    char args[4096], cmd[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", SYSEXT_BINARY_DIR "/sysextctl/sysextctl", args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, out_len - 1, p);
    out[n] = 0;
    int st = pclose(p);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(server, cli_submit_wait_staple_assess_online_revoke)
{
    char url[64], out[8192];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", sx_notary_server_port(srv));
    char line[80];
    snprintf(line, sizeof line, "%s\n", key_a);
    sx_fx_write("a.key", line, 0600);
    snprintf(line, sizeof line, "%s\n", key_b);
    sx_fx_write("b.key", line, 0600);
    char host[1024], root[1024], ncert[1024];
    snprintf(host, sizeof host, "%s", sx_fx_path("Host.app"));
    snprintf(root, sizeof root, "%s", trust_path);
    snprintf(ncert, sizeof ncert, "%s", sx_fx_path("store/notary.pem"));

    /* Developer ID code without a ticket is rejected, offline and online. */
    cr_assert_eq(cli(out, sizeof out, "assess --trust %s --notary-cert %s --online %s %s", root, ncert,
                     url, host), 1, "%s", out);
    cr_assert(strstr(out, "has none for cdhash"), "%s", out);

    int rc = cli(out, sizeof out, "notary submit --server %s --key-file %s --wait --timeout 60 "
                 "--staple %s", url, sx_fx_path("a.key"), host);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "status: Accepted"), "%s", out);
    cr_assert(sx_path_exists(sx_fx_path("Host.app/Contents/CodeResources")));
    cr_assert_eq(cli(out, sizeof out, "staple --validate --notary-cert %s %s", ncert, host), 0, "%s", out);
    cr_assert_eq(cli(out, sizeof out, "staple --server %s %s", url, host), 0, "%s", out);
    cr_assert_eq(cli(out, sizeof out, "assess --trust %s --notary-cert %s %s", root, ncert, host), 0,
                 "%s", out);
    cr_assert(strstr(out, "accepted"), "%s", out);
    cr_assert_eq(cli(out, sizeof out, "assess --json --trust %s --notary-cert %s --online %s %s",
                     root, ncert, url, host), 0, "%s", out);
    cr_assert(strstr(out, "\"accepted\": true"), "%s", out);
    cr_assert_eq(cli(out, sizeof out, "notary history --server %s --key-file %s", url,
                     sx_fx_path("a.key")), 0, "%s", out);
    cr_assert(strstr(out, "Accepted"), "%s", out);

    /* Revocation: online assess rejects though the staple is intact. */
    sx_ticket_entry e;
    cr_assert_eq(sx_ticket_code_cdhash(host, &e), 0);
    cr_assert_eq(sx_store_ticket_revoke(store, e.cdhash), 0);
    cr_assert_eq(cli(out, sizeof out, "assess --trust %s --notary-cert %s --online %s %s", root,
                     ncert, url, host), 1, "%s", out);
    cr_assert(strstr(out, "revoked"), "%s", out);
    cr_assert_eq(cli(out, sizeof out, "assess --trust %s --notary-cert %s %s", root, ncert, host), 0,
                 "offline, the staple still stands: %s", out);

    /* Wrong team: Invalid, exit 1, and the log names the problem. */
    rc = cli(out, sizeof out, "notary submit --server %s --key-file %s --wait %s", url,
             sx_fx_path("b.key"), sx_fx_path("host.zip"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "status: Invalid"), "%s", out);
    char id[64] = "";
    cr_assert_eq(sscanf(strstr(out, "id: "), "id: %63s", id), 1);
    cr_assert_eq(cli(out, sizeof out, "notary log %s --server %s --key-file %s", id, url,
                     sx_fx_path("b.key")), 0, "%s", out);
    cr_assert(strstr(out, "team-mismatch"), "%s", out);
    cr_assert_eq(cli(out, sizeof out, "notary info %s --server %s --key-file %s", id, url,
                     sx_fx_path("a.key")), 2, "another team's submission: %s", out);
    cr_assert(strstr(out, "HTTP 404"), "%s", out);
}

Test(server, cli_transient_failures_retry_then_fail)
{
    char out[4096];
    sx_fx_write("a.key", key_a, 0600);
    /* Port 1 on loopback: connection refused on every attempt. */
    time_t t0 = time(NULL);
    int rc = cli(out, sizeof out, "notary history --retries 3 --server http://127.0.0.1:1 --key-file %s",
                 sx_fx_path("a.key"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "after 3 attempts"), "%s", out);
    cr_assert_lt(time(NULL) - t0, 10);
    rc = cli(out, sizeof out, "notary history --server http://127.0.0.1:%u --key-file %s",
             sx_notary_server_port(srv), sx_fx_path("store/notary.pem"));
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "64 hex digits"), "%s", out);
}
