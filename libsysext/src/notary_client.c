/* The notary client (sysext/notary.h): libcurl, retries with backoff on transient failures,
 * clear errors for 4xx answers, a progress bar on a TTY. */
#include "util/common.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "codesign/ticket.h"
#include "libsysext/src/notary_client.h"
#include "sysext/archive.h"
#include "sysext/notary.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/hex.h"

#define MAX_RESPONSE (8u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct http_resp {
    long status;
    sx_buf body;
    json_object *json;
} http_resp;

static void resp_free(http_resp *r)
{
    json_object_put(r->json);
    sx_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

static size_t on_data(char *p, size_t sz, size_t n, void *u)
{
    http_resp *r = u;
    return sx_buf_append(&r->body, p, sz * n) < 0 ? 0 : sz * n;
}

static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)u;
    (void)dt;
    (void)dn;
    if (ut <= 0)
        return 0;
    int pct = (int)(un * 100 / ut);
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    fprintf(stderr, "\ruploading [%s] %3d%% %lld/%lld bytes", bar, pct, (long long)un, (long long)ut);
    if (un == ut)
        fputc('\n', stderr);
    return 0;
}

static const char *json_str(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* One API call with retries. `key` may be NULL; `upload` a file to PUT; `body` a JSON body. */
static int call(const char *server, const char *method, const char *path, const char *key,
                const char *body, const char *upload, unsigned retries, bool progress, http_resp *r)
{
    pthread_once(&curl_once, curl_init_once);
    memset(r, 0, sizeof *r);
    _sx_cleanup_free_ char *url = NULL;
    size_t sl = strlen(server);
    while (sl && server[sl - 1] == '/')
        sl--;
    if (asprintf(&url, "%.*s%s", (int)sl, server, path) < 0)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (retries == 0)
        retries = 4;
    int rc = 0;
    for (unsigned attempt = 0;; attempt++) {
        resp_free(r);
        sx_buf_init(&r->body, MAX_RESPONSE);
        CURL *c = curl_easy_init();
        if (!c)
            return sx_err(SYSEXT_ENOMEM, "cannot create an HTTP handle");
        struct curl_slist *h = NULL;
        char auth[128];
        if (key) {
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
            h = curl_slist_append(h, auth);
        }
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        FILE *f = NULL;
        if (upload) {
            f = fopen(upload, "rb");
            if (!f) {
                curl_slist_free_all(h);
                curl_easy_cleanup(c);
                return sx_err_errno(SYSEXT_EIO, errno, "%s", upload);
            }
            fseek(f, 0, SEEK_END);
            curl_off_t sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READDATA, f);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, sz);
            if (progress && isatty(STDERR_FILENO)) {
                curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
            }
        } else if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        }
        CURLcode cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (f)
            fclose(f);
        bool transient = cc != CURLE_OK || r->status >= 500;
        if (!transient)
            break;
        if (attempt + 1 >= retries) {
            rc = cc != CURLE_OK
                     ? sx_err(SYSEXT_ENETWORK, "%s %s: %s (after %u attempts)", method, url,
                              curl_easy_strerror(cc), attempt + 1)
                     : sx_err(SYSEXT_ENETWORK, "%s %s: server error %ld (after %u attempts)",
                              method, url, r->status, attempt + 1);
            return rc;
        }
        struct timespec ts = {0, (long)(100000000L << (attempt < 4 ? attempt : 4))};
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec = ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
        }
        nanosleep(&ts, NULL);
    }
    r->json = json_tokener_parse(r->body.data ? (const char *)r->body.data : "");
    if (r->status >= 400) {
        const char *e = json_str(r->json, "error");
        int code = r->status == 401 || r->status == 403 ? SYSEXT_EPERM
                   : r->status == 404                   ? SYSEXT_ENOTFOUND
                   : r->status == 413                   ? SYSEXT_ELIMIT
                                                        : SYSEXT_EINVAL;
        return sx_err(code, "%s %s: HTTP %ld: %s", method, path, r->status,
                      e ? e : "the server refused the request");
    }
    if (!r->json)
        return sx_err(SYSEXT_EPROTO, "%s %s: the answer is not JSON", method, path);
    return 0;
}

