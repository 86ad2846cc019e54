/* End to end: the sample app asks a sysextd in a temp dir for its extensions. */
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "codesign/ticket.h"
#include "e2e.h"

#include <poll.h>

TestSuite(e2e, .init = e_setup, .fini = e_teardown, .timeout = 120);

static const char *app_with(const char *ext_path)
{
    const char *exts[] = {ext_path, NULL};
    return e_make_app("Applications/Host.app", "com.example.host", P("a.p12"), P("ents/app.plist"),
                      exts);
}

static void write_policy_allowing_team_a(void)
{
    e_write(P("policy.plist"),
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>AllowedTeamIdentifiers</key>"
            "<array><string>" TEAM_A "</string></array></dict></plist>",
            0644);
}

Test(e2e, activate_waits_for_approval_then_enabled)
{
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    e_start(NULL, NULL);
    cr_assert_gt(e_pid, 0);
    int fd;
    pid_t pid = e_app_spawn(app, "activate", EXT1, &fd);
    char line[512];
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "needs-user-approval");
    char *l = e_list();
    cr_assert(strstr(l, "1 extension(s)\n--- com.apple.system_extension.driver_extension"), "%s", l);
    cr_assert(strstr(l, "\t\t" TEAM_A "\t" EXT1 " (1.0/1)\tdrv\t[activated waiting for user]"), "%s",
              l);
    free(l);
    cr_assert_eq(sysext_admin_approve(e_sock, EXT1), 0, "%s", sysext_last_error());
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "finished completed");
    cr_assert_eq(e_wait(pid), 0);
    close(fd);
    l = e_list();
    cr_assert(strstr(l, "*\t*\t" TEAM_A "\t" EXT1 " (1.0/1)\tdrv\t[activated enabled]"), "%s", l);
    free(l);
    cr_assert_eq(e_count_staged(), 1);
    /* A second approval finds nothing waiting. */
    cr_assert_eq(sysext_admin_approve(e_sock, EXT1), SYSEXT_ENOTFOUND);
    /* Properties: the record, enabled. */
    char out[4096];
    cr_assert_eq(e_app(app, "properties", EXT1, NULL, out, sizeof(out)), 0);
    cr_assert(strstr(out, "properties " EXT1 " 1.0/1 state=activated_enabled enabled=1 "
                          "awaiting-approval=0 uninstalling=0 path="),
              "%s", out);
    cr_assert(strstr(out, "/state/extensions/"), "%s", out);
    cr_assert(strstr(out, "\nfinished completed\n"), "%s", out);
}

Test(e2e, policy_auto_approves_and_the_daemon_survives_a_restart)
{
    write_policy_allowing_team_a();
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(out, "finished completed\n");
    e_stop();
    e_start(NULL, extra);
    char *l = e_list();
    cr_assert(strstr(l, "*\t*\t" TEAM_A "\t" EXT1 " (1.0/1)"), "%s", l);
    free(l);
    char *pol = NULL;
    cr_assert_eq(sysext_admin_policy_show(e_sock, 0, &pol), 0);
    cr_assert(strstr(pol, TEAM_A), "%s", pol);
    free(pol);
    cr_assert_eq(sysext_admin_policy_show(e_sock, SYSEXT_OUTPUT_JSON, &pol), 0);
    json_object *j = json_tokener_parse(pol), *p, *teams, *over;
    cr_assert(j && json_object_object_get_ex(j, "policy", &p), "%s", pol);
    cr_assert(json_object_object_get_ex(p, "AllowedTeamIdentifiers", &teams), "%s", pol);
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(teams, 0)), TEAM_A);
    cr_assert(json_object_object_get_ex(p, "AllowUserOverrides", &over), "%s", pol);
    cr_assert(json_object_is_type(over, json_type_boolean) && json_object_get_boolean(over));
    json_object_put(j);
    free(pol);
}

Test(e2e, sighup_reloads_policy_and_completes_pending)
{
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    int fd;
    pid_t pid = e_app_spawn(app, "activate", EXT1, &fd);
    char line[512];
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "needs-user-approval");
    write_policy_allowing_team_a();
    kill(e_pid, SIGHUP);
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "finished completed");
    cr_assert_eq(e_wait(pid), 0);
    close(fd);
}

