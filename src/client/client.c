/* The store client: a blocking SEQPACKET connection plus the list of images attached over it. */
#include "client/client.h"

#include "common/common.h"
#include "store/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* One mapping of a weights blob, shared by every image of this process that refers to it (over
 * any connection: an instance serving several shapes holds one connection per shape). */
struct wmap {
    uint8_t sha[32];
    uint64_t size;
    const void *addr;
    int fd; /* O_RDONLY fd of the blob */
    int refs;
    struct wmap *next;
};

/* An image and what it needs beyond the public part: the mapping retired by a reconnect. */
struct held {
    struct store_image img;
    struct wmap *w;       /* the image's blob mapping, or NULL */
    const void *old_addr; /* mapping kept alive across a reconnect that changed the image */
    uint64_t old_size;
    struct wmap *old_w;
    struct held *next;
};

struct store_client {
    int sock;
    char path[108];
    uint32_t seq;
    struct held *held;
    uint8_t *buf; /* PROTO_MAX_MSG bytes of receive buffer */
};

int store_connect(const char *path, struct store_client **out, char *err, size_t errlen)
{
    if (!path)
        path = STORE_DEFAULT_SOCKET;
    struct store_client *c = calloc(1, sizeof(*c));
    if (c)
        c->buf = malloc(PROTO_MAX_MSG);
    if (!c || !c->buf) {
        free(c);
        return seterr(err, errlen, -ENOMEM, "out of memory");
    }
    if (strlen(path) >= sizeof(c->path)) {
        free(c->buf);
        free(c);
        return seterr(err, errlen, -ENAMETOOLONG, "store socket path %s is too long", path);
    }
    strcpy(c->path, path);
    c->sock = proto_connect(path, err, errlen);
    if (c->sock < 0) {
        int rc = c->sock;
        free(c->buf);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int store_fd(const struct store_client *c)
{
    return c->sock;
}

static int call2(struct store_client *c, struct proto_msg *req, struct proto_msg *reply,
                 int *fd, int *fd2, char *err, size_t errlen)
{
    if (c->sock < 0)
        return seterr(err, errlen, -ENOTCONN, "store at %s: not connected", c->path);
    req->seq = ++c->seq;
    char why[PROTO_MAX_ERR + 64];
    int rc = proto_call2(c->sock, req, c->buf, reply, fd, fd2, why, sizeof(why));
    if (rc < 0)
        return seterr(err, errlen, rc, "store at %s: %s", c->path, why);
    return 0;
}

static int call(struct store_client *c, struct proto_msg *req, struct proto_msg *reply, int *fd,
                char *err, size_t errlen)
{
    return call2(c, req, reply, fd, NULL, err, errlen);
}

/* ATTACH round trip; fills img (fd, size, hashes, lease, name) and *wfd (the blob's fd, or -1),
 * no mapping. */
static int attach_raw(struct store_client *c, const char *ref, int threads, struct store_image *img,
                      int *wfd, char *err, size_t errlen)
{
    struct proto_msg req = {.type = PROTO_ATTACH}, reply;
    if (strlen(ref) > PROTO_MAX_REF)
        return seterr(err, errlen, -ENAMETOOLONG, "model ref longer than %d bytes", PROTO_MAX_REF);
    req.u.ref.threads = threads > 0 ? (uint32_t)threads : 0;
    snprintf(req.u.ref.ref, sizeof(req.u.ref.ref), "%s", ref);
    int fd = -1;
    int rc = call2(c, &req, &reply, &fd, wfd, err, errlen);
    if (rc < 0)
        return rc;
    if (reply.type != PROTO_ATTACHED) {
        if (fd >= 0)
            close(fd);
        if (*wfd >= 0)
            close(*wfd);
        *wfd = -1;
        return seterr(err, errlen, -EBADMSG, "store at %s: %s reply to ATTACH", c->path,
                      proto_type_name(reply.type));
    }
    const struct proto_attached *a = &reply.u.attached;
    img->fd = fd;
    img->size = a->size;
    memcpy(img->sha256, a->sha256, 32);
    memcpy(img->identity, a->identity, 32);
    img->threads = (int)a->threads;
    img->weights = NULL;
    img->weights_fd = -1;
    img->weights_size = a->weights_size;
    memcpy(img->weights_sha256, a->weights_sha256, 32);
    img->lease = a->lease;
    snprintf(img->name, sizeof(img->name), "%s", a->name);
    snprintf(img->ref, sizeof(img->ref), "%s", ref);
    return 0;
}

static int map_image(struct store_image *img, char *err, size_t errlen)
{
    if (img->size == 0 || img->size > SIZE_MAX)
        return seterr(err, errlen, -EBADMSG, "model %s: store sent an image of %llu bytes",
                      img->name, (unsigned long long)img->size);
    void *p = mmap(NULL, (size_t)img->size, PROT_READ, MAP_SHARED, img->fd, 0);
    if (p == MAP_FAILED)
        return seterr(err, errlen, -errno, "model %s: mmap of %llu bytes: %s", img->name,
                      (unsigned long long)img->size, strerror(errno));
    img->addr = p;
    return 0;
}

/* The process's blob mappings; the lock covers the list and the refs (a connection is used by
 * one thread at a time, but shmfaas-fn reconnects one on a watcher thread). */
static struct wmap *wmaps;
static pthread_mutex_t wmaps_lock = PTHREAD_MUTEX_INITIALIZER;

/* The process's mapping of the blob img names: the one it has (wfd closed), or a new one of wfd
 * (kept as the mapping's fd). */
static int map_weights_locked(const struct store_image *img, int wfd, struct wmap **out,
                              char *err, size_t errlen)
{
    struct wmap *w = wmaps;
    while (w && (w->size != img->weights_size || memcmp(w->sha, img->weights_sha256, 32)))
        w = w->next;
    if (!w && img->weights_size > SIZE_MAX) {
        close(wfd);
        return seterr(err, errlen, -EBADMSG, "model %s: store sent a %llu-byte weights blob",
                      img->name, (unsigned long long)img->weights_size);
    }
    if (!w) {
        void *p = mmap(NULL, (size_t)img->weights_size, PROT_READ, MAP_SHARED, wfd, 0);
        w = p != MAP_FAILED ? calloc(1, sizeof(*w)) : NULL;
        if (!w) {
            int e = p == MAP_FAILED ? errno : ENOMEM;
            if (p != MAP_FAILED)
                munmap(p, (size_t)img->weights_size);
            close(wfd);
            return seterr(err, errlen, -e, "model %s: mmap of its %llu-byte weights: %s",
                          img->name, (unsigned long long)img->weights_size, strerror(e));
        }
        memcpy(w->sha, img->weights_sha256, 32);
        w->size = img->weights_size;
        w->addr = p;
        w->fd = wfd;
        w->next = wmaps;
        wmaps = w;
    } else {
        close(wfd);
    }
    w->refs++;
    *out = w;
    return 0;
}

static int map_weights(const struct store_image *img, int wfd, struct wmap **out, char *err,
                       size_t errlen)
{
    pthread_mutex_lock(&wmaps_lock);
    int rc = map_weights_locked(img, wfd, out, err, errlen);
    pthread_mutex_unlock(&wmaps_lock);
    return rc;
}

static void unref_weights(struct wmap *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&wmaps_lock);
    int last = --w->refs == 0;
    for (struct wmap **p = &wmaps; last && *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&wmaps_lock);
    if (!last)
        return;
    munmap((void *)w->addr, (size_t)w->size);
    close(w->fd);
    free(w);
}

/* Maps img and, for a plan part, its blob (*w). */
static int map_both(struct store_image *img, int wfd, struct wmap **w, char *err, size_t errlen)
{
    *w = NULL;
    int rc = map_image(img, err, errlen);
    if (rc == 0 && wfd >= 0) {
        rc = map_weights(img, wfd, w, err, errlen);
        if (rc == 0) {
            img->weights = (*w)->addr;
            img->weights_fd = (*w)->fd;
        }
        else
            munmap((void *)img->addr, (size_t)img->size);
    } else if (wfd >= 0) {
        close(wfd);
    }
    return rc;
}

int store_attach(struct store_client *c, const char *ref, int threads,
                 const struct store_image **out, char *err, size_t errlen)
{
    struct held *h = calloc(1, sizeof(*h));
    if (!h)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int wfd = -1;
    int rc = attach_raw(c, ref, threads, &h->img, &wfd, err, errlen);
    if (rc == 0 && (rc = map_both(&h->img, wfd, &h->w, err, errlen)) < 0) {
        struct proto_msg req = {.type = PROTO_DETACH}, reply;
        req.u.lease = h->img.lease;
        call(c, &req, &reply, NULL, NULL, 0);
        close(h->img.fd);
    }
    if (rc < 0) {
        free(h);
        return rc;
    }
    h->next = c->held;
    c->held = h;
    *out = &h->img;
    return 0;
}

static void unmap_held(struct held *h)
{
    if (h->img.addr)
        munmap((void *)h->img.addr, (size_t)h->img.size);
    if (h->old_addr)
        munmap((void *)h->old_addr, (size_t)h->old_size);
    unref_weights(h->w);
    unref_weights(h->old_w);
    if (h->img.fd >= 0)
        close(h->img.fd);
}

int store_detach(struct store_client *c, const struct store_image *img, char *err, size_t errlen)
{
    struct held **pp = &c->held;
    while (*pp && &(*pp)->img != img)
        pp = &(*pp)->next;
    if (!*pp)
        return seterr(err, errlen, -ENOENT, "image is not attached through this client");
    struct held *h = *pp;
    *pp = h->next;
    struct proto_msg req = {.type = PROTO_DETACH}, reply;
    req.u.lease = h->img.lease;
    int rc = call(c, &req, &reply, NULL, err, errlen);
    unmap_held(h);
    free(h);
    return rc;
}

int store_stats(struct store_client *c, char **json, char *err, size_t errlen)
{
    struct proto_msg req = {.type = PROTO_STATS}, reply;
    int rc = call(c, &req, &reply, NULL, err, errlen);
    if (rc < 0)
        return rc;
    if (reply.type != PROTO_JSON)
        return seterr(err, errlen, -EBADMSG, "store at %s: %s reply to STATS", c->path,
                      proto_type_name(reply.type));
    *json = strndup(reply.u.json.text, reply.u.json.len);
    return *json ? 0 : seterr(err, errlen, -ENOMEM, "out of memory");
}

int store_evict_model(struct store_client *c, const char *ref, char *err, size_t errlen)
{
    struct proto_msg req = {.type = PROTO_EVICT}, reply;
    if (strlen(ref) > PROTO_MAX_REF)
        return seterr(err, errlen, -ENAMETOOLONG, "model ref longer than %d bytes", PROTO_MAX_REF);
    snprintf(req.u.ref.ref, sizeof(req.u.ref.ref), "%s", ref);
    int rc = call(c, &req, &reply, NULL, err, errlen);
    if (rc == 0 && reply.type != PROTO_OK)
        return seterr(err, errlen, -EBADMSG, "store at %s: %s reply to EVICT", c->path,
                      proto_type_name(reply.type));
    return rc;
}

int store_prepare(struct store_client *c, const char *ref, int threads, char *err, size_t errlen)
{
    struct proto_msg req = {.type = PROTO_PREPARE}, reply;
    if (strlen(ref) > PROTO_MAX_REF)
        return seterr(err, errlen, -ENAMETOOLONG, "model ref longer than %d bytes", PROTO_MAX_REF);
    req.u.ref.threads = threads > 0 ? (uint32_t)threads : 0;
    snprintf(req.u.ref.ref, sizeof(req.u.ref.ref), "%s", ref);
    int rc = call(c, &req, &reply, NULL, err, errlen);
    if (rc == 0 && reply.type != PROTO_OK)
        return seterr(err, errlen, -EBADMSG, "store at %s: %s reply to PREPARE", c->path,
                      proto_type_name(reply.type));
    return rc;
}

/* Connects again, retrying every 50 ms until timeout_ms. */
static int redial(struct store_client *c, int timeout_ms, char *err, size_t errlen)
{
    if (c->sock >= 0)
        close(c->sock);
    c->sock = -1;
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int s = proto_connect(c->path, err, errlen);
        if (s >= 0) {
            c->sock = s;
            return 0;
        }
        if (now_ns() >= deadline)
            return s;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Re-attaches h; keeps the mapping if the bytes are the same, else maps the new image. */
static int reattach(struct store_client *c, struct held *h, char *err, size_t errlen)
{
    struct store_image fresh;
    struct wmap *w;
    int wfd = -1;
    int rc = attach_raw(c, h->img.ref, h->img.threads, &fresh, &wfd, err, errlen);
    if (rc < 0)
        return rc;
    /* the part's SHA-256 covers the weights record: same part, same blob */
    if (fresh.size == h->img.size && !memcmp(fresh.sha256, h->img.sha256, 32)) {
        close(h->img.fd);
        if (wfd >= 0)
            close(wfd);
        h->img.fd = fresh.fd;
        h->img.lease = fresh.lease;
        return 0;
    }
    if ((rc = map_both(&fresh, wfd, &w, err, errlen)) < 0) {
        close(fresh.fd);
        return rc;
    }
    if (h->old_addr)
        munmap((void *)h->old_addr, (size_t)h->old_size);
    unref_weights(h->old_w);
    h->old_addr = h->img.addr;
    h->old_size = h->img.size;
    h->old_w = h->w;
    close(h->img.fd);
    h->img = fresh;
    h->w = w;
    return 0;
}

int store_reconnect(struct store_client *c, int timeout_ms, char *err, size_t errlen)
{
    int rc = redial(c, timeout_ms, err, errlen);
    if (rc < 0)
        return rc;
    for (struct held *h = c->held; h; h = h->next) {
        rc = reattach(c, h, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void store_close(struct store_client *c)
{
    if (!c)
        return;
    if (c->sock >= 0)
        close(c->sock);
    for (struct held *h = c->held, *next; h; h = next) {
        next = h->next;
        unmap_held(h);
        free(h);
    }
    free(c->buf);
    free(c);
}
