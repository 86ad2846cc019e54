/* Driver hosting: a real driver executable (tests/data/hostdriver) started by sxd_host in its
 * sandbox; lifecycle, sandbox denials, crash with backoff and give-up, a malformed driver,
 * while another driver keeps answering. Runs as root (uid sandbox user 65534 in a user
 * namespace) and as an unprivileged user (user namespace mapped to the caller). */
#include "util/common.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

#include "HostTestDriver.h"
#include "sysextd/host.h"
#include "sysextd/owner.h"
#include "util/fs.h"

static char scratch[64];
static unsigned reply_timeout = 3000;
static sxd_sandbox_mode sandbox_mode = SXD_SANDBOX_USERNS;
static char bundle[128], exe[192], rundir[128];

#define MAX_EV 256
static struct ev {
    uint64_t inst;
    char state[24];
    char why[160];
    int64_t ms;
} evs[MAX_EV];
static size_t nev;

static void on_state(void *ctx, uint64_t inst, const char *state, const char *why)
{
    (void)ctx;
    if (nev == MAX_EV)
        return;
    evs[nev].inst = inst;
    snprintf(evs[nev].state, sizeof(evs[nev].state), "%s", state);
    snprintf(evs[nev].why, sizeof(evs[nev].why), "%s", why ? why : "");
    evs[nev].ms = sxd_now_ms();
    nev++;
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(in, 0, "%s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    cr_assert_geq(out, 0, "%s: %s", to, strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

static void setup(void)
{
    nev = 0;
    reply_timeout = 3000;
    sandbox_mode = SXD_SANDBOX_USERNS;
    snprintf(scratch, sizeof(scratch), "/tmp/sx-host-XXXXXX");
    cr_assert_not_null(mkdtemp(scratch));
    chmod(scratch, 0755); /* the driver user must reach its bundle */
    snprintf(bundle, sizeof(bundle), "%s/HostTest.dext", scratch);
    snprintf(exe, sizeof(exe), "%s/HostTestDriver", bundle);
    snprintf(rundir, sizeof(rundir), "%s/run", scratch);
    cr_assert_eq(mkdir(bundle, 0755), 0);
    copy_file(HOST_TEST_DRIVER, exe);
}

static void teardown(void)
{
    sx_rm_rf(scratch);
}

TestSuite(host, .init = setup, .fini = teardown, .timeout = 30);

static sxd_host *new_host(unsigned limit, unsigned backoff, unsigned backoff_max)
{
    sxd_host_config c;
    memset(&c, 0, sizeof(c));
    c.runtime_dir = rundir;
    c.sandbox = sandbox_mode;
    c.restart_limit = limit;
    c.backoff_ms = backoff;
    c.backoff_max_ms = backoff_max;
    c.reply_timeout_ms = reply_timeout;
    c.on_state = on_state;
    sxd_host *h = NULL;
    int rc = sxd_host_new(&c, &h);
    cr_assert_eq(rc, 0, "%s", sx_errmsg());
    return h;
}

static uint64_t start(sxd_host *h, const char *bundle_id, const char *server, bool one_process,
                      uint64_t fail_start)
{
    plist_t props = plist_new_dict();
    plist_dict_set_item(props, "TestValue", plist_new_uint(42));
    plist_dict_set_item(props, "Name", plist_new_string("resources"));
    if (fail_start)
        plist_dict_set_item(props, "FailStart", plist_new_uint(fail_start));
    sxd_provider p = {.registry_id = 0x100000102ULL, .class_name = "IOUserResources", .properties = props};
    sxd_launch l = {.bundle_id = bundle_id, .bundle_path = bundle, .executable = exe, .server_name = server,
                    .user_class = "HostTestDriver", .one_process = one_process};
    uint64_t id = 0;
    int rc = sxd_host_start(h, &l, &p, &id);
    plist_free(props);
    cr_assert_eq(rc, 0, "%s", sx_errmsg());
    cr_assert_neq(id, 0);
    return id;
}

static void pump(sxd_host *h, int ms)
{
    int fd;
    cr_assert_eq(sxd_host_fds(h, &fd, 1), 1);
    int t = sxd_host_next_timeout(h);
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, t >= 0 && t < ms ? t : ms);
    sxd_host_dispatch(h);
}

/* Index of the nth (0-based) event `state` of `inst`, waiting up to `ms`; -1 on timeout. */
static long wait_event(sxd_host *h, uint64_t inst, const char *state, int nth, int ms)
{
    int64_t end = sxd_now_ms() + ms;
    for (;;) {
        int seen = 0;
        for (size_t i = 0; i < nev; i++)
            if (evs[i].inst == inst && !strcmp(evs[i].state, state) && seen++ == nth)
                return (long)i;
        if (sxd_now_ms() >= end)
            return -1;
        pump(h, 50);
    }
}

static kern_return_t call2(sxd_host *h, uint64_t id, uint64_t method, uint32_t arg, bool has_arg, uint64_t *a,
                           uint64_t *b, int *rc_out)
{
    DKIPCMessage call, reply;
    DKIPCMessage_Init(&call, kDKIPCCall, 0, method, 0);
    if (has_arg)
        cr_assert_eq(DKIPCMessage_AddU64(&call, arg), kIOReturnSuccess);
    int rc = sxd_host_call(h, id, &call, &reply);
    DKIPCMessage_Clear(&call);
    if (rc_out)
        *rc_out = rc;
    if (rc < 0)
        return kIOReturnIPCError;
    kern_return_t st = reply.status;
    if (a)
        cr_assert_eq(DKIPCMessage_GetU64(&reply, 0, a), kIOReturnSuccess);
    if (b)
        cr_assert_eq(DKIPCMessage_GetU64(&reply, 1, b), kIOReturnSuccess);
    DKIPCMessage_Clear(&reply);
    return st;
}

static pid_t ping(sxd_host *h, uint64_t id, uint64_t *uid)
{
    uint64_t pid = 0, u = 0;
    int rc = 0;
    kern_return_t st = call2(h, id, HostTestDriver_Ping_ID, 0, false, &pid, &u, &rc);
    cr_assert_eq(rc, 0, "ping %llu: %s", (unsigned long long)id, sx_errmsg());
    cr_assert_eq(st, kIOReturnSuccess);
    if (uid)
        *uid = u;
    return (pid_t)pid;
}

static uint64_t try_errno(sxd_host *h, uint64_t id, uint64_t method)
{
    uint64_t e = 0;
    int rc = 0;
    cr_assert_eq(call2(h, id, method, 0, false, &e, NULL, &rc), kIOReturnSuccess, "%s", sx_errmsg());
    return e;
}

static bool gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

Test(host, start_ping_provider_stop)
{
    sxd_host *h = new_host(3, 100, 1000);
    uint64_t id = start(h, "com.example.host", "com.example.host", false, 0);
    cr_assert_str_eq(sxd_host_state(h, id), SXD_DRV_STARTING);
    cr_assert_geq(wait_event(h, id, SXD_DRV_RUNNING, 0, 8000), 0, "never running: %s", nev ? evs[nev - 1].why : "");
    pid_t pid = ping(h, id, NULL);
    cr_assert_eq(pid, sxd_host_pid(h, id));
    /* the IOUserResources factory built the provider with the nub's properties */
    uint64_t v = 0;
    cr_assert_eq(call2(h, id, HostTestDriver_ProviderValue_ID, 0, false, &v, NULL, NULL), kIOReturnSuccess);
    cr_assert_eq(v, 42);
    plist_t snap = NULL;
    cr_assert_eq(sxd_host_snapshot(h, &snap), 0);
    cr_assert_eq(plist_array_get_size(snap), 1);
    char *state = NULL;
    plist_get_string_val(plist_dict_get_item(plist_array_get_item(snap, 0), "state"), &state);
    cr_assert_str_eq(state, "running");
    free(state);
    plist_free(snap);
    /* no UserClientProperties in this driver: IOService's NewUserClient answers kIOReturnError */
    int fd = -1;
    cr_assert_eq(sxd_host_open_user_client(h, id, 0, &fd), SYSEXT_EPROTO);
    cr_assert(strstr(sx_errmsg(), "kIOReturnError"), "%s", sx_errmsg());
    cr_assert_eq(sxd_host_open_user_client(h, 999, 0, &fd), SYSEXT_ENOTFOUND);

    cr_assert_eq(sxd_host_stop(h, id), 0);
    cr_assert_geq(wait_event(h, id, SXD_DRV_STOPPED, 0, 5000), 0);
    cr_assert_null(sxd_host_state(h, id));
    for (int i = 0; i < 100 && !gone(pid); i++)
        pump(h, 50);
    cr_assert(gone(pid), "driver process %d still there after stop", (int)pid);
    cr_assert_eq(sxd_host_stop(h, id), SYSEXT_ENOTFOUND);
    sxd_host_free(h);
}

Test(host, sandbox_denies_and_runs_unprivileged)
{
    sxd_host *h = new_host(3, 100, 1000);
    uint64_t id = start(h, "com.example.host", "com.example.host", false, 0);
    cr_assert_geq(wait_event(h, id, SXD_DRV_RUNNING, 0, 8000), 0);
    cr_assert_eq(try_errno(h, id, HostTestDriver_TryOpen_ID), EPERM);
    cr_assert_eq(try_errno(h, id, HostTestDriver_TrySocket_ID), EPERM);
    cr_assert_eq(try_errno(h, id, HostTestDriver_TryExec_ID), EPERM);
    /* stage 1: no namespaces, no signals to the daemon (same uid when not root) */
    cr_assert_eq(try_errno(h, id, HostTestDriver_TryUnshare_ID), EPERM);
    uint64_t e = 0;
    cr_assert_eq(call2(h, id, HostTestDriver_TryKill_ID, (uint32_t)getpid(), true, &e, NULL, NULL), kIOReturnSuccess);
    cr_assert_eq(e, EPERM);
    /* the uid the kernel sees outside the namespace is not root */
    uint64_t inner_uid = 0;
    pid_t pid = ping(h, id, &inner_uid);
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    unsigned ruid = 0, euid = 0;
    bool found = false;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2) {
            found = true;
            break;
        }
    fclose(f);
    cr_assert(found);
    cr_assert_neq(ruid, 0);
    cr_assert_neq(euid, 0);
    cr_assert_eq(ruid, geteuid() ? geteuid() : 65534);
    cr_assert_eq(inner_uid, ruid);
    /* and it has its own network namespace */
    char a[128] = "", b[128] = "";
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    cr_assert_gt(readlink(path, a, sizeof(a) - 1), 0);
    cr_assert_gt(readlink("/proc/self/ns/net", b, sizeof(b) - 1), 0);
    cr_assert_str_neq(a, b);
    sxd_host_free(h);
}

