/* sysext-vusb: a USB/IP server (the exporting side) for the emulated devices in vusb_dev.c.
 *
 *   sysext-vusb --listen 127.0.0.1:PORT --device sensor|loopback [--device ...]
 *               [--rate HZ] [--inject stall@N|disconnect@N|malformed@N[:EP] ...]
 *
 * Devices get bus ids 1-1, 1-2, ... in the order given. PORT 0 picks a free port; the bound
 * address is printed as "listening on HOST:PORT". One poll loop serves every connection: a
 * connection answers OP_REQ_DEVLIST, or imports one device with OP_REQ_IMPORT and then
 * carries its URBs, as the Linux usbipd does. SIGTERM/SIGINT end it cleanly.
 *
 * Injections count the CMD_SUBMITs of each imported connection (control ones included),
 * from 1, or with a ":EP" suffix (e.g. stall@3:0x02) only those on endpoint address EP: stall@N answers the Nth with -EPIPE and halts its endpoint (until CLEAR_FEATURE
 * ENDPOINT_HALT or SET_INTERFACE); disconnect@N closes the connection on the Nth without
 * answering; malformed@N answers the Nth with a RET_SUBMIT whose actual_length exceeds the
 * request's. */
#include "util/common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/vusb/vusb.h"
#include "util/buf.h"

#define MAX_DEVICES 16
#define MAX_CONNS 64
#define MAX_INJECT 16
#define RX_CHUNK (256 * 1024)
#define OUT_HIGH_WATER (8u << 20)

typedef enum { INJ_STALL, INJ_DISCONNECT, INJ_MALFORMED } inj_kind;

typedef struct vusb_conn {
    int fd;
    bool op_done;   /* an OP_ request was answered: URB phase (if dev) or closing */
    bool closing;   /* close once `out` is flushed */
    bool dead;      /* close now */
    vusb_device *dev;
    sx_buf rx;
    size_t rx_off;
    sx_buf out;
    size_t out_off; /* bytes of `out` already sent */
    unsigned submits;
    unsigned ep_submits[32]; /* per endpoint: ep + 16 * dir */
} vusb_conn;

static struct {
    vusb_device devs[MAX_DEVICES];
    unsigned ndevs;
    vusb_conn *conns[MAX_CONNS];
    struct {
        inj_kind kind;
        unsigned n;
        int ep; /* endpoint address (0x81, 0x02, 0 for control) to count on, -1: all */
    } inject[MAX_INJECT];
    unsigned ninject;
    uint32_t rate;
    bool verbose;
} g = {.rate = 100};

#define LOG(...)                                                                                   \
    do {                                                                                           \
        if (g.verbose)                                                                             \
            fprintf(stderr, "sysext-vusb: " __VA_ARGS__);                                          \
    } while (0)

void vusb_urb_free(vusb_urb *u)
{
    if (u) {
        if (u->owns_data)
            free(u->data);
        free(u);
    }
}

int vusb_urb_keep(vusb_urb *u)
{
    if (u->owns_data || !u->data)
        return 0;
    uint8_t *p = malloc(u->len ? u->len : 1);
    if (!p)
        return -1;
    memcpy(p, u->data, u->len);
    u->data = p;
    u->owns_data = true;
    return 0;
}

/* RET_SUBMIT with actual_length `actual`; for IN, the data given as two pieces is appended
 * straight from where it lies (the loopback FIFO may wrap). */
static void send_ret(vusb_conn *c, vusb_urb *u, int32_t status, uint32_t actual, const void *a,
                     uint32_t alen, const void *b, uint32_t blen)
{
    if (c && !c->dead) {
        bool in = u->dir == SX_USBIP_DIR_IN;
        sx_usbip_urb r = {.command = SX_USBIP_RET_SUBMIT, .seqnum = u->seqnum, .status = status,
                          .length = actual};
        int e = sx_buf_reserve(&c->out, SX_USBIP_URB_HDR_LEN + (in ? alen + blen : 0));
        if (e == 0) /* the header alone: the data follows below */
            e = sx_usbip_urb_encode(&c->out, &r, NULL, 0, NULL, false);
        if (e == 0 && in && alen)
            e = sx_buf_append(&c->out, a, alen);
        if (e == 0 && in && blen)
            e = sx_buf_append(&c->out, b, blen);
        if (e < 0) {
            fprintf(stderr, "sysext-vusb: %s\n", sx_errmsg());
            c->dead = true;
        }
    }
    vusb_urb_free(u);
}

