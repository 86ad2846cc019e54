/* The notary service's request parsing (notary/request.c): route, create body, bearer key.
 * Input: byte 0 picks the method, then the URL up to the first NUL, then the body; the same
 * bytes are also tried as an Authorization header. */
#include "util/common.h"

#include "notary/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    if (size < 1)
        return 0;
    const char *method = methods[data[0] & 3];
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    const uint8_t *nul = memchr(rest, 0, n);
    size_t url_len = nul ? (size_t)(nul - rest) : n;
    char *url = strndup((const char *)rest, url_len);
    if (!url)
        return 0;
    sx_notary_route r;
    volatile unsigned sink = 0;
    int rc = sx_notary_route_parse(method, url, &r);
    sink ^= sx_notary_http_status(rc);
    if (rc == 0) {
        if (r.kind < SX_ROUTE_SUBMISSION_CREATE || r.kind > SX_ROUTE_TICKET_REVOKE)
            abort();
        sink ^= (unsigned)strlen(r.id) ^ r.cdhash[0];
    }
    const char *body = nul ? (const char *)nul + 1 : "";
    size_t body_len = nul ? n - url_len - 1 : 0;
    sx_notary_create_req c;
    if (sx_notary_parse_create(body, body_len, &c) == 0) {
        if (!c.name[0] || strchr(c.name, '/'))
            abort();
        sink ^= c.sha256[0];
    }
    uint8_t key[SX_NOTARY_KEY_LEN];
    if (sx_notary_parse_bearer(url, key) == 0)
        sink ^= key[0];
    free(url);
    (void)sink;
    return 0;
}
