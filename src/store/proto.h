/*
 * proto.h — the store's wire protocol, spoken over a SOCK_SEQPACKET unix socket.
 *
 * Owns: the message format and its codec, shared by shmfaas-store and every client (src/client,
 * the operator subcommands). Guarantees:
 *   - one message is one datagram: a 16-byte header {magic, version, type, length, seq} followed by
 *     exactly `length` payload bytes; anything else is malformed;
 *   - proto_decode() checks the header, the type, and every field's length against the bytes that
 *     are there before reading it; strings carry no NUL and never exceed their limit;
 *   - the only file descriptors ever passed are the image fd (and, for a plan part, its weights
 *     blob's fd) in an ATTACHED reply, always opened O_RDONLY by the store; a store never accepts
 *     fds from clients; an ATTACHED with another number of fds than it announces is malformed.
 *
 * Requests and their replies (seq of the reply = seq of the request):
 *   ATTACH {threads, ref}  → ATTACHED {lease, size, sha256, identity, threads, name,
 *                            weights_size, weights_sha256} + image fd [+ weights blob fd when
 *                            weights_size > 0: the image is a plan part]
 *   DETACH {lease}         → OK
 *   STATS  {}              → JSON {totals, models}
 *   LS     {}              → JSON {models}
 *   EVICT  {ref}           → OK
 *   PREPARE {threads, ref} → OK once the image is resident (compiled or read back from the disk
 *                            tier); no lease: compile ahead of the first attach
 *   any request            → ERROR {code, message} when it fails
 * A connection the store does not admit (uid not allowed, per-uid or total cap) gets one ERROR
 * with seq 0 and is closed; proto_call() returns it as the answer to the first request.
 * ATTACH refusals a supervisor should not retry at once (the store remembers them for a backoff
 * window, see STATS "refusals"): -ENOSPC (the budget cannot hold the image now) and -ENOEXEC (the
 * model does not compile); and -ERANGE, a thread count this store does not compile for.
 * All integers are little-endian.
 */
#ifndef SHMFAAS_STORE_PROTO_H
#define SHMFAAS_STORE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC       0x464d4853u /* "SHMF" */
#define PROTO_VERSION     1
#define PROTO_HDR_LEN     16
#define PROTO_MAX_REF     4096 /* bytes of a model ref */
#define PROTO_MAX_NAME    255  /* bytes of a model name */
#define PROTO_MAX_ERR     1024 /* bytes of an error message */
#define PROTO_MAX_THREADS 1024 /* threads an image may be compiled for */
#define PROTO_MAX_REQ     (PROTO_HDR_LEN + 8 + PROTO_MAX_REF) /* largest request */
#define PROTO_MAX_MSG     (256 * 1024) /* largest message of any kind (JSON replies) */
#define PROTO_SHA_LEN     32

enum proto_type {
    PROTO_ATTACH = 1,
    PROTO_DETACH = 2,
    PROTO_STATS = 3,
    PROTO_LS = 4,
    PROTO_EVICT = 5,
    PROTO_PREPARE = 6,
    PROTO_OK = 64,
    PROTO_ATTACHED = 65,
    PROTO_JSON = 66,
    PROTO_ERROR = 67,
};

struct proto_ref {
    uint32_t threads; /* ATTACH: 0 = the store's default */
    char ref[PROTO_MAX_REF + 1];
};

struct proto_attached {
    uint64_t lease;
    uint64_t size;
    uint8_t sha256[PROTO_SHA_LEN];   /* of the image bytes */
    uint8_t identity[PROTO_SHA_LEN]; /* SHA-256(ONNX sha, engine fingerprint, threads) */
    uint32_t threads;
    char name[PROTO_MAX_NAME + 1];
    /* issue 17: the image is a plan part whose weights blob comes as a second fd (weights_size
     * > 0), or a whole image (0, one fd) */
    uint64_t weights_size;
    uint8_t weights_sha256[PROTO_SHA_LEN];
};

struct proto_error {
    int32_t code; /* negative errno */
    char msg[PROTO_MAX_ERR + 1];
};

struct proto_msg {
    uint16_t type;
    uint32_t seq;
    union {
        struct proto_ref ref;           /* ATTACH, EVICT */
        uint64_t lease;                 /* DETACH */
        struct proto_attached attached; /* ATTACHED */
        struct proto_error error;       /* ERROR */
        struct {
            const char *text; /* points into the decoded buffer; not NUL-terminated */
            size_t len;
        } json; /* JSON */
    } u;
};

/* Name of a message type for logs and errors ("ATTACH", ...; "unknown" otherwise). */
const char *proto_type_name(int type);

/* Encodes m into buf; returns the message length or a negative errno (message too big). */
int proto_encode(const struct proto_msg *m, uint8_t *buf, size_t cap, char *err, size_t errlen);

/* Decodes one datagram. On error the message says which field is wrong. */
int proto_decode(const uint8_t *buf, size_t len, struct proto_msg *m, char *err, size_t errlen);

/* Sends one message, passing fd (≥ 0) with SCM_RIGHTS. Never raises SIGPIPE. */
int proto_send(int sock, const struct proto_msg *m, int fd, char *err, size_t errlen);
/* The same with n (0..2) fds. */
int proto_send_fds(int sock, const struct proto_msg *m, const int *fds, int n, char *err,
                   size_t errlen);

/* Receives and decodes one message into buf (cap bytes; m's JSON points into it). fd: where a
 * passed fd goes, or NULL when none is acceptable (then any fd received is closed and the message
 * is malformed). Returns 0, -ECONNRESET when the peer closed, -EMSGSIZE when the datagram was
 * larger than cap, -EBADMSG when malformed, or another negative errno. */
int proto_recv(int sock, uint8_t *buf, size_t cap, struct proto_msg *m, int *fd, char *err,
               size_t errlen);

/* The same taking up to two fds: fd2 (may be NULL) gets the second. */
int proto_recv2(int sock, uint8_t *buf, size_t cap, struct proto_msg *m, int *fd, int *fd2,
                char *err, size_t errlen);

/* One request/reply round trip on a blocking socket. buf must hold PROTO_MAX_MSG bytes. An ERROR
 * reply becomes its code and message. */
int proto_call(int sock, const struct proto_msg *req, uint8_t *buf, struct proto_msg *reply,
               int *fd, char *err, size_t errlen);
/* The same where an ATTACHED may bring a plan part's weights fd (*fd2, -1 for a whole image):
 * one fd for weights_size 0, two otherwise, else -EBADMSG (every fd closed). */
int proto_call2(int sock, const struct proto_msg *req, uint8_t *buf, struct proto_msg *reply,
                int *fd, int *fd2, char *err, size_t errlen);

/* Connects to the store's socket; errors say what to check ("is shmfaas-store running?"). */
int proto_connect(const char *path, char *err, size_t errlen);

#endif
