/* sysext-gen-bundle: make a deterministic synthetic bundle for benchmarks.
 *
 *   sysext-gen-bundle --kind app|dext|sysext --files N --bytes M --depth D --symlinks K
 *                     --seed S [--id ID] OUT
 *
 * The same arguments give the same tree and bytes (modes are fixed: umask is set to 022). */
#include "util/common.h"

#include <getopt.h>
#include <sys/stat.h>

#include "bench/gen.h"

static void usage(FILE *f)
{
    fputs("usage: sysext-gen-bundle --kind app|dext|sysext --files N --bytes M --depth D\n"
          "                         --symlinks K --seed S [--id ID] OUT\n"
          "  N payload files totalling exactly M bytes (suffixes k, m, g: KiB, MiB, GiB) in\n"
          "  D levels of directories, K relative symlinks to them, a valid Info.plist and an\n"
          "  executable. Deterministic: the same arguments give the same bytes.\n",
          f);
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    else if (*end == 'g' || *end == 'G')
        shift = 30, end++;
    if (errno || *end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"kind", required_argument, NULL, 'k'},  {"files", required_argument, NULL, 'n'},
        {"bytes", required_argument, NULL, 'b'}, {"depth", required_argument, NULL, 'd'},
        {"symlinks", required_argument, NULL, 'l'}, {"seed", required_argument, NULL, 's'},
        {"id", required_argument, NULL, 'i'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sx_gen_opts o = {.kind = SX_GEN_DEXT, .files = 100, .bytes = 1u << 20, .depth = 2};
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (sx_gen_kind_parse(optarg, &o.kind) < 0) {
                fprintf(stderr, "sysext-gen-bundle: %s\n", sx_errmsg());
                return 2;
            }
            break;
        case 'n':
        case 'b':
        case 'd':
        case 'l':
        case 's':
            if (parse_size(optarg, &v) < 0 || (c == 'd' && v > 64)) {
                fprintf(stderr, "sysext-gen-bundle: bad number '%s'\n", optarg);
                return 2;
            }
            if (c == 'n')
                o.files = v;
            else if (c == 'b')
                o.bytes = v;
            else if (c == 'd')
                o.depth = (unsigned)v;
            else if (c == 'l')
                o.symlinks = v;
            else
                o.seed = v;
            break;
        case 'i':
            o.id = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    if (o.files > (1u << 24)) {
        fprintf(stderr, "sysext-gen-bundle: at most %u files\n", 1u << 24);
        return 2;
    }
    umask(022);
    int r = sx_gen_bundle(&o, argv[optind]);
    if (r < 0) {
        fprintf(stderr, "sysext-gen-bundle: %s\n", sx_errmsg());
        return 2;
    }
    return 0;
}
