/*
 * engine.h — compile an ONNX model once into a plan image; run that image zero-copy.
 *
 * Owns: ONNX import, the plan compiler, the plan image format (docs/plan-format.md), model open and
 * sessions. Guarantees:
 *   - a plan image is one position-independent byte blob (offsets only, every section 64-byte
 *     aligned) that engine_model_open() wraps without copying and never writes, so it may be a
 *     PROT_READ mapping shared by any number of processes;
 *   - engine_model_open() validates the header, versions, CPU features, thread count and every
 *     offset/length before trusting any of it, and refuses an image whose oneDNN primitives would
 *     resolve to a different (or reference) implementation in this process;
 *   - all per-instance mutable state (activation arena, primitives, scratchpad) lives in a session.
 *
 * Errors: every function returns 0 or a negative errno code and writes a message naming the model,
 * node, op and attribute concerned into err (common.h's convention).
 */
#ifndef SHMFAAS_ENGINE_H
#define SHMFAAS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define ENGINE_MAX_RANK 8

/* Element types; the values are ONNX TensorProto.DataType's. */
enum engine_dtype {
    ENGINE_F32 = 1,
    ENGINE_U8 = 2,
    ENGINE_I8 = 3,
    ENGINE_I32 = 6,
    ENGINE_I64 = 7,
    ENGINE_BOOL = 9,
    ENGINE_F16 = 10, /* Cast and data movement only */
    ENGINE_F64 = 11, /* Cast and data movement only */
};

struct engine_shape {
    int rank;
    int64_t dims[ENGINE_MAX_RANK];
};

size_t engine_dtype_size(int dtype);      /* 0 for an unknown dtype */
const char *engine_dtype_name(int dtype); /* "float32", "int64", ...; "?" if unknown */
int engine_dtype_parse(const char *name); /* inverse; -1 if unknown */
int64_t engine_shape_numel(const struct engine_shape *s);
/* "[1,3,224,224]" */
const char *engine_shape_str(const struct engine_shape *s, char *buf, size_t len);

/* ---- compile (the store does this once per model) ---- */

struct engine_input_shape {
    const char *name;
    struct engine_shape shape;
};

struct engine_tensor;

struct engine_compile_opts {
    int threads;                             /* intra-op threads of the sessions; 0 means 1 */
    const char *base_dir;                    /* directory of external-data files; NULL: refused */
    const char *model_name;                  /* used in error messages; NULL: "model" */
    const struct engine_input_shape *shapes; /* concrete shapes for symbolic input dims */
    int n_shapes;
    /* Value-pinned inputs: each is compiled as a constant with these values (so an operand that
     * decides a shape may come from a graph input), yet stays an input of the plan; a run whose
     * value differs is refused. int32/int64/bool of up to ENGINE_MAX_PIN_ELEMS elements, or
     * float32 of up to ENGINE_MAX_PIN_FLOATS (Resize scales, Range bounds); name required; the
     * values are copied. */
    const struct engine_tensor *pins;
    int n_pins;
    /* 3x3 stride-1 convolutions as Winograd F(4x4,3x3) (1.5-3x faster, 4x their weight bytes):
     * ENGINE_WINOGRAD_AUTO (0) where the output is at least 28x28, or 14x14 with at most 256x256
     * channels, largest outputs first while the image grows by at most half the model's weights;
     * _OFF never; _ALL wherever it applies. Needs AVX2 and FMA (nChw8c activations); elsewhere
     * every convolution is direct. */
    int winograd;
};

enum { ENGINE_WINOGRAD_AUTO = 0, ENGINE_WINOGRAD_OFF = 1, ENGINE_WINOGRAD_ALL = 2 };

#define ENGINE_MAX_PIN_ELEMS 4096
/* The most iterations one Loop or Scan runs per entry (ops/loop.c): a trip count over it is refused
 * at compile time when known, else at run time ("Loop: trip count N over the bound of ..."). */
#define ENGINE_LOOP_MAX_ITER (1 << 20)
/* The most loop iterations of all loops together in one run (nested loops multiply): a run
 * that would go over fails ("more than ... loop iterations in one run"). */
