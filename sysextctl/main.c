/* sysextctl: one CLI, git-style subcommands, each a thin call into libsysext. */
#include <stdio.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/cli.h"
#include "sysextctl/commands.h"

static const struct sx_cmd commands[] = {
#define SX_COMMAND(name, fn, args, summary, opts) {name, fn, args, summary, opts},
#include "sysextctl/commands.def"
#undef SX_COMMAND
};

const struct sx_cmd *sx_commands(unsigned *count)
{
    *count = (unsigned)(sizeof(commands) / sizeof(commands[0]));
    return commands;
}

const struct sx_cmd *sx_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fputs("usage: sysextctl [--socket PATH] <command> [options] [args]\n\ncommands:\n", f);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'sysextctl <command> --help' describes one command.\n"
          "exit codes: 0 ok, 1 the thing checked is invalid, 2 usage / I/O / internal error\n",
          f);
}

int main(int argc, char **argv)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
            sx_global_socket = argv[i + 1];
            i += 2;
        } else if (!strncmp(argv[i], "--socket=", 9)) {
            sx_global_socket = argv[i] + 9;
            i++;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return SX_EXIT_OK;
        } else if (!strcmp(argv[i], "--generate") && i + 1 < argc) {
            return sx_generate(argv[i + 1], stdout); /* hidden: man page and completions */
        } else if (!strcmp(argv[i], "--version")) {
            printf("sysextctl %s\n", sysext_version());
            return SX_EXIT_OK;
        } else {
            fprintf(stderr, "sysextctl: unknown global option '%s'\n", argv[i]);
            usage(stderr);
            return SX_EXIT_ERROR;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return SX_EXIT_ERROR;
    }
    const struct sx_cmd *cmd = sx_find_command(argv[i]);
    if (!cmd) {
        fprintf(stderr, "sysextctl: '%s' is not a sysextctl command (see 'sysextctl --help')\n",
                argv[i]);
        return SX_EXIT_ERROR;
    }
    return cmd->run(cmd, argc - i, argv + i);
}
