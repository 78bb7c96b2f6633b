/* Sealing and unsealing datasets: the file I/O and the worker threads around
 * sealed_format (layout) and sealed_crypto (AES-GCM). See sealed.h. */
#define _GNU_SOURCE
#include "supervisor/sealed/sealed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sealed/codec/sealed_crypto.h"

#define MAX_THREADS       8
#define PROGRESS_EVERY_NS 100000000ull

struct aidp_sealed {
        int fd;
        char *path;
        struct aidp_sealed_header h;
        struct aidp_secret dk;
};

const struct aidp_sealed_header *aidp_sealed_header_of(const struct aidp_sealed *s)
{
        return &s->h;
}

const char *aidp_sealed_path_of(const struct aidp_sealed *s)
{
        return s->path;
}

void aidp_sealed_close(struct aidp_sealed *s)
{
        if (!s)
                return;
        if (s->fd >= 0)
                close(s->fd);
        aidp_secret_free(&s->dk);
        free(s->path);
        free(s);
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t)n;
        }
        *got = done;
        return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n =
                        pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }
        return 0;
}

/* Every path below dirfd is resolved beneath it, never through a symlink or
 * onto another mount: a hostile manifest cannot reach outside the tmpfs. */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                           RESOLVE_NO_XDEV,
        };
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        return fd < 0 ? -errno : fd;
}

/* Parent directory fd and base name of a manifest path. */
static int open_parent(int dirfd, const char *path, const char **base)
{
        const char *slash = strrchr(path, '/');
        if (!slash) {
                *base = path;
                int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? -errno : fd;
        }
        _cleanup_free_ char *parent = strndup(path, (size_t)(slash - path));
        if (!parent)
                return -ENOMEM;
        *base = slash + 1;
        return open_beneath(dirfd, parent, O_PATH | O_DIRECTORY, 0);
}

/* Worker buffers hold plaintext: lock them when we may (root always may) and
 * wipe them before they are freed. */
struct buf {
        uint8_t *p;
        size_t len;
        bool locked;
};

static int buf_alloc(struct buf *b, size_t len)
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

static void buf_free(struct buf *b)
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

static unsigned pick_threads(unsigned want, uint64_t n_segments)
{
        if (want == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                want = n > 0 ? (unsigned)n : 1;
        }
        if (want > MAX_THREADS)
                want = MAX_THREADS;
        if (want > n_segments)
                want = (unsigned)n_segments;
        return want ? want : 1;
}

/* ---- a pool of workers over segment indices ---- */

struct pool;
struct worker {
        struct pool *pool;
        struct buf buf;
        EVP_CIPHER_CTX *ctx;
        EVP_MD_CTX *md;
        unsigned index;
        int cached_fd; /* fd of the file last written/read, by entry index */
        size_t cached_entry;
};

/* Each worker starts on its own contiguous stretch of segments and steals
 * from the others when done. Contiguous stretches keep workers on different
 * files most of the time: writes to one tmpfs file serialize on its inode
 * lock. */
struct part {
        _Atomic uint64_t next;
        uint64_t end;
};

struct pool {
        uint64_t n_segments;
        struct part parts[MAX_THREADS];
        unsigned n_parts;
        _Atomic uint64_t done_bytes;
        _Atomic bool failed;
        pthread_mutex_t lock;
        aidp_error err; /* first error, under lock */
        int (*fn)(struct worker *w, uint64_t index, aidp_error *err);
        void *ctx;
        aidp_sealed_progress_fn progress;
        void *progress_opaque;
        uint64_t total_bytes;
};

static void pool_fail(struct pool *p, const aidp_error *e)
{
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->failed)) {
                p->err = *e;
                atomic_store(&p->failed, true);
        }
        pthread_mutex_unlock(&p->lock);
}

