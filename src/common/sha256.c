/* SHA-256 through OpenSSL's EVP interface, and its hex form. */
#include "common/common.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        abort(); /* only fails on allocation failure inside OpenSSL */
}

int sha256_fd(int fd, uint8_t out[SHA256_LEN])
{
    enum { CHUNK = 1 << 20 };
    unsigned int n = SHA256_LEN;
    uint8_t *buf = malloc(CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = buf && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    while (rc == 0) {
        ssize_t got = read(fd, buf, CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? -errno : 0;
            break;
        }
        if (!EVP_DigestUpdate(ctx, buf, (size_t)got))
            rc = -ENOMEM;
    }
    if (rc == 0 && !EVP_DigestFinal_ex(ctx, out, &n))
        rc = -ENOMEM;
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

void sha256_hex(const uint8_t digest[SHA256_LEN], char out[SHA256_HEX_LEN])
{
    static const char hexdig[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_LEN; i++) {
        out[2 * i] = hexdig[digest[i] >> 4];
        out[2 * i + 1] = hexdig[digest[i] & 15];
    }
    out[64] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sha256_parse_hex(const char *hex, uint8_t out[SHA256_LEN])
{
    for (int i = 0; i < SHA256_LEN; i++) {
        int hi = hexval(hex[2 * i]);
        int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[64] == '\0' ? 0 : -EINVAL;
}
