/*
 * input=image: JPEG (libjpeg-turbo) or PNG (libspng) bytes → RGB → resize + centre crop →
 * normalised NCHW float32. The image size a header claims is checked against max_pixels before any
 * pixel buffer is allocated; a truncated or corrupt stream is an error, never a grey-filled image.
 */
#include "fn/fn.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <spng.h>

void fn_image_opts_default(struct fn_image_opts *o)
{
    *o = (struct fn_image_opts){
        .size = FN_DEFAULT_IMAGE_SIZE,
        .mean = {0.485f, 0.456f, 0.406f},
        .std = {0.229f, 0.224f, 0.225f},
        .max_pixels = FN_DEFAULT_MAX_PIXELS,
    };
}

void fn_rgb_free(struct fn_rgb *img)
{
    free(img->pixels);
    img->pixels = NULL;
}

void fn_tensor_free(struct fn_tensor *t)
{
    free(t->data);
    t->data = NULL;
}

static int check_pixels(uint64_t w, uint64_t h, uint64_t max_pixels, const char *kind, char *err,
                        size_t errlen)
{
    if (w == 0 || h == 0)
        return seterr(err, errlen, -EINVAL, "%s image has no pixels (%llux%llu)", kind,
                      (unsigned long long)w, (unsigned long long)h);
    if (w > max_pixels || h > max_pixels || w * h > max_pixels)
        return seterr(err, errlen, -E2BIG,
                      "%s image is %llux%llu, more than the limit of %llu pixels", kind,
                      (unsigned long long)w, (unsigned long long)h, (unsigned long long)max_pixels);
    return 0;
}

/* ---- JPEG ---- */

struct jpeg_fail {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_fail *f = (struct jpeg_fail *)cinfo->err;
    f->mgr.format_message(cinfo, f->msg);
    longjmp(f->jump, 1);
}

/* A warning (premature end of data, corrupt entropy data) would otherwise decode to grey. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0)
        jpeg_on_error(cinfo);
}

struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_fail fail;
    struct fn_rgb img;
};

static int jpeg_decode_rows(struct jpeg_job *j, uint64_t max_pixels, char *err, size_t errlen)
{
    jpeg_read_header(&j->cinfo, TRUE);
    int rc =
        check_pixels(j->cinfo.image_width, j->cinfo.image_height, max_pixels, "JPEG", err, errlen);
    if (rc < 0)
        return rc;
    j->cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&j->cinfo);
    if (j->cinfo.output_components != 3)
        return seterr(err, errlen, -EINVAL, "JPEG: cannot convert %d components to RGB",
                      j->cinfo.output_components);
    size_t stride = (size_t)j->cinfo.output_width * 3;
    j->img.width = j->cinfo.output_width;
    j->img.height = j->cinfo.output_height;
    j->img.pixels = malloc(stride * j->img.height);
    if (!j->img.pixels)
        return seterr(err, errlen, -ENOMEM, "JPEG %ux%u: out of memory", j->img.width,
                      j->img.height);
    while (j->cinfo.output_scanline < j->cinfo.output_height) {
        JSAMPROW row = j->img.pixels + stride * j->cinfo.output_scanline;
        jpeg_read_scanlines(&j->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&j->cinfo);
    return 0;
}

static int jpeg_decode(const uint8_t *buf, size_t len, uint64_t max_pixels, struct fn_rgb *out,
                       char *err, size_t errlen)
{
    struct jpeg_job *j = calloc(1, sizeof(*j));
    if (!j)
        return seterr(err, errlen, -ENOMEM, "JPEG: out of memory");
    j->cinfo.err = jpeg_std_error(&j->fail.mgr);
    j->fail.mgr.error_exit = jpeg_on_error;
    j->fail.mgr.emit_message = jpeg_on_message;
    int rc;
    if (setjmp(j->fail.jump)) {
        rc = seterr(err, errlen, -EINVAL, "not a valid JPEG (truncated or corrupt): %s",
                    j->fail.msg);
    } else {
        jpeg_create_decompress(&j->cinfo);
        jpeg_mem_src(&j->cinfo, buf, (unsigned long)len);
        rc = jpeg_decode_rows(j, max_pixels, err, errlen);
    }
    jpeg_destroy_decompress(&j->cinfo);
    if (rc == 0)
        *out = j->img;
    else
        free(j->img.pixels);
    free(j);
    return rc;
}

/* ---- PNG ---- */

