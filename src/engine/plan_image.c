/*
 * plan_image.c — the plan image as bytes: the builder the compiler fills, the final layout with
 * both hashes, the validating view model open lays over an untrusted image, and the activation
 * layouts an image may name.
 *
 * Layout (docs/plan-format.md): header, then the sections tensors, nodes, index, strings, mds,
 * weights, in that order, each starting on a 64-byte boundary. Two SHA-256s live at the front of
 * the header: `tables_sha256` covers everything from the field after it up to the weights (cheap,
 * checked on every open); `image_sha256` covers everything after itself, weights included
 * (engine_image_verify, run by the store when it adopts a file).
 */
#include "common/common.h"
#include "engine/plan_image.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- layouts and memory descs of plan tensors ---- */

struct layout_def {
    dnnl_format_tag_t tag;
    uint32_t rank;
    int block;
};

static const struct layout_def layouts[] = {
    {dnnl_aBc8b, 3, 8},   {dnnl_aBcd8b, 4, 8},   {dnnl_aBcde8b, 5, 8},
    {dnnl_aBc16b, 3, 16}, {dnnl_aBcd16b, 4, 16}, {dnnl_aBcde16b, 5, 16},
    {dnnl_acb, 3, 1},     {dnnl_acdb, 4, 1},     {dnnl_acdeb, 5, 1},
};

static const struct layout_def *layout_find(uint32_t layout)
{
    for (size_t i = 0; i < ARRAY_LEN(layouts); i++)
        if ((uint32_t)layouts[i].tag == layout)
            return &layouts[i];
    return NULL;
}

/* 1 if layout is plain or one of the blocked/channels-last tags allowed for this rank. */
static int plan_layout_valid(uint32_t layout, uint32_t rank)
{
    const struct layout_def *d = layout_find(layout);
    return layout == PLAN_LAYOUT_PLAIN || (d && d->rank == rank);
}

int plan_layout_channels_last(uint32_t layout)
{
    return layout == dnnl_acb || layout == dnnl_acdb || layout == dnnl_acdeb;
}

int plan_layout_block(uint32_t layout)
{
    const struct layout_def *d = layout_find(layout);
    return d ? d->block : 1;
}

/* md is plain row-major, stride for stride: oneDNN's equality ignores the strides of size-1 dims,
 * so with one channel plain also "equals" channels-last. */
static int md_exactly_plain(const dnnl_memory_desc_t *md)
{
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked || bd->inner_nblks != 0 || md->offset0 != 0)
        return 0;
    dnnl_dim_t stride = 1;
    for (int i = md->ndims - 1; i >= 0; i--) {
        if (md->padded_dims[i] != md->dims[i] || bd->strides[i] != stride)
            return 0;
        stride *= md->dims[i];
    }
    return 1;
}

dnnl_data_type_t plan_dnnl_dtype(uint32_t dtype)
{
    switch (dtype) {
    case ENGINE_F32:
        return dnnl_f32;
    case ENGINE_U8:
        return dnnl_u8;
    case ENGINE_I8:
        return dnnl_s8;
    case ENGINE_I32:
        return dnnl_s32;
    default:
        return dnnl_data_type_undef;
    }
}

uint32_t plan_layout_of(const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t cand;
    if (md->ndims < 1 || md->ndims > ENGINE_MAX_RANK || md_exactly_plain(md))
        return PLAN_LAYOUT_PLAIN; /* the layout oneDNN chose is plain, not its channels-last twin
                                     (a 1-input-channel Conv keeps its jit kernel) */
    for (size_t i = 0; i < ARRAY_LEN(layouts); i++)
        if (layouts[i].rank == (uint32_t)md->ndims &&
            dnnl_memory_desc_init_by_tag(&cand, md->ndims, md->dims, md->data_type,
                                         layouts[i].tag) ==
                dnnl_success &&
            dnnl_memory_desc_equal(&cand, md))
            return (uint32_t)layouts[i].tag;
    return PLAN_LAYOUT_PLAIN;
}

