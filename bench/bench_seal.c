/* Resource-seal hashing speed: sx_seal_build (sign side), sx_seal_verify and an incremental
 * re-seal after one changed file, each compared in the same run with the single-core floor
 * `openssl dgst -sha256` over the same files (find ... -print0 | xargs -0, one process at a
 * time).
 *
 *   bench_seal [--files N] [--mib M] [--threads T] [--data-dir] [--keep] [BUNDLE.app]
 *
 * Without BUNDLE.app a deep bundle of N files (default 10000) totalling M MiB (default 1024)
 * is generated in a temp dir under $TMPDIR (default /tmp) and removed afterwards. All files
 * are read once first so every run works from the page cache. The generated files go to
 * Contents/Resources/ (sealed by V1 too: SHA-1 and SHA-256 per file, as codesign does) or,
 * with --data-dir, to Contents/Library/Data/ (V2 only: SHA-256 per file). CPU time is printed
 * beside wall time: on a shared machine it is the steadier measure. */
#include "util/common.h"
#include "codesign/seal.h"
#include "util/buf.h"
#include "util/fs.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of this process or of its waited-for children: on a machine
 * shared with other jobs this is steadier than wall time. */
static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int write_file(const char *path, size_t size, uint8_t *buf, size_t bufsize)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (size > 0) {
        size_t n = size < bufsize ? size : bufsize;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            uint64_t r = next_rand();
            memcpy(buf + i, &r, 8);
        }
        if (write(fd, buf, n) != (ssize_t)n) {
            close(fd);
            return -1;
        }
        size -= n;
    }
    return close(fd);
}

static const char *loadavg(void)
{
    static char buf[128];
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || !fgets(buf, sizeof(buf), f))
        snprintf(buf, sizeof(buf), "?\n");
    if (f)
        fclose(f);
    return buf;
}

static int generate(const char *app, size_t files, size_t mib, const char *sub)
{
    size_t bufsize = 1 << 20;
    uint8_t *buf = malloc(bufsize);
    char path[4096];
    uint64_t total = (uint64_t)mib << 20, mean = files ? total / files : 0;
    if (!buf)
        return -1;
    snprintf(path, sizeof(path), "%s/Contents/MacOS", app);
    sx_mkdir_p(path, 0755);
    snprintf(path, sizeof(path), "%s/Contents/MacOS/Bench", app);
    write_file(path, 4096, buf, bufsize);
    snprintf(path, sizeof(path), "%s/Contents/Info.plist", app);
    write_file(path, 512, buf, bufsize);
    for (size_t i = 0; i < files; i++) {
        if (i % 100 == 0) {
            snprintf(path, sizeof(path), "%s/Contents/%s/d%03zu", app, sub, i / 100);
            if (sx_mkdir_p(path, 0755) < 0)
                return -1;
        }
        /* sizes between 0.1x and 1.9x the mean, same total on average */
        uint64_t size = mean / 10 + (next_rand() % (mean * 18 / 10 + 1));
        snprintf(path, sizeof(path), "%s/Contents/%s/d%03zu/f%05zu.bin", app, sub, i / 100, i);
        if (write_file(path, (size_t)size, buf, bufsize) < 0) {
            free(buf);
            return -1;
        }
    }
    free(buf);
    return 0;
}

static double last_cpu;

static double run_shell(const char *cmd)
{
    double t0 = now_s(), c0 = cpu_s(RUSAGE_CHILDREN);
    int rc = system(cmd);
    double t = now_s() - t0;
    last_cpu = cpu_s(RUSAGE_CHILDREN) - c0;
    if (rc != 0) {
        fprintf(stderr, "bench_seal: '%s' failed (%d)\n", cmd, rc);
        exit(2);
    }
    return t;
}

