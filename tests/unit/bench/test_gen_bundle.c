/* sysext-gen-bundle: deterministic synthetic bundles. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <plist/plist.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/common.h"
#include "sysext/archive.h"
#include "util/fs.h"

#define GEN SYSEXT_BINARY_DIR "/bench/sysext-gen-bundle"

static char scratch[] = "/tmp/sx-test-gen-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(scratch));
}

static void teardown(void)
{
    sx_rm_rf(scratch);
}

TestSuite(bench_gen_bundle, .init = setup, .fini = teardown);

static int gen(const char *args, const char *out)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s %s/%s", GEN, args, scratch, out);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

typedef struct tally {
    size_t files, dirs, links, broken;
    uint64_t bytes;
} tally;

/* Compare two trees byte for byte (types, modes, contents, link targets); tally `a`. */
static bool same_tree(const char *a, const char *b, tally *t)
{
    struct stat sa, sb;
    if (lstat(a, &sa) < 0 || lstat(b, &sb) < 0 || (sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
        return false;
    if (S_ISLNK(sa.st_mode)) {
        char ta[4096], tb[4096];
        ssize_t na = readlink(a, ta, sizeof(ta)), nb = readlink(b, tb, sizeof(tb));
        struct stat st;
        t->links++;
        t->broken += stat(a, &st) < 0;
        return na > 0 && na == nb && !memcmp(ta, tb, (size_t)na);
    }
    if ((sa.st_mode & 07777) != (sb.st_mode & 07777))
        return false;
    if (S_ISREG(sa.st_mode)) {
        uint8_t *da, *db;
        size_t la, lb;
        cr_assert_eq(sx_read_file(a, 1 << 26, &da, &la), 0);
        cr_assert_eq(sx_read_file(b, 1 << 26, &db, &lb), 0);
        bool same = la == lb && !memcmp(da, db, la);
        free(da);
        free(db);
        t->files++;
        t->bytes += la;
        return same;
    }
    t->dirs++;
    DIR *d = opendir(a);
    struct dirent *e;
    bool same = true;
    size_t n = 0, m = 0;
    while (same && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        char *ca = sx_path_join(a, e->d_name), *cb = sx_path_join(b, e->d_name);
        same = same_tree(ca, cb, t);
        free(ca);
        free(cb);
    }
    closedir(d);
    d = opendir(b);
    while ((e = readdir(d)))
        m += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return same && n == m;
}

Test(bench_gen_bundle, same_seed_same_tree_other_seed_other_bytes)
{
    const char *args = "--kind app --files 300 --bytes 2m --depth 3 --symlinks 20 --seed 42";
    cr_assert_eq(gen(args, "a/Gen.app"), 2, "the parent must exist");
    char a[256], b[256], c[256];
    snprintf(a, sizeof(a), "%s/Gen.app", scratch);
    snprintf(b, sizeof(b), "%s/again/Gen.app", scratch);
    snprintf(c, sizeof(c), "%s/other/Gen.app", scratch);
    char d[256];
    snprintf(d, sizeof(d), "%s/again", scratch);
    cr_assert_eq(mkdir(d, 0755), 0);
    snprintf(d, sizeof(d), "%s/other", scratch);
    cr_assert_eq(mkdir(d, 0755), 0);
    cr_assert_eq(gen(args, "Gen.app"), 0);
    cr_assert_eq(gen(args, "again/Gen.app"), 0);
    cr_assert_eq(gen("--kind app --files 300 --bytes 2m --depth 3 --symlinks 20 --seed 43",
                     "other/Gen.app"), 0);
    cr_assert_eq(gen(args, "Gen.app"), 2, "an existing output is refused");

    tally t = {0}, u = {0};
    cr_assert(same_tree(a, b, &t), "two runs with the same seed differ");
    /* payload + Info.plist + executable + icon */
    cr_assert_eq(t.files, 300 + 3);
    cr_assert_eq(t.links, 20);
    cr_assert_eq(t.broken, 0, "every symlink resolves inside the bundle");
    cr_assert_gt(t.dirs, 3 + 3, "nested directories");
    cr_assert_not(same_tree(a, c, &u), "another seed gives other bytes");

    /* and the packed zips are byte-identical too */
    char za[256], zb[256];
    snprintf(za, sizeof(za), "%s/a.zip", scratch);
    snprintf(zb, sizeof(zb), "%s/b.zip", scratch);
    cr_assert_eq(sysext_pack(a, za, 0), 0, "%s", sx_errmsg());
    cr_assert_eq(sysext_pack(b, zb, 0), 0, "%s", sx_errmsg());
    uint8_t *x, *y;
    size_t lx, ly;
    cr_assert_eq(sx_read_file(za, 1 << 26, &x, &lx), 0);
    cr_assert_eq(sx_read_file(zb, 1 << 26, &y, &ly), 0);
    cr_assert(lx == ly && !memcmp(x, y, lx));
    free(x);
    free(y);
}

Test(bench_gen_bundle, exact_bytes_and_valid_info_plist_for_each_kind)
{
    static const struct {
        const char *kind, *name, *info, *type, *id;
    } k[] = {
        {"dext", "com.example.gen.dext", "Info.plist", "DEXT", "com.example.gen"},
        {"sysext", "Filter.systemextension", "Contents/Info.plist", "SYSX", "com.example.Filter"},
        {"app", "Host.app", "Contents/Info.plist", "APPL", "com.example.Host"},
    };
    for (size_t i = 0; i < SX_ARRAY_SIZE(k); i++) {
        char args[256], res[512], info[512];
        snprintf(args, sizeof(args), "--kind %s --files 57 --bytes 123457 --depth 2 --symlinks 3 --seed 5",
                 k[i].kind);
        cr_assert_eq(gen(args, k[i].name), 0);
        snprintf(res, sizeof(res), "%s/%s/%sResources", scratch, k[i].name,
                 strcmp(k[i].kind, "dext") ? "Contents/" : "");
        tally t = {0};
        cr_assert(same_tree(res, res, &t));
        cr_assert_eq(t.files, 57 + !strcmp(k[i].kind, "app"), "%s", k[i].kind);
        cr_assert_eq(t.bytes, 123457 + (strcmp(k[i].kind, "app") ? 0 : 8), "%s", k[i].kind);
        snprintf(info, sizeof(info), "%s/%s/%s", scratch, k[i].name, k[i].info);
        uint8_t *data;
        size_t len;
        cr_assert_eq(sx_read_file(info, 1 << 20, &data, &len), 0);
        plist_t p = NULL;
        plist_from_xml((const char *)data, (uint32_t)len, &p);
        free(data);
        cr_assert_not_null(p);
        char *s = NULL;
        plist_get_string_val(plist_dict_get_item(p, "CFBundlePackageType"), &s);
        cr_assert_str_eq(s, k[i].type);
        free(s);
        s = NULL;
        plist_get_string_val(plist_dict_get_item(p, "CFBundleIdentifier"), &s);
        cr_assert_str_eq(s, k[i].id);
        free(s);
        s = NULL;
        plist_get_string_val(plist_dict_get_item(p, "CFBundleExecutable"), &s);
        char exe[512];
        snprintf(exe, sizeof(exe), "%s/%s/%s%s", scratch, k[i].name,
                 strcmp(k[i].kind, "dext") ? "Contents/MacOS/" : "", s);
        free(s);
        struct stat st;
        cr_assert_eq(stat(exe, &st), 0, "%s", exe);
        cr_assert_eq(st.st_mode & 0777, 0755);
        if (!strcmp(k[i].kind, "dext"))
            cr_assert_not_null(plist_dict_get_item(p, "IOKitPersonalities"));
        plist_free(p);
    }
    cr_assert_eq(gen("--kind kext --files 1 --bytes 1 --depth 0 --symlinks 0 --seed 1", "x"), 2);
}
