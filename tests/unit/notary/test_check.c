/* The notary's checks on a submitted zip: accepted code yields every cdhash (nested code
 * included); not a zip, zip bomb, path traversal, unsigned code, wrong team and tampering
 * after signing are refused with a precise log entry. */
#include <criterion/criterion.h>

#include "util/common.h"

#include <zip.h>

#include "codesign/ticket.h"
#include "notary/check.h"
#include "tests/support/signfixture.h"
#include "sysext/archive.h"
#include "util/fs.h"

static void setup(void)
{
    sx_fx_setup();
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12"); /* team TEAMAAAAAA, Developer ID */
}

TestSuite(check, .init = setup, .fini = sx_fx_teardown);

static void run(const char *zip_rel, const char *team, sx_notary_result *r)
{
    const char *trust[] = {sx_fx_path("ca/root.cert.pem")};
    sx_notary_check_opts o = {.trust = trust, .n_trust = 1, .team_id = team,
                              .scratch_dir = sx_fx_dir};
    cr_assert_eq(sx_notary_check_zip(sx_fx_path(zip_rel), &o, r), 0, "%s", sx_errmsg());
}

static void pack(const char *bundle_rel, const char *zip_rel)
{
    cr_assert_eq(sysext_pack(sx_fx_path(bundle_rel), sx_fx_path(zip_rel), 0), 0, "%s",
                 sx_errmsg());
}

/* The log has an error with this code (any if NULL) whose path contains `path_part`. */
static bool has_issue(const sx_report *log, const char *code, const char *path_part)
{
    for (size_t i = 0; i < log->n; i++)
        if (log->v[i].sev == SX_SEV_ERROR && (!code || !strcmp(log->v[i].code, code)) &&
            log->v[i].path && strstr(log->v[i].path, path_part))
            return true;
    return false;
}

static void expect_issue(const sx_notary_result *r, sx_notary_status st, const char *code,
                         const char *path_part)
{
    if (r->status != st || !has_issue(&r->log, code, path_part))
        sx_fx_dump(&r->log);
    cr_assert_eq(r->status, st, "status %s", sx_notary_status_name(r->status));
    cr_assert(has_issue(&r->log, code, path_part), "no %s issue at %s", code, path_part);
    cr_assert_eq(r->n_entries, 0);
}

Test(check, accepted_covers_nested_code)
{
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    if (r.status != SX_NOTARY_ACCEPTED)
        sx_fx_dump(&r.log);
    cr_assert_eq(r.status, SX_NOTARY_ACCEPTED);
    cr_assert_eq(sx_report_count(&r.log, SX_SEV_ERROR), 0);
    sx_ticket t = {.entries = r.entries, .n_entries = r.n_entries};
    const char *code[] = {"Host.app", "Host.app/Contents/Library/SystemExtensions/com.example.sensor.dext",
                          "Host.app/Contents/Library/SystemExtensions/com.example.filter.systemextension"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(code); i++) {
        sx_ticket_entry e;
        cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path(code[i]), &e), 0, "%s", sx_errmsg());
        cr_assert(sx_ticket_covers(&t, e.hash_type, e.cdhash), "%s not covered", code[i]);
    }
    cr_assert_geq(r.n_entries, 3);
    cr_assert_eq(r.n_bundle_ids, 1);
    cr_assert_str_eq(r.bundle_ids[0], "com.example.host");
    json_object *log = sx_notary_log_json(&r, "job-1", "host.zip", "TEAMAAAAAA");
    const char *s = json_object_to_json_string_ext(log, JSON_C_TO_STRING_PLAIN);
    cr_assert(strstr(s, "\"status\":\"Accepted\""), "%s", s);
    cr_assert_eq(json_object_array_length(json_object_object_get(log, "ticketContents")),
                 r.n_entries);
    json_object_put(log);
    sx_notary_result_free(&r);
}

Test(check, wrong_team)
{
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMBBBBBB", &r);
    expect_issue(&r, SX_NOTARY_INVALID, "team-mismatch", "Host.app");
    cr_assert(strstr(r.log.v[0].message, "'TEAMAAAAAA'") && strstr(r.log.v[0].message, "'TEAMBBBBBB'"),
              "%s", r.log.v[0].message);
    json_object *log = sx_notary_log_json(&r, "job-2", "host.zip", "TEAMBBBBBB");
    const char *s = json_object_to_json_string_ext(log, JSON_C_TO_STRING_PLAIN);
    cr_assert(strstr(s, "\"status\":\"Invalid\""), "%s", s);
    cr_assert(strstr(s, "\"severity\":\"error\""), "%s", s);
    json_object_put(log);
    sx_notary_result_free(&r);
}

Test(check, tampered_after_signing)
{
    sx_fx_write("Host.app/Contents/Resources/icon.txt", "changed\n", 0644);
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, NULL, "icon.txt");
    sx_notary_result_free(&r);
}

Test(check, unsigned_code)
{
    sx_fx_write("Plain.app/Contents/Info.plist", "<?xml version=\"1.0\"?><plist version=\"1.0\">"
                "<dict><key>CFBundleIdentifier</key><string>com.example.plain</string>"
                "<key>CFBundleExecutable</key><string>Plain</string></dict></plist>", 0644);
    sx_fx_write("Plain.app/Contents/MacOS/Plain", "#!/bin/sh\n", 0755);
    pack("Plain.app", "plain.zip");
    sx_notary_result r;
    run("plain.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, "unsigned-code", "Plain.app");
    sx_notary_result_free(&r);
}

Test(check, not_a_zip)
{
    sx_fx_write("junk.zip", "this is not a zip archive at all", 0644);
    sx_notary_result r;
    run("junk.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_REJECTED, "archive-invalid", "junk.zip");
    sx_notary_result_free(&r);
}

/* A zip with one entry of `len` bytes of `fill`, named `name`. */
static void make_zip(const char *zip_rel, const char *name, size_t len, char fill)
{
    int err = 0;
    zip_t *z = zip_open(sx_fx_path(zip_rel), ZIP_CREATE | ZIP_TRUNCATE, &err);
    cr_assert_not_null(z);
    char *data = malloc(len);
    cr_assert_not_null(data);
    memset(data, fill, len);
    zip_source_t *src = zip_source_buffer(z, data, len, 0);
    cr_assert_not_null(src);
    zip_int64_t idx = zip_file_add(z, name, src, ZIP_FL_ENC_UTF_8);
    cr_assert_geq(idx, 0, "%s", zip_strerror(z));
    zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 9);
    cr_assert_eq(zip_close(z), 0);
    free(data);
}

Test(check, zip_bomb)
{
    make_zip("bomb.zip", "Bomb.app/zeros", 16u << 20, 0);
    sx_notary_result r;
    run("bomb.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_REJECTED, "archive-limit", "bomb.zip");
    sx_notary_result_free(&r);
}

Test(check, path_traversal)
{
    make_zip("evil.zip", "../../evil.txt", 10, 'x');
    sx_notary_result r;
    run("evil.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_REJECTED, "archive-unsafe", "evil.zip");
    cr_assert_not(sx_path_exists(sx_fx_path("../evil.txt")));
    sx_notary_result_free(&r);
}
