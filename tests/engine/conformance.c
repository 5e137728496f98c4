/*
 * shmfaas-conformance — runs the ONNX backend test data (Debian libonnx-testdata) through the
 * engine: compile, open, session, run, and compare with the expected outputs.
 *
 *   shmfaas-conformance [--root DIR] [--suite NAME]... [--filter SUBSTR] [--verbose]
 *                       [--no-fork] [--decode-only] [--reasons] [--floor FILE] [--no-pin]
 *
 * For each case directory ROOT/SUITE/<case>/ (suites: node, pytorch-converted,
 * pytorch-operator, simple) it loads model.onnx and every test_data_set_N/input_K.pb and
 * output_K.pb. A case passes when every output matches (|got - want| <= 1e-4 + 1e-3 |want|,
 * integers and bools exactly); it is "unsupported" when engine_compile refuses the model with
 * an error, and "failed" otherwise (wrong result, run error, crash or timeout). Each case runs
 * in a forked child, so one crash costs one case, not the run (--no-fork for debuggers).
 * Prints one line per suite and a total; --verbose adds one line per case with the reason.
 * --decode-only only walks the cases and decodes every .pb file (a unit test of the walker and
 * of ir_decode_tensor_proto): it fails if a file is undecodable for a reason other than an
 * unsupported element type. --reasons ends with the most common reasons for "unsupported" (which
 * ops and attributes to add next). --floor FILE reads lines "SUITE MIN_PASSED" ('#' starts a
 * comment) and fails the run when a suite passes fewer cases than its floor (the regression
 * check `make test` runs; the floors are the counts recorded in docs/conformance.md). By default a
 * compile refused for a shape operand that is a graph input is retried with the first data set's
 * values pinned (engine_compile_pinning); --no-pin pins nothing: every test input is fed as an
 * input of a specialising model (engine_dynamic_open), which resolves shapes per data set as it
 * would per request, as ONNX Runtime's runner does (the floors of
 * conformance-floor-unpinned.txt). "with pinned inputs" counts, with --no-pin, the cases whose
 * shape operands the engine resolved per data set.
 *
 * Exit status: 0 when nothing failed, 1 when some case failed or a floor was missed, 2 usage
 * (or an unreadable floor file).
 */
#include "common/common.h"
#include "engine/engine.h"
#include "engine/ir.h"
#include "onnx.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_ROOT   "/usr/share/libonnx-testdata/data"
#define MAX_FILE_BYTES ((size_t)1 << 30)
#define MAX_TENSORS    64
#define CASE_TIMEOUT_S 60
#define RTOL           1e-3
#define ATOL           1e-4

enum verdict { PASS, FAIL, UNSUPPORTED, PASS_PINNED /* a child's exit code only */ };
static const char *verdict_name[] = {"pass", "FAIL", "unsupported"};

struct config {
    const char *root;
    const char *suites[8];
    int n_suites;
    const char *filter;
    int verbose, fork, decode_only, reasons, no_pin;
    const char *floor_file;
};

/* Minimum pass counts per suite (--floor). */
struct floors {
    char suite[8][64];
    int min_passed[8];
    int n;
};

#define MAX_REASONS 512

/* Why cases were unsupported, counted: "(Op): unsupported op", "input 'x' has ...". */
struct reasons {
    char *text[MAX_REASONS];
    int count[MAX_REASONS];
    int n;
};

/* Shortens a compile error to its op and complaint, dropping the model and node names. */
static void reason_key(const char *why, char *key, size_t len)
{
    const char *end = strstr(why, "): ");
    const char *from = why;
    if (end) {
        for (const char *c = end; c > why; c--)
            if (*c == '(') {
                from = c;
                break;
            }
    } else if (strncmp(why, "model ", 6) == 0 && strstr(why, ": ")) {
        from = strstr(why, ": ") + 2;
    }
    snprintf(key, len, "%s", from);
}

static void reasons_add(struct reasons *r, const char *why)
{
    char key[256];
    reason_key(why, key, sizeof(key));
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->text[i], key) == 0) {
            r->count[i]++;
            return;
        }
    if (r->n == MAX_REASONS || !(r->text[r->n] = strdup(key)))
        return;
    r->count[r->n++] = 1;
}

