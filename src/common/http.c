/*
 * HTTP server helpers on libmicrohttpd: we bind the listening socket ourselves (TCP, unix, or an
 * inherited fd) and accept on it ourselves (the gate, below), handing MHD each connection once its
 * header block is complete and valid, so both kinds behave alike, a unix path can be cleaned up
 * and slow or malformed clients never reach MHD; MHD's access handler is turned into one call per
 * request with the whole body, bounded by max_body and, over all requests, max_body_inflight.
 */
#include "common/http.h"
#include "common/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pthread.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *mhd;
    struct http_server_opts opts;
    int listen_fd; /* -1 once handed back by quiesce and closed */
    uint16_t port;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int open_requests; /* from the first header to the reply fully sent (or dropped) */
    /* the gate (accept thread); everything below is under lock */
    pthread_t gate;
    bool gate_running, gate_stop, gate_quiesce;
    int epoll_fd, wake_fd;
    struct conn_slot *slots; /* indexed by fd */
    size_t n_slots;
    unsigned n_pending, n_active;
    size_t body_inflight; /* bytes reserved by request bodies being received or handled */
    char *tls_cert, *tls_key; /* PEM text for MHD (HTTPS only), freed at stop */
};

/* Per-request state, MHD's con_cls. */
struct request_state {
    uint8_t *body;
    size_t len, cap;
    size_t reserved; /* of the server's body_inflight */
    bool too_large;  /* past max_body: 413 */
    bool busy;       /* past max_body_inflight: 503 */
    bool refused;    /* answered at the first call */
};

/* Connections the kernel queues before the gate accepts them (capped by net.core.somaxconn): a
 * burst of a thousand connects must not drop a fresh client's SYN (a 1 s retransmit). */
#define HTTP_BACKLOG 4096

/* ---- listen address ---- */