static int read_key(const sysext_notary_options *o, char key[65])
{
    if (!o->key_file)
        return sx_err(SYSEXT_EINVAL, "a --key-file is needed");
    uint8_t *d = NULL;
    size_t n = 0;
    int rc = sx_read_file(o->key_file, 4096, &d, &n);
    if (rc < 0)
        return rc;
    while (n && (d[n - 1] == '\n' || d[n - 1] == '\r' || d[n - 1] == ' '))
        n--;
    uint8_t raw[32];
    d[n] = 0;
    if (n != 64 || sx_hex_decode((const char *)d, raw, sizeof raw) < 0) {
        free(d);
        return sx_err(SYSEXT_EINVAL, "%s: expected an API key of 64 hex digits", o->key_file);
    }
    memcpy(key, d, 65);
    free(d);
    return 0;
}

static int check_opts(const sysext_notary_options *o)
{
    SX_ASSERT_ARG(o);
    if (o->version != SYSEXT_NOTARY_OPTIONS_VERSION)
        return sx_err(SYSEXT_EINVAL, "notary: unsupported options version %u", o->version);
    if (!o->server || strncmp(o->server, "http", 4) != 0)
        return sx_err(SYSEXT_EINVAL, "notary: --server must be an http:// or https:// URL");
    return 0;
}

static int out_json(json_object *o, char **out_text)
{
    *out_text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_SPACED));
    return *out_text ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

static int file_sha256_hex(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t buf[65536], h[32];
    size_t n;
    int rc = 0;
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
        rc = sx_err(SYSEXT_ENOMEM, "sha256");
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(c, buf, n);
    if (rc == 0 && ferror(f))
        rc = sx_err(SYSEXT_EIO, "%s: read error", path);
    if (rc == 0) {
        EVP_DigestFinal_ex(c, h, NULL);
        sx_hex_encode(h, 32, hex);
    }
    EVP_MD_CTX_free(c);
    fclose(f);
    return rc;
}

static int get_status(const sysext_notary_options *o, const char *key, const char *id,
                      http_resp *r)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/submissions/%s", id);
    return call(o->server, "GET", path, key, NULL, NULL, o->retries, false, r);
}