static void reasons_print(struct reasons *r)
{
    printf("most common reasons for unsupported:\n");
    for (int shown = 0; shown < 30; shown++) {
        int best = -1;
        for (int i = 0; i < r->n; i++)
            if (r->count[i] > 0 && (best < 0 || r->count[i] > r->count[best]))
                best = i;
        if (best < 0)
            break;
        printf("%6d  %s\n", r->count[best], r->text[best]);
        r->count[best] = -r->count[best];
    }
    for (int i = 0; i < r->n; i++)
        free(r->text[i]);
    r->n = 0;
}

struct tally {
    int n[3];
    int pinned; /* passed cases that needed value-pinned inputs */
    int decoded, undecodable;
};

/* ---- one case ---- */

/* What a graph input or output is: a tensor, or a sequence / optional of tensors, whose test
 * data files hold a SequenceProto / OptionalProto; anything else (maps, nested values) is not
 * decoded. */
enum value_kind {
    VAL_TENSOR,
    VAL_SEQ,
    VAL_OPT,
    VAL_OPTSEQ /* optional of a sequence */,
    VAL_OTHER
};

/* A case's graph inputs (initializers excluded) and outputs, from its model.onnx. */
struct case_io {
    int n_in, n_out;
    char in_name[MAX_TENSORS][256];
    enum value_kind in_kind[MAX_TENSORS], out_kind[MAX_TENSORS];
};

static enum value_kind value_kind(const Onnx__TypeProto *tp)
{
    const Onnx__TypeProto *e = NULL;
    enum value_kind k = VAL_OTHER;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return VAL_TENSOR;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type)
        e = tp->sequence_type->elem_type, k = VAL_SEQ;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE && tp->optional_type)
        e = tp->optional_type->elem_type, k = VAL_OPT;
    if (k == VAL_OPT && e && e->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE &&
        e->sequence_type)
        e = e->sequence_type->elem_type, k = VAL_OPTSEQ;
    return e && e->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? k : VAL_OTHER;
}

static int is_initializer(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && strcmp(gp->initializer[i]->name, name) == 0)
            return 1;
    return 0;
}

static int case_io_load(const uint8_t *onnx, size_t len, struct case_io *io, char *err,
                        size_t errlen)
{
    memset(io, 0, sizeof(*io));
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, onnx);
    int rc = m && m->graph ? 0 : seterr(err, errlen, -EINVAL, "model.onnx does not parse");
    for (size_t i = 0; rc == 0 && i < m->graph->n_input; i++) {
        const Onnx__ValueInfoProto *v = m->graph->input[i];
        if (v->name && is_initializer(m->graph, v->name))
            continue;
        if (io->n_in == MAX_TENSORS)
            rc = seterr(err, errlen, -E2BIG, "more than %d inputs", MAX_TENSORS);
        else {
            snprintf(io->in_name[io->n_in], sizeof(io->in_name[0]), "%s", v->name ? v->name : "");
            io->in_kind[io->n_in++] = value_kind(v->type);
        }
    }
    for (size_t i = 0; rc == 0 && i < m->graph->n_output; i++) {
        if (io->n_out == MAX_TENSORS)
            rc = seterr(err, errlen, -E2BIG, "more than %d outputs", MAX_TENSORS);
        else
            io->out_kind[io->n_out++] = value_kind(m->graph->output[i]->type);
    }
    if (m)
        onnx__model_proto__free_unpacked(m, NULL);
    return rc;
}

struct tensors {
    struct engine_tensor t[MAX_TENSORS];
    int n;
    int files;              /* .pb files read */
    int len[MAX_TENSORS];   /* per file: the tensors it gave (a sequence: its length) */
    int first[MAX_TENSORS]; /* per file: the index of its first tensor */
};

static void tensors_free(struct tensors *ts)
{
    for (int i = 0; i < ts->n; i++) {
        free((char *)ts->t[i].name);
        free(ts->t[i].data);
    }
    ts->n = 0;
}

/* ---- SequenceProto / OptionalProto (onnx-data.proto, which protobuf-c's onnx.proto lacks):
 * read from the wire format here, every length checked; their tensors are TensorProtos ---- */

