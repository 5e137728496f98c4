/*
 * test_zerocopy.c — issue 2 acceptance 3: a plan image is shared, never copied, never written.
 *
 * Compiles a model with ~73 MiB of weights, writes the image file into a temporary directory,
 * execs two helper processes that each map it PROT_READ and run it; while both are alive each
 * reports its Private_Clean + Private_Dirty, which must stay below its arena + 16 MiB, and both
 * must compute what this process computes. Then a forked child writes through a read-only
 * mapping of the file and must die of SIGSEGV, and helpers started with another thread count or a
 * lower CPU ISA refuse the image (issue 2 acceptance 4).
 * Usage: test-zerocopy MODEL.onnx HELPER
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "engine/engine.h"

#define SLACK (16ull << 20)

struct zc {
    const char *onnx, *helper;
    char dir[64], image[96];
    void *img;
    size_t len;
    double sum; /* output sum computed in this process */
};

static struct zc zc_state;

struct child {
    pid_t pid;
    FILE *to, *from;
};

/* Starts the helper on image with stdin/stdout (and stderr) on pipes; env_kv ("K=V") is added
 * to its environment when not NULL. */
static int spawn(const char *helper, const char *image, const char *env_kv, struct child *c)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) /* no other child inherits our ends */
        return -1;
    c->pid = fork();
    if (c->pid == 0) {
        if (env_kv)
            putenv((char *)env_kv);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[1]);
        close(out[0]);
        execl(helper, helper, image, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->to = fdopen(in[1], "w");
    c->from = fdopen(out[0], "r");
    return c->pid > 0 ? 0 : -1;
}

static double local_sum(const void *img, size_t len)
{
    char err[512];
    struct engine_model *m;
    struct engine_session *s;
    if (engine_model_open(img, len, &m, err, sizeof(err)) ||
        engine_session_create(m, &s, err, sizeof(err)))
        fail_msg("%s", err);
    struct engine_tensor_info ti;
    engine_model_input(m, 0, &ti);
    size_t n = (size_t)engine_shape_numel(&ti.shape);
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sin((double)i * 0.37);
    struct engine_tensor in = {.name = ti.name,
                               .dtype = ENGINE_F32,
                               .shape = ti.shape,
                               .data = x,
                               .nbytes = n * sizeof(float)};
    struct engine_tensor out[1];
    if (engine_session_run(s, &in, 1, out, 1, err, sizeof(err)))
        fail_msg("%s", err);
    double sum = 0;
    for (size_t i = 0; i < out[0].nbytes / sizeof(float); i++)
        sum += ((const float *)out[0].data)[i];
    free(x);
    engine_session_destroy(s);
    engine_model_close(m);
    return sum;
}

static int setup(void **state)
{
    struct zc *z = &zc_state;
    char err[512];
    uint8_t *onnx = NULL;
    size_t olen = 0;
    memcpy(z->dir, "/tmp/shmfaas-zc-XXXXXX", sizeof("/tmp/shmfaas-zc-XXXXXX"));
    if (!mkdtemp(z->dir) || read_file(z->onnx, 1u << 30, &onnx, &olen, err, sizeof(err)))
        fail_msg("setup: %s", err);
    struct engine_compile_opts o = {.threads = 1, .model_name = "big_weights"};
    if (engine_compile(onnx, olen, &o, &z->img, &z->len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    free(onnx);
    snprintf(z->image, sizeof(z->image), "%s/model.plan", z->dir);
    if (write_file_atomic(z->image, z->img, z->len, 0400, err, sizeof(err)))
        fail_msg("write: %s", err);
    z->sum = local_sum(z->img, z->len);
    *state = z;
    return 0;
}

static int teardown(void **state)
{
    struct zc *z = *state;
    unlink(z->image);
    rmdir(z->dir);
    engine_image_free(z->img);
    return 0;
}

static void test_two_instances_share_weights(void **state)
{
    struct zc *z = *state;
    struct child c[2];
    char line[256];
    for (int i = 0; i < 2; i++)
        assert_int_equal(spawn(z->helper, z->image, NULL, &c[i]), 0);
    for (int i = 0; i < 2; i++) {
        double sum;
        assert_non_null(fgets(line, sizeof(line), c[i].from));
        assert_int_equal(sscanf(line, "ready %la", &sum), 1);
        assert_true(sum == z->sum); /* same plan, same threads: bit-identical */
    }
    for (int i = 0; i < 2; i++) {
        fputs("measure\n", c[i].to);
        fflush(c[i].to);
    }
    for (int i = 0; i < 2; i++) {
        unsigned long long uss;
        size_t arena;
        assert_non_null(fgets(line, sizeof(line), c[i].from));
        assert_int_equal(sscanf(line, "uss %llu arena %zu", &uss, &arena), 2);
        print_message("instance %d: private %.1f MiB, arena %.1f MiB, image %.1f MiB\n", i,
                      uss / 1048576.0, arena / 1048576.0, z->len / 1048576.0);
        assert_true(uss < arena + SLACK);
        assert_true(z->len > 4 * SLACK); /* the weights alone would break the bound */
    }
    for (int i = 0; i < 2; i++) {
        int status;
        fclose(c[i].to);
        fclose(c[i].from);
        assert_int_equal(waitpid(c[i].pid, &status, 0), c[i].pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

static void test_write_through_mapping_faults(void **state)
{
    struct zc *z = *state;
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* cmocka's handler would turn the fault into a test failure */
        int fd = open(z->image, O_RDONLY);
        volatile uint8_t *p = mmap(NULL, z->len, PROT_READ, MAP_SHARED, fd, 0);
        if (fd < 0 || p == MAP_FAILED)
            _exit(3);
        p[z->len - 1] ^= 1; /* into the weights */
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* A process whose CPU features or thread count differ from the image's refuses to run it. */
static void refused_in(struct zc *z, const char *env_kv, const char *needle)
{
    struct child c;
    char line[512] = "";
    int status;
    assert_int_equal(spawn(z->helper, z->image, env_kv, &c), 0);
    fclose(c.to);
    if (!fgets(line, sizeof(line), c.from))
        line[0] = '\0';
    fclose(c.from);
    assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
    print_message("%s: %s", env_kv, line);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    assert_non_null(strstr(line, needle));
    assert_non_null(strstr(line, "recompile"));
}

static void test_other_process_settings_refused(void **state)
{
    struct zc *z = *state;
    refused_in(z, "OMP_NUM_THREADS=2", "compiled for 1 thread(s)");
    if (!strstr(engine_fingerprint(), "isa/sse41")) /* a lower ISA than this CPU's */
        refused_in(z, "DNNL_MAX_CPU_ISA=SSE41", "compiled for CPU ISA");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.onnx HELPER\n", argv[0]);
        return 2;
    }
    zc_state.onnx = argv[1];
    zc_state.helper = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_instances_share_weights),
        cmocka_unit_test(test_write_through_mapping_faults),
        cmocka_unit_test(test_other_process_settings_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
