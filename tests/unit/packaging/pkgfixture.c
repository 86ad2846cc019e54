#include "pkgfixture.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char pkg_tmp[256];

void pkg_setup(void)
{
    snprintf(pkg_tmp, sizeof(pkg_tmp), "/tmp/sx-pkg-XXXXXX");
    cr_assert_not_null(mkdtemp(pkg_tmp));
}

void pkg_teardown(void)
{
    if (!pkg_tmp[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pkg_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", pkg_tmp);
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

char *pkg_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

bool pkg_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

bool pkg_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int run_to(const char *cmd, const char *log)
{
    char *full = NULL;
    if (asprintf(&full, "(%s) >'%s' 2>&1", cmd, log) < 0)
        return -1;
    int st = system(full);
    free(full);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

int pkg_run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    cr_assert_not_null(cmd);
    char log[300];
    snprintf(log, sizeof(log), "%s/cmd.log", pkg_tmp);
    int st = run_to(cmd, log);
    if (st != 0) {
        char *out = pkg_read(log);
        fprintf(stderr, "command failed (%d): %s\n%s\n", st, cmd, out ? out : "");
        free(out);
    }
    free(cmd);
    return st;
}

char *pkg_capture(int *status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    cr_assert_not_null(cmd);
    char log[300];
    snprintf(log, sizeof(log), "%s/capture.log", pkg_tmp);
    *status = run_to(cmd, log);
    free(cmd);
    char *out = pkg_read(log);
    cr_assert_not_null(out);
    return out;
}
