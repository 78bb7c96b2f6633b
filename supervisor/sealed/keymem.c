/* Process-wide key memory hardening (keymem.h). */
#define _GNU_SOURCE
#include "supervisor/sealed/keymem.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "common/smaps.h"

/* 1 MiB: OpenSSL's contexts of one run (a few per worker thread) need a few
 * tens of KiB; mlock'ed, so within the default RLIMIT_MEMLOCK of a user. */
#define SECURE_HEAP_SIZE    (1u << 20)
#define SECURE_HEAP_MINSIZE 16

static atomic_bool routing;
/* Set while the hook is inside CRYPTO_secure_*: the secure heap's own
 * fallback calls back into the hook, which must then use libc. */
static _Thread_local bool in_hook;

static void *hook_malloc(size_t n, const char *file, int line)
{
        (void)file, (void)line;
        if (!atomic_load_explicit(&routing, memory_order_relaxed) || in_hook || n == 0)
                return malloc(n ? n : 1);
        in_hook = true;
        void *p = CRYPTO_secure_malloc(n, OPENSSL_FILE, OPENSSL_LINE);
        in_hook = false;
        return p;
}

static void hook_free(void *p, const char *file, int line)
{
        (void)file, (void)line;
        if (!p)
                return;
        if (!in_hook && CRYPTO_secure_allocated(p)) {
                in_hook = true;
                CRYPTO_secure_clear_free(p, CRYPTO_secure_actual_size(p), OPENSSL_FILE,
                                         OPENSSL_LINE);
                in_hook = false;
                return;
        }
        free(p);
}

static void *hook_realloc(void *p, size_t n, const char *file, int line)
{
        if (!p)
                return hook_malloc(n, file, line);
        if (n == 0) {
                hook_free(p, file, line);
                return NULL;
        }
        if (in_hook || !CRYPTO_secure_allocated(p))
                return realloc(p, n);
        size_t old = CRYPTO_secure_actual_size(p);
        void *q = hook_malloc(n, file, line);
        if (!q)
                return NULL;
        memcpy(q, p, old < n ? old : n);
        hook_free(p, file, line);
        return q;
}

void aidp_keymem_process_init(void)
{
        /* Before anything else: a core (or a same-uid reader of /proc/PID/mem)
         * would get whatever keys and plaintext the process holds. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        struct rlimit rl = {0, 0};
        getrlimit(RLIMIT_CORE, &rl);
        rl.rlim_cur = 0; /* no core; the hard limit stays (aidp_keymem_test_dumpable) */
        setrlimit(RLIMIT_CORE, &rl);
        /* Must precede OpenSSL's first allocation; fails harmlessly otherwise. */
        CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free);
}

void aidp_keymem_enable(void)
{
        /* 1: locked; 2: usable but not locked (RLIMIT_MEMLOCK): still excluded
         * from cores and cleansed on free. 0: unavailable, the ordinary heap. */
        if (CRYPTO_secure_malloc_initialized() ||
            CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, SECURE_HEAP_MINSIZE) != 0)
                atomic_store(&routing, true);
}

void aidp_keymem_test_dumpable(void)
{
        struct rlimit rl = {0, 0};
        getrlimit(RLIMIT_CORE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_CORE, &rl);
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

unsigned long aidp_keymem_secure_used(void)
{
        return (unsigned long)CRYPTO_secure_used();
}

int aidp_keymem_relock(void)
{
        /* The pages that hold keys are the ones kept out of cores
         * (MADV_DONTDUMP: the secure heap, struct aidp_secret, the leak
         * set). A fork passes that mark on but not the lock, so the child's
         * first write would copy a key into a page that can be swapped out:
         * lock each such private writable mapping again (the kernel's own,
         * [vvar], carry the mark too). On fault, as OpenSSL locks its heap:
         * the pages shared with the parent are not copied by this. */
        FILE *f = fopen("/proc/self/smaps", "re");
        if (!f)
                return -errno;
        char line[512];
        struct aidp_smaps_map m = {0};
        int r = 0;
        while (fgets(line, sizeof line, f))
                if (aidp_smaps_line(&m, line) && !strcmp(m.perms, "rw-p") &&
                    strstr(m.vmflags, " dd") && !strstr(m.vmflags, " lo") &&
                    mlock2((void *)m.lo, m.hi - m.lo, MLOCK_ONFAULT) < 0 && r == 0)
                        r = -errno;
        fclose(f);
        return r;
}
