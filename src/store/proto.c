/* The store's wire protocol: a table of message types, a bounds-checked codec, SCM_RIGHTS IO. */
#include "store/proto.h"

#include "common/common.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- cursors: every get checks the bytes that are left ---- */

struct wcur {
    uint8_t *p;
    size_t len, cap;
    int overflow;
};

struct rcur {
    const uint8_t *p;
    size_t len, off;
};

static void put_bytes(struct wcur *w, const void *src, size_t n)
{
    if (n == 0)
        return;
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_u16(struct wcur *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put_bytes(w, b, 2);
}

static void put_u32(struct wcur *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put_bytes(w, b, 4);
}

static void put_u64(struct wcur *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_str(struct wcur *w, const char *s)
{
    size_t n = strlen(s);
    if (n > UINT32_MAX) {
        w->overflow = 1;
        return;
    }
    put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

static int get_bytes(struct rcur *r, void *dst, size_t n)
{
    if (n > r->len - r->off)
        return -1;
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return 0;
}

static int get_u16(struct rcur *r, uint16_t *v)
{
    uint8_t b[2];
    if (get_bytes(r, b, 2) < 0)
        return -1;
    *v = (uint16_t)(b[0] | b[1] << 8);
    return 0;
}

static int get_u32(struct rcur *r, uint32_t *v)
{
    uint8_t b[4];
    if (get_bytes(r, b, 4) < 0)
        return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int get_u64(struct rcur *r, uint64_t *v)
{
    uint32_t lo, hi;
    if (get_u32(r, &lo) < 0 || get_u32(r, &hi) < 0)
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* A length-prefixed string of at most max bytes with no NUL, copied NUL-terminated into dst. */
static int get_str(struct rcur *r, char *dst, size_t max)
{
    uint32_t n;
    if (get_u32(r, &n) < 0 || n > max || n > r->len - r->off)
        return -1;
    if (memchr(r->p + r->off, '\0', n))
        return -1;
    memcpy(dst, r->p + r->off, n);
    dst[n] = '\0';
    r->off += n;
    return 0;
}

/* ---- per-type payload codecs ---- */

static void enc_empty(struct wcur *w, const struct proto_msg *m)
{
    (void)w;
    (void)m;
}

static int dec_empty(struct rcur *r, struct proto_msg *m)
{
    (void)r;
    (void)m;
    return 0;
}

static void enc_ref(struct wcur *w, const struct proto_msg *m)
{
    put_u32(w, m->u.ref.threads);
    put_str(w, m->u.ref.ref);
}

static int dec_ref(struct rcur *r, struct proto_msg *m)
{
    if (get_u32(r, &m->u.ref.threads) < 0 || m->u.ref.threads > PROTO_MAX_THREADS)
        return -1;
    return get_str(r, m->u.ref.ref, PROTO_MAX_REF);
}

static void enc_lease(struct wcur *w, const struct proto_msg *m)
{
    put_u64(w, m->u.lease);
}

static int dec_lease(struct rcur *r, struct proto_msg *m)
{
    return get_u64(r, &m->u.lease);
}

static void enc_attached(struct wcur *w, const struct proto_msg *m)
{
    const struct proto_attached *a = &m->u.attached;
    put_u64(w, a->lease);
    put_u64(w, a->size);
    put_bytes(w, a->sha256, PROTO_SHA_LEN);
    put_bytes(w, a->identity, PROTO_SHA_LEN);
    put_u32(w, a->threads);
    put_str(w, a->name);
    put_u64(w, a->weights_size);
    put_bytes(w, a->weights_sha256, PROTO_SHA_LEN);
}

static int dec_attached(struct rcur *r, struct proto_msg *m)
{
    struct proto_attached *a = &m->u.attached;
    if (get_u64(r, &a->lease) < 0 || get_u64(r, &a->size) < 0 ||
        get_bytes(r, a->sha256, PROTO_SHA_LEN) < 0 ||
        get_bytes(r, a->identity, PROTO_SHA_LEN) < 0 || get_u32(r, &a->threads) < 0 ||
        get_str(r, a->name, PROTO_MAX_NAME) < 0)
        return -1;
    return get_u64(r, &a->weights_size) < 0 ? -1 : get_bytes(r, a->weights_sha256, PROTO_SHA_LEN);
}

static void enc_json(struct wcur *w, const struct proto_msg *m)
{
    if (m->u.json.len > UINT32_MAX) {
        w->overflow = 1;
        return;
    }
    put_u32(w, (uint32_t)m->u.json.len);
    put_bytes(w, m->u.json.text, m->u.json.len);
}

static int dec_json(struct rcur *r, struct proto_msg *m)
{
    uint32_t n;
    if (get_u32(r, &n) < 0 || n > r->len - r->off)
        return -1;
    m->u.json.text = (const char *)r->p + r->off;
    m->u.json.len = n;
    r->off += n;
    return 0;
}

static void enc_error(struct wcur *w, const struct proto_msg *m)
{
    put_u32(w, (uint32_t)m->u.error.code);
    put_str(w, m->u.error.msg);
}

static int dec_error(struct rcur *r, struct proto_msg *m)
{
    uint32_t code;
    if (get_u32(r, &code) < 0)
        return -1;
    m->u.error.code = (int32_t)code;
    if (m->u.error.code >= 0 || m->u.error.code < -4095)
        return -1;
    return get_str(r, m->u.error.msg, PROTO_MAX_ERR);
}

struct proto_kind {
    int type;
    const char *name;
    void (*enc)(struct wcur *w, const struct proto_msg *m);
    int (*dec)(struct rcur *r, struct proto_msg *m);
};

static const struct proto_kind kinds[] = {
    {PROTO_ATTACH, "ATTACH", enc_ref, dec_ref},
    {PROTO_DETACH, "DETACH", enc_lease, dec_lease},
    {PROTO_STATS, "STATS", enc_empty, dec_empty},
    {PROTO_LS, "LS", enc_empty, dec_empty},
    {PROTO_EVICT, "EVICT", enc_ref, dec_ref},
    {PROTO_PREPARE, "PREPARE", enc_ref, dec_ref},
    {PROTO_OK, "OK", enc_empty, dec_empty},
    {PROTO_ATTACHED, "ATTACHED", enc_attached, dec_attached},
    {PROTO_JSON, "JSON", enc_json, dec_json},
    {PROTO_ERROR, "ERROR", enc_error, dec_error},
};

static const struct proto_kind *kind_of(int type)
{
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        if (kinds[i].type == type)
            return &kinds[i];
    return NULL;
}

const char *proto_type_name(int type)
{
    const struct proto_kind *k = kind_of(type);
    return k ? k->name : "unknown";
}

/* ---- codec ---- */

int proto_encode(const struct proto_msg *m, uint8_t *buf, size_t cap, char *err, size_t errlen)
{
    const struct proto_kind *k = kind_of(m->type);
    if (!k)
        return seterr(err, errlen, -EINVAL, "cannot encode message type %d", m->type);
    struct wcur w = {.p = buf, .cap = cap};
    put_u32(&w, PROTO_MAGIC);
    put_u16(&w, PROTO_VERSION);
    put_u16(&w, m->type);
    put_u32(&w, 0); /* length, patched below */
    put_u32(&w, m->seq);
    k->enc(&w, m);
    if (w.overflow || w.len > PROTO_MAX_MSG)
        return seterr(err, errlen, -EMSGSIZE, "%s message larger than %zu bytes", k->name,
                      cap < PROTO_MAX_MSG ? cap : (size_t)PROTO_MAX_MSG);
    uint32_t payload = (uint32_t)(w.len - PROTO_HDR_LEN);
    for (int i = 0; i < 4; i++)
        buf[8 + i] = (uint8_t)(payload >> (8 * i));
    return (int)w.len;
}

int proto_decode(const uint8_t *buf, size_t len, struct proto_msg *m, char *err, size_t errlen)
{
    struct rcur r = {.p = buf, .len = len};
    uint32_t magic, length;
    uint16_t version, type;
    if (get_u32(&r, &magic) < 0 || get_u16(&r, &version) < 0 || get_u16(&r, &type) < 0 ||
        get_u32(&r, &length) < 0 || get_u32(&r, &m->seq) < 0)
        return seterr(err, errlen, -EBADMSG, "message of %zu bytes is shorter than a header", len);
    if (magic != PROTO_MAGIC)
        return seterr(err, errlen, -EBADMSG, "bad magic 0x%08x (not a shmfaas store peer?)", magic);
    if (version != PROTO_VERSION)
        return seterr(err, errlen, -EPROTO, "protocol version %u, this side speaks %u", version,
                      PROTO_VERSION);
    if (length != len - PROTO_HDR_LEN)
        return seterr(err, errlen, -EBADMSG, "header says %u payload bytes, message has %zu",
                      length, len - PROTO_HDR_LEN);
    const struct proto_kind *k = kind_of(type);
    if (!k)
        return seterr(err, errlen, -EBADMSG, "unknown message type %u", type);
    m->type = type;
    if (k->dec(&r, m) < 0 || r.off != r.len)
        return seterr(err, errlen, -EBADMSG, "malformed %s payload (%u bytes)", k->name, length);
    return 0;
}

/* ---- socket IO ---- */

int proto_send(int sock, const struct proto_msg *m, int fd, char *err, size_t errlen)
{
    return proto_send_fds(sock, m, &fd, fd >= 0 ? 1 : 0, err, errlen);
}

int proto_send_fds(int sock, const struct proto_msg *m, const int *fds, int nfds, char *err,
                   size_t errlen)
{
    if (nfds < 0 || nfds > 2)
        return seterr(err, errlen, -EINVAL, "%d fds: at most 2 go with a message", nfds);
    size_t cap = m->type == PROTO_JSON ? PROTO_MAX_MSG : PROTO_MAX_REQ + PROTO_MAX_ERR + 128;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int n = proto_encode(m, buf, cap, err, errlen);
    if (n < 0) {
        free(buf);
        return n;
    }
    ssize_t sent = send_with_fds(sock, buf, (size_t)n, fds, nfds);
    free(buf);
    if (sent < 0)
        return seterr(err, errlen, (int)sent, "send %s: %s", proto_type_name(m->type),
                      strerror((int)-sent));
    return 0;
}

/* Takes every fd out of the control data: the first one into *fd if wanted, the second into
 * *fd2 if wanted, the rest closed. Returns how many fds arrived. */
static int take_fds(struct msghdr *mh, int *fd, int *fd2)
{
    int count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fd && *fd < 0)
                *fd = got;
            else if (fd && fd2 && *fd2 < 0)
                *fd2 = got;
            else
                close(got);
            count++;
        }
    }
    return count;
}

int proto_recv(int sock, uint8_t *buf, size_t cap, struct proto_msg *m, int *fd, char *err,
               size_t errlen)
{
    return proto_recv2(sock, buf, cap, m, fd, NULL, err, errlen);
}

int proto_recv2(int sock, uint8_t *buf, size_t cap, struct proto_msg *m, int *fd, int *fd2,
                char *err, size_t errlen)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.space,
                        .msg_controllen = sizeof(ctl.space)};
    if (fd)
        *fd = -1;
    if (fd2)
        *fd2 = -1;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return seterr(err, errlen, -errno, "receive: %s", strerror(errno));
    int nfds = take_fds(&mh, fd, fd2);
    int rc = 0;
    if (n == 0)
        rc = seterr(err, errlen, -ECONNRESET, "peer closed the connection");
    else if (mh.msg_flags & MSG_TRUNC)
        rc = seterr(err, errlen, -EMSGSIZE, "message larger than %zu bytes", cap);
    else if (mh.msg_flags & MSG_CTRUNC)
        rc = seterr(err, errlen, -EBADMSG, "too many file descriptors attached");
    else if (nfds > 0 && !fd)
        rc = seterr(err, errlen, -EBADMSG, "peer sent %d file descriptor(s); none expected", nfds);
    else
        rc = proto_decode(buf, (size_t)n, m, err, errlen);
    if (rc < 0 && fd && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    if (rc < 0 && fd2 && *fd2 >= 0) {
        close(*fd2);
        *fd2 = -1;
    }
    return rc;
}

/* The ERROR (seq 0) a store sends when it refuses a connection at accept, if one is queued. */
static int refused_at_accept(int sock, uint8_t *buf, char *err, size_t errlen)
{
    struct proto_msg m;
    struct iovec iov = {.iov_base = buf, .iov_len = PROTO_MAX_MSG};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT);
    if (n <= 0 || proto_decode(buf, (size_t)n, &m, NULL, 0) < 0 || m.type != PROTO_ERROR ||
        m.seq != 0)
        return 0;
    return seterr(err, errlen, m.u.error.code, "store refused the connection: %s", m.u.error.msg);
}

