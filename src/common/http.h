/*
 * http.h — the HTTP server pieces shmfaas-fn and shmfaasd share, on libmicrohttpd.
 *
 * Owns: the listening socket (TCP "host:port" or "unix:PATH", bound here and handed to MHD, or
 * "fd:N", one inherited already listening), the
 * accumulation of a request body up to a maximum size, and reply helpers (plain, JSON, and
 * `{"error": "..."}` with extra headers). Guarantees:
 *   - a handler is called once per request, after the whole body has arrived, with the body in one
 *     buffer (NUL-terminated one byte past body_len, for text);
 *   - a body longer than max_body never reaches the handler and is never buffered beyond the limit:
 *     the client gets 413 with the server's error headers (a Content-Length over the limit is
 *     refused before any byte is read);
 *   - a unix socket path is unlinked when the server stops; an existing non-socket file at the path
 *     is never removed;
 *   - a connection reaches libmicrohttpd only once its first header block is complete and valid
 *     (the gate): slow, malformed or over-cap clients get a JSON error from us, never MHD's HTML,
 *     and hold no MHD thread; request-body bytes in flight are bounded in total
 *     (max_body_inflight); every error reply is {"error": "..."}, valid JSON whatever bytes the
 *     message holds.
 * Documented exception: a later request on a kept-alive connection is parsed by MHD alone, so a
 * malformed head there gets MHD's own (HTML) reply; its header deadline still holds.
 *
 * Threading: one thread per connection (thread_pool == 0) or a pool of polling threads. A handler
 * may block (it runs on its connection's thread); it must queue exactly one reply before returning
 * 0.
 */
#ifndef SHMFAAS_HTTP_H
#define SHMFAAS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;
struct http_server;

struct http_header {
    const char *name;
    const char *value;
};

/* One request as a handler sees it. Valid only during the handler call. */
struct http_request {
    struct MHD_Connection *conn; /* for MHD_lookup_connection_value() and custom replies */
    const char *method;          /* "GET", "POST", ... */
    const char *url;             /* path without the query string */
    const uint8_t *body;         /* never NULL; "" when there is no body */
    size_t body_len;
};

/* Returns 0 once a reply is queued; a negative value closes the connection without a reply. */
typedef int (*http_handler)(struct http_request *req, void *user);

struct http_server_opts {
    const char *listen; /* "unix:/path", "host:port", ":port", "port" (0: any free port), "fd:N" */
    size_t max_body;    /* 0: 16 MiB */
    unsigned conn_timeout_s;  /* idle connection timeout (read/write); 0: none */
    unsigned thread_pool;     /* 0: one thread per connection; N: N polling threads */
    unsigned max_connections; /* connections handed to MHD (requests being served); 0: 1024 */
    /* Bounds (see "The gate" in http.c). A request's whole header block must arrive within
     * header_timeout_ms of the connection's accept (or of the end of the previous reply on a
     * kept-alive connection), however slowly it trickles in; 0: HTTP_DEFAULT_HEADER_TIMEOUT_MS. */
    int64_t header_timeout_ms;
    unsigned max_per_addr;    /* open connections per client address (TCP); 0: no cap */
    unsigned max_pending;     /* connections whose header block is still arriving; 0: 4096 */
    size_t max_body_inflight; /* request-body bytes buffered across all requests; beyond it a new
                               * body gets 503 + Retry-After; 0: no cap */
    /* HTTPS (opt-in): PEM files read at start. MHD does the handshake, so the gate cannot peek at
     * a plaintext head: a TLS connection goes to MHD at its first bytes (its pending deadline and
     * the per-address cap still hold; refusals are a close, not a JSON reply), and MHD checks the
     * head, within the header deadline and MHD's connection timeout and memory limit. */
    const char *tls_cert, *tls_key;
    const struct http_header *error_headers; /* added to replies the server makes itself (413) */
    int n_error_headers;
    http_handler handler;
    void *user;
};

#define HTTP_DEFAULT_MAX_BODY          ((size_t)16 << 20)
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define HTTP_HEAD_MAX                  16384 /* largest request header block (request line + headers) */

/* Checks a complete request header block (up to and including its empty line) the way the gate
 * does before libmicrohttpd sees it: request line, HTTP version, header syntax, Host,
 * Content-Length, Transfer-Encoding. 0 when acceptable; otherwise the HTTP status to answer and a
 * message for {"error": ...}. The fuzzable entry of the gate. */
unsigned http_head_check(const char *head, size_t len, char *msg, size_t msglen);

/* Parses a listen address as above into its parts. For "unix:PATH" *unix_path points into s and
 * host/port are untouched; for TCP host is "" when the address names no host (all interfaces).
 * Errors say what was wrong. */
int http_listen_parse(const char *s, char *host, size_t hostlen, uint16_t *port,
                      const char **unix_path, char *err, size_t errlen);
/* "fd:N" (N >= 3): a listening socket inherited from the parent, used as it is (shmfaasd binds an
 * instance's socket in a directory only it can write and passes it as fd 3). Returns 1 and sets *fd
 * for that form, 0 for any other form, -EINVAL when it is malformed. http_listen_parse accepts it
 * too (host "", port 0, no unix path). */
int http_listen_fd(const char *s, int *fd, char *err, size_t errlen);

int http_server_start(const struct http_server_opts *opts, struct http_server **out, char *err,
                      size_t errlen);
/* The TCP port actually bound (useful with port 0); 0 for a unix socket. */
uint16_t http_server_port(const struct http_server *s);
/* Stops accepting new connections (closes the listening socket); open connections keep being
 * served. Idempotent. */
void http_server_quiesce(struct http_server *s);
/* Waits until every request that has begun has had its reply fully sent (or its connection
 * dropped): call after quiesce so SIGTERM drains replies, not just handlers. -ETIMEDOUT if some
 * are still open after timeout_ms. */
int http_server_wait_idle(struct http_server *s, int64_t timeout_ms);
/* Closes every connection, joins the threads, unlinks a unix socket, frees s. NULL is a no-op. */
void http_server_stop(struct http_server *s);

/* ---- replies; each returns 0, or -EIO when the reply could not be queued ---- */

/* body is copied; headers (may be NULL with n == 0) are added as given. */
int http_reply(struct MHD_Connection *conn, unsigned status, const char *content_type,
               const void *body, size_t len, const struct http_header *hdrs, int n_hdrs);
/* Takes ownership of a malloc'd body (freed by MHD after sending, or here on failure). */
int http_reply_take(struct MHD_Connection *conn, unsigned status, const char *content_type,
                    void *body, size_t len, const struct http_header *hdrs, int n_hdrs);
/* Content-Type: application/json; json is a NUL-terminated string, copied. */
int http_reply_json(struct MHD_Connection *conn, unsigned status, const char *json,
                    const struct http_header *hdrs, int n_hdrs);
/* {"error": "<msg>"} with msg properly escaped, Content-Type: application/json. */
int http_reply_error(struct MHD_Connection *conn, unsigned status, const char *msg,
                     const struct http_header *hdrs, int n_hdrs);

/* A request header's value (case-insensitive name) or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* A query argument's value or NULL (an argument without '=' gives ""). */
const char *http_request_query(const struct http_request *req, const char *name);

#endif
