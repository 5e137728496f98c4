/*
 * test_zerocopy_helper.c — one "instance" for test_zerocopy: maps a plan image file PROT_READ,
 * opens it, runs one inference, then on the parent's cue reports its own memory.
 *
 * Protocol on stdin/stdout: prints "ready SUM" after the run (SUM: the outputs' sum, %a), waits
 * for a line, prints "uss BYTES arena BYTES" from /proc/self/smaps_rollup, waits for EOF, exits 0.
 * Usage: test-zerocopy-helper IMAGE_FILE
 */
#include "common/common.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int run_once(struct engine_model *m, double *sum, char *err, size_t errlen)
{
    struct engine_tensor_info ti;
    struct engine_session *s;
    if (engine_model_input(m, 0, &ti) || engine_session_create(m, &s, err, errlen))
        return -1;
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
    int rc = engine_session_run(s, &in, 1, out, 1, err, errlen);
    *sum = 0;
    for (size_t i = 0; !rc && i < out[0].nbytes / sizeof(float); i++)
        *sum += ((const float *)out[0].data)[i];
    free(x);
    /* the session stays alive on purpose: its arena is part of what the parent measures */
    return rc;
}

int main(int argc, char **argv)
{
    char err[512], line[64];
    if (argc != 2)
        return 2;
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return 2;
    void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    struct engine_model *m;
    double sum;
    if (img == MAP_FAILED || engine_model_open(img, (size_t)st.st_size, &m, err, sizeof(err)) ||
        run_once(m, &sum, err, sizeof(err))) {
        fprintf(stderr, "helper: %s\n", err);
        return 1;
    }
    printf("ready %a\n", sum);
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    struct proc_mem pm;
    if (proc_mem_read(getpid(), &pm))
        return 1;
    printf("uss %llu arena %zu\n", (unsigned long long)proc_mem_uss(&pm),
           engine_model_arena_size(m));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin))
        ;
    return 0;
}
