/* Device attach -> driver RUNNING, through the daemon's device services and the real driver
 * host: sxd_usb_attach of sysext-vusb's sensor (import, descriptor reads, registry nubs,
 * rematch, sxd_host_start), then the daemon's loop (sxd_host_dispatch, sxd_services_tick)
 * until on_state reports the sample driver (drivers/usbsample, build/.../usbsample-driver,
 * personality from drivers/usbsample/Info.plist) RUNNING: spawned sandboxed as the daemon
 * does (root: the driver uid; otherwise a user namespace), Create provider, Create driver,
 * Start answered kIOReturnSuccess. Each round then detaches and waits until the driver is
 * STOPPED and its process gone (not timed).
 *
 * Named baselines in the same run, interleaved round by round:
 *   - "bare USB/IP import" of the same device (sx_usbip_import + sx_usbip_client_free);
 *   - "fork+exec" of the same driver executable until it answers one message
 *     (drv_baseline.c, shared with bench_driver_start).
 * Medians compared.
 *
 *   bench_device_attach [rounds (default 50)] */
#include "util/common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/devices.h"
#include "sysextd/host.h"
#include "sysextd/proto.h"
#include "sysextd/services.h"
#include "usb/usbip_client.h"
#include "util/fs.h"

#include "drv_baseline.h"

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"
#define DRIVER_BIN SYSEXT_BINARY_DIR "/drivers/usbsample-driver"
#define DRIVER_INFO SYSEXT_SOURCE_DIR "/drivers/usbsample/Info.plist"
#define DRIVER_ID "com.example.usbsample.driver"
#define WAIT_MS 10000

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_d);
    return v[n / 2];
}

static double p90(const double *sorted, unsigned n)
{
    return sorted[n * 9 / 10];
}

/* The last instance reported STARTING (the attach's driver) and its last state. */
static uint64_t g_inst;
static const char *g_state;
static char g_why[256];

static void on_state(void *ctx, uint64_t instance, const char *state, const char *why)
{
    if (!strcmp(state, SXD_DRV_STARTING))
        g_inst = instance;
    if (instance == g_inst) {
        g_state = state;
        snprintf(g_why, sizeof(g_why), "%s", why ? why : "");
    }
    sxd_services_driver_state(ctx, instance, state, why);
}

/* One turn of the daemon's loop for the host and the device services (server.c's order). */
static void pump(sxd_daemon *d, int max_ms)
{
    int fd = -1;
    sxd_host_fds(d->host, &fd, 1);
    int t = sxd_host_next_timeout(d->host);
    if (t < 0 || t > max_ms)
        t = max_ms;
    if (d->services->need_rematch)
        t = 0;
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, t);
    sxd_host_dispatch(d->host);
    sxd_services_tick(d);
}

/* Pump until the attach's instance is in `state` (true) or failed / timed out (false). */
static bool pump_until(sxd_daemon *d, const char *state)
{
    double end = now_us() + WAIT_MS * 1000.0;
    while (!(g_state && !strcmp(g_state, state))) {
        if (g_state && strcmp(g_state, SXD_DRV_STARTING) && strcmp(g_state, SXD_DRV_RUNNING) &&
            strcmp(g_state, SXD_DRV_STOPPING))
            return false;
        if (now_us() > end)
            return false;
        pump(d, 100);
    }
    return true;
}

static pid_t start_vusb(unsigned *port)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        execl(VUSB_BIN, VUSB_BIN, "--listen", "127.0.0.1:0", "--device", "sensor", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[128] = "";
    size_t n = 0;
    while (n + 1 < sizeof(line) && read(p[0], line + n, 1) == 1 && line[n] != '\n')
        n++;
    line[n] = '\0';
    close(p[0]);
    if (pid < 0 || sscanf(line, "listening on 127.0.0.1:%u", port) != 1) {
        fprintf(stderr, "bench_device_attach: sysext-vusb: '%s'\n", line);
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        return -1;
    }
    return pid;
}

