/*
 * fn.h — shmfaas-fn, the function instance: one model, one engine session, one HTTP listener.
 *
 * Owns: the instance's configuration (flags + the env vars OpenFaaS/Knative set), the request
 * codecs (JSON tensors, JPEG/PNG images, raw float32 in; JSON tensors or top-k out), the worker
 * that runs the session, and the of-watchdog HTTP contract (/_/health, /_/ready, POST / ...).
 * Guarantees:
 *   - every codec is one function (bytes, len, config) → tensor or error message; it reads no byte
 *     past len, checks every size it decodes (image pixels against max_pixels before allocating)
 * and never aborts on bad input, so each is a fuzz entry point;
 *   - the weights are never written: a store image is a PROT_READ mapping, a --private model is the
 *     instance's own copy;
 *   - a request that times out gets 504 at its deadline; the session finishes that run on the
 * worker and the next request waits for it, so a session is never used by two runs at once.
 */
#ifndef SHMFAAS_FN_H
#define SHMFAAS_FN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "engine/engine.h"

/* ---- codecs ---- */

enum fn_input { FN_IN_JSON, FN_IN_IMAGE, FN_IN_RAW };
enum fn_output { FN_OUT_JSON, FN_OUT_TOPK, FN_OUT_BOXES };
/* auto: apply softmax unless the scores already are a distribution (all in [0,1], sum 1 ± 1e-3) */
enum fn_softmax { FN_SOFTMAX_AUTO, FN_SOFTMAX_ON, FN_SOFTMAX_OFF };

#define FN_DEFAULT_IMAGE_SIZE 224
#define FN_DEFAULT_MAX_PIXELS ((uint64_t)64 << 20) /* 64 Mpixel: 8192 x 8192 */
#define FN_MAX_LABELS         1000000

struct fn_image_opts {
    int size;            /* shorter side resized to size, then centre crop size x size */
    bool letterbox;      /* image_fit=letterbox: longer side to size, centred, black padding */
    float mean[3];       /* per channel, on [0,1] values */
    float std[3];        /* per channel, > 0 */
    uint64_t max_pixels; /* width * height a decoded image may have */
    bool nhwc;           /* image_layout=nhwc: [1,size,size,3] (TensorFlow-born models) */
};

/* Where an input=image tensor's pixels came from, so an output codec can map model-input
 * coordinates back onto the photo: source x = (u + off_x) / scale_x for a model-input x u in
 * [0,size] (likewise y). width == 0: the tensor was not made from an image. */
struct fn_image_geom {
    uint32_t width, height; /* the decoded image */
    int size;               /* the model input's side */
    double scale_x, scale_y;
    double off_x, off_y;
};

/* output=boxes (boxes.c): detector outputs → boxes on the photo. */
enum fn_boxes_format {
    FN_BOXES_SSD,    /* scores + regressors on a grid of anchors (MediaPipe BlazeFace / SSD) */
    FN_BOXES_CORNERS /* already decoded: scores + [x1,y1,x2,y2] in [0,1] of the model input */
};
enum fn_boxes_nms { FN_NMS_HARD, FN_NMS_WEIGHTED };
#define FN_BOXES_MAX_LAYERS  8
#define FN_BOXES_MAX         1000    /* max_boxes may be at most this */
#define FN_BOXES_MAX_ANCHORS 1000000 /* anchors a grid may describe */

struct fn_boxes_opts {
    enum fn_boxes_format format;
    float score_threshold; /* on the sigmoid of the score when sigmoid is set; default 0.5 */
    float iou_threshold;   /* overlapping boxes above this are suppressed; default 0.3 */
    int max_boxes;         /* 1..FN_BOXES_MAX; default 100 */
    bool sigmoid;          /* scores are logits; default true */
    enum fn_boxes_nms nms;
    /* ssd: anchor grids in the model's output order, each cols x rows cells (row-major) of
     * per_cell anchors; every anchor is centred on its cell with size 1 (MediaPipe's
     * fixed_anchor_size) */
    int n_layers;
    struct {
        int cols, rows, per_cell;
    } layers[FN_BOXES_MAX_LAYERS];
    float box_scale; /* ssd: regressors are in pixels of this side; 0 = the model input's size */
};

