/* Policy files from disk into the pure models of residency/. */
#include "supervisor/run/policy_load.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/sealed.h"

static int check_owner(const char *what, const struct stat *st, aidp_error *err)
{
        if (st->st_uid != 0 || (st->st_mode & (S_IWGRP | S_IWOTH)))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "%s must be owned by root and not writable by group or "
                                      "others (uid %u, mode %04o)",
                                      what, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
        return 0;
}

int aidp_policy_read_file(const char *path, bool require_root_owned, char **ret_buf,
                          size_t *ret_len, aidp_error *err)
{
        /* O_NONBLOCK: a FIFO planted under the name must not hang the run. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;
        if (fd < 0 && errno == ENOENT && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOENT,
                                      "%s: a symbolic link to a missing file (a policy file "
                                      "that is there but cannot be read is an error, never "
                                      "\"no policy\")",
                                      path);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "%s", path);
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "%s", path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "%s: not a regular file",
                                      path);
        if (st.st_size > (off_t)AIDP_RESIDENCY_INPUT_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "%s: larger than %u bytes",
                                      path, AIDP_RESIDENCY_INPUT_MAX);
        if (require_root_owned) {
                int r = check_owner(path, &st, err);
                if (r < 0)
                        return r;
                /* The directory too: otherwise the file could be swapped. */
                _cleanup_free_ char *copy = strdup(path);
                struct stat dst;
                if (!copy)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                const char *dir = dirname(copy);
                if (stat(dir, &dst) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "%s", dir);
                if ((r = check_owner(dir, &dst, err)) < 0)
                        return r;
        }
        size_t cap = (size_t)st.st_size + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (;;) {
                if (len == cap) {
                        /* Grew since fstat: stay bounded. */
                        if (cap > AIDP_RESIDENCY_INPUT_MAX)
                                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG,
                                                      "%s: larger than %u bytes", path,
                                                      AIDP_RESIDENCY_INPUT_MAX);
                        char *nb = realloc(buf, cap * 2);
                        if (!nb)
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                      "out of memory");
                        buf = nb;
                        cap *= 2;
                }
                ssize_t k = read(fd, buf + len, cap - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "reading %s", path);
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        *ret_buf = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int load_doc(const char *path, bool require_root_owned, struct aidp_residency_doc *doc,
                    aidp_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = aidp_policy_read_file(path, require_root_owned, &buf, &len, err);
        if (r < 0)
                return r;
        return aidp_residency_parse(buf, len, path, doc, err);
}

/* Move a parsed document into its slot of the set; a second one of a kind is
 * an error, since silently preferring either would hide a mistake. */
#define PLACE(slot, member)                                                                        \
        do {                                                                                       \
                if (slot) {                                                                        \
                        r = aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,                          \
                                           "%s: a second %s (the first is %s)", path,              \
                                           aidp_residency_kind_name(doc->kind), (slot)->source);   \
                        break;                                                                     \
                }                                                                                  \
                if (!((slot) = malloc(sizeof *(slot)))) {                                          \
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");      \
                        break;                                                                     \
                }                                                                                  \
                *(slot) = doc->member;                                                             \
                return 0;                                                                          \
        } while (0)

static int place(struct aidp_policy_set *s, struct aidp_residency_doc *doc, const char *path,
                 aidp_error *err)
{
        int r = 0;
        switch (doc->kind) {
        case AIDP_RESIDENCY_KIND_HOST: PLACE(s->host, host); break;
        case AIDP_RESIDENCY_KIND_RESIDENCY: PLACE(s->residency, residency); break;
        case AIDP_RESIDENCY_KIND_ACCESS: PLACE(s->access, access); break;
        case AIDP_RESIDENCY_KIND_DATASET:
        case AIDP_RESIDENCY_KIND_MAX:
                r = aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                   "%s: a %s is not a policy (pass it with --data)", path,
                                   aidp_residency_kind_name(doc->kind));
                break;
        }
        aidp_residency_doc_free(doc);
        return r;
}

static bool have_kind(const struct aidp_policy_set *s, enum aidp_residency_kind k)
{
        return (k == AIDP_RESIDENCY_KIND_HOST && s->host) ||
               (k == AIDP_RESIDENCY_KIND_RESIDENCY && s->residency) ||
               (k == AIDP_RESIDENCY_KIND_ACCESS && s->access);
}

