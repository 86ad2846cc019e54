/* The socket side: one epoll loop, non-blocking connections with bounded buffers. */
#include "util/common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/jobs.h"
#include "sysextd/proto.h"

/* epoll tags: connections use their slot index + 16. */
enum { TAG_LISTEN = 1, TAG_SIGNAL = 2, TAG_OWNER = 3, TAG_JOBS = 4, TAG_HOST = 5, TAG_CONN0 = 16 };

sxd_conn *sxd_conn_by_serial(sxd_daemon *d, uint64_t serial)
{
    for (size_t i = 0; i < SXD_MAX_CONNS; i++)
        if (d->conns[i] && d->conns[i]->serial == serial && !d->conns[i]->dead)
            return d->conns[i];
    return NULL;
}

static size_t slot_of(sxd_daemon *d, sxd_conn *c)
{
    for (size_t i = 0; i < SXD_MAX_CONNS; i++)
        if (d->conns[i] == c)
            return i;
    return SXD_MAX_CONNS;
}

static void update_events(sxd_daemon *d, sxd_conn *c)
{
    /* A closing connection waits for EPOLLOUT, which flush() turns into the close. */
    /* A busy one is not read: its requests are answered in order (HUP/ERR still arrive). */
    uint32_t in = c->busy ? 0 : EPOLLIN;
    struct epoll_event ev = {.events = c->closing ? EPOLLOUT : in | (c->out.len ? EPOLLOUT : 0),
                             .data.u64 = TAG_CONN0 + slot_of(d, c)};
    epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(sxd_daemon *d, sxd_conn *c)
{
    size_t slot = slot_of(d, c);
    c->dead = true;
    sxd_conn_gone(d, c);
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    sx_buf_free(&c->in);
    sx_buf_free(&c->out);
    sxd_peer_clear(&c->peer);
    sxd_code_clear(&c->app);
    free(c->app_error);
    free(c);
    if (slot < SXD_MAX_CONNS) {
        d->conns[slot] = NULL;
        d->nconns--;
    }
}

/* Write what can be written now. false when the connection must go. */
static bool flush(sxd_daemon *d, sxd_conn *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return false;
        }
        off += (size_t)n;
    }
    if (off) {
        memmove(c->out.data, c->out.data + off, c->out.len - off);
        c->out.len -= off;
    }
    if (c->closing && c->out.len == 0)
        return false;
    update_events(d, c);
    return true;
}

void sxd_send(sxd_daemon *d, sxd_conn *c, plist_t msg)
{
    if (!msg)
        return;
    if (!c || c->dead) {
        plist_free(msg);
        return;
    }
    if (sxd_msg_encode(msg, &c->out) < 0) {
        /* The peer does not read what we send: drop it rather than buffer without end. */
        fprintf(stderr, "sysextd: connection %llu: %s; closing\n",
                (unsigned long long)c->serial, sx_errmsg());
        c->closing = true;
        c->out.len = 0;
    }
    plist_free(msg);
    update_events(d, c);
}

static void send_error_and_close(sxd_daemon *d, sxd_conn *c, int code)
{
    plist_t m = sxd_msg_new("error");
    sxd_dict_set_uint(m, "err", (uint64_t)-code);
    sxd_dict_set_str(m, "message", sx_errmsg());
    sxd_send(d, c, m);
    c->closing = true;
    update_events(d, c);
}

/* Handle every whole frame in the input buffer, stopping at a request that went to a worker. */
static void process_frames(sxd_daemon *d, sxd_conn *c)
{
    size_t off = 0;
    while (!c->closing && !c->dead && !c->busy) {
        plist_t msg = NULL;
        size_t used = 0;
        int rc = sxd_msg_decode(c->in.data + off, c->in.len - off, SXD_PROTO_MAX, &msg, &used);
        if (rc == 0)
            break;
        if (rc < 0) {
            send_error_and_close(d, c, rc);
            break;
        }
        off += used;
        sxd_handle_message(d, c, msg);
        plist_free(msg);
        /* A client flooding requests without reading the replies hits the out limit. */
        if (c->out.len > SXD_MAX_OUTBUF) {
            c->closing = true;
            c->out.len = 0;
        }
    }
    if (c->dead)
        return;
    if (off) {
        memmove(c->in.data, c->in.data + off, c->in.len - off);
        c->in.len -= off;
    }
    /* Only a connection we are reading can be slow to finish its frame. */
    c->partial_since = c->in.len && !c->busy ? (c->partial_since ? c->partial_since : sxd_now_ms()) : 0;
}

static void conn_read(sxd_daemon *d, sxd_conn *c)
{
    uint8_t tmp[16384];
    while (!c->busy) {
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(d, c);
            return;
        }
        if (n == 0) {
            conn_close(d, c);
            return;
        }
        if (sx_buf_append(&c->in, tmp, (size_t)n) < 0) {
            sx_err(SYSEXT_ELIMIT, "sysextd: connection input above %u bytes", SXD_PROTO_MAX + 4);
            send_error_and_close(d, c, SYSEXT_ELIMIT);
            return;
        }
        process_frames(d, c);
        if (c->dead)
            return;
        if (c->closing)
            break;
    }
    if (!c->dead && !flush(d, c))
        conn_close(d, c);
}

void sxd_conn_resume(sxd_daemon *d, sxd_conn *c)
{
    if (!c || c->dead)
        return;
    c->busy = false;
    process_frames(d, c);
    if (!c->dead && !flush(d, c))
        conn_close(d, c);
}