Test(host, crash_backoff_gave_up_other_driver_unaffected)
{
    sxd_host *h = new_host(4, 200, 5000);
    uint64_t a = start(h, "com.example.crashy", "com.example.crashy", false, 0);
    uint64_t b = start(h, "com.example.steady", "com.example.steady", false, 0);
    cr_assert_geq(wait_event(h, b, SXD_DRV_RUNNING, 0, 8000), 0);
    pid_t bpid = ping(h, b, NULL);
    int64_t delay[3] = {0};
    for (int n = 0; n < 4; n++) {
        cr_assert_geq(wait_event(h, a, SXD_DRV_RUNNING, n, 8000), 0, "run %d", n);
        int rc = 0;
        (void)call2(h, a, HostTestDriver_Crash_ID, n == 1 ? 2 : 1, true, NULL, NULL, &rc);
        cr_assert_eq(rc, SYSEXT_EPROTO);
        cr_assert_eq(ping(h, b, NULL), bpid, "the other driver was disturbed");
        if (n == 3)
            break;
        long c = wait_event(h, a, SXD_DRV_CRASHED, n, 5000);
        cr_assert_geq(c, 0);
        cr_assert_str_eq(evs[c].why, n == 1 ? "exited with signal 6" : "exited with signal 11");
        long s = wait_event(h, a, SXD_DRV_STARTING, n + 1, 5000);
        cr_assert_geq(s, 0);
        delay[n] = evs[s].ms - evs[c].ms;
    }
    long g = wait_event(h, a, SXD_DRV_GAVE_UP, 0, 5000);
    cr_assert_geq(g, 0);
    cr_assert_str_eq(evs[g].why, "exited with signal 11");
    /* 200, 400, 800 ms (plus scheduling noise): growing by about the backoff each time */
    cr_assert_geq(delay[0], 190, "first delay %lld", (long long)delay[0]);
    cr_assert_geq(delay[1] - delay[0], 100, "%lld then %lld", (long long)delay[0], (long long)delay[1]);
    cr_assert_geq(delay[2] - delay[1], 250, "%lld then %lld", (long long)delay[1], (long long)delay[2]);
    cr_assert_lt(delay[2], 2000, "third delay %lld", (long long)delay[2]);
    /* no relaunch after giving up */
    pump(h, 500);
    cr_assert_str_eq(sxd_host_state(h, a), SXD_DRV_GAVE_UP);
    cr_assert_eq(sxd_host_pid(h, a), 0);
    cr_assert_eq(ping(h, b, NULL), bpid);
    sxd_host_free(h);
}