void vusb_complete2(vusb_conn *c, vusb_urb *u, int32_t status, const void *a, uint32_t alen,
                    const void *b, uint32_t blen)
{
    send_ret(c, u, status, alen + blen, a, alen, b, blen);
}

void vusb_complete(vusb_conn *c, vusb_urb *u, int32_t status, const void *data, uint32_t len)
{
    bool in = u->dir == SX_USBIP_DIR_IN;
    send_ret(c, u, status, len, data, in ? len : 0, NULL, 0);
}

static void conn_free(vusb_conn *c)
{
    if (c->dev) {
        LOG("%s released\n", c->dev->info.busid);
        vusb_device_detach(c->dev);
    }
    close(c->fd);
    sx_buf_free(&c->rx);
    sx_buf_free(&c->out);
    free(c);
}

static vusb_device *find_dev(const char *busid)
{
    for (unsigned i = 0; i < g.ndevs; i++)
        if (strcmp(g.devs[i].info.busid, busid) == 0)
            return &g.devs[i];
    return NULL;
}

/* Is this submit (on endpoint `ep`, direction `dir`) the Nth that an injection counts? */
static bool inject_at(vusb_conn *c, inj_kind k, uint32_t ep, uint32_t dir)
{
    for (unsigned i = 0; i < g.ninject; i++) {
        if (g.inject[i].kind != k)
            continue;
        if (g.inject[i].ep < 0 ? g.inject[i].n == c->submits
                               : ((uint32_t)(g.inject[i].ep & 0x0f) == ep &&
                                  (ep == 0 || (g.inject[i].ep & 0x80 ? 1u : 0u) == dir) &&
                                  g.inject[i].n == c->ep_submits[ep + 16 * (ep ? dir : 0)]))
            return true;
    }
    return false;
}

/* Handle complete management messages. Returns bytes consumed, 0 if more are needed. */
static size_t handle_op(vusb_conn *c, const uint8_t *p, size_t len)
{
    sx_usbip_op_header h;
    if (len < SX_USBIP_OP_HDR_LEN)
        return 0;
    if (sx_usbip_op_header_decode(p, len, &h, "OP request") < 0) {
        LOG("%s\n", sx_errmsg());
        c->dead = true;
        return len;
    }
    if (h.code == SX_USBIP_OP_REQ_DEVLIST) {
        sx_usbip_device list[MAX_DEVICES];
        for (unsigned i = 0; i < g.ndevs; i++)
            list[i] = g.devs[i].info;
        if (sx_usbip_rep_devlist_encode(&c->out, list, g.ndevs) < 0)
            c->dead = true;
        c->op_done = c->closing = true;
        return SX_USBIP_OP_HDR_LEN;
    }
    if (h.code == SX_USBIP_OP_REQ_IMPORT) {
        char busid[SX_USBIP_BUSID_LEN + 1];
        if (len < SX_USBIP_REQ_IMPORT_LEN)
            return 0;
        sx_usbip_req_import_decode(p, len, busid);
        vusb_device *d = find_dev(busid);
        uint32_t st = !d ? SX_USBIP_ST_NODEV : d->owner ? SX_USBIP_ST_DEV_BUSY : SX_USBIP_ST_OK;
        if (st == SX_USBIP_ST_OK && vusb_device_attach(d, c) < 0) {
            fprintf(stderr, "sysext-vusb: %s\n", sx_errmsg());
            st = SX_USBIP_ST_DEV_ERR;
        }
        LOG("import '%s': status %u\n", busid, st);
        if (sx_usbip_rep_import_encode(&c->out, st, d ? &d->info : NULL) < 0)
            c->dead = true;
        c->op_done = true;
        if (st == SX_USBIP_ST_OK)
            c->dev = d;
        else
            c->closing = true;
        return SX_USBIP_REQ_IMPORT_LEN;
    }
    LOG("unsupported operation 0x%04x\n", h.code);
    c->dead = true;
    return len;
}

