/*
 * A worker: one thread that runs queued jobs in order — reading + hashing a model file, reading
 * an image back from the disk tier, compiling ONNX bytes into a plan image (one at a time: a
 * compile already uses the machine; two would only fight for it), or writing an image to the
 * disk tier. The loop learns of a finished job through a pipe, so it never blocks.
 */
#include "store/store.h"

#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void hash_one(struct job *job)
{
    /* stat first: if the file changes while it is read, the cache key is already stale. */
    if (stat(job->path, &job->st) < 0) {
        job->rc = seterr(job->err, sizeof(job->err), -errno, "model %s: %s: %s", job->name,
                         job->path, strerror(errno));
        return;
    }
    char why[PROTO_MAX_ERR - PROTO_MAX_NAME - 16];
    job->rc = read_file(job->path, STORE_MAX_ONNX, &job->onnx, &job->onnx_len, why, sizeof(why));
    if (job->rc < 0) {
        seterr(job->err, sizeof(job->err), job->rc, "model %s: %s", job->name, why);
        return;
    }
    sha256(job->onnx, job->onnx_len, job->source_sha);
}

static void compile_one(struct job *job)
{
    struct engine_input_shape shapes[16];
    char text[REF_MAX_SHAPES + 1];
    struct engine_compile_opts opts = {
        .threads = job->threads,
        .base_dir = job->base_dir,
        .model_name = job->name,
        .shapes = shapes,
    };
    int64_t t0 = now_ns();
    job->rc = 0;
    if (job->shapes[0]) /* the loop parsed the same text already */
        job->rc = engine_shapes_parse(job->shapes, text, sizeof(text), shapes,
                                      (int)ARRAY_LEN(shapes), job->err, sizeof(job->err));
    opts.n_shapes = job->rc > 0 ? job->rc : 0;
    if (job->rc >= 0)
        job->rc = engine_compile(job->onnx, job->onnx_len, &opts, &job->image, &job->image_len,
                                 job->err, sizeof(job->err));
    job->seconds = (double)(now_ns() - t0) / 1e9;
    free(job->onnx);
    job->onnx = NULL;
}

static void push_back(struct job **list, struct job *job)
{
    job->next = NULL;
    while (*list)
        list = &(*list)->next;
    *list = job;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stop && !w->todo)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->stop)
            break;
        struct job *job = w->todo;
        w->todo = job->next;
        pthread_mutex_unlock(&w->lock);
        switch (job->kind) {
        case JOB_HASH:
            hash_one(job);
            break;
        case JOB_COMPILE:
            compile_one(job);
            break;
        case JOB_DISK_READ:
            disk_read_job(job);
            if (job->disk_rc < 0 && !job->onnx) /* the compile needs the model's bytes */
                hash_one(job);
            break;
        case JOB_DISK_WRITE:
            disk_write_job(job);
            break;
        }
        pthread_mutex_lock(&w->lock);
        push_back(&w->done, job);
        char byte = 1;
        if (write(w->notify[1], &byte, 1) < 0 && errno != EAGAIN)
            log_error("notify pipe: %s", strerror(errno));
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int worker_start(struct worker *w, char *err, size_t errlen)
{
    memset(w, 0, sizeof(*w));
    if (pipe2(w->notify, O_CLOEXEC | O_NONBLOCK) < 0)
        return seterr(err, errlen, -errno, "pipe: %s", strerror(errno));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        close(w->notify[0]);
        close(w->notify[1]);
        return seterr(err, errlen, -rc, "compile thread: %s", strerror(rc));
    }
    w->started = 1;
    return 0;
}

void worker_submit(struct worker *w, struct job *job)
{
    pthread_mutex_lock(&w->lock);
    push_back(&w->todo, job);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

struct job *worker_take_done(struct worker *w)
{
    char drain[64];
    while (read(w->notify[0], drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&w->lock);
    struct job *done = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->lock);
    return done;
}

void job_free(struct job *job)
{
    if (!job)
        return;
    free(job->onnx);
    if (job->image)
        engine_image_free(job->image);
    free(job->weights_buf);
    if (job->kind == JOB_DISK_WRITE && job->image_fd >= 0)
        close(job->image_fd);
    if (job->kind == JOB_DISK_WRITE && job->weights_fd >= 0)
        close(job->weights_fd);
    free(job);
}

static void free_list(struct job *job)
{
    while (job) {
        struct job *next = job->next;
        job_free(job);
        job = next;
    }
}

void worker_stop(struct worker *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    free_list(w->todo);
    free_list(w->done);
    close(w->notify[0]);
    close(w->notify[1]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    w->started = 0;
}
