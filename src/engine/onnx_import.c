/*
 * onnx_import.c — ONNX protobuf bytes → ir_graph.
 *
 * Nothing read from the file is trusted: counts, ranks, dims (negative, huge, overflowing
 * products), payload lengths against dims × element size, raw_data against the typed fields,
 * external-data locations (relative, no "..", opened inside base_dir by confine_open) and offsets
 * against the file's size are all checked before use. Constant nodes become constant tensors, nodes
 * are sorted topologically, and cycles, undefined inputs, duplicate producers and foreign domains
 * are refused with the model, node and op named. The branches of an If are flattened into the
 * graph (struct ir_scope in ir.h): a name inside a branch is looked up in the branch first, then
 * in each enclosing scope (outer-scope references), so a branch may shadow an outer name.
 */
#include "engine/ir.h"

#include "common/common.h"
#include "common/confine.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MODEL_BYTES  ((size_t)2 << 30)    /* protobuf's own limit */
#define MAX_TENSOR_BYTES ((uint64_t)16 << 30) /* any one tensor */
#define MAX_ITEMS        (1 << 24)            /* nodes, initializers, inputs, outputs */
#define MIN_OPSET        1
#define MAX_OPSET        18
#define MAX_SCOPE_DEPTH  16 /* If branches nested in If branches */

/* ---- tensor payloads ---- */

struct payload {
    int dtype;
    struct engine_shape shape;
    void *data; /* malloc'd, at least 1 byte */
    size_t nbytes;
};

static int dtype_supported(int t)
{
    return t == ENGINE_F32 || t == ENGINE_U8 || t == ENGINE_I8 || t == ENGINE_I32 ||
           t == ENGINE_I64 || t == ENGINE_BOOL || t == ENGINE_F16 || t == ENGINE_F64;
}

/* Validates dims and computes the element count and byte size without overflow. */
static int check_dims(const int64_t *dims, size_t n, int dtype, struct engine_shape *shape,
                      size_t *nbytes, const char *what, char *err, size_t errlen)
{
    if (n > ENGINE_MAX_RANK)
        return seterr(err, errlen, -EINVAL, "%s: rank %zu exceeds the supported %d", what, n,
                      ENGINE_MAX_RANK);
    uint64_t numel = 1;
    shape->rank = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (dims[i] < 0)
            return seterr(err, errlen, -EINVAL, "%s: negative dim %lld at axis %zu", what,
                          (long long)dims[i], i);
        if (dims[i] > 0 && numel > MAX_TENSOR_BYTES / (uint64_t)dims[i])
            return seterr(err, errlen, -EFBIG, "%s: dims too large (over %llu elements)", what,
                          (unsigned long long)MAX_TENSOR_BYTES);
        numel *= (uint64_t)dims[i];
        shape->dims[i] = dims[i];
    }
    uint64_t bytes = numel * engine_dtype_size(dtype);
    if (bytes > MAX_TENSOR_BYTES)
        return seterr(err, errlen, -EFBIG, "%s: %llu bytes exceeds the %llu-byte tensor limit",
                      what, (unsigned long long)bytes, (unsigned long long)MAX_TENSOR_BYTES);
    *nbytes = (size_t)bytes;
    return 0;
}

/* Typed int32_data holds int32, uint8, int8 and bool elements; each must fit its type. */
static int from_int32_data(const Onnx__TensorProto *tp, struct payload *p, const char *what,
                           char *err, size_t errlen)
{
    for (size_t i = 0; i < tp->n_int32_data; i++) {
        int32_t v = tp->int32_data[i];
        switch (p->dtype) {
        case ENGINE_I32:
            ((int32_t *)p->data)[i] = v;
            break;
        case ENGINE_U8:
        case ENGINE_BOOL:
            if (v < 0 || v > (p->dtype == ENGINE_BOOL ? 1 : 255))
                return seterr(err, errlen, -EINVAL, "%s: value %d out of range for %s", what, v,
                              engine_dtype_name(p->dtype));
            ((uint8_t *)p->data)[i] = (uint8_t)v;
            break;
        case ENGINE_I8:
            if (v < -128 || v > 127)
                return seterr(err, errlen, -EINVAL, "%s: value %d out of range for int8", what, v);
            ((int8_t *)p->data)[i] = (int8_t)v;
            break;
        case ENGINE_F16: /* the 16-bit patterns */
            if (v < 0 || v > 0xffff)
                return seterr(err, errlen, -EINVAL, "%s: value %d is not a 16-bit pattern", what,
                              v);
            ((uint16_t *)p->data)[i] = (uint16_t)v;
            break;
        default:
            return seterr(err, errlen, -EINVAL, "%s: int32_data given for a %s tensor", what,
                          engine_dtype_name(p->dtype));
        }
    }
    return 0;
}

static int typed_count(const Onnx__TensorProto *tp)
{
    return (tp->n_float_data > 0) + (tp->n_int32_data > 0) + (tp->n_int64_data > 0) +
           (tp->n_double_data > 0) + (tp->n_uint64_data > 0) + (tp->n_string_data > 0);
}

static size_t typed_elems(const Onnx__TensorProto *tp)
{
    return tp->n_float_data + tp->n_int32_data + tp->n_int64_data + tp->n_double_data +
           tp->n_uint64_data + tp->n_string_data;
}

