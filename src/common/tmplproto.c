/*
 * The template control protocol (tmplproto.h): one fixed-size packet per message, fds as
 * SCM_RIGHTS, every received message checked by tmpl_msg_check before anyone reads a field.
 */
#include "common/tmplproto.h"
#include "common/common.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void tmpl_msg_init(struct tmpl_msg *m, enum tmpl_type t)
{
    memset(m, 0, sizeof *m);
    m->magic = TMPL_MAGIC;
    m->version = TMPL_VERSION;
    m->type = (uint16_t)t;
}

int tmpl_fork_nfds(uint32_t flags)
{
    return flags & TMPL_F_CGROUP ? 4 : 3;
}

int tmpl_msg_check(const void *buf, size_t len, int nfds, int truncated, unsigned want,
                   struct tmpl_msg *out, char *err, size_t errlen)
{
    struct tmpl_msg m;
    if (len != sizeof m)
        return seterr(err, errlen, -EPROTO, "template message of %zu bytes, expected %zu", len,
                      sizeof m);
    memcpy(&m, buf, sizeof m);
    if (m.magic != TMPL_MAGIC || m.version != TMPL_VERSION)
        return seterr(err, errlen, -EPROTO, "template message: bad magic or version %u",
                      (unsigned)m.version);
    if (m.type < TMPL_READY || m.type > TMPL_PREPARE || !(want & (1u << m.type)))
        return seterr(err, errlen, -EPROTO, "template message: unexpected type %u",
                      (unsigned)m.type);
    if (truncated)
        return seterr(err, errlen, -EPROTO, "template message: too many fds");
    int want_fds = 0;
    if (m.type == TMPL_FORK) {
        if (m.flags & ~TMPL_F_ALL)
            return seterr(err, errlen, -EPROTO, "fork request: unknown flags 0x%x",
                          (unsigned)m.flags);
        if ((m.flags & TMPL_F_DROP) && (m.uid == 0 || m.gid == 0))
            return seterr(err, errlen, -EPROTO, "fork request: uid/gid 0 is not a drop");
        want_fds = tmpl_fork_nfds(m.flags);
    }
    if (m.type == TMPL_PREPARE) {
        if (m.flags & ~(TMPL_F_NETNS | TMPL_F_CGROUP))
            return seterr(err, errlen, -EPROTO, "prepare request: unknown flags 0x%x",
                          (unsigned)m.flags);
        want_fds = m.flags & TMPL_F_CGROUP ? 1 : 0;
    }
    if (nfds != want_fds)
        return seterr(err, errlen, -EPROTO, "template message type %u with %d fds, expected %d",
                      (unsigned)m.type, nfds, want_fds);
    m.text[sizeof m.text - 1] = '\0';
    *out = m;
    return 0;
}

int tmpl_send(int sock, const struct tmpl_msg *m, const int *fds, int nfds)
{
    if (nfds < 0 || nfds > TMPL_MAX_FDS)
        return -EINVAL;
    ssize_t n = send_with_fds(sock, m, sizeof *m, fds, nfds);
    if (n < 0)
        return n == -ECONNRESET ? -EPIPE : (int)n;
    return n == (ssize_t)sizeof *m ? 0 : -EIO;
}

int tmpl_recv(int sock, struct tmpl_msg *m, int fds[TMPL_MAX_FDS], unsigned want, int timeout_ms,
              char *err, size_t errlen)
{
    for (int i = 0; i < TMPL_MAX_FDS; i++)
        fds[i] = -1;
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return seterr(err, errlen, -errno, "template socket: %s", strerror(errno));
    if (r == 0)
        return seterr(err, errlen, -ETIMEDOUT, "template did not answer within %d ms", timeout_ms);
    char buf[sizeof *m + 1]; /* one byte more: a longer packet shows as longer, not cut */
    union {
        char buf[CMSG_SPACE(TMPL_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
        return seterr(err, errlen, -EPIPE, "template socket closed");
    if (n < 0)
        return seterr(err, errlen, -errno, "template socket: %s", strerror(errno));
    int got[TMPL_MAX_FDS], ngot = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (ngot < TMPL_MAX_FDS)
                got[ngot++] = fd;
            else
                close(fd);
        }
    }
    int truncated = (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0;
    int rc = tmpl_msg_check(buf, (size_t)n, ngot, truncated, want, m, err, errlen);
    for (int i = 0; i < ngot; i++) {
        if (rc == 0)
            fds[i] = got[i];
        else
            close(got[i]);
    }
    return rc;
}
