/*
 * HTTP server helpers on libmicrohttpd: we bind the listening socket ourselves (TCP or unix) and
 * hand it to MHD, so both kinds behave alike and a unix path can be cleaned up; MHD's access
 * handler is turned into one call per request with the whole body, bounded by max_body.
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
};

/* Per-request state, MHD's con_cls. */
struct request_state {
    uint8_t *body;
    size_t len, cap;
    bool too_large;
};

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
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
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
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
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

/* First call for a request: headers are in. Refuses a declared length over the limit at once. */
static enum MHD_Result request_begin(struct http_server *s, struct MHD_Connection *conn,
                                     void **con_cls)
{
    struct request_state *st = calloc(1, sizeof(*st));
    if (!st)
        return MHD_NO;
    *con_cls = st;
    pthread_mutex_lock(&s->lock);
    s->open_requests++;
    pthread_mutex_unlock(&s->lock);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || n > s->opts.max_body) {
            st->too_large = true;
            return reply_too_large(s, conn);
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
    if (st->too_large || n > s->opts.max_body - st->len) {
        st->too_large = true; /* keep reading and dropping, reply 413 at the end */
        return MHD_YES;
    }
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n)
            cap = cap > s->opts.max_body / 2 ? s->opts.max_body : cap * 2;
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
        enum MHD_Result r = request_append(s, st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return r;
    }
    if (st->too_large)
        return reply_too_large(s, conn);
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
        free(st);
        *con_cls = NULL;
        pthread_mutex_lock(&s->lock);
        if (--s->open_requests == 0)
            pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
    }
}

/* ---- server lifetime ---- */

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
    int rc = open_listener(s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (!opts->thread_pool)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    else
        flags |= MHD_USE_EPOLL;
    struct MHD_OptionItem items[] = {
        {MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)opts->conn_timeout_s, NULL},
        {opts->thread_pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)opts->thread_pool, NULL},
        {opts->max_connections ? MHD_OPTION_CONNECTION_LIMIT : MHD_OPTION_END,
         (intptr_t)opts->max_connections, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, items,
                              MHD_OPTION_END);
    if (!s->mhd) {
        close(s->listen_fd);
        if (s->unix_path[0])
            unlink(s->unix_path);
        free(s);
        return seterr(err, errlen, -EIO, "listen on %s: libmicrohttpd failed to start",
                      opts->listen);
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
    if (!s || s->listen_fd < 0)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    s->listen_fd = -1;
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
    MHD_stop_daemon(s->mhd);
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

int http_reply_error(struct MHD_Connection *conn, unsigned status, const char *msg,
                     const struct http_header *hdrs, int n_hdrs)
{
    json_t *o = json_pack("{s:s}", "error", msg ? msg : "");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
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
