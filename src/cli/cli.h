/*
 * cli.h — the `shmfaas` command-line client (DESIGN.md: talks to shmfaasd over HTTP only).
 *
 * Owns: reading stack.yml files (${VAR} / ${VAR:-default} substitution from the environment, YAML
 * through libyaml) and turning each function entry into the OpenFaaS FunctionDeployment that
 * faas-cli would send. Guarantees: substitution never reads past the text, an unterminated
 * "${" or a variable that is unset without a default is an error naming it, and every value put
 * into a deployment is a string, as the gateway requires.
 */
#ifndef SHMFAAS_CLI_H
#define SHMFAAS_CLI_H

#include <jansson.h>
#include <stddef.h>

/* Expands ${VAR} and ${VAR:-default} (default used when VAR is unset or empty); "$$" is a literal
 * "$". lookup(name, user) returns the value or NULL. The result is malloc'd and NUL-terminated. */
typedef const char *(*env_lookup)(const char *name, void *user);
int stack_substitute(const char *text, size_t len, env_lookup lookup, void *user, char **out,
                     char *err, size_t errlen);

/* YAML → JSON: mappings become objects, sequences arrays, scalars strings. */
int yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t errlen);

/* A parsed stack file: its functions as FunctionDeployments (an object name → deployment) and
 * the provider's gateway URL, if it names one ("" otherwise). */
struct stack {
    json_t *deployments;
    char gateway[512];
};
int stack_parse(const char *text, size_t len, env_lookup lookup, void *user, struct stack *out,
                char *err, size_t errlen);
/* Keeps the functions whose name matches filter (a shell glob, fnmatch: faas-cli's --filter) or
 * regex (POSIX extended, matching anywhere in the name, as Go's regexp.MatchString in faas-cli's
 * --regex); both NULL keeps all. -EINVAL for both given or a bad regex, -ENOENT when nothing
 * matches; each with a message. */
int stack_select(struct stack *s, const char *filter, const char *regex, char *err, size_t errlen);
void stack_free(struct stack *s);

#endif
