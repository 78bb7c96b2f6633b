/* OpenSSL set-up for aidp's short-lived processes. */
#pragma once
#include <stdbool.h>

/* Call first thing in main(), before any other OpenSSL call. Idempotent. */
void aidp_crypto_init(void);

/* Fetch what lineage records need (HMAC, SHA-256) once, so that OpenSSL builds
 * its algorithm tables now (about 0.3 ms; a run does it on a thread while it is
 * resolved) rather than in the first record. Thread-safe. */
void aidp_crypto_warm(void);
/* aidp_crypto_warm has run in this process (or the one it was forked from). */
bool aidp_crypto_warmed(void);
