/*
 * shmfaas-webhook — the mutating admission webhook that gives pods naming a model (label or
 * annotation com.shmfaas.model) the node's store socket, so faas-netes and Knative need no fork.
 *
 *   shmfaas-webhook --listen :8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key \
 *       [--socket-dir /run/shmfaas] [--mount-path /run/shmfaas] [--run-as-user 12000] \
 *       [--selector-label com.shmfaas.model] [--plain]
 *
 * POST /mutate: admission.k8s.io/v1 AdmissionReview in, AdmissionReview out (admission.h decides);
 * GET /healthz: 200 "ok". HTTPS only, unless --plain (tests behind a TLS-terminating proxy). Bodies
 * over ADMISSION_MAX_BODY get 413 from the HTTP layer before any is buffered, bodies beyond
 * WEBHOOK_MAX_INFLIGHT in total get 503, and reviews are decided one at a time. main() waits for
 * SIGTERM/SIGINT in sigwait(), then drains and exits 0.
 */
#include "common/common.h"
#include "common/http.h"
#include "webhook/admission.h"

#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEBHOOK_CONN_TIMEOUT_S  10 /* kube-apiserver's own webhook timeout is at most 30 s */
#define WEBHOOK_MAX_CONNECTIONS 64 /* kube-apiservers keep a few connections each */
#define WEBHOOK_MAX_INFLIGHT    ((size_t)16 << 20) /* request bodies buffered at once */

/* One review decided at a time: the parse tree (up to ~10 MB for a hostile review within the
 * limits) is then bounded once, not per connection; a decision takes milliseconds. */
static pthread_mutex_t decide_lock = PTHREAD_MUTEX_INITIALIZER;

static int on_request(struct http_request *req, void *user)
{
    const struct admission_opts *o = user;
    if (!strcmp(req->url, "/healthz"))
        return http_reply(req->conn, 200, "text/plain", "ok\n", 3, NULL, 0);
    if (strcmp(req->url, "/mutate"))
        return http_reply_error(req->conn, 404, "no such path: POST /mutate or GET /healthz", NULL,
                                0);
    if (strcmp(req->method, "POST"))
        return http_reply_error(req->conn, 405, "/mutate takes POST", NULL, 0);
    unsigned status;
    char *out, err[256];
    pthread_mutex_lock(&decide_lock);
    int rc = admission_review(o, req->body, req->body_len, &status, &out, err, sizeof(err));
    pthread_mutex_unlock(&decide_lock);
    if (rc < 0)
        return http_reply_error(req->conn, 500, err, NULL, 0);
    return http_reply_take(req->conn, status, "application/json", out, strlen(out), NULL, 0);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: shmfaas-webhook --listen ADDR (--tls-cert FILE --tls-key FILE | --plain)"
            " [--socket-dir DIR] [--mount-path DIR] [--run-as-user UID]"
            " [--selector-label KEY]\n");
}

int main(int argc, char **argv)
{
    struct admission_opts o = {.socket_dir = "/run/shmfaas",
                               .mount_path = "/run/shmfaas",
                               .selector = "com.shmfaas.model",
                               .run_as_user = 12000};
    struct http_server_opts h = {.listen = ":8443",
                                 .max_body = ADMISSION_MAX_BODY,
                                 .conn_timeout_s = WEBHOOK_CONN_TIMEOUT_S,
                                 .max_connections = WEBHOOK_MAX_CONNECTIONS,
                                 .max_body_inflight = WEBHOOK_MAX_INFLIGHT,
                                 .handler = on_request,
                                 .user = &o};
    bool plain = false;
    /* One malloc arena: per-thread arenas would keep each connection's 2 MiB body around after it
     * is freed (8 concurrent reviews: 77 MB peak with them, 32 MB without). */
    mallopt(M_ARENA_MAX, 1);
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"socket-dir", required_argument, NULL, 's'},
        {"mount-path", required_argument, NULL, 'm'},
        {"run-as-user", required_argument, NULL, 'u'},
        {"selector-label", required_argument, NULL, 'L'},
        {"plain", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            h.listen = optarg;
            break;
        case 'c':
            h.tls_cert = optarg;
            break;
        case 'k':
            h.tls_key = optarg;
            break;
        case 's':
            o.socket_dir = optarg;
            break;
        case 'm':
            o.mount_path = optarg;
            break;
        case 'L':
            o.selector = optarg;
            break;
        case 'p':
            plain = true;
            break;
        case 'u':
            o.run_as_user = strtol(optarg, &end, 10);
            if (*end || o.run_as_user <= 0 || o.run_as_user > 0x7fffffff) {
                fprintf(stderr, "shmfaas-webhook: --run-as-user %s: need a non-root uid\n", optarg);
                return 2;
            }
            break;
        default:
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc || (!plain && (!h.tls_cert || !h.tls_key)) ||
        (plain && (h.tls_cert || h.tls_key))) {
        usage();
        return 2;
    }
    if (o.socket_dir[0] != '/' || o.mount_path[0] != '/' || !o.selector[0]) {
        fprintf(stderr, "shmfaas-webhook: --socket-dir and --mount-path are absolute paths, "
                        "--selector-label is not empty\n");
        return 2;
    }
    sigset_t sigs;
    signals_block_stop(&sigs);
    struct http_server *srv;
    char err[512];
    if (http_server_start(&h, &srv, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return 1;
    }
    log_info("serving %s on %s (port %u): socket %s mounted at %s, uid %ld, selector %s",
             plain ? "http" : "https", h.listen, http_server_port(srv), o.socket_dir, o.mount_path,
             o.run_as_user, o.selector);
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("signal %d: draining", sig);
    http_server_quiesce(srv);
    http_server_wait_idle(srv, 5000);
    http_server_stop(srv);
    return 0;
}