/* Fills p->data (numel elements, checked by decode_payload) from the typed fields. */
static int from_typed(const Onnx__TensorProto *tp, struct payload *p, size_t numel,
                      const char *what, char *err, size_t errlen)
{
    if (p->dtype == ENGINE_F32 && tp->n_float_data == numel) {
        memcpy(p->data, tp->float_data, numel * sizeof(float));
        return 0;
    }
    if (p->dtype == ENGINE_I64 && tp->n_int64_data == numel) {
        memcpy(p->data, tp->int64_data, numel * sizeof(int64_t));
        return 0;
    }
    if (p->dtype == ENGINE_F64 && tp->n_double_data == numel) {
        memcpy(p->data, tp->double_data, numel * sizeof(double));
        return 0;
    }
    if (tp->n_int32_data == numel)
        return from_int32_data(tp, p, what, err, errlen);
    return seterr(err, errlen, -EINVAL, "%s: typed data field does not match data type %s", what,
                  engine_dtype_name(p->dtype));
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Opens an external data file: a relative location without ".." components, resolved inside
 * base_dir by confine_open (common/confine.h: no symlink out, regular files only) — the same
 * resolver the gateway, the store and the instance use for the files a deployer names. */
static int external_open(const char *base_dir, const char *loc, const char *what, char *err,
                         size_t errlen)
{
    if (!base_dir)
        return seterr(err, errlen, -EINVAL,
                      "%s: uses external data '%s' but no base directory was given "
                      "(compile from a file path, or embed the weights)",
                      what, loc);
    if (loc[0] == '/')
        return seterr(err, errlen, -EPERM, "%s: external data location '%s' is absolute", what,
                      loc);
    for (const char *c = loc; (c = strstr(c, "..")) != NULL; c += 2) {
        int starts = c == loc || c[-1] == '/';
        int ends = c[2] == '\0' || c[2] == '/';
        if (starts && ends)
            return seterr(err, errlen, -EPERM, "%s: external data location '%s' contains '..'",
                          what, loc);
    }
    char why[512];
    int fd = confine_open(base_dir, "model's", loc, O_RDONLY, NULL, 0, why, sizeof(why));
    if (fd == -EPERM)
        return seterr(err, errlen, -EPERM, "%s: external data location '%s' resolves outside %s",
                      what, loc, base_dir);
    if (fd < 0)
        return seterr(err, errlen, fd, "%s: external data: %s", what, why);
    return fd;
}

/* Reads [offset, offset + length) of the open external data file fd (named path in messages). */
static int read_external_range(int fd, const char *path, uint64_t offset, int has_length,
                               uint64_t length, struct payload *p, const char *what, char *err,
                               size_t errlen)
{
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = seterr(err, errlen, -EINVAL, "%s: external data %s is not a regular file", what, path);
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t want = has_length ? length : (offset <= size ? size - offset : 0);
    if (offset > size || want > size - offset) {
        rc = seterr(err, errlen, -EINVAL,
                    "%s: external data range offset %llu length %llu exceeds %s (%llu bytes)", what,
                    (unsigned long long)offset, (unsigned long long)want, path,
                    (unsigned long long)size);
        goto out;
    }
    if (want != p->nbytes) {
        rc = seterr(err, errlen, -EINVAL, "%s: external data length %llu, dims need %zu bytes",
                    what, (unsigned long long)want, p->nbytes);
        goto out;
    }
    size_t done = 0;
    while (done < p->nbytes) {
        ssize_t k = pread(fd, (char *)p->data + done, p->nbytes - done, (off_t)(offset + done));
        if (k <= 0) {
            rc = seterr(err, errlen, k < 0 ? -errno : -EIO, "%s: reading %s failed", what, path);
            goto out;
        }
        done += (size_t)k;
    }
out:
    close(fd);
    return rc;
}

static int from_external(const Onnx__TensorProto *tp, const char *base_dir, struct payload *p,
                         const char *what, char *err, size_t errlen)
{
    const char *loc = NULL;
    uint64_t offset = 0, length = 0;
    int has_length = 0;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e || !e->key || !e->value)
            continue;
        int bad = 0;
        if (strcmp(e->key, "location") == 0)
            loc = e->value;
        else if (strcmp(e->key, "offset") == 0)
            bad = parse_u64(e->value, &offset);
        else if (strcmp(e->key, "length") == 0)
            bad = parse_u64(e->value, &length), has_length = 1;
        if (bad)
            return seterr(err, errlen, -EINVAL, "%s: external data %s='%s' is not a number", what,
                          e->key, e->value);
    }
    if (!loc || !*loc)
        return seterr(err, errlen, -EINVAL, "%s: external data without a location", what);
    int fd = external_open(base_dir, loc, what, err, errlen);
    if (fd < 0)
        return fd;
    return read_external_range(fd, loc, offset, has_length, length, p, what, err, errlen);
}

/* Takes over a raw_data buffer of exactly the right size instead of copying it: a model's
 * weights then exist twice at most (file bytes and graph), not three times, while compiling. */
static int steal_raw(Onnx__TensorProto *tp, struct payload *p)
{
    if (!tp->has_raw_data || tp->raw_data.len == 0 || tp->raw_data.len != p->nbytes)
        return 0;
    p->data = tp->raw_data.data;
    tp->raw_data.data = NULL;
    tp->raw_data.len = 0;
    tp->has_raw_data = 0;
    return 1;
}

static int decode_payload(Onnx__TensorProto *tp, const char *base_dir, struct payload *p,
                          const char *what, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    int dt = tp->has_data_type ? tp->data_type : 0;
    if (!dtype_supported(dt))
        return seterr(err, errlen, -ENOTSUP, "%s: unsupported data type %s (%d)", what,
                      onnx_dtype_name(dt), dt);
    p->dtype = dt;
    int rc = check_dims(tp->dims, tp->n_dims, dt, &p->shape, &p->nbytes, what, err, errlen);
    if (rc)
        return rc;
    if (tp->segment)
        return seterr(err, errlen, -ENOTSUP, "%s: segmented tensors are not supported", what);
    int external =
        tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    int sources = (tp->has_raw_data && tp->raw_data.len > 0) + (typed_count(tp) > 0) + external;
    if (sources > 1)
        return seterr(err, errlen, -EINVAL,
                      "%s: more than one of raw_data, typed data and external data", what);
    size_t numel = (size_t)engine_shape_numel(&p->shape);
    /* the payload must match the dims before anything of the dims' size is allocated */
    int raw = tp->has_raw_data && tp->raw_data.len > 0;
    if (raw && tp->raw_data.len != p->nbytes)
        return seterr(err, errlen, -EINVAL, "%s: raw_data has %zu bytes, dims need %zu", what,
                      tp->raw_data.len, p->nbytes);
    if (!raw && !external && typed_elems(tp) != numel)
        return seterr(err, errlen, -EINVAL, "%s: %zu data elements for %zu elements of dims", what,
                      typed_elems(tp), numel);
    if (!external && steal_raw(tp, p))
        return 0;
    p->data = calloc(1, p->nbytes ? p->nbytes : 1);
    if (!p->data)
        return seterr(err, errlen, -ENOMEM, "%s: out of memory for %zu bytes", what, p->nbytes);
    if (external)
        rc = from_external(tp, base_dir, p, what, err, errlen);
    else if (tp->has_raw_data && tp->raw_data.len > 0)
        memcpy(p->data, tp->raw_data.data, p->nbytes);
    else if (numel > 0 || typed_count(tp) > 0)
        rc = from_typed(tp, p, numel, what, err, errlen);
    if (rc) {
        free(p->data);
        p->data = NULL;
    }
    return rc;
}