int plan_tensor_md(const struct plan_tensor *t, int rank, uint32_t collapse, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims;
    int nd;
    dnnl_data_type_t dt = plan_dnnl_dtype(t->dtype);
    if (dt == dnnl_data_type_undef || t->rank > ENGINE_MAX_RANK)
        return -EINVAL;
    if (t->layout != PLAN_LAYOUT_PLAIN) {
        if (collapse || rank > (int)t->rank || t->rank == 0 ||
            (t->layout != PLAN_LAYOUT_ANY && !plan_layout_valid(t->layout, t->rank)))
            return -EINVAL;
        memcpy(dims, t->dims, t->rank * sizeof(dims[0]));
        return dnnl_memory_desc_init_by_tag(md, (int)t->rank, dims, dt,
                                            (dnnl_format_tag_t)t->layout) == dnnl_success
                   ? 0
                   : -EINVAL;
    }
    if (collapse > 0 && collapse < t->rank) {
        dims[0] = dims[1] = 1;
        for (uint32_t i = 0; i < t->rank; i++)
            dims[i < collapse ? 0 : 1] *= t->dims[i];
        nd = 2;
    } else {
        nd = rank > (int)t->rank ? rank : (int)t->rank;
        if (nd == 0)
            nd = 1;
        int pad = nd - (int)t->rank;
        for (int i = 0; i < nd; i++)
            dims[i] = i < pad ? 1 : t->dims[i - pad];
    }
    return dnnl_memory_desc_init_by_strides(md, nd, dims, dt, NULL) == dnnl_success ? 0 : -EINVAL;
}

/* ---- builder ---- */

void plan_builder_init(struct plan_builder *b)
{
    memset(b, 0, sizeof(*b));
}

void plan_builder_free(struct plan_builder *b)
{
    free(b->tensors);
    free(b->nodes);
    free(b->index);
    free(b->strings);
    free(b->mds);
    free(b->weights);
    memset(b, 0, sizeof(*b));
}

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap); 0 or -ENOMEM. */
static int grow(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint64_t n = *cap ? *cap : 16;
    while (n < need)
        n += n / 2 + 16; /* 1.5x: the weights buffer is as large as the model */
    if (n > SIZE_MAX / elem)
        return -ENOMEM;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    memset((uint8_t *)q + *cap * elem, 0, (n - *cap) * elem);
    *p = q;
    *cap = n;
    return 0;
}

#define GROW32(b, field, capfield, need)                                                           \
    __extension__({                                                                                \
        uint64_t cap_ = (b)->capfield;                                                             \
        int rc_ = grow((void **)&(b)->field, &cap_, (need), sizeof(*(b)->field));                  \
        (b)->capfield = (uint32_t)cap_;                                                            \
        rc_;                                                                                       \
    })

int64_t plan_add_string(struct plan_builder *b, const char *s)
{
    size_t n = strlen(s) + 1;
    if (grow((void **)&b->strings, &b->cap_strings, b->strings_size + n, 1) < 0)
        return -ENOMEM;
    if (b->strings_size + n > UINT32_MAX)
        return -E2BIG;
    memcpy(b->strings + b->strings_size, s, n);
    b->strings_size += n;
    return (int64_t)(b->strings_size - n);
}

int64_t plan_add_tensor(struct plan_builder *b, const struct plan_tensor *t)
{
    if (b->n_tensors >= PLAN_MAX_TENSORS || GROW32(b, tensors, cap_tensors, b->n_tensors + 1ull))
        return -ENOMEM;
    b->tensors[b->n_tensors] = *t;
    return b->n_tensors++;
}

int64_t plan_add_node(struct plan_builder *b, const struct plan_node *n)
{
    if (b->n_nodes >= PLAN_MAX_NODES || GROW32(b, nodes, cap_nodes, b->n_nodes + 1ull))
        return -ENOMEM;
    b->nodes[b->n_nodes] = *n;
    return b->n_nodes++;
}

int64_t plan_add_index(struct plan_builder *b, int32_t v)
{
    if (b->n_index >= INT32_MAX || GROW32(b, index, cap_index, b->n_index + 1ull))
        return -ENOMEM;
    b->index[b->n_index] = v;
    return b->n_index++;
}

int64_t plan_add_md(struct plan_builder *b, const dnnl_memory_desc_t *md)
{
    if (b->n_mds >= PLAN_MAX_NODES || GROW32(b, mds, cap_mds, b->n_mds + 1ull))
        return -ENOMEM;
    b->mds[b->n_mds] = *md;
    return b->n_mds++;
}

int plan_reserve_weights(struct plan_builder *b, uint64_t nbytes)
{
    return grow((void **)&b->weights, &b->cap_weights, nbytes, 1);
}

int64_t plan_add_weights(struct plan_builder *b, uint64_t nbytes)
{
    uint64_t off = ALIGN_UP(b->weights_size, PLAN_ALIGN);
    if (nbytes > UINT64_MAX / 2 - off)
        return -E2BIG;
    if (grow((void **)&b->weights, &b->cap_weights, off + nbytes, 1) < 0)
        return -ENOMEM;
    b->weights_size = off + nbytes;
    assert(off % PLAN_ALIGN == 0); /* every weight blob starts on a 64-byte boundary */
    return (int64_t)off;
}

