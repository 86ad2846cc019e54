/* The daemon's side of user clients: the open check (reference 6, "User-client open checks")
 * and the ioservice-match / ioservice-open requests of a real sysextd.
 * A full open through the daemon, with a real driver, is in tests/unit/usbsample/test_story.c. */
#include "util/common.h"

#include <criterion/criterion.h>
#include <pthread.h>

#include "../sysextd/harness.h"
#include "sysext/errors.h"
#include "sysext/ioconnect.h"
#include "sysextd/daemon.h"
#include "sysextd/ioservice.h"
#include "uc_driver.h"
#include "sysextd/proto.h"
#include "util/fs.h"

#define DEXT "com.example.driver.dext"

static plist_t ents_with(const char *key, plist_t value)
{
    plist_t d = plist_new_dict();
    if (key)
        plist_dict_set_item(d, key, value);
    return d;
}

static plist_t str_array(const char *a, const char *b)
{
    plist_t arr = plist_new_array();
    if (a)
        plist_array_append_item(arr, plist_new_string(a));
    if (b)
        plist_array_append_item(arr, plist_new_string(b));
    return arr;
}

Test(uc_access, app_without_userclient_access_is_refused)
{
    plist_t app = ents_with("com.apple.developer.system-extension.install", plist_new_bool(1));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, NULL, false), SYSEXT_EPERM);
    cr_assert(strstr(sx_errmsg(), "com.apple.developer.driverkit.userclient-access"), "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), DEXT), "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), "kIOReturnNotPermitted"), "%s", sx_errmsg());
    /* no entitlements at all */
    cr_assert_eq(sxd_uc_access_check(NULL, DEXT, NULL, NULL, false), SYSEXT_EPERM);
    plist_free(app);
}

Test(uc_access, naming_another_driver_is_refused)
{
    plist_t app = ents_with(SXD_ENT_UC_ACCESS, str_array("com.example.other", "com.example.driver"));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, NULL, false), SYSEXT_EPERM);
    cr_assert(strstr(sx_errmsg(), "does not name " DEXT), "%s", sx_errmsg());
    plist_free(app);
}

Test(uc_access, boolean_true_is_not_an_array)
{
    plist_t app = ents_with(SXD_ENT_UC_ACCESS, plist_new_bool(1));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, NULL, false), SYSEXT_EPERM);
    cr_assert(strstr(sx_errmsg(), "must be an array"), "%s", sx_errmsg());
    plist_free(app);
}

Test(uc_access, naming_the_driver_or_allow_any_passes)
{
    plist_t app = ents_with(SXD_ENT_UC_ACCESS, str_array("com.example.other", DEXT));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, NULL, false), 0);
    plist_free(app);
    plist_t any = ents_with(SXD_ENT_UC_ANY, plist_new_bool(1));
    cr_assert_eq(sxd_uc_access_check(NULL, DEXT, any, NULL, false), 0);
    plist_free(any);
    plist_t no = ents_with(SXD_ENT_UC_ANY, plist_new_bool(0));
    cr_assert_eq(sxd_uc_access_check(NULL, DEXT, no, NULL, false), SYSEXT_EPERM);
    plist_free(no);
}

Test(uc_access, user_client_template_entitlements)
{
    plist_t app = ents_with(SXD_ENT_UC_ACCESS, str_array(DEXT, NULL));
    plist_dict_set_item(app, "com.example.ent.a", plist_new_bool(1));
    plist_t tmpl = plist_new_dict();
    plist_dict_set_item(tmpl, "IOUserClass", plist_new_string("MyUC"));
    /* a string requirement the app lacks */
    plist_dict_set_item(tmpl, "IOServiceDEXTEntitlements", plist_new_string("com.example.ent.b"));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, tmpl, false), SYSEXT_EPERM);
    cr_assert(strstr(sx_errmsg(), "com.example.ent.b"), "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), "IOServiceDEXTEntitlements"), "%s", sx_errmsg());
    /* any top-level element passing is enough */
    plist_dict_set_item(tmpl, "IOServiceDEXTEntitlements", str_array("com.example.ent.b", "com.example.ent.a"));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, tmpl, false), 0, "%s", sx_errmsg());
    /* a leaf array needs all of its keys */
    plist_t outer = plist_new_array();
    plist_array_append_item(outer, str_array("com.example.ent.a", "com.example.ent.c"));
    plist_dict_set_item(tmpl, "IOServiceDEXTEntitlements", outer);
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, tmpl, false), SYSEXT_EPERM);
    cr_assert(strstr(sx_errmsg(), "com.example.ent.c"), "%s", sx_errmsg());
    /* allow-any on the dext does not lift the template's requirement */
    plist_t any = ents_with(SXD_ENT_UC_ANY, plist_new_bool(1));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, any, tmpl, false), SYSEXT_EPERM);
    plist_free(any);
    /* the administrator key comes from being root / the admin, never from the app */
    plist_dict_set_item(tmpl, "IOServiceDEXTEntitlements", plist_new_string(SXD_ENT_ADMIN));
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, tmpl, false), SYSEXT_EPERM);
    cr_assert_eq(sxd_uc_access_check(app, DEXT, NULL, tmpl, true), 0);
    plist_free(tmpl);
    plist_free(app);
}

/* ---- a real daemon -------------------------------------------------------------------- */

static char tmp[] = "/tmp/sx-ioservice-XXXXXX";
static char sock[256], log_path[256], state[256];
static pid_t daemon_pid = -1;

