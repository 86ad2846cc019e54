/* The notary's HTTP API on libmicrohttpd (notary/http.h) and its worker threads. */
#include "util/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "notary/http.h"
#include "util/hex.h"

#define MAX_WORKERS 16

struct sx_notary_server {
    sx_store *store;
    struct MHD_Daemon *mhd;
    int fd;
    uint16_t port;
    uint64_t max_upload;
    const char *const *trust;
    size_t n_trust;
    /* the work queue */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char **queue;
    size_t q_len, q_cap;
    bool stopping;
    pthread_t workers[MAX_WORKERS];
    unsigned n_workers;
};

/* ------------------------------------------------------------------ worker */

static void enqueue(sx_notary_server *srv, const char *id)
{
    pthread_mutex_lock(&srv->lock);
    if (srv->q_len == srv->q_cap) {
        size_t cap = srv->q_cap ? srv->q_cap * 2 : 16;
        char **q = realloc(srv->queue, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&srv->lock);
            return; /* stays In Progress; picked up again at the next start */
        }
        srv->queue = q;
        srv->q_cap = cap;
    }
    char *dup = strdup(id);
    if (dup)
        srv->queue[srv->q_len++] = dup;
    pthread_cond_signal(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

static void *worker_main(void *p)
{
    sx_notary_server *srv = p;
    for (;;) {
        pthread_mutex_lock(&srv->lock);
        while (!srv->stopping && srv->q_len == 0)
            pthread_cond_wait(&srv->cond, &srv->lock);
        if (srv->stopping) {
            pthread_mutex_unlock(&srv->lock);
            return NULL;
        }
        char *id = srv->queue[0];
        memmove(srv->queue, srv->queue + 1, (srv->q_len - 1) * sizeof *srv->queue);
        srv->q_len--;
        pthread_mutex_unlock(&srv->lock);
        sx_notary_check_opts o = {.trust = srv->trust, .n_trust = srv->n_trust};
        if (sx_store_process(srv->store, id, &o) < 0)
            fprintf(stderr, "sysext-notaryd: submission %s: %s\n", id, sx_errmsg());
        free(id);
    }
}

/* ------------------------------------------------------------------ requests */

typedef struct req {
    int rc;                  /* route/auth/parse result; < 0 answers with an error */
    unsigned status;         /* HTTP status of an error */
    char msg[512];
    sx_notary_route route;
    char *team;
    bool admin;
    sx_buf body;             /* POST bodies */
    FILE *upload;            /* PUT file */
    char *tmp_path;
    uint64_t uploaded;
} req;

static void req_fail(req *r, unsigned status, const char *msg)
{
    if (r->rc < 0)
        return;
    r->rc = -1;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), (void *)s,
                                                                MHD_RESPMEM_MUST_COPY);
    json_object_put(o);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "status", json_object_new_int((int)status));
    return reply(c, status, o);
}

static enum MHD_Result reply_raw_json(struct MHD_Connection *c, unsigned status, const char *s)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), (void *)s,
                                                                MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static json_object *submission_json(const sx_submission *sub)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(sub->id));
    json_object_object_add(o, "name", json_object_new_string(sub->name));
    json_object_object_add(o, "status", json_object_new_string(sx_notary_status_name(sub->status)));
    json_object_object_add(o, "uploaded", json_object_new_boolean(sub->uploaded));
    json_object_object_add(o, "createdDate", json_object_new_int64(sub->created));
    return o;
}

/* First call for a request: route, authenticate, prepare the upload. */
static void begin(sx_notary_server *srv, struct MHD_Connection *c, const char *method,
                  const char *url, req *r)
{
    int rc = sx_notary_route_parse(method, url, &r->route);
    if (rc < 0) {
        req_fail(r, sx_notary_http_status(rc), sx_errmsg());
        return;
    }
    if (r->route.kind == SX_ROUTE_TICKET_GET)
        return; /* ticket lookup is public, like Apple's: staplers and assessors have no key */
    uint8_t key[SX_NOTARY_KEY_LEN];
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if ((rc = sx_notary_parse_bearer(auth, key)) < 0 ||
        (rc = sx_store_key_lookup(srv->store, key, &r->team, &r->admin)) < 0) {
        req_fail(r, rc == SYSEXT_EPERM ? 401 : 500, sx_errmsg());
        return;
    }
    if (r->route.kind == SX_ROUTE_SUBMISSION_FILE) {
        sx_submission sub;
        if ((rc = sx_store_submission_get(srv->store, r->route.id, r->team, &sub)) < 0) {
            req_fail(r, sx_notary_http_status(rc), sx_errmsg());
            return;
        }
        bool done = sub.uploaded;
        sx_submission_free(&sub);
        if (done) {
            req_fail(r, 409, "the file of this submission was already uploaded");
            return;
        }
        r->tmp_path = sx_store_upload_tmp(srv->store, r->route.id);
        r->upload = r->tmp_path ? fopen(r->tmp_path, "wbx") : NULL;
        if (!r->upload)
            req_fail(r, 500, "cannot create the upload file");
    }
}

