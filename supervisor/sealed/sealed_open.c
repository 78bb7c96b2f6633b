/* Opening a sealed dataset: reading and authenticating its header, unwrapping
 * the data key, and decrypting the manifest (file names and sizes) that policy
 * and sizing need before the payload is touched. See sealed.h. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/sealed/codec/sealed_crypto.h"
#include "supervisor/sealed/sealed_internal.h"

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

int aidp_sealed_open(const char *path, const struct aidp_keys *keys, struct aidp_sealed **ret,
                     aidp_error *err)
{
        /* O_NONBLOCK: a FIFO named as a dataset must not hang us. */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno,
                                        "sealed dataset %s: cannot open", path);
        return aidp_sealed_open_fd(fd, path, keys, ret, err);
}

/* Until its tag verifies, a header that does not parse may be a modified
 * one: said so, for a user who would take it for a bug. A file that does not
 * start as a sealed one (no magic) is just not one. */
#define HEADER_UNAUTHENTICATED "header malformed or modified (not authenticated)"

static int header_refused(aidp_error *err, const char *path, bool magic)
{
        if (magic)
                aidp_error_wrap(err, HEADER_UNAUTHENTICATED);
        return aidp_error_wrap(err, "sealed dataset %s", path);
}

int aidp_sealed_open_fd(int fd, const char *path, const struct aidp_keys *keys,
                        struct aidp_sealed **ret, aidp_error *err)
{
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = calloc(1, sizeof *s);
        if (!s) {
                close(fd);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        s->fd = fd;
        s->path = strdup(path);
        if (!s->path)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct stat st;
        if (fstat(s->fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "sealed dataset %s", path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "sealed dataset %s: not a regular file", path);
        /* A regular file reads the same blocking or not; clear it anyway. */
        if (fcntl(s->fd, F_SETFL, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "sealed dataset %s", path);
        uint8_t prefix[AIDP_SEALED_PREFIX_LEN];
        size_t hlen = 0;
        ssize_t got = aidp_pread_all(s->fd, prefix, sizeof prefix, 0);
        if (got < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, (int)-got, "sealed dataset %s: read",
                                        path);
        int r;
        if ((r = aidp_sealed_header_len(prefix, (size_t)got, &hlen, err)) < 0)
                return header_refused(err, path,
                                      (size_t)got >= 8 && !memcmp(prefix, AIDP_SEALED_MAGIC, 8));
        _cleanup_free_ uint8_t *hbuf = malloc(hlen + AIDP_SEALED_TAG_LEN);
        if (!hbuf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        got = aidp_pread_all(s->fd, hbuf, hlen + AIDP_SEALED_TAG_LEN, 0);
        if (got < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, (int)-got, "sealed dataset %s: read",
                                        path);
        if ((size_t)got < hlen + AIDP_SEALED_TAG_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "sealed dataset %s: " HEADER_UNAUTHENTICATED
                                      ": truncated header (%zd of %zu bytes)",
                                      path, got, hlen + AIDP_SEALED_TAG_LEN);
        if ((r = aidp_sealed_header_decode(hbuf, hlen, &s->h, err)) < 0)
                return header_refused(err, path, true);
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
        /* The name is authenticated now: a key limited to other datasets refuses it. */
        r = aidp_keys_check_dataset(keys, s->h.meta.key_id, s->h.meta.name, err);
        if (r < 0)
                return aidp_error_wrap(err, "dataset %s (%s)", s->h.meta.name, path);
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

int aidp_sealed_read_segment(struct aidp_sealed *s, EVP_CIPHER_CTX *ctx, uint64_t i, uint8_t *buf,
                             bool again, size_t *ret_len, aidp_error *err)
{
        const struct aidp_sealed_header *h = &s->h;
        size_t len = aidp_sealed_seg_len(h, i);
        ssize_t got = aidp_pread_all(s->fd, buf, len + AIDP_SEALED_TAG_LEN,
                                     (off_t)aidp_sealed_seg_off(h, i));
        if (got < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, (int)-got, "reading segment %llu",
                                        (unsigned long long)i);
        if ((size_t)got != len + AIDP_SEALED_TAG_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "segment %llu is truncated (the file shrank)",
                                      (unsigned long long)i);
        int r = aidp_sealed_seg_decrypt(ctx, i, i + 1 == h->n_segments, h->header_digest, buf, len,
                                        buf + len);
        if (r < 0) {
                OPENSSL_cleanse(buf, len);
                if (again)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                              "segment %llu failed authentication on its second "
                                              "read (the sealed file changed during the injection)",
                                              (unsigned long long)i);
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "segment %llu of %llu failed authentication (modified, "
                                      "reordered, truncated or from another dataset)",
                                      (unsigned long long)i, (unsigned long long)h->n_segments);
        }
        *ret_len = len;
        return 0;
}

/* Decrypt the segments covering the manifest (sequentially: it is small) and
 * parse it. */
int aidp_sealed_read_manifest(struct aidp_sealed *s, struct aidp_tree *ret, aidp_error *err)
{
        const struct aidp_sealed_header *h = &s->h;
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
        int r = aidp_sealed_seg_ctx(s->dk.p, false, &ctx, err);
        if (r < 0)
                return r;
        struct aidp_sealed_buf b = {0};
        if ((r = aidp_sealed_buf_alloc(&b, (size_t)h->segment_size + AIDP_SEALED_TAG_LEN)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "allocating segment buffer");
        uint8_t *man = NULL;
        uint32_t mlen = 0;
        size_t have = 0;
        for (uint64_t i = 0; i < h->n_segments; i++) {
                size_t len = 0;
                if ((r = aidp_sealed_read_segment(s, ctx, i, b.p, false, &len, err)) < 0)
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
        aidp_sealed_buf_free(&b);
        /* The plaintext's file names and sizes: wiped, as the segment's
         * buffer is, before the heap takes them back. */
        if (man)
                explicit_bzero(man, mlen);
        free(man);
        return r;
}

int aidp_sealed_required_bytes(struct aidp_sealed *s, uint64_t *ret, aidp_error *err)
{
        struct aidp_tree t = {0};
        int r = aidp_sealed_read_manifest(s, &t, err);
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
