/* Bulk loopback throughput through the USB/IP client and sysext-vusb's loopback device,
 * against the named baseline "raw TCP echo": the same byte count sent to and echoed back by
 * a process on 127.0.0.1, same chunk size, in the same run. Each is run 5 times,
 * alternating, and the medians are compared, since the machine is shared.
 *
 *   bench_usbip_loopback [MiB (default 64)] [chunk KiB (default 64)] [in flight (default 8)] */
#include "util/common.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "usb/usbip_client.h"

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"
#define MAX_FLIGHT 32

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- baseline: TCP echo ---- */

static double bench_tcp(size_t total, size_t chunk)
{
    /* Reads use at least 64 KiB, as sysext-vusb and the client do, so the baseline is not
     * handicapped by small reads; `chunk` is the size of each write. */
    size_t rbuf = chunk < 65536 ? 65536 : chunk;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        perror("baseline listen");
        exit(2);
    }
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(lfd, NULL, NULL);
        uint8_t *buf = malloc(rbuf);
        ssize_t n;
        while (c >= 0 && buf && (n = read(c, buf, rbuf)) > 0)
            for (ssize_t off = 0; off < n;) {
                ssize_t k = write(c, buf + off, (size_t)(n - off));
                if (k <= 0)
                    _exit(1);
                off += k;
            }
        _exit(0);
    }
    close(lfd);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    connect(fd, (struct sockaddr *)&a, sizeof(a));
    uint8_t *src = calloc(1, chunk), *dst = malloc(rbuf);
    size_t sent = 0, got = 0;
    double t0 = now_s();
    while (got < total) {
        struct pollfd pf = {.fd = fd, .events = (short)(POLLIN | (sent < total ? POLLOUT : 0))};
        poll(&pf, 1, 1000);
        if ((pf.revents & POLLOUT) && sent < total) {
            size_t n = total - sent < chunk ? total - sent : chunk;
            ssize_t k = send(fd, src, n, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        if (pf.revents & POLLIN) {
            ssize_t k = recv(fd, dst, rbuf, 0);
            if (k > 0)
                got += (size_t)k;
            else if (k == 0)
                break;
        }
    }
    double dt = now_s() - t0;
    close(fd);
    waitpid(pid, NULL, 0);
    free(src);
    free(dst);
    return got == total ? dt : -1;
}

/* ---- USB/IP loopback ---- */

typedef struct run {
    sx_usbip_client *c;
    size_t total, chunk, sent, received;
    sx_usb_transfer out[MAX_FLIGHT], in[MAX_FLIGHT];
    uint8_t *src, *inbuf[MAX_FLIGHT];
    bool done, failed;
} run;

static void on_out(sx_usb_transfer *t)
{
    run *r = t->user_data;
    if (t->status != SX_USB_COMPLETED) {
        r->failed = true;
        return;
    }
    size_t n = r->total - r->sent < r->chunk ? r->total - r->sent : r->chunk;
    if (n == 0)
        return;
    t->length = (uint32_t)n;
    r->sent += n;
    if (sx_usbip_client_submit(r->c, t) < 0)
        r->failed = true;
}

static void on_in(sx_usb_transfer *t)
{
    run *r = t->user_data;
    if (t->status != SX_USB_COMPLETED)
        return;
    r->received += t->actual_length;
    if (r->received >= r->total)
        r->done = true;
    else if (sx_usbip_client_submit(r->c, t) < 0)
        r->failed = true;
}

static double bench_usbip(size_t total, size_t chunk, unsigned flight)
{
    int p[2];
    if (pipe(p) < 0)
        exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execl(VUSB_BIN, VUSB_BIN, "--listen", "127.0.0.1:0", "--device", "loopback", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[128] = {0};
    size_t len = 0;
    while (len < sizeof(line) - 1 && read(p[0], line + len, 1) == 1 && line[len] != '\n')
        len++;
    close(p[0]);
    unsigned port = 0;
    if (sscanf(line, "listening on 127.0.0.1:%u", &port) != 1) {
        fprintf(stderr, "sysext-vusb did not start: '%s'\n", line);
        exit(2);
    }
    static run r;
    memset(&r, 0, sizeof(r));
    r.total = total;
    r.chunk = chunk;
    if (sx_usbip_import(&r.c, "127.0.0.1", (uint16_t)port, "1-1", 3000) < 0) {
        fprintf(stderr, "import: %s\n", sx_errmsg());
        exit(2);
    }
    r.src = calloc(1, chunk);
    double t0 = now_s();
    for (unsigned i = 0; i < flight; i++) {
        r.inbuf[i] = malloc(chunk);
        sx_usb_fill_pipe(&r.in[i], SX_USB_XFER_BULK, 0x82, r.inbuf[i], (uint32_t)chunk, on_in, &r);
        sx_usbip_client_submit(r.c, &r.in[i]);
        sx_usb_fill_pipe(&r.out[i], SX_USB_XFER_BULK, 0x02, r.src, 0, on_out, &r);
        on_out(&r.out[i]); /* fills the length and submits */
    }
    while (!r.done && !r.failed && !sx_usbip_client_gone(r.c))
        sx_usbip_client_run(r.c, 1000);
    double dt = now_s() - t0;
    bool ok = r.done && !r.failed;
    if (!ok)
        fprintf(stderr, "usbip run failed: %s\n", sx_usbip_client_error(r.c));
    sx_usbip_client_free(r.c);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    for (unsigned i = 0; i < flight; i++)
        free(r.inbuf[i]);
    free(r.src);
    return ok ? dt : -1;
}

static double median5(double *v)
{
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return v[2];
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    size_t kib = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
    unsigned flight = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 8;
    if (mib == 0 || kib == 0 || kib > 16384 || flight == 0 || flight > MAX_FLIGHT) {
        fprintf(stderr, "usage: bench_usbip_loopback [MiB] [chunk KiB <= 16384] [in flight <= %d]\n",
                MAX_FLIGHT);
        return 2;
    }
    size_t total = mib << 20, chunk = kib << 10;
    double tcps[5], usbs[5];
    for (int i = 0; i < 5; i++) {
        tcps[i] = bench_tcp(total, chunk);
        usbs[i] = bench_usbip(total, chunk, flight);
        if (tcps[i] <= 0 || usbs[i] <= 0)
            return 1;
    }
    double tcp = median5(tcps), usb = median5(usbs);
    double mb = (double)total / 1e6;
    printf("median of 5 runs; bytes: %zu MiB each way, chunk %zu KiB, %u transfers in flight per direction\n", mib,
           kib, flight);
    printf("baseline raw TCP echo (127.0.0.1): %8.1f MB/s (%.3f s)\n", mb / tcp, tcp);
    printf("USB/IP client + sysext-vusb loop : %8.1f MB/s (%.3f s)\n", mb / usb, usb);
    printf("ratio usbip/tcp: %.2f\n", tcp / usb);
    return 0;
}
