/*
 * shmfaas-run — compile an ONNX model (or map a plan image) and run it on JSON tensors.
 *
 *   shmfaas-run MODEL.onnx|IMAGE.plan [--input in.json] [--output out.json] [--threads N]
 *               [--shape [NAME=]DxDx..[;..]]... [--bench N] [--compare ref.json]
 *               [--pin NAME]... [--compile-only -o out.plan [--weights-out out.weights]]
 *               [--weights FILE] [--winograd auto|off|all] [-v]
 *
 * An .onnx file is compiled in this process for concrete input shapes: an input's symbolic dims
 * (batch, height, width) take the shape of --shape NAME=1x3x224x224 (NAME may be left out when
 * the model has one input), else the input's shape in --input. The plan records those shapes (-v
 * prints them); a run with other shapes fails naming the shape the plan expects. A
 * .plan file is mapped PROT_READ, verified and opened zero-copy, as instances do. Without --input
 * the model runs on zeros of its input shapes. An input that decides a shape (Reshape's shape,
 * Slice's starts, Resize's sizes, Range's bounds, ...) is, for a run, compiled as the constant
 * --input gives it (engine_compile_pinning finds which: -v says "pinned"), as a function resolves
 * it per request. --pin NAME pins input NAME so explicitly, which --compile-only needs: the plan
 * keeps it an input and refuses a run with other values, and a --compile-only refused because
 * such an operand is computed at run time names the --pin that would make it compile. Outputs go to
 * --output, or to stdout when neither --bench nor --compare is given.
 * --output and -o take "-" for stdout; a character device or FIFO (/dev/null) is written in place,
 * a regular file replaced atomically, a symlink refused (write_file_atomic in common.h).
 * --bench N runs N more times after the first run and prints "p50 X ms  p99 Y ms". --compare checks
 * the outputs against a reference file and fails when max|diff| > 1e-4 x max|ref|. -v prints
 * compile time, sizes and memory to stderr. --winograd picks where 3x3 convolutions run as
 * Winograd F(4x4,3x3): auto (large outputs, see engine.h), off, or all that qualify.
 *
 * --weights-out splits the compiled image: -o gets the plan part (header and tables), FILE its
 * weights blob (docs/plan-format.md "Plan parts"); --weights FILE runs such a pair (the part is
 * the .plan, the blob is checked against the size and SHA-256 the part records).
 *
 * Exit status: 0 success, 1 error, 2 usage, 3 outputs differ from --compare's reference.
 */
#include "engine/engine.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_USAGE        2
#define EXIT_MISMATCH     3
#define MAX_ONNX_BYTES    (UINT64_C(4) << 30)
#define MAX_JSON_BYTES    (UINT64_C(1) << 30)
#define COMPARE_TOLERANCE 1e-4
#define MAX_BENCH         1000000
#define MAX_SHAPE_OPTS    64
#define MAX_PIN_OPTS      64

struct run_config {
    const char *model;   /* .onnx or .plan */
    const char *input;   /* JSON inputs; NULL: zeros */
    const char *output;  /* JSON outputs; NULL: stdout unless bench/compare */
    const char *compare; /* reference outputs JSON */
    const char *plan_out;
    const char *weights_out; /* --weights-out: -o gets the plan part, this the blob */
    const char *weights;     /* --weights: the blob of the .plan part */
    int threads;  /* 0: the engine's default (1) */
    int winograd; /* ENGINE_WINOGRAD_* */
    int bench;
    struct engine_input_shape shapes[MAX_SHAPE_OPTS]; /* --shape; names point into shape_text */
    int n_shapes;
    char shape_text[4096];
    size_t shape_used;
    const char *pins[MAX_PIN_OPTS]; /* --pin NAME */
    int n_pins;
    bool compile_only;
    bool verbose;
};

/* Everything main() must release, in one place. */
struct run_state {
    void *image; /* compiled here (engine_image_free) ... */
    void *map;   /* ... or mapped from a .plan file (munmap) */
    size_t image_len;
    void *wmap; /* --weights: the blob, mapped (munmap) */
    size_t wlen;
    double compile_ms;
    struct engine_model *model;
    struct engine_session *session;
    struct engine_tensor_set inputs;
    struct engine_tensor *outputs;
    int n_outputs;
    bool mismatch; /* --compare found the outputs too far from the reference */
};

