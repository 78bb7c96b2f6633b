#include "supervisor/sealed/secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <unistd.h>

int aidp_secret_alloc(struct aidp_secret *s, size_t len, aidp_error *err)
{
        long pg = sysconf(_SC_PAGESIZE);
        size_t page = pg > 0 ? (size_t)pg : 4096;
        size_t maplen = (len + page - 1) / page * page;
        if (maplen == 0)
                maplen = page;
        void *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "allocating key memory");
        /* Locked so a key never reaches swap; excluded from core dumps. */
        if (mlock(p, maplen) < 0) {
                int e = errno;
                munmap(p, maplen);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e,
                                        "locking key memory (RLIMIT_MEMLOCK?)");
        }
        (void)madvise(p, maplen, MADV_DONTDUMP);
        s->p = p;
        s->len = len;
        s->maplen = maplen;
        return 0;
}

void aidp_secret_free(struct aidp_secret *s)
{
        if (!s || !s->p)
                return;
        OPENSSL_cleanse(s->p, s->maplen);
        munlock(s->p, s->maplen);
        munmap(s->p, s->maplen);
        s->p = NULL;
        s->len = s->maplen = 0;
}

int aidp_sealed_new_data_key(struct aidp_secret *ret, aidp_error *err)
{
        struct aidp_secret s = {0};
        int r = aidp_secret_alloc(&s, AIDP_SEALED_KEY_LEN, err);
        if (r < 0)
                return r;
        if (RAND_priv_bytes(s.p, AIDP_SEALED_KEY_LEN) != 1) {
                aidp_secret_free(&s);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "random data key: RAND failed");
        }
        *ret = s;
        return 0;
}

int aidp_sealed_kwp_unwrap(const uint8_t kek[AIDP_SEALED_KEY_LEN], const uint8_t *in, size_t len,
                           struct aidp_secret *ret, aidp_error *err)
{
        if (len < 16 || len > AIDP_SEALED_WRAPPED_MAX || len % 8)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "wrapped key has invalid length %zu", len);
        /* The unwrapped bytes never leave locked memory, not even before the
         * integrity check decides whether they are a key. */
        struct aidp_secret s = {0};
        int r = aidp_secret_alloc(&s, len, err);
        if (r < 0)
                return r;
        if ((r = aidp_sealed_kwp_unwrap_buf(kek, in, len, s.p, err)) < 0) {
                aidp_secret_free(&s);
                return r;
        }
        s.len = AIDP_SEALED_KEY_LEN;
        *ret = s;
        return 0;
}