static void dsetup(void)
{
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(sock, sizeof(sock), "%s/s.sock", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    snprintf(state, sizeof(state), "%s/state", tmp);
    const char *argv[] = { "--state-dir", state, "--socket", sock, NULL };
    daemon_pid = h_start_daemon(sock, log_path, NULL, argv);
    cr_assert_gt(daemon_pid, 0);
}

static void dteardown(void)
{
    h_stop_daemon(daemon_pid);
    sx_rm_rf(tmp);
}

TestSuite(ioservice_daemon, .init = dsetup, .fini = dteardown, .timeout = 60);

Test(ioservice_daemon, match)
{
    uint64_t *ids = (uint64_t *)1;
    size_t n = 99;
    int rc = sysext_ioservice_get_matching(sock, "{\"IOUserClass\": \"NoSuchDriver\"}", &ids, &n);
    cr_assert_eq(rc, 0, "%s", sysext_last_error());
    cr_assert_eq(n, 0u);
    cr_assert_null(ids);
    /* malformed matching: refused by the library before the daemon */
    cr_assert_eq(sysext_ioservice_get_matching(sock, "[1,2]", &ids, &n), SYSEXT_EFORMAT);
    cr_assert_eq(sysext_ioservice_get_matching(sock, "{\"IORegistryEntryID\": -1}", &ids, &n), SYSEXT_EFORMAT);
}

Test(ioservice_daemon, open_from_a_process_that_is_not_an_app_is_refused)
{
    sysext_ioconnect *c = (sysext_ioconnect *)1;
    /* the test binary is no app bundle: refused exactly as activation refuses it */
    cr_assert_eq(sysext_ioservice_open(sock, 12345, 0, &c), SYSEXT_EPERM);
    cr_assert_null(c);
    cr_assert(strstr(sysext_last_error(), "ioservice-open: the caller is not a verified app"), "%s",
              sysext_last_error());
}

Test(ioservice_daemon, malformed_open_requests)
{
    int fd = h_connect(sock);
    cr_assert_geq(fd, 0);
    plist_t m = sxd_msg_new("ioservice-open");
    sxd_dict_set_uint(m, "id", 7);
    sxd_dict_set_str(m, "service", "not a number");
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sxd_msg_encode(m, &b), 0);
    plist_free(m);
    cr_assert_eq(send(fd, b.data, b.len, MSG_NOSIGNAL), (ssize_t)b.len);
    sx_buf_free(&b);
    uint8_t buf[4096];
    size_t have = 0;
    plist_t r = NULL;
    for (int i = 0; i < 200 && !r; i++) {
        ssize_t n = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        size_t used = 0;
        if (sxd_msg_decode(buf, have, sizeof(buf), &r, &used) != 1)
            h_sleep_ms(10);
    }
    cr_assert_not_null(r);
    cr_assert_str_eq(sxd_dict_str(r, "type"), "reply");
    cr_assert_eq(sxd_dict_uint(r, "id", 0), 7u);
    cr_assert_eq(sxd_dict_uint(r, "err", 0), (uint64_t)-SYSEXT_EINVAL, "%s", sxd_dict_str(r, "message"));
    plist_free(r);
    close(fd);
}

/* ---- the descriptor hand-over: the daemon's reply code against the client library ----- */

struct fake {
    int listen_fd;
    int app_fd; /* the app's end of a driver connection, to hand over */
    int ok;
};

static void *fake_daemon(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    uint8_t buf[4096];
    size_t have = 0;
    plist_t req = NULL;
    while (!req && have < sizeof(buf)) {
        ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t used = 0;
        if (sxd_msg_decode(buf, have, sizeof(buf), &req, &used) != 1)
            req = NULL;
    }
    if (req && !strcmp(sxd_dict_str(req, "type"), "ioservice-open") && sxd_dict_uint(req, "service", 0) == 77 &&
        sxd_dict_uint(req, "uctype", 9) == 0) {
        sxd_conn c;
        memset(&c, 0, sizeof(c));
        c.fd = fd;
        sx_buf_init(&c.out, 1u << 20);
        /* something already queued: refused, nothing sent */
        sx_buf_append(&c.out, "x", 1);
        f->ok = sxd_ioservice_reply_fd(&c, 1, f->app_fd) == SYSEXT_EBUSY;
        c.out.len = 0;
        if (f->ok && sxd_ioservice_reply_fd(&c, sxd_dict_uint(req, "id", 0), f->app_fd) == 0 &&
            send(fd, c.out.data, c.out.len, MSG_NOSIGNAL) == (ssize_t)c.out.len)
            f->ok = 2;
        sx_buf_free(&c.out);
    }
    plist_free(req);
    close(fd);
    return NULL;
}

Test(ioservice_fd, open_reply_carries_the_driver_connection)
{
    char dir[] = "/tmp/sx-ucfd-XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s.sock", dir);
    struct fake f = { .listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(f.listen_fd, 1), 0);
    pid_t child = uc_driver_spawn(&f.app_fd);
    cr_assert_gt(child, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fake_daemon, &f), 0);
    sysext_ioconnect *c = NULL;
    int rc = sysext_ioservice_open(path, 77, 0, &c);
    pthread_join(t, NULL);
    close(f.app_fd);
    close(f.listen_fd);
    cr_assert_eq(f.ok, 2, "the daemon side of the hand-over failed");
    cr_assert_eq(rc, 0, "%s", sysext_last_error());
    /* the descriptor that came with the reply is a live connection to the driver */
    uint64_t in[2] = { 40, 2 }, out = 0;
    uint32_t nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(c, 0, in, 2, NULL, 0, &out, &nout, NULL, NULL), 0, "%s",
                 sysext_last_error());
    cr_assert_eq(out, 42u);
    sysext_ioconnect_close(c);
    int st = 0;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sx_rm_rf(dir);
}