void plan_builder_view(const struct plan_builder *b, struct plan_view *v)
{
    memset(v, 0, sizeof(*v));
    v->h = &b->h;
    v->tensors = b->tensors;
    v->n_tensors = b->n_tensors;
    v->nodes = b->nodes;
    v->n_nodes = b->n_nodes;
    v->index = b->index;
    v->n_index = b->n_index;
    v->strings = b->strings;
    v->strings_size = b->strings_size;
    v->mds = b->mds;
    v->n_mds = b->n_mds;
    v->weights = b->weights;
    v->weights_size = b->weights_size;
}

static void place(struct plan_header *h, enum plan_section_id id, uint64_t *pos, uint64_t size,
                  uint64_t count)
{
    *pos = ALIGN_UP(*pos, PLAN_ALIGN);
    h->sec[id].offset = *pos;
    h->sec[id].size = size;
    h->sec[id].count = count;
    *pos += size;
}

static void copy_section(uint8_t *img, const struct plan_header *h, enum plan_section_id id,
                         const void *src)
{
    if (h->sec[id].size)
        memcpy(img + h->sec[id].offset, src, h->sec[id].size);
}

/* Recomputes both hashes of an image (or plan part) of len bytes after its header changed. */
static void reseal(uint8_t *img, uint64_t len)
{
    struct plan_header *h = (struct plan_header *)img;
    uint64_t tables_end = h->sec[PLAN_SEC_WEIGHTS].offset;
    sha256(img + PLAN_TABLES_HASHED_FROM, tables_end - PLAN_TABLES_HASHED_FROM, h->tables_sha256);
    sha256(img + PLAN_IMAGE_HASHED_FROM, len - PLAN_IMAGE_HASHED_FROM, h->image_sha256);
}

int plan_builder_finish(struct plan_builder *b, void **image, size_t *len, char *err, size_t errlen)
{
    struct plan_header *h = &b->h;
    memcpy(h->magic, PLAN_MAGIC, sizeof(h->magic));
    h->format_version = PLAN_FORMAT_VERSION;
    h->header_size = sizeof(*h);
    uint64_t pos = sizeof(*h);
    place(h, PLAN_SEC_TENSORS, &pos, (uint64_t)b->n_tensors * sizeof(*b->tensors), b->n_tensors);
    place(h, PLAN_SEC_NODES, &pos, (uint64_t)b->n_nodes * sizeof(*b->nodes), b->n_nodes);
    place(h, PLAN_SEC_INDEX, &pos, (uint64_t)b->n_index * sizeof(*b->index), b->n_index);
    place(h, PLAN_SEC_STRINGS, &pos, b->strings_size, 0);
    place(h, PLAN_SEC_MDS, &pos, (uint64_t)b->n_mds * sizeof(*b->mds), b->n_mds);
    place(h, PLAN_SEC_WEIGHTS, &pos, b->weights_size, 0);
    uint64_t total = ALIGN_UP(pos, PLAN_ALIGN);
    h->image_size = total;
    uint8_t *img = aligned_alloc(PLAN_ALIGN, total);
    if (!img)
        return seterr(err, errlen, -ENOMEM, "out of memory for a %llu-byte plan image",
                      (unsigned long long)total);
    memset(img, 0, total);
    copy_section(img, h, PLAN_SEC_TENSORS, b->tensors);
    copy_section(img, h, PLAN_SEC_NODES, b->nodes);
    copy_section(img, h, PLAN_SEC_INDEX, b->index);
    copy_section(img, h, PLAN_SEC_STRINGS, b->strings);
    copy_section(img, h, PLAN_SEC_MDS, b->mds);
    copy_section(img, h, PLAN_SEC_WEIGHTS, b->weights);
    struct plan_header *out = (struct plan_header *)img;
    memcpy(out, h, sizeof(*h));
    sha256(b->weights, b->weights_size, out->weights_sha256);
    reseal(img, total);
    *image = img;
    *len = total;
    return 0;
}

void engine_image_free(void *image)
{
    free(image);
}

/* ---- validation of an untrusted image ---- */

static int check_header(const uint8_t *p, size_t len, char *err, size_t errlen)
{
    if ((uintptr_t)p % PLAN_ALIGN)
        return seterr(err, errlen, -EINVAL,
                      "plan image must start on a 64-byte boundary (map the file or use the "
                      "compiler's buffer)");
    if (len < sizeof(struct plan_header))
        return seterr(err, errlen, -EINVAL, "not a plan image: %zu bytes is shorter than a header",
                      len);
    const struct plan_header *h = (const struct plan_header *)p;
    if (memcmp(h->magic, PLAN_MAGIC, sizeof(h->magic)) != 0)
        return seterr(err, errlen, -EINVAL, "not a plan image: bad magic");
    if (h->format_version != PLAN_FORMAT_VERSION)
        return seterr(err, errlen, -EPROTO,
                      "plan image format version %u, this engine reads version %u; recompile",
                      h->format_version, PLAN_FORMAT_VERSION);
    if (h->header_size != sizeof(*h))
        return seterr(err, errlen, -EINVAL, "plan image header size %u, expected %zu",
                      h->header_size, sizeof(*h));
    if (h->image_size != len)
        return seterr(err, errlen, -EINVAL,
                      "plan image truncated or padded: header says %llu bytes, got %zu",
                      (unsigned long long)h->image_size, len);
    if (h->flags & ~(uint32_t)PLAN_HF_KNOWN)
        return seterr(err, errlen, -EPROTO, "plan image has unknown header flags 0x%x; recompile",
                      h->flags & ~(uint32_t)PLAN_HF_KNOWN);
    return 0;
}

