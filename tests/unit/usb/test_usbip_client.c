/* The USB/IP client against a scripted server on a socketpair: exact wire bytes, ordering
 * tolerance, and every way a lying server must end the device (never the process). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/common.h"
#include "usb/usbip_client.h"

static int srv = -1;
static sx_usbip_client *cli;

static void setup(void)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv = sv[0];
    sx_usbip_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.busid, sizeof(d.busid), "1-1");
    d.busnum = 1;
    d.devnum = 2;
    cr_assert_eq(sx_usbip_client_new(&cli, sv[1], &d), 0);
}

static void teardown(void)
{
    sx_usbip_client_free(cli);
    cli = NULL;
    if (srv >= 0)
        close(srv);
    srv = -1;
}

TestSuite(usb_usbip_client, .init = setup, .fini = teardown, .timeout = 30);

/* Read exactly n bytes the client sent. */
static void srv_read(uint8_t *p, size_t n)
{
    while (n) {
        struct pollfd pf = {.fd = srv, .events = POLLIN};
        cr_assert_eq(poll(&pf, 1, 2000), 1, "the client sent nothing");
        ssize_t k = read(srv, p, n);
        cr_assert_gt(k, 0);
        p += k;
        n -= (size_t)k;
    }
}

static void srv_write(const void *p, size_t n)
{
    cr_assert_eq(write(srv, p, n), (ssize_t)n);
}

static void srv_reply(uint32_t command, uint32_t seqnum, int32_t status, uint32_t len,
                      const void *data, size_t data_len)
{
    sx_usbip_urb r = {.command = command, .seqnum = seqnum, .status = status, .length = len};
    sx_buf b = SX_BUF_INIT;
    sx_buf_reserve(&b, 48 + data_len);
    /* encode the header without the data check, then append what the test wants */
    cr_assert_eq(sx_usbip_urb_encode(&b, &r, NULL, 0, NULL, false), 0);
    if (data_len)
        sx_buf_append(&b, data, data_len);
    srv_write(b.data, b.len);
    sx_buf_free(&b);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct one {
    bool done;
    int calls;
    sx_usb_status status;
    uint32_t actual;
} one;

static void on_one(sx_usb_transfer *t)
{
    one *o = t->user_data;
    o->done = true;
    o->calls++;
    o->status = t->status;
    o->actual = t->actual_length;
}

static void pump(void)
{
    for (int i = 0; i < 5; i++)
        sx_usbip_client_run(cli, 20);
}

Test(usb_usbip_client, control_in_on_the_wire_and_back)
{
    uint8_t buf[18];
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_control(&t, 0x80, 6, 0x0100, 0, buf, 18, on_one, &o);
    sx_usb_transport tr;
    sx_usbip_client_transport(cli, &tr);
    cr_assert_str_eq(tr.ops->name, "usbip");
    cr_assert_eq(sx_usb_submit(&tr, &t), 0);
    uint8_t h[48];
    srv_read(h, 48);
    const uint8_t want[48] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0,
                              0, 0, 2, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                              0, 0, 0, 0, 0x80, 6, 0, 1, 0, 0, 18, 0};
    cr_assert_arr_eq(h, want, 48, "CMD_SUBMIT as in the reference capture, devid 1<<16|2");
    uint8_t desc[18];
    for (int i = 0; i < 18; i++)
        desc[i] = (uint8_t)(0xa0 + i);
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 18, desc, 18);
    pump();
    cr_assert(o.done);
    cr_assert_eq(o.status, SX_USB_COMPLETED);
    cr_assert_eq(o.actual, 18);
    cr_assert_arr_eq(buf, desc, 18);
}

Test(usb_usbip_client, out_data_follows_the_header)
{
    uint8_t data[5] = {9, 8, 7, 6, 5};
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x02, data, 5, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    uint8_t m[53];
    srv_read(m, 53);
    cr_assert_eq(be32(m + 0x0c), 0, "direction OUT");
    cr_assert_eq(be32(m + 0x10), 2, "ep number without the direction bit");
    cr_assert_eq(be32(m + 0x14), 0, "no DIR_IN flag");
    cr_assert_eq(be32(m + 0x18), 5);
    cr_assert_arr_eq(m + 48, data, 5);
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 5, NULL, 0);
    pump();
    cr_assert_eq(o.status, SX_USB_COMPLETED);
    cr_assert_eq(o.actual, 5);
}

