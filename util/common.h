/* Shared internal basics: every .c in the project includes this first.
 * Never installed; the public API lives in libsysext/include/sysext/. */
#ifndef SX_COMMON_H
#define SX_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysext/errors.h"
#include "util/error.h"

/* Banned: unbounded copies and formatting. Use sx_buf, snprintf with a truncation check,
 * or the sx_str helpers instead. */
#pragma GCC poison strcpy strcat sprintf vsprintf gets stpcpy

#define SX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SX_UNUSED(x) ((void)(x))

/* Checked size arithmetic: true when the result overflowed. */
#define SX_ADD_OVERFLOW(a, b, out) __builtin_add_overflow((a), (b), (out))
#define SX_MUL_OVERFLOW(a, b, out) __builtin_mul_overflow((a), (b), (out))

static inline void sx_freep(void *p)
{
    free(*(void **)p);
}
#define _sx_cleanup_free_ __attribute__((cleanup(sx_freep)))

/* Move ownership out of a cleanup-scoped variable. */
#define SX_TAKE_PTR(p)                                                                             \
    ({                                                                                             \
        __typeof__(p) _sx_tmp = (p);                                                               \
        (p) = NULL;                                                                                \
        _sx_tmp;                                                                                   \
    })

/* qsort with no work to do: glibc declares the base non-null even for zero elements, and an
 * empty folder or seal hands us a NULL array. */
static inline void sx_qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

/* A forbidden NULL from a public caller is reported, never dereferenced. */
#define SX_ASSERT_ARG(x)                                                                           \
    do {                                                                                           \
        if (!(x))                                                                                  \
            return sx_err(SYSEXT_EINVAL, "%s: invalid argument '%s'", __func__, #x);               \
    } while (0)

#endif