static const size_t sec_elem[PLAN_SEC_COUNT] = {
    [PLAN_SEC_TENSORS] = sizeof(struct plan_tensor),
    [PLAN_SEC_NODES] = sizeof(struct plan_node),
    [PLAN_SEC_INDEX] = sizeof(int32_t),
    [PLAN_SEC_STRINGS] = 0,
    [PLAN_SEC_MDS] = sizeof(dnnl_memory_desc_t),
    [PLAN_SEC_WEIGHTS] = 0,
};

static const char *const sec_name[PLAN_SEC_COUNT] = {"tensors", "nodes", "index",
                                                     "strings", "mds",   "weights"};

static int check_sections(const struct plan_header *h, size_t len, char *err, size_t errlen)
{
    uint64_t prev_end = sizeof(*h);
    int external = (h->flags & PLAN_HF_EXTERNAL_WEIGHTS) != 0;
    for (int i = 0; i < PLAN_SEC_COUNT; i++) {
        const struct plan_section *s = &h->sec[i];
        if (i == PLAN_SEC_WEIGHTS && external) {
            /* a plan part ends where its weights would begin; the blob is bounded on its own */
            if (s->offset != len || s->offset < prev_end || s->size > PLAN_MAX_WEIGHTS_BYTES ||
                s->count != 0)
                return seterr(err, errlen, -EINVAL,
                              "plan part: external weights section (offset %llu, %llu bytes) must "
                              "start at the part's end (%zu bytes) and hold at most 2^40 bytes",
                              (unsigned long long)s->offset, (unsigned long long)s->size, len);
            continue;
        }
        if (s->offset % PLAN_ALIGN || s->offset < prev_end || s->offset > len ||
            s->size > len - s->offset)
            return seterr(err, errlen, -EINVAL,
                          "plan image: section %s (offset %llu, %llu bytes) outside the %zu-byte "
                          "image or misaligned",
                          sec_name[i], (unsigned long long)s->offset, (unsigned long long)s->size,
                          len);
        if (sec_elem[i] &&
            (s->count > PLAN_MAX_TENSORS * 4ull || s->size != s->count * sec_elem[i]))
            return seterr(err, errlen, -EINVAL,
                          "plan image: section %s holds %llu bytes for %llu entries", sec_name[i],
                          (unsigned long long)s->size, (unsigned long long)s->count);
        prev_end = s->offset + s->size;
    }
    const struct plan_section *str = &h->sec[PLAN_SEC_STRINGS];
    if (str->size == 0)
        return seterr(err, errlen, -EINVAL, "plan image: empty string table");
    return 0;
}

/* The header, then the section table against len. */
static int check_layout(const uint8_t *p, size_t len, char *err, size_t errlen)
{
    int rc = check_header(p, len, err, errlen);
    return rc ? rc : check_sections((const struct plan_header *)p, len, err, errlen);
}

static void view_tables(struct plan_view *v)
{
    const struct plan_header *h = v->h;
    v->tensors = (const struct plan_tensor *)(v->base + h->sec[PLAN_SEC_TENSORS].offset);
    v->n_tensors = (uint32_t)h->sec[PLAN_SEC_TENSORS].count;
    v->nodes = (const struct plan_node *)(v->base + h->sec[PLAN_SEC_NODES].offset);
    v->n_nodes = (uint32_t)h->sec[PLAN_SEC_NODES].count;
    v->index = (const int32_t *)(v->base + h->sec[PLAN_SEC_INDEX].offset);
    v->n_index = (uint32_t)h->sec[PLAN_SEC_INDEX].count;
    v->strings = (const char *)(v->base + h->sec[PLAN_SEC_STRINGS].offset);
    v->strings_size = h->sec[PLAN_SEC_STRINGS].size;
    v->mds = (const dnnl_memory_desc_t *)(v->base + h->sec[PLAN_SEC_MDS].offset);
    v->n_mds = (uint32_t)h->sec[PLAN_SEC_MDS].count;
    v->weights = v->base + h->sec[PLAN_SEC_WEIGHTS].offset;
    v->weights_size = h->sec[PLAN_SEC_WEIGHTS].size;
}

