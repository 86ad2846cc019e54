/* sysextctl approve BUNDLE_ID: an administrator approves a waiting extension. */
#include <stdio.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

const struct sx_opt cmd_approve_opts[] = {{0, NULL, NULL, NULL}};

int cmd_approve(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    if (argc - st.ind != 1)
        return sx_usage_error(self, "expected one BUNDLE_ID");
    int rc = sysext_admin_approve(sx_global_socket, argv[st.ind]);
    if (rc < 0)
        return sx_fail(self, rc);
    printf("approved %s\n", argv[st.ind]);
    return SX_EXIT_OK;
}
