/* Unit tests for the store wire protocol (src/store/proto.h): round trips, every length check,
 * truncation at every byte, random bytes, and fds over a real socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t buf[PROTO_MAX_MSG];

static int roundtrip(const struct proto_msg *in, struct proto_msg *out)
{
    char err[256];
    int n = proto_encode(in, buf, sizeof(buf), err, sizeof(err));
    assert_true(n >= PROTO_HDR_LEN);
    return proto_decode(buf, (size_t)n, out, err, sizeof(err));
}

static void test_attach_roundtrip(void **state)
{
    struct proto_msg in = {.type = PROTO_ATTACH, .seq = 7}, out;
    in.u.ref.threads = 4;
    strcpy(in.u.ref.ref, "resnet18");
    assert_int_equal(roundtrip(&in, &out), 0);
    assert_int_equal(out.type, PROTO_ATTACH);
    assert_int_equal(out.seq, 7);
    assert_int_equal(out.u.ref.threads, 4);
    assert_string_equal(out.u.ref.ref, "resnet18");
    in.type = PROTO_PREPARE; /* compile ahead: the same payload */
    assert_int_equal(roundtrip(&in, &out), 0);
    assert_int_equal(out.type, PROTO_PREPARE);
    assert_string_equal(proto_type_name(out.type), "PREPARE");
    assert_int_equal(out.u.ref.threads, 4);
    assert_string_equal(out.u.ref.ref, "resnet18");
}

static void test_attached_roundtrip(void **state)
{
    struct proto_msg in = {.type = PROTO_ATTACHED, .seq = 9}, out;
    in.u.attached.lease = 1ull << 40;
    in.u.attached.size = 123456789;
    memset(in.u.attached.sha256, 0xab, 32);
    memset(in.u.attached.identity, 0xcd, 32);
    in.u.attached.threads = 2;
    strcpy(in.u.attached.name, "mobilenet_v2");
    assert_int_equal(roundtrip(&in, &out), 0);
    assert_true(out.u.attached.lease == 1ull << 40);
    assert_true(out.u.attached.size == 123456789);
    assert_memory_equal(out.u.attached.sha256, in.u.attached.sha256, 32);
    assert_memory_equal(out.u.attached.identity, in.u.attached.identity, 32);
    assert_string_equal(out.u.attached.name, "mobilenet_v2");
    assert_true(out.u.attached.weights_size == 0); /* a whole image */
    in.u.attached.weights_size = 46804416;
    memset(in.u.attached.weights_sha256, 0xef, 32);
    assert_int_equal(roundtrip(&in, &out), 0);
    assert_true(out.u.attached.weights_size == 46804416);
    assert_memory_equal(out.u.attached.weights_sha256, in.u.attached.weights_sha256, 32);
    /* every field is length-checked: any shorter payload is malformed */
    int n = proto_encode(&in, buf, sizeof(buf), NULL, 0);
    assert_true(n > PROTO_HDR_LEN);
    for (int cut = 1; cut <= 40; cut++) {
        uint32_t payload = (uint32_t)(n - PROTO_HDR_LEN - cut);
        memcpy(buf + 8, &payload, 4);
        assert_int_equal(proto_decode(buf, (size_t)(n - cut), &out, NULL, 0), -EBADMSG);
    }
}

static void test_error_and_json_roundtrip(void **state)
{
    struct proto_msg in = {.type = PROTO_ERROR, .seq = 1}, out;
    in.u.error.code = -ENOSPC;
    strcpy(in.u.error.msg, "budget exhausted");
    assert_int_equal(roundtrip(&in, &out), 0);
    assert_int_equal(out.u.error.code, -ENOSPC);
    assert_string_equal(out.u.error.msg, "budget exhausted");
    struct proto_msg j = {.type = PROTO_JSON, .seq = 2};
    j.u.json.text = "{\"models\":[]}";
    j.u.json.len = strlen(j.u.json.text);
    assert_int_equal(roundtrip(&j, &out), 0);
    assert_int_equal(out.u.json.len, j.u.json.len);
    assert_memory_equal(out.u.json.text, j.u.json.text, j.u.json.len);
}

/* Every strict prefix of a valid message, and every extension by one byte, is refused. */
static void test_truncated_and_extended(void **state)
{
    struct proto_msg in = {.type = PROTO_ATTACHED, .seq = 3}, out;
    strcpy(in.u.attached.name, "x");
    char err[256];
    int n = proto_encode(&in, buf, sizeof(buf), err, sizeof(err));
    for (int len = 0; len < n; len++)
        assert_int_equal(proto_decode(buf, (size_t)len, &out, err, sizeof(err)), -EBADMSG);
    buf[n] = 0;
    assert_int_equal(proto_decode(buf, (size_t)n + 1, &out, err, sizeof(err)), -EBADMSG);
}

