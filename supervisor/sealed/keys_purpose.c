/* Key purposes and dataset limits (keys.yaml `keys:`): one key, one purpose,
 * so the lineage key never wraps data keys and a KEK never signs the lineage
 * log; a KEK may be limited to dataset-name patterns. See keys.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sealed/keys_internal.h"

static const char *const purpose_names[AIDP_KEY_PURPOSE_MAX] = {
        [AIDP_KEY_PURPOSE_KEK] = "kek",
        [AIDP_KEY_PURPOSE_LINEAGE] = "lineage",
        [AIDP_KEY_PURPOSE_TOKENIZE] = "tokenize",
        [AIDP_KEY_PURPOSE_QUARANTINE] = "quarantine",
};

const char *aidp_key_purpose_name(enum aidp_key_purpose p)
{
        return (unsigned)p < AIDP_KEY_PURPOSE_MAX && purpose_names[p] ? purpose_names[p] : "none";
}

const struct aidp_key_decl *aidp_keys_find(const struct aidp_keys *k, const char *key_id)
{
        for (size_t i = 0; i < k->n_decls; i++)
                if (!strcmp(k->decls[i].id, key_id))
                        return &k->decls[i];
        return NULL;
}

const char *aidp_keys_quarantine_key(const struct aidp_keys *k)
{
        for (size_t i = 0; i < k->n_decls; i++)
                if (k->decls[i].purpose == AIDP_KEY_PURPOSE_QUARANTINE)
                        return k->decls[i].id;
        return NULL;
}

bool aidp_keys_is_quarantine(const struct aidp_keys *k, const char *key_id)
{
        const struct aidp_key_decl *d = aidp_keys_find(k, key_id);
        return d && d->purpose == AIDP_KEY_PURPOSE_QUARANTINE;
}

void aidp_keys_decls_free(struct aidp_keys *k)
{
        for (size_t i = 0; i < k->n_decls; i++) {
                for (size_t j = 0; j < k->decls[i].n_datasets; j++)
                        free(k->decls[i].datasets[j]);
                free(k->decls[i].datasets);
        }
        free(k->decls);
        k->decls = NULL;
        k->n_decls = 0;
        k->declared = false;
}

/* ---- keys.yaml ---- */

static int parse_purpose(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_key_decl *d = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        for (unsigned p = 1; p < AIDP_KEY_PURPOSE_MAX; p++)
                if (!strcmp(s, purpose_names[p])) {
                        d->purpose = (enum aidp_key_purpose)p;
                        return 0;
                }
        return aidp_yaml_fail(y, v, path,
                              "found '%s', expected kek, lineage, tokenize or quarantine", s);
}

static bool valid_pattern(const char *s)
{
        return s[0] && strlen(s) <= AIDP_SEALED_NAME_MAX;
}

static int parse_datasets(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_key_decl *d = ctx;
        if (d->purpose != AIDP_KEY_PURPOSE_KEK)
                return aidp_yaml_fail(y, v, path,
                                      "only a kek can be limited to datasets (this key's purpose "
                                      "is %s)",
                                      aidp_key_purpose_name(d->purpose));
        return aidp_yaml_strlist(y, v, path, valid_pattern, "a dataset name pattern", &d->datasets,
                                 &d->n_datasets);
}

static int parse_decl(struct aidp_yaml *y, const char *key, yaml_node_t *keynode,
                      yaml_node_t *value, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"purpose", parse_purpose, true},
                {"datasets", parse_datasets, false},
        };
        struct aidp_keys *k = ctx;
        char parent[AIDP_YAML_PATH_MAX];
        snprintf(parent, sizeof parent, "%.*s", (int)(strrchr(path, '.') - path), path);
        if (!aidp_sealed_valid_key_id(key))
                return aidp_yaml_fail(y, keynode, parent,
                                      "found '%s', expected a key id ([A-Za-z0-9][A-Za-z0-9._-]*, "
                                      "at most %d bytes)",
                                      key, AIDP_SEALED_KEY_ID_MAX);
        if (k->n_decls >= AIDP_KEYS_MAX_DECLS)
                return aidp_yaml_fail(y, keynode, parent, "more than %d keys", AIDP_KEYS_MAX_DECLS);
        struct aidp_key_decl *n = realloc(k->decls, (k->n_decls + 1) * sizeof *n);
        if (!n)
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        k->decls = n;
        struct aidp_key_decl *d = &k->decls[k->n_decls++];
        memset(d, 0, sizeof *d);
        snprintf(d->id, sizeof d->id, "%s", key);
        return aidp_yaml_fields(y, value, path, fields, sizeof fields / sizeof *fields, d);
}

