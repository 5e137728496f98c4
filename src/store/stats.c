/* The store's figures, rendered as the STATS/LS JSON and as Prometheus text. */
#include "store/store.h"

#include "common/prom.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "bytes" is what the model's image costs as a whole (its plan part and its weights blob, the
 * size one instance maps); a part's split is in "plan_bytes", "weights_bytes" and
 * "weights_sha256" (a blob shared by several shapes' parts counts once in the totals). */
static void model_weights_json(json_t *j, const struct model *m)
{
    if (!j || !m->blob)
        return;
    json_object_update_new(j, json_pack("{s:I, s:I, s:I, s:s}", "bytes",
                                        (json_int_t)(m->size + m->blob->size), "plan_bytes",
                                        (json_int_t)m->size, "weights_bytes",
                                        (json_int_t)m->blob->size, "weights_sha256", m->blob->hex));
}

/* A model of the RAM tier; on_disk: whether the disk tier has its image too. */
static json_t *model_json(const struct model *m, int on_disk)
{
    char src[SHA256_HEX_LEN], img[SHA256_HEX_LEN];
    sha256_hex(m->source_sha, src);
    sha256_hex(m->image_sha, img);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:f}", "names", m->names,
                  "identity", m->idhex, "source_sha256", src, "image_sha256", img, "state",
                  m->state == MODEL_RESIDENT ? "resident" : "compiling", "threads", m->threads,
                  "bytes", (json_int_t)m->size, "leases", m->leases, "last_use_ms",
                  (json_int_t)m->last_use_ms, "compile_seconds", m->compile_s);
    model_weights_json(j, m);
    if (j)
        json_object_update_new(j, json_pack("{s:I, s:f, s:f, s:f, s:b}", "frequency",
                                            (json_int_t)m->freq, "reload_seconds", m->cost_s,
                                            "priority", m->priority, "read_seconds", m->read_s,
                                            "on_disk", on_disk));
    return j;
}

/* The weights blobs and the resident models sharing each. */
static json_t *blobs_json(const struct catalog *c)
{
    json_t *a = json_array();
    for (const struct blob *b = c->blobs; b; b = b->next) {
        json_t *names = json_array();
        for (const struct model *m = c->models; m; m = m->next)
            if (m->blob == b)
                json_array_append_new(names, json_string(m->names[0] ? m->names : m->idhex));
        json_array_append_new(a, json_pack("{s:s, s:I, s:i, s:o}", "sha256", b->hex, "bytes",
                                           (json_int_t)b->size, "refs", b->refs, "models", names));
    }
    return a;
}

static uint64_t blob_bytes(const struct catalog *c)
{
    uint64_t n = 0;
    for (const struct blob *b = c->blobs; b; b = b->next)
        n += b->size;
    return n;
}

/* A model of the disk tier. */
static json_t *disk_model_json(const struct model *m)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:f}", "names", m->names, "identity",
                          m->idhex, "state", m->writing ? "writing" : "stored", "bytes",
                          (json_int_t)m->size, "frequency", (json_int_t)m->freq, "compile_seconds",
                          m->compile_s, "read_seconds", m->read_s, "priority", m->priority);
    model_weights_json(j, m);
    return j;
}

static json_t *disk_totals_json(const struct catalog *disk, const struct store_counters *n)
{
    return json_pack(
        "{s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:f, s:I, s:I, s:I, s:f}", "disk_tier",
        disk != NULL, "disk_models", (json_int_t)(disk ? catalog_count(disk, MODEL_RESIDENT) : 0),
        "disk_bytes", (json_int_t)(disk ? disk->resident_bytes : 0), "disk_budget_bytes",
        (json_int_t)(disk ? disk->budget : 0), "disk_hits", (json_int_t)n->disk_hits, "disk_reads",
        (json_int_t)n->disk_reads, "disk_read_seconds", n->disk_read_s, "disk_writes",
        (json_int_t)n->disk_writes, "disk_write_failures", (json_int_t)n->disk_write_failures,
        "disk_write_seconds", n->disk_write_s, "disk_evictions", (json_int_t)n->disk_evictions,
        "disk_dropped", (json_int_t)n->disk_dropped, "disk_adopted", (json_int_t)n->disk_adopted,
        "disk_clock", disk ? disk->clock : 0.0);
}

