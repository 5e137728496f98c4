/* Unit tests of the CLI's stack.yml handling: ${VAR} substitution, YAML → JSON, deployments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* A fixed environment: MODEL=resnet50, EMPTY="", nothing else. */
static const char *fake_env(const char *name, void *user)
{
    (void)user;
    if (strcmp(name, "MODEL") == 0)
        return "resnet50";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    return NULL;
}

static char *subst(const char *in, int *rc)
{
    char *out = NULL, err[256];
    *rc = stack_substitute(in, strlen(in), fake_env, NULL, &out, err, sizeof err);
    return out;
}

static void substitution(void **state)
{
    int rc;
    char *s = subst("image: ${MODEL}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "image: resnet50");
    free(s);
    s = subst("a ${NOPE:-dflt} b ${EMPTY:-x} c ${MODEL:-y} $$ $x", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "a dflt b x c resnet50 $ $x");
    free(s);
    s = subst("${EMPTY}|", &rc); /* set but empty, no default: empty */
    assert_int_equal(rc, 0);
    assert_string_equal(s, "|");
    free(s);
    s = subst("${NOPE}", &rc);
    assert_int_equal(rc, -EINVAL);
    assert_null(s);
    s = subst("tail ${MODEL", &rc);
    assert_int_equal(rc, -EINVAL);
    s = subst("${}", &rc);
    assert_int_equal(rc, -EINVAL);
}

static void yaml_tree(void **state)
{
    const char *y = "a: 1\nb: [x, y]\nc: {d: e}\n";
    json_t *j;
    char err[256];
    assert_int_equal(yaml_to_json(y, strlen(y), &j, err, sizeof err), 0);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "1");
    assert_int_equal(json_array_size(json_object_get(j, "b")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "c"), "d")), "e");
    json_decref(j);
    const char *bad = "a: [1, 2\n";
    assert_int_equal(yaml_to_json(bad, strlen(bad), &j, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "YAML"));
    const char *alias = "a: &x 1\nb: *x\n";
    assert_int_equal(yaml_to_json(alias, strlen(alias), &j, err, sizeof err), -EINVAL);
}

static void stack_to_deployments(void **state)
{
    const char *y = "version: 1.0\n"
                    "provider: {name: openfaas, gateway: http://127.0.0.1:9999}\n"
                    "functions:\n"
                    "  resnet:\n"
                    "    image: ${MODEL}\n"
                    "    environment: {input: image, output: topk}\n"
                    "    labels: {com.openfaas.scale.min: \"1\", com.openfaas.scale.max: 8}\n"
                    "    limits: {memory: 256Mi}\n"
                    "  tiny:\n"
                    "    image: ${TINY:-tiny}\n";
    struct stack st;
    char err[256];
    assert_int_equal(stack_parse(y, strlen(y), fake_env, NULL, &st, err, sizeof err), 0);
    assert_string_equal(st.gateway, "http://127.0.0.1:9999");
    json_t *r = json_object_get(st.deployments, "resnet");
    assert_string_equal(json_string_value(json_object_get(r, "service")), "resnet");
    assert_string_equal(json_string_value(json_object_get(r, "image")), "resnet50");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "envVars"), "input")),
                        "image");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "labels"), "com.openfaas.scale.max")),
        "8");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "limits"), "memory")),
                        "256Mi");
    json_t *t = json_object_get(st.deployments, "tiny");
    assert_string_equal(json_string_value(json_object_get(t, "image")), "tiny");
    assert_true(json_is_object(json_object_get(t, "labels")));
    stack_free(&st);
}

static void stack_errors(void **state)
{
    struct stack st;
    char err[256];
    const char *noimg = "functions:\n  a:\n    environment: {x: y}\n";
    assert_int_equal(stack_parse(noimg, strlen(noimg), fake_env, NULL, &st, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "image"));
    const char *nofn = "provider: {name: openfaas}\n";
    assert_int_equal(stack_parse(nofn, strlen(nofn), fake_env, NULL, &st, err, sizeof err),
                     -EINVAL);
    const char *badenv = "functions:\n  a:\n    image: m\n    environment: {x: [1]}\n";
    assert_int_equal(stack_parse(badenv, strlen(badenv), fake_env, NULL, &st, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "environment.x"));
}

/* examples/stack.yml parses, and its two functions share one model. */
static void example_stack(void **state)
{
    const char *src = getenv("SHMFAAS_SOURCE");
    if (!src)
        skip();
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/examples/stack.yml", src);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    struct stack st;
    assert_int_equal(stack_parse(text, n, fake_env, NULL, &st, err, sizeof err), 0);
    assert_int_equal(json_object_size(st.deployments), 2);
    json_t *a = json_object_get(st.deployments, "classify");
    json_t *b = json_object_get(st.deployments, "classify-json");
    assert_string_equal(json_string_value(json_object_get(a, "image")), "resnet50");
    assert_string_equal(json_string_value(json_object_get(b, "image")), "resnet50");
    assert_string_equal(st.gateway, "http://127.0.0.1:8080");
    stack_free(&st);
}

/* --filter (a glob) and --regex (anywhere in the name) pick functions as faas-cli does. */
static void select_functions(void **state)
{
    static const char *y = "functions:\n"
                           "  resnet-a: {image: resnet50}\n"
                           "  resnet-b: {image: resnet50}\n"
                           "  squeeze: {image: squeezenet1_1}\n";
    static const struct {
        const char *filter, *regex;
        int rc;
        size_t n;
    } cases[] = {
        {NULL, NULL, 0, 3},
        {"resnet-*", NULL, 0, 2},
        {"squeeze", NULL, 0, 1},
        {"resnet", NULL, -ENOENT, 0},
        {NULL, "^resnet-[ab]$", 0, 2},
        {NULL, "eez", 0, 1},
        {NULL, "b$|^sq", 0, 2},
        {NULL, "(", -EINVAL, 0},
        {"x", "y", -EINVAL, 0},
        {NULL, "^nothing", -ENOENT, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct stack st;
        char err[256] = "";
        assert_int_equal(stack_parse(y, strlen(y), fake_env, NULL, &st, err, sizeof err), 0);
        int rc = stack_select(&st, cases[i].filter, cases[i].regex, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: %d (%s), expected %d", i, rc, err, cases[i].rc);
        if (rc == 0)
            assert_int_equal(json_object_size(st.deployments), cases[i].n);
        else
            assert_true(err[0] != '\0');
        stack_free(&st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(substitution),         cmocka_unit_test(yaml_tree),
        cmocka_unit_test(stack_to_deployments), cmocka_unit_test(stack_errors),
        cmocka_unit_test(example_stack),        cmocka_unit_test(select_functions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
