/* Zip packaging: deterministic pack, safe unpack, the CLI's exit codes. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include "util/common.h"
#include "bundle/zip.h"
#include "util/fs.h"

#define SYSEXTCTL SYSEXT_BINARY_DIR "/sysextctl/sysextctl"

static char scratch[] = "/tmp/sx-test-zip-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(scratch));
}

static void teardown(void)
{
    /* the tests make read-only directories */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s", scratch);
    if (system(cmd) != 0)
        cr_log_warn("%s failed", cmd);
    sx_rm_rf(scratch);
}

TestSuite(bundle_zip, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static char *P(const char *rel)
{
    char *p = sx_path_join(scratch, rel);
    cr_assert_not_null(p);
    return p;
}

static void put(const char *rel, const char *data, size_t len, mode_t mode)
{
    _sx_cleanup_free_ char *p = P(rel);
    _sx_cleanup_free_ char *d = sx_path_dirname(p);
    cr_assert_eq(sx_mkdir_p(d, 0755), 0);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

static void mkd(const char *rel, mode_t mode)
{
    _sx_cleanup_free_ char *p = P(rel);
    cr_assert_eq(sx_mkdir_p(p, 0755), 0);
    cr_assert_eq(chmod(p, mode), 0);
}

static void lnk(const char *target, const char *rel)
{
    _sx_cleanup_free_ char *p = P(rel);
    cr_assert_eq(symlink(target, p), 0);
}

/* A bundle with nested dirs, an empty dir, an executable, a symlink and odd modes. */
static void make_bundle(const char *rel)
{
    char p[512];
#define B(x) (snprintf(p, sizeof(p), "%s/%s", rel, x), p)
    put(B("Contents/Info.plist"), "<plist/>\n", 9, 0644);
    put(B("Contents/MacOS/Demo"), "#!/bin/sh\nexit 0\n", 17, 0755);
    mkd(B("Contents/Resources/Empty.lproj"), 0755);
    mkd(B("Contents/Resources/ro"), 0555);
    mkd(B("Contents/Resources/a/b/c"), 0750);
    static char big[300000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)("sysext"[i % 6] ^ (i >> 11));
    put(B("Contents/Resources/a/b/c/data.bin"), big, sizeof(big), 0600);
    put(B("Contents/Resources/a/empty-file"), "", 0, 0640);
    put(B("Contents/Resources/a/b/script"), "#!/bin/sh\n", 10, 0700);
    lnk("../MacOS/Demo", B("Contents/Resources/demo-link"));
    lnk("b/c/data.bin", B("Contents/Resources/a/data-link"));
    lnk("Resources/a", B("Contents/a-link"));
#undef B
}

/* Compare two trees: types, permission bits, contents, link targets. */
static void assert_same_tree(const char *a, const char *b)
{
    struct stat sa, sb;
    cr_assert_eq(lstat(a, &sa), 0, "%s", a);
    cr_assert_eq(lstat(b, &sb), 0, "%s missing", b);
    cr_assert_eq(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT, "%s: type", b);
    if (!S_ISLNK(sa.st_mode))
        cr_assert_eq(sa.st_mode & 07777, sb.st_mode & 07777, "%s: mode 0%o vs 0%o", b,
                     sa.st_mode & 07777, sb.st_mode & 07777);
    if (S_ISLNK(sa.st_mode)) {
        char ta[4096], tb[4096];
        ssize_t na = readlink(a, ta, sizeof(ta)), nb = readlink(b, tb, sizeof(tb));
        cr_assert(na > 0 && na == nb && !memcmp(ta, tb, (size_t)na), "%s: link target", b);
    } else if (S_ISREG(sa.st_mode)) {
        uint8_t *da, *db;
        size_t la, lb;
        cr_assert_eq(sx_read_file(a, 1 << 24, &da, &la), 0);
        cr_assert_eq(sx_read_file(b, 1 << 24, &db, &lb), 0);
        cr_assert(la == lb && !memcmp(da, db, la), "%s: contents", b);
        free(da);
        free(db);
    } else {
        DIR *d = opendir(a);
        cr_assert_not_null(d);
        struct dirent *e;
        size_t n = 0;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            n++;
            char *ca = sx_path_join(a, e->d_name), *cb = sx_path_join(b, e->d_name);
            assert_same_tree(ca, cb);
            free(ca);
            free(cb);
        }
        closedir(d);
        /* and b has nothing more */
        d = opendir(b);
        size_t m = 0;
        while ((e = readdir(d)))
            m += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(d);
        cr_assert_eq(n, m, "%s: %zu entries vs %zu", b, n, m);
    }
}

static size_t count_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return 1;
    size_t n = 1;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *c = sx_path_join(path, e->d_name);
        n += count_tree(c);
        free(c);
    }
    if (d)
        closedir(d);
    return n;
}

