#include "util/common.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "usb/usbip_client.h"
#include "util/buf.h"

#define RX_CAP 65536u
#define BUCKETS 256u
#define MAX_OUTQ (256u << 20)
#define DIRECT_READ_MIN 16384u

/* One submitted transfer, in the seqnum table until its RET_SUBMIT or cancelling RET_UNLINK. */
typedef struct pend {
    struct pend *next;
    sx_usb_transfer *t;
    uint32_t seqnum;
    uint32_t dir;
    uint32_t req_len;
    bool unlinking;
    bool timed_out;
    uint64_t deadline; /* now_ms() value, 0 for none */
} pend;

/* One CMD_UNLINK waiting for its RET_UNLINK. */
typedef struct unlink_rec {
    struct unlink_rec *next;
    uint32_t seqnum, target;
} unlink_rec;

enum rx_state { RX_HDR, RX_DATA };

struct sx_usbip_client {
    int fd;
    sx_usbip_device dev;
    uint32_t devid;
    uint32_t next_seq;
    pend *table[BUCKETS];
    size_t npending;
    size_t ntimed; /* pending transfers with a deadline not yet acted on */
    unlink_rec *unlinks;
    /* output */
    sx_buf out;
    size_t out_off;
    /* input */
    uint8_t *rx;
    size_t rx_start, rx_end;
    uint64_t rx_total; /* bytes consumed before rx_start, for offsets in messages */
    enum rx_state st;
    pend *cur;       /* RET_SUBMIT whose IN data is being read */
    int32_t cur_status;
    uint32_t cur_len, cur_got;
    uint64_t cur_msg_off;
    int send_errno; /* a send failed inside submit/cancel: the next dispatch ends the device */
    /* end */
    bool gone;
    int gone_code;
    char why[512];
    sx_usbip_gone_cb gone_cb;
    void *gone_ud;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t n = now_ms();
    return n >= deadline ? 0 : (int)(deadline - n);
}

/* ---- management phase (blocking with a deadline) ---- */

int sx_usbip_connect(const char *host, uint16_t port, int timeout_ms, int *fd_out)
{
    SX_ASSERT_ARG(host);
    SX_ASSERT_ARG(fd_out);
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int e = getaddrinfo(host, ps, &hints, &ai);
    if (e)
        return sx_err(SYSEXT_ENETWORK, "USB/IP: cannot resolve '%s': %s", host, gai_strerror(e));
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 3600000 : timeout_ms);
    int r = sx_err(SYSEXT_ENETWORK, "USB/IP: no address for '%s'", host);
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            r = sx_err_errno(SYSEXT_ENETWORK, errno, "USB/IP: socket");
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            r = sx_err_errno(SYSEXT_ENETWORK, errno, "USB/IP: connect to %s:%u", host, port);
            close(fd);
            continue;
        }
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int pr;
        do
            pr = poll(&pf, 1, remaining_ms(deadline));
        while (pr < 0 && errno == EINTR);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (pr == 0) {
            r = sx_err(SYSEXT_ETIMEOUT, "USB/IP: connect to %s:%u timed out", host, port);
            close(fd);
            continue;
        }
        if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            r = sx_err_errno(SYSEXT_ENETWORK, soerr ? soerr : errno, "USB/IP: connect to %s:%u",
                             host, port);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        freeaddrinfo(ai);
        *fd_out = fd;
        return 0;
    }
    freeaddrinfo(ai);
    return r;
}

static int send_all(int fd, const uint8_t *p, size_t n, uint64_t deadline, const char *what)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return sx_err_errno(SYSEXT_ENETWORK, errno, "USB/IP: sending %s", what);
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int pr = poll(&pf, 1, remaining_ms(deadline));
        if (pr == 0)
            return sx_err(SYSEXT_ETIMEOUT, "USB/IP: timed out sending %s", what);
    }
    return 0;
}

/* Read into b until `need` says the message is complete. */
typedef int (*need_fn)(const uint8_t *p, size_t len, size_t *need);

