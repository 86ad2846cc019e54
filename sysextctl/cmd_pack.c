/* sysextctl pack BUNDLE -o X.zip */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { OPT_STORE = 256 };

const struct sx_opt cmd_pack_opts[] = {
    {'o', "output", "X.zip", "the zip file to write (replaced atomically)"},
    {OPT_STORE, "store", NULL, "store files uncompressed instead of deflating them"},
    {0, NULL, NULL, NULL},
};

/* Options may follow the positional arguments ("BUNDLE -o X.zip"): sx_opt_next() stops at the
 * first positional, so collect it and resume after it. Everything after "--" is positional. */
static int next_opt(const struct sx_cmd *self, struct sx_optstate *st, int argc, char **argv,
                    const char **pos, int *npos, int maxpos)
{
    for (;;) {
        int c = sx_opt_next(self, st, argc, argv);
        if (c != -1)
            return c;
        bool dashdash = st->ind > 1 && !strcmp(argv[st->ind - 1], "--");
        while (st->ind < argc) {
            if (*npos >= maxpos)
                return sx_usage_error(self, "unexpected argument '%s'", argv[st->ind]), -2;
            pos[(*npos)++] = argv[st->ind++];
            if (!dashdash)
                break;
        }
        if (st->ind >= argc || dashdash)
            return -1;
        optind = st->ind;
    }
}

int cmd_pack(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    const char *output = NULL;
    unsigned flags = 0;
    const char *pos[1];
    int npos = 0, c;
    while ((c = next_opt(self, &st, argc, argv, pos, &npos, 1)) != -1) {
        switch (c) {
        case 'o':
            output = st.arg;
            break;
        case OPT_STORE:
            flags |= SYSEXT_PACK_STORE;
            break;
        default:
            return SX_EXIT_ERROR;
        }
    }
    if (npos == 0)
        return sx_usage_error(self, "missing BUNDLE");
    if (!output)
        return sx_usage_error(self, "missing -o X.zip");
    int r = sysext_pack(pos[0], output, flags);
    return r < 0 ? sx_fail(self, r) : SX_EXIT_OK;
}
