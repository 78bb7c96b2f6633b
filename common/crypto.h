/* OpenSSL set-up for aidp's short-lived processes. */
#pragma once

/* Call first thing in main(), before any other OpenSSL call. Idempotent. */
void aidp_crypto_init(void);
