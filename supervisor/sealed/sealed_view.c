/* Column views at injection: the second pass of aidp_sealed_decrypt for the
 * files whose view is not all-raw (sealed.h, struct aidp_sealed_view). The
 * first pass authenticated and digested the segments of the other files and
 * the segments these share with them, without writing these files; here each
 * is decrypted, in order, into a locked worker buffer, authenticated segment
 * by segment (again, or for the first time for the segments deferred to this
 * pass, whose digests it takes for the content digest checked afterwards),
 * and fed to its viewer, whose output alone is written. Here one worker views one small
 * file at a time and the pool spreads files over the cores; a large file is
 * viewed in chunks on every worker (sealed_view_par.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/sealed/codec/sealed_crypto.h"
#include "supervisor/sealed/sealed_view_internal.h"

/* The viewer's output is gathered into this much (locked) memory per file
 * before it is written: viewers emit a field at a time. */
#define OUT_BUF (256u * 1024u)

int aidp_sealed_view_plan(const struct aidp_sealed_view *v, const struct aidp_tree *t,
                          const struct aidp_file_view ***ret, aidp_error *err)
{
        const struct aidp_file_view **plan = calloc(t->n ? t->n : 1, sizeof *plan);
        if (!plan)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t k = 0; v->schema && k < t->n; k++) {
                const struct aidp_tree_entry *e = &t->entries[k];
                if (e->type != AIDP_ENTRY_FILE)
                        continue;
                const struct aidp_schema_file *sf = aidp_schema_match(v->schema, e->path);
                if (!sf)
                        continue;
                const struct aidp_file_view *fv = &v->files[sf - v->schema->files];
                if (!aidp_file_view_is_raw(fv))
                        plan[k] = fv;
        }
        *ret = plan;
        return 0;
}

/* The record buffers a viewer may hold whatever the data: CSV, a field up to
 * AIDP_VIEW_FIELD_MAX and its copy while it grows; JSON Lines, a line up to
 * twice that, its copy while it grows, json-c's tree of it and its output
 * line (an estimate: the tree is json-c's). */
static uint64_t viewer_work(const struct aidp_file_view *fv)
{
        uint64_t f = AIDP_VIEW_FIELD_MAX;
        return fv->file->format == AIDP_VIEW_JSONL ? 6 * f : 2 * f;
}

/* A chunk's slot (sealed_view_par.c): its block and the next segment, and
 * its capped view and hidden values, each with the copy made while it grows
 * (the last doubling holds 1.5 times the cap). */
static uint64_t slot_work(const struct aidp_sealed_opts *o, uint64_t ss)
{
        uint64_t per_block = aidp_view_block(o) / ss ? aidp_view_block(o) / ss : 1;
        return (per_block + 1) * ss + AIDP_SEALED_TAG_LEN + aidp_view_out_cap(o) * 3 / 2 +
               aidp_view_hid_cap(o) * 3 / 2;
}

int aidp_sealed_work_bytes(struct aidp_sealed *s, const struct aidp_sealed_opts *o, uint64_t *base,
                           uint64_t *per_thread, aidp_error *err)
{
        uint64_t ss = s->h.segment_size, seg = ss + AIDP_SEALED_TAG_LEN;
        /* The decryption pass: one segment buffer per worker. */
        uint64_t b = 0, t = seg;
        if (o->view) {
                struct aidp_tree tree = {0};
                const struct aidp_file_view **plan = NULL;
                int r = aidp_sealed_read_manifest(s, &tree, err);
                if (r < 0)
                        return aidp_error_wrap(err, "dataset %s (%s)", s->h.meta.name, s->path);
                r = aidp_sealed_view_plan(o->view, &tree, &plan, err);
                uint64_t whole = 0, chunked = 0;
                for (size_t k = 0; r == 0 && k < tree.n; k++) {
                        if (!plan[k])
                                continue;
                        uint64_t v = viewer_work(plan[k]);
                        uint64_t *m =
                                aidp_view_in_chunks(o, tree.entries[k].size) ? &chunked : &whole;
                        *m = v > *m ? v : *m;
                }
                free(plan);
                aidp_tree_free(&tree);
                if (r < 0)
                        return r;
                /* Whole files: per worker its segment, output buffer and viewer. */
                if (whole)
                        t = seg + OUT_BUF + whole;
                /* A large file: per worker its segment, its chunk's slot and
                 * viewer; besides, two slots waiting to commit, the
                 * committer's output buffer and its in-order viewer. */
                if (chunked) {
                        uint64_t slot = slot_work(o, ss);
                        uint64_t pt = seg + slot + chunked;
                        t = pt > t ? pt : t;
                        b = 2 * slot + AIDP_VIEW_PAR_OUT_BUF + chunked;
                }
        }
        *base = b;
        *per_thread = t;
        return 0;
}

