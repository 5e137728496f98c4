/*
 * fuzz_tmpl_msg — drives tmpl_msg_check (src/common/tmplproto.h: the one parser of the messages
 * on a template's control socket) with arbitrary bytes. Input: byte 0 = the fd count received
 * (low 3 bits, 0-7) and whether the ancillary data was truncated (bit 3); byte 1 = the mask of
 * wanted types; the rest = the packet. An accepted message must be of a wanted type, carry exactly
 * the fds its flags say, name no unknown flag, no root drop, and have a NUL-terminated text; abort
 * otherwise.
 *
 * libFuzzer (clang): build fuzz-tmpl-msg. Replay (gcc): fuzz-tmpl-msg-replay [FILE...]; with no
 * file it replays tests/fuzz/corpus/tmpl_msg (see fuzz_replay.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/tmplproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int nfds = data[0] & 7, truncated = (data[0] >> 3) & 1;
    unsigned want = data[1];
    struct tmpl_msg m;
    char err[256];
    if (tmpl_msg_check(data + 2, size - 2, nfds, truncated, want, &m, err, sizeof err) != 0) {
        if (strnlen(err, sizeof err) == sizeof err)
            abort();
        return 0;
    }
    if (!(want & (1u << m.type)) || truncated || strnlen(m.text, sizeof m.text) == sizeof m.text)
        abort();
    if (m.type == TMPL_FORK && ((m.flags & ~TMPL_F_ALL) || nfds != tmpl_fork_nfds(m.flags) ||
                                ((m.flags & TMPL_F_DROP) && (m.uid == 0 || m.gid == 0))))
        abort();
    if (m.type == TMPL_PREPARE &&
        ((m.flags & ~(TMPL_F_NETNS | TMPL_F_CGROUP)) || nfds != (m.flags & TMPL_F_CGROUP ? 1 : 0)))
        abort();
    if (m.type != TMPL_FORK && m.type != TMPL_PREPARE && nfds != 0)
        abort();
    return 0;
}

#include "fuzz_replay.h"
