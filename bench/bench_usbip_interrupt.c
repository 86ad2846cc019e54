/* Interrupt sample latency: sysext-vusb's sensor stamps each 16-byte sample with
 * CLOCK_MONOTONIC when its timer fires; the USB/IP client's completion callback subtracts that
 * from its own CLOCK_MONOTONIC (same host, same clock). Baseline "raw TCP stamped message": a
 * process on 127.0.0.1 sends the same 16-byte stamped message from a timerfd at the same rate
 * over a plain TCP socket, and the reader computes the same difference. Prints p50/p99 of
 * both and the p50 ratio.
 *
 *   bench_usbip_interrupt [samples (default 2000)] [rate Hz (default 1000)] */
#include "util/common.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "usb/usbip_client.h"

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"
#define SKIP 100 /* samples buffered before the reads began */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)v[i] / 1000.0; /* µs */
}

static void tcp_baseline(size_t n, unsigned rate, uint64_t *lat)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(lfd, NULL, NULL);
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
        struct itimerspec its = {.it_interval.tv_nsec = 1000000000L / rate,
                                 .it_value.tv_nsec = 1000000000L / rate};
        timerfd_settime(tfd, 0, &its, NULL);
        for (uint64_t k = 0; k < n + SKIP; k++) {
            uint64_t exp;
            if (read(tfd, &exp, sizeof(exp)) != sizeof(exp))
                _exit(1);
            uint8_t m[16];
            uint64_t now = mono_ns();
            for (int i = 0; i < 8; i++) {
                m[i] = (uint8_t)(k >> (8 * i));
                m[8 + i] = (uint8_t)(now >> (8 * i));
            }
            if (write(c, m, 16) != 16)
                _exit(1);
        }
        _exit(0);
    }
    close(lfd);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    connect(fd, (struct sockaddr *)&a, sizeof(a));
    uint8_t m[16];
    for (size_t k = 0; k < n + SKIP; k++) {
        size_t got = 0;
        while (got < 16) {
            ssize_t r = read(fd, m + got, 16 - got);
            if (r <= 0)
                exit(2);
            got += (size_t)r;
        }
        uint64_t now = mono_ns();
        if (k >= SKIP)
            lat[k - SKIP] = now - le64(m + 8);
    }
    close(fd);
    waitpid(pid, NULL, 0);
}

typedef struct run {
    sx_usbip_client *c;
    size_t n, got;
    uint64_t *lat;
    bool done;
} run;

static void on_sample(sx_usb_transfer *t)
{
    run *r = t->user_data;
    if (t->status != SX_USB_COMPLETED || t->actual_length != 16)
        return;
    uint64_t now = mono_ns();
    if (r->got >= SKIP && r->got - SKIP < r->n)
        r->lat[r->got - SKIP] = now - le64(t->buffer + 8);
    if (++r->got >= r->n + SKIP)
        r->done = true;
    else
        sx_usbip_client_submit(r->c, t);
}

static void usbip_run(size_t n, unsigned rate, uint64_t *lat)
{
    char rate_s[16];
    snprintf(rate_s, sizeof(rate_s), "%u", rate);
    int p[2];
    if (pipe(p) < 0)
        exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execl(VUSB_BIN, VUSB_BIN, "--listen", "127.0.0.1:0", "--device", "sensor", "--rate",
              rate_s, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[128] = {0};
    size_t len = 0;
    while (len < sizeof(line) - 1 && read(p[0], line + len, 1) == 1 && line[len] != '\n')
        len++;
    close(p[0]);
    unsigned port = 0;
    if (sscanf(line, "listening on 127.0.0.1:%u", &port) != 1)
        exit(2);
    static run r;
    memset(&r, 0, sizeof(r));
    r.n = n;
    r.lat = lat;
    if (sx_usbip_import(&r.c, "127.0.0.1", (uint16_t)port, "1-1", 3000) < 0) {
        fprintf(stderr, "import: %s\n", sx_errmsg());
        exit(2);
    }
    static sx_usb_transfer t[4];
    static uint8_t buf[4][16];
    for (int i = 0; i < 4; i++) {
        sx_usb_fill_pipe(&t[i], SX_USB_XFER_INTERRUPT, 0x81, buf[i], 16, on_sample, &r);
        sx_usbip_client_submit(r.c, &t[i]);
    }
    while (!r.done && !sx_usbip_client_gone(r.c))
        sx_usbip_client_run(r.c, 1000);
    sx_usbip_client_free(r.c);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    unsigned rate = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 1000;
    if (n < 10 || n > 1000000 || rate < 1 || rate > 10000) {
        fprintf(stderr, "usage: bench_usbip_interrupt [samples >= 10] [rate 1-10000 Hz]\n");
        return 2;
    }
    uint64_t *a = calloc(n, sizeof(*a)), *b = calloc(n, sizeof(*b));
    if (!a || !b)
        return 2;
    tcp_baseline(n, rate, a);
    usbip_run(n, rate, b);
    double a50 = pct(a, n, 0.5), a99 = pct(a, n, 0.99);
    double b50 = pct(b, n, 0.5), b99 = pct(b, n, 0.99);
    printf("%zu samples at %u Hz (first %d skipped)\n", n, rate, SKIP);
    printf("baseline raw TCP stamped message: p50 %8.1f us  p99 %8.1f us\n", a50, a99);
    printf("USB/IP interrupt IN (sensor)    : p50 %8.1f us  p99 %8.1f us\n", b50, b99);
    printf("ratio p50 usbip/tcp: %.2f\n", b50 / a50);
    free(a);
    free(b);
    return 0;
}
