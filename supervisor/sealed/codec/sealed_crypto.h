#pragma once
/* Crypto of the sealed format, OpenSSL EVP only: RFC 5649 key wrap, the header
 * tag, and AES-256-GCM segments, all on caller-provided buffers. Nothing here
 * does I/O or allocates key memory: locked key memory is supervisor/sealed/secret.h,
 * the file I/O the rest of supervisor/sealed. */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/sealed/codec/sealed_format.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free)

/* RFC 5649 AES-256 key wrap with padding (EVP_aes_256_wrap_pad). out must
 * hold len + 15 bytes. */
int aidp_sealed_kwp_wrap(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *key, size_t len,
                         uint8_t *out, size_t *ret_len, aidp_error *err);
/* Unwrap into out (len bytes, the caller's locked memory: secret.h); on success
 * its first AIDP_SEALED_KEY_LEN bytes are the data key. The integrity check of
 * RFC 5649 fails with -EBADMSG ("wrong key or corrupted wrapped key") and out
 * wiped. */
int aidp_sealed_kwp_unwrap_buf(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *in,
                               size_t len, uint8_t *out, aidp_error *err);

/* Header tag: AES-256-GCM under the data key, nonce aidp_sealed_nonce_header,
 * AAD = prefix+body, empty plaintext. verify returns -EBADMSG on mismatch. */
int aidp_sealed_header_tag(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t *hdr, size_t len,
                           uint8_t tag[AIDP_SEALED_TAG_LEN], aidp_error *err);
int aidp_sealed_header_verify(const uint8_t dk[AIDP_SEALED_KEY_LEN], const uint8_t *hdr, size_t len,
                              const uint8_t tag[AIDP_SEALED_TAG_LEN], aidp_error *err);

/* Content digest over the plaintext segments P_0..P_n-1 (their SHA-256 in
 * seg_digests, computed by the workers in parallel):
 *   m = u64be(payload_len) | u32be(segment_size) | SHA-256(P_0) | ... | SHA-256(P_n-1)
 *   version 1: SHA-256(m)                              (unkeyed: read only)
 *   version 2: HMAC-SHA256(K_d, m), K_d = HKDF-SHA256(ikm = dk, salt = none,
 *              info = AIDP_SEALED_DIGEST_INFO, 32 bytes)
 * dk is unused for version 1. K_d lives on the stack and is wiped. */
#define AIDP_SEALED_DIGEST_INFO "aidp sealed v2 content digest"
int aidp_sealed_content_digest(uint16_t version, const uint8_t dk[AIDP_SEALED_KEY_LEN],
                               uint64_t payload_len, uint32_t segment_size,
                               const uint8_t (*seg_digests)[AIDP_SEALED_DIGEST_LEN], uint64_t n,
                               uint8_t out[AIDP_SEALED_DIGEST_LEN]);

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