static json_t *totals_json(const struct catalog *c, const struct catalog *disk,
                           const struct store_counters *n)
{
    json_t *t = json_pack("{s:I, s:I, s:I, s:i, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I}",
                          "resident_models", (json_int_t)catalog_count(c, MODEL_RESIDENT),
                          "resident_bytes", (json_int_t)c->resident_bytes, "budget_bytes",
                          (json_int_t)c->budget, "leases", catalog_total_leases(c), "hits",
                          (json_int_t)n->hits, "misses", (json_int_t)n->misses, "compiles",
                          (json_int_t)n->compiles, "compile_seconds", n->compile_s, "evictions",
                          (json_int_t)n->evictions, "refused", (json_int_t)n->refused, "adopted",
                          (json_int_t)n->adopted, "discarded", (json_int_t)n->discarded);
    if (t)
        json_object_update_new(t, json_pack("{s:I, s:I, s:I, s:I, s:I}", "compiles_started",
                                            (json_int_t)n->compiles_started, "refusals",
                                            (json_int_t)n->refusals, "refusals_remembered",
                                            (json_int_t)n->refusals_remembered,
                                            "rejected_connections", (json_int_t)n->rejected_conns,
                                            "unsealed_images", (json_int_t)n->unsealed));
    if (t) {
        json_object_update_new(t, json_pack("{s:s, s:f, s:I}", "policy",
                                            catalog_policy_name(c->policy), "clock", c->clock,
                                            "prepares", (json_int_t)n->prepares));
        json_object_update_new(t, json_pack("{s:I, s:I, s:I}", "blobs",
                                            (json_int_t)catalog_blob_count(c), "blob_bytes",
                                            (json_int_t)blob_bytes(c), "disk_blobs",
                                            (json_int_t)(disk ? catalog_blob_count(disk) : 0)));
        json_object_update_new(t, disk_totals_json(disk, n));
    }
    return t;
}

/* The refusals still in their window: what a supervisor shows instead of restarting. */
static json_t *refusals_json(const struct refusals *r, int64_t now_ms)
{
    json_t *a = json_array();
    for (const struct refusal *f = r->list; f; f = f->next)
        if (now_ms < f->until_ms)
            json_array_append_new(
                a, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "names", f->names, "identity",
                             f->idhex, "kind", f->kind == REFUSAL_BUDGET ? "budget" : "compile",
                             "reason", f->reason, "retry_in_ms", (json_int_t)(f->until_ms - now_ms),
                             "answered", (json_int_t)f->answered));
    return a;
}

