/* Inside the sample driver: its log line helper (stderr, or a sink the tests install). */
#ifndef USBSAMPLE_INTERNAL_H
#define USBSAMPLE_INTERNAL_H

typedef void (*usbsample_log_sink)(const char *line, void *context);

/* Route the driver's log lines to `sink` (NULL: back to stderr). Not thread-safe against
 * logging: set it before the driver starts. */
void usbsample_set_log_sink(usbsample_log_sink sink, void *context);
void usbsample_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