int http_listen_parse(const char *s, char *host, size_t hostlen, uint16_t *port,
                      const char **unix_path, char *err, size_t errlen)
{
    *unix_path = NULL;
    if (!s || !*s)
        return seterr(err, errlen, -EINVAL, "listen address is empty");
    int fd;
    int rc = http_listen_fd(s, &fd, err, errlen);
    if (rc != 0) { /* "fd:N": nothing to bind; http_server_start takes the socket as it is */
        host[0] = '\0';
        *port = 0;
        return rc < 0 ? rc : 0;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        if (!s[5])
            return seterr(err, errlen, -EINVAL, "listen address %s: no socket path", s);
        if (strlen(s + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return seterr(err, errlen, -ENAMETOOLONG,
                          "listen address %s: socket path longer than %zu bytes", s,
                          sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        *unix_path = s + 5;
        return 0;
    }
    const char *colon = strrchr(s, ':');
    const char *port_str = colon ? colon + 1 : s;
    size_t host_len = colon ? (size_t)(colon - s) : 0;
    if (host_len >= hostlen)
        return seterr(err, errlen, -EINVAL, "listen address %s: host name too long", s);
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(port_str, &end, 10);
    if (!*port_str || *end || errno || p > 65535)
        return seterr(err, errlen, -EINVAL,
                      "listen address %s: port must be a number 0-65535 (forms: unix:PATH, "
                      "HOST:PORT, :PORT, PORT)",
                      s);
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    /* "[::1]:8080" */
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        memmove(host, host + 1, host_len - 2);
        host[host_len - 2] = '\0';
    }
    *port = (uint16_t)p;
    return 0;
}

int http_listen_fd(const char *s, int *fd, char *err, size_t errlen)
{
    if (!s || strncmp(s, "fd:", 3) != 0)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(s + 3, &end, 10);
    if (!s[3] || *end || errno || v < 3 || v > 65535)
        return seterr(err, errlen, -EINVAL,
                      "listen address %s: an inherited socket is fd:N with N >= 3", s);
    *fd = (int)v;
    return 1;
}

static int listen_unix(struct http_server *s, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return seterr(err, errlen, -EEXIST, "%s exists and is not a socket; not replacing it",
                          path);
        unlink(path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return seterr(err, errlen, -errno, "socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        return seterr(err, errlen, -e, "listen on unix:%s: %s", path, strerror(e));
    }
    snprintf(s->unix_path, sizeof(s->unix_path), "%s", path);
    s->listen_fd = fd;
    return 0;
}

static int bound_port(int fd, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* An inherited socket (fd:N, e.g. bound by shmfaasd in a directory the instance cannot write):
 * it must already be listening; it is ours from here (close-on-exec, closed at stop). */
static int listen_inherited(struct http_server *s, int fd, char *err, size_t errlen)
{
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0)
        return seterr(err, errlen, -errno, "listen on fd:%d: %s", fd, strerror(errno));
    if (!on)
        return seterr(err, errlen, -EINVAL, "listen on fd:%d: not a listening socket", fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
        bound_port(fd, &s->port);
    s->listen_fd = fd;
    return 0;
}

static int listen_tcp(struct http_server *s, const char *host, uint16_t port, char *err,
                      size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char port_str[8];
    snprintf(port_str, sizeof(port_str), "%u", port);
    if (!*host)
        hints.ai_family = AF_INET; /* all IPv4 interfaces: works where IPv6 is disabled */
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(*host ? host : NULL, port_str, &hints, &ai);
    if (rc != 0)
        return seterr(err, errlen, -EINVAL, "listen on %s:%u: %s", host, port, gai_strerror(rc));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, HTTP_BACKLOG) < 0 ||
        bound_port(fd, &s->port) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return seterr(err, errlen, -e, "listen on %s:%u: %s", *host ? host : "*", port,
                      strerror(e));
    }
    freeaddrinfo(ai);
    s->listen_fd = fd;
    return 0;
}

/* ---- the gate: header blocks are complete and valid before MHD sees a connection ----
 *
 * libmicrohttpd restarts its inactivity timeout at every byte, holds a thread per connection from
 * accept on, and answers malformed heads with its own HTML pages. So we accept connections
 * ourselves: a pending connection costs one fd in our epoll set and nothing else; each time bytes
 * arrive we peek (MSG_PEEK, nothing consumed) at what is queued, and once the header block is
 * complete and passes http_head_check() the untouched socket goes to MHD_add_connection(). A
 * connection whose block is not complete by its deadline gets 408; one that is malformed gets a
 * JSON 4xx/5xx; past max_pending the oldest pending connection (the slowest) is dropped, so new
 * clients always get in. The same thread enforces the header deadline on kept-alive connections
 * (shutdown() of a connection idle or trickling after its previous reply), and counts connections
 * per client address.
 *
 * Every connection's state sits in a table indexed by fd, under s->lock: MHD's callbacks find
 * theirs through MHD_CONNECTION_INFO_CONNECTION_FD. MHD notifies CLOSED before it closes the fd,
 * so a slot never outlives its connection.
 */

enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_MHD };

struct conn_slot {
    uint8_t state;       /* enum slot_state */
    bool nul_in_url;     /* the unescaper decoded a %00 in the current request */
    bool in_request;     /* MHD: the current request's head is in; no header deadline */
    bool started;        /* MHD: it notified STARTED, so CLOSED will come before the close */
    sa_family_t family;  /* AF_INET, AF_INET6 or AF_UNIX */
    uint8_t addr[16];    /* client address (v4 in the first 4 bytes) */
    int64_t since_ms;    /* accepted (pending); handed to MHD (until started) */
    int64_t deadline_ms; /* header block due; 0: none */
};

#define GATE_DEFAULT_MAX_PENDING     4096
#define GATE_DEFAULT_MAX_CONNECTIONS 1024
#define GATE_TICK_MS                 100
#define GATE_LOST_MS                 5000
#define HTTP_TLS_PEM_MAX             ((size_t)1 << 20) /* a certificate chain or a key file */

/* Under s->lock. NULL when fd is out of the table. */
static struct conn_slot *slot_get(struct http_server *s, int fd)
{
    return fd >= 0 && (size_t)fd < s->n_slots ? &s->slots[fd] : NULL;
}

static int slots_grow(struct http_server *s, int fd)
{
    if ((size_t)fd < s->n_slots)
        return 0;
    size_t n = s->n_slots ? s->n_slots : 256;
    while (n <= (size_t)fd)
        n *= 2;
    struct conn_slot *t = realloc(s->slots, n * sizeof(*t));
    if (!t)
        return -ENOMEM;
    memset(t + s->n_slots, 0, (n - s->n_slots) * sizeof(*t));
    s->slots = t;
    s->n_slots = n;
    return 0;
}

static struct conn_slot *conn_slot(struct http_server *s, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct conn_slot *sl = ci ? slot_get(s, ci->connect_fd) : NULL;
    return sl && sl->state == SLOT_MHD ? sl : NULL;
}

/* ---- checking a header block ---- */

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One line of [p, end): *next is past its LF; the returned length excludes CR LF. */
static size_t head_line(const char *p, const char *end, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    *next = lf ? lf + 1 : end;
    size_t n = (size_t)((lf ? lf : end) - p);
    return n && p[n - 1] == '\r' ? n - 1 : n;
}

static bool trimmed_equal(const char *v, size_t n, const char *word)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == strlen(word) && strncasecmp(v, word, n) == 0;
}

#define HEAD_FAIL(status, ...)                                                                     \
    do {                                                                                           \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        return status;                                                                             \
    } while (0)

