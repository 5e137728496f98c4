/*
 * fuzz_callback_url — drives callback_check (src/gateway/callback.c: may shmfaasd POST an async
 * result to this X-Callback-Url?) with arbitrary bytes. Input: an optional allow-list line
 * ("HOSTS\n", given to callback_allow_parse after the loopback defaults), then the URL. A URL that
 * passes must have an allowed host as libcurl's parser reads it again, a port in 1..65535, and
 * every error message must be printable ASCII (it becomes JSON); abort otherwise.
 *
 * libFuzzer (clang): build fuzz-callback-url. Replay (gcc): fuzz-callback-url-replay [FILE...];
 * with no file it replays tests/fuzz/corpus/callback_url (see fuzz_replay.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "gateway/gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const char *err, size_t len)
{
    if (strnlen(err, len) == len)
        abort();
    for (const char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || (unsigned char)*p >= 0x80)
            abort();
}

/* The accepted host, read again by curl, is the one reported and is on the list. */
static void check_accepted(const struct callback_allow *a, const char *url,
                           const struct callback_target *t)
{
    CURLU *u = curl_url();
    char *host = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        abort();
    size_t n = strlen(host);
    bool same = host[0] == '['
                    ? n >= 2 && strlen(t->host) == n - 2 && memcmp(host + 1, t->host, n - 2) == 0
                    : strcmp(host, t->host) == 0;
    curl_free(host);
    curl_url_cleanup(u);
    if (!same || t->port < 1 || t->port > 65535 || strlen(url) > CALLBACK_URL_MAX)
        abort();
    bool listed = t->literal;
    for (int i = 0; !listed && i < a->n; i++)
        listed = a->e[i].family == 0 && strcasecmp(a->e[i].name, t->host) == 0;
    if (!listed)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        init = true;
    }
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    struct callback_allow a = {0};
    char err[256];
    if (callback_allow_parse(&a, "127.0.0.0/8,::1,localhost", err, sizeof err))
        abort();
    char *url = buf, *nl = memchr(buf, '\n', size);
    if (nl) {
        *nl = '\0';
        err[0] = '\0';
        if (callback_allow_parse(&a, buf, err, sizeof err))
            check_message(err, sizeof err);
        url = nl + 1;
    }
    struct callback_target t;
    err[0] = '\0';
    int rc = callback_check(&a, url, &t, err, sizeof err);
    if (rc != 0 && rc != -EINVAL && rc != -EPERM)
        abort();
    if (rc)
        check_message(err, sizeof err);
    else
        check_accepted(&a, url, &t);
    free(buf);
    return 0;
}

#include "fuzz_replay.h"
