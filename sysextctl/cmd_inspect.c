#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { OPT_JSON = 256 };

const struct sx_opt cmd_inspect_opts[] = {
    {OPT_JSON, "json", NULL, "print the description as JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_inspect(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    unsigned flags = 0;
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        if (c == OPT_JSON)
            flags |= SYSEXT_OUTPUT_JSON;
        else
            return SX_EXIT_ERROR;
    }
    if (argc - st.ind != 1)
        return sx_usage_error(self, "expected exactly one BUNDLE");
    char *text = NULL;
    int r = sysext_bundle_inspect(argv[st.ind], flags, &text);
    if (r < 0)
        return sx_fail(self, r);
    sx_print(text);
    free(text);
    return SX_EXIT_OK;
}
