/* The sample driver's app: the main executable of USBSample.app, which embeds the driver.
 *
 *   usbsample-app activate [--on-replace replace|cancel]   ask sysextd to activate the driver
 *   usbsample-app watch [--seconds S] [--count N]          print samples as they arrive
 *   usbsample-app set-rate HZ                              change the sensor's sample rate
 *   usbsample-app stats                                    rate, delivered, dropped, version
 *   usbsample-app --ring FILE                              print a ring kept in a file (by hand)
 *   common: [--socket PATH]
 *
 * watch finds the driver service (IOUserClass MyUserUSBInterfaceDriver), opens its user client,
 * maps the data queue and prints one line per sample. When the driver goes away (device
 * unplugged, extension replaced) it says so and waits for a driver to come back, then goes on
 * with the new one: the app never depends on one driver process staying up.
 *
 * Exit: 0 ok, 1 the request failed / no samples, 2 usage or connection error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sample_queue.h"
#include "sysext/sysext.h"

#define DRIVER_ID "com.example.usbsample.driver"
#define DRIVER_MATCHING "{\"IOUserClass\": \"MyUserUSBInterfaceDriver\"}"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- activation --------------------------------------------------------------------------- */

struct activation {
    sysext_replacement_action on_replace;
    int done; /* 1 finished, 2 failed */
};

static void on_approval(sysext_request *r, void *ctx)
{
    (void)r;
    (void)ctx;
    printf("activation: needs user approval\n");
    fflush(stdout);
}

static sysext_replacement_action on_replacing(sysext_request *r, const sysext_extension_properties *old,
                                              const sysext_extension_properties *nw, void *ctx)
{
    (void)r;
    struct activation *a = ctx;
    printf("activation: replacing %s with %s: %s\n", old->short_version ? old->short_version : "?",
           nw->short_version ? nw->short_version : "?",
           a->on_replace == SYSEXT_REPLACEMENT_REPLACE ? "replace" : "cancel");
    fflush(stdout);
    return a->on_replace;
}

static void on_finished(sysext_request *r, sysext_request_result res, void *ctx)
{
    (void)r;
    struct activation *a = ctx;
    printf("activation: finished %s\n",
           res == SYSEXT_REQUEST_COMPLETED ? "completed" : "will-complete-after-reboot");
    fflush(stdout);
    a->done = 1;
}

static void on_failed(sysext_request *r, int code, const char *name, const char *msg, void *ctx)
{
    (void)r;
    struct activation *a = ctx;
    printf("activation: failed %d %s%s%s\n", code, name, msg && *msg ? ": " : "", msg ? msg : "");
    fflush(stdout);
    a->done = 2;
}

static int do_activate(const char *sock, sysext_replacement_action on_replace)
{
    struct activation a = {on_replace, 0};
    sysext_client *cl = NULL;
    int rc = sysext_client_open(sock, &cl);
    if (rc == 0) {
        sysext_request_delegate dg = {&a, on_approval, on_replacing, on_finished, on_failed, NULL};
        rc = sysext_client_submit(cl, SYSEXT_REQUEST_ACTIVATE, DRIVER_ID, &dg, NULL);
    }
    if (rc == 0)
        rc = sysext_client_wait(cl, -1);
    sysext_client_free(cl);
    if (a.done)
        return a.done == 1 ? 0 : 1;
    fprintf(stderr, "usbsample-app: %s\n", sysext_last_error());
    return 2;
}

/* ---- the driver's user client ----------------------------------------------------------- */

/* Open the first driver service's user client; 0, or a negative code (no driver yet: ENOTFOUND). */
static int open_driver(const char *sock, sysext_ioconnect **out)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = sysext_ioservice_get_matching(sock, DRIVER_MATCHING, &ids, &n);
    if (rc < 0)
        return rc;
    rc = SYSEXT_ENOTFOUND;
    for (size_t i = 0; i < n && rc < 0; i++)
        rc = sysext_ioservice_open(sock, ids[i], USBSAMPLE_USER_CLIENT_TYPE, out);
    free(ids);
    return rc;
}

