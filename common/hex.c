#include "common/hex.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

void aidp_hex_encode(const void *in, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";
        const uint8_t *p = in;
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[2 * n] = '\0';
}

bool aidp_hex_is_lower(const char *s, size_t n)
{
        if (strnlen(s, n) != n) /* never read past a shorter string's NUL */
                return false;
        /* No early exit: the loop vectorises (verify checks several per record). */
        unsigned char bad = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                bad |= (unsigned char)!((unsigned char)(c - '0') < 10 ||
                                        (unsigned char)(c - 'a') < 6);
        }
        return !bad;
}

int aidp_sha256_hex(const void *data, size_t len, char out[AIDP_SHA256_HEX_LEN + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
            mdlen != AIDP_SHA256_LEN) {
                /* Only on allocation failure inside OpenSSL: a digest that matches nothing. */
                memset(out, 'x', AIDP_SHA256_HEX_LEN);
                out[AIDP_SHA256_HEX_LEN] = '\0';
                return -EIO;
        }
        aidp_hex_encode(md, AIDP_SHA256_LEN, out);
        return 0;
}

void aidp_sha256_ref(const uint8_t digest[AIDP_SHA256_LEN], char out[AIDP_SHA256_REF_LEN + 1])
{
        memcpy(out, AIDP_SHA256_REF_PREFIX, sizeof AIDP_SHA256_REF_PREFIX - 1);
        aidp_hex_encode(digest, AIDP_SHA256_LEN, out + sizeof AIDP_SHA256_REF_PREFIX - 1);
}
