/* The app side of user clients (sysext/ioconnect.h): finding and opening through sysextd,
 * then calls, completions and shared memory straight over the driver's socket. */
#include "util/common.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "libsysext/src/ioconnect_wire.h"
#include "runtime/include/sysext/driverkit/DKUserClientProtocol.h"
#include "sysext/ioconnect.h"
#include "libsysext/src/client.h"
#include "sysextd/proto.h"


struct async_pending {
    struct async_pending *next;
    uint64_t ref;
    sysext_ioconnect_async_fn cb;
    void *ctx;
};

struct completion {
    struct completion *next;
    uint64_t ref;
    int32_t status;
    uint32_t n;
    uint64_t data[DK_UC_MAX_ASYNC_ARGS];
};

struct mapping {
    struct mapping *next;
    void *addr;
    size_t len;
};

struct sysext_ioconnect {
    int fd;
    uint64_t next_seq, next_ref;
    int32_t last_kr;
    bool broken;
    int broken_rc;
    uint8_t *rbuf; /* one datagram; decoded messages point into it until the next receive */
    struct async_pending *asyncs;
    struct completion *q_head, *q_tail;
    struct mapping *maps;
};

/* ---- IOReturn names and codes -------------------------------------------------------- */

static const struct {
    uint32_t sub;
    const char *name;
    int code;
} IORET[] = {
    { 0x2bc, "kIOReturnError", SYSEXT_ERROR },
    { 0x2bd, "kIOReturnNoMemory", SYSEXT_ENOMEM },
    { 0x2be, "kIOReturnNoResources", SYSEXT_ERROR },
    { 0x2bf, "kIOReturnIPCError", SYSEXT_EPROTO },
    { 0x2c0, "kIOReturnNoDevice", SYSEXT_ENOTFOUND },
    { 0x2c1, "kIOReturnNotPrivileged", SYSEXT_EPERM },
    { 0x2c2, "kIOReturnBadArgument", SYSEXT_EINVAL },
    { 0x2c5, "kIOReturnExclusiveAccess", SYSEXT_EBUSY },
    { 0x2c7, "kIOReturnUnsupported", SYSEXT_EUNSUPPORTED },
    { 0x2c9, "kIOReturnInternalError", SYSEXT_ERROR },
    { 0x2ca, "kIOReturnIOError", SYSEXT_EIO },
    { 0x2cd, "kIOReturnNotOpen", SYSEXT_ERROR },
    { 0x2d5, "kIOReturnBusy", SYSEXT_EBUSY },
    { 0x2d6, "kIOReturnTimeout", SYSEXT_ETIMEOUT },
    { 0x2d7, "kIOReturnOffline", SYSEXT_EBUSY },
    { 0x2d8, "kIOReturnNotReady", SYSEXT_EBUSY },
    { 0x2dd, "kIOReturnPortExists", SYSEXT_EEXISTS },
    { 0x2e2, "kIOReturnNotPermitted", SYSEXT_EPERM },
    { 0x2db, "kIOReturnNoSpace", SYSEXT_ELIMIT },
    { 0x2e7, "kIOReturnUnderrun", SYSEXT_EPROTO },
    { 0x2ea, "kIOReturnNoCompletion", SYSEXT_EUNSUPPORTED },
    { 0x2eb, "kIOReturnAborted", SYSEXT_ECANCELED },
    { 0x2f0, "kIOReturnNotFound", SYSEXT_ENOTFOUND },
};

static int ioreturn_error(int32_t kr, const char *what)
{
    uint32_t u = (uint32_t)kr;
    for (size_t i = 0; i < sizeof(IORET) / sizeof(IORET[0]); i++)
        if (u == (0xe0000000u | IORET[i].sub))
            return sx_err(IORET[i].code, "%s: the driver returned %s (0x%08x)", what, IORET[i].name, u);
    return sx_err(SYSEXT_ERROR, "%s: the driver returned 0x%08x", what, u);
}

/* ---- the driver socket ------------------------------------------------------------------ */

static int mark_broken(sysext_ioconnect *c, int rc)
{
    if (!c->broken) {
        c->broken = true;
        c->broken_rc = rc;
    }
    return rc;
}

