/* Operator subcommands: ls, stats, evict, attach, prepare — thin clients over proto.h. */
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int call(int sock, int type, const char *model, int threads, uint8_t *buf,
                struct proto_msg *reply, int *fd, int *fd2)
{
    struct proto_msg req = {.type = (uint16_t)type, .seq = 1};
    if (model) {
        if (strlen(model) > PROTO_MAX_REF) {
            fprintf(stderr, "shmfaas-store: model ref longer than %d bytes\n", PROTO_MAX_REF);
            return -EINVAL;
        }
        snprintf(req.u.ref.ref, sizeof(req.u.ref.ref), "%s", model);
        req.u.ref.threads = (uint32_t)threads;
    }
    char err[PROTO_MAX_ERR + 64];
    int rc = proto_call2(sock, &req, buf, reply, fd, fd2, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "shmfaas-store %s: %s\n", proto_type_name(type), err);
    return rc;
}

static json_t *load_json(const struct proto_msg *m)
{
    json_error_t jerr;
    json_t *j = json_loadb(m->u.json.text, m->u.json.len, 0, &jerr);
    if (!j)
        fprintf(stderr, "shmfaas-store: bad JSON from the store: %s\n", jerr.text);
    return j;
}

static int print_ls(const struct proto_msg *m)
{
    json_t *root = load_json(m);
    if (!root)
        return 1;
    printf("%-24s %-16s %-10s %12s %6s %8s  %s\n", "NAME", "IDENTITY", "STATE", "BYTES",
           "LEASES", "THREADS", "WEIGHTS");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(root, "models"), i, e)
    {
        const char *names = json_string_value(json_object_get(e, "names"));
        const char *id = json_string_value(json_object_get(e, "identity"));
        const char *w = json_string_value(json_object_get(e, "weights_sha256"));
        printf("%-24s %-16.16s %-10s %12lld %6lld %8lld  %.16s\n", names && *names ? names : "-",
               id ? id : "?", json_string_value(json_object_get(e, "state")),
               (long long)json_integer_value(json_object_get(e, "bytes")),
               (long long)json_integer_value(json_object_get(e, "leases")),
               (long long)json_integer_value(json_object_get(e, "threads")), w ? w : "-");
    }
    /* the weights blobs, and the identities of the images sharing each (names are above) */
    json_array_foreach(json_object_get(root, "blobs"), i, e)
    {
        if (i == 0)
            printf("\n%-16s %12s %5s  %s\n", "WEIGHTS", "BYTES", "REFS", "SHARED BY (IDENTITY)");
        const char *sha = json_string_value(json_object_get(e, "sha256"));
        printf("%-16.16s %12lld %5lld ", sha ? sha : "?",
               (long long)json_integer_value(json_object_get(e, "bytes")),
               (long long)json_integer_value(json_object_get(e, "refs")));
        size_t k;
        json_t *mj;
        json_array_foreach(json_object_get(root, "models"), k, mj)
        {
            const char *w = json_string_value(json_object_get(mj, "weights_sha256"));
            const char *id = json_string_value(json_object_get(mj, "identity"));
            if (w && sha && !strcmp(w, sha))
                printf(" %.16s", id ? id : "?");
        }
        printf("\n");
    }
    json_decref(root);
    return 0;
}