static unsigned check_request_line(const char *p, size_t n, bool *http11, char *msg, size_t msglen)
{
    const char *sp1 = memchr(p, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1)
        HEAD_FAIL(400, "malformed request line: expected METHOD TARGET HTTP/1.1");
    for (const char *c = p; c < sp1; c++)
        if (!tchar((unsigned char)*c))
            HEAD_FAIL(400, "malformed request line: bad character in the method");
    for (const char *c = sp1 + 1; c < sp2; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            HEAD_FAIL(400, "malformed request line: control character or space in the target");
    const char *ver = sp2 + 1;
    size_t vn = (size_t)(p + n - ver);
    if (vn == 8 && memcmp(ver, "HTTP/1.1", 8) == 0)
        *http11 = true;
    else if (vn == 8 && memcmp(ver, "HTTP/1.0", 8) == 0)
        *http11 = false;
    else if (vn >= 6 && memcmp(ver, "HTTP/", 5) == 0 && ver[5] >= '0' && ver[5] <= '9')
        HEAD_FAIL(505, "HTTP version not supported: use HTTP/1.1 or HTTP/1.0");
    else
        HEAD_FAIL(400, "malformed request line: no HTTP version");
    return 0;
}

struct head_seen {
    int host, content_length, transfer_encoding;
    bool chunked;
};

static unsigned check_header(const char *p, size_t n, struct head_seen *h, char *msg, size_t msglen)
{
    if (p[0] == ' ' || p[0] == '\t')
        HEAD_FAIL(400, "malformed header: folded (obsolete line folding is not accepted)");
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p)
        HEAD_FAIL(400, "malformed header: a line without \"name:\"");
    for (const char *c = p; c < colon; c++)
        if (!tchar((unsigned char)*c))
            HEAD_FAIL(400, "malformed header: bad character in a header name");
    const char *v = colon + 1;
    size_t vn = (size_t)(p + n - v);
    for (size_t i = 0; i < vn; i++)
        if (((unsigned char)v[i] < ' ' && v[i] != '\t') || v[i] == 0x7f)
            HEAD_FAIL(400, "malformed header: control character in the value of %.*s",
                      (int)(colon - p), p);
    size_t nn = (size_t)(colon - p);
    if (nn == 4 && strncasecmp(p, "Host", 4) == 0) {
        h->host++;
    } else if (nn == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
        h->content_length++;
        while (vn && (*v == ' ' || *v == '\t'))
            v++, vn--;
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (vn == 0)
            HEAD_FAIL(400, "bad Content-Length: empty");
        for (size_t i = 0; i < vn; i++)
            if (v[i] < '0' || v[i] > '9')
                HEAD_FAIL(400, "bad Content-Length \"%.*s\": not a decimal number",
                          (int)(vn < 40 ? vn : 40), v);
        if (vn > 18)
            HEAD_FAIL(413, "Content-Length larger than any body this server accepts");
    } else if (nn == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
        h->transfer_encoding++;
        h->chunked = trimmed_equal(v, vn, "chunked");
        if (!h->chunked)
            HEAD_FAIL(501, "Transfer-Encoding \"%.*s\" not supported: only chunked",
                      (int)(vn < 40 ? vn : 40), v);
    }
    return 0;
}

unsigned http_head_check(const char *head, size_t len, char *msg, size_t msglen)
{
    const char *p = head, *end = head + len, *next;
    if (len > HTTP_HEAD_MAX)
        HEAD_FAIL(431, "request header block larger than %d bytes", HTTP_HEAD_MAX);
    while (p < end && (*p == '\r' || *p == '\n')) /* RFC 9112 2.2: ignore leading empty lines */
        p++;
    if (memchr(head, '\0', len))
        HEAD_FAIL(400, "malformed request: NUL byte in the header block");
    size_t n = head_line(p, end, &next);
    bool http11 = false;
    unsigned st = check_request_line(p, n, &http11, msg, msglen);
    if (st)
        return st;
    struct head_seen h = {0};
    bool ended = false;
    for (p = next; p < end; p = next) {
        n = head_line(p, end, &next);
        if (n == 0) {
            ended = true;
            break;
        }
        if ((st = check_header(p, n, &h, msg, msglen)))
            return st;
    }
    if (!ended)
        HEAD_FAIL(400, "malformed request: header block does not end with an empty line");
    if (http11 && h.host != 1)
        HEAD_FAIL(400, h.host ? "more than one Host header" : "HTTP/1.1 request without Host");
    if (h.content_length > 1)
        HEAD_FAIL(400, "more than one Content-Length header");
    if (h.transfer_encoding > 1 || (h.transfer_encoding && h.content_length))
        HEAD_FAIL(400, "Transfer-Encoding with Content-Length or repeated: ambiguous body length");
    if (h.transfer_encoding && !http11)
        HEAD_FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
    return 0;
}

