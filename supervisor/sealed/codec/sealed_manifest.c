/* Sealed dataset format v1: the tree manifest codec, the first bytes of the
 * plaintext stream (entry paths, types, modes, sizes). Pure: no syscalls; a
 * hostile manifest can only produce an error naming the entry or offset. */
#include "supervisor/sealed/codec/sealed_manifest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "supervisor/sealed/codec/sealed_be.h"

bool aidp_tree_valid_path(const char *p, size_t len)
{
        if (len == 0 || len > AIDP_TREE_PATH_MAX || memchr(p, '\0', len))
                return false;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && p[i] != '/')
                        continue;
                size_t clen = i - start;
                if (clen == 0 || clen > 255)
                        return false;
                if ((clen == 1 && p[start] == '.') ||
                    (clen == 2 && p[start] == '.' && p[start + 1] == '.'))
                        return false;
                start = i + 1;
        }
        return true;
}

static int cmp_entry(const void *a, const void *b)
{
        return strcmp(((const struct aidp_tree_entry *)a)->path,
                      ((const struct aidp_tree_entry *)b)->path);
}

/* Validate a sorted entry list and compute offsets; the manifest length is
 * passed in (decode) or computed (finish). */
static int tree_check(struct aidp_tree *t, aidp_error *err)
{
        if ((unsigned)t->root != AIDP_ROOT_FILE && (unsigned)t->root != AIDP_ROOT_DIR)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: unknown root kind %d",
                                      (int)t->root);
        if (t->root_mode & ~AIDP_TREE_MODE_MASK)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: invalid root mode %o",
                                      t->root_mode);
        if (t->n > AIDP_TREE_MAX_ENTRIES)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: too many entries");
        if (t->root == AIDP_ROOT_FILE && (t->n != 1 || t->entries[0].type != AIDP_ENTRY_FILE ||
                                          strchr(t->entries[0].path, '/') || t->root_mode != 0))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: a single-file dataset must hold exactly one file "
                                      "at the top level");
        uint64_t len = AIDP_TREE_PREFIX_LEN;
        for (size_t i = 0; i < t->n; i++) {
                struct aidp_tree_entry *e = &t->entries[i];
                len += AIDP_TREE_ENTRY_FIXED + strlen(e->path);
        }
        if (len > AIDP_TREE_MAX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest too large");
        uint64_t off = len;
        for (size_t i = 0; i < t->n; i++) {
                struct aidp_tree_entry *e = &t->entries[i];
                size_t plen = strlen(e->path);
                if (!aidp_tree_valid_path(e->path, plen))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu: invalid path", i);
                if ((unsigned)e->type != AIDP_ENTRY_FILE && (unsigned)e->type != AIDP_ENTRY_DIR)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): unknown type %d", i,
                                              e->path, (int)e->type);
                if (e->mode & ~AIDP_TREE_MODE_MASK)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): invalid mode %o", i,
                                              e->path, e->mode);
                if (e->type == AIDP_ENTRY_DIR && e->size != 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): directory with a size", i,
                                              e->path);
                if (i > 0 && strcmp(t->entries[i - 1].path, e->path) >= 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): paths not sorted and "
                                              "unique",
                                              i, e->path);
                const char *slash = strrchr(e->path, '/');
                if (slash) {
                        /* The parent sorts before the child (it is a prefix), so it
                         * is one of the entries already checked. */
                        size_t pl = (size_t)(slash - e->path);
                        size_t lo = 0, hi = i;
                        bool found = false;
                        while (lo < hi) {
                                size_t mid = lo + (hi - lo) / 2;
                                const char *mp = t->entries[mid].path;
                                int c = strncmp(mp, e->path, pl);
                                if (c == 0)
                                        c = mp[pl] == '\0' ? 0 : 1;
                                if (c == 0) {
                                        found = t->entries[mid].type == AIDP_ENTRY_DIR;
                                        break;
                                }
                                if (c < 0)
                                        lo = mid + 1;
                                else
                                        hi = mid;
                        }
                        if (!found)
                                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                                      "manifest entry %zu (%s): parent directory "
                                                      "not listed before it",
                                                      i, e->path);
                }
                if (e->size > (UINT64_C(1) << 56) - off)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG,
                                              "manifest entry %zu (%s): size too large", i,
                                              e->path);
                e->offset = off;
                off += e->size;
        }
        t->manifest_len = (uint32_t)len;
        t->stream_len = off;
        return 0;
}

int aidp_tree_finish(struct aidp_tree *t, aidp_error *err)
{
        if (t->n > 1)
                qsort(t->entries, t->n, sizeof t->entries[0], cmp_entry);
        return tree_check(t, err);
}

