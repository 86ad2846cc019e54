#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_IDENTITY = 256, O_PASSWORD, O_ENTITLEMENTS, O_ADHOC, O_INCREMENTAL, O_CHAIN, O_THREADS,
       O_CACHE_DIR };

const struct sx_opt cmd_sign_opts[] = {
    {O_IDENTITY, "identity", "FILE", "PKCS#12 identity, or a PEM key (with --chain or the chain in the same file)"},
    {O_CHAIN, "chain", "FILE", "PEM certificate chain (leaf first) for a PEM key"},
    {O_PASSWORD, "password-file", "FILE", "file whose first line is the identity's password"},
    {O_ENTITLEMENTS, "entitlements", "FILE", "entitlements plist to sign into the code"},
    {O_ADHOC, "adhoc", NULL, "sign without an identity (no CMS, flags adhoc)"},
    {O_INCREMENTAL, "incremental", NULL, "rehash only files whose path, size, mtime or inode changed"},
    {O_CACHE_DIR, "cache-dir", "DIR", "where --incremental keeps its cache (default: XDG cache dir)"},
    {O_THREADS, "threads", "N", "hashing threads (default: all cores)"},
    {0, NULL, NULL, NULL},
};

int cmd_sign(const struct sx_cmd *self, int argc, char **argv)
{
    sysext_sign_options o = SYSEXT_SIGN_OPTIONS_INIT;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_IDENTITY: o.identity = st.arg; break;
        case O_CHAIN: o.chain = st.arg; break;
        case O_PASSWORD: o.password_file = st.arg; break;
        case O_ENTITLEMENTS: o.entitlements = st.arg; break;
        case O_ADHOC: o.adhoc = 1; break;
        case O_INCREMENTAL: o.incremental = 1; break;
        case O_CACHE_DIR: o.cache_dir = st.arg; break;
        case O_THREADS: {
            char *end;
            unsigned long n = strtoul(st.arg, &end, 10);
            if (*end || n > 1024)
                return sx_usage_error(self, "--threads: expected a number up to 1024, got '%s'", st.arg);
            o.threads = (unsigned)n;
            break;
        }
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind != argc - 1)
        return sx_usage_error(self, "expected exactly one BUNDLE");
    if (!o.adhoc == !o.identity)
        return sx_usage_error(self, "give exactly one of --identity FILE or --adhoc");
    int r = sysext_sign(argv[st.ind], &o);
    if (r < 0)
        return sx_fail(self, r);
    return SX_EXIT_OK;
}
