/* Shared by the driver benchmarks: the named baseline "fork+exec of the driver executable until
 * it answers one message", i.e. what starting a driver costs without the host, its sandbox and
 * the daemon. */
#ifndef SX_BENCH_DRV_BASELINE_H
#define SX_BENCH_DRV_BASELINE_H

/* fork + execve `exe` (empty environment, no sandbox) with fds 3/4 a SOCK_SEQPACKET socketpair
 * each, as the host hands them; send one Create of an IOUserResources provider and wait for
 * its Reply; *out_us = the time from before the socketpairs to the answer. Then close the
 * sockets (the driver exits) and reap it (not timed). 0, or -1 with a message on stderr. */
int sx_bench_fork_exec_once(const char *exe, double *out_us);

#endif
