/* A bad client gets an error reply or a closed connection; everyone else is still served. */
#include "util/common.h"

#include <criterion/criterion.h>
#include <poll.h>

#include "harness.h"
#include "sysext/activation.h"
#include "sysextd/proto.h"
#include "util/fs.h"

static char tmp[] = "/tmp/sxd-server-XXXXXX";
static char sock[256], log_path[256], state[256];
static pid_t daemon_pid = -1;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(sock, sizeof(sock), "%s/s.sock", tmp);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmp);
    snprintf(state, sizeof(state), "%s/state", tmp);
    const char *argv[] = {"--state-dir", state, "--socket", sock, NULL};
    daemon_pid = h_start_daemon(sock, log_path, "SYSEXTD_PARTIAL_TIMEOUT_MS=300", argv);
    cr_assert_gt(daemon_pid, 0);
}

static void teardown(void)
{
    h_stop_daemon(daemon_pid);
    sx_rm_rf(tmp);
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 60);

static void send_raw(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void send_msg(int fd, plist_t m)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sxd_msg_encode(m, &b), 0);
    plist_free(m);
    send_raw(fd, b.data, b.len);
    sx_buf_free(&b);
}

/* Read one message (NULL on EOF / timeout). *eof set when the peer closed. */
static plist_t read_msg(int fd, int timeout_ms, bool *eof)
{
    static sx_buf in = SX_BUF_INIT;
    *eof = false;
    for (;;) {
        plist_t m = NULL;
        size_t used = 0;
        int rc = sxd_msg_decode(in.data, in.len, SXD_PROTO_MAX, &m, &used);
        cr_assert_geq(rc, 0, "daemon sent a malformed frame: %s", sx_errmsg());
        if (rc == 1) {
            memmove(in.data, in.data + used, in.len - used);
            in.len -= used;
            return m;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return NULL;
        uint8_t t[65536];
        ssize_t n = recv(fd, t, sizeof(t), 0);
        if (n <= 0) {
            *eof = true;
            in.len = 0;
            return NULL;
        }
        sx_buf_append(&in, t, (size_t)n);
    }
}

static bool closed_by_daemon(int fd, int timeout_ms)
{
    bool eof = false;
    for (;;) {
        plist_t m = read_msg(fd, timeout_ms, &eof);
        if (!m)
            return eof;
        plist_free(m);
    }
}

/* Another client is served normally. */
static void assert_daemon_serves(void)
{
    char *text = NULL;
    cr_assert_eq(sysext_admin_list(sock, 0, &text), 0, "%s", sysext_last_error());
    cr_assert(strstr(text, "extension(s)"));
    free(text);
}

static plist_t expect_error(int fd, uint64_t err)
{
    bool eof;
    plist_t m = read_msg(fd, 3000, &eof);
    cr_assert_not_null(m, "no error reply");
    cr_assert_str_eq(sxd_dict_str(m, "type"), "error");
    cr_assert_eq(sxd_dict_uint(m, "err", 0), err, "err %llu: %s",
                 (unsigned long long)sxd_dict_uint(m, "err", 0), sxd_dict_str(m, "message"));
    return m;
}

Test(server, garbage_gets_an_error_and_a_close)
{
    int fd = h_connect(sock);
    cr_assert_geq(fd, 0);
    send_raw(fd, "\0\0\0\x0bhello world", 15);
    plist_t m = expect_error(fd, (uint64_t)-SYSEXT_EFORMAT);
    cr_assert(strstr(sxd_dict_str(m, "message"), "not a binary plist"));
    plist_free(m);
    cr_assert(closed_by_daemon(fd, 3000));
    close(fd);
    assert_daemon_serves();
}

Test(server, oversized_frame_is_refused_at_the_header)
{
    int fd = h_connect(sock);
    send_raw(fd, "\x7f\xff\xff\xff", 4);
    plist_free(expect_error(fd, (uint64_t)-SYSEXT_ELIMIT));
    cr_assert(closed_by_daemon(fd, 3000));
    close(fd);
    assert_daemon_serves();
}

Test(server, wrong_version)
{
    int fd = h_connect(sock);
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "v", plist_new_uint(99));
    plist_dict_set_item(d, "type", plist_new_string("list"));
    send_msg(fd, d);
    plist_t m = expect_error(fd, (uint64_t)-SYSEXT_EUNSUPPORTED);
    cr_assert(strstr(sxd_dict_str(m, "message"), "version 99"));
    plist_free(m);
    cr_assert(closed_by_daemon(fd, 3000));
    close(fd);
    assert_daemon_serves();
}