static int check_string(const struct plan_view *v, uint32_t off, int optional, const char *what,
                        uint32_t i, char *err, size_t errlen)
{
    if (off < v->strings_size || (optional && off == PLAN_NONE))
        return 0;
    return seterr(err, errlen, -EINVAL, "plan image: %s %u names string %u outside the table", what,
                  i, off);
}

static int check_tensor(const struct plan_view *v, uint32_t i, char *err, size_t errlen)
{
    const struct plan_tensor *t = &v->tensors[i];
    int rc = check_string(v, t->name, 0, "tensor", i, err, errlen);
    if (rc)
        return rc;
    const char *name = v->strings + t->name;
    size_t esize = engine_dtype_size((int)t->dtype);
    if (!esize || t->rank > ENGINE_MAX_RANK || !plan_layout_valid(t->layout, t->rank) ||
        (t->layout != PLAN_LAYOUT_PLAIN &&
         (t->storage != PLAN_ST_ARENA || plan_dnnl_dtype(t->dtype) == dnnl_data_type_undef)))
        return seterr(err, errlen, -EINVAL,
                      "plan image: tensor %s: bad dtype %u, rank %u or layout", name, t->dtype,
                      t->rank);
    struct engine_shape s = {.rank = (int)t->rank};
    memcpy(s.dims, t->dims, sizeof(s.dims));
    int64_t numel = engine_shape_numel(&s);
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / 16 / esize)
        return seterr(err, errlen, -EINVAL, "plan image: tensor %s: bad dims", name);
    uint64_t want = (uint64_t)numel * esize;
    dnnl_memory_desc_t md;
    if (t->layout != PLAN_LAYOUT_PLAIN) {
        if (plan_tensor_md(t, 0, 0, &md))
            return seterr(err, errlen, -EINVAL, "plan image: tensor %s: bad blocked dims", name);
        want = dnnl_memory_desc_get_size(&md); /* padded channels included */
    }
    uint64_t limit = t->storage == PLAN_ST_ARENA ? v->h->arena_size : v->weights_size;
    if (t->storage < PLAN_ST_ARENA || t->storage > PLAN_ST_PACKED ||
        (t->storage != PLAN_ST_PACKED && t->nbytes != want))
        return seterr(err, errlen, -EINVAL,
                      "plan image: tensor %s: storage %u with %llu bytes for %llu elements", name,
                      t->storage, (unsigned long long)t->nbytes, (unsigned long long)numel);
    if (t->offset > limit || t->nbytes > limit - t->offset ||
        (t->storage != PLAN_ST_ARENA && t->offset % PLAN_ALIGN))
        return seterr(err, errlen, -EINVAL,
                      "plan image: tensor %s: %llu bytes at %llu outside its %s (%llu bytes)", name,
                      (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                      t->storage == PLAN_ST_ARENA ? "arena" : "weights", (unsigned long long)limit);
    /* kernels read and write elements through typed pointers into the 64-aligned arena */
    if (t->storage == PLAN_ST_ARENA && t->offset % esize)
        return seterr(err, errlen, -EINVAL,
                      "plan image: tensor %s: arena offset %llu is not a multiple of its %zu-byte "
                      "elements",
                      name, (unsigned long long)t->offset, esize);
    return 0;
}

static int check_tensor_ref(const struct plan_view *v, int64_t t, int arena, const char *what,
                            uint32_t i, char *err, size_t errlen)
{
    if (t < 0 || t >= v->n_tensors)
        return seterr(err, errlen, -EINVAL, "plan image: %s %u refers to tensor %lld of %u", what,
                      i, (long long)t, v->n_tensors);
    if (arena && v->tensors[t].storage != PLAN_ST_ARENA)
        return seterr(err, errlen, -EINVAL, "plan image: %s %u: tensor %s is not an activation",
                      what, i, v->strings + v->tensors[t].name);
    return 0;
}

static int check_slice(const struct plan_view *v, uint32_t first, uint32_t n, const char *what,
                       uint32_t i, char *err, size_t errlen)
{
    if (first > v->n_index || n > v->n_index - first)
        return seterr(err, errlen, -EINVAL, "plan image: %s %u: list [%u,+%u) outside the index",
                      what, i, first, n);
    return 0;
}

