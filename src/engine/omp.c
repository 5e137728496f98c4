/*
 * omp.c — the engine's OpenMP threads: how many, and how they wait (issue 15).
 *
 * Debian's oneDNN runs on GNU OpenMP (libgomp), and so do our own kernels (winograd.c). At every
 * barrier and at the end of every parallel region a libgomp thread spins GOMP_SPINCOUNT times
 * before it sleeps on a futex; the default is 300000 spins (about 3 ms). On idle cores that is
 * free. On busy cores (a serverless node's normal state) the partner a thread waits for is often
 * descheduled, and every one of ResNet-50's few hundred barriers then costs up to a time slice of
 * spinning: threads=2 ran in 784 ms where threads=1 ran in 82 ms. libgomp itself spins only 100
 * times ("very short spinning") when it sees more threads than CPUs, but it counts only its own
 * threads; on a shared node the others belong to other processes. So the engine always asks for
 * that short spin (ENGINE_SPINCOUNT; the sweep in docs/bench/colocate.md compares it with longer
 * spins and none): a partner that arrives within microseconds is caught without a futex round trip,
 * one that is descheduled costs a few microseconds per barrier instead of a time slice.
 *
 * libgomp reads the setting once, in its constructor, before main(), so the program must have it in
 * its environment when it starts. A function in the executable's .preinit_array runs before every
 * shared-library constructor, but setenv() there is lost: libc's own initialisation then resets
 * environ to the kernel's array, which has no free slot. So that function re-executes the program
 * once (/proc/self/exe, same argv, the environment plus GOMP_SPINCOUNT), before any library has
 * run: a few milliseconds on the exec path only (a forked instance inherits the setting).
 *
 * An explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment is honoured as is: that is the
 * operator's override (shmfaasd passes its own OMP_WAIT_POLICY to instances; a deployer's envVars
 * can never set OMP_*, see common/fnenv.c). Every program that links the engine and runs or
 * compiles a model gets this: cpu_set_threads() below is what pulls this file out of the static
 * library.
 */
#include "engine/plan.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define ENGINE_SPINCOUNT "100"

void cpu_set_threads(int threads)
{
    omp_set_num_threads(threads > 0 ? threads : 1);
}

static int env_has(char **envp, const char *key)
{
    size_t n = strlen(key);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, key, n) == 0 && (*envp)[n] == '=')
            return 1;
    return 0;
}

/* Runs before libgomp reads its environment; environ is not set up yet, only envp. */
static void omp_wait_policy_preinit(int argc, char **argv, char **envp)
{
    (void)argc;
    if (env_has(envp, "OMP_WAIT_POLICY") || env_has(envp, "GOMP_SPINCOUNT") || getauxval(AT_SECURE))
        return;
    size_t n = 0;
    while (envp && envp[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return;
    if (n)
        memcpy(env, envp, n * sizeof *env);
    env[n] = "GOMP_SPINCOUNT=" ENGINE_SPINCOUNT;
    env[n + 1] = NULL;
    execve("/proc/self/exe", argv, env);
    int e = errno; /* no /proc: run on, with libgomp's default spin */
    dprintf(2,
            "%s: cannot re-execute with GOMP_SPINCOUNT=" ENGINE_SPINCOUNT
            " (/proc/self/exe: %s): OpenMP threads spin 300000 times at each wait\n",
            argv && argv[0] ? argv[0] : "shmfaas", strerror(e));
    free(env);
}

__attribute__((section(".preinit_array"),
               used)) static void (*const omp_preinit)(int, char **,
                                                       char **) = omp_wait_policy_preinit;
