#include "supervisor/sealed/codec/sealed_crypto.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <string.h>

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