/* ================================================================ options */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shmfaas-run MODEL.onnx|IMAGE.plan [--input in.json] [--output out.json]\n"
            "                   [--threads N] [--shape [NAME=]DxDx..]... [--bench N]\n"
            "                   [--compare ref.json] [--pin NAME]... [--compile-only -o out.plan\n"
            "                   [--weights-out out.weights]] [--weights FILE]\n"
            "                   [--winograd auto|off|all] [-v]\n");
}

static int parse_count(const char *opt, const char *s, int max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max) {
        fprintf(stderr, "shmfaas-run: %s wants an integer from 1 to %d, got \"%s\"\n", opt, max, s);
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

/* One --shape: "[NAME=]DxDx..[;..]" (engine_shapes_parse); names live in c->shape_text. */
static int add_shape(struct run_config *c, const char *arg)
{
    char err[256];
    size_t room = sizeof(c->shape_text) - c->shape_used;
    int n = engine_shapes_parse(arg, c->shape_text + c->shape_used, room, c->shapes + c->n_shapes,
                                MAX_SHAPE_OPTS - c->n_shapes, err, sizeof err);

    if (n < 0) {
        fprintf(stderr, "shmfaas-run: --shape %s: %s\n", arg, err);
        return -EINVAL;
    }
    c->shape_used += strlen(arg) + 1;
    c->n_shapes += n;
    return 0;
}

static bool is_plan_path(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcmp(path + n - 5, ".plan");
}

static int check_config(const struct run_config *c)
{

    if (c->compile_only && c->plan_out == NULL) {
        fprintf(stderr, "shmfaas-run: --compile-only needs -o out.plan\n");
        return -EINVAL;
    }
    if (c->weights_out && !c->compile_only) {
        fprintf(stderr, "shmfaas-run: --weights-out splits the image of --compile-only\n");
        return -EINVAL;
    }
    if (c->weights && !is_plan_path(c->model)) {
        fprintf(stderr, "shmfaas-run: --weights is the blob of a .plan part\n");
        return -EINVAL;
    }
    if (c->plan_out && !c->compile_only) {
        fprintf(stderr, "shmfaas-run: -o is the image file of --compile-only\n");
        return -EINVAL;
    }
    if (c->n_shapes && is_plan_path(c->model)) {
        fprintf(stderr, "shmfaas-run: --shape is a compile option; %s is compiled already\n",
                c->model);
        return -EINVAL;
    }
    if (c->n_pins && (is_plan_path(c->model) || c->input == NULL)) {
        fprintf(stderr,
                "shmfaas-run: --pin compiles an input of an ONNX model to the value --input "
                "gives it: it needs an .onnx model and --input\n");
        return -EINVAL;
    }
    if (c->compile_only && is_plan_path(c->model)) {
        fprintf(stderr, "shmfaas-run: --compile-only compiles an ONNX model, %s is a plan\n",
                c->model);
        return -EINVAL;
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct run_config *c)
{
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'O'},
        {"threads", required_argument, NULL, 't'},
        {"shape", required_argument, NULL, 's'},
        {"bench", required_argument, NULL, 'b'},
        {"compare", required_argument, NULL, 'c'},
        {"compile-only", no_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},
        {"pin", required_argument, NULL, 'P'},
        {"winograd", required_argument, NULL, 'W'},
        {"weights", required_argument, NULL, 'w'},
        {"weights-out", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "i:O:t:s:b:c:o:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i':
            c->input = optarg;
            break;
        case 'O':
            c->output = optarg;
            break;
        case 'c':
            c->compare = optarg;
            break;
        case 'o':
            c->plan_out = optarg;
            break;
        case 'C':
            c->compile_only = true;
            break;
        case 'w':
            c->weights = optarg;
            break;
        case 'X':
            c->weights_out = optarg;
            break;
        case 'v':
            c->verbose = true;
            break;
        case 't':
            if (parse_count("--threads", optarg, 1024, &c->threads) < 0)
                return -EINVAL;
            break;
        case 's':
            if (add_shape(c, optarg) < 0)
                return -EINVAL;
            break;
        case 'P':
            if (c->n_pins == MAX_PIN_OPTS) {
                fprintf(stderr, "shmfaas-run: more than %d --pin options\n", MAX_PIN_OPTS);
                return -EINVAL;
            }
            c->pins[c->n_pins++] = optarg;
            break;
        case 'W':
            c->winograd = strcmp(optarg, "auto") == 0  ? ENGINE_WINOGRAD_AUTO
                          : strcmp(optarg, "off") == 0 ? ENGINE_WINOGRAD_OFF
                          : strcmp(optarg, "all") == 0 ? ENGINE_WINOGRAD_ALL
                                                       : -1;
            if (c->winograd < 0) {
                fprintf(stderr, "shmfaas-run: --winograd takes auto, off or all\n");
                return -EINVAL;
            }
            break;
        case 'b':
            if (parse_count("--bench", optarg, MAX_BENCH, &c->bench) < 0)
                return -EINVAL;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "shmfaas-run: %s\n",
                optind < argc ? "one model, please" : "no model given");
        return -EINVAL;
    }
    c->model = argv[optind];
    return check_config(c);
}

