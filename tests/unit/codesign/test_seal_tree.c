/* The walk's snapshot for incremental seals: unchanged directories are replayed, every kind of
 * change to a directory is seen, and a bad snapshot is only ignored. Each incremental seal is
 * compared byte for byte with a seal built without any cache. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/common.h"
#include "codesign/seal.h"
#include "codesign/seal_internal.h"
#include "codesign/seal_tree.h"
#include "util/fs.h"

#define NDIRS 4
#define NFILES 24

static char dir[] = "/tmp/sx-test-sealtree-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    sx_rm_rf(dir);
}

TestSuite(codesign_seal_tree, .init = setup, .fini = teardown);

static char *at(const char *rel)
{
    char *p = sx_path_join(dir, rel);
    cr_assert_not_null(p);
    return p;
}

static void put(const char *rel, const char *body)
{
    char *p = at(rel), *d = sx_path_dirname(p);
    cr_assert_eq(sx_mkdir_p(d, 0755), 0);
    cr_assert_eq(sx_write_file_atomic(p, body, strlen(body), 0644), 0, "%s", sx_errmsg());
    free(d);
    free(p);
}

static void link_to(const char *target, const char *rel)
{
    char *p = at(rel);
    cr_assert_eq(symlink(target, p), 0, "%s: %s", p, strerror(errno));
    free(p);
}

static void drop(const char *rel)
{
    char *p = at(rel);
    cr_assert_eq(sx_rm_rf(p), 0);
    free(p);
}

/* An hour back: out of the racy window of both the snapshot and the hash cache. */
static void age(const char *rel)
{
    char *p = at(rel);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 3600;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0, "%s", p);
    free(p);
}

static void age_all(void)
{
    static const char *const dirs[] = {"B.app", "B.app/Contents", "B.app/Contents/MacOS",
                                       "B.app/Contents/Resources"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(dirs); i++)
        age(dirs[i]);
    for (int d = 0; d < NDIRS; d++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "B.app/Contents/Resources/d%d", d);
        age(rel);
    }
}

static void make_tree(void)
{
    put("B.app/Contents/Info.plist", "<plist/>");
    put("B.app/Contents/MacOS/B", "main");
    for (int i = 0; i < NFILES; i++) {
        char rel[64], body[64];
        snprintf(rel, sizeof(rel), "B.app/Contents/Resources/d%d/f%02d.bin", i % NDIRS, i);
        snprintf(body, sizeof(body), "content of file %d", i);
        put(rel, body);
        age(rel);
    }
    link_to("f00.bin", "B.app/Contents/Resources/d0/link");
    age_all();
}

static void seal_with(const char *cache, const char *exe, sx_buf *out, sx_seal_stats *st)
{
    char *app = at("B.app");
    sx_seal_options o = {.bundle_path = app, .main_exe_rel = exe, .cache_path = cache,
                         .stats = st, .threads = 2};
    sx_buf_free(out);
    memset(st, 0, sizeof(*st));
    cr_assert_eq(sx_seal_build(&o, out), 0, "%s", sx_errmsg());
    free(app);
}

/* An incremental seal, checked against one built from nothing. */
static void seal_checked(const char *cache, sx_seal_stats *st, const char *when)
{
    sx_buf inc = SX_BUF_INIT, full = SX_BUF_INIT;
    sx_seal_stats fst;
    seal_with(cache, "MacOS/B", &inc, st);
    seal_with(NULL, "MacOS/B", &full, &fst);
    cr_assert_eq(inc.len, full.len, "%s: the incremental seal differs in length", when);
    cr_assert_eq(memcmp(inc.data, full.data, full.len), 0, "%s: the incremental seal differs",
                 when);
    sx_buf_free(&inc);
    sx_buf_free(&full);
}

