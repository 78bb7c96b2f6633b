/* One large viewed file on every worker (views/viewer_chunk.h): the file's
 * segments are taken in blocks of about AIDP_VIEW_BLOCK bytes; each worker
 * decrypts and authenticates a block (and the next block's first segment)
 * into a locked slot, cuts a chunk from just after the first newline of its
 * block's first segment up to the same point of the next block, and views it with a chunk viewer of its own, gathering the output and the
 * hidden values in locked buffers. Chunks are committed in file order by
 * whichever worker finishes the next one: a chunk whose predecessor ended
 * between two records (the parser's own state says so) is written as is;
 * otherwise its guess is dropped and the viewer still inside the record is
 * fed the chunk, in order. The output is the single viewer's, byte for byte. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sealed/sealed_view_internal.h"
#include "views/viewer_chunk.h"

#define HEAD_STEP                                                                                  \
        (16u << 10) /* the first chunk is fed this much at a time until the header is in */

/* A growable buffer in locked memory: the chunk's view and its hidden values. */
struct lbuf {
        struct aidp_sealed_buf b;
        size_t len;
};

/* -E2BIG past max bytes (aidp_view_out_cap, _hid_cap). */
static int lbuf_put(struct lbuf *g, const void *p, size_t n, size_t max)
{
        if (n > max - g->len)
                return -E2BIG;
        if (g->b.len - g->len < n) {
                size_t cap = g->b.len ? g->b.len : 256u << 10;
                while (cap - g->len < n)
                        cap *= 2;
                if (cap > max)
                        cap = max;
                struct aidp_sealed_buf nb = {0};
                int r = aidp_sealed_buf_alloc(&nb, cap);
                if (r < 0)
                        return r;
                if (g->len)
                        memcpy(nb.p, g->b.p, g->len);
                aidp_sealed_buf_free(&g->b); /* wipes */
                g->b = nb;
        }
        memcpy(g->b.p + g->len, p, n);
        g->len += n;
        return 0;
}

static void lbuf_clear(struct lbuf *g)
{
        if (g->len)
                OPENSSL_cleanse(g->b.p, g->len);
        g->len = 0;
}

struct par;
struct slot;
/* Where a viewer's output and hidden values go: its slot's buffers while
 * its chunk is a guess, the file (and the leak scan) once it is in order. */
struct sink {
        struct par *e;
        struct slot *slot;
        bool direct;
};

struct slot {
        uint64_t k;                /* its block */
        struct aidp_sealed_buf in; /* decrypted segments of block k and the next */
        uint64_t in_pos;           /* stream position of in.p[0] */
        uint64_t a, b;             /* the chunk, stream positions */
        struct aidp_viewer *v;     /* NULL: not viewed (the committer does it) */
        struct sink *sink;
        /* over: the guess outgrew its buffers (or their memory): dropped at
         * commit, the chunk is viewed in order */
        bool boundary, ready, over;
        struct lbuf out, hid;
};

struct hid {
        const char *column, *label;
        size_t len;
};

struct par {
        struct vpass *p;
        const struct aidp_sealed_opts *o;
        struct vfile *f;
        struct aidp_sealed_pool *pool;
        uint64_t f0, f1, ss, per_block, seg0, seg_end, n_blocks;
        struct slot *slots;
        unsigned m;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint64_t next, committed_k; /* under lock */
        bool committing, failed, tmpl_done, tmpl;
        struct aidp_viewer *root; /* the first chunk's viewer, the template of the others */
        struct sink *root_sink;
        /* the committer's */
        struct aidp_viewer *seq; /* the viewer still inside a record, fed in order */
        struct sink *seq_sink;
        uint64_t records;
        struct vout out;
        struct aidp_sealed_buf outbuf;
        char where[4400];
};

static int sink_write(void *opaque, const void *buf, size_t len, aidp_error *err)
{
        struct sink *k = opaque;
        if (k->direct)
                return aidp_vout_write(&k->e->out, buf, len, err);
        struct slot *sl = k->slot;
        int r = lbuf_put(&sl->out, buf, len, aidp_view_out_cap(k->e->o));
        if (r < 0)
                sl->over = true; /* the guess stops here; the commit views it in order */
        return r < 0 ? aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "a chunk's view") : 0;
}