/* ================================================================ loading the model */

static int read_inputs(const struct run_config *c, struct run_state *st, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    char e[512];
    int rc;

    if (c->input == NULL)
        return 0;
    rc = read_file(c->input, MAX_JSON_BYTES, &buf, &len, e, sizeof e);
    if (rc < 0)
        return seterr(err, errlen, rc, "%s", e);
    rc = engine_tensors_from_json((const char *)buf, len, "inputs", &st->inputs, e, sizeof e);
    free(buf);
    if (rc < 0)
        return seterr(err, errlen, rc, "%s: %s", c->input, e);
    return 0;
}

/* The shapes to compile for: --shape first (the engine takes the first match), then --input's. */
static int compile_shapes(const struct run_config *c, const struct run_state *st,
                          struct engine_input_shape *shapes, int max)
{
    int n = 0;

    for (int i = 0; i < c->n_shapes && n < max; i++)
        shapes[n++] = c->shapes[i];
    for (int i = 0; i < st->inputs.n && n < max; i++)
        shapes[n++] = (struct engine_input_shape){st->inputs.t[i].name, st->inputs.t[i].shape};
    return n;
}

static const struct engine_tensor *input_named(const struct run_state *st, const char *name)
{
    for (int i = 0; i < st->inputs.n; i++)
        if (st->inputs.t[i].name && strcmp(st->inputs.t[i].name, name) == 0)
            return &st->inputs.t[i];
    return NULL;
}

/* --pin's inputs, with the values --input gives them. */
static int compile_pins(const struct run_config *c, const struct run_state *st,
                        struct engine_tensor *pins, char *err, size_t errlen)
{
    for (int i = 0; i < c->n_pins; i++) {
        const struct engine_tensor *t = input_named(st, c->pins[i]);
        if (t == NULL)
            return seterr(err, errlen, -EINVAL, "--pin %s: %s has no input named %s", c->pins[i],
                          c->input, c->pins[i]);
        pins[i] = *t;
    }
    return c->n_pins;
}

/* After a --compile-only refused for an operand computed at run time: the --input tensors that,
 * pinned as well, make the model compile (engine_compile_pinning's smallest set), appended to err
 * as "--pin NAME" advice. Pins nothing itself. */
static void advise_pins(const void *onnx, size_t len, const struct engine_compile_opts *opts,
                        const struct run_state *st, char *err, size_t errlen)
{
    int *flags = calloc((size_t)st->inputs.n + 1, sizeof(int));
    void *image;
    size_t image_len, used = strlen(err);
    char e[512];

    if (flags && engine_compile_pinning(onnx, len, opts, st->inputs.t, st->inputs.n, flags, &image,
                                        &image_len, e, sizeof e) == 0) {
        engine_image_free(image);
        for (int i = 0, n = 0; i < st->inputs.n && used < errlen; i++)
            if (flags[i])
                used += (size_t)snprintf(err + used, errlen - used, "%s--pin %s",
                                         n++ ? " " : "; to compile for --input's value, add ",
                                         st->inputs.t[i].name);
    }
    free(flags);
}

