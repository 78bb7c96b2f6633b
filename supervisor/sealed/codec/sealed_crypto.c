#include "supervisor/sealed/codec/sealed_crypto.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <string.h>

#include "supervisor/sealed/codec/sealed_be.h"

static int kwp(const uint8_t kek[AIDP_SEALED_KEY_LEN], bool enc, const uint8_t *in, size_t len,
               uint8_t *out, size_t *ret_len)
{
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        int l1 = 0, l2 = 0;
        if (!ctx || len > INT_MAX)
                return -ENOMEM;
        EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        if (EVP_CipherInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, kek, NULL, enc ? 1 : 0) != 1)
                return -EIO;
        if (EVP_CipherUpdate(ctx, out, &l1, in, (int)len) != 1 ||
            EVP_CipherFinal_ex(ctx, out + l1, &l2) != 1)
                return -EBADMSG;
        *ret_len = (size_t)l1 + (size_t)l2;
        return 0;
}

int aidp_sealed_kwp_wrap(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *key, size_t len,
                         uint8_t *out, size_t *ret_len, aidp_error *err)
{
        if (kwp(kek, true, key, len, out, ret_len) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES key wrap failed");
        return 0;
}

int aidp_sealed_kwp_unwrap_buf(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *in,
                               size_t len, uint8_t *out, aidp_error *err)
{
        if (len < 16 || len > AIDP_SEALED_WRAPPED_MAX || len % 8)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "wrapped key has invalid length %zu", len);
        size_t n = 0;
        if (kwp(kek, false, in, len, out, &n) < 0) {
                OPENSSL_cleanse(out, len);
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "key unwrap failed: wrong key or corrupted wrapped key");
        }
        if (n != AIDP_SEALED_KEY_LEN) {
                OPENSSL_cleanse(out, len);
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "unwrapped data key has %zu bytes, want %d", n,
                                      AIDP_SEALED_KEY_LEN);
        }
        return 0;
}

static int gcm(const uint8_t dk[AIDP_SEALED_KEY_LEN], bool enc, const uint8_t *aad, size_t aadlen,
               uint8_t tag[AIDP_SEALED_TAG_LEN])
{
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        uint8_t nonce[AIDP_SEALED_NONCE_LEN];
        uint8_t dummy[16];
        int l = 0;
        if (!ctx || aadlen > INT_MAX)
                return -ENOMEM;
        aidp_sealed_nonce_header(nonce);
        if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, dk, nonce, enc ? 1 : 0) != 1 ||
            EVP_CipherUpdate(ctx, NULL, &l, aad, (int)aadlen) != 1)
                return -EIO;
        if (enc) {
                if (EVP_CipherFinal_ex(ctx, dummy, &l) != 1 ||
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AIDP_SEALED_TAG_LEN, tag) != 1)
                        return -EIO;
                return 0;
        }
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AIDP_SEALED_TAG_LEN, tag) != 1)
                return -EIO;
        return EVP_CipherFinal_ex(ctx, dummy, &l) == 1 ? 0 : -EBADMSG;
}

int aidp_sealed_header_tag(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t *hdr, size_t len,
                           uint8_t tag[AIDP_SEALED_TAG_LEN], aidp_error *err)
{
        if (gcm(dk, true, hdr, len, tag) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "header tag: AES-GCM failed");
        return 0;
}

int aidp_sealed_header_verify(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t *hdr, size_t len,
                              const uint8_t tag[AIDP_SEALED_TAG_LEN], aidp_error *err)
{
        uint8_t t[AIDP_SEALED_TAG_LEN];
        memcpy(t, tag, sizeof t);
        int r = gcm(dk, false, hdr, len, t);
        if (r == -EBADMSG)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "header authentication failed: the header was modified "
                                      "or the data key does not belong to it");
        if (r < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "header tag: AES-GCM failed");
        return 0;
}

int aidp_sealed_seg_ctx(const uint8_t dk[AIDP_SEALED_KEY_LEN], bool encrypt, EVP_CIPHER_CTX **ret,
                        aidp_error *err)
{
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt ? 1 : 0) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AIDP_SEALED_NONCE_LEN, NULL) != 1 ||
            EVP_CipherInit_ex(ctx, NULL, NULL, dk, NULL, encrypt ? 1 : 0) != 1) {
                EVP_CIPHER_CTX_free(ctx);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES-GCM init failed");
        }
        *ret = ctx;
        return 0;
}

static int seg(EVP_CIPHER_CTX *ctx, bool enc, uint64_t index, bool final,
               const uint8_t aad[AIDP_SEALED_DIGEST_LEN], uint8_t *buf, size_t len,
               uint8_t tag[AIDP_SEALED_TAG_LEN])
{
        uint8_t nonce[AIDP_SEALED_NONCE_LEN];
        int l = 0;
        if (len > INT_MAX)
                return -EINVAL;
        aidp_sealed_nonce_segment(index, final, nonce);
        if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc ? 1 : 0) != 1 ||
            EVP_CipherUpdate(ctx, NULL, &l, aad, AIDP_SEALED_DIGEST_LEN) != 1)
                return -EIO;
        if (len && EVP_CipherUpdate(ctx, buf, &l, buf, (int)len) != 1)
                return -EIO;
        if (enc) {
                if (EVP_CipherFinal_ex(ctx, buf + len, &l) != 1 ||
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AIDP_SEALED_TAG_LEN, tag) != 1)
                        return -EIO;
                return 0;
        }
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AIDP_SEALED_TAG_LEN, tag) != 1)
                return -EIO;
        return EVP_CipherFinal_ex(ctx, buf + len, &l) == 1 ? 0 : -EBADMSG;
}

int aidp_sealed_seg_encrypt(EVP_CIPHER_CTX *ctx, uint64_t index, bool final,
                            const uint8_t aad[AIDP_SEALED_DIGEST_LEN], uint8_t *buf, size_t len,
                            uint8_t tag[AIDP_SEALED_TAG_LEN])
{
        return seg(ctx, true, index, final, aad, buf, len, tag);
}

int aidp_sealed_seg_decrypt(EVP_CIPHER_CTX *ctx, uint64_t index, bool final,
                            const uint8_t aad[AIDP_SEALED_DIGEST_LEN], uint8_t *buf, size_t len,
                            const uint8_t tag[AIDP_SEALED_TAG_LEN])
{
        uint8_t t[AIDP_SEALED_TAG_LEN];
        memcpy(t, tag, sizeof t);
        return seg(ctx, false, index, final, aad, buf, len, t);
}

int aidp_sealed_seg_begin(EVP_CIPHER_CTX *ctx, bool encrypt, uint64_t index, bool final,
                          const uint8_t aad[AIDP_SEALED_DIGEST_LEN])
{
        uint8_t nonce[AIDP_SEALED_NONCE_LEN];
        int l = 0;
        aidp_sealed_nonce_segment(index, final, nonce);
        if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, encrypt ? 1 : 0) != 1 ||
            EVP_CipherUpdate(ctx, NULL, &l, aad, AIDP_SEALED_DIGEST_LEN) != 1)
                return -EIO;
        return 0;
}

int aidp_sealed_seg_update(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len)
{
        int l = 0;
        if (len > INT_MAX)
                return -EINVAL;
        if (len && EVP_CipherUpdate(ctx, buf, &l, buf, (int)len) != 1)
                return -EIO;
        return 0;
}

int aidp_sealed_seg_finish_decrypt(EVP_CIPHER_CTX *ctx, const uint8_t tag[AIDP_SEALED_TAG_LEN])
{
        uint8_t t[AIDP_SEALED_TAG_LEN], dummy[16];
        int l = 0;
        memcpy(t, tag, sizeof t);
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AIDP_SEALED_TAG_LEN, t) != 1)
                return -EIO;
        return EVP_CipherFinal_ex(ctx, dummy, &l) == 1 ? 0 : -EBADMSG;
}

/* K_d = HKDF-SHA256(dk, no salt, info): a key only for the digest, so the
 * HMAC never uses the AES key itself. */
static int digest_key(const uint8_t dk[AIDP_SEALED_KEY_LEN], uint8_t out[AIDP_SEALED_KEY_LEN])
{
        EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
        EVP_KDF_free(kdf);
        if (!kctx)
                return -EIO;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)dk,
                                                  AIDP_SEALED_KEY_LEN),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                  (void *)AIDP_SEALED_DIGEST_INFO,
                                                  sizeof AIDP_SEALED_DIGEST_INFO - 1),
                OSSL_PARAM_construct_end()};
        int ok = EVP_KDF_derive(kctx, out, AIDP_SEALED_KEY_LEN, params);
        EVP_KDF_CTX_free(kctx);
        return ok == 1 ? 0 : -EIO;
}

static int keyed_digest(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t pre[12],
                        const uint8_t (*seg_digests)[AIDP_SEALED_DIGEST_LEN], uint64_t n,
                        uint8_t out[AIDP_SEALED_DIGEST_LEN])
{
        uint8_t kd[AIDP_SEALED_KEY_LEN];
        if (digest_key(dk, kd) < 0)
                return -EIO;
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
        EVP_MAC_free(mac);
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                OSSL_PARAM_construct_end()};
        size_t outlen = 0;
        int ok = ctx && EVP_MAC_init(ctx, kd, sizeof kd, params) == 1 &&
                 EVP_MAC_update(ctx, pre, 12) == 1 &&
                 (n == 0 || EVP_MAC_update(ctx, (const uint8_t *)seg_digests,
                                           (size_t)n * AIDP_SEALED_DIGEST_LEN) == 1) &&
                 EVP_MAC_final(ctx, out, &outlen, AIDP_SEALED_DIGEST_LEN) == 1;
        EVP_MAC_CTX_free(ctx);
        OPENSSL_cleanse(kd, sizeof kd);
        return ok && outlen == AIDP_SEALED_DIGEST_LEN ? 0 : -EIO;
}

int aidp_sealed_content_digest(uint16_t version, const uint8_t dk[AIDP_SEALED_KEY_LEN],
                               uint64_t payload_len, uint32_t segment_size,
                               const uint8_t (*seg_digests)[AIDP_SEALED_DIGEST_LEN], uint64_t n,
                               uint8_t out[AIDP_SEALED_DIGEST_LEN])
{
        uint8_t pre[12];
        put64(pre, payload_len);
        put32(pre + 8, segment_size);
        if (version != 1)
                return keyed_digest(dk, pre, seg_digests, n, out);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned outlen = 0;
        int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
                 EVP_DigestUpdate(ctx, pre, sizeof pre) &&
                 (n == 0 ||
                  EVP_DigestUpdate(ctx, seg_digests, (size_t)n * AIDP_SEALED_DIGEST_LEN)) &&
                 EVP_DigestFinal_ex(ctx, out, &outlen);
        EVP_MD_CTX_free(ctx);
        return ok && outlen == AIDP_SEALED_DIGEST_LEN ? 0 : -EIO;
}
