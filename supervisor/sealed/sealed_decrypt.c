/* Decrypting a dataset into a directory fd: create every entry, stream the
 * segments through the worker pool into the files, apply the recorded modes;
 * on any failure wipe and remove what was created. See sealed.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/sealed/codec/sealed_crypto.h"
#include "supervisor/sealed/sealed_internal.h"

struct dec {
        struct aidp_sealed *s;
        int dirfd;
        struct aidp_tree tree;
        uint8_t (*digests)[AIDP_SEALED_DIGEST_LEN];
        bool *created;
        /* per entry: the view it goes through (sealed_view.c), NULL: as sealed */
        const struct aidp_file_view **plan;
        /* per segment: read by the view pass only (sealed_view.c), or NULL */
        bool *deferred;
};

/* Write plaintext stream bytes [start, start + len) into the files they
 * belong to. */
static int write_plain(struct dec *d, struct aidp_sealed_worker *w, uint64_t start,
                       const uint8_t *buf, size_t len, aidp_error *err)
{
        const struct aidp_tree *t = &d->tree;
        uint64_t end = start + len;
        for (size_t k = aidp_tree_find(t, start); k < t->n && t->entries[k].offset < end; k++) {
                const struct aidp_tree_entry *e = &t->entries[k];
                /* A viewed file's raw bytes are never written: the view
                 * pass writes what its viewer makes of them. */
                if (e->type != AIDP_ENTRY_FILE || e->size == 0 || (d->plan && d->plan[k]))
                        continue;
                uint64_t a = e->offset > start ? e->offset : start;
                uint64_t b = e->offset + e->size < end ? e->offset + e->size : end;
                if (a >= b)
                        continue;
                if (w->cached_fd < 0 || w->cached_entry != k) {
                        if (w->cached_fd >= 0)
                                close(w->cached_fd);
                        w->cached_fd = aidp_sealed_open_beneath(d->dirfd, e->path, O_WRONLY, 0);
                        if (w->cached_fd < 0)
                                return aidp_error_errno(err, AIDP_EXIT_DATA, -w->cached_fd,
                                                        "opening %s", e->path);
                        w->cached_entry = k;
                }
                int r = aidp_pwrite_all(w->cached_fd, buf + (a - start), (size_t)(b - a),
                                        (off_t)(a - e->offset));
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

static int dec_segment(struct aidp_sealed_worker *w, uint64_t i, aidp_error *err)
{
        struct dec *d = w->pool->ctx;
        const struct aidp_sealed_header *h = &d->s->h;
        size_t len = aidp_sealed_seg_len(h, i);
        uint64_t off = aidp_sealed_seg_off(h, i), start = i * (uint64_t)h->segment_size;
        uint8_t *buf = w->buf.p;
        EVP_MD_CTX *md = w->md;
        if (d->deferred && d->deferred[i]) { /* the view pass authenticates and digests it */
                atomic_fetch_add(&w->pool->done_bytes, len);
                return 0;
        }
        if (aidp_sealed_seg_begin(w->ctx, false, i, i + 1 == h->n_segments, h->header_digest) < 0 ||
            EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES-GCM/SHA-256 init failed");
        for (size_t pos = 0; pos < len;) {
                size_t n = len - pos < STREAM_CHUNK ? len - pos : STREAM_CHUNK;
                ssize_t got = aidp_pread_all(d->s->fd, buf, n, (off_t)(off + pos));
                if (got < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, (int)-got,
                                                "reading segment %llu", (unsigned long long)i);
                if ((size_t)got != n)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                              "segment %llu is truncated (the file shrank)",
                                              (unsigned long long)i);
                if (aidp_sealed_seg_update(w->ctx, buf, n) < 0 || EVP_DigestUpdate(md, buf, n) != 1)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "AES-GCM failed");
                if (d->dirfd >= 0 && start + pos + n > d->tree.manifest_len) {
                        uint64_t skip = start + pos >= d->tree.manifest_len
                                                ? 0
                                                : d->tree.manifest_len - (start + pos);
                        int r = write_plain(d, w, start + pos + skip, buf + skip, n - (size_t)skip,
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
        if (aidp_pread_all(d->s->fd, tag, sizeof tag, (off_t)(off + len)) != (ssize_t)sizeof tag)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG, "segment %llu: truncated tag",
                                      (unsigned long long)i);
        if (aidp_sealed_seg_finish_decrypt(w->ctx, tag) < 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "segment %llu of %llu failed authentication (modified, "
                                      "reordered, truncated or from another dataset)",
                                      (unsigned long long)i, (unsigned long long)h->n_segments);
        unsigned dl = 0;
        if (EVP_DigestFinal_ex(md, d->digests[i], &dl) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        atomic_fetch_add(&w->pool->done_bytes, len);
        return 0;
}

/* Overwrite the ranges of a created file that hold data with zeros (tmpfs
 * pages freed by an unlink would still hold plaintext). O_RDWR for lseek: only
 * the ranges that hold data (SEEK_DATA) are written, so a full tmpfs is never
 * asked for new pages to fill the holes. Best effort: it runs on the way out of
 * a failure, and the caller shreds the tmpfs anyway. */
static void wipe_file(int dirfd, const char *path)
{
        static const uint8_t zeros[65536];
        _cleanup_close_ int fd = aidp_sealed_open_beneath(dirfd, path, O_RDWR, 0);
        if (fd < 0)
                return;
        for (off_t pos = 0;;) {
                off_t a = lseek(fd, pos, SEEK_DATA);
                if (a < 0)
                        break;
                off_t b = lseek(fd, a, SEEK_HOLE);
                if (b <= a)
                        break;
                for (off_t o = a; o < b; o += (off_t)sizeof zeros) {
                        size_t n = (size_t)(b - o) < sizeof zeros ? (size_t)(b - o) : sizeof zeros;
                        if (aidp_pwrite_all(fd, zeros, n, o) < 0)
                                break;
                }
                pos = b;
        }
        fdatasync(fd);
}

/* Undo: wipe every file we created, then remove files and directories in
 * reverse order. Only entries this call created are touched. */
static void dec_cleanup(struct dec *d)
{
        for (size_t k = d->tree.n; k-- > 0;) {
                const struct aidp_tree_entry *e = &d->tree.entries[k];
                if (!d->created[k])
                        continue;
                if (e->type == AIDP_ENTRY_FILE)
                        wipe_file(d->dirfd, e->path);
                const char *base = NULL;
                _cleanup_close_ int pfd = aidp_sealed_open_parent(d->dirfd, e->path, &base);
                if (pfd >= 0)
                        unlinkat(pfd, base, e->type == AIDP_ENTRY_DIR ? AT_REMOVEDIR : 0);
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
                _cleanup_close_ int pfd = aidp_sealed_open_parent(d->dirfd, e->path, &base);
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
                _cleanup_close_ int pfd = aidp_sealed_open_parent(d->dirfd, e->path, &base);
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
        struct dec d = {.s = s, .dirfd = dirfd};
        int r = aidp_sealed_read_manifest(s, &d.tree, err);
        if (r < 0)
                return aidp_error_wrap(err, "dataset %s (%s)", h->meta.name, s->path);
        d.digests = calloc(h->n_segments, sizeof *d.digests);
        d.created = calloc(d.tree.n ? d.tree.n : 1, sizeof *d.created);
        if (!d.digests || !d.created) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                goto out;
        }
        if (dirfd >= 0 && o->view &&
            ((r = aidp_sealed_view_plan(o->view, &d.tree, &d.plan, err)) < 0 ||
             (r = aidp_sealed_view_deferred(h, &d.tree, d.plan, o, &d.deferred, err)) < 0))
                goto out;
        if (dirfd >= 0 && (r = create_entries(&d, err)) < 0)
                goto fail;
        struct aidp_sealed_pool p = {.n_segments = h->n_segments,
                                     .fn = dec_segment,
                                     .ctx = &d,
                                     .progress = o->progress,
                                     .progress_opaque = o->progress_opaque,
                                     .interrupted = o->interrupted,
                                     .total_bytes = h->payload_len};
        r = aidp_sealed_pool_run(
                &p, aidp_sealed_pick_threads(aidp_sealed_opts_threads(o), h->n_segments), s->dk.p,
                false, (size_t)h->segment_size + AIDP_SEALED_TAG_LEN, err);
        if (r < 0)
                goto fail;
        struct aidp_sealed_result res = {0};
        /* Views only now: a viewer reads only authenticated bytes (every
         * segment is authenticated as the view pass reads it, again or, for
         * those deferred, for the first time), and a viewer's error leaves
         * nothing of the dataset behind. */
        if (d.plan && (r = aidp_sealed_view_run(s, dirfd, &d.tree, d.plan, d.deferred, d.digests,
                                                o->view, o, &res, err)) < 0)
                goto fail;
        /* The header's digest is what lineage and the summary record: it is
         * checked against what was decrypted (fail closed), never trusted;
         * after the views, which digest the segments they alone read. */
        uint8_t digest[AIDP_SEALED_DIGEST_LEN];
        if (aidp_sealed_content_digest(h->format_version, s->dk.p, h->payload_len, h->segment_size,
                                       (const uint8_t(*)[AIDP_SEALED_DIGEST_LEN])d.digests,
                                       h->n_segments, digest) < 0) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "content digest: OpenSSL failed");
                goto fail;
        }
        if (CRYPTO_memcmp(digest, h->content_digest, sizeof digest)) {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                   "content digest does not match the header");
                goto fail;
        }
        if (dirfd >= 0 && (r = apply_modes(&d, o, err)) < 0)
                goto fail;
        if (ret) {
                *ret = res;
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
        free(d.plan);
        free(d.deferred);
        return r;
}
