#include "util/common.h"

#include <criterion/criterion.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sysextd/owner.h"
#include "sysextd/peer.h"
#include "util/fs.h"

static void expect_app(const char *exe, const char *app)
{
    char *got = sxd_app_path_of_exe(exe);
    if (!app) {
        cr_assert_null(got, "%s -> %s", exe, got);
    } else {
        cr_assert_not_null(got, "%s", exe);
        cr_assert_str_eq(got, app);
    }
    free(got);
}

Test(peer, app_path_of_exe)
{
    expect_app("/Applications/Foo.app/Contents/MacOS/Foo", "/Applications/Foo.app");
    expect_app("/opt/applications/A B.app/Contents/MacOS/x", "/opt/applications/A B.app");
    expect_app("/usr/bin/foo", NULL);
    expect_app("/Applications/Foo.app/Contents/MacOS/", NULL);
    expect_app("/Applications/Foo/Contents/MacOS/Foo", NULL);
    expect_app("/Applications/.app/Contents/MacOS/Foo", NULL);
    expect_app("/Applications/Foo.app/Contents/Resources/Foo", NULL);
    expect_app("/Applications/Foo.app/Contents/MacOS/sub/Foo", NULL);
    expect_app("Foo.app/Contents/MacOS/Foo", "Foo.app");
    expect_app("", NULL);
}

Test(peer, credentials_of_a_socketpair)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sxd_peer p;
    cr_assert_eq(sxd_peer_from_fd(sv[0], &p), 0);
    cr_assert_eq(p.pid, getpid());
    cr_assert_eq(p.uid, getuid());
    cr_assert_not_null(p.exe);
    cr_assert(strstr(p.exe, "test_sysextd_peer"), "%s", p.exe);
    cr_assert(sxd_peer_alive(&p));
    /* This test binary is no app's main executable: refused with code 3. */
    sxd_code app;
    int oserr = 0;
    cr_assert_lt(sxd_peer_app(&p, NULL, 0, &app, &oserr), 0);
    cr_assert_eq(oserr, 3);
    cr_assert(strstr(sx_errmsg(), "not the main executable of an app bundle"), "%s", sx_errmsg());
    sxd_peer_clear(&p);
    close(sv[0]);
    close(sv[1]);
}

Test(owner, grace_period_starts_when_the_app_leaves)
{
    char tmp[] = "/tmp/sxd-owner-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    _sx_cleanup_free_ char *app = sx_path_join(tmp, "Host.app");
    _sx_cleanup_free_ char *moved = sx_path_join(tmp, "Trash.app");
    cr_assert_eq(sx_mkdir_p(app, 0755), 0);
    sxd_owner *o = NULL;
    cr_assert_eq(sxd_owner_open(0.1, &o), 0);
    cr_assert_eq(sxd_owner_add(o, app), 0);
    cr_assert_eq(sxd_owner_add(o, app), 0, "idempotent");
    cr_assert_eq(sxd_owner_timeout_ms(o), -1, "nothing happened yet");
    cr_assert_null(sxd_owner_take_due(o));
    cr_assert_eq(rename(app, moved), 0);
    usleep(20000);
    cr_assert_eq(sxd_owner_handle(o), 0);
    int t = sxd_owner_timeout_ms(o);
    cr_assert(t >= 0 && t <= 100, "grace period running: %d", t);
    cr_assert_null(sxd_owner_take_due(o), "not before the grace period ends");
    usleep(120000);
    char *due = sxd_owner_take_due(o);
    cr_assert_not_null(due);
    cr_assert_str_eq(due, app);
    free(due);
    cr_assert_eq(sxd_owner_timeout_ms(o), -1);
    /* Unrelated names in the same folder do not count. */
    _sx_cleanup_free_ char *other = sx_path_join(tmp, "Other.app");
    cr_assert_eq(sx_mkdir_p(other, 0755), 0);
    usleep(20000);
    cr_assert_eq(sxd_owner_handle(o), 0);
    cr_assert_eq(sxd_owner_timeout_ms(o), -1);
    sxd_owner_remove(o, app);
    sxd_owner_close(o);
    sx_rm_rf(tmp);
}
