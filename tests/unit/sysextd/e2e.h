/* End-to-end fixture: a development CA, identities for two teams (and a Developer ID one),
 * signed extensions and host apps whose main executable is the sample app, and a sysextd in a
 * temp dir. Needs the codesign and bundle subsystems. */
#ifndef SXD_TEST_E2E_H
#define SXD_TEST_E2E_H

#include "util/common.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>

#include "codesign/identity.h"
#include "harness.h"
#include "sysext/activation.h"
#include "sysext/codesign.h"
#include "sysextd/store.h"
#include "util/fs.h"

#define TEAM_A "TEAMAAAAAA"
#define TEAM_B "TEAMBBBBBB"
#define EXT1 "com.example.drv"
#define EXT2 "com.example.other"

static char e_dir[64];
static char e_sock[256], e_log[256], e_state[256];
static pid_t e_pid = -1;

__attribute__((unused)) static const char *P(const char *rel)
{
    static char bufs[16][1024];
    static int i;
    char *b = bufs[i++ % 16];
    snprintf(b, 1024, "%s/%s", e_dir, rel);
    return b;
}

static void e_write(const char *path, const char *content, int mode)
{
    char *dir = sx_path_dirname(path);
    cr_assert_eq(sx_mkdir_p(dir, 0755), 0, "%s", sx_errmsg());
    free(dir);
    cr_assert_eq(sx_write_file_atomic(path, content, strlen(content), (mode_t)mode), 0, "%s",
                 sx_errmsg());
}

static void e_ents(const char *path, const char *const *keys)
{
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof(buf),
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist "
                                "version=\"1.0\">\n<dict>\n");
    for (size_t i = 0; keys && keys[i]; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "<key>%s</key>%s\n", keys[i],
                              strstr(keys[i], ".transport.usb")
                                  ? "<array><dict><key>idVendor</key><integer>1234</integer>"
                                    "</dict></array>"
                                  : "<true/>");
    snprintf(buf + o, sizeof(buf) - o, "</dict>\n</plist>\n");
    e_write(path, buf, 0644);
}

static void e_info(const char *path, const char *id, const char *exe, const char *type,
                   const char *sv, const char *v, const char *extra)
{
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n"
             "<key>CFBundleIdentifier</key><string>%s</string>\n"
             "<key>CFBundleExecutable</key><string>%s</string>\n"
             "<key>CFBundlePackageType</key><string>%s</string>\n"
             "<key>CFBundleVersion</key><string>%s</string>\n"
             "<key>CFBundleShortVersionString</key><string>%s</string>\n"
             "<key>CFBundleName</key><string>%s</string>\n%s</dict>\n</plist>\n",
             id, exe, type, v, sv, exe, extra ? extra : "");
    e_write(path, buf, 0644);
}

static int e_sign(const char *path, const char *identity, const char *ents)
{
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    if (identity)
        o.identity = identity;
    else
        o.adhoc = 1;
    o.entitlements = ents;
    o.threads = 1;
    return sysext_sign(path, &o);
}

/* src/<id>-<v>.dext/<id>.dext: a signed dext (identity NULL: left unsigned). */
__attribute__((unused)) static const char *e_make_dext(const char *id, const char *sv,
                                                       const char *v, const char *identity,
                                                       bool usage)
{
    static char out[1024];
    char rel[512];
    snprintf(rel, sizeof(rel), "src/%s-%s-%s-%s/%s.dext", id, sv, v,
             identity ? sx_path_basename(identity) : "unsigned", id);
    snprintf(out, sizeof(out), "%s", P(rel));
    if (sx_is_dir(out))
        return out;
    char f[1100];
    snprintf(f, sizeof(f), "%s/Info.plist", out);
    e_info(f, id, "drv", "DEXT", sv, v,
           usage ? "<key>OSBundleUsageDescription</key><string>Talks to the widget</string>\n"
                 : "");
    snprintf(f, sizeof(f), "%s/drv", out);
    e_write(f, "\x7f" "ELF driver payload\n", 0755);
    if (identity)
        cr_assert_eq(e_sign(out, identity, P("ents/dext.plist")), 0, "%s", sx_errmsg());
    return out;
}