static bool claim(struct pool *p, unsigned self, uint64_t *ret)
{
        for (unsigned k = 0; k < p->n_parts; k++) {
                struct part *pt = &p->parts[(self + k) % p->n_parts];
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

static void worker_loop(struct worker *w, bool caller)
{
        struct pool *p = w->pool;
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
                if (caller && p->progress) {
                        uint64_t now = mono_ns();
                        if (now - last >= PROGRESS_EVERY_NS) {
                                last = now;
                                p->progress(p->progress_opaque, atomic_load(&p->done_bytes),
                                            p->total_bytes);
                        }
                }
        }
}

static void *worker_main(void *arg)
{
        worker_loop(arg, false);
        return NULL;
}

static void worker_fini(struct worker *w)
{
        buf_free(&w->buf);
        EVP_CIPHER_CTX_free(w->ctx);
        w->ctx = NULL;
        EVP_MD_CTX_free(w->md);
        w->md = NULL;
        if (w->cached_fd >= 0)
                close(w->cached_fd);
        w->cached_fd = -1;
}

/* Run fn over every segment with nthreads workers (the caller is one of
 * them); the caller alone reports progress. */
static int pool_run(struct pool *p, unsigned nthreads, const uint8_t *dk, bool encrypt,
                    size_t bufsize, aidp_error *err)
{
        struct worker ws[MAX_THREADS];
        pthread_t tids[MAX_THREADS];
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
                int br = buf_alloc(&ws[i].buf, bufsize);
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

/* ---- open ---- */

int aidp_sealed_open(const char *path, const struct aidp_keys *keys, struct aidp_sealed **ret,
                     aidp_error *err)
{
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = calloc(1, sizeof *s);
        if (!s)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        s->fd = -1;
        s->path = strdup(path);
        if (!s->path)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (s->fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno,
                                        "sealed dataset %s: cannot open", path);
        struct stat st;
        if (fstat(s->fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "sealed dataset %s", path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "sealed dataset %s: not a regular file", path);
        uint8_t prefix[AIDP_SEALED_PREFIX_LEN];
        size_t got = 0, hlen = 0;
        int r = pread_full(s->fd, prefix, sizeof prefix, 0, &got);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "sealed dataset %s: read", path);
        if ((r = aidp_sealed_header_len(prefix, got, &hlen, err)) < 0)
                return aidp_error_wrap(err, "sealed dataset %s", path);
        _cleanup_free_ uint8_t *hbuf = malloc(hlen + AIDP_SEALED_TAG_LEN);
        if (!hbuf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        r = pread_full(s->fd, hbuf, hlen + AIDP_SEALED_TAG_LEN, 0, &got);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "sealed dataset %s: read", path);
        if (got < hlen + AIDP_SEALED_TAG_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "sealed dataset %s: truncated header (%zu of %zu bytes)",
                                      path, got, hlen + AIDP_SEALED_TAG_LEN);
        if ((r = aidp_sealed_header_decode(hbuf, hlen, &s->h, err)) < 0)
                return aidp_error_wrap(err, "sealed dataset %s", path);
        /* The name is not trusted yet: errors until the tag verifies show it
         * as "claims". */
        r = aidp_keys_unwrap(keys, s->h.meta.key_id, s->h.key_wrap, s->h.wrapped_key,
                             s->h.wrapped_key_len, &s->dk, err);
        if (r < 0)
                return aidp_error_wrap(err, "sealed dataset %s (claims name %s)", path,
                                       s->h.meta.name);
        r = aidp_sealed_header_verify(s->dk.p, hbuf, hlen, hbuf + hlen, err);
        if (r < 0)
                return aidp_error_wrap(err, "sealed dataset %s (claims name %s)", path,
                                       s->h.meta.name);
        if ((uint64_t)st.st_size != s->h.file_size)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "dataset %s (%s): file is %lld bytes but the header implies "
                                      "%llu (%s)",
                                      s->h.meta.name, path, (long long)st.st_size,
                                      (unsigned long long)s->h.file_size,
                                      (uint64_t)st.st_size < s->h.file_size ? "truncated"
                                                                            : "extra bytes");
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- decrypt ---- */

struct dec {
        struct aidp_sealed *s;
        int dirfd;
        bool verify_digest;
        struct aidp_tree tree;
        uint8_t (*digests)[AIDP_SEALED_DIGEST_LEN];
        bool *created;
};

static uint64_t seg_off(const struct aidp_sealed_header *h, uint64_t i)
{
        return h->payload_offset + i * ((uint64_t)h->segment_size + AIDP_SEALED_TAG_LEN);
}

static size_t seg_len(const struct aidp_sealed_header *h, uint64_t i)
{
        uint64_t start = i * h->segment_size;
        uint64_t end = start + h->segment_size;
        if (end > h->payload_len)
                end = h->payload_len;
        return (size_t)(end - start);
}

/* Read and authenticate segment i into buf; returns its plaintext length. */
static int read_segment(struct aidp_sealed *s, EVP_CIPHER_CTX *ctx, uint64_t i, uint8_t *buf,
                        size_t *ret_len, aidp_error *err)
{
        const struct aidp_sealed_header *h = &s->h;
        size_t len = seg_len(h, i), got = 0;
        int r = pread_full(s->fd, buf, len + AIDP_SEALED_TAG_LEN, seg_off(h, i), &got);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "reading segment %llu",
                                        (unsigned long long)i);
        if (got != len + AIDP_SEALED_TAG_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "segment %llu is truncated (the file shrank)",
                                      (unsigned long long)i);
        r = aidp_sealed_seg_decrypt(ctx, i, i + 1 == h->n_segments, h->header_digest, buf, len,
                                    buf + len);
        if (r < 0) {
                OPENSSL_cleanse(buf, len);
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "segment %llu of %llu failed authentication (modified, "
                                      "reordered, truncated or from another dataset)",
                                      (unsigned long long)i, (unsigned long long)h->n_segments);
        }
        *ret_len = len;
        return 0;
}

