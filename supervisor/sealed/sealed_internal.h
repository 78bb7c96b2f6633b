#pragma once
/* Private to supervisor/sealed: what the open (sealed_open.c), decrypt
 * (sealed_decrypt.c) and seal (sealed_seal.c) halves share. The worker pool is
 * in sealed_pool.c, resolution beneath a directory fd in sealed_beneath.c. */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/sealed/codec/sealed_format.h"
#include "supervisor/sealed/sealed.h"
#include "supervisor/sealed/secret.h"

#define AIDP_SEALED_MAX_THREADS 8

struct aidp_sealed {
        int fd;
        char *path;
        struct aidp_sealed_header h;
        struct aidp_secret dk;
};

/* Where segment i starts in the file, and how many plaintext bytes it holds. */
static inline uint64_t aidp_sealed_seg_off(const struct aidp_sealed_header *h, uint64_t i)
{
        return h->payload_offset + i * ((uint64_t)h->segment_size + AIDP_SEALED_TAG_LEN);
}

static inline size_t aidp_sealed_seg_len(const struct aidp_sealed_header *h, uint64_t i)
{
        uint64_t start = i * h->segment_size;
        uint64_t end = start + h->segment_size;
        if (end > h->payload_len)
                end = h->payload_len;
        return (size_t)(end - start);
}

/* The manifest (file names and sizes) of an open dataset, decrypted and
 * authenticated segment by segment; sealed_open.c. */
int aidp_sealed_read_manifest(struct aidp_sealed *s, struct aidp_tree *ret, aidp_error *err);
/* Read and authenticate segment i whole into buf (room for its bytes and the
 * tag; sealed_open.c): its plaintext length in ret_len. again: a second read of
 * a segment already authenticated once (the view pass), whose failure means
 * the file changed during the injection. Plaintext is wiped on failure. */
int aidp_sealed_read_segment(struct aidp_sealed *s, EVP_CIPHER_CTX *ctx, uint64_t i, uint8_t *buf,
                             bool again, size_t *ret_len, aidp_error *err);

/* ---- column views (sealed_view.c) ---- */

/* Per manifest entry, the view it is decrypted through: ret[k] NULL for
 * directories and for files passed as sealed (no schema pattern matches, or
 * every column is RAW). Fails only on allocation. */
int aidp_sealed_view_plan(const struct aidp_sealed_view *v, const struct aidp_tree *t,
                          const struct aidp_file_view ***ret, aidp_error *err);
/* Segments the view pass alone reads: every byte of them inside one file
 * viewed in chunks (sealed_view_par.c). The first pass skips them (no second
 * decryption of the largest files); the view pass authenticates each as it
 * reads it and puts its SHA-256 in digests[i] for the content digest, which
 * is then checked after the view pass. *ret: n_segments flags, or NULL when
 * none is deferred. Fails only on allocation. */
int aidp_sealed_view_deferred(const struct aidp_sealed_header *h, const struct aidp_tree *t,
                              const struct aidp_file_view *const *plan,
                              const struct aidp_sealed_opts *o, bool **ret, aidp_error *err);
/* Second pass of a decryption: stream each file with plan[k] != NULL
 * through its viewer into dirfd/<path> (created, empty). Every segment
 * authenticated in the first pass, except the deferred ones (may be NULL),
 * whose digests this pass fills. Fills ret's view fields. */
int aidp_sealed_view_run(struct aidp_sealed *s, int dirfd, const struct aidp_tree *t,
                         const struct aidp_file_view *const *plan, const bool *deferred,
                         uint8_t (*digests)[AIDP_SEALED_DIGEST_LEN],
                         const struct aidp_sealed_view *v, const struct aidp_sealed_opts *o,
                         struct aidp_sealed_result *ret, aidp_error *err);

/* ---- resolution beneath a directory (sealed_beneath.c) ---- */

/* openat2 beneath dirfd: no symlinks, no magic links, no other mount. fd or -errno. */
int aidp_sealed_open_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* The parent directory of a manifest path (O_PATH) and its base name. fd or -errno. */
int aidp_sealed_open_parent(int dirfd, const char *path, const char **base);

/* ---- segment buffers and the worker pool (sealed_pool.c) ---- */

/* Worker buffers hold plaintext: locked when we may (root always may), excluded
 * from core dumps, wiped before they are freed. */
struct aidp_sealed_buf {
        uint8_t *p;
        size_t len;
        bool locked;
};
int aidp_sealed_buf_alloc(struct aidp_sealed_buf *b, size_t len);
void aidp_sealed_buf_free(struct aidp_sealed_buf *b);

struct aidp_sealed_pool;
struct aidp_sealed_worker {
        struct aidp_sealed_pool *pool;
        struct aidp_sealed_buf buf;
        EVP_CIPHER_CTX *ctx;
        EVP_MD_CTX *md;
        unsigned index;
        int cached_fd; /* fd of the file last written/read, by entry index */
        size_t cached_entry;
        bool has_segment; /* the view pass: buf holds segment cached_segment, authenticated */
        uint64_t cached_segment;
        struct aidp_sealed_buf out; /* the view pass: viewer output, allocated on first use */
};

/* Each worker starts on its own contiguous stretch of segments and steals
 * from the others when done. Contiguous stretches keep workers on different
 * files most of the time: writes to one tmpfs file serialize on its inode
 * lock. */
struct aidp_sealed_part {
        _Atomic uint64_t next;
        uint64_t end;
};

struct aidp_sealed_pool {
        uint64_t n_segments;
        struct aidp_sealed_part parts[AIDP_SEALED_MAX_THREADS];
        unsigned n_parts;
        _Atomic uint64_t done_bytes;
        _Atomic bool failed;
        pthread_mutex_t lock;
        aidp_error err; /* first error, under lock */
        int (*fn)(struct aidp_sealed_worker *w, uint64_t index, aidp_error *err);
        void *ctx;
        aidp_sealed_progress_fn progress;
        void *progress_opaque;
        bool (*interrupted)(void); /* polled with progress; true: fail with EINTR */
        uint64_t total_bytes;
};

/* Workers for a job of n_segments: want (0 = online CPUs), at most
 * AIDP_SEALED_MAX_THREADS and n_segments, at least 1. */
unsigned aidp_sealed_pick_threads(unsigned want, uint64_t n_segments);
/* o->threads, at most o->max_threads (when set): the want of pick_threads.
 * With a cap and threads 0, the online CPUs are capped. */
unsigned aidp_sealed_opts_threads(const struct aidp_sealed_opts *o);

/* Run p->fn over every segment with nthreads workers (the caller is one of
 * them; each has a buffer of bufsize bytes and, with dk, an AES-GCM context);
 * the caller alone reports progress. The first error stops every worker. */
int aidp_sealed_pool_run(struct aidp_sealed_pool *p, unsigned nthreads, const uint8_t *dk,
                         bool encrypt, size_t bufsize, aidp_error *err);