static void body_chunk(sx_notary_server *srv, req *r, const char *data, size_t n)
{
    if (r->rc < 0)
        return; /* discard the rest of a refused request */
    if (r->upload) {
        uint64_t total;
        if (SX_ADD_OVERFLOW(r->uploaded, (uint64_t)n, &total) || total > srv->max_upload) {
            req_fail(r, 413, "the upload exceeds the server's size limit");
            return;
        }
        if (fwrite(data, 1, n, r->upload) != n) {
            req_fail(r, 500, "cannot write the upload");
            return;
        }
        r->uploaded = total;
        return;
    }
    if (r->body.len + n > SX_NOTARY_MAX_BODY) {
        req_fail(r, 413, "the request body is too large");
        return;
    }
    if (sx_buf_append(&r->body, data, n) < 0)
        req_fail(r, 500, "out of memory");
}

static enum MHD_Result finish(sx_notary_server *srv, struct MHD_Connection *c, req *r)
{
    if (r->rc < 0)
        return reply_error(c, r->status, r->msg);
    sx_store *s = srv->store;
    int rc;
    switch (r->route.kind) {
    case SX_ROUTE_SUBMISSION_CREATE: {
        sx_notary_create_req cr;
        char id[SX_NOTARY_ID_LEN + 1];
        if ((rc = sx_notary_parse_create((const char *)r->body.data, r->body.len, &cr)) < 0)
            return reply_error(c, sx_notary_http_status(rc), sx_errmsg());
        if ((rc = sx_store_submission_create(s, r->team, &cr, id)) < 0)
            return reply_error(c, 500, sx_errmsg());
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "status", json_object_new_string("In Progress"));
        char up[128];
        snprintf(up, sizeof up, "/v1/submissions/%s/file", id);
        json_object_object_add(o, "uploadPath", json_object_new_string(up));
        return reply(c, 200, o);
    }
    case SX_ROUTE_SUBMISSION_FILE: {
        if (fflush(r->upload) != 0 || ferror(r->upload))
            return reply_error(c, 500, "cannot write the upload");
        fclose(r->upload);
        r->upload = NULL;
        rc = sx_store_upload_commit(s, r->route.id, r->tmp_path);
        free(r->tmp_path);
        r->tmp_path = NULL; /* committed or removed by the store */
        if (rc < 0)
            return reply_error(c, rc == SYSEXT_EINVALID ? 400 : sx_notary_http_status(rc), sx_errmsg());
        enqueue(srv, r->route.id);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(r->route.id));
        json_object_object_add(o, "status", json_object_new_string("In Progress"));
        return reply(c, 200, o);
    }
    case SX_ROUTE_SUBMISSION_STATUS:
    case SX_ROUTE_SUBMISSION_LOG: {
        sx_submission sub;
        if ((rc = sx_store_submission_get(s, r->route.id, r->team, &sub)) < 0)
            return reply_error(c, sx_notary_http_status(rc), sx_errmsg());
        enum MHD_Result ret;
        if (r->route.kind == SX_ROUTE_SUBMISSION_STATUS)
            ret = reply(c, 200, submission_json(&sub));
        else if (!sub.log_json)
            ret = reply_error(c, 404, "the log is available once processing has ended");
        else
            ret = reply_raw_json(c, 200, sub.log_json);
        sx_submission_free(&sub);
        return ret;
    }
    case SX_ROUTE_SUBMISSION_LIST: {
        char *list;
        if ((rc = sx_store_submission_list(s, r->team, &list)) < 0)
            return reply_error(c, 500, sx_errmsg());
        json_object *o = json_object_new_object();
        json_object_object_add(o, "submissions", json_tokener_parse(list));
        free(list);
        return reply(c, 200, o);
    }
    case SX_ROUTE_TICKET_GET: {
        uint8_t *t;
        size_t len;
        bool revoked;
        if ((rc = sx_store_ticket_get(s, r->route.cdhash, &t, &len, &revoked)) < 0)
            return reply_error(c, sx_notary_http_status(rc), sx_errmsg());
        char hex[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(r->route.cdhash, SX_CDHASH_LEN, hex);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "cdhash", json_object_new_string(hex));
        json_object_object_add(o, "status", json_object_new_string(revoked ? "revoked" : "valid"));
        if (!revoked) {
            size_t cap = 4 * ((len + 2) / 3) + 1;
            char *b64 = malloc(cap);
            if (b64) {
                EVP_EncodeBlock((unsigned char *)b64, t, (int)len);
                json_object_object_add(o, "ticket", json_object_new_string(b64));
                free(b64);
            }
        }
        free(t);
        return reply(c, 200, o);
    }
    case SX_ROUTE_TICKET_REVOKE: {
        if (!r->admin)
            return reply_error(c, 403, "revoking tickets needs an admin key");
        if ((rc = sx_store_ticket_revoke(s, r->route.cdhash)) < 0)
            return reply_error(c, sx_notary_http_status(rc), sx_errmsg());
        char hex[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(r->route.cdhash, SX_CDHASH_LEN, hex);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "cdhash", json_object_new_string(hex));
        json_object_object_add(o, "status", json_object_new_string("revoked"));
        return reply(c, 200, o);
    }
    case SX_ROUTE_NONE:
        break;
    }
    return reply_error(c, 404, "no such resource");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    sx_notary_server *srv = cls;
    (void)version;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        sx_buf_init(&r->body, SX_NOTARY_MAX_BODY);
        *con_cls = r;
        begin(srv, c, method, url, r);
        return MHD_YES;
    }
    if (*data_size) {
        body_chunk(srv, r, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    return finish(srv, c, r);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req *r = *con_cls;
    if (!r)
        return;
    if (r->upload)
        fclose(r->upload);
    if (r->tmp_path) /* never committed: a broken or refused upload leaves nothing behind */
        unlink(r->tmp_path);
    free(r->tmp_path);
    free(r->team);
    sx_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------ lifecycle */

static int bind_listen(const char *listen_addr, int *fd_out, uint16_t *port_out)
{
    char host[64];
    const char *colon;
    if (!listen_addr)
        listen_addr = "127.0.0.1:0";
    colon = strrchr(listen_addr, ':');
    if (!colon || (size_t)(colon - listen_addr) >= sizeof host)
        return sx_err(SYSEXT_EINVAL, "--listen %s: expected IPv4:PORT", listen_addr);
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = 0;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (!colon[1] || *end || errno || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return sx_err(SYSEXT_EINVAL, "--listen %s: expected IPv4:PORT", listen_addr);
    sa.sin_port = htons((uint16_t)port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        int e = errno;
        close(fd);
        return sx_err_errno(SYSEXT_EIO, e, "--listen %s", listen_addr);
    }
    *fd_out = fd;
    *port_out = ntohs(sa.sin_port);
    return 0;
}

int sx_notary_server_start(sx_store *store, const sx_notary_server_opts *o, sx_notary_server **out)
{
    SX_ASSERT_ARG(store && o && out);
    *out = NULL;
    sx_notary_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    srv->store = store;
    srv->fd = -1;
    srv->trust = o->trust;
    srv->n_trust = o->n_trust;
    srv->max_upload = o->max_upload ? o->max_upload : SX_NOTARY_DEFAULT_MAX_UPLOAD;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    int rc = bind_listen(o->listen, &srv->fd, &srv->port);
    if (rc < 0)
        goto fail;
    char **pending = NULL;
    size_t n_pending = 0;
    if ((rc = sx_store_pending(store, &pending, &n_pending)) < 0)
        goto fail;
    for (size_t i = 0; i < n_pending; i++) {
        enqueue(srv, pending[i]);
        free(pending[i]);
    }
    free(pending);
    unsigned nw = o->workers ? o->workers : 2;
    if (nw > MAX_WORKERS)
        nw = MAX_WORKERS;
    for (; srv->n_workers < nw; srv->n_workers++)
        if (pthread_create(&srv->workers[srv->n_workers], NULL, worker_main, srv) != 0) {
            rc = sx_err(SYSEXT_ERROR, "cannot start the worker threads");
            goto fail;
        }
    srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                                0, NULL, NULL, on_request, srv,
                                MHD_OPTION_LISTEN_SOCKET, srv->fd,
                                MHD_OPTION_NOTIFY_COMPLETED, on_done, srv,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                                MHD_OPTION_END);
    if (!srv->mhd) {
        rc = sx_err(SYSEXT_ERROR, "cannot start the HTTP server");
        goto fail;
    }
    srv->fd = -1; /* the daemon owns (and closes) the listening socket now */
    *out = srv;
    return 0;
fail:
    sx_notary_server_stop(srv);
    return rc;
}

uint16_t sx_notary_server_port(const sx_notary_server *srv)
{
    return srv ? srv->port : 0;
}

void sx_notary_server_stop(sx_notary_server *srv)
{
    if (!srv)
        return;
    if (srv->mhd)
        MHD_stop_daemon(srv->mhd);
    if (srv->fd >= 0)
        close(srv->fd);
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i], NULL);
    for (size_t i = 0; i < srv->q_len; i++)
        free(srv->queue[i]); /* still In Progress in the store: picked up at the next start */
    free(srv->queue);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    free(srv);
}
