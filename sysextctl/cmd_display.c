#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_JSON = 256, O_ENTITLEMENTS, O_REQUIREMENTS };

const struct sx_opt cmd_display_opts[] = {
    {O_JSON, "json", NULL, "print the description as JSON"},
    {O_ENTITLEMENTS, "entitlements", NULL, "include the signed entitlements"},
    {O_REQUIREMENTS, "requirements", NULL, "include the designated requirement as text"},
    {0, NULL, NULL, NULL},
};

int cmd_display(const struct sx_cmd *self, int argc, char **argv)
{
    unsigned flags = 0;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_JSON: flags |= SYSEXT_OUTPUT_JSON; break;
        case O_ENTITLEMENTS: flags |= SYSEXT_DISPLAY_ENTITLEMENTS; break;
        case O_REQUIREMENTS: flags |= SYSEXT_DISPLAY_REQUIREMENTS; break;
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind != argc - 1)
        return sx_usage_error(self, "expected exactly one PATH");
    char *text = NULL;
    int r = sysext_display(argv[st.ind], flags, &text);
    if (r < 0)
        return sx_fail(self, r);
    sx_print(text);
    free(text);
    return SX_EXIT_OK;
}