/* Where the header block in buf ends (just past its empty line), or 0 if not there yet. */
static size_t head_end(const char *buf, size_t n)
{
    size_t i = 0;
    while (i < n && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    for (; i < n; i++)
        if (buf[i] == '\n') {
            if (i + 1 < n && buf[i + 1] == '\n')
                return i + 2;
            if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
                return i + 3;
        }
    return 0;
}

/* ---- error replies written by the gate itself ---- */

static char *error_json(const char *msg);

static const char *reason(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Best effort on a non-blocking socket, then closed; reads what the client sent first so the
 * close does not reset the connection before the client can read the reply. */
static void gate_refuse(struct http_server *s, int fd, unsigned status, const char *msg, bool retry)
{
    if (s->tls_cert) { /* a plaintext reply means nothing inside a TLS handshake */
        close(fd);
        return;
    }
    char head[1024];
    char *body = error_json(msg);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s",
                     status, reason(status), body ? strlen(body) : 0,
                     retry ? "Retry-After: 1\r\n" : "");
    for (int i = 0; i < s->opts.n_error_headers && n < (int)sizeof(head); i++)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%s: %s\r\n",
                      s->opts.error_headers[i].name, s->opts.error_headers[i].value);
    if (n < (int)sizeof(head) - 2) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
        char drain[4096];
        while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
            ;
        if (send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n && body)
            send(fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);
    }
    free(body);
    close(fd);
}

/* ---- the gate thread ---- */

/* Under s->lock: open connections (pending or in MHD) from the address of sl. */
static unsigned count_addr(struct http_server *s, const struct conn_slot *sl)
{
    unsigned n = 0;
    for (size_t i = 0; i < s->n_slots; i++) {
        const struct conn_slot *o = &s->slots[i];
        n += o->state != SLOT_FREE && o->family == sl->family &&
             memcmp(o->addr, sl->addr, sizeof(o->addr)) == 0;
    }
    return n;
}

/* Under s->lock: frees a pending slot; the caller closes (or hands on) the fd. */
static void pending_drop(struct http_server *s, int fd)
{
    epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    s->slots[fd].state = SLOT_FREE;
    s->n_pending--;
}

static void evict_oldest_pending(struct http_server *s)
{
    int oldest = -1;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].state == SLOT_PENDING &&
            (oldest < 0 || s->slots[i].since_ms < s->slots[oldest].since_ms))
            oldest = (int)i;
    if (oldest >= 0)
        pending_drop(s, oldest);
    pthread_mutex_unlock(&s->lock);
    if (oldest >= 0)
        gate_refuse(s, oldest, 408, "request header not complete: too many slow clients", false);
}

static void addr_of(const struct sockaddr_storage *ss, struct conn_slot *sl)
{
    sl->family = ss->ss_family;
    memset(sl->addr, 0, sizeof(sl->addr));
    if (ss->ss_family == AF_INET)
        memcpy(sl->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    else if (ss->ss_family == AF_INET6)
        memcpy(sl->addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static void gate_accept(struct http_server *s)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (s->n_pending > 0)
                    evict_oldest_pending(s);
                else
                    usleep(10000); /* every fd is a served request: let one finish */
            }
            return;
        }
        struct conn_slot c = {.state = SLOT_PENDING, .since_ms = now_ms()};
        addr_of(&ss, &c);
        c.deadline_ms = c.since_ms + s->opts.header_timeout_ms;
        bool busy = false, full = false;
        pthread_mutex_lock(&s->lock);
        int rc = slots_grow(s, fd);
        if (!rc && s->opts.max_per_addr && c.family != AF_UNIX)
            busy = count_addr(s, &c) >= s->opts.max_per_addr;
        if (!rc && !busy) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
            rc = epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
        }
        if (!rc && !busy) {
            s->slots[fd] = c;
            s->n_pending++;
            full = s->n_pending > s->opts.max_pending;
        }
        pthread_mutex_unlock(&s->lock);
        if (busy)
            gate_refuse(s, fd, 429, "too many connections from this address", true);
        else if (rc)
            close(fd);
        else if (full)
            evict_oldest_pending(s);
    }
}