int ir_decode_tensor_proto(const void *bytes, size_t len, struct engine_tensor *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > MAX_MODEL_BYTES)
        return seterr(err, errlen, -EFBIG, "tensor file too large (%zu bytes)", len);
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, bytes);
    if (!tp)
        return seterr(err, errlen, -EINVAL, "not a valid TensorProto (truncated or corrupt)");
    struct payload p;
    const char *name = tp->name && *tp->name ? tp->name : "(unnamed)";
    char what[300];
    snprintf(what, sizeof(what), "tensor %s", name);
    int rc = decode_payload(tp, NULL, &p, what, err, errlen);
    if (rc == 0) {
        out->name = tp->name && *tp->name ? strdup(tp->name) : NULL;
        out->dtype = p.dtype;
        out->shape = p.shape;
        out->data = p.data;
        out->nbytes = p.nbytes;
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

/* ---- name index: open addressing over tensor names, private to one import ---- */

struct name_index {
    int *slot;  /* tensor index or -1 */
    size_t cap; /* power of two */
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int index_init(struct name_index *ix, size_t expect)
{
    ix->cap = 64;
    while (ix->cap < expect * 2)
        ix->cap *= 2;
    ix->slot = malloc(ix->cap * sizeof(int));
    if (!ix->slot)
        return -ENOMEM;
    memset(ix->slot, 0xff, ix->cap * sizeof(int));
    return 0;
}

/* Returns the tensor named `name` or -1; *pos is the slot where it is or would go. */
static int index_find(const struct name_index *ix, const struct ir_graph *g, const char *name,
                      size_t *pos)
{
    size_t i = name_hash(name) & (ix->cap - 1);
    while (ix->slot[i] >= 0 && strcmp(g->tensors[ix->slot[i]].name, name) != 0)
        i = (i + 1) & (ix->cap - 1);
    *pos = i;
    return ix->slot[i];
}

/* ---- graph building ---- */

/* A node whose inputs are resolved once every node of every scope exists. */
struct pending {
    const Onnx__NodeProto *np;
    int node;
    int scope;
    const Onnx__GraphProto *branch[2]; /* If: then_branch, else_branch; Loop/Scan: body */
};

struct importer {
    struct ir_graph *g;
    const char *base_dir;
    struct name_index ix;
    int scope; /* the scope being imported (0: the main graph) */
    struct pending *pend;
    size_t n_pend, cap_pend;
    char *err;
    size_t errlen;
};

static const char *scope_prefix(const struct importer *im, int scope)
{
    return scope > 0 ? im->g->scopes[scope].prefix : "";
}

/* "<prefix of scope><name>", malloc'd (NULL: out of memory). */
static char *scoped_name(const struct importer *im, int scope, const char *name)
{
    const char *p = scope_prefix(im, scope);
    size_t lp = strlen(p), ln = strlen(name);
    char *s = malloc(lp + ln + 1);
    if (s) {
        memcpy(s, p, lp);
        memcpy(s + lp, name, ln + 1);
    }
    return s;
}

/* The tensor `name` names inside scope: its own, else an enclosing scope's; -1 if none,
 * -ENOMEM. */
static int find_scoped(const struct importer *im, int scope, const char *name)
{
    size_t pos;
    for (int s = scope; s > 0; s = im->g->scopes[s].parent) {
        char *full = scoped_name(im, s, name);
        if (!full)
            return -ENOMEM;
        int t = index_find(&im->ix, im->g, full, &pos);
        free(full);
        if (t >= 0)
            return t;
    }
    return index_find(&im->ix, im->g, name, &pos);
}

/* Adds a tensor named `local` in the current scope; a name already present there is a duplicate
 * producer (`what` says which). */
static int add_named(struct importer *im, const char *local, const char *what)
{
    size_t pos;
    char *full = im->scope > 0 ? scoped_name(im, im->scope, local) : NULL;
    if (im->scope > 0 && !full)
        return seterr(im->err, im->errlen, -ENOMEM, "model %s: out of memory", im->g->name);
    const char *name = full ? full : local;
    int t = index_find(&im->ix, im->g, name, &pos);
    if (t >= 0) {
        const struct ir_tensor *x = &im->g->tensors[t];
        const char *prev = x->producer >= 0 ? "a node output"
                           : x->data        ? "an initializer or Constant"
                                            : "a graph input";
        t = seterr(im->err, im->errlen, -EINVAL,
                   "model %s: %s '%s' is already defined as %s (duplicate producer)", im->g->name,
                   what, name, prev);
        free(full);
        return t;
    }
    t = ir_add_tensor(im->g, name);
    free(full);
    if (t < 0)
        return seterr(im->err, im->errlen, t, "model %s: out of memory", im->g->name);
    im->ix.slot[pos] = t;
    return t;
}

static int import_initializers(struct importer *im, const Onnx__GraphProto *gp)
{
    if (gp->n_sparse_initializer > 0)
        return seterr(im->err, im->errlen, -ENOTSUP,
                      "model %s: sparse initializers are not supported", im->g->name);
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !*tp->name)
            return seterr(im->err, im->errlen, -EINVAL, "model %s: initializer %zu has no name",
                          im->g->name, i);
        char what[300];
        snprintf(what, sizeof(what), "model %s: initializer %s", im->g->name, tp->name);
        struct payload p;
        int rc = decode_payload(tp, im->base_dir, &p, what, im->err, im->errlen);
        if (rc)
            return rc;
        int t = add_named(im, tp->name, "initializer");
        if (t < 0) {
            free(p.data);
            return t;
        }
        ir_set_const(im->g, t, p.dtype, &p.shape, p.data);
    }
    return 0;
}

/* A sequence or optional input: its element type (a tensor type) after the IR_T_SEQ flags. */
static const Onnx__TypeProto *value_type(struct importer *im, struct ir_tensor *x,
                                         const Onnx__TypeProto *tp)
{
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type) {
        x->flags |= IR_T_SEQ;
        return tp->sequence_type->elem_type;
    }
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE && tp->optional_type) {
        const Onnx__TypeProto *e = tp->optional_type->elem_type;
        if (e && e->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && e->sequence_type) {
            x->flags |= IR_T_SEQ | IR_T_OPTSEQ; /* an optional of a sequence */
            return e->sequence_type->elem_type;
        }
        x->flags |= IR_T_SEQ | IR_T_OPTIONAL;
        return e;
    }
    (void)im;
    return tp;
}

/* Reads a graph input's declared type: dims with dim_param (or nothing) become -1. A sequence
 * (or optional) of tensors is flagged IR_T_SEQ with its element's type and shape. */
