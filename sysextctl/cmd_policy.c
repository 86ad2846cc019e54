/* sysextctl policy show [--json] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { OPT_JSON = 1000 };
const struct sx_opt cmd_policy_opts[] = {
    {OPT_JSON, "json", NULL, "print JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_policy(const struct sx_cmd *self, int argc, char **argv)
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
    if (argc - st.ind < 1 || strcmp(argv[st.ind], "show"))
        return sx_usage_error(self, "expected 'show'");
    /* Options may also follow "show". */
    for (int i = st.ind + 1; i < argc; i++) {
        if (strcmp(argv[i], "--json"))
            return sx_usage_error(self, "unexpected argument '%s'", argv[i]);
        flags |= SYSEXT_OUTPUT_JSON;
    }
    char *text = NULL;
    int rc = sysext_admin_policy_show(sx_global_socket, flags, &text);
    if (rc < 0)
        return sx_fail(self, rc);
    sx_print(text);
    free(text);
    return SX_EXIT_OK;
}
