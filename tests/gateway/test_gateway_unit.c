/* Unit tests of shmfaasd's pure parts: spec parsing/validation, names, scaling labels,
 * autoscaler decisions and the Prometheus text format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "gateway/gateway.h"

/* ---- names and namespaces ---- */

static void split_name_at_last_dot(void **state)
{
    char name[GW_NAME_MAX], err[256];
    assert_int_equal(gw_split_name("figlet", name, err, sizeof err), 0);
    assert_string_equal(name, "figlet");
    assert_int_equal(gw_split_name("figlet.openfaas-fn", name, err, sizeof err), 0);
    assert_string_equal(name, "figlet");
    /* the namespace is what follows the LAST dot: "a.b" is not a namespace we have */
    assert_int_equal(gw_split_name("a.b.openfaas-fn", name, err, sizeof err), -EINVAL);
    assert_int_equal(gw_split_name("figlet.other", name, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "namespace"));
    assert_int_equal(gw_split_name(".openfaas-fn", name, err, sizeof err), -EINVAL);
    assert_int_equal(gw_split_name("bad/name", name, err, sizeof err), -EINVAL);
}

static void valid_names_and_refs(void **state)
{
    assert_true(gw_valid_name("resnet-50_a"));
    assert_false(gw_valid_name(""));
    assert_false(gw_valid_name("a.b"));
    assert_false(gw_valid_name("a b"));
    /* model refs: common/modelref.h, tested in tests/common/test_confine.c */
}

/* ---- FunctionDeployment ---- */

static int parse(const char *json, struct fn_spec *spec, char *err, size_t errlen)
{
    return spec_parse(json, strlen(json), spec, err, errlen);
}

static void bare_faas_cli_deploy(void **state)
{
    struct fn_spec s;
    char err[512];
    assert_int_equal(parse("{\"service\":\"y\",\"image\":\"x\",\"labels\":{},\"annotations\":{}}",
                           &s, err, sizeof err),
                     0);
    assert_string_equal(s.name, "y");
    assert_string_equal(s.image, "x");
    assert_int_equal(s.scale.min, 1);
    assert_int_equal(s.scale.max, 5);
    assert_int_equal(s.scale.target, 1);
    assert_false(s.scale.zero);
    assert_int_equal(s.mem_limit, 0);
    assert_false(s.private_model);
    assert_int_equal(s.instance_cap, 1);
    assert_string_equal(json_string_value(json_object_get(s.deployment, "namespace")),
                        "openfaas-fn");
    spec_free(&s);
}

static void full_deployment(void **state)
{
    struct fn_spec s;
    char err[512];
    const char *j = "{\"service\":\"resnet\",\"image\":\"resnet50\",\"namespace\":\"openfaas-fn\","
                    "\"envVars\":{\"input\":\"image\",\"max_inflight\":\"4\"},"
                    "\"labels\":{\"com.openfaas.scale.min\":\"0\",\"com.openfaas.scale.max\":\"8\","
                    "\"com.openfaas.scale.target\":\"2\",\"com.openfaas.scale.zero\":\"true\","
                    "\"com.openfaas.scale.zero-duration\":\"2s\",\"com.shmfaas.private\":\"true\"},"
                    "\"limits\":{\"memory\":\"256Mi\",\"cpu\":\"1\"},\"requests\":null,"
                    "\"secrets\":[],\"constraints\":null,\"annotations\":null}";
    assert_int_equal(parse(j, &s, err, sizeof err), 0);
    assert_int_equal(s.scale.min, 0);
    assert_int_equal(s.scale.max, 8);
    assert_int_equal(s.scale.target, 2);
    assert_true(s.scale.zero);
    assert_int_equal(s.scale.zero_ms, 2000);
    assert_int_equal(s.mem_limit, 256ull << 20);
    assert_true(s.private_model);
    assert_int_equal(s.instance_cap, 4);
    assert_true(json_is_object(json_object_get(s.deployment, "annotations")));
    spec_free(&s);
}

static void expect_bad(const char *json, const char *needle)
{
    struct fn_spec s;
    char err[512] = "";
    assert_int_equal(parse(json, &s, err, sizeof err), -EINVAL);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    assert_null(s.deployment);
}

