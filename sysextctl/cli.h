/* The sysextctl command table and the helpers every subcommand uses.
 * One table drives dispatch, --help, the man page and the shell completions. */
#ifndef SYSEXTCTL_CLI_H
#define SYSEXTCTL_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* Exit codes, the same for every subcommand. */
enum {
    SX_EXIT_OK = 0,      /* ok / valid / accepted */
    SX_EXIT_INVALID = 1, /* the thing checked is invalid or was rejected */
    SX_EXIT_ERROR = 2,   /* usage, I/O or internal error */
};

struct sx_opt {
    int id;               /* what sx_opt_next() returns for it; a letter if it has a short form */
    const char *name;     /* long name, without "--" */
    const char *arg;      /* argument name for help ("FILE"), NULL for a flag */
    const char *help;
};

struct sx_cmd {
    const char *name;
    int (*run)(const struct sx_cmd *self, int argc, char **argv);
    const char *args;     /* positional arguments for the usage line, e.g. "BUNDLE" */
    const char *summary;
    const struct sx_opt *opts; /* terminated by an entry with name NULL */
};

struct sx_optstate {
    int ind;          /* index of the next argv element; positional args start here when done */
    const char *arg;  /* the current option's argument */
};

/* Global options given before the subcommand. */
extern const char *sx_global_socket;

const struct sx_cmd *sx_commands(unsigned *count);
const struct sx_cmd *sx_find_command(const char *name);

/* Walk the options of argv (argv[0] is the subcommand). Returns the option id, -1 when the
 * options end (st->ind then points at the first positional), or -2 after printing a usage
 * error. --help is handled here: prints usage and exits 0. */
int sx_opt_next(const struct sx_cmd *cmd, struct sx_optstate *st, int argc, char **argv);
void sx_usage(const struct sx_cmd *cmd, bool to_stderr);
/* Print "sysextctl CMD: message" for a usage error; returns SX_EXIT_ERROR. */
int sx_usage_error(const struct sx_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print the library's last error for a failed call and map the code to an exit code. */
int sx_fail(const struct sx_cmd *cmd, int rc);
/* The exit code for a library return code, with no printing. */
int sx_exit_code(int rc);
/* Print `text` to stdout, adding a final newline if it lacks one. */
void sx_print(const char *text);
/* Hidden `sysextctl --generate man|bash|zsh` (gen.c): write the sysextctl(1) page or a shell
 * completion script, generated from the command table, to `out`. Returns an exit code. */
int sx_generate(const char *what, FILE *out);

#endif