static int recv_msg(int fd, sx_buf *b, need_fn need, uint64_t deadline, const char *what)
{
    for (;;) {
        size_t want;
        int r = need(b->data ? b->data : (const uint8_t *)"", b->len, &want);
        if (r < 0)
            return r;
        if (want <= b->len)
            return 0;
        if ((r = sx_buf_reserve(b, want - b->len)) < 0)
            return sx_err_prefix(r, "USB/IP: %s", what);
        ssize_t k = recv(fd, b->data + b->len, want - b->len, 0);
        if (k > 0) {
            b->len += (size_t)k;
            continue;
        }
        if (k == 0)
            return sx_err(SYSEXT_EFORMAT,
                          "%s: the server closed the connection at offset %zu; %zu bytes expected",
                          what, b->len, want);
        if (errno != EAGAIN && errno != EINTR)
            return sx_err_errno(SYSEXT_ENETWORK, errno, "USB/IP: receiving %s", what);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, remaining_ms(deadline));
        if (pr == 0)
            return sx_err(SYSEXT_ETIMEOUT, "USB/IP: timed out waiting for %s (%zu of %zu bytes)",
                          what, b->len, want);
    }
}

int sx_usbip_list(const char *host, uint16_t port, int timeout_ms, sx_usbip_devlist *out)
{
    SX_ASSERT_ARG(out);
    int fd = -1, r;
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 3600000 : timeout_ms);
    sx_buf b;
    sx_buf_init(&b, 12 + (size_t)SX_USBIP_MAX_DEVICES *
                              (SX_USBIP_DEVICE_LEN + SX_USBIP_MAX_INTERFACES * SX_USBIP_INTF_LEN));
    if ((r = sx_usbip_connect(host, port, timeout_ms, &fd)) < 0)
        goto out;
    if ((r = sx_usbip_req_devlist_encode(&b)) < 0 ||
        (r = send_all(fd, b.data, b.len, deadline, "OP_REQ_DEVLIST")) < 0)
        goto out;
    b.len = 0;
    if ((r = recv_msg(fd, &b, sx_usbip_devlist_need, deadline, "OP_REP_DEVLIST")) < 0)
        goto out;
    r = sx_usbip_rep_devlist_decode(b.data, b.len, out, NULL);
out:
    if (fd >= 0)
        close(fd);
    sx_buf_free(&b);
    return r;
}

int sx_usbip_import(sx_usbip_client **out, const char *host, uint16_t port, const char *busid,
                    int timeout_ms)
{
    SX_ASSERT_ARG(out);
    SX_ASSERT_ARG(busid);
    int fd = -1, r;
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 3600000 : timeout_ms);
    sx_buf b;
    sx_buf_init(&b, SX_USBIP_REP_IMPORT_LEN);
    sx_usbip_device dev;
    if ((r = sx_usbip_req_import_encode(&b, busid)) < 0)
        goto out;
    if ((r = sx_usbip_connect(host, port, timeout_ms, &fd)) < 0)
        goto out;
    if ((r = send_all(fd, b.data, b.len, deadline, "OP_REQ_IMPORT")) < 0)
        goto out;
    b.len = 0;
    if ((r = recv_msg(fd, &b, sx_usbip_import_need, deadline, "OP_REP_IMPORT")) < 0 ||
        (r = sx_usbip_rep_import_decode(b.data, b.len, &dev, NULL)) < 0) {
        if (r == SYSEXT_EREJECTED)
            sx_err_prefix(r, "import of '%s' from %s:%u", busid, host, port);
        goto out;
    }
    if (strcmp(dev.busid, busid) != 0) {
        r = sx_err(SYSEXT_EPROTO, "OP_REP_IMPORT: asked for bus id '%s', the server answered for '%s'",
                   busid, dev.busid);
        goto out;
    }
    r = sx_usbip_client_new(out, fd, &dev);
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    sx_buf_free(&b);
    return r;
}

