/* sysextctl unpack X.zip -C DIR */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { OPT_MAX_SIZE = 256, OPT_MAX_ENTRIES, OPT_MAX_RATIO };

const struct sx_opt cmd_unpack_opts[] = {
    {'C', "directory", "DIR", "the directory to unpack into (created if missing)"},
    {OPT_MAX_SIZE, "max-size", "BYTES", "refuse more uncompressed bytes in all (default 4 GiB)"},
    {OPT_MAX_ENTRIES, "max-entries", "N", "refuse more entries (default 100000)"},
    {OPT_MAX_RATIO, "max-ratio", "R", "refuse a compression ratio above R:1 (default 200)"},
    {0, NULL, NULL, NULL},
};

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

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

int cmd_unpack(const struct sx_cmd *self, int argc, char **argv)
{
    struct sx_optstate st = {0};
    const char *dir = NULL;
    sysext_unpack_limits lim = {0};
    uint64_t v;
    const char *pos[1];
    int npos = 0, c;
    while ((c = next_opt(self, &st, argc, argv, pos, &npos, 1)) != -1) {
        switch (c) {
        case 'C':
            dir = st.arg;
            break;
        case OPT_MAX_SIZE:
            if (parse_u64(st.arg, UINT64_MAX, &lim.max_total_bytes) < 0)
                return sx_usage_error(self, "--max-size: expected a positive byte count, got '%s'",
                                      st.arg);
            break;
        case OPT_MAX_ENTRIES:
            if (parse_u64(st.arg, UINT64_MAX, &lim.max_entries) < 0)
                return sx_usage_error(self, "--max-entries: expected a positive count, got '%s'",
                                      st.arg);
            break;
        case OPT_MAX_RATIO:
            if (parse_u64(st.arg, UINT32_MAX, &v) < 0)
                return sx_usage_error(self, "--max-ratio: expected a positive ratio, got '%s'",
                                      st.arg);
            lim.max_ratio = (uint32_t)v;
            break;
        default:
            return SX_EXIT_ERROR;
        }
    }
    if (npos == 0)
        return sx_usage_error(self, "missing X.zip");
    if (!dir)
        return sx_usage_error(self, "missing -C DIR");
    int r = sysext_unpack(pos[0], dir, &lim);
    return r < 0 ? sx_fail(self, r) : SX_EXIT_OK;
}