static int get_stats(sysext_ioconnect *c, uint64_t st[USBSAMPLE_STATS_COUNT])
{
    uint32_t nout = USBSAMPLE_STATS_COUNT;
    int rc = sysext_ioconnect_call_method(c, kUSBSampleSelectorGetStats, NULL, 0, NULL, 0, st, &nout, NULL, NULL);
    if (rc == 0 && nout != USBSAMPLE_STATS_COUNT)
        return SYSEXT_EPROTO;
    return rc;
}

static int do_set_rate(const char *sock, const char *arg)
{
    char *end = NULL;
    unsigned long hz = strtoul(arg, &end, 10);
    if (!*arg || !end || *end) {
        fprintf(stderr, "usbsample-app: set-rate: '%s' is not a number of Hz\n", arg);
        return 2;
    }
    sysext_ioconnect *c = NULL;
    int rc = open_driver(sock, &c);
    if (rc == 0) {
        uint64_t in = hz;
        rc = sysext_ioconnect_call_method(c, kUSBSampleSelectorSetRate, &in, 1, NULL, 0, NULL, NULL, NULL, NULL);
    }
    if (rc < 0) {
        fprintf(stderr, "usbsample-app: set-rate %lu: %s\n", hz, sysext_last_error());
        sysext_ioconnect_close(c);
        return rc == SYSEXT_EINVAL || rc == SYSEXT_EPERM ? 1 : 2;
    }
    printf("rate set to %lu Hz\n", hz);
    sysext_ioconnect_close(c);
    return 0;
}

static int do_stats(const char *sock)
{
    sysext_ioconnect *c = NULL;
    uint64_t st[USBSAMPLE_STATS_COUNT] = {0};
    int rc = open_driver(sock, &c);
    if (rc == 0)
        rc = get_stats(c, st);
    sysext_ioconnect_close(c);
    if (rc < 0) {
        fprintf(stderr, "usbsample-app: stats: %s\n", sysext_last_error());
        return 2;
    }
    printf("rate %llu Hz delivered %llu dropped %llu driver v%llu\n", (unsigned long long)st[0],
           (unsigned long long)st[1], (unsigned long long)st[2], (unsigned long long)st[3]);
    return 0;
}

/* One driver session: print its samples until it goes away, the time is up or enough came.
 * Returns 1 when the driver went away, 0 when done, -1 on a corrupt ring. */
static int watch_session(sysext_ioconnect *c, int64_t deadline, uint64_t max, uint64_t *printed)
{
    void *mem = NULL;
    size_t len = 0;
    uint64_t st[USBSAMPLE_STATS_COUNT] = {0};
    if (get_stats(c, st) < 0 || sysext_ioconnect_map_memory(c, USBSAMPLE_MEMORY_DATA_QUEUE, &mem, &len) < 0) {
        printf("driver gone before it could be read: %s\n", sysext_last_error());
        return 1;
    }
    usbsample_queue q;
    if (usbsample_queue_attach(&q, mem, len) != 0) {
        fprintf(stderr, "usbsample-app: the driver's data queue is not a valid ring\n");
        return -1;
    }
    printf("driver v%llu attached, rate %llu Hz\n", (unsigned long long)st[3], (unsigned long long)st[0]);
    fflush(stdout);
    uint64_t last_rate = st[0];
    int64_t next_check = now_ms() + 100;
    for (;;) {
        if (g_stop || (deadline && now_ms() >= deadline) || (max && *printed >= max))
            return 0;
        usbsample_record rec;
        int r = usbsample_queue_next(&q, &rec);
        if (r < 0) {
            fprintf(stderr, "usbsample-app: the driver's data queue is corrupt\n");
            return -1;
        }
        if (r == 1) {
            if (rec.missed)
                printf("gap %u samples\n", rec.missed);
            printf("sample %llu device %llu.%06llus v%u\n", (unsigned long long)rec.counter,
                   (unsigned long long)(rec.device_ns / 1000000000u),
                   (unsigned long long)(rec.device_ns % 1000000000u / 1000u), rec.version);
            (*printed)++;
            continue;
        }
        fflush(stdout);
        /* Empty: every 100 ms ask the driver how it is, which is also how we notice it left. */
        if (now_ms() >= next_check) {
            next_check = now_ms() + 100;
            if (get_stats(c, st) < 0) {
                printf("driver gone: %s\n", sysext_last_error());
                fflush(stdout);
                return 1;
            }
            if (st[0] != last_rate) {
                printf("rate now %llu Hz\n", (unsigned long long)st[0]);
                last_rate = st[0];
            }
        }
        sleep_ms(2);
    }
}