/* Write plaintext stream bytes [start, start + len) into the files they
 * belong to. */
static int write_plain(struct dec *d, struct worker *w, uint64_t start, const uint8_t *buf,
                       size_t len, aidp_error *err)
{
        const struct aidp_tree *t = &d->tree;
        uint64_t end = start + len;
        for (size_t k = aidp_tree_find(t, start); k < t->n && t->entries[k].offset < end; k++) {
                const struct aidp_tree_entry *e = &t->entries[k];
                if (e->type != AIDP_ENTRY_FILE || e->size == 0)
                        continue;
                uint64_t a = e->offset > start ? e->offset : start;
                uint64_t b = e->offset + e->size < end ? e->offset + e->size : end;
                if (a >= b)
                        continue;
                if (w->cached_fd < 0 || w->cached_entry != k) {
                        if (w->cached_fd >= 0)
                                close(w->cached_fd);
                        w->cached_fd = open_beneath(d->dirfd, e->path, O_WRONLY, 0);
                        if (w->cached_fd < 0)
                                return aidp_error_errno(err, AIDP_EXIT_DATA, -w->cached_fd,
                                                        "opening %s", e->path);
                        w->cached_entry = k;
                }
                int r = pwrite_full(w->cached_fd, buf + (a - start), (size_t)(b - a),
                                    a - e->offset);
                if (r < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "%swriting %s",
                                                r == -ENOSPC ? "destination too small: " : "",
                                                e->path);
        }
        return 0;
}

/* Segments stream through the worker buffer in chunks small enough to stay
 * in cache between read, decryption and write: memory bandwidth, not AES,
 * is what limits injection. The plaintext of a chunk reaches the (detached,
 * invisible) destination before the segment's tag is checked; a bad tag
 * fails the whole decryption, which then wipes everything it wrote. */
#define STREAM_CHUNK (128u * 1024u)

static int dec_segment(struct worker *w, uint64_t i, aidp_error *err)
{
        struct dec *d = w->pool->ctx;
        const struct aidp_sealed_header *h = &d->s->h;
        size_t len = seg_len(h, i), got = 0;
        uint64_t off = seg_off(h, i), start = i * (uint64_t)h->segment_size;
        uint8_t *buf = w->buf.p;
        bool verify = d->verify_digest;
        EVP_MD_CTX *md = w->md;
        if (aidp_sealed_seg_begin(w->ctx, false, i, i + 1 == h->n_segments, h->header_digest) < 0 ||
            (verify && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES-GCM/SHA-256 init failed");
        for (size_t pos = 0; pos < len;) {
                size_t n = len - pos < STREAM_CHUNK ? len - pos : STREAM_CHUNK;
                int r = pread_full(d->s->fd, buf, n, off + pos, &got);
                if (r < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "reading segment %llu",
                                                (unsigned long long)i);
                if (got != n)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                              "segment %llu is truncated (the file shrank)",
                                              (unsigned long long)i);
                if (aidp_sealed_seg_update(w->ctx, buf, n) < 0 ||
                    (verify && EVP_DigestUpdate(md, buf, n) != 1))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES-GCM failed");
                if (d->dirfd >= 0 && start + pos + n > d->tree.manifest_len) {
                        uint64_t skip = start + pos >= d->tree.manifest_len
                                                ? 0
                                                : d->tree.manifest_len - (start + pos);
                        r = write_plain(d, w, start + pos + skip, buf + skip, n - (size_t)skip,
                                        err);
                        if (r < 0)
                                return r;
                }
                /* No wipe per chunk: the next read overwrites the buffer and
                 * worker_fini wipes it at the end (a wipe here would be one
                 * more pass over every byte). */
                pos += n;
        }
        uint8_t tag[AIDP_SEALED_TAG_LEN];
        int r = pread_full(d->s->fd, tag, sizeof tag, off + len, &got);
        if (r < 0 || got != sizeof tag)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG, "segment %llu: truncated tag",
                                      (unsigned long long)i);
        if (aidp_sealed_seg_finish_decrypt(w->ctx, tag) < 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "segment %llu of %llu failed authentication (modified, "
                                      "reordered, truncated or from another dataset)",
                                      (unsigned long long)i, (unsigned long long)h->n_segments);
        unsigned dl = 0;
        if (verify && EVP_DigestFinal_ex(md, d->digests[i], &dl) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        atomic_fetch_add(&w->pool->done_bytes, len);
        return 0;
}

/* Decrypt the segments covering the manifest (sequentially: it is small) and
 * parse it. */
static int read_manifest(struct aidp_sealed *s, struct aidp_tree *ret, aidp_error *err)
{
        const struct aidp_sealed_header *h = &s->h;
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
        int r = aidp_sealed_seg_ctx(s->dk.p, false, &ctx, err);
        if (r < 0)
                return r;
        struct buf b = {0};
        if ((r = buf_alloc(&b, (size_t)h->segment_size + AIDP_SEALED_TAG_LEN)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "allocating segment buffer");
        uint8_t *man = NULL;
        uint32_t mlen = 0;
        size_t have = 0;
        for (uint64_t i = 0; i < h->n_segments; i++) {
                size_t len = 0;
                if ((r = read_segment(s, ctx, i, b.p, &len, err)) < 0)
                        goto out;
                if (i == 0) {
                        if ((r = aidp_tree_manifest_len(b.p, len, &mlen, err)) < 0)
                                goto out;
                        if (mlen > h->payload_len) {
                                r = aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                                   "manifest longer than the payload");
                                goto out;
                        }
                        man = malloc(mlen);
                        if (!man) {
                                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                   "out of memory");
                                goto out;
                        }
                }
                size_t take = len < mlen - have ? len : mlen - have;
                memcpy(man + have, b.p, take);
                have += take;
                if (have == mlen)
                        break;
        }
        if (have != mlen) {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG, "manifest truncated");
                goto out;
        }
        if ((r = aidp_tree_decode(man, mlen, ret, err)) < 0)
                goto out;
        if (ret->stream_len != h->payload_len) {
                aidp_tree_free(ret);
                r = aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                   "manifest describes %llu bytes but the payload has %llu",
                                   (unsigned long long)ret->stream_len,
                                   (unsigned long long)h->payload_len);
        }