static int png_decode_ctx(spng_ctx *ctx, const uint8_t *buf, size_t len, uint64_t max_pixels,
                          struct fn_rgb *out, char *err, size_t errlen)
{
    uint32_t lim = max_pixels > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)max_pixels;
    spng_set_image_limits(ctx, lim, lim);
    spng_set_chunk_limits(ctx, 1u << 24, 1u << 26);
    spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    int e = spng_set_png_buffer(ctx, buf, len);
    struct spng_ihdr ihdr;
    if (!e)
        e = spng_get_ihdr(ctx, &ihdr);
    if (e)
        return seterr(err, errlen, -EINVAL, "not a valid PNG: %s", spng_strerror(e));
    int rc = check_pixels(ihdr.width, ihdr.height, max_pixels, "PNG", err, errlen);
    if (rc < 0)
        return rc;
    size_t size = 0;
    e = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size);
    if (e || size != (size_t)ihdr.width * ihdr.height * 3)
        return seterr(err, errlen, -EINVAL, "PNG: cannot convert to RGB: %s",
                      e ? spng_strerror(e) : "unexpected size");
    out->pixels = malloc(size);
    if (!out->pixels)
        return seterr(err, errlen, -ENOMEM, "PNG %ux%u: out of memory", ihdr.width, ihdr.height);
    e = spng_decode_image(ctx, out->pixels, size, SPNG_FMT_RGB8, SPNG_DECODE_TRNS);
    if (e) {
        fn_rgb_free(out);
        return seterr(err, errlen, -EINVAL, "not a valid PNG (truncated or corrupt): %s",
                      spng_strerror(e));
    }
    out->width = ihdr.width;
    out->height = ihdr.height;
    return 0;
}

static int png_decode(const uint8_t *buf, size_t len, uint64_t max_pixels, struct fn_rgb *out,
                      char *err, size_t errlen)
{
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx)
        return seterr(err, errlen, -ENOMEM, "PNG: out of memory");
    int rc = png_decode_ctx(ctx, buf, len, max_pixels, out, err, errlen);
    spng_ctx_free(ctx);
    return rc;
}

int fn_image_decode(const uint8_t *buf, size_t len, uint64_t max_pixels, struct fn_rgb *out,
                    char *err, size_t errlen)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *out = (struct fn_rgb){0};
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return jpeg_decode(buf, len, max_pixels, out, err, errlen);
    if (len >= sizeof(png_magic) && memcmp(buf, png_magic, sizeof(png_magic)) == 0)
        return png_decode(buf, len, max_pixels, out, err, errlen);
    return seterr(err, errlen, -EINVAL,
                  "body is not an image: expected JPEG or PNG bytes (%zu bytes received)", len);
}

/* ---- resize, crop, normalise ---- */

/* One axis of the bilinear map: output index → two source indices and the weight of the second.
 * Half-pixel centres, as PIL and torchvision (antialias off) use. */
struct tap {
    uint32_t i0, i1;
    float w1;
    bool pad; /* letterbox: outside the resized image */
};

/* resized: the resized axis' length; outputs past it (letterbox) are padding. */
static void axis_taps(struct tap *taps, int n, int offset, double scale, uint32_t src_len,
                      long resized)
{
    for (int o = 0; o < n; o++) {
        taps[o].pad = o + offset < 0 || o + offset >= resized;
        double s = (o + offset + 0.5) / scale - 0.5;
        if (s < 0)
            s = 0;
        if (s > src_len - 1)
            s = src_len - 1;
        uint32_t i0 = (uint32_t)s;
        taps[o].i0 = i0;
        taps[o].i1 = i0 + 1 < src_len ? i0 + 1 : i0;
        taps[o].w1 = (float)(s - i0);
    }
}