static int input_type(struct importer *im, struct ir_tensor *x, const Onnx__TypeProto *tp)
{
    tp = value_type(im, x, tp);
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return seterr(im->err, im->errlen, -ENOTSUP, "model %s: input '%s' is not a tensor%s",
                      im->g->name, x->name,
                      x->flags & IR_T_SEQ ? " or a sequence or optional of tensors" : "");
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int dt = tt->has_elem_type ? tt->elem_type : 0;
    if (!dtype_supported(dt))
        return seterr(im->err, im->errlen, -ENOTSUP,
                      "model %s: input '%s' has unsupported data type %s", im->g->name, x->name,
                      onnx_dtype_name(dt));
    x->dtype = dt;
    x->shape.rank = -1;
    if (!tt->shape)
        return 0;
    if (tt->shape->n_dim > ENGINE_MAX_RANK)
        return seterr(im->err, im->errlen, -EINVAL, "model %s: input '%s' has rank %zu > %d",
                      im->g->name, x->name, tt->shape->n_dim, ENGINE_MAX_RANK);
    x->shape.rank = (int)tt->shape->n_dim;
    x->shape_known = 1;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        int64_t v = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            v = d->dim_value;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && v < 0)
            return seterr(im->err, im->errlen, -EINVAL, "model %s: input '%s' has dim %lld",
                          im->g->name, x->name, (long long)v);
        if (v < 0)
            x->shape_known = 0;
        x->shape.dims[i] = v;
    }
    return 0;
}

static int import_inputs(struct importer *im, const Onnx__GraphProto *gp)
{
    im->g->inputs = calloc(gp->n_input + 1, sizeof(int));
    if (!im->g->inputs)
        return -ENOMEM;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name)
            return seterr(im->err, im->errlen, -EINVAL, "model %s: graph input %zu has no name",
                          im->g->name, i);
        size_t pos;
        int t = index_find(&im->ix, im->g, vi->name, &pos);
        if (t >= 0 && im->g->tensors[t].data)
            continue; /* an initializer listed as input (IR < 4): it stays a constant */
        t = add_named(im, vi->name, "graph input");
        if (t < 0)
            return t;
        im->g->tensors[t].flags |= IR_T_INPUT;
        int rc = input_type(im, &im->g->tensors[t], vi->type);
        if (rc)
            return rc;
        im->g->inputs[im->g->n_inputs++] = t;
    }
    return 0;
}

/* A malloc'd copy of n elements (at least one byte, so an empty list is not NULL). */
static void *dup_array(const void *src, size_t n, size_t esize)
{
    void *p = malloc(n ? n * esize : 1);
    if (p && n)
        memcpy(p, src, n * esize);
    return p;
}

static int copy_attr(struct importer *im, const char *node, const Onnx__AttributeProto *ap,
                     struct ir_attr *a)
{
    a->tensor = -1;
    a->name = strdup(ap->name ? ap->name : "");
    if (!a->name)
        return -ENOMEM;
    a->type = ap->has_type ? (enum ir_attr_type)ap->type : 0;
    switch (a->type) {
    case IR_ATTR_FLOAT:
        a->f = ap->f;
        return 0;
    case IR_ATTR_INT:
        a->i = ap->i;
        return 0;
    case IR_ATTR_STRING:
        a->s = malloc(ap->s.len + 1);
        if (!a->s)
            return -ENOMEM;
        if (ap->s.len)
            memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = '\0';
        return 0;
    case IR_ATTR_FLOATS:
        a->n = ap->n_floats;
        return (a->floats = dup_array(ap->floats, a->n, sizeof(float))) ? 0 : -ENOMEM;
    case IR_ATTR_INTS:
        a->n = ap->n_ints;
        return (a->ints = dup_array(ap->ints, a->n, sizeof(int64_t))) ? 0 : -ENOMEM;
    case IR_ATTR_TENSOR: {
        if (!ap->t)
            break;
        char what[600];
        snprintf(what, sizeof(what), "model %s: node %s: attribute %s", im->g->name, node, a->name);
        struct payload p;
        int rc = decode_payload(ap->t, im->base_dir, &p, what, im->err, im->errlen);
        if (rc)
            return rc;
        char base[600];
        snprintf(base, sizeof(base), "%s::", node);
        a->tensor = ir_add_const(im->g, base, a->name, p.dtype, &p.shape, p.data);
        return a->tensor < 0 ? a->tensor : 0;
    }
    case IR_ATTR_GRAPH:
        break; /* If branches: import_node */
    }
    return seterr(im->err, im->errlen, -ENOTSUP,
                  "model %s: node %s: attribute %s has an unsupported type (%d)", im->g->name, node,
                  a->name, (int)a->type);
}

/* A Constant node's single output becomes a constant tensor. */
static int import_constant(struct importer *im, const Onnx__NodeProto *np, const char *name)
{
    if (np->n_output != 1 || np->n_attribute != 1 || !np->output[0] || !*np->output[0])
        return seterr(im->err, im->errlen, -EINVAL,
                      "model %s: node %s (Constant): needs one output and one value attribute",
                      im->g->name, name);
    const Onnx__AttributeProto *ap = np->attribute[0];
    const char *an = ap->name ? ap->name : "";
    struct payload p = {0};
    int rc = 0;
    if (strcmp(an, "value") == 0 && ap->t) {
        char what[900];
        snprintf(what, sizeof(what), "model %s: node %s (Constant)", im->g->name, name);
        rc = decode_payload(ap->t, im->base_dir, &p, what, im->err, im->errlen);
    } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
        int f = an[6] == 'f';
        p.dtype = f ? ENGINE_F32 : ENGINE_I64;
        p.data = malloc(8);
        if (!p.data)
            return -ENOMEM;
        if (f)
            *(float *)p.data = ap->f;
        else
            *(int64_t *)p.data = ap->i;
    } else if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
        int f = an[6] == 'f';
        size_t n = f ? ap->n_floats : ap->n_ints;
        p.dtype = f ? ENGINE_F32 : ENGINE_I64;
        p.shape.rank = 1;
        p.shape.dims[0] = (int64_t)n;
        p.data = malloc(n ? n * 8 : 1);
        if (!p.data)
            return -ENOMEM;
        if (n)
            memcpy(p.data, f ? (void *)ap->floats : (void *)ap->ints, n * (f ? 4 : 8));
    } else {
        return seterr(im->err, im->errlen, -ENOTSUP,
                      "model %s: node %s (Constant): unsupported attribute %s", im->g->name, name,
                      an);
    }
    if (rc)
        return rc;
    int t = add_named(im, np->output[0], "Constant output");
    if (t < 0) {
        free(p.data);
        return t;
    }
    ir_set_const(im->g, t, p.dtype, &p.shape, p.data);
    return 0;
}

static int is_default_domain(const char *d)
{
    return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

static int add_pending(struct importer *im, const Onnx__NodeProto *np, int node)
{
    if (im->n_pend == im->cap_pend) {
        size_t cap = im->cap_pend ? im->cap_pend * 2 : 64;
        struct pending *p = realloc(im->pend, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        im->pend = p;
        im->cap_pend = cap;
    }
    im->pend[im->n_pend++] = (struct pending){.np = np, .node = node, .scope = im->scope};
    return 0;
}

/* Loop and Scan hold a body run once per iteration (ops/loop.c). */
static int is_loop_op(const char *op)
{
    return strcmp(op, "Loop") == 0 || strcmp(op, "Scan") == 0;
}

/* Room for one more node (subgraphs and legacy rewrites grow the array). */
static int node_room(struct ir_graph *g)
{
    if (g->n_nodes < g->cap_nodes)
        return 0;
    int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
    struct ir_node *nn = realloc(g->nodes, (size_t)cap * sizeof(*nn));
    if (!nn)
        return -ENOMEM;
    g->nodes = nn;
    g->cap_nodes = cap;
    return 0;
}

/* An If's then_branch / else_branch attribute or a Loop's / Scan's body: kept as the subgraph's
 * scope, imported after the node (import_branch, import_body); any other graph-valued attribute
 * is refused. */
static int branch_attr(struct importer *im, struct ir_node *n, const Onnx__AttributeProto *ap,
                       struct ir_attr *a)
{
    a->tensor = -1;
    if (!(a->name = strdup(ap->name ? ap->name : "")))
        return -ENOMEM;
    int loop = is_loop_op(n->op);
    int which = loop                                  ? (strcmp(a->name, "body") == 0 ? 0 : -1)
                : strcmp(a->name, "then_branch") == 0 ? 0
                : strcmp(a->name, "else_branch") == 0 ? 1
                                                      : -1;
    if ((!loop && strcmp(n->op, "If") != 0) || which < 0 || !ap->g)
        return ir_node_err(im->g, n, im->err, im->errlen, -ENOTSUP,
                           "graph attribute %s is not supported", a->name);
    if (im->pend[im->n_pend - 1].branch[which])
        return ir_node_err(im->g, n, im->err, im->errlen, -EINVAL, "attribute %s given twice",
                           a->name);
    im->pend[im->n_pend - 1].branch[which] = ap->g;
    a->type = IR_ATTR_GRAPH;
    a->i = -1; /* the scope, once imported */
    return 0;
}

/* Creates the node with its attributes and output tensors; inputs are resolved later. */
static int import_node(struct importer *im, const Onnx__NodeProto *np, size_t idx)
{
    struct ir_graph *g = im->g;
    const char *op = np->op_type ? np->op_type : "";
    char name[512];
    if (np->name && *np->name)
        snprintf(name, sizeof(name), "%s%s", scope_prefix(im, im->scope), np->name);
    else
        snprintf(name, sizeof(name), "%s%s_%zu", scope_prefix(im, im->scope), *op ? op : "node",
                 idx);
    if (!*op)
        return seterr(im->err, im->errlen, -EINVAL, "model %s: node %s has no op_type", g->name,
                      name);
    if (!is_default_domain(np->domain))
        return seterr(im->err, im->errlen, -ENOTSUP,
                      "model %s: node %s (%s): unsupported op domain '%s'", g->name, name, op,
                      np->domain);
    if (strcmp(op, "Constant") == 0)
        return import_constant(im, np, name);
    if (node_room(g) || add_pending(im, np, g->n_nodes))
        return seterr(im->err, im->errlen, -ENOMEM, "model %s: out of memory", g->name);
    struct ir_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof(*n));
    n->scope = im->scope;
    n->name = strdup(name);
    n->op = strdup(op);
    n->in = calloc(np->n_input + 1, sizeof(int));
    n->out = calloc(np->n_output + 1, sizeof(int));
    n->attrs = calloc(np->n_attribute + 1, sizeof(struct ir_attr));
    g->n_nodes++; /* owned by the graph from here on, so ir_free releases it on error */
    if (!n->name || !n->op || !n->in || !n->out || !n->attrs)
        return seterr(im->err, im->errlen, -ENOMEM, "model %s: out of memory", g->name);
    const struct ir_op_def *d = ir_op_find(op);
    if (!d)
        return ir_node_err(g, n, im->err, im->errlen, -ENOTSUP, "unsupported op");
    if (d->since > 7 && g->opset < d->since) /* below 7: legacy.c says what each op needs */
        return ir_node_err(g, n, im->err, im->errlen, -ENOTSUP,
                           "at opset %lld: the op exists from opset %d on", (long long)g->opset,
                           d->since);
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *ap = np->attribute[i];
        int rc = ap->has_type && ap->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
                     ? branch_attr(im, n, ap, &n->attrs[i])
                     : copy_attr(im, name, ap, &n->attrs[i]);
        n->n_attrs++;
        if (rc)
            return rc == -ENOMEM ? seterr(im->err, im->errlen, rc, "out of memory") : rc;
    }
    for (size_t i = 0; i < np->n_output; i++) {
        n->out[i] = -1;
        n->n_out++;
        if (!np->output[i] || !*np->output[i])
            continue;
        char what[600];
        snprintf(what, sizeof(what), "node %s (%s): output", name, op);
        int t = add_named(im, np->output[i], what);
        if (t < 0)
            return t;
        n = &g->nodes[g->n_nodes - 1];
        n->out[i] = t;
        g->tensors[t].producer = g->n_nodes - 1;
    }
    return 0;
}

static int import_scope(struct importer *im, const Onnx__GraphProto *gp, int depth);
static int new_scope(struct importer *im, int node, const char *an, int then);
static int enter_scope(struct importer *im, int s, const Onnx__GraphProto *gp, int depth);

/* Imports branch `which` of the If node pending at p (its nodes, initializers and Constants)
 * as a new scope. */
static int import_branch(struct importer *im, size_t p, int which, int depth)
{
    struct ir_graph *g = im->g;
    int node = im->pend[p].node;
    const Onnx__GraphProto *gp = im->pend[p].branch[which];
    const char *an = which ? "else_branch" : "then_branch";
    if (!gp)
        return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -EINVAL, "no %s", an);
    if (depth >= MAX_SCOPE_DEPTH)
        return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -ENOTSUP,
                           "If nested more than %d deep", MAX_SCOPE_DEPTH);
    if (gp->n_input)
        return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -EINVAL,
                           "%s has inputs (an If branch takes none)", an);
    int s = new_scope(im, node, an, !which);
    return s < 0 ? s : enter_scope(im, s, gp, depth);
}

/* A new scope for subgraph attribute `an` of node `node`, a child of the scope being imported;
 * returns its index or -ENOMEM. */
static int new_scope(struct importer *im, int node, const char *an, int then)
{
    struct ir_graph *g = im->g;
    if (g->n_scopes == g->cap_scopes) {
        int cap = g->cap_scopes ? g->cap_scopes * 2 : 8;
        struct ir_scope *sc = realloc(g->scopes, (size_t)cap * sizeof(*sc));
        if (!sc)
            return -ENOMEM;
        g->scopes = sc;
        g->cap_scopes = cap;
        if (g->n_scopes == 0)
            g->scopes[g->n_scopes++] = (struct ir_scope){.cond = -1}; /* the main graph */
    }
    int s = g->n_scopes;
    size_t len = strlen(g->nodes[node].name) + strlen(an) + 4;
    char *prefix = malloc(len);
    if (!prefix)
        return -ENOMEM;
    snprintf(prefix, len, "%s/%s/", g->nodes[node].name, an);
    g->scopes[s] =
        (struct ir_scope){.parent = im->scope, .cond = -1, .then = then, .prefix = prefix};
    g->n_scopes++;
    struct ir_node *n = &g->nodes[node];
    for (int i = 0; i < n->n_attrs; i++)
        if (n->attrs[i].type == IR_ATTR_GRAPH && strcmp(n->attrs[i].name, an) == 0)
            n->attrs[i].i = s;
    return s;
}

/* Imports subgraph gp as scope s (its initializers, nodes and their subgraphs). */
static int enter_scope(struct importer *im, int s, const Onnx__GraphProto *gp, int depth)
{
    int outer = im->scope;
    im->scope = s;
    int rc = import_scope(im, gp, depth + 1);
    im->scope = outer;
    return rc;
}

/* A Loop's or Scan's body (pending at p) as a new scope: its graph inputs become the scope's
 * vars, tensors without a producer the loop sets each iteration (their dtypes and shapes follow
 * from the node's inputs, ops/loop.c). */
static int import_body(struct importer *im, size_t p, int depth)
{
    struct ir_graph *g = im->g;
    int node = im->pend[p].node;
    const Onnx__GraphProto *gp = im->pend[p].branch[0];
    if (!gp)
        return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -EINVAL, "no body");
    if (depth >= MAX_SCOPE_DEPTH)
        return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -ENOTSUP,
                           "subgraphs nested more than %d deep", MAX_SCOPE_DEPTH);
    int s = new_scope(im, node, "body", 0);
    if (s < 0)
        return s;
    struct ir_scope *sc = &g->scopes[s];
    sc->body = 1;
    if (!(sc->vars = calloc(gp->n_input + 1, sizeof(int))))
        return -ENOMEM;
    int outer = im->scope;
    im->scope = s;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const Onnx__TypeProto *tp = vi->type;
        if (!vi->name || !*vi->name) {
            im->scope = outer;
            return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -EINVAL,
                               "body input %zu has no name", i);
        }
        int seq = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE;
        if (tp && tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && !seq) {
            im->scope = outer;
            return ir_node_err(g, &g->nodes[node], im->err, im->errlen, -ENOTSUP,
                               "body input '%s' is not a tensor or a sequence (an optional "
                               "carried by a loop is not supported)",
                               vi->name);
        }
        int t = add_named(im, vi->name, "body input");
        if (t < 0) {
            im->scope = outer;
            return t;
        }
        if (seq) /* a carried sequence: ops/loop.c takes one appended to per iteration */
            g->tensors[t].flags |= IR_T_SEQ;
        g->scopes[s].vars[g->scopes[s].n_vars++] = t;
    }
    im->scope = outer;
    return enter_scope(im, s, gp, depth);
}

/* Imports one graph's initializers (subgraphs only: the main graph's come first) and nodes, then
 * the branches of its If nodes and the bodies of its Loop and Scan nodes, each a scope of its
 * own. */
static int import_scope(struct importer *im, const Onnx__GraphProto *gp, int depth)
{
    if (im->scope > 0) {
        int rc = import_initializers(im, gp);
        if (rc)
            return rc;
    }
    size_t first = im->n_pend;
    for (size_t i = 0; i < gp->n_node; i++) {
        int rc = import_node(im, gp->node[i], i);
        if (rc)
            return rc;
    }
    for (size_t p = first, end = im->n_pend; p < end; p++) {
        const char *op = im->g->nodes[im->pend[p].node].op;
        if (im->pend[p].scope != im->scope || (strcmp(op, "If") && !is_loop_op(op)))
            continue;
        int rc = is_loop_op(op) ? import_body(im, p, depth) : import_branch(im, p, 0, depth);
        if (!rc && !is_loop_op(op))
            rc = import_branch(im, p, 1, depth);
        if (rc)
            return rc == -ENOMEM ? seterr(im->err, im->errlen, rc, "out of memory") : rc;
    }
    return 0;
}

static int resolve_name(struct importer *im, struct ir_node *n, int scope, const char *in, int *t)
{
    *t = -1;
    if (!in || !*in)
        return 0;
    *t = find_scoped(im, scope, in);
    if (*t == -ENOMEM)
        return seterr(im->err, im->errlen, -ENOMEM, "out of memory");
    if (*t < 0)
        return ir_node_err(im->g, n, im->err, im->errlen, -EINVAL,
                           "input '%s' is not defined (no initializer, graph input or node "
                           "output has that name)",
                           in);
    return 0;
}

