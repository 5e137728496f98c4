/*
 * images.h — test helpers that encode small JPEG and PNG images in memory (libjpeg, libspng), so
 * the codec tests and the integration tests build their inputs instead of shipping binary files.
 */
#ifndef SHMFAAS_TEST_FN_IMAGES_H
#define SHMFAAS_TEST_FN_IMAGES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <spng.h>

/* rgb: width*height*3 bytes. Returns a malloc'd JPEG. */
static inline uint8_t *test_jpeg_encode(const uint8_t *rgb, int width, int height, int quality,
                                        size_t *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr em;
    c.err = jpeg_std_error(&em);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long out_len = 0;
    jpeg_mem_dest(&c, &out, &out_len);
    c.image_width = (JDIMENSION)width;
    c.image_height = (JDIMENSION)height;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = out_len;
    return out;
}

/* pixels in the PNG colour type's own layout; plte (n_plte RGB entries) for indexed images.
 * Returns a malloc'd PNG or NULL. */
static inline uint8_t *test_png_encode(const uint8_t *pixels, size_t pixels_len, int width,
                                       int height, int color_type, int bit_depth,
                                       const uint8_t *plte, int n_plte, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ihdr = {.width = (uint32_t)width,
                             .height = (uint32_t)height,
                             .bit_depth = (uint8_t)bit_depth,
                             .color_type = (uint8_t)color_type};
    spng_set_ihdr(ctx, &ihdr);
    if (plte) {
        struct spng_plte p = {.n_entries = (uint32_t)n_plte};
        for (int i = 0; i < n_plte; i++) {
            p.entries[i].red = plte[i * 3];
            p.entries[i].green = plte[i * 3 + 1];
            p.entries[i].blue = plte[i * 3 + 2];
        }
        spng_set_plte(ctx, &p);
    }
    int e = spng_encode_image(ctx, pixels, pixels_len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    uint8_t *out = NULL;
    if (!e)
        out = spng_get_png_buffer(ctx, len, &e);
    spng_ctx_free(ctx);
    if (e) {
        free(out);
        return NULL;
    }
    return out;
}

/* A solid-colour RGB buffer (malloc'd). */
static inline uint8_t *test_rgb_solid(int width, int height, uint8_t r, uint8_t g, uint8_t b)
{
    uint8_t *p = malloc((size_t)width * (size_t)height * 3);
    for (size_t i = 0; p && i < (size_t)width * (size_t)height; i++) {
        p[i * 3] = r;
        p[i * 3 + 1] = g;
        p[i * 3 + 2] = b;
    }
    return p;
}

#endif