static void sink_hidden(void *opaque, const char *column, const char *label, const void *value,
                        size_t len)
{
        struct sink *k = opaque;
        if (k->direct) {
                aidp_vout_hidden(&k->e->out, column, label, value, len);
                return;
        }
        struct hid h = {column, label, len};
        /* A value that cannot be kept drops the guess (the leak scan's set
         * must hold every hidden value): the commit views it in order. */
        size_t max = aidp_view_hid_cap(k->e->o);
        if (lbuf_put(&k->slot->hid, &h, sizeof h, max) < 0 ||
            lbuf_put(&k->slot->hid, value, len, max) < 0)
                k->slot->over = true;
}

static void drop_viewer(struct par *e, struct aidp_viewer **v, struct sink **sink)
{
        if (*v && *v != e->root) {
                aidp_viewer_free(*v);
                free(*sink);
        }
        *v = NULL;
        *sink = NULL;
}

static bool stopped(struct par *e)
{
        return e->failed || atomic_load(&e->pool->failed);
}

/* Wait on the engine's condition (under lock), waking now and then to see
 * whether the pool was stopped from outside (an interrupt). */
static void wait_a_bit(struct par *e)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->cond, &e->lock, &ts);
}

static void fail(struct par *e)
{
        pthread_mutex_lock(&e->lock);
        e->failed = true;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->lock);
}

/* Just after the first newline of stream bytes [x, y) held at q, or x. */
static uint64_t cut(const uint8_t *q, uint64_t x, uint64_t y)
{
        const uint8_t *nl = memchr(q, '\n', (size_t)(y - x));
        return nl ? x + (uint64_t)(nl - q) + 1 : x;
}

static int segment_digest(struct par *e, struct aidp_sealed_worker *w, uint64_t i, const uint8_t *q,
                          aidp_error *err)
{
        unsigned dl = 0;
        if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(w->md, q, aidp_sealed_seg_len(&e->p->s->h, i)) != 1 ||
            EVP_DigestFinal_ex(w->md, e->p->digests[i], &dl) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        return 0;
}

/* Decrypt block k into the slot, and the first segment of block k+1: chunk
 * k is [cut(first segment of block k), cut(first segment of block k+1)),
 * cut() being just after the segment's first newline, or its start. */
