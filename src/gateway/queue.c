/*
 * The durable queue of async invocations: STATE/queue.db, SQLite in WAL mode with
 * synchronous=FULL, so a 202 is only answered once the call's row is fsynced into the WAL (a
 * process kill -9 loses nothing even with NORMAL; FULL also keeps an acknowledged call across a
 * power loss, for one fsync per change — a few per call).
 *
 * One table, one row per accepted call. A row goes queued → (run) → result stored (when it has a
 * callback) → (called back) → deleted. Which rows a worker holds ("claims") lives in memory only:
 * after a crash every row is unclaimed again, so an interrupted run is run again and an
 * interrupted callback is sent again (at-least-once). Counts and bytes are kept in memory too
 * (loaded at open) for the bounds; the caller serialises every call (async.c's mutex).
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_FILE "queue.db"

struct queue {
    sqlite3 *db;
    uint64_t max_calls, max_bytes;
    uint64_t calls, bytes;
    int64_t claimed[ASYNC_MAX_WORKERS];
    int nclaimed;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS calls("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " call_id TEXT NOT NULL, function TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,"
    " headers TEXT NOT NULL, body BLOB NOT NULL, callback TEXT,"
    " enqueued_ms INTEGER NOT NULL, next_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " status INTEGER, result_headers TEXT, result BLOB, duration REAL);"
    "CREATE INDEX IF NOT EXISTS calls_due ON calls(next_ms, id);";

static int db_err(struct queue *q, char *err, size_t errlen, const char *what)
{
    return seterr(err, errlen, -EIO, QUEUE_FILE ": %s: %s", what,
                  q->db ? sqlite3_errmsg(q->db) : "cannot open");
}

static uint64_t call_bytes(const struct queue_call *c)
{
    return strlen(c->path) + strlen(c->headers) + c->body_len +
           (c->callback ? strlen(c->callback) : 0) +
           (c->result_headers ? strlen(c->result_headers) : 0) + c->result_len;
}

/* The file is created by us, in the state dir only we can write, never through a symlink; SQLite
 * gives its -wal and -shm files the same owner and mode. */
static int create_file(int state_fd, const char *state, char *err, size_t errlen)
{
    int fd = openat(state_fd, QUEUE_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s/" QUEUE_FILE ": %s", state, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        close(fd);
        return seterr(err, errlen, -EPERM, "%s/" QUEUE_FILE " must be a regular file of uid %d",
                      state, (int)geteuid());
    }
    fchmod(fd, 0600);
    close(fd);
    return 0;
}