#define ENGINE_LOOP_MAX_RUN   (1 << 26)
#define ENGINE_MAX_PIN_FLOATS 16
/* Most elements of one sequence value (a graph input or output of ONNX sequence type, or one a
 * sequence op makes): sequences are resolved at compile time into that many tensors. */
#define ENGINE_MAX_SEQ 1024

/* Compile-option shapes as text, as shmfaas-run --shape, shmfaas-fn's input_shape and the store
 * spell them: "[NAME=]DxDx..", several joined by ';' ("input=1x3x320x320", or "1x3x320x320" for
 * a model's only input). text is copied into buf (buflen bytes); the names point into buf.
 * Returns the number of shapes (1..max) or a negative errno with a message naming what is wrong. */
int engine_shapes_parse(const char *text, char *buf, size_t buflen,
                        struct engine_input_shape *shapes, int max, char *err, size_t errlen);
/* The canonical text of n shapes into out (len bytes); its length, or -ENAMETOOLONG. */
int engine_shapes_format(const struct engine_input_shape *shapes, int n, char *out, size_t len);

/* ONNX bytes → plan image (malloc'd, 64-byte aligned; free with engine_image_free). */
int engine_compile(const void *onnx, size_t len, const struct engine_compile_opts *opts,
                   void **image, size_t *image_len, char *err, size_t errlen);
void engine_image_free(void *image);

/* Checks the SHA-256 over the whole image that the compiler stored in its header. Costs a pass
 * over the weights, so the store runs it when it adopts a file, not every instance on open. */
int engine_image_verify(const void *image, size_t len, char *err, size_t errlen);

/* ---- plan parts and weights blobs (format 3; docs/plan-format.md "Plan parts") ----
 * A whole image can be split into a plan part (header + tables, small) and its weights blob
 * (exactly the weights section's bytes, named by their SHA-256, which the part records): parts
 * of every shape of one model share one blob. */
struct engine_weights_ref {
    int external;       /* the image is a plan part: its weights are a separate blob */
    uint64_t offset;    /* of the weights section in the whole image (= a part's length) */
    uint64_t size;      /* the weights' bytes */
    uint8_t sha256[32]; /* their SHA-256 */
};
/* Reads the header's weights record (after checking the header and section table). */
int engine_image_weights(const void *image, size_t len, struct engine_weights_ref *out, char *err,
                         size_t errlen);
/* Whole image → plan part (malloc'd, engine_image_free); its blob is the image's bytes at
 * [ref.offset, ref.offset + ref.size) (engine_image_weights). */
int engine_image_split(const void *image, size_t len, void **part, size_t *part_len, char *err,
                       size_t errlen);
/* Plan part + blob → the whole image, byte for byte what the compiler made (malloc'd). */
int engine_image_join(const void *part, size_t part_len, const void *weights, size_t weights_len,
                      void **image, size_t *image_len, char *err, size_t errlen);
/* Checks that weights (weights_len bytes) are the blob part records (size and SHA-256: one pass
 * over the blob, which the store runs when it adopts one; open checks only the size). */
int engine_weights_verify(const void *part, size_t part_len, const void *weights,
                          size_t weights_len, char *err, size_t errlen);

/* What this build on this CPU compiles for: engine + format version, oneDNN version, ISA.
 * The store folds it into a model's identity. Static string. */
const char *engine_fingerprint(void);

/* ---- open (zero-copy) ---- */

struct engine_model;

int engine_model_open(const void *image, size_t len, struct engine_model **out, char *err,
                      size_t errlen);
/* The same over a plan part and its weights blob (a separate mapping, 64-byte aligned); with
 * weights NULL it is engine_model_open. Every weight offset is checked against weights_len. */
int engine_model_open_parts(const void *part, size_t part_len, const void *weights,
                            size_t weights_len, struct engine_model **out, char *err,
                            size_t errlen);
void engine_model_close(struct engine_model *m);

struct engine_tensor_info {
    const char *name; /* points into the image */
    int dtype;
    struct engine_shape shape;
    /* engine_dynamic_input/output: 1 for a value of ONNX sequence type, 2 for an optional; dtype
     * and shape are then its elements'. A plan has only tensors: a sequence input NAME of L
     * elements is compiled (engine_compile_opts.shapes gives L as "NAME=L") into the inputs
     * "NAME[0]" ... "NAME[L-1]", a sequence output into the outputs "NAME[0]" ... (one sequence
     * to the JSON codec), an optional as a sequence of at most one element, an optional of a
     * sequence (seq 1) as that sequence, always present. */
    int seq;
};

