/*
 * winograd.h — 3x3 stride-1 convolution as Winograd F(4x4, 3x3) over nChw8c, nChw16c or nhwc
 * activations (the layout oneDNN picks for the convolutions around it: nChw8c at AVX2, nhwc or
 * nChw16c at AVX-512).
 *
 * Engine-internal. The compiler transforms a convolution's weights once (wino_weights) into the
 * image, packed for 36 [tiles x C] by [C x K] products; a session then runs, per block of output
 * tiles: wino_input (6x6 input patches to the transformed domain), wino_gemm (the 36 products, an
 * AVX2 FMA kernel of 6 tiles x 16 channels), wino_output (back to 4x4 outputs, bias and
 * post-ops). It does about a quarter of a direct convolution's multiplications, at 4x the weight
 * bytes, so the compiler uses it where activations are large (see compile.c). All code is ours
 * and in the binary: no per-process JIT code, no allocation per run. Needs AVX2 and FMA.
 */
#ifndef SHMFAAS_ENGINE_WINOGRAD_H
#define SHMFAAS_ENGINE_WINOGRAD_H

#include <stdint.h>

#define WINO_TILE      4  /* output tile side */
#define WINO_ALPHA     6  /* input patch side = WINO_TILE + 3 - 1 */
#define WINO_POINTS    36 /* WINO_ALPHA squared: the matmul's batch */
#define WINO_MAX_POST  4
#define WINO_ROWS      6  /* tiles per step of the product kernel: blocks are multiples of it */
#define WINO_COLS      16 /* output channels per step: K is padded to a multiple of it */
#define WINO_MAX_BLOCK 1020

/* Geometry of one convolution; channels multiples of the layout's block. */
struct wino_shape {
    int64_t blk;          /* channels per layout block: 8 (nChw8c), 16 (nChw16c), 0 (nhwc) */
    int64_t n, c, h, w;   /* input */
    int64_t k, oh, ow;    /* output */
    int64_t k16;          /* k rounded up to WINO_COLS: the packed weights' and products' width */
    int64_t pad_t, pad_l; /* top and left padding; bottom and right follow from oh, ow */
    int64_t tiles_h, tiles_w, tiles; /* output tiles: tiles = n * tiles_h * tiles_w */
    int64_t block; /* tiles per product, a multiple of WINO_ROWS up to WINO_MAX_BLOCK */
};

enum wino_step { WINO_RELU, WINO_CLIP, WINO_LINEAR, WINO_SUM };

/* What follows the convolution and bias, in order: relu (a = negative slope), clip to [a, b],
 * a * x + b, or + the output's previous contents (a residual the caller placed there). */
struct wino_post {
    int n;
    struct {
        enum wino_step kind;
        float a, b;
    } step[WINO_MAX_POST];
};

/* 1 if this CPU runs the kernels (AVX2 and FMA). */
int wino_supported(void);
/* The blk of wino_shape for a oneDNN format tag (dnnl_aBcd8b 8, dnnl_aBcd16b 16, dnnl_acdb 0),
 * -1 for any other. */
int64_t wino_layout_block(uint32_t layout);
/* Fills s from the dims of tensors in layout blk; -1 if blk is not 8, 16 or 0, they do not make
 * a 3x3 stride-1 convolution with channels multiples of blk (of 8 for nhwc), or the block is out
 * of range. */
int wino_shape_init(struct wino_shape *s, const int64_t in[4], const int64_t out[4], int64_t pad_t,
                    int64_t pad_l, int64_t block, int64_t blk);
/* Tiles per product for c input and k output channels: the transformed block stays near 2 MiB. */
int64_t wino_block_for(int64_t c, int64_t k, int64_t tiles);
/* Bytes of the packed weights (u), the transformed input (v) and the products (m) of one block. */
uint64_t wino_u_bytes(int64_t c, int64_t k);
uint64_t wino_v_bytes(const struct wino_shape *s);
uint64_t wino_m_bytes(const struct wino_shape *s);
/* Weights w [k][c][3][3] → u [36][k16/16][c][16] (G g G^T computed in double, output channels
 * past k zero), wino_u_bytes(c, k) bytes. */
void wino_weights(const float *w, int64_t k, int64_t c, float *u);
/* Tiles t0 .. t0 + block - 1 of x (layout blk) → v [36][block][c]; tiles past the end are zero. */
void wino_input(const struct wino_shape *s, const float *x, int64_t t0, float *v);
/* m [36][block][k16] = v [36][block][c] x u, for each of the 36 points. */
void wino_gemm(const struct wino_shape *s, const float *v, const float *u, float *m);
/* m [36][block][k16] of tiles t0.. → y (layout blk), adding bias (k values, or NULL), then post. */
void wino_output(const struct wino_shape *s, const float *m, int64_t t0, const float *bias,
                 const struct wino_post *post, float *y);

#endif