int aidp_keys_parse_decls(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        aidp_keys_decls_free(k);
        k->declared = true;
        return aidp_yaml_map(y, v, path, parse_decl, k);
}

/* ---- checks ---- */

static const char *cfg_name(const struct aidp_keys *k)
{
        return k->config[0] ? k->config : AIDP_KEYS_DEFAULT_CONFIG;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int aidp_keys_check_kek(const struct aidp_keys *k, const char *key_id, aidp_error *err)
{
        const struct aidp_key_decl *d = aidp_keys_find(k, key_id);
        /* A quarantine key is a kek too: who may use it is checked where a
         * user asks (tool_access.c), not here. */
        if (d && d->purpose != AIDP_KEY_PURPOSE_KEK && d->purpose != AIDP_KEY_PURPOSE_QUARANTINE)
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key '%s' has purpose %s in %s: it cannot be a "
                                      "key-encryption key",
                                      key_id, aidp_key_purpose_name(d->purpose), cfg_name(k));
        /* Whatever the declarations say, the host's lineage key file is never a
         * KEK (a key_dir pointing at its directory would make it one). */
        struct stat ks, ls;
        char path[PATH_MAX + AIDP_SEALED_KEY_ID_MAX + 2];
        snprintf(path, sizeof path, "%s/%s", k->dir, key_id);
        if (k->kind == AIDP_KEYS_FILE && k->lineage_key[0] && stat(k->lineage_key, &ls) == 0 &&
            stat(path, &ks) == 0 && same_file(&ks, &ls))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key '%s' (%s) is the host's lineage key %s: it cannot be a "
                                      "key-encryption key",
                                      key_id, path, k->lineage_key);
        return 0;
}

int aidp_keys_check_dataset(const struct aidp_keys *k, const char *key_id, const char *name,
                            aidp_error *err)
{
        const struct aidp_key_decl *d = aidp_keys_find(k, key_id);
        if (!d || d->n_datasets == 0)
                return 0;
        char list[512] = "";
        size_t off = 0;
        for (size_t i = 0; i < d->n_datasets; i++) {
                if (fnmatch(d->datasets[i], name, 0) == 0)
                        return 0;
                if (off < sizeof list)
                        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s",
                                                i ? ", " : "", d->datasets[i]);
        }
        return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                              "key '%s' is limited to datasets [%s] in %s; dataset '%s' is not "
                              "one of them",
                              key_id, list, cfg_name(k), name);
}

int aidp_keys_check_lineage_key(const struct aidp_keys *k, const char *path, aidp_error *err)
{
        struct stat ls;
        if (k->kind != AIDP_KEYS_FILE || stat(path, &ls) < 0)
                return 0; /* not there yet (created on first use): nothing to compare */
        _cleanup_close_ int dfd = open(k->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return 0;
        DIR *dir = fdopendir(dfd);
        if (!dir)
                return 0;
        TAKE_FD(dfd);
        int r = 0;
        for (struct dirent *e; r == 0 && (e = readdir(dir));) {
                struct stat st;
                if (!aidp_sealed_valid_key_id(e->d_name) ||
                    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !same_file(&st, &ls))
                        continue;
                const struct aidp_key_decl *d = aidp_keys_find(k, e->d_name);
                if (d && d->purpose == AIDP_KEY_PURPOSE_LINEAGE)
                        continue;
                r = aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                   "lineage key %s is key '%s' of %s, with purpose %s in %s: a "
                                   "key-encryption key cannot be the lineage key",
                                   path, e->d_name, k->dir,
                                   d ? aidp_key_purpose_name(d->purpose) : "kek (undeclared)",
                                   cfg_name(k));
        }
        closedir(dir);
        return r;
}
