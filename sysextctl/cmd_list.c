/* sysextctl list [--json]: the records sysextd holds, in systemextensionsctl's format. */
#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { OPT_JSON = 1000 };
const struct sx_opt cmd_list_opts[] = {
    {OPT_JSON, "json", NULL, "print JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_list(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    unsigned flags = 0;
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        if (c == -2)
            return SX_EXIT_ERROR;
        if (c == OPT_JSON)
            flags |= SYSEXT_OUTPUT_JSON;
    }
    if (st.ind != argc)
        return sx_usage_error(self, "unexpected argument '%s'", argv[st.ind]);
    char *text = NULL;
    int rc = sysext_admin_list(sx_global_socket, flags, &text);
    if (rc < 0)
        return sx_fail(self, rc);
    sx_print(text);
    free(text);
    return SX_EXIT_OK;
}
