/* Notary API request parsing: every route, wrong methods, malformed ids and cdhashes, the
 * create body and the bearer header, with exact codes and HTTP statuses. */
#include <criterion/criterion.h>

#include "util/common.h"

#include "notary/request.h"
#include "util/error.h"

#define ID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define CD "1b747faf223750de74febed7929f14a73af8c933"

static void route_ok(const char *m, const char *url, sx_notary_route_kind k)
{
    sx_notary_route r;
    cr_assert_eq(sx_notary_route_parse(m, url, &r), 0, "%s %s: %s", m, url, sx_errmsg());
    cr_assert_eq(r.kind, k, "%s %s", m, url);
}

static void route_bad(const char *m, const char *url, int code, unsigned http)
{
    sx_notary_route r;
    int rc = sx_notary_route_parse(m, url, &r);
    cr_assert_eq(rc, code, "%s %s: rc %d (%s)", m, url, rc, sx_errmsg());
    cr_assert_eq(sx_notary_http_status(rc), http);
    cr_assert_eq(r.kind, SX_ROUTE_NONE);
}

Test(request, routes)
{
    route_ok("POST", "/v1/submissions", SX_ROUTE_SUBMISSION_CREATE);
    route_ok("GET", "/v1/submissions", SX_ROUTE_SUBMISSION_LIST);
    route_ok("PUT", "/v1/submissions/" ID "/file", SX_ROUTE_SUBMISSION_FILE);
    route_ok("GET", "/v1/submissions/" ID, SX_ROUTE_SUBMISSION_STATUS);
    route_ok("GET", "/v1/submissions/" ID "/log", SX_ROUTE_SUBMISSION_LOG);
    route_ok("GET", "/v1/tickets/" CD, SX_ROUTE_TICKET_GET);
    route_ok("POST", "/v1/tickets/" CD "/revoke", SX_ROUTE_TICKET_REVOKE);
    sx_notary_route r;
    cr_assert_eq(sx_notary_route_parse("GET", "/v1/submissions/" ID "/log", &r), 0);
    cr_assert_str_eq(r.id, ID);
    cr_assert_eq(sx_notary_route_parse("GET", "/v1/tickets/1B747FAF223750DE74FEBED7929F14A73AF8C933", &r), 0);
    cr_assert_eq(r.cdhash[0], 0x1b);
    cr_assert_eq(r.cdhash[19], 0x33);
}

