/* sysextctl gc */
#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

const struct sx_opt cmd_gc_opts[] = {{0, NULL, NULL, NULL}};

int cmd_gc(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    if (st.ind != argc)
        return sx_usage_error(self, "unexpected argument '%s'", argv[st.ind]);
    char *text = NULL;
    int rc = sysext_admin_gc(sx_global_socket, &text);
    if (rc < 0)
        return sx_fail(self, rc);
    fputs(text ? text : "", stdout);
    free(text);
    return SX_EXIT_OK;
}