int engine_model_n_inputs(const struct engine_model *m);
int engine_model_n_outputs(const struct engine_model *m);
int engine_model_input(const struct engine_model *m, int i, struct engine_tensor_info *out);
int engine_model_output(const struct engine_model *m, int i, struct engine_tensor_info *out);
/* 1 when input i is value-pinned (its values, nbytes long, into *data: inside the image), 0 when
 * not, -EINVAL for a bad index. data and nbytes may be NULL. */
int engine_model_input_pinned(const struct engine_model *m, int i, const void **data,
                              size_t *nbytes);
size_t engine_model_arena_size(const struct engine_model *m);   /* activation bytes/session */
size_t engine_model_weights_size(const struct engine_model *m); /* bytes of weights in image */
int engine_model_threads(const struct engine_model *m);
const uint8_t *engine_model_source_sha256(const struct engine_model *m); /* 32 bytes */

/* ---- sessions ---- */

struct engine_session;

struct engine_tensor {
    const char *name; /* inputs: matched by name; NULL allowed when the model has one input */
    int dtype;
    struct engine_shape shape;
    void *data;
    size_t nbytes;
};

int engine_session_create(struct engine_model *m, struct engine_session **out, char *err,
                          size_t errlen);
void engine_session_destroy(struct engine_session *s);

/* Runs one inference. Inputs must match the plan's names, dtypes and shapes (the error says
 * which shape the plan expects). outputs has engine_model_n_outputs() slots; the engine fills
 * them with pointers into session memory, valid until the next run or release. An output whose
 * size depends on the data (NonMaxSuppression, NonZero) gets this run's shape and nbytes;
 * engine_model_output() gives its upper bound. */
int engine_session_run(struct engine_session *s, const struct engine_tensor *inputs, int n_inputs,
                       struct engine_tensor *outputs, int n_outputs, char *err, size_t errlen);

/* Gives the arena's pages back to the kernel (MADV_DONTNEED) and keeps the mapping, so an idle
 * session costs little; the next run pays only page faults. Also trims the process's malloc
 * arenas (glibc), where freed buffers would otherwise stay resident. */
void engine_session_release_memory(struct engine_session *s);

/* ---- run-time shapes: one model, a plan per request signature (dynamic.c) ---- */

/* engine_compile, and when the compile is refused because an operand that decides a shape is
 * computed at run time ("must be a constant", "needs constant scales", ...): compiles again with
 * the values a run will feed pinned as well (values[i] eligible when named and pinnable: int32/
 * int64/bool of up to ENGINE_MAX_PIN_ELEMS elements, float32 of up to ENGINE_MAX_PIN_FLOATS; not
 * already in opts->pins), then drops every pin the model compiles without, so only the shape
 * operands stay pinned. pinned (n_values ints) gets 1 for each value left pinned. A refusal keeps
 * the first compile's reason in err. Costs one compile, or 2 + (eligible values) when pinning. */
int engine_compile_pinning(const void *onnx, size_t len, const struct engine_compile_opts *opts,
                           const struct engine_tensor *values, int n_values, int *pinned,
                           void **image, size_t *image_len, char *err, size_t errlen);

/* A specialising model: holds the ONNX bytes and compile options, and for each request forms a
 * key from the concrete input shapes and the values of the inputs that decide a shape (found once
 * per model, on its first compile: engine_compile_pinning); a miss compiles a plan for exactly
 * that key, opens it and creates a session; plans are cached in an LRU bounded by count and by
 * bytes (images + activation arenas). A plan whose packed weights are byte for byte a cached
 * plan's shares that one copy (only its tables are its own); one whose packing differs (another
 * layout at that shape) holds its own. One thread at a time. */
struct engine_dynamic;

struct engine_dynamic_opts {
    struct engine_compile_opts compile; /* threads, base_dir, model_name, winograd; its shapes
                                           and pins must be empty (the requests decide) */
    int max_plans;                      /* cached specialisations; 0: ENGINE_DYNAMIC_PLANS */
    uint64_t max_bytes; /* their images + arenas together; 0: ENGINE_DYNAMIC_BYTES plus four
                           times the ONNX bytes (room for the images' weight copies) */
};