struct pbuf {
    const uint8_t *p, *end;
};

static int pb_varint(struct pbuf *b, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (b->p >= b->end)
            return -EINVAL;
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80))
            return 0;
    }
    return -EINVAL;
}

/* The next field: its number, and for a length-delimited one its bytes (others are skipped). */
static int pb_field(struct pbuf *b, int *field, const uint8_t **data, size_t *len)
{
    uint64_t key, v;
    if (pb_varint(b, &key) || key >> 3 == 0 || key >> 3 > 1000)
        return -EINVAL;
    *field = (int)(key >> 3);
    *data = NULL;
    *len = 0;
    switch (key & 7) {
    case 0:
        return pb_varint(b, &v);
    case 1:
    case 5: {
        size_t skip = (key & 7) == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) < skip)
            return -EINVAL;
        b->p += skip;
        return 0;
    }
    case 2:
        if (pb_varint(b, &v) || v > (uint64_t)(b->end - b->p))
            return -EINVAL;
        *data = b->p;
        *len = (size_t)v;
        b->p += v;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Appends one TensorProto's tensor to ts, named name. */
static int add_tensor(struct tensors *ts, const uint8_t *data, size_t len, const char *name,
                      char *err, size_t errlen)
{
    if (ts->n == MAX_TENSORS)
        return seterr(err, errlen, -E2BIG, "more than %d tensors", MAX_TENSORS);
    struct engine_tensor *t = &ts->t[ts->n];
    int rc = ir_decode_tensor_proto(data, len, t, err, errlen);
    if (rc)
        return rc;
    free((char *)t->name);
    t->name = strdup(name);
    ts->n++;
    return t->name ? 0 : -ENOMEM;
}

/* A SequenceProto (kind VAL_SEQ: field 3 is a tensor) or OptionalProto (VAL_OPT: field 3 its
 * tensor; VAL_OPTSEQ: field 5 its SequenceProto): its tensors appended to ts as "NAME[0]",
 * "NAME[1]", ... (the engine feeds an optional of a sequence as that sequence); other nested
 * values refused. */
static int decode_value(const uint8_t *buf, size_t len, enum value_kind kind, const char *name,
                        struct tensors *ts, char *err, size_t errlen)
{
    struct pbuf b = {buf, buf + len};
    int k = 0;
    while (b.p < b.end) {
        int field;
        const uint8_t *data;
        size_t n;
        if (pb_field(&b, &field, &data, &n))
            return seterr(err, errlen, -EINVAL, "malformed %s",
                          kind == VAL_SEQ ? "SequenceProto" : "OptionalProto");
        if (kind == VAL_OPTSEQ && field == 5 && data)
            return decode_value(data, n, VAL_SEQ, name, ts, err, errlen);
        if (field >= 4 && data)
            return seterr(err, errlen, -ENOTSUP, "a nested sequence, map or optional");
        if (field != 3)
            continue;
        if (kind == VAL_OPT && k == 1)
            return seterr(err, errlen, -EINVAL, "an OptionalProto with two values");
        char elem[300];
        snprintf(elem, sizeof(elem), "%s[%d]", name, k++);
        int rc = add_tensor(ts, data, n, elem, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Loads PREFIX_0.pb, PREFIX_1.pb, ... from dir until one is missing. io (NULL: every file is a
 * tensor) says what each file holds and, for inputs, names it (a sequence's elements are
 * "NAME[k]", as the engine expands them). */
static int load_tensors(const char *dir, const char *prefix, const struct case_io *io,
                        struct tensors *ts, char *err, size_t errlen)
{
    ts->n = ts->files = 0;
    int inputs = strcmp(prefix, "input") == 0;
    for (int i = 0; i < MAX_TENSORS; i++) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s_%d.pb", dir, prefix, i) >= (int)sizeof(path) ||
            access(path, R_OK) != 0)
            return 0;
        uint8_t *buf;
        size_t len;
        int rc = read_file(path, MAX_FILE_BYTES, &buf, &len, err, errlen);
        if (rc)
            return rc;
        char msg[512];
        enum value_kind kind = !io      ? VAL_TENSOR
                               : inputs ? (i < io->n_in ? io->in_kind[i] : VAL_TENSOR)
                                        : (i < io->n_out ? io->out_kind[i] : VAL_TENSOR);
        const char *name = io && inputs && i < io->n_in ? io->in_name[i] : "";
        int before = ts->n;
        if (kind == VAL_OTHER)
            rc = seterr(msg, sizeof(msg), -ENOTSUP, "a map or nested value (not decoded)");
        else if (kind != VAL_TENSOR)
            rc = decode_value(buf, len, kind, name, ts, msg, sizeof(msg));
        else if (ts->n == MAX_TENSORS)
            rc = seterr(msg, sizeof(msg), -E2BIG, "more than %d tensors", MAX_TENSORS);
        else if ((rc = ir_decode_tensor_proto(buf, len, &ts->t[ts->n], msg, sizeof(msg))) == 0) {
            struct engine_tensor *t = &ts->t[ts->n++];
            if (!t->name && *name && !(t->name = strdup(name)))
                rc = -ENOMEM;
        }
        free(buf);
        if (rc)
            return seterr(err, errlen, rc, "%s: %s", path, msg);
        ts->first[ts->files] = before;
        ts->len[ts->files++] = ts->n - before;
    }
    return 0;
}

/* IEEE binary16, decoded here independently of the engine's Cast. */
static double half_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? m * 0x1p-24 : e == 31 ? (m ? NAN : INFINITY) : (m + 1024) * pow(2, e - 25);
    return h & 0x8000 ? -v : v;
}

