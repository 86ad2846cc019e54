/* sysext-vusb, driven through the USB/IP client: what the emulated devices look like and do. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "util/common.h"
#include "tests/unit/usb/vusb_harness.h"

static void teardown(void)
{
    vusb_stop();
}

TestSuite(usb_vusb, .fini = teardown, .timeout = 60);

static const char *const both[] = {"--device", "sensor", "--device", "loopback", NULL};

Test(usb_vusb, devlist_shows_both_devices)
{
    vusb_start(both);
    sx_usbip_devlist l;
    cr_assert_eq(sx_usbip_list("127.0.0.1", vusb_port, 3000, &l), 0, "%s", sx_errmsg());
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.devices[0].busid, "1-1");
    cr_assert_eq(l.devices[0].id_vendor, 0x1209);
    cr_assert_eq(l.devices[0].id_product, 0x0001);
    cr_assert_str_eq(l.devices[1].busid, "1-2");
    cr_assert_eq(l.devices[1].id_vendor, 0x1209);
    cr_assert_eq(l.devices[1].id_product, 0x0002);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(l.devices[i].speed, 3);
        cr_assert_eq(l.devices[i].num_interfaces, 1);
        cr_assert_eq(l.devices[i].interfaces[0].cls, 0xff);
        cr_assert_eq(l.devices[i].busnum, 1);
    }
    sx_usbip_devlist_free(&l);
    int st = vusb_stop();
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM ends it cleanly (status %d)", st);
}

Test(usb_vusb, import_refusals_name_the_status)
{
    vusb_start(both);
    sx_usbip_client *c = NULL;
    cr_assert_eq(sx_usbip_import(&c, "127.0.0.1", vusb_port, "9-9", 3000), SYSEXT_EREJECTED);
    cr_assert(strstr(sx_errmsg(), "ST_NODEV"), "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), "'9-9'"), "%s", sx_errmsg());

    sx_usbip_client *a = vusb_import("1-2");
    cr_assert_eq(sx_usbip_client_device(a)->id_product, 2);
    cr_assert_eq(sx_usbip_import(&c, "127.0.0.1", vusb_port, "1-2", 3000), SYSEXT_EREJECTED);
    cr_assert(strstr(sx_errmsg(), "ST_DEV_BUSY"), "%s", sx_errmsg());
    sx_usbip_client_free(a);
    /* released once the server sees the connection close */
    int r = -1;
    for (int i = 0; i < 100 && r != 0; i++) {
        r = sx_usbip_import(&c, "127.0.0.1", vusb_port, "1-2", 3000);
        if (r)
            usleep(10000);
    }
    cr_assert_eq(r, 0, "%s", sx_errmsg());
    sx_usbip_client_free(c);
}