struct fn_labels {
    char **names; /* one per line of the labels file, trailing \r stripped */
    int n;
};

struct fn_codec_config {
    enum fn_input input;
    enum fn_output output;
    struct fn_image_opts image;
    int topk;
    enum fn_softmax softmax;
    struct fn_labels labels; /* n == 0: predictions carry the index only */
    struct fn_boxes_opts boxes;
};

/* An input tensor a codec made: float32 data (malloc'd, free with free()) in NCHW order. */
struct fn_tensor {
    struct engine_shape shape;
    float *data;
    size_t nbytes;
    struct fn_image_geom geom; /* input=image only */
};

/* An RGB image, 3 bytes per pixel, rows without padding. */
struct fn_rgb {
    uint32_t width, height;
    uint8_t *pixels; /* malloc'd */
};

void fn_image_opts_default(struct fn_image_opts *o);
/* JPEG or PNG (sniffed by magic bytes) → 8-bit RGB; gray, alpha, palette, 16-bit converted. */
int fn_image_decode(const uint8_t *buf, size_t len, uint64_t max_pixels, struct fn_rgb *out,
                    char *err, size_t errlen);
/* Resize (bilinear, shorter side to o->size), centre crop (or letterbox: longer side to o->size,
 * black padding), scale to [0,1], normalise → NCHW
 * [1,3,size,size] float32 (NHWC [1,size,size,3] with o->nhwc); out->geom says where it came from.
 */
int fn_image_preprocess(const struct fn_rgb *img, const struct fn_image_opts *o,
                        struct fn_tensor *out, char *err, size_t errlen);
/* input=image: decode + preprocess. */
int fn_codec_image(const uint8_t *buf, size_t len, const struct fn_image_opts *o,
                   struct fn_tensor *out, char *err, size_t errlen);
/* input=raw: exactly numel(shape) little-endian float32 values. */
int fn_codec_raw(const uint8_t *buf, size_t len, const struct engine_shape *shape,
                 struct fn_tensor *out, char *err, size_t errlen);
/* output=topk: `{"predictions":[{"index":i,"label":"..","score":p}, ...]}`, best first; malloc'd.
 */
int fn_codec_topk(const float *scores, size_t n, const struct fn_codec_config *c, char **json,
                  char *err, size_t errlen);
void fn_boxes_opts_default(struct fn_boxes_opts *o);
/* Parses an anchors setting, "16x16x2,8x8x6": per grid cols x rows x anchors per cell. */
int fn_boxes_parse_anchors(const char *s, struct fn_boxes_opts *o, char *err, size_t errlen);
/* output=boxes on flat arrays: n scores (one per anchor) and n * stride regressors (ssd: dx, dy,
 * w, h first, in box_scale pixels; corners: x1, y1, x2, y2 in [0,1]). model_size: the model
 * input's side. Threshold, non-maximum suppression, then boxes in g's image pixels:
 * `{"boxes":[{"x":..,"y":..,"w":..,"h":..,"score":..}],"image":{"width":..,"height":..}}`, best
 * first; malloc'd. Every count is checked against the arrays; no input makes it crash. */
int fn_codec_boxes(const float *scores, size_t n, const float *regs, size_t nregs, size_t stride,
                   int model_size, const struct fn_boxes_opts *o, const struct fn_image_geom *g,
                   char **json, char *err, size_t errlen);
/* output=boxes on a model's outputs: the outputs whose last dimension is 1 are the scores, the
 * others the regressors, each concatenated in output order (BlazeFace has one pair per grid). */
int fn_codec_boxes_outputs(const struct engine_tensor *outs, int n_outs, int model_size,
                           const struct fn_boxes_opts *o, const struct fn_image_geom *g,
                           char **json, char *err, size_t errlen);
/* Splits a labels file's bytes into names; an empty last line is not a label. */
int fn_labels_parse(const uint8_t *buf, size_t len, struct fn_labels *out, char *err,
                    size_t errlen);
