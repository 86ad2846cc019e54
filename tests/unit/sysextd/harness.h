/* Test helpers: a sysextd in a temp dir on a Unix socket, always stopped. */
#ifndef SXD_TEST_HARNESS_H
#define SXD_TEST_HARNESS_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SYSEXTD_BIN SYSEXT_BINARY_DIR "/sysextd/sysextd"
#define SYSEXTCTL_BIN SYSEXT_BINARY_DIR "/sysextctl/sysextctl"
#define SAMPLE_APP_BIN SYSEXT_BINARY_DIR "/sysextd/sample-app/sysext-sample-app"

__attribute__((unused)) static void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

__attribute__((unused)) static int h_connect(const char *sock)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Start sysextd with `argv` (NULL-terminated, after the program name); stderr to `log`.
 * `env` "NAME=VALUE" or NULL. Waits until the socket accepts. Returns the pid, -1 on failure
 * (or when the daemon exited first, e.g. at a crash point during start-up). */
__attribute__((unused)) static pid_t h_start_daemon(const char *sock, const char *log, const char *env,
                            const char *const *argv)
{
    unlink(sock);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        const char *args[64];
        size_t n = 0;
        args[n++] = SYSEXTD_BIN;
        for (size_t i = 0; argv[i] && n < 62; i++)
            args[n++] = argv[i];
        args[n] = NULL;
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        /* A test worker killed by Criterion (timeout, crash) takes its daemon with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (env)
            putenv((char *)env);
        else
            unsetenv("SYSEXTD_CRASH_AT");
        execv(SYSEXTD_BIN, (char *const *)args);
        _exit(127);
    }
    for (int i = 0; i < 2500; i++) {
        int fd = h_connect(sock);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        h_sleep_ms(2);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

__attribute__((unused)) static int h_stop_daemon(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1500; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        h_sleep_ms(2);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

/* Run a program, capture stdout (up to outlen-1 bytes) into `out`; returns the exit status
 * (or 128+signal). */
__attribute__((unused)) static int h_run(char *out, size_t outlen, const char *const *argv)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    if (out && outlen)
        out[0] = '\0';
    for (;;) {
        char tmp[4096];
        ssize_t n = read(pfd[0], tmp, sizeof(tmp));
        if (n <= 0)
            break;
        if (out && len + 1 < outlen) {
            size_t k = (size_t)n < outlen - 1 - len ? (size_t)n : outlen - 1 - len;
            memcpy(out + len, tmp, k);
            len += k;
            out[len] = '\0';
        }
    }
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif
