/* Administration is for root, the daemon's own user, and members of --admin-group: checked
 * against the caller's live credentials. Needs root to make callers with other credentials. */
#include "util/common.h"

#include <criterion/criterion.h>
#include <grp.h>

#include "harness.h"
#include "sysext/activation.h"
#include "util/fs.h"

#define ADMIN_GID 4242
#define NOBODY 65534

static char tmp[] = "/tmp/sxd-admin-XXXXXX";
static char sock[256], log_path[256], state[256];
static pid_t daemon_pid = -1;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(tmp));
    cr_assert_eq(chmod(tmp, 0755), 0);
    snprintf(sock, sizeof(sock), "%s/s.sock", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    snprintf(state, sizeof(state), "%s/state", tmp);
}

static void teardown(void)
{
    if (daemon_pid > 0)
        h_stop_daemon(daemon_pid);
    daemon_pid = -1;
    sx_rm_rf(tmp);
}

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 60);

static void start(const char *group)
{
    const char *argv[] = {"--state-dir", state, "--socket", sock, group ? "--admin-group" : NULL, group, NULL};
    daemon_pid = h_start_daemon(sock, log_path, NULL, argv);
    cr_assert_gt(daemon_pid, 0);
}

/* `sysextctl list` as uid/gid NOBODY with the given supplementary groups: 0 allowed,
 * 1 refused with EPERM (and the message names the group), 2 anything else. */
static int list_as(const gid_t *groups, size_t n, gid_t gid)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (setgroups(n, groups) < 0 || setgid(gid) < 0 || setuid(NOBODY) < 0)
            _exit(3);
        char *text = NULL;
        int rc = sysext_admin_list(sock, 0, &text);
        free(text);
        if (rc == 0)
            _exit(0);
        if (rc == SYSEXT_EPERM && strstr(sysext_last_error(), "needs root"))
            _exit(1);
        fprintf(stderr, "list: %d %s\n", rc, sysext_last_error());
        _exit(2);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(admin, group_member_may_administer_others_may_not)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run callers with other credentials");
    start("4242");
    gid_t member[] = {100, ADMIN_GID};
    cr_assert_eq(list_as(member, 2, NOBODY), 0, "a supplementary member is an admin");
    cr_assert_eq(list_as(NULL, 0, ADMIN_GID), 0, "the primary group counts too");
    gid_t other[] = {100};
    cr_assert_eq(list_as(other, 1, NOBODY), 1, "a non-member is refused");
}

Test(admin, without_admin_group_only_root)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run callers with other credentials");
    start(NULL);
    gid_t member[] = {ADMIN_GID};
    cr_assert_eq(list_as(member, 1, NOBODY), 1);
}

Test(admin, unknown_group_name_stops_the_daemon_with_a_message)
{
    const char *argv[] = {"--state-dir", state, "--socket", sock, "--admin-group",
                          "no-such-group-sysext", NULL};
    pid_t pid = h_start_daemon(sock, log_path, NULL, argv);
    cr_assert_eq(pid, -1, "the daemon must refuse an unknown group");
    size_t len = 0;
    char *log = NULL;
    cr_assert_eq(sx_read_file(log_path, 1 << 20, (uint8_t **)&log, &len), 0);
    cr_assert(memmem(log, len, "no group named 'no-such-group-sysext'", 37), "log: %.*s", (int)len, log);
    free(log);
}
