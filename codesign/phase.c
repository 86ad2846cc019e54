/* Phase timing of a sign for performance work: with SYSEXT_SIGN_TIMING set in the
 * environment, each sx_cs_phase call prints to stderr the wall time since the previous one
 * on this thread. Costs one getenv per process otherwise. */
#include "util/common.h"
#include "codesign/phase.h"

#include <time.h>

static _Thread_local double last_s;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int enabled(void)
{
    static int on = -1; /* racy but idempotent: every thread computes the same value */
    int v = __atomic_load_n(&on, __ATOMIC_RELAXED);
    if (v < 0) {
        v = getenv("SYSEXT_SIGN_TIMING") != NULL;
        __atomic_store_n(&on, v, __ATOMIC_RELAXED);
    }
    return v;
}

void sx_cs_phase(const char *name)
{
    if (!enabled())
        return;
    double t = now_s();
    if (name && last_s > 0)
        fprintf(stderr, "sign timing: %-28s %7.2f ms\n", name, (t - last_s) * 1e3);
    last_s = t;
}
