/* Shared by the bundle tests: a scratch directory, tiny executables, building bundles from the
 * templates in tests/data/bundle/, editing their Info.plist, finding diagnostics, running the
 * CLI. Each test file includes it once. */
#ifndef SX_TEST_BUNDLE_HELPERS_H
#define SX_TEST_BUNDLE_HELPERS_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/common.h"
#include "bundle/bundle.h"
#include "bundle/schema.h"
#include "bundle/validate.h"
#include "sysext/bundle.h"
#include "util/fs.h"
#include "util/report.h"

#define DATA SYSEXT_SOURCE_DIR "/tests/data/bundle/"
#define SYSEXTCTL SYSEXT_BINARY_DIR "/sysextctl/sysextctl"

static __attribute__((unused)) char scratch[] = "/tmp/sx-test-bundle-XXXXXX";

static __attribute__((unused)) void scratch_setup(void)
{
    cr_assert_not_null(mkdtemp(scratch));
    unsetenv("SYSEXT_SCHEMA_DIR");
}

static __attribute__((unused)) void scratch_teardown(void)
{
    sx_rm_rf(scratch);
}

/* scratch/<name>, malloc'd (tests leak nothing that matters: each runs in its own process,
 * but ASan's leak check still wants them freed, so callers free). */
static __attribute__((unused)) char *sp(const char *name)
{
    char *p = sx_path_join(scratch, name);
    cr_assert_not_null(p);
    return p;
}

static __attribute__((unused)) char *make_file(const char *name, const char *content, mode_t mode)
{
    char *p = sp(name);
    cr_assert_eq(sx_write_file_atomic(p, content, strlen(content), mode), 0, "%s", sx_errmsg());
    return p;
}

static __attribute__((unused)) char *make_exe(const char *name)
{
    return make_file(name, "#!/bin/sh\nexit 0\n", 0755);
}

/* Build a bundle of `kind` from tests/data/bundle/<tmpl> into scratch/<out>. */
static __attribute__((unused)) char *build(sysext_bundle_kind kind, const char *tmpl, const char *out,
                   const char *const *embeds, size_t n_embeds)
{
    char *exe = make_exe(kind == SYSEXT_BUNDLE_APP ? "app-exe" : "ext-exe");
    char *outp = sp(out);
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    char tpath[512];
    snprintf(tpath, sizeof(tpath), DATA "%s", tmpl);
    o.type = kind;
    o.info = tpath;
    o.executable = exe;
    o.output = outp;
    o.embeds = embeds;
    o.n_embeds = n_embeds;
    int r = sysext_bundle_build(&o);
    cr_assert_eq(r, 0, "build %s: %d %s", out, r, sysext_last_error());
    free(exe);
    return outp;
}

static __attribute__((unused)) char *info_path_of(const char *bundle)
{
    bool flat;
    char *contents = NULL;
    cr_assert_eq(sx_bundle_layout(bundle, sx_bundle_kind_from_path(bundle), &flat, &contents), 0);
    char *p = sx_path_join(contents, "Info.plist");
    free(contents);
    return p;
}

static __attribute__((unused)) plist_t load_info(const char *bundle)
{
    char *p = info_path_of(bundle);
    plist_t info = NULL;
    cr_assert_eq(sx_plist_read_file(p, SX_INFO_PLIST_MAX, &info), 0, "%s", sx_errmsg());
    free(p);
    return info;
}

static __attribute__((unused)) void save_info(const char *bundle, plist_t info)
{
    char *p = info_path_of(bundle);
    char *xml = NULL;
    uint32_t len = 0;
    plist_to_xml(info, &xml, &len);
    cr_assert_not_null(xml);
    cr_assert_eq(sx_write_file_atomic(p, xml, len, 0644), 0);
    plist_to_xml_free(xml);
    free(p);
    plist_free(info);
}

/* Set (value != NULL) or remove (value == NULL) a top-level Info.plist key. */
static __attribute__((unused)) void set_key(const char *bundle, const char *key, plist_t value)
{
    plist_t info = load_info(bundle);
    if (value)
        plist_dict_set_item(info, key, value);
    else
        plist_dict_remove_item(info, key);
    save_info(bundle, info);
}

/* The same inside IOKitPersonalities.<pers>. */
static __attribute__((unused)) void set_pers_key(const char *bundle, const char *pers, const char *key, plist_t value)
{
    plist_t info = load_info(bundle);
    plist_t p = plist_dict_get_item(plist_dict_get_item(info, "IOKitPersonalities"), pers);
    cr_assert_not_null(p);
    if (value)
        plist_dict_set_item(p, key, value);
    else
        plist_dict_remove_item(p, key);
    save_info(bundle, info);
}

static __attribute__((unused)) void validate(const char *bundle, sx_report *r)
{
    sx_report_init(r);
    cr_assert_eq(sx_validate_bundle(bundle, r), 0, "%s", sx_errmsg());
}

static __attribute__((unused)) void dump(const sx_report *r)
{
    sx_buf b = SX_BUF_INIT;
    sx_report_render_text(r, &b);
    cr_log_info("%s", b.data ? (char *)b.data : "");
    sx_buf_free(&b);
}

/* Assert that the report holds a diagnostic with this severity, code, key path (NULL: none) and
 * file path (NULL: any). */
static __attribute__((unused)) void expect(const sx_report *r, sx_severity sev, const char *code, const char *key,
                   const char *path)
{
    for (size_t i = 0; i < r->n; i++) {
        const sx_diag *d = &r->v[i];
        if (d->sev != sev || strcmp(d->code, code))
            continue;
        if ((key == NULL) != (d->key == NULL) || (key && strcmp(key, d->key)))
            continue;
        if (path && (!d->path || strcmp(path, d->path)))
            continue;
        return;
    }
    dump(r);
    cr_assert_fail("no %s '%s' at key '%s' path '%s'", sx_severity_name(sev), code,
                   key ? key : "(none)", path ? path : "(any)");
}

static __attribute__((unused)) void expect_error(const sx_report *r, const char *code, const char *key, const char *path)
{
    expect(r, SX_SEV_ERROR, code, key, path);
}

static __attribute__((unused)) void expect_clean(const sx_report *r)
{
    if (sx_report_count(r, SX_SEV_ERROR) || sx_report_count(r, SX_SEV_WARNING)) {
        dump(r);
        cr_assert_fail("expected no errors or warnings");
    }
}

/* Run sysextctl with argv (NULL-terminated), stdout/stderr to files in scratch; exit status. */
static __attribute__((unused)) int run_cli(const char *const *args)
{
    char *out = sp("cli.out"), *err = sp("cli.err");
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        char *argv[32];
        size_t n = 0;
        argv[n++] = (char *)SYSEXTCTL;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(SYSEXTCTL, argv);
        _exit(127);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    free(out);
    free(err);
    cr_assert(WIFEXITED(st), "sysextctl did not exit normally");
    return WEXITSTATUS(st);
}

static __attribute__((unused)) char *read_scratch(const char *name)
{
    char *p = sp(name);
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(sx_read_file(p, 1 << 20, &data, &len), 0);
    free(p);
    return (char *)data;
}

#endif
