/*
 * Who may use the store and how much: the thread counts an ATTACH may ask for, and the rate
 * limiter every complaint about a client goes through (a client that misbehaves in a loop would
 * otherwise write the log full). Uid checks themselves are in daemon.c, at accept.
 */
#include "store/store.h"

int store_threads_allowed(const struct store_config *cfg, int threads)
{
    if (cfg->n_threads_allowed == 0)
        return threads >= 1 && threads <= cfg->max_threads;
    for (int i = 0; i < cfg->n_threads_allowed; i++)
        if (cfg->threads_allowed[i] == threads)
            return 1;
    return 0;
}

/* A table of LOGLIMIT_SLOTS keys; a new key takes the slot used longest ago, so a flood from
 * many keys costs at most one line per slot per second. */
int loglimit_pass(struct loglimit *l, uint32_t key, int kind, int64_t now_ms, uint64_t *suppressed)
{
    size_t oldest = 0;
    for (size_t i = 0; i < LOGLIMIT_SLOTS; i++) {
        if (l->slot[i].last_ms && l->slot[i].key == key && l->slot[i].kind == kind) {
            if (now_ms - l->slot[i].last_ms < 1000) {
                l->slot[i].suppressed++;
                return 0;
            }
            *suppressed = l->slot[i].suppressed;
            l->slot[i].suppressed = 0;
            l->slot[i].last_ms = now_ms;
            return 1;
        }
        if (l->slot[i].last_ms < l->slot[oldest].last_ms)
            oldest = i;
    }
    if (l->slot[oldest].last_ms && now_ms - l->slot[oldest].last_ms < 1000) {
        /* every slot spoke within the last second: this line is one too many */
        l->slot[oldest].suppressed++;
        return 0;
    }
    *suppressed = 0;
    l->slot[oldest].key = key;
    l->slot[oldest].kind = kind;
    l->slot[oldest].last_ms = now_ms;
    l->slot[oldest].suppressed = 0;
    return 1;
}