static void assert_same_bytes(const char *a, const char *b)
{
    uint8_t *da, *db;
    size_t la, lb;
    cr_assert_eq(sx_read_file(a, 1 << 26, &da, &la), 0);
    cr_assert_eq(sx_read_file(b, 1 << 26, &db, &lb), 0);
    cr_assert(la == lb && !memcmp(da, db, la), "%s and %s differ", a, b);
    free(da);
    free(db);
}

/* ---- crafting archives ---- */

typedef struct zent {
    const char *name;
    char type;        /* 'f' file, 'd' directory, 'l' symlink, 'p' fifo, 'x' non-unix file */
    const char *data; /* contents or link target */
    size_t len;       /* 0: strlen(data) */
    unsigned mode;    /* permission bits; 0 = 0644/0755 */
} zent;

static void make_zip(const char *rel, const zent *ents, size_t n)
{
    _sx_cleanup_free_ char *path = P(rel);
    int err;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    cr_assert_not_null(za);
    for (size_t i = 0; i < n; i++) {
        const zent *e = &ents[i];
        zip_int64_t idx;
        unsigned type = e->type == 'd' ? S_IFDIR : e->type == 'l' ? S_IFLNK : e->type == 'p' ? S_IFIFO : S_IFREG;
        unsigned mode = e->mode ? e->mode : e->type == 'd' ? 0755 : 0644;
        if (e->type == 'd') {
            idx = zip_dir_add(za, e->name, 0);
        } else {
            size_t len = e->len ? e->len : (e->data ? strlen(e->data) : 0);
            zip_source_t *s = zip_source_buffer(za, e->data ? e->data : "", len, 0);
            cr_assert_not_null(s);
            idx = zip_file_add(za, e->name, s, 0);
        }
        cr_assert_geq(idx, 0, "adding %s: %s", e->name, zip_strerror(za));
        if (e->type == 'x')
            cr_assert_eq(zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_DOS, 0), 0);
        else
            cr_assert_eq(zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                                          (type | mode) << 16), 0);
    }
    cr_assert_eq(zip_close(za), 0, "%s", zip_strerror(za));
}

static uint8_t *slurp(const char *rel, size_t *len)
{
    _sx_cleanup_free_ char *p = P(rel);
    uint8_t *d;
    cr_assert_eq(sx_read_file(p, 1 << 26, &d, len), 0);
    return d;
}

static void spit(const char *rel, const void *d, size_t len)
{
    _sx_cleanup_free_ char *p = P(rel);
    cr_assert_eq(sx_write_file_atomic(p, d, len, 0644), 0);
}

/* Replace every occurrence of `from` by `to` (same length) in the file: renames an entry in
 * both its local header and the central directory, for names libzip refuses to write. */
static void patch_bytes(const char *rel, const char *from, const char *to, size_t n)
{
    size_t len;
    uint8_t *d = slurp(rel, &len);
    int hits = 0;
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(d + i, from, n)) {
            memcpy(d + i, to, n);
            hits++;
        }
    cr_assert_eq(hits, 2, "expected the name in the local header and the central directory");
    spit(rel, d, len);
    free(d);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Set the declared uncompressed size of entry `idx` (local header and central directory). */
static void patch_size(const char *rel, unsigned idx, uint32_t size)
{
    size_t len;
    uint8_t *d = slurp(rel, &len);
    cr_assert_geq(len, 22);
    uint8_t *eocd = d + len - 22;
    cr_assert_eq(rd32(eocd), 0x06054b50u);
    uint8_t *cd = d + rd32(eocd + 16);
    for (unsigned i = 0; i < idx; i++)
        cd += 46 + (cd[28] | cd[29] << 8) + (cd[30] | cd[31] << 8) + (cd[32] | cd[33] << 8);
    cr_assert_eq(rd32(cd), 0x02014b50u);
    wr32(cd + 24, size);
    uint8_t *lh = d + rd32(cd + 42);
    cr_assert_eq(rd32(lh), 0x04034b50u);
    wr32(lh + 22, size);
    spit(rel, d, len);
    free(d);
}

/* Offset of the data of the entry named `name`. */
static size_t entry_data_offset(const uint8_t *d, size_t len, const char *name)
{
    const uint8_t *eocd = d + len - 22;
    cr_assert_eq(rd32(eocd), 0x06054b50u);
    unsigned n = eocd[10] | eocd[11] << 8;
    const uint8_t *cd = d + rd32(eocd + 16);
    for (unsigned i = 0; i < n; i++) {
        unsigned nl = cd[28] | cd[29] << 8;
        if (nl == strlen(name) && !memcmp(cd + 46, name, nl)) {
            const uint8_t *lh = d + rd32(cd + 42);
            return (size_t)(lh - d) + 30 + (lh[26] | lh[27] << 8) + (lh[28] | lh[29] << 8);
        }
        cd += 46 + nl + (cd[30] | cd[31] << 8) + (cd[32] | cd[33] << 8);
    }
    cr_assert_fail("%s not found", name);
    return 0;
}