/* ---- URB phase ---- */

int sx_usbip_client_new(sx_usbip_client **out, int fd, const sx_usbip_device *dev)
{
    if (!out || !dev || fd < 0) {
        if (fd >= 0)
            close(fd);
        return sx_err(SYSEXT_EINVAL, "%s: invalid argument", __func__);
    }
    sx_usbip_client *c = calloc(1, sizeof(*c));
    uint8_t *rx = malloc(RX_CAP);
    if (!c || !rx) {
        free(c);
        free(rx);
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "out of memory for a USB/IP client");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        free(c);
        free(rx);
        close(fd);
        return sx_err_errno(SYSEXT_EIO, e, "USB/IP: making the connection non-blocking");
    }
    c->fd = fd;
    c->dev = *dev;
    c->devid = dev->busnum << 16 | (dev->devnum & 0xffff);
    c->next_seq = 1;
    c->rx = rx;
    sx_buf_init(&c->out, MAX_OUTQ);
    *out = c;
    return 0;
}

static pend **bucket(sx_usbip_client *c, uint32_t seq)
{
    return &c->table[seq % BUCKETS];
}

static pend *take(sx_usbip_client *c, uint32_t seq)
{
    for (pend **pp = bucket(c, seq); *pp; pp = &(*pp)->next) {
        if ((*pp)->seqnum == seq) {
            pend *p = *pp;
            *pp = p->next;
            c->npending--;
            return p;
        }
    }
    return NULL;
}

static pend *find(sx_usbip_client *c, uint32_t seq)
{
    for (pend *p = *bucket(c, seq); p; p = p->next)
        if (p->seqnum == seq)
            return p;
    return NULL;
}

static uint32_t new_seq(sx_usbip_client *c)
{
    uint32_t s = c->next_seq++;
    if (c->next_seq == 0)
        c->next_seq = 1;
    return s;
}

static void complete(sx_usbip_client *c, pend *p, int32_t wire, uint32_t actual)
{
    sx_usb_transfer *t = p->t;
    bool timed_out = p->timed_out;
    if (p->deadline && !p->timed_out)
        c->ntimed--;
    free(p);
    t->priv = NULL;
    t->backend_status = wire;
    t->status = sx_usb_status_from_errno(wire);
    if (timed_out && t->status == SX_USB_CANCELLED)
        t->status = SX_USB_TIMED_OUT;
    t->actual_length = actual;
    if (t->status == SX_USB_COMPLETED && (t->flags & SX_USB_XFER_SHORT_NOT_OK) &&
        actual < t->length && (t->endpoint & 0x80))
        t->status = SX_USB_ERROR;
    if (t->callback)
        t->callback(t);
}

/* Complete everything still pending with `st` (the transfers' callbacks run). */
static void fail_all(sx_usbip_client *c, int32_t wire)
{
    if (c->cur) { /* a RET_SUBMIT cut short */
        pend *p = c->cur;
        c->cur = NULL;
        complete(c, p, wire, 0);
    }
    for (unsigned i = 0; i < BUCKETS; i++) {
        while (c->table[i]) {
            pend *p = c->table[i];
            c->table[i] = p->next;
            c->npending--;
            complete(c, p, wire, 0);
        }
    }
    while (c->unlinks) {
        unlink_rec *u = c->unlinks;
        c->unlinks = u->next;
        free(u);
    }
}

/* End the device: remember why, fail every pending transfer, tell the owner. */
static int end_device(sx_usbip_client *c, int code, const char *fmt, ...) SX_PRINTF(3, 4);
static int end_device(sx_usbip_client *c, int code, const char *fmt, ...)
{
    if (c->gone)
        return c->gone_code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    if (n < 0)
        c->why[0] = '\0';
    c->gone = true;
    c->gone_code = code;
    fail_all(c, SX_USBIP_ENODEV);
    if (c->gone_cb)
        c->gone_cb(c, code, c->why, c->gone_ud);
    return sx_err(code, "%s", c->why);
}

