/* Device attach -> driver start requested, through the daemon's device services
 * (sysextd/devices.c, usb_attach.c: import, descriptor reads, registry nubs, rematch,
 * sxd_host_start), against the named baseline "bare USB/IP import" of the same device
 * (sx_usbip_import + sx_usbip_client_free) in the same run. Both against sysext-vusb's sensor
 * on 127.0.0.1; ITER rounds each, alternating; medians compared.
 *
 * The host is whatever sysextd links: the test stand-in while sysextd/host.c is not in the
 * tree (start requested = sxd_host_start called), the real host afterwards (then the process
 * spawn is not waited for either: sxd_host_start returns at once).
 *
 *   bench_device_attach [iterations (default 200)] */
#include "util/common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/devices.h"
#include "sysextd/host.h"
#include "sysextd/proto.h"
#include "sysextd/services.h"
#include "usb/usbip_client.h"

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"

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

static unsigned g_starts;

static void on_state(void *ctx, uint64_t instance, const char *state, const char *why)
{
    if (!strcmp(state, SXD_DRV_STARTING))
        g_starts++;
    sxd_services_driver_state(ctx, instance, state, why);
}

static pid_t start_vusb(unsigned *port)
{
    int p[2];
    if (pipe(p) < 0)
        exit(2);
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
    if (sscanf(line, "listening on 127.0.0.1:%u", port) != 1) {
        fprintf(stderr, "sysext-vusb: '%s'\n", line);
        exit(2);
    }
    return pid;
}

int main(int argc, char **argv)
{
    unsigned iters = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
    if (iters < 5 || iters > 100000)
        iters = 200;
    unsigned port = 0;
    pid_t vpid = start_vusb(&port);
    char url[128];
    snprintf(url, sizeof(url), "usbip://127.0.0.1:%u/1-1", port);

    static sxd_daemon d;
    d.services = calloc(1, sizeof(*d.services));
    sx_personality_set_init(&d.services->set);
    d.services->launching = -1;
    if (!d.services || sx_registry_new(&d.registry) < 0)
        return 2;
    sxd_host_config hc = {.runtime_dir = "/tmp", .on_state = on_state, .ctx = &d};
    if (sxd_host_new(&hc, &d.host) < 0)
        return 2;
    d.services->own_host = true;
    /* One enabled extension whose personality matches the sensor's interface. */
    plist_t p = plist_new_dict();
    sxd_dict_set_str(p, "CFBundleIdentifier", "com.example.sensor");
    sxd_dict_set_str(p, "IOProviderClass", "IOUSBHostInterface");
    sxd_dict_set_str(p, "IOUserClass", "SensorDriver");
    sxd_dict_set_str(p, "IOUserServerName", "com.example.sensor");
    sxd_dict_set_uint(p, "idVendor", 0x1209);
    sxd_dict_set_uint(p, "idProduct", 1);
    sxd_dict_set_uint(p, "bInterfaceNumber", 0);
    sxd_dict_set_uint(p, "bConfigurationValue", 1);
    plist_t all = plist_new_dict();
    plist_dict_set_item(all, "Sensor", p);
    sx_personality_set_add_bundle(&d.services->set, "com.example.sensor", "1", all);
    plist_free(all);
    d.services->dexts = calloc(1, sizeof(sxd_dext));
    d.services->n_dexts = 1;
    d.services->dexts[0] = (sxd_dext){strdup("com.example.sensor"), strdup("1"),
                                      strdup("/nonexistent"), strdup("/nonexistent/drv")};

    double *a = calloc(iters, sizeof(double)), *b = calloc(iters, sizeof(double));
    /* The daemon code logs every attach, start and stop: not in the measurement. */
    fflush(stderr);
    int saved_err = dup(2);
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 2);
    close(nul);
    for (unsigned i = 0; i < iters; i++) {
        double t0 = now_us();
        sx_usbip_client *c = NULL;
        if (sx_usbip_import(&c, "127.0.0.1", (uint16_t)port, "1-1", 2000) < 0) {
            dprintf(saved_err, "import: %s\n", sx_errmsg());
            return 2;
        }
        b[i] = now_us() - t0;
        sx_usbip_client_free(c);

        unsigned before = g_starts;
        uint64_t id = 0;
        t0 = now_us();
        if (sxd_usb_attach(&d, url, &id) < 0) {
            dprintf(saved_err, "attach: %s\n", sx_errmsg());
            return 2;
        }
        a[i] = now_us() - t0;
        if (g_starts != before + 1) {
            dprintf(saved_err, "attach %u: no driver start requested\n", i);
            return 2;
        }
        sxd_usb_detach(&d, id);
        /* sysext-vusb frees the device when it sees the connection close. */
        usleep(2000);
    }
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    qsort(a, iters, sizeof(double), cmp_d);
    qsort(b, iters, sizeof(double), cmp_d);
    double ma = a[iters / 2], mb = b[iters / 2];
    printf("device attach -> driver start requested: median %.0f us (p90 %.0f us), %u rounds\n",
           ma, a[iters * 9 / 10], iters);
    printf("baseline bare USB/IP import:              median %.0f us (p90 %.0f us)\n", mb,
           b[iters * 9 / 10]);
    printf("ratio attach/import: %.2fx\n", ma / mb);
    free(a);
    free(b);
    sxd_services_stop(&d);
    kill(vpid, SIGTERM);
    waitpid(vpid, NULL, 0);
    return 0;
}