static int compile_onnx(const struct run_config *c, struct run_state *st, char *err, size_t errlen)
{
    struct engine_tensor pins[MAX_PIN_OPTS + 1];
    struct engine_input_shape shapes[MAX_SHAPE_OPTS + 256];
    struct engine_compile_opts opts = {.threads = c->threads, .winograd = c->winograd};
    char *dir_copy = strdup(c->model), *name_copy = strdup(c->model);
    uint8_t *onnx = NULL;
    size_t len = 0;
    int64_t t0;
    int rc;

    if (dir_copy == NULL || name_copy == NULL) {
        rc = seterr(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    rc = read_file(c->model, MAX_ONNX_BYTES, &onnx, &len, err, errlen);
    if (rc < 0)
        goto out;
    opts.shapes = shapes;
    opts.n_shapes = compile_shapes(c, st, shapes, (int)ARRAY_LEN(shapes));
    opts.pins = pins;
    rc = compile_pins(c, st, pins, err, errlen);
    if (rc < 0)
        goto out;
    opts.n_pins = rc;
    opts.base_dir = dirname(dir_copy);
    opts.model_name = basename(name_copy);
    t0 = now_ns();
    if (c->compile_only || st->inputs.n == 0) {
        rc = engine_compile(onnx, len, &opts, &st->image, &st->image_len, err, errlen);
    } else {
        /* a run: the request's values decide its shape operands, as they do for a function */
        int *flags = calloc((size_t)st->inputs.n, sizeof(int));
        rc = flags ? engine_compile_pinning(onnx, len, &opts, st->inputs.t, st->inputs.n, flags,
                                            &st->image, &st->image_len, err, errlen)
                   : seterr(err, errlen, -ENOMEM, "out of memory");
        free(flags);
    }
    st->compile_ms = (double)(now_ns() - t0) / 1e6;
    if (rc < 0 && strstr(err, "symbolic dim") && opts.n_shapes == 0) {
        size_t used = strlen(err);
        snprintf(err + used, errlen - used, " (--shape NAME=DxDx.. or --input)");
    }
    if (rc < 0 && c->compile_only && strstr(err, "constant")) /* "must be a constant", ... */
        advise_pins(onnx, len, &opts, st, err, errlen);
out:
    free(onnx);
    free(dir_copy);
    free(name_copy);
    return rc;
}

/* A file mapped exactly as instances map images: read-only, shared, never written. */
static int map_file(const char *path, void **map, size_t *len, char *err, size_t errlen)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0) {
        rc = seterr(err, errlen, -EINVAL, "%s: not a non-empty regular file", path);
        goto out;
    }
    *len = (size_t)sb.st_size;
    *map = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
    if (*map == MAP_FAILED) {
        *map = NULL;
        rc = seterr(err, errlen, -errno, "%s: mmap: %s", path, strerror(errno));
    }
out:
    close(fd);
    return rc;
}

/* The .plan (and its --weights blob), verified as the store verifies what it adopts. */
static int map_plan(const struct run_config *c, struct run_state *st, char *err, size_t errlen)
{
    int rc = map_file(c->model, &st->map, &st->image_len, err, errlen);
    if (rc == 0)
        rc = engine_image_verify(st->map, st->image_len, err, errlen);
    if (rc == 0 && c->weights) {
        rc = map_file(c->weights, &st->wmap, &st->wlen, err, errlen);
        if (rc == 0)
            rc = engine_weights_verify(st->map, st->image_len, st->wmap, st->wlen, err, errlen);
    }
    return rc;
}

static int write_result(const char *path, const void *data, size_t len, char *err,
                        size_t errlen);