static void test_header_checks(void **state)
{
    struct proto_msg in = {.type = PROTO_STATS, .seq = 1}, out;
    char err[256];
    int n = proto_encode(&in, buf, sizeof(buf), err, sizeof(err));
    assert_int_equal(n, PROTO_HDR_LEN);
    buf[0] ^= 1;
    assert_int_equal(proto_decode(buf, (size_t)n, &out, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "magic"));
    buf[0] ^= 1;
    buf[4] = 99; /* version */
    assert_int_equal(proto_decode(buf, (size_t)n, &out, err, sizeof(err)), -EPROTO);
    buf[4] = PROTO_VERSION;
    buf[6] = 200; /* type */
    assert_int_equal(proto_decode(buf, (size_t)n, &out, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "unknown message type"));
    buf[6] = PROTO_STATS;
    buf[8] = 4; /* length disagrees with the datagram */
    assert_int_equal(proto_decode(buf, (size_t)n, &out, err, sizeof(err)), -EBADMSG);
}

/* A ref of PROTO_MAX_REF + 1 bytes, a NUL inside a string, too many threads: all malformed. */
static void test_field_limits(void **state)
{
    struct proto_msg in = {.type = PROTO_ATTACH, .seq = 1}, out;
    char err[256];
    memset(in.u.ref.ref, 'a', PROTO_MAX_REF);
    in.u.ref.ref[PROTO_MAX_REF] = '\0';
    assert_int_equal(roundtrip(&in, &out), 0);
    /* Forge a ref one byte over the limit by hand. */
    int n = proto_encode(&in, buf, sizeof(buf), err, sizeof(err));
    uint32_t len = PROTO_MAX_REF + 1;
    memcpy(buf + PROTO_HDR_LEN + 4, &len, 4);
    buf[n] = 'a';
    uint32_t payload = (uint32_t)(n + 1 - PROTO_HDR_LEN);
    memcpy(buf + 8, &payload, 4);
    assert_int_equal(proto_decode(buf, (size_t)n + 1, &out, err, sizeof(err)), -EBADMSG);

    strcpy(in.u.ref.ref, "abc");
    n = proto_encode(&in, buf, sizeof(buf), err, sizeof(err));
    buf[n - 2] = '\0';
    assert_int_equal(proto_decode(buf, (size_t)n, &out, err, sizeof(err)), -EBADMSG);

    in.u.ref.threads = PROTO_MAX_THREADS + 1;
    n = proto_encode(&in, buf, sizeof(buf), err, sizeof(err));
    assert_int_equal(proto_decode(buf, (size_t)n, &out, err, sizeof(err)), -EBADMSG);
}

/* Random bytes (with a valid header, so the payload decoders are reached) never crash. */
static void test_random_payloads(void **state)
{
    struct proto_msg out;
    char err[256];
    unsigned seed = 12345;
    static const int types[] = {PROTO_ATTACH, PROTO_DETACH, PROTO_EVICT,  PROTO_ATTACHED,
                                PROTO_JSON,   PROTO_ERROR,  PROTO_PREPARE};
    for (int i = 0; i < 20000; i++) {
        size_t len = PROTO_HDR_LEN + (size_t)(rand_r(&seed) % 200);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rand_r(&seed);
        struct proto_msg hdr = {.type = (uint16_t)types[i % (sizeof(types) / sizeof(types[0]))],
                                .seq = 1};
        proto_encode(&hdr, buf, PROTO_HDR_LEN + 4096, err, sizeof(err));
        uint32_t payload = (uint32_t)(len - PROTO_HDR_LEN);
        memcpy(buf + 8, &payload, 4);
        for (size_t k = PROTO_HDR_LEN; k < len; k++)
            buf[k] = (uint8_t)rand_r(&seed);
        int rc = proto_decode(buf, len, &out, err, sizeof(err));
        assert_true(rc == 0 || rc == -EBADMSG);
    }
}

/* Over a real socketpair: a passed fd arrives; an fd where none is expected is closed and the
 * message refused; a datagram bigger than the buffer is -EMSGSIZE. */