char *stats_json(const struct catalog *c, const struct catalog *disk,
                 const struct store_counters *n, const struct refusals *r, int64_t now_ms,
                 int with_totals)
{
    json_t *models = json_array();
    for (const struct model *m = c->models; m; m = m->next)
        json_array_append_new(models,
                              model_json(m, disk && catalog_find(disk, m->identity) != NULL));
    json_t *root = json_pack("{s:o, s:o}", "models", models, "blobs", blobs_json(c));
    if (root && with_totals) {
        json_t *stored = json_array();
        for (const struct model *m = disk ? disk->models : NULL; m; m = m->next)
            json_array_append_new(stored, disk_model_json(m));
        json_object_set_new(root, "totals", totals_json(c, disk, n));
        json_object_set_new(root, "refusals", refusals_json(r, now_ms));
        json_object_set_new(root, "disk", stored);
    }
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

/* ---- Prometheus text (common/prom.h) ---- */

static void metric(struct buf *b, const char *name, const char *type, const char *help,
                   double value)
{
    char full[96];
    snprintf(full, sizeof full, "shmfaas_store_%s", name);
    prom_metric(b, full, type, help, value);
}

static void model_metrics(struct buf *b, const struct catalog *c)
{
    prom_header(b, "shmfaas_store_model_bytes", "gauge", "Image bytes of a resident model.");
    for (const struct model *m = c->models; m; m = m->next)
        if (m->state == MODEL_RESIDENT)
            prom_sample2(b, "shmfaas_store_model_bytes", "name", m->names, "hash", m->idhex,
                         (double)m->size);
    prom_header(b, "shmfaas_store_model_leases", "gauge", "Live leases on a resident model.");
    for (const struct model *m = c->models; m; m = m->next)
        if (m->state == MODEL_RESIDENT)
            prom_sample2(b, "shmfaas_store_model_leases", "name", m->names, "hash", m->idhex,
                         m->leases);
}

char *stats_prometheus(const struct catalog *c, const struct catalog *disk,
                       const struct store_counters *n)
{
    struct buf t = {0};
    metric(&t, "resident_models", "gauge", "Models resident in the store.",
           (double)catalog_count(c, MODEL_RESIDENT));
    metric(&t, "resident_bytes", "gauge", "Sum of resident image sizes.",
           (double)c->resident_bytes);
    metric(&t, "budget_bytes", "gauge", "Memory budget for resident images.", (double)c->budget);
    metric(&t, "blobs", "gauge",
           "Weights blobs resident (each shared by the plan parts of one "
           "model's shapes).",
           (double)catalog_blob_count(c));
    metric(&t, "blob_bytes", "gauge", "Bytes of the resident weights blobs (counted once).",
           (double)blob_bytes(c));
    metric(&t, "leases", "gauge", "Live leases over all models.", catalog_total_leases(c));
    metric(&t, "hits_total", "counter", "Attaches served by a resident image.", (double)n->hits);
    metric(&t, "misses_total", "counter", "Attaches that needed a compile.", (double)n->misses);
    metric(&t, "compiles_total", "counter", "Successful compiles.", (double)n->compiles);
    metric(&t, "compile_seconds_total", "counter", "Seconds spent compiling.", n->compile_s);
    metric(&t, "evictions_total", "counter", "Images evicted.", (double)n->evictions);
    metric(&t, "refused_total", "counter", "Attaches refused for lack of budget.",
           (double)n->refused);
    metric(&t, "adopted_total", "counter", "Images re-adopted at start.", (double)n->adopted);
    metric(&t, "refusals_total", "counter",
           "Attaches refused because the budget cannot hold the image or it does not compile.",
           (double)n->refusals);
    metric(&t, "refusals_remembered_total", "counter",
           "Refusals answered from memory, without a compile.", (double)n->refusals_remembered);
    metric(&t, "rejected_connections_total", "counter",
           "Connections closed at accept (uid not allowed, per-uid or total cap).",
           (double)n->rejected_conns);
    metric(&t, "unsealed_images_total", "counter",
           "Images handed out without the immutable flag (unavailable on this host).",
           (double)n->unsealed);
    metric(&t, "prepares_total", "counter", "PREPARE requests (compile ahead).",
           (double)n->prepares);
    metric(&t, "disk_models", "gauge", "Images in the disk tier.",
           (double)(disk ? catalog_count(disk, MODEL_RESIDENT) : 0));
    metric(&t, "disk_bytes", "gauge", "Bytes of the disk tier's images.",
           (double)(disk ? disk->resident_bytes : 0));
    metric(&t, "disk_budget_bytes", "gauge", "The disk tier's budget.",
           (double)(disk ? disk->budget : 0));
    metric(&t, "disk_hits_total", "counter", "RAM misses served by a read back, no compile.",
           (double)n->disk_hits);
    metric(&t, "disk_reads_total", "counter", "Read backs from the disk tier begun.",
           (double)n->disk_reads);
    metric(&t, "disk_read_seconds_total", "counter", "Seconds spent reading images back.",
           n->disk_read_s);
    metric(&t, "disk_writes_total", "counter", "Images written to the disk tier.",
           (double)n->disk_writes);
    metric(&t, "disk_evictions_total", "counter", "Images evicted from the disk tier.",
           (double)n->disk_evictions);
    metric(&t, "disk_dropped_total", "counter",
           "Disk tier files that failed verification (deleted, compiled again).",
           (double)n->disk_dropped);
    prom_header(&t, "shmfaas_store_policy", "gauge", "The eviction policy in use (label).");
    prom_sample(&t, "shmfaas_store_policy", "policy", catalog_policy_name(c->policy), 1);
    model_metrics(&t, c);
    if (t.failed) {
        buf_free(&t);
        return NULL;
    }
    return t.data;
}
