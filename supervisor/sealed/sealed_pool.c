/* Segment buffers and the pool of worker threads that decrypt or seal a
 * dataset segment by segment: sealed_internal.h. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "supervisor/sealed/sealed_internal.h"

/* The caller's worker reports progress at most this often. */
#define PROGRESS_EVERY_NS 100000000ull

int aidp_sealed_buf_alloc(struct aidp_sealed_buf *b, size_t len)
{
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return -errno;
        b->locked = mlock(p, len) == 0;
        if (!b->locked && geteuid() == 0) {
                int e = errno;
                munmap(p, len);
                return -e;
        }
        (void)madvise(p, len, MADV_DONTDUMP);
        b->p = p;
        b->len = len;
        return 0;
}

void aidp_sealed_buf_free(struct aidp_sealed_buf *b)
{
        if (!b->p)
                return;
        OPENSSL_cleanse(b->p, b->len);
        if (b->locked)
                munlock(b->p, b->len);
        munmap(b->p, b->len);
        b->p = NULL;
}

static uint64_t mono_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned aidp_sealed_pick_threads(unsigned want, uint64_t n_segments)
{
        if (want == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                want = n > 0 ? (unsigned)n : 1;
        }
        if (want > AIDP_SEALED_MAX_THREADS)
                want = AIDP_SEALED_MAX_THREADS;
        if (want > n_segments)
                want = (unsigned)n_segments;
        return want ? want : 1;
}

unsigned aidp_sealed_opts_threads(const struct aidp_sealed_opts *o)
{
        if (!o->max_threads)
                return o->threads;
        unsigned want = aidp_sealed_pick_threads(o->threads, UINT64_MAX);
        return want < o->max_threads ? want : o->max_threads;
}

static void pool_fail(struct aidp_sealed_pool *p, const aidp_error *e)
{
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->failed)) {
                p->err = *e;
                atomic_store(&p->failed, true);
        }
        pthread_mutex_unlock(&p->lock);
}

static bool claim(struct aidp_sealed_pool *p, unsigned self, uint64_t *ret)
{
        for (unsigned k = 0; k < p->n_parts; k++) {
                struct aidp_sealed_part *pt = &p->parts[(self + k) % p->n_parts];
                if (atomic_load(&pt->next) >= pt->end)
                        continue;
                uint64_t i = atomic_fetch_add(&pt->next, 1);
                if (i < pt->end) {
                        *ret = i;
                        return true;
                }
        }
        return false;
}

static void worker_loop(struct aidp_sealed_worker *w, bool caller)
{
        struct aidp_sealed_pool *p = w->pool;
        uint64_t last = mono_ns();
        aidp_error e = {0};
        for (;;) {
                if (atomic_load(&p->failed))
                        return;
                uint64_t i = 0;
                if (!claim(p, w->index, &i))
                        return;
                if (p->fn(w, i, &e) < 0) {
                        pool_fail(p, &e);
                        return;
                }
                if (caller && (p->progress || p->interrupted)) {
                        uint64_t now = mono_ns();
                        if (now - last >= PROGRESS_EVERY_NS) {
                                last = now;
                                if (p->progress)
                                        p->progress(p->progress_opaque, atomic_load(&p->done_bytes),
                                                    p->total_bytes);
                                if (p->interrupted && p->interrupted()) {
                                        aidp_error_set(&e, AIDP_EXIT_INTERNAL, EINTR,
                                                       "interrupted");
                                        pool_fail(p, &e);
                                        return;
                                }
                        }
                }
        }
}

static void *worker_main(void *arg)
{
        worker_loop(arg, false);
        return NULL;
}

static void worker_fini(struct aidp_sealed_worker *w)
{
        aidp_sealed_buf_free(&w->buf);
        aidp_sealed_buf_free(&w->out);
        EVP_CIPHER_CTX_free(w->ctx);
        w->ctx = NULL;
        EVP_MD_CTX_free(w->md);
        w->md = NULL;
        if (w->cached_fd >= 0)
                close(w->cached_fd);
        w->cached_fd = -1;
}

int aidp_sealed_pool_run(struct aidp_sealed_pool *p, unsigned nthreads, const uint8_t *dk,
                         bool encrypt, size_t bufsize, aidp_error *err)
{
        struct aidp_sealed_worker ws[AIDP_SEALED_MAX_THREADS];
        pthread_t tids[AIDP_SEALED_MAX_THREADS];
        unsigned started = 0;
        int r = 0;
        memset(ws, 0, sizeof ws);
        pthread_mutex_init(&p->lock, NULL);
        p->n_parts = nthreads;
        for (unsigned i = 0; i < nthreads; i++) {
                atomic_init(&p->parts[i].next, p->n_segments * i / nthreads);
                p->parts[i].end = p->n_segments * (i + 1) / nthreads;
        }
        for (unsigned i = 0; i < nthreads; i++) {
                ws[i].pool = p;
                ws[i].index = i;
                ws[i].cached_fd = -1;
                int br = aidp_sealed_buf_alloc(&ws[i].buf, bufsize);
                if (br < 0) {
                        r = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -br,
                                             "allocating locked segment buffers");
                        goto out;
                }
                if (dk && (r = aidp_sealed_seg_ctx(dk, encrypt, &ws[i].ctx, err)) < 0)
                        goto out;
                ws[i].md = EVP_MD_CTX_new();
                if (!ws[i].md) {
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                        goto out;
                }
        }
        for (unsigned i = 1; i < nthreads; i++) {
                if (pthread_create(&tids[i], NULL, worker_main, &ws[i]) != 0)
                        break;
                started = i;
        }
        worker_loop(&ws[0], true);
        for (unsigned i = 1; i <= started; i++)
                pthread_join(tids[i], NULL);
        if (atomic_load(&p->failed)) {
                *err = p->err;
                r = -(err->errnum ? err->errnum : EIO);
        } else if (p->progress) {
                p->progress(p->progress_opaque, p->total_bytes, p->total_bytes);
        }
out:
        for (unsigned i = 0; i < nthreads; i++)
                worker_fini(&ws[i]);
        pthread_mutex_destroy(&p->lock);
        return r;
}