Test(server, partial_message_times_out)
{
    int fd = h_connect(sock);
    send_raw(fd, "\0\0\0\x40" "bplist", 10); /* promises 64 bytes, sends 6 */
    assert_daemon_serves();                    /* meanwhile others are served */
    cr_assert(closed_by_daemon(fd, 3000), "slow client not dropped");
    close(fd);
}

Test(server, vanished_peer_mid_message)
{
    for (int i = 0; i < 20; i++) {
        int fd = h_connect(sock);
        send_raw(fd, "\0\0\0\x40" "bpl", 7);
        close(fd);
    }
    assert_daemon_serves();
}

Test(server, unknown_type_and_missing_extension)
{
    int fd = h_connect(sock);
    plist_t m = sxd_msg_new("frobnicate");
    sxd_dict_set_uint(m, "id", 5);
    send_msg(fd, m);
    bool eof;
    plist_t r = read_msg(fd, 3000, &eof);
    cr_assert_not_null(r);
    cr_assert_str_eq(sxd_dict_str(r, "type"), "reply");
    cr_assert_eq(sxd_dict_uint(r, "id", 0), 5);
    cr_assert_eq(sxd_dict_uint(r, "err", 0), (uint64_t)-SYSEXT_EUNSUPPORTED);
    plist_free(r);
    m = sxd_msg_new("activate");
    sxd_dict_set_uint(m, "id", 6);
    send_msg(fd, m); /* no "ext" */
    r = read_msg(fd, 3000, &eof);
    cr_assert_str_eq(sxd_dict_str(r, "event"), "failed");
    cr_assert_eq(sxd_dict_uint(r, "code", 0), 5);
    plist_free(r);
    close(fd);
}

Test(server, caller_that_is_not_an_app)
{
    /* This test binary is not X.app/Contents/MacOS/<exe>. */
    int fd = h_connect(sock);
    plist_t m = sxd_msg_new("activate");
    sxd_dict_set_uint(m, "id", 1);
    sxd_dict_set_str(m, "ext", "com.example.drv");
    send_msg(fd, m);
    bool eof;
    plist_t r = read_msg(fd, 3000, &eof);
    cr_assert_not_null(r);
    cr_assert_str_eq(sxd_dict_str(r, "event"), "failed");
    cr_assert_eq(sxd_dict_uint(r, "code", 0), 3);
    cr_assert_str_eq(sxd_dict_str(r, "name"),
                     "OSSystemExtensionErrorUnsupportedParentBundleLocation");
    plist_free(r);
    close(fd);
}

Test(server, flood_without_reading)
{
    int fd = h_connect(sock);
    plist_t m = sxd_msg_new("list");
    sx_buf one = SX_BUF_INIT;
    sxd_msg_encode(m, &one);
    plist_free(m);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    size_t sent = 0;
    for (int i = 0; i < 20000; i++) {
        ssize_t n = send(fd, one.data, one.len, MSG_NOSIGNAL);
        if (n < 0)
            break;
        sent++;
    }
    sx_buf_free(&one);
    cr_assert_gt(sent, 100);
    assert_daemon_serves();
    close(fd);
    assert_daemon_serves();
}

Test(server, connection_cap)
{
    int fds[300];
    for (int i = 0; i < 300; i++)
        fds[i] = h_connect(sock);
    h_sleep_ms(200);
    /* Beyond the cap connections are closed at once. */
    bool eof = false;
    plist_t m = read_msg(fds[299], 2000, &eof);
    cr_assert_null(m);
    cr_assert(eof, "connection over the cap not closed");
    for (int i = 0; i < 300; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    h_sleep_ms(100);
    assert_daemon_serves();
}