Test(host, malformed_message_ends_only_that_driver)
{
    sxd_host *h = new_host(3, 100, 1000);
    uint64_t a = start(h, "com.example.liar", "com.example.liar", false, 0);
    uint64_t b = start(h, "com.example.steady", "com.example.steady", false, 0);
    cr_assert_geq(wait_event(h, a, SXD_DRV_RUNNING, 0, 8000), 0);
    cr_assert_geq(wait_event(h, b, SXD_DRV_RUNNING, 0, 8000), 0);
    pid_t bpid = ping(h, b, NULL);
    (void)call2(h, a, HostTestDriver_Garbage_ID, 0, false, NULL, NULL, NULL);
    long c = wait_event(h, a, SXD_DRV_CRASHED, 0, 5000);
    cr_assert_geq(c, 0);
    cr_assert(strstr(evs[c].why, "malformed call at offset"), "%s", evs[c].why);
    cr_assert_eq(ping(h, b, NULL), bpid);
    /* and it is relaunched */
    cr_assert_geq(wait_event(h, a, SXD_DRV_RUNNING, 1, 8000), 0);
    sxd_host_free(h);
}

Test(host, start_failed_is_not_restarted)
{
    sxd_host *h = new_host(3, 50, 1000);
    uint64_t a = start(h, "com.example.nodev", "com.example.nodev", false, 1);
    long f = wait_event(h, a, SXD_DRV_START_FAILED, 0, 8000);
    cr_assert_geq(f, 0);
    cr_assert_str_eq(evs[f].why, "Start returned kIOReturnNoDevice");
    pump(h, 300);
    cr_assert_str_eq(sxd_host_state(h, a), SXD_DRV_START_FAILED);
    cr_assert_eq(wait_event(h, a, SXD_DRV_STARTING, 1, 0), -1);
    sxd_host_free(h);
}

