/* sysextctl ca init DIR: a private development PKI (root + intermediate, PEM, keys 0600). */
#include <stdio.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

const struct sx_opt cmd_ca_opts[] = {{0, NULL, NULL, NULL}};

int cmd_ca(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    if (st.ind >= argc)
        return sx_usage_error(self, "missing verb (expected 'init DIR')");
    if (strcmp(argv[st.ind], "init") != 0)
        return sx_usage_error(self, "unknown verb '%s' (expected 'init')", argv[st.ind]);
    if (argc - st.ind != 2)
        return sx_usage_error(self, "'init' takes exactly one argument, the CA directory");
    const char *dir = argv[st.ind + 1];
    int rc = sysext_ca_init(dir);
    if (rc < 0)
        return sx_fail(self, rc);
    printf("created a development CA in %s (root.cert.pem, intermediate.cert.pem; keys 0600)\n",
           dir);
    return SX_EXIT_OK;
}
