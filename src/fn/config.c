/*
 * shmfaas-fn configuration: the env vars an OpenFaaS function's `environment` / `envVars` (or a
 * Knative revision) sets, then command-line flags, which win. Every error names the variable.
 */
#include "fn/fn.h"

#include "common/confine.h"
#include "common/fnenv.h"
#include "common/modelref.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LABELS_FILE ((size_t)64 << 20)

/* Every variable read here is a row of the envVars allow-list (common/fnenv.h): a new setting
 * without its row fails the first test that runs an instance. */
static const char *env(const char *name)
{
    assert(fn_env_key_known(name));
    return getenv(name);
}

static int env_choice(const char *name, const char *const *choices, int n, int *out, char *err,
                      size_t errlen)
{
    const char *v = env(name);
    if (!v || !*v)
        return 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return seterr(err, errlen, -EINVAL, "%s=%s: expected %s%s%s%s%s", name, v, choices[0],
                  n > 1 ? " or " : "", n > 1 ? choices[1] : "", n > 2 ? " or " : "",
                  n > 2 ? choices[2] : "");
}

static int parse_int(const char *what, const char *v, long min, long max, int *out, char *err,
                     size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max)
        return seterr(err, errlen, -EINVAL, "%s=%s: expected a whole number %ld-%ld", what, v, min,
                      max);
    *out = (int)n;
    return 0;
}

static int env_int(const char *name, long min, long max, int *out, char *err, size_t errlen)
{
    const char *v = env(name);
    return v && *v ? parse_int(name, v, min, max, out, err, errlen) : 0;
}

static int env_duration(const char *name, int64_t *out, char *err, size_t errlen)
{
    const char *v = env(name);
    if (!v || !*v)
        return 0;
    if (parse_duration_ms(v, out) < 0 || *out < 0)
        return seterr(err, errlen, -EINVAL,
                      "%s=%s: expected a duration such as 30s, 1m30s, 250ms or a number of seconds",
                      name, v);
    return 0;
}

static int env_floats3(const char *name, float out[3], char *err, size_t errlen)
{
    const char *v = env(name);
    if (!v || !*v)
        return 0;
    float f[3];
    char tail;
    if (sscanf(v, "%f,%f,%f%c", &f[0], &f[1], &f[2], &tail) != 3)
        return seterr(err, errlen, -EINVAL, "%s=%s: expected three comma-separated numbers (R,G,B)",
                      name, v);
    memcpy(out, f, sizeof(f));
    return 0;
}

static int env_float(const char *name, double min, double max, float *out, char *err, size_t errlen)
{
    const char *v = env(name);
    if (!v || !*v)
        return 0;
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (*end || errno || !(d >= min && d <= max))
        return seterr(err, errlen, -EINVAL, "%s=%s: expected a number %g-%g", name, v, min, max);
    *out = (float)d;
    return 0;
}

static int env_size(const char *name, uint64_t *out, char *err, size_t errlen)
{
    const char *v = env(name);
    if (v && *v && (parse_size(v, out) < 0 || *out == 0))
        return seterr(err, errlen, -EINVAL, "%s=%s: expected a size such as 16Mi, 1G or 4096", name,
                      v);
    return 0;
}

static void set_defaults(struct fn_config *c)
{
    *c = (struct fn_config){
        .store_path = FN_DEFAULT_STORE,
        .threads = 1,
        .max_inflight = 1,
        .exec_timeout_ms = 30000,
        .read_timeout_ms = 30000,
        .write_timeout_ms = 30000,
        .idle_release_ms = 1000,
        .max_body = (size_t)16 << 20,
        .log_level = LOG_WARN,
        .ready_fd = -1,
    };
    c->codec.topk = 5;
    fn_image_opts_default(&c->codec.image);
    fn_boxes_opts_default(&c->codec.boxes);
    snprintf(c->listen, sizeof(c->listen), ":8080");
}

