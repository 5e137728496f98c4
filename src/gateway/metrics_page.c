/*
 * /metrics: OpenFaaS gateway names (so existing dashboards work) plus shmfaas_* figures:
 * instances, in flight, held, PSS/USS per function, and the store's totals.
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <stdio.h>

/* ---- the /metrics page ---- */

static void fn_label(const struct function *fn, char *out, size_t len)
{
    snprintf(out, len, "%s.%s", fn->spec.name, GW_NAMESPACE);
}

static void render_invocations(struct gateway *g, struct buf *b)
{
    char label[GW_NAME_MAX + 16], code[16];
    prom_header(b, "gateway_function_invocation_total", "counter", "Function invocations.");
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        fn_label(fn, label, sizeof label);
        for (int i = 0; i < fn->ncodes; i++) {
            snprintf(code, sizeof code, "%d", fn->codes[i].code);
            prom_sample2(b, "gateway_function_invocation_total", "function_name", label, "code",
                         code, (double)fn->codes[i].n);
        }
    }
    prom_header(b, "gateway_functions_seconds", "histogram", "Function invocation time taken.");
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        fn_label(fn, label, sizeof label);
        prom_write_hist(b, "gateway_functions_seconds", "function_name", label, &fn->hist);
    }
}

struct fn_mem {
    uint64_t pss, uss, rss, tmpl_pss;
};

/* A function's instances and its template (whose pages its instances share). */
static struct fn_mem function_mem(const struct function *fn)
{
    struct fn_mem m = {0};
    struct proc_mem pm;
    for (const struct instance *in = fn->instances; in; in = in->next) {
        if (in->state != INST_DEAD && proc_mem_read(in->pid, &pm) == 0) {
            m.pss += pm.pss;
            m.uss += proc_mem_uss(&pm);
            m.rss += pm.rss;
        }
    }
    if (function_template_pid(fn) > 0 && proc_mem_read(function_template_pid(fn), &pm) == 0) {
        m.tmpl_pss = pm.pss;
        m.pss += pm.pss;
        m.uss += proc_mem_uss(&pm);
        m.rss += pm.rss;
    }
    return m;
}

static void render_functions(struct gateway *g, struct buf *b)
{
    char label[GW_NAME_MAX + 16];
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        /* OpenFaaS's name; "untyped" because promtool's lint refuses a gauge ending in _count */
        {"gateway_service_count", "untyped", "Instances of a function (starting or ready)."},
        {"shmfaas_function_instances_ready", "gauge", "Ready instances of a function."},
        {"shmfaas_function_inflight", "gauge", "Requests being served by a function."},
        {"shmfaas_function_queued", "gauge", "Requests held waiting for an instance."},
        {"shmfaas_function_pss_bytes", "gauge",
         "Summed PSS of a function's instances and template."},
        {"shmfaas_function_uss_bytes", "gauge",
         "Summed USS (private memory) of a function's instances and template."},
        {"shmfaas_function_rss_bytes", "gauge",
         "Summed RSS of a function's instances and template."},
        {"shmfaas_function_template_pss_bytes", "gauge",
         "PSS of a function's template (0: none), included in shmfaas_function_pss_bytes."},
    };
    struct fn_mem mems[256];
    int nf = 0;
    for (struct function *fn = g->functions; fn && nf < 256; fn = fn->next)
        mems[nf++] = function_mem(fn);
    for (size_t s = 0; s < ARRAY_LEN(series); s++) {
        prom_header(b, series[s].name, series[s].type, series[s].help);
        int i = 0;
        for (struct function *fn = g->functions; fn && i < nf; fn = fn->next, i++) {
            double v[] = {function_live_count(fn),
                          function_ready_count(fn),
                          fn->inflight,
                          fn->queued,
                          (double)mems[i].pss,
                          (double)mems[i].uss,
                          (double)mems[i].rss,
                          (double)mems[i].tmpl_pss};
            fn_label(fn, label, sizeof label);
            prom_sample(b, series[s].name, "function_name", label, v[s]);
        }
    }
}

void metrics_render(struct gateway *g, struct buf *out)
{
    json_t *store = store_stats_json(g);
    pthread_mutex_lock(&g->lock);
    render_invocations(g, out);
    render_functions(g, out);
    pthread_mutex_unlock(&g->lock);
    store_metrics(store, out);
    json_decref(store);
    async_metrics(g, out);
}