out:
        buf_free(&b);
        free(man);
        return r;
}

int aidp_sealed_required_bytes(struct aidp_sealed *s, uint64_t *ret, aidp_error *err)
{
        struct aidp_tree t = {0};
        int r = read_manifest(s, &t, err);
        if (r < 0)
                return aidp_error_wrap(err, "dataset %s (%s)", s->h.meta.name, s->path);
        long pg = sysconf(_SC_PAGESIZE);
        uint64_t page = pg > 0 ? (uint64_t)pg : 4096, sum = 0;
        for (size_t k = 0; k < t.n; k++)
                sum += (t.entries[k].size + page - 1) / page * page;
        aidp_tree_free(&t);
        *ret = sum;
        return 0;
}

/* Undo: overwrite every file we created with zeros (tmpfs pages freed by an
 * unlink would still hold plaintext), then remove files and directories in
 * reverse order. Only entries this call created are touched. */
static void dec_cleanup(struct dec *d)
{
        static const uint8_t zeros[65536];
        for (size_t k = d->tree.n; k-- > 0;) {
                const struct aidp_tree_entry *e = &d->tree.entries[k];
                if (!d->created[k])
                        continue;
                if (e->type == AIDP_ENTRY_FILE) {
                        /* O_RDWR for lseek: overwrite only the ranges that hold
                         * data (SEEK_DATA), so a full tmpfs is never asked for
                         * new pages to fill the holes. */
                        int fd = open_beneath(d->dirfd, e->path, O_RDWR, 0);
                        if (fd >= 0) {
                                off_t pos = 0;
                                for (;;) {
                                        off_t a = lseek(fd, pos, SEEK_DATA);
                                        if (a < 0)
                                                break;
                                        off_t b = lseek(fd, a, SEEK_HOLE);
                                        if (b <= a)
                                                break;
                                        for (off_t o = a; o < b; o += (off_t)sizeof zeros) {
                                                size_t n = (size_t)(b - o) < sizeof zeros
                                                                   ? (size_t)(b - o)
                                                                   : sizeof zeros;
                                                if (pwrite_full(fd, zeros, n, (uint64_t)o) < 0)
                                                        break;
                                        }
                                        pos = b;
                                }
                                fdatasync(fd);
                                close(fd);
                        }
                }
                const char *base = NULL;
                int pfd = open_parent(d->dirfd, e->path, &base);
                if (pfd >= 0) {
                        unlinkat(pfd, base, e->type == AIDP_ENTRY_DIR ? AT_REMOVEDIR : 0);
                        close(pfd);
                }
        }
}

