/* Sending and receiving IPC messages on a SOCK_SEQPACKET socket, descriptors with SCM_RIGHTS. */
#include "rt_internal.h"

#include <sys/socket.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

kern_return_t DKIPC_Send(int sock, const DKIPCMessage *msg)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    kern_return_t r = DKIPCMessage_Encode(msg, &buf, &len);
    if (r != kIOReturnSuccess)
        return r;
    union {
        char buf[CMSG_SPACE(sizeof(int) * DK_IPC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { buf, len };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (msg->fdCount > 0) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * msg->fdCount);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * msg->fdCount);
        memcpy(CMSG_DATA(c), msg->fds, sizeof(int) * msg->fdCount);
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    int e = errno;
    free(buf);
    errno = e;
    if (n < 0 || (size_t)n != len)
        return kIOReturnIPCError;
    return kIOReturnSuccess;
}

kern_return_t DKIPC_Recv(int sock, DKIPCObjectTable *table, DKIPCMessage *out, DKIPCError *err)
{
    memset(out, 0, sizeof(*out));
    if (err)
        memset(err, 0, sizeof(*err));
    /* one byte more than the maximum, so an oversized datagram shows as truncated */
    uint8_t *buf = malloc(DK_IPC_MAX_MESSAGE + 1);
    if (!buf)
        return kIOReturnNoMemory;
    union {
        char buf[CMSG_SPACE(sizeof(int) * DK_IPC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { buf, DK_IPC_MAX_MESSAGE + 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        free(buf);
        errno = e;
        if (err) {
            err->code = kIOReturnIPCError;
            snprintf(err->message, sizeof(err->message), "recvmsg: %s", strerror(e));
        }
        return kIOReturnIPCError;
    }
    int fds[DK_IPC_MAX_FDS];
    size_t nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (nfds < DK_IPC_MAX_FDS)
                fds[nfds++] = fd;
            else
                close(fd);
        }
    }
    kern_return_t r;
    if (n == 0 && nfds == 0) {
        free(buf);
        if (err) {
            err->code = kIOReturnNotReady;
            snprintf(err->message, sizeof(err->message), "peer closed the connection");
        }
        return kIOReturnNotReady;
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        free(buf);
        if (err) {
            err->code = kIOReturnNoSpace;
            err->offset = (size_t)n;
            snprintf(err->message, sizeof(err->message), "IPC message offset %zd: %s truncated by the kernel", n,
                     (mh.msg_flags & MSG_TRUNC) ? "message over the size limit" : "descriptor list");
        }
        return kIOReturnNoSpace;
    }
    r = DKIPCMessage_Decode(buf, (size_t)n, fds, nfds, table, out, err);
    free(buf);
    return r;
}
