/*
 * harness.h — what the shmfaas-fn integration tests share: a temporary directory that is always
 * removed, real processes (shmfaas-store, shmfaas-fn, shmfaas-run) started from the build tree and
 * always killed, and HTTP over a unix socket with libcurl.
 */
#ifndef SHMFAAS_TEST_FN_HARNESS_H
#define SHMFAAS_TEST_FN_HARNESS_H

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

#define H_MAX_PROCS 32

struct harness {
    char dir[256];
    pid_t procs[H_MAX_PROCS];
    int n_procs;
};

static inline void h_path(const struct harness *h, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", h->dir, name);
}

static inline const char *h_bin(const char *rel, char *out, size_t len)
{
    const char *b = getenv("SHMFAAS_BUILD");
    snprintf(out, len, "%s/%s", b ? b : ".", rel);
    return out;
}

static inline const char *h_zoo(const char *rel, char *out, size_t len)
{
    const char *z = getenv("SHMFAAS_ZOO");
    snprintf(out, len, "%s/%s", z ? z : "zoo", rel);
    return out;
}

static inline int h_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    /* A SIGKILLed store leaves its images sealed immutable (docs/store.md): unseal, then remove. */
    int fd = flag == FTW_F ? open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1, fl;
    if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &fl) == 0 && (fl & FS_IMMUTABLE_FL)) {
        fl &= ~FS_IMMUTABLE_FL;
        ioctl(fd, FS_IOC_SETFLAGS, &fl);
    }
    if (fd >= 0)
        close(fd);
    int rc = remove(path);
    if (rc < 0 && errno == EBUSY && flag == FTW_DP) { /* a killed store's huge-page tmpfs */
        umount2(path, MNT_DETACH);
        rc = remove(path);
    }
    return rc;
}

static inline int h_init(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->dir, sizeof(h->dir), "/dev/shm/shmfaas-fn-test-XXXXXX");
    if (!mkdtemp(h->dir)) {
        snprintf(h->dir, sizeof(h->dir), "/tmp/shmfaas-fn-test-XXXXXX");
        if (!mkdtemp(h->dir))
            return -errno;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

/* Starts argv[0] with extra env "K=V" entries (NULL-terminated, may be NULL); its stderr goes to
 * stderr_path (appended) when that is not NULL. */
static inline pid_t h_spawn_log(struct harness *h, char *const argv[], const char *const env[],
                                const char *stderr_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (stderr_path) {
            int fd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd >= 0)
                dup2(fd, 2);
        }
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        setpgid(0, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0 && h->n_procs < H_MAX_PROCS)
        h->procs[h->n_procs++] = pid;
    return pid;
}

static inline pid_t h_spawn(struct harness *h, char *const argv[], const char *const env[])
{
    return h_spawn_log(h, argv, env, NULL);
}

static inline void h_forget(struct harness *h, pid_t pid)
{
    for (int i = 0; i < h->n_procs; i++)
        if (h->procs[i] == pid)
            h->procs[i] = h->procs[--h->n_procs];
}

/* SIGKILLs pid and reaps it. */
static inline void h_kill(struct harness *h, pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    h_forget(h, pid);
}

/* Waits for pid to exit; returns its wait status, or -1 after timeout_ms. */
static inline int h_wait_exit(struct harness *h, pid_t pid, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            h_forget(h, pid);
            return st;
        }
        usleep(10000);
    }
    return -1;
}

static inline void h_cleanup(struct harness *h)
{
    while (h->n_procs > 0) /* last started first: instances before their store */
        h_kill(h, h->procs[h->n_procs - 1]);
    nftw(h->dir, h_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int h_copy(const char *from, const char *to)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_file(from, (size_t)1 << 30, &buf, &len, NULL, 0);
    if (rc == 0)
        rc = write_file_atomic(to, buf, len, 0644, NULL, 0);
    free(buf);
    return rc;
}

/* ---- HTTP over a unix socket ---- */

struct h_reply {
    long status;
    char *body;
    size_t len;
    char headers[4096];
};

static inline size_t h_on_body(char *p, size_t size, size_t n, void *user)
{
    struct h_reply *r = user;
    char *b = realloc(r->body, r->len + size * n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, size * n);
    r->len += size * n;
    b[r->len] = '\0';
    r->body = b;
    return size * n;
}

static inline size_t h_on_header(char *p, size_t size, size_t n, void *user)
{
    struct h_reply *r = user;
    size_t have = strlen(r->headers);
    if (have + size * n < sizeof(r->headers)) {
        memcpy(r->headers + have, p, size * n);
        r->headers[have + size * n] = '\0';
    }
    return size * n;
}

/* One request; status 0 when no HTTP reply came back. Free r->body. */
static inline void h_http(const char *sock, const char *method, const char *path, const void *body,
                          size_t len, const char *header, struct h_reply *r)
{
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof(url), "http://localhost%s", path);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    if (header)
        hl = curl_slist_append(hl, header);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
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

static inline long h_status(const char *sock, const char *method, const char *path)
{
    struct h_reply r;
    h_http(sock, method, path, NULL, 0, NULL, &r);
    free(r.body);
    return r.status;
}

/* Polls GET /_/ready until 200; false if pid exits or timeout_ms passes. */
static inline bool h_wait_ready(const char *sock, pid_t pid, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (h_status(sock, "GET", "/_/ready") == 200)
            return true;
        if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
            return false;
        usleep(20000);
    }
    return false;
}

/* Waits for a path (a socket) to appear. */
static inline bool h_wait_path(const char *path, int timeout_ms)
{
    struct stat st;
    for (int t = 0; t < timeout_ms; t += 10, usleep(10000))
        if (stat(path, &st) == 0)
            return true;
    return false;
}

/* Starts shmfaas-store on sock (images in dir, models from models); waits for its socket. */
static inline pid_t h_start_store(struct harness *h, const char *sock, const char *dir,
                                  const char *models)
{
    char bin[512];
    char *argv[] = {(char *)h_bin("src/store/shmfaas-store", bin, sizeof(bin)),
                    "--socket",
                    (char *)sock,
                    "--dir",
                    (char *)dir,
                    "--models",
                    (char *)models,
                    "--log-level",
                    "warn",
                    NULL};
    unlink(sock);
    pid_t pid = h_spawn(h, argv, NULL);
    return pid > 0 && h_wait_path(sock, 10000) ? pid : -1;
}

/* A store in h->dir ("store.sock", "images") over a models directory that holds one zoo model,
 * copied as models/<model>.onnx. */
static inline pid_t h_start_store_with(struct harness *h, const char *model, char *sock,
                                       size_t socklen)
{
    char dir[300], models[300], src[512], dst[400], rel[128];
    h_path(h, "store.sock", sock, socklen);
    h_path(h, "images", dir, sizeof(dir));
    h_path(h, "models", models, sizeof(models));
    mkdir(models, 0755);
    snprintf(rel, sizeof(rel), "%s/model.onnx", model);
    snprintf(dst, sizeof(dst), "%s/%s.onnx", models, model);
    if (h_copy(h_zoo(rel, src, sizeof(src)), dst) < 0)
        return -1;
    return h_start_store(h, sock, dir, models);
}

#endif