Test(host, one_process_shares_a_server)
{
    sxd_host *h = new_host(3, 50, 1000);
    uint64_t a = start(h, "com.example.shared", "SharedServer", true, 0);
    uint64_t b = start(h, "com.example.shared", "SharedServer", true, 0);
    cr_assert_geq(wait_event(h, a, SXD_DRV_RUNNING, 0, 8000), 0);
    cr_assert_geq(wait_event(h, b, SXD_DRV_RUNNING, 0, 8000), 0);
    pid_t pid = ping(h, a, NULL);
    cr_assert_eq(ping(h, b, NULL), pid);
    /* stopping one keeps the process for the other */
    cr_assert_eq(sxd_host_stop(h, a), 0);
    cr_assert_geq(wait_event(h, a, SXD_DRV_STOPPED, 0, 5000), 0);
    cr_assert_eq(ping(h, b, NULL), pid);
    sxd_host_free(h);
}

Test(host, silent_driver_is_killed_after_the_reply_timeout)
{
    reply_timeout = 400;
    sxd_host *h = new_host(3, 50, 1000);
    uint64_t a = start(h, "com.example.slow", "com.example.slow", false, 0);
    cr_assert_geq(wait_event(h, a, SXD_DRV_RUNNING, 0, 8000), 0);
    pid_t pid = sxd_host_pid(h, a);
    int rc = 0;
    int64_t t0 = sxd_now_ms();
    (void)call2(h, a, HostTestDriver_Hang_ID, 5000, true, NULL, NULL, &rc);
    cr_assert_eq(rc, SYSEXT_EPROTO);
    cr_assert_lt(sxd_now_ms() - t0, 3000);
    long c = wait_event(h, a, SXD_DRV_CRASHED, 0, 3000);
    cr_assert_geq(c, 0);
    cr_assert_str_eq(evs[c].why, "did not answer Call within 400 ms");
    cr_assert(gone(pid));
    sxd_host_free(h);
}

