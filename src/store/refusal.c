/*
 * Remembered refusals: a model the budget cannot hold, or that does not compile, is answered
 * from this list for a backoff window instead of being compiled again for every instance that
 * a supervisor restarts. A short list (a node knows tens of models); the oldest entries go first
 * when it is full.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct refusal **find(struct refusals *r, const uint8_t identity[SHA256_LEN])
{
    struct refusal **p = &r->list;
    while (*p && memcmp((*p)->identity, identity, SHA256_LEN) != 0)
        p = &(*p)->next;
    return p;
}

struct refusal *refusal_active(struct refusals *r, const uint8_t identity[SHA256_LEN],
                               int64_t now_ms)
{
    struct refusal *f = *find(r, identity);
    return f && now_ms < f->until_ms ? f : NULL;
}

static void drop(struct refusals *r, struct refusal **p)
{
    struct refusal *f = *p;
    *p = f->next;
    free(f);
    r->n--;
}

/* Drops the entries past their forget time, then the oldest while the list is full. */
static void trim(struct refusals *r, int64_t now_ms)
{
    for (struct refusal **p = &r->list; *p;) {
        if (now_ms >= (*p)->forget_ms)
            drop(r, p);
        else
            p = &(*p)->next;
    }
    while (r->n >= REFUSALS_MAX) {
        struct refusal **oldest = &r->list;
        for (struct refusal **p = &r->list; *p; p = &(*p)->next)
            if ((*p)->until_ms < (*oldest)->until_ms)
                oldest = p;
        drop(r, oldest);
    }
}

struct refusal *refusal_record(struct refusals *r, const uint8_t identity[SHA256_LEN],
                               const char *name, enum refusal_kind kind, int code, uint64_t need,
                               const char *reason, int64_t now_ms, int64_t first_ms, int64_t max_ms)
{
    struct refusal *f = *find(r, identity);
    if (f && now_ms >= f->forget_ms) {
        drop(r, find(r, identity));
        f = NULL;
    }
    if (!f) {
        trim(r, now_ms);
        f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        memcpy(f->identity, identity, SHA256_LEN);
        sha256_hex(identity, f->idhex);
        f->next = r->list;
        r->list = f;
        r->n++;
        f->window_ms = first_ms;
    } else {
        /* refused again right after its window: the next window is twice as long */
        f->window_ms = f->window_ms * 2 > max_ms ? max_ms : f->window_ms * 2;
    }
    if (name)
        catalog_names_add(f->names, sizeof(f->names), name);
    f->kind = kind;
    f->code = code;
    f->need = need;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
    f->until_ms = now_ms + f->window_ms;
    /* a model that stays quiet for two windows after this one starts over at the first window */
    f->forget_ms = f->until_ms + 2 * f->window_ms;
    return f;
}

void refusal_forget(struct refusals *r, const uint8_t identity[SHA256_LEN])
{
    struct refusal **p = find(r, identity);
    if (*p)
        drop(r, p);
}

void refusals_free(struct refusals *r)
{
    while (r->list)
        drop(r, &r->list);
}