int aidp_sealed_view_deferred(const struct aidp_sealed_header *h, const struct aidp_tree *t,
                              const struct aidp_file_view *const *plan,
                              const struct aidp_sealed_opts *o, bool **ret, aidp_error *err)
{
        bool *d = NULL;
        uint64_t ss = h->segment_size;
        for (size_t k = 0; plan && k < t->n; k++) {
                const struct aidp_tree_entry *e = &t->entries[k];
                if (!plan[k] || !aidp_view_in_chunks(o, e->size))
                        continue;
                /* Whole segments only: one shared with another entry (or the
                 * manifest) is decrypted by the first pass as before. */
                uint64_t a = (e->offset + ss - 1) / ss, b = (e->offset + e->size) / ss;
                if (e->offset + e->size == h->payload_len)
                        b = h->n_segments; /* the last segment may be short */
                if (a >= b)
                        continue;
                if (!d && !(d = calloc(h->n_segments, sizeof *d)))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                for (uint64_t i = a; i < b; i++)
                        d[i] = true;
        }
        *ret = d;
        return 0;
}

/* n bytes at the file's end. */
static int vout_pwrite(struct vout *o, const void *p, size_t n, aidp_error *err)
{
        int r = aidp_pwrite_all(o->fd, p, n, (off_t)o->written);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "%swriting %s",
                                        r == -ENOSPC ? "destination too small: " : "", o->path);
        o->written += n;
        return 0;
}

int aidp_vout_flush(struct vout *o, aidp_error *err)
{
        if (!o->used)
                return 0;
        int r = vout_pwrite(o, o->buf->p, o->used, err);
        if (r >= 0)
                o->used = 0;
        return r;
}

/* A large block (a chunk's view) is hashed and written piece by piece, so
 * that the write copies bytes the hash just brought into the cache instead of
 * reading the whole block from memory a second time. */
#define VOUT_PIECE (256u * 1024u)

static int vout_write_large(struct vout *o, const uint8_t *p, size_t len, aidp_error *err)
{
        int r = aidp_vout_flush(o, err);
        for (size_t n; r >= 0 && len; p += n, len -= n) {
                n = len < VOUT_PIECE ? len : VOUT_PIECE;
                if (EVP_DigestUpdate(o->md, p, n) != 1)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
                r = vout_pwrite(o, p, n, err);
        }
        return r;
}