/* output=boxes (boxes.c) and the image layout and fit it usually comes with. */
static int load_boxes_env(struct fn_config *c, char *err, size_t errlen)
{
    static const char *const layouts[] = {"nchw", "nhwc"};
    static const char *const fits[] = {"crop", "letterbox"};
    static const char *const formats[] = {"ssd", "corners"};
    static const char *const nms[] = {"hard", "weighted"};
    static const char *const bools[] = {"true", "false"};
    struct fn_boxes_opts *b = &c->codec.boxes;
    int layout = c->codec.image.nhwc, format = (int)b->format, kind = (int)b->nms,
        sig = !b->sigmoid;
    int fit = c->codec.image.letterbox;
    int rc = env_choice("image_layout", layouts, 2, &layout, err, errlen);
    if (!rc)
        rc = env_choice("image_fit", fits, 2, &fit, err, errlen);
    if (!rc)
        rc = env_choice("boxes_format", formats, 2, &format, err, errlen);
    if (!rc)
        rc = env_choice("nms", nms, 2, &kind, err, errlen);
    if (!rc)
        rc = env_choice("score_sigmoid", bools, 2, &sig, err, errlen);
    if (!rc)
        rc = env_float("score_threshold", 0, 1, &b->score_threshold, err, errlen);
    if (!rc)
        rc = env_float("iou_threshold", 0, 1, &b->iou_threshold, err, errlen);
    if (!rc)
        rc = env_float("box_scale", 0, 1e6, &b->box_scale, err, errlen);
    if (!rc)
        rc = env_int("max_boxes", 1, FN_BOXES_MAX, &b->max_boxes, err, errlen);
    if (!rc && env("anchors") && *env("anchors"))
        rc = fn_boxes_parse_anchors(env("anchors"), b, err, errlen);
    c->codec.image.nhwc = layout == 1;
    c->codec.image.letterbox = fit == 1;
    b->format = (enum fn_boxes_format)format;
    b->nms = (enum fn_boxes_nms)kind;
    b->sigmoid = sig == 0;
    if (!rc && c->codec.output == FN_OUT_BOXES && b->format == FN_BOXES_SSD && b->n_layers == 0)
        rc = seterr(err, errlen, -EINVAL,
                    "output=boxes with boxes_format=ssd needs anchors (BlazeFace: "
                    "anchors=16x16x2,8x8x6)");
    return rc;
}

static int load_codec_env(struct fn_config *c, char *err, size_t errlen)
{
    static const char *const inputs[] = {"json", "image", "raw"};
    static const char *const outputs[] = {"json", "topk", "boxes"};
    static const char *const softmax[] = {"auto", "true", "false"};
    int in = (int)c->codec.input, out = (int)c->codec.output, sm = (int)c->codec.softmax;
    uint64_t max_pixels = c->codec.image.max_pixels;
    int rc = env_choice("input", inputs, 3, &in, err, errlen);
    if (!rc)
        rc = env_choice("output", outputs, 3, &out, err, errlen);
    if (!rc)
        rc = env_choice("softmax", softmax, 3, &sm, err, errlen);
    if (!rc)
        rc = env_int("image_size", 1, 8192, &c->codec.image.size, err, errlen);
    if (!rc)
        rc = env_int("topk", 1, 1000000, &c->codec.topk, err, errlen);
    if (!rc)
        rc = env_floats3("mean", c->codec.image.mean, err, errlen);
    if (!rc)
        rc = env_floats3("std", c->codec.image.std, err, errlen);
    if (!rc)
        rc = env_size("max_pixels", &max_pixels, err, errlen);
    for (int i = 0; !rc && i < 3; i++)
        if (!(c->codec.image.std[i] > 0))
            rc = seterr(err, errlen, -EINVAL, "std: every value must be > 0");
    c->codec.input = (enum fn_input)in;
    c->codec.output = (enum fn_output)out;
    c->codec.softmax = (enum fn_softmax)sm;
    c->codec.image.max_pixels = max_pixels;
    c->labels_path = env("labels");
    return rc ? rc : load_boxes_env(c, err, errlen);
}