/* Send what is queued. From submit/cancel (`may_end` false) a failure is only recorded:
 * callbacks must never run from inside those, so dispatch ends the device later. */
static int flush(sx_usbip_client *c, bool may_end)
{
    if (c->send_errno && may_end)
        return end_device(c, SYSEXT_EIO, "USB/IP device %s: sending: %s", c->dev.busid,
                          strerror(c->send_errno));
    while (!c->send_errno && c->out_off < c->out.len) {
        ssize_t k = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            c->send_errno = errno;
            if (!may_end)
                return 0;
            return end_device(c, SYSEXT_EIO, "USB/IP device %s: sending: %s", c->dev.busid,
                              strerror(errno));
        }
        c->out_off += (size_t)k;
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
    } else if (c->out_off > (1u << 20)) {
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    return 0;
}

int sx_usbip_client_submit(sx_usbip_client *c, sx_usb_transfer *t)
{
    SX_ASSERT_ARG(c);
    SX_ASSERT_ARG(t);
    if (c->gone)
        return sx_err(SYSEXT_EIO, "USB/IP device %s is gone: %s", c->dev.busid, c->why);
    if (t->length && !t->buffer)
        return sx_err(SYSEXT_EINVAL, "USB transfer: %u bytes but no buffer", t->length);
    if (t->length > SX_USBIP_MAX_TRANSFER)
        return sx_err(SYSEXT_ELIMIT, "USB transfer: %u bytes exceed the limit of %u", t->length,
                      SX_USBIP_MAX_TRANSFER);
    if (c->npending >= SX_USBIP_MAX_IN_FLIGHT)
        return sx_err(SYSEXT_EBUSY, "USB/IP device %s: %u transfers already in flight",
                      c->dev.busid, SX_USBIP_MAX_IN_FLIGHT);
    sx_usbip_urb u = {.command = SX_USBIP_CMD_SUBMIT, .devid = c->devid, .length = t->length,
                      .interval = t->interval};
    switch (t->type) {
    case SX_USB_XFER_CONTROL: {
        uint16_t wlength = (uint16_t)(t->setup[6] | t->setup[7] << 8);
        if (t->length != wlength)
            return sx_err(SYSEXT_EINVAL, "USB control transfer: length %u differs from wLength %u",
                          t->length, wlength);
        if ((t->setup[0] & 0x60) == 0 && t->setup[1] == 0x05)
            return sx_err(SYSEXT_EINVAL, "USB control transfer: SET_ADDRESS is the host's, not sent");
        u.ep = 0;
        u.direction = (t->setup[0] & 0x80) ? SX_USBIP_DIR_IN : SX_USBIP_DIR_OUT;
        memcpy(u.setup, t->setup, 8);
        t->endpoint = t->setup[0] & 0x80;
        break;
    }
    case SX_USB_XFER_BULK:
    case SX_USB_XFER_INTERRUPT:
        if ((t->endpoint & 0x0f) == 0 || (t->endpoint & 0x70))
            return sx_err(SYSEXT_EINVAL, "USB transfer: endpoint address 0x%02x is not a data endpoint",
                          t->endpoint);
        u.ep = t->endpoint & 0x0f;
        u.direction = (t->endpoint & 0x80) ? SX_USBIP_DIR_IN : SX_USBIP_DIR_OUT;
        break;
    case SX_USB_XFER_ISOCHRONOUS:
        return sx_err(SYSEXT_EUNSUPPORTED, "USB/IP client: isochronous transfers are not supported");
    default:
        return sx_err(SYSEXT_EINVAL, "USB transfer: unknown type %u", t->type);
    }
    if (u.direction == SX_USBIP_DIR_IN)
        u.transfer_flags |= SX_USBIP_URB_DIR_IN;
    if (t->flags & SX_USB_XFER_SHORT_NOT_OK)
        u.transfer_flags |= SX_USBIP_URB_SHORT_NOT_OK;
    if (t->flags & SX_USB_XFER_ZERO_PACKET)
        u.transfer_flags |= SX_USBIP_URB_ZERO_PACKET;
    pend *p = calloc(1, sizeof(*p));
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory for a USB transfer");
    u.seqnum = new_seq(c);
    bool out = u.direction == SX_USBIP_DIR_OUT;
    int r = sx_usbip_urb_encode(&c->out, &u, out ? t->buffer : NULL, out ? t->length : 0, NULL,
                                false);
    if (r < 0) {
        free(p);
        return r;
    }
    p->t = t;
    p->seqnum = u.seqnum;
    p->dir = u.direction;
    p->req_len = t->length;
    if (t->timeout_ms) {
        p->deadline = now_ms() + t->timeout_ms;
        c->ntimed++;
    }
    p->next = *bucket(c, p->seqnum);
    *bucket(c, p->seqnum) = p;
    c->npending++;
    t->priv = p;
    t->status = SX_USB_COMPLETED;
    t->actual_length = 0;
    flush(c, false);
    return 0;
}