int aidp_vout_write(void *opaque, const void *buf, size_t len, aidp_error *err)
{
        struct vout *o = opaque;
        const uint8_t *p = buf;
        /* A whole block (a chunk's view) goes out as is, not through the buffer. */
        if (len >= o->buf->len)
                return vout_write_large(o, p, len, err);
        if (EVP_DigestUpdate(o->md, buf, len) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        while (len) {
                if (o->used == o->buf->len) {
                        int r = aidp_vout_flush(o, err);
                        if (r < 0)
                                return r;
                }
                size_t n = o->buf->len - o->used < len ? o->buf->len - o->used : len;
                memcpy(o->buf->p + o->used, p, n);
                o->used += n;
                p += n;
                len -= n;
        }
        return 0;
}

void aidp_vout_hidden(void *opaque, const char *column, const char *label, const void *value,
                      size_t len)
{
        struct vout *o = opaque;
        if (o->v->hidden)
                o->v->hidden(o->v->hidden_opaque, column, label, value, len);
}

int aidp_view_segment(struct aidp_sealed *s, struct aidp_sealed_worker *w, uint64_t i, uint8_t *dst,
                      bool again, aidp_error *err)
{
        size_t len;
        return aidp_sealed_read_segment(s, w->ctx, i, dst, again, &len, err);
}

/* Segment i whole in the worker's buffer (a tag covers the whole segment).
 * The worker keeps the last one: small files sharing a segment are next to
 * each other in a worker's stretch. */
static int load_segment(struct vpass *p, struct aidp_sealed_worker *w, uint64_t i, aidp_error *err)
{
        if (w->has_segment && w->cached_segment == i)
                return 0;
        w->has_segment = false;
        int r = aidp_view_segment(p->s, w, i, w->buf.p, true, err);
        if (r < 0)
                return r;
        w->has_segment = true;
        w->cached_segment = i;
        return 0;
}

static int feed_file(struct vpass *p, struct aidp_sealed_worker *w, const struct aidp_tree_entry *e,
                     struct aidp_viewer *vw, aidp_error *err)
{
        const struct aidp_sealed_header *h = &p->s->h;
        uint64_t a = e->offset, b = e->offset + e->size, ss = h->segment_size;
        for (uint64_t i = a / ss; i * ss < b; i++) {
                int r = load_segment(p, w, i, err);
                if (r < 0)
                        return r;
                uint64_t s0 = i * ss, s1 = s0 + aidp_sealed_seg_len(h, i);
                uint64_t x = a > s0 ? a : s0, y = b < s1 ? b : s1;
                if (x < y &&
                    (r = aidp_viewer_feed(vw, w->buf.p + (x - s0), (size_t)(y - x), err)) < 0)
                        return r;
        }
        return 0;
}

static int view_file(struct aidp_sealed_worker *w, uint64_t index, aidp_error *err)
{
        struct vpass *p = w->pool->ctx;
        struct vfile *f = p->whole[index];
        const struct aidp_tree_entry *e = &p->t->entries[f->entry];
        char where[4400];
        snprintf(where, sizeof where, "%s/%s", p->v->dataset ? p->v->dataset : "", e->path);
        struct vout o = {.fd = -1, .buf = &w->out, .md = w->md, .path = e->path, .v = p->v};
        struct aidp_viewer *vw = NULL;
        int r = w->out.p ? 0 : aidp_sealed_buf_alloc(&w->out, OUT_BUF);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "allocating a view buffer");
        o.fd = aidp_sealed_open_beneath(p->dirfd, e->path, O_WRONLY, 0);
        if (o.fd < 0) {
                r = aidp_error_errno(err, AIDP_EXIT_DATA, -o.fd, "opening %s", e->path);
                goto out;
        }
        if (EVP_DigestInit_ex(o.md, EVP_sha256(), NULL) != 1) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 init failed");
                goto out;
        }
        if ((r = aidp_viewer_new(f->fv, p->v->keys, where, aidp_vout_write, aidp_vout_hidden, &o,
                                 &vw, err)) < 0 ||
            (r = feed_file(p, w, e, vw, err)) < 0 || (r = aidp_viewer_finish(vw, err)) < 0 ||
            (r = aidp_vout_flush(&o, err)) < 0)
                goto out;
        unsigned dl = 0;
        if (EVP_DigestFinal_ex(o.md, f->digest, &dl) != 1) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
                goto out;
        }
        f->out_len = o.written;
        atomic_fetch_add(&w->pool->done_bytes, e->size);
out:
        if (vw)
                aidp_viewer_free(vw);
        if (o.fd >= 0)
                close(o.fd);
        return r;
}

