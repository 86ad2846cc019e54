/* sysextctl developer [on|off] */
#include <stdio.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

const struct sx_opt cmd_developer_opts[] = {{0, NULL, NULL, NULL}};

int cmd_developer(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    int mode = -1;
    if (argc - st.ind > 1)
        return sx_usage_error(self, "expected at most one argument, on or off");
    if (argc - st.ind == 1) {
        if (!strcmp(argv[st.ind], "on"))
            mode = 1;
        else if (!strcmp(argv[st.ind], "off"))
            mode = 0;
        else
            return sx_usage_error(self, "'%s' is neither on nor off", argv[st.ind]);
    }
    int enabled = 0;
    int rc = sysext_admin_developer(sx_global_socket, mode, &enabled);
    if (rc < 0)
        return sx_fail(self, rc);
    printf("developer mode %s\n", enabled ? "on" : "off");
    return SX_EXIT_OK;
}
