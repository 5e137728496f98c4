/*
 * The autoscaler: a pure decision from (load, instances, settings, time) to a desired instance
 * count. Concurrency based, as Knative's KPA: demand = requests in flight + requests held; each
 * instance should carry `target` of them. Up at once, down one instance at a time after demand
 * stayed lower for down_delay_ms, to zero only when allowed and idle for the zero window.
 */
#include "gateway/gateway.h"

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static bool idle_for_zero(const struct autoscale_in *in)
{
    return in->scale.zero && in->inflight == 0 && in->queued == 0 &&
           in->now_ms - in->last_active_ms >= in->scale.zero_ms;
}

int autoscale_decide(const struct autoscale_in *in, struct autoscale_state *st)
{
    int target = in->scale.target > 0 ? in->scale.target : 1;
    int demand = in->inflight + in->queued;
    int needed = (demand + target - 1) / target;
    int floor = in->floor >= 0 ? in->floor : in->scale.min;
    floor = clamp(floor, 0, in->scale.max);
    if (idle_for_zero(in))
        floor = 0;
    int want = clamp(needed > floor ? needed : floor, 0, in->scale.max);

    if (want >= in->current) {
        st->below_since_ms = 0;
        return want;
    }
    /* Idle past the zero window, or scaled to zero by hand: no reason to go down slowly. */
    if (want == 0 && demand == 0 && (idle_for_zero(in) || in->floor == 0)) {
        st->below_since_ms = 0;
        return 0;
    }
    if (st->below_since_ms == 0) {
        st->below_since_ms = in->now_ms;
        return in->current;
    }
    if (in->now_ms - st->below_since_ms < in->down_delay_ms)
        return in->current;
    st->below_since_ms = in->now_ms;
    return in->current - 1;
}
