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
enum fn_output { FN_OUT_JSON, FN_OUT_TOPK };
/* auto: apply softmax unless the scores already are a distribution (all in [0,1], sum 1 ± 1e-3) */
enum fn_softmax { FN_SOFTMAX_AUTO, FN_SOFTMAX_ON, FN_SOFTMAX_OFF };

#define FN_DEFAULT_IMAGE_SIZE 224
#define FN_DEFAULT_MAX_PIXELS ((uint64_t)64 << 20) /* 64 Mpixel: 8192 x 8192 */
#define FN_MAX_LABELS         1000000

struct fn_image_opts {
    int size;            /* shorter side resized to size, then centre crop size x size */
    float mean[3];       /* per channel, on [0,1] values */
    float std[3];        /* per channel, > 0 */
    uint64_t max_pixels; /* width * height a decoded image may have */
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
};

/* An input tensor a codec made: float32 data (malloc'd, free with free()) in NCHW order. */
struct fn_tensor {
    struct engine_shape shape;
    float *data;
    size_t nbytes;
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
/* Resize (bilinear, shorter side to o->size), centre crop, scale to [0,1], normalise → NCHW
 * [1,3,size,size] float32. */
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
};

#define FN_DEFAULT_STORE "/run/shmfaas/store.sock"

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
/* True while the instance serves (ready and not draining). */
bool fn_instance_ready(struct fn_instance *inst);

#endif
