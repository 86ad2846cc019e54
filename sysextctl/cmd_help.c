#include <stdio.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

const struct sx_opt cmd_help_opts[] = {{0, NULL, NULL, NULL}};
const struct sx_opt cmd_version_opts[] = {{0, NULL, NULL, NULL}};

int cmd_help(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    if (st.ind >= argc) {
        unsigned n;
        const struct sx_cmd *all = sx_commands(&n);
        puts("usage: sysextctl [--socket PATH] <command> [options] [args]\n\ncommands:");
        for (unsigned i = 0; i < n; i++)
            printf("  %-12s %s\n", all[i].name, all[i].summary);
        return SX_EXIT_OK;
    }
    const struct sx_cmd *cmd = sx_find_command(argv[st.ind]);
    if (!cmd)
        return sx_usage_error(self, "no such command '%s'", argv[st.ind]);
    sx_usage(cmd, false);
    return SX_EXIT_OK;
}

int cmd_version(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1)
        if (c == -2)
            return SX_EXIT_ERROR;
    printf("sysextctl %s (libsysext %s)\n", SYSEXT_VERSION, sysext_version());
    return SX_EXIT_OK;
}
