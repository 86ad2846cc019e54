#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/common.h"
#include "codesign/hash.h"
#include "codesign/seal.h"
#include "codesign/seal_internal.h"
#include "codesign/shani.h"
#include "util/fs.h"
#include "util/hex.h"

#define ICON SYSEXT_SHARED_DIR "/samples/apple/coderesources/KilimcininKorOglu_SplitWG.inputs/Resources/AppIcon.icns"

static char dir[] = "/tmp/sx-test-filehash-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    sx_rm_rf(dir);
}

TestSuite(codesign_filehash, .init = setup, .fini = teardown);

static char *at(const char *rel)
{
    char *p = sx_path_join(dir, rel);
    cr_assert_not_null(p);
    return p;
}

static void put_bytes(const char *rel, const void *data, size_t len)
{
    char *p = at(rel);
    char *d = sx_path_dirname(p);
    cr_assert_eq(sx_mkdir_p(d, 0755), 0);
    cr_assert_eq(sx_write_file_atomic(p, data, len, 0644), 0, "%s", sx_errmsg());
    free(d);
    free(p);
}

/* Push every file's timestamps an hour back, out of the cache's racy window. */
static void age(const char *rel)
{
    char *p = at(rel);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 3600;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
    free(p);
}

Test(codesign_filehash, pair_matches_known_digests)
{
    uint8_t s1[20], s256[32];
    uint64_t size = 0;
    char hex[65];
    cr_assert_eq(sx_hash_file_pair(ICON, s1, s256, &size), 0, "%s", sx_errmsg());
    cr_assert_eq(size, 64290);
    sx_hex_encode(s1, 20, hex);
    cr_assert_str_eq(hex, "cf3e4e9c9954a34d350a987fca7c1cbbb5f75d4f");
    sx_hex_encode(s256, 32, hex);
    cr_assert_str_eq(hex, "998564fce27a305e270adf1039e48c57b3173ff53f7fccdaa476e238ec02b219");
}

/* The OpenSSL path (CPUs without SHA-NI): forced by SYSEXT_NO_SHANI before the first use
 * (each Criterion test runs in a process of its own). Same digests, and a whole seal too. */
Test(codesign_filehash, openssl_path_without_shani)
{
    cr_assert_eq(setenv("SYSEXT_NO_SHANI", "1", 1), 0);
    cr_assert(!sx_shani_available());
    uint8_t s1[20], s256[32];
    uint64_t size = 0;
    char hex[65];
    cr_assert_eq(sx_hash_file_pair(ICON, s1, s256, &size), 0, "%s", sx_errmsg());
    cr_assert_eq(size, 64290);
    sx_hex_encode(s1, 20, hex);
    cr_assert_str_eq(hex, "cf3e4e9c9954a34d350a987fca7c1cbbb5f75d4f");
    sx_hex_encode(s256, 32, hex);
    cr_assert_str_eq(hex, "998564fce27a305e270adf1039e48c57b3173ff53f7fccdaa476e238ec02b219");
    uint8_t big[8192], h[32];
    memset(big, 'a', sizeof(big));
    cr_assert_eq(sx_hash(SX_HASH_SHA256, big, sizeof(big), h), 0);
    sx_hex_encode(h, 32, hex);
    /* sha256 of 8192 'a' */
    cr_assert_str_eq(hex, "dd4e6730520932767ec0a9e33fe19c4ce24399d6eba4ff62f13013c9ed30ef87");
}

Test(codesign_filehash, pair_errors)
{
    uint8_t s1[20], s256[32];
    char *missing = at("nope");
    cr_assert_eq(sx_hash_file_pair(missing, s1, s256, NULL), SYSEXT_ENOTFOUND);
    cr_assert(strstr(sx_errmsg(), missing));
    char *l = at("link");
    cr_assert_eq(symlink(ICON, l), 0);
    cr_assert_eq(sx_hash_file_pair(l, s1, s256, NULL), SYSEXT_EFORMAT);
    cr_assert_eq(sx_hash_file_pair(dir, s1, s256, NULL), SYSEXT_EFORMAT);
    free(missing);
    free(l);
}

