#pragma once
/* Keeping keys out of core dumps and swap, for the whole process: what the
 * supervisor (from its first instruction) and `aidp` (for the commands that
 * handle keys) call before OpenSSL allocates anything.
 *
 *   aidp_keymem_process_init()  PR_SET_DUMPABLE 0 (no core, no /proc/PID/mem
 *                               for anyone but a CAP_SYS_PTRACE holder),
 *                               RLIMIT_CORE 0, and OpenSSL's allocator hooked;
 *   aidp_keymem_enable()        after OpenSSL's own start-up (aidp_crypto_init):
 *                               from now on every OpenSSL allocation (cipher
 *                               and MAC contexts, which hold the AES key
 *                               schedule and HMAC keys) comes from OpenSSL's
 *                               secure heap (CRYPTO_secure_malloc_init:
 *                               mlock'ed, MADV_DONTDUMP, cleansed on free),
 *                               falling back to the ordinary heap only when
 *                               that is full.
 * aidp's own key buffers are struct aidp_secret (secret.h), locked the same way. */
#include <stdbool.h>

void aidp_keymem_process_init(void);
void aidp_keymem_enable(void);
/* In a child after fork(): lock again the mappings that hold keys (those
 * marked MADV_DONTDUMP), whose lock fork does not pass on. 0, or the first
 * mlock's -errno (the mapping stays usable, unlocked). */
int aidp_keymem_relock(void);
/* Test build only (AIDP_FAULT_DUMPABLE): dumpable again with an unlimited core
 * size, so a test can take a core and look for key bytes in it. */
void aidp_keymem_test_dumpable(void);
/* Bytes of the secure heap in use (tests). */
unsigned long aidp_keymem_secure_used(void);
