/* sysextctl uninstall TEAM_ID BUNDLE_ID */
#include <stdio.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

const struct sx_opt cmd_uninstall_opts[] = {{0, NULL, NULL, NULL}};

int cmd_uninstall(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    if (argc - st.ind != 2)
        return sx_usage_error(self, "expected TEAM_ID BUNDLE_ID");
    int rc = sysext_admin_uninstall(sx_global_socket, argv[st.ind], argv[st.ind + 1]);
    if (rc < 0)
        return sx_fail(self, rc);
    printf("uninstalled %s %s\n", argv[st.ind], argv[st.ind + 1]);
    return SX_EXIT_OK;
}