static int send_unlink(sx_usbip_client *c, pend *p)
{
    unlink_rec *u = calloc(1, sizeof(*u));
    if (!u)
        return sx_err(SYSEXT_ENOMEM, "out of memory for a USB/IP unlink");
    sx_usbip_urb m = {.command = SX_USBIP_CMD_UNLINK, .seqnum = new_seq(c), .devid = c->devid,
                      .direction = p->dir, .ep = p->t->endpoint & 0x0f,
                      .unlink_seqnum = p->seqnum};
    int r = sx_usbip_urb_encode(&c->out, &m, NULL, 0, NULL, false);
    if (r < 0) {
        free(u);
        return r;
    }
    u->seqnum = m.seqnum;
    u->target = p->seqnum;
    u->next = c->unlinks;
    c->unlinks = u;
    p->unlinking = true;
    return 0;
}

int sx_usbip_client_cancel(sx_usbip_client *c, sx_usb_transfer *t)
{
    SX_ASSERT_ARG(c);
    SX_ASSERT_ARG(t);
    pend *p = t->priv;
    if (c->gone || !p || find(c, p->seqnum) != p)
        return sx_err(SYSEXT_ENOTFOUND, "USB transfer on endpoint 0x%02x is not pending",
                      t->endpoint);
    if (p->unlinking)
        return 0;
    int r = send_unlink(c, p);
    if (r < 0)
        return r;
    flush(c, false);
    return 0;
}

/* Unlink every transfer whose deadline passed; they complete as SX_USB_TIMED_OUT. */
static int expire(sx_usbip_client *c)
{
    if (!c->ntimed)
        return 0;
    uint64_t now = now_ms();
    for (unsigned i = 0; i < BUCKETS; i++) {
        for (pend *p = c->table[i]; p; p = p->next) {
            if (!p->deadline || p->timed_out || p->deadline > now)
                continue;
            p->timed_out = true;
            c->ntimed--;
            if (!p->unlinking) {
                int r = send_unlink(c, p);
                if (r < 0)
                    return end_device(c, r, "USB/IP device %s: cancelling a timed-out transfer: %s",
                                      c->dev.busid, sx_errmsg());
            }
        }
    }
    return 0;
}

int sx_usbip_client_next_timeout(const sx_usbip_client *c)
{
    if (c->gone || !c->ntimed)
        return -1;
    uint64_t now = now_ms(), best = UINT64_MAX;
    for (unsigned i = 0; i < BUCKETS; i++)
        for (const pend *p = c->table[i]; p; p = p->next)
            if (p->deadline && !p->timed_out && p->deadline < best)
                best = p->deadline;
    if (best == UINT64_MAX)
        return -1;
    return best <= now ? 0 : (best - now > INT32_MAX ? INT32_MAX : (int)(best - now));
}