/* Sizes around the read chunk; every thread count gives the one-shot digests. */
Test(codesign_filehash, pool_matches_one_shot)
{
    static const size_t sizes[] = {0, 1, 4095, 65536, (1u << 20) - 1, 1u << 20, (1u << 20) + 7,
                                   3000000};
    size_t n = SX_ARRAY_SIZE(sizes);
    uint8_t *buf = malloc(3000000);
    for (size_t i = 0; i < 3000000; i++)
        buf[i] = (uint8_t)(i * 131 + (i >> 9));
    for (unsigned threads = 1; threads <= 4; threads += 3) {
        sx_hash_job *jobs = calloc(n, sizeof(*jobs));
        for (size_t i = 0; i < n; i++) {
            char rel[32];
            snprintf(rel, sizeof(rel), "f%zu", i);
            put_bytes(rel, buf, sizes[i]);
            jobs[i].path = at(rel);
            jobs[i].want_sha1 = true;
            jobs[i].want_sha256 = i % 2 == 0;
        }
        sx_hash_stats st;
        cr_assert_eq(sx_hash_jobs_run(jobs, n, threads, NULL, &st), 0, "%s", sx_errmsg());
        cr_assert_eq(st.files_hashed, n);
        for (size_t i = 0; i < n; i++) {
            uint8_t h1[20], h2[32];
            sx_hash(SX_HASH_SHA1, buf, sizes[i], h1);
            sx_hash(SX_HASH_SHA256, buf, sizes[i], h2);
            cr_assert_eq(jobs[i].size, sizes[i]);
            cr_assert_eq(memcmp(jobs[i].sha1, h1, 20), 0, "file %zu", i);
            cr_assert_eq(jobs[i].have_sha256, i % 2 == 0);
            if (i % 2 == 0)
                cr_assert_eq(memcmp(jobs[i].sha256, h2, 32), 0, "file %zu", i);
        }
        sx_hash_jobs_free(jobs, n);
    }
    free(buf);
}

Test(codesign_filehash, pool_reports_failing_file)
{
    put_bytes("ok", "x", 1);
    sx_hash_job *jobs = calloc(2, sizeof(*jobs));
    jobs[0].path = at("ok");
    jobs[0].want_sha256 = true;
    jobs[1].path = at("gone");
    jobs[1].want_sha256 = true;
    cr_assert_eq(sx_hash_jobs_run(jobs, 2, 2, NULL, NULL), SYSEXT_ENOTFOUND);
    cr_assert(strstr(sx_errmsg(), "gone"), "%s", sx_errmsg());
    cr_assert_eq(jobs[0].rc, 0);
    cr_assert_eq(jobs[1].rc, SYSEXT_ENOTFOUND);
    sx_hash_jobs_free(jobs, 2);
}

/* ---- incremental sealing ---- */

#define NFILES 40

static void make_tree(void)
{
    put_bytes("B.app/Contents/Info.plist", "<plist/>", 8);
    put_bytes("B.app/Contents/MacOS/B", "main", 4);
    age("B.app/Contents/Info.plist");
    age("B.app/Contents/MacOS/B");
    for (int i = 0; i < NFILES; i++) {
        char rel[64], body[64];
        snprintf(rel, sizeof(rel), "B.app/Contents/Resources/d%d/f%d.bin", i % 5, i);
        int len = snprintf(body, sizeof(body), "content of file %d", i);
        put_bytes(rel, body, (size_t)len);
        age(rel);
    }
}

static void seal(const char *cache, sx_buf *out, sx_seal_stats *st)
{
    char *app = at("B.app");
    sx_seal_options o = {.bundle_path = app, .main_exe_rel = "MacOS/B", .cache_path = cache,
                         .stats = st, .threads = 2};
    sx_buf_free(out);
    cr_assert_eq(sx_seal_build(&o, out), 0, "%s", sx_errmsg());
    free(app);
}

Test(codesign_filehash, incremental_rehashes_only_the_changed_file)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_buf first = SX_BUF_INIT, again = SX_BUF_INIT, full = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &first, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    cr_assert_eq(st.files_cached, 0);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_hashed, 0);
    cr_assert_eq(st.files_cached, NFILES);
    cr_assert_eq(again.len, first.len);
    cr_assert_eq(memcmp(again.data, first.data, first.len), 0);

    put_bytes("B.app/Contents/Resources/d3/f13.bin", "changed!", 8);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_hashed, 1);
    cr_assert_eq(st.files_cached, NFILES - 1);
    seal(NULL, &full, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    cr_assert_eq(again.len, full.len);
    cr_assert_eq(memcmp(again.data, full.data, full.len), 0);
    cr_assert_neq(memcmp(again.data, first.data, first.len < again.len ? first.len : again.len), 0);
    sx_buf_free(&first);
    sx_buf_free(&again);
    sx_buf_free(&full);
    free(cache);
}