/* The staged bundle (scratch/usbsample.dext: Info.plist + the driver executable, readable by
 * the driver uid) and the daemon's view of it: one enabled dext with its personalities. */
static int stage(sxd_daemon *d, const char *scratch)
{
    char bundle[256], exe[320], info[320];
    snprintf(bundle, sizeof(bundle), "%s/usbsample.dext", scratch);
    snprintf(exe, sizeof(exe), "%s/usbsample-driver", bundle);
    snprintf(info, sizeof(info), "%s/Info.plist", bundle);
    if (mkdir(bundle, 0755) < 0 || sx_copy_tree(DRIVER_BIN, exe) < 0 ||
        sx_copy_tree(DRIVER_INFO, info) < 0 || chmod(exe, 0755) < 0 || chmod(info, 0644) < 0) {
        fprintf(stderr, "bench_device_attach: staging %s: %s\n", bundle, sx_errmsg());
        return -1;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (sx_read_file(info, 1u << 20, &data, &len) < 0) {
        fprintf(stderr, "bench_device_attach: %s\n", sx_errmsg());
        return -1;
    }
    plist_t root = NULL;
    plist_from_memory((const char *)data, (uint32_t)len, &root);
    free(data);
    plist_t pers = root ? plist_dict_get_item(root, "IOKitPersonalities") : NULL;
    int rc = pers ? sx_personality_set_add_bundle(&d->services->set, DRIVER_ID, "1", pers) : -1;
    plist_free(root);
    if (rc < 0) {
        fprintf(stderr, "bench_device_attach: %s: no usable IOKitPersonalities\n", DRIVER_INFO);
        return -1;
    }
    d->services->dexts = calloc(1, sizeof(sxd_dext));
    if (!d->services->dexts)
        return -1;
    d->services->n_dexts = 1;
    d->services->dexts[0] =
        (sxd_dext){strdup(DRIVER_ID), strdup("1"), strdup(bundle), strdup(exe)};
    return 0;
}

/* Detach and wait for STOPPED and the driver process gone. */
static int detach_and_wait(sxd_daemon *d, uint64_t nub, int err)
{
    pid_t pid = sxd_host_pid(d->host, g_inst);
    sxd_usb_detach(d, nub);
    if (!pump_until(d, SXD_DRV_STOPPED)) {
        dprintf(err, "bench_device_attach: instance %" PRIu64 " not stopped: %s %s\n", g_inst,
                g_state ? g_state : "?", g_why);
        return -1;
    }
    for (int k = 0; pid > 0 && k < 500 && kill(pid, 0) == 0; k++)
        pump(d, 10);
    return 0;
}

int main(int argc, char **argv)
{
    int r = argc > 1 ? atoi(argv[1]) : 50;
    if (r < 5 || r > 100000) {
        fprintf(stderr, "usage: bench_device_attach [rounds >= 5 (default 50)]\n");
        return 2;
    }
    unsigned iters = (unsigned)r;
    if (access(DRIVER_BIN, X_OK) < 0 || access(VUSB_BIN, X_OK) < 0) {
        fprintf(stderr, "bench_device_attach: needs %s and %s (build them)\n", DRIVER_BIN, VUSB_BIN);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char scratch[] = "/tmp/sx-bench-attach-XXXXXX";
    if (!mkdtemp(scratch) || chmod(scratch, 0755) < 0)
        return 2;
    char rundir[64];
    snprintf(rundir, sizeof(rundir), "%s/run", scratch);

    int rc = 2;
    unsigned port = 0;
    pid_t vpid = start_vusb(&port);
    static sxd_daemon d;
    double *a = calloc(iters, sizeof(double)), *b = calloc(iters, sizeof(double)),
           *c = calloc(iters, sizeof(double)), *q = calloc(iters, sizeof(double));
    int saved_err = -1;
    char url[128];
    snprintf(url, sizeof(url), "usbip://127.0.0.1:%u/1-1", port);
    d.services = calloc(1, sizeof(*d.services));
    if (vpid < 0 || !a || !b || !c || !q || !d.services)
        goto out;
    sx_personality_set_init(&d.services->set);
    d.services->launching = -1;
    if (sx_registry_new(&d.registry) < 0)
        goto out;
    /* As sysextd configures its host (host_daemon.c): sandbox AUTO, default driver uid. */
    sxd_host_config hc = {.runtime_dir = rundir, .on_state = on_state, .ctx = &d};
    if (sxd_host_new(&hc, &d.host) < 0) {
        fprintf(stderr, "bench_device_attach: %s\n", sx_errmsg());
        goto out;
    }
    d.services->own_host = true;
    if (stage(&d, scratch) < 0)
        goto out;

    /* The daemon logs every attach, start and stop, and the driver logs too: not measured. */
    fflush(stderr);
    saved_err = dup(2);
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 2);
    close(nul);
    for (unsigned i = 0; i < iters; i++) {
        double t0 = now_us();
        sx_usbip_client *cl = NULL;
        if (sx_usbip_import(&cl, "127.0.0.1", (uint16_t)port, "1-1", 2000) < 0) {
            dprintf(saved_err, "bench_device_attach: import: %s\n", sx_errmsg());
            break;
        }
        b[i] = now_us() - t0;
        sx_usbip_client_free(cl);
        /* sysext-vusb frees the device when it sees the connection close. */
        usleep(2000);

        if (sx_bench_fork_exec_once(DRIVER_BIN, &c[i]) < 0)
            break;

        g_inst = 0;
        g_state = NULL;
        uint64_t nub = 0;
        t0 = now_us();
        if (sxd_usb_attach(&d, url, &nub) < 0) {
            dprintf(saved_err, "bench_device_attach: attach: %s\n", sx_errmsg());
            break;
        }
        q[i] = now_us() - t0; /* sxd_host_start returned: the start is requested */
        if (!g_inst) {
            dprintf(saved_err, "bench_device_attach: round %u: no driver started\n", i);
            break;
        }
        if (!pump_until(&d, SXD_DRV_RUNNING)) {
            dprintf(saved_err, "bench_device_attach: round %u: driver not running: %s %s\n", i,
                    g_state ? g_state : "(no state)", g_why);
            break;
        }
        a[i] = now_us() - t0;
        if (detach_and_wait(&d, nub, saved_err) < 0)
            break;
        usleep(2000);
        if (i + 1 == iters)
            rc = 0;
    }
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    if (rc == 0) {
        double ma = median(a, iters), mb = median(b, iters), mc = median(c, iters),
               mq = median(q, iters);
        printf("device attach -> driver RUNNING, median of %u rounds (interleaved):\n", iters);
        printf("  baseline bare USB/IP import                 %8.0f us (p90 %.0f)\n", mb, p90(b, iters));
        printf("  baseline fork+exec driver, one answer       %8.0f us (p90 %.0f)\n", mc, p90(c, iters));
        printf("  sxd_usb_attach returned (start requested)   %8.0f us (p90 %.0f)\n", mq, p90(q, iters));
        printf("  sxd_usb_attach -> RUNNING (sandboxed)       %8.0f us (p90 %.0f)\n", ma, p90(a, iters));
        printf("ratio attach/import: %.2fx\n", ma / mb);
        printf("ratio attach/fork+exec: %.2fx\n", ma / mc);
        printf("ratio attach/(import + fork+exec): %.2fx\n", ma / (mb + mc));
    }
out:
    free(a);
    free(b);
    free(c);
    free(q);
    if (d.services)
        sxd_services_stop(&d);
    if (vpid > 0) {
        kill(vpid, SIGTERM);
        waitpid(vpid, NULL, 0);
    }
    sx_rm_rf(scratch);
    return rc;
}
