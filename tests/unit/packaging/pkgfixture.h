/* Helpers of the packaging tests: run a shell command, read a file, a scratch dir. */
#ifndef SX_TEST_PKGFIXTURE_H
#define SX_TEST_PKGFIXTURE_H

#include <stdbool.h>
#include <stddef.h>

/* The suite's scratch directory (made by pkg_setup, removed by pkg_teardown). */
extern char pkg_tmp[];
void pkg_setup(void);
void pkg_teardown(void);

/* Run `sh -c CMD` (printf-style) with stdout+stderr to pkg_tmp/cmd.log; returns the exit status,
 * or -1 if it did not exit normally. On failure the log is printed to stderr. */
int pkg_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run and capture stdout+stderr as a string (caller frees); *status gets the exit status. */
char *pkg_capture(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A whole file as a NUL-terminated string, or NULL (caller frees). */
char *pkg_read(const char *path);
bool pkg_write(const char *path, const char *text);
bool pkg_exists(const char *path);

#endif