/* Same size, mtime put back: the ctime (and for a replaced file the inode) still differ. */
Test(codesign_filehash, cache_not_fooled_by_restored_mtime)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_buf a = SX_BUF_INIT, b = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &a, &st);
    char *p = at("B.app/Contents/Resources/d0/f0.bin");
    struct stat before;
    cr_assert_eq(stat(p, &before), 0);
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "X", 1, 0), 1);
    close(fd);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    seal(cache, &b, &st);
    cr_assert_eq(st.files_hashed, 1);
    sx_buf full = SX_BUF_INIT;
    seal(NULL, &full, &st);
    cr_assert_eq(b.len, full.len);
    cr_assert_eq(memcmp(b.data, full.data, b.len), 0);
    sx_buf_free(&a);
    sx_buf_free(&b);
    sx_buf_free(&full);
    free(p);
    free(cache);
}

Test(codesign_filehash, corrupt_cache_is_ignored)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_buf ref = SX_BUF_INIT, out = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &ref, &st);
    uint8_t *d;
    size_t n;
    cr_assert_eq(sx_read_file(cache, 1 << 20, &d, &n), 0);
    cr_assert_gt(n, 100);
    cr_assert_eq(memcmp(d, SX_HASH_CACHE_MAGIC, 8), 0);
    size_t recs = 0;
    cr_assert_eq(sx_hash_cache_parse_check(d, n, true, &recs), 0, "%s", sx_errmsg());
    cr_assert_eq(recs, NFILES);
    cr_assert_eq(sx_hash_cache_parse_check(d, n - 1, false, NULL), SYSEXT_EFORMAT);
    d[20] ^= 1;
    cr_assert_eq(sx_hash_cache_parse_check(d, n, true, NULL), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "checksum"), "%s", sx_errmsg());
    d[20] ^= 1;

    /* a flipped digest byte, a truncation, garbage, an empty file */
    d[n - 40] ^= 1;
    cr_assert_eq(sx_write_file_atomic(cache, d, n, 0600), 0);
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    cr_assert_eq(memcmp(out.data, ref.data, ref.len), 0);

    cr_assert_eq(sx_read_file(cache, 1 << 20, &d, &n), 0); /* rewritten, valid again */
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, 0);
    cr_assert_eq(sx_write_file_atomic(cache, d, n / 2, 0600), 0);
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    cr_assert_eq(sx_write_file_atomic(cache, "garbage", 7, 0600), 0);
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    cr_assert_eq(sx_write_file_atomic(cache, "", 0, 0600), 0);
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    cr_assert_eq(memcmp(out.data, ref.data, ref.len), 0);
    free(d);
    sx_buf_free(&ref);
    sx_buf_free(&out);
    free(cache);
}

Test(codesign_filehash, fresh_files_are_not_cached)
{
    put_bytes("B.app/Contents/MacOS/B", "main", 4);
    put_bytes("B.app/Contents/Resources/new.bin", "new", 3); /* mtime = now: racy */
    char *cache = at("seal.cache");
    sx_buf out = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, 1);
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, 1);
    sx_buf_free(&out);
    free(cache);
}

/* Names where the walk's order is not byte order ("a/x" is walked before "a.txt", but sorts
 * after it): the seal's dicts and the cache are still in byte order, the cache is found
 * sorted on the next run (every file a hit), and an unchanged cache is not rewritten. */
