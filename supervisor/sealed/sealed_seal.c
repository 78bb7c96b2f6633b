/* Sealing a file or a directory tree: walk it into a manifest, digest every
 * segment (pass 1), write the header that commits to those digests, then
 * encrypt each segment while checking it against pass 1 (pass 2). See sealed.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/sealed/codec/sealed_crypto.h"
#include "supervisor/sealed/sealed_internal.h"

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

/* A file whose size the file system reports as 0 is sealed as empty only if it
 * is: /proc and /sys files report 0 and still have content, which the
 * manifest's size would silently drop. */
static int check_empty(int fd, const char *path, aidp_error *err)
{
        char c;
        ssize_t n = pread(fd, &c, 1, 0);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "reading %s", path);
        if (n > 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "%s: its size is 0 but it has content (a /proc or /sys "
                                      "file?); seal a copy of it instead",
                                      path);
        return 0;
}

/* Walk-time check of a directory entry's zero size (check_empty). */
static int check_empty_at(int dfd, const char *name, const char *path, aidp_error *err)
{
        _cleanup_close_ int fd = aidp_sealed_open_beneath(dfd, name, O_RDONLY | O_NONBLOCK, 0);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -fd, "opening %s", path);
        return check_empty(fd, path, err);
}

/* After the last byte of a file was read: the manifest's size must still be
 * the whole file. Sealing the first part of a file that is still being
 * written would look like a complete dataset. */
static int check_not_grown(int fd, const char *path, uint64_t size, aidp_error *err)
{
        char c;
        struct stat st;
        ssize_t n = pread(fd, &c, 1, (off_t)size);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "reading %s", path);
        if (n > 0 || (fstat(fd, &st) == 0 && (uint64_t)st.st_size != size))
                return aidp_error_set(err, AIDP_EXIT_DATA, EAGAIN,
                                      "%s changed while it was being sealed (it grew past the "
                                      "%llu bytes it had when sealing began); seal it when "
                                      "nothing writes to it, or seal a copy",
                                      path, (unsigned long long)size);
        return 0;
}

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
                        r = st.st_size ? 0 : check_empty_at(dfd, de->d_name, path, err);
                        if (r < 0)
                                return r;
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

int aidp_sealed_walk_files(int dir_fd, aidp_sealed_file_fn fn, void *opaque, aidp_error *err)
{
        /* A directory fd of its own: walk_dir reads through a dup, which
         * shares the offset, and the caller's fd must stay at the start for
         * the seal's own walk. */
        _cleanup_close_ int top = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (top < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "reading the tree");
        struct aidp_tree tree = {0};
        struct walk w = {.t = &tree, .skip_special = true};
        int r = walk_dir(&w, top, "", err);
        for (size_t i = 0; r >= 0 && i < tree.n; i++) {
                const struct aidp_tree_entry *en = &tree.entries[i];
                if (en->type != AIDP_ENTRY_FILE)
                        continue;
                /* O_NONBLOCK: a fifo that replaced the file must not hang. */
                _cleanup_close_ int fd =
                        aidp_sealed_open_beneath(dir_fd, en->path, O_RDONLY | O_NONBLOCK, 0);
                struct stat st;
                if (fd < 0)
                        r = aidp_error_errno(err, AIDP_EXIT_DATA, -fd, "opening %s", en->path);
                else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EAGAIN,
                                           "%s is no longer a regular file", en->path);
                else
                        r = fn(opaque, en->path, fd, en->size, err);
        }
        aidp_tree_free(&tree);
        return r < 0 ? r : 0;
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
static int fill_segment(struct aidp_sealed_worker *w, struct enc *e, uint64_t i, size_t *ret_len,
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
                        w->cached_fd = e->single
                                               ? fcntl(e->src_fd, F_DUPFD_CLOEXEC, 3)
                                               : aidp_sealed_open_beneath(e->src_fd, en->path,
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
                ssize_t got = aidp_pread_all(w->cached_fd, buf + (a - start), (size_t)(b - a),
                                             (off_t)(a - en->offset));
                if (got < 0)
                        return aidp_error_errno(err, AIDP_EXIT_DATA, (int)-got, "reading %s",
                                                en->path);
                if ((uint64_t)got != b - a)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EAGAIN,
                                              "%s changed while it was being sealed (shrank)",
                                              en->path);
                int g = b == en->offset + en->size
                                ? check_not_grown(w->cached_fd, en->path, en->size, err)
                                : 0;
                if (g < 0)
                        return g;
        }
        *ret_len = (size_t)(end - start);
        return 0;
}