static double elem(const struct engine_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ENGINE_F32:
        return ((const float *)t->data)[i];
    case ENGINE_I64:
        return (double)((const int64_t *)t->data)[i];
    case ENGINE_I32:
        return ((const int32_t *)t->data)[i];
    case ENGINE_I8:
        return ((const int8_t *)t->data)[i];
    case ENGINE_F64:
        return ((const double *)t->data)[i];
    case ENGINE_F16:
        return half_value(((const uint16_t *)t->data)[i]);
    default:
        return ((const uint8_t *)t->data)[i];
    }
}

static int compare(const struct engine_tensor *got, const struct engine_tensor *want, int k,
                   char *err, size_t errlen)
{
    char s1[128], s2[128];
    int64_t n = engine_shape_numel(&want->shape);
    int same = got->dtype == want->dtype && got->shape.rank == want->shape.rank;
    for (int d = 0; same && d < want->shape.rank; d++)
        same = got->shape.dims[d] == want->shape.dims[d];
    if (!same)
        return seterr(err, errlen, -EINVAL, "output %d: got %s %s, want %s %s", k,
                      engine_dtype_name(got->dtype), engine_shape_str(&got->shape, s1, 128),
                      engine_dtype_name(want->dtype), engine_shape_str(&want->shape, s2, 128));
    for (int64_t i = 0; i < n; i++) {
        double a = elem(got, (size_t)i), b = elem(want, (size_t)i);
        if (isnan(a) && isnan(b))
            continue;
        int real =
            want->dtype == ENGINE_F32 || want->dtype == ENGINE_F64 || want->dtype == ENGINE_F16;
        double tol = real ? ATOL + RTOL * fabs(b) : 0; /* every float type, not only float32 */
        if (!(fabs(a - b) <= tol) && !(a == b))
            return seterr(err, errlen, -EINVAL, "output %d element %lld: got %.9g, want %.9g", k,
                          (long long)i, a, b);
    }
    return 0;
}

/* What runs a case's data sets: one plan and session, or (--no-pin) a specialising model that
 * compiles a plan per request signature. */
struct runner {
    struct engine_model *m;
    struct engine_session *s;
    struct engine_dynamic *d;
    const struct case_io *io;
};

/* Runs one test_data_set directory (the expected outputs are read after the run: with --no-pin
 * the compile happens in the run, and its refusal is the case's reason). A sequence input or
 * output is its elements, in order, on both sides. */