Test(codesign_filehash, walk_order_differs_from_byte_order)
{
    make_tree();
    put_bytes("B.app/Contents/Resources/a/x", "x", 1);
    put_bytes("B.app/Contents/Resources/a.txt", "t", 1);
    put_bytes("B.app/Contents/Resources/a-b", "m", 1);
    age("B.app/Contents/Resources/a/x");
    age("B.app/Contents/Resources/a.txt");
    age("B.app/Contents/Resources/a-b");
    char *cache = at("seal.cache");
    sx_buf first = SX_BUF_INIT, again = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &first, &st);
    cr_assert_eq(st.files_hashed, NFILES + 3);
    const char *x = (const char *)first.data;
    const char *p1 = strstr(x, "<key>Resources/a-b</key>"), *p2 = strstr(x, "<key>Resources/a.txt</key>"),
               *p3 = strstr(x, "<key>Resources/a/x</key>");
    cr_assert(p1 && p2 && p3 && p1 < p2 && p2 < p3, "files: a-b, a.txt, a/x in byte order");
    /* the same order again in files2 */
    const char *f2 = strstr(x, "<key>files2</key>");
    cr_assert_not_null(f2);
    p1 = strstr(f2, "<key>Resources/a-b</key>");
    p2 = strstr(f2, "<key>Resources/a.txt</key>");
    p3 = strstr(f2, "<key>Resources/a/x</key>");
    cr_assert(p1 && p2 && p3 && p1 < p2 && p2 < p3, "files2: a-b, a.txt, a/x in byte order");

    uint8_t *c = NULL;
    size_t clen = 0;
    cr_assert_eq(sx_read_file(cache, 1 << 24, &c, &clen), 0);
    size_t recs = 0;
    cr_assert_eq(sx_hash_cache_parse_check(c, clen, true, &recs), 0, "%s", sx_errmsg());
    cr_assert_eq(recs, NFILES + 3);
    free(c);

    struct stat before, after;
    cr_assert_eq(stat(cache, &before), 0);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_hashed, 0);
    cr_assert_eq(st.files_cached, NFILES + 3);
    cr_assert_eq(again.len, first.len);
    cr_assert_eq(memcmp(again.data, first.data, first.len), 0);
    cr_assert_eq(stat(cache, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "an unchanged cache is not rewritten");

    /* a removed file: the cache is rewritten without its record */
    char *gone = at("B.app/Contents/Resources/a.txt");
    cr_assert_eq(unlink(gone), 0);
    free(gone);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_cached, NFILES + 2);
    cr_assert_eq(stat(cache, &after), 0);
    cr_assert_neq(before.st_ino, after.st_ino);
    cr_assert_eq(sx_read_file(cache, 1 << 24, &c, &clen), 0);
    cr_assert_eq(sx_hash_cache_parse_check(c, clen, true, &recs), 0, "%s", sx_errmsg());
    cr_assert_eq(recs, NFILES + 2);
    free(c);
    sx_buf_free(&first);
    sx_buf_free(&again);
    free(cache);
}

/* With a small descriptor limit the walk keeps only some directories open (a quarter of the
 * soft limit); files in the others are opened by path. Both kinds hash, hit the cache and
 * rehash alike. */
Test(codesign_filehash, beyond_the_descriptor_budget)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 48; /* 12 directories kept open */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    make_tree();
    for (int i = 0; i < 30; i++) {
        char rel[80];
        snprintf(rel, sizeof(rel), "B.app/Contents/Resources/many/m%02d/f.bin", i);
        put_bytes(rel, rel, strlen(rel));
        age(rel);
    }
    char *cache = at("seal.cache");
    sx_buf first = SX_BUF_INIT, again = SX_BUF_INIT, full = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &first, &st);
    cr_assert_eq(st.files_hashed, NFILES + 30);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_hashed, 0);
    cr_assert_eq(st.files_cached, NFILES + 30);
    put_bytes("B.app/Contents/Resources/many/m29/f.bin", "changed", 7);
    put_bytes("B.app/Contents/Resources/d0/f0.bin", "changed", 7);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_hashed, 2);
    cr_assert_eq(st.files_cached, NFILES + 28);
    seal(NULL, &full, &st);
    cr_assert_eq(again.len, full.len);
    cr_assert_eq(memcmp(again.data, full.data, full.len), 0);
    sx_buf_free(&first);
    sx_buf_free(&again);
    sx_buf_free(&full);
    free(cache);
}

/* The stat-ahead queue: a file the cache knows gets its identity from the fstatat of the
 * prefetch (or the draining) thread; one the cache does not know, a directory, or a missing
 * name gets none (the hasher then looks for itself). */
