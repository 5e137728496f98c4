/*
 * cpu.c — what this build on this CPU compiles for: oneDNN's effective ISA, oneDNN's version,
 * and the engine fingerprint the store folds into a model's identity (thread count and wait policy:
 * omp.c).
 */
#include "config.h"
#include "engine/plan.h"

#include <stdio.h>

#define STR_(x) #x
#define STR(x)  STR_(x)
#define DNNL_VERSION_STR                                                                           \
    STR(DNNL_VERSION_MAJOR) "." STR(DNNL_VERSION_MINOR) "." STR(DNNL_VERSION_PATCH)
#define FINGERPRINT(isa)                                                                           \
    "shmfaas-engine " SHMFAAS_VERSION                                                              \
    " plan/" STR(PLAN_FORMAT_VERSION_NUM) " onednn/" DNNL_VERSION_STR " isa/" isa
#define PLAN_FORMAT_VERSION_NUM 3

_Static_assert(PLAN_FORMAT_VERSION_NUM == PLAN_FORMAT_VERSION, "fingerprint names the format");

struct isa_def {
    dnnl_cpu_isa_t isa;
    const char *name;
    const char *fingerprint;
};

static const struct isa_def isas[] = {
    {dnnl_cpu_isa_sse41, "sse41", FINGERPRINT("sse41")},
    {dnnl_cpu_isa_avx, "avx", FINGERPRINT("avx")},
    {dnnl_cpu_isa_avx2, "avx2", FINGERPRINT("avx2")},
    {dnnl_cpu_isa_avx2_vnni, "avx2_vnni", FINGERPRINT("avx2_vnni")},
    {dnnl_cpu_isa_avx512_mic, "avx512_mic", FINGERPRINT("avx512_mic")},
    {dnnl_cpu_isa_avx512_mic_4ops, "avx512_mic_4ops", FINGERPRINT("avx512_mic_4ops")},
    {dnnl_cpu_isa_avx512_core, "avx512_core", FINGERPRINT("avx512_core")},
    {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni", FINGERPRINT("avx512_core_vnni")},
    {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16", FINGERPRINT("avx512_core_bf16")},
    {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx", FINGERPRINT("avx512_core_amx")},
};

static const struct isa_def *isa_current(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    for (size_t i = 0; i < sizeof(isas) / sizeof(isas[0]); i++)
        if (isas[i].isa == isa)
            return &isas[i];
    return NULL;
}

const char *cpu_isa_name(void)
{
    const struct isa_def *d = isa_current();
    return d ? d->name : "generic";
}

const char *engine_fingerprint(void)
{
    const struct isa_def *d = isa_current();
    return d ? d->fingerprint : FINGERPRINT("generic");
}

void cpu_dnnl_version(char *buf, size_t len)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, len, "%d.%d.%d", v->major, v->minor, v->patch);
}
