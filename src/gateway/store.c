/*
 * The gateway's view of the store: stats for /metrics, /system/models and `shmfaas stats`,
 * eviction of a removed model, and compile ahead of a deployed one, through the store client
 * library (client.h).
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"

json_t *store_stats_json(struct gateway *g)
{
    struct store_client *c;
    char err[512], *text = NULL;
    if (store_connect(g->store_sock, &c, err, sizeof err)) {
        log_debug("%s", err);
        return NULL;
    }
    int rc = store_stats(c, &text, err, sizeof err);
    store_close(c);
    if (rc) {
        log_warn("store stats: %s", err);
        return NULL;
    }
    json_t *v = json_loads(text, 0, NULL);
    free(text);
    return v;
}

/* Called before the model file goes: the store resolves the name through that file. An image still
 * leased by someone outside this gateway stays until its LRU turn; that is logged, not an error. */
void store_evict(struct gateway *g, const char *model)
{
    struct store_client *c;
    char err[512];
    if (store_connect(g->store_sock, &c, err, sizeof err)) {
        log_warn("model %s: image not evicted: %s", model, err);
        return;
    }
    if (store_evict_model(c, model, err, sizeof err))
        log_info("model %s: image not evicted: %s", model, err);
    store_close(c);
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* shmfaas_store_* from the store's stats JSON: {"totals": {...}, "models": [...]}. */
void store_metrics(const json_t *stats, struct buf *b)
{
    static const struct {
        const char *key, *name, *type, *help;
    } totals[] = {
        {"resident_bytes", "shmfaas_store_resident_bytes", "gauge", "Bytes of resident images."},
        {"resident_models", "shmfaas_store_resident_models", "gauge", "Resident images."},
        {"budget_bytes", "shmfaas_store_budget_bytes", "gauge", "The store's memory budget."},
        {"compiles", "shmfaas_store_compiles_total", "counter", "Models compiled."},
        {"adopted", "shmfaas_store_adopted_total", "counter", "Images re-adopted at start."},
        {"leases", "shmfaas_store_leases", "gauge", "Leases held by instances."},
        {"hits", "shmfaas_store_hits_total", "counter", "Attaches served from a resident image."},
        {"misses", "shmfaas_store_misses_total", "counter", "Attaches that needed a compile."},
        {"evictions", "shmfaas_store_evictions_total", "counter", "Images evicted."},
        {"refused", "shmfaas_store_refused_total", "counter", "Attaches refused for lack of room."},
    };
    prom_header(b, "shmfaas_store_up", "gauge", "1 when the store answered the stats query.");
    prom_sample(b, "shmfaas_store_up", NULL, NULL, stats ? 1 : 0);
    if (!stats)
        return;
    const json_t *t = json_object_get(stats, "totals");
    for (size_t i = 0; i < ARRAY_LEN(totals); i++) {
        prom_header(b, totals[i].name, totals[i].type, totals[i].help);
        prom_sample(b, totals[i].name, NULL, NULL, num(t, totals[i].key));
    }
    prom_header(b, "shmfaas_model_image_bytes", "gauge", "Size of a resident (shared) image.");
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(stats, "models"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "names"));
        prom_sample(b, "shmfaas_model_image_bytes", "model", name ? name : "?", num(m, "bytes"));
    }
}

/* ---- compile ahead ---- */

/* Threads (and store connections) compile ahead may hold at once; a deploy past them is compiled
 * by its first request, as without compile ahead. */
#define PREPARE_MAX 16

struct prepare {
    struct gateway *g;
    char name[GW_NAME_MAX];
    char ref[GW_REF_MAX + 256]; /* the ref shmfaas-fn attaches: image[?input_shape] */
    int threads;
};

/* The ref and thread count an instance of spec attaches with (see src/fn/source.c). */
static int prepare_ref(const struct fn_spec *spec, struct prepare *p)
{
    const json_t *env = json_object_get(spec->deployment, "envVars");
    const char *shape = json_string_value(json_object_get(env, "input_shape"));
    const char *threads = json_string_value(json_object_get(env, "threads"));
    char *end = NULL;
    long t = threads ? strtol(threads, &end, 10) : 1;
    p->threads = threads && (*end || t < 1 || t > 1024) ? 1 : (int)t;
    int n = snprintf(p->ref, sizeof p->ref, "%s%s%s", spec->image, shape && *shape ? "?" : "",
                     shape && *shape ? shape : "");
    return n < 0 || (size_t)n >= sizeof p->ref ? -ENAMETOOLONG : 0;
}

static void *prepare_main(void *arg)
{
    struct prepare *p = arg;
    struct gateway *g = p->g;
    struct store_client *c;
    char err[1024];
    int64_t t0 = now_ns();
    int rc = store_connect(g->store_sock, &c, err, sizeof err);
    if (rc == 0) {
        rc = store_prepare(c, p->ref, p->threads, err, sizeof err);
        store_close(c);
    }
    if (rc)
        log_info("function %s: compile ahead of %s: %s", p->name, p->ref, err);
    else
        log_info("function %s: image of %s resident in %.2f s (compiled ahead)", p->name, p->ref,
                 (double)(now_ns() - t0) / 1e9);
    pthread_mutex_lock(&g->lock);
    struct function *fn = g->stopping ? NULL : registry_find(g, p->name);
    if (fn && fn->compiling > 0)
        fn->compiling--;
    g->preparing--;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    free(p);
    return NULL;
}

void store_prepare_async(struct gateway *g, const char *name)
{
    struct prepare *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->g = g;
    snprintf(p->name, sizeof p->name, "%s", name);
    pthread_mutex_lock(&g->lock);
    struct function *fn = registry_find(g, name);
    /* A private model is compiled by its instances, not the store. */
    bool go = fn && !fn->spec.private_model && !g->stopping && g->preparing < PREPARE_MAX &&
              prepare_ref(&fn->spec, p) == 0;
    if (fn && !go && g->preparing >= PREPARE_MAX)
        log_info("function %s: no compile ahead (%d running already)", name, g->preparing);
    if (go) {
        fn->compiling++;
        g->preparing++;
    }
    pthread_mutex_unlock(&g->lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (go && pthread_create(&t, &attr, prepare_main, p) == 0) {
        pthread_attr_destroy(&attr);
        return;
    }
    pthread_attr_destroy(&attr);
    if (go) {
        pthread_mutex_lock(&g->lock);
        if ((fn = registry_find(g, name)) && fn->compiling > 0)
            fn->compiling--;
        g->preparing--;
        pthread_mutex_unlock(&g->lock);
        log_warn("function %s: no compile ahead (thread: %s)", name, strerror(errno));
    }
    free(p);
}

void store_prepare_drain(struct gateway *g)
{
    /* a store we did not start may still be compiling: not waited for longer */
    struct timespec until = mono_timespec(now_ns() + 5000000000LL);
    pthread_mutex_lock(&g->lock);
    while (g->preparing > 0 && pthread_cond_timedwait(&g->changed, &g->lock, &until) != ETIMEDOUT)
        ;
    if (g->preparing > 0)
        log_info("%d compile-ahead request(s) still running at exit", g->preparing);
    pthread_mutex_unlock(&g->lock);
}