static int run_set(const struct runner *r, const char *dir, char *err, size_t errlen)
{
    struct tensors in = {0}, want = {0};
    struct engine_tensor got[MAX_TENSORS];
    int rc = load_tensors(dir, "input", r->io, &in, err, errlen);
    int n_out = r->d ? MAX_TENSORS : engine_model_n_outputs(r->m);
    if (rc == 0 && (in.files != r->io->n_in || n_out > MAX_TENSORS))
        rc = seterr(err, errlen, -EINVAL, "%d inputs in %s, model has %d / %d", in.files, dir,
                    r->io->n_in, n_out);
    if (rc == 0) {
        memset(got, 0, sizeof(got));
        rc = r->d ? engine_dynamic_run(r->d, in.t, in.n, got, n_out, err, errlen)
                  : engine_session_run(r->s, in.t, in.n, got, n_out, err, errlen);
    }
    if (rc == 0 && r->d) {
        struct engine_dynamic_stats st;
        engine_dynamic_stats(r->d, &st);
        n_out = st.outputs;
    }
    if (rc == 0)
        rc = load_tensors(dir, "output", r->io, &want, err, errlen);
    if (rc == 0 && want.n != n_out)
        rc = seterr(err, errlen, -EINVAL,
                    "%d outputs in %s (sequences: their elements), model "
                    "has %d",
                    want.n, dir, n_out);
    for (int k = 0; rc == 0 && k < n_out; k++)
        rc = compare(&got[k], &want.t[k], k, err, errlen);
    tensors_free(&in);
    tensors_free(&want);
    return rc;
}

static int is_data_set(const struct dirent *e)
{
    return strncmp(e->d_name, "test_data_set_", 14) == 0;
}

/* Compiles a case; a refusal for an operand computed at run time is retried with the inputs of
 * the case's first data set pinned, keeping only the pins it needs (engine_compile_pinning).
 * A sequence input's length and element shapes come from that data set too. *pinned: some input
 * was pinned. */
static int compile_case(const uint8_t *onnx, size_t len, const char *dir, const struct case_io *io,
                        struct engine_compile_opts *o, void **image, size_t *image_len, int *pinned,
                        char *why, size_t whylen)
{
    char set[4096], tmp[512];
    struct tensors first = {0};
    int flags[MAX_TENSORS];
    struct engine_input_shape shapes[2 * MAX_TENSORS];
    if (snprintf(set, sizeof(set), "%s/test_data_set_0", dir) >= (int)sizeof(set) ||
        load_tensors(set, "input", io, &first, tmp, sizeof(tmp)) != 0)
        tensors_free(&first);
    int n_shapes = 0;
    for (int f = 0; f < first.files && f < io->n_in; f++) {
        if (io->in_kind[f] == VAL_TENSOR || io->in_kind[f] == VAL_OTHER)
            continue;
        shapes[n_shapes++] =
            (struct engine_input_shape){io->in_name[f], {.rank = 1, .dims = {first.len[f]}}};
        for (int k = 0; k < first.len[f]; k++) {
            const struct engine_tensor *t = &first.t[first.first[f] + k];
            shapes[n_shapes++] = (struct engine_input_shape){t->name, t->shape};
        }
    }
    o->shapes = shapes;
    o->n_shapes = n_shapes;
    int rc = engine_compile_pinning(onnx, len, o, first.t, first.n, flags, image, image_len, why,
                                    whylen);
    o->shapes = NULL;
    o->n_shapes = 0;
    *pinned = 0;
    for (int i = 0; rc == 0 && i < first.n; i++)
        *pinned |= flags[i];
    tensors_free(&first);
    return rc;
}

/* Runs every data set of dir through r. */
static int run_sets(const struct runner *r, const char *dir, char *why, size_t whylen)
{
    char path[4096];
    struct dirent **sets = NULL;
    int n = scandir(dir, &sets, is_data_set, alphasort), rc = 0;
    if (n <= 0)
        rc = seterr(why, whylen, -ENOENT, "no test_data_set_* in %s", dir);
    for (int i = 0; i < n; i++) {
        if (rc == 0 &&
            snprintf(path, sizeof(path), "%s/%s", dir, sets[i]->d_name) >= (int)sizeof(path))
            rc = seterr(why, whylen, -ENAMETOOLONG, "path too long in %s", dir);
        if (rc == 0)
            rc = run_set(r, path, why, whylen);
        free(sets[i]);
    }
    free(sets);
    return rc;
}

