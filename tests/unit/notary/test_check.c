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

/* ---- every executable signed (docs/notary-api.md, "Executables") ---- */

/* The first bytes of an ELF file: enough for the notary to recognise binary code. */
#define ELF_BYTES "\x7f" "ELF\x02\x01\x01\x03 not really a program\n"

/* Re-sign the app after changing its content (its extensions are already signed). */
static void resign_host(void)
{
    cr_assert_eq(sx_fx_sign("Host.app", "a.p12", "ents/app.plist"), 0, "%s", sx_errmsg());
}

static size_t count_code(const sx_report *log, const char *code)
{
    size_t n = 0;
    for (size_t i = 0; i < log->n; i++)
        if (log->v[i].sev == SX_SEV_ERROR && !strcmp(log->v[i].code, code))
            n++;
    return n;
}

/* An unsigned ELF among the resources is sealed by the app (verify --strict --deep passes, as
 * codesign's would) but is code nobody signed: the notary refuses it, naming its path. */
Test(check, stray_elf_in_resources_rejected)
{
    sx_fx_write("Host.app/Contents/Resources/helper", ELF_BYTES, 0755);
    resign_host();
    sx_report vr;
    sx_report_init(&vr);
    cr_assert_eq(sx_fx_verify("Host.app", &vr), 0, "verify --strict --deep stays codesign's");
    sx_report_free(&vr);
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, "unsigned-executable", "Host.app/Contents/Resources/helper");
    cr_assert_eq(count_code(&r.log, "unsigned-executable"), 1);
    for (size_t i = 0; i < r.log.n; i++)
        if (!strcmp(r.log.v[i].code, "unsigned-executable"))
            cr_assert_str_eq(r.log.v[i].path, "Host.app/Contents/Resources/helper");
    json_object *log = sx_notary_log_json(&r, "job-3", "host.zip", "TEAMAAAAAA");
    const char *s = json_object_to_json_string_ext(log, JSON_C_TO_STRING_PLAIN);
    cr_assert(strstr(s, "\"code\":\"unsigned-executable\",\"path\":\"Host.app\\/Contents\\/Resources\\/helper\""),
              "%s", s);
    cr_assert(strstr(s, "\"status\":\"Invalid\""), "%s", s);
    json_object_put(log);
    sx_notary_result_free(&r);
}

/* Binary code is found by its content, not its mode or folder: a shared library without the
 * exec bit in Contents/Library/Helpers and a Mach-O without a signature are refused too. */
Test(check, elf_and_macho_anywhere_rejected)
{
    sx_fx_write("Host.app/Contents/Library/Helpers/libtool.so", ELF_BYTES, 0644);
    /* MH_MAGIC_64 little-endian, then junk: a Mach-O without a signature. */
    sx_fx_write("Host.app/Contents/Resources/tool", "\xcf\xfa\xed\xfe\x07\x01\x01\x01junk", 0644);
    resign_host();
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, "unsigned-executable",
                 "Host.app/Contents/Library/Helpers/libtool.so");
    cr_assert(has_issue(&r.log, "unsigned-executable", "Host.app/Contents/Resources/tool"));
    cr_assert_eq(count_code(&r.log, "unsigned-executable"), 2);
    sx_notary_result_free(&r);
}

/* Scripts and data files with the exec bit are content: the app's seal covers their bytes
 * (verify reports any change), so they need no signature of their own. */
