/* Whole-bundle signing speed: `sign` (seal + components + CMS), `verify --strict --deep`, and an
 * incremental re-sign after one changed file, each compared in the same run with the
 * hardware-accelerated single-core floor: one `openssl dgst -sha256` process over the same files.
 *
 *   bench_sign [--files N] [--mib M] [--depth D] [--symlinks K] [--dir DIR] [--threads T]
 *              [--reps R] [--incr-reps K] [--keep]
 *
 * A deterministic app of N payload files (default 10000) totalling M MiB (default 1024) in D
 * levels of directories (default 4) with K symlinks (default 100) is generated under DIR
 * (default $TMPDIR or /tmp) with the bench generator, signed with a fresh Developer ID
 * identity, and removed afterwards (--keep: left in place and reused by the next run with the
 * same --dir). Every file is read once before timing, so all runs work from the page cache.
 * Each of R rounds (default 3) runs the baseline, a full sign (empty cache), verify and an
 * incremental re-sign after one changed file; the medians of wall and CPU time and of the
 * per-round ratios are printed. On a shared machine CPU time is the steadier measure. With
 * --incr-reps K (default 1) each round times K incremental re-signs, each after changing one
 * more file, and keeps their median: one re-sign is short enough for a neighbour's burst to
 * double it. After each timed re-sign the changed file is aged and an untimed re-sign caches
 * it, so that every timed one finds exactly one changed file (see settle()). */
#include "util/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/gen.h"
#include "codesign/identity.h"
#include "codesign/sign_internal.h"
#include "codesign/verify_internal.h"
#include "util/fs.h"

extern char **environ;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

typedef struct files {
    char **v;
    size_t n, cap;
} files;

static void collect(const char *dir, files *f)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = sx_path_join(dir, e->d_name);
        struct stat st;
        if (!p || lstat(p, &st) < 0) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            collect(p, f);
            free(p);
        } else if (S_ISREG(st.st_mode)) {
            if (f->n == f->cap) {
                f->cap = f->cap ? f->cap * 2 : 1024;
                f->v = realloc(f->v, f->cap * sizeof(*f->v));
            }
            f->v[f->n++] = p;
        } else {
            free(p);
        }
    }
    if (d)
        closedir(d);
}

