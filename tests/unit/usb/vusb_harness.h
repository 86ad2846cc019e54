/* Starts sysext-vusb on an ephemeral 127.0.0.1 port for a test and always stops it. */
#ifndef SX_TEST_VUSB_HARNESS_H
#define SX_TEST_VUSB_HARNESS_H

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "usb/usbip_client.h"

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"

static pid_t vusb_pid = -1;
static uint16_t vusb_port;

/* argv without the program name, NULL-terminated; --listen is added. */
static void vusb_start(const char *const *args)
{
    const char *argv[32] = {VUSB_BIN, "--listen", "127.0.0.1:0"};
    size_t n = 3;
    for (; args && *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    vusb_pid = fork();
    cr_assert_geq(vusb_pid, 0);
    if (vusb_pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(VUSB_BIN, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    char line[128];
    size_t len = 0;
    while (len < sizeof(line) - 1) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        cr_assert_eq(poll(&pf, 1, 5000), 1, "sysext-vusb did not print its address");
        ssize_t k = read(p[0], line + len, 1);
        cr_assert_eq(k, 1, "sysext-vusb exited before listening");
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    close(p[0]);
    unsigned port = 0;
    cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%u", &port), 1, "got '%s'", line);
    cr_assert(port > 0 && port < 65536);
    vusb_port = (uint16_t)port;
}

/* SIGTERM, then wait; returns the wait status (-1 if it had to be killed). */
static int vusb_stop(void)
{
    if (vusb_pid <= 0)
        return 0;
    int st = 0;
    kill(vusb_pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        pid_t w = waitpid(vusb_pid, &st, WNOHANG);
        if (w == vusb_pid) {
            vusb_pid = -1;
            return st;
        }
        usleep(10000);
    }
    kill(vusb_pid, SIGKILL);
    waitpid(vusb_pid, &st, 0);
    vusb_pid = -1;
    return -1;
}

static uint64_t vusb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the client's loop until *flag becomes true (or the client ends, or the timeout). */
static void run_until(sx_usbip_client *c, const volatile bool *flag, int timeout_ms)
{
    uint64_t end = vusb_now_ms() + (uint64_t)timeout_ms;
    while (!*flag && !sx_usbip_client_gone(c) && vusb_now_ms() < end)
        sx_usbip_client_run(c, 20);
}

static void run_for(sx_usbip_client *c, int ms)
{
    uint64_t end = vusb_now_ms() + (uint64_t)ms;
    while (!sx_usbip_client_gone(c) && vusb_now_ms() < end)
        sx_usbip_client_run(c, 10);
}

static sx_usbip_client *vusb_import(const char *busid)
{
    sx_usbip_client *c = NULL;
    int r = sx_usbip_import(&c, "127.0.0.1", vusb_port, busid, 3000);
    cr_assert_eq(r, 0, "import %s: %s", busid, sx_errmsg());
    return c;
}

#endif