static void send_ret_unlink(vusb_conn *c, uint32_t seqnum, int32_t status)
{
    sx_usbip_urb r = {.command = SX_USBIP_RET_UNLINK, .seqnum = seqnum, .status = status};
    if (sx_usbip_urb_encode(&c->out, &r, NULL, 0, NULL, false) < 0)
        c->dead = true;
}

static size_t handle_urb(vusb_conn *c, const uint8_t *p, size_t len)
{
    sx_usbip_urb h;
    size_t plen;
    if (len < SX_USBIP_URB_HDR_LEN)
        return 0;
    if (sx_usbip_urb_header_decode(p, len, &h) < 0 ||
        sx_usbip_urb_payload_len(&h, false, &plen) < 0) {
        LOG("%s\n", sx_errmsg());
        c->dead = true;
        return len;
    }
    if (h.command != SX_USBIP_CMD_SUBMIT && h.command != SX_USBIP_CMD_UNLINK) {
        LOG("a client sent %s\n", sx_usbip_command_name(h.command));
        c->dead = true;
        return len;
    }
    uint32_t devid = c->dev->info.busnum << 16 | c->dev->info.devnum;
    if (h.devid != devid) { /* the Linux stub drops such a connection too */
        LOG("devid 0x%08x does not match 0x%08x\n", h.devid, devid);
        c->dead = true;
        return len;
    }
    if (len - SX_USBIP_URB_HDR_LEN < plen)
        return 0;
    if (h.command == SX_USBIP_CMD_UNLINK) {
        bool pending = vusb_device_unlink(c->dev, h.unlink_seqnum);
        send_ret_unlink(c, h.seqnum, pending ? SX_USBIP_ECONNRESET : 0);
        return SX_USBIP_URB_HDR_LEN;
    }
    c->submits++;
    c->ep_submits[h.ep + 16 * (h.ep ? h.direction : 0)]++;
    if (inject_at(c, INJ_DISCONNECT, h.ep, h.direction)) {
        LOG("injected disconnect at submit %u\n", c->submits);
        c->dead = true;
        return len;
    }
    if (inject_at(c, INJ_MALFORMED, h.ep, h.direction)) {
        LOG("injected malformed reply at submit %u\n", c->submits);
        sx_usbip_urb r = {.command = SX_USBIP_RET_SUBMIT, .seqnum = h.seqnum,
                          .length = h.length + 4096};
        /* The header alone: the lie is in actual_length. */
        sx_usbip_urb_encode(&c->out, &r, NULL, 0, NULL, false);
        return SX_USBIP_URB_HDR_LEN + plen;
    }
    vusb_urb *u = calloc(1, sizeof(*u));
    if (!u) {
        c->dead = true;
        return len;
    }
    u->seqnum = h.seqnum;
    u->ep = h.ep;
    u->dir = h.direction;
    u->len = h.length;
    u->flags = h.transfer_flags;
    memcpy(u->setup, h.setup, 8);
    if (h.number_of_packets) { /* no isochronous endpoint here */
        vusb_complete(c, u, SX_USBIP_EPIPE, NULL, 0);
        return SX_USBIP_URB_HDR_LEN + plen;
    }
    if (h.direction == SX_USBIP_DIR_OUT && h.length)
        u->data = (uint8_t *)p + SX_USBIP_URB_HDR_LEN; /* borrowed, see vusb_urb_keep */
    vusb_device_submit(c->dev, u, inject_at(c, INJ_STALL, u->ep, u->dir));
    return SX_USBIP_URB_HDR_LEN + plen;
}

static void conn_parse(vusb_conn *c)
{
    while (!c->dead && !c->closing && c->rx.len > c->rx_off) {
        const uint8_t *p = c->rx.data + c->rx_off;
        size_t len = c->rx.len - c->rx_off, used;
        if (!c->op_done)
            used = handle_op(c, p, len);
        else if (c->dev)
            used = handle_urb(c, p, len);
        else
            used = len;
        if (used == 0)
            break;
        c->rx_off += used;
    }
    if (c->rx_off == c->rx.len) {
        c->rx.len = c->rx_off = 0;
    } else if (c->rx_off > (1u << 20) || c->rx_off * 2 > c->rx.len) {
        memmove(c->rx.data, c->rx.data + c->rx_off, c->rx.len - c->rx_off);
        c->rx.len -= c->rx_off;
        c->rx_off = 0;
    }
}