/* A RET_UNLINK: the URB it cancelled (if any) completes as cancelled. */
static int on_ret_unlink(sx_usbip_client *c, const sx_usbip_urb *h, uint64_t at)
{
    unlink_rec **pp = &c->unlinks;
    while (*pp && (*pp)->seqnum != h->seqnum)
        pp = &(*pp)->next;
    if (!*pp)
        return end_device(c, SYSEXT_EPROTO,
                          "USB/IP device %s: USBIP_RET_UNLINK at stream offset %llu answers seqnum %u, which is no pending unlink",
                          c->dev.busid, (unsigned long long)at, h->seqnum);
    unlink_rec *u = *pp;
    *pp = u->next;
    uint32_t target = u->target;
    free(u);
    if (h->status == 0)
        return 0; /* the URB completed first: its RET_SUBMIT came or is coming */
    pend *p = take(c, target);
    if (p) /* else its RET_SUBMIT came first: tolerated */
        complete(c, p, h->status, 0);
    return 0;
}

/* A complete 48-byte header is at rx_start. */
static int on_header(sx_usbip_client *c)
{
    sx_usbip_urb h;
    uint64_t at = c->rx_total;
    int r = sx_usbip_urb_header_decode(c->rx + c->rx_start, SX_USBIP_URB_HDR_LEN, &h);
    if (r < 0)
        return end_device(c, SYSEXT_EPROTO, "USB/IP device %s: at stream offset %llu: %s",
                          c->dev.busid, (unsigned long long)at, sx_errmsg());
    c->rx_start += SX_USBIP_URB_HDR_LEN;
    c->rx_total += SX_USBIP_URB_HDR_LEN;
    if (h.command == SX_USBIP_RET_UNLINK)
        return on_ret_unlink(c, &h, at);
    if (h.command != SX_USBIP_RET_SUBMIT)
        return end_device(c, SYSEXT_EPROTO,
                          "USB/IP device %s: the server sent %s at stream offset %llu",
                          c->dev.busid, sx_usbip_command_name(h.command), (unsigned long long)at);
    pend *p = find(c, h.seqnum);
    if (!p)
        return end_device(c, SYSEXT_EPROTO,
                          "USB/IP device %s: USBIP_RET_SUBMIT at stream offset %llu for seqnum %u, which is not pending",
                          c->dev.busid, (unsigned long long)at, h.seqnum);
    if (h.number_of_packets)
        return end_device(c, SYSEXT_EPROTO,
                          "USB/IP device %s: USBIP_RET_SUBMIT at stream offset %llu (seqnum %u): %u ISO packets for a non-isochronous transfer",
                          c->dev.busid, (unsigned long long)at, h.seqnum, h.number_of_packets);
    if (h.length > p->req_len)
        return end_device(c, SYSEXT_EPROTO,
                          "USB/IP device %s: USBIP_RET_SUBMIT at stream offset %llu (seqnum %u): actual_length %u > the %u bytes requested",
                          c->dev.busid, (unsigned long long)(at + 0x18), h.seqnum, h.length,
                          p->req_len);
    take(c, h.seqnum);
    if (p->dir == SX_USBIP_DIR_IN && h.length > 0) {
        c->cur = p;
        c->cur_status = h.status;
        c->cur_len = h.length;
        c->cur_got = 0;
        c->cur_msg_off = at;
        c->st = RX_DATA;
        return 0;
    }
    complete(c, p, h.status, h.length);
    return 0;
}

