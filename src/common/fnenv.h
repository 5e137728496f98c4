/*
 * fnenv.h — the environment a deployer may give a function instance: the one list of the keys of
 * shmfaas-fn's codec, limit and log settings that a FunctionDeployment's envVars may set.
 *
 * Owns: that list. Guarantees: shmfaasd refuses a deploy naming any other key (400 naming it) and
 * passes no other deployer key to an instance (build_env), so LD_PRELOAD, LD_LIBRARY_PATH, PATH,
 * GCONV_PATH, MALLOC_*, OMP_* and friends never come from a deployer. shmfaas-fn reads only keys
 * of this table (src/fn/config.c asserts it), so a setting added there without a row here fails
 * its tests. The platform's own keys (PORT, model, store_socket) are in the table too, marked not
 * settable: shmfaasd sets them (by flags) itself.
 */
#ifndef SHMFAAS_COMMON_FNENV_H
#define SHMFAAS_COMMON_FNENV_H

#include <stdbool.h>
#include <stddef.h>

struct fn_env_key {
    const char *name;
    bool deployer; /* false: set by the platform (shmfaasd, Knative), never by envVars */
};

extern const struct fn_env_key fn_env_keys[];
extern const size_t fn_env_nkeys;

/* May a deployer's envVars set key? */
bool fn_env_key_allowed(const char *key);
/* Is key one shmfaas-fn reads at all (a deployer's or the platform's)? */
bool fn_env_key_known(const char *key);
/* "input, output, ..." (the deployer's keys), for messages; returns buf. */
const char *fn_env_keys_list(char *buf, size_t len);

#endif
