/* Every subcommand's entry point and option table. */
#ifndef SYSEXTCTL_COMMANDS_H
#define SYSEXTCTL_COMMANDS_H

#include "sysextctl/cli.h"

#define SX_COMMAND(name, fn, args, summary, opts)                                                \
    int fn(const struct sx_cmd *self, int argc, char **argv);                                  \
    extern const struct sx_opt opts[];
#include "sysextctl/commands.def"
#undef SX_COMMAND

#endif