/* An If reads its condition, then every output of then_branch and of else_branch. */
static int resolve_if(struct importer *im, const struct pending *p, struct ir_node *n)
{
    size_t k = p->np->n_output;
    if (p->np->n_input != 1 || k == 0)
        return ir_node_err(im->g, n, im->err, im->errlen, -EINVAL,
                           "needs one input (the condition) and at least one output");
    for (int b = 0; b < 2; b++)
        if (p->branch[b]->n_output != k)
            return ir_node_err(im->g, n, im->err, im->errlen, -EINVAL,
                               "%s has %zu outputs, the node %zu",
                               b ? "else_branch" : "then_branch", p->branch[b]->n_output, k);
    int *in = realloc(n->in, (2 * k + 2) * sizeof(int));
    if (!in)
        return seterr(im->err, im->errlen, -ENOMEM, "out of memory");
    n->in = in;
    n->n_in = 1 + 2 * (int)k;
    int rc = resolve_name(im, n, p->scope, p->np->input[0], &n->in[0]);
    for (int b = 0; b < 2 && !rc; b++) {
        int s = (int)ir_attr_get(n, b ? "else_branch" : "then_branch")->i;
        im->g->scopes[s].cond = n->in[0];
        for (size_t i = 0; i < k && !rc; i++) {
            const char *name = p->branch[b]->output[i]->name;
            rc = resolve_name(im, n, s, name, &n->in[1 + b * k + i]);
            if (!rc && n->in[1 + b * k + i] < 0)
                rc = ir_node_err(im->g, n, im->err, im->errlen, -EINVAL,
                                 "%s output %zu has no name", b ? "else_branch" : "then_branch", i);
        }
    }
    if (!rc && n->in[0] < 0)
        rc = ir_node_err(im->g, n, im->err, im->errlen, -EINVAL, "no condition");
    return rc;
}

/* A Loop or Scan reads its own inputs, then every output of its body; the body's nodes wait
 * for its own inputs (scope deps, topo_sort). */
static int resolve_body(struct importer *im, const struct pending *p, struct ir_node *n)
{
    size_t k = p->np->n_input, nb = p->branch[0]->n_output;
    int s = (int)ir_attr_get(n, "body")->i;
    int *in = realloc(n->in, (k + nb + 1) * sizeof(int));
    int *deps = calloc(k + 1, sizeof(int));
    if (!in || !deps) {
        free(deps);
        if (in)
            n->in = in;
        return seterr(im->err, im->errlen, -ENOMEM, "out of memory");
    }
    n->in = in;
    im->g->scopes[s].deps = deps;
    int rc = 0;
    for (size_t i = 0; i < k && !rc; i++) {
        rc = resolve_name(im, n, p->scope, p->np->input[i], &n->in[i]);
        deps[i] = n->in[i];
        n->n_in++;
        im->g->scopes[s].n_deps++;
    }
    for (size_t i = 0; i < nb && !rc; i++) {
        rc = resolve_name(im, n, s, p->branch[0]->output[i]->name, &n->in[k + i]);
        n->n_in++;
        if (!rc && n->in[k + i] < 0)
            rc = ir_node_err(im->g, n, im->err, im->errlen, -EINVAL, "body output %zu has no name",
                             i);
    }
    return rc;
}

static int resolve_inputs(struct importer *im, const struct pending *p)
{
    struct ir_node *n = &im->g->nodes[p->node];
    if (strcmp(n->op, "If") == 0)
        return resolve_if(im, p, n);
    if (is_loop_op(n->op))
        return resolve_body(im, p, n);
    for (size_t i = 0; i < p->np->n_input; i++) {
        int rc = resolve_name(im, n, p->scope, p->np->input[i], &n->in[i]);
        n->n_in++;
        if (rc)
            return rc;
    }
    return 0;
}

static int import_nodes(struct importer *im, const Onnx__GraphProto *gp)
{
    int rc = import_scope(im, gp, 0);
    for (size_t i = 0; i < im->n_pend && rc == 0; i++)
        rc = resolve_inputs(im, &im->pend[i]);
    return rc;
}

/* What node n waits for: its inputs, then the condition of every branch it is in (so a branch
 * node comes after the condition that may drop it) and the inputs of every Loop/Scan whose body
 * it is in (so the body's vars can take their shapes from them). */
static int scope_deps(const struct ir_scope *sc)
{
    return sc->body ? sc->n_deps : 1;
}

static int n_deps(const struct ir_graph *g, const struct ir_node *n)
{
    int d = n->n_in;
    for (int s = n->scope; s > 0; s = g->scopes[s].parent)
        d += scope_deps(&g->scopes[s]);
    return d;
}

static int dep(const struct ir_graph *g, const struct ir_node *n, int k)
{
    if (k < n->n_in)
        return n->in[k];
    k -= n->n_in;
    int s = n->scope;
    while (k >= scope_deps(&g->scopes[s])) {
        k -= scope_deps(&g->scopes[s]);
        s = g->scopes[s].parent;
    }
    return g->scopes[s].body ? g->scopes[s].deps[k] : g->scopes[s].cond;
}

/* Kahn's algorithm; ready nodes keep the model's order. */
static int topo_sort(struct importer *im)
{
    struct ir_graph *g = im->g;
    int n = g->n_nodes, rc = 0;
    int *indeg = calloc((size_t)n + 1, sizeof(int));
    int *order = calloc((size_t)n + 1, sizeof(int));
    int *start = calloc((size_t)n + 2, sizeof(int));
    int edges = 0;
    for (int i = 0; i < n; i++)
        edges += n_deps(g, &g->nodes[i]);
    int *adj = calloc((size_t)edges + 1, sizeof(int));
    struct ir_node *sorted = calloc((size_t)n + 1, sizeof(*sorted));
    int *fill = calloc((size_t)n + 1, sizeof(int));
    if (!indeg || !order || !start || !adj || !sorted || !fill) {
        rc = seterr(im->err, im->errlen, -ENOMEM, "model %s: out of memory", g->name);
        goto out;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n_deps(g, &g->nodes[i]); k++) {
            int t = dep(g, &g->nodes[i], k);
            if (t >= 0 && g->tensors[t].producer >= 0) {
                start[g->tensors[t].producer + 1]++;
                indeg[i]++;
            }
        }
    for (int i = 0; i < n; i++)
        start[i + 1] += start[i];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n_deps(g, &g->nodes[i]); k++) {
            int t = dep(g, &g->nodes[i], k);
            if (t >= 0 && g->tensors[t].producer >= 0) {
                int p = g->tensors[t].producer;
                adj[start[p] + fill[p]++] = i;
            }
        }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0)
            order[tail++] = i;
    while (head < tail) {
        int p = order[head++];
        for (int e = start[p]; e < start[p + 1]; e++)
            if (--indeg[adj[e]] == 0)
                order[tail++] = adj[e];
    }
    if (tail < n) {
        for (int i = 0; i < n; i++)
            if (indeg[i] > 0) {
                rc = ir_node_err(g, &g->nodes[i], im->err, im->errlen, -EINVAL,
                                 "the graph has a cycle through this node");
                break;
            }
        goto out;
    }
    for (int i = 0; i < n; i++) {
        sorted[i] = g->nodes[order[i]];
        for (int k = 0; k < sorted[i].n_out; k++)
            if (sorted[i].out[k] >= 0)
                g->tensors[sorted[i].out[k]].producer = i;
    }
    free(g->nodes);
    g->nodes = sorted;
    g->cap_nodes = n + 1;
    sorted = NULL;
