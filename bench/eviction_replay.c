/*
 * bench/eviction-replay — the store side of bench/eviction: replays instance starts and stops
 * against a running shmfaas-store through the client library, one connection per instance, and
 * prints one CSV line per operation with the store's figures right after it.
 *
 *   build/bench/eviction-replay --store SOCKET [--totals KEY,...] OPS_FILE
 *
 * OPS_FILE lines: `T_MS start|stop|evict INSTANCE MODEL` (virtual trace time in ms, instance id
 * 0..4095, model name), in time order; bench/eviction writes it from its seeded trace. A start
 * connects and attaches MODEL for 1 thread (timed: the cold-start cost of the store, a hit or a
 * compile); a stop detaches and closes; an evict asks the store to evict MODEL (calibration:
 * the next start misses). A refused attach (budget exhausted) is reported and the instance
 * counts as not started. Output columns:
 *   t_ms,op,instance,model,attach_ms,ok,resident_bytes,leases,hits,misses,compiles,evictions,refused
 * then one column per --totals KEY: that number of the store's STATS totals (0 when the store
 * has no such figure), e.g. the disk tier's counters and seconds.
 */
#include "client/client.h"
#include "common/common.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_INSTANCES 4096
#define MAX_MODEL     128
#define MAX_EXTRA     16

enum op_kind { OP_STOP, OP_START, OP_EVICT };
static const char *const op_names[] = {"stop", "start", "evict"}; /* by enum op_kind */
_Static_assert(sizeof(op_names) / sizeof(op_names[0]) == OP_EVICT + 1, "a name per op kind");

struct op {
    long long t_ms;
    enum op_kind kind;
    int instance;
    char model[MAX_MODEL + 1];
};

struct replay {
    const char *sock;
    struct store_client *monitor;                   /* for STATS */
    struct store_client *inst[MAX_INSTANCES];       /* one connection per live instance */
    const struct store_image *image[MAX_INSTANCES]; /* its attached image */
    char *extra[MAX_EXTRA];                         /* --totals keys, in column order */
    int n_extra;
};

/* Parses one OPS_FILE line; every field is checked. */
static int parse_op(const char *line, int lineno, struct op *op, char *err, size_t errlen)
{
    char kind[8];
    int n = sscanf(line, "%lld %7s %d %128s", &op->t_ms, kind, &op->instance, op->model);
    if (n != 4)
        return seterr(err, errlen, -EINVAL, "line %d: want `T_MS start|stop INSTANCE MODEL`",
                      lineno);
    size_t k = 0;
    while (k < ARRAY_LEN(op_names) && strcmp(kind, op_names[k]) != 0)
        k++;
    if (k == ARRAY_LEN(op_names))
        return seterr(err, errlen, -EINVAL, "line %d: op %s is not start, stop or evict", lineno,
                      kind);
    if (op->instance < 0 || op->instance >= MAX_INSTANCES || op->t_ms < 0)
        return seterr(err, errlen, -ERANGE, "line %d: instance must be 0..%d, time >= 0", lineno,
                      MAX_INSTANCES - 1);
    op->kind = (enum op_kind)k;
    return 0;
}

static json_int_t total(json_t *totals, const char *key)
{
    return json_integer_value(json_object_get(totals, key));
}

/* Prints the op's line with the store's totals right after it. */
static int print_line(struct replay *r, const struct op *op, double attach_ms, int ok, char *err,
                      size_t errlen)
{
    char *text;
    if (store_stats(r->monitor, &text, err, errlen) < 0)
        return -EIO;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    free(text);
    json_t *t = json_object_get(root, "totals");
    if (!json_is_object(t)) {
        json_decref(root);
        return seterr(err, errlen, -EPROTO, "store STATS reply has no totals object");
    }
    printf("%lld,%s,%d,%s,%.3f,%d,%lld,%lld,%lld,%lld,%lld,%lld,%lld", op->t_ms, op_names[op->kind],
           op->instance, op->model, attach_ms, ok, (long long)total(t, "resident_bytes"),
           (long long)total(t, "leases"), (long long)total(t, "hits"),
           (long long)total(t, "misses"), (long long)total(t, "compiles"),
           (long long)total(t, "evictions"), (long long)total(t, "refused"));
    for (int i = 0; i < r->n_extra; i++) {
        json_t *v = json_object_get(t, r->extra[i]);
        if (json_is_real(v))
            printf(",%.6f", json_real_value(v));
        else
            printf(",%lld", (long long)json_integer_value(v));
    }
    printf("\n");
    json_decref(root);
    return 0;
}

