#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_STRICT = 256, O_DEEP, O_TRUST, O_JSON };

const struct sx_opt cmd_verify_opts[] = {
    {O_STRICT, "strict", NULL, "no unsealed files, no symlink leaving the bundle, exact code limits"},
    {O_DEEP, "deep", NULL, "verify nested code and every embedded system extension fully"},
    {O_TRUST, "trust", "CERT|DIR", "trust anchor certificate(s), PEM or DER (repeatable)"},
    {O_JSON, "json", NULL, "print the result as JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_verify(const struct sx_cmd *self, int argc, char **argv)
{
    sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
    const char *trust[64];
    size_t nt = 0;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_STRICT: o.strict = 1; break;
        case O_DEEP: o.deep = 1; break;
        case O_JSON: o.flags |= SYSEXT_OUTPUT_JSON; break;
        case O_TRUST:
            if (nt == sizeof(trust) / sizeof(trust[0]))
                return sx_usage_error(self, "too many --trust options");
            trust[nt++] = st.arg;
            break;
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind != argc - 1)
        return sx_usage_error(self, "expected exactly one PATH");
    o.trust = trust;
    o.n_trust = nt;
    char *text = NULL;
    int r = sysext_verify(argv[st.ind], &o, &text);
    if (text) {
        /* Like codesign, the verdict goes to stderr in text mode; JSON is the output proper. */
        if (o.flags & SYSEXT_OUTPUT_JSON)
            sx_print(text);
        else
            fputs(text, r == 0 ? stdout : stderr);
        free(text);
        return sx_exit_code(r);
    }
    return sx_fail(self, r);
}