Test(e2e, replace_v1_with_v2_and_cancel_and_same_version)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    /* Same version: no question, no change. */
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "finished completed\n");
    cr_assert_eq(e_count_staged(), 1);
    /* v2, the delegate cancels: v1 stays. */
    app = app_with(e_make_dext(EXT1, "2.0", "2", P("a.p12"), true));
    cr_assert_eq(e_app(app, "activate", EXT1, "cancel", out, sizeof(out)), 1);
    cr_assert_str_eq(out, "replacing 1.0/1 with 2.0/2: cancel\n"
                          "failed 11 OSSystemExtensionErrorRequestCanceled\n");
    char *l = e_list();
    cr_assert(strstr(l, "1 extension(s)") && strstr(l, EXT1 " (1.0/1)"), "%s", l);
    free(l);
    cr_assert_eq(e_count_staged(), 1);
    /* v2, the delegate replaces: only v2 is left, enabled without a new approval. */
    cr_assert_eq(e_app(app, "activate", EXT1, "replace", out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(out, "replacing 1.0/1 with 2.0/2: replace\nfinished completed\n");
    l = e_list();
    cr_assert(strstr(l, "1 extension(s)") && strstr(l, "*\t*\t" TEAM_A "\t" EXT1 " (2.0/2)"), "%s",
              l);
    free(l);
    cr_assert_eq(e_count_staged(), 1);
    /* Developer mode: asked even with equal versions. */
    int en = 0;
    cr_assert_eq(sysext_admin_developer(e_sock, 1, &en), 0);
    cr_assert_eq(en, 1);
    cr_assert_eq(e_app(app, "activate", EXT1, "replace", out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(out, "replacing 2.0/2 with 2.0/2: replace\nfinished completed\n");
    cr_assert_eq(e_count_staged(), 1);
}

Test(e2e, upgrade_of_an_approved_extension_needs_no_new_approval)
{
    e_start(NULL, NULL);
    char out[4096];
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    int fd;
    pid_t pid = e_app_spawn(app, "activate", EXT1, &fd);
    char line[512];
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "needs-user-approval");
    cr_assert_eq(sysext_admin_approve(e_sock, EXT1), 0);
    cr_assert_eq(e_wait(pid), 0);
    close(fd);
    app = app_with(e_make_dext(EXT1, "1.1", "2", P("a.p12"), true));
    cr_assert_eq(e_app(app, "activate", EXT1, "replace", out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(out, "replacing 1.0/1 with 1.1/2: replace\nfinished completed\n");
}

Test(e2e, deactivate)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert_eq(e_app(app, "deactivate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(out, "finished completed\n");
    char *l = e_list();
    cr_assert_str_eq(l, "0 extension(s)\n");
    free(l);
    cr_assert_eq(e_count_staged(), 0);
    /* Nothing left to deactivate. */
    cr_assert_eq(e_app(app, "deactivate", EXT1, NULL, out, sizeof(out)), 1);
    cr_assert_str_eq(out, "failed 4 OSSystemExtensionErrorExtensionNotFound\n");
}

Test(e2e, app_removed_extensions_gone_app_updated_kept)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    /* An update replacing the bundle in place keeps ownership. */
    app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    h_sleep_ms(600);
    char *l = e_list();
    cr_assert(strstr(l, "1 extension(s)"), "%s", l);
    free(l);
    /* Moved to a trash folder: gone after the grace period. */
    cr_assert_eq(sx_mkdir_p(P("Trash"), 0755), 0);
    cr_assert_eq(rename(P("Applications/Host.app"), P("Trash/Host.app")), 0);
    for (int i = 0; i < 100; i++) {
        l = e_list();
        bool gone = !strcmp(l, "0 extension(s)\n");
        free(l);
        if (gone)
            break;
        h_sleep_ms(50);
    }
    l = e_list();
    cr_assert_str_eq(l, "0 extension(s)\n");
    free(l);
    cr_assert_eq(e_count_staged(), 0);
}

Test(e2e, app_deleted_while_the_daemon_was_down_and_gc)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), "--grace-period", "60", NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    e_stop();
    sx_rm_rf(P("Applications/Host.app"));
    e_start(NULL, extra);
    char *text = NULL;
    cr_assert_eq(sysext_admin_gc(e_sock, &text), 0, "%s", sysext_last_error());
    cr_assert(strstr(text, "Successfully cleaned up " TEAM_A "\t" EXT1 " (1.0/1)"), "%s", text);
    free(text);
    char *l = e_list();
    cr_assert_str_eq(l, "0 extension(s)\n");
    free(l);
}

Test(e2e, uninstall_and_reset_from_the_cli)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *exts[] = {e_make_dext(EXT1, "1.0", "1", P("a.p12"), true), NULL, NULL};
    char first[1024];
    snprintf(first, sizeof(first), "%s", exts[0]);
    exts[0] = first;
    exts[1] = e_make_dext(EXT2, "1.0", "1", P("a.p12"), true);
    const char *app = e_make_app("Applications/Host.app", "com.example.host", P("a.p12"),
                                 P("ents/app.plist"), exts);
    cr_assert_eq(e_app(app, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert_eq(e_app(app, "activate", EXT2, NULL, out, sizeof(out)), 0, "%s", out);
    const char *un[] = {SYSEXTCTL_BIN, "--socket", e_sock, "uninstall", TEAM_A, EXT1, NULL};
    cr_assert_eq(h_run(out, sizeof(out), un), 0, "%s", out);
    const char *un2[] = {SYSEXTCTL_BIN, "--socket", e_sock, "uninstall", TEAM_B, EXT2, NULL};
    cr_assert_eq(h_run(out, sizeof(out), un2), 2, "not found");
    const char *ls[] = {SYSEXTCTL_BIN, "--socket", e_sock, "list", "--json", NULL};
    cr_assert_eq(h_run(out, sizeof(out), ls), 0);
    cr_assert(strstr(out, "\"count\": 1") && strstr(out, EXT2), "%s", out);
    const char *rs[] = {SYSEXTCTL_BIN, "--socket", e_sock, "reset", NULL};
    cr_assert_eq(h_run(out, sizeof(out), rs), 0);
    cr_assert(strstr(out, "Successfully cleaned up " TEAM_A "\t" EXT2), "%s", out);
    cr_assert_eq(e_count_staged(), 0);
}

/* ---- refusals, each with its OSSystemExtensionError code -------------------------------- */

static void expect_refusal(const char *app, const char *ext, const char *line)
{
    char out[4096];
    cr_assert_eq(e_app(app, "activate", ext, NULL, out, sizeof(out)), 1, "%s", out);
    cr_assert_str_eq(out, line);
    char *l = e_list();
    cr_assert_str_eq(l, "0 extension(s)\n");
    free(l);
    cr_assert_eq(e_count_staged(), 0, "a refused copy was left behind");
}

Test(e2e, refused_unsigned_extension)
{
    e_start(NULL, NULL);
    /* Sign the app with a signed copy, then swap in an unsigned one. */
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    char dst[1100];
    snprintf(dst, sizeof(dst), "%s/Contents/Library/SystemExtensions/" EXT1 ".dext", app);
    sx_rm_rf(dst);
    cr_assert_eq(sx_copy_tree(e_make_dext(EXT1, "1.0", "1", NULL, true), dst), 0);
    expect_refusal(app, EXT1, "failed 8 OSSystemExtensionErrorCodeSignatureInvalid\n");
}

Test(e2e, refused_team_mismatch)
{
    e_start(NULL, NULL);
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("b.p12"), true));
    expect_refusal(app, EXT1, "failed 8 OSSystemExtensionErrorCodeSignatureInvalid\n");
}

Test(e2e, refused_missing_install_entitlement)
{
    e_start(NULL, NULL);
    const char *exts[] = {e_make_dext(EXT1, "1.0", "1", P("a.p12"), true), NULL};
    const char *app = e_make_app("Applications/Host.app", "com.example.host", P("a.p12"),
                                 P("ents/none.plist"), exts);
    expect_refusal(app, EXT1, "failed 2 OSSystemExtensionErrorMissingEntitlement\n");
}

Test(e2e, refused_app_outside_allowed_location)
{
    e_start(NULL, NULL);
    const char *exts[] = {e_make_dext(EXT1, "1.0", "1", P("a.p12"), true), NULL};
    const char *app = e_make_app("Downloads/Host.app", "com.example.host", P("a.p12"),
                                 P("ents/app.plist"), exts);
    expect_refusal(app, EXT1, "failed 3 OSSystemExtensionErrorUnsupportedParentBundleLocation\n");
    /* Developer mode lifts the location check. */
    cr_assert_eq(sysext_admin_developer(e_sock, 1, NULL), 0);
    int fd;
    pid_t pid = e_app_spawn(app, "activate", EXT1, &fd);
    char line[256];
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "needs-user-approval");
    kill(pid, SIGTERM);
    e_wait(pid);
    close(fd);
}