static bool seal_has(const char *cache, const char *needle)
{
    sx_buf b = SX_BUF_INIT;
    sx_seal_stats st;
    seal_with(cache, "MacOS/B", &b, &st);
    cr_assert_eq(sx_buf_append(&b, "", 1), 0);
    bool has = strstr((const char *)b.data, needle) != NULL;
    sx_buf_free(&b);
    return has;
}

Test(codesign_seal_tree, unchanged_directories_are_replayed)
{
    make_tree();
    char *cache = at("seal.cache"), *tree = at("seal.tree");
    sx_seal_stats st;
    seal_checked(cache, &st, "first");
    cr_assert(sx_path_exists(tree), "the snapshot is written beside the cache");
    cr_assert_eq(st.dirs_replayed, 0);
    cr_assert_eq(st.dirs_listed, 2 + NDIRS, "MacOS, Resources and its folders");
    seal_checked(cache, &st, "second");
    cr_assert_eq(st.dirs_replayed, 2 + NDIRS, "all but the base, which is always read");
    cr_assert_eq(st.dirs_listed, 0);
    cr_assert_eq(st.files_cached, NFILES, "%zu", st.files_cached);
    cr_assert_eq(st.files_hashed, 0);
    free(cache);
    free(tree);
}

Test(codesign_seal_tree, every_change_to_a_directory_is_seen)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_seal_stats st;
    seal_checked(cache, &st, "first");

    put("B.app/Contents/Resources/d1/added.txt", "new");
    seal_checked(cache, &st, "file added");
    cr_assert_geq(st.dirs_listed, 1);
    cr_assert(seal_has(cache, "Resources/d1/added.txt"));

    drop("B.app/Contents/Resources/d2/f02.bin");
    seal_checked(cache, &st, "file removed");
    cr_assert_not(seal_has(cache, "Resources/d2/f02.bin"));

    drop("B.app/Contents/Resources/d3/f03.bin");
    link_to("f07.bin", "B.app/Contents/Resources/d3/f03.bin");
    seal_checked(cache, &st, "file replaced by a symlink");

    drop("B.app/Contents/Resources/d0/link");
    link_to("f04.bin", "B.app/Contents/Resources/d0/link");
    seal_checked(cache, &st, "symlink retargeted");
    cr_assert(seal_has(cache, "<string>f04.bin</string>"));

    put("B.app/Contents/Resources/d1/sub/deeper.txt", "deeper");
    seal_checked(cache, &st, "folder added");
    cr_assert(seal_has(cache, "Resources/d1/sub/deeper.txt"));

    char *from = at("B.app/Contents/Resources/d2/f06.bin"), *to = at("B.app/Contents/Resources/d2/f99.bin");
    cr_assert_eq(rename(from, to), 0);
    seal_checked(cache, &st, "file renamed");
    cr_assert(seal_has(cache, "Resources/d2/f99.bin"));

    drop("B.app/Contents/Resources/d3");
    put("B.app/Contents/Resources/d3", "a file where a folder was");
    seal_checked(cache, &st, "folder replaced by a file");
    free(from);
    free(to);
    free(cache);
}

/* A folder changed within the timestamp window is listed again next time, changed or not. */
Test(codesign_seal_tree, a_recently_changed_folder_is_not_trusted)
{
    make_tree();
    char *cache = at("seal.cache");
    sx_seal_stats st;
    put("B.app/Contents/Resources/d1/added.txt", "new"); /* d1's mtime is now */
    seal_checked(cache, &st, "first");
    seal_checked(cache, &st, "second");
    cr_assert_eq(st.dirs_listed, 1, "d1 only");
    cr_assert_eq(st.dirs_replayed, 2 + NDIRS - 1);
    free(cache);
}