int aidp_tree_encode(const struct aidp_tree *t, uint8_t **ret, aidp_error *err)
{
        uint8_t *buf = malloc(t->manifest_len);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        memcpy(buf, AIDP_TREE_MAGIC, 8);
        put32(buf + 8, t->manifest_len);
        buf[12] = (uint8_t)t->root;
        buf[13] = 0;
        put16(buf + 14, t->root_mode);
        put32(buf + 16, (uint32_t)t->n);
        size_t off = AIDP_TREE_PREFIX_LEN;
        for (size_t i = 0; i < t->n; i++) {
                const struct aidp_tree_entry *e = &t->entries[i];
                size_t plen = strlen(e->path);
                buf[off] = (uint8_t)e->type;
                buf[off + 1] = 0;
                put16(buf + off + 2, e->mode);
                put64(buf + off + 4, e->size);
                put16(buf + off + 12, (uint16_t)plen);
                memcpy(buf + off + AIDP_TREE_ENTRY_FIXED, e->path, plen);
                off += AIDP_TREE_ENTRY_FIXED + plen;
        }
        if (off != t->manifest_len) {
                free(buf);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "manifest length mismatch");
        }
        *ret = buf;
        return 0;
}

int aidp_tree_manifest_len(const uint8_t *buf, size_t len, uint32_t *ret, aidp_error *err)
{
        if (len < AIDP_TREE_PREFIX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: truncated prefix");
        if (memcmp(buf, AIDP_TREE_MAGIC, 8))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: bad magic");
        uint32_t ml = get32(buf + 8);
        if (ml < AIDP_TREE_PREFIX_LEN || ml > AIDP_TREE_MAX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: length %u out of range", ml);
        *ret = ml;
        return 0;
}

void aidp_tree_free(struct aidp_tree *t)
{
        if (!t)
                return;
        /* What the plaintext's tree says (names, sizes) is wiped before the
         * heap takes it back. */
        for (size_t i = 0; i < t->n; i++) {
                if (t->entries[i].path)
                        explicit_bzero(t->entries[i].path, strlen(t->entries[i].path));
                free(t->entries[i].path);
        }
        if (t->entries)
                explicit_bzero(t->entries, t->n * sizeof *t->entries);
        free(t->entries);
        t->entries = NULL;
        t->n = 0;
}

int aidp_tree_decode(const uint8_t *buf, size_t len, struct aidp_tree *ret, aidp_error *err)
{
        uint32_t ml = 0;
        int r = aidp_tree_manifest_len(buf, len, &ml, err);
        if (r < 0)
                return r;
        if (ml != len)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: length field %u does not match %zu bytes", ml,
                                      len);
        if (buf[13] != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: reserved byte not zero");
        uint32_t n = get32(buf + 16);
        /* Each entry takes at least AIDP_TREE_ENTRY_FIXED + 1 bytes, which
         * bounds n by the buffer before anything is allocated. */
        if (n > AIDP_TREE_MAX_ENTRIES ||
            n > (len - AIDP_TREE_PREFIX_LEN) / (AIDP_TREE_ENTRY_FIXED + 1))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: entry count %u does not fit in %zu bytes", n, len);
        struct aidp_tree t = {.root = (enum aidp_tree_root)buf[12], .root_mode = get16(buf + 14)};
        t.entries = calloc(n ? n : 1, sizeof *t.entries);
        if (!t.entries)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t off = AIDP_TREE_PREFIX_LEN;
        for (uint32_t i = 0; i < n; i++) {
                if (len - off < AIDP_TREE_ENTRY_FIXED) {
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                           "manifest offset %zu: truncated entry %u", off, i);
                        goto fail;
                }
                const uint8_t *p = buf + off;
                uint16_t plen = get16(p + 12);
                if (p[1] != 0 || plen > len - off - AIDP_TREE_ENTRY_FIXED) {
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                           "manifest offset %zu: entry %u malformed", off, i);
                        goto fail;
                }
                if (!aidp_tree_valid_path((const char *)p + AIDP_TREE_ENTRY_FIXED, plen)) {
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                           "manifest offset %zu: entry %u has an invalid path", off,
                                           i);
                        goto fail;
                }
                struct aidp_tree_entry *e = &t.entries[i];
                e->type = (enum aidp_tree_type)p[0];
                e->mode = get16(p + 2);
                e->size = get64(p + 4);
                e->path = strndup((const char *)p + AIDP_TREE_ENTRY_FIXED, plen);
                t.n = i + 1;
                if (!e->path) {
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                        goto fail;
                }
                off += AIDP_TREE_ENTRY_FIXED + plen;
        }
        if (off != len) {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                   "manifest: %zu trailing bytes after the entries", len - off);
                goto fail;
        }
        r = tree_check(&t, err);
        if (r < 0)
                goto fail;
        *ret = t;
        return 0;
fail:
        aidp_tree_free(&t);
        return r;
}

size_t aidp_tree_find(const struct aidp_tree *t, uint64_t off)
{
        /* Entries are laid out in order (directories with size 0), so
         * offset + size is non-decreasing and the first entry ending after off
         * is a non-empty file. */
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct aidp_tree_entry *e = &t->entries[mid];
                if (e->offset + e->size <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}