Test(e2e, refused_extension_not_in_the_app)
{
    e_start(NULL, NULL);
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    expect_refusal(app, "com.example.missing", "failed 4 OSSystemExtensionErrorExtensionNotFound\n");
    expect_refusal(app, "../../etc", "failed 4 OSSystemExtensionErrorExtensionNotFound\n");
}

Test(e2e, refused_caller_that_is_not_the_owning_app)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *ext = e_make_dext(EXT1, "1.0", "1", P("a.p12"), true);
    char extp[1024];
    snprintf(extp, sizeof(extp), "%s", ext);
    const char *app = app_with(extp);
    char app1[1024];
    snprintf(app1, sizeof(app1), "%s", app);
    cr_assert_eq(e_app(app1, "activate", EXT1, NULL, out, sizeof(out)), 0, "%s", out);
    /* Another app of the same team, embedding the same extension, may not deactivate it. */
    const char *exts[] = {extp, NULL};
    const char *other = e_make_app("Applications/Uninstaller.app", "com.example.uninstaller",
                                   P("a.p12"), P("ents/app.plist"), exts);
    cr_assert_eq(e_app(other, "deactivate", EXT1, NULL, out, sizeof(out)), 1);
    cr_assert_str_eq(out, "failed 4 OSSystemExtensionErrorExtensionNotFound\n");
    char *l = e_list();
    cr_assert(strstr(l, "1 extension(s)"), "%s", l);
    free(l);
    /* A program that is not an app's main executable at all. */
    const char *argv[] = {SAMPLE_APP_BIN, "deactivate", EXT1, "--socket", e_sock, NULL};
    cr_assert_eq(h_run(out, sizeof(out), argv), 1);
    cr_assert_str_eq(out, "failed 3 OSSystemExtensionErrorUnsupportedParentBundleLocation\n");
}

