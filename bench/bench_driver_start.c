/* Driver start latency: sxd_host_start -> RUNNING (spawn in the sandbox: namespaces, mounts,
 * seccomp, exec; then Create provider, Create driver, Start, each answered) against the named
 * baseline, fork + exec of the same driver executable with no sandbox until it answers one
 * message on a socketpair. Also the host without its sandbox, to split the cost.
 * Ratio = host / baseline (medians).
 *
 *   bench_driver_start [rounds]     (default 40; needs the test driver, built with the tests)
 */
#include "util/common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/host.h"
#include "util/fs.h"

#include "drv_baseline.h"

static const char *last_state;
static uint64_t last_inst;

static void on_state(void *ctx, uint64_t inst, const char *state, const char *why)
{
    (void)ctx;
    (void)why;
    last_inst = inst;
    last_state = state;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return v[n / 2];
}

static bool pump_until(sxd_host *h, uint64_t inst, const char *state, int ms)
{
    double end = now_us() + ms * 1000.0;
    int fd;
    sxd_host_fds(h, &fd, 1);
    while (!(last_inst == inst && last_state && !strcmp(last_state, state))) {
        if (now_us() > end)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        int t = sxd_host_next_timeout(h);
        poll(&p, 1, t >= 0 && t < 100 ? t : 100);
        sxd_host_dispatch(h);
    }
    return true;
}

static sxd_host *new_host(const char *rundir, bool sandbox)
{
    sxd_host_config c;
    memset(&c, 0, sizeof(c));
    c.runtime_dir = rundir;
    c.sandbox = SXD_SANDBOX_USERNS;
    c.on_state = on_state;
    sxd_host *h = NULL;
    if (sxd_host_new(&c, &h) < 0) {
        fprintf(stderr, "bench_driver_start: %s\n", sx_errmsg());
        return NULL;
    }
    sxd_host_set_no_sandbox(h, !sandbox);
    return h;
}

/* one start -> RUNNING (timed), then stop and wait for the process to go (not timed) */
static int host_once(sxd_host *h, const char *bundle, const char *exe, double *out)
{
    plist_t props = plist_new_dict();
    plist_dict_set_item(props, "TestValue", plist_new_uint(1));
    sxd_provider p = {.registry_id = 1, .class_name = "IOUserResources", .properties = props};
    sxd_launch l = {.bundle_id = "com.example.bench", .bundle_path = bundle, .executable = exe,
                    .server_name = "bench", .user_class = "HostTestDriver"};
    uint64_t id = 0;
    double t0 = now_us();
    if (sxd_host_start(h, &l, &p, &id) < 0 || !pump_until(h, id, SXD_DRV_RUNNING, 10000)) {
        fprintf(stderr, "bench_driver_start: start failed: %s\n", last_state ? last_state : sx_errmsg());
        plist_free(props);
        return -1;
    }
    *out = now_us() - t0;
    plist_free(props);
    pid_t pid = sxd_host_pid(h, id);
    sxd_host_stop(h, id);
    pump_until(h, id, SXD_DRV_STOPPED, 10000);
    for (int k = 0; k < 500 && kill(pid, 0) == 0; k++) {
        int fd;
        sxd_host_fds(h, &fd, 1);
        struct pollfd pf = {fd, POLLIN, 0};
        poll(&pf, 1, 10);
        sxd_host_dispatch(h);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    if (rounds < 1 || rounds > 10000) {
        fprintf(stderr, "usage: bench_driver_start [rounds]\n");
        return 2;
    }
    const char *drv = SYSEXT_BINARY_DIR "/tests/unit/host/HostTestDriver";
    if (access(drv, X_OK) < 0) {
        fprintf(stderr, "bench_driver_start: %s: %s (build with the tests)\n", drv, strerror(errno));
        return 2;
    }
    char scratch[] = "/tmp/sx-bench-drv-XXXXXX";
    if (!mkdtemp(scratch))
        return 2;
    chmod(scratch, 0755);
    char bundle[128], exe[192], rundir[128], cmd[512];
    snprintf(bundle, sizeof(bundle), "%s/Bench.dext", scratch);
    snprintf(exe, sizeof(exe), "%s/HostTestDriver", bundle);
    snprintf(rundir, sizeof(rundir), "%s/run", scratch);
    mkdir(bundle, 0755);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", drv, exe);
    if (system(cmd) != 0)
        return 2;
    double *base = calloc((size_t)rounds, sizeof(double)), *host = calloc((size_t)rounds, sizeof(double)),
           *bare = calloc((size_t)rounds, sizeof(double));
    int rc = 2;
    sxd_host *hs = new_host(rundir, true), *hb = new_host(rundir, false);
    bool ok = base && host && bare && hs && hb;
    /* interleaved, so a change of the machine's load hits all three alike */
    for (int i = 0; ok && i < rounds; i++)
        ok = sx_bench_fork_exec_once(exe, &base[i]) == 0 && host_once(hs, bundle, exe, &host[i]) == 0 &&
             host_once(hb, bundle, exe, &bare[i]) == 0;
    if (ok) {
        double mb = median(base, rounds), mh = median(host, rounds), mn = median(bare, rounds);
        printf("driver start, median of %d (interleaved):\n", rounds);
        printf("  baseline fork+exec, one message answered   %8.0f us\n", mb);
        printf("  sxd_host_start -> RUNNING, no sandbox      %8.0f us  (%.2fx)\n", mn, mn / mb);
        printf("  sxd_host_start -> RUNNING, sandboxed       %8.0f us  (%.2fx)\n", mh, mh / mb);
        printf("ratio (sandboxed host / baseline): %.2fx\n", mh / mb);
        rc = 0;
    }
    sxd_host_free(hs);
    sxd_host_free(hb);
    free(base);
    free(host);
    free(bare);
    sx_rm_rf(scratch);
    return rc;
}
