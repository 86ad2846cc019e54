/* Request parsing for the notary API (notary/request.h). */
#include "util/common.h"

#include <json-c/json.h>
#include <strings.h>

#include "notary/request.h"
#include "util/hex.h"

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* 8-4-4-4-12 lowercase hex. */
static bool uuid_ok(const char *s, size_t n)
{
    if (n != SX_NOTARY_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_lower_hex(s[i]))
            return false;
    }
    return true;
}

static int hex_exact(const char *s, size_t n, uint8_t *out, size_t out_len)
{
    if (n != 2 * out_len)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_hex(s[i]) && !(s[i] >= 'A' && s[i] <= 'F'))
            return -1;
    char tmp[2 * 64 + 1];
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return sx_hex_decode(tmp, out, out_len) < 0 ? -1 : 0;
}

/* Split `url` ("/v1/a/b/c") into up to 4 segments after "/v1". */
typedef struct segs {
    const char *p[4];
    size_t n_[4];
    size_t n;
} segs;

static int split(const char *url, segs *s)
{
    memset(s, 0, sizeof *s);
    if (strncmp(url, "/v1/", 4) != 0)
        return -1;
    const char *p = url + 4;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || s->n == 4)
            return -1;
        s->p[s->n] = p;
        s->n_[s->n] = len;
        s->n++;
        if (!e)
            break;
        p = e + 1;
        if (!*p)
            return -1; /* trailing slash */
    }
    return s->n ? 0 : -1;
}

static bool seg_is(const segs *s, size_t i, const char *lit)
{
    return i < s->n && s->n_[i] == strlen(lit) && !memcmp(s->p[i], lit, s->n_[i]);
}

int sx_notary_route_parse(const char *method, const char *url, sx_notary_route *out)
{
    SX_ASSERT_ARG(method && url && out);
    memset(out, 0, sizeof *out);
    size_t ulen = strnlen(url, SX_NOTARY_MAX_URL + 1);
    if (ulen > SX_NOTARY_MAX_URL)
        return sx_err(SYSEXT_ENOTFOUND, "request path longer than %u bytes", SX_NOTARY_MAX_URL);
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f || url[i] == '?' ||
            url[i] == '%' || url[i] == '#')
            return sx_err(SYSEXT_ENOTFOUND, "request path: unexpected character at offset %zu", i);
    segs s;
    if (split(url, &s) < 0)
        return sx_err(SYSEXT_ENOTFOUND, "%s: no such resource", url);
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
    sx_notary_route_kind k = SX_ROUTE_NONE;
    bool method_ok = false;
    if (seg_is(&s, 0, "submissions")) {
        if (s.n >= 2 && !uuid_ok(s.p[1], s.n_[1]) && s.n <= 3)
            return sx_err(SYSEXT_EFORMAT, "%s: the submission id must be a lowercase UUID", url);
        if (s.n == 1) {
            k = post ? SX_ROUTE_SUBMISSION_CREATE : SX_ROUTE_SUBMISSION_LIST;
            method_ok = post || get;
        } else if (s.n == 2) {
            k = SX_ROUTE_SUBMISSION_STATUS;
            method_ok = get;
        } else if (s.n == 3 && seg_is(&s, 2, "file")) {
            k = SX_ROUTE_SUBMISSION_FILE;
            method_ok = put;
        } else if (s.n == 3 && seg_is(&s, 2, "log")) {
            k = SX_ROUTE_SUBMISSION_LOG;
            method_ok = get;
        }
        if (k != SX_ROUTE_NONE && s.n >= 2)
            memcpy(out->id, s.p[1], SX_NOTARY_ID_LEN);
    } else if (seg_is(&s, 0, "tickets") && s.n >= 2 && s.n <= 3) {
        if (hex_exact(s.p[1], s.n_[1], out->cdhash, SX_CDHASH_LEN) < 0)
            return sx_err(SYSEXT_EFORMAT, "%s: the cdhash must be %d hex digits", url,
                          2 * SX_CDHASH_LEN);
        if (s.n == 2) {
            k = SX_ROUTE_TICKET_GET;
            method_ok = get;
        } else if (seg_is(&s, 2, "revoke")) {
            k = SX_ROUTE_TICKET_REVOKE;
            method_ok = post;
        }
    }
    if (k == SX_ROUTE_NONE) {
        memset(out, 0, sizeof *out);
        return sx_err(SYSEXT_ENOTFOUND, "%s: no such resource", url);
    }
    if (!method_ok) {
        memset(out, 0, sizeof *out);
        return sx_err(SYSEXT_EUNSUPPORTED, "%s: method %.16s not allowed", url, method);
    }
    out->kind = k;
    return 0;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SX_NOTARY_MAX_NAME || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/' || s[i] == '\\')
            return false;
    return true;
}