/* New bytes on a pending connection: hand it to MHD once its header block is in and valid. */
static void gate_check(struct http_server *s, int fd)
{
    char buf[HTTP_HEAD_MAX + 1], msg[256];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    size_t end = n > 0 && !s->tls_cert ? head_end(buf, (size_t)n) : 0;
    unsigned status = 0;
    if (n > 0 && !end && (size_t)n <= HTTP_HEAD_MAX && !s->tls_cert)
        return; /* more to come */
    if (n > 0 && !s->tls_cert)
        status = end ? http_head_check(buf, end, msg, sizeof(msg))
                     : http_head_check(buf, (size_t)n, msg, sizeof(msg));
    pthread_mutex_lock(&s->lock);
    struct conn_slot *sl = slot_get(s, fd);
    if (!sl || sl->state != SLOT_PENDING) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    struct conn_slot c = *sl;
    pending_drop(s, fd);
    bool over = n > 0 && !status && s->n_active >= s->opts.max_connections;
    if (n > 0 && !status && !over) {
        c.state = SLOT_MHD;
        c.in_request = c.started = false;
        c.since_ms = now_ms();
        c.deadline_ms = c.since_ms + s->opts.header_timeout_ms;
        s->slots[fd] = c;
        s->n_active++;
    }
    pthread_mutex_unlock(&s->lock);
    if (n <= 0) {
        close(fd); /* the client went away */
    } else if (status) {
        gate_refuse(s, fd, status, msg, false);
    } else if (over) {
        gate_refuse(s, fd, 503, "too many connections: try again", true);
    } else {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        getpeername(fd, (struct sockaddr *)&ss, &sslen);
        if (MHD_add_connection(s->mhd, fd, (struct sockaddr *)&ss, sslen) != MHD_YES) {
            pthread_mutex_lock(&s->lock); /* MHD closed the socket */
            s->slots[fd].state = SLOT_FREE;
            s->n_active--;
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* Pending connections past their deadline get 408; MHD connections whose next header block is
 * overdue are shut down (MHD then closes them). A connection MHD never notified as STARTED within
 * GATE_LOST_MS of the hand-off was refused by MHD itself (which closed it without a CLOSED): its
 * slot is freed, never acted on, since the fd number may belong to something else by now. */
static void gate_reap(struct http_server *s)
{
    int64_t now = now_ms();
    int late[64], n_late = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_slots; i++) {
        struct conn_slot *sl = &s->slots[i];
        if (sl->state == SLOT_MHD && !sl->started && now >= sl->since_ms + GATE_LOST_MS) {
            sl->state = SLOT_FREE;
            s->n_active--;
            continue;
        }
        if (!sl->deadline_ms || now < sl->deadline_ms)
            continue;
        if (sl->state == SLOT_MHD && sl->started && !sl->in_request) {
            shutdown((int)i, SHUT_RDWR);
            sl->deadline_ms = 0;
        } else if (sl->state == SLOT_PENDING && n_late < (int)ARRAY_LEN(late)) {
            pending_drop(s, (int)i);
            late[n_late++] = (int)i;
        }
    }
    pthread_mutex_unlock(&s->lock);
    char msg[128];
    snprintf(msg, sizeof(msg), "request header not complete within %lld ms",
             (long long)s->opts.header_timeout_ms);
    for (int i = 0; i < n_late; i++)
        gate_refuse(s, late[i], 408, msg, false);
}

static void *gate_main(void *arg)
{
    struct http_server *s = arg;
    struct epoll_event evs[64];
    int64_t next_reap = 0;
    for (;;) {
        int n = epoll_wait(s->epoll_fd, evs, (int)ARRAY_LEN(evs), GATE_TICK_MS);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == s->wake_fd) {
                uint64_t v;
                if (read(s->wake_fd, &v, sizeof(v)) < 0) { /* counter reset; nothing to do */
                }
            } else if (fd == s->listen_fd) {
                gate_accept(s);
            } else {
                gate_check(s, fd);
            }
        }
        pthread_mutex_lock(&s->lock);
        bool stop = s->gate_stop;
        if (s->gate_quiesce && s->listen_fd >= 0) { /* closed here: no accept() races it */
            epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
            close(s->listen_fd);
            s->listen_fd = -1;
            pthread_cond_broadcast(&s->idle);
        }
        pthread_mutex_unlock(&s->lock);
        if (stop)
            return NULL;
        if (now_ms() >= next_reap) {
            gate_reap(s);
            next_reap = now_ms() + GATE_TICK_MS;
        }
    }
}

static void gate_wake(struct http_server *s)
{
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof(one)) < 0) { /* the counter is full: it is awake anyway */
    }
}

static int gate_start(struct http_server *s, char *err, size_t errlen)
{
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = s->listen_fd};
    struct epoll_event wev = {.events = EPOLLIN, .data.fd = s->wake_fd};
    int fl = fcntl(s->listen_fd, F_GETFL);
    if (s->epoll_fd < 0 || s->wake_fd < 0 || fl < 0 ||
        fcntl(s->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &lev) < 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->wake_fd, &wev) < 0)
        return seterr(err, errlen, -errno, "http server: epoll: %s", strerror(errno));
    if (pthread_create(&s->gate, NULL, gate_main, s) != 0)
        return seterr(err, errlen, -EAGAIN, "http server: cannot start the accept thread");
    s->gate_running = true;
    return 0;
}

