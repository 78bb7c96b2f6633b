#pragma once
/* Key memory: data keys and key-encryption keys live in their own mlock'ed,
 * MADV_DONTDUMP page(s) and are OPENSSL_cleanse'd before the pages are unlocked
 * and unmapped. This is the I/O half of key handling (mmap, mlock); the pure
 * codec (codec/sealed_crypto.h) works on caller-provided buffers only, so it can
 * be tested from plain memory. */
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/sealed/codec/sealed_crypto.h"

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

/* A fresh random 32-byte data key (RAND_priv_bytes) in locked memory. */
int aidp_sealed_new_data_key(struct aidp_secret *ret, aidp_error *err);

/* RFC 5649 unwrap (aidp_sealed_kwp_unwrap_buf) into locked memory; the
 * integrity check fails with -EBADMSG ("wrong key or corrupted wrapped key"). */
int aidp_sealed_kwp_unwrap(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *in, size_t len,
                           struct aidp_secret *ret, aidp_error *err);