out:
    free(indeg);
    free(order);
    free(start);
    free(adj);
    free(sorted);
    free(fill);
    return rc;
}

static int import_outputs(struct importer *im, const Onnx__GraphProto *gp)
{
    struct ir_graph *g = im->g;
    if (gp->n_output == 0)
        return seterr(im->err, im->errlen, -EINVAL, "model %s: the graph has no outputs", g->name);
    g->outputs = calloc(gp->n_output, sizeof(int));
    g->output_dtypes = calloc(gp->n_output, sizeof(int));
    g->output_seq = calloc(gp->n_output, sizeof(int));
    if (!g->outputs || !g->output_dtypes || !g->output_seq)
        return -ENOMEM;
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name ? gp->output[i]->name : "";
        size_t pos;
        int t = index_find(&im->ix, g, name, &pos);
        if (t < 0)
            return seterr(im->err, im->errlen, -EINVAL,
                          "model %s: graph output '%s' is not produced by any node", g->name, name);
        if (g->tensors[t].flags & IR_T_OUTPUT)
            return seterr(im->err, im->errlen, -EINVAL,
                          "model %s: graph output '%s' is listed twice", g->name, name);
        g->tensors[t].flags |= IR_T_OUTPUT;
        const Onnx__TypeProto *tp = gp->output[i]->type;
        struct ir_tensor kind = {0};
        tp = value_type(im, &kind, tp);
        g->output_seq[g->n_outputs] = kind.flags & IR_T_OPTIONAL ? 2 : kind.flags ? 1 : 0;
        /* an optional of a sequence is returned as its sequence (1) */
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type &&
            tp->tensor_type->has_elem_type)
            g->output_dtypes[g->n_outputs] = tp->tensor_type->elem_type;
        g->outputs[g->n_outputs++] = t;
    }
    return 0;
}

static int model_opset(struct importer *im, const Onnx__ModelProto *m)
{
    int64_t opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (is_default_domain(o->domain) && o->has_version)
            opset = o->version;
    }
    if (opset < 0)
        return seterr(im->err, im->errlen, -EINVAL,
                      "model %s: no opset_import for the default ONNX domain", im->g->name);
    if (opset < MIN_OPSET || opset > MAX_OPSET)
        return seterr(im->err, im->errlen, -ENOTSUP,
                      "model %s: opset %lld is not supported (supported: %d to %d); re-export "
                      "the model with a supported opset",
                      im->g->name, (long long)opset, MIN_OPSET, MAX_OPSET);
    im->g->opset = opset;
    return 0;
}

/* Adds the names graph gp and the branches of its nodes define to *expect (the name index is
 * sized once); refuses counts over MAX_ITEMS and branches nested deeper than MAX_SCOPE_DEPTH. */
static int count_names(struct importer *im, const Onnx__GraphProto *gp, int depth, size_t *expect)
{
    if (depth > MAX_SCOPE_DEPTH)
        return seterr(im->err, im->errlen, -ENOTSUP, "model %s: subgraphs nested more than %d deep",
                      im->g->name, MAX_SCOPE_DEPTH);
    if (gp->n_node > MAX_ITEMS || gp->n_initializer > MAX_ITEMS || gp->n_input > MAX_ITEMS ||
        gp->n_output > MAX_ITEMS)
        return seterr(im->err, im->errlen, -EFBIG, "model %s: too many nodes or tensors",
                      im->g->name);
    *expect += gp->n_initializer + gp->n_input + gp->n_output;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (np->n_output > MAX_ITEMS || *expect > MAX_ITEMS * (size_t)4)
            return seterr(im->err, im->errlen, -EFBIG, "model %s: too many tensors", im->g->name);
        *expect += np->n_output;
        for (size_t a = 0; a < np->n_attribute; a++) {
            const Onnx__AttributeProto *ap = np->attribute[a];
            int rc = ap->g ? count_names(im, ap->g, depth + 1, expect) : 0;
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int import_graph(struct importer *im, const Onnx__ModelProto *m)
{
    const Onnx__GraphProto *gp = m->graph;
    if (!gp)
        return seterr(im->err, im->errlen, -EINVAL, "model %s: no graph", im->g->name);
    int rc = model_opset(im, m);
    if (rc)
        return rc;
    size_t expect = 0;
    if ((rc = count_names(im, gp, 0, &expect)) != 0)
        return rc;
    if ((rc = index_init(&im->ix, expect)) != 0)
        return seterr(im->err, im->errlen, rc, "model %s: out of memory", im->g->name);
    if ((rc = import_initializers(im, gp)) || (rc = import_inputs(im, gp)) ||
        (rc = import_nodes(im, gp)) || (rc = ir_legacy_nodes(im->g, im->err, im->errlen)) ||
        (rc = topo_sort(im)) || (rc = import_outputs(im, gp)))
        return rc;
    return 0;
}

int ir_import_onnx(const void *bytes, size_t len, const char *base_dir, const char *model_name,
                   struct ir_graph **out, char *err, size_t errlen)
{
    const char *mname = model_name ? model_name : "model";
    *out = NULL;
    if (!bytes || len == 0)
        return seterr(err, errlen, -EINVAL, "model %s: empty file (0 bytes), not an ONNX model",
                      mname);
    if (len > MAX_MODEL_BYTES)
        return seterr(err, errlen, -EFBIG, "model %s: %zu bytes exceeds protobuf's 2 GiB limit",
                      mname, len);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, bytes);
    if (!m)
        return seterr(err, errlen, -EINVAL,
                      "model %s: not a valid ONNX model (protobuf parse failed: truncated or "
                      "corrupt file)",
                      mname);
    struct importer im = {.base_dir = base_dir, .err = err, .errlen = errlen};
    im.g = calloc(1, sizeof(*im.g));
    int rc = -ENOMEM;
    if (im.g && (im.g->name = strdup(mname)) != NULL)
        rc = import_graph(&im, m);
    else
        seterr(err, errlen, rc, "model %s: out of memory", mname);
    free(im.ix.slot);
    free(im.pend);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc) {
        ir_free(im.g);
        return rc;
    }
    *out = im.g;
    return 0;
}
