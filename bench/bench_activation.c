/* bench_activation: sysextd's costs against named floors measured in the same run.
 *
 *  1. activation latency: the sample app's "activate" of a signed dext with a 1 MiB executable,
 *     request -> activated_enabled (policy auto-approves the team), process start included;
 *     floor: copying the same bundle (copy + fsync) and verifying the copy strict+deep, which
 *     is the work the daemon cannot avoid.
 *  2. properties requests per second, 50 concurrent clients, one connection each;
 *     floor: the same request/response messages encoded, sent over a socketpair, decoded and
 *     answered in-process (no daemon).
 *  3. the daemon's RSS after both.
 *
 * usage: bench_activation [--runs N] [--seconds S]   (run by hand; never a timed test) */
#include "util/common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codesign/identity.h"
#include "codesign/verify_internal.h"
#include "sysext/activation.h"
#include "sysext/codesign.h"
#include "sysextd/proto.h"
#include "util/fs.h"

#define SYSEXTD_BIN SYSEXT_BINARY_DIR "/sysextd/sysextd"
#define SAMPLE_APP_BIN SYSEXT_BINARY_DIR "/sysextd/sample-app/sysext-sample-app"
#define EXT_ID "com.example.benchdrv"
#define INFO_FMT \
    "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>" \
    "<key>CFBundleIdentifier</key><string>%s</string>" \
    "<key>CFBundleExecutable</key><string>%s</string>" \
    "<key>CFBundlePackageType</key><string>%s</string>" \
    "<key>CFBundleVersion</key><string>1</string>" \
    "<key>CFBundleShortVersionString</key><string>1.0</string>" \
    "<key>OSBundleUsageDescription</key><string>bench</string></dict></plist>"

static char dir[256];
static pid_t daemon_pid = -1;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *path(const char *rel)
{
    static char bufs[8][1024];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 1024, "%s/%s", dir, rel);
    return b;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_activation: %s: %s\n", what, sx_errmsg());
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
    }
    exit(2);
}

static void write_file(const char *p, const void *data, size_t len, mode_t mode)
{
    char *d = sx_path_dirname(p);
    if (sx_mkdir_p(d, 0755) < 0 || sx_write_file_atomic(p, data, len, mode) < 0)
        die(p);
    free(d);
}

