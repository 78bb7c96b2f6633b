/* `aidp keygen` records a new key's purpose in keys.yaml: one entry appended
 * under `keys:`, the rest of the file (comments included) kept byte for byte,
 * the result re-parsed before it replaces the file (write, fsync, rename). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/sealed/keys_internal.h"

static bool same_decl(const struct aidp_key_decl *a, const struct aidp_key_decl *b)
{
        if (a->purpose != b->purpose || a->n_datasets != b->n_datasets)
                return false;
        for (size_t i = 0; i < a->n_datasets; i++)
                if (strcmp(a->datasets[i], b->datasets[i]))
                        return false;
        return true;
}

/* "ID: {purpose: P, datasets: ['a', 'b']}" at indent, newline-terminated. */
static int entry_text(const struct aidp_key_decl *d, unsigned indent, char *out, size_t cap)
{
        size_t off = (size_t)snprintf(out, cap, "%*s%s: {purpose: %s", (int)indent, "", d->id,
                                      aidp_key_purpose_name(d->purpose));
        for (size_t i = 0; i < d->n_datasets && off < cap; i++) {
                off += (size_t)snprintf(out + off, cap - off, "%s'", i ? ", " : ", datasets: [");
                for (const char *p = d->datasets[i]; *p && off + 2 < cap; p++) {
                        if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                return -EINVAL;
                        if (*p == '\'')
                                out[off++] = '\'';
                        out[off++] = *p;
                }
                if (off < cap)
                        off += (size_t)snprintf(out + off, cap - off, "'");
        }
        if (off < cap)
                off += (size_t)snprintf(out + off, cap - off, "%s}\n", d->n_datasets ? "]" : "");
        return off < cap ? 0 : -ENAMETOOLONG;
}

/* Where the new entry goes: appended at the end, either under the file's own
 * `keys:` (a block mapping, or empty, and the last top-level key) or under a
 * new `keys:`. Returns the indent, or < 0 when it cannot be done safely. */
static int insertion(const char *buf, size_t len, const char *fname, bool *add_header,
                     aidp_error *err)
{
        struct aidp_yaml y;
        int r = aidp_yaml_load(&y, fname, "key provider config", buf, len, AIDP_YAML_EMPTY_OK, err);
        yaml_node_t *root = r < 0 ? NULL : aidp_yaml_root(&y);
        int indent = 2;
        *add_header = true;
        if (r >= 0 && root && root->type == YAML_MAPPING_NODE) {
                yaml_node_pair_t *last = root->data.mapping.pairs.top - 1;
                yaml_node_t *v = aidp_yaml_get(&y, root, "keys", NULL);
                if (v) {
                        *add_header = false;
                        bool is_last =
                                root->data.mapping.pairs.top > root->data.mapping.pairs.start &&
                                aidp_yaml_node(&y, last->value) == v;
                        bool block = v->type == YAML_MAPPING_NODE &&
                                     v->data.mapping.style == YAML_BLOCK_MAPPING_STYLE;
                        if (!is_last || (!block && !aidp_yaml_is_null(v)))
                                r = aidp_error_set(err, AIDP_EXIT_CONFIG, ENOTSUP,
                                                   "%s: its keys: is not a block mapping at the "
                                                   "end of the file; add the key there by hand",
                                                   fname);
                        else if (block && v->data.mapping.pairs.top > v->data.mapping.pairs.start)
                                indent = (int)aidp_yaml_node(&y, v->data.mapping.pairs.start->key)
                                                 ->start_mark.column;
                }
        }
        aidp_yaml_free(&y);
        return r < 0 ? r : indent;
}

/* The new text of keys.yaml with d declared (*ret NULL: already declared so). */
static int declare_text(const char *buf, size_t len, const char *fname,
                        const struct aidp_key_decl *d, char **ret, aidp_error *err)
{
        *ret = NULL;
        struct aidp_keys old;
        aidp_keys_init(&old);
        int r = aidp_keys_parse(buf, len, fname, &old, err);
        const struct aidp_key_decl *o = r < 0 ? NULL : aidp_keys_find(&old, d->id);
        if (o && !same_decl(o, d))
                r = aidp_error_set(err, AIDP_EXIT_CONFIG, EEXIST,
                                   "key '%s' is already declared in %s with purpose %s", d->id,
                                   fname, aidp_key_purpose_name(o->purpose));
        bool done = o != NULL;
        aidp_keys_free(&old);
        if (r < 0 || done)
                return r;
        bool header = false;
        int indent = insertion(buf, len, fname, &header, err);
        if (indent < 0)
                return indent;
        char entry[4096];
        if (entry_text(d, (unsigned)indent, entry, sizeof entry) < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "dataset patterns of key '%s' are too long or hold control "
                                      "characters",
                                      d->id);
        bool nl = len > 0 && buf[len - 1] != '\n';
        char *text = NULL;
        if (asprintf(&text, "%.*s%s%s%s", (int)len, buf, nl ? "\n" : "", header ? "keys:\n" : "",
                     entry) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        /* The result must read back with exactly this declaration. */
        struct aidp_keys check;
        aidp_keys_init(&check);
        r = aidp_keys_parse(text, strlen(text), fname, &check, err);
        const struct aidp_key_decl *c = r < 0 ? NULL : aidp_keys_find(&check, d->id);
        if (r >= 0 && (!c || !same_decl(c, d)))
                r = aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                   "%s: could not add key '%s' automatically; add it under keys: "
                                   "by hand",
                                   fname, d->id);
        aidp_keys_free(&check);
        if (r < 0) {
                free(text);
                return r;
        }
        *ret = text;
        return 0;
}

static int read_config(const char *path, char **ret, size_t *ret_len, mode_t *mode, aidp_error *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno != ENOENT)
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key config %s",
                                                path);
                *ret = strdup("");
                *ret_len = 0;
                *mode = 0644;
                return *ret ? 0 : aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 65536)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "key config %s is not a regular file of at most 64 KiB",
                                      path);
        int r = aidp_keys_check_trusted(&st, path, "key config", err);
        if (r < 0)
                return r;
        char *buf = calloc(1, (size_t)st.st_size + 1);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        ssize_t n = aidp_read_all(fd, buf, (size_t)st.st_size);
        if (n < 0) {
                free(buf);
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, (int)-n, "reading key config %s",
                                        path);
        }
        *ret = buf;
        *ret_len = (size_t)n;
        *mode = st.st_mode & 0644;
        return 0;
}

/* Replace path with text: a temporary file beside it, fsync, rename. */
static int replace_config(const char *path, const char *text, mode_t mode, aidp_error *err)
{
        char tmp[PATH_MAX];
        if (snprintf(tmp, sizeof tmp, "%s.aidp-keygen.%d", path, (int)getpid()) >= (int)sizeof tmp)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "path too long");
        _cleanup_close_ int fd =
                open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "creating %s", tmp);
        int r = aidp_write_all(fd, text, strlen(text));
        if (r == 0 && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, -r, "writing key config %s", path);
        }
        return 0;
}

int aidp_keys_declare(const char *config_path, const struct aidp_key_decl *d, bool dry_run,
                      aidp_error *err)
{
        _cleanup_free_ char *buf = NULL, *text = NULL;
        size_t len = 0;
        mode_t mode = 0644;
        int r = read_config(config_path, &buf, &len, &mode, err);
        if (r < 0)
                return r;
        r = declare_text(buf, len, config_path, d, &text, err);
        if (r < 0 || !text || dry_run)
                return r;
        return replace_config(config_path, text, mode, err);
}
