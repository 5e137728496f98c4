/* GET /metrics (common/http.h server), serving the text snapshot the event loop last published. */
#include "store/store.h"

#include "common/http.h"
#include "common/prom.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
    struct http_server *http;
    pthread_mutex_t lock;
    char *text; /* guarded by lock */
};

static int handle(struct http_request *req, void *user)
{
    struct metrics *m = user;
    if (strcmp(req->method, "GET") != 0 || strcmp(req->url, "/metrics") != 0)
        return http_reply_error(req->conn, 404, "only GET /metrics is served here", NULL, 0);
    pthread_mutex_lock(&m->lock);
    char *body = strdup(m->text ? m->text : "");
    pthread_mutex_unlock(&m->lock);
    if (!body)
        return -ENOMEM;
    return http_reply_take(req->conn, 200, PROM_CONTENT_TYPE, body, strlen(body), NULL,
                           0);
}

/* ":9101" and "9101" mean loopback: metrics are exposed beyond the node only when asked. */
static const char *loopback_default(const char *addr, char *buf, size_t len)
{
    const char *port = addr[0] == ':' ? addr + 1 : addr;
    if (strchr(port, ':') || strchr(port, '.') || strncmp(port, "unix:", 5) == 0)
        return addr;
    snprintf(buf, len, "127.0.0.1:%s", port);
    return buf;
}

int metrics_start(const char *addr, struct metrics **out, char *err, size_t errlen)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    char buf[128];
    struct http_server_opts opts = {
        .listen = loopback_default(addr, buf, sizeof(buf)),
        .max_body = 4096,
        .conn_timeout_s = 10,
        .thread_pool = 0,
        .max_connections = 64,
        .handler = handle,
        .user = m,
    };
    char why[512];
    int rc = http_server_start(&opts, &m->http, why, sizeof(why));
    if (rc < 0) {
        pthread_mutex_destroy(&m->lock);
        free(m);
        return seterr(err, errlen, rc, "--metrics %s: %s", addr, why);
    }
    *out = m;
    return 0;
}

void metrics_publish(struct metrics *m, char *text)
{
    if (!m) {
        free(text);
        return;
    }
    pthread_mutex_lock(&m->lock);
    free(m->text);
    m->text = text;
    pthread_mutex_unlock(&m->lock);
}

void metrics_stop(struct metrics *m)
{
    if (!m)
        return;
    http_server_stop(m->http);
    pthread_mutex_destroy(&m->lock);
    free(m->text);
    free(m);
}