static int do_start(struct replay *r, const struct op *op, char *err, size_t errlen)
{
    if (r->inst[op->instance])
        return seterr(err, errlen, -EEXIST, "t=%lld: instance %d started twice", op->t_ms,
                      op->instance);
    char aerr[1024];
    double t0 = now_s();
    int ok = store_connect(r->sock, &r->inst[op->instance], aerr, sizeof(aerr)) == 0 &&
             store_attach(r->inst[op->instance], op->model, 1, &r->image[op->instance], aerr,
                          sizeof(aerr)) == 0;
    double dt = (now_s() - t0) * 1e3;
    if (!ok) {
        fprintf(stderr, "eviction-replay: t=%lld %s: %s\n", op->t_ms, op->model, aerr);
        if (r->inst[op->instance])
            store_close(r->inst[op->instance]);
        r->inst[op->instance] = NULL;
    }
    return print_line(r, op, dt, ok, err, errlen);
}

static int do_stop(struct replay *r, const struct op *op, char *err, size_t errlen)
{
    struct store_client *c = r->inst[op->instance];
    if (c) {
        char derr[1024];
        if (store_detach(c, r->image[op->instance], derr, sizeof(derr)) < 0)
            fprintf(stderr, "eviction-replay: t=%lld detach %s: %s\n", op->t_ms, op->model, derr);
        store_close(c);
        r->inst[op->instance] = NULL;
    }
    return print_line(r, op, 0, c != NULL, err, errlen);
}

static int do_evict(struct replay *r, const struct op *op, char *err, size_t errlen)
{
    char eerr[1024];
    int ok = store_evict_model(r->monitor, op->model, eerr, sizeof(eerr)) == 0;
    if (!ok)
        fprintf(stderr, "eviction-replay: t=%lld evict %s: %s\n", op->t_ms, op->model, eerr);
    return print_line(r, op, 0, ok, err, errlen);
}

static int replay_file(struct replay *r, FILE *f, char *err, size_t errlen)
{
    char line[512];
    int lineno = 0;
    printf("t_ms,op,instance,model,attach_ms,ok,resident_bytes,leases,hits,misses,compiles,"
           "evictions,refused");
    for (int i = 0; i < r->n_extra; i++)
        printf(",%s", r->extra[i]);
    printf("\n");
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        struct op op;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int rc = parse_op(line, lineno, &op, err, errlen);
        if (rc == 0)
            rc = op.kind == OP_EVICT   ? do_evict(r, &op, err, errlen)
                 : op.kind == OP_START ? do_start(r, &op, err, errlen)
                                       : do_stop(r, &op, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Splits "a,b,c" into r->extra (in place); every key a plain name, at most MAX_EXTRA. */
static int parse_totals(struct replay *r, char *list, char *err, size_t errlen)
{
    for (char *save = NULL, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        if (r->n_extra == MAX_EXTRA)
            return seterr(err, errlen, -E2BIG, "--totals: at most %d keys", MAX_EXTRA);
        if (strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(k))
            return seterr(err, errlen, -EINVAL, "--totals: key %s is not [a-z0-9_]+", k);
        r->extra[r->n_extra++] = k;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: eviction-replay --store SOCKET [--totals KEY,...] OPS_FILE\n"
               "  OPS_FILE lines: T_MS start|stop|evict INSTANCE MODEL (see bench/eviction)\n");
}

int main(int argc, char **argv)
{
    char err[1024];
    struct replay *r = calloc(1, sizeof(*r));
    const char *ops = NULL;
    int rc = r ? 0 : -ENOMEM;
    snprintf(err, sizeof(err), "out of memory");
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            free(r);
            return 0;
        } else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            r->sock = argv[++i];
        } else if (strcmp(argv[i], "--totals") == 0 && i + 1 < argc) {
            rc = parse_totals(r, argv[++i], err, sizeof(err));
        } else if (!ops && argv[i][0] != '-') {
            ops = argv[i];
        } else {
            usage(stderr);
            free(r);
            return 2;
        }
    }
    if (rc == 0 && (!r->sock || !ops)) {
        usage(stderr);
        free(r);
        return 2;
    }
    FILE *f = rc == 0 ? fopen(ops, "r") : NULL;
    if (rc == 0 && !f)
        rc = seterr(err, sizeof(err), -errno, "%s: %s", ops, strerror(errno));
    if (rc == 0)
        rc = store_connect(r->sock, &r->monitor, err, sizeof(err));
    if (rc == 0)
        rc = replay_file(r, f, err, sizeof(err));
    if (f)
        fclose(f);
    for (int i = 0; r && i < MAX_INSTANCES; i++)
        if (r->inst[i])
            store_close(r->inst[i]);
    if (r && r->monitor)
        store_close(r->monitor);
    free(r);
    if (rc < 0) {
        fprintf(stderr, "eviction-replay: %s\n", err);
        return 1;
    }
    return 0;
}
