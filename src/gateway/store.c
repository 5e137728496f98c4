/*
 * The gateway's view of the store: stats for /metrics, /system/models and `shmfaas stats`, and
 * eviction of a removed model. Goes through the store client library when it is built in
 * (SHMFAAS_HAVE_CLIENT); without it these report "unknown" and the rest of shmfaasd works.
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <stdlib.h>
#include <string.h>

#ifdef SHMFAAS_HAVE_CLIENT
#include "client/client.h"
#endif

json_t *store_stats_json(struct gateway *g)
{
#ifdef SHMFAAS_HAVE_CLIENT
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
#else
    (void)g;
    return NULL;
#endif
}

/* Called before the model file goes: the store resolves the name through that file. An image still
 * leased by someone outside this gateway stays until its LRU turn; that is logged, not an error. */
void store_evict(struct gateway *g, const char *model)
{
#ifdef SHMFAAS_HAVE_CLIENT
    struct store_client *c;
    char err[512];
    if (store_connect(g->store_sock, &c, err, sizeof err)) {
        log_warn("model %s: image not evicted: %s", model, err);
        return;
    }
    if (store_evict_model(c, model, err, sizeof err))
        log_info("model %s: image not evicted: %s", model, err);
    store_close(c);
#else
    log_info("model %s removed: its image (if resident) goes when the store needs room", model);
#endif
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* shmfaas_store_* from the store's stats JSON: {"totals": {...}, "models": [...]}. */
void store_metrics(const json_t *stats, struct gw_buf *b)
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