Test(e2e, refused_developer_id_without_ticket)
{
    const char *extra[] = {"--notary-cert", P("ca/root.cert.pem"), NULL};
    e_start(NULL, extra);
    const char *exts[] = {e_make_dext(EXT1, "1.0", "1", P("a-devid.p12"), true), NULL};
    const char *app = e_make_app("Applications/Host.app", "com.example.host", P("a-devid.p12"),
                                 P("ents/app.plist"), exts);
    expect_refusal(app, EXT1, "failed 8 OSSystemExtensionErrorCodeSignatureInvalid\n");
}

/* A notary of our own: an EC key and a self-signed certificate written to notary.pem. */
static EVP_PKEY *make_notary(X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    cr_assert(key && cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_NAME *n = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Test Notary", -1, -1, 0);
    X509_set_issuer_name(cert, n);
    X509_set_pubkey(cert, key);
    cr_assert(X509_sign(cert, key, EVP_sha256()) > 0);
    FILE *f = fopen(P("notary.pem"), "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, cert);
    fclose(f);
    *cert_out = cert;
    return key;
}

Test(e2e, developer_id_with_stapled_ticket_is_accepted)
{
    X509 *cert = NULL;
    EVP_PKEY *key = make_notary(&cert);
    const char *extra[] = {"--notary-cert", P("notary.pem"), NULL};
    e_start(NULL, extra);
    const char *exts[] = {e_make_dext(EXT1, "1.0", "1", P("a-devid.p12"), true), NULL};
    const char *app = e_make_app("Applications/Host.app", "com.example.host", P("a-devid.p12"),
                                 P("ents/app.plist"), exts);
    /* The ticket a notary issues for the app's submission: the app's and the dext's cdhash. */
    char ext_in_app[1200];
    snprintf(ext_in_app, sizeof(ext_in_app), "%s/Contents/Library/SystemExtensions/%s.dext", app,
             EXT1);
    sx_ticket_entry entries[2];
    cr_assert_eq(sx_ticket_code_cdhash(app, &entries[0]), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_ticket_code_cdhash(ext_in_app, &entries[1]), 0, "%s", sx_errmsg());
    const char *ids[] = {"com.example.host", EXT1};
    sx_ticket_content tc = {.team_id = TEAM_A, .bundle_ids = ids, .n_bundle_ids = 2,
                            .entries = entries, .n_entries = 2};
    sx_buf t = SX_BUF_INIT;
    cr_assert_eq(sx_ticket_build(&tc, key, cert, &t), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_ticket_staple_write(app, t.data, t.len), 0, "%s", sx_errmsg());
    sx_buf_free(&t);
    EVP_PKEY_free(key);
    X509_free(cert);

    int fd;
    pid_t pid = e_app_spawn(app, "activate", EXT1, &fd);
    char line[512];
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "needs-user-approval", "a stapled ticket lets Developer ID code in");
    cr_assert_eq(sysext_admin_approve(e_sock, EXT1), 0, "%s", sysext_last_error());
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "finished completed");
    cr_assert_eq(e_wait(pid), 0);
    close(fd);
}

