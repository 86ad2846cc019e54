/* Deterministic synthetic bundles for benchmarks: the same options give the same tree and
 * bytes on every machine. */
#ifndef SX_BENCH_GEN_H
#define SX_BENCH_GEN_H

#include <stdint.h>

typedef enum sx_gen_kind { SX_GEN_APP, SX_GEN_DEXT, SX_GEN_SYSEXT } sx_gen_kind;

typedef struct sx_gen_opts {
    sx_gen_kind kind;
    uint64_t files;    /* payload files, besides Info.plist and the executable */
    uint64_t bytes;    /* their total size, exactly */
    unsigned depth;    /* levels of directories below the resources folder */
    uint64_t symlinks; /* relative symlinks to payload files, inside the bundle */
    uint64_t seed;
    const char *id;    /* CFBundleIdentifier; NULL: derived from the bundle's name */
} sx_gen_opts;

/* Make the bundle at `out`, which must not exist (built in a temp dir beside it, then renamed).
 * Layout by kind: .app/.systemextension: Contents/{Info.plist, MacOS/<exe>, Resources/<payload>};
 * .dext: {Info.plist, <exe>, Resources/<payload>}. Returns 0 or SYSEXT_E*. */
int sx_gen_bundle(const sx_gen_opts *o, const char *out);

int sx_gen_kind_parse(const char *s, sx_gen_kind *out);

#endif
