/*
 * Issue 3, criterion 1: 8 client processes attach the same model at the same time: the store
 * compiles it once, keeps one image file, and the clients' summed PSS grows by well under one
 * copy of the image per extra client. Prints the figures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENTS 8

/* A client process: attach, read every page of the image, report, wait to be killed. */
static void client_main(const char *sock, int go_fd, int ready_fd)
{
    char go;
    if (read(go_fd, &go, 1) != 1)
        _exit(2);
    struct store_client *c;
    const struct store_image *img;
    char err[1024];
    if (store_connect(sock, &c, err, sizeof(err)) < 0 ||
        store_attach(c, "gemm_a", 1, &img, err, sizeof(err)) < 0) {
        fprintf(stderr, "client %d: %s\n", (int)getpid(), err);
        _exit(1);
    }
    uint8_t sum = 0; /* touch every page so it counts in this client's PSS */
    for (uint64_t off = 0; off < img->size; off += 4096)
        sum += ((const volatile uint8_t *)img->addr)[off];
    for (uint64_t off = 0; off < img->weights_size; off += 4096) /* a plan part's weights */
        sum += ((const volatile uint8_t *)img->weights)[off];
    (void)sum;
    uint64_t size = img->size + img->weights_size;
    if (write(ready_fd, &size, sizeof(size)) != sizeof(size))
        _exit(3);
    pause();
    _exit(0);
}

/* PSS of the process's mappings of *.plan and *.weights files (the image: a plan part and its
 * weights blob), from /proc/PID/smaps. */
static uint64_t image_pss(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    uint64_t sum = 0;
    int in_image = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kb, lo, hi;
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2) /* a mapping's header line */
            in_image = strstr(line, ".plan\n") || strstr(line, ".weights\n");
        else if (in_image && sscanf(line, "Pss: %llu kB", &kb) == 1)
            sum += kb * 1024;
    }
    fclose(f);
    return sum;
}

static uint64_t pss_sum(const pid_t *pids, int n)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        struct proc_mem m;
        assert_int_equal(proc_mem_read(pids[i], &m), 0);
        sum += m.pss;
    }
    return sum;
}

static void start_clients(const struct store_env *e, pid_t *pids, int first, int n, uint64_t *size)
{
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    for (int i = first; i < first + n; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(ready[0]);
            client_main(e->sock, go[0], ready[1]);
        }
    }
    close(go[0]);
    close(ready[1]);
    char bytes[CLIENTS] = {0};
    assert_int_equal(write(go[1], bytes, (size_t)n), n); /* all attach at once */
    for (int i = 0; i < n; i++)
        assert_int_equal(read(ready[0], size, sizeof(*size)), (ssize_t)sizeof(*size));
    close(go[1]);
    close(ready[0]);
}

static void test_one_compile_shared_pages(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    pid_t pids[CLIENTS];
    uint64_t size = 0;
    /* 7 clients attach concurrently while nothing is compiled; then one more joins. */
    start_clients(e, pids, 0, CLIENTS - 1, &size);
    start_clients(e, pids, CLIENTS - 1, 1, &size);

    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles"), 1);
    assert_int_equal(stats_total(st, "leases"), CLIENTS);
    assert_int_equal(stats_total(st, "resident_models"), 1);
    json_decref(st);
    uint64_t bytes;
    assert_int_equal(env_count_images(e, &bytes), 1);
    assert_true(bytes == size);

    uint64_t pss_all = pss_sum(pids, CLIENTS), image_all = 0;
    for (int i = 0; i < CLIENTS; i++)
        image_all += image_pss(pids[i]);
    /* Kill all but one: the survivor's PSS is the cost of one client alone. */
    for (int i = 1; i < CLIENTS; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    uint64_t pss_one = pss_sum(pids, 1);
    kill(pids[0], SIGKILL);
    waitpid(pids[0], NULL, 0);

    double per_extra = ((double)pss_all - (double)pss_one) / (CLIENTS - 1);
    char a[32], b[32], c[32], d[32], f[32];
    printf("criterion 1: image %s, 1 client PSS %s, %d clients summed PSS %s, growth per extra "
           "client %s (%.1f%% of the image); %d private copies would cost %s\n",
           format_size(size, a, sizeof(a)), format_size(pss_one, b, sizeof(b)), CLIENTS,
           format_size(pss_all, c, sizeof(c)), format_size((uint64_t)per_extra, d, sizeof(d)),
           100.0 * per_extra / (double)size, CLIENTS, format_size(size * CLIENTS, f, sizeof(f)));
    printf("criterion 1: the image mappings of all %d clients together: PSS %s (one copy: %s)\n",
           CLIENTS, format_size(image_all, a, sizeof(a)), format_size(size, b, sizeof(b)));
    /* The image is in memory once, whatever the number of clients (page rounding aside). */
    assert_true(image_all <= size + CLIENTS * 4096);
#ifndef __SANITIZE_ADDRESS__ /* ASan's per-process shadow memory swamps the figure */
    /* "well under one copy per extra client": under a quarter of one. */
    assert_true(per_extra < (double)size / 4);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_compile_shared_pages, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