/* Unpack `zrel` into scratch/w/out and expect `code` with `needle` in the message; then
 * nothing new anywhere in the scratch dir (so nothing outside out/) and out/ empty. */
static void expect_refused(const char *zrel, const sysext_unpack_limits *lim, int code,
                           const char *needle)
{
    _sx_cleanup_free_ char *zp = P(zrel);
    _sx_cleanup_free_ char *out = P("w/out");
    cr_assert_eq(sx_mkdir_p(out, 0755), 0);
    size_t before = count_tree(scratch);
    int r = sx_zip_unpack_file(zp, out, lim, NULL);
    cr_assert_eq(r, code, "%s: got %d (%s), want %d", zrel, r, sx_errmsg(), code);
    cr_assert_not_null(strstr(sx_errmsg(), needle), "%s: message '%s' lacks '%s'", zrel,
                       sx_errmsg(), needle);
    cr_assert_eq(count_tree(scratch), before, "%s: something was written", zrel);
    cr_assert_eq(count_tree(out), 1, "%s: out/ is not empty", zrel);
}

static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "%s", cmd);
    return WEXITSTATUS(st);
}

/* ---- round trip and determinism ---- */

Test(bundle_zip, round_trip_keeps_tree_modes_links_and_empty_dirs)
{
    make_bundle("src/Demo.app");
    _sx_cleanup_free_ char *src = P("src/Demo.app"), *z = P("demo.zip"), *out = P("out");
    cr_assert_eq(sysext_pack(src, z, 0), 0, "%s", sx_errmsg());
    sx_zip_items items = {0};
    cr_assert_eq(sx_zip_unpack_file(z, out, NULL, &items), 0, "%s", sx_errmsg());
    cr_assert_eq(items.n, 1);
    cr_assert_str_eq(items.v[0], "Demo.app");
    sx_zip_items_free(&items);
    _sx_cleanup_free_ char *got = P("out/Demo.app");
    assert_same_tree(src, got);
    /* only the bundle: the temp dir is gone */
    cr_assert_eq(count_tree(out), 1 + count_tree(got));
}

Test(bundle_zip, pack_is_deterministic_and_repack_is_byte_identical)
{
    make_bundle("src/Demo.app");
    _sx_cleanup_free_ char *src = P("src/Demo.app"), *z1 = P("1.zip"), *z2 = P("2.zip"),
                           *z3 = P("3.zip"), *out = P("out"), *again = P("out/Demo.app");
    cr_assert_eq(sysext_pack(src, z1, 0), 0, "%s", sx_errmsg());
    /* another time zone and later mtimes change nothing */
    setenv("TZ", "Pacific/Kiritimati", 1);
    tzset();
    _sx_cleanup_free_ char *touched = P("src/Demo.app/Contents/Info.plist");
    cr_assert_eq(utimensat(AT_FDCWD, touched, NULL, 0), 0);
    cr_assert_eq(sysext_pack(src, z2, 0), 0, "%s", sx_errmsg());
    assert_same_bytes(z1, z2);
    cr_assert_eq(sysext_unpack(z1, out, NULL), 0, "%s", sx_errmsg());
    cr_assert_eq(sysext_pack(again, z3, 0), 0, "%s", sx_errmsg());
    assert_same_bytes(z1, z3);
}

Test(bundle_zip, packed_layout_is_ditto_like)
{
    make_bundle("src/Demo.app");
    _sx_cleanup_free_ char *src = P("src/Demo.app"), *z = P("d.zip");
    cr_assert_eq(sysext_pack(src, z, 0), 0, "%s", sx_errmsg());
    int err;
    zip_t *za = zip_open(z, ZIP_RDONLY, &err);
    cr_assert_not_null(za);
    zip_int64_t n = zip_get_num_entries(za, 0);
    cr_assert_eq(n, 17);
    const char *prev = "";
    bool saw_empty = false, saw_link = false, saw_exe = false;
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t zs;
        cr_assert_eq(zip_stat_index(za, (zip_uint64_t)i, 0, &zs), 0);
        cr_assert_eq(strncmp(zs.name, "Demo.app/", 9), 0, "%s", zs.name);
        cr_assert_gt(strcmp(zs.name, prev), 0, "not sorted: %s after %s", zs.name, prev);
        prev = zs.name;
        zip_uint8_t os;
        zip_uint32_t attr;
        cr_assert_eq(zip_file_get_external_attributes(za, (zip_uint64_t)i, 0, &os, &attr), 0);
        cr_assert_eq(os, ZIP_OPSYS_UNIX);
        mode_t m = (mode_t)(attr >> 16);
        if (!strcmp(zs.name, "Demo.app/Contents/Resources/Empty.lproj/"))
            saw_empty = S_ISDIR(m);
        if (!strcmp(zs.name, "Demo.app/Contents/Resources/demo-link"))
            saw_link = S_ISLNK(m) && zs.size == 13 && zs.comp_method == ZIP_CM_STORE;
        if (!strcmp(zs.name, "Demo.app/Contents/MacOS/Demo"))
            saw_exe = S_ISREG(m) && (m & 0777) == 0755 && zs.comp_method == ZIP_CM_DEFLATE;
        /* no extra fields anywhere */
        cr_assert_eq(zip_file_extra_fields_count(za, (zip_uint64_t)i, ZIP_FL_CENTRAL | ZIP_FL_LOCAL), 0);
        struct tm tm;
        localtime_r(&zs.mtime, &tm);
        cr_assert(tm.tm_year == 80 && tm.tm_mon == 0 && tm.tm_mday == 1 && tm.tm_hour == 0 &&
                  tm.tm_min == 0, "%s: mtime", zs.name);
    }
    cr_assert(saw_empty && saw_link && saw_exe);
    zip_discard(za);
}