Test(host, stop_while_starting)
{
    sxd_host *h = new_host(3, 50, 1000);
    uint64_t a = start(h, "com.example.quick", "com.example.quick", false, 0);
    cr_assert_str_eq(sxd_host_state(h, a), SXD_DRV_STARTING);
    cr_assert_eq(sxd_host_stop(h, a), 0);
    cr_assert_geq(wait_event(h, a, SXD_DRV_STOPPED, 0, 8000), 0);
    cr_assert_null(sxd_host_state(h, a));
    sxd_host_free(h);
}

Test(host, uid_mode_as_root)
{
    if (geteuid() != 0) {
        /* the mode needs root: refused with a clear error instead */
        sandbox_mode = SXD_SANDBOX_UID;
        sxd_host *h = new_host(1, 50, 1000);
        uint64_t a = start(h, "com.example.uid", "com.example.uid", false, 0);
        long g = wait_event(h, a, SXD_DRV_GAVE_UP, 0, 3000);
        cr_assert_geq(g, 0);
        cr_assert_str_eq(evs[g].why, "sandbox mode 'uid' needs root");
        sxd_host_free(h);
        return;
    }
    sandbox_mode = SXD_SANDBOX_UID;
    sxd_host *h = new_host(3, 50, 1000);
    uint64_t a = start(h, "com.example.uid", "com.example.uid", false, 0);
    cr_assert_geq(wait_event(h, a, SXD_DRV_RUNNING, 0, 8000), 0, "%s", nev ? evs[nev - 1].why : "");
    uint64_t uid = 0;
    pid_t pid = ping(h, a, &uid);
    cr_assert_eq(uid, 65534); /* the default driver user, no user namespace */
    char p1[64], a1[128] = "", b1[128] = "";
    snprintf(p1, sizeof(p1), "/proc/%d/ns/user", (int)pid);
    cr_assert_gt(readlink(p1, a1, sizeof(a1) - 1), 0);
    cr_assert_gt(readlink("/proc/self/ns/user", b1, sizeof(b1) - 1), 0);
    cr_assert_str_eq(a1, b1);
    snprintf(p1, sizeof(p1), "/proc/%d/ns/mnt", (int)pid);
    memset(a1, 0, sizeof(a1));
    memset(b1, 0, sizeof(b1));
    cr_assert_gt(readlink(p1, a1, sizeof(a1) - 1), 0);
    cr_assert_gt(readlink("/proc/self/ns/mnt", b1, sizeof(b1) - 1), 0);
    cr_assert_str_neq(a1, b1);
    cr_assert_eq(try_errno(h, a, HostTestDriver_TryOpen_ID), EPERM);
    cr_assert_eq(try_errno(h, a, HostTestDriver_TrySocket_ID), EPERM);
    sxd_host_free(h);
}