/* --compile-only: the image, or with --weights-out its plan part to -o and its blob. */
static int write_plan(const struct run_config *c, const struct run_state *st, char *err,
                      size_t errlen)
{
    struct engine_weights_ref w;
    void *part = NULL;
    size_t part_len = 0;
    if (!c->weights_out)
        return write_result(c->plan_out, st->image, st->image_len, err, errlen);
    int rc = engine_image_weights(st->image, st->image_len, &w, err, errlen);
    if (rc == 0)
        rc = engine_image_split(st->image, st->image_len, &part, &part_len, err, errlen);
    if (rc == 0)
        rc = write_result(c->weights_out, (const uint8_t *)st->image + w.offset, w.size, err,
                          errlen);
    if (rc == 0)
        rc = write_result(c->plan_out, part, part_len, err, errlen);
    engine_image_free(part);
    return rc;
}

static int load_model(const struct run_config *c, struct run_state *st, char *err, size_t errlen)
{
    const void *image;
    int rc;

    rc = is_plan_path(c->model) ? map_plan(c, st, err, errlen)
                                : compile_onnx(c, st, err, errlen);
    if (rc < 0)
        return rc;
    if (c->compile_only)
        return 0;
    image = st->map ? st->map : st->image;
    rc = engine_model_open_parts(image, st->image_len, st->wmap, st->wlen, &st->model, err,
                                 errlen);
    if (rc < 0)
        return rc;
    if (c->threads && engine_model_threads(st->model) != c->threads)
        return seterr(err, errlen, -EINVAL,
                      "%s was compiled for %d thread(s), --threads %d asked: recompile it",
                      c->model, engine_model_threads(st->model), c->threads);
    return 0;
}

/* ================================================================ running */

/* Without --input: zeros of every input the model declares. */
static int zero_inputs(struct run_state *st, char *err, size_t errlen)
{
    int n = engine_model_n_inputs(st->model);
    struct engine_tensor_info info;

    st->inputs.t = calloc(n > 0 ? (size_t)n : 1, sizeof(*st->inputs.t));
    if (st->inputs.t == NULL)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        struct engine_tensor *t = &st->inputs.t[i];
        if (engine_model_input(st->model, i, &info) < 0)
            return seterr(err, errlen, -EINVAL, "model input %d unreadable", i);
        if (engine_shape_numel(&info.shape) < 0)
            return seterr(err, errlen, -EINVAL, "input %s has no fixed shape: give --input",
                          info.name);
        st->inputs.n++;
        t->name = strdup(info.name);
        t->dtype = info.dtype;
        t->shape = info.shape;
        t->nbytes = (size_t)engine_shape_numel(&info.shape) * engine_dtype_size(info.dtype);
        t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
        if (t->name == NULL || t->data == NULL)
            return seterr(err, errlen, -ENOMEM, "out of memory for input %s", info.name);
    }
    return 0;
}

static int run_once(struct run_state *st, char *err, size_t errlen)
{
    return engine_session_run(st->session, st->inputs.t, st->inputs.n, st->outputs, st->n_outputs,
                              err, errlen);
}

static int start_session(struct run_state *st, char *err, size_t errlen)
{
    int rc;

    if (st->inputs.t == NULL && (rc = zero_inputs(st, err, errlen)) < 0)
        return rc;
    st->n_outputs = engine_model_n_outputs(st->model);
    st->outputs = calloc(st->n_outputs > 0 ? (size_t)st->n_outputs : 1, sizeof(*st->outputs));
    if (st->outputs == NULL)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    return engine_session_create(st->model, &st->session, err, errlen);
}

/* Output names from the model when the engine left them out. */
static void name_outputs(struct run_state *st)
{
    struct engine_tensor_info info;

    for (int i = 0; i < st->n_outputs; i++)
        if (st->outputs[i].name == NULL && engine_model_output(st->model, i, &info) == 0)
            st->outputs[i].name = info.name;
}

/* ================================================================ bench */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The first run was the warm-up; n more, timed one by one. */
static int bench(struct run_state *st, int n, char *err, size_t errlen)
{
    double *ms = calloc((size_t)n, sizeof(double));
    int rc = 0;

    if (ms == NULL)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t t0 = now_ns();
        rc = run_once(st, err, errlen);
        ms[i] = (double)(now_ns() - t0) / 1e6;
    }
    if (rc == 0) {
        qsort(ms, (size_t)n, sizeof(double), cmp_double);
        printf("p50 %.3f ms  p99 %.3f ms\n", ms[(n - 1) / 2], ms[(int)ceil(0.99 * n) - 1]);
    }
    free(ms);
    return rc;
}