Test(bundle_zip, pack_store_flag_and_bad_inputs)
{
    make_bundle("src/Demo.app");
    _sx_cleanup_free_ char *src = P("src/Demo.app"), *z = P("s.zip"), *out = P("out");
    cr_assert_eq(sysext_pack(src, z, SYSEXT_PACK_STORE), 0, "%s", sx_errmsg());
    cr_assert_eq(sysext_unpack(z, out, NULL), 0, "%s", sx_errmsg());
    _sx_cleanup_free_ char *got = P("out/Demo.app");
    assert_same_tree(src, got);
    cr_assert_eq(sysext_pack(src, z, 0x80), SYSEXT_EINVAL);
    _sx_cleanup_free_ char *missing = P("nope.app");
    cr_assert_eq(sysext_pack(missing, z, 0), SYSEXT_ENOTFOUND);
    _sx_cleanup_free_ char *file = P("src/Demo.app/Contents/Info.plist");
    cr_assert_eq(sysext_pack(file, z, 0), SYSEXT_EINVAL);
    /* a symlink leaving the bundle is refused, and the old zip is untouched */
    lnk("../../../../etc/passwd", "src/Demo.app/Contents/escape");
    size_t len1, len2;
    free(slurp("s.zip", &len1));
    cr_assert_eq(sysext_pack(src, z, 0), SYSEXT_EUNSAFE);
    cr_assert_not_null(strstr(sx_errmsg(), "Demo.app/Contents/escape"), "%s", sx_errmsg());
    free(slurp("s.zip", &len2));
    cr_assert_eq(len1, len2);
    /* no temp file left beside the zip */
    DIR *dir = opendir(scratch);
    struct dirent *e;
    while ((e = readdir(dir)))
        cr_assert(strncmp(e->d_name, ".s.zip", 6), "left behind: %s", e->d_name);
    closedir(dir);
}

Test(bundle_zip, unpack_refuses_existing_item_and_moves_nothing)
{
    make_bundle("src/Demo.app");
    /* Aaa/ro is read-only once extracted: the cleanup must still remove it */
    make_zip("two.zip",
             (zent[]){{"Aaa/x", 'f', "1", 0, 0}, {"Aaa/ro/", 'd', NULL, 0, 0500},
                      {"Aaa/ro/f", 'f', "3", 0, 0400}, {"Zzz/y", 'f', "2", 0, 0}},
             4);
    mkd("w/out/Zzz", 0755);
    _sx_cleanup_free_ char *z = P("two.zip"), *out = P("w/out");
    cr_assert_eq(sysext_unpack(z, out, NULL), SYSEXT_EEXISTS);
    cr_assert_not_null(strstr(sx_errmsg(), "Zzz"), "%s", sx_errmsg());
    cr_assert_eq(count_tree(out), 2, "Aaa was moved in or the temp dir remains");
}