static int check_node(const struct plan_view *v, uint32_t i, char *err, size_t errlen)
{
    const struct plan_node *n = &v->nodes[i];
    int rc = check_string(v, n->name, 0, "node", i, err, errlen);
    if (!rc)
        rc = check_string(v, n->onnx_op, 0, "node", i, err, errlen);
    if (!rc)
        rc = check_string(v, n->impl, 1, "node", i, err, errlen);
    if (!rc)
        rc = check_slice(v, n->in_first, n->n_in, "node", i, err, errlen);
    if (!rc)
        rc = check_slice(v, n->params_first, n->n_params, "node", i, err, errlen);
    if (rc)
        return rc;
    if (n->op < PLAN_OP_CONV || n->op >= PLAN_OP_COUNT_ || n->n_post > PLAN_MAX_POST ||
        (n->wmd != PLAN_NONE && n->wmd >= v->n_mds))
        return seterr(err, errlen, -EINVAL,
                      "plan image: node %s: bad op %u, post-op count %u or md",
                      v->strings + n->name, n->op, n->n_post);
    for (uint32_t k = 0; k < n->n_in && !rc; k++)
        rc = check_tensor_ref(v, v->index[n->in_first + k], 0, "node", i, err, errlen);
    if (!rc)
        rc = check_tensor_ref(v, n->out, 1, "node", i, err, errlen);
    if (!rc && n->sum_tensor != PLAN_NONE)
        rc = check_tensor_ref(v, n->sum_tensor, 1, "node", i, err, errlen);
    return rc;
}

/* An input is an activation the session copies in, or (PLAN_TF_PINNED) a constant of the values
 * every run must pass: int32/int64/bool of at most ENGINE_MAX_PIN_ELEMS elements or float32 of at
 * most ENGINE_MAX_PIN_FLOATS. check_tensor has already bounded its bytes inside the weights. */
static int check_input(const struct plan_view *v, int64_t t, uint32_t k, char *err, size_t errlen)
{
    int rc = check_tensor_ref(v, t, 0, "input", k, err, errlen);
    if (rc)
        return rc;
    const struct plan_tensor *pt = &v->tensors[t];
    int pinned = (pt->flags & PLAN_TF_PINNED) != 0;
    size_t es = engine_dtype_size((int)pt->dtype);
    uint64_t numel = es ? pt->nbytes / es : 0;
    int integer = pt->dtype == ENGINE_I32 || pt->dtype == ENGINE_I64 || pt->dtype == ENGINE_BOOL;
    if (!pinned && pt->storage == PLAN_ST_ARENA)
        return 0;
    if (pinned && pt->storage == PLAN_ST_CONST && numel <= ENGINE_MAX_PIN_ELEMS &&
        (integer || (pt->dtype == ENGINE_F32 && numel <= ENGINE_MAX_PIN_FLOATS)))
        return 0;
    return seterr(err, errlen, -EINVAL,
                  "plan image: input %u (%s) is neither an activation nor a valid pinned input", k,
                  v->strings + pt->name);
}

/* An output is an activation; a bounded one (its run fills a data-dependent part of dim 0 or 1,
 * PLAN_TF_BOUND0/1) is an int64 matrix, bounded along one axis, and no input. */
static int check_output(const struct plan_view *v, int64_t t, uint32_t k, char *err, size_t errlen)
{
    int rc = check_tensor_ref(v, t, 1, "output", k, err, errlen);
    if (rc)
        return rc;
    const struct plan_tensor *pt = &v->tensors[t];
    uint32_t bound = pt->flags & (PLAN_TF_BOUND0 | PLAN_TF_BOUND1);
    if (pt->flags & PLAN_TF_LOOP_BOUND) /* its writer: plan_loops_check */
        return bound || (pt->flags & PLAN_TF_INPUT)
                   ? seterr(err, errlen, -EINVAL,
                            "plan image: output %u (%s) is bounded twice or an input", k,
                            v->strings + pt->name)
                   : 0;
    if (!bound || (bound != (PLAN_TF_BOUND0 | PLAN_TF_BOUND1) && pt->dtype == ENGINE_I64 &&
                   pt->rank == 2 && !(pt->flags & PLAN_TF_INPUT)))
        return 0;
    return seterr(err, errlen, -EINVAL,
                  "plan image: output %u (%s) is bounded but not an int64 matrix output", k,
                  v->strings + pt->name);
}

static int check_io(const struct plan_view *v, char *err, size_t errlen)
{
    const struct plan_header *h = v->h;
    int rc = check_slice(v, h->inputs_first, h->n_inputs, "graph inputs", 0, err, errlen);
    if (!rc)
        rc = check_slice(v, h->outputs_first, h->n_outputs, "graph outputs", 0, err, errlen);
    for (uint32_t k = 0; k < h->n_inputs && !rc; k++)
        rc = check_input(v, v->index[h->inputs_first + k], k, err, errlen);
    for (uint32_t k = 0; k < h->n_outputs && !rc; k++)
        rc = check_output(v, v->index[h->outputs_first + k], k, err, errlen);
    return rc;
}