/* Stops the thread and closes every pending connection (MHD's are MHD_stop_daemon's). */
static void gate_stop(struct http_server *s)
{
    if (s->gate_running) {
        pthread_mutex_lock(&s->lock);
        s->gate_stop = true;
        pthread_mutex_unlock(&s->lock);
        gate_wake(s);
        pthread_join(s->gate, NULL);
        s->gate_running = false;
    }
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].state == SLOT_PENDING) {
            close((int)i);
            s->slots[i].state = SLOT_FREE;
        }
    if (s->epoll_fd >= 0)
        close(s->epoll_fd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    s->epoll_fd = s->wake_fd = -1;
}

/* MHD's connection life: STARTED when it takes the socket, CLOSED before it closes the fd. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    pthread_mutex_lock(&s->lock);
    struct conn_slot *sl = conn_slot(s, conn);
    if (sl && toe == MHD_CONNECTION_NOTIFY_STARTED) {
        sl->started = true;
    } else if (sl && toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        sl->state = SLOT_FREE;
        s->n_active--;
    }
    pthread_mutex_unlock(&s->lock);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* MHD's %XX decoding (path and query), noting a decoded NUL: MHD's strings end at it, so
 * /function/fr%00xyz would otherwise read as /function/fr. request_begin refuses the request. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *uri)
{
    struct http_server *s = cls;
    char *w = uri;
    bool nul = false;
    for (const char *r = uri; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            nul |= hi == 0 && lo == 0;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    if (nul) {
        pthread_mutex_lock(&s->lock);
        struct conn_slot *sl = conn_slot(s, conn);
        if (sl)
            sl->nul_in_url = true;
        pthread_mutex_unlock(&s->lock);
    }
    return (size_t)(w - uri);
}

/* ---- MHD callbacks ---- */

static int error_reply(struct http_server *s, struct MHD_Connection *conn, unsigned status,
                       const char *msg)
{
    return http_reply_error(conn, status, msg, s->opts.error_headers, s->opts.n_error_headers);
}

static enum MHD_Result reply_too_large(struct http_server *s, struct MHD_Connection *conn)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "request body larger than the limit of %zu bytes (max_body)",
             s->opts.max_body);
    return error_reply(s, conn, 413, msg) == 0 ? MHD_YES : MHD_NO;
}

/* 503 + Retry-After: the bodies in flight already hold max_body_inflight bytes. */
static enum MHD_Result reply_busy(struct http_server *s, struct MHD_Connection *conn)
{
    char msg[160];
    struct http_header h[8] = {{"Retry-After", "2"}};
    int n = 1;
    for (int i = 0; i < s->opts.n_error_headers && n < (int)ARRAY_LEN(h); i++)
        h[n++] = s->opts.error_headers[i];
    snprintf(msg, sizeof(msg),
             "server busy: request bodies in flight reached the limit of %zu bytes; retry later",
             s->opts.max_body_inflight);
    return http_reply_error(conn, 503, msg, h, n) == 0 ? MHD_YES : MHD_NO;
}