static int load_env(struct fn_config *c, char *err, size_t errlen)
{
    const char *port = env("PORT");
    if (port && *port) {
        int p = 0;
        int rc = parse_int("PORT", port, 0, 65535, &p, err, errlen);
        if (rc < 0)
            return rc;
        snprintf(c->listen, sizeof(c->listen), ":%d", p);
    }
    if (env("model") && *env("model"))
        c->model_ref = env("model");
    if (env("store_socket") && *env("store_socket"))
        c->store_path = env("store_socket");
    uint64_t max_body = c->max_body;
    const char *lvl = env("log_level");
    if (lvl && *lvl && log_parse_level(lvl, &c->log_level) < 0)
        return seterr(err, errlen, -EINVAL,
                      "log_level=%s: expected debug, info, warn, error or off", lvl);
    if (env("input_shape") && *env("input_shape"))
        c->input_shape = env("input_shape");
    int rc = env_int("threads", 1, 1024, &c->threads, err, errlen);
    if (!rc)
        rc = env_int("max_inflight", 0, 1000000, &c->max_inflight, err, errlen);
    if (!rc)
        rc = env_duration("exec_timeout", &c->exec_timeout_ms, err, errlen);
    if (!rc)
        rc = env_duration("read_timeout", &c->read_timeout_ms, err, errlen);
    if (!rc)
        rc = env_duration("write_timeout", &c->write_timeout_ms, err, errlen);
    if (!rc)
        rc = env_duration("idle_release", &c->idle_release_ms, err, errlen);
    if (!rc)
        rc = env_size("max_body", &max_body, err, errlen);
    if (!rc && max_body > SIZE_MAX / 2)
        rc = seterr(err, errlen, -EINVAL, "max_body: too large");
    c->max_body = (size_t)max_body;
    return rc ? rc : load_codec_env(c, err, errlen);
}

static const char usage[] =
    "usage: shmfaas-fn [--model REF | --private FILE] [--store PATH] [--listen "
    "unix:PATH|HOST:PORT]\n"
    "                  [--threads N] [--labels FILE] [--models DIR] [--log-level LEVEL]\n"
    "                  [--ready-fd N] [--template]\n"
    "env: PORT model store_socket threads input_shape input=json|image|raw\n"
    "     output=json|topk|boxes image_size image_layout=nchw|nhwc image_fit=crop|letterbox\n"
    "     mean std max_pixels topk\n"
    "     softmax=auto|true|false labels boxes_format=ssd|corners anchors box_scale\n"
    "     score_threshold iou_threshold max_boxes nms=hard|weighted score_sigmoid max_inflight\n"
    "     exec_timeout read_timeout write_timeout idle_release max_body log_level";

static int load_flags(struct fn_config *c, int argc, char **argv, char *err, size_t errlen)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"private", required_argument, NULL, 'p'},
        {"store", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"labels", required_argument, NULL, 'L'},
        {"models", required_argument, NULL, 'M'},
        {"log-level", required_argument, NULL, 'v'},
        {"ready-fd", required_argument, NULL, 'r'},
        {"template", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int ch, rc = 0;
    while (rc == 0 && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            c->model_ref = optarg;
            break;
        case 'p':
            c->private_path = optarg;
            break;
        case 's':
            c->store_path = optarg;
            break;
        case 'L':
            c->labels_path = optarg;
            break;
        case 'M':
            c->models_dir = optarg;
            break;
        case 'l':
            if (strlen(optarg) >= sizeof(c->listen))
                return seterr(err, errlen, -EINVAL, "--listen %s: too long", optarg);
            snprintf(c->listen, sizeof(c->listen), "%s", optarg);
            break;
        case 't':
            rc = parse_int("--threads", optarg, 1, 1024, &c->threads, err, errlen);
            break;
        case 'r':
            rc = parse_int("--ready-fd", optarg, 3, 1 << 20, &c->ready_fd, err, errlen);
            break;
        case 'T':
            c->template_mode = true;
            break;
        case 'v':
            if (log_parse_level(optarg, &c->log_level) < 0)
                rc = seterr(err, errlen, -EINVAL,
                            "--log-level %s: expected debug, info, warn, "
                            "error or off",
                            optarg);
            break;
        default:
            return seterr(err, errlen, -EINVAL, "%s", usage);
        }
    }
    if (rc == 0 && optind < argc)
        rc = seterr(err, errlen, -EINVAL, "unexpected argument %s\n%s", argv[optind], usage);
    return rc;
}