Test(usb_usbip_client, ret_submit_before_ret_unlink_is_accepted)
{
    uint8_t buf[4];
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_INTERRUPT, 0x81, buf, 4, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    cr_assert_eq(sx_usbip_client_cancel(cli, &t), 0);
    cr_assert_eq(sx_usbip_client_cancel(cli, &t), 0, "a second cancel is a no-op");
    uint8_t m[96];
    srv_read(m, 96);
    cr_assert_eq(be32(m + 48), SX_USBIP_CMD_UNLINK);
    cr_assert_eq(be32(m + 52), 2, "the unlink has its own seqnum");
    cr_assert_eq(be32(m + 48 + 0x14), 1, "unlink_seqnum");
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 4, "abcd", 4);
    srv_reply(SX_USBIP_RET_UNLINK, 2, 0, 0, NULL, 0);
    pump();
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.status, SX_USB_COMPLETED);
    cr_assert_arr_eq(buf, "abcd", 4);
    cr_assert_not(sx_usbip_client_gone(cli), "%s", sx_usbip_client_error(cli));
}

Test(usb_usbip_client, ret_unlink_econnreset_cancels)
{
    uint8_t buf[4];
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x81, buf, 4, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    cr_assert_eq(sx_usbip_client_cancel(cli, &t), 0);
    uint8_t m[96];
    srv_read(m, 96);
    srv_reply(SX_USBIP_RET_UNLINK, 2, -104, 0, NULL, 0);
    pump();
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.status, SX_USB_CANCELLED);
    cr_assert_eq(sx_usbip_client_pending(cli), 0);
    cr_assert_not(sx_usbip_client_gone(cli));
}

Test(usb_usbip_client, submit_validates_the_transfer)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    sx_usb_fill_control(&t, 0x80, 6, 0x0100, 0, buf, 8, NULL, NULL);
    t.length = 4;
    cr_assert_eq(sx_usbip_client_submit(cli, &t), SYSEXT_EINVAL);
    cr_assert(strstr(sx_errmsg(), "length 4 differs from wLength 8"), "%s", sx_errmsg());
    sx_usb_fill_control(&t, 0x00, 5, 3, 0, NULL, 0, NULL, NULL);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), SYSEXT_EINVAL, "SET_ADDRESS is never sent");
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x80, buf, 8, NULL, NULL);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), SYSEXT_EINVAL);
    sx_usb_fill_pipe(&t, SX_USB_XFER_ISOCHRONOUS, 0x83, buf, 8, NULL, NULL);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), SYSEXT_EUNSUPPORTED);
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x81, NULL, 8, NULL, NULL);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), SYSEXT_EINVAL);
    cr_assert_eq(sx_usbip_client_pending(cli), 0);
    cr_assert_eq(sx_usbip_client_events(cli) & POLLOUT, 0, "nothing was queued");
}

Test(usb_usbip_client, short_not_ok_turns_a_short_read_into_an_error)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x81, buf, 8, on_one, &o);
    t.flags = SX_USB_XFER_SHORT_NOT_OK;
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    uint8_t h[48];
    srv_read(h, 48);
    cr_assert_eq(be32(h + 0x14), 0x201, "DIR_IN | SHORT_NOT_OK");
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 3, "xyz", 3);
    pump();
    cr_assert_eq(o.status, SX_USB_ERROR);
    cr_assert_eq(o.actual, 3);
}

/* A lie from the server: the device ends with `code` and a message containing `needle`,
 * the pending transfer completes with NO_DEVICE, and the process is fine. */
static void expect_end(one *o, int code, const char *needle)
{
    pump();
    cr_assert(sx_usbip_client_gone(cli));
    cr_assert_eq(sx_usbip_client_dispatch(cli), code);
    cr_assert(strstr(sx_usbip_client_error(cli), needle), "%s", sx_usbip_client_error(cli));
    cr_assert_eq(o->calls, 1);
    cr_assert_eq(o->status, SX_USB_NO_DEVICE);
    cr_assert_eq(sx_usbip_client_pending(cli), 0);
}

static void submit_in(sx_usb_transfer *t, uint8_t *buf, uint32_t len, one *o)
{
    sx_usb_fill_pipe(t, SX_USB_XFER_BULK, 0x81, buf, len, on_one, o);
    cr_assert_eq(sx_usbip_client_submit(cli, t), 0);
    uint8_t h[48];
    srv_read(h, 48);
}