Test(codesign_filehash, stat_ahead_fills_identity_of_cached_files)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_buf out = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &out, &st);
    cr_assert_eq(st.files_hashed, NFILES);
    put_bytes("B.app/Contents/Resources/d0/new.bin", "new", 3);
    char *d0 = at("B.app/Contents/Resources/d0");
    int dfd = open(d0, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(dfd, 0);
    sx_hash_prefetch *pf = sx_hash_prefetch_start(cache);
    cr_assert_not_null(pf);
    static const char *const names[] = {"f0.bin", "new.bin", "gone.bin", "f5.bin"};
    static const char *const rels[] = {"Resources/d0/f0.bin", "Resources/d0/new.bin",
                                       "Resources/d0/gone.bin", "Resources/d0/f5.bin"};
    size_t idx[4];
    for (int i = 0; i < 4; i++) {
        idx[i] = sx_hash_prefetch_push(pf, dfd, names[i], rels[i]);
        cr_assert_eq(idx[i], (size_t)i);
    }
    sx_hash_prefetch_walk_done(pf);
    cr_assert_eq(sx_hash_prefetch_push(pf, dfd, "f0.bin", rels[0]), SIZE_MAX, "queue closed");
    for (int i = 0; i < 4; i++) {
        sx_hash_job j;
        memset(&j, 0, sizeof(j));
        bool got = sx_hash_prefetch_stat(pf, idx[i], &j);
        struct stat s;
        if (i == 0 || i == 3) {
            cr_assert(got, "%s", names[i]);
            cr_assert(j.stat_known);
            cr_assert_eq(fstatat(dfd, names[i], &s, AT_SYMLINK_NOFOLLOW), 0);
            cr_assert_eq(j.ino, (uint64_t)s.st_ino);
            cr_assert_eq(j.dev, (uint64_t)s.st_dev);
            cr_assert_eq(j.size, (uint64_t)s.st_size);
            cr_assert_eq(j.mtime_ns, (uint64_t)s.st_mtim.tv_sec * 1000000000ull +
                                         (uint64_t)s.st_mtim.tv_nsec);
        } else {
            cr_assert_not(got, "%s: not in the cache", names[i]);
            cr_assert_not(j.stat_known);
        }
    }
    cr_assert_not(sx_hash_prefetch_stat(pf, 4, &(sx_hash_job){0}), "out of range");
    sx_hash_prefetch_free(pf);
    /* Without a cache file nothing is queued once the (empty) load is seen. */
    char *none = at("no.cache");
    pf = sx_hash_prefetch_start(none);
    cr_assert_not_null(pf);
    sx_hash_prefetch_walk_done(pf);
    cr_assert_eq(sx_hash_prefetch_push(pf, dfd, "f0.bin", rels[0]), SIZE_MAX);
    sx_hash_prefetch_free(pf);
    close(dfd);
    free(none);
    free(d0);
    sx_buf_free(&out);
    free(cache);
}

/* A file replaced (new inode, same size and times) while the cache holds the old one. */
Test(codesign_filehash, stat_ahead_sees_a_replaced_file)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_buf a = SX_BUF_INIT, b = SX_BUF_INIT, full = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &a, &st);
    char *p = at("B.app/Contents/Resources/d2/f7.bin"), *q = at("B.app/Contents/Resources/d2/x");
    struct stat before;
    cr_assert_eq(stat(p, &before), 0);
    put_bytes("B.app/Contents/Resources/d2/x", "CONTENT OF FILE 7", 17);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, q, ts, 0), 0);
    cr_assert_eq(rename(q, p), 0);
    seal(cache, &b, &st);
    cr_assert_eq(st.files_hashed, 1);
    cr_assert_eq(st.files_cached, NFILES - 1);
    seal(NULL, &full, &st);
    cr_assert_eq(b.len, full.len);
    cr_assert_eq(memcmp(b.data, full.data, b.len), 0);
    sx_buf_free(&a);
    sx_buf_free(&b);
    sx_buf_free(&full);
    free(p);
    free(q);
    free(cache);
}

/* A directory larger than one getdents64 buffer (32 KiB): 1,200 entries of ~110-byte names
 * take about five reads; every file is sealed once, in byte order, and re-checked from the
 * cache. */
Test(codesign_filehash, walk_reads_large_directories_whole)
{
    put_bytes("B.app/Contents/Info.plist", "<plist/>", 8);
    put_bytes("B.app/Contents/MacOS/B", "main", 4);
    char pad[101];
    memset(pad, 'n', 100);
    pad[100] = 0;
    for (int i = 0; i < 1200; i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "B.app/Contents/Resources/big/%s%04d", pad, i);
        put_bytes(rel, "x", 1);
        age(rel);
    }
    char *cache = at("seal.cache");
    sx_buf out = SX_BUF_INIT, again = SX_BUF_INIT;
    sx_seal_stats st;
    seal(cache, &out, &st);
    cr_assert_eq(st.files, 1200);
    cr_assert_eq(st.files_hashed, 1200);
    seal(cache, &again, &st);
    cr_assert_eq(st.files_cached, 1200);
    cr_assert_eq(again.len, out.len);
    cr_assert_eq(memcmp(again.data, out.data, out.len), 0);
    /* In order: the key of file 0001 comes right after that of 0000. */
    char k0[160], k1[160];
    snprintf(k0, sizeof(k0), "<key>Resources/big/%s0000</key>", pad);
    snprintf(k1, sizeof(k1), "<key>Resources/big/%s0001</key>", pad);
    sx_buf_append(&out, "", 1);
    const char *p0 = strstr((const char *)out.data, k0), *p1 = strstr((const char *)out.data, k1);
    cr_assert(p0 && p1 && p0 < p1);
    sx_buf_free(&out);
    sx_buf_free(&again);
    free(cache);
}