int sysext_notary_submit(const char *path, const sysext_notary_options *o, char **out_text)
{
    SX_ASSERT_ARG(path && out_text);
    *out_text = NULL;
    int rc = check_opts(o);
    char key[65];
    if (rc < 0 || (rc = read_key(o, key)) < 0)
        return rc;
    _sx_cleanup_free_ char *tmpdir = NULL;
    _sx_cleanup_free_ char *zip = NULL;
    const char *upload = path;
    http_resp r = {0};
    char id[64] = "";
    if (sx_is_dir(path)) {
        char t[] = "/tmp/sysext-notary-XXXXXX";
        if (!mkdtemp(t))
            return sx_err_errno(SYSEXT_EIO, errno, "cannot create a temp dir");
        tmpdir = strdup(t);
        const char *base = sx_path_basename(path);
        if (!tmpdir || asprintf(&zip, "%s/%s.zip", t, *base ? base : "bundle") < 0) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = sysext_pack(path, zip, 0)) < 0)
            goto out;
        upload = zip;
    }
    char sha[65], body[512];
    if ((rc = file_sha256_hex(upload, sha)) < 0)
        goto out;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "submissionName", json_object_new_string(sx_path_basename(upload)));
    json_object_object_add(b, "sha256", json_object_new_string(sha));
    snprintf(body, sizeof body, "%s", json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
    json_object_put(b);
    if ((rc = call(o->server, "POST", "/v1/submissions", key, body, NULL, o->retries, false, &r)) < 0)
        goto out;
    const char *sid = json_str(r.json, "id");
    if (!sid || strlen(sid) >= sizeof id) {
        rc = sx_err(SYSEXT_EPROTO, "POST /v1/submissions: no submission id in the answer");
        goto out;
    }
    snprintf(id, sizeof id, "%s", sid);
    char p[128];
    snprintf(p, sizeof p, "/v1/submissions/%s/file", id);
    resp_free(&r);
    if ((rc = call(o->server, "PUT", p, key, NULL, upload, o->retries,
                   (o->flags & SYSEXT_NOTARY_PROGRESS) != 0, &r)) < 0)
        goto out;
    resp_free(&r);
    const char *status = "In Progress";
    if (o->wait || o->staple) {
        time_t deadline = time(NULL) + (o->timeout_s ? o->timeout_s : 3600);
        for (;;) {
            if ((rc = get_status(o, key, id, &r)) < 0)
                goto out;
            const char *st = json_str(r.json, "status");
            if (st && strcmp(st, "In Progress"))
                break;
            resp_free(&r);
            if (time(NULL) >= deadline) {
                rc = sx_err(SYSEXT_ETIMEOUT, "submission %s: still In Progress after %u s", id,
                            o->timeout_s ? o->timeout_s : 3600);
                goto out;
            }
            struct timespec ts = {0, 200000000L};
            nanosleep(&ts, NULL);
        }
        status = json_str(r.json, "status");
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "id", json_object_new_string(id));
    json_object_object_add(res, "status", json_object_new_string(status));
    bool accepted = !strcmp(status, "Accepted");
    bool failed = strcmp(status, "In Progress") && !accepted;
    if (accepted && o->staple && sx_is_dir(path)) {
        char *st_text = NULL;
        rc = sysext_staple_fetch(path, o, &st_text);
        free(st_text);
        json_object_object_add(res, "stapled", json_object_new_boolean(rc == 0));
        if (rc < 0) {
            json_object_put(res);
            goto out;
        }
    }
    if (o->flags & SYSEXT_OUTPUT_JSON) {
        rc = out_json(res, out_text);
    } else {
        rc = asprintf(out_text, "id: %s\nstatus: %s\n%s", id, status,
                      failed ? "see 'sysextctl notary log ID' for the issues\n" : "") < 0
                 ? sx_err(SYSEXT_ENOMEM, "out of memory")
                 : 0;
    }
    json_object_put(res);
    if (rc == 0 && failed)
        rc = sx_err(SYSEXT_EREJECTED, "submission %s: %s", id, status);
out:
    resp_free(&r);
    if (zip)
        unlink(zip);
    if (tmpdir)
        rmdir(tmpdir);
    return rc;
}

static int simple_get(const sysext_notary_options *o, const char *path, bool need_key,
                      char **out_text, json_object **out_json_obj)
{
    int rc = check_opts(o);
    char key[65];
    if (rc < 0 || (need_key && (rc = read_key(o, key)) < 0))
        return rc;
    http_resp r;
    if ((rc = call(o->server, "GET", path, need_key ? key : NULL, NULL, NULL, o->retries, false,
                   &r)) < 0) {
        resp_free(&r);
        return rc;
    }
    if (out_text)
        rc = out_json(r.json, out_text);
    if (out_json_obj)
        *out_json_obj = json_object_get(r.json);
    resp_free(&r);
    return rc;
}

int sysext_notary_info(const char *id, const sysext_notary_options *o, char **out_text)
{
    SX_ASSERT_ARG(id && out_text);
    *out_text = NULL;
    char path[160];
    if (snprintf(path, sizeof path, "/v1/submissions/%s", id) >= (int)sizeof path)
        return sx_err(SYSEXT_EINVAL, "submission id too long");
    return simple_get(o, path, true, out_text, NULL);
}

int sysext_notary_log(const char *id, const sysext_notary_options *o, char **out_text)
{
    SX_ASSERT_ARG(id && out_text);
    *out_text = NULL;
    char path[160];
    if (snprintf(path, sizeof path, "/v1/submissions/%s/log", id) >= (int)sizeof path)
        return sx_err(SYSEXT_EINVAL, "submission id too long");
    return simple_get(o, path, true, out_text, NULL);
}