Test(request, bad_routes)
{
    route_bad("GET", "/", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v2/submissions", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1/submissions/", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1//submissions", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1/submissions?x=1", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1/submissions/" ID "/log/x", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1/submissions/" ID "/other", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1/tickets", SYSEXT_ENOTFOUND, 404);
    route_bad("GET", "/v1/submissions/%2e%2e", SYSEXT_ENOTFOUND, 404);
    route_bad("DELETE", "/v1/submissions", SYSEXT_EUNSUPPORTED, 405);
    route_bad("POST", "/v1/submissions/" ID, SYSEXT_EUNSUPPORTED, 405);
    route_bad("GET", "/v1/submissions/" ID "/file", SYSEXT_EUNSUPPORTED, 405);
    route_bad("GET", "/v1/tickets/" CD "/revoke", SYSEXT_EUNSUPPORTED, 405);
    route_bad("GET", "/v1/submissions/0F1E2D3C-4b5a-6978-8796-a5b4c3d2e1f0", SYSEXT_EFORMAT, 400);
    route_bad("GET", "/v1/submissions/..", SYSEXT_EFORMAT, 400);
    route_bad("GET", "/v1/tickets/1b747f", SYSEXT_EFORMAT, 400);
    route_bad("GET", "/v1/tickets/" CD "00", SYSEXT_EFORMAT, 400);
    route_bad("GET", "/v1/tickets/zb747faf223750de74febed7929f14a73af8c933", SYSEXT_EFORMAT, 400);
    char longurl[2000];
    memset(longurl, 'a', sizeof longurl - 1);
    longurl[sizeof longurl - 1] = 0;
    memcpy(longurl, "/v1/", 4);
    route_bad("GET", longurl, SYSEXT_ENOTFOUND, 404);
}

#define SHA "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void create_bad(const char *body, int code, const char *needle)
{
    sx_notary_create_req c;
    int rc = sx_notary_parse_create(body, strlen(body), &c);
    cr_assert_eq(rc, code, "%s: rc %d (%s)", body, rc, sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "'%s' lacks '%s'", sx_errmsg(), needle);
    cr_assert_eq(c.name[0], 0);
}

Test(request, create_body)
{
    const char *ok = "{\"submissionName\": \"Host.zip\", \"sha256\": \"" SHA "\", "
                     "\"notifications\": []}\n";
    sx_notary_create_req c;
    cr_assert_eq(sx_notary_parse_create(ok, strlen(ok), &c), 0, "%s", sx_errmsg());
    cr_assert_str_eq(c.name, "Host.zip");
    cr_assert_eq(c.sha256[0], 0x00);
    cr_assert_eq(c.sha256[1], 0x11);
    cr_assert_eq(c.sha256[31], 0xff);
    create_bad("", SYSEXT_EFORMAT, "not JSON");
    create_bad("{\"submissionName\":", SYSEXT_EFORMAT, "not JSON");
    create_bad("[1,2]", SYSEXT_EFORMAT, "expected a JSON object");
    create_bad("{} {}", SYSEXT_EFORMAT, "unexpected data at offset 3");
    create_bad("{\"sha256\":\"" SHA "\"}", SYSEXT_EFORMAT, "submissionName");
    create_bad("{\"submissionName\":\"../x.zip\",\"sha256\":\"" SHA "\"}", SYSEXT_EFORMAT, "submissionName");
    create_bad("{\"submissionName\":\"a/b.zip\",\"sha256\":\"" SHA "\"}", SYSEXT_EFORMAT, "submissionName");
    create_bad("{\"submissionName\":\"a\\u0000b\",\"sha256\":\"" SHA "\"}", SYSEXT_EFORMAT, "submissionName");
    create_bad("{\"submissionName\":7,\"sha256\":\"" SHA "\"}", SYSEXT_EFORMAT, "submissionName");
    create_bad("{\"submissionName\":\"x.zip\"}", SYSEXT_EFORMAT, "sha256");
    create_bad("{\"submissionName\":\"x.zip\",\"sha256\":\"abc\"}", SYSEXT_EFORMAT, "sha256");
    create_bad("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
               SYSEXT_EFORMAT, "not JSON");
    char *big = malloc(SX_NOTARY_MAX_BODY + 2);
    cr_assert_not_null(big);
    memset(big, ' ', SX_NOTARY_MAX_BODY + 1);
    big[SX_NOTARY_MAX_BODY + 1] = 0;
    create_bad(big, SYSEXT_ELIMIT, "exceeds");
    free(big);
}

Test(request, bearer)
{
    uint8_t k[SX_NOTARY_KEY_LEN];
    cr_assert_eq(sx_notary_parse_bearer("Bearer " SHA, k), 0, "%s", sx_errmsg());
    cr_assert_eq(k[1], 0x11);
    cr_assert_eq(sx_notary_parse_bearer("bearer  " SHA, k), 0);
    cr_assert_eq(sx_notary_parse_bearer(NULL, k), SYSEXT_EPERM);
    cr_assert_eq(sx_notary_parse_bearer("Basic " SHA, k), SYSEXT_EPERM);
    cr_assert_eq(sx_notary_parse_bearer("Bearer " SHA "0", k), SYSEXT_EPERM);
    cr_assert_eq(sx_notary_parse_bearer("Bearer 00", k), SYSEXT_EPERM);
    cr_assert_eq(sx_notary_http_status(SYSEXT_EPERM), 401);
}