static int broken_error(sysext_ioconnect *c)
{
    if (c->broken_rc == SYSEXT_EPROTO)
        return sx_err(SYSEXT_EPROTO, "driver connection closed after a malformed message from the driver");
    return sx_err(SYSEXT_EIO, "driver connection closed");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receive and decode one message. 1 with *m (pointing into c->rbuf) and the received
 * descriptors in fds[0..*nfds), 0 on timeout, <0 when the connection is unusable. */
static int recv_one(sysext_ioconnect *c, int timeout_ms, sx_uc_msg *m, int *fds, size_t *nfds)
{
    *nfds = 0;
    if (c->broken)
        return broken_error(c);
    if (timeout_ms >= 0) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int64_t end = mono_ms() + timeout_ms;
        for (;;) {
            int64_t left = end - mono_ms();
            int n = poll(&p, 1, left < 0 ? 0 : (int)left);
            if (n > 0)
                break;
            if (n == 0)
                return 0;
            if (errno != EINTR)
                return mark_broken(c, sx_err_errno(SYSEXT_EIO, errno, "poll on the driver connection"));
        }
    }
    union {
        char buf[CMSG_SPACE(sizeof(int) * SX_UC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { c->rbuf, SX_UC_MAX_MESSAGE + 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    ssize_t n;
    do
        n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == ECONNRESET || errno == EPIPE)
            return mark_broken(c, broken_error(c));
        return mark_broken(c, sx_err_errno(SYSEXT_EIO, errno, "receiving from the driver"));
    }
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || h->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
            if (*nfds < SX_UC_MAX_FDS)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    int rc = 0;
    if (n == 0 && *nfds == 0) {
        mark_broken(c, SYSEXT_EIO);
        rc = broken_error(c);
    } else if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        rc = mark_broken(c, sx_err(SYSEXT_EPROTO, "driver message truncated (over %u bytes or too many descriptors)",
                                   SX_UC_MAX_MESSAGE));
    } else if ((rc = sx_uc_decode(c->rbuf, (size_t)n, *nfds, m)) < 0) {
        mark_broken(c, SYSEXT_EPROTO);
    }
    if (rc < 0) {
        for (size_t i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return rc;
    }
    return 1;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* Queue a completion for dispatch. A malformed one breaks the connection. */
static int queue_completion(sysext_ioconnect *c, const sx_uc_msg *m)
{
    if (m->method != DK_UC_METHOD_COMPLETION || m->nargs > DK_UC_MAX_ASYNC_ARGS || m->nfds)
        return mark_broken(c, sx_err(SYSEXT_EPROTO, "driver completion: method 0x%016llx with %u arguments",
                                     (unsigned long long)m->method, m->nargs));
    struct completion *q = calloc(1, sizeof(*q));
    if (!q)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    q->ref = m->object;
    q->status = m->status;
    q->n = m->nargs;
    for (uint32_t i = 0; i < m->nargs; i++)
        if (sx_uc_get_u64(m, i, &q->data[i]) < 0) {
            free(q);
            return mark_broken(c, sx_err_prefix(SYSEXT_EPROTO, "driver completion"));
        }
    if (c->q_tail)
        c->q_tail->next = q;
    else
        c->q_head = q;
    c->q_tail = q;
    return 0;
}

static int send_msg(sysext_ioconnect *c, sx_uc_builder *b)
{
    int rc = sx_uc_finish(b);
    if (rc < 0)
        return rc;
    ssize_t n;
    do
        n = send(c->fd, b->buf.data, b->buf.len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    size_t len = b->buf.len;
    int e = errno;
    sx_buf_free(&b->buf);
    if (n < 0) {
        if (e == EPIPE || e == ECONNRESET || e == ENOTCONN)
            return mark_broken(c, broken_error(c));
        return mark_broken(c, sx_err_errno(SYSEXT_EIO, e, "sending to the driver"));
    }
    if ((size_t)n != len)
        return mark_broken(c, sx_err(SYSEXT_EIO, "sending to the driver: short write"));
    return 0;
}

/* Send the built call and wait for its reply; completions arriving meanwhile are queued. */
static int transact(sysext_ioconnect *c, sx_uc_builder *b, uint64_t seq, sx_uc_msg *reply, int *fds, size_t *nfds)
{
    *nfds = 0;
    if (c->broken) {
        sx_uc_finish(b);
        sx_buf_free(&b->buf);
        return broken_error(c);
    }
    int rc = send_msg(c, b);
    if (rc < 0)
        return rc;
    for (;;) {
        rc = recv_one(c, -1, reply, fds, nfds);
        if (rc < 0)
            return rc;
        if (reply->type == SX_UC_COMPLETION) {
            close_fds(fds, *nfds);
            *nfds = 0;
            if ((rc = queue_completion(c, reply)) < 0)
                return rc;
            continue;
        }
        if (reply->type != SX_UC_REPLY || reply->seq != seq) {
            close_fds(fds, *nfds);
            *nfds = 0;
            return mark_broken(c, sx_err(SYSEXT_EPROTO, "driver sent a message of type %u, sequence %llu while "
                                                        "the reply to call %llu was expected",
                                         reply->type, (unsigned long long)reply->seq, (unsigned long long)seq));
        }
        c->last_kr = reply->status;
        return 0;
    }
}

int sysext_ioconnect_open_fd(int fd, sysext_ioconnect **out)
{
    if (!out) {
        if (fd >= 0)
            close(fd);
        return sx_err(SYSEXT_EINVAL, "sysext_ioconnect_open_fd: NULL out");
    }
    *out = NULL;
    int type = 0;
    socklen_t tl = sizeof(type);
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET) {
        if (fd >= 0)
            close(fd);
        return sx_err(SYSEXT_EINVAL, "sysext_ioconnect_open_fd: descriptor %d is not a SOCK_SEQPACKET socket", fd);
    }
    sysext_ioconnect *c = calloc(1, sizeof(*c));
    uint8_t *rb = malloc(SX_UC_MAX_MESSAGE + 1);
    if (!c || !rb) {
        free(c);
        free(rb);
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    c->fd = fd;
    c->rbuf = rb;
    c->next_seq = 1;
    c->next_ref = 1;
    *out = c;
    return 0;
}

static int do_call(sysext_ioconnect *c, uint64_t selector, const uint64_t *in, uint32_t nin, const void *instruct,
                   size_t inlen, uint64_t aref, uint64_t *out, uint32_t *nout, void *outstruct, size_t *outlen)
{
    const char *what = "IOConnectCallMethod";
    uint32_t cap = nout ? *nout : 0;
    size_t smax = outlen ? *outlen : 0;
    if (!c)
        return sx_err(SYSEXT_EINVAL, "%s: NULL connection", what);
    if (nin > DK_UC_MAX_SCALARS || (nin && !in))
        return sx_err(SYSEXT_EINVAL, "%s: %u scalar inputs (at most %u)", what, nin, DK_UC_MAX_SCALARS);
    if (cap > DK_UC_MAX_SCALARS || (cap && !out))
        return sx_err(SYSEXT_EINVAL, "%s: room for %u scalar outputs (at most %u)", what, cap, DK_UC_MAX_SCALARS);
    if (inlen > DK_UC_MAX_STRUCT || (inlen && !instruct))
        return sx_err(SYSEXT_EINVAL, "%s: structure input of %zu bytes (at most %u)", what, inlen,
                      DK_UC_MAX_STRUCT);
    if (smax > DK_UC_MAX_STRUCT || (smax && !outstruct))
        return sx_err(SYSEXT_EINVAL, "%s: structure output of %zu bytes (at most %u)", what, smax,
                      DK_UC_MAX_STRUCT);
    uint64_t seq = c->next_seq++;
    sx_uc_builder b;
    sx_uc_begin(&b, SX_UC_CALL, DK_UC_CONNECTION_ID, DK_UC_METHOD_EXTERNAL, seq);
    sx_uc_add_u64(&b, selector);
    sx_uc_add_u64(&b, cap);
    sx_uc_add_u64(&b, smax);
    sx_uc_add_u64(&b, aref);
    sx_uc_add_bytes(&b, instruct, inlen);
    for (uint32_t i = 0; i < nin; i++)
        sx_uc_add_u64(&b, in[i]);
    sx_uc_msg r;
    int fds[SX_UC_MAX_FDS];
    size_t nfds = 0;
    int rc = transact(c, &b, seq, &r, fds, &nfds);
    if (rc < 0)
        return rc;
    if (nfds) {
        close_fds(fds, nfds);
        return mark_broken(c, sx_err(SYSEXT_EPROTO, "%s: the driver's reply carries descriptors", what));
    }
    if (r.status != 0)
        return ioreturn_error(r.status, what);
    const uint8_t *p = NULL;
    size_t plen = 0;
    if (r.nargs < 1 || r.nargs - 1 > cap || sx_uc_get_bytes(&r, 0, &p, &plen) < 0 || plen > smax)
        return mark_broken(c, sx_err(SYSEXT_EPROTO,
                                     "%s: malformed reply (%u arguments, room for %u scalars and %zu bytes)", what,
                                     r.nargs, cap, smax));
    for (uint32_t i = 1; i < r.nargs; i++)
        if (sx_uc_get_u64(&r, i, &out[i - 1]) < 0)
            return mark_broken(c, sx_err_prefix(SYSEXT_EPROTO, "%s", what));
    if (nout)
        *nout = r.nargs - 1;
    if (plen)
        memcpy(outstruct, p, plen);
    if (outlen)
        *outlen = plen;
    return 0;
}

int sysext_ioconnect_call_method(sysext_ioconnect *c, uint64_t selector, const uint64_t *in, uint32_t nin,
                                 const void *instruct, size_t inlen, uint64_t *out, uint32_t *nout, void *outstruct,
                                 size_t *outlen)
{
    return do_call(c, selector, in, nin, instruct, inlen, 0, out, nout, outstruct, outlen);
}

int sysext_ioconnect_call_async(sysext_ioconnect *c, uint64_t selector, const uint64_t *in, uint32_t nin,
                                const void *instruct, size_t inlen, sysext_ioconnect_async_fn cb, void *ctx,
                                uint64_t *out, uint32_t *nout, void *outstruct, size_t *outlen)
{
    if (!c || !cb)
        return sx_err(SYSEXT_EINVAL, "IOConnectCallAsyncMethod: NULL connection or callback");
    struct async_pending *a = calloc(1, sizeof(*a));
    if (!a)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    a->ref = c->next_ref++;
    a->cb = cb;
    a->ctx = ctx;
    a->next = c->asyncs;
    c->asyncs = a;
    int rc = do_call(c, selector, in, nin, instruct, inlen, a->ref, out, nout, outstruct, outlen);
    if (rc < 0) {
        /* no completion will come for a call that failed: forget it (and one already queued) */
        for (struct async_pending **pp = &c->asyncs; *pp; pp = &(*pp)->next)
            if (*pp == a) {
                *pp = a->next;
                break;
            }
        free(a);
    }
    return rc;
}

int sysext_ioconnect_fd(const sysext_ioconnect *c)
{
    return c ? c->fd : -1;
}

int32_t sysext_ioconnect_last_return(const sysext_ioconnect *c)
{
    return c ? c->last_kr : 0;
}

/* Run the callbacks of the queued completions; a completion for an unknown reference (a call
 * that failed, a duplicate) is dropped. */
static int run_queued(sysext_ioconnect *c)
{
    int ran = 0;
    while (c->q_head) {
        struct completion *q = c->q_head;
        c->q_head = q->next;
        if (!c->q_head)
            c->q_tail = NULL;
        struct async_pending *a = NULL;
        for (struct async_pending **pp = &c->asyncs; *pp; pp = &(*pp)->next)
            if ((*pp)->ref == q->ref) {
                a = *pp;
                *pp = a->next;
                break;
            }
        if (a) {
            a->cb(a->ctx, q->status, q->data, q->n);
            free(a);
            ran++;
        }
        free(q);
    }
    return ran;
}

int sysext_ioconnect_dispatch(sysext_ioconnect *c, int timeout_ms)
{
    if (!c)
        return sx_err(SYSEXT_EINVAL, "sysext_ioconnect_dispatch: NULL connection");
    int ran = run_queued(c);
    if (ran)
        return ran;
    int64_t end = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    while (!c->broken) {
        int64_t left = timeout_ms < 0 ? -1 : end - mono_ms();
        if (timeout_ms >= 0 && left < 0)
            left = 0;
        sx_uc_msg m;
        int fds[SX_UC_MAX_FDS];
        size_t nfds = 0;
        int rc = recv_one(c, left > INT32_MAX ? INT32_MAX : (int)left, &m, fds, &nfds);
        if (rc == 0)
            return 0;
        if (rc < 0)
            break;
        close_fds(fds, nfds);
        if (m.type != SX_UC_COMPLETION) {
            mark_broken(c, sx_err(SYSEXT_EPROTO, "driver sent a message of type %u with no call pending", m.type));
            break;
        }
        if (queue_completion(c, &m) < 0)
            break;
        if ((ran = run_queued(c)) > 0)
            return ran;
        if (timeout_ms >= 0 && mono_ms() >= end)
            return 0;
    }
    /* the driver is gone: every pending callback learns it once */
    ran = run_queued(c);
    while (c->asyncs) {
        struct async_pending *a = c->asyncs;
        c->asyncs = a->next;
        a->cb(a->ctx, SYSEXT_IORETURN_ABORTED, NULL, 0);
        free(a);
        ran++;
    }
    return ran ? ran : broken_error(c);
}

int sysext_ioconnect_map_memory(sysext_ioconnect *c, uint64_t type, void **addr, size_t *len)
{
    const char *what = "IOConnectMapMemory64";
    if (!c || !addr || !len)
        return sx_err(SYSEXT_EINVAL, "%s: NULL argument", what);
    uint64_t seq = c->next_seq++;
    sx_uc_builder b;
    sx_uc_begin(&b, SX_UC_CALL, DK_UC_CONNECTION_ID, DK_UC_METHOD_MEMORY, seq);
    sx_uc_add_u64(&b, type);
    sx_uc_msg r;
    int fds[SX_UC_MAX_FDS];
    size_t nfds = 0;
    int rc = transact(c, &b, seq, &r, fds, &nfds);
    if (rc < 0)
        return rc;
    if (r.status != 0) {
        close_fds(fds, nfds);
        return ioreturn_error(r.status, what);
    }
    uint64_t opts = 0, mlen = 0;
    if (r.nargs != 3 || nfds != 1 || sx_uc_get_u64(&r, 0, &opts) < 0 || sx_uc_get_u64(&r, 1, &mlen) < 0 ||
        r.args[2].type != SX_UC_ARG_FD) {
        close_fds(fds, nfds);
        return mark_broken(c, sx_err(SYSEXT_EPROTO, "%s: malformed reply (%u arguments, %zu descriptors)", what,
                                     r.nargs, nfds));
    }
    int fd = fds[0];
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (fstat(fd, &st) < 0 || seals < 0 || !(seals & F_SEAL_SHRINK)) {
        close(fd);
        return sx_err(SYSEXT_EPROTO, "%s: memory of type %llu is not a memfd sealed against shrinking", what,
                      (unsigned long long)type);
    }
    if (mlen == 0 || mlen > (uint64_t)st.st_size || mlen > SIZE_MAX) {
        close(fd);
        return sx_err(SYSEXT_EPROTO, "%s: memory of type %llu: length %llu but the file has %lld bytes", what,
                      (unsigned long long)type, (unsigned long long)mlen, (long long)st.st_size);
    }
    struct mapping *mp = calloc(1, sizeof(*mp));
    if (!mp) {
        close(fd);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    int prot = PROT_READ | ((opts & 1u) ? 0 : PROT_WRITE); /* kIOUserClientMemoryReadOnly */
    void *p = mmap(NULL, (size_t)mlen, prot, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        free(mp);
        return sx_err_errno(SYSEXT_EIO, e, "%s: mapping %llu bytes of memory type %llu", what,
                            (unsigned long long)mlen, (unsigned long long)type);
    }
    mp->addr = p;
    mp->len = (size_t)mlen;
    mp->next = c->maps;
    c->maps = mp;
    *addr = p;
    *len = (size_t)mlen;
    return 0;
}

int sysext_ioconnect_unmap_memory(sysext_ioconnect *c, void *addr)
{
    if (!c)
        return sx_err(SYSEXT_EINVAL, "IOConnectUnmapMemory64: NULL connection");
    for (struct mapping **pp = &c->maps; *pp; pp = &(*pp)->next)
        if ((*pp)->addr == addr) {
            struct mapping *m = *pp;
            *pp = m->next;
            munmap(m->addr, m->len);
            free(m);
            return 0;
        }
    return sx_err(SYSEXT_ENOTFOUND, "IOConnectUnmapMemory64: %p was not mapped by this connection", addr);
}

void sysext_ioconnect_close(sysext_ioconnect *c)
{
    if (!c)
        return;
    while (c->maps) {
        struct mapping *m = c->maps;
        c->maps = m->next;
        munmap(m->addr, m->len);
        free(m);
    }
    while (c->asyncs) {
        struct async_pending *a = c->asyncs;
        c->asyncs = a->next;
        free(a);
    }
    while (c->q_head) {
        struct completion *q = c->q_head;
        c->q_head = q->next;
        free(q);
    }
    close(c->fd);
    free(c->rbuf);
    free(c);
}

/* ---- through sysextd ------------------------------------------------------------------- */

#define DAEMON_TIMEOUT_MS 30000

static plist_t json_to_plist(json_object *j, int depth)
{
    if (depth > 16)
        return NULL;
    switch (json_object_get_type(j)) {
    case json_type_boolean:
        return plist_new_bool(json_object_get_boolean(j));
    case json_type_int: {
        int64_t v = json_object_get_int64(j);
        return v < 0 ? NULL : plist_new_uint((uint64_t)v);
    }
    case json_type_string:
        return plist_new_string(json_object_get_string(j));
    case json_type_array: {
        plist_t a = plist_new_array();
        for (size_t i = 0; i < json_object_array_length(j); i++) {
            plist_t v = json_to_plist(json_object_array_get_idx(j, i), depth + 1);
            if (!v) {
                plist_free(a);
                return NULL;
            }
            plist_array_append_item(a, v);
        }
        return a;
    }
    case json_type_object: {
        plist_t d = plist_new_dict();
        json_object_object_foreach(j, k, val)
        {
            plist_t v = json_to_plist(val, depth + 1);
            if (!v) {
                plist_free(d);
                return NULL;
            }
            plist_dict_set_item(d, k, v);
        }
        return d;
    }
    default:
        return NULL;
    }
}

int sysext_ioservice_get_matching(const char *socket_path, const char *matching_json, uint64_t **ids, size_t *n)
{
    if (!matching_json || !ids || !n)
        return sx_err(SYSEXT_EINVAL, "IOServiceGetMatchingServices: NULL argument");
    *ids = NULL;
    *n = 0;
    json_object *j = json_tokener_parse(matching_json);
    if (!j || !json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        return sx_err(SYSEXT_EFORMAT, "matching dictionary: not a JSON object: %s", matching_json);
    }
    plist_t dict = json_to_plist(j, 0);
    json_object_put(j);
    if (!dict)
        return sx_err(SYSEXT_EFORMAT,
                      "matching dictionary: only strings, booleans, non-negative integers, arrays and objects");
    plist_t m = sxd_msg_new("ioservice-match");
    plist_dict_set_item(m, "matching", dict);
    plist_t r = NULL;
    int rc = sx_client_call(socket_path, m, &r, NULL, DAEMON_TIMEOUT_MS);
    if (rc < 0)
        return rc;
    plist_t arr = plist_dict_get_item(r, "ids");
    uint32_t cnt = arr && plist_get_node_type(arr) == PLIST_ARRAY ? plist_array_get_size(arr) : 0;
    uint64_t *v = cnt ? calloc(cnt, sizeof(*v)) : NULL;
    if (cnt && !v) {
        plist_free(r);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < cnt; i++) {
        plist_t it = plist_array_get_item(arr, i);
        if (plist_get_node_type(it) != PLIST_UINT) {
            free(v);
            plist_free(r);
            return sx_err(SYSEXT_EPROTO, "sysextd: ioservice-match reply: ids[%u] is not an integer", i);
        }
        plist_get_uint_val(it, &v[i]);
    }
    plist_free(r);
    *ids = v;
    *n = cnt;
    return 0;
}

int sysext_ioservice_open(const char *socket_path, uint64_t service_id, uint32_t type, sysext_ioconnect **out)
{
    if (!out)
        return sx_err(SYSEXT_EINVAL, "IOServiceOpen: NULL out");
    *out = NULL;
    plist_t m = sxd_msg_new("ioservice-open");
    sxd_dict_set_uint(m, "service", service_id);
    sxd_dict_set_uint(m, "uctype", type);
    plist_t r = NULL;
    int fd = -1;
    int rc = sx_client_call(socket_path, m, &r, &fd, DAEMON_TIMEOUT_MS);
    if (rc < 0)
        return rc;
    plist_free(r);
    if (fd < 0)
        return sx_err(SYSEXT_EPROTO, "sysextd: ioservice-open reply carries no descriptor");
    return sysext_ioconnect_open_fd(fd, out);
}
