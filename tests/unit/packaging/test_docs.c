/* The man pages and completions cover the whole command table, and every page renders cleanly;
 * the systemd units pass systemd-analyze verify. The table is read back through `sysextctl --help`
 * and `sysextctl CMD --help` (the usage text the CLI prints from the same table), so a command or
 * option missing from a generated file is caught whatever the generator does. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkgfixture.h"

#define SYSEXTCTL SYSEXT_BINARY_DIR "/sysextctl/sysextctl"
#define GEN SYSEXT_BINARY_DIR "/data"

TestSuite(docs, .init = pkg_setup, .fini = pkg_teardown);

struct table {
    char cmds[64][32];
    size_t ncmds;
    char opts[64][24][40]; /* per command, long option names */
    size_t nopts[64];
};

/* Commands and their options, from the CLI's own usage output. */
static void read_table(struct table *t)
{
    memset(t, 0, sizeof(*t));
    int st;
    char *out = pkg_capture(&st, "'%s' --help", SYSEXTCTL);
    cr_assert_eq(st, 0, "%s", out);
    char *p = strstr(out, "commands:\n");
    cr_assert_not_null(p);
    p += strlen("commands:\n");
    for (char *line = strtok(p, "\n"); line && !strncmp(line, "  ", 2); line = strtok(NULL, "\n")) {
        cr_assert_lt(t->ncmds, 64);
        sscanf(line, " %31s", t->cmds[t->ncmds++]);
    }
    free(out);
    cr_assert_gt(t->ncmds, 10, "only %zu commands in --help", t->ncmds);
    for (size_t i = 0; i < t->ncmds; i++) {
        out = pkg_capture(&st, "'%s' %s --help", SYSEXTCTL, t->cmds[i]);
        cr_assert_eq(st, 0, "%s --help: %s", t->cmds[i], out);
        char *o = strstr(out, "\noptions:\n");
        if (o) {
            for (char *line = strtok(o + 10, "\n"); line; line = strtok(NULL, "\n")) {
                char *dd = strstr(line, "--"); /* the first --name of the line is the option */
                if (!dd)
                    continue;
                size_t n = strspn(dd + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
                cr_assert(n > 0 && n < 40);
                if (n == 4 && !strncmp(dd + 2, "help", 4))
                    continue;
                cr_assert_lt(t->nopts[i], 24);
                memcpy(t->opts[i][t->nopts[i]++], dd + 2, n);
            }
        }
        free(out);
    }
}

/* The text of a file between the first occurrence of `start` and the next `end` (or the end). */
static char *section(const char *text, const char *start, const char *end)
{
    const char *s = strstr(text, start);
    if (!s)
        return NULL;
    const char *e = strstr(s + strlen(start), end);
    size_t n = e ? (size_t)(e - s) : strlen(s);
    return strndup(s, n);
}

Test(docs, man_page_has_every_command_and_option)
{
    struct table t;
    read_table(&t);
    char *man = pkg_read(GEN "/sysextctl.1");
    cr_assert_not_null(man, "no generated %s", GEN "/sysextctl.1");
    for (size_t i = 0; i < t.ncmds; i++) {
        char start[64];
        snprintf(start, sizeof(start), ".SS \"%s\"\n", t.cmds[i]);
        char *sec = section(man, start, ".SS ");
        cr_assert_not_null(sec, "sysextctl.1 has no section for '%s'", t.cmds[i]);
        cr_expect_not_null(strstr(sec, "Exit status"), "%s: no exit status", t.cmds[i]);
        for (size_t j = 0; j < t.nopts[i]; j++) {
            char want[64];
            snprintf(want, sizeof(want), "\\fB\\-\\-");
            size_t k = strlen(want);
            for (const char *c = t.opts[i][j]; *c && k + 3 < sizeof(want); c++) {
                if (*c == '-')
                    want[k++] = '\\';
                want[k++] = *c;
            }
            want[k] = '\0';
            cr_expect_not_null(strstr(sec, want), "sysextctl.1: %s lacks --%s", t.cmds[i], t.opts[i][j]);
        }
        free(sec);
    }
    free(man);
}

Test(docs, completions_have_every_command_and_option)
{
    struct table t;
    read_table(&t);
    char *bash = pkg_read(GEN "/sysextctl.bash");
    char *zsh = pkg_read(GEN "/_sysextctl");
    cr_assert_not_null(bash);
    cr_assert_not_null(zsh);
    for (size_t i = 0; i < t.ncmds; i++) {
        char start[64];
        snprintf(start, sizeof(start), "\n    %s)\n", t.cmds[i]);
        char *b = section(bash, start, "fi ;;\n");
        char *z = section(zsh, start, ";;\n");
        cr_assert_not_null(b, "bash completion lacks '%s'", t.cmds[i]);
        cr_assert_not_null(z, "zsh completion lacks '%s'", t.cmds[i]);
        snprintf(start, sizeof(start), "\n        '%s:", t.cmds[i]);
        cr_expect_not_null(strstr(zsh, start), "zsh command list lacks '%s'", t.cmds[i]);
        for (size_t j = 0; j < t.nopts[i]; j++) {
            char want[64];
            snprintf(want, sizeof(want), "--%s ", t.opts[i][j]);
            cr_expect_not_null(strstr(b, want), "bash: %s lacks --%s", t.cmds[i], t.opts[i][j]);
            snprintf(want, sizeof(want), "--%s[", t.opts[i][j]);
            char alt[64];
            snprintf(alt, sizeof(alt), ",--%s}'[", t.opts[i][j]);
            cr_expect(strstr(z, want) || strstr(z, alt), "zsh: %s lacks --%s", t.cmds[i], t.opts[i][j]);
        }
        free(b);
        free(z);
    }
    free(bash);
    free(zsh);
}

/* bash really completes: every command at the first word, options, files and enumerations. */
Test(docs, bash_completion_runs)
{
    struct table t;
    read_table(&t);
    int st;
    char *out = pkg_capture(&st, "bash -c 'source \"%s\"; COMP_WORDS=(sysextctl \"\"); COMP_CWORD=1; "
                                 "_sysextctl; printf \"%%s\\n\" \"${COMPREPLY[@]}\"'",
                            GEN "/sysextctl.bash");
    cr_assert_eq(st, 0, "%s", out);
    for (size_t i = 0; i < t.ncmds; i++) {
        char want[48];
        snprintf(want, sizeof(want), "\n%s\n", t.cmds[i]);
        char *padded = NULL;
        cr_assert(asprintf(&padded, "\n%s", out) > 0);
        cr_expect_not_null(strstr(padded, want), "bash does not offer '%s': %s", t.cmds[i], out);
        free(padded);
    }
    free(out);
    out = pkg_capture(&st, "bash -c 'source \"%s\"; COMP_WORDS=(sysextctl build --type \"\"); COMP_CWORD=3; "
                           "_sysextctl; echo \"${COMPREPLY[*]}\"'",
                      GEN "/sysextctl.bash");
    cr_expect_str_eq(out, "dext sysext app\n");
    free(out);
    out = pkg_capture(&st, "cd '%s' && touch a.dext-file && bash -c 'source \"%s\"; "
                           "COMP_WORDS=(sysextctl verify a.de); COMP_CWORD=2; _sysextctl; echo \"${COMPREPLY[*]}\"'",
                      pkg_tmp, GEN "/sysextctl.bash");
    cr_expect_str_eq(out, "a.dext-file\n");
    free(out);
}

Test(docs, zsh_completion_parses)
{
    if (pkg_run("command -v zsh") != 0)
        cr_skip_test("zsh is not installed");
    cr_expect_eq(pkg_run("zsh -n '%s'", GEN "/_sysextctl"), 0);
}

static void expect_renders(const char *page)
{
    cr_assert(pkg_exists(page), "%s missing", page);
    int st;
    char *out = pkg_capture(&st, "MANWIDTH=80 man --warnings -l '%s' 2>&1 >/dev/null", page);
    cr_expect_eq(st, 0, "man -l %s failed: %s", page, out);
    cr_expect_str_eq(out, "", "man --warnings -l %s", page);
    free(out);
    out = pkg_capture(&st, "MANWIDTH=80 man -l '%s' 2>/dev/null | head -n 1", page);
    cr_expect(strlen(out) > 10, "%s renders empty", page);
    free(out);
}

Test(docs, man_pages_render_without_warnings)
{
    if (pkg_run("command -v man && command -v groff") != 0)
        cr_assert_fail("man and groff are needed (scripts/setup installs man-db and groff-base)");
    expect_renders(GEN "/sysextctl.1");
    expect_renders(SYSEXT_SOURCE_DIR "/docs/man/sysextd.8");
    expect_renders(SYSEXT_SOURCE_DIR "/docs/man/sysext-notaryd.8");
    expect_renders(SYSEXT_SOURCE_DIR "/docs/man/sysext-iig.1");
    expect_renders(SYSEXT_SOURCE_DIR "/docs/man/sysext-activation.3");
    expect_renders(SYSEXT_SOURCE_DIR "/docs/man/sysext-vusb.1");
    expect_renders(SYSEXT_SOURCE_DIR "/docs/man/sysext-sample-app.1");
}

/* A man page for the CLI must describe the fixed exit codes and name the other pages. */
Test(docs, man_page_exit_codes_and_see_also)
{
    char *man = pkg_read(GEN "/sysextctl.1");
    cr_assert_not_null(man);
    cr_expect_not_null(strstr(man, ".SH EXIT STATUS"));
    cr_expect_not_null(strstr(man, ".BR sysextd (8)"));
    cr_expect_not_null(strstr(man, ".SH SYNOPSIS"));
    free(man);
    int st;
    char *out = pkg_capture(&st, "'%s' --generate nroff", SYSEXTCTL);
    cr_expect_eq(st, 2, "an unknown --generate kind must be a usage error: %s", out);
    free(out);
}

Test(docs, systemd_units_verify)
{
    if (pkg_run("command -v systemd-analyze") != 0)
        cr_skip_test("systemd-analyze is not installed");
    int st;
    /* Every unit of data/systemd/ (X.in configured to X with the installed paths): a unit added
     * there without being configured for the check fails here as a missing file. */
    char *out = pkg_capture(&st, "cd '%s' && systemd-analyze verify --man=no "
                                 "$(for f in '%s'/data/systemd/*; do b=${f##*/}; echo \"./${b%%.in}\"; done)",
                            GEN "/check", SYSEXT_SOURCE_DIR);
    cr_expect_eq(st, 0, "systemd-analyze verify: %s", out);
    cr_expect_str_eq(out, "", "systemd-analyze verify");
    free(out);
    /* ... and the check sees a typo: the same unit with a misspelt key must not pass silently. */
    out = pkg_capture(&st, "mkdir -p '%s/typo' && sed 's/^PrivateTmp=/PrivatTmp=/' '%s/check/sysextd.service' "
                           "> '%s/typo/sysextd.service' && cp '%s/check/sysextd.socket' '%s/typo/' && "
                           "cd '%s/typo' && systemd-analyze verify --man=no ./sysextd.socket ./sysextd.service",
                      pkg_tmp, GEN, pkg_tmp, GEN, pkg_tmp, pkg_tmp);
    cr_expect_not_null(strstr(out, "PrivatTmp"), "a misspelt key went unnoticed: %s", out);
    free(out);
    char *unit = pkg_read(SYSEXT_SOURCE_DIR "/data/systemd/sysextd.service.in");
    cr_assert_not_null(unit);
    static const char *const must[] = {"Type=notify", "ProtectSystem=strict", "StateDirectory=sysextd",
                                       "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet="};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        cr_expect_not_null(strstr(unit, must[i]), "sysextd.service lacks %s", must[i]);
    free(unit);
}

/* Every option sysextd's --help names is described in sysextd(8). */
Test(docs, sysextd_man_page_has_every_option)
{
    int st = 0;
    char *help = pkg_capture(&st, "'%s/sysextd/sysextd' --help", SYSEXT_BINARY_DIR);
    cr_assert_eq(st, 0, "%s", help);
    char *man = pkg_read(SYSEXT_SOURCE_DIR "/docs/man/sysextd.8");
    size_t n = 0;
    for (const char *p = help; (p = strstr(p, "--")); p += 2) {
        char opt[64], roff[160];
        size_t k = 0;
        for (const char *q = p + 2; (*q == '-' || (*q >= 'a' && *q <= 'z')) && k + 1 < sizeof(opt); q++)
            opt[k++] = *q;
        opt[k] = '\0';
        if (!k)
            continue;
        /* roff escapes every hyphen: --grace-period is \-\-grace\-period */
        size_t r = 0;
        r += (size_t)snprintf(roff + r, sizeof(roff) - r, "\\-\\-");
        for (size_t i = 0; i < k && r + 3 < sizeof(roff); i++) {
            if (opt[i] == '-')
                roff[r++] = '\\';
            roff[r++] = opt[i];
        }
        roff[r] = '\0';
        cr_expect_not_null(strstr(man, roff), "sysextd(8) does not describe --%s", opt);
        n++;
    }
    cr_expect_geq(n, 12u, "sysextd --help named only %zu options", n);
    free(help);
    free(man);
}