/* ================================================================ compare */

static double element(const struct engine_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ENGINE_F32:
        return ((const float *)t->data)[i];
    case ENGINE_U8:
    case ENGINE_BOOL:
        return ((const uint8_t *)t->data)[i];
    case ENGINE_I8:
        return ((const int8_t *)t->data)[i];
    case ENGINE_I32:
        return ((const int32_t *)t->data)[i];
    case ENGINE_I64:
        return (double)((const int64_t *)t->data)[i];
    default:
        return NAN;
    }
}

static const struct engine_tensor *find_ref(const struct engine_tensor_set *ref,
                                            const struct engine_tensor *out, int n_outputs)
{
    for (int i = 0; i < ref->n; i++)
        if (out->name && !strcmp(ref->t[i].name, out->name))
            return &ref->t[i];
    return ref->n == 1 && n_outputs == 1 ? &ref->t[0] : NULL;
}

/* Accumulates max|out - ref| and max|ref| over one output; NaN anywhere makes diff NaN. */
static int compare_tensor(const struct engine_tensor *out, const struct engine_tensor *ref,
                          double *max_diff, double *max_ref, char *err, size_t errlen)
{
    char a[96], b[96];
    int64_t n = engine_shape_numel(&out->shape);

    if (n != engine_shape_numel(&ref->shape))
        return seterr(err, errlen, -EINVAL, "output %s has shape %s, reference %s", out->name,
                      engine_shape_str(&out->shape, a, sizeof a),
                      engine_shape_str(&ref->shape, b, sizeof b));
    for (int64_t i = 0; i < n; i++) {
        double o = element(out, (size_t)i), r = element(ref, (size_t)i);
        double d = fabs(o - r);
        if (isnan(d))
            *max_diff = NAN; /* and stays NaN: d > NaN is false */
        else if (d > *max_diff)
            *max_diff = d;
        if (fabs(r) > *max_ref)
            *max_ref = fabs(r);
    }
    return 0;
}