/* input_shape: parsed here so a typo fails at start with the variable's name. */
static int load_input_shape(struct fn_config *c, char *err, size_t errlen)
{
    char why[256];
    size_t plen = c->private_path ? strlen(c->private_path) : 0;

    if (!c->input_shape)
        return 0;
    if (plen > 5 && strcmp(c->private_path + plen - 5, ".plan") == 0)
        return seterr(err, errlen, -EINVAL,
                      "input_shape=%s: %s is a compiled plan; its shapes are fixed already",
                      c->input_shape, c->private_path);
    int n = engine_shapes_parse(c->input_shape, c->shape_text, sizeof(c->shape_text), c->shapes,
                                (int)ARRAY_LEN(c->shapes), why, sizeof(why));
    if (n < 0)
        return seterr(err, errlen, n, "input_shape=%s: %s", c->input_shape, why);
    c->n_shapes = n;
    return 0;
}

/* With --models, --private names a model ref (a name or an absolute path) that must resolve to a
 * regular file inside the models directory, by the rules the store applies to an attach. */
static int resolve_private(struct fn_config *c, char *err, size_t errlen)
{
    struct model_ref r;
    char file[MODEL_REF_MAX + 8], why[512];

    if (!c->private_path || !c->models_dir)
        return 0;
    int rc = model_ref_parse(c->private_path, strlen(c->private_path), &r, why, sizeof(why));
    if (rc == 0 && (r.kind == MODEL_REF_HASH || r.shapes[0]))
        rc = seterr(why, sizeof(why), -EINVAL,
                    "a private model is a file: a model name or a path, without '?' shapes "
                    "(use input_shape)");
    if (rc == 0 && (rc = model_ref_file(&r, file, sizeof(file))) < 0)
        snprintf(why, sizeof(why), "too long");
    if (rc < 0)
        return seterr(err, errlen, rc, "--private: %s", why);
    int fd = confine_open(c->models_dir, "models", file, O_RDONLY, c->private_real,
                          sizeof(c->private_real), why, sizeof(why));
    if (fd < 0)
        return seterr(err, errlen, fd, "--private: %s", why);
    close(fd);
    c->private_path = c->private_real;
    return 0;
}

static int load_labels(struct fn_config *c, char *err, size_t errlen)
{
    if (!c->labels_path || !*c->labels_path)
        return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    char why[512];
    int rc = c->models_dir
                 ? confine_read_file(c->models_dir, "models", c->labels_path, MAX_LABELS_FILE, &buf,
                                     &len, why, sizeof(why))
                 : read_file(c->labels_path, MAX_LABELS_FILE, &buf, &len, why, sizeof(why));
    if (rc < 0)
        return seterr(err, errlen, rc, "labels: %s", why);
    rc = fn_labels_parse(buf, len, &c->codec.labels, why, sizeof(why));
    free(buf);
    return rc < 0 ? seterr(err, errlen, rc, "%s: %s", c->labels_path, why) : 0;
}

int fn_config_load(struct fn_config *c, int argc, char **argv, char *err, size_t errlen)
{
    set_defaults(c);
    int rc = load_env(c, err, errlen);
    if (!rc)
        rc = load_flags(c, argc, argv, err, errlen);
    if (rc)
        return rc;
    if ((rc = resolve_private(c, err, errlen)) < 0)
        return rc;
    if ((rc = load_input_shape(c, err, errlen)) < 0)
        return rc;
    if (c->template_mode && c->private_path)
        return seterr(err, errlen, -EINVAL, "--template: a --private model has no template");
    if (c->private_path)
        c->model_ref = NULL; /* --private is the baseline run of a function otherwise attached */
    else if (!c->model_ref)
        return seterr(err, errlen, -EINVAL,
                      "no model: give --model REF (or env model) or "
                      "--private FILE\n%s",
                      usage);
    return load_labels(c, err, errlen);
}

void fn_config_free(struct fn_config *c)
{
    fn_labels_free(&c->codec.labels);
}
