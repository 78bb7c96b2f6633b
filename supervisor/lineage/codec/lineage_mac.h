#pragma once
/* HMAC-SHA256 and SHA-256 with contexts made once and reused: what verify does
 * per record (docs/lineage.md, "Verifying fast"). EVP_Q_mac fetches the
 * algorithm, allocates a context and derives the key's pads on every call, which
 * is most of the cost of a short message; here the key is set once and each
 * message re-initialises the same context (HMAC keeps the keyed pads). Pure. */
#include <stdbool.h>
#include <stddef.h>

#include "supervisor/lineage/codec/lineage_codec.h"

struct aidp_lineage_mac;

/* NULL when out of memory or when OpenSSL has no HMAC/SHA-256. key NULL: only
 * the digest is usable. */
struct aidp_lineage_mac *aidp_lineage_mac_new(const unsigned char *key);
void aidp_lineage_mac_free(struct aidp_lineage_mac *m);

/* HMAC of a || b (b may be NULL/0) as lowercase hex. 0 or -EIO. */
int aidp_lineage_mac_hex(struct aidp_lineage_mac *m, const void *a, size_t alen, const void *b,
                         size_t blen, char out[AIDP_LINEAGE_HASH_HEX + 1]);
/* sha256(data) as lowercase hex. 0 or -EIO. */
int aidp_lineage_mac_sha256(struct aidp_lineage_mac *m, const void *data, size_t len,
                            char out[AIDP_LINEAGE_HASH_HEX + 1]);

/* HMAC-SHA256 of data under key as lowercase hex, 0 or -EIO: EVP_Q_mac's result
 * without its per-call cost. The first keys a process uses (a few) each get a
 * keyed context kept for the process's life, in OpenSSL's memory with the key;
 * each call works on a copy of it, so threads may call this at once. Other keys
 * get a fresh context per call. */
int aidp_lineage_hmac_hex(const unsigned char key[AIDP_LINEAGE_KEY_LEN], const void *data,
                          size_t len, char out[AIDP_LINEAGE_HASH_HEX + 1]);

/* sha256(data) as lowercase hex, 0 or -EIO, with the digest fetched once for
 * the process (EVP_sha256() fetches it again on every call). */
int aidp_lineage_sha256_hex(const void *data, size_t len, char out[AIDP_LINEAGE_HASH_HEX + 1]);