/* --no-pin: every input is fed as an input; the engine resolves shapes per data set. */
static enum verdict run_case_dynamic(const uint8_t *onnx, size_t len, const char *dir,
                                     const struct case_io *io, const struct engine_compile_opts *o,
                                     char *why, size_t whylen)
{
    struct engine_dynamic_opts dopts = {.compile = *o};
    struct runner r = {.io = io};
    if (engine_dynamic_open(onnx, len, &dopts, &r.d, why, whylen) != 0)
        return UNSUPPORTED; /* the import refused it */
    int rc = run_sets(&r, dir, why, whylen);
    struct engine_dynamic_stats st;
    engine_dynamic_stats(r.d, &st);
    engine_dynamic_close(r.d);
    if (rc)
        return st.last_refused ? UNSUPPORTED : FAIL;
    return st.pinned_inputs > 0 ? PASS_PINNED : PASS;
}

static enum verdict run_case(const char *dir, const char *name, int no_pin, char *why,
                             size_t whylen)
{
    char path[4096];
    uint8_t *onnx;
    if (snprintf(path, sizeof(path), "%s/model.onnx", dir) >= (int)sizeof(path))
        return FAIL;
    size_t len;
    if (read_file(path, MAX_FILE_BYTES, &onnx, &len, why, whylen))
        return FAIL;
    struct engine_compile_opts opts = {.threads = 1, .base_dir = dir, .model_name = name};
    static struct case_io io; /* large: not on the stack */
    if (case_io_load(onnx, len, &io, why, whylen) != 0) {
        free(onnx);
        return UNSUPPORTED;
    }
    if (no_pin) {
        enum verdict v = run_case_dynamic(onnx, len, dir, &io, &opts, why, whylen);
        free(onnx);
        return v;
    }
    void *image = NULL;
    size_t image_len = 0;
    int pinned = 0;
    int rc = compile_case(onnx, len, dir, &io, &opts, &image, &image_len, &pinned, why, whylen);
    free(onnx);
    if (rc)
        return UNSUPPORTED;
    struct runner r = {.io = &io};
    rc = engine_model_open(image, image_len, &r.m, why, whylen);
    if (rc == 0)
        rc = engine_session_create(r.m, &r.s, why, whylen);
    if (rc == 0)
        rc = run_sets(&r, dir, why, whylen);
    engine_session_destroy(r.s);
    engine_model_close(r.m);
    engine_image_free(image);
    if (rc && pinned && strstr(why, "(the plan was compiled for these values)"))
        return UNSUPPORTED; /* a later data set has other values for a pinned input */
    return rc ? FAIL : pinned ? PASS_PINNED : PASS;
}

/* The case's inputs and outputs (NULL: model.onnx unreadable or with maps / nested values,
 * whose files are not decoded). */
static int case_io_of(const char *dir, struct case_io *io)
{
    char path[4096], err[256];
    uint8_t *buf;
    size_t len;
    if (snprintf(path, sizeof(path), "%s/model.onnx", dir) >= (int)sizeof(path) ||
        read_file(path, MAX_FILE_BYTES, &buf, &len, err, sizeof(err)) != 0)
        return -1;
    int rc = case_io_load(buf, len, io, err, sizeof(err));
    free(buf);
    for (int i = 0; rc == 0 && i < io->n_in; i++)
        rc = io->in_kind[i] == VAL_OTHER ? -1 : 0;
    for (int i = 0; rc == 0 && i < io->n_out; i++)
        rc = io->out_kind[i] == VAL_OTHER ? -1 : 0;
    return rc;
}

/* Decodes every .pb of a case; returns the number that failed for a reason other than an
 * unsupported element type. */
