/* The thread-local last-error message behind sysext_last_error(). */
#ifndef SX_ERROR_H
#define SX_ERROR_H

#include <stdarg.h>

#define SX_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Set the message and return `code`, so a failure is one line: return sx_err(...). */
int sx_err(int code, const char *fmt, ...) SX_PRINTF(2, 3);
int sx_verr(int code, const char *fmt, va_list ap) SX_PRINTF(2, 0);
/* Same, with ": <strerror(errnum)>" appended. */
int sx_err_errno(int code, int errnum, const char *fmt, ...) SX_PRINTF(3, 4);
/* Put context (a file, a key path) in front of the current message: "ctx: old message". */
int sx_err_prefix(int code, const char *fmt, ...) SX_PRINTF(2, 3);
/* Map an errno to the closest SYSEXT_E* code. */
int sx_errno_code(int errnum);
const char *sx_errmsg(void);
void sx_err_clear(void);

#endif