Test(codesign_seal_tree, a_bad_or_foreign_snapshot_is_ignored)
{
    make_tree();
    char *cache = at("seal.cache"), *tree = at("seal.tree");
    sx_seal_stats st;
    seal_checked(cache, &st, "first");

    seal_checked(cache, &st, "replayed");
    cr_assert_eq(st.dirs_replayed, 2 + NDIRS);

    uint8_t *data;
    size_t len;
    cr_assert_eq(sx_read_file(tree, 1 << 20, &data, &len), 0);
    data[len / 2] ^= 0x40; /* the checksum no longer matches */
    cr_assert_eq(sx_write_file_atomic(tree, data, len, 0600), 0);
    seal_checked(cache, &st, "corrupt snapshot");
    cr_assert_eq(st.dirs_replayed, 0);
    free(data);

    cr_assert_eq(sx_write_file_atomic(tree, "garbage", 7, 0600), 0);
    seal_checked(cache, &st, "garbage snapshot");
    cr_assert_eq(st.dirs_replayed, 0);
    free(cache);
    free(tree);
}

/* The parser itself: every truncation and bad field is refused without reading past the end. */
Test(codesign_seal_tree, parser_refuses_malformed_snapshots)
{
    sx_tree_ent ents[2] = {
        {.name = "a", .dtype = DT_REG, .r2 = 3, .r1 = -1, .link = NULL},
        {.name = "b", .dtype = DT_LNK, .r2 = -1, .r1 = 1, .link = "a"},
    };
    sx_tree_dir d = {.rel = "", .dev = 1, .ino = 2, .mtime_ns = 3, .ctime_ns = 4, .e = ents,
                     .n = 2};
    const sx_tree_dir *v[1] = {&d};
    char *path = at("t.tree");
    cr_assert_eq(sx_seal_tree_save(path, "key", v, 1, UINT64_MAX / 2), 0, "%s", sx_errmsg());
    uint8_t *data;
    size_t len;
    cr_assert_eq(sx_read_file(path, 1 << 20, &data, &len), 0);

    sx_seal_tree *t = NULL;
    uint8_t *copy = malloc(len);
    memcpy(copy, data, len);
    cr_assert_eq(sx_seal_tree_parse(copy, len, "t", "key", 4, 2, true, &t), 0, "%s", sx_errmsg());
    struct stat st = {.st_dev = 1, .st_ino = 2};
    st.st_mtim.tv_nsec = 3;
    st.st_ctim.tv_nsec = 4;
    const sx_tree_dir *f = sx_seal_tree_find(t, "", &st);
    cr_assert_not_null(f);
    cr_assert_eq(f->n, 2);
    cr_assert_str_eq(f->e[1].link, "a");
    cr_assert_eq(f->e[0].r2, 3);
    st.st_ctim.tv_nsec = 5;
    cr_assert_null(sx_seal_tree_find(t, "", &st), "another ctime is another directory");
    sx_seal_tree_free(t);

    struct {
        size_t n2, n1;
        const char *key;
    } bad[] = {{3, 2, "key"}, {4, 1, "key"}, {4, 2, "other"}};
    for (size_t i = 0; i < SX_ARRAY_SIZE(bad); i++) {
        copy = malloc(len);
        memcpy(copy, data, len);
        cr_assert_lt(sx_seal_tree_parse(copy, len, "t", bad[i].key, bad[i].n2, bad[i].n1, true, &t),
                     0, "case %zu", i);
        cr_assert_null(t);
    }
    for (size_t cut = 0; cut < len; cut++) {
        copy = malloc(cut ? cut : 1);
        memcpy(copy, data, cut);
        cr_assert_lt(sx_seal_tree_parse(copy, cut, "t", "key", 4, 2, false, &t), 0, "cut %zu", cut);
    }
    /* Every single-byte change of the body, checksum not checked: parsed or refused, never a
     * crash (ASan runs this too). */
    for (size_t i = 0; i + 32 < len; i++) {
        copy = malloc(len);
        memcpy(copy, data, len);
        copy[i] ^= 0xff;
        if (sx_seal_tree_parse(copy, len, "t", "key", 4, 2, false, &t) == 0)
            sx_seal_tree_free(t);
    }
    free(data);
    free(path);
}
