/* Reused HMAC-SHA256 and SHA-256 contexts: lineage_mac.h. */
#include "supervisor/lineage/codec/lineage_mac.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>

#include "common/hex.h"

struct aidp_lineage_mac {
        EVP_MAC_CTX *hmac; /* keyed once; NULL without a key */
        EVP_MD *sha256;
        EVP_MD_CTX *md;
};

void aidp_lineage_mac_free(struct aidp_lineage_mac *m)
{
        if (!m)
                return;
        EVP_MAC_CTX_free(m->hmac);
        EVP_MD_CTX_free(m->md);
        EVP_MD_free(m->sha256);
        free(m);
}

struct aidp_lineage_mac *aidp_lineage_mac_new(const unsigned char *key)
{
        struct aidp_lineage_mac *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        m->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        m->md = EVP_MD_CTX_new();
        if (!m->sha256 || !m->md)
                goto fail;
        if (key) {
                EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
                m->hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
                EVP_MAC_free(mac); /* the context holds its own reference */
                char digest[] = "SHA256";
                OSSL_PARAM params[] = {
                        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                        OSSL_PARAM_construct_end()};
                if (!m->hmac || !EVP_MAC_init(m->hmac, key, AIDP_LINEAGE_KEY_LEN, params))
                        goto fail;
        }
        return m;
fail:
        aidp_lineage_mac_free(m);
        return NULL;
}

int aidp_lineage_mac_hex(struct aidp_lineage_mac *m, const void *a, size_t alen, const void *b,
                         size_t blen, char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        /* A NULL key re-initialises with the key already set (OpenSSL 3's HMAC). */
        if (!m->hmac || !EVP_MAC_init(m->hmac, NULL, 0, NULL) ||
            !EVP_MAC_update(m->hmac, a, alen) || (blen && !EVP_MAC_update(m->hmac, b, blen)) ||
            !EVP_MAC_final(m->hmac, mac, &maclen, sizeof mac) || maclen != 32)
                return -EIO;
        aidp_hex_encode(mac, 32, out);
        OPENSSL_cleanse(mac, sizeof mac);
        return 0;
}

int aidp_lineage_mac_sha256(struct aidp_lineage_mac *m, const void *data, size_t len,
                            char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (!EVP_DigestInit_ex(m->md, m->sha256, NULL) || !EVP_DigestUpdate(m->md, data, len) ||
            !EVP_DigestFinal_ex(m->md, md, &mdlen) || mdlen != 32)
                return -EIO;
        aidp_hex_encode(md, 32, out);
        return 0;
}