int proto_call(int sock, const struct proto_msg *req, uint8_t *buf, struct proto_msg *reply,
               int *fd, char *err, size_t errlen)
{
    int fd2 = -1;
    int rc = proto_call2(sock, req, buf, reply, fd, fd ? &fd2 : NULL, err, errlen);
    if (rc == 0 && fd2 >= 0) { /* a caller that takes one fd cannot hold a plan part */
        close(fd2);
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        return seterr(err, errlen, -EBADMSG,
                      "store sent a plan part with its weights blob; this client maps whole "
                      "images only");
    }
    return rc;
}

/* Closes *fd and *fd2 (either may be NULL or -1). */
static void close_fds(int *fd, int *fd2)
{
    if (fd && *fd >= 0)
        close(*fd);
    if (fd2 && *fd2 >= 0)
        close(*fd2);
    if (fd)
        *fd = -1;
    if (fd2)
        *fd2 = -1;
}

int proto_call2(int sock, const struct proto_msg *req, uint8_t *buf, struct proto_msg *reply,
                int *fd, int *fd2, char *err, size_t errlen)
{
    int rc = proto_send(sock, req, -1, err, errlen);
    if (rc < 0) {
        int why = refused_at_accept(sock, buf, err, errlen);
        return why < 0 ? why : rc;
    }
    rc = proto_recv2(sock, buf, PROTO_MAX_MSG, reply, fd, fd2, err, errlen);
    if (rc == -ECONNRESET) {
        /* A reset is reported once, ahead of what is still queued: maybe the refusal. */
        int why = refused_at_accept(sock, buf, err, errlen);
        return why < 0 ? why
                       : seterr(err, errlen, rc, "store closed the connection during %s",
                                proto_type_name(req->type));
    }
    if (rc < 0)
        return rc;
    if (reply->seq == 0 && reply->type == PROTO_ERROR && req->seq != 0)
        return seterr(err, errlen, reply->u.error.code, "store refused the connection: %s",
                      reply->u.error.msg);
    int bad = reply->seq != req->seq;
    if (!bad && reply->type == PROTO_ERROR) {
        close_fds(fd, fd2);
        return seterr(err, errlen, reply->u.error.code, "%s", reply->u.error.msg);
    }
    if (bad || (fd && *fd < 0 && reply->type == PROTO_ATTACHED)) {
        close_fds(fd, fd2);
        return seterr(err, errlen, -EBADMSG, "store sent an unexpected %s reply to %s",
                      proto_type_name(reply->type), proto_type_name(req->type));
    }
    if (fd2 && reply->type == PROTO_ATTACHED &&
        (reply->u.attached.weights_size > 0) != (*fd2 >= 0)) {
        close_fds(fd, fd2);
        return seterr(err, errlen, -EBADMSG,
                      "store sent an image %s its weights blob (weights_size %llu)",
                      reply->u.attached.weights_size ? "without" : "with an fd beyond",
                      (unsigned long long)reply->u.attached.weights_size);
    }
    return 0;
}

int proto_connect(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return seterr(err, errlen, -ENAMETOOLONG, "store socket path %s is longer than %zu bytes",
                      path, sizeof(sa.sun_path) - 1);
    strcpy(sa.sun_path, path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return seterr(err, errlen, -errno, "socket: %s", strerror(errno));
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(s);
        return seterr(err, errlen, -e, "store at %s: %s — is shmfaas-store running?", path,
                      strerror(e));
    }
    return s;
}
