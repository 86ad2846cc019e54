#include "sysextctl/cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysext/sysext.h"

const char *sx_global_socket;

void sx_usage(const struct sx_cmd *cmd, bool to_stderr)
{
    FILE *f = to_stderr ? stderr : stdout;
    fprintf(f, "usage: sysextctl %s%s%s%s\n\n%s\n", cmd->name, cmd->opts && cmd->opts[0].name ? " [options]" : "",
            cmd->args && *cmd->args ? " " : "", cmd->args ? cmd->args : "", cmd->summary);
    if (!cmd->opts || !cmd->opts[0].name)
        return;
    fputs("\noptions:\n", f);
    for (const struct sx_opt *o = cmd->opts; o->name; o++) {
        char left[64];
        int n;
        if (o->id > 0 && o->id < 128)
            n = snprintf(left, sizeof(left), "-%c, --%s%s%s", o->id, o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
        else
            n = snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
        if (n < 0 || (size_t)n >= sizeof(left))
            left[sizeof(left) - 1] = '\0';
        fprintf(f, "  %-30s %s\n", left, o->help);
    }
    fprintf(f, "  %-30s %s\n", "-h, --help", "show this help");
}

int sx_usage_error(const struct sx_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sysextctl %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'sysextctl %s --help')\n", cmd->name);
    return SX_EXIT_ERROR;
}

int sx_exit_code(int rc)
{
    switch (rc) {
    case SYSEXT_OK:
        return SX_EXIT_OK;
    case SYSEXT_EINVALID:
    case SYSEXT_EFORMAT:
    case SYSEXT_ESIGNATURE:
    case SYSEXT_EUNTRUSTED:
    case SYSEXT_EUNSAFE:
    case SYSEXT_ELIMIT:
    case SYSEXT_EREJECTED:
        return SX_EXIT_INVALID;
    default:
        return SX_EXIT_ERROR;
    }
}

int sx_fail(const struct sx_cmd *cmd, int rc)
{
    const char *msg = sysext_last_error();
    fprintf(stderr, "sysextctl %s: %s\n", cmd->name, msg && *msg ? msg : sysext_error_name(rc));
    return sx_exit_code(rc);
}

void sx_print(const char *text)
{
    size_t n = strlen(text);
    fputs(text, stdout);
    if (n == 0 || text[n - 1] != '\n')
        fputc('\n', stdout);
}

int sx_opt_next(const struct sx_cmd *cmd, struct sx_optstate *st, int argc, char **argv)
{
    struct option lo[65];
    char so[200];
    size_t nlo = 0, nso = 0;
    so[nso++] = '+'; /* stop at the first positional, like git */
    so[nso++] = ':';
    for (const struct sx_opt *o = cmd->opts; o && o->name && nlo < 63; o++) {
        lo[nlo].name = o->name;
        lo[nlo].has_arg = o->arg ? required_argument : no_argument;
        lo[nlo].flag = NULL;
        lo[nlo].val = o->id;
        nlo++;
        if (o->id > 0 && o->id < 128 && nso + 3 < sizeof(so)) {
            so[nso++] = (char)o->id;
            if (o->arg)
                so[nso++] = ':';
        }
    }
    lo[nlo++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[nlo] = (struct option){NULL, 0, NULL, 0};
    so[nso++] = 'h';
    so[nso] = '\0';

    if (st->ind == 0) {
        optind = 0; /* full re-initialisation of getopt's state */
        st->ind = 1;
    }
    opterr = 0;
    int c = getopt_long(argc, argv, so, lo, NULL);
    st->ind = optind;
    st->arg = optarg;
    if (c == -1)
        return -1;
    if (c == 'h') {
        sx_usage(cmd, false);
        exit(SX_EXIT_OK);
    }
    if (c == '?') {
        if (optopt)
            return sx_usage_error(cmd, "unknown option '-%c'", optopt), -2;
        return sx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]), -2;
    }
    if (c == ':')
        return sx_usage_error(cmd, "option '%s' needs an argument", argv[optind - 1]), -2;
    return c;
}
