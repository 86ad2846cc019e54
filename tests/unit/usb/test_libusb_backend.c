/* The libusb backend as far as a machine without USB allows: init, enumeration (zero devices
 * here), hot-plug registration (or NOT_SUPPORTED handled), the driver-side context without
 * discovery, and the fd hand-over path up to libusb_wrap_sys_device, which must refuse
 * non-USB fds with a precise error and never crash or close the caller's fd. */
#include "util/common.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usb/libusb_backend.h"
#include "util/error.h"

TestSuite(usb_libusb, .timeout = 30);

static bool have_usbfs(void)
{
    struct stat st;
    return stat("/dev/bus/usb", &st) == 0;
}

Test(usb_libusb, init_and_enumeration)
{
    sx_libusb *l = NULL;
    cr_assert_eq(sx_libusb_new(&l, 0), 0, "%s", sx_errmsg());
    cr_assert_geq(sx_libusb_fd(l), 0, "one pollable fd for libusb's event fds");
    sx_libusb_devinfo *devs = NULL;
    size_t n = 99;
    cr_assert_eq(sx_libusb_enumerate(l, &devs, &n), 0, "%s", sx_errmsg());
    if (!have_usbfs())
        cr_assert_eq(n, 0, "no usbfs, no devices");
    for (size_t i = 0; i < n; i++) {
        cr_assert(devs[i].bus > 0);
        cr_assert(strncmp(devs[i].path, "/dev/bus/usb/", 13) == 0, "%s", devs[i].path);
    }
    free(devs);
    cr_assert_eq(sx_libusb_handle_events(l), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_libusb_next_timeout_ms(l), -1, "Linux libusb handles timeouts with a timerfd");
    cr_assert_eq(sx_libusb_new(NULL, 0), SYSEXT_EINVAL);
    sx_libusb *bad = NULL;
    cr_assert_eq(sx_libusb_new(&bad, 0x80), SYSEXT_EINVAL);
    cr_assert_null(bad);
    sx_libusb_free(l);
    sx_libusb_free(NULL);
}

static int arrivals;

static void on_hotplug(sx_libusb *l, bool arrived, const sx_libusb_devinfo *dev, void *ud)
{
    (void)l;
    (void)dev;
    (void)ud;
    if (arrived)
        arrivals++;
}

Test(usb_libusb, hotplug_registration_or_not_supported)
{
    sx_libusb *l = NULL;
    cr_assert_eq(sx_libusb_new(&l, 0), 0, "%s", sx_errmsg());
    int r = sx_libusb_hotplug_register(l, on_hotplug, NULL);
    if (r == SYSEXT_EUNSUPPORTED) {
        cr_assert(strstr(sx_errmsg(), "hot-plug"), "%s", sx_errmsg());
    } else {
        cr_assert_eq(r, 0, "%s", sx_errmsg());
        cr_assert_eq(sx_libusb_hotplug_register(l, on_hotplug, NULL), SYSEXT_EBUSY);
        struct pollfd pf = {.fd = sx_libusb_fd(l), .events = POLLIN};
        (void)poll(&pf, 1, 50);
        cr_assert_eq(sx_libusb_handle_events(l), 0, "%s", sx_errmsg());
        sx_libusb_devinfo *devs = NULL;
        size_t n = 0;
        cr_assert_eq(sx_libusb_enumerate(l, &devs, &n), 0);
        free(devs);
        cr_assert_eq((size_t)arrivals, n, "ENUMERATE reports the present devices as arrivals");
    }
    cr_assert_eq(sx_libusb_hotplug_register(l, NULL, NULL), SYSEXT_EINVAL);
    sx_libusb_free(l); /* deregisters */
}

Test(usb_libusb, driver_context_has_no_discovery)
{
    sx_libusb *l = NULL;
    cr_assert_eq(sx_libusb_new(&l, SX_LIBUSB_NO_DISCOVERY), 0, "%s", sx_errmsg());
    sx_libusb_devinfo *devs = NULL;
    size_t n = 0;
    cr_assert_eq(sx_libusb_enumerate(l, &devs, &n), SYSEXT_EUNSUPPORTED);
    cr_assert(strstr(sx_errmsg(), "without device discovery"), "%s", sx_errmsg());
    cr_assert_eq(sx_libusb_hotplug_register(l, on_hotplug, NULL), SYSEXT_EUNSUPPORTED);
    cr_assert_eq(sx_libusb_handle_events(l), 0);
    sx_libusb_free(l);
}