int main(int argc, char **argv)
{
    size_t files = 10000, mib = 1024;
    bool resources = true;
    unsigned threads = 0;
    bool keep = false;
    const char *app = NULL;
    char *tmp = NULL, *gen = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--files") == 0 && i + 1 < argc)
            files = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
            mib = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--data-dir") == 0)
            resources = false; /* files under Contents/Library/Data: V2 only, no SHA-1 */
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else if (argv[i][0] != '-')
            app = argv[i];
        else {
            fprintf(stderr, "usage: bench_seal [--files N] [--mib M] [--threads T] [--data-dir] [--keep] "
                            "[BUNDLE.app]\n");
            return 2;
        }
    }
    if (!app) {
        const char *t = getenv("TMPDIR");
        if (asprintf(&tmp, "%s/sx-bench-seal-XXXXXX", t && *t ? t : "/tmp") < 0 || !mkdtemp(tmp))
            return 2;
        gen = sx_path_join(tmp, "Bench.app");
        printf("generating %zu files, %zu MiB in %s\n", files, mib, gen);
        fflush(stdout);
        if (generate(gen, files, mib, resources ? "Resources" : "Library/Data") < 0) {
            fprintf(stderr, "bench_seal: generating the tree failed\n");
            return 2;
        }
        app = gen;
        sleep(2); /* let the files age past the incremental cache's racy window */
    }
    char *base = sx_path_join(app, "Contents");
    char *cache = NULL, *cmd = NULL;
    if (asprintf(&cache, "%s.seal-cache", tmp ? tmp : "/tmp/sx-bench-seal") < 0)
        return 2;
    unlink(cache);
    /* warm the page cache */
    if (asprintf(&cmd, "find '%s' -type f -print0 | xargs -0 cat > /dev/null", base) < 0)
        return 2;
    run_shell(cmd);
    free(cmd);
    if (asprintf(&cmd, "find '%s' -type f -print0 | xargs -0 openssl dgst -sha256 > /dev/null",
                 base) < 0)
        return 2;
    double t_base = run_shell(cmd), c_base = last_cpu;
    free(cmd);

    sx_seal_options o = {.bundle_path = app, .main_exe_rel = "MacOS/Bench", .threads = threads};
    sx_seal_stats st = {0};
    o.stats = &st;
    sx_buf xml = SX_BUF_INIT;
    double t0 = now_s(), c0 = cpu_s(RUSAGE_SELF);
    if (sx_seal_build(&o, &xml) < 0) {
        fprintf(stderr, "bench_seal: %s\n", sx_errmsg());
        return 2;
    }
    double t_seal = now_s() - t0, c_seal = cpu_s(RUSAGE_SELF) - c0;
    size_t nfiles = st.files;
    uint64_t bytes = st.bytes_hashed;

    sx_report rep;
    sx_report_init(&rep);
    t0 = now_s();
    c0 = cpu_s(RUSAGE_SELF);
    int rc = sx_seal_verify(&o, xml.data, xml.len, true, NULL, NULL, &rep);
    double t_verify = now_s() - t0, c_verify = cpu_s(RUSAGE_SELF) - c0;
    if (rc != 0) {
        fprintf(stderr, "bench_seal: verify: %s (%zu problems)\n", sx_errmsg(), rep.n);
        return 2;
    }
    sx_report_free(&rep);

    /* incremental: populate the cache, change one file, re-seal */
    o.cache_path = cache;
    sx_buf xml2 = SX_BUF_INIT;
    if (sx_seal_build(&o, &xml2) < 0) {
        fprintf(stderr, "bench_seal: %s\n", sx_errmsg());
        return 2;
    }
    if (asprintf(&cmd, "f=$(find '%s' -name '*.bin' -type f | head -n 1); printf x >> \"$f\"",
                 base) < 0)
        return 2;
    run_shell(cmd);
    free(cmd);
    t0 = now_s();
    if (sx_seal_build(&o, &xml2) < 0) {
        fprintf(stderr, "bench_seal: %s\n", sx_errmsg());
        return 2;
    }
    double t_incr = now_s() - t0;
    size_t incr_hashed = st.files_hashed;

    printf("tree: %s, %zu files, %.1f MiB%s, threads %u (0 = all %ld CPUs)\n", app, nfiles,
           (double)bytes / 1048576.0,
           gen ? (resources ? " in Resources/ (V1+V2: SHA-1 + SHA-256 per file)"
                            : " in Library/Data/ (V2 only: SHA-256 per file)")
               : "",
           threads, sysconf(_SC_NPROCESSORS_ONLN));
    printf("                                     wall       ratio   | cpu        ratio\n");
    printf("baseline openssl dgst -sha256:       %7.3f s  1.000   | %7.3f s  1.000\n", t_base,
           c_base);
    printf("seal build:                          %7.3f s  %.3f   | %7.3f s  %.3f\n", t_seal,
           t_seal / t_base, c_seal, c_seal / c_base);
    printf("seal verify --strict:                %7.3f s  %.3f   | %7.3f s  %.3f\n", t_verify,
           t_verify / t_base, c_verify, c_verify / c_base);
    printf("incremental re-seal (%zu rehashed):   %7.3f s  %.3f of the full seal build\n",
           incr_hashed, t_incr, t_incr / t_seal);
    printf("load average at the end: %s", loadavg());
    sx_buf_free(&xml);
    sx_buf_free(&xml2);
    unlink(cache);
    free(cache);
    free(base);
    if (tmp && !keep)
        sx_rm_rf(tmp);
    free(gen);
    free(tmp);
    return 0;
}
