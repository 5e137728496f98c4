/*
 * image_tensor — the tensor input=image makes of a photo, in shmfaas-run's JSON input form, plus
 * the geometry output=boxes maps back through; for tests/fn/test_detector.py, which feeds the
 * same tensor to shmfaas-run and to ONNX Runtime.
 *   image-tensor IMAGE INPUT_NAME image_size=128 image_layout=nhwc mean=R,G,B ... > tensor.json
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn/fn.h"

/* One KEY=VALUE setting of the image codec (the env keys of shmfaas-fn); others are ignored. */
static int setting(struct fn_image_opts *o, const char *kv)
{
    const char *v = strchr(kv, '=');
    if (!v++)
        return -1;
    if (strncmp(kv, "image_size=", 11) == 0)
        return sscanf(v, "%d", &o->size) == 1 ? 0 : -1;
    if (strncmp(kv, "image_layout=", 13) == 0)
        return o->nhwc = strcmp(v, "nhwc") == 0, 0;
    if (strncmp(kv, "image_fit=", 10) == 0)
        return o->letterbox = strcmp(v, "letterbox") == 0, 0;
    if (strncmp(kv, "mean=", 5) == 0)
        return sscanf(v, "%f,%f,%f", &o->mean[0], &o->mean[1], &o->mean[2]) == 3 ? 0 : -1;
    if (strncmp(kv, "std=", 4) == 0)
        return sscanf(v, "%f,%f,%f", &o->std[0], &o->std[1], &o->std[2]) == 3 ? 0 : -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct fn_image_opts o;
    fn_image_opts_default(&o);
    int bad = argc < 3;
    for (int i = 3; i < argc && !bad; i++)
        bad = setting(&o, argv[i]) < 0;
    if (bad) {
        fprintf(stderr, "usage: image-tensor IMAGE INPUT_NAME [KEY=VALUE (image_size, "
                        "image_layout, image_fit, mean, std)]...\n");
        return 2;
    }
    uint8_t *buf;
    size_t len;
    char err[256];
    struct fn_tensor t;
    if (read_file(argv[1], (size_t)256 << 20, &buf, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "image-tensor: %s\n", err);
        return 1;
    }
    int rc = fn_codec_image(buf, len, &o, &t, err, sizeof(err));
    free(buf);
    if (rc < 0) {
        fprintf(stderr, "image-tensor: %s\n", err);
        return 1;
    }
    json_t *shape = json_array(), *data = json_array();
    for (int i = 0; i < t.shape.rank; i++)
        json_array_append_new(shape, json_integer(t.shape.dims[i]));
    for (size_t i = 0; i < t.nbytes / sizeof(float); i++)
        json_array_append_new(data, json_real(t.data[i]));
    const struct fn_image_geom *g = &t.geom;
    json_t *root =
        json_pack("{s:{s:{s:o,s:o}},s:{s:I,s:I,s:i,s:f,s:f,s:f,s:f}}", "inputs", argv[2], "shape",
                  shape, "data", data, "geom", "width", (json_int_t)g->width, "height",
                  (json_int_t)g->height, "size", g->size, "scale_x", g->scale_x, "scale_y",
                  g->scale_y, "off_x", g->off_x, "off_y", g->off_y);
    fn_tensor_free(&t);
    rc = root ? json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9)) : -1;
    json_decref(root);
    return rc < 0 ? 1 : 0;
}
