#include "util/common.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sysextd/store.h"
#include "util/fs.h"

static char tmp[] = "/tmp/sxd-store-XXXXXX";
static char *state, *src;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(tmp));
    state = sx_path_join(tmp, "state");
    src = sx_path_join(tmp, "com.example.drv.dext");
    cr_assert_eq(sx_mkdir_p(src, 0755), 0);
    _sx_cleanup_free_ char *f = sx_path_join(src, "Info.plist");
    cr_assert_eq(sx_write_file_atomic(f, "<plist/>", 8, 0644), 0);
    _sx_cleanup_free_ char *e = sx_path_join(src, "drv");
    cr_assert_eq(sx_write_file_atomic(e, "\x7f" "ELF", 4, 0755), 0);
}

static void teardown(void)
{
    sx_rm_rf(tmp);
    free(state);
    free(src);
}

TestSuite(store, .init = setup, .fini = teardown);

static void fill(sxd_record *r, const char *state_name)
{
    r->identifier = strdup("com.example.drv");
    r->team_id = strdup("ABCDE12345");
    r->version = strdup("1");
    r->short_version = strdup("1.0");
    r->category = strdup("com.apple.system_extension.driver_extension");
    r->name = strdup("Drv");
    r->state = strdup(state_name);
    r->origin_path = strdup("/Applications/A.app/Contents/Library/SystemExtensions/x.dext");
    r->app_path = strdup("/Applications/A.app");
    r->app_id = strdup("com.example.app");
    r->app_team = strdup("ABCDE12345");
    r->app_cdhash = strdup("00");
    r->cdhash = strdup("11");
}

