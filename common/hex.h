#pragma once
/* Lowercase hexadecimal, and SHA-256 digests written as hex: the one encoder for
 * digests in file headers, lineage records, profile explanations and run records. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIDP_SHA256_LEN     32
#define AIDP_SHA256_HEX_LEN (2 * AIDP_SHA256_LEN)
/* "sha256:" and the hex digest, as datasets and profiles are named in records. */
#define AIDP_SHA256_REF_PREFIX "sha256:"
#define AIDP_SHA256_REF_LEN    (sizeof AIDP_SHA256_REF_PREFIX - 1 + AIDP_SHA256_HEX_LEN)

/* n bytes as 2n lowercase hex digits and a NUL: out holds 2n + 1 bytes. */
void aidp_hex_encode(const void *in, size_t n, char *out);
/* Exactly n characters, every one of them 0-9 or a-f. */
bool aidp_hex_is_lower(const char *s, size_t n);

/* SHA-256 of len bytes as hex. 0, or -EIO when OpenSSL fails (out is then a
 * string of 'x' that matches no digest). */
int aidp_sha256_hex(const void *data, size_t len, char out[AIDP_SHA256_HEX_LEN + 1]);
/* "sha256:<hex>" of a digest already computed. */
void aidp_sha256_ref(const uint8_t digest[AIDP_SHA256_LEN], char out[AIDP_SHA256_REF_LEN + 1]);