Test(usb_usbip_client, lie_unknown_seqnum)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 8, &o);
    srv_reply(SX_USBIP_RET_SUBMIT, 99, 0, 0, NULL, 0);
    expect_end(&o, SYSEXT_EPROTO, "stream offset 0 for seqnum 99, which is not pending");
}

Test(usb_usbip_client, lie_actual_length_above_request)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 8, &o);
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 9, "123456789", 9);
    expect_end(&o, SYSEXT_EPROTO, "actual_length 9 > the 8 bytes requested");
}

Test(usb_usbip_client, lie_data_on_an_out_reply)
{
    /* IN data after the reply to an OUT: the stream goes out of step, and the next
     * "header" is rejected */
    uint8_t data[4] = {1, 2, 3, 4}, buf[8], m[52];
    sx_usb_transfer to, ti;
    one oo = {0}, oi = {0};
    sx_usb_fill_pipe(&to, SX_USB_XFER_BULK, 0x02, data, 4, on_one, &oo);
    cr_assert_eq(sx_usbip_client_submit(cli, &to), 0);
    srv_read(m, 52);
    submit_in(&ti, buf, 8, &oi);
    uint8_t junk[4 + 48] = {0xde, 0xad, 0xbe, 0xef};
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 4, junk, sizeof(junk));
    expect_end(&oi, SYSEXT_EPROTO, "at stream offset 48: USB/IP URB header at offset 0: unknown command 0xdeadbeef");
    cr_assert_eq(oo.status, SX_USB_COMPLETED, "the OUT itself had completed");
}

Test(usb_usbip_client, lie_server_sends_a_command)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 8, &o);
    sx_usbip_urb r = {.command = SX_USBIP_CMD_UNLINK, .seqnum = 1, .unlink_seqnum = 1};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_urb_encode(&b, &r, NULL, 0, NULL, false), 0);
    srv_write(b.data, b.len);
    sx_buf_free(&b);
    expect_end(&o, SYSEXT_EPROTO, "the server sent USBIP_CMD_UNLINK");
}

Test(usb_usbip_client, lie_unknown_unlink_answer)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 8, &o);
    srv_reply(SX_USBIP_RET_UNLINK, 7, -104, 0, NULL, 0);
    expect_end(&o, SYSEXT_EPROTO, "answers seqnum 7, which is no pending unlink");
}

Test(usb_usbip_client, lie_iso_packets_on_a_bulk_reply)
{
    uint8_t buf[8], h[48];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 8, &o);
    memset(h, 0, sizeof(h));
    h[3] = 3;
    h[7] = 1;
    h[0x23] = 2; /* number_of_packets = 2 */
    srv_write(h, 48);
    expect_end(&o, SYSEXT_EPROTO, "2 ISO packets for a non-isochronous transfer");
}

Test(usb_usbip_client, disconnect_in_the_middle_of_data)
{
    uint8_t buf[64];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 64, &o);
    srv_reply(SX_USBIP_RET_SUBMIT, 1, 0, 64, "only part", 9);
    close(srv);
    srv = -1;
    expect_end(&o, SYSEXT_EIO, "closed the connection in the middle of a message");
}

Test(usb_usbip_client, free_cancels_pending_transfers)
{
    uint8_t buf[8];
    sx_usb_transfer t;
    one o = {0};
    submit_in(&t, buf, 8, &o);
    sx_usbip_client_free(cli);
    cli = NULL;
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.status, SX_USB_CANCELLED);
}

static int resubmits;

static void on_resubmit(sx_usb_transfer *t)
{
    if (t->status == SX_USB_COMPLETED && ++resubmits < 3)
        cr_assert_eq(sx_usbip_client_submit(cli, t), 0);
}

Test(usb_usbip_client, resubmit_from_the_callback)
{
    uint8_t buf[4], h[48];
    sx_usb_transfer t;
    sx_usb_fill_pipe(&t, SX_USB_XFER_INTERRUPT, 0x81, buf, 4, on_resubmit, NULL);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    for (uint32_t seq = 1; seq <= 3; seq++) {
        srv_read(h, 48);
        cr_assert_eq(be32(h + 4), seq);
        srv_reply(SX_USBIP_RET_SUBMIT, seq, 0, 4, "abcd", 4);
        pump();
    }
    cr_assert_eq(resubmits, 3);
    cr_assert_eq(sx_usbip_client_pending(cli), 0);
}

