/*
 * shmfaas-fn serving, end to end (issue 4, acceptance 1 and 3): a real shmfaas-store, real
 * shmfaas-fn instances attached through it on unix sockets, libcurl as the client.
 *   - JSON and image requests give the same numbers as shmfaas-run on the same input;
 *   - the known-answer model (zoo/known_answer) names the colour of a solid JPEG/PNG as top-1
 * label;
 *   - every bad input gets its 4xx with {"error": ...} and X-OpenFaaS-Internal, and the instance
 *     keeps serving; probes answer as of-watchdog's do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>

#include "fn/fn.h"
#include "harness.h"
#include "images.h"

struct world {
    struct harness h;
    char store_sock[300];
    char json_sock[300], topk_sock[300], imgjson_sock[300], raw_sock[300];
    char labels[300];
};

static pid_t start_store(struct world *w)
{
    return h_start_store_with(&w->h, "known_answer", w->store_sock, sizeof(w->store_sock));
}

/* Starts an instance of known_answer with the given codec env; waits until ready. */
static pid_t start_fn(struct world *w, const char *name, char *sock, size_t socklen,
                      const char *const extra[])
{
    char bin[512], listen[320], store_env[320];
    h_path(&w->h, name, sock, socklen);
    snprintf(listen, sizeof(listen), "unix:%s", sock);
    snprintf(store_env, sizeof(store_env), "store_socket=%s", w->store_sock);
    const char *env[16] = {"model=known_answer", store_env, "idle_release=0", "max_body=1Mi"};
    int n = 4;
    for (int i = 0; extra && extra[i] && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    char *argv[] = {(char *)h_bin("src/fn/shmfaas-fn", bin, sizeof(bin)), "--listen", listen, NULL};
    pid_t pid = h_spawn(&w->h, argv, env);
    return h_wait_ready(sock, pid, 60000) ? pid : -1;
}

static int setup(void **state)
{
    static struct world w;
    static char labels_env[320];
    if (h_init(&w.h) < 0 || start_store(&w) < 0)
        return -1;
    h_zoo("known_answer/labels.txt", w.labels, sizeof(w.labels));
    snprintf(labels_env, sizeof(labels_env), "labels=%s", w.labels);
    const char *json[] = {"input=json", "output=json", NULL};
    const char *topk[] = {"input=image", "output=topk", "mean=0,0,0",
                          "std=1,1,1",   labels_env,    NULL};
    const char *imgjson[] = {"input=image", "output=json", "mean=0,0,0", "std=1,1,1", NULL};
    const char *raw[] = {"input=raw", "output=topk", "topk=3", NULL};
    if (start_fn(&w, "json.sock", w.json_sock, sizeof(w.json_sock), json) < 0 ||
        start_fn(&w, "topk.sock", w.topk_sock, sizeof(w.topk_sock), topk) < 0 ||
        start_fn(&w, "imgjson.sock", w.imgjson_sock, sizeof(w.imgjson_sock), imgjson) < 0 ||
        start_fn(&w, "raw.sock", w.raw_sock, sizeof(w.raw_sock), raw) < 0) {
        h_cleanup(&w.h);
        return -1;
    }
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    h_cleanup(&w->h);
    return 0;
}

/* ---- helpers ---- */

/* Runs shmfaas-run on the known-answer ONNX with an input file; returns its outputs JSON. */
static json_t *reference_outputs(struct world *w, const char *input_path)
{
    char bin[512], model[512], out[300];
    h_path(&w->h, "ref-out.json", out, sizeof(out));
    char *argv[] = {(char *)h_bin("src/engine/shmfaas-run", bin, sizeof(bin)),
                    (char *)h_zoo("known_answer/model.onnx", model, sizeof(model)),
                    "--input",
                    (char *)input_path,
                    "--output",
                    out,
                    NULL};
    pid_t pid = h_spawn(&w->h, argv, NULL);
    int st = h_wait_exit(&w->h, pid, 60000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    json_t *j = json_load_file(out, 0, NULL);
    assert_non_null(j);
    return j;
}

static void assert_same_outputs(json_t *a, json_t *b)
{
    json_t *da = json_object_get(json_object_get(json_object_get(a, "outputs"), "output"), "data");
    json_t *db = json_object_get(json_object_get(json_object_get(b, "outputs"), "output"), "data");
    assert_int_equal(json_array_size(da), 10);
    assert_int_equal(json_array_size(da), json_array_size(db));
    for (size_t i = 0; i < json_array_size(da); i++) {
        double x = json_number_value(json_array_get(da, i));
        double y = json_number_value(json_array_get(db, i));
        if (fabs(x - y) > 1e-5 * (1 + fabs(y)))
            fail_msg("output[%zu]: instance %.9g, shmfaas-run %.9g", i, x, y);
    }
}

static json_t *post_json(const char *sock, const void *body, size_t len, long want)
{
    struct h_reply r;
    h_http(sock, "POST", "/", body, len, NULL, &r);
    if (r.status != want)
        fail_msg("POST /: status %ld, wanted %ld: %s", r.status, want, r.body ? r.body : "");
    assert_non_null(strstr(r.headers, "X-Duration-Seconds"));
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    free(r.body);
    assert_non_null(j);
    return j;
}

/* ---- acceptance 1 ---- */

static void json_request_matches_shmfaas_run(void **state)
{
    struct world *w = *state;
    char input[512];
    h_zoo("known_answer/input.json", input, sizeof(input));
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(read_file(input, 64 << 20, &body, &len, NULL, 0), 0);
    json_t *got = post_json(w->json_sock, body, len, 200);
    json_t *want = reference_outputs(w, input);
    assert_same_outputs(got, want);
    json_decref(got);
    json_decref(want);
    free(body);
}

/* A 320x240 gradient PNG: the instance's image codec and the test's (same library) make the same
 * tensor, which shmfaas-run then scores. */
static void image_request_matches_shmfaas_run(void **state)
{
    struct world *w = *state;
    uint8_t *rgb = malloc(320 * 240 * 3);
    for (int i = 0; i < 320 * 240; i++) {
        rgb[i * 3] = (uint8_t)(i % 320 * 255 / 319);
        rgb[i * 3 + 1] = (uint8_t)(i / 320);
        rgb[i * 3 + 2] = 40;
    }
    size_t len;
    uint8_t *png =
        test_png_encode(rgb, 320 * 240 * 3, 320, 240, SPNG_COLOR_TYPE_TRUECOLOR, 8, NULL, 0, &len);
    json_t *got = post_json(w->imgjson_sock, png, len, 200);

    struct fn_image_opts o;
    fn_image_opts_default(&o);
    for (int c = 0; c < 3; c++)
        o.mean[c] = 0, o.std[c] = 1;
    struct fn_tensor t;
    assert_int_equal(fn_codec_image(png, len, &o, &t, NULL, 0), 0);
    json_t *data = json_array();
    for (size_t i = 0; i < t.nbytes / sizeof(float); i++)
        json_array_append_new(data, json_real(t.data[i]));
    json_t *in = json_pack("{s:{s:{s:[iiii],s:o}}}", "inputs", "input", "shape", 1, 3, 224, 224,
                           "data", data);
    char path[300];
    h_path(&w->h, "img-in.json", path, sizeof(path));
    assert_int_equal(json_dump_file(in, path, JSON_COMPACT | JSON_REAL_PRECISION(9)), 0);
    json_t *want = reference_outputs(w, path);
    assert_same_outputs(got, want);
    json_decref(in);
    json_decref(got);
    json_decref(want);
    fn_tensor_free(&t);
    free(png);
    free(rgb);
}

static const char *top_label(json_t *reply)
{
    json_t *first = json_array_get(json_object_get(reply, "predictions"), 0);
    return json_string_value(json_object_get(first, "label"));
}

static void known_answer_names_the_colour(void **state)
{
    struct world *w = *state;
    static const struct {
        const char *name;
        uint8_t r, g, b;
    } colours[] = {{"black", 0, 0, 0},     {"white", 255, 255, 255}, {"red", 255, 0, 0},
                   {"green", 0, 255, 0},   {"blue", 0, 0, 255},      {"yellow", 255, 255, 0},
                   {"cyan", 0, 255, 255},  {"magenta", 255, 0, 255}, {"gray", 128, 128, 128},
                   {"orange", 255, 128, 0}};
    for (size_t i = 0; i < ARRAY_LEN(colours); i++) {
        uint8_t *rgb = test_rgb_solid(300, 200, colours[i].r, colours[i].g, colours[i].b);
        size_t len;
        uint8_t *img = i % 2 ? test_jpeg_encode(rgb, 300, 200, 95, &len)
                             : test_png_encode(rgb, 300 * 200 * 3, 300, 200,
                                               SPNG_COLOR_TYPE_TRUECOLOR, 8, NULL, 0, &len);
        json_t *reply = post_json(w->topk_sock, img, len, 200);
        const char *label = top_label(reply);
        if (!label || strcmp(label, colours[i].name) != 0)
            fail_msg("%s image: top-1 label %s", colours[i].name, label ? label : "(none)");
        assert_int_equal(json_array_size(json_object_get(reply, "predictions")), 5);
        json_decref(reply);
        free(img);
        free(rgb);
    }
}

/* ---- acceptance 3 ---- */

static void expect_error(const char *sock, const char *method, const char *path, const void *body,
                         size_t len, long want, const char *needle)
{
    struct h_reply r;
    h_http(sock, method, path, body, len, NULL, &r);
    if (r.status != want)
        fail_msg("%s %s: status %ld, wanted %ld: %s", method, path, r.status, want,
                 r.body ? r.body : "");
    assert_non_null(strstr(r.headers, "X-OpenFaaS-Internal: shmfaas-fn"));
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (!msg || (needle && !strstr(msg, needle)))
        fail_msg("%s %s: error %s does not mention \"%s\"", method, path, r.body, needle);
    json_decref(j);
    free(r.body);
}

static void still_serves(const char *sock, const void *good, size_t len)
{
    json_t *j = post_json(sock, good, len, 200);
    json_decref(j);
}

static void bad_images_get_4xx_and_serving_goes_on(void **state)
{
    struct world *w = *state;
    uint8_t *rgb = test_rgb_solid(64, 64, 0, 0, 255);
    size_t len;
    uint8_t *jpg = test_jpeg_encode(rgb, 64, 64, 90, &len);
    const char *text = "this is not an image";
    expect_error(w->topk_sock, "POST", "/", text, strlen(text), 400, "not an image");
    still_serves(w->topk_sock, jpg, len);
    expect_error(w->topk_sock, "POST", "/", jpg, len / 2, 400, "JPEG");
    still_serves(w->topk_sock, jpg, len);
    expect_error(w->topk_sock, "POST", "/", "", 0, 400, "not an image");
    size_t big_len = (size_t)2 << 20;
    uint8_t *big = calloc(1, big_len);
    expect_error(w->topk_sock, "POST", "/", big, big_len, 413, "max_body");
    still_serves(w->topk_sock, jpg, len);
    expect_error(w->topk_sock, "GET", "/", NULL, 0, 405, "POST");
    still_serves(w->topk_sock, jpg, len);
    free(big);
    free(jpg);
    free(rgb);
}

static void bad_json_and_raw_get_400(void **state)
{
    struct world *w = *state;
    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"not json at all", "JSON"},
        {"{\"inputs\":{}}", "no inputs"},
        {"{\"inputs\":{\"input\":{\"shape\":[1,3,2,2],\"data\":[0,0,0,0,0,0,0,0,0,0,0,0]}}}",
         "shape"},
        {"{\"inputs\":{\"nope\":{\"shape\":[1],\"data\":[0]}}}", "unknown input 'nope'"},
        {"{\"inputs\":{\"input\":{\"shape\":[1],\"data\":[1],\"dtype\":\"int64\"}}}", "dtype"},
        {"{\"inputs\":{\"input\":{\"shape\":[2],\"data\":[1]}}}", NULL},
    };
    char input[512];
    uint8_t *good = NULL;
    size_t good_len = 0;
    assert_int_equal(read_file(h_zoo("known_answer/input.json", input, sizeof(input)), 64 << 20,
                               &good, &good_len, NULL, 0),
                     0);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        expect_error(w->json_sock, "POST", "/", bad[i].body, strlen(bad[i].body), 400,
                     bad[i].needle);
        still_serves(w->json_sock, good, good_len);
    }
    free(good);

    size_t raw_len = 3 * 224 * 224 * 4;
    uint8_t *raw = calloc(1, raw_len);
    json_t *j = post_json(w->raw_sock, raw, raw_len, 200);
    assert_int_equal(json_array_size(json_object_get(j, "predictions")), 3);
    json_decref(j);
    expect_error(w->raw_sock, "POST", "/", raw, raw_len - 4, 400, "bytes");
    still_serves(w->raw_sock, raw, raw_len);
    free(raw);
}

static void probes_follow_the_watchdog_contract(void **state)
{
    struct world *w = *state;
    assert_int_equal(h_status(w->json_sock, "GET", "/_/health"), 200);
    assert_int_equal(h_status(w->json_sock, "GET", "/_/ready"), 200);
    assert_int_equal(h_status(w->json_sock, "POST", "/_/ready"), 405);
    assert_int_equal(h_status(w->json_sock, "DELETE", "/_/health"), 405);
    assert_int_equal(h_status(w->json_sock, "GET", "/_/nothing"), 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_request_matches_shmfaas_run),
        cmocka_unit_test(image_request_matches_shmfaas_run),
        cmocka_unit_test(known_answer_names_the_colour),
        cmocka_unit_test(bad_images_get_4xx_and_serving_goes_on),
        cmocka_unit_test(bad_json_and_raw_get_400),
        cmocka_unit_test(probes_follow_the_watchdog_contract),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
