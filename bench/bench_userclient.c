/* User-client call round trip between two processes: sysext_ioconnect_call_method (app) ->
 * the runtime's connection thread -> IOUserClient::ExternalMethod on the user client's queue
 * (dispatch-table checks) -> reply, one scalar in and one out (selector 7 of the test driver in
 * tests/unit/ioconnect/uc_driver.c) against the named baseline, a raw SOCK_SEQPACKET socketpair
 * ping-pong with a forked echo process of the same message sizes (136-byte call, 72-byte reply).
 * Ratio = user-client round trip time / raw round trip time; the goal is <= 1.3x.
 *
 *   bench_userclient [calls] [rounds]     (defaults 100000 5; best round of each)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sysext/errors.h"
#include "sysext/ioconnect.h"
#include "uc_driver.h"

#define CALL_BYTES 136
#define REPLY_BYTES 72

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Baseline: ns per round trip of a raw ping-pong, or 0 on failure. */
static double raw_round(long n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        close(sv[0]);
        uint8_t buf[CALL_BYTES], out[REPLY_BYTES];
        memset(out, 0x5a, sizeof(out));
        for (;;) {
            ssize_t k = recv(sv[1], buf, sizeof(buf), 0);
            if (k <= 0)
                _exit(0);
            memcpy(out + 48, buf + 48, 8); /* "work": echo a value back */
            if (send(sv[1], out, sizeof(out), MSG_NOSIGNAL) != (ssize_t)sizeof(out))
                _exit(1);
        }
    }
    close(sv[1]);
    uint8_t msg[CALL_BYTES], rep[REPLY_BYTES];
    memset(msg, 0xa5, sizeof(msg));
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        memcpy(msg + 48, &i, sizeof(i));
        if (send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg) ||
            recv(sv[0], rep, sizeof(rep), 0) != (ssize_t)sizeof(rep) || memcmp(rep + 48, &i, sizeof(i))) {
            close(sv[0]);
            waitpid(pid, NULL, 0);
            return 0;
        }
    }
    uint64_t t1 = now_ns();
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return (double)(t1 - t0) / (double)n;
}

/* Measured: ns per user-client call round trip, or 0 on failure. */
static double uc_round(long n)
{
    int fd = -1;
    pid_t pid = uc_driver_spawn(&fd);
    if (pid < 0)
        return 0;
    sysext_ioconnect *c = NULL;
    if (sysext_ioconnect_open_fd(fd, &c) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 0;
    }
    double r = 0;
    uint64_t t0 = now_ns();
    long i;
    for (i = 0; i < n; i++) {
        uint64_t in = (uint64_t)i, out = 0;
        uint32_t nout = 1;
        if (sysext_ioconnect_call_method(c, 7, &in, 1, NULL, 0, &out, &nout, NULL, NULL) < 0 || out != in) {
            fprintf(stderr, "call %ld failed: %s\n", i, sysext_last_error());
            break;
        }
    }
    uint64_t t1 = now_ns();
    if (i == n)
        r = (double)(t1 - t0) / (double)n;
    sysext_ioconnect_close(c);
    int st = 0;
    waitpid(pid, &st, 0);
    return r;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || rounds <= 0) {
        fprintf(stderr, "usage: bench_userclient [calls] [rounds]\n");
        return 2;
    }
    double best_raw = 0, best_uc = 0;
    for (int r = 0; r < rounds; r++) {
        double a = raw_round(n), b = uc_round(n);
        if (a <= 0 || b <= 0) {
            fprintf(stderr, "bench_userclient: round %d failed\n", r);
            return 1;
        }
        printf("round %d: raw %.2f us, user client %.2f us (%.2fx)\n", r, a / 1000, b / 1000, b / a);
        if (best_raw == 0 || a < best_raw)
            best_raw = a;
        if (best_uc == 0 || b < best_uc)
            best_uc = b;
    }
    printf("raw SOCK_SEQPACKET ping-pong (baseline): %.2f us per round trip (%.0f/s)\n", best_raw / 1000,
           1e9 / best_raw);
    printf("user-client call, 1 scalar in/out:        %.2f us per round trip (%.0f/s)\n", best_uc / 1000,
           1e9 / best_uc);
    printf("ratio: %.2fx (goal <= 1.3x)\n", best_uc / best_raw);
    return 0;
}