static void conn_read(vusb_conn *c)
{
    if (sx_buf_reserve(&c->rx, RX_CHUNK) < 0) {
        c->dead = true;
        return;
    }
    ssize_t n = recv(c->fd, c->rx.data + c->rx.len, RX_CHUNK, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->dead = true;
        return;
    }
    if (n > 0) {
        c->rx.len += (size_t)n;
        conn_parse(c);
    }
}

static void conn_flush(vusb_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                c->dead = true;
            break;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
    } else if (c->out_off > (1u << 20)) { /* compact rarely: never a memmove per send */
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    if (c->closing && c->out.len == 0)
        c->dead = true;
}

static int parse_listen(const char *s, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostsz || strlen(colon + 1) == 0 || strlen(colon + 1) >= portsz)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portsz, "%s", colon + 1);
    return 0;
}

static int open_listener(const char *spec)
{
    char host[256], port[16];
    if (parse_listen(spec, host, sizeof(host), port, sizeof(port)) < 0) {
        fprintf(stderr, "sysext-vusb: --listen '%s': expected HOST:PORT\n", spec);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    int e = getaddrinfo(host, port, &hints, &ai);
    if (e) {
        fprintf(stderr, "sysext-vusb: --listen '%s': %s\n", spec, gai_strerror(e));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        fprintf(stderr, "sysext-vusb: listen on %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char nhost[NI_MAXHOST], nport[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, nhost, sizeof(nhost), nport, sizeof(nport),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n",
               nhost, nport);
    fflush(stdout);
    return fd;
}

static void accept_one(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    unsigned slot = 0;
    while (slot < MAX_CONNS && g.conns[slot])
        slot++;
    vusb_conn *c = slot < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    sx_buf_init(&c->rx, SX_USBIP_URB_HDR_LEN + SX_USBIP_MAX_TRANSFER +
                            SX_USBIP_MAX_ISO_PACKETS * SX_USBIP_ISO_DESC_LEN + 2 * RX_CHUNK);
    sx_buf_init(&c->out, 0);
    g.conns[slot] = c;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sysext-vusb [--listen HOST:PORT] --device sensor|loopback [--device ...]\n"
               "                   [--rate HZ] [--inject stall@N|disconnect@N|malformed@N[:EP]]...\n"
               "                   [--verbose]\n"
               "A USB/IP server emulating USB 2.0 devices (bus ids 1-1, 1-2, ... in order).\n"
               "The default address is 127.0.0.1:3240; port 0 picks a free one.\n");
}

static int parse_inject(const char *s)
{
    static const struct {
        const char *name;
        inj_kind kind;
    } kinds[] = {{"stall@", INJ_STALL}, {"disconnect@", INJ_DISCONNECT}, {"malformed@", INJ_MALFORMED}};
    if (g.ninject == MAX_INJECT)
        return -1;
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++) {
        size_t n = strlen(kinds[i].name);
        if (strncmp(s, kinds[i].name, n) != 0)
            continue;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s + n, &end, 10);
        if (errno || end == s + n || v == 0 || v > UINT32_MAX)
            return -1;
        long ep = -1;
        if (*end == ':') {
            char *e2;
            const char *q = end + 1;
            ep = strtol(q, &e2, 0);
            if (e2 == q || *e2 || ep < 0 || ep > 0x8f || (ep & 0x70))
                return -1;
            end = e2;
        }
        if (*end)
            return -1;
        g.inject[g.ninject].ep = (int)ep;
        g.inject[g.ninject].kind = kinds[i].kind;
        g.inject[g.ninject++].n = (unsigned)v;
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"device", required_argument, NULL, 'd'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"inject", required_argument, NULL, 'i'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen_spec = "127.0.0.1:3240";
    vusb_kind kinds[MAX_DEVICES];
    unsigned nk = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            listen_spec = optarg;
            break;
        case 'd':
            if (nk == MAX_DEVICES) {
                fprintf(stderr, "sysext-vusb: at most %d devices\n", MAX_DEVICES);
                return 2;
            }
            if (strcmp(optarg, "sensor") == 0)
                kinds[nk++] = VUSB_SENSOR;
            else if (strcmp(optarg, "loopback") == 0)
                kinds[nk++] = VUSB_LOOPBACK;
            else {
                fprintf(stderr, "sysext-vusb: --device '%s': expected sensor or loopback\n", optarg);
                return 2;
            }
            break;
        case 'r': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || v < 1 || v > VUSB_SENSOR_MAX_RATE) {
                fprintf(stderr, "sysext-vusb: --rate '%s': expected 1-%d\n", optarg,
                        VUSB_SENSOR_MAX_RATE);
                return 2;
            }
            g.rate = (uint32_t)v;
            break;
        }
        case 'i':
            if (parse_inject(optarg) < 0) {
                fprintf(stderr, "sysext-vusb: --inject '%s': expected stall@N, disconnect@N or "
                                "malformed@N (N >= 1), optionally :EP (e.g. :0x81)\n", optarg);
                return 2;
            }
            break;
        case 'v':
            g.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || nk == 0) {
        usage(stderr);
        return 2;
    }
    for (unsigned i = 0; i < nk; i++) {
        if (vusb_device_init(&g.devs[i], kinds[i], i, g.rate) < 0) {
            fprintf(stderr, "sysext-vusb: %s\n", sx_errmsg());
            return 2;
        }
        g.ndevs++;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int lfd = open_listener(listen_spec);
    int rc = 0;
    if (sfd < 0 || lfd < 0) {
        rc = 2;
        goto out;
    }

    for (;;) {
        struct pollfd pf[2 + MAX_DEVICES + MAX_CONNS];
        vusb_conn *pc[MAX_CONNS];
        vusb_device *pd[MAX_DEVICES];
        nfds_t n = 0, nd = 0, nc = 0;
        pf[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (unsigned i = 0; i < g.ndevs; i++)
            if (g.devs[i].timerfd >= 0) {
                pd[nd++] = &g.devs[i];
                pf[n++] = (struct pollfd){.fd = g.devs[i].timerfd, .events = POLLIN};
            }
        for (unsigned i = 0; i < MAX_CONNS; i++) {
            vusb_conn *c = g.conns[i];
            if (!c)
                continue;
            short ev = 0;
            size_t queued = c->out.len - c->out_off;
            if (!c->closing && queued < OUT_HIGH_WATER)
                ev |= POLLIN;
            if (queued)
                ev |= POLLOUT;
            pc[nc++] = c;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        if (poll(pf, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("sysext-vusb: poll");
            rc = 2;
            break;
        }
        if (pf[0].revents) {
            LOG("signal: shutting down\n");
            break;
        }
        if (pf[1].revents & POLLIN)
            accept_one(lfd);
        for (nfds_t i = 0; i < nd; i++)
            if (pf[2 + i].revents & POLLIN)
                vusb_device_tick(pd[i]);
        for (nfds_t i = 0; i < nc; i++) {
            vusb_conn *c = pc[i];
            short re = pf[2 + nd + i].revents;
            if (re & (POLLIN | POLLHUP | POLLERR))
                conn_read(c);
            if (re & POLLOUT)
                conn_flush(c);
        }
        /* Flush what ticks and reads produced, then reap. */
        for (unsigned i = 0; i < MAX_CONNS; i++) {
            vusb_conn *c = g.conns[i];
            if (!c)
                continue;
            if (!c->dead && c->out.len > c->out_off)
                conn_flush(c);
            if (c->dead) {
                conn_free(c);
                g.conns[i] = NULL;
            }
        }
    }
out:
    for (unsigned i = 0; i < MAX_CONNS; i++)
        if (g.conns[i]) {
            conn_free(g.conns[i]);
            g.conns[i] = NULL;
        }
    for (unsigned i = 0; i < g.ndevs; i++)
        vusb_device_destroy(&g.devs[i]);
    if (lfd >= 0)
        close(lfd);
    if (sfd >= 0)
        close(sfd);
    return rc;
}