int sx_notary_parse_create(const char *body, size_t len, sx_notary_create_req *out)
{
    SX_ASSERT_ARG(out);
    memset(out, 0, sizeof *out);
    SX_ASSERT_ARG(body || len == 0);
    if (len > SX_NOTARY_MAX_BODY)
        return sx_err(SYSEXT_ELIMIT, "request body: %zu bytes exceeds %u", len, SX_NOTARY_MAX_BODY);
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    json_object *o = json_tokener_parse_ex(tok, body ? body : "", (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = 0;
    if (!o || je != json_tokener_success) {
        rc = sx_err(SYSEXT_EFORMAT, "request body: not JSON (%s)",
                    je == json_tokener_continue ? "truncated" : json_tokener_error_desc(je));
        goto out;
    }
    for (size_t i = used; i < len; i++)
        if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' && body[i] != '\t') {
            rc = sx_err(SYSEXT_EFORMAT, "request body: unexpected data at offset %zu", i);
            goto out;
        }
    if (!json_object_is_type(o, json_type_object)) {
        rc = sx_err(SYSEXT_EFORMAT, "request body: expected a JSON object");
        goto out;
    }
    json_object *name, *sha;
    if (!json_object_object_get_ex(o, "submissionName", &name) ||
        !json_object_is_type(name, json_type_string) ||
        !name_ok(json_object_get_string(name), (size_t)json_object_get_string_len(name)) ||
        strlen(json_object_get_string(name)) != (size_t)json_object_get_string_len(name)) {
        rc = sx_err(SYSEXT_EFORMAT, "request body: submissionName must be a file name of 1..%d "
                    "characters (no '/', no leading '.')", SX_NOTARY_MAX_NAME);
        goto out;
    }
    memcpy(out->name, json_object_get_string(name), (size_t)json_object_get_string_len(name));
    if (!json_object_object_get_ex(o, "sha256", &sha) || !json_object_is_type(sha, json_type_string) ||
        hex_exact(json_object_get_string(sha), (size_t)json_object_get_string_len(sha), out->sha256,
                  sizeof out->sha256) < 0) {
        memset(out, 0, sizeof *out);
        rc = sx_err(SYSEXT_EFORMAT, "request body: sha256 must be 64 hex digits");
        goto out;
    }
out:
    json_object_put(o);
    return rc;
}

int sx_notary_parse_bearer(const char *header, uint8_t key[SX_NOTARY_KEY_LEN])
{
    SX_ASSERT_ARG(key);
    if (!header)
        return sx_err(SYSEXT_EPERM, "missing Authorization header");
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return sx_err(SYSEXT_EPERM, "Authorization: expected 'Bearer <key>'");
    const char *k = header + 7;
    while (*k == ' ')
        k++;
    size_t n = strnlen(k, 2 * SX_NOTARY_KEY_LEN + 1);
    if (hex_exact(k, n, key, SX_NOTARY_KEY_LEN) < 0)
        return sx_err(SYSEXT_EPERM, "Authorization: the key must be %d hex digits",
                      2 * SX_NOTARY_KEY_LEN);
    return 0;
}

unsigned sx_notary_http_status(int rc)
{
    switch (rc) {
    case 0: return 200;
    case SYSEXT_ENOTFOUND: return 404;
    case SYSEXT_EUNSUPPORTED: return 405;
    case SYSEXT_EFORMAT: case SYSEXT_EINVAL: return 400;
    case SYSEXT_EPERM: return 401;
    case SYSEXT_ELIMIT: return 413;
    case SYSEXT_EEXISTS: return 409;
    case SYSEXT_EBUSY: return 503;
    default: return 500;
    }
}