Test(usb_vusb, control_descriptors_and_rate)
{
    vusb_start(both);
    sx_usbip_client *c = vusb_import("1-1");
    uint8_t buf[256];
    uint32_t n;
    sx_usb_status st;

    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0100, 0, buf, 18, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_COMPLETED);
    cr_assert_eq(n, 18);
    const uint8_t dev_head[4] = {18, 1, 0x00, 0x02};
    cr_assert_arr_eq(buf, dev_head, 4);
    cr_assert_eq(buf[8] | buf[9] << 8, 0x1209);
    cr_assert_eq(buf[10] | buf[11] << 8, 0x0001);
    cr_assert_eq(buf[17], 1, "one configuration");

    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0200, 0, buf, 9, 2000, &n, &st), 0);
    cr_assert_eq(n, 9);
    uint16_t total = (uint16_t)(buf[2] | buf[3] << 8);
    cr_assert_eq(total, 25);
    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0200, 0, buf, total, 2000, &n, &st), 0);
    cr_assert_eq(n, 25);
    cr_assert_eq(buf[9 + 5], 0xff, "bInterfaceClass");
    const uint8_t ep[7] = {7, 5, 0x81, 0x03, 16, 0, 4};
    cr_assert_arr_eq(buf + 18, ep, 7, "interrupt IN 0x81, 16 bytes");

    /* a short read of a longer descriptor is cut at wLength */
    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0100, 0, buf, 8, 2000, &n, &st), 0);
    cr_assert_eq(n, 8);

    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0302, 0x0409, buf, 255, 2000, &n, &st), 0);
    const char *want = "sysext virtual sensor";
    cr_assert_eq(n, 2 + 2 * strlen(want));
    for (size_t i = 0; i < strlen(want); i++)
        cr_assert_eq(buf[2 + 2 * i], (uint8_t)want[i]);

    cr_assert_eq(sx_usbip_client_control(c, 0x00, 9, 1, 0, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_COMPLETED);
    cr_assert_eq(sx_usbip_client_control(c, 0x80, 8, 0, 0, buf, 1, 2000, &n, &st), 0);
    cr_assert_eq(buf[0], 1, "GET_CONFIGURATION");
    cr_assert_eq(sx_usbip_client_control(c, 0x80, 0, 0, 0, buf, 2, 2000, &n, &st), 0);
    cr_assert_eq(n, 2, "GET_STATUS");
    cr_assert_eq(sx_usbip_client_control(c, 0x01, 11, 0, 0, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_COMPLETED, "SET_INTERFACE 0/0");
    cr_assert_eq(sx_usbip_client_control(c, 0x01, 11, 1, 0, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_STALL, "no alternate setting 1");

    cr_assert_eq(sx_usbip_client_control(c, 0xc0, 2, 0, 0, buf, 4, 2000, &n, &st), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(buf[0] | buf[1] << 8, 100, "default rate");
    cr_assert_eq(sx_usbip_client_control(c, 0x40, 1, 250, 0, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_COMPLETED);
    cr_assert_eq(sx_usbip_client_control(c, 0xc0, 2, 0, 0, buf, 4, 2000, &n, &st), 0);
    cr_assert_eq(buf[0] | buf[1] << 8, 250);
    cr_assert_eq(sx_usbip_client_control(c, 0x40, 1, 0, 0, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_STALL, "rate 0 is refused");
    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0700, 0, buf, 9, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_STALL, "no such descriptor");
    cr_assert_not(sx_usbip_client_gone(c));
    sx_usbip_client_free(c);
}

typedef struct sampler {
    sx_usbip_client *c;
    sx_usb_transfer t[4];
    uint8_t buf[4][64];
    uint64_t counter[200], ts[200];
    unsigned n, want;
    bool done, bad;
} sampler;

static void on_sample(sx_usb_transfer *t)
{
    sampler *s = t->user_data;
    if (t->status != SX_USB_COMPLETED)
        return;
    if (t->actual_length != 16) {
        s->bad = true;
        return;
    }
    if (s->n < s->want) {
        uint64_t cnt = 0, ts = 0;
        for (int i = 7; i >= 0; i--) {
            cnt = cnt << 8 | t->buffer[i];
            ts = ts << 8 | t->buffer[8 + i];
        }
        s->counter[s->n] = cnt;
        s->ts[s->n] = ts;
        if (++s->n == s->want)
            s->done = true;
    }
    if (!s->done)
        sx_usbip_client_submit(s->c, t);
}

Test(usb_vusb, interrupt_samples_are_monotonic_at_the_rate)
{
    const char *const args[] = {"--device", "sensor", "--rate", "200", NULL};
    vusb_start(args);
    static sampler s;
    s.c = vusb_import("1-1");
    s.want = 100;
    for (int i = 0; i < 4; i++) {
        sx_usb_fill_pipe(&s.t[i], SX_USB_XFER_INTERRUPT, 0x81, s.buf[i], 64, on_sample, &s);
        cr_assert_eq(sx_usbip_client_submit(s.c, &s.t[i]), 0);
    }
    run_until(s.c, &s.done, 10000);
    cr_assert(s.done, "got %u samples: %s", s.n, sx_usbip_client_error(s.c));
    cr_assert_not(s.bad);
    for (unsigned i = 1; i < s.n; i++) {
        cr_assert_gt(s.counter[i], s.counter[i - 1], "counter at %u", i);
        cr_assert_geq(s.ts[i], s.ts[i - 1], "timestamp at %u", i);
    }
    /* 200 Hz: 5 ms per sample, measured on the device's own clock */
    double per = (double)(s.ts[s.n - 1] - s.ts[0]) / (double)(s.counter[s.n - 1] - s.counter[0]);
    cr_assert(per > 3.5e6 && per < 6.5e6, "%.0f ns per sample", per);
    sx_usbip_client_free(s.c);
}

typedef struct loop {
    sx_usbip_client *c;
    uint8_t *src, *dst;
    size_t total, sent, received;
    sx_usb_transfer out[8], in[8];
    uint8_t inbuf[8][16384];
    unsigned in_ticket[8], next_ticket, last_done;
    bool done, bad_order, failed;
} loop;

static void on_out(sx_usb_transfer *t);

static void send_next(loop *l, sx_usb_transfer *t)
{
    size_t n = l->total - l->sent;
    if (n == 0)
        return;
    if (n > 16384)
        n = 16384;
    sx_usb_fill_pipe(t, SX_USB_XFER_BULK, 0x02, l->src + l->sent, (uint32_t)n, on_out, l);
    l->sent += n;
    if (sx_usbip_client_submit(l->c, t) < 0)
        l->failed = true;
}

static void on_out(sx_usb_transfer *t)
{
    loop *l = t->user_data;
    if (t->status != SX_USB_COMPLETED) {
        l->failed = l->failed || t->status != SX_USB_CANCELLED;
        return;
    }
    send_next(l, t);
}

static void on_in(sx_usb_transfer *t)
{
    loop *l = t->user_data;
    if (t->status != SX_USB_COMPLETED) {
        l->failed = l->failed || t->status != SX_USB_CANCELLED;
        return;
    }
    unsigned i = (unsigned)(t - l->in);
    if (l->in_ticket[i] < l->last_done)
        l->bad_order = true;
    l->last_done = l->in_ticket[i];
    if (t->actual_length > l->total - l->received) {
        l->failed = true;
        return;
    }
    memcpy(l->dst + l->received, t->buffer, t->actual_length);
    l->received += t->actual_length;
    if (l->received == l->total) {
        l->done = true;
        return;
    }
    l->in_ticket[i] = ++l->next_ticket;
    if (sx_usbip_client_submit(l->c, t) < 0)
        l->failed = true;
}

Test(usb_vusb, bulk_loopback_of_1mib_with_8_in_flight)
{
    vusb_start(both);
    static loop l;
    l.total = 1u << 20;
    l.src = malloc(l.total);
    l.dst = malloc(l.total);
    uint32_t x = 12345;
    for (size_t i = 0; i < l.total; i++) {
        x = x * 1103515245u + 12345u;
        l.src[i] = (uint8_t)(x >> 16);
    }
    l.c = vusb_import("1-2");
    for (int i = 0; i < 8; i++) {
        sx_usb_fill_pipe(&l.in[i], SX_USB_XFER_BULK, 0x82, l.inbuf[i], 16384, on_in, &l);
        l.in_ticket[i] = ++l.next_ticket;
        cr_assert_eq(sx_usbip_client_submit(l.c, &l.in[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        send_next(&l, &l.out[i]);
    cr_assert_eq(sx_usbip_client_pending(l.c), 16);
    run_until(l.c, &l.done, 30000);
    cr_assert(l.done, "received %zu of %zu: %s", l.received, l.total, sx_usbip_client_error(l.c));
    cr_assert_not(l.failed);
    cr_assert_not(l.bad_order, "IN transfers complete in submission order");
    cr_assert_eq(memcmp(l.src, l.dst, l.total), 0, "bytes come back equal and in order");
    sx_usbip_client_free(l.c); /* the 7 spare IN transfers complete as cancelled */
    cr_assert_not(l.failed);
    free(l.src);
    free(l.dst);
}

typedef struct one {
    bool done;
    sx_usb_status status;
    int32_t wire;
    uint32_t actual;
} one;

static void on_one(sx_usb_transfer *t)
{
    one *o = t->user_data;
    o->done = true;
    o->status = t->status;
    o->wire = t->backend_status;
    o->actual = t->actual_length;
}

Test(usb_vusb, unlink_of_a_pending_in_and_of_a_completed_out)
{
    vusb_start(both);
    sx_usbip_client *c = vusb_import("1-2");
    uint8_t in[512], out[4] = {'p', 'i', 'n', 'g'};
    sx_usb_transfer ti, to;
    one oi = {0}, oo = {0};
    sx_usb_fill_pipe(&ti, SX_USB_XFER_BULK, 0x82, in, sizeof(in), on_one, &oi);
    cr_assert_eq(sx_usbip_client_submit(c, &ti), 0);
    run_for(c, 100);
    cr_assert_not(oi.done, "an IN with no data stays pending");
    cr_assert_eq(sx_usbip_client_cancel(c, &ti), 0);
    run_until(c, &oi.done, 3000);
    cr_assert(oi.done);
    cr_assert_eq(oi.status, SX_USB_CANCELLED);
    cr_assert_eq(oi.wire, -104, "RET_UNLINK -ECONNRESET");
    cr_assert_eq(sx_usbip_client_cancel(c, &ti), SYSEXT_ENOTFOUND);

    /* a timeout is an unlink too */
    memset(&oi, 0, sizeof(oi));
    sx_usb_fill_pipe(&ti, SX_USB_XFER_BULK, 0x82, in, sizeof(in), on_one, &oi);
    ti.timeout_ms = 30;
    cr_assert_eq(sx_usbip_client_submit(c, &ti), 0);
    run_until(c, &oi.done, 3000);
    cr_assert_eq(oi.status, SX_USB_TIMED_OUT);
    uint32_t n;
    cr_assert_eq(sx_usbip_client_control(c, 0x80, 6, 0x0100, 0, in, 18, 2000, &n, NULL), 0);
    cr_assert_eq(n, 18, "the device still answers");

    /* cancel right after submit: the OUT completes at once on the device, so the unlink
     * finds nothing (status 0) and the real result arrives */
    sx_usb_fill_pipe(&to, SX_USB_XFER_BULK, 0x02, out, sizeof(out), on_one, &oo);
    cr_assert_eq(sx_usbip_client_submit(c, &to), 0);
    cr_assert_eq(sx_usbip_client_cancel(c, &to), 0);
    run_until(c, &oo.done, 3000);
    cr_assert_eq(oo.status, SX_USB_COMPLETED);
    cr_assert_eq(oo.actual, 4);
    run_for(c, 50); /* the RET_UNLINK(0) must be accepted too */
    cr_assert_not(sx_usbip_client_gone(c), "%s", sx_usbip_client_error(c));

    /* the cancelled IN did not take the data */
    memset(&oi, 0, sizeof(oi));
    sx_usb_fill_pipe(&ti, SX_USB_XFER_BULK, 0x82, in, sizeof(in), on_one, &oi);
    cr_assert_eq(sx_usbip_client_submit(c, &ti), 0);
    run_until(c, &oi.done, 3000);
    cr_assert_eq(oi.status, SX_USB_COMPLETED);
    cr_assert_eq(oi.actual, 4);
    cr_assert_arr_eq(in, out, 4);
    sx_usbip_client_free(c);
}

static sx_usb_status bulk_out(sx_usbip_client *c, uint8_t *data, uint32_t n)
{
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x02, data, n, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(c, &t), 0);
    run_until(c, &o.done, 3000);
    cr_assert(o.done);
    return o.status;
}

Test(usb_vusb, stall_then_clear_feature)
{
    const char *const args[] = {"--device", "loopback", "--inject", "stall@2", NULL};
    vusb_start(args);
    sx_usbip_client *c = vusb_import("1-1");
    uint8_t d[8] = "abcdefg", st2[2], in[64];
    uint32_t n;
    sx_usb_status st;
    cr_assert_eq(bulk_out(c, d, 8), SX_USB_COMPLETED);
    cr_assert_eq(bulk_out(c, d, 8), SX_USB_STALL, "the injected stall");
    cr_assert_eq(bulk_out(c, d, 8), SX_USB_STALL, "the endpoint stays halted");
    cr_assert_eq(sx_usbip_client_control(c, 0x82, 0, 0, 0x02, st2, 2, 2000, &n, &st), 0);
    cr_assert_eq(st2[0], 1, "GET_STATUS reports the halt");
    cr_assert_eq(sx_usbip_client_control(c, 0x02, 1, 0, 0x02, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_COMPLETED, "CLEAR_FEATURE(ENDPOINT_HALT)");
    cr_assert_eq(sx_usbip_client_control(c, 0x82, 0, 0, 0x02, st2, 2, 2000, &n, &st), 0);
    cr_assert_eq(st2[0], 0);
    cr_assert_eq(bulk_out(c, d, 8), SX_USB_COMPLETED);
    /* only the two accepted writes are in the FIFO */
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x82, in, sizeof(in), on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(c, &t), 0);
    run_until(c, &o.done, 3000);
    cr_assert_eq(o.actual, 16);
    sx_usbip_client_free(c);
}

static int gone_code;
static char gone_why[512];

static void on_gone(sx_usbip_client *c, int code, const char *why, void *ud)
{
    gone_code = code;
    snprintf(gone_why, sizeof(gone_why), "%s", why);
    *(bool *)ud = true;
}

Test(usb_vusb, disconnect_fails_every_pending_transfer)
{
    const char *const args[] = {"--device", "loopback", "--inject", "disconnect@5", NULL};
    vusb_start(args);
    sx_usbip_client *c = vusb_import("1-1");
    bool gone = false;
    sx_usbip_client_on_gone(c, on_gone, &gone);
    sx_usb_transfer t[5];
    uint8_t buf[5][64];
    one o[5] = {0};
    for (int i = 0; i < 5; i++) {
        sx_usb_fill_pipe(&t[i], SX_USB_XFER_BULK, 0x82, buf[i], 64, on_one, &o[i]);
        cr_assert_eq(sx_usbip_client_submit(c, &t[i]), 0);
    }
    run_until(c, &gone, 5000);
    cr_assert(gone);
    cr_assert_eq(gone_code, SYSEXT_EIO);
    cr_assert(strstr(gone_why, "1-1: the server closed the connection"), "%s", gone_why);
    cr_assert(sx_usbip_client_gone(c));
    for (int i = 0; i < 5; i++) {
        cr_assert(o[i].done, "transfer %d completed", i);
        cr_assert_eq(o[i].status, SX_USB_NO_DEVICE);
    }
    cr_assert_eq(sx_usbip_client_pending(c), 0);
    cr_assert_eq(sx_usbip_client_submit(c, &t[0]), SYSEXT_EIO);
    cr_assert_eq(sx_usbip_client_dispatch(c), SYSEXT_EIO);
    sx_usbip_client_free(c);
    /* the server itself is fine */
    sx_usbip_devlist l;
    cr_assert_eq(sx_usbip_list("127.0.0.1", vusb_port, 3000, &l), 0);
    sx_usbip_devlist_free(&l);
}

Test(usb_vusb, malformed_reply_ends_the_device)
{
    const char *const args[] = {"--device", "loopback", "--inject", "malformed@2", NULL};
    vusb_start(args);
    sx_usbip_client *c = vusb_import("1-1");
    bool gone = false;
    sx_usbip_client_on_gone(c, on_gone, &gone);
    uint8_t d[4] = {1, 2, 3, 4}, in[64], in2[64];
    cr_assert_eq(bulk_out(c, d, 4), SX_USB_COMPLETED);
    sx_usb_transfer t, t2;
    one o = {0}, o2 = {0};
    sx_usb_fill_pipe(&t2, SX_USB_XFER_BULK, 0x82, in2, 64, on_one, &o2);
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x82, in, 64, on_one, &o);
    /* the 2nd submit gets the lie; the 3rd is pending behind it */
    cr_assert_eq(sx_usbip_client_submit(c, &t), 0);
    cr_assert_eq(sx_usbip_client_submit(c, &t2), 0);
    run_until(c, &gone, 5000);
    cr_assert(gone);
    cr_assert_eq(gone_code, SYSEXT_EPROTO);
    cr_assert(strstr(gone_why, "actual_length 4160 > the 64 bytes requested"), "%s", gone_why);
    cr_assert_eq(o.status, SX_USB_NO_DEVICE);
    cr_assert_eq(o2.status, SX_USB_NO_DEVICE);
    cr_assert_str_eq(sx_usbip_client_error(c), gone_why);
    sx_usbip_client_free(c);
}

Test(usb_vusb, debian_usbip_tool_lists_the_devices)
{
    struct stat sb;
    if (stat("/usr/sbin/usbip", &sb) != 0)
        cr_skip_test("/usr/sbin/usbip is not installed");
    vusb_start(both);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "/usr/sbin/usbip --tcp-port %u list -r 127.0.0.1 2>&1", vusb_port);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[512];
    bool d1 = false, d2 = false;
    sx_buf all = SX_BUF_INIT;
    while (fgets(line, sizeof(line), p)) {
        sx_buf_puts(&all, line);
        if (strstr(line, " 1-1: ") && strstr(line, "(1209:0001)"))
            d1 = true;
        if (strstr(line, " 1-2: ") && strstr(line, "(1209:0002)"))
            d2 = true;
    }
    int st = pclose(p);
    cr_assert_eq(st, 0, "usbip exited with %d:\n%s", st, all.data);
    cr_assert(d1 && d2, "usbip list -r output:\n%s", all.data);
    sx_buf_free(&all);
}

Test(usb_vusb, two_clients_at_once)
{
    vusb_start(both);
    sx_usbip_client *s = vusb_import("1-1"), *l = vusb_import("1-2");
    uint8_t sample[16], echo[8], data[8] = "12345678";
    sx_usb_transfer ts, to, ti;
    one os = {0}, oo = {0}, oi = {0};
    sx_usb_fill_pipe(&ts, SX_USB_XFER_INTERRUPT, 0x81, sample, 16, on_one, &os);
    sx_usb_fill_pipe(&ti, SX_USB_XFER_BULK, 0x82, echo, 8, on_one, &oi);
    sx_usb_fill_pipe(&to, SX_USB_XFER_BULK, 0x02, data, 8, on_one, &oo);
    cr_assert_eq(sx_usbip_client_submit(s, &ts), 0);
    cr_assert_eq(sx_usbip_client_submit(l, &ti), 0);
    cr_assert_eq(sx_usbip_client_submit(l, &to), 0);
    uint64_t end = vusb_now_ms() + 5000;
    while ((!os.done || !oi.done || !oo.done) && vusb_now_ms() < end) {
        struct pollfd pf[2] = {{.fd = sx_usbip_client_fd(s), .events = sx_usbip_client_events(s)},
                               {.fd = sx_usbip_client_fd(l), .events = sx_usbip_client_events(l)}};
        poll(pf, 2, 50);
        cr_assert_eq(sx_usbip_client_dispatch(s), 0);
        cr_assert_eq(sx_usbip_client_dispatch(l), 0);
    }
    cr_assert_eq(os.status, SX_USB_COMPLETED);
    cr_assert_eq(os.actual, 16);
    cr_assert_eq(oi.actual, 8);
    cr_assert_arr_eq(echo, data, 8);
    /* the list still answers while both are imported */
    sx_usbip_devlist dl;
    cr_assert_eq(sx_usbip_list("127.0.0.1", vusb_port, 3000, &dl), 0);
    cr_assert_eq(dl.n, 2);
    sx_usbip_devlist_free(&dl);
    sx_usbip_client_free(s);
    sx_usbip_client_free(l);
}

Test(usb_vusb, bad_arguments_exit_2)
{
    const char *cases[][4] = {{"--device", "keyboard", NULL},
                              {"--device", "sensor", "--inject", "stall@0"},
                              {"--device", "sensor", "--rate", "0"},
                              {"--listen", "nowhere", "--device", "sensor"},
                              {NULL}};
    for (int i = 0; cases[i][0]; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 2);
            execl(VUSB_BIN, VUSB_BIN, cases[i][0], cases[i][1], cases[i][2], cases[i][3],
                  (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "case %d: status %d", i, st);
    }
}

Test(usb_vusb, set_interface_kills_pending_urbs)
{
    vusb_start(both);
    sx_usbip_client *c = vusb_import("1-2");
    uint8_t in[64];
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x82, in, sizeof(in), on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(c, &t), 0);
    uint32_t n;
    sx_usb_status st;
    cr_assert_eq(sx_usbip_client_control(c, 0x01, 11, 0, 0, NULL, 0, 2000, &n, &st), 0);
    cr_assert_eq(st, SX_USB_COMPLETED);
    run_until(c, &o.done, 2000);
    cr_assert_eq(o.wire, -108, "-ESHUTDOWN");
    cr_assert_eq(o.status, SX_USB_NO_DEVICE);
    cr_assert_not(sx_usbip_client_gone(c), "the device itself stays");
    sx_usbip_client_free(c);
}

static one bulk_in(sx_usbip_client *c, uint8_t *buf, uint32_t n)
{
    sx_usb_transfer t;
    one o = {0};
    sx_usb_fill_pipe(&t, SX_USB_XFER_BULK, 0x82, buf, n, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(c, &t), 0);
    run_until(c, &o.done, 3000);
    cr_assert(o.done);
    return o;
}

Test(usb_vusb, stall_counted_on_one_endpoint)
{
    const char *const args[] = {"--device", "loopback", "--inject", "stall@2:0x82", NULL};
    vusb_start(args);
    sx_usbip_client *c = vusb_import("1-1");
    uint8_t d[4] = "abc", in[64];
    cr_assert_eq(bulk_out(c, d, 4), SX_USB_COMPLETED);
    cr_assert_eq(bulk_in(c, in, 64).status, SX_USB_COMPLETED, "1st IN on 0x82");
    cr_assert_eq(bulk_out(c, d, 4), SX_USB_COMPLETED, "OUTs are not counted");
    cr_assert_eq(bulk_in(c, in, 64).status, SX_USB_STALL, "2nd IN on 0x82");
    uint32_t n;
    sx_usb_status st;
    cr_assert_eq(sx_usbip_client_control(c, 0x02, 1, 0, 0x82, NULL, 0, 2000, &n, &st), 0);
    one o = bulk_in(c, in, 64);
    cr_assert_eq(o.status, SX_USB_COMPLETED);
    cr_assert_eq(o.actual, 4, "the data written before the stall is still there");
    sx_usbip_client_free(c);
}

Test(usb_vusb, one_out_larger_than_the_device_fifo)
{
    /* 3 MiB in one OUT through a 1 MiB FIFO: the OUT waits, partly taken, while INs drain */
    vusb_start(both);
    static loop l;
    memset(&l, 0, sizeof(l));
    l.total = 3u << 20;
    l.src = malloc(l.total);
    l.dst = malloc(l.total);
    for (size_t i = 0; i < l.total; i++)
        l.src[i] = (uint8_t)(i * 7 + (i >> 12));
    l.c = vusb_import("1-2");
    sx_usb_transfer out;
    one o = {0};
    sx_usb_fill_pipe(&out, SX_USB_XFER_BULK, 0x02, l.src, (uint32_t)l.total, on_one, &o);
    cr_assert_eq(sx_usbip_client_submit(l.c, &out), 0);
    for (int i = 0; i < 3; i++) {
        sx_usb_fill_pipe(&l.in[i], SX_USB_XFER_BULK, 0x82, l.inbuf[i], 16384, on_in, &l);
        l.in_ticket[i] = ++l.next_ticket;
        cr_assert_eq(sx_usbip_client_submit(l.c, &l.in[i]), 0);
    }
    run_until(l.c, &l.done, 30000);
    cr_assert(l.done, "received %zu: %s", l.received, sx_usbip_client_error(l.c));
    run_until(l.c, &o.done, 5000);
    cr_assert_eq(o.status, SX_USB_COMPLETED);
    cr_assert_eq(o.actual, l.total);
    cr_assert_not(l.bad_order);
    cr_assert_eq(memcmp(l.src, l.dst, l.total), 0);
    sx_usbip_client_free(l.c);
    free(l.src);
    free(l.dst);
}
