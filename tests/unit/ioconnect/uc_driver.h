/* A test driver with a user client, run in a forked child process that serves one connection
 * (shared by tests/unit/ioconnect and bench/bench_userclient.c).
 *
 * Selectors of TestUC (dispatch-table checks as in DriverKit):
 *   0 add:      2 scalars in, 1 scalar out (the sum); no struct, no completion
 *   1 reverse:  any struct in, struct out of any size: the input reversed
 *   2 async:    completion required, 1 scalar in: completes with (in * 2, 7), kIOReturnSuccess
 *   3 count:    0 in, 1 out: how many times selector 0's function ran
 *   4 exit:     the driver process exits at once (_exit(0)) inside the call
 *   5 peek:     0 in, 1 out: the u64 at offset 64 of the shared memory of type 0
 *   6 hold:     completion required: the driver keeps it and completes it only in Stop, after
 *               the app has closed the connection
 *   7 echo:     1 scalar in, 1 out: the same value (the benchmark's round trip)
 * CopyClientMemoryForType(0): one 4096-byte buffer starting "hello from driver"; other types
 * kIOReturnBadArgument. */
#ifndef UC_DRIVER_H
#define UC_DRIVER_H

#include <sys/types.h>

/* Fork the driver. *app_fd: the app's end of the connection. Returns the child's pid or -1.
 * The child exits 0 once the app closed the connection and the user client was stopped
 * (3 if that did not happen within 10 s, 2 on setup failure). */
pid_t uc_driver_spawn(int *app_fd);

#endif