static int create_entries(struct dec *d, aidp_error *err)
{
        /* A destination that is too small fails here, before any decryption
         * work. (Not fallocate: on tmpfs it zeroes every page first, a whole
         * extra pass over the memory.) Writes still report ENOSPC should the
         * space go elsewhere meanwhile. */
        struct statvfs vfs;
        if (fstatvfs(d->dirfd, &vfs) == 0 && vfs.f_blocks > 0) {
                uint64_t bs = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize, need = 0;
                for (size_t k = 0; k < d->tree.n; k++)
                        need += (d->tree.entries[k].size + bs - 1) / bs * bs;
                uint64_t avail = (uint64_t)vfs.f_bavail * bs;
                if (need > avail)
                        return aidp_error_set(err, AIDP_EXIT_DATA, ENOSPC,
                                              "destination too small: the dataset needs %llu "
                                              "bytes, %llu are free",
                                              (unsigned long long)need, (unsigned long long)avail);
        }
        for (size_t k = 0; k < d->tree.n; k++) {
                const struct aidp_tree_entry *e = &d->tree.entries[k];
                const char *base = NULL;
                _cleanup_close_ int pfd = open_parent(d->dirfd, e->path, &base);
                if (pfd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, -pfd, "opening parent of %s",
                                                e->path);
                if (e->type == AIDP_ENTRY_DIR) {
                        /* Private until the end, when the recorded modes apply. */
                        if (mkdirat(pfd, base, 0700) < 0)
                                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "creating %s",
                                                        e->path);
                        d->created[k] = true;
                        continue;
                }
                _cleanup_close_ int fd = openat(
                        pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "creating %s", e->path);
                d->created[k] = true;
        }
        return 0;
}

static int apply_modes(struct dec *d, const struct aidp_sealed_opts *o, aidp_error *err)
{
        /* Reverse order: a directory's own mode (maybe read-only) is set after
         * everything inside it. */
        for (size_t k = d->tree.n; k-- > 0;) {
                const struct aidp_tree_entry *e = &d->tree.entries[k];
                const char *base = NULL;
                _cleanup_close_ int pfd = open_parent(d->dirfd, e->path, &base);
                if (pfd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, -pfd, "opening parent of %s",
                                                e->path);
                if ((o->uid != (uid_t)-1 || o->gid != (gid_t)-1) &&
                    fchownat(pfd, base, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "chown %s", e->path);
                if (fchmodat(pfd, base, e->mode, 0) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "chmod %s", e->path);
        }
        return 0;
}

int aidp_sealed_decrypt(struct aidp_sealed *s, int dirfd, const struct aidp_sealed_opts *o,
                        struct aidp_sealed_result *ret, aidp_error *err)
{
        static const struct aidp_sealed_opts defaults = AIDP_SEALED_OPTS_DEFAULT;
        const struct aidp_sealed_header *h = &s->h;
        if (!o)
                o = &defaults;
        struct dec d = {.s = s, .dirfd = dirfd, .verify_digest = o->verify_digest};
        int r = read_manifest(s, &d.tree, err);
        if (r < 0)
                return aidp_error_wrap(err, "dataset %s (%s)", h->meta.name, s->path);
        d.digests = calloc(h->n_segments, sizeof *d.digests);
        d.created = calloc(d.tree.n ? d.tree.n : 1, sizeof *d.created);
        if (!d.digests || !d.created) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                goto out;
        }
        if (dirfd >= 0 && (r = create_entries(&d, err)) < 0)
                goto fail;
        struct pool p = {.n_segments = h->n_segments,
                         .fn = dec_segment,
                         .ctx = &d,
                         .progress = o->progress,
                         .progress_opaque = o->progress_opaque,
                         .total_bytes = h->payload_len};
        r = pool_run(&p, pick_threads(o->threads, h->n_segments), s->dk.p, false,
                     (size_t)h->segment_size + AIDP_SEALED_TAG_LEN, err);
        if (r < 0)
                goto fail;
        uint8_t digest[AIDP_SEALED_DIGEST_LEN];
        if (d.verify_digest &&
            aidp_sealed_content_digest(h->payload_len, h->segment_size,
                                       (const uint8_t(*)[AIDP_SEALED_DIGEST_LEN])d.digests,
                                       h->n_segments, digest) < 0) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
                goto fail;
        }
        if (d.verify_digest && CRYPTO_memcmp(digest, h->content_digest, sizeof digest)) {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                   "content digest does not match the header");
                goto fail;
        }
        if (dirfd >= 0 && (r = apply_modes(&d, o, err)) < 0)
                goto fail;
        if (ret) {
                memset(ret, 0, sizeof *ret);
                ret->root = d.tree.root;
                ret->root_mode = d.tree.root_mode;
                for (size_t k = 0; k < d.tree.n; k++) {
                        if (d.tree.entries[k].type == AIDP_ENTRY_DIR) {
                                ret->n_dirs++;
                        } else {
                                ret->n_files++;
                                ret->bytes += d.tree.entries[k].size;
                        }
                }
        }
        r = 0;
        goto out;
fail:
        if (dirfd >= 0)
                dec_cleanup(&d);
        aidp_error_wrap(err, "dataset %s (%s)", h->meta.name, s->path);
out:
        aidp_tree_free(&d.tree);
        free(d.digests);
        free(d.created);
        return r;
}

/* ---- seal ---- */