static void write_str(const char *p, const char *s)
{
    write_file(p, s, strlen(s), 0644);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int run(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_fixture(void)
{
    if (sx_ca_init(path("ca")) < 0 ||
        sx_identity_create(path("ca"), "BENCHTEAM1", "Apple Development: Bench", SX_ID_DEVELOPMENT,
                           "", path("id.p12")) < 0)
        die("identity");
    write_str(path("dext.plist"),
              "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
              "<key>com.apple.developer.driverkit</key><true/>"
              "<key>com.apple.developer.driverkit.transport.usb</key><array><dict><key>idVendor</key>"
              "<integer>1234</integer></dict></array></dict></plist>");
    write_str(path("app.plist"),
              "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
              "<key>com.apple.developer.system-extension.install</key><true/></dict></plist>");
    write_str(path("policy.plist"),
              "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>AllowedTeamIdentifiers"
              "</key><array><string>BENCHTEAM1</string></array></dict></plist>");
    char buf[2048];
    snprintf(buf, sizeof(buf), INFO_FMT, EXT_ID, "drv", "DEXT");
    write_str(path("src/" EXT_ID ".dext/Info.plist"), buf);
    size_t mib = 1u << 20;
    uint8_t *exe = malloc(mib);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < mib; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        exe[i] = (uint8_t)x;
    }
    write_file(path("src/" EXT_ID ".dext/drv"), exe, mib, 0755);
    free(exe);
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    char id[1024], ents[1024];
    snprintf(id, sizeof(id), "%s", path("id.p12"));
    snprintf(ents, sizeof(ents), "%s", path("dext.plist"));
    o.identity = id;
    o.entitlements = ents;
    if (sysext_sign(path("src/" EXT_ID ".dext"), &o) < 0)
        die("sign dext");
    snprintf(buf, sizeof(buf), INFO_FMT, "com.example.benchapp", "Host", "APPL");
    write_str(path("Applications/Host.app/Contents/Info.plist"), buf);
    uint8_t *app = NULL;
    size_t len = 0;
    if (sx_read_file(SAMPLE_APP_BIN, 64u << 20, &app, &len) < 0)
        die(SAMPLE_APP_BIN);
    write_file(path("Applications/Host.app/Contents/MacOS/Host"), app, len, 0755);
    free(app);
    if (sx_mkdir_p(path("Applications/Host.app/Contents/Library/SystemExtensions"), 0755) < 0 ||
        sx_copy_tree(path("src/" EXT_ID ".dext"),
                     path("Applications/Host.app/Contents/Library/SystemExtensions/" EXT_ID
                          ".dext")) < 0)
        die("app");
    snprintf(ents, sizeof(ents), "%s", path("app.plist"));
    if (sysext_sign(path("Applications/Host.app"), &o) < 0)
        die("sign app");
}

static double floor_copy_verify(void)
{
    const char *trust[] = {path("ca/root.cert.pem")};
    if (sx_mkdir_p(path("floor"), 0755) < 0)
        die("floor");
    double t0 = now_s();
    if (sx_copy_tree(path("src/" EXT_ID ".dext"), path("floor/" EXT_ID ".dext")) < 0 ||
        sx_fsync_tree(path("floor/" EXT_ID ".dext")) < 0)
        die("floor copy");
    sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
    o.strict = 1;
    o.deep = 1;
    o.trust = trust;
    o.n_trust = 1;
    sx_report rep;
    sx_vresult v;
    memset(&v, 0, sizeof(v));
    sx_report_init(&rep);
    if (sx_verify_path(path("floor/" EXT_ID ".dext"), &o, &rep, &v) != 0)
        die("floor verify");
    double t = now_s() - t0;
    sx_vresult_free(&v);
    sx_report_free(&rep);
    sx_rm_rf(path("floor"));
    return t;
}

/* Properties from n clients for `secs` seconds through the daemon. */
static unsigned long props_loop(const char *sock, int n, double secs);

static void on_done(sysext_request *r, sysext_request_result res, void *ctx)
{
    (void)r;
    (void)res;
    (*(unsigned long *)ctx)++;
}

static unsigned long props_loop(const char *sock, int n, double secs)
{
    sysext_client **c = calloc((size_t)n, sizeof(*c));
    struct pollfd *p = calloc((size_t)n, sizeof(*p));
    unsigned long done = 0;
    sysext_request_delegate d = {&done, NULL, NULL, on_done, NULL, NULL};
    for (int i = 0; i < n; i++) {
        if (sysext_client_open(sock, &c[i]) < 0 ||
            sysext_client_submit(c[i], SYSEXT_REQUEST_PROPERTIES, EXT_ID, &d, NULL) < 0)
            die("client");
        p[i].fd = sysext_client_fd(c[i]);
        p[i].events = POLLIN;
    }
    double end = now_s() + secs;
    while (now_s() < end) {
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            if (sysext_client_dispatch(c[i]) < 0)
                die("dispatch");
            if (sysext_client_pending(c[i]) == 0 &&
                sysext_client_submit(c[i], SYSEXT_REQUEST_PROPERTIES, EXT_ID, &d, NULL) < 0)
                die("submit");
        }
    }
    for (int i = 0; i < n; i++)
        sysext_client_free(c[i]);
    free(c);
    free(p);
    return done;
}