/* Takes n more bytes of the body budget for st; false when that would pass the cap. */
static bool body_reserve(struct http_server *s, struct request_state *st, size_t n)
{
    if (!s->opts.max_body_inflight)
        return true;
    pthread_mutex_lock(&s->lock);
    bool ok = n <= s->opts.max_body_inflight - s->body_inflight;
    if (ok) {
        s->body_inflight += n;
        st->reserved += n;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* First call for a request: headers are in. Refuses at once a declared length over the limit, a
 * body the in-flight budget cannot hold, and a %00 in the path or query. */
static enum MHD_Result request_begin(struct http_server *s, struct MHD_Connection *conn,
                                     void **con_cls)
{
    struct request_state *st = calloc(1, sizeof(*st));
    if (!st)
        return MHD_NO;
    *con_cls = st;
    pthread_mutex_lock(&s->lock);
    s->open_requests++;
    struct conn_slot *sl = conn_slot(s, conn);
    bool nul = sl && sl->nul_in_url;
    if (sl) {
        sl->in_request = true;
        sl->deadline_ms = 0;
        sl->nul_in_url = false;
    }
    pthread_mutex_unlock(&s->lock);
    if (nul) {
        st->refused = true;
        return error_reply(s, conn, 400, "request path or query holds an encoded NUL byte (%00)")
                   ? MHD_NO
                   : MHD_YES;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || n > s->opts.max_body) {
            st->too_large = true;
            return reply_too_large(s, conn);
        }
        if (!body_reserve(s, st, (size_t)n)) {
            st->refused = true;
            return reply_busy(s, conn);
        }
        st->cap = (size_t)n;
    }
    st->body = malloc(st->cap + 1);
    if (!st->body)
        return MHD_NO;
    return MHD_YES;
}

static enum MHD_Result request_append(struct http_server *s, struct request_state *st,
                                      const char *data, size_t n)
{
    if (st->too_large || st->busy)
        return MHD_YES; /* keep reading and dropping, reply at the end */
    if (n > s->opts.max_body - st->len) {
        st->too_large = true;
        return MHD_YES;
    }
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n)
            cap = cap > s->opts.max_body / 2 ? s->opts.max_body : cap * 2;
        if (cap > st->reserved && !body_reserve(s, st, cap - st->reserved)) {
            st->busy = true; /* a chunked body past the budget: drop it, reply 503 at the end */
            return MHD_YES;
        }
        uint8_t *b = realloc(st->body, cap + 1);
        if (!b)
            return MHD_NO;
        st->body = b;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct request_state *st = *con_cls;
    if (!st)
        return request_begin(s, conn, con_cls);
    if (*upload_data_size > 0) {
        enum MHD_Result r =
            st->refused ? MHD_YES : request_append(s, st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return r;
    }
    if (st->refused)
        return MHD_YES; /* answered in request_begin */
    if (st->too_large)
        return reply_too_large(s, conn);
    if (st->busy)
        return reply_busy(s, conn);
    st->body[st->len] = '\0';
    struct http_request req = {
        .conn = conn, .method = method, .url = url, .body = st->body, .body_len = st->len};
    return s->opts.handler(&req, s->opts.user) == 0 ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct request_state *st = *con_cls;
    if (st) {
        free(st->body);
        *con_cls = NULL;
        pthread_mutex_lock(&s->lock);
        s->body_inflight -= st->reserved;
        struct conn_slot *sl = conn_slot(s, conn);
        if (sl) { /* a kept-alive connection: its next header block is due in header_timeout */
            sl->in_request = false;
            sl->deadline_ms = now_ms() + s->opts.header_timeout_ms;
        }
        if (--s->open_requests == 0)
            pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
        free(st);
    }
}

/* ---- server lifetime ---- */

/* HTTPS: both PEM files or neither; MHD must have been built with TLS. */
static int tls_load(struct http_server *s, char *err, size_t errlen)
{
    const struct http_server_opts *o = &s->opts;
    if (!o->tls_cert && !o->tls_key)
        return 0;
    if (!o->tls_cert || !o->tls_key)
        return seterr(err, errlen, -EINVAL, "https: need both a certificate and a key file");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return seterr(err, errlen, -ENOTSUP, "https: this libmicrohttpd has no TLS support");
    size_t n;
    int rc = read_file(o->tls_cert, HTTP_TLS_PEM_MAX, (uint8_t **)&s->tls_cert, &n, err, errlen);
    if (!rc)
        rc = read_file(o->tls_key, HTTP_TLS_PEM_MAX, (uint8_t **)&s->tls_key, &n, err, errlen);
    return rc;
}

static int open_listener(struct http_server *s, char *err, size_t errlen)
{
    char host[256];
    uint16_t port = 0;
    const char *unix_path = NULL;
    int fd = -1;
    int rc = http_listen_fd(s->opts.listen, &fd, err, errlen);
    if (rc != 0)
        return rc < 0 ? rc : listen_inherited(s, fd, err, errlen);
    rc = http_listen_parse(s->opts.listen, host, sizeof(host), &port, &unix_path, err, errlen);
    if (rc < 0)
        return rc;
    if (unix_path)
        return listen_unix(s, unix_path, err, errlen);
    return listen_tcp(s, host, port, err, errlen);
}

int http_server_start(const struct http_server_opts *opts, struct http_server **out, char *err,
                      size_t errlen)
{
    if (!opts->handler)
        return seterr(err, errlen, -EINVAL, "http server: no request handler");
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "http server: out of memory");
    s->opts = *opts;
    s->listen_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (!s->opts.max_body)
        s->opts.max_body = HTTP_DEFAULT_MAX_BODY;
    if (!s->opts.header_timeout_ms)
        s->opts.header_timeout_ms = HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    if (!s->opts.max_pending)
        s->opts.max_pending = GATE_DEFAULT_MAX_PENDING;
    if (!s->opts.max_connections)
        s->opts.max_connections = GATE_DEFAULT_MAX_CONNECTIONS;
    s->epoll_fd = s->wake_fd = -1;
    int rc = tls_load(s, err, errlen);
    if (!rc)
        rc = open_listener(s, err, errlen);
    if (rc < 0) {
        free(s->tls_cert);
        free(s->tls_key);
        free(s);
        return rc;
    }
    /* MHD gets connections only from the gate (MHD_add_connection); poll, not select, so fds
     * above FD_SETSIZE work. Its limit sits above ours: our count drops at CLOSED, a little
     * before MHD's. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET;
    if (!opts->thread_pool)
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    else
        flags |= MHD_USE_EPOLL;
    if (s->tls_cert)
        flags |= MHD_USE_TLS;
    /* Repeating CONNECTION_TIMEOUT is a no-op: an END there would cut the list short. */
    enum MHD_OPTION timeout_opt = MHD_OPTION_CONNECTION_TIMEOUT;
    struct MHD_OptionItem items[] = {
        {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : timeout_opt,
         s->tls_cert ? 0 : (intptr_t)opts->conn_timeout_s, s->tls_cert},
        {s->tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : timeout_opt,
         s->tls_cert ? 0 : (intptr_t)opts->conn_timeout_s, s->tls_key},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, s},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)opts->conn_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)(4 * HTTP_HEAD_MAX), NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(s->opts.max_connections + 64), NULL},
        {opts->thread_pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)opts->thread_pool, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, items,
                              MHD_OPTION_END);
    if (!s->mhd)
        rc = seterr(err, errlen, -EIO, "listen on %s: libmicrohttpd failed to start", opts->listen);
    else
        rc = gate_start(s, err, errlen);
    if (rc) {
        gate_stop(s);
        if (s->mhd)
            MHD_stop_daemon(s->mhd);
        close(s->listen_fd);
        if (s->unix_path[0])
            unlink(s->unix_path);
        free(s->slots);
        free(s->tls_cert);
        free(s->tls_key);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_quiesce(struct http_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->listen_fd >= 0 && s->gate_running) { /* the gate thread closes it between accepts */
        s->gate_quiesce = true;
        gate_wake(s);
        while (s->listen_fd >= 0)
            pthread_cond_wait(&s->idle, &s->lock);
    } else if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    pthread_mutex_unlock(&s->lock);
    if (s->unix_path[0])
        unlink(s->unix_path);
    s->unix_path[0] = '\0';
}