Test(usb_usbip_client, timeout_unlinks_and_reports_timed_out)
{
    uint8_t buf[8], m[48];
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_INTERRUPT, 0x81, buf, 8, on_one, &o);
    t.timeout_ms = 50;
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    srv_read(m, 48);
    int next = sx_usbip_client_next_timeout(cli);
    cr_assert(next > 0 && next <= 50, "next timeout %d", next);
    for (int i = 0; i < 20 && !(sx_usbip_client_events(cli) & POLLOUT) &&
                    sx_usbip_client_next_timeout(cli) != -1; i++)
        sx_usbip_client_run(cli, 100);
    srv_read(m, 48);
    cr_assert_eq(be32(m), SX_USBIP_CMD_UNLINK, "the expired transfer is unlinked");
    cr_assert_eq(be32(m + 0x14), 1);
    cr_assert_not(o.done, "it completes only when the server answers");
    srv_reply(SX_USBIP_RET_UNLINK, 2, -104, 0, NULL, 0);
    pump();
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.status, SX_USB_TIMED_OUT);
    cr_assert_eq(sx_usbip_client_next_timeout(cli), -1);
}

Test(usb_usbip_client, sync_control_on_a_silent_server_gives_up)
{
    uint8_t buf[18];
    int r = sx_usbip_client_control(cli, 0x80, 6, 0x0100, 0, buf, 18, 50, NULL, NULL);
    cr_assert_eq(r, SYSEXT_ETIMEOUT);
    cr_assert(sx_usbip_client_gone(cli), "a server that ignores the unlink ends the device");
    cr_assert(strstr(sx_usbip_client_error(cli), "no answer to an unlink"), "%s",
              sx_usbip_client_error(cli));
}

Test(usb_usbip_client, send_failure_never_calls_back_from_submit)
{
    close(srv);
    srv = -1;
    uint8_t data[4] = {0};
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x02, data, 4, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(cli, &t), 0);
    cr_assert_not(o.done, "no callback from inside submit");
    cr_assert_eq(sx_usbip_client_dispatch(cli), SYSEXT_EIO);
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.status, SX_USB_NO_DEVICE);
    cr_assert(strstr(sx_usbip_client_error(cli), "sending"), "%s", sx_usbip_client_error(cli));
}

/* Cross-check against a server nobody here wrote: Debian's usbipd (it has no bind-address
 * option, so it runs in a private network namespace; skipped without root or usbipd). It has
 * nothing to export here, so: an empty list, and ST_NODEV for an import. */

static pid_t usbipd_pid = -1;

static void usbipd_stop(void)
{
    if (usbipd_pid > 0) {
        kill(usbipd_pid, SIGTERM);
        waitpid(usbipd_pid, NULL, 0);
        usbipd_pid = -1;
    }
}

TestSuite(usb_usbip_real, .fini = usbipd_stop, .timeout = 30);

Test(usb_usbip_real, linux_usbipd_list_and_import)
{
    struct stat sb;
    if (stat("/usr/sbin/usbipd", &sb) != 0)
        cr_skip_test("/usr/sbin/usbipd is not installed");
    if (unshare(CLONE_NEWNET) != 0)
        cr_skip_test("cannot make a private network namespace: %s", strerror(errno));
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    close(s);
    usbipd_pid = fork();
    cr_assert_geq(usbipd_pid, 0);
    if (usbipd_pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/usr/sbin/usbipd", "usbipd", "-4", (char *)NULL);
        _exit(127);
    }
    sx_usbip_devlist l;
    int r = -1;
    for (int i = 0; i < 200 && r != 0; i++) {
        r = sx_usbip_list("127.0.0.1", SX_USBIP_DEFAULT_PORT, 2000, &l);
        if (r != 0)
            usleep(10000);
    }
    cr_assert_eq(r, 0, "%s", sx_errmsg());
    cr_assert_eq(l.n, 0);
    sx_usbip_devlist_free(&l);
    sx_usbip_client *c = NULL;
    r = sx_usbip_import(&c, "127.0.0.1", SX_USBIP_DEFAULT_PORT, "1-1", 2000);
    cr_assert_eq(r, SYSEXT_EREJECTED);
    cr_assert(strstr(sx_errmsg(), "status 4 (ST_NODEV"), "%s", sx_errmsg());
}
