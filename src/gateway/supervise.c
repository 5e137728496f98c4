/*
 * The supervisor: one thread that, once per tick, probes starting instances, scales each
 * function to its held requests and min/max scale, retires stale and overdue instances,
 * collects deleted functions, restarts a dead store child and fetches the store's refusals.
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/fnenv.h"
#include "common/tmplproto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ENV       128
#define STOP_GRACE_MS 10000

/* shmfaas-fn's exit statuses (fn/fn.h: FN_EXIT_*). */
#define FN_EXIT_REFUSED        75 /* the store refused the model */
#define FN_EXIT_TEMPLATE_STALE 76 /* forked, it found the store hands another image */

/* ---- the supervisor ---- */

struct probe {
    struct instance *in;
    pid_t pid;
    char sock[108];
};

/* Probes starting instances without the lock held; marks the ready ones. */
static void check_ready(struct gateway *g)
{
    struct probe probes[256];
    int n = 0;
    int64_t now = now_ms();
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        for (struct instance *in = fn->instances; in && n < 256; in = in->next) {
            if (in->state != INST_STARTING)
                continue;
            if (now - in->started_ms > g->ready_timeout_ms) {
                log_error("instance %s-%d: not ready after %lld ms; killing it", fn->spec.name,
                          in->id, (long long)g->ready_timeout_ms);
                kill(in->pid, SIGKILL);
                in->state = INST_STOPPING;
                in->stop_ms = now;
                continue;
            }
            if (in->pushed) /* it says so itself */
                continue;
            probes[n].in = in;
            probes[n].pid = in->pid;
            snprintf(probes[n].sock, sizeof probes[n].sock, "%s", in->sock);
            n++;
        }
    }
    int ready[256];
    pthread_mutex_unlock(&g->lock);
    for (int i = 0; i < n; i++)
        ready[i] = probe_ready(probes[i].sock, 200) == 1;
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < n; i++) {
        if (!ready[i])
            continue;
        struct instance *in = instance_by_pid(g, probes[i].pid);
        if (in == probes[i].in && in->state == INST_STARTING)
            mark_ready(g, in, "probed");
    }
}

/* Picks the instance to remove when scaling down: an idle one, newest first; else a starting one.
 */
static struct instance *pick_victim(struct function *fn)
{
    struct instance *starting = NULL;
    for (struct instance *in = fn->instances; in; in = in->next) {
        if (in->stale)
            continue;
        if (in->state == INST_READY && in->inflight == 0)
            return in;
        if (in->state == INST_STARTING && !starting)
            starting = in;
    }
    return starting;
}

static void scale_function(struct gateway *g, struct function *fn, int64_t now)
{
    struct autoscale_in ai = {.scale = fn->spec.scale,
                              .floor = fn->floor,
                              .current = function_live_count(fn),
                              .inflight = fn->inflight,
                              .queued = fn->queued,
                              .now_ms = now,
                              .last_active_ms = fn->last_active_ms,
                              .down_delay_ms = g->down_delay_ms};
    int want = autoscale_decide(&ai, &fn->as);
    if (want != fn->desired)
        log_info("function %s: %d → %d instances (in flight %d, held %d)", fn->spec.name,
                 ai.current, want, fn->inflight, fn->queued);
    fn->desired = want;
    char err[512];
    for (int live = ai.current; live < want && now >= fn->backoff_until_ms; live++) {
        if (instance_start(g, fn, err, sizeof err)) {
            log_error("function %s: %s", fn->spec.name, err);
            function_backoff(fn);
        }
    }
    if (want > 0) /* after the first instance: it need not wait for the template's spawn */
        template_start(g, fn);
    for (int live = ai.current; live > want; live--) {
        struct instance *in = pick_victim(fn);
        if (!in)
            break;
        instance_stop(g, in);
    }
}

/* Rolling update: an instance of the old spec goes once a current one is ready (or none is
 * wanted) and it has nothing in flight. */
static void retire_stale(struct gateway *g, struct function *fn)
{
    if (function_ready_count(fn) == 0 && fn->desired > 0)
        return;
    for (struct instance *in = fn->instances; in; in = in->next)
        if (in->stale && in->inflight == 0)
            instance_stop(g, in);
}

static void kill_overdue(struct function *fn, int64_t now)
{
    for (struct instance *in = fn->instances; in; in = in->next) {
        if (in->state == INST_STOPPING && now - in->stop_ms > STOP_GRACE_MS) {
            kill(in->pid, SIGKILL);
            in->stop_ms = now;
        }
    }
}

/* Deleted functions leave once no request holds them and their instances are gone. */
static void collect_deleted(struct gateway *g)
{
    for (struct function **p = &g->functions; *p;) {
        struct function *fn = *p;
        if (fn->deleted)
            template_retire(g, fn, "its function was removed", false);
        if (fn->deleted && fn->refs == 0 && !fn->instances) {
            *p = fn->next;
            if (!registry_find(g, fn->spec.name)) /* a re-created one keeps the directory */
                unlinkat(g->run_fd, fn->spec.name, AT_REMOVEDIR);
            spec_free(&fn->spec);
            free(fn);
            continue;
        }
        p = &fn->next;
    }
}

/* Our store died: start a new one (it re-adopts the images; instances re-attach by themselves).
 * Runs without the lock: the store takes a moment to open its socket. */