static int enc_segment(struct aidp_sealed_worker *w, uint64_t i, aidp_error *err)
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
                r = aidp_pwrite_all(e->out_fd, w->buf.p, len + AIDP_SEALED_TAG_LEN,
                                    (off_t)aidp_sealed_seg_off(h, i));
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
        unsigned nthreads = aidp_sealed_pick_threads(p->threads, e->n_segments);
        size_t bufsize = (size_t)e->segment_size + AIDP_SEALED_TAG_LEN;
        /* Pass 1: digests of the plaintext segments, for the header. */
        struct aidp_sealed_pool p1 = {.n_segments = e->n_segments,
                                      .fn = enc_segment,
                                      .ctx = e,
                                      .total_bytes = e->payload_len};
        int r = aidp_sealed_pool_run(&p1, nthreads, NULL, true, bufsize, err);
        if (r < 0)
                return r;
        _cleanup_secret_ struct aidp_secret dk = {0};
        if ((r = aidp_sealed_new_data_key(&dk, err)) < 0)
                return r;
        h->meta = p->meta;
        if (p->schema_len > sizeof h->schema)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "schema too large");
        if (p->schema_len)
                memcpy(h->schema, p->schema, p->schema_len);
        h->schema_len = p->schema_len;
        if (p->produced_by_len > sizeof h->produced_by)
                return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG, "produced-by record too large");
        if (p->produced_by_len)
                memcpy(h->produced_by, p->produced_by, p->produced_by_len);
        h->produced_by_len = p->produced_by_len;
        h->format_version = p->produced_by_len ? AIDP_SEALED_VERSION_PRODUCED
                            : p->schema_len    ? AIDP_SEALED_VERSION_SCHEMA
                                               : AIDP_SEALED_VERSION;
        h->segment_size = e->segment_size;
        h->payload_len = e->payload_len;
        /* Keyed (formats 2 and 3): the header is world-readable, an unkeyed
         * digest would let anyone confirm a guess of the content. */
        if (aidp_sealed_content_digest(h->format_version, dk.p, e->payload_len, e->segment_size,
                                       (const uint8_t(*)[AIDP_SEALED_DIGEST_LEN])e->digests,
                                       e->n_segments, h->content_digest) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "content digest: OpenSSL failed");
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
        if ((r = aidp_pwrite_all(out_fd, hbuf, (size_t)hl + AIDP_SEALED_TAG_LEN, 0)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, -r, "writing output header");
        /* Pass 2: encrypt, checking each segment against pass 1. */
        e->second_pass = true;
        e->out_fd = out_fd;
        e->h = h;
        struct aidp_sealed_pool p2 = {.n_segments = e->n_segments,
                                      .fn = enc_segment,
                                      .ctx = e,
                                      .progress = p->progress,
                                      .progress_opaque = p->progress_opaque,
                                      .total_bytes = e->payload_len};
        r = aidp_sealed_pool_run(&p2, nthreads, dk.p, true, bufsize, err);
        if (r < 0)
                return r;
        if (fsync(out_fd) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "fsync output");
        return 0;
}

