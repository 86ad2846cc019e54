#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_TRUST = 256, O_NOTARY_CERT, O_ONLINE, O_JSON };

const struct sx_opt cmd_assess_opts[] = {
    {O_TRUST, "trust", "ROOT.pem", "trusted developer root certificate(s) (repeatable)"},
    {O_NOTARY_CERT, "notary-cert", "CERT", "the notary's certificate, to check tickets"},
    {O_ONLINE, "online", "URL", "ask this notary server for the ticket and its revocation"},
    {O_JSON, "json", NULL, "print the result as JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_assess(const struct sx_cmd *self, int argc, char **argv)
{
    sysext_assess_options o = SYSEXT_ASSESS_OPTIONS_INIT;
    const char *trust[64];
    size_t nt = 0;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_TRUST:
            if (nt == sizeof(trust) / sizeof(trust[0]))
                return sx_usage_error(self, "too many --trust options");
            trust[nt++] = st.arg;
            break;
        case O_NOTARY_CERT: o.notary_cert = st.arg; break;
        case O_ONLINE: o.online_url = st.arg; break;
        case O_JSON: o.flags |= SYSEXT_OUTPUT_JSON; break;
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind != argc - 1)
        return sx_usage_error(self, "expected exactly one PATH");
    if (nt == 0)
        return sx_usage_error(self, "give at least one --trust ROOT.pem");
    o.trust = trust;
    o.n_trust = nt;
    char *text = NULL;
    int r = sysext_assess(argv[st.ind], &o, &text);
    if (text) {
        sx_print(text);
        free(text);
        return sx_exit_code(r);
    }
    return sx_fail(self, r);
}