static int do_watch(const char *sock, double seconds, uint64_t max)
{
    int64_t deadline = seconds > 0 ? now_ms() + (int64_t)(seconds * 1000) : 0;
    uint64_t printed = 0;
    bool waiting_said = false, refused_said = false;
    while (!g_stop && !(deadline && now_ms() >= deadline) && !(max && printed >= max)) {
        sysext_ioconnect *c = NULL;
        int rc = open_driver(sock, &c);
        if (rc == SYSEXT_ENOTFOUND) {
            if (!waiting_said)
                printf("waiting for the driver\n");
            fflush(stdout);
            waiting_said = true;
            sleep_ms(100);
            continue;
        }
        if (rc < 0) {
            /* e.g. the daemon refuses an app whose bundle was replaced under it: say so once and
             * keep waiting; a long-running app does not give up on its driver */
            if (!refused_said)
                printf("cannot open the driver: %s; retrying\n", sysext_last_error());
            refused_said = true;
            sleep_ms(500);
            continue;
        }
        waiting_said = refused_said = false;
        int r = watch_session(c, deadline, max, &printed);
        sysext_ioconnect_close(c);
        fflush(stdout);
        if (r < 0)
            return 1;
        if (r == 1)
            sleep_ms(50);
    }
    return printed ? 0 : 1;
}

/* ---- by hand: a ring in a file ------------------------------------------------------------ */

static int do_ring_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        perror(path);
        if (fd >= 0)
            close(fd);
        return 2;
    }
    void *mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    usbsample_queue q;
    if (usbsample_queue_attach(&q, mem, (size_t)st.st_size) != 0) {
        fprintf(stderr, "usbsample-app: %s is not a data queue ring\n", path);
        munmap(mem, (size_t)st.st_size);
        return 1;
    }
    usbsample_print_stats stats = {0};
    int r = usbsample_print_loop(&q, stdout, 0, 0, 1000, &g_stop, &stats);
    munmap(mem, (size_t)st.st_size);
    return r == 0 ? 0 : 1;
}

static int usage(FILE *f)
{
    fputs("usage: usbsample-app activate [--on-replace replace|cancel] [--socket PATH]\n"
          "       usbsample-app watch [--seconds S] [--count N] [--socket PATH]\n"
          "       usbsample-app set-rate HZ [--socket PATH]\n"
          "       usbsample-app stats [--socket PATH]\n"
          "       usbsample-app --ring FILE\n",
          f);
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"on-replace", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 't'},  {"count", required_argument, NULL, 'n'},
        {"ring", required_argument, NULL, 'R'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = NULL, *ring = NULL;
    sysext_replacement_action on_replace = SYSEXT_REPLACEMENT_REPLACE;
    double seconds = 0;
    unsigned long long count = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 's': sock = optarg; break;
        case 'R': ring = optarg; break;
        case 'r':
            if (!strcmp(optarg, "replace"))
                on_replace = SYSEXT_REPLACEMENT_REPLACE;
            else if (!strcmp(optarg, "cancel"))
                on_replace = SYSEXT_REPLACEMENT_CANCEL;
            else
                return usage(stderr);
            break;
        case 't':
            seconds = strtod(optarg, &end);
            if (!end || *end || seconds <= 0)
                return usage(stderr);
            break;
        case 'n':
            count = strtoull(optarg, &end, 10);
            if (!end || *end)
                return usage(stderr);
            break;
        case 'h': return usage(stdout);
        default: return usage(stderr);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (ring)
        return optind == argc ? do_ring_file(ring) : usage(stderr);
    if (optind >= argc)
        return usage(stderr);
    const char *verb = argv[optind];
    if (!strcmp(verb, "activate") && optind + 1 == argc)
        return do_activate(sock, on_replace);
    if (!strcmp(verb, "watch") && optind + 1 == argc)
        return do_watch(sock, seconds, count);
    if (!strcmp(verb, "set-rate") && optind + 2 == argc)
        return do_set_rate(sock, argv[optind + 1]);
    if (!strcmp(verb, "stats") && optind + 1 == argc)
        return do_stats(sock);
    return usage(stderr);
}