static size_t count_dirs(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

Test(store, stage_insert_transition_delete)
{
    sxd_store *s = NULL;
    cr_assert_eq(sxd_store_open(state, &s), 0);
    sxd_record r;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(sxd_store_stage(s, src, &r), 0);
    cr_assert_eq(strlen(r.uuid), 36);
    cr_assert(strstr(r.staged_path, r.uuid));
    cr_assert(strstr(r.staged_path, "/extensions/"));
    _sx_cleanup_free_ char *exe = sx_path_join(r.staged_path, "drv");
    struct stat st;
    cr_assert_eq(stat(exe, &st), 0);
    cr_assert(st.st_mode & 0100, "exec bit kept");
    fill(&r, SXD_ST_WAITING);
    cr_assert_eq(sxd_store_insert(s, &r), 0);
    cr_assert_eq(sxd_store_insert(s, &r), SYSEXT_ERROR, "duplicate uuid refused");

    sxd_record g;
    cr_assert_eq(sxd_store_get(s, r.uuid, &g), 0);
    cr_assert_str_eq(g.state, SXD_ST_WAITING);
    cr_assert_str_eq(g.app_path, "/Applications/A.app");
    sxd_record_clear(&g);
    cr_assert_eq(sxd_store_set_state(s, r.uuid, SXD_ST_ENABLED), 0);
    cr_assert_eq(sxd_store_get(s, r.uuid, &g), 0);
    cr_assert_str_eq(g.state, SXD_ST_ENABLED);
    sxd_record_clear(&g);

    sxd_record *v = NULL;
    size_t n = 0;
    cr_assert_eq(sxd_store_list(s, "com.example.drv", &v, &n), 0);
    cr_assert_eq(n, 1);
    sxd_records_free(v, n);
    cr_assert_eq(sxd_store_list(s, "com.other", &v, &n), 0);
    cr_assert_eq(n, 0);
    sxd_records_free(v, n);

    cr_assert_eq(sxd_store_unstage(s, r.uuid), 0);
    cr_assert_eq(sxd_store_delete(s, r.uuid), 0);
    cr_assert_eq(sxd_store_get(s, r.uuid, &g), SYSEXT_ENOTFOUND);
    cr_assert_eq(count_dirs(sxd_store_dir(s)), 0);
    cr_assert_eq(sxd_store_unstage(s, "../../etc"), SYSEXT_EINVAL);
    sxd_record_clear(&r);
    sxd_store_close(s);
}

Test(store, replace_is_one_transaction)
{
    sxd_store *s = NULL;
    cr_assert_eq(sxd_store_open(state, &s), 0);
    sxd_record a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    cr_assert_eq(sxd_store_stage(s, src, &a), 0);
    fill(&a, SXD_ST_ENABLED);
    cr_assert_eq(sxd_store_insert(s, &a), 0);
    cr_assert_eq(sxd_store_stage(s, src, &b), 0);
    fill(&b, SXD_ST_VALIDATING);
    cr_assert_eq(sxd_store_insert(s, &b), 0);
    cr_assert_eq(sxd_store_replace(s, a.uuid, b.uuid, SXD_ST_ENABLED), 0);
    sxd_record g;
    cr_assert_eq(sxd_store_get(s, a.uuid, &g), 0);
    cr_assert_str_eq(g.state, SXD_ST_TERM_UPGRADE);
    sxd_record_clear(&g);
    cr_assert_eq(sxd_store_get(s, b.uuid, &g), 0);
    cr_assert_str_eq(g.state, SXD_ST_ENABLED);
    sxd_record_clear(&g);
    cr_assert_eq(sxd_store_update_owner(s, "/Applications/A.app", "ff"), 0);
    cr_assert_eq(sxd_store_get(s, b.uuid, &g), 0);
    cr_assert_str_eq(g.app_cdhash, "ff");
    sxd_record_clear(&g);
    sxd_record_clear(&a);
    sxd_record_clear(&b);
    sxd_store_close(s);
}

Test(store, reconcile_after_a_crash)
{
    sxd_store *s = NULL;
    cr_assert_eq(sxd_store_open(state, &s), 0);
    const char *states[] = {SXD_ST_ENABLED,       SXD_ST_WAITING,      SXD_ST_VALIDATING,
                            SXD_ST_TERM_UNINSTALL, SXD_ST_UNINSTALLING, SXD_ST_TERM_UPGRADE,
                            SXD_ST_ENABLING};
    sxd_record r[7];
    for (int i = 0; i < 7; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        cr_assert_eq(sxd_store_stage(s, src, &r[i]), 0);
        fill(&r[i], states[i]);
        cr_assert_eq(sxd_store_insert(s, &r[i]), 0);
    }
    /* A half-staged copy without a row, and an enabled row whose copy vanished. */
    sxd_record orphan;
    memset(&orphan, 0, sizeof(orphan));
    cr_assert_eq(sxd_store_stage(s, src, &orphan), 0);
    sxd_record lost;
    memset(&lost, 0, sizeof(lost));
    cr_assert_eq(sxd_store_stage(s, src, &lost), 0);
    fill(&lost, SXD_ST_ENABLED);
    cr_assert_eq(sxd_store_insert(s, &lost), 0);
    cr_assert_eq(sxd_store_unstage(s, lost.uuid), 0);
    sxd_store_close(s);

    cr_assert_eq(sxd_store_open(state, &s), 0);
    unsigned fixed = 0;
    cr_assert_eq(sxd_store_reconcile(s, &fixed), 0);
    cr_assert_eq(fixed, 7, "validating, 3 uninstall/upgrade rows, enabling, orphan dir, lost row");
    sxd_record *v = NULL;
    size_t n = 0;
    cr_assert_eq(sxd_store_list(s, NULL, &v, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0].state, SXD_ST_ENABLED);
    cr_assert_str_eq(v[1].state, SXD_ST_WAITING);
    cr_assert_str_eq(v[2].state, SXD_ST_ENABLED, "enabling finished");
    cr_assert_str_eq(v[2].uuid, r[6].uuid);
    for (size_t i = 0; i < n; i++)
        cr_assert(sx_is_dir(v[i].staged_path));
    sxd_records_free(v, n);
    cr_assert_eq(count_dirs(sxd_store_dir(s)), 3);
    /* A second pass finds nothing to do. */
    cr_assert_eq(sxd_store_reconcile(s, &fixed), 0);
    cr_assert_eq(fixed, 0);
    for (int i = 0; i < 7; i++)
        sxd_record_clear(&r[i]);
    sxd_record_clear(&orphan);
    sxd_record_clear(&lost);
    sxd_store_close(s);
}

Test(store, settings)
{
    sxd_store *s = NULL;
    cr_assert_eq(sxd_store_open(state, &s), 0);
    char *v = NULL;
    cr_assert_eq(sxd_store_get_setting(s, "developer_mode", &v), 0);
    cr_assert_null(v);
    cr_assert_eq(sxd_store_set_setting(s, "developer_mode", "on"), 0);
    cr_assert_eq(sxd_store_set_setting(s, "developer_mode", "off"), 0);
    cr_assert_eq(sxd_store_get_setting(s, "developer_mode", &v), 0);
    cr_assert_str_eq(v, "off");
    free(v);
    sxd_store_close(s);
}

Test(store, open_fails_cleanly_on_a_file)
{
    _sx_cleanup_free_ char *f = sx_path_join(tmp, "afile");
    cr_assert_eq(sx_write_file_atomic(f, "x", 1, 0644), 0);
    sxd_store *s = NULL;
    cr_assert_lt(sxd_store_open(f, &s), 0);
    cr_assert_null(s);
}