static int compare(struct run_state *st, const char *path, char *err, size_t errlen)
{
    struct engine_tensor_set ref = {0};
    double max_diff = 0, max_ref = 0;
    uint8_t *buf;
    size_t len;
    char e[512];
    int rc;

    rc = read_file(path, MAX_JSON_BYTES, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = engine_tensors_from_json((const char *)buf, len, "outputs", &ref, e, sizeof e);
    free(buf);
    if (rc < 0)
        return seterr(err, errlen, rc, "%s: %s", path, e);
    for (int i = 0; i < st->n_outputs && rc == 0; i++) {
        const struct engine_tensor *r = find_ref(&ref, &st->outputs[i], st->n_outputs);
        if (r == NULL)
            rc = seterr(err, errlen, -ENOENT, "%s has no output %s", path, st->outputs[i].name);
        else
            rc = compare_tensor(&st->outputs[i], r, &max_diff, &max_ref, err, errlen);
    }
    engine_tensor_set_free(&ref);
    if (rc < 0)
        return rc;
    printf("max|diff| %.3g  max|ref| %.4g  rel %.3g  (limit %.0e)\n", max_diff, max_ref,
           max_ref > 0 ? max_diff / max_ref : max_diff, COMPARE_TOLERANCE);
    st->mismatch = !(max_diff <= COMPARE_TOLERANCE * max_ref);
    if (st->mismatch)
        return seterr(err, errlen, -EDOM, "outputs differ from %s: max|diff| %.3g > %.0e x %.4g",
                      path, max_diff, COMPARE_TOLERANCE, max_ref);
    return 0;
}

/* ================================================================ results */

/* --output and -o: "-" is stdout; any other name goes through write_file_atomic(), which writes a
 * device or FIFO (/dev/null) in place, replaces a regular file and refuses a symlink. */
static int write_result(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    if (strcmp(path, "-"))
        return write_file_atomic(path, data, len, 0644, err, errlen);
    if (fwrite(data, 1, len, stdout) != len || fflush(stdout) == EOF)
        return seterr(err, errlen, -EIO, "stdout: %s", strerror(errno));
    return 0;
}

static int write_outputs(const struct run_config *c, const struct run_state *st, char *err,
                         size_t errlen)
{
    char *json;
    int rc = 0;

    if (c->output == NULL && (c->bench || c->compare))
        return 0;
    json = engine_tensors_to_json(st->outputs, st->n_outputs, "outputs");
    if (json == NULL)
        return seterr(err, errlen, -ENOMEM, "cannot write the outputs as JSON");
    rc = write_result(c->output ? c->output : "-", json, strlen(json), err, errlen);
    free(json);
    return rc;
}

/* The shapes the plan was compiled for: "input NAME float32 [1,3,224,224]". */
static void report_inputs(const struct engine_model *m)
{
    struct engine_tensor_info info;
    char s[128];

    for (int i = 0; i < engine_model_n_inputs(m); i++)
        if (engine_model_input(m, i, &info) == 0)
            fprintf(stderr, "input %s %s %s%s\n", info.name, engine_dtype_name(info.dtype),
                    engine_shape_str(&info.shape, s, sizeof s),
                    engine_model_input_pinned(m, i, NULL, NULL) == 1 ? " pinned" : "");
}

static void report(const struct run_config *c, const struct run_state *st)
{
    struct proc_mem pm = {0};
    struct rusage ru;
    char a[32], b[32], d[32], e[32];

    if (!c->verbose)
        return;
    if (st->image)
        fprintf(stderr, "compile %.1f ms  image %s\n", st->compile_ms,
                format_size(st->image_len, a, sizeof a));
    if (st->model) {
        fprintf(stderr, "arena %s  weights %s  threads %d\n",
                format_size(engine_model_arena_size(st->model), a, sizeof a),
                format_size(engine_model_weights_size(st->model), b, sizeof b),
                engine_model_threads(st->model));
        report_inputs(st->model);
    }
    getrusage(RUSAGE_SELF, &ru);
    if (proc_mem_read(getpid(), &pm) == 0)
        fprintf(stderr, "rss %s  pss %s  private %s  peak rss %s\n",
                format_size(pm.rss, a, sizeof a), format_size(pm.pss, b, sizeof b),
                format_size(proc_mem_uss(&pm), d, sizeof d),
                format_size((uint64_t)ru.ru_maxrss << 10, e, sizeof e));
}

static void release(struct run_state *st)
{
    if (st->session)
        engine_session_destroy(st->session);
    if (st->model)
        engine_model_close(st->model);
    if (st->map)
        munmap(st->map, st->image_len);
    if (st->wmap)
        munmap(st->wmap, st->wlen);
    if (st->image)
        engine_image_free(st->image);
    engine_tensor_set_free(&st->inputs);
    free(st->outputs);
}

/* ================================================================ main */

static int run(const struct run_config *c, struct run_state *st, char *err, size_t errlen)
{
    int rc;

    if ((rc = read_inputs(c, st, err, errlen)) < 0 || (rc = load_model(c, st, err, errlen)) < 0)
        return rc;
    if (c->compile_only)
        return write_plan(c, st, err, errlen);
    if ((rc = start_session(st, err, errlen)) < 0 || (rc = run_once(st, err, errlen)) < 0)
        return rc;
    if (c->bench && (rc = bench(st, c->bench, err, errlen)) < 0)
        return rc;
    name_outputs(st);
    if ((rc = write_outputs(c, st, err, errlen)) < 0)
        return rc;
    return c->compare ? compare(st, c->compare, err, errlen) : 0;
}

int main(int argc, char **argv)
{
    struct run_config c = {0};
    struct run_state st = {0};
    char err[1024] = "";
    int rc;

    if (parse_options(argc, argv, &c) < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    rc = run(&c, &st, err, sizeof err);
    if (rc == 0 || st.mismatch)
        report(&c, &st);
    if (rc < 0)
        fprintf(stderr, "shmfaas-run: %s\n", err);
    release(&st);
    if (st.mismatch)
        return EXIT_MISMATCH;
    return rc == 0 ? 0 : 1;
}
