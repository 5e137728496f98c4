/* An instance's lease on a store image; see store_source.h. */
#include "fn/store_source.h"
#include "common/common.h"

#include <errno.h>

int fn_store_source_open(const char *socket_path, const char *ref, int threads,
                         struct fn_store_source **out, void **image, size_t *len, char *err,
                         size_t errlen)
{
    *out = NULL;
    return seterr(err, errlen, -ENOTSUP, "model %s: store at %s: this build has no store client",
                  ref, socket_path);
}

void fn_store_source_close(struct fn_store_source *s)
{
}
