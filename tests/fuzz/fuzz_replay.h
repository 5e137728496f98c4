/*
 * fuzz_replay.h — the standalone driver shared by the engine fuzz targets (fuzz_onnx, fuzz_plan,
 * fuzz_tensor_json) when they are not built as libFuzzer targets.
 *
 * Owns: main() for the gcc/replay build. Guarantees: every file named on the command line (or,
 * with none, every file of the target's seed directory FUZZ_CORPUS_DIR) is fed to
 * LLVMFuzzerTestOneInput as is, then every prefix of it at FUZZ_STEPS cut points, then with
 * deterministic byte mutations; the exit status is 0 when no input crashed (a crash aborts).
 * Include it once, after LLVMFuzzerTestOneInput is declared.
 */
#ifndef SHMFAAS_FUZZ_REPLAY_H
#define SHMFAAS_FUZZ_REPLAY_H

#ifndef SHMFAAS_LIBFUZZER
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define FUZZ_STEPS     64
#define FUZZ_MUTATIONS 64

static void replay_buffer(const uint8_t *data, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    memcpy(buf, data, len);
    LLVMFuzzerTestOneInput(buf, len);
    size_t step = len / FUZZ_STEPS ? len / FUZZ_STEPS : 1;
    for (size_t cut = 0; cut < len; cut += step)
        LLVMFuzzerTestOneInput(buf, cut);
    uint32_t rng = 2463534242u ^ (uint32_t)len;
    for (int i = 0; i < FUZZ_MUTATIONS && len; i++) {
        memcpy(buf, data, len);
        for (int k = 0; k < 1 + i % 4; k++) {
            rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
            buf[rng % len] ^= (uint8_t)(1u << (rng >> 8) % 8 | (i % 3 == 0 ? 0xff : 0));
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    free(buf);
}

static int replay_file(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char err[512];
    if (read_file(path, 64u << 20, &data, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    replay_buffer(data, len);
    free(data);
    printf("replayed %s (%zu bytes)\n", path, len);
    return 0;
}

static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open the seed directory %s\n", dir);
        return -1;
    }
    int rc = 0, n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        rc |= replay_file(path);
        n++;
    }
    closedir(d);
    return n ? rc : -1;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc < 2)
        rc = replay_dir(FUZZ_CORPUS_DIR);
    for (int i = 1; i < argc; i++)
        rc |= replay_file(argv[i]);
    return rc ? 1 : 0;
}
#endif

#endif
