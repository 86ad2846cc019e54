/* sysext-vusb for the device tests: a sensor (bus id 1-1) and a loopback (1-2) on a free
 * 127.0.0.1 port, killed with the test. Include after e2e.h. */
#ifndef SX_TEST_VUSB_FIXTURE_H
#define SX_TEST_VUSB_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#define VUSB_BIN SYSEXT_BINARY_DIR "/drivers/vusb/sysext-vusb"

__attribute__((unused)) static pid_t v_pid = -1;
static int v_port;

__attribute__((unused)) static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

/* sysext-vusb with a sensor (1-1) and a loopback (1-2), plus `inject` (NULL: none). */
__attribute__((unused)) static void vusb_start(const char *inject)
{
    v_port = free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", v_port);
    v_pid = fork();
    cr_assert_geq(v_pid, 0);
    if (v_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        if (inject)
            execl(VUSB_BIN, VUSB_BIN, "--listen", listen, "--device", "sensor", "--device",
                  "loopback", "--inject", inject, (char *)NULL);
        else
            execl(VUSB_BIN, VUSB_BIN, "--listen", listen, "--device", "sensor", "--device",
                  "loopback", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 2500; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)v_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(s);
        if (ok)
            return;
        h_sleep_ms(2);
    }
    cr_assert_fail("sysext-vusb did not come up on port %d", v_port);
}

__attribute__((unused)) static void vusb_stop(void)
{
    if (v_pid > 0) {
        kill(v_pid, SIGKILL);
        waitpid(v_pid, NULL, 0);
    }
    v_pid = -1;
}

#endif