/* Parse what is buffered. */
static int process(sx_usbip_client *c)
{
    while (!c->gone) {
        size_t avail = c->rx_end - c->rx_start;
        if (c->st == RX_HDR) {
            if (avail < SX_USBIP_URB_HDR_LEN)
                break;
            int r = on_header(c);
            if (r < 0)
                return r;
            continue;
        }
        if (avail == 0)
            break;
        uint32_t left = c->cur_len - c->cur_got;
        size_t n = avail < left ? avail : left;
        memcpy(c->cur->t->buffer + c->cur_got, c->rx + c->rx_start, n);
        c->cur_got += (uint32_t)n;
        c->rx_start += n;
        c->rx_total += n;
        if (c->cur_got == c->cur_len) {
            pend *p = c->cur;
            c->cur = NULL;
            c->st = RX_HDR;
            complete(c, p, c->cur_status, c->cur_len);
        }
    }
    if (c->rx_start == c->rx_end)
        c->rx_start = c->rx_end = 0;
    return c->gone ? c->gone_code : 0;
}

int sx_usbip_client_dispatch(sx_usbip_client *c)
{
    SX_ASSERT_ARG(c);
    if (c->gone)
        return sx_err(c->gone_code, "%s", c->why);
    int r = expire(c);
    if (r == 0)
        r = flush(c, true);
    /* Bounded so that one busy device cannot starve the rest of a poll loop. */
    for (int rounds = 0; r == 0 && rounds < 64; rounds++) {
        if ((r = process(c)) < 0)
            break;
        uint8_t *dst;
        size_t room;
        bool direct = false;
        if (c->st == RX_DATA && c->rx_start == c->rx_end &&
            c->cur_len - c->cur_got >= DIRECT_READ_MIN) {
            dst = c->cur->t->buffer + c->cur_got; /* straight into the transfer */
            room = c->cur_len - c->cur_got;
            direct = true;
        } else {
            if (c->rx_start > 0) {
                memmove(c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
                c->rx_end -= c->rx_start;
                c->rx_start = 0;
            }
            dst = c->rx + c->rx_end;
            room = RX_CAP - c->rx_end;
        }
        ssize_t k = recv(c->fd, dst, room, 0);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            r = end_device(c, SYSEXT_EIO, "USB/IP device %s: receiving: %s", c->dev.busid,
                           strerror(errno));
            break;
        }
        if (k == 0) {
            bool mid = c->st == RX_DATA || c->rx_end > c->rx_start;
            r = end_device(c, SYSEXT_EIO, "USB/IP device %s: the server closed the connection%s",
                           c->dev.busid, mid ? " in the middle of a message" : "");
            break;
        }
        if (direct) {
            c->cur_got += (uint32_t)k;
            c->rx_total += (uint64_t)k;
            if (c->cur_got == c->cur_len) {
                pend *p = c->cur;
                c->cur = NULL;
                c->st = RX_HDR;
                complete(c, p, c->cur_status, c->cur_len);
            }
        } else {
            c->rx_end += (size_t)k;
        }
    }
    if (r == 0 && !c->gone)
        r = process(c);
    if (r == 0 && !c->gone)
        r = flush(c, true);
    if (c->gone)
        return sx_err(c->gone_code, "%s", c->why);
    return r;
}

int sx_usbip_client_run(sx_usbip_client *c, int timeout_ms)
{
    SX_ASSERT_ARG(c);
    if (c->gone)
        return sx_err(c->gone_code, "%s", c->why);
    int next = sx_usbip_client_next_timeout(c);
    if (next >= 0 && (timeout_ms < 0 || next < timeout_ms))
        timeout_ms = next;
    struct pollfd pf = {.fd = c->fd, .events = sx_usbip_client_events(c)};
    int pr = poll(&pf, 1, timeout_ms);
    if (pr < 0 && errno != EINTR)
        return sx_err_errno(SYSEXT_EIO, errno, "poll");
    if (pr <= 0 && !c->ntimed)
        return 0;
    return sx_usbip_client_dispatch(c);
}

static void sync_done(sx_usb_transfer *t)
{
    *(bool *)t->user_data = true;
}

