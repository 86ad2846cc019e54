#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_SERVER = 256, O_VALIDATE, O_NOTARY_CERT, O_JSON };

const struct sx_opt cmd_staple_opts[] = {
    {O_SERVER, "server", "URL", "notary server to fetch the ticket from"},
    {O_VALIDATE, "validate", NULL, "check the stapled ticket offline instead of stapling"},
    {O_NOTARY_CERT, "notary-cert", "CERT", "the notary's certificate (notary.pem) for --validate"},
    {O_JSON, "json", NULL, "print the result as JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_staple(const struct sx_cmd *self, int argc, char **argv)
{
    const char *server = NULL, *cert = NULL;
    int validate = 0;
    unsigned flags = 0;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_SERVER: server = st.arg; break;
        case O_VALIDATE: validate = 1; break;
        case O_NOTARY_CERT: cert = st.arg; break;
        case O_JSON: flags |= SYSEXT_OUTPUT_JSON; break;
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind != argc - 1)
        return sx_usage_error(self, "expected exactly one PATH");
    if (!validate) {
        if (!server)
            return sx_usage_error(self, "give --server URL to staple, or --validate");
        sysext_notary_options o = SYSEXT_NOTARY_OPTIONS_INIT;
        o.server = server;
        o.flags = flags;
        char *out = NULL;
        int r = sysext_staple_fetch(argv[st.ind], &o, &out);
        if (r < 0)
            return sx_fail(self, r);
        sx_print(out);
        free(out);
        return SX_EXIT_OK;
    }
    if (!cert)
        return sx_usage_error(self, "--validate needs --notary-cert CERT");
    char *text = NULL;
    int r = sysext_staple_validate(argv[st.ind], cert, flags, &text);
    if (text) {
        sx_print(text);
        free(text);
        return sx_exit_code(r);
    }
    return sx_fail(self, r);
}
