/* The envVars allow-list (fnenv.h): every key shmfaas-fn reads, and who may set it. */
#include "common/fnenv.h"

#include <string.h>

const struct fn_env_key fn_env_keys[] = {
    /* codecs */
    {"input", true},
    {"output", true},
    {"softmax", true},
    {"image_size", true},
    {"topk", true},
    {"mean", true},
    {"std", true},
    {"max_pixels", true},
    {"labels", true}, /* a path: confined to the models directory (common/confine.h) */
    {"input_shape", true},
    {"image_layout", true},
    {"image_fit", true},
    /* output=boxes (src/fn/boxes.c) */
    {"boxes_format", true},
    {"anchors", true},
    {"box_scale", true},
    {"score_threshold", true},
    {"iou_threshold", true},
    {"max_boxes", true},
    {"nms", true},
    {"score_sigmoid", true},
    /* limits and timeouts */
    {"threads", true},
    {"max_inflight", true},
    {"exec_timeout", true},
    {"read_timeout", true},
    {"write_timeout", true},
    {"idle_release", true},
    {"max_body", true},
    /* logs */
    {"log_level", true},
    /* the platform's */
    {"PORT", false},
    {"model", false},
    {"store_socket", false},
};
const size_t fn_env_nkeys = sizeof(fn_env_keys) / sizeof(fn_env_keys[0]);

static const struct fn_env_key *find(const char *key)
{
    for (size_t i = 0; key && i < fn_env_nkeys; i++)
        if (strcmp(fn_env_keys[i].name, key) == 0)
            return &fn_env_keys[i];
    return NULL;
}

bool fn_env_key_allowed(const char *key)
{
    const struct fn_env_key *k = find(key);
    return k && k->deployer;
}

bool fn_env_key_known(const char *key)
{
    return find(key) != NULL;
}

const char *fn_env_keys_list(char *buf, size_t len)
{
    size_t n = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < fn_env_nkeys; i++) {
        if (!fn_env_keys[i].deployer)
            continue;
        size_t k = strlen(fn_env_keys[i].name);
        if (n + k + 3 > len)
            break;
        if (n) {
            memcpy(buf + n, ", ", 2);
            n += 2;
        }
        memcpy(buf + n, fn_env_keys[i].name, k + 1);
        n += k;
    }
    return buf;
}
