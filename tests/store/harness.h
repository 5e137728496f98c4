/*
 * harness.h — runs the real shmfaas-store for integration tests.
 *
 * Each test gets a fresh /dev/shm/shmfaas-test-XXXXXX directory holding models/ (copies of the
 * generated test models), images/ (the store's --dir) and store.sock; the daemon is started as a
 * child (killed if the test process dies) and the whole directory is removed at teardown.
 */
#ifndef SHMFAAS_TESTS_STORE_HARNESS_H
#define SHMFAAS_TESTS_STORE_HARNESS_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct store_env {
    char root[64];
    char models[128];
    char dir[128];
    char sock[128];
    char log[128]; /* set (env_log_to_file) to send the store's stderr there */
    pid_t pid;
};

/* Creates the directory and copies every generated model into models/. */
void env_create(struct store_env *e);
/* Starts shmfaas-store with --budget budget and extra args (NULL-terminated, may be NULL), and
 * waits until it accepts connections. */
void env_start(struct store_env *e, const char *budget, const char *const *extra);
/* From now on the store's stderr goes to <root>/store.log (appended), for env_log_count. */
void env_log_to_file(struct store_env *e);
/* Lines of the store's log file containing needle. */
int env_log_count(const struct store_env *e, const char *needle);
/* Runs the store with --dir dir (not e->dir) and extra args, expecting it to refuse to start:
 * returns its exit status (-1 if it was still running after 10 s: then it is killed). */
int env_start_refused(struct store_env *e, const char *dir, const char *const *extra);
/* Path of a program in the build tree, e.g. "src/fn/shmfaas-fn". */
void env_binary(const char *rel, char *out, size_t len);
/* Sends sig (SIGTERM: clean stop, SIGKILL: crash) and reaps the store. */
void env_stop(struct store_env *e, int sig);
/* Stops the store if running and removes the directory. */
void env_destroy(struct store_env *e);

/* cmocka setup/teardown: a fresh environment per test (*state is the struct store_env). */
int env_setup(void **state);
int env_teardown(void **state);

/* STATS over a fresh connection, parsed; json_decref() it. */
json_t *env_stats(const struct store_env *e);
/* totals.<key> of a STATS reply. */
int64_t stats_total(json_t *stats, const char *key);
/* The model whose names contain name, or NULL. */
json_t *stats_model(json_t *stats, const char *name);

/* Files named *.plan in the image directory, and their total size. */
int env_count_images(const struct store_env *e, uint64_t *bytes);
/* Bytes of the weights blobs (<hex>.weights) in the image directory; *count (may be NULL) how
 * many. env_count_images counts plan parts and whole images, its bytes include the blobs. */
uint64_t env_blob_bytes(const struct store_env *e, int *count);
/* Calls fn(path, ctx) (may be NULL) for each *.plan in the image directory; returns how many, -1
 * when the directory is gone. */
int env_each_image(const struct store_env *e, void (*fn)(const char *path, void *ctx), void *ctx);
/* Open fds of a process (/proc/PID/fd entries). */
int proc_fd_count(pid_t pid);
/* Path of a generated test model in the build tree. */
void model_source(const char *name, char *out, size_t len);

#endif