Test(e2e, refused_dext_without_usage_description)
{
    e_start(NULL, NULL);
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), false));
    expect_refusal(app, EXT1, "failed 9 OSSystemExtensionErrorValidationFailed\n");
}

/* Run the app as uid/gid 65534 (needs root): not an administrator of the daemon. */
static int app_as_nobody(const char *app, const char *verb, const char *ext, char *out,
                         size_t outlen)
{
    char exe[1100];
    snprintf(exe, sizeof(exe), "%s/Contents/MacOS/Host", app);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(126);
        execl(exe, exe, verb, ext, "--socket", e_sock, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    out[0] = '\0';
    ssize_t n;
    while (len + 1 < outlen && (n = read(pfd[0], out + len, outlen - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(pfd[0]);
    return e_wait(pid);
}

Test(e2e, deactivation_needs_an_admin_unless_removable)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run the app as another user");
    /* The app must be reachable by the other user. */
    chmod(e_dir, 0755);
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(NULL, extra);
    char out[4096];
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    int rc = app_as_nobody(app, "activate", EXT1, out, sizeof(out));
    if (rc == 127 || rc == 126)
        cr_skip_test("cannot run the app as uid 65534 here");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "finished completed\n");
    cr_assert_eq(app_as_nobody(app, "deactivate", EXT1, out, sizeof(out)), 1);
    cr_assert_str_eq(out, "failed 13 OSSystemExtensionErrorAuthorizationRequired\n");
    /* Admin requests from a non-admin are refused too. */
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(126);
        execl(SYSEXTCTL_BIN, SYSEXTCTL_BIN, "--socket", e_sock, "uninstall", TEAM_A, EXT1,
              (char *)NULL);
        _exit(127);
    }
    rc = e_wait(pid);
    if (rc != 127)
        cr_assert_eq(rc, 2, "sysextctl uninstall as a non-admin: exit %d", rc);
    char *l = e_list();
    cr_assert(strstr(l, "1 extension(s)"), "%s", l);
    free(l);
    /* RemovableSystemExtensions lets the app deactivate it without an administrator. */
    e_write(P("policy.plist"),
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>AllowedTeamIdentifiers</key>"
            "<array><string>" TEAM_A "</string></array><key>RemovableSystemExtensions</key><dict>"
            "<key>" TEAM_A "</key><array><string>" EXT1 "</string></array></dict></dict></plist>",
            0644);
    kill(e_pid, SIGHUP);
    h_sleep_ms(200);
    cr_assert_eq(app_as_nobody(app, "deactivate", EXT1, out, sizeof(out)), 0, "%s", out);
    cr_assert_str_eq(out, "finished completed\n");
}

/* Copying and verifying a bundle happens off the event loop: while an activation is held in
 * its worker, an administrator is answered and a second app's request goes on. */
Test(e2e, verification_does_not_stall_other_clients)
{
    write_policy_allowing_team_a();
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start("SYSEXTD_TEST_JOB_DELAY_MS=1500", extra);
    const char *app = app_with(e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    int fd;
    pid_t pid = e_app_spawn(app, "activate", EXT1, &fd);
    h_sleep_ms(100);
    /* The list is answered while the activation still waits in its worker. */
    char *l = e_list();
    cr_assert(strstr(l, "0 extension(s)"), "%s", l);
    free(l);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 0), 0, "the activation finished before the list was answered");
    char line[512];
    e_read_line(fd, line, sizeof(line));
    cr_assert_str_eq(line, "finished completed");
    cr_assert_eq(e_wait(pid), 0);
    close(fd);
    l = e_list();
    cr_assert(strstr(l, "1 extension(s)"), "%s", l);
    free(l);
}
