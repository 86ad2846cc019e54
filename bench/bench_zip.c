/* bench_zip: sysext_pack vs Info-ZIP `zip -qr -X`, and sysext_unpack vs `unzip -q`, on the
 * same generated bundle, in the same run. Prints each best-of-R time and the ratio.
 *
 *   bench_zip [--files N] [--bytes M] [--depth D] [--symlinks K] [--reps R]
 */
#include "util/common.h"

#include <getopt.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/gen.h"
#include "sysext/archive.h"
#include "util/fs.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sh(const char *fmt, ...) SX_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        return -1; /* a truncated command must not run */
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long long fsize(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv)
{
    sx_gen_opts o = {.kind = SX_GEN_APP, .files = 2000, .bytes = 64u << 20, .depth = 3,
                     .symlinks = 50, .seed = 1};
    unsigned reps = 3;
    static const struct option lo[] = {
        {"files", required_argument, NULL, 'n'}, {"bytes", required_argument, NULL, 'b'},
        {"depth", required_argument, NULL, 'd'}, {"symlinks", required_argument, NULL, 'l'},
        {"reps", required_argument, NULL, 'r'},  {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        unsigned long long v = optarg ? strtoull(optarg, NULL, 10) : 0;
        switch (c) {
        case 'n': o.files = v; break;
        case 'b': o.bytes = v; break;
        case 'd': o.depth = (unsigned)v; break;
        case 'l': o.symlinks = v; break;
        case 'r': reps = v ? (unsigned)v : 1; break;
        default:
            fputs("usage: bench_zip [--files N] [--bytes M] [--depth D] [--symlinks K] [--reps R]\n",
                  stderr);
            return 2;
        }
    }
    if (sh("command -v zip >/dev/null && command -v unzip >/dev/null") != 0) {
        fputs("bench_zip: needs Info-ZIP zip and unzip (apt-get install zip unzip)\n", stderr);
        return 2;
    }
    char dir[] = "/tmp/sx-bench-zip-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    umask(022);
    char bundle[256], ours[256], theirs[256], out[256];
    snprintf(bundle, sizeof(bundle), "%s/Bench.app", dir);
    snprintf(ours, sizeof(ours), "%s/ours.zip", dir);
    snprintf(theirs, sizeof(theirs), "%s/theirs.zip", dir);
    int r = sx_gen_bundle(&o, bundle);
    if (r < 0) {
        fprintf(stderr, "bench_zip: %s\n", sx_errmsg());
        sx_rm_rf(dir);
        return 2;
    }
    double best_ours = 1e9, best_zip = 1e9, best_unpack = 1e9, best_unzip = 1e9;
    for (unsigned i = 0; i < reps && r == 0; i++) {
        double t = now();
        r = sysext_pack(bundle, ours, 0);
        t = now() - t;
        best_ours = t < best_ours ? t : best_ours;
        unlink(theirs);
        t = now();
        if (sh("cd %s && zip -qr -X -y %s Bench.app", dir, theirs) != 0)
            r = -1;
        t = now() - t;
        best_zip = t < best_zip ? t : best_zip;

        snprintf(out, sizeof(out), "%s/u-ours", dir);
        sx_rm_rf(out);
        t = now();
        if (r == 0)
            r = sysext_unpack(ours, out, NULL);
        t = now() - t;
        best_unpack = t < best_unpack ? t : best_unpack;
        snprintf(out, sizeof(out), "%s/u-theirs", dir);
        sx_rm_rf(out);
        t = now();
        if (r == 0 && sh("unzip -q %s -d %s", ours, out) != 0)
            r = -1;
        t = now() - t;
        best_unzip = t < best_unzip ? t : best_unzip;
    }
    if (r < 0) {
        fprintf(stderr, "bench_zip: failed: %s\n", sx_errmsg());
        sx_rm_rf(dir);
        return 2;
    }
    printf("bundle: %llu files, %llu bytes, depth %u, %llu symlinks; best of %u\n",
           (unsigned long long)o.files, (unsigned long long)o.bytes, o.depth,
           (unsigned long long)o.symlinks, reps);
    printf("pack    sysext_pack        %8.3f s  %12lld bytes\n", best_ours, fsize(ours));
    printf("pack    zip -qr -X -y      %8.3f s  %12lld bytes  (baseline)\n", best_zip, fsize(theirs));
    printf("pack    ratio sysext/zip   %8.2f\n", best_ours / best_zip);
    printf("unpack  sysext_unpack      %8.3f s\n", best_unpack);
    printf("unpack  unzip -q           %8.3f s  (baseline)\n", best_unzip);
    printf("unpack  ratio sysext/unzip %8.2f\n", best_unpack / best_unzip);
    sx_rm_rf(dir);
    return 0;
}