struct walk {
        struct aidp_tree *t;
        size_t cap;
        bool skip_special;
        uint64_t skipped;
};

static int add_entry(struct walk *w, enum aidp_tree_type type, mode_t mode, uint64_t size,
                     const char *path, aidp_error *err)
{
        struct aidp_tree *t = w->t;
        if (t->n >= AIDP_TREE_MAX_ENTRIES)
                return aidp_error_set(err, AIDP_EXIT_DATA, E2BIG, "too many entries (max %u)",
                                      AIDP_TREE_MAX_ENTRIES);
        if (t->n == w->cap) {
                size_t nc = w->cap ? w->cap * 2 : 64;
                struct aidp_tree_entry *ne = realloc(t->entries, nc * sizeof *ne);
                if (!ne)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                t->entries = ne;
                w->cap = nc;
        }
        char *p = strdup(path);
        if (!p)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        t->entries[t->n++] =
                (struct aidp_tree_entry){.type = type,
                                         .mode = (uint16_t)(mode & AIDP_TREE_MODE_MASK),
                                         .size = size,
                                         .path = p};
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static int walk_dir(struct walk *w, int dfd, const char *prefix, aidp_error *err)
{
        int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "reading %s",
                                        *prefix ? prefix : ".");
        _cleanup_(closedirp) DIR *dir = fdopendir(fd);
        if (!dir) {
                int e = errno;
                close(fd);
                return aidp_error_errno(err, AIDP_EXIT_DATA, e, "reading %s",
                                        *prefix ? prefix : ".");
        }
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(dir);
                if (!de) {
                        if (errno)
                                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "reading %s",
                                                        *prefix ? prefix : ".");
                        break;
                }
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char path[AIDP_TREE_PATH_MAX + 2];
                int n = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "/" : "",
                                 de->d_name);
                if (n < 0 || (size_t)n > AIDP_TREE_PATH_MAX ||
                    !aidp_tree_valid_path(path, (size_t)n))
                        return aidp_error_set(err, AIDP_EXIT_DATA, ENAMETOOLONG,
                                              "%s%s%s: path too long or invalid", prefix,
                                              *prefix ? "/" : "", de->d_name);
                struct stat st;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "stat %s", path);
                int r;
                if (S_ISREG(st.st_mode)) {
                        r = add_entry(w, AIDP_ENTRY_FILE, st.st_mode, (uint64_t)st.st_size, path,
                                      err);
                } else if (S_ISDIR(st.st_mode)) {
                        r = add_entry(w, AIDP_ENTRY_DIR, st.st_mode, 0, path, err);
                        if (r < 0)
                                return r;
                        _cleanup_close_ int sub = openat(
                                dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "opening %s",
                                                        path);
                        r = walk_dir(w, sub, path, err);
                } else if (w->skip_special) {
                        w->skipped++;
                        r = 0;
                } else {
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "%s: not a regular file or directory (symlinks, "
                                              "devices, fifos and sockets cannot be sealed)",
                                              path);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

struct enc {
        int src_fd; /* directory, or the single file */
        bool single;
        const struct aidp_tree *tree;
        const uint8_t *manifest;
        uint32_t segment_size;
        uint64_t payload_len, n_segments;
        uint8_t (*digests)[AIDP_SEALED_DIGEST_LEN];
        bool second_pass;
        int out_fd;
        struct aidp_sealed_header *h;
};

/* Assemble plaintext segment i from the manifest and the source files. */
static int fill_segment(struct worker *w, struct enc *e, uint64_t i, size_t *ret_len,
                        aidp_error *err)
{
        uint64_t start = i * e->segment_size;
        uint64_t end = start + e->segment_size;
        if (end > e->payload_len)
                end = e->payload_len;
        uint8_t *buf = w->buf.p;
        const struct aidp_tree *t = e->tree;
        if (start < t->manifest_len) {
                uint64_t m_end = end < t->manifest_len ? end : t->manifest_len;
                memcpy(buf, e->manifest + start, (size_t)(m_end - start));
        }
        for (size_t k = aidp_tree_find(t, start); k < t->n && t->entries[k].offset < end; k++) {
                const struct aidp_tree_entry *en = &t->entries[k];
                if (en->type != AIDP_ENTRY_FILE || en->size == 0)
                        continue;
                uint64_t a = en->offset > start ? en->offset : start;
                uint64_t b = en->offset + en->size < end ? en->offset + en->size : end;
                if (a >= b)
                        continue;
                if (w->cached_fd < 0 || w->cached_entry != k) {
                        if (w->cached_fd >= 0)
                                close(w->cached_fd);
                        /* O_NONBLOCK: should a fifo have replaced the file,
                         * opening it must not hang; fstat then refuses it. */
                        w->cached_fd = e->single ? fcntl(e->src_fd, F_DUPFD_CLOEXEC, 3)
                                                 : open_beneath(e->src_fd, en->path,
                                                                O_RDONLY | O_NONBLOCK, 0);
                        if (w->cached_fd < 0)
                                return aidp_error_errno(err, AIDP_EXIT_DATA,
                                                        e->single ? errno : -w->cached_fd,
                                                        "opening %s", en->path);
                        w->cached_entry = k;
                        struct stat st;
                        if (fstat(w->cached_fd, &st) < 0 || !S_ISREG(st.st_mode))
                                return aidp_error_set(err, AIDP_EXIT_DATA, EAGAIN,
                                                      "%s changed while it was being sealed "
                                                      "(no longer a regular file)",
                                                      en->path);
                }
                size_t got = 0;
                int r = pread_full(w->cached_fd, buf + (a - start), (size_t)(b - a), a - en->offset,
                                   &got);
                if (r < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "reading %s", en->path);
                if (got != b - a)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EAGAIN,
                                              "%s changed while it was being sealed (shrank)",
                                              en->path);
        }
        *ret_len = (size_t)(end - start);
        return 0;
}