Test(usb_libusb, wrap_refuses_non_usb_fds_precisely)
{
    sx_libusb *l = NULL;
    cr_assert_eq(sx_libusb_new(&l, SX_LIBUSB_NO_DISCOVERY), 0, "%s", sx_errmsg());
    sx_libusb_dev *d = NULL;

    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(null_fd, 0);
    int r = sx_libusb_wrap(l, null_fd, &d);
    cr_assert_eq(r, SYSEXT_EIO, "got %d: %s", r, sx_errmsg());
    char want[64];
    snprintf(want, sizeof(want), "libusb_wrap_sys_device(fd %d): LIBUSB_ERROR_IO", null_fd);
    cr_assert(strstr(sx_errmsg(), want), "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), "not a usbfs device node"), "%s", sx_errmsg());
    cr_assert_null(d);
    cr_assert_geq(fcntl(null_fd, F_GETFD), 0, "libusb did not close the caller's fd");

    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    r = sx_libusb_wrap(l, p[0], &d);
    cr_assert_lt(r, 0);
    cr_assert(strstr(sx_errmsg(), "libusb_wrap_sys_device"), "%s", sx_errmsg());
    cr_assert_null(d);
    cr_assert_geq(fcntl(p[0], F_GETFD), 0);
    close(p[0]);
    close(p[1]);

    cr_assert_eq(sx_libusb_wrap(l, -1, &d), SYSEXT_EINVAL);
    cr_assert_eq(sx_libusb_wrap(l, p[0], &d), SYSEXT_EINVAL, "a closed fd");
    cr_assert(strstr(sx_errmsg(), "is not open"), "%s", sx_errmsg());
    cr_assert_eq(sx_libusb_wrap(NULL, null_fd, &d), SYSEXT_EINVAL);
    close(null_fd);
    sx_libusb_free(l);
}

/* ---- the hand-over: daemon opens, sends with SCM_RIGHTS; the driver wraps what it receives */

static void send_fd(int sock, int fd)
{
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    cr_assert_eq(sendmsg(sock, &m, 0), 1);
}

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    cr_assert_eq(recvmsg(sock, &m, MSG_CMSG_CLOEXEC), 1);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    cr_assert_not_null(c);
    cr_assert_eq(c->cmsg_type, SCM_RIGHTS);
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

Test(usb_libusb, fd_handover_up_to_the_wrap_call)
{
    int fd = -1;
    cr_assert_eq(sx_libusb_open_device_fd(0, 1, &fd), SYSEXT_EINVAL);
    cr_assert_eq(sx_libusb_open_device_fd(1, 0, &fd), SYSEXT_EINVAL);
    if (!have_usbfs()) {
        cr_assert_eq(sx_libusb_open_device_fd(1, 1, &fd), SYSEXT_ENOTFOUND);
        cr_assert(strstr(sx_errmsg(), "/dev/bus/usb/001/001"), "%s", sx_errmsg());
        cr_assert_eq(fd, -1);
    }
    /* no device to open here: hand over /dev/null the same way */
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int daemon_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(daemon_fd, 0);
    send_fd(sv[0], daemon_fd);
    close(daemon_fd);
    int driver_fd = recv_fd(sv[1]);
    cr_assert_geq(driver_fd, 0);
    sx_libusb *l = NULL;
    cr_assert_eq(sx_libusb_new(&l, SX_LIBUSB_NO_DISCOVERY), 0);
    sx_libusb_dev *d = NULL;
    cr_assert_eq(sx_libusb_wrap(l, driver_fd, &d), SYSEXT_EIO, "%s", sx_errmsg());
    cr_assert_null(d);
    sx_libusb_dev_free(NULL);
    sx_libusb_free(l);
    close(driver_fd);
    close(sv[0]);
    close(sv[1]);
}