static void test_socket_fds(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int devnull = open("/dev/null", O_RDONLY);
    struct proto_msg m = {.type = PROTO_OK, .seq = 5}, out;
    char err[256];
    assert_int_equal(proto_send(sv[0], &m, devnull, err, sizeof(err)), 0);
    int fd = -1;
    assert_int_equal(proto_recv(sv[1], buf, sizeof(buf), &out, &fd, err, sizeof(err)), 0);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);

    assert_int_equal(proto_send(sv[0], &m, devnull, err, sizeof(err)), 0);
    assert_int_equal(proto_recv(sv[1], buf, sizeof(buf), &out, NULL, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "file descriptor"));

    struct proto_msg big = {.type = PROTO_ATTACH, .seq = 6};
    strcpy(big.u.ref.ref, "a-model-name");
    assert_int_equal(proto_send(sv[0], &big, -1, err, sizeof(err)), 0);
    assert_int_equal(proto_recv(sv[1], buf, PROTO_HDR_LEN + 4, &out, NULL, err, sizeof(err)),
                     -EMSGSIZE);
    close(sv[0]);
    assert_int_equal(proto_recv(sv[1], buf, sizeof(buf), &out, NULL, err, sizeof(err)),
                     -ECONNRESET);
    close(sv[1]);
    close(devnull);
}

/* An ATTACHED reply (queued ahead of the request on a socketpair) with fds for it: proto_call2
 * takes the image fd and the weights blob's; a reply announcing a blob without its fd, or a
 * whole image with a second fd, is refused with every fd closed; proto_call (one fd) refuses a
 * plan part. */
static int call_with(int nfds, uint64_t weights_size, int *fd, int *fd2, int two)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int fds[2] = {open("/dev/null", O_RDONLY), open("/dev/null", O_RDONLY)};
    struct proto_msg r = {.type = PROTO_ATTACHED, .seq = 3}, req = {.type = PROTO_ATTACH, .seq = 3},
                     reply;
    strcpy(r.u.attached.name, "m");
    r.u.attached.size = 4096;
    r.u.attached.weights_size = weights_size;
    strcpy(req.u.ref.ref, "m");
    char err[256];
    assert_int_equal(proto_send_fds(sv[1], &r, fds, nfds, err, sizeof(err)), 0);
    close(fds[0]);
    close(fds[1]);
    int rc = two ? proto_call2(sv[0], &req, buf, &reply, fd, fd2, err, sizeof(err))
                 : proto_call(sv[0], &req, buf, &reply, fd, err, sizeof(err));
    close(sv[0]);
    close(sv[1]);
    return rc;
}

static void test_attached_weights_fds(void **state)
{
    int fd = -1, fd2 = -1;
    assert_int_equal(call_with(2, 8192, &fd, &fd2, 1), 0);
    assert_true(fd >= 0 && fd2 >= 0);
    close(fd);
    close(fd2);
    assert_int_equal(call_with(1, 0, &fd, &fd2, 1), 0); /* a whole image: one fd */
    assert_true(fd >= 0 && fd2 < 0);
    close(fd);
    assert_int_equal(call_with(1, 8192, &fd, &fd2, 1), -EBADMSG); /* blob announced, no fd */
    assert_true(fd < 0 && fd2 < 0);
    assert_int_equal(call_with(2, 0, &fd, &fd2, 1), -EBADMSG); /* an fd beyond the image's */
    assert_true(fd < 0 && fd2 < 0);
    assert_int_equal(call_with(2, 8192, &fd, NULL, 0), -EBADMSG); /* one-fd caller, plan part */
    assert_true(fd < 0);
    int before = open("/dev/null", O_RDONLY); /* no fd leaked by any refusal */
    close(before);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call_with(2, 0, &fd, &fd2, 1), -EBADMSG);
    int after = open("/dev/null", O_RDONLY);
    assert_int_equal(after, before);
    close(after);
}

static void test_connect_error_says_what_to_check(void **state)
{
    char err[512];
    int rc = proto_connect("/nonexistent/store.sock", err, sizeof(err));
    assert_true(rc < 0);
    assert_non_null(strstr(err, "/nonexistent/store.sock"));
    assert_non_null(strstr(err, "is shmfaas-store running?"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_roundtrip),
        cmocka_unit_test(test_attached_roundtrip),
        cmocka_unit_test(test_error_and_json_roundtrip),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_random_payloads),
        cmocka_unit_test(test_socket_fds),
        cmocka_unit_test(test_attached_weights_fds),
        cmocka_unit_test(test_connect_error_says_what_to_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
