/*
 * The store's catalog: a singly linked list of models (a node holds tens of models, so linear
 * scans are cheaper than any index), the budget counter, and victim selection by LRU or GDSF.
 */
#include "store/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void catalog_init(struct catalog *c, uint64_t budget)
{
    memset(c, 0, sizeof(*c));
    c->budget = budget;
}

int catalog_policy_parse(const char *s, enum catalog_policy *out)
{
    if (strcmp(s, "gdsf") == 0)
        *out = CATALOG_GDSF;
    else if (strcmp(s, "lru") == 0)
        *out = CATALOG_LRU;
    else
        return -EINVAL;
    return 0;
}

const char *catalog_policy_name(enum catalog_policy p)
{
    return p == CATALOG_LRU ? "lru" : "gdsf";
}

void catalog_free(struct catalog *c)
{
    struct model *m = c->models;
    while (m) {
        struct model *next = m->next;
        free(m);
        m = next;
    }
    c->models = NULL;
    for (struct blob *b = c->blobs, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    c->blobs = NULL;
    c->resident_bytes = 0;
}

struct model *catalog_add(struct catalog *c, const uint8_t identity[SHA256_LEN],
                          const uint8_t source_sha[SHA256_LEN], int threads, const char *name)
{
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    memcpy(m->identity, identity, SHA256_LEN);
    sha256_hex(identity, m->idhex);
    memcpy(m->source_sha, source_sha, SHA256_LEN);
    m->threads = threads;
    m->state = MODEL_COMPILING;
    m->fd = -1;
    m->release_seq = ++c->seq;
    if (name)
        catalog_add_name(m, name);
    m->next = c->models;
    c->models = m;
    return m;
}

void catalog_remove(struct catalog *c, struct model *m)
{
    for (struct model **p = &c->models; *p; p = &(*p)->next) {
        if (*p != m)
            continue;
        *p = m->next;
        if (m->state == MODEL_RESIDENT)
            c->resident_bytes -= m->size;
        if (m->blob)
            m->blob->refs--;
        free(m);
        return;
    }
}

struct model *catalog_find(const struct catalog *c, const uint8_t identity[SHA256_LEN])
{
    for (struct model *m = c->models; m; m = m->next)
        if (memcmp(m->identity, identity, SHA256_LEN) == 0)
            return m;
    return NULL;
}

struct model *catalog_find_hash(const struct catalog *c, const uint8_t sha[SHA256_LEN], int threads)
{
    struct model *m = catalog_find(c, sha);
    if (m)
        return m;
    for (m = c->models; m; m = m->next)
        if (m->threads == threads && memcmp(m->source_sha, sha, SHA256_LEN) == 0)
            return m;
    return NULL;
}

static int has_name(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

void catalog_names_add(char *names, size_t len, const char *name)
{
    if (!*name || strncmp(name, "sha256:", 7) == 0 || strchr(name, ','))
        return;
    if (has_name(names, name))
        return;
    size_t used = strlen(names);
    size_t need = strlen(name) + (used ? 1 : 0);
    if (used + need >= len)
        return;
    snprintf(names + used, len - used, "%s%s", used ? "," : "", name);
}

void catalog_add_name(struct model *m, const char *name)
{
    catalog_names_add(m->names, sizeof(m->names), name);
}

void catalog_admit(struct catalog *c, struct model *m, uint64_t size)
{
    m->state = MODEL_RESIDENT;
    m->size = size;
    c->resident_bytes += size;
}

uint64_t catalog_model_bytes(const struct model *m)
{
    return m->size + (m->blob ? m->blob->size : 0);
}

/* freq × cost / size: seconds of reload per byte kept, the value of keeping m per byte (its blob
 * included: a part alone is small, but a miss loads its weights too when nothing else holds
 * them). */
static double value_per_byte(const struct model *m)
{
    uint64_t bytes = catalog_model_bytes(m);
    return bytes ? (double)m->freq * m->cost_s / (double)bytes : 0;
}

void catalog_touch(struct catalog *c, struct model *m)
{
    m->freq++;
    m->priority = c->clock + value_per_byte(m);
}

void catalog_set_cost(struct catalog *c, struct model *m, double cost_s)
{
    (void)c;
    double base = m->priority - value_per_byte(m);
    m->cost_s = cost_s;
    m->priority = base + value_per_byte(m);
}

void catalog_evict(struct catalog *c, struct model *m)
{
    if (c->policy == CATALOG_GDSF && m->priority > c->clock)
        c->clock = m->priority;
    catalog_remove(c, m);
}

void catalog_lease(struct catalog *c, struct model *m, int64_t now_ms)
{
    m->leases++;
    m->last_use_ms = now_ms;
    catalog_touch(c, m);
}

void catalog_release(struct catalog *c, struct model *m, int64_t now_ms)
{
    if (m->leases > 0)
        m->leases--;
    m->last_use_ms = now_ms;
    m->release_seq = ++c->seq;
}

/* Whether a goes before b: the lower priority under GDSF, else (and on a tie) the LRU one. */
static int evicts_before(const struct catalog *c, const struct model *a, const struct model *b)
{
    if (c->policy == CATALOG_GDSF && a->priority != b->priority)
        return a->priority < b->priority;
    return a->release_seq < b->release_seq;
}

/* The lease-free resident model that goes first and is not yet in victims. */
static struct model *next_victim(const struct catalog *c, struct model **victims, size_t n)
{
    struct model *best = NULL;
    for (struct model *m = c->models; m; m = m->next) {
        if (m->state != MODEL_RESIDENT || m->leases > 0)
            continue;
        int taken = 0;
        for (size_t i = 0; i < n && !taken; i++)
            taken = victims[i] == m;
        if (!taken && (!best || evicts_before(c, m, best)))
            best = m;
    }
    return best;
}

/* "a: 98.0 MiB, 3 leases; b: ..." for the pinned models. */
static void describe_pinned(const struct catalog *c, char *buf, size_t len, uint64_t *bytes,
                            int *leases, int *models)
{
    size_t used = 0;
    buf[0] = '\0';
    for (struct model *m = c->models; m; m = m->next) {
        if (m->state != MODEL_RESIDENT || m->leases == 0)
            continue;
        *bytes += m->size;
        *leases += m->leases;
        (*models)++;
        char sz[32];
        int n = snprintf(buf + used, len - used, "%s%s: %s, %d lease%s", used ? "; " : "",
                         m->names[0] ? m->names : m->idhex, format_size(m->size, sz, sizeof(sz)),
                         m->leases, m->leases == 1 ? "" : "s");
        if (n < 0 || (size_t)n >= len - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)n;
    }
}

/* The bytes evicting victims[n - 1] frees: its own, and its blob's when it is the blob's last
 * reference among what stays. */
static uint64_t victim_frees(struct model *const *victims, size_t n)
{
    const struct model *v = victims[n - 1];
    if (!v->blob)
        return v->size;
    int going = 0;
    for (size_t i = 0; i < n; i++)
        going += victims[i]->blob == v->blob;
    return v->size + (going == v->blob->refs ? v->blob->size : 0);
}

int catalog_plan_room(const struct catalog *c, uint64_t need, const char *name,
                      struct model **victims, size_t cap, size_t *n_victims, char *err,
                      size_t errlen)
{
    uint64_t freed = 0;
    size_t n = 0;
    *n_victims = 0;
    while (need <= c->budget && c->resident_bytes - freed + need > c->budget) {
        struct model *v = n < cap ? next_victim(c, victims, n) : NULL;
        if (!v)
            break;
        victims[n++] = v;
        freed += victim_frees(victims, n);
    }
    if (need <= c->budget && c->resident_bytes - freed + need <= c->budget) {
        *n_victims = n;
        return 0;
    }
    char pinned[512], a[32], b[32], p[32];
    uint64_t pinned_bytes = 0;
    int leases = 0, models = 0;
    if (need > c->budget) /* no eviction can help: say so rather than list what is pinned */
        return seterr(err, errlen, -ENOSPC,
                      "budget exhausted: %s needs %s, more than the whole budget of %s",
                      name ? name : "model", format_size(need, a, sizeof(a)),
                      format_size(c->budget, b, sizeof(b)));
    describe_pinned(c, pinned, sizeof(pinned), &pinned_bytes, &leases, &models);
    return seterr(err, errlen, -ENOSPC,
                  "budget exhausted: %s needs %s, budget %s, %s pinned by %d lease%s on %d "
                  "model%s%s%s%s",
                  name ? name : "model", format_size(need, a, sizeof(a)),
                  format_size(c->budget, b, sizeof(b)), format_size(pinned_bytes, p, sizeof(p)),
                  leases, leases == 1 ? "" : "s", models, models == 1 ? "" : "s",
                  models ? " (" : "", pinned, models ? ")" : "");
}

/* ---- weights blobs ---- */

struct blob *catalog_blob_find(const struct catalog *c, const uint8_t sha[SHA256_LEN])
{
    for (struct blob *b = c->blobs; b; b = b->next)
        if (!memcmp(b->sha, sha, SHA256_LEN))
            return b;
    return NULL;
}

struct blob *catalog_blob_add(struct catalog *c, const uint8_t sha[SHA256_LEN], uint64_t size,
                              int fd)
{
    struct blob *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    memcpy(b->sha, sha, SHA256_LEN);
    sha256_hex(sha, b->hex);
    b->size = size;
    b->fd = fd;
    b->next = c->blobs;
    c->blobs = b;
    c->resident_bytes += size;
    return b;
}

struct blob *catalog_blob_add_link(struct catalog *c, struct model *m, const struct blob *like)
{
    struct blob *b = catalog_blob_add(c, like->sha, like->size, -1);
    if (b)
        catalog_blob_link(m, b);
    return b;
}

void catalog_blob_link(struct model *m, struct blob *b)
{
    m->blob = b;
    b->refs++;
}

struct blob *catalog_blob_orphan(const struct catalog *c)
{
    for (struct blob *b = c->blobs; b; b = b->next)
        if (b->refs <= 0)
            return b;
    return NULL;
}

void catalog_blob_drop(struct catalog *c, struct blob *b)
{
    for (struct blob **p = &c->blobs; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            c->resident_bytes -= b->size;
            free(b);
            return;
        }
}

size_t catalog_blob_count(const struct catalog *c)
{
    size_t n = 0;
    for (const struct blob *b = c->blobs; b; b = b->next)
        n++;
    return n;
}

size_t catalog_count(const struct catalog *c, enum model_state state)
{
    size_t n = 0;
    for (struct model *m = c->models; m; m = m->next)
        n += m->state == state;
    return n;
}

int catalog_total_leases(const struct catalog *c)
{
    int n = 0;
    for (struct model *m = c->models; m; m = m->next)
        n += m->leases;
    return n;
}
