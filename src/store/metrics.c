/* GET /metrics over libmicrohttpd, serving the text snapshot the event loop last published. */
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
    struct MHD_Daemon *mhd;
    pthread_mutex_t lock;
    char *text; /* guarded by lock */
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body,
                             const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    struct metrics *m = cls;
    if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, strdup("only GET /metrics is served here\n"),
                     "text/plain");
    pthread_mutex_lock(&m->lock);
    char *body = strdup(m->text ? m->text : "");
    pthread_mutex_unlock(&m->lock);
    if (!body)
        return MHD_NO;
    return reply(conn, MHD_HTTP_OK, body, "text/plain; version=0.0.4");
}

static int parse_addr(const char *addr, struct sockaddr_in *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    const char *colon = strrchr(addr, ':');
    const char *port = colon ? colon + 1 : addr;
    char host[64] = "127.0.0.1";
    if (colon && colon > addr) {
        size_t n = (size_t)(colon - addr);
        if (n >= sizeof(host))
            return seterr(err, errlen, -EINVAL, "--metrics %s: host too long", addr);
        memcpy(host, addr, n);
        host[n] = '\0';
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p <= 0 || p > 65535)
        return seterr(err, errlen, -EINVAL, "--metrics %s: expected HOST:PORT, e.g. "
                      "127.0.0.1:9101", addr);
    sa->sin_port = htons((uint16_t)p);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return seterr(err, errlen, -EINVAL, "--metrics %s: %s is not an IPv4 address", addr,
                      host);
    return 0;
}

int metrics_start(const char *addr, struct metrics **out, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    int rc = parse_addr(addr, &sa, err, errlen);
    if (rc < 0)
        return rc;
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              handle, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
                              10u, MHD_OPTION_END);
    if (!m->mhd) {
        pthread_mutex_destroy(&m->lock);
        free(m);
        return seterr(err, errlen, -EADDRINUSE, "--metrics %s: cannot listen (in use?)", addr);
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
    MHD_stop_daemon(m->mhd);
    pthread_mutex_destroy(&m->lock);
    free(m->text);
    free(m);
}
