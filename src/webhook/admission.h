/*
 * admission.h — shmfaas-webhook's one decision: an admission.k8s.io/v1 AdmissionReview in, the
 * AdmissionReview (or an HTTP error) to answer out.
 *
 * Owns: the parse of the review and the JSON Patch (RFC 6902) that injects the store's socket into
 * a pod that names a model (label or annotation `selector`). Guarantees:
 *   - a review the webhook cannot read (not JSON, over ADMISSION_MAX_BODY, nested deeper than
 *     ADMISSION_MAX_DEPTH, over ADMISSION_MAX_VALUES values, wrong apiVersion/kind, no request
 *     or uid) gets HTTP 400 and {"error": "..."}; so the parse tree stays a few times the body;
 *     any other problem with a readable uid is a review with allowed false and a
 *     status message saying what was wrong; the function never crashes on any bytes (fuzzed);
 *   - a pod without the selector, a non-Pod object or an operation other than CREATE is allowed
 *     unchanged (no patch);
 *   - a selected pod that would run as root (runAsUser 0, privileged, allowPrivilegeEscalation
 *     true, in the pod or any container, init or ephemeral) is refused (allowed false, code 403);
 *   - otherwise the patch adds, only where missing (applying it twice changes nothing more): a
 *     read-only hostPath volume for socket_dir, a read-only mount of it at mount_path in every
 *     container, env store_socket=<mount_path>/store.sock, pod-level runAsNonRoot true and
 *     runAsUser run_as_user (unless every container already sets a non-root uid); JSON Pointer
 *     tokens are escaped per RFC 6901.
 */
#ifndef SHMFAAS_ADMISSION_H
#define SHMFAAS_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#define ADMISSION_MAX_BODY  ((size_t)2 << 20) /* kube-apiserver's own limit is 3 MiB per object */
#define ADMISSION_MAX_DEPTH 64                /* a pod is ~10 deep; jansson recurses per level */
#define ADMISSION_MAX_VALUES 100000           /* JSON values; a large pod has a few thousand */
#define ADMISSION_VOLUME    "shmfaas-socket"
#define ADMISSION_MARK      "webhook.shmfaas.com/injected" /* annotation the patch sets */

struct admission_opts {
    const char *socket_dir; /* the node's socket directory (hostPath), e.g. /run/shmfaas */
    const char *mount_path; /* where containers see it, e.g. /run/shmfaas */
    const char *selector;   /* label or annotation key, e.g. com.shmfaas.model */
    long run_as_user;       /* > 0 */
};

/* Decides one review. On return *status is the HTTP status (200 or 400) and *out a malloc'd JSON
 * body (the AdmissionReview, or {"error": ...}). 0, or -ENOMEM with err set (nothing to answer). */
int admission_review(const struct admission_opts *o, const uint8_t *body, size_t len,
                     unsigned *status, char **out, char *err, size_t errlen);

#endif