int aidp_policy_set_load(const struct aidp_policy_sources *src, struct aidp_policy_set *ret,
                         aidp_error *err)
{
        struct aidp_policy_set s = {0};
        struct aidp_residency_doc doc;
        int r = 0;

        const char *dir = src->dir;
        if (!dir && src->trust_env)
                dir = getenv(AIDP_POLICY_DIR_ENV);
        if (!dir || !*dir)
                dir = AIDP_POLICY_DIR_DEFAULT;

        if (src->host) {
                if ((r = load_doc(src->host, src->require_root_owned, &doc, err)) < 0)
                        goto fail;
                if (doc.kind != AIDP_RESIDENCY_KIND_HOST) {
                        r = aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                           "%s: kind is %s, expected HostIdentity", src->host,
                                           aidp_residency_kind_name(doc.kind));
                        aidp_residency_doc_free(&doc);
                        goto fail;
                }
                if ((r = place(&s, &doc, src->host, err)) < 0)
                        goto fail;
        }
        for (size_t i = 0; i < src->n_files; i++) {
                if ((r = load_doc(src->files[i], src->require_root_owned, &doc, err)) < 0)
                        goto fail;
                if ((r = place(&s, &doc, src->files[i], err)) < 0)
                        goto fail;
        }
        static const struct {
                const char *name;
                enum aidp_residency_kind kind;
        } defaults[] = {
                {"host.yaml", AIDP_RESIDENCY_KIND_HOST},
                {"residency.yaml", AIDP_RESIDENCY_KIND_RESIDENCY},
                {"access.yaml", AIDP_RESIDENCY_KIND_ACCESS},
        };
        for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
                if (have_kind(&s, defaults[i].kind))
                        continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", dir, defaults[i].name);
                /* Only a name that does not exist at all is "not installed": a
                 * dangling symlink or an unreadable file fails the load (fail
                 * closed; docs/policy.md). */
                struct stat lst;
                if (lstat(path, &lst) < 0) {
                        if (errno == ENOENT)
                                continue;
                        r = aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "%s", path);
                        goto fail;
                }
                if ((r = load_doc(path, src->require_root_owned || src->require_root_owned_defaults,
                                  &doc, err)) < 0)
                        goto fail;
                if (doc.kind != defaults[i].kind) {
                        r = aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                           "%s: kind is %s, expected %s", path,
                                           aidp_residency_kind_name(doc.kind),
                                           aidp_residency_kind_name(defaults[i].kind));
                        aidp_residency_doc_free(&doc);
                        goto fail;
                }
                if ((r = place(&s, &doc, path, err)) < 0)
                        goto fail;
        }
        *ret = s;
        return 0;
fail:
        aidp_policy_set_free(&s);
        return r;
}

void aidp_policy_set_free(struct aidp_policy_set *s)
{
        if (!s)
                return;
        if (s->host) {
                aidp_residency_host_free(s->host);
                free(s->host);
        }
        if (s->residency) {
                aidp_residency_policy_free(s->residency);
                free(s->residency);
        }
        if (s->access) {
                aidp_residency_access_free(s->access);
                free(s->access);
        }
        memset(s, 0, sizeof *s);
}

int aidp_policy_facts_from_header(const struct aidp_sealed_header *h,
                                  struct aidp_dataset_facts *ret, aidp_error *err)
{
        const struct aidp_sealed_meta *m = &h->meta;
        struct aidp_dataset_facts f = {0};
        bool oom = !(f.name = strdup(m->name));
        if (!oom && m->version[0])
                oom = !(f.version = strdup(m->version));
        if (!oom && m->key_id[0])
                oom = !(f.key_id = strdup(m->key_id));
        f.tags.classification = m->classification;
        for (unsigned i = 0; !oom && i < m->n_residency; i++)
                oom = aidp_strv_push(&f.tags.residency, &f.tags.n_residency, m->residency[i]) < 0;
        for (unsigned i = 0; !oom && i < m->n_regulation; i++)
                oom = aidp_strv_push(&f.tags.regulations, &f.tags.n_regulations, m->regulation[i]) <
                      0;
        /* Sorted and unique like every struct aidp_data_tags (headers already are). */
        struct aidp_data_tags sorted;
        if (!oom && aidp_residency_tags_inherit(&f.tags, 1, &sorted) < 0)
                oom = true;
        if (oom) {
                aidp_residency_facts_free(&f);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        aidp_residency_tags_free(&f.tags);
        f.tags = sorted;
        *ret = f;
        return 0;
}

static bool is_sealed_file(const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char magic[8];
        return fd >= 0 && read(fd, magic, sizeof magic) == (ssize_t)sizeof magic &&
               !memcmp(magic, AIDP_SEALED_MAGIC, sizeof magic);
}

int aidp_policy_dataset_facts_load(const char *path, const char *keys_config, const char *key_dir,
                                   struct aidp_dataset_facts *ret, bool *sealed,
                                   struct aidp_schema *schema, aidp_error *err)
{
        if (sealed)
                *sealed = false;
        if (schema)
                memset(schema, 0, sizeof *schema);
        if (is_sealed_file(path)) {
                struct aidp_keys keys;
                _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = NULL;
                aidp_keys_init(&keys);
                int r = aidp_keys_setup(keys_config, key_dir, &keys, err);
                if (r >= 0)
                        r = aidp_sealed_open(path, &keys, &s, err);
                aidp_keys_free(&keys);
                if (r < 0)
                        return r;
                const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
                /* the schema is part of the authenticated header (format 3) */
                if (schema && (r = aidp_sealed_header_schema(h, schema, err)) < 0)
                        return r;
                if ((r = aidp_policy_facts_from_header(h, ret, err)) < 0) {
                        if (schema)
                                aidp_schema_free(schema);
                        return r;
                }
                if (sealed)
                        *sealed = true;
                return 0;
        }
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = aidp_policy_read_file(path, false, &buf, &len, err);
        if (r < 0)
                return r;
        return aidp_residency_parse_dataset(buf, len, path, ret, err);
}