int sx_usbip_client_control(sx_usbip_client *c, uint8_t bm_request_type, uint8_t b_request,
                            uint16_t w_value, uint16_t w_index, uint8_t *data,
                            uint16_t w_length, int timeout_ms, uint32_t *actual,
                            sx_usb_status *status)
{
    SX_ASSERT_ARG(c);
    bool done = false;
    sx_usb_transfer t;
    sx_usb_fill_control(&t, bm_request_type, b_request, w_value, w_index, data, w_length,
                        sync_done, &done);
    t.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
    int r = sx_usbip_client_submit(c, &t);
    if (r < 0)
        return r;
    /* After the timeout the server gets 1 s to answer the unlink; one that does not is
     * treated as gone, so this never hangs on a silent server. */
    uint64_t hard = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms + 1000 : 0;
    while (!done) {
        if (hard && now_ms() >= hard) {
            end_device(c, SYSEXT_ETIMEOUT, "USB/IP device %s: no answer to an unlink within 1 s",
                       c->dev.busid);
            break;
        }
        r = sx_usbip_client_run(c, hard ? remaining_ms(hard) : -1);
        if (r < 0 && !done)
            return r;
    }
    if (c->gone && t.status == SX_USB_NO_DEVICE)
        return sx_err(c->gone_code, "%s", c->why);
    if (status)
        *status = t.status;
    if (actual)
        *actual = t.actual_length;
    if (t.status == SX_USB_TIMED_OUT)
        return sx_err(SYSEXT_ETIMEOUT, "USB control request 0x%02x/0x%02x timed out after %d ms",
                      bm_request_type, b_request, timeout_ms);
    return 0;
}

void sx_usbip_client_free(sx_usbip_client *c)
{
    if (!c)
        return;
    if (!c->gone) {
        c->gone = true;
        c->gone_code = SYSEXT_ECANCELED;
        snprintf(c->why, sizeof(c->why), "closed");
        fail_all(c, SX_USBIP_ECONNRESET);
    }
    close(c->fd);
    sx_buf_free(&c->out);
    free(c->rx);
    free(c);
}

const sx_usbip_device *sx_usbip_client_device(const sx_usbip_client *c)
{
    return &c->dev;
}

int sx_usbip_client_fd(const sx_usbip_client *c)
{
    return c->fd;
}

short sx_usbip_client_events(const sx_usbip_client *c)
{
    if (c->gone)
        return 0;
    return (short)(POLLIN | (c->out.len > c->out_off || c->send_errno ? POLLOUT : 0));
}

bool sx_usbip_client_gone(const sx_usbip_client *c)
{
    return c->gone;
}

const char *sx_usbip_client_error(const sx_usbip_client *c)
{
    return c->gone ? c->why : "";
}

size_t sx_usbip_client_pending(const sx_usbip_client *c)
{
    return c->npending + (c->cur ? 1 : 0);
}

void sx_usbip_client_on_gone(sx_usbip_client *c, sx_usbip_gone_cb cb, void *user_data)
{
    c->gone_cb = cb;
    c->gone_ud = user_data;
}

static int tr_submit(void *impl, sx_usb_transfer *t)
{
    return sx_usbip_client_submit(impl, t);
}

static int tr_cancel(void *impl, sx_usb_transfer *t)
{
    return sx_usbip_client_cancel(impl, t);
}

static int tr_fd(void *impl)
{
    return sx_usbip_client_fd(impl);
}

static short tr_events(void *impl)
{
    return sx_usbip_client_events(impl);
}

static int tr_dispatch(void *impl)
{
    return sx_usbip_client_dispatch(impl);
}

static int tr_next_timeout(void *impl)
{
    return sx_usbip_client_next_timeout(impl);
}

static const sx_usb_transport_ops usbip_ops = {
    .name = "usbip",
    .submit = tr_submit,
    .cancel = tr_cancel,
    .fd = tr_fd,
    .events = tr_events,
    .dispatch = tr_dispatch,
    .next_timeout_ms = tr_next_timeout,
};

void sx_usbip_client_transport(sx_usbip_client *c, sx_usb_transport *out)
{
    out->ops = &usbip_ops;
    out->impl = c;
}