static int check_tables(struct plan_view *v, char *err, size_t errlen)
{
    if (v->strings[v->strings_size - 1] != '\0')
        return seterr(err, errlen, -EINVAL, "plan image: string table not NUL-terminated");
    int rc = check_string(v, v->h->model_name, 0, "header", 0, err, errlen);
    for (uint32_t i = 0; i < v->n_tensors && !rc; i++)
        rc = check_tensor(v, i, err, errlen);
    for (uint32_t i = 0; i < v->n_nodes && !rc; i++)
        rc = check_node(v, i, err, errlen);
    if (!rc)
        rc = check_io(v, err, errlen);
    return rc;
}

int plan_view_init(struct plan_view *v, const void *image, size_t len, char *err, size_t errlen)
{
    return plan_view_init_weights(v, image, len, NULL, err, errlen);
}

/* missing: 1 lets a plan part be viewed without its blob (v->weights NULL: structure only, for
 * engine_image_verify); 0 refuses that. */
static int view_init(struct plan_view *v, const void *image, size_t len, const void *weights,
                     int missing, char *err, size_t errlen);

int plan_view_init_weights(struct plan_view *v, const void *image, size_t len, const void *weights,
                           char *err, size_t errlen)
{
    if (len >= sizeof(struct plan_header) &&
        (((const struct plan_header *)image)->flags & PLAN_HF_EXTERNAL_WEIGHTS))
        return seterr(err, errlen, -EINVAL, "plan part: its weights are a separate blob");
    return view_init(v, image, len, weights, 0, err, errlen);
}

int plan_view_init_parts(struct plan_view *v, const void *image, size_t len, const void *weights,
                         size_t weights_len, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    if (len >= sizeof(struct plan_header) && ((uintptr_t)image % PLAN_ALIGN) == 0) {
        const struct plan_header *h = image;
        int external = (h->flags & PLAN_HF_EXTERNAL_WEIGHTS) != 0;
        if (weights && !external)
            return seterr(err, errlen, -EINVAL,
                          "plan image holds its own weights; no weights blob may be given");
        if (weights && ((uintptr_t)weights % PLAN_ALIGN ||
                        weights_len != h->sec[PLAN_SEC_WEIGHTS].size))
            return seterr(err, errlen, -EINVAL,
                          "weights blob of %zu bytes (or misaligned) for a plan part that needs "
                          "%llu bytes",
                          weights_len, (unsigned long long)h->sec[PLAN_SEC_WEIGHTS].size);
    }
    return view_init(v, image, len, weights, 0, err, errlen);
}

static int view_init(struct plan_view *v, const void *image, size_t len, const void *weights,
                     int missing, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    const uint8_t *p = image;
    int rc = check_layout(p, len, err, errlen);
    if (rc)
        return rc;
    const struct plan_header *h = (const struct plan_header *)p;
    uint8_t digest[SHA256_LEN];
    uint64_t tables_end = h->sec[PLAN_SEC_WEIGHTS].offset;
    sha256(p + PLAN_TABLES_HASHED_FROM, tables_end - PLAN_TABLES_HASHED_FROM, digest);
    if (memcmp(digest, h->tables_sha256, SHA256_LEN) != 0)
        return seterr(err, errlen, -EBADMSG,
                      "plan image tables fail their checksum: the image is corrupt or was "
                      "tampered with; recompile");
    v->base = p;
    v->len = len;
    v->h = h;
    view_tables(v);
    if (h->flags & PLAN_HF_EXTERNAL_WEIGHTS) {
        char hex[SHA256_HEX_LEN];
        sha256_hex(h->weights_sha256, hex);
        if (!weights && !missing)
            return seterr(err, errlen, -ENOENT,
                          "model %s: plan part without its weights blob (sha256:%s, %llu bytes); "
                          "open it with the blob (shmfaas-run --weights, or attach through the "
                          "store)",
                          h->model_name < h->sec[PLAN_SEC_STRINGS].size ? plan_str(v, h->model_name)
                                                                         : "?",
                          hex, (unsigned long long)h->sec[PLAN_SEC_WEIGHTS].size);
        v->weights = weights; /* NULL (missing): structure only; plan_weights_ptr never runs */
    } else if (weights) {
        v->weights = weights;
    }
    return check_tables(v, err, errlen);
}

int engine_image_verify(const void *image, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = image;
    int rc = check_header(p, len, err, errlen);
    if (rc)
        return rc;
    const struct plan_header *h = (const struct plan_header *)p;
    uint8_t digest[SHA256_LEN];
    sha256(p + PLAN_IMAGE_HASHED_FROM, len - PLAN_IMAGE_HASHED_FROM, digest);
    if (memcmp(digest, h->image_sha256, SHA256_LEN) != 0)
        return seterr(err, errlen, -EBADMSG,
                      "plan image fails its SHA-256: the image is corrupt or was tampered with");
    struct plan_view v;
    return view_init(&v, image, len, NULL, 1, err, errlen);
}

/* ---- plan parts and weights blobs ---- */