int queue_open(int state_fd, const char *state, uint64_t max_calls, uint64_t max_bytes,
               struct queue **out, char *err, size_t errlen)
{
    char path[1024];
    int rc = create_file(state_fd, state, err, errlen);
    if (rc)
        return rc;
    if (str_fmt(path, sizeof path, "%s/" QUEUE_FILE, state))
        return seterr(err, errlen, -ENAMETOOLONG, "state path %s is too long", state);
    struct queue *q = calloc(1, sizeof *q);
    if (!q)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    q->max_calls = max_calls;
    q->max_bytes = max_bytes;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(path, &q->db, flags, NULL) != SQLITE_OK) {
        rc = db_err(q, err, errlen, "open");
        goto fail;
    }
    sqlite3_busy_timeout(q->db, 5000);
    if (sqlite3_exec(q->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_err(q, err, errlen, "schema");
        goto fail;
    }
    if (sqlite3_prepare_v2(q->db,
                           "SELECT count(*), coalesce(sum(length(path) + length(headers) + "
                           "length(body) + coalesce(length(callback), 0) + "
                           "coalesce(length(result_headers), 0) + coalesce(length(result), 0)), 0) "
                           "FROM calls",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = db_err(q, err, errlen, "count");
        goto fail;
    }
    q->calls = (uint64_t)sqlite3_column_int64(st, 0);
    q->bytes = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    *out = q;
    return 0;
fail:
    sqlite3_finalize(st);
    sqlite3_close(q->db);
    free(q);
    return rc;
}

void queue_close(struct queue *q)
{
    if (!q)
        return;
    sqlite3_close(q->db);
    free(q);
}

int queue_put(struct queue *q, const struct queue_call *c, char *err, size_t errlen)
{
    uint64_t n = call_bytes(c);
    if (c->body_len > QUEUE_BLOB_MAX)
        return seterr(err, errlen, -E2BIG, "an async body is at most %zu MiB",
                      QUEUE_BLOB_MAX >> 20);
    if (q->calls >= q->max_calls)
        return seterr(err, errlen, -ENOSPC,
                      "the async queue is full (%llu calls, "
                      "--async-max-queue)",
                      (unsigned long long)q->calls);
    if (q->bytes + n > q->max_bytes)
        return seterr(err, errlen, -ENOSPC,
                      "the async queue is full (%llu bytes queued, "
                      "--async-max-bytes)",
                      (unsigned long long)q->bytes);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db,
                           "INSERT INTO calls(call_id, function, method, path, headers, body, "
                           "callback, enqueued_ms, next_ms, attempts) "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 0)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(q, err, errlen, "insert");
    sqlite3_bind_text(st, 1, c->call_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->function, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->headers, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 6, c->body_len ? (const void *)c->body : "", c->body_len,
                        SQLITE_STATIC);
    if (c->callback)
        sqlite3_bind_text(st, 7, c->callback, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    sqlite3_bind_int64(st, 8, c->enqueued_ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(q, err, errlen, "insert");
    sqlite3_finalize(st);
    if (rc == 0) {
        q->calls++;
        q->bytes += n;
    }
    return rc;
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static uint8_t *col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    const void *b = sqlite3_column_blob(st, i);
    *len = (size_t)sqlite3_column_bytes(st, i);
    uint8_t *p = malloc(*len + 1);
    if (p) {
        if (*len)
            memcpy(p, b, *len);
        p[*len] = '\0';
    }
    return p;
}

static bool is_claimed(const struct queue *q, int64_t row)
{
    for (int i = 0; i < q->nclaimed; i++)
        if (q->claimed[i] == row)
            return true;
    return false;
}

static void unclaim(struct queue *q, int64_t row)
{
    for (int i = 0; i < q->nclaimed; i++)
        if (q->claimed[i] == row) {
            q->claimed[i] = q->claimed[--q->nclaimed];
            return;
        }
}

static int read_row(sqlite3_stmt *st, struct queue_call *c)
{
    memset(c, 0, sizeof *c);
    c->row = sqlite3_column_int64(st, 0);
    snprintf(c->call_id, sizeof c->call_id, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(c->function, sizeof c->function, "%s", (const char *)sqlite3_column_text(st, 2));
    c->method = col_text(st, 3);
    c->path = col_text(st, 4);
    c->headers = col_text(st, 5);
    c->body = col_blob(st, 6, &c->body_len);
    c->callback = col_text(st, 7);
    c->enqueued_ms = sqlite3_column_int64(st, 8);
    c->attempts = sqlite3_column_int(st, 9);
    c->has_result = sqlite3_column_type(st, 10) != SQLITE_NULL;
    if (c->has_result) {
        c->status = sqlite3_column_int(st, 10);
        c->result_headers = col_text(st, 11);
        c->result = col_blob(st, 12, &c->result_len);
        c->duration_s = sqlite3_column_double(st, 13);
    }
    bool ok = c->method && c->path && c->headers && c->body &&
              (!c->has_result || (c->result_headers && c->result));
    if (!ok)
        queue_call_free(c);
    return ok ? 0 : -ENOMEM;
}

int queue_claim(struct queue *q, int64_t now_ms, struct queue_call *out, int64_t *next_ms)
{
    sqlite3_stmt *st;
    *next_ms = -1;
    if (q->nclaimed >= ASYNC_MAX_WORKERS)
        return 0;
    /* at most nclaimed rows are held: among the first nclaimed + 1 one is free */
    if (sqlite3_prepare_v2(q->db,
                           "SELECT id, call_id, function, method, path, headers, body, callback, "
                           "enqueued_ms, attempts, status, result_headers, result, duration, "
                           "next_ms FROM calls ORDER BY next_ms, id LIMIT ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int(st, 1, q->nclaimed + 1);
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t row = sqlite3_column_int64(st, 0);
        if (is_claimed(q, row))
            continue;
        int64_t when = sqlite3_column_int64(st, 14);
        if (when > now_ms) {
            *next_ms = when;
            break;
        }
        rc = read_row(st, out);
        if (rc == 0) {
            q->claimed[q->nclaimed++] = row;
            rc = 1;
        }
        break;
    }
    sqlite3_finalize(st);
    return rc;
}

static int exec_row(struct queue *q, const char *sql, int64_t row)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(st, 1, row);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(st);
    return rc;
}

int queue_set_result(struct queue *q, const struct queue_call *c, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc = -EIO;
    if (sqlite3_prepare_v2(q->db,
                           "UPDATE calls SET status = ?2, result_headers = ?3, result = ?4, "
                           "duration = ?5, attempts = 0, next_ms = ?6 WHERE id = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, c->row);
        sqlite3_bind_int(st, 2, c->status);
        sqlite3_bind_text(st, 3, c->result_headers ? c->result_headers : "", -1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 4, c->result_len ? (const void *)c->result : "", c->result_len,
                            SQLITE_STATIC);
        sqlite3_bind_double(st, 5, c->duration_s);
        sqlite3_bind_int64(st, 6, now_ms);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
    }
    if (rc == 0)
        q->bytes += (c->result_headers ? strlen(c->result_headers) : 0) + c->result_len;
    unclaim(q, c->row);
    return rc;
}

int queue_retry(struct queue *q, int64_t row, int attempts, int64_t next_ms)
{
    sqlite3_stmt *st;
    int rc = -EIO;
    if (sqlite3_prepare_v2(q->db, "UPDATE calls SET attempts = ?2, next_ms = ?3 WHERE id = ?1", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, row);
        sqlite3_bind_int(st, 2, attempts);
        sqlite3_bind_int64(st, 3, next_ms);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
    }
    unclaim(q, row);
    return rc;
}

void queue_release(struct queue *q, int64_t row)
{
    unclaim(q, row);
}

int queue_done(struct queue *q, const struct queue_call *c)
{
    int rc = exec_row(q, "DELETE FROM calls WHERE id = ?1", c->row);
    if (rc == 0) {
        uint64_t n = call_bytes(c);
        q->calls--;
        q->bytes = q->bytes > n ? q->bytes - n : 0;
    }
    unclaim(q, c->row);
    return rc;
}

void queue_stats(struct queue *q, struct queue_stats *out)
{
    sqlite3_stmt *st;
    out->calls = q->calls;
    out->bytes = q->bytes;
    out->running = (uint64_t)q->nclaimed;
    out->oldest_ms = -1;
    if (sqlite3_prepare_v2(q->db, "SELECT min(enqueued_ms) FROM calls", -1, &st, NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        out->oldest_ms = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
}

void queue_call_free(struct queue_call *c)
{
    free(c->method);
    free(c->path);
    free(c->headers);
    free(c->body);
    free(c->callback);
    free(c->result_headers);
    free(c->result);
    c->method = c->path = c->headers = c->callback = c->result_headers = NULL;
    c->body = c->result = NULL;
}