static int received_digest(const struct aidp_sealed_header *h, const struct vpass *p,
                           uint8_t out[AIDP_SEALED_DIGEST_LEN], aidp_error *err)
{
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
                  EVP_DigestUpdate(md, AIDP_SEALED_VIEW_DIGEST_DOMAIN,
                                   sizeof AIDP_SEALED_VIEW_DIGEST_DOMAIN) == 1 &&
                  EVP_DigestUpdate(md, h->content_digest, AIDP_SEALED_DIGEST_LEN) == 1;
        for (size_t i = 0; ok && i < p->n; i++) {
                const char *path = p->t->entries[p->files[i].entry].path;
                uint8_t be[8];
                for (int k = 0; k < 8; k++)
                        be[k] = (uint8_t)(p->files[i].out_len >> (56 - 8 * k));
                ok = EVP_DigestUpdate(md, path, strlen(path) + 1) == 1 &&
                     EVP_DigestUpdate(md, be, sizeof be) == 1 &&
                     EVP_DigestUpdate(md, p->files[i].digest, AIDP_SEALED_DIGEST_LEN) == 1;
        }
        unsigned dl = 0;
        ok = ok && EVP_DigestFinal_ex(md, out, &dl) == 1;
        EVP_MD_CTX_free(md);
        return ok ? 0 : aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
}

int aidp_sealed_view_run(struct aidp_sealed *s, int dirfd, const struct aidp_tree *t,
                         const struct aidp_file_view *const *plan, const bool *deferred,
                         uint8_t (*digests)[AIDP_SEALED_DIGEST_LEN],
                         const struct aidp_sealed_view *v, const struct aidp_sealed_opts *o,
                         struct aidp_sealed_result *ret, aidp_error *err)
{
        struct vpass p = {
                .s = s, .dirfd = dirfd, .t = t, .v = v, .deferred = deferred, .digests = digests};
        p.files = calloc(t->n ? t->n : 1, sizeof *p.files);
        if (!p.files)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        p.whole = calloc(t->n ? t->n : 1, sizeof *p.whole);
        if (!p.whole) {
                free(p.files);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        uint64_t bytes = 0;
        for (size_t k = 0; k < t->n; k++)
                if (plan[k]) {
                        p.files[p.n] = (struct vfile){.entry = k, .fv = plan[k]};
                        if (!aidp_view_in_chunks(o, t->entries[k].size))
                                p.whole[p.n_whole++] = &p.files[p.n];
                        p.n++;
                        bytes += t->entries[k].size;
                }
        int r = 0;
        /* Small files whole, one per worker; then each large one in chunks
         * on every worker (sealed_view_par.c). */
        if (p.n_whole) {
                struct aidp_sealed_pool pool = {.n_segments = p.n_whole,
                                                .fn = view_file,
                                                .ctx = &p,
                                                .progress = o->progress,
                                                .progress_opaque = o->progress_opaque,
                                                .interrupted = o->interrupted,
                                                .total_bytes = bytes};
                r = aidp_sealed_pool_run(
                        &pool, aidp_sealed_pick_threads(aidp_sealed_opts_threads(o), p.n_whole),
                        s->dk.p, false, (size_t)s->h.segment_size + AIDP_SEALED_TAG_LEN, err);
        }
        for (size_t i = 0; r == 0 && i < p.n; i++)
                if (aidp_view_in_chunks(o, t->entries[p.files[i].entry].size))
                        r = aidp_sealed_view_par(
                                &p, &p.files[i], o,
                                aidp_sealed_pick_threads(aidp_sealed_opts_threads(o), 64), err);
        if (r == 0)
                r = received_digest(&s->h, &p, ret->received_digest, err);
        if (r == 0) {
                ret->n_viewed = p.n;
                for (size_t i = 0; i < p.n; i++)
                        ret->viewed_bytes += p.files[i].out_len;
        }
        free(p.files);
        free(p.whole);
        return r;
}