static int decode_case(const char *dir, struct tally *t, int verbose)
{
    static struct case_io io;
    if (case_io_of(dir, &io) != 0) {
        t->undecodable++;
        return 0;
    }
    struct dirent **sets = NULL;
    int n = scandir(dir, &sets, is_data_set, alphasort), bad = 0;
    for (int i = 0; i < n; i++) {
        char sub[4096], err[512];
        if (snprintf(sub, sizeof(sub), "%s/%s", dir, sets[i]->d_name) >= (int)sizeof(sub)) {
            free(sets[i]);
            continue;
        }
        for (int k = 0; k < 2; k++) {
            struct tensors ts = {0};
            int rc = load_tensors(sub, k ? "output" : "input", &io, &ts, err, sizeof(err));
            t->decoded += ts.n;
            tensors_free(&ts);
            if (rc == -ENOTSUP) {
                t->undecodable++;
            } else if (rc) {
                bad++;
                fprintf(stderr, "undecodable: %s\n", err);
            }
            if (rc && verbose)
                printf("  %s: %s\n", sub, err);
        }
        free(sets[i]);
    }
    free(sets);
    return bad;
}

/* ---- isolation: one forked child per case ---- */

static enum verdict run_isolated(const struct config *c, const char *dir, const char *name,
                                 char *why, size_t whylen)
{
    if (!c->fork)
        return run_case(dir, name, c->no_pin, why, whylen);
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return FAIL;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(why, whylen, "fork: %s", strerror(errno));
        return FAIL;
    }
    if (pid == 0) {
        close(fds[0]);
        alarm(CASE_TIMEOUT_S);
        enum verdict v = run_case(dir, name, c->no_pin, why, whylen);
        ssize_t w = write(fds[1], why, strnlen(why, whylen));
        (void)w;
        _exit((int)v);
    }
    close(fds[1]);
    why[0] = '\0';
    size_t got = 0;
    ssize_t k;
    while (got + 1 < whylen && (k = read(fds[0], why + got, whylen - 1 - got)) > 0)
        got += (size_t)k;
    why[got] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        snprintf(why, whylen, "crashed with signal %d (%s)", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? "timeout" : strsignal(WTERMSIG(status)));
        return FAIL;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : FAIL;
    return code == PASS || code == UNSUPPORTED || code == PASS_PINNED ? (enum verdict)code : FAIL;
}

/* ---- walking the suites ---- */

