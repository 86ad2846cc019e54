/* The USB family (runtime IOUSBHostPipe AsyncIO completing through OSActions on a driver
 * queue, over the USB/IP client and sysext-vusb) against named baselines in the same run:
 *   1. bulk loopback throughput vs "raw TCP echo" (same byte count and chunk, 127.0.0.1);
 *   2. interrupt sample latency (sensor stamp -> completion handler, CLOCK_MONOTONIC) vs
 *      "USB/IP client callback" (the same samples read directly through the client).
 * Throughput: 5 alternating runs, medians compared.
 *
 *   bench_usb_family [MiB (default 64)] [chunk KiB (default 64)] [in flight (default 8)] */
#include "util/common.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/src/usb/usb_host.h"
#include "usb/usbip_client.h"

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"
#define MAX_FLIGHT 32
#define CB_ID 0xbe4c000000000001ULL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- baseline: TCP echo (as bench_usbip_loopback) ---- */

static double bench_tcp(size_t total, size_t chunk)
{
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

/* ---- sysext-vusb ---- */

static pid_t vusb_pid;

static uint16_t vusb_start(const char *device, const char *rate)
{
    int p[2];
    if (pipe(p) < 0)
        exit(2);
    vusb_pid = fork();
    if (vusb_pid == 0) {
        dup2(p[1], 1);
        execl(VUSB_BIN, VUSB_BIN, "--listen", "127.0.0.1:0", "--device", device, "--rate", rate, (char *)NULL);
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
    return (uint16_t)port;
}

static void vusb_stop(void)
{
    kill(vusb_pid, SIGTERM);
    waitpid(vusb_pid, NULL, 0);
}

typedef struct fam {
    sx_usbip_client *c;
    IOUSBHostDevice *dev;
    IOUSBHostInterface *intf;
    IOService *client;
} fam;

static const OSClass *cb_class;

static void fam_open(fam *f, uint16_t port)
{
    if (sx_usbip_import(&f->c, "127.0.0.1", port, "1-1", 3000) < 0) {
        fprintf(stderr, "import: %s\n", sx_errmsg());
        exit(2);
    }
    sx_usb_transport tr;
    sx_usbip_client_transport(f->c, &tr);
    OSObject *o = NULL;
    if (IOUSBHostDevice_HostCreate(&tr, kIOUSBHostConnectionSpeedHigh, &f->dev) != kIOReturnSuccess ||
        IOUSBHostDevice_HostCreateInterface(f->dev, 0, &f->intf) != kIOReturnSuccess ||
        OSObject_Alloc(cb_class, &o) != kIOReturnSuccess ||
        IOUSBHostInterface_Open(f->intf, (IOService *)o, 0, NULL) != kIOReturnSuccess) {
        fprintf(stderr, "family setup failed\n");
        exit(2);
    }
    f->client = (IOService *)o;
}

static void fam_close(fam *f)
{
    IOUSBHostInterface_Close(f->intf, f->client, 0);
    IOUSBHostDevice_HostDetach(f->dev);
    sx_usbip_client_free(f->c);
    OSSafeReleaseNULL(f->intf);
    OSSafeReleaseNULL(f->dev);
    OSSafeReleaseNULL(f->client);
}

/* ---- family bulk loopback ---- */

typedef struct ref {
    unsigned slot;
    bool in;
} ref;

static struct lbrun {
    IOUSBHostPipe *out, *in;
    IOBufferMemoryDescriptor *obuf[MAX_FLIGHT], *ibuf[MAX_FLIGHT];
    size_t total, chunk, sent, received;
    bool failed;
    pthread_mutex_t m;
    pthread_cond_t cv;
    bool done;
    /* latency mode */
    bool latency;
    IOUSBHostPipe *intr;
    uint64_t *lat;
    size_t nlat, want, skip, seen;
} R = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void finish(void)
{
    pthread_mutex_lock(&R.m);
    R.done = true;
    pthread_cond_signal(&R.cv);
    pthread_mutex_unlock(&R.m);
}

static void send_next(unsigned slot, OSAction *a)
{
    size_t n = R.total - R.sent < R.chunk ? R.total - R.sent : R.chunk;
    if (n == 0)
        return;
    R.sent += n;
    if (IOUSBHostPipe_AsyncIO(R.out, (IOMemoryDescriptor *)R.obuf[slot], (uint32_t)n, a, 0) != kIOReturnSuccess)
        R.failed = true;
}

static void on_complete(OSObject *target, OSAction *a, IOReturn status, uint32_t actual, uint64_t ts)
{
    (void)target;
    (void)ts;
    const ref *r = OSAction_GetReference(a);
    if (R.latency) {
        if (status != kIOReturnSuccess || R.done)
            return;
        IOAddressSegment seg;
        IOBufferMemoryDescriptor_GetAddressRange(R.ibuf[r->slot], &seg);
        const uint8_t *p = (const uint8_t *)(uintptr_t)seg.address;
        uint64_t stamp = 0;
        for (int i = 7; i >= 0; i--)
            stamp = stamp << 8 | p[8 + i];
        uint64_t now = now_ns();
        if (R.seen++ >= R.skip && R.nlat < R.want)
            R.lat[R.nlat++] = now - stamp;
        if (R.nlat == R.want)
            finish();
        else
            (void)IOUSBHostPipe_AsyncIO(R.intr, (IOMemoryDescriptor *)R.ibuf[r->slot], 16, a, 0);
        return;
    }
    if (status != kIOReturnSuccess) {
        if (!(r->in && status == kIOReturnAborted)) {
            R.failed = true;
            finish();
        }
        return;
    }
    if (!r->in) {
        send_next(r->slot, a);
        return;
    }
    R.received += actual;
    if (R.received >= R.total)
        finish();
    else if (IOUSBHostPipe_AsyncIO(R.in, (IOMemoryDescriptor *)R.ibuf[r->slot], (uint32_t)R.chunk, a, 0) !=
             kIOReturnSuccess)
        R.failed = true;
}

static const OSMethod cb_methods[] = {OS_METHOD(CB_ID, on_complete)};
static const OSClass CB_Class = {"BenchUSBClient", &IOService_Class, sizeof(IOService), NULL, NULL, cb_methods, 1};

static OSAction *action(IOService *client, unsigned slot, bool in)
{
    OSAction *a = NULL;
    if (OSAction_Create(&client->object, CB_ID, IOUSBHostPipe_CompleteAsyncIO_ID, NULL, sizeof(ref), &a) != 0)
        exit(2);
    ref *r = OSAction_GetReference(a);
    r->slot = slot;
    r->in = in;
    return a;
}

static OSAction *oacts[MAX_FLIGHT], *iacts[MAX_FLIGHT];
static unsigned g_flight;

static void start_work(void *ctx)
{
    (void)ctx;
    for (unsigned i = 0; i < g_flight; i++) {
        if (R.latency) {
            (void)IOUSBHostPipe_AsyncIO(R.intr, (IOMemoryDescriptor *)R.ibuf[i], 16, iacts[i], 0);
            continue;
        }
        (void)IOUSBHostPipe_AsyncIO(R.in, (IOMemoryDescriptor *)R.ibuf[i], (uint32_t)R.chunk, iacts[i], 0);
        send_next(i, oacts[i]);
    }
}

static void wait_done(void)
{
    pthread_mutex_lock(&R.m);
    while (!R.done)
        pthread_cond_wait(&R.cv, &R.m);
    pthread_mutex_unlock(&R.m);
}

static void release_actions(unsigned flight)
{
    for (unsigned i = 0; i < flight; i++) {
        if (oacts[i])
            OSAction_Cancel(oacts[i], NULL, NULL);
        if (iacts[i])
            OSAction_Cancel(iacts[i], NULL, NULL);
        OSSafeReleaseNULL(oacts[i]);
        OSSafeReleaseNULL(iacts[i]);
        OSSafeReleaseNULL(R.obuf[i]);
        OSSafeReleaseNULL(R.ibuf[i]);
    }
}

static double bench_family(size_t total, size_t chunk, unsigned flight)
{
    uint16_t port = vusb_start("loopback", "100");
    fam f = {0};
    fam_open(&f, port);
    R.total = total;
    R.chunk = chunk;
    R.sent = R.received = 0;
    R.failed = R.done = R.latency = false;
    g_flight = flight;
    if (IOUSBHostInterface_CopyPipe(f.intf, 0x02, &R.out) || IOUSBHostInterface_CopyPipe(f.intf, 0x82, &R.in))
        exit(2);
    for (unsigned i = 0; i < flight; i++) {
        IOUSBHostInterface_CreateIOBuffer(f.intf, kIOMemoryDirectionOut, chunk, &R.obuf[i]);
        IOUSBHostInterface_CreateIOBuffer(f.intf, kIOMemoryDirectionIn, chunk, &R.ibuf[i]);
        oacts[i] = action(f.client, i, false);
        iacts[i] = action(f.client, i, true);
    }
    double t0 = now_s();
    IODispatchQueue_DispatchSync(IOService_GetDispatchQueue(f.client), start_work, NULL);
    wait_done();
    double dt = now_s() - t0;
    bool ok = !R.failed && R.received == total;
    IOUSBHostPipe_Abort(R.in, kIOUSBAbortSynchronous, kIOReturnAborted, NULL);
    release_actions(flight);
    OSSafeReleaseNULL(R.out);
    OSSafeReleaseNULL(R.in);
    fam_close(&f);
    vusb_stop();
    return ok ? dt : -1;
}

/* ---- interrupt latency: family vs direct client ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void family_latency(size_t want, uint64_t *lat)
{
    uint16_t port = vusb_start("sensor", "1000");
    fam f = {0};
    fam_open(&f, port);
    memset(oacts, 0, sizeof(oacts));
    R.latency = true;
    R.done = false;
    R.lat = lat;
    R.nlat = R.seen = 0;
    R.want = want;
    R.skip = 100;
    g_flight = 4;
    if (IOUSBHostInterface_CopyPipe(f.intf, 0x81, &R.intr))
        exit(2);
    for (unsigned i = 0; i < 4; i++) {
        IOUSBHostInterface_CreateIOBuffer(f.intf, kIOMemoryDirectionIn, 16, &R.ibuf[i]);
        iacts[i] = action(f.client, i, true);
    }
    IODispatchQueue_DispatchSync(IOService_GetDispatchQueue(f.client), start_work, NULL);
    wait_done();
    IOUSBHostPipe_Abort(R.intr, kIOUSBAbortSynchronous, kIOReturnAborted, NULL);
    release_actions(4);
    OSSafeReleaseNULL(R.intr);
    fam_close(&f);
    vusb_stop();
}

typedef struct direct {
    sx_usbip_client *c;
    uint64_t *lat;
    size_t n, want, seen;
} direct;

static void on_direct(sx_usb_transfer *t)
{
    direct *d = t->user_data;
    if (t->status != SX_USB_COMPLETED || d->n >= d->want)
        return;
    uint64_t stamp = 0;
    for (int i = 7; i >= 0; i--)
        stamp = stamp << 8 | t->buffer[8 + i];
    uint64_t now = now_ns();
    if (d->seen++ >= 100 && d->n < d->want)
        d->lat[d->n++] = now - stamp;
    if (d->n < d->want)
        sx_usbip_client_submit(d->c, t);
}

static void direct_latency(size_t want, uint64_t *lat)
{
    uint16_t port = vusb_start("sensor", "1000");
    direct d = {.lat = lat, .want = want};
    if (sx_usbip_import(&d.c, "127.0.0.1", port, "1-1", 3000) < 0)
        exit(2);
    sx_usb_transfer t[4];
    uint8_t buf[4][16];
    for (int i = 0; i < 4; i++) {
        sx_usb_fill_pipe(&t[i], SX_USB_XFER_INTERRUPT, 0x81, buf[i], 16, on_direct, &d);
        sx_usbip_client_submit(d.c, &t[i]);
    }
    while (d.n < want && !sx_usbip_client_gone(d.c))
        sx_usbip_client_run(d.c, 1000);
    sx_usbip_client_free(d.c);
    vusb_stop();
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
        fprintf(stderr, "usage: bench_usb_family [MiB] [chunk KiB <= 16384] [in flight <= %d]\n", MAX_FLIGHT);
        return 2;
    }
    cb_class = &CB_Class;
    size_t total = mib << 20, chunk = kib << 10;
    double tcps[5], fams[5];
    for (int i = 0; i < 5; i++) {
        tcps[i] = bench_tcp(total, chunk);
        fams[i] = bench_family(total, chunk, flight);
        if (tcps[i] <= 0 || fams[i] <= 0) {
            fprintf(stderr, "run %d failed\n", i);
            return 1;
        }
    }
    double tcp = median5(tcps), fm = median5(fams);
    double mb = (double)total / 1e6;
    printf("bulk loopback, median of 5 runs; %zu MiB each way, chunk %zu KiB, %u in flight per direction\n", mib,
           kib, flight);
    printf("baseline raw TCP echo (127.0.0.1)    : %8.1f MB/s (%.3f s)\n", mb / tcp, tcp);
    printf("USB family AsyncIO over USB/IP + vusb: %8.1f MB/s (%.3f s)\n", mb / fm, fm);
    printf("ratio family/tcp: %.2f (goal >= 0.70)\n", tcp / fm);

    enum { N = 2000 };
    static uint64_t lf[N], ld[N];
    direct_latency(N, ld);
    family_latency(N, lf);
    qsort(ld, N, sizeof(uint64_t), cmp_u64);
    qsort(lf, N, sizeof(uint64_t), cmp_u64);
    printf("interrupt latency, 1000 Hz, %d samples: baseline USB/IP client callback p50 %.1f us p99 %.1f us\n", N,
           (double)ld[N / 2] / 1e3, (double)ld[N * 99 / 100] / 1e3);
    printf("                                        USB family OSAction handler  p50 %.1f us p99 %.1f us\n",
           (double)lf[N / 2] / 1e3, (double)lf[N * 99 / 100] / 1e3);
    printf("ratio family/client (p50): %.2f\n", (double)lf[N / 2] / (double)ld[N / 2]);
    return 0;
}