Test(check, exec_bit_data_and_scripts_are_sealed_content)
{
    sx_fx_write("Host.app/Contents/Resources/run.sh", "#!/bin/sh\necho hi\n", 0755);
    sx_fx_write("Host.app/Contents/Resources/notes", "plain text with the exec bit\n", 0755);
    resign_host();
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    if (r.status != SX_NOTARY_ACCEPTED)
        sx_fx_dump(&r.log);
    cr_assert_eq(r.status, SX_NOTARY_ACCEPTED);
    cr_assert_eq(sx_report_count(&r.log, SX_SEV_ERROR), 0);
    sx_notary_result_free(&r);
    /* ... and sealed: changing the script after signing is refused. */
    sx_fx_write("Host.app/Contents/Resources/run.sh", "#!/bin/sh\nrm -rf ~\n", 0755);
    pack("Host.app", "host2.zip");
    run("host2.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, NULL, "Host.app/Contents/Resources/run.sh");
    sx_notary_result_free(&r);
}

static void make_tool_app(const char *rel, const char *identity)
{
    char p[512];
    snprintf(p, sizeof p, "%s/Contents/Info.plist", rel);
    sx_fx_write(p, "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
                   "<key>CFBundleIdentifier</key><string>com.example.tool</string>"
                   "<key>CFBundleExecutable</key><string>Tool</string>"
                   "<key>CFBundlePackageType</key><string>APPL</string>"
                   "<key>CFBundleVersion</key><string>1.0</string></dict></plist>", 0644);
    snprintf(p, sizeof p, "%s/Contents/MacOS/Tool", rel);
    sx_fx_write(p, ELF_BYTES, 0755);
    cr_assert_eq(sx_fx_sign(rel, identity, NULL), 0, "%s", sx_errmsg());
}

/* ELF main executables of signed bundles are covered, at the top, in embedded extensions
 * and in a signed bundle kept among the resources; the ticket covers that bundle too. */
Test(check, signed_nested_code_accepted)
{
    sx_fx_write("Host.app/Contents/MacOS/Host", ELF_BYTES, 0755);
    sx_fx_write("src/com.example.sensor.dext/sensor", ELF_BYTES, 0755);
    cr_assert_eq(sx_rm_rf(sx_fx_path("Host.app/Contents/Library/SystemExtensions")), 0);
    cr_assert_eq(sx_mkdir_p(sx_fx_path("Host.app/Contents/Library/SystemExtensions"), 0755), 0);
    make_tool_app("Host.app/Contents/Resources/Tool.app", "a.p12");
    sx_fx_sign_all("a.p12");
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    if (r.status != SX_NOTARY_ACCEPTED)
        sx_fx_dump(&r.log);
    cr_assert_eq(r.status, SX_NOTARY_ACCEPTED);
    cr_assert_eq(sx_report_count(&r.log, SX_SEV_ERROR), 0);
    sx_ticket t = {.entries = r.entries, .n_entries = r.n_entries};
    const char *code[] = {"Host.app", "Host.app/Contents/Resources/Tool.app",
                          "Host.app/Contents/Library/SystemExtensions/com.example.sensor.dext"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(code); i++) {
        sx_ticket_entry e;
        cr_assert_eq(sx_ticket_code_cdhash(sx_fx_path(code[i]), &e), 0, "%s", sx_errmsg());
        cr_assert(sx_ticket_covers(&t, e.hash_type, e.cdhash), "%s not covered", code[i]);
    }
    sx_notary_result_free(&r);
}

/* A nested bundle signed ad hoc is not a notarizable signature: refused at its path, and its
 * executable counts as unsigned. */
Test(check, adhoc_nested_bundle_rejected)
{
    make_tool_app("Host.app/Contents/Resources/Tool.app", NULL);
    resign_host();
    pack("Host.app", "host.zip");
    sx_notary_result r;
    run("host.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, "untrusted-signature", "Host.app/Contents/Resources/Tool.app");
    cr_assert(has_issue(&r.log, "unsigned-executable", "Host.app/Contents/Resources/Tool.app/Contents/MacOS/Tool"));
    sx_notary_result_free(&r);
}

/* A loose ELF at the top of the archive is code even without the exec bit. */
Test(check, toplevel_elf_without_exec_bit_is_code)
{
    int err = 0;
    zip_t *z = zip_open(sx_fx_path("loose.zip"), ZIP_CREATE | ZIP_TRUNCATE, &err);
    cr_assert_not_null(z);
    zip_source_t *src = zip_source_buffer(z, ELF_BYTES, sizeof ELF_BYTES - 1, 0);
    cr_assert_not_null(src);
    cr_assert_geq(zip_file_add(z, "tool", src, ZIP_FL_ENC_UTF_8), 0, "%s", zip_strerror(z));
    cr_assert_eq(zip_close(z), 0);
    sx_notary_result r;
    run("loose.zip", "TEAMAAAAAA", &r);
    expect_issue(&r, SX_NOTARY_INVALID, "unsigned-code", "tool");
    sx_notary_result_free(&r);
}
