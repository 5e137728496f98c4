/*
 * bench/coldstart — how long a new shmfaas-fn instance takes from process start to ready and to
 * its first answer (issue 4, criterion 5), side by side:
 *   resident      the model's image is already in the store (attach = map it);
 *   not resident  the store compiles it first (evicted before each run);
 *   --private     the instance compiles the ONNX itself into private memory (the baseline);
 *   ONNX Runtime  session create + first run in node (onnxruntime-node), same model, 1 thread;
 * and what idle_release costs: the first request after the arena was given back vs a warm one.
 *
 *   build/bench/coldstart [--model resnet50] [--runs 5] [--out FILE.md] [--json FILE.json]
 *
 * bench/coldstart-gateway runs it per model (--json) for the single-process table of
 * docs/bench/coldstart.md, next to the cold start through the gateway.
 *
 * Runs the programs of the build tree it belongs to; needs zoo/<model>/model.onnx
 * (tools/zoo --models resnet50) and, for the ONNX Runtime column,
 * `npm install --ignore-scripts` in bench/coldstart-ort or bench/ort (NODE_PATH falls back to
 * bench/ort/node_modules; skipped with a note otherwise).
 * Prints a Markdown report (also written to --out) with the command that produced it.
 */
#include <jansson.h>
#include <stdio.h>

#include "config.h"
#include "../tests/fn/harness.h"

#define MAX_RUNS 50
#define RAW_LEN  (3 * 224 * 224 * 4)

struct bench {
    struct harness h;
    const char *model;
    int runs;
    char store_sock[300], models[300], onnx[512];
    pid_t store;
    uint8_t *raw;
};

struct sample {
    double ready_ms, answer_ms; /* from spawn */
};

static double ms_since(int64_t t0)
{
    return (double)(now_ns() - t0) / 1e6;
}

static int start_store(struct bench *b)
{
    char bin[512], dir[300], dst[400];
    h_path(&b->h, "store.sock", b->store_sock, sizeof(b->store_sock));
    h_path(&b->h, "images", dir, sizeof(dir));
    h_path(&b->h, "models", b->models, sizeof(b->models));
    mkdir(b->models, 0755);
    snprintf(dst, sizeof(dst), "%s/%s.onnx", b->models, b->model);
    if (h_copy(b->onnx, dst) < 0) {
        fprintf(stderr, "coldstart: cannot copy %s (run tools/zoo --models %s)\n", b->onnx,
                b->model);
        return -1;
    }
    char *argv[] = {(char *)h_bin("src/store/shmfaas-store", bin, sizeof(bin)),
                    "--socket",
                    b->store_sock,
                    "--dir",
                    dir,
                    "--models",
                    b->models,
                    "--budget",
                    "4Gi",
                    "--log-level",
                    "warn",
                    NULL};
    b->store = h_spawn(&b->h, argv, NULL);
    return h_wait_path(b->store_sock, 10000) ? 0 : -1;
}