int http_server_wait_idle(struct http_server *s, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (timeout_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (s->open_requests > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->idle, &s->lock, &ts);
    int left = s->open_requests;
    pthread_mutex_unlock(&s->lock);
    return left ? -ETIMEDOUT : 0;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    http_server_quiesce(s);
    gate_stop(s);
    MHD_stop_daemon(s->mhd);
    free(s->slots);
    free(s->tls_cert);
    free(s->tls_key);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- replies ---- */

static int queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r,
                 const char *content_type, const struct http_header *hdrs, int n_hdrs)
{
    if (!r)
        return -EIO;
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < n_hdrs; i++)
        MHD_add_response_header(r, hdrs[i].name, hdrs[i].value);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok == MHD_YES ? 0 : -EIO;
}

int http_reply(struct MHD_Connection *conn, unsigned status, const char *content_type,
               const void *body, size_t len, const struct http_header *hdrs, int n_hdrs)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    return queue(conn, status, r, content_type, hdrs, n_hdrs);
}

int http_reply_take(struct MHD_Connection *conn, unsigned status, const char *content_type,
                    void *body, size_t len, const struct http_header *hdrs, int n_hdrs)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r)
        free(body);
    return queue(conn, status, r, content_type, hdrs, n_hdrs);
}

int http_reply_json(struct MHD_Connection *conn, unsigned status, const char *json,
                    const struct http_header *hdrs, int n_hdrs)
{
    return http_reply(conn, status, "application/json", json, strlen(json), hdrs, n_hdrs);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80                   ? 1
                 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2
                 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3
                 : p[0] >= 0xf0 && p[0] < 0xf5 ? 4
                                               : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0; /* overlong, surrogate, past U+10FFFF */
    return len;
}

/* {"error": msg} as compact JSON (malloc'd), or NULL without memory. A message quoting a client's
 * bytes may hold invalid UTF-8: each such byte is written as \xNN so the reply stays JSON. */
static char *error_json(const char *msg)
{
    msg = msg ? msg : "";
    size_t n = strlen(msg);
    char *clean = malloc(4 * n + 1), *w = clean;
    if (!clean)
        return NULL;
    for (size_t i = 0, l; i < n; i += l) {
        l = utf8_len((const unsigned char *)msg + i, n - i);
        if (l) {
            memcpy(w, msg + i, l);
            w += l;
        } else {
            w += sprintf(w, "\\x%02x", (unsigned char)msg[i]);
            l = 1;
        }
    }
    *w = '\0';
    json_t *o = json_pack("{s:s}", "error", clean);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    free(clean);
    return text;
}

int http_reply_error(struct MHD_Connection *conn, unsigned status, const char *msg,
                     const struct http_header *hdrs, int n_hdrs)
{
    char *text = error_json(msg);
    if (!text)
        return http_reply(conn, status, "application/json", "{\"error\":\"out of memory\"}", 25,
                          hdrs, n_hdrs);
    return http_reply_take(conn, status, "application/json", text, strlen(text), hdrs, n_hdrs);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_query(const struct http_request *req, const char *name)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v && MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name),
                                            NULL, NULL) == MHD_YES)
        return "";
    return v;
}