/* One openssl process over every file, as the issue names the baseline. */
static int baseline(const files *f, double *wall, double *cpu)
{
    char **argv = calloc(f->n + 4, sizeof(char *));
    argv[0] = "openssl";
    argv[1] = "dgst";
    argv[2] = "-sha256";
    memcpy(argv + 3, f->v, f->n * sizeof(char *));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    double c0 = cpu_s(RUSAGE_CHILDREN), t0 = now_s();
    pid_t pid;
    int rc = posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ);
    int status = 0;
    if (rc == 0)
        waitpid(pid, &status, 0);
    *wall = now_s() - t0;
    *cpu = cpu_s(RUSAGE_CHILDREN) - c0;
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void warm(const files *f)
{
    static uint8_t buf[1 << 20];
    for (size_t i = 0; i < f->n; i++) {
        FILE *fp = fopen(f->v[i], "rb");
        while (fp && fread(buf, 1, sizeof(buf), fp) > 0) {
        }
        if (fp)
            fclose(fp);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Put the changed file's mtime an hour back and re-sign: the cache then holds it. */
static int settle(const char *changed, const char *app, const sysext_sign_options *so)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 3600;
    ts[1] = ts[0];
    if (utimensat(AT_FDCWD, changed, ts, 0) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", changed);
    return sx_sign_bundle(app, so);
}

#define MAX_REPS 15
#define MAX_INCR_REPS 101
enum { M_BASE, M_SIGN, M_VERIFY, M_INCR, M_N };

int main(int argc, char **argv)
{
    uint64_t nfiles = 10000, mib = 1024, symlinks = 100;
    unsigned threads = 0, depth = 4;
    int reps = 3, incr_reps = 1;
    bool keep = false;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *fixed = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--files") && i + 1 < argc)
            nfiles = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc)
            depth = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--symlinks") && i + 1 < argc)
            symlinks = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base = fixed = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--incr-reps") && i + 1 < argc)
            incr_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else {
            fprintf(stderr, "usage: bench_sign [--files N] [--mib M] [--depth D] [--symlinks K] "
                            "[--dir DIR] [--threads T] [--reps R] [--incr-reps K] [--keep]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || incr_reps < 1 || incr_reps > MAX_INCR_REPS) {
        fprintf(stderr, "--reps: 1..%d, --incr-reps: 1..%d\n", MAX_REPS, MAX_INCR_REPS);
        return 2;
    }
    if (keep && !fixed) {
        fprintf(stderr, "--keep needs --dir\n");
        return 2;
    }
    char *dir = NULL;
    if (keep) {
        dir = strdup(fixed);
        if (sx_mkdir_p(dir, 0700) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
            perror(dir);
            return 2;
        }
    } else if (asprintf(&dir, "%s/bench-sign-XXXXXX", base) < 0 || !mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    char *app = sx_path_join(dir, "Bench.app"), *ca = sx_path_join(dir, "ca"),
         *p12 = sx_path_join(dir, "id.p12"), *root = sx_path_join(dir, "ca/root.cert.pem"),
         *cache = sx_path_join(dir, "cache");
    int rc = 1;
    sx_gen_opts g = {.kind = SX_GEN_APP, .files = nfiles, .bytes = mib << 20, .depth = depth,
                     .symlinks = symlinks, .seed = 1, .id = "com.example.bench"};
    files f = {0};
    if (!keep || !sx_path_exists(p12)) {
        if (keep)
            sx_rm_rf(app), sx_rm_rf(ca), unlink(p12);
        fprintf(stderr, "generating %llu files, %llu MiB in %s\n", (unsigned long long)nfiles,
                (unsigned long long)mib, dir);
        if (sx_gen_bundle(&g, app) < 0 || sx_ca_init(ca) < 0 ||
            sx_identity_create(ca, "BENCHTEAM1", "Developer ID Application: Bench",
                               SX_ID_DEVELOPER_ID, "", p12) < 0) {
            fprintf(stderr, "setup: %s\n", sx_errmsg());
            goto out;
        }
    }
    collect(app, &f);
    warm(&f);

    double m[M_N][2][MAX_REPS], ratio[M_N][2][MAX_REPS], incr_of_sign[2][MAX_REPS];
    sysext_sign_options so = SYSEXT_SIGN_OPTIONS_INIT;
    so.identity = p12;
    so.threads = threads;
    so.incremental = 1;
    so.cache_dir = cache;
    const char *trust[] = {root};
    sysext_verify_options vo = SYSEXT_VERIFY_OPTIONS_INIT;
    vo.strict = vo.deep = 1;
    vo.trust = trust;
    vo.n_trust = 1;
    for (int r = 0; r < reps; r++) {
        double c0, t0;
        if (baseline(&f, &m[M_BASE][0][r], &m[M_BASE][1][r]) < 0) {
            fprintf(stderr, "openssl dgst failed\n");
            goto out;
        }
        /* Full sign: the incremental cache starts empty, so every file is hashed. */
        sx_rm_rf(cache);
        c0 = cpu_s(RUSAGE_SELF);
        t0 = now_s();
        if (sx_sign_bundle(app, &so) < 0) {
            fprintf(stderr, "sign: %s\n", sx_errmsg());
            goto out;
        }
        m[M_SIGN][0][r] = now_s() - t0;
        m[M_SIGN][1][r] = cpu_s(RUSAGE_SELF) - c0;

        sx_report rep;
        sx_vresult v;
        sx_report_init(&rep);
        memset(&v, 0, sizeof(v));
        c0 = cpu_s(RUSAGE_SELF);
        t0 = now_s();
        int vr = sx_verify_path(app, &vo, &rep, &v);
        m[M_VERIFY][0][r] = now_s() - t0;
        m[M_VERIFY][1][r] = cpu_s(RUSAGE_SELF) - c0;
        size_t nprob = rep.n;
        sx_report_free(&rep);
        sx_vresult_free(&v);
        if (vr != 0) {
            fprintf(stderr, "verify: %s (%zu problems)\n", sx_errmsg(), nprob);
            goto out;
        }

        /* One changed file, then an incremental re-sign (K times: their median). */
        double iwall[MAX_INCR_REPS], icpu[MAX_INCR_REPS];
        for (int k = 0; k < incr_reps; k++) {
            const char *changed = f.v[(f.n / 2 + (size_t)k) % f.n];
            FILE *fp = fopen(changed, "r+b");
            if (fp) {
                fprintf(fp, "changed %d.%d", r, k);
                fclose(fp);
            }
            c0 = cpu_s(RUSAGE_SELF);
            t0 = now_s();
            if (sx_sign_bundle(app, &so) < 0) {
                fprintf(stderr, "incremental sign: %s\n", sx_errmsg());
                goto out;
            }
            iwall[k] = now_s() - t0;
            icpu[k] = cpu_s(RUSAGE_SELF) - c0;
            /* Settle, untimed, as a pause of more than 2 s would: a file changed just now is
             * hashed but not cached (its timestamp could hide a second write in the same
             * tick), so without this every later re-sign of the round would rehash it too,
             * and re-sign K would time K changed files, not one. */
            if (settle(changed, app, &so) < 0) {
                fprintf(stderr, "settling re-sign: %s\n", sx_errmsg());
                goto out;
            }
        }
        m[M_INCR][0][r] = median(iwall, incr_reps);
        m[M_INCR][1][r] = median(icpu, incr_reps);
        for (int k = 0; k < M_N; k++)
            for (int w = 0; w < 2; w++)
                ratio[k][w][r] = m[k][w][r] / m[M_BASE][w][r];
        for (int w = 0; w < 2; w++)
            incr_of_sign[w][r] = m[M_INCR][w][r] / m[M_SIGN][w][r];
        fprintf(stderr,
                "round %d: baseline %.3f/%.3f  sign %.3f/%.3f  verify %.3f/%.3f  "
                "incremental %.3f/%.3f (wall/cpu s)\n",
                r + 1, m[M_BASE][0][r], m[M_BASE][1][r], m[M_SIGN][0][r], m[M_SIGN][1][r],
                m[M_VERIFY][0][r], m[M_VERIFY][1][r], m[M_INCR][0][r], m[M_INCR][1][r]);
    }

    double med[M_N][2], medr[M_N][2];
    for (int k = 0; k < M_N; k++)
        for (int w = 0; w < 2; w++) {
            med[k][w] = median(m[k][w], reps);
            medr[k][w] = median(ratio[k][w], reps);
        }
    double iw = median(incr_of_sign[0], reps), ic = median(incr_of_sign[1], reps);
    printf("files=%zu bytes=%llu MiB, cores=%ld, medians of %d rounds\n", f.n,
           (unsigned long long)mib, sysconf(_SC_NPROCESSORS_ONLN), reps);
    printf("%-38s %9s %9s %12s %12s\n", "", "wall s", "cpu s", "wall ratio", "cpu ratio");
    printf("%-38s %9.3f %9.3f %12s %12s\n", "baseline: openssl dgst -sha256", med[M_BASE][0],
           med[M_BASE][1], "1.00", "1.00");
    printf("%-38s %9.3f %9.3f %12.3f %12.3f   (goal <= 0.75)\n", "sign", med[M_SIGN][0],
           med[M_SIGN][1], medr[M_SIGN][0], medr[M_SIGN][1]);
    printf("%-38s %9.3f %9.3f %12.3f %12.3f   (goal <= 0.60)\n", "verify --strict --deep",
           med[M_VERIFY][0], med[M_VERIFY][1], medr[M_VERIFY][0], medr[M_VERIFY][1]);
    printf("%-38s %9.3f %9.3f %12.3f %12.3f\n", "incremental re-sign, 1 file changed",
           med[M_INCR][0], med[M_INCR][1], medr[M_INCR][0], medr[M_INCR][1]);
    printf("%-38s %9s %9s %12.3f %12.3f   (goal <= 0.05)\n", "  incremental / full sign", "", "",
           iw, ic);
    rc = 0;
out:
    for (size_t i = 0; i < f.n; i++)
        free(f.v[i]);
    free(f.v);
    if (!keep)
        sx_rm_rf(dir);
    free(dir);
    free(app);
    free(ca);
    free(p12);
    free(root);
    free(cache);
    return rc;
}