static int evict(struct bench *b)
{
    char bin[512];
    char *argv[] = {(char *)h_bin("src/store/shmfaas-store", bin, sizeof(bin)),
                    "evict",
                    (char *)b->model,
                    "--socket",
                    b->store_sock,
                    NULL};
    pid_t pid = h_spawn(&b->h, argv, NULL);
    int st = h_wait_exit(&b->h, pid, 30000);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Polls /_/ready every 0.5 ms: the figure is within that of the instance's own. */
static bool poll_ready(const char *sock, pid_t pid)
{
    for (int i = 0; i < 600000; i++) {
        if (h_status(sock, "GET", "/_/ready") == 200)
            return true;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return false;
        usleep(500);
    }
    return false;
}

/* One cold start: spawn → ready → first answer. */
static int one_start(struct bench *b, bool private, const char *idle, struct sample *s, pid_t *keep)
{
    char bin[512], sock[300], listen[320], store_env[320], model_env[128], idle_env[64];
    h_path(&b->h, "fn.sock", sock, sizeof(sock));
    snprintf(listen, sizeof(listen), "unix:%s", sock);
    snprintf(store_env, sizeof(store_env), "store_socket=%s", b->store_sock);
    snprintf(model_env, sizeof(model_env), "model=%s", b->model);
    snprintf(idle_env, sizeof(idle_env), "idle_release=%s", idle ? idle : "0");
    char log_path[300];
    h_path(&b->h, "fn.log", log_path, sizeof(log_path));
    const char *env[] = {model_env, store_env,        "input=raw", "output=topk",
                         idle_env,  "log_level=info", NULL};
    char *argv[] = {(char *)h_bin("src/fn/shmfaas-fn", bin, sizeof(bin)),
                    "--listen",
                    listen,
                    private ? "--private" : NULL,
                    b->onnx,
                    NULL};
    int64_t t0 = now_ns();
    pid_t pid = h_spawn_log(&b->h, argv, env, log_path);
    if (!poll_ready(sock, pid))
        return -1;
    s->ready_ms = ms_since(t0);
    struct h_reply r;
    h_http(sock, "POST", "/", b->raw, RAW_LEN, NULL, &r);
    s->answer_ms = ms_since(t0);
    free(r.body);
    if (r.status != 200)
        return -1;
    if (keep)
        *keep = pid;
    else
        h_kill(&b->h, pid);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct row {
    const char *name;
    double ready, answer; /* medians; < 0: not measured */
    char split[400];      /* the instance's own "ready in ..." log line of the last run */
};

/* The last "ready in" line the instances logged, without the log prefix. */
static void last_split(struct bench *b, char *out, size_t len)
{
    char path[300], line[1024];
    h_path(&b->h, "fn.log", path, sizeof(path));
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        char *r = strstr(line, "ready in ");
        char *colon = r ? strstr(r, "): ") : NULL;
        if (r && colon)
            snprintf(out, len, "%.*s)", (int)(colon - r), r);
    }
    if (f)
        fclose(f);
    unlink(path);
}

static int measure(struct bench *b, const char *name, bool private, bool evict_first,
                   struct row *row)
{
    double ready[MAX_RUNS], answer[MAX_RUNS];
    char discard[8];
    last_split(b, discard, sizeof(discard));
    for (int i = 0; i < b->runs; i++) {
        struct sample s;
        /* The first eviction finds nothing resident; later ones must succeed. */
        if ((evict_first && evict(b) < 0 && i > 0) || one_start(b, private, NULL, &s, NULL) < 0) {
            fprintf(stderr, "coldstart: %s run %d failed\n", name, i + 1);
            return -1;
        }
        ready[i] = s.ready_ms;
        answer[i] = s.answer_ms;
    }
    *row = (struct row){name, median(ready, b->runs), median(answer, b->runs), ""};
    last_split(b, row->split, sizeof(row->split));
    return 0;
}

/* onnxruntime-node figures (medians, ms). */
struct ort {
    double create, create_run, from_start;
    char version[64];
};

/* One `node ort_coldstart.js` run; -1 when it cannot run. */
static int ort_once(const struct bench *b, double *create, double *create_run, double *from_start,
                    char *version, size_t vlen)
{
    char cmd[1200], line[1024] = "";
    snprintf(cmd, sizeof(cmd),
             "cd '%s/bench/coldstart-ort' 2>/dev/null && NODE_PATH='%s/bench/ort/node_modules' "
             "node ort_coldstart.js '%s' 2>/dev/null",
             SHMFAAS_SOURCE_ROOT, SHMFAAS_SOURCE_ROOT, b->onnx);
    FILE *p = popen(cmd, "r");
    bool got = p && fgets(line, sizeof(line), p);
    if (p)
        pclose(p);
    json_t *j = got ? json_loads(line, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(j, "ort_version"));
    int rc = v ? 0 : -1;
    if (v) {
        *create = json_number_value(json_object_get(j, "create_ms"));
        *create_run = json_number_value(json_object_get(j, "create_and_run_ms"));
        *from_start = json_number_value(json_object_get(j, "from_process_start_ms"));
        snprintf(version, vlen, "%s", v);
    }
    json_decref(j);
    return rc;
}

static int measure_ort(const struct bench *b, struct ort *o)
{
    double c[MAX_RUNS], cr[MAX_RUNS], fs[MAX_RUNS];
    for (int i = 0; i < b->runs; i++)
        if (ort_once(b, &c[i], &cr[i], &fs[i], o->version, sizeof(o->version)) < 0)
            return -1;
    o->create = median(c, b->runs);
    o->create_run = median(cr, b->runs);
    o->from_start = median(fs, b->runs);
    return 0;
}

/* Warm request latency vs the first one after idle_release gave the arena back. */
static int measure_idle(struct bench *b, double *warm, double *after_idle)
{
    struct sample s;
    pid_t pid;
    if (one_start(b, false, "1s", &s, &pid) < 0)
        return -1;
    char sock[300];
    h_path(&b->h, "fn.sock", sock, sizeof(sock));
    double w[MAX_RUNS], a[MAX_RUNS];
    for (int i = 0; i < b->runs; i++) {
        struct h_reply r;
        int64_t t0 = now_ns();
        h_http(sock, "POST", "/", b->raw, RAW_LEN, NULL, &r);
        w[i] = ms_since(t0);
        free(r.body);
        usleep(1500 * 1000);
        t0 = now_ns();
        h_http(sock, "POST", "/", b->raw, RAW_LEN, NULL, &r);
        a[i] = ms_since(t0);
        free(r.body);
    }
    h_kill(&b->h, pid);
    *warm = median(w, b->runs);
    *after_idle = median(a, b->runs);
    return 0;
}

static void cpu_name(char *out, size_t len)
{
    snprintf(out, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            snprintf(out, len, "%.200s", c ? c + 2 : line);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
}

static void report(FILE *f, const struct bench *b, const struct row *rows, int n,
                   const struct ort *ort, double warm, double idle, const char *cmdline)
{
    char cpu[256];
    cpu_name(cpu, sizeof(cpu));
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# Cold start of a function instance (`bench/coldstart`)\n\n");
    fprintf(f,
            "Model `%s` (zoo, 1x3x224x224), 1 intra-op thread, median of %d runs, %s, %s, "
            "%ld CPUs online.\n\n",
            b->model, b->runs, date, cpu, sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, "Command: `%s`\n\n", cmdline);
    fprintf(f, "| start | process start → ready | → first answer |\n|---|---:|---:|\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "| %s | %.1f ms | %.1f ms |\n", rows[i].name, rows[i].ready, rows[i].answer);
    if (ort)
        fprintf(f,
                "| ONNX Runtime %s (node): session create + first run | – | %.1f ms (%.1f ms "
                "from node's process start) |\n",
                ort->version, ort->create_run, ort->from_start);
    else
        fprintf(f, "| ONNX Runtime | not measured: `npm install --ignore-scripts` in "
                   "bench/coldstart-ort did not give a working onnxruntime-node | |\n");
    if (ort)
        fprintf(f,
                "\nResident ready + first answer = %.2f × ONNX Runtime's create + first run "
                "(goal: ≤ 1/15 = 0.07 ×): %s.\n",
                rows[0].answer / ort->create_run,
                rows[0].answer * 15 <= ort->create_run
                    ? "met"
                    : "not met; ready needs a warm-up inference and the first answer a second "
                      "one, and one inference alone takes more than 1/15 of ONNX Runtime's "
                      "figure on this machine");
    if (ort)
        fprintf(f,
                "\nWithout the inferences: resident ready minus one warm inference is %.1f ms "
                "(process start, attach, open, session); ONNX Runtime's session create alone "
                "is %.1f ms.\n",
                rows[0].ready - warm, ort->create);
    for (int i = 0; i < n; i++)
        if (rows[i].split[0])
            fprintf(f, "\nAs the instance logs it (%s, last run): `%s`.\n", rows[i].name,
                    rows[i].split);
    fprintf(f,
            "\nIdle release (`idle_release=1s`, arena pages given back with MADV_DONTNEED): "
            "warm request %.1f ms, first request after idle %.1f ms (median; what separates "
            "them is the page faults of re-touching the arena, small next to the inference "
            "and within the noise of a shared machine).\n",
            warm, idle);
    fprintf(f, "\n## Reading the table\n\n"
               "- \"ready\" is what `GET /_/ready` reports: model attached (or compiled), session "
               "created and one warm-up inference done, as issue 4 requires. \"First answer\" adds "
               "one `POST /` with a raw zero tensor over a unix socket. So the resident column "
               "contains two full inferences; the instance logs its own split at `log_level=info` "
               "(`ready in ... since main() (store, open, session, warm-up)`; process exec and "
               "library loading come before main()).\n"
               "- Not resident: the store compiles the ONNX (and writes the image to tmpfs) while "
               "the instance waits in ATTACH; later instances of the function get the resident "
               "figure.\n"
               "- --private compiles in the instance, as every instance would without the store.\n"
               "- ONNX Runtime is timed inside node (`InferenceSession.create` + first `run`, 1 "
               "intra-op thread), so node's own start-up is not charged to it; the figure in "
               "brackets includes it.\n"
               "- The timings are wall-clock on a shared machine; other builds running at the same "
               "time inflate every column alike.\n");
}

/* The figures as one JSON object (for bench/coldstart-gateway). */
static int write_json(const char *path, const struct bench *b, const struct row *rows, int n,
                      const struct ort *ort, double warm, double idle)
{
    json_t *j = json_pack("{sssisfsf}", "model", b->model, "runs", b->runs, "warm_ms", warm,
                          "after_idle_ms", idle);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{sssfsfss}", "name", rows[i].name, "ready_ms",
                                             rows[i].ready, "answer_ms", rows[i].answer, "split",
                                             rows[i].split));
    json_object_set_new(j, "rows", arr);
    json_object_set_new(j, "ort",
                        ort ? json_pack("{sssfsfsf}", "version", ort->version, "create_ms",
                                        ort->create, "create_and_run_ms", ort->create_run,
                                        "from_process_start_ms", ort->from_start)
                            : json_null());
    int rc = json_dump_file(j, path, JSON_INDENT(1));
    json_decref(j);
    return rc;
}

static int parse_args(struct bench *b, int argc, char **argv, const char **out,
                      const char **json_out)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            b->model = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            b->runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            *out = argv[++i];
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            *json_out = argv[++i];
        else {
            fprintf(stderr, "usage: coldstart [--model NAME] [--runs N] [--out FILE.md] "
                            "[--json FILE.json]\n");
            return -1;
        }
    }
    if (b->runs < 1 || b->runs > MAX_RUNS) {
        fprintf(stderr, "coldstart: --runs must be 1-%d\n", MAX_RUNS);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench b = {.model = "resnet50", .runs = 5};
    const char *out = NULL, *json_out = NULL;
    setenv("SHMFAAS_BUILD", SHMFAAS_BUILD_ROOT, 0);
    setenv("SHMFAAS_ZOO", SHMFAAS_SOURCE_ROOT "/zoo", 0);
    if (parse_args(&b, argc, argv, &out, &json_out) < 0)
        return 2;
    char rel[128], cmdline[1024] = "";
    for (int i = 0; i < argc; i++)
        snprintf(cmdline + strlen(cmdline), sizeof(cmdline) - strlen(cmdline), "%s%s", i ? " " : "",
                 argv[i]);
    snprintf(rel, sizeof(rel), "%s/model.onnx", b.model);
    h_zoo(rel, b.onnx, sizeof(b.onnx));
    b.raw = calloc(1, RAW_LEN);
    if (h_init(&b.h) < 0 || start_store(&b) < 0)
        return 1;
    struct row rows[3];
    struct ort ort = {0};
    double warm = 0, idle = 0;
    int rc = measure(&b, "not resident (store compiles)", false, true, &rows[1]);
    if (!rc)
        rc = measure(&b, "resident in the store", false, false, &rows[0]);
    if (!rc)
        rc = measure(&b, "--private (instance compiles)", true, false, &rows[2]);
    if (!rc)
        rc = measure_idle(&b, &warm, &idle);
    bool have_ort = rc == 0 && measure_ort(&b, &ort) == 0;
    h_cleanup(&b.h);
    free(b.raw);
    if (rc < 0)
        return 1;
    report(stdout, &b, rows, 3, have_ort ? &ort : NULL, warm, idle, cmdline);
    if (json_out && write_json(json_out, &b, rows, 3, have_ort ? &ort : NULL, warm, idle) != 0) {
        fprintf(stderr, "coldstart: cannot write %s\n", json_out);
        return 1;
    }
    FILE *f = out ? fopen(out, "w") : NULL;
    if (f) {
        report(f, &b, rows, 3, have_ort ? &ort : NULL, warm, idle, cmdline);
        fclose(f);
    }
    return 0;
}
