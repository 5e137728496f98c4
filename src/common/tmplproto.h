/*
 * tmplproto.h — the messages between shmfaasd and a template (a warm `shmfaas-fn --template`,
 * docs/architecture.md "An instance start").
 *
 * Owns: the wire format on the template's control socket, a SOCK_SEQPACKET socketpair that
 * shmfaasd creates and passes as the template's fd 3 (no path: nothing else can reach it).
 * Every message is one fixed-size struct tmpl_msg; a fork request carries its fds (listening
 * socket, readiness pipe, log pipe, cgroup.procs) as SCM_RIGHTS.
 *   template → shmfaasd: TMPL_READY once warm; TMPL_FAILED (text: why) before it exits.
 *   shmfaasd → template: TMPL_FORK {uid, gid, flags} + fds; answered TMPL_FORKED {pid} or
 *                        TMPL_FAILED {err, text}.
 *   shmfaasd → template: TMPL_PREPARE {flags} + the next instance's cgroup.procs: fork a spare
 *                        ahead, already in that cgroup and a new netns; the next TMPL_FORK whose
 *                        cgroup.procs is the same file is handed to it (no answer).
 * Guarantees: tmpl_msg_check() is the one parser of what arrives (a fuzz entry point): it reads
 * only the bytes received, checks magic, version, type, flags and the fd count against the
 * flags, and NUL-terminates the text.
 */
#ifndef SHMFAAS_COMMON_TMPLPROTO_H
#define SHMFAAS_COMMON_TMPLPROTO_H

#include <stddef.h>
#include <stdint.h>

#define TMPL_MAGIC   0x4c504d54u /* "TMPL" */
#define TMPL_VERSION 1

enum tmpl_type { TMPL_READY = 1, TMPL_FORK, TMPL_FORKED, TMPL_FAILED, TMPL_PREPARE };

/* TMPL_FORK flags: which isolation steps the forked instance takes (what the host allows). */
#define TMPL_F_NETNS  0x1u /* unshare(CLONE_NEWNET) */
#define TMPL_F_DROP   0x2u /* setgroups(0) + setgid(gid) + setuid(uid) */
#define TMPL_F_CGROUP 0x4u /* a 4th fd (TMPL_PREPARE: the only one): cgroup.procs to join */
#define TMPL_F_ALL    (TMPL_F_NETNS | TMPL_F_DROP | TMPL_F_CGROUP)

/* The fds of a TMPL_FORK, in order. */
enum tmpl_fd { TMPL_FD_LISTEN, TMPL_FD_READY, TMPL_FD_LOG, TMPL_FD_CGROUP, TMPL_MAX_FDS };

struct tmpl_msg {
    uint32_t magic;
    uint16_t version;
    uint16_t type;  /* enum tmpl_type */
    uint32_t uid;   /* TMPL_FORK */
    uint32_t gid;   /* TMPL_FORK */
    uint32_t flags; /* TMPL_FORK: TMPL_F_* */
    int32_t pid;    /* TMPL_FORKED: the instance; TMPL_READY: the template */
    int32_t err;    /* TMPL_FAILED: negative errno */
    char text[228]; /* TMPL_FAILED: why (NUL-terminated by tmpl_msg_check) */
};
_Static_assert(sizeof(struct tmpl_msg) == 256, "tmpl_msg is one 256-byte packet");

/* A filled message of type t (text: printf-style, may be NULL). */
void tmpl_msg_init(struct tmpl_msg *m, enum tmpl_type t);

/* Checks len bytes received with nfds fds (and whether the ancillary data was truncated) as a
 * message of one of the types in `want` (a bit mask of 1 << type). Copies it into *out. 0, or
 * -EPROTO with err saying what is wrong. */
int tmpl_msg_check(const void *buf, size_t len, int nfds, int truncated, unsigned want,
                   struct tmpl_msg *out, char *err, size_t errlen);

/* The fds a TMPL_FORK with these flags carries (TMPL_PREPARE: 1 with TMPL_F_CGROUP, else 0). */
int tmpl_fork_nfds(uint32_t flags);

/* Sends m with nfds fds (SCM_RIGHTS); MSG_NOSIGNAL. 0 or -errno. */
int tmpl_send(int sock, const struct tmpl_msg *m, const int *fds, int nfds);
/* Receives one message of a type in `want` into *m and its fds into fds[TMPL_MAX_FDS] (the rest
 * -1), waiting at most timeout_ms (-1: no limit). 0; -ETIMEDOUT; -EPIPE when the peer is gone;
 * -EPROTO (err says why; every fd received closed). */
int tmpl_recv(int sock, struct tmpl_msg *m, int fds[TMPL_MAX_FDS], unsigned want, int timeout_ms,
              char *err, size_t errlen);

#endif