static float sample(const struct fn_rgb *img, const struct tap *tx, const struct tap *ty, int c)
{
    const uint8_t *p = img->pixels;
    size_t stride = (size_t)img->width * 3;
    float a = p[ty->i0 * stride + tx->i0 * 3 + c], b = p[ty->i0 * stride + tx->i1 * 3 + c];
    float d = p[ty->i1 * stride + tx->i0 * 3 + c], e = p[ty->i1 * stride + tx->i1 * 3 + c];
    float top = a + (b - a) * tx->w1, bottom = d + (e - d) * tx->w1;
    return top + (bottom - top) * ty->w1;
}

static int check_opts(const struct fn_image_opts *o, char *err, size_t errlen)
{
    if (o->size <= 0 || o->size > 8192)
        return seterr(err, errlen, -EINVAL, "image_size %d: must be 1-8192", o->size);
    for (int c = 0; c < 3; c++)
        if (!(o->std[c] > 0))
            return seterr(err, errlen, -EINVAL, "std: every value must be > 0");
    return 0;
}

int fn_image_preprocess(const struct fn_rgb *img, const struct fn_image_opts *o,
                        struct fn_tensor *out, char *err, size_t errlen)
{
    int rc = check_opts(o, err, errlen);
    if (rc < 0)
        return rc;
    int n = o->size;
    /* crop: the shorter side to n, the middle n x n kept; letterbox: the longer side to n, the
     * rest padded with black, centred */
    bool lb = o->letterbox;
    uint32_t side = (img->width < img->height) != lb ? img->width : img->height;
    double scale = (double)n / side;
    long rw = lround(img->width * scale), rh = lround(img->height * scale);
    rw = lb ? (rw > n ? n : rw < 1 ? 1 : rw) : (rw < n ? n : rw);
    rh = lb ? (rh > n ? n : rh < 1 ? 1 : rh) : (rh < n ? n : rh);
    int ox = (int)((rw - n) / 2), oy = (int)((rh - n) / 2); /* letterbox: <= 0 */
    struct tap *tx = malloc(sizeof(*tx) * (size_t)n), *ty = malloc(sizeof(*ty) * (size_t)n);
    size_t plane = (size_t)n * n;
    float *data = malloc(plane * 3 * sizeof(float));
    if (!tx || !ty || !data) {
        free(tx), free(ty), free(data);
        return seterr(err, errlen, -ENOMEM, "image preprocess: out of memory");
    }
    axis_taps(tx, n, ox, (double)rw / img->width, img->width, rw);
    axis_taps(ty, n, oy, (double)rh / img->height, img->height, rh);
    for (int c = 0; c < 3; c++) {
        float inv = 1.0f / o->std[c], mean = o->mean[c];
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                size_t at = o->nhwc ? ((size_t)y * n + x) * 3 + c : c * plane + (size_t)y * n + x;
                float v = tx[x].pad || ty[y].pad ? 0 : sample(img, &tx[x], &ty[y], c);
                data[at] = (v / 255.0f - mean) * inv;
            }
    }
    free(tx);
    free(ty);
    *out = (struct fn_tensor){.shape = {.rank = 4, .dims = {1, 3, n, n}},
                              .data = data,
                              .nbytes = plane * 3 * sizeof(float),
                              .geom = {.width = img->width,
                                       .height = img->height,
                                       .size = n,
                                       .scale_x = (double)rw / img->width,
                                       .scale_y = (double)rh / img->height,
                                       .off_x = ox,
                                       .off_y = oy}};
    if (o->nhwc)
        out->shape = (struct engine_shape){.rank = 4, .dims = {1, n, n, 3}};
    return 0;
}

int fn_codec_image(const uint8_t *buf, size_t len, const struct fn_image_opts *o,
                   struct fn_tensor *out, char *err, size_t errlen)
{
    struct fn_rgb img;
    int rc = fn_image_decode(buf, len, o->max_pixels, &img, err, errlen);
    if (rc < 0)
        return rc;
    rc = fn_image_preprocess(&img, o, out, err, errlen);
    fn_rgb_free(&img);
    return rc;
}