static int enc_segment(struct worker *w, uint64_t i, aidp_error *err)
{
        struct enc *e = w->pool->ctx;
        size_t len = 0;
        int r = fill_segment(w, e, i, &len, err);
        if (r < 0)
                return r;
        uint8_t dg[AIDP_SEALED_DIGEST_LEN];
        unsigned dl = 0;
        if (!EVP_Digest(w->buf.p, len, dg, &dl, EVP_sha256(), NULL))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        if (!e->second_pass) {
                memcpy(e->digests[i], dg, sizeof dg);
        } else {
                /* The header already commits to the first pass's digest. */
                if (memcmp(e->digests[i], dg, sizeof dg))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EAGAIN,
                                              "source changed while it was being sealed "
                                              "(segment %llu)",
                                              (unsigned long long)i);
                const struct aidp_sealed_header *h = e->h;
                if (aidp_sealed_seg_encrypt(w->ctx, i, i + 1 == h->n_segments, h->header_digest,
                                            w->buf.p, len, w->buf.p + len) < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES-GCM failed");
                r = pwrite_full(e->out_fd, w->buf.p, len + AIDP_SEALED_TAG_LEN, seg_off(h, i));
                if (r < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "writing output");
        }
        OPENSSL_cleanse(w->buf.p, len);
        atomic_fetch_add(&w->pool->done_bytes, len);
        return 0;
}

