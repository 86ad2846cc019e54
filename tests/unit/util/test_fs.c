#include <criterion/criterion.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/common.h"
#include "util/fs.h"

static char dir[] = "/tmp/sx-test-fs-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    sx_rm_rf(dir);
}

TestSuite(util_fs, .init = setup, .fini = teardown);

Test(util_fs, atomic_write_then_bounded_read)
{
    char *p = sx_path_join(dir, "f.txt");
    uint8_t *data;
    size_t len;
    cr_assert_eq(sx_write_file_atomic(p, "hello", 5, 0640), 0);
    cr_assert_eq(sx_read_file(p, 5, &data, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_str_eq((char *)data, "hello");
    free(data);
    cr_assert_eq(sx_read_file(p, 4, &data, &len), SYSEXT_ELIMIT);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    free(p);
}

Test(util_fs, read_refuses_symlink)
{
    char *p = sx_path_join(dir, "f"), *l = sx_path_join(dir, "l");
    uint8_t *data;
    size_t len;
    cr_assert_eq(sx_write_file_atomic(p, "x", 1, 0600), 0);
    cr_assert_eq(symlink(p, l), 0);
    cr_assert_lt(sx_read_file(l, 10, &data, &len), 0);
    free(p);
    free(l);
}

Test(util_fs, copy_tree_keeps_links_and_modes)
{
    char *src = sx_path_join(dir, "src"), *dst = sx_path_join(dir, "dst");
    char *sub = sx_path_join(src, "a/b");
    cr_assert_eq(sx_mkdir_p(sub, 0755), 0);
    char *exe = sx_path_join(sub, "exe"), *lnk = sx_path_join(src, "link");
    cr_assert_eq(sx_write_file_atomic(exe, "#!", 2, 0755), 0);
    cr_assert_eq(symlink("a/b/exe", lnk), 0);
    cr_assert_eq(sx_copy_tree(src, dst), 0);
    char *exe2 = sx_path_join(dst, "a/b/exe"), *lnk2 = sx_path_join(dst, "link");
    struct stat st;
    cr_assert_eq(lstat(exe2, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0755);
    cr_assert_eq(lstat(lnk2, &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    cr_assert_eq(sx_rm_rf(dst), 0);
    cr_assert_not(sx_path_exists(dst));
    free(src); free(dst); free(sub); free(exe); free(lnk); free(exe2); free(lnk2);
}

Test(util_fs, path_join)
{
    char *p = sx_path_join("a/", "/b");
    cr_assert_str_eq(p, "a/b");
    free(p);
    p = sx_path_join("/", "x");
    cr_assert_str_eq(p, "/x");
    free(p);
}