#define ENGINE_DYNAMIC_PLANS     8
#define ENGINE_DYNAMIC_BYTES     (UINT64_C(1) << 30)
#define ENGINE_DYNAMIC_MAX_PLANS 1024

struct engine_dynamic_stats {
    /* compiles: plans compiled (the first also searched for the shape operands: a few compiles
     * more when the model has some); refused: keys the compiler refused */
    uint64_t runs, hits, misses, compiles, evictions, refused;
    int plans;               /* cached now */
    uint64_t bytes;          /* their images (one copy of weights each shares) + arenas */
    uint64_t weights_shared; /* plans compiled whose weights equalled a cached plan's: they run
                                on that one copy and keep only their own tables */
    int pinned_inputs;       /* inputs whose values are part of the key; -1 before the first plan */
    int outputs;             /* outputs the last run filled: a sequence output fills one per
                                element, so a model with one may fill more than
                                engine_dynamic_n_outputs() */
    double last_compile_ms;  /* compile + open + session of the last miss */
    int last_refused;        /* 1 when the last run failed because the compiler refused its key
                                (an unsupported shape or value), 0 otherwise */
};

/* Copies onnx (len bytes) and imports it once to learn its inputs and outputs. */
int engine_dynamic_open(const void *onnx, size_t len, const struct engine_dynamic_opts *opts,
                        struct engine_dynamic **out, char *err, size_t errlen);
void engine_dynamic_close(struct engine_dynamic *d);
/* The model's declared inputs and outputs (a symbolic dim is -1, an unknown shape rank -1). */
int engine_dynamic_n_inputs(const struct engine_dynamic *d);
int engine_dynamic_n_outputs(const struct engine_dynamic *d);
int engine_dynamic_input(const struct engine_dynamic *d, int i, struct engine_tensor_info *out);
int engine_dynamic_output(const struct engine_dynamic *d, int i, struct engine_tensor_info *out);
/* engine_session_run on the plan for these inputs' shapes (and shape-deciding values), compiled
 * on a miss. Outputs are valid until the next run or close. A sequence input NAME is fed as
 * tensors named "NAME[0]", "NAME[1]", ... (its length is part of the key; an optional: none or
 * "NAME[0]"); a sequence output fills consecutive slots named the same way: outputs needs as
 * many slots as the plan has outputs (stats.outputs says how many were filled; the rest are
 * zeroed). */
int engine_dynamic_run(struct engine_dynamic *d, const struct engine_tensor *inputs, int n_inputs,
                       struct engine_tensor *outputs, int n_outputs, char *err, size_t errlen);
void engine_dynamic_stats(const struct engine_dynamic *d, struct engine_dynamic_stats *out);
/* engine_session_release_memory on every cached plan's session. */
void engine_dynamic_release_memory(struct engine_dynamic *d);

/* ---- the JSON tensor schema (shmfaas-run files, shmfaas-fn input=json/output=json) ----
 *   {"inputs":  {"NAME": {"shape": [..], "data": [..], "dtype": "float32"}}}   ("dtype" optional)
 *   {"outputs": {"NAME": {"shape": [..], "data": [..]}}}
 * A sequence value is {"NAME": {"sequence": [tensor, ...]}} (at most ENGINE_MAX_SEQ), an optional
 * {"NAME": {"optional": tensor | null}}: in a set they are the tensors "NAME[0]", "NAME[1]", ...
 * (engine_tensor_info.seq); the writer groups outputs so named into one sequence.
 * A set owns its names and data. */
struct engine_tensor_set {
    struct engine_tensor *t;
    int n;
};

/* Parses `{"inputs": {...}}` (key selects "inputs" or "outputs") from len bytes of JSON. Checks
 * that shape and data agree, dtype is known, numbers fit the dtype; errors name the tensor. */
int engine_tensors_from_json(const char *json, size_t len, const char *key,
                             struct engine_tensor_set *out, char *err, size_t errlen);
/* Writes `{"<key>": {...}}`; returns a malloc'd NUL-terminated string (floats round-trip). */
char *engine_tensors_to_json(const struct engine_tensor *t, int n, const char *key);
void engine_tensor_set_free(struct engine_tensor_set *set);

#endif
