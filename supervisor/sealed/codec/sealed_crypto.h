#pragma once
/* Crypto of the sealed format, OpenSSL EVP only: locked key memory, RFC 5649
 * key wrap, the header tag, and AES-256-GCM segments. Nothing here does file
 * I/O; sealed_io.c drives it. */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/sealed/codec/sealed_format.h"

/* Key material lives in its own mlock'ed, MADV_DONTDUMP page(s) and is
 * OPENSSL_cleanse'd before the pages are unlocked and unmapped. */
struct aidp_secret {
        uint8_t *p;
        size_t len;
        size_t maplen;
};
int aidp_secret_alloc(struct aidp_secret *s, size_t len, aidp_error *err);
void aidp_secret_free(struct aidp_secret *s);
static inline void aidp_secret_freep(struct aidp_secret *s)
{
        aidp_secret_free(s);
}
#define _cleanup_secret_ _cleanup_(aidp_secret_freep)

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free)

/* A fresh random 32-byte data key (RAND_priv_bytes) in locked memory. */
int aidp_sealed_new_data_key(struct aidp_secret *ret, aidp_error *err);

/* RFC 5649 AES-256 key wrap with padding (EVP_aes_256_wrap_pad). out must
 * hold len + 15 bytes. */
int aidp_sealed_kwp_wrap(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *key, size_t len,
                         uint8_t *out, size_t *ret_len, aidp_error *err);
/* Unwrap into locked memory; the integrity check of RFC 5649 fails with
 * -EBADMSG ("wrong key or corrupted wrapped key"). */
int aidp_sealed_kwp_unwrap(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *in, size_t len,
                           struct aidp_secret *ret, aidp_error *err);

/* Header tag: AES-256-GCM under the data key, nonce aidp_sealed_nonce_header,
 * AAD = prefix+body, empty plaintext. verify returns -EBADMSG on mismatch. */
int aidp_sealed_header_tag(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t *hdr, size_t len,
                           uint8_t tag[AIDP_SEALED_TAG_LEN], aidp_error *err);
int aidp_sealed_header_verify(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t *hdr, size_t len,
                              const uint8_t tag[AIDP_SEALED_TAG_LEN], aidp_error *err);

/* One context per worker: the key schedule is set once, each segment only
 * changes the nonce. */
int aidp_sealed_seg_ctx(const uint8_t dk[AIDP_SEALED_KEY_LEN], bool encrypt, EVP_CIPHER_CTX **ret,
                        aidp_error *err);
/* In place. AAD = the header digest; nonce from (index, final). */
int aidp_sealed_seg_encrypt(EVP_CIPHER_CTX *ctx, uint64_t index, bool final,
                            const uint8_t aad[AIDP_SEALED_DIGEST_LEN], uint8_t *buf, size_t len,
                            uint8_t tag[AIDP_SEALED_TAG_LEN]);
/* In place; -EBADMSG when the tag does not verify (buf then holds garbage
 * that the caller must wipe). */
int aidp_sealed_seg_decrypt(EVP_CIPHER_CTX *ctx, uint64_t index, bool final,
                            const uint8_t aad[AIDP_SEALED_DIGEST_LEN], uint8_t *buf, size_t len,
                            const uint8_t tag[AIDP_SEALED_TAG_LEN]);

/* The same in steps, for callers that stream a segment through a small
 * buffer: begin (nonce, AAD), update (in place, any number of times), then
 * finish_decrypt (-EBADMSG when the tag does not verify: everything update
 * produced must then be discarded). */
int aidp_sealed_seg_begin(EVP_CIPHER_CTX *ctx, bool encrypt, uint64_t index, bool final,
                          const uint8_t aad[AIDP_SEALED_DIGEST_LEN]);
int aidp_sealed_seg_update(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len);
int aidp_sealed_seg_finish_decrypt(EVP_CIPHER_CTX *ctx, const uint8_t tag[AIDP_SEALED_TAG_LEN]);
