#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_SERVER = 256, O_KEY_FILE, O_WAIT, O_TIMEOUT, O_STAPLE, O_JSON, O_RETRIES };

const struct sx_opt cmd_notary_opts[] = {
    {O_SERVER, "server", "URL", "the notary server, e.g. http://127.0.0.1:8443"},
    {O_KEY_FILE, "key-file", "KEY", "file holding your team's API key"},
    {O_WAIT, "wait", NULL, "submit: wait until processing ends"},
    {O_TIMEOUT, "timeout", "S", "submit --wait: give up after S seconds (default 3600)"},
    {O_STAPLE, "staple", NULL, "submit: staple the ticket to the bundle once accepted"},
    {O_RETRIES, "retries", "N", "attempts on transient failures (default 4)"},
    {O_JSON, "json", NULL, "print the result as JSON"},
    {0, NULL, NULL, NULL},
};

/* Options may come before or after the verb and its argument ('notary submit --server U P',
 * 'notary info ID --server U'): move every option (with its value) in front of the
 * positionals, as getopt here stops at the first positional. */
static bool takes_value(const char *a)
{
    for (const struct sx_opt *o = cmd_notary_opts; o->name; o++)
        if (o->arg && a[0] == '-' && a[1] == '-' && !strcmp(a + 2, o->name))
            return true;
    return false;
}

int cmd_notary(const struct sx_cmd *self, int argc_in, char **argv_in)
{
    char *argv[256];
    int argc = 0;
    if (argc_in > (int)(sizeof argv / sizeof argv[0]) - 1)
        return sx_usage_error(self, "too many arguments");
    argv[argc++] = argv_in[0];
    for (int i = 1; i < argc_in; i++)
        if (argv_in[i][0] == '-' && argv_in[i][1]) {
            argv[argc++] = argv_in[i];
            if (takes_value(argv_in[i]) && i + 1 < argc_in)
                argv[argc++] = argv_in[++i];
        }
    for (int i = 1; i < argc_in; i++) {
        if (argv_in[i][0] == '-' && argv_in[i][1]) {
            if (takes_value(argv_in[i]))
                i++;
            continue;
        }
        argv[argc++] = argv_in[i];
    }
    argv[argc] = NULL;
    sysext_notary_options o = SYSEXT_NOTARY_OPTIONS_INIT;
    o.flags = SYSEXT_NOTARY_PROGRESS;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_SERVER: o.server = st.arg; break;
        case O_KEY_FILE: o.key_file = st.arg; break;
        case O_WAIT: o.wait = 1; break;
        case O_STAPLE: o.staple = 1; break;
        case O_JSON: o.flags |= SYSEXT_OUTPUT_JSON; break;
        case O_TIMEOUT: {
            char *end;
            unsigned long v = strtoul(st.arg, &end, 10);
            if (*end || v == 0 || v > 86400 * 7)
                return sx_usage_error(self, "--timeout: expected seconds, 1..604800");
            o.timeout_s = (unsigned)v;
            break;
        }
        case O_RETRIES: {
            char *end;
            unsigned long v = strtoul(st.arg, &end, 10);
            if (*end || v == 0 || v > 20)
                return sx_usage_error(self, "--retries: expected 1..20");
            o.retries = (unsigned)v;
            break;
        }
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind >= argc)
        return sx_usage_error(self, "expected submit, info, log or history");
    const char *sub = argv[st.ind];
    int npos = argc - st.ind - 1;
    if (!o.server)
        return sx_usage_error(self, "--server URL is required");
    if (!o.key_file)
        return sx_usage_error(self, "--key-file KEY is required");
    char *text = NULL;
    int r;
    if (!strcmp(sub, "submit") && npos == 1)
        r = sysext_notary_submit(argv[st.ind + 1], &o, &text);
    else if (!strcmp(sub, "info") && npos == 1)
        r = sysext_notary_info(argv[st.ind + 1], &o, &text);
    else if (!strcmp(sub, "log") && npos == 1)
        r = sysext_notary_log(argv[st.ind + 1], &o, &text);
    else if (!strcmp(sub, "history") && npos == 0)
        r = sysext_notary_history(&o, &text);
    else
        return sx_usage_error(self, "expected 'submit PATH', 'info ID', 'log ID' or 'history'");
    if (text) {
        sx_print(text);
        free(text);
        return sx_exit_code(r);
    }
    return sx_fail(self, r);
}