void fn_labels_free(struct fn_labels *l);
void fn_tensor_free(struct fn_tensor *t);
void fn_rgb_free(struct fn_rgb *img);

/* ---- configuration: env vars first, then command-line flags ---- */

struct fn_config {
    char listen[256];       /* "unix:PATH" or ":PORT" (from --listen, else env PORT) */
    const char *model_ref;  /* --model / env model */
    const char *store_path; /* --store / env store_socket */
    const char *private_path;
    int threads;
    /* env input_shape: the shapes a symbolic-dim model is compiled for ("input=1x3x320x320") */
    const char *input_shape;
    struct engine_input_shape shapes[16]; /* input_shape parsed; names point into shape_text */
    int n_shapes;
    char shape_text[256];
    struct fn_codec_config codec;
    const char *labels_path;
    /* --models DIR: --private REF and labels must resolve inside DIR (common/confine.h); unset,
     * they are paths taken as given (the operator's own command line or pod spec) */
    const char *models_dir;
    char private_real[4096]; /* --private resolved inside models_dir */
    int max_inflight; /* 0 = unlimited */
    int64_t exec_timeout_ms, read_timeout_ms, write_timeout_ms, idle_release_ms;
    size_t max_body;
    enum log_level log_level;
    /* --ready-fd N: written one byte ("R") and closed once the instance is ready, so that
     * shmfaasd learns it without polling /_/ready; -1: none (Kubernetes polls /_/ready) */
    int ready_fd;
    /* --template: fd 3 is shmfaasd's control socket (common/tmplproto.h), not a listener; the
     * process warms up and forks instances on request (template.c) */
    bool template_mode;
};

#define FN_DEFAULT_STORE "/run/shmfaas/store.sock"

/* Exit statuses shmfaasd tells apart (gateway/instance.c has the same numbers). */
#define FN_EXIT_REFUSED        75 /* EX_TEMPFAIL: the store refused the model */
#define FN_EXIT_TEMPLATE_STALE 76 /* a forked instance found the store hands another image */

/* Fills c from the environment and argv; loads the labels file. Errors name the variable or flag.
 */
int fn_config_load(struct fn_config *c, int argc, char **argv, char *err, size_t errlen);
void fn_config_free(struct fn_config *c);

/* ---- the instance ---- */

struct fn_instance;

/* Gets the model (store or private), opens it, creates the session, checks the codecs against the
 * model's inputs and outputs, runs one warm-up inference and starts listening. Logs the startup
 * time at info. */
int fn_instance_start(const struct fn_config *c, int64_t t0_ns, struct fn_instance **out, char *err,
                      size_t errlen);
/* SIGTERM: stop accepting, wait up to write_timeout for in-flight requests, then free everything.
 */
void fn_instance_drain_and_stop(struct fn_instance *inst);

/* ---- templates (template.c) ---- */

/* A template's half of fn_instance_start: the model mapped (without a lease), opened, the
 * session created, the codecs checked and, for threads = 1, one warm-up run; then the arena is
 * released. Nothing is listening and no thread runs, so the process may fork. */
int fn_instance_prepare(const struct fn_config *c, struct fn_instance **out, char *err,
                        size_t errlen);
/* In an instance forked from a prepared template: its own lease, then listen, warm up if the
 * template could not, and serve (the rest of fn_instance_start). */
int fn_instance_start_forked(struct fn_instance *in, int64_t t0_ns, char *err, size_t errlen);
/* The prepared image's fd (the template watches its link count; a forked instance closes it
 * first thing), or -1. */
int fn_instance_image_fd(const struct fn_instance *in);
/* Frees a prepared instance that never served (the template stopping). */
void fn_instance_free_prepared(struct fn_instance *in);

/* --template: runs the template on the control socket at fd 3 until shmfaasd closes it or
 * SIGTERM/SIGINT (blocked in every thread, as in main()). Returns 0 when the template is done,
 * 1 in a forked instance (*out: the instance, serving; main() waits for its stop signal as for
 * any instance), or < 0 when it could not become a template (err says why; shmfaasd starts
 * instances by exec then). */
int fn_template_run(struct fn_config *c, struct fn_instance **out, char *err, size_t errlen);

#endif