static int seal_into(struct enc *e, const struct aidp_seal_params *p, const struct aidp_keys *keys,
                     int out_fd, struct aidp_sealed_header *h, aidp_error *err)
{
        unsigned nthreads = pick_threads(p->threads, e->n_segments);
        size_t bufsize = (size_t)e->segment_size + AIDP_SEALED_TAG_LEN;
        /* Pass 1: digests of the plaintext segments, for the header. */
        struct pool p1 = {.n_segments = e->n_segments,
                          .fn = enc_segment,
                          .ctx = e,
                          .total_bytes = e->payload_len};
        int r = pool_run(&p1, nthreads, NULL, true, bufsize, err);
        if (r < 0)
                return r;
        _cleanup_secret_ struct aidp_secret dk = {0};
        if ((r = aidp_sealed_new_data_key(&dk, err)) < 0)
                return r;
        h->meta = p->meta;
        h->segment_size = e->segment_size;
        h->payload_len = e->payload_len;
        if (aidp_sealed_content_digest(e->payload_len, e->segment_size,
                                       (const uint8_t(*)[AIDP_SEALED_DIGEST_LEN])e->digests,
                                       e->n_segments, h->content_digest) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        r = aidp_keys_wrap(keys, p->meta.key_id, &dk, &h->key_wrap, h->wrapped_key,
                           &h->wrapped_key_len, err);
        if (r < 0)
                return r;
        uint8_t hbuf[AIDP_SEALED_PREFIX_LEN + AIDP_SEALED_BODY_MAX + AIDP_SEALED_TAG_LEN];
        int hl = aidp_sealed_header_encode(h, hbuf, sizeof hbuf - AIDP_SEALED_TAG_LEN, err);
        if (hl < 0)
                return hl;
        if ((r = aidp_sealed_header_tag(dk.p, hbuf, (size_t)hl, hbuf + hl, err)) < 0)
                return r;
        /* Reserve the whole file first: a full output disk fails early. */
        int fr = posix_fallocate(out_fd, 0, (off_t)h->file_size);
        if (fr != 0 && fr != EOPNOTSUPP)
                return aidp_error_errno(err, AIDP_EXIT_DATA, fr, "reserving %llu bytes for output",
                                        (unsigned long long)h->file_size);
        if (ftruncate(out_fd, (off_t)h->file_size) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "sizing output");
        if ((r = pwrite_full(out_fd, hbuf, (size_t)hl + AIDP_SEALED_TAG_LEN, 0)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "writing output header");
        /* Pass 2: encrypt, checking each segment against pass 1. */
        e->second_pass = true;
        e->out_fd = out_fd;
        e->h = h;
        struct pool p2 = {.n_segments = e->n_segments,
                          .fn = enc_segment,
                          .ctx = e,
                          .progress = p->progress,
                          .progress_opaque = p->progress_opaque,
                          .total_bytes = e->payload_len};
        r = pool_run(&p2, nthreads, dk.p, true, bufsize, err);
        if (r < 0)
                return r;
        if (fsync(out_fd) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "fsync output");
        return 0;
}

int aidp_sealed_seal(int src_fd, const char *src_name, const struct aidp_seal_params *p,
                     const struct aidp_keys *keys, int out_dirfd, const char *out_name,
                     struct aidp_seal_result *ret, aidp_error *err)
{
        struct aidp_seal_params params = *p;
        if (params.meta.created_at == 0)
                params.meta.created_at = (uint64_t)time(NULL);
        if (params.segment_size == 0)
                params.segment_size = AIDP_SEALED_SEGMENT_DEFAULT;
        int r = aidp_sealed_meta_check(&params.meta, err);
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(src_fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "stat %s", src_name);
        struct aidp_tree tree = {0};
        struct walk w = {.t = &tree, .skip_special = params.skip_special};
        struct enc e = {.src_fd = src_fd, .tree = &tree, .segment_size = params.segment_size};
        _cleanup_free_ uint8_t *manifest = NULL;
        _cleanup_free_ struct aidp_sealed_header *h = calloc(1, sizeof *h);
        _cleanup_free_ char *tmp_name = NULL;
        _cleanup_close_ int out_fd = -1;
        if (!h)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (S_ISREG(st.st_mode)) {
                if (!aidp_tree_valid_path(src_name, strlen(src_name)) || strchr(src_name, '/'))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "invalid file name '%s'", src_name);
                tree.root = AIDP_ROOT_FILE;
                e.single = true;
                r = add_entry(&w, AIDP_ENTRY_FILE, st.st_mode, (uint64_t)st.st_size, src_name, err);
        } else if (S_ISDIR(st.st_mode)) {
                tree.root = AIDP_ROOT_DIR;
                tree.root_mode = (uint16_t)(st.st_mode & AIDP_TREE_MODE_MASK);
                r = walk_dir(&w, src_fd, "", err);
        } else {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                   "%s: not a regular file or directory", src_name);
        }
        if (r < 0)
                goto fail;
        if ((r = aidp_tree_finish(&tree, err)) < 0 ||
            (r = aidp_tree_encode(&tree, &manifest, err)) < 0)
                goto fail;
        if (params.max_bytes && tree.stream_len - tree.manifest_len > params.max_bytes) {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EFBIG,
                                   "the files add up to %llu bytes, more than the limit of %llu "
                                   "(sparse files?)",
                                   (unsigned long long)(tree.stream_len - tree.manifest_len),
                                   (unsigned long long)params.max_bytes);
                goto fail;
        }
        e.manifest = manifest;
        e.payload_len = tree.stream_len;
        e.n_segments = aidp_sealed_segment_count(e.payload_len, e.segment_size);
        e.digests = calloc(e.n_segments, sizeof *e.digests);
        if (!e.digests) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                goto fail;
        }
        if (asprintf(&tmp_name, ".%s.%d.tmp", out_name, (int)getpid()) < 0) {
                tmp_name = NULL;
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                goto fail;
        }
        out_fd = openat(out_dirfd, tmp_name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0644);
        if (out_fd < 0) {
                r = aidp_error_errno(err, AIDP_EXIT_DATA, errno, "creating %s", tmp_name);
                goto fail;
        }
        r = seal_into(&e, &params, keys, out_fd, h, err);
        if (r == 0 && renameat2(out_dirfd, tmp_name, out_dirfd, out_name, RENAME_NOREPLACE) < 0)
                r = aidp_error_errno(err, AIDP_EXIT_DATA, errno, "creating %s", out_name);
        if (r < 0) {
                unlinkat(out_dirfd, tmp_name, 0);
                goto fail;
        }
        if (ret) {
                memset(ret, 0, sizeof *ret);
                ret->header = *h;
                for (size_t k = 0; k < tree.n; k++)
                        if (tree.entries[k].type == AIDP_ENTRY_DIR)
                                ret->n_dirs++;
                        else
                                ret->n_files++;
                ret->n_skipped = w.skipped;
        }
        free(e.digests);
        aidp_tree_free(&tree);
        return 0;
fail:
        free(e.digests);
        aidp_tree_free(&tree);
        return aidp_error_wrap(err, "sealing %s", src_name);
}