int sysext_notary_history(const sysext_notary_options *o, char **out_text)
{
    SX_ASSERT_ARG(out_text);
    *out_text = NULL;
    return simple_get(o, "/v1/submissions", true, out_text, NULL);
}

int sx_notary_fetch_ticket(const char *server, const uint8_t cdhash[SX_CDHASH_LEN],
                           unsigned retries, uint8_t **ticket, size_t *len, bool *revoked)
{
    *ticket = NULL;
    *len = 0;
    *revoked = false;
    char hex[2 * SX_CDHASH_LEN + 1], path[96];
    sx_hex_encode(cdhash, SX_CDHASH_LEN, hex);
    snprintf(path, sizeof path, "/v1/tickets/%s", hex);
    http_resp r;
    int rc = call(server, "GET", path, NULL, NULL, NULL, retries, false, &r);
    if (rc < 0) {
        resp_free(&r);
        return rc;
    }
    const char *st = json_str(r.json, "status");
    const char *b64 = json_str(r.json, "ticket");
    if (st && !strcmp(st, "revoked")) {
        *revoked = true;
    } else if (!st || strcmp(st, "valid") || !b64) {
        rc = sx_err(SYSEXT_EPROTO, "GET %s: expected a status and a ticket", path);
    } else {
        size_t bl = strlen(b64);
        if (bl % 4 || bl > 4 * ((size_t)SX_TICKET_MAX_SIZE / 3 + 1)) {
            rc = sx_err(SYSEXT_EPROTO, "GET %s: the ticket is not base64", path);
        } else if (!(*ticket = malloc(bl / 4 * 3 + 1))) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        } else {
            int n = EVP_DecodeBlock(*ticket, (const unsigned char *)b64, (int)bl);
            size_t pad = bl >= 2 ? (size_t)(b64[bl - 1] == '=') + (size_t)(b64[bl - 2] == '=') : 0;
            if (n < 0 || (size_t)n < pad) {
                free(*ticket);
                *ticket = NULL;
                rc = sx_err(SYSEXT_EPROTO, "GET %s: the ticket is not base64", path);
            } else {
                *len = (size_t)n - pad;
            }
        }
    }
    resp_free(&r);
    return rc;
}

int sysext_staple_fetch(const char *path, const sysext_notary_options *o, char **out_text)
{
    SX_ASSERT_ARG(path && out_text);
    *out_text = NULL;
    int rc = check_opts(o);
    if (rc < 0)
        return rc;
    if (!sx_is_dir(path))
        return sx_err(SYSEXT_EINVAL, "%s: only bundles can be stapled", path);
    sx_ticket_entry code;
    if ((rc = sx_ticket_code_cdhash(path, &code)) < 0)
        return rc;
    uint8_t *t;
    size_t len;
    bool revoked;
    if ((rc = sx_notary_fetch_ticket(o->server, code.cdhash, o->retries, &t, &len, &revoked)) < 0)
        return rc;
    char hex[2 * SX_CDHASH_LEN + 1];
    sx_hex_encode(code.cdhash, SX_CDHASH_LEN, hex);
    if (revoked)
        return sx_err(SYSEXT_EREJECTED, "%s: the notary revoked the ticket for cdhash %s", path, hex);
    rc = sysext_staple_ticket(path, t, len);
    free(t);
    if (rc < 0)
        return rc;
    _sx_cleanup_free_ char *where = sx_ticket_staple_path(path);
    if (o->flags & SYSEXT_OUTPUT_JSON) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "path", json_object_new_string(path));
        json_object_object_add(j, "cdhash", json_object_new_string(hex));
        json_object_object_add(j, "stapled", json_object_new_string(where ? where : ""));
        rc = out_json(j, out_text);
        json_object_put(j);
        return rc;
    }
    return asprintf(out_text, "%s: stapled the ticket for cdhash %s at %s\n", path, hex,
                    where ? where : "?") < 0
               ? sx_err(SYSEXT_ENOMEM, "out of memory")
               : 0;
}