static void do_accept(sxd_daemon *d)
{
    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (d->nconns >= SXD_MAX_CONNS) {
            close(fd); /* over the cap: the client sees EOF and may retry */
            continue;
        }
        sxd_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->serial = ++d->next_serial;
        sx_buf_init(&c->in, SXD_PROTO_MAX + 4 + sizeof(uint32_t));
        sx_buf_init(&c->out, SXD_MAX_OUTBUF + SXD_PROTO_MAX + 8);
        if (sxd_peer_from_fd(fd, &c->peer) < 0) {
            close(fd);
            free(c);
            continue;
        }
        size_t slot = 0;
        while (slot < SXD_MAX_CONNS && d->conns[slot])
            slot++;
        d->conns[slot] = c;
        d->nconns++;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_CONN0 + slot};
        if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(d, c);
    }
}

/* Tests shorten the partial-message timeout with SYSEXTD_PARTIAL_TIMEOUT_MS. */
static int64_t partial_timeout_ms = SXD_PARTIAL_TIMEOUT_MS;

static int next_timeout(sxd_daemon *d)
{
    int t = sxd_owner_timeout_ms(d->owner);
    int ht = sxd_host_next_timeout(d->host);
    if (ht >= 0 && (t < 0 || ht < t))
        t = ht;
    int ts = sxd_services_timeout(d);
    if (ts >= 0 && (t < 0 || ts < t))
        t = ts;
    int64_t now = sxd_now_ms();
    for (size_t i = 0; i < SXD_MAX_CONNS; i++) {
        sxd_conn *c = d->conns[i];
        if (!c || !c->partial_since)
            continue;
        int64_t left = c->partial_since + partial_timeout_ms - now;
        if (left < 0)
            left = 0;
        if (t < 0 || left < t)
            t = (int)left;
    }
    return t;
}

static void expire(sxd_daemon *d)
{
    int64_t now = sxd_now_ms();
    for (size_t i = 0; i < SXD_MAX_CONNS; i++) {
        sxd_conn *c = d->conns[i];
        if (c && c->partial_since && now - c->partial_since >= partial_timeout_ms) {
            fprintf(stderr, "sysextd: connection %llu: partial message timed out\n",
                    (unsigned long long)c->serial);
            conn_close(d, c);
        }
    }
    char *due;
    while ((due = sxd_owner_take_due(d->owner))) {
        sxd_owner_due(d, due);
        free(due);
    }
}

static void handle_signal(sxd_daemon *d)
{
    struct signalfd_siginfo si;
    while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            if (sxd_reload_policy(d) < 0)
                fprintf(stderr, "sysextd: policy reload failed, keeping the old one: %s\n",
                        sx_errmsg());
            else
                fprintf(stderr, "sysextd: policy reloaded\n");
        } else {
            d->quit = true;
        }
    }
}

int sxd_run(sxd_daemon *d)
{
    const char *pt = getenv("SYSEXTD_PARTIAL_TIMEOUT_MS");
    if (pt && atol(pt) > 0)
        partial_timeout_ms = atol(pt);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->sig_fd < 0 || d->epfd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "sysextd: epoll/signalfd");
    int fl = fcntl(d->listen_fd, F_GETFL);
    fcntl(d->listen_fd, F_SETFL, fl | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->listen_fd, &ev);
    ev.data.u64 = TAG_SIGNAL;
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->sig_fd, &ev);
    ev.data.u64 = TAG_OWNER;
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, sxd_owner_fd(d->owner), &ev);
    ev.data.u64 = TAG_JOBS;
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, sxd_jobs_fd(d->jobs), &ev);
    /* the driver host keeps its sockets and pidfds in one epoll set of its own */
    int hfds[4];
    size_t nh = sxd_host_fds(d->host, hfds, SX_ARRAY_SIZE(hfds));
    ev.data.u64 = TAG_HOST;
    for (size_t i = 0; i < nh; i++)
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, hfds[i], &ev);

    struct epoll_event evs[32];
    while (!d->quit) {
        int n = epoll_wait(d->epfd, evs, 32, next_timeout(d));
        if (n < 0 && errno != EINTR)
            return sx_err_errno(SYSEXT_EIO, errno, "sysextd: epoll_wait");
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_LISTEN) {
                do_accept(d);
            } else if (tag == TAG_SIGNAL) {
                handle_signal(d);
            } else if (tag == TAG_OWNER) {
                sxd_owner_handle(d->owner);
            } else if (tag == TAG_JOBS) {
                sxd_jobs_dispatch(d->jobs, d);
            } else if (tag == TAG_HOST) {
                sxd_host_dispatch(d->host);
            } else if (tag >= SXD_TAG_DEVICE0) {
                sxd_services_fd_ready(d, tag, evs[i].events);
            } else if (tag >= TAG_CONN0 && tag - TAG_CONN0 < SXD_MAX_CONNS) {
                sxd_conn *c = d->conns[tag - TAG_CONN0];
                if (!c)
                    continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                    conn_close(d, c);
                    continue;
                }
                if (evs[i].events & EPOLLOUT && !flush(d, c)) {
                    conn_close(d, c);
                    continue;
                }
                if (evs[i].events & EPOLLIN)
                    conn_read(d, c);
            }
        }
        expire(d);
        sxd_host_dispatch(d->host); /* due timers: relaunches, reply timeouts */
        sxd_services_tick(d);
    }
    for (size_t i = 0; i < SXD_MAX_CONNS; i++)
        if (d->conns[i])
            conn_close(d, d->conns[i]);
    close(d->epfd);
    close(d->sig_fd);
    return 0;
}