static int fill(struct par *e, struct aidp_sealed_worker *w, struct slot *sl, aidp_error *err)
{
        uint64_t k = sl->k, s0 = e->seg0 + k * e->per_block;
        uint64_t s1 = s0 + e->per_block < e->seg_end ? s0 + e->per_block : e->seg_end;
        /* Room for the block, one more segment and a tag. */
        size_t cap = (size_t)((e->per_block + 1) * e->ss) + AIDP_SEALED_TAG_LEN;
        int r;
        if (!sl->in.p && (r = aidp_sealed_buf_alloc(&sl->in, cap)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "allocating a view buffer");
        sl->in_pos = s0 * e->ss;
        bool more = k + 1 < e->n_blocks;
        for (uint64_t i = s0; i < s1 + more; i++) {
                bool first = e->p->deferred && e->p->deferred[i];
                uint8_t *q = sl->in.p + (i - s0) * e->ss;
                if ((r = aidp_view_segment(e->p->s, w, i, q, !first, err)) < 0)
                        return r;
                /* A segment the first pass skipped: its digest, once (by
                 * the block it belongs to), for the content digest. */
                if (first && i < s1 && (r = segment_digest(e, w, i, q, err)) < 0)
                        return r;
        }
        if (k == 0) {
                sl->a = e->f0;
        } else {
                uint64_t y = (s0 + 1) * e->ss < e->f1 ? (s0 + 1) * e->ss : e->f1;
                sl->a = cut(sl->in.p, sl->in_pos, y);
        }
        if (!more) {
                sl->b = e->f1;
        } else {
                uint64_t x = s1 * e->ss, y = (s1 + 1) * e->ss < e->f1 ? (s1 + 1) * e->ss : e->f1;
                sl->b = cut(sl->in.p + (x - sl->in_pos), x, y);
        }
        return 0;
}

static int feed(struct aidp_viewer *v, const uint8_t *q, size_t n)
{
        return n ? aidp_viewer_feed(v, q, n, NULL) : 0;
}

/* View chunk k as a guess (k > 0, from the template) or for real (k == 0). */
static int view_chunk(struct par *e, struct slot *sl, aidp_error *err)
{
        const uint8_t *q = sl->in.p + (sl->a - sl->in_pos);
        size_t n = (size_t)(sl->b - sl->a), done = 0;
        struct sink *sink = calloc(1, sizeof *sink);
        if (!sink)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        /* Chunk 0 is in order by definition, and committed before any
         * other: its view goes straight to the file (no buffer to bound). */
        *sink = (struct sink){.e = e, .slot = sl, .direct = sl->k == 0};
        struct aidp_viewer *v = NULL;
        int r;
        if (sl->k == 0) {
                r = aidp_viewer_new(e->f->fv, e->p->v->keys, e->where, sink_write,
                                    e->p->v->hidden ? sink_hidden : NULL, sink, &v, err);
                while (r >= 0 && done < n && !aidp_viewer_can_fork(v)) {
                        size_t step = n - done < HEAD_STEP ? n - done : HEAD_STEP;
                        if (feed(v, q + done, step) < 0)
                                break; /* decided at commit */
                        done += step;
                }
                pthread_mutex_lock(&e->lock);
                e->root = v;
                e->root_sink = v ? sink : NULL;
                e->tmpl = v && aidp_viewer_can_fork(v);
                e->tmpl_done = true;
                pthread_cond_broadcast(&e->cond);
                pthread_mutex_unlock(&e->lock);
        } else {
                pthread_mutex_lock(&e->lock);
                while (!e->tmpl_done && !stopped(e))
                        wait_a_bit(e);
                bool tmpl = e->tmpl && !stopped(e);
                pthread_mutex_unlock(&e->lock);
                if (!tmpl) { /* no header to start from: the committer views it */
                        free(sink);
                        return 0;
                }
                r = aidp_viewer_fork(e->root, sink_write, e->p->v->hidden ? sink_hidden : NULL,
                                     sink, &v, err);
        }
        if (r < 0) {
                free(sink);
                return r;
        }
        sl->v = v;
        sl->sink = sink;
        /* The viewer's own failures (the data) are decided at commit. */
        if (done < n)
                (void)feed(v, q + done, n - done);
        if (sl->k + 1 == e->n_blocks)
                (void)aidp_viewer_finish(v, NULL);
        else if (aidp_viewer_flush_out(v, NULL) >= 0)
                sl->boundary = aidp_viewer_at_boundary(v);
        return 0;
}

/* The hidden values of a chunk viewed as a guess, in order, to the leak
 * scan: in batches when it takes them (views/leakscan.h, add_many). */
static void replay_hidden(struct par *e, struct slot *sl)
{
        const struct aidp_sealed_view *v = e->p->v;
        struct aidp_view_hidden batch[256];
        size_t n = 0;
        for (size_t at = 0; at < sl->hid.len;) {
                struct hid h;
                memcpy(&h, sl->hid.b.p + at, sizeof h);
                const uint8_t *value = sl->hid.b.p + at + sizeof h;
                at += sizeof h + h.len;
                if (!v->hidden_many) {
                        aidp_vout_hidden(&e->out, h.column, h.label, value, h.len);
                        continue;
                }
                batch[n++] = (struct aidp_view_hidden){h.column, h.label, value, h.len};
                if (n == sizeof batch / sizeof batch[0] || at == sl->hid.len) {
                        v->hidden_many(v->hidden_opaque, batch, n);
                        n = 0;
                }
        }
}

/* Chunk sl, whose start is a record boundary, viewed as a guess: its result is right. */
static int commit_viewed(struct par *e, struct slot *sl, bool last, aidp_error *err)
{
        int r = aidp_viewer_rebase(sl->v, e->records, err);
        if (r < 0)
                return r;
        if (sl->out.len && (r = aidp_vout_write(&e->out, sl->out.b.p, sl->out.len, err)) < 0)
                return r;
        replay_hidden(e, sl);
        if (last)
                return 0;
        if (sl->boundary) {
                e->records = aidp_viewer_records(sl->v);
                drop_viewer(e, &sl->v, &sl->sink);
                return 0;
        }
        /* It ends inside a record: its viewer goes on with the next chunks. */
        e->seq = sl->v;
        e->seq_sink = sl->sink;
        sl->sink->direct = true;
        sl->v = NULL;
        sl->sink = NULL;
        return 0;
}

static int commit(struct par *e, struct slot *sl, aidp_error *err)
{
        bool last = sl->k + 1 == e->n_blocks;
        if (!e->seq && sl->v && !sl->over)
                return commit_viewed(e, sl, last, err);
        /* The guess started inside a record, outgrew its buffers, or there
         * was none: drop it, and feed the chunk to the viewer that is in
         * order; its positions are the file's already. */
        bool over = sl->over && sl->k > 0;
        drop_viewer(e, &sl->v, &sl->sink);
        int r;
        if (!e->seq && over && e->tmpl) {
                /* The chunk starts between two records (the previous one
                 * ended there): a viewer of its own, writing directly. */
                struct sink *k = calloc(1, sizeof *k);
                if (!k)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                *k = (struct sink){.e = e, .direct = true};
                if ((r = aidp_viewer_fork(e->root, sink_write, e->p->v->hidden ? sink_hidden : NULL,
                                          k, &e->seq, err)) < 0) {
                        free(k);
                        return r;
                }
                e->seq_sink = k;
                if ((r = aidp_viewer_rebase(e->seq, e->records, err)) < 0)
                        return r;
        } else if (!e->seq) {
                e->seq = e->root;
                e->seq_sink = e->root_sink;
                e->root_sink->direct = true;
        }
        const uint8_t *q = sl->in.p + (sl->a - sl->in_pos);
        size_t n = (size_t)(sl->b - sl->a);
        r = n ? aidp_viewer_feed(e->seq, q, n, err) : 0;
        if (r >= 0)
                r = last ? aidp_viewer_finish(e->seq, err) : aidp_viewer_flush_out(e->seq, err);
        if (r < 0 || last || !aidp_viewer_at_boundary(e->seq) || !aidp_viewer_can_fork(e->seq))
                return r;
        /* Back between two records: the next chunk's guess holds. */
        e->records = aidp_viewer_records(e->seq);
        drop_viewer(e, &e->seq, &e->seq_sink);
        e->seq = NULL;
        return 0;
}

/* Commit every chunk that is ready, in order; one committer at a time
 * (under lock on entry and exit). */
static int commit_ready(struct par *e, aidp_error *err)
{
        int r = 0;
        if (e->committing)
                return 0;
        e->committing = true;
        while (!stopped(e) && e->committed_k < e->n_blocks) {
                struct slot *sl = &e->slots[e->committed_k % e->m];
                if (!sl->ready || sl->k != e->committed_k)
                        break;
                pthread_mutex_unlock(&e->lock);
                r = commit(e, sl, err);
                atomic_fetch_add(&e->pool->done_bytes, sl->b - sl->a);
                drop_viewer(e, &sl->v, &sl->sink);
                sl->out.len = 0; /* the job's view: wiped when freed */
                lbuf_clear(&sl->hid);
                sl->boundary = sl->over = false;
                pthread_mutex_lock(&e->lock);
                sl->ready = false;
                if (r < 0) {
                        e->failed = true;
                        break;
                }
                e->committed_k++;
                pthread_cond_broadcast(&e->cond);
        }
        e->committing = false;
        pthread_cond_broadcast(&e->cond);
        return r;
}

/* A pool task: the next block in file order (the pool's index is only a
 * ticket: blocks must be taken in order for the window of slots). */
static int par_block(struct aidp_sealed_worker *w, uint64_t ticket, aidp_error *err)
{
        struct par *e = w->pool->ctx;
        (void)ticket;
        pthread_mutex_lock(&e->lock);
        uint64_t k = e->next++;
        while (!stopped(e) && k < e->n_blocks && k >= e->committed_k + e->m)
                wait_a_bit(e);
        /* Stopped by another worker's failure (or an interrupt): that one
         * reports it. */
        bool stop = stopped(e) || k >= e->n_blocks;
        struct slot *sl = &e->slots[k % e->m];
        if (!stop)
                sl->k = k;
        pthread_mutex_unlock(&e->lock);
        if (stop)
                return 0;
        int r = fill(e, w, sl, err);
        if (r >= 0)
                r = view_chunk(e, sl, err);
        if (r < 0) {
                fail(e);
                return r;
        }
        pthread_mutex_lock(&e->lock);
        sl->ready = true;
        r = commit_ready(e, err);
        pthread_mutex_unlock(&e->lock);
        return r;
}

static void par_free(struct par *e)
{
        for (unsigned i = 0; e->slots && i < e->m; i++) {
                struct slot *sl = &e->slots[i];
                drop_viewer(e, &sl->v, &sl->sink);
                aidp_sealed_buf_free(&sl->in);
                aidp_sealed_buf_free(&sl->out.b);
                aidp_sealed_buf_free(&sl->hid.b);
        }
        free(e->slots);
        drop_viewer(e, &e->seq, &e->seq_sink);
        if (e->root) {
                aidp_viewer_free(e->root);
                free(e->root_sink);
        }
        aidp_sealed_buf_free(&e->outbuf);
        EVP_MD_CTX_free(e->out.md);
        if (e->out.fd >= 0)
                close(e->out.fd);
        pthread_cond_destroy(&e->cond);
        pthread_mutex_destroy(&e->lock);
}

static int par_run(struct par *e, const struct aidp_sealed_opts *o, unsigned nthreads,
                   aidp_error *err)
{
        const struct aidp_sealed_header *h = &e->p->s->h;
        const struct aidp_tree_entry *t = &e->p->t->entries[e->f->entry];
        int r;
        if (!(e->out.md = EVP_MD_CTX_new()) ||
            EVP_DigestInit_ex(e->out.md, EVP_sha256(), NULL) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 init failed");
        if ((r = aidp_sealed_buf_alloc(&e->outbuf, AIDP_VIEW_PAR_OUT_BUF)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "allocating a view buffer");
        e->out.fd = aidp_sealed_open_beneath(e->p->dirfd, t->path, O_WRONLY, 0);
        if (e->out.fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -e->out.fd, "opening %s", t->path);
        struct aidp_sealed_pool pool = {.n_segments = e->n_blocks,
                                        .fn = par_block,
                                        .ctx = e,
                                        .progress = o->progress,
                                        .progress_opaque = o->progress_opaque,
                                        .interrupted = o->interrupted,
                                        .total_bytes = t->size};
        e->pool = &pool;
        r = aidp_sealed_pool_run(&pool, nthreads, e->p->s->dk.p, false,
                                 (size_t)h->segment_size + AIDP_SEALED_TAG_LEN, err);
        if (r < 0)
                return r;
        if (e->committed_k != e->n_blocks)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "%s: view incomplete",
                                      e->where);
        if ((r = aidp_vout_flush(&e->out, err)) < 0)
                return r;
        unsigned dl = 0;
        if (EVP_DigestFinal_ex(e->out.md, e->f->digest, &dl) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        e->f->out_len = e->out.written;
        return 0;
}

int aidp_sealed_view_par(struct vpass *p, struct vfile *f, const struct aidp_sealed_opts *o,
                         unsigned nthreads, aidp_error *err)
{
        const struct aidp_sealed_header *h = &p->s->h;
        const struct aidp_tree_entry *t = &p->t->entries[f->entry];
        struct par e = {.p = p, .o = o, .f = f, .ss = h->segment_size};
        e.f0 = t->offset;
        e.f1 = t->offset + t->size;
        e.seg0 = e.f0 / e.ss;
        e.seg_end = (e.f1 - 1) / e.ss + 1;
        e.per_block = aidp_view_block(o) / e.ss ? aidp_view_block(o) / e.ss : 1;
        e.n_blocks = (e.seg_end - e.seg0 + e.per_block - 1) / e.per_block;
        e.m = nthreads + 2; /* chunks in flight: each worker's, and two waiting to commit */
        e.out = (struct vout){.fd = -1, .buf = &e.outbuf, .path = t->path, .v = p->v};
        snprintf(e.where, sizeof e.where, "%s/%s", p->v->dataset ? p->v->dataset : "", t->path);
        pthread_mutex_init(&e.lock, NULL);
        pthread_cond_init(&e.cond, NULL);
        int r;
        if (!(e.slots = calloc(e.m, sizeof *e.slots)))
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        else
                r = par_run(&e, o, nthreads, err);
        par_free(&e);
        return r;
}