int engine_image_weights(const void *image, size_t len, struct engine_weights_ref *out, char *err,
                         size_t errlen)
{
    int rc = check_layout(image, len, err, errlen);
    if (rc)
        return rc;
    const struct plan_header *h = image;
    out->external = (h->flags & PLAN_HF_EXTERNAL_WEIGHTS) != 0;
    out->offset = h->sec[PLAN_SEC_WEIGHTS].offset;
    out->size = h->sec[PLAN_SEC_WEIGHTS].size;
    memcpy(out->sha256, h->weights_sha256, SHA256_LEN);
    return 0;
}

/* A copy of the header and tables of image (a whole image's first off bytes, or a part), with
 * the external flag and the image size set for `total` bytes and `wbytes` more copied in at off,
 * resealed. */
static void rebuild_into(const uint8_t *image, uint64_t off, const void *weights, uint64_t wsize,
                         int external, uint8_t *img, uint64_t total)
{
    memcpy(img, image, off);
    if (!external) {
        memcpy(img + off, weights, wsize);
        memset(img + off + wsize, 0, total - off - wsize);
    }
    struct plan_header *h = (struct plan_header *)img;
    h->flags = external ? h->flags | PLAN_HF_EXTERNAL_WEIGHTS
                        : h->flags & ~(uint32_t)PLAN_HF_EXTERNAL_WEIGHTS;
    h->image_size = total;
    reseal(img, total);
}

static int rebuild(const uint8_t *image, uint64_t off, const void *weights, uint64_t wsize,
                   int external, void **out, size_t *out_len, char *err, size_t errlen)
{
    uint64_t total = external ? off : ALIGN_UP(off + wsize, PLAN_ALIGN);
    uint8_t *img = aligned_alloc(PLAN_ALIGN, total);
    if (!img)
        return seterr(err, errlen, -ENOMEM, "out of memory for a %llu-byte plan image",
                      (unsigned long long)total);
    rebuild_into(image, off, weights, wsize, external, img, total);
    *out = img;
    *out_len = total;
    return 0;
}

int engine_image_split(const void *image, size_t len, void **part, size_t *part_len, char *err,
                       size_t errlen)
{
    struct engine_weights_ref w;
    int rc = engine_image_weights(image, len, &w, err, errlen);
    if (rc)
        return rc;
    if (w.external)
        return seterr(err, errlen, -EINVAL, "plan image is a plan part already");
    return rebuild(image, w.offset, NULL, w.size, 1, part, part_len, err, errlen);
}

/* The weights record of a plan part that weights_len bytes of blob complete, or an error. */
static int part_ref(const void *part, size_t part_len, size_t weights_len,
                    struct engine_weights_ref *w, char *err, size_t errlen)
{
    int rc = engine_image_weights(part, part_len, w, err, errlen);
    if (rc)
        return rc;
    if (!w->external || w->size != weights_len)
        return seterr(err, errlen, -EINVAL,
                      "not a plan part, or a %zu-byte weights blob for one that needs %llu bytes",
                      weights_len, (unsigned long long)w->size);
    return 0;
}

int engine_image_join(const void *part, size_t part_len, const void *weights, size_t weights_len,
                      void **image, size_t *image_len, char *err, size_t errlen)
{
    struct engine_weights_ref w;
    int rc = part_ref(part, part_len, weights_len, &w, err, errlen);
    return rc ? rc : rebuild(part, w.offset, weights, w.size, 0, image, image_len, err, errlen);
}



int engine_weights_verify(const void *part, size_t part_len, const void *weights,
                          size_t weights_len, char *err, size_t errlen)
{
    struct engine_weights_ref w;
    int rc = part_ref(part, part_len, weights_len, &w, err, errlen);
    if (rc)
        return rc;
    uint8_t digest[SHA256_LEN];
    sha256(weights, weights_len, digest);
    if (memcmp(digest, w.sha256, SHA256_LEN) != 0)
        return seterr(err, errlen, -EBADMSG,
                      "weights blob fails the SHA-256 its plan part records: corrupt or "
                      "tampered with");
    return 0;
}

const char *plan_str(const struct plan_view *v, uint32_t off)
{
    return off < v->strings_size ? v->strings + off : "";
}

int32_t plan_input(const struct plan_view *v, const struct plan_node *n, uint32_t i)
{
    assert(i < n->n_in && n->in_first + i < v->n_index); /* plan_view_init checked the slice */
    return v->index[n->in_first + i];
}

const void *plan_weights_ptr(const struct plan_view *v, const struct plan_tensor *t)
{
    assert(t->storage == PLAN_ST_CONST || t->storage == PLAN_ST_PACKED);
    assert(t->offset <= v->weights_size && t->nbytes <= v->weights_size - t->offset);
    return v->weights + t->offset;
}