/* An app at `app_rel` (e.g. "Applications/Host.app") with main executable "Host" (the sample
 * app), embedding copies of `exts`, signed with `identity` and `ents`. Replaces any old one. */
__attribute__((unused)) static const char *e_make_app(const char *app_rel, const char *app_id,
                                                      const char *identity, const char *ents,
                                                      const char *const *exts)
{
    static char out[1024];
    snprintf(out, sizeof(out), "%s", P(app_rel));
    /* Build beside, then move into place, so a watcher sees one change. */
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%.*s-new.app", (int)(strlen(out) - 4), out);
    sx_rm_rf(tmp);
    char f[1200];
    snprintf(f, sizeof(f), "%s/Contents/Info.plist", tmp);
    e_info(f, app_id, "Host", "APPL", "1.0", "1", NULL);
    snprintf(f, sizeof(f), "%s/Contents/MacOS", tmp);
    cr_assert_eq(sx_mkdir_p(f, 0755), 0);
    snprintf(f, sizeof(f), "%s/Contents/MacOS/Host", tmp);
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(sx_read_file(SAMPLE_APP_BIN, 64u << 20, &data, &len), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_write_file_atomic(f, data, len, 0755), 0);
    free(data);
    snprintf(f, sizeof(f), "%s/Contents/Library/SystemExtensions", tmp);
    cr_assert_eq(sx_mkdir_p(f, 0755), 0);
    for (size_t i = 0; exts && exts[i]; i++) {
        char dst[1400];
        snprintf(dst, sizeof(dst), "%s/%s", f, sx_path_basename(exts[i]));
        cr_assert_eq(sx_copy_tree(exts[i], dst), 0, "%s", sx_errmsg());
    }
    if (identity)
        cr_assert_eq(e_sign(tmp, identity, ents), 0, "%s", sx_errmsg());
    char *parent = sx_path_dirname(out);
    sx_mkdir_p(parent, 0755);
    free(parent);
    sx_rm_rf(out);
    cr_assert_eq(rename(tmp, out), 0);
    return out;
}