static void rejected_deployments(void **state)
{
    expect_bad("{\"service\":", "invalid JSON");
    expect_bad("[]", "object");
    expect_bad("{\"image\":\"x\"}", "service is required");
    expect_bad("{\"service\":\"y\"}", "image is required");
    expect_bad("{\"service\":\"y.z\",\"image\":\"x\"}", "service");
    expect_bad("{\"service\":\"y\",\"image\":\"../x\"}", "model ref");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"namespace\":\"prod\"}", "namespace");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"limits\":{\"memory\":\"lots\"}}", "quantity");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"limits\":{\"memory\":12}}", "limits.memory");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"envVars\":{\"a\":1}}", "envVars.a");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"envVars\":{\"LD_PRELOAD\":\"/x.so\"}}",
               "envVars.LD_PRELOAD is not a setting");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"envVars\":{\"model\":\"x\"}}",
               "set by shmfaasd");
    expect_bad("{\"service\":\"y\",\"image\":\"x:-v2\"}", "tag");
    expect_bad("{\"service\":\"y\",\"image\":\"x\\u0001y\"}", "control byte");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"labels\":[]}", "labels");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"labels\":{\"com.openfaas.scale.max\":\"x\"}}",
               "com.openfaas.scale.max");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"labels\":{\"com.openfaas.scale.min\":\"6\","
               "\"com.openfaas.scale.max\":\"2\"}}",
               "above");
    expect_bad(
        "{\"service\":\"y\",\"image\":\"x\",\"labels\":{\"com.openfaas.scale.zero\":\"yes\"}}",
        "true");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"labels\":"
               "{\"com.openfaas.scale.zero-duration\":\"soon\"}}",
               "duration");
    expect_bad("{\"service\":\"y\",\"image\":\"x\",\"service\":\"z\"}", "invalid JSON");
}

/* ---- autoscaler ---- */

static struct autoscale_in base(void)
{
    return (struct autoscale_in){.scale = {.min = 1, .max = 4, .target = 1, .zero_ms = 1000},
                                 .floor = -1,
                                 .current = 1,
                                 .now_ms = 100000,
                                 .last_active_ms = 100000,
                                 .down_delay_ms = 2000};
}

static void autoscale_up_fast_capped(void **state)
{
    struct autoscale_state st = {0};
    struct autoscale_in in = base();
    in.inflight = 1;
    in.queued = 7; /* demand 8 with target 1 → 8, capped by max 4 */
    assert_int_equal(autoscale_decide(&in, &st), 4);
    in.scale.target = 3; /* demand 8 / 3 per instance → 3 */
    assert_int_equal(autoscale_decide(&in, &st), 3);
}

static void autoscale_down_slowly(void **state)
{
    struct autoscale_state st = {0};
    struct autoscale_in in = base();
    in.current = 4;
    assert_int_equal(autoscale_decide(&in, &st), 4); /* starts the timer */
    in.now_ms += 1999;
    assert_int_equal(autoscale_decide(&in, &st), 4);
    in.now_ms += 1;
    assert_int_equal(autoscale_decide(&in, &st), 3); /* one step */
    in.current = 3;
    in.now_ms += 10;
    assert_int_equal(autoscale_decide(&in, &st), 3); /* next step waits again */
    in.inflight = 3;                                 /* demand back: timer reset */
    assert_int_equal(autoscale_decide(&in, &st), 3);
    assert_int_equal(st.below_since_ms, 0);
}

static void autoscale_min_floor_and_zero(void **state)
{
    struct autoscale_state st = {0};
    struct autoscale_in in = base();
    in.current = 1;
    in.now_ms += 60000; /* idle for a long time but zero not allowed: stays at min */
    assert_int_equal(autoscale_decide(&in, &st), 1);
    in.scale.zero = true;
    assert_int_equal(autoscale_decide(&in, &st), 0);
    in.now_ms = in.last_active_ms + 500; /* within the zero window: stays */
    assert_int_equal(autoscale_decide(&in, &st), 1);
    in.current = 0;
    in.queued = 1; /* a held request at zero wakes it */
    in.now_ms += 60000;
    assert_int_equal(autoscale_decide(&in, &st), 1);
    in.current = 0;
    in.queued = 0;
    in.scale.zero = false;
    assert_int_equal(autoscale_decide(&in, &st), 1); /* back to min */
}

static void autoscale_manual_floor(void **state)
{
    struct autoscale_state st = {0};
    struct autoscale_in in = base();
    in.floor = 3;
    assert_int_equal(autoscale_decide(&in, &st), 3);
    in.floor = 9; /* above max: clamped */
    assert_int_equal(autoscale_decide(&in, &st), 4);
    in.floor = 0; /* scaled to zero by hand: at once */
    in.current = 2;
    assert_int_equal(autoscale_decide(&in, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_name_at_last_dot),
        cmocka_unit_test(valid_names_and_refs),
        cmocka_unit_test(bare_faas_cli_deploy),
        cmocka_unit_test(full_deployment),
        cmocka_unit_test(rejected_deployments),
        cmocka_unit_test(autoscale_up_fast_capped),
        cmocka_unit_test(autoscale_down_slowly),
        cmocka_unit_test(autoscale_min_floor_and_zero),
        cmocka_unit_test(autoscale_manual_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