static void restart_store(struct gateway *g, int64_t now)
{
    char err[512];
    if (!g->store_bin[0] || g->store_pid != 0 || g->stopping || now < g->store_retry_ms)
        return;
    pthread_mutex_unlock(&g->lock);
    int rc = store_start(g, err, sizeof err);
    pthread_mutex_lock(&g->lock);
    if (rc) {
        log_error("%s; retrying in 5 s", err);
        if (g->store_pid > 0)
            kill(g->store_pid, SIGKILL);
        g->store_retry_ms = now + 5000;
    }
}

/* Does the store's "names" list ("a, b" or "a") hold the model ref? Both without "?SHAPES". */
static bool names_hold(const char *names, const char *ref)
{
    size_t n = strcspn(ref, "?");
    for (const char *p = names; *p;) {
        p += strspn(p, ", ");
        size_t k = strcspn(p, ", ");
        if (strcspn(p, "?, ") == n && strncmp(p, ref, n) == 0)
            return true;
        p += k;
    }
    return false;
}

/* Refused functions learn the store's reason and retry time from its stats ("refusals": [{names,
 * identity, reason, retry_in_ms}]); the stats query runs without the lock. */
static void fetch_refusals(struct gateway *g, int64_t now)
{
    bool any = false;
    for (struct function *fn = g->functions; fn; fn = fn->next)
        any |= fn->refusal_pending;
    if (!any)
        return;
    pthread_mutex_unlock(&g->lock);
    json_t *stats = store_stats_json(g);
    pthread_mutex_lock(&g->lock);
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        if (!fn->refusal_pending)
            continue;
        fn->refusal_pending = false;
        size_t i;
        const json_t *r;
        /* the store lists a named model as "name" or "name:tag" (no registry, digest, :latest) */
        char listed[MODEL_REF_CANON_MAX + 1];
        const char *image = model_ref_listed(fn->spec.image, listed, sizeof listed);
        json_array_foreach(json_object_get(stats, "refusals"), i, r)
        {
            const char *names = json_string_value(json_object_get(r, "names"));
            const char *id = json_string_value(json_object_get(r, "identity"));
            const char *why = json_string_value(json_object_get(r, "reason"));
            const json_t *retry = json_object_get(r, "retry_in_ms");
            bool match = (names && names_hold(names, image)) ||
                         (id && strncmp(fn->spec.image, "sha256:", 7) == 0 &&
                          names_hold(id, fn->spec.image + 7));
            if (!match || !why)
                continue;
            snprintf(fn->refusal, sizeof fn->refusal, "%s", why);
            if (json_is_integer(retry) && json_integer_value(retry) >= 0)
                fn->backoff_until_ms = now + json_integer_value(retry) + 100;
            break;
        }
        log_warn("function %s: %s; next instance in %lld ms", fn->spec.name, fn->refusal,
                 (long long)(fn->backoff_until_ms - now));
    }
    json_decref(stats);
}

/* Returns whether an instance is starting (the supervisor then looks again sooner). */
static bool supervise_once(struct gateway *g)
{
    static int64_t swept_ms;
    int64_t now = now_ms();
    reap_children(g);
    fetch_refusals(g, now);
    restart_store(g, now);
    if (now - swept_ms >= 1000) { /* cgroups whose last process outlived its instance */
        cgroups_sweep(g);
        swept_ms = now;
    }
    check_ready(g);
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        template_poll(g, fn);
        if (!fn->deleted && !g->stopping) {
            scale_function(g, fn, now);
            retire_stale(g, fn);
        }
        kill_overdue(fn, now);
    }
    collect_deleted(g);
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        if (fn->tmpl && fn->tmpl->state == TEMPLATE_STARTING)
            return true;
        for (struct instance *in = fn->instances; in; in = in->next)
            if (in->state == INST_STARTING && !in->pushed)
                return true;
    }
    return false;
}

void *supervisor_main(void *arg)
{
    struct gateway *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        bool starting = supervise_once(g);
        struct timespec ts = mono_timespec(now_ns() + (starting ? 2 : 20) * 1000000);
        pthread_cond_timedwait(&g->kick, &g->lock, &ts);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

void instances_shutdown(struct gateway *g)
{
    pthread_mutex_lock(&g->lock);
    templates_retire_all(g, "shmfaasd stops", true);
    for (struct function *fn = g->functions; fn; fn = fn->next)
        for (struct instance *in = fn->instances; in; in = in->next)
            instance_stop(g, in);
    for (int i = 0; i < 500; i++) {
        reap_children(g);
        bool any = false;
        for (struct function *fn = g->functions; fn; fn = fn->next)
            for (struct instance *in = fn->instances; in; in = in->next)
                any |= in->state != INST_DEAD;
        if (!any)
            break;
        if (i == 300)
            for (struct function *fn = g->functions; fn; fn = fn->next)
                for (struct instance *in = fn->instances; in; in = in->next)
                    if (in->state != INST_DEAD)
                        kill(in->pid, SIGKILL);
        pthread_mutex_unlock(&g->lock);
        usleep(10000);
        pthread_mutex_lock(&g->lock);
    }
    cgroups_sweep(g);
    if (g->iso.cgroup_root[0] && rmdir(g->iso.cgroup_root) != 0 && errno != ENOENT)
        log_warn("cgroup %s: %s", g->iso.cgroup_root, strerror(errno));
    pthread_mutex_unlock(&g->lock);
}