static int is_case(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static int run_suite(const struct config *c, const char *suite, struct tally *total,
                     struct reasons *reasons)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", c->root, suite);
    struct dirent **cases = NULL;
    int n = scandir(dir, &cases, is_case, alphasort), bad = 0;
    if (n < 0) {
        fprintf(stderr, "shmfaas-conformance: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    struct tally t = {0};
    for (int i = 0; i < n; i++) {
        const char *name = cases[i]->d_name;
        char cdir[4096], why[1024] = "";
        if (snprintf(cdir, sizeof(cdir), "%s/%s", dir, name) >= (int)sizeof(cdir) ||
            (c->filter && !strstr(name, c->filter))) {
            free(cases[i]);
            continue;
        }
        if (c->decode_only) {
            bad += decode_case(cdir, &t, c->verbose);
            t.n[PASS]++;
        } else {
            enum verdict v = run_isolated(c, cdir, name, why, sizeof(why));
            if (v == PASS_PINNED) {
                t.pinned++;
                v = PASS;
            }
            t.n[v]++;
            if (v == UNSUPPORTED)
                reasons_add(reasons, why);
            if (c->verbose)
                printf("  %-11s %s/%s%s%s\n", verdict_name[v], suite, name, *why ? ": " : "",
                       v == PASS ? "" : why);
        }
        free(cases[i]);
    }
    free(cases);
    if (c->decode_only)
        printf("%s: %d cases, %d tensors decoded, %d skipped (unsupported types), %d undecodable\n",
               suite, t.n[PASS], t.decoded, t.undecodable, bad);
    else
        printf("%s: %d passed (%d with pinned inputs), %d failed, %d unsupported\n", suite,
               t.n[PASS], t.pinned, t.n[FAIL], t.n[UNSUPPORTED]);
    for (int k = 0; k < 3; k++)
        total->n[k] += t.n[k];
    total->pinned += t.pinned;
    total->decoded += t.decoded;
    if (c->decode_only && t.n[PASS] == 0)
        return -1;
    return bad;
}

static void usage(void)
{
    fprintf(stderr, "usage: shmfaas-conformance [--root DIR] [--suite NAME]... "
                    "[--filter SUBSTR] [--verbose] [--no-fork] [--decode-only] [--reasons] "
                    "[--floor FILE] [--no-pin]\n");
}

static int floors_parse_line(struct floors *f, const char *line, char *err, size_t errlen)
{
    char suite[64];
    int min = -1, used = 0;
    if (sscanf(line, " %63s %d %n", suite, &min, &used) != 2 || min < 0 || line[used] != '\0')
        return seterr(err, errlen, -EINVAL, "expected 'SUITE MIN_PASSED', got '%s'", line);
    if (f->n == (int)ARRAY_LEN(f->suite))
        return seterr(err, errlen, -EINVAL, "more than %d suites", (int)ARRAY_LEN(f->suite));
    snprintf(f->suite[f->n], sizeof(f->suite[f->n]), "%s", suite);
    f->min_passed[f->n++] = min;
    return 0;
}

static int floors_load(struct floors *f, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return seterr(err, errlen, -errno, "cannot open floor file %s: %s", path, strerror(errno));
    char line[256];
    int rc = 0, lineno = 0;
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        lineno++;
        line[strcspn(line, "#\n")] = '\0';
        if (line[strspn(line, " \t")] == '\0')
            continue;
        char why[256];
        rc = floors_parse_line(f, line, why, sizeof(why));
        if (rc < 0)
            seterr(err, errlen, rc, "%s:%d: %s", path, lineno, why);
    }
    fclose(fp);
    return rc;
}

/* Returns 1 (and says so) when SUITE passed fewer cases than its floor. */
static int floor_missed(const struct floors *f, const char *suite, int passed)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->suite[i], suite) == 0 && passed < f->min_passed[i]) {
            printf("%s: %d passed is below the floor of %d (a regression; see "
                   "docs/conformance.md)\n",
                   suite, passed, f->min_passed[i]);
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    struct config c = {.root = DEFAULT_ROOT, .fork = 1};
    static const struct option longopts[] = {
        {"root", required_argument, NULL, 'r'},
        {"suite", required_argument, NULL, 's'},
        {"filter", required_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},
        {"no-fork", no_argument, NULL, 'n'},
        {"decode-only", no_argument, NULL, 'd'},
        {"reasons", no_argument, NULL, 'R'},
        {"floor", required_argument, NULL, 'F'},
        {"no-pin", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "r:s:f:vndRF:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            c.root = optarg;
            break;
        case 's':
            if (c.n_suites == (int)ARRAY_LEN(c.suites)) {
                usage();
                return 2;
            }
            c.suites[c.n_suites++] = optarg;
            break;
        case 'f':
            c.filter = optarg;
            break;
        case 'v':
            c.verbose = 1;
            break;
        case 'n':
            c.fork = 0;
            break;
        case 'R':
            c.reasons = 1;
            break;
        case 'd':
            c.decode_only = 1;
            break;
        case 'F':
            c.floor_file = optarg;
            break;
        case 'P':
            c.no_pin = 1;
            break;
        default:
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc) {
        usage();
        return 2;
    }
    if (c.n_suites == 0) {
        const char *all[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
        for (size_t i = 0; i < ARRAY_LEN(all); i++)
            c.suites[c.n_suites++] = all[i];
    }
    struct floors floors = {0};
    char err[512];
    if (c.floor_file && floors_load(&floors, c.floor_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "shmfaas-conformance: %s\n", err);
        return 2;
    }
    struct tally total = {0};
    struct reasons reasons = {0};
    int bad = 0;
    for (int i = 0; i < c.n_suites; i++) {
        int before = total.n[PASS];
        if (run_suite(&c, c.suites[i], &total, &reasons) != 0)
            bad = 1;
        if (!c.decode_only && floor_missed(&floors, c.suites[i], total.n[PASS] - before))
            bad = 1;
    }
    if (!c.decode_only)
        printf("total: %d passed (%d with pinned inputs), %d failed, %d unsupported\n",
               total.n[PASS], total.pinned, total.n[FAIL], total.n[UNSUPPORTED]);
    if (c.reasons)
        reasons_print(&reasons);
    else
        for (int i = 0; i < reasons.n; i++)
            free(reasons.text[i]);
    return bad || total.n[FAIL] > 0 ? 1 : 0;
}