/* The protocol floor: the same messages over a socketpair, answered in-process. */
static unsigned long proto_floor(double secs)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("socketpair");
    unsigned long done = 0;
    double end = now_s() + secs;
    plist_t item = plist_new_dict();
    sxd_dict_set_str(item, "identifier", EXT_ID);
    sxd_dict_set_str(item, "version", "1");
    sxd_dict_set_str(item, "short_version", "1.0");
    sxd_dict_set_str(item, "state", "activated_enabled");
    sxd_dict_set_str(item, "path", "/var/lib/sysextd/extensions/X/" EXT_ID ".dext");
    while (now_s() < end) {
        for (int k = 0; k < 64; k++, done++) {
            sx_buf b = SX_BUF_INIT, in = SX_BUF_INIT;
            plist_t m = sxd_msg_new("properties");
            sxd_dict_set_uint(m, "id", done);
            sxd_dict_set_str(m, "ext", EXT_ID);
            sxd_msg_encode(m, &b);
            plist_free(m);
            if (write(sv[0], b.data, b.len) != (ssize_t)b.len)
                die("write");
            uint8_t tmp[8192];
            ssize_t r = read(sv[1], tmp, sizeof(tmp));
            size_t used = 0;
            if (r <= 0 || sxd_msg_decode(tmp, (size_t)r, SXD_PROTO_MAX, &m, &used) != 1)
                die("decode");
            plist_free(m);
            plist_t ev = sxd_msg_new("event");
            plist_t arr = plist_new_array();
            plist_array_append_item(arr, plist_copy(item));
            plist_dict_set_item(ev, "items", arr);
            b.len = 0;
            sxd_msg_encode(ev, &b);
            plist_free(ev);
            plist_t fin = sxd_msg_new("event");
            sxd_msg_encode(fin, &b);
            plist_free(fin);
            if (write(sv[1], b.data, b.len) != (ssize_t)b.len)
                die("write");
            r = read(sv[0], tmp, sizeof(tmp));
            sx_buf_append(&in, tmp, (size_t)r);
            size_t off = 0;
            while (sxd_msg_decode(in.data + off, in.len - off, SXD_PROTO_MAX, &m, &used) == 1) {
                off += used;
                plist_free(m);
            }
            sx_buf_free(&b);
            sx_buf_free(&in);
        }
    }
    plist_free(item);
    close(sv[0]);
    close(sv[1]);
    return done;
}

static long rss_kib(pid_t pid)
{
    char p[64], line[256];
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    int runs = 15;
    double secs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            secs = atof(argv[i + 1]);
    }
    if (runs < 1 || runs > 1000)
        runs = 15;
    snprintf(dir, sizeof(dir), "/tmp/sx-bench-activation-XXXXXX");
    if (!mkdtemp(dir))
        return 2;
    setenv("XDG_CACHE_HOME", path("cache"), 1);
    printf("fixture in %s (1 MiB dext executable)\n", dir);
    make_fixture();
    char sock[300];
    snprintf(sock, sizeof(sock), "%s", path("sysextd.sock"));
    pid_t d = fork();
    if (d == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(path("sysextd.log"), O_WRONLY | O_CREAT, 0600);
        dup2(fd, 2);
        execl(SYSEXTD_BIN, SYSEXTD_BIN, "--state-dir", path("state"), "--socket", sock, "--trust",
              path("ca/root.cert.pem"), "--allowed-location", path("Applications"), "--policy",
              path("policy.plist"), (char *)NULL);
        _exit(127);
    }
    daemon_pid = d;
    for (int i = 0; i < 1000 && access(sock, F_OK) != 0; i++)
        usleep(2000);
    usleep(20000);

    double *fl = calloc((size_t)runs, sizeof(double)), *act = calloc((size_t)runs, sizeof(double));
    char exe[1024];
    snprintf(exe, sizeof(exe), "%s", path("Applications/Host.app/Contents/MacOS/Host"));
    const char *a[] = {exe, "activate", EXT_ID, "--socket", sock, NULL};
    const char *de[] = {exe, "deactivate", EXT_ID, "--socket", sock, NULL};
    for (int i = 0; i < runs; i++) {
        fl[i] = floor_copy_verify();
        double t0 = now_s();
        if (run(a) != 0)
            die("activate");
        act[i] = now_s() - t0;
        if (run(de) != 0)
            die("deactivate");
    }
    double mf = median(fl, runs), ma = median(act, runs);
    printf("activation (request -> enabled, auto-approve): median %.1f ms over %d runs\n",
           ma * 1e3, runs);
    printf("floor: copy + fsync + strict deep verify of the same bundle: median %.1f ms\n",
           mf * 1e3);
    printf("ratio activation / floor: %.2f\n", ma / mf);

    if (run(a) != 0)
        die("activate");
    unsigned long n = props_loop(sock, 50, secs);
    unsigned long f = proto_floor(secs);
    printf("properties, 50 concurrent clients: %.0f requests/s\n", (double)n / secs);
    printf("floor: same messages encoded/decoded over a socketpair in-process: %.0f requests/s\n",
           (double)f / secs);
    printf("ratio daemon / floor: %.2f\n", ((double)n / secs) / ((double)f / secs));
    printf("sysextd RSS: %ld KiB (bench process: %ld KiB)\n", rss_kib(d), rss_kib(getpid()));
    kill(d, SIGTERM);
    waitpid(d, NULL, 0);
    free(fl);
    free(act);
    if (!getenv("SX_BENCH_KEEP"))
        sx_rm_rf(dir);
    return 0;
}
