/*
 * fuzz_http_head — drives http_head_check (common/http.h: the gate's check of a request's header
 * block before libmicrohttpd sees the connection) with arbitrary bytes. It must never read past
 * the block, must answer 0 or one of the statuses the gate sends, and its message must be
 * NUL-terminated inside the buffer (abort otherwise, so the fuzzer reports it). An accepted block
 * holds no NUL and fits HTTP_HEAD_MAX.
 *
 * libFuzzer (clang): tests/fuzz/run-fuzz http_head SECONDS. Replay (gcc): fuzz-http-head-replay
 * [FILE...]; with no file it replays tests/fuzz/corpus/http_head (see fuzz_replay.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *head = malloc(size ? size : 1); /* exactly size bytes: ASan sees any overread */
    if (!head)
        abort();
    memcpy(head, data, size);
    char msg[128];
    memset(msg, 'x', sizeof(msg));
    unsigned st = http_head_check(head, size, msg, sizeof(msg));
    switch (st) {
    case 0:
        if (size > HTTP_HEAD_MAX || memchr(head, '\0', size))
            abort();
        break;
    case 400:
    case 413:
    case 431:
    case 501:
    case 505:
        if (!memchr(msg, '\0', sizeof(msg)))
            abort();
        break;
    default:
        abort();
    }
    free(head);
    return 0;
}

#include "fuzz_replay.h"
