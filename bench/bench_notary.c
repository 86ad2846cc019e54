/* Notarization cost: submit + notarize (POST, streamed PUT, asynchronous unpack + strict/deep
 * verification + ticket, polled until Accepted) of a signed bundle, compared in the same run
 * with the baseline of a plain upload of the same zip to the same server (POST + PUT only).
 *
 *   bench_notary [--mib M] [--files N] [--runs R]
 *
 * Defaults: a 100 MiB .app of 200 payload files, 3 runs of each, medians printed. Everything
 * (CA, identity, bundle, zip, notary store, server on 127.0.0.1) lives in a temp dir under
 * $TMPDIR (default /tmp) and is removed afterwards. */
#include "util/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench/gen.h"
#include "codesign/identity.h"
#include "notary/http.h"
#include "notary/store.h"
#include "sysext/sysext.h"
#include "util/fs.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *path(const char *dir, const char *rel)
{
    char *p = sx_path_join(dir, rel);
    if (!p)
        exit(2);
    return p;
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if ((x) < 0) {                                                                             \
            fprintf(stderr, "bench_notary: %s: %s\n", #x, sx_errmsg());                            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    uint64_t mib = 100, files = 200;
    int runs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib"))
            mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--files"))
            files = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
    }
    if (runs < 1 || runs > 20)
        runs = 3;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bench-notary-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    int ret = 2;
    sx_store *store = NULL;
    sx_notary_server *srv = NULL;
    char *ca = path(dir, "ca"), *p12 = path(dir, "id.p12"), *app = path(dir, "Bench.app");
    char *zip = path(dir, "Bench.zip"), *sdir = path(dir, "store"), *keyf = path(dir, "key");
    char *root = path(dir, "ca/" SX_CA_ROOT_CERT);
    double *t_up = calloc((size_t)runs, sizeof(double)), *t_all = calloc((size_t)runs, sizeof(double));
    if (!t_up || !t_all)
        goto out;

    double t0 = now_s();
    CHECK(sx_ca_init(ca));
    CHECK(sx_identity_create(ca, "BENCHTEAM1", "Developer ID Application: Bench", SX_ID_DEVELOPER_ID,
                             "", p12));
    sx_gen_opts g = {.kind = SX_GEN_APP, .files = files, .bytes = mib << 20, .depth = 2, .seed = 1};
    CHECK(sx_gen_bundle(&g, app));
    sysext_sign_options so = SYSEXT_SIGN_OPTIONS_INIT;
    so.identity = p12;
    CHECK(sysext_sign(app, &so));
    CHECK(sysext_pack(app, zip, 0));
    CHECK(sx_store_init(sdir));
    CHECK(sx_store_open(sdir, &store));
    char key[65], line[80];
    CHECK(sx_store_key_create(store, "BENCHTEAM1", false, key));
    snprintf(line, sizeof line, "%s\n", key);
    CHECK(sx_write_file_atomic(keyf, line, strlen(line), 0600));
    const char *trust[] = {root};
    sx_notary_server_opts so2 = {.listen = "127.0.0.1:0", .trust = trust, .n_trust = 1};
    CHECK(sx_notary_server_start(store, &so2, &srv));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", sx_notary_server_port(srv));
    uint8_t *zd;
    size_t zl;
    CHECK(sx_read_file(zip, (size_t)1 << 34, &zd, &zl)); /* also warms the page cache */
    free(zd);
    printf("setup: %.1f s; bundle %llu MiB in %llu files, zip %.1f MiB\n", now_s() - t0,
           (unsigned long long)mib, (unsigned long long)files, (double)zl / 1048576.0);

    for (int i = 0; i < runs; i++) {
        sysext_notary_options o = SYSEXT_NOTARY_OPTIONS_INIT;
        o.server = url;
        o.key_file = keyf;
        char *text = NULL;
        double a = now_s();
        CHECK(sysext_notary_submit(zip, &o, &text)); /* baseline: POST + PUT */
        t_up[i] = now_s() - a;
        free(text);
        /* Let the workers finish that submission (untimed) so it does not overlap the next. */
        for (;;) {
            char **ids;
            size_t n;
            CHECK(sx_store_pending(store, &ids, &n));
            for (size_t k = 0; k < n; k++)
                free(ids[k]);
            free(ids);
            if (n == 0)
                break;
            struct timespec ts = {0, 50000000L};
            nanosleep(&ts, NULL);
        }
        o.wait = 1;
        a = now_s();
        CHECK(sysext_notary_submit(zip, &o, &text)); /* POST + PUT + processing until Accepted */
        t_all[i] = now_s() - a;
        free(text);
        printf("run %d: plain upload %.3f s, submit+notarize %.3f s\n", i + 1, t_up[i], t_all[i]);
    }
    qsort(t_up, (size_t)runs, sizeof(double), cmp_d);
    qsort(t_all, (size_t)runs, sizeof(double), cmp_d);
    double up = t_up[runs / 2], all = t_all[runs / 2];
    printf("median: plain upload %.3f s (%.0f MiB/s), submit+notarize %.3f s; ratio %.2fx\n", up,
           (double)zl / 1048576.0 / up, all, all / up);
    ret = 0;
out:
    sx_notary_server_stop(srv); /* waits for the baseline uploads' processing to finish */
    sx_store_close(store);
    sx_rm_rf(dir);
    free(ca);
    free(p12);
    free(app);
    free(zip);
    free(sdir);
    free(keyf);
    free(root);
    free(t_up);
    free(t_all);
    return ret;
}