/* The manifest of src_fd: the single file, or the tree below the directory. */
static int build_tree(int src_fd, const char *src_name, const struct aidp_seal_params *p,
                      struct walk *w, struct enc *e, uint8_t **manifest, aidp_error *err)
{
        struct aidp_tree *tree = w->t;
        struct stat st;
        int r;
        if (fstat(src_fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "stat %s", src_name);
        if (S_ISREG(st.st_mode)) {
                if (!aidp_tree_valid_path(src_name, strlen(src_name)) || strchr(src_name, '/'))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "invalid file name '%s'", src_name);
                tree->root = AIDP_ROOT_FILE;
                e->single = true;
                if (!st.st_size && (r = check_empty(src_fd, src_name, err)) < 0)
                        return r;
                r = add_entry(w, AIDP_ENTRY_FILE, st.st_mode, (uint64_t)st.st_size, src_name, err);
        } else if (S_ISDIR(st.st_mode)) {
                tree->root = AIDP_ROOT_DIR;
                tree->root_mode = (uint16_t)(st.st_mode & AIDP_TREE_MODE_MASK);
                r = walk_dir(w, src_fd, "", err);
        } else {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                   "%s: not a regular file or directory", src_name);
        }
        if (r < 0)
                return r;
        if ((r = aidp_tree_finish(tree, err)) < 0 ||
            (r = aidp_tree_encode(tree, manifest, err)) < 0)
                return r;
        if (p->max_bytes && tree->stream_len - tree->manifest_len > p->max_bytes)
                return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG,
                                      "the files add up to %llu bytes, more than the limit of %llu "
                                      "(sparse files?)",
                                      (unsigned long long)(tree->stream_len - tree->manifest_len),
                                      (unsigned long long)p->max_bytes);
        return 0;
}

/* Seal into a temporary file beside out_name, then rename it into place without
 * replacing anything; on failure the temporary file is removed. */
static int write_output(struct enc *e, const struct aidp_seal_params *p,
                        const struct aidp_keys *keys, int out_dirfd, const char *out_name,
                        struct aidp_sealed_header *h, aidp_error *err)
{
        _cleanup_free_ char *tmp_name = NULL;
        if (asprintf(&tmp_name, ".%s.%d.tmp", out_name, (int)getpid()) < 0) {
                tmp_name = NULL;
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        _cleanup_close_ int out_fd = openat(
                out_dirfd, tmp_name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (out_fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "creating %s", tmp_name);
        int r = seal_into(e, p, keys, out_fd, h, err);
        if (r == 0 && p->chown && fchown(out_fd, p->uid, p->gid) < 0)
                r = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "giving %s to uid %u",
                                     out_name, (unsigned)p->uid);
        if (r == 0 && renameat2(out_dirfd, tmp_name, out_dirfd, out_name, RENAME_NOREPLACE) < 0)
                r = aidp_error_errno(err, AIDP_EXIT_DATA, errno, "creating %s", out_name);
        if (r < 0)
                unlinkat(out_dirfd, tmp_name, 0);
        return r;
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
        /* The key may protect this dataset (purpose, name limits): checked
         * before any work, and again by the wrap itself. */
        if (r >= 0)
                r = aidp_keys_check_kek(keys, params.meta.key_id, err);
        if (r >= 0)
                r = aidp_keys_check_dataset(keys, params.meta.key_id, params.meta.name, err);
        if (r < 0)
                return r;
        struct aidp_tree tree = {0};
        struct walk w = {.t = &tree, .skip_special = params.skip_special};
        struct enc e = {.src_fd = src_fd, .tree = &tree, .segment_size = params.segment_size};
        _cleanup_free_ uint8_t *manifest = NULL;
        _cleanup_free_ struct aidp_sealed_header *h = calloc(1, sizeof *h);
        if (!h)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if ((r = build_tree(src_fd, src_name, &params, &w, &e, &manifest, err)) < 0)
                goto out;
        e.manifest = manifest;
        e.payload_len = tree.stream_len;
        e.n_segments = aidp_sealed_segment_count(e.payload_len, e.segment_size);
        e.digests = calloc(e.n_segments, sizeof *e.digests);
        if (!e.digests) {
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                goto out;
        }
        if ((r = write_output(&e, &params, keys, out_dirfd, out_name, h, err)) < 0)
                goto out;
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
out:
        free(e.digests);
        aidp_tree_free(&tree);
        return r < 0 ? aidp_error_wrap(err, "sealing %s", src_name) : 0;
}
