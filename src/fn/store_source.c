/*
 * An instance's lease on a store image; see store_source.h. A watcher thread is the only user of
 * the client after open (the client library is not thread-safe): it polls the connection, and
 * when the store goes away it keeps calling store_reconnect() until the lease is back.
 */
#include "fn/store_source.h"
#include "common/common.h"
#include "client/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECONNECT_TRY_MS  1000
#define STORE_WAIT_TRY_MS 100

struct fn_store_source {
    struct store_client *client;
    const struct store_image *img;
    pthread_t watcher;
    bool watcher_started;
    int stop_pipe[2]; /* written once by close() to stop the watcher */
};

/* True when the store closed the connection (it never sends unsolicited messages). */
static bool store_gone(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Waits for the store to go away or for stop; returns false on stop. */
static bool wait_store_gone(struct fn_store_source *s)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = store_fd(s->client), .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return false;
        if (p[1].revents)
            return false;
        if (p[0].revents && store_gone(p[0].fd))
            return true;
        if (p[0].revents & (POLLNVAL | POLLERR))
            return true;
    }
}

/* Retries store_reconnect until it succeeds; returns false on stop. */
static bool reattach(struct fn_store_source *s)
{
    char err[512];
    for (int tries = 1;; tries++) {
        struct pollfd stop = {.fd = s->stop_pipe[0], .events = POLLIN};
        if (poll(&stop, 1, 0) > 0)
            return false;
        if (store_reconnect(s->client, RECONNECT_TRY_MS, err, sizeof(err)) == 0) {
            log_info("store is back: lease on %s re-taken after %d tries", s->img->ref, tries);
            return true;
        }
        if (tries == 1 || tries % 30 == 0)
            log_warn("store reconnect: %s; still serving from the existing mapping", err);
        if (poll(&stop, 1, 100) > 0)
            return false;
    }
}

static void *watcher_main(void *arg)
{
    struct fn_store_source *s = arg;
    while (wait_store_gone(s)) {
        log_warn("store connection lost: serving %s from the existing mapping, reconnecting",
                 s->img->ref);
        if (!reattach(s))
            break;
    }
    return NULL;
}

/* True when SIGTERM or SIGINT waits for main()'s sigwait (every thread blocks them). */
static bool stop_pending(void)
{
    sigset_t p;
    return sigpending(&p) == 0 && (sigismember(&p, SIGTERM) == 1 || sigismember(&p, SIGINT) == 1);
}

/*
 * Connects to the store, waiting while its socket is not there yet (a node whose store pod has not
 * started or is being replaced): /_/health answers meanwhile and /_/ready says 503, so the instance
 * becomes ready when the store arrives instead of crash-looping. Bounded by whoever waits for
 * readiness (shmfaasd's --ready-timeout, a pod's probes) and by SIGTERM/SIGINT.
 */
static int connect_waiting(const char *socket_path, struct store_client **c, char *err,
                           size_t errlen)
{
    for (int tries = 1;; tries++) {
        int rc = store_connect(socket_path, c, err, errlen);
        if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED))
            return rc;
        if (tries == 1 || tries % 300 == 0)
            log_warn("%s; waiting for it (try %d)", err, tries);
        if (stop_pending())
            return rc;
        usleep(STORE_WAIT_TRY_MS * 1000);
    }
}

int fn_store_source_open(const char *socket_path, const char *ref, int threads,
                         struct fn_store_source **out, void **image, size_t *len,
                         const void **weights, size_t *weights_len, char *err, size_t errlen)
{
    *out = NULL;
    struct fn_store_source *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    int rc = connect_waiting(socket_path, &s->client, err, errlen);
    if (rc == 0)
        rc = store_attach(s->client, ref, threads, &s->img, err, errlen);
    if (rc == 0 && pipe2(s->stop_pipe, O_CLOEXEC) < 0)
        rc = seterr(err, errlen, -errno, "pipe: %s", strerror(errno));
    if (rc == 0) {
        rc = -pthread_create(&s->watcher, NULL, watcher_main, s);
        if (rc < 0)
            seterr(err, errlen, rc, "store watcher thread: %s", strerror(-rc));
    }
    if (rc < 0) {
        fn_store_source_close(s);
        return rc;
    }
    s->watcher_started = true;
    *image = (void *)s->img->addr;
    *len = (size_t)s->img->size;
    *weights = s->img->weights;
    *weights_len = (size_t)s->img->weights_size;
    *out = s;
    return 0;
}

void fn_store_source_close(struct fn_store_source *s)
{
    if (!s)
        return;
    if (s->watcher_started) {
        char b = 1;
        ssize_t n = write(s->stop_pipe[1], &b, 1);
        (void)n;
        pthread_join(s->watcher, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    if (s->client)
        store_close(s->client);
    free(s);
}

static int image_id(const struct store_image *img, struct fn_image_id *id)
{
    struct stat st;
    if (fstat(img->fd, &st) < 0)
        return -errno;
    *id = (struct fn_image_id){.dev = st.st_dev, .ino = st.st_ino, .size = img->size};
    memcpy(id->sha256, img->sha256, sizeof id->sha256);
    return 0;
}

int fn_store_source_id(const struct fn_store_source *s, struct fn_image_id *id)
{
    return image_id(s->img, id);
}

/* A mapping of its own of img's blob (*weights NULL for a whole image). */
static int map_blob(const struct store_image *img, void **weights, size_t *weights_len,
                    char *err, size_t errlen)
{
    *weights = NULL;
    *weights_len = 0;
    if (!img->weights)
        return 0;
    void *p = mmap(NULL, (size_t)img->weights_size, PROT_READ, MAP_SHARED, img->weights_fd, 0);
    if (p == MAP_FAILED)
        return seterr(err, errlen, -errno, "weights of %s: mmap: %s", img->name, strerror(errno));
    *weights = p;
    *weights_len = (size_t)img->weights_size;
    return 0;
}

int fn_store_map_unleased(const char *socket_path, const char *ref, int threads, void **image,
                          size_t *len, void **weights, size_t *weights_len, int *fd,
                          struct fn_image_id *id, char *err, size_t errlen)
{
    struct store_client *c = NULL;
    const struct store_image *img = NULL;
    *fd = -1;
    int rc = store_connect(socket_path, &c, err, errlen);
    if (rc == 0)
        rc = store_attach(c, ref, threads, &img, err, errlen);
    if (rc == 0 && (rc = image_id(img, id)) < 0)
        seterr(err, errlen, rc, "image of %s: fstat: %s", ref, strerror(-rc));
    if (rc == 0 && (*fd = fcntl(img->fd, F_DUPFD_CLOEXEC, 3)) < 0)
        rc = seterr(err, errlen, -errno, "image of %s: dup: %s", ref, strerror(errno));
    if (rc == 0) {
        *len = (size_t)img->size;
        *image = mmap(NULL, *len, PROT_READ, MAP_SHARED, *fd, 0);
        if (*image == MAP_FAILED) {
            *image = NULL;
            rc = seterr(err, errlen, -errno, "image of %s: mmap: %s", ref, strerror(errno));
        }
    }
    if (rc == 0 && (rc = map_blob(img, weights, weights_len, err, errlen)) < 0)
        munmap(*image, *len);
    if (rc < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    if (c)
        store_close(c); /* the lease ends; the mappings are ours */
    return rc;
}
