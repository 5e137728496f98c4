/*
 * shmfaas-fn — a function instance: serves inference over HTTP (of-watchdog / Knative contract)
 * from a model attached through the store, or loaded privately with --private.
 *
 *   model=resnet50 input=image output=topk labels=/models/synset.txt shmfaas-fn
 *   shmfaas-fn --private resnet50.onnx --listen unix:/run/fn.sock
 *
 * main() reads the configuration, starts the instance and waits for SIGTERM/SIGINT in sigwait(),
 * outside signal context; then it drains in-flight requests and exits 0. With --template it is a
 * template (template.c) that forks instances for shmfaasd; each fork continues here as an
 * instance. It exits 75 (EX_TEMPFAIL) when the store refused its model (budget, the model does not
 * compile, or a thread count the store does not compile for).
 */
#include "fn/fn.h"
#include "fn/store_source.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Whether rc is the store refusing the model (store_source.h): restarting at once cannot help, so
 * the exit status tells a supervisor to back off rather than restart. */
static int store_refused(int rc)
{
    return rc == FN_STORE_REFUSED_BUDGET || rc == FN_STORE_REFUSED_COMPILE ||
           rc == FN_STORE_REFUSED_THREADS;
}

int main(int argc, char **argv)
{
    int64_t t0 = now_ns();
    /* One malloc arena: an instance has a worker and short-lived connection threads, and each
     * extra arena keeps ~1 MiB of an idle instance resident for nothing. */
    mallopt(M_ARENA_MAX, 1);
    sigset_t sigs;
    signals_block_stop(&sigs); /* before any thread starts */

    struct fn_config cfg;
    char err[1024];
    if (fn_config_load(&cfg, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "shmfaas-fn: %s\n", err);
        fn_config_free(&cfg);
        return 2;
    }
    log_set_level(cfg.log_level);
    struct fn_instance *inst = NULL;
    int rc = cfg.template_mode ? fn_template_run(&cfg, &inst, err, sizeof(err))
                               : fn_instance_start(&cfg, t0, &inst, err, sizeof(err));
    if (rc < 0) {
        log_error("%s", err);
        fn_config_free(&cfg);
        return store_refused(rc) ? FN_EXIT_REFUSED : 1;
    }
    if (rc == 0 && cfg.template_mode) { /* the template is done; its instances run on */
        fn_config_free(&cfg);
        return 0;
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("signal %d: draining", sig);
    fn_instance_drain_and_stop(inst);
    fn_config_free(&cfg);
    return 0;
}