static int print_stats(const struct proto_msg *m)
{
    json_t *root = load_json(m);
    if (!root)
        return 1;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

static int hold_lease(const struct proto_attached *a, int fd, int wfd)
{
    char sha[SHA256_HEX_LEN], id[SHA256_HEX_LEN], wsha[SHA256_HEX_LEN], sz[32], wsz[32];
    sha256_hex(a->sha256, sha);
    sha256_hex(a->identity, id);
    sha256_hex(a->weights_sha256, wsha);
    void *p = mmap(NULL, a->size, PROT_READ, MAP_SHARED, fd, 0);
    void *w = wfd >= 0 ? mmap(NULL, a->weights_size, PROT_READ, MAP_SHARED, wfd, 0) : NULL;
    printf("attached %s: lease %llu, %s (%llu bytes), %u thread(s)\n  image sha256 %s\n"
           "  identity     %s\n  mapped       %s\n",
           a->name, (unsigned long long)a->lease, format_size(a->size, sz, sizeof(sz)),
           (unsigned long long)a->size, a->threads, sha, id,
           p == MAP_FAILED ? strerror(errno) : "read-only");
    if (wfd >= 0)
        printf("  weights      sha256 %s, %s (%llu bytes), %s\n", wsha,
               format_size(a->weights_size, wsz, sizeof(wsz)),
               (unsigned long long)a->weights_size,
               w == MAP_FAILED ? strerror(errno) : "mapped read-only");
    printf("holding the lease until SIGINT/SIGTERM\n");
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig;
    sigwait(&set, &sig);
    if (p != MAP_FAILED)
        munmap(p, a->size);
    if (w && w != MAP_FAILED)
        munmap(w, a->weights_size);
    close(fd);
    if (wfd >= 0)
        close(wfd);
    return 0;
}

int store_cmd(const char *cmd, const char *socket_path, const char *model, int threads)
{
    static const struct {
        const char *name;
        int type;
    } cmds[] = {{"ls", PROTO_LS},
                {"stats", PROTO_STATS},
                {"evict", PROTO_EVICT},
                {"attach", PROTO_ATTACH},
                {"prepare", PROTO_PREPARE}};
    int type = 0;
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            type = cmds[i].type;
    if (!type) {
        fprintf(stderr, "shmfaas-store: unknown command %s (ls, stats, evict, attach, prepare)\n",
                cmd);
        return 2;
    }
    sigset_t set; /* blocked before connecting, so a quick SIGINT still detaches cleanly */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (type == PROTO_ATTACH)
        sigprocmask(SIG_BLOCK, &set, NULL);
    char err[512];
    int sock = proto_connect(socket_path, err, sizeof(err));
    if (sock < 0) {
        fprintf(stderr, "shmfaas-store: %s\n", err);
        return 1;
    }
    uint8_t *buf = malloc(PROTO_MAX_MSG);
    struct proto_msg reply;
    int fd = -1, wfd = -1,
        rc = buf ? call(sock, type, model, threads, buf, &reply, &fd, &wfd) : -ENOMEM;
    int status = rc < 0;
    if (rc == 0 && type == PROTO_LS)
        status = print_ls(&reply);
    else if (rc == 0 && type == PROTO_STATS)
        status = print_stats(&reply);
    else if (rc == 0 && type == PROTO_EVICT)
        printf("evicted %s\n", model);
    else if (rc == 0 && type == PROTO_PREPARE)
        printf("prepared %s: its image is resident\n", model);
    else if (rc == 0 && type == PROTO_ATTACH)
        status = hold_lease(&reply.u.attached, fd, wfd);
    free(buf);
    close(sock);
    return status;
}

int store_purge(const char *dir)
{
    char err[512];
    struct stat st;
    if (lstat(dir, &st) < 0 && errno == ENOENT) {
        printf("%s: nothing to purge\n", dir);
        return 0;
    }
    int fd = image_dir_open(dir, "--dir", err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "shmfaas-store purge: %s\n", err);
        return 1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) { /* a running store holds it */
        fprintf(stderr,
                "shmfaas-store purge: %s: a running store uses it; stop that store "
                "(SIGTERM removes its images) instead\n",
                dir);
        close(fd);
        return 1;
    }
    image_remove_all(fd, dir);
    if (image_dir_is_huge(fd) && image_dir_unmount(fd, dir) < 0) {
        fprintf(stderr, "shmfaas-store purge: %s: cannot unmount its tmpfs\n", dir);
        close(fd);
        return 1;
    }
    close(fd);
    if (rmdir(dir) < 0) {
        fprintf(stderr, "shmfaas-store purge: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    printf("%s: purged\n", dir);
    return 0;
}
