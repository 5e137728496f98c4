/* Unit tests of src/common/http.c (shared by shmfaas-fn and shmfaasd): listen address parsing, one
 * handler call per request with the whole body, 413 over max_body (declared or chunked) with the
 * error headers, unix sockets cleaned up, error replies escaped, the gate's header-block check. An
 * in-process server and libcurl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>

#include "common/http.h"
#include "harness.h"

/* Echoes "METHOD URL LEN q=X" and answers /err with an error reply. */
static int echo(struct http_request *req, void *user)
{
    if (strcmp(req->url, "/err") == 0)
        return http_reply_error(req->conn, 400, "bad \"thing\"\n", NULL, 0);
    const char *q = http_request_query(req, "q");
    char *text = NULL;
    if (asprintf(&text, "%s %s %zu q=%s", req->method, req->url, req->body_len, q ? q : "(none)") <
        0)
        return -1;
    return http_reply_take(req->conn, 200, "text/plain", text, strlen(text), NULL, 0);
}

static const struct http_header err_hdrs[] = {{"X-Test-Internal", "yes"}};

static struct http_server *start(const char *listen)
{
    struct http_server_opts o = {.listen = listen,
                                 .max_body = 1000,
                                 .handler = echo,
                                 .error_headers = err_hdrs,
                                 .n_error_headers = 1};
    struct http_server *s = NULL;
    char err[256];
    if (http_server_start(&o, &s, err, sizeof(err)) < 0)
        fail_msg("start %s: %s", listen, err);
    return s;
}

static void tcp_request(uint16_t port, const char *method, const char *path, const void *body,
                        size_t len, bool chunked, struct h_reply *r)
{
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    if (chunked)
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        if (!chunked)
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        else
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

static void listen_addresses_parse(void **state)
{
    char host[64];
    uint16_t port = 1;
    const char *path = NULL;
    char err[256];
    assert_int_equal(
        http_listen_parse("unix:/tmp/x.sock", host, sizeof(host), &port, &path, err, sizeof(err)),
        0);
    assert_string_equal(path, "/tmp/x.sock");
    assert_int_equal(
        http_listen_parse("127.0.0.1:8080", host, sizeof(host), &port, &path, err, sizeof(err)), 0);
    assert_null(path);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(http_listen_parse(":9", host, sizeof(host), &port, &path, err, sizeof(err)),
                     0);
    assert_string_equal(host, "");
    assert_int_equal(port, 9);
    assert_int_equal(
        http_listen_parse("[::1]:80", host, sizeof(host), &port, &path, err, sizeof(err)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(http_listen_parse("8080", host, sizeof(host), &port, &path, err, sizeof(err)),
                     0);
    assert_int_equal(port, 8080);
    const char *bad[] = {"", "unix:", "host:99999", "host:", "host:12x", "x:-1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(
            http_listen_parse(bad[i], host, sizeof(host), &port, &path, err, sizeof(err)), -EINVAL);
}

static void bodies_arrive_whole_and_limits_hold(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct http_server *s = start("127.0.0.1:0");
    uint16_t port = http_server_port(s);
    assert_true(port > 0);
    struct h_reply r;
    tcp_request(port, "GET", "/a/b?q=1", NULL, 0, false, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "GET /a/b 0 q=1");
    free(r.body);

    char body[1001];
    memset(body, 'x', sizeof(body));
    tcp_request(port, "POST", "/", body, 1000, false, &r);
    assert_string_equal(r.body, "POST / 1000 q=(none)");
    free(r.body);
    char *text = calloc(1, 701); /* chunked: curl sends up to the NUL */
    memset(text, 'z', 700);
    tcp_request(port, "POST", "/", text, 700, true, &r);
    assert_string_equal(r.body, "POST / 700 q=(none)");
    free(r.body);
    free(text);

    tcp_request(port, "POST", "/", body, 1001, false, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.headers, "X-Test-Internal: yes"));
    assert_non_null(strstr(r.body, "max_body"));
    free(r.body);
    char *big = calloc(1, 5000);
    memset(big, 'y', 4999);
    tcp_request(port, "POST", "/", big, 4999, true, &r);
    assert_int_equal(r.status, 413);
    free(r.body);
    free(big);

    tcp_request(port, "GET", "/err", NULL, 0, false, &r);
    assert_int_equal(r.status, 400);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "bad \"thing\"\n");
    json_decref(j);
    free(r.body);
    http_server_stop(s);
}

static void unix_socket_served_and_removed(void **state)
{
    struct harness h;
    assert_int_equal(h_init(&h), 0);
    char sock[300], listen[320];
    h_path(&h, "http.sock", sock, sizeof(sock));
    snprintf(listen, sizeof(listen), "unix:%s", sock);
    struct http_server *s = start(listen);
    assert_int_equal(http_server_port(s), 0);
    struct h_reply r;
    h_http(sock, "PUT", "/x?q", "abc", 3, NULL, &r);
    assert_string_equal(r.body, "PUT /x 3 q=");
    free(r.body);
    http_server_quiesce(s);
    assert_int_equal(access(sock, F_OK), -1);
    http_server_stop(s);

    /* A regular file where the socket should go is never replaced. */
    assert_int_equal(write_file_atomic(sock, "keep", 4, 0644, NULL, 0), 0);
    struct http_server_opts o = {.listen = listen, .handler = echo};
    char err[256];
    assert_int_equal(http_server_start(&o, &s, err, sizeof(err)), -EEXIST);
    assert_int_equal(access(sock, F_OK), 0);
    h_cleanup(&h);
}

/* The gate's check of a header block: what passes to MHD, and the status of everything else. */
static void heads_checked_before_mhd(void **state)
{
    static const struct {
        const char *head;
        unsigned status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0},
        {"\r\nPOST /a?b=c HTTP/1.0\r\nContent-Length:  12 \r\n\r\n", 0},
        {"POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n", 0},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
        {"GET / HTTP/2\r\nHost: x\r\n\r\n", 505},
        {"GET / http/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\n continued\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\n", 400}, /* no empty line */
    };
    char msg[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned st = http_head_check(cases[i].head, strlen(cases[i].head), msg, sizeof(msg));
        if (st != cases[i].status)
            fail_msg("%s: %u, want %u (%s)", cases[i].head, st, cases[i].status, st ? msg : "");
    }
    char big[HTTP_HEAD_MAX + 64];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\nX: ");
    memset(big + n, 'a', sizeof(big) - (size_t)n - 5);
    memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
    assert_int_equal(http_head_check(big, sizeof(big) - 1, msg, sizeof(msg)), 431);
    const char nul[] = "GET / HTTP/1.1\r\nHost: x\0\r\n\r\n";
    assert_int_equal(http_head_check(nul, sizeof(nul) - 1, msg, sizeof(msg)), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listen_addresses_parse),
        cmocka_unit_test(bodies_arrive_whole_and_limits_hold),
        cmocka_unit_test(unix_socket_served_and_removed),
        cmocka_unit_test(heads_checked_before_mhd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