static void e_setup(void)
{
    /* tmpfs when there is one: these tests fsync a lot and only need process-crash safety. */
    snprintf(e_dir, sizeof(e_dir), "%s/sxd-e2e-XXXXXX",
             sx_is_dir("/dev/shm") && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    cr_assert_not_null(mkdtemp(e_dir));
    setenv("XDG_CACHE_HOME", P("cache"), 1);
    snprintf(e_sock, sizeof(e_sock), "%s/sysextd.sock", e_dir);
    snprintf(e_log, sizeof(e_log), "%s/sysextd.log", e_dir);
    snprintf(e_state, sizeof(e_state), "%s/state", e_dir);
    /* Keys take seconds to make: the PKI is made once per build tree and copied. */
    const char *pki = SYSEXT_BINARY_DIR "/tests/sysextd-pki";
    if (!sx_path_exists(SYSEXT_BINARY_DIR "/tests/sysextd-pki/done")) {
        char made[512];
        snprintf(made, sizeof(made), "%s.XXXXXX", pki);
        sx_mkdir_p(SYSEXT_BINARY_DIR "/tests", 0755);
        cr_assert_not_null(mkdtemp(made));
        char p1[600], p2[600];
        snprintf(p1, sizeof(p1), "%s/ca", made);
        cr_assert_eq(sx_ca_init(p1), 0, "%s", sx_errmsg());
        snprintf(p2, sizeof(p2), "%s/a.p12", made);
        cr_assert_eq(sx_identity_create(p1, TEAM_A, "Apple Development: A", SX_ID_DEVELOPMENT, "",
                                        p2),
                     0, "%s", sx_errmsg());
        snprintf(p2, sizeof(p2), "%s/b.p12", made);
        cr_assert_eq(sx_identity_create(p1, TEAM_B, "Apple Development: B", SX_ID_DEVELOPMENT, "",
                                        p2),
                     0, "%s", sx_errmsg());
        snprintf(p2, sizeof(p2), "%s/a-devid.p12", made);
        cr_assert_eq(sx_identity_create(p1, TEAM_A, "Developer ID Application: A",
                                        SX_ID_DEVELOPER_ID, "", p2),
                     0, "%s", sx_errmsg());
        snprintf(p2, sizeof(p2), "%s/done", made);
        cr_assert_eq(sx_write_file_atomic(p2, "", 0, 0644), 0);
        if (rename(made, pki) < 0)
            sx_rm_rf(made); /* another test process made it first */
    }
    static const char *const pki_files[] = {"ca", "a.p12", "b.p12", "a-devid.p12"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(pki_files); i++) {
        char from[600];
        snprintf(from, sizeof(from), "%s/%s", pki, pki_files[i]);
        cr_assert_eq(sx_copy_tree(from, P(pki_files[i])), 0, "%s", sx_errmsg());
    }
    static const char *const dext[] = {"com.apple.developer.driverkit",
                                       "com.apple.developer.driverkit.transport.usb", NULL};
    static const char *const app[] = {"com.apple.developer.system-extension.install", NULL};
    e_ents(P("ents/dext.plist"), dext);
    e_ents(P("ents/app.plist"), app);
    e_ents(P("ents/none.plist"), NULL);
    cr_assert_eq(sx_mkdir_p(P("Applications"), 0755), 0);
    unsetenv("SYSEXT_SOCKET");
}

/* Start the daemon: extra args NULL-terminated (at most 8). */
__attribute__((unused)) static void e_start(const char *env, const char *const *extra)
{
    const char *argv[32] = {"--state-dir", e_state, "--socket", e_sock, "--trust",
                            P("ca/root.cert.pem"), "--allowed-location", P("Applications"),
                            "--grace-period", "0.2"};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    e_pid = h_start_daemon(e_sock, e_log, env, argv);
}

static void e_stop(void)
{
    if (e_pid > 0)
        h_stop_daemon(e_pid);
    e_pid = -1;
}

static void e_teardown(void)
{
    e_stop();
    if (getenv("SXD_KEEP"))
        fprintf(stderr, "kept %s\n", e_dir);
    else
        sx_rm_rf(e_dir);
}

/* Run the app: "<app>/Contents/MacOS/Host verb ext --socket S [more]"; output in out. */
__attribute__((unused)) static int e_app(const char *app, const char *verb, const char *ext,
                                         const char *more, char *out, size_t outlen)
{
    char exe[1100];
    snprintf(exe, sizeof(exe), "%s/Contents/MacOS/Host", app);
    const char *argv[10] = {exe, verb, ext, "--socket", e_sock};
    size_t n = 5;
    if (more) {
        argv[n++] = "--on-replace";
        argv[n++] = more;
    }
    argv[n] = NULL;
    return h_run(out, outlen, argv);
}

/* Start the app without waiting; its stdout comes through *fd_out. */
__attribute__((unused)) static pid_t e_app_spawn(const char *app, const char *verb,
                                                 const char *ext, int *fd_out)
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
        execl(exe, exe, verb, ext, "--socket", e_sock, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    *fd_out = pfd[0];
    return pid;
}

/* Read one line from fd (blocking, with a 10 s limit). */
__attribute__((unused)) static void e_read_line(int fd, char *line, size_t len)
{
    size_t n = 0;
    line[0] = '\0';
    for (int spins = 0; spins < 10000 && n + 1 < len;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0) {
            spins++;
            continue;
        }
        char c;
        if (read(fd, &c, 1) != 1)
            break;
        if (c == '\n')
            break;
        line[n++] = c;
        line[n] = '\0';
    }
}

__attribute__((unused)) static int e_wait(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

__attribute__((unused)) static char *e_list(void)
{
    char *text = NULL;
    cr_assert_eq(sysext_admin_list(e_sock, 0, &text), 0, "%s", sysext_last_error());
    return text;
}

__attribute__((unused)) static size_t e_count_staged(void)
{
    size_t n = 0;
    DIR *d = opendir(P("state/extensions"));
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

#endif