Test(bundle_zip, unpack_from_memory_reports_items_and_restores_safe_modes)
{
    make_zip("m.zip",
             (zent[]){{"One/", 'd', NULL, 0, 0700},
                      {"One/suid", 'f', "x", 0, 04755},
                      {"One/ro/", 'd', NULL, 0, 0500},
                      {"One/ro/f", 'f', "y", 0, 0444},
                      {"Two", 'x', "plain", 0, 0}},
             5);
    size_t len;
    uint8_t *d = slurp("m.zip", &len);
    _sx_cleanup_free_ char *out = P("mem");
    sx_zip_items items = {0};
    cr_assert_eq(sx_zip_unpack_mem(d, len, "upload", out, NULL, &items), 0, "%s", sx_errmsg());
    free(d);
    cr_assert_eq(items.n, 2);
    cr_assert_str_eq(items.v[0], "One");
    cr_assert_str_eq(items.v[1], "Two");
    sx_zip_items_free(&items);
    struct stat st;
    _sx_cleanup_free_ char *suid = P("mem/One/suid"), *ro = P("mem/One/ro"), *two = P("mem/Two");
    cr_assert_eq(lstat(suid, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0755, "setuid must be dropped");
    cr_assert_eq(lstat(ro, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0500);
    cr_assert_eq(lstat(two, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0644);
}

Test(bundle_zip, unpack_deep_and_sibling_paths)
{
    /* 300 levels, a file at each, plus siblings whose names share a prefix ("x" / "xy") */
    static char names[300][700];
    zent e[300 + 4];
    size_t n = 0;
    char path[700] = "B";
    for (int i = 0; i < 300; i++) {
        strncat(path, "/d", sizeof(path) - strlen(path) - 1);
        snprintf(names[i], sizeof(names[i]), "%s/f", path);
        e[n++] = (zent){names[i], 'f', "deep", 0, 0};
    }
    e[n++] = (zent){"B/x/y/f", 'f', "1", 0, 0};
    e[n++] = (zent){"B/x/z/g", 'f', "2", 0, 0};
    e[n++] = (zent){"B/xy/h", 'f', "3", 0, 0};
    e[n++] = (zent){"B/x/y2/", 'd', NULL, 0, 0700};
    make_zip("deep.zip", e, n);
    _sx_cleanup_free_ char *z = P("deep.zip"), *out = P("deep");
    cr_assert_eq(sysext_unpack(z, out, NULL), 0, "%s", sx_errmsg());
    /* out, B, 300 x (d, f), x, x/y, f, x/z, g, xy, h, x/y2 */
    cr_assert_eq(count_tree(out), 1 + 1 + 300 * 2 + 8);
    char deepest[1024];
    snprintf(deepest, sizeof(deepest), "%s/%s", out, names[299]);
    cr_assert(sx_path_exists(deepest));
    _sx_cleanup_free_ char *h = P("deep/B/xy/h"), *g = P("deep/B/x/z/g"), *y2 = P("deep/B/x/y2");
    cr_assert(sx_path_exists(h) && sx_path_exists(g) && sx_is_dir(y2));
}

/* ---- hostile archives ---- */

Test(bundle_zip, refuses_absolute_path)
{
    make_zip("h.zip", (zent[]){{"/tmp/sx-zip-absolute-victim", 'f', "pwned", 0, 0}}, 1);
    expect_refused("h.zip", NULL, SYSEXT_EUNSAFE, "entry '/tmp/sx-zip-absolute-victim': absolute path");
    cr_assert_not(sx_path_exists("/tmp/sx-zip-absolute-victim"));
}

Test(bundle_zip, refuses_dotdot)
{
    make_zip("h.zip", (zent[]){{"../x", 'f', "pwned", 0, 0}}, 1);
    expect_refused("h.zip", NULL, SYSEXT_EUNSAFE, "entry '../x': '..' path component");
}

Test(bundle_zip, refuses_nested_dotdot)
{
    make_zip("h.zip", (zent[]){{"a/", 'd', NULL, 0, 0}, {"a/../../x", 'f', "pwned", 0, 0}}, 2);
    expect_refused("h.zip", NULL, SYSEXT_EUNSAFE, "entry 'a/../../x': '..' path component");
}

Test(bundle_zip, refuses_odd_names)
{
    make_zip("bs.zip", (zent[]){{"a\\..\\x", 'f', "1", 0, 0}}, 1);
    expect_refused("bs.zip", NULL, SYSEXT_EUNSAFE, "backslash in the name");
    make_zip("dot.zip", (zent[]){{"a/./x", 'f', "1", 0, 0}}, 1);
    expect_refused("dot.zip", NULL, SYSEXT_EUNSAFE, "entry 'a/./x': '.' path component");
    make_zip("empty.zip", (zent[]){{"a//x", 'f', "1", 0, 0}}, 1);
    expect_refused("empty.zip", NULL, SYSEXT_EUNSAFE, "entry 'a//x': empty path component");
    make_zip("ctl.zip", (zent[]){{"a/\x1b[2Jx", 'f', "1", 0, 0}}, 1);
    expect_refused("ctl.zip", NULL, SYSEXT_EUNSAFE, "entry 'a/\\x1b[2Jx': control character 0x1b");
    make_zip("utf.zip", (zent[]){{"a/\xc0\xaf", 'f', "1", 0, 0}}, 1);
    expect_refused("utf.zip", NULL, SYSEXT_EUNSAFE, "entry 'a/\\xc0\\xaf': the name is not valid UTF-8");
    /* a NUL inside the stored name: written as 'aQb', then patched */
    make_zip("nul.zip", (zent[]){{"dir/aQb", 'f', "1", 0, 0}}, 1);
    patch_bytes("nul.zip", "aQb", "a\0b", 3);
    expect_refused("nul.zip", NULL, SYSEXT_EUNSAFE, "entry 'dir/a b': NUL byte in the name");
}

Test(bundle_zip, refuses_absolute_symlink_then_file_through_it)
{
    make_zip("h.zip",
             (zent[]){{"B/", 'd', NULL, 0, 0}, {"B/a", 'l', "/etc", 0, 0777},
                      {"B/a/sx-zip-victim", 'f', "pwned", 0, 0}},
             3);
    expect_refused("h.zip", NULL, SYSEXT_EUNSAFE, "symlink 'B/a': absolute target '/etc'");
    cr_assert_not(sx_path_exists("/etc/sx-zip-victim"));
}

Test(bundle_zip, refuses_entry_below_a_relative_symlink)
{
    /* Even a link that stays inside: writing through a symlink is never done. */
    make_zip("h.zip",
             (zent[]){{"B/", 'd', NULL, 0, 0}, {"B/sub/", 'd', NULL, 0, 0}, {"B/a", 'l', "sub", 0, 0777},
                      {"B/a/x", 'f', "data", 0, 0}},
             4);
    expect_refused("h.zip", NULL, SYSEXT_EUNSAFE, "entry 'B/a/x': lies below 'B/a', which is a symlink");
    make_zip("f.zip", (zent[]){{"B/f", 'f', "1", 0, 0}, {"B/f/x", 'f', "2", 0, 0}}, 2);
    expect_refused("f.zip", NULL, SYSEXT_EUNSAFE, "entry 'B/f/x': lies below 'B/f', which is a file");
}

Test(bundle_zip, refuses_symlinks_escaping)
{
    make_zip("up.zip", (zent[]){{"B/", 'd', NULL, 0, 0}, {"B/c/l", 'l', "../../x", 0, 0777}}, 2);
    expect_refused("up.zip", NULL, SYSEXT_EUNSAFE, "symlink 'B/c/l': target '../../x' resolves outside");
    make_zip("mid.zip", (zent[]){{"B/c/l", 'l', "d/../../../x", 0, 0777}}, 1);
    expect_refused("mid.zip", NULL, SYSEXT_EUNSAFE, "has '..' after a name");
    make_zip("top.zip", (zent[]){{"l", 'l', "B", 0, 0777}, {"B/x", 'f', "1", 0, 0}}, 2);
    expect_refused("top.zip", NULL, SYSEXT_EUNSAFE, "symlink 'l': a top-level item may not be a symlink");
    /* ...while one climbing inside its item is fine */
    make_zip("ok.zip", (zent[]){{"B/c/l", 'l', "../x", 0, 0777}, {"B/x", 'f', "1", 0, 0}}, 2);
    _sx_cleanup_free_ char *z = P("ok.zip"), *out = P("ok"), *l = P("ok/B/c/l");
    cr_assert_eq(sysext_unpack(z, out, NULL), 0, "%s", sx_errmsg());
    struct stat st;
    cr_assert_eq(lstat(l, &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    char t[16];
    cr_assert_eq(readlink(l, t, sizeof(t)), 4);
}

Test(bundle_zip, refuses_duplicates_and_clashes)
{
    make_zip("dup.zip", (zent[]){{"B/aaa", 'f', "1", 0, 0}, {"B/aab", 'f', "2", 0, 0}}, 2);
    patch_bytes("dup.zip", "B/aab", "B/aaa", 5);
    expect_refused("dup.zip", NULL, SYSEXT_EUNSAFE, "entry 'B/aaa': duplicate name");
    make_zip("clash.zip", (zent[]){{"B/a", 'f', "1", 0, 0}, {"B/a/", 'd', NULL, 0, 0}}, 2);
    expect_refused("clash.zip", NULL, SYSEXT_EUNSAFE, "duplicate name (both a");
    make_zip("case.zip", (zent[]){{"B/Info.plist", 'f', "1", 0, 0}, {"B/info.plist", 'f', "2", 0, 0}}, 2);
    expect_refused("case.zip", NULL, SYSEXT_EUNSAFE, "differs only in case");
}

Test(bundle_zip, refuses_special_files)
{
    make_zip("fifo.zip", (zent[]){{"B/p", 'p', "", 0, 0}}, 1);
    expect_refused("fifo.zip", NULL, SYSEXT_EUNSAFE, "entry 'B/p': special file");
}

Test(bundle_zip, refuses_too_many_entries)
{
    make_zip("h.zip",
             (zent[]){{"B/1", 'f', "1", 0, 0}, {"B/2", 'f', "2", 0, 0}, {"B/3", 'f', "3", 0, 0},
                      {"B/4", 'f', "4", 0, 0}},
             4);
    sysext_unpack_limits lim = {.max_entries = 3};
    expect_refused("h.zip", &lim, SYSEXT_ELIMIT, "4 entries exceed the limit of 3");
    lim.max_entries = 4;
    _sx_cleanup_free_ char *z = P("h.zip"), *out = P("fine");
    cr_assert_eq(sysext_unpack(z, out, &lim), 0, "%s", sx_errmsg());
}

Test(bundle_zip, refuses_total_size_over_limit)
{
    static char k[1000];
    memset(k, 'k', sizeof(k));
    make_zip("h.zip", (zent[]){{"B/a", 'f', k, 1000, 0}, {"B/b", 'f', k, 1000, 0}}, 2);
    sysext_unpack_limits lim = {.max_total_bytes = 1999};
    expect_refused("h.zip", &lim, SYSEXT_ELIMIT, "entry 'B/b': the archive's total uncompressed size exceeds");
}

Test(bundle_zip, refuses_high_ratio_bomb)
{
    size_t n = 8u << 20;
    char *zeros = calloc(1, n);
    make_zip("h.zip", (zent[]){{"B/bomb", 'f', zeros, n, 0}}, 1);
    free(zeros);
    expect_refused("h.zip", NULL, SYSEXT_ELIMIT, "entry 'B/bomb': compression ratio");
    /* many small, highly compressible entries: the whole-archive ratio */
    static char z1[600000];
    make_zip("many.zip", (zent[]){{"B/a", 'f', z1, sizeof(z1), 0}, {"B/b", 'f', z1, sizeof(z1), 0}}, 2);
    expect_refused("many.zip", NULL, SYSEXT_ELIMIT, "compression ratio of the whole archive");
}

Test(bundle_zip, refuses_lying_declared_size)
{
    static char text[5000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 23);
    make_zip("h.zip", (zent[]){{"B/", 'd', NULL, 0, 0}, {"B/liar", 'f', text, sizeof(text), 0}}, 2);
    patch_size("h.zip", 1, 100);
    expect_refused("h.zip", NULL, SYSEXT_ELIMIT, "entry 'B/liar': decompresses to more than its declared 100 bytes");
}

Test(bundle_zip, refuses_not_a_zip_and_truncated)
{
    spit("text.zip", "this is not a zip archive at all\n", 33);
    expect_refused("text.zip", NULL, SYSEXT_EFORMAT, "text.zip: not a valid zip archive");
    spit("empty.zip", "", 0);
    expect_refused("empty.zip", NULL, SYSEXT_EFORMAT, "empty.zip");
    make_bundle("src/Demo.app");
    _sx_cleanup_free_ char *src = P("src/Demo.app"), *z = P("full.zip");
    cr_assert_eq(sysext_pack(src, z, 0), 0, "%s", sx_errmsg());
    size_t len;
    uint8_t *d = slurp("full.zip", &len);
    spit("tail.zip", d, len - 10);
    expect_refused("tail.zip", NULL, SYSEXT_EFORMAT, "tail.zip: not a valid zip archive");
    spit("half.zip", d, len / 2);
    expect_refused("half.zip", NULL, SYSEXT_EFORMAT, "half.zip: not a valid zip archive");
    /* a stored zip with one byte of data.bin flipped: a CRC error, nothing left behind */
    free(d);
    cr_assert_eq(sysext_pack(src, z, SYSEXT_PACK_STORE), 0, "%s", sx_errmsg());
    d = slurp("full.zip", &len);
    size_t at = entry_data_offset(d, len, "Demo.app/Contents/Resources/a/b/c/data.bin");
    d[at + 1000] ^= 0x01;
    spit("crc.zip", d, len);
    expect_refused("crc.zip", NULL, SYSEXT_EFORMAT, "entry 'Demo.app/Contents/Resources/a/b/c/data.bin'");
    free(d);
}

Test(bundle_zip, refuses_encrypted_and_unsupported_methods)
{
    if (zip_encryption_method_supported(ZIP_EM_AES_256, 1)) {
        _sx_cleanup_free_ char *path = P("enc.zip");
        int err;
        zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
        zip_source_t *src = zip_source_buffer(za, "secret", 6, 0);
        zip_int64_t idx = zip_file_add(za, "B/secret", src, 0);
        cr_assert_geq(idx, 0);
        cr_assert_eq(zip_file_set_encryption(za, (zip_uint64_t)idx, ZIP_EM_AES_256, "pw"), 0);
        cr_assert_eq(zip_close(za), 0);
        expect_refused("enc.zip", NULL, SYSEXT_EFORMAT, "entry 'B/secret': encrypted entries");
    }
    if (zip_compression_method_supported(ZIP_CM_BZIP2, 1)) {
        _sx_cleanup_free_ char *path = P("bz.zip");
        int err;
        zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
        zip_source_t *src = zip_source_buffer(za, "bzip2 data", 10, 0);
        zip_int64_t idx = zip_file_add(za, "B/bz", src, 0);
        cr_assert_geq(idx, 0);
        cr_assert_eq(zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_BZIP2, 0), 0);
        cr_assert_eq(zip_close(za), 0);
        expect_refused("bz.zip", NULL, SYSEXT_EFORMAT, "entry 'B/bz': compression method 12");
    }
}

/* Rewrite a small zip's end record as zip64 (the form archives over 65535 entries or 4 GiB
 * take), to walk our central directory reader's zip64 path. */
static void make_zip64_end(const char *rel)
{
    size_t len;
    uint8_t *d = slurp(rel, &len);
    uint8_t *eocd = d + len - 22;
    cr_assert_eq(rd32(eocd), 0x06054b50u);
    uint64_t n = eocd[10] | eocd[11] << 8, cd_size = rd32(eocd + 12), cd_off = rd32(eocd + 16);
    cr_assert_eq(cd_off + cd_size, len - 22, "no gap before the end record");
    size_t nlen = len - 22 + 56 + 20 + 22;
    uint8_t *o = calloc(1, nlen), *p = o + len - 22;
    memcpy(o, d, len - 22);
    wr32(p, 0x06064b50u);
    p[4] = 44;                        /* size of the rest of the record (u64) */
    p[12] = 45, p[14] = 45;           /* version made by / needed */
    for (int i = 0; i < 8; i++) {
        p[24 + i] = (uint8_t)(n >> (8 * i));
        p[32 + i] = (uint8_t)(n >> (8 * i));
        p[40 + i] = (uint8_t)(cd_size >> (8 * i));
        p[48 + i] = (uint8_t)(cd_off >> (8 * i));
    }
    p += 56;
    wr32(p, 0x07064b50u);
    uint64_t z64 = len - 22;
    for (int i = 0; i < 8; i++)
        p[8 + i] = (uint8_t)(z64 >> (8 * i));
    wr32(p + 16, 1);
    p += 20;
    memcpy(p, eocd, 22);
    p[10] = p[11] = p[8] = p[9] = 0xff;
    wr32(p + 12, 0xffffffffu);
    wr32(p + 16, 0xffffffffu);
    spit(rel, o, nlen);
    free(o);
    free(d);
}

Test(bundle_zip, zip64_end_record)
{
    make_zip("z64.zip", (zent[]){{"B/", 'd', NULL, 0, 0}, {"B/f", 'f', "zip64", 0, 0}}, 2);
    make_zip64_end("z64.zip");
    _sx_cleanup_free_ char *z = P("z64.zip"), *out = P("z64"), *f = P("z64/B/f");
    cr_assert_eq(sysext_unpack(z, out, NULL), 0, "%s", sx_errmsg());
    cr_assert(sx_path_exists(f));
    /* and the NUL check still sees the names through the zip64 path */
    make_zip("z64nul.zip", (zent[]){{"B/aQb", 'f', "x", 0, 0}}, 1);
    patch_bytes("z64nul.zip", "aQb", "a\0b", 3);
    make_zip64_end("z64nul.zip");
    expect_refused("z64nul.zip", NULL, SYSEXT_EUNSAFE, "NUL byte in the name");
}

/* ---- the CLI ---- */

Test(bundle_zip, cli_exit_codes)
{
    make_bundle("src/Demo.app");
    make_zip("evil.zip", (zent[]){{"../x", 'f', "pwned", 0, 0}}, 1);
    const char *s = scratch;
    cr_assert_eq(run(SYSEXTCTL " pack %s/src/Demo.app -o %s/c.zip", s, s), 0);
    cr_assert_eq(run(SYSEXTCTL " pack --output %s/d.zip %s/src/Demo.app", s, s), 0);
    _sx_cleanup_free_ char *c = P("c.zip"), *d = P("d.zip");
    assert_same_bytes(c, d);
    cr_assert_eq(run(SYSEXTCTL " unpack %s/c.zip -C %s/u", s, s), 0);
    _sx_cleanup_free_ char *src = P("src/Demo.app"), *got = P("u/Demo.app");
    assert_same_tree(src, got);
    cr_assert_eq(run(SYSEXTCTL " unpack %s/c.zip -C %s/u 2>/dev/null", s, s), 2); /* exists */
    cr_assert_eq(run(SYSEXTCTL " unpack %s/evil.zip -C %s/e 2>/dev/null", s, s), 1);
    cr_assert_eq(run(SYSEXTCTL " unpack --max-entries 1 %s/c.zip -C %s/e 2>/dev/null", s, s), 1);
    cr_assert_eq(run(SYSEXTCTL " unpack %s/missing.zip -C %s/e 2>/dev/null", s, s), 2);
    cr_assert_eq(run(SYSEXTCTL " unpack %s/c.zip 2>/dev/null", s), 2);
    cr_assert_eq(run(SYSEXTCTL " unpack -C %s/e 2>/dev/null", s), 2);
    cr_assert_eq(run(SYSEXTCTL " unpack --max-ratio x %s/c.zip -C %s/e 2>/dev/null", s, s), 2);
    cr_assert_eq(run(SYSEXTCTL " pack %s/src/Demo.app 2>/dev/null", s), 2);
    cr_assert_eq(run(SYSEXTCTL " pack %s/nope.app -o %s/n.zip 2>/dev/null", s, s), 2);
    cr_assert_eq(run(SYSEXTCTL " pack %s/src/Demo.app %s/x -o %s/n.zip 2>/dev/null", s, s, s), 2);
    cr_assert_eq(run(SYSEXTCTL " pack --help >/dev/null"), 0);
    cr_assert_eq(run(SYSEXTCTL " unpack --help >/dev/null"), 0);
    _sx_cleanup_free_ char *e = P("e");
    cr_assert_not(sx_path_exists(e), "a refused unpack created its directory");
}
