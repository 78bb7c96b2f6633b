/* Key providers (file, exec) and keys.yaml. See keys.h for the contract. */
#define _GNU_SOURCE
#include "supervisor/sealed/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsdir.h"
#include "common/yaml.h"
#include "supervisor/sealed/keys_internal.h"

void aidp_keys_init(struct aidp_keys *k)
{
        memset(k, 0, sizeof *k);
        k->kind = AIDP_KEYS_FILE;
        snprintf(k->dir, sizeof k->dir, "%s", AIDP_KEYS_DEFAULT_DIR);
        k->timeout_ms = AIDP_KEYS_DEFAULT_TIMEOUT_MS;
        snprintf(k->lineage_key, sizeof k->lineage_key, "%s", AIDP_KEYS_LINEAGE_KEY);
}

static void free_argv(struct aidp_keys *k)
{
        for (unsigned i = 0; i < AIDP_KEYS_EXEC_ARGS_MAX + 1; i++) {
                free(k->argv[i]);
                k->argv[i] = NULL;
        }
}

void aidp_keys_free(struct aidp_keys *k)
{
        if (!k)
                return;
        free_argv(k);
        aidp_secret_free(&k->static_kek);
        aidp_keys_decls_free(k);
}

int aidp_keys_set_static(struct aidp_keys *k, const uint8_t kek[AIDP_SEALED_KEY_LEN],
                         aidp_error *err)
{
        aidp_secret_free(&k->static_kek);
        int r = aidp_secret_alloc(&k->static_kek, AIDP_SEALED_KEY_LEN, err);
        if (r < 0)
                return r;
        memcpy(k->static_kek.p, kek, AIDP_SEALED_KEY_LEN);
        k->kind = AIDP_KEYS_STATIC;
        return 0;
}

/* ---- keys.yaml (read with the common YAML walker: one error format) ---- */

static int parse_provider(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "file"))
                k->kind = AIDP_KEYS_FILE;
        else if (!strcmp(s, "exec"))
                k->kind = AIDP_KEYS_EXEC;
        else
                return aidp_yaml_fail(y, v, path, "found '%s', expected file or exec", s);
        return 0;
}

static int parse_key_dir(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (s[0] != '/' || strlen(s) >= sizeof k->dir)
                return aidp_yaml_fail(y, v, path, "found '%s', expected an absolute path", s);
        snprintf(k->dir, sizeof k->dir, "%s", s);
        return 0;
}

static int parse_command_item(struct aidp_yaml *y, yaml_node_t *v, const char *path, size_t i,
                              void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (i >= AIDP_KEYS_EXEC_ARGS_MAX - 2)
                return aidp_yaml_fail(y, v, path, "found more than %d arguments, expected fewer",
                                      AIDP_KEYS_EXEC_ARGS_MAX - 2);
        if (i == 0 && s[0] != '/')
                return aidp_yaml_fail(y, v, path, "found '%s', expected an absolute path", s);
        k->argv[i] = strdup(s);
        if (!k->argv[i])
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

static int parse_command(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        int r = aidp_yaml_expect(y, v, YAML_SEQUENCE_NODE, path, "a list [PROGRAM, ARGS...]",
                                 y->err);
        if (r < 0)
                return r;
        free_argv(k);
        r = aidp_yaml_seq(y, v, path, parse_command_item, k);
        if (r < 0)
                return r;
        if (!k->argv[0])
                return aidp_yaml_fail(y, v, path,
                                      "found an empty list, expected [PROGRAM, ARGS...]");
        return 0;
}

static int parse_timeout(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        char *end = NULL;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end == s || *end || n < 1 || n > 600)
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected a number of seconds in [1, 600]", s);
        k->timeout_ms = (unsigned)n * 1000u;
        return 0;
}

static int parse_exec(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"command", parse_command, false},
                {"timeout", parse_timeout, false},
        };
        return aidp_yaml_fields(y, v, path, fields, sizeof fields / sizeof *fields, ctx);
}

int aidp_keys_parse(const char *buf, size_t len, const char *fname, struct aidp_keys *k,
                    aidp_error *err)
{
        static const struct aidp_yaml_field fields[] = {
                {"provider", parse_provider, false},
                {"key_dir", parse_key_dir, false},
                {"exec", parse_exec, false},
                {"keys", aidp_keys_parse_decls, false},
        };
        struct aidp_yaml y;
        int r = aidp_yaml_load(&y, fname, "key provider config", buf, len, AIDP_YAML_EMPTY_OK, err);
        yaml_node_t *root = r < 0 ? NULL : aidp_yaml_root(&y);
        if (r < 0 || !root) /* an empty file keeps the defaults */
                goto out;
        r = aidp_yaml_expect(&y, root, YAML_MAPPING_NODE, "", "a mapping", err);
        if (r >= 0)
                r = aidp_yaml_fields(&y, root, "", fields, sizeof fields / sizeof *fields, k);
        if (r >= 0 && k->kind == AIDP_KEYS_EXEC && !k->argv[0])
                r = aidp_yaml_fail(&y, root, "provider", "exec needs exec.command");
out:
        aidp_yaml_free(&y);
        return r;
}

/* Owned by root (or by us when not root) and not writable by group/other:
 * otherwise someone else could redirect key operations. */
int aidp_keys_check_trusted(const struct stat *st, const char *path, const char *what,
                            aidp_error *err)
{
        if (st->st_uid != 0 && st->st_uid != geteuid())
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "%s %s is owned by uid %u, not root", what, path,
                                      (unsigned)st->st_uid);
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "%s %s is writable by group or other (mode %04o)", what, path,
                                      (unsigned)(st->st_mode & 07777));
        return 0;
}

static int load_config(const char *path, bool must_exist, struct aidp_keys *k, aidp_error *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key config %s", path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key config %s", path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "key config %s is not a regular file", path);
        int r = aidp_keys_check_trusted(&st, path, "key config", err);
        if (r < 0)
                return r;
        if (st.st_size > 65536)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "key config %s is too large",
                                      path);
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        ssize_t n = read(fd, buf, (size_t)st.st_size);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "reading key config %s",
                                        path);
        r = aidp_keys_parse(buf, (size_t)n, path, k, err);
        if (r < 0)
                return r;
        snprintf(k->config, sizeof k->config, "%s", path);
        return 0;
}

const char *aidp_keys_config_path(const char *explicit_path)
{
        const char *env_cfg = getenv("AIDP_KEYS_CONFIG");
        return explicit_path && *explicit_path ? explicit_path
               : env_cfg && *env_cfg           ? env_cfg
                                               : AIDP_KEYS_DEFAULT_CONFIG;
}

int aidp_keys_setup(const char *config_path, const char *dir_override, struct aidp_keys *k,
                    aidp_error *err)
{
        const char *cfg = aidp_keys_config_path(config_path);
        const char *env_cfg = getenv("AIDP_KEYS_CONFIG");
        bool explicit_cfg = (config_path && *config_path) || (env_cfg && *env_cfg);
        int r = load_config(cfg, explicit_cfg, k, err);
        if (r < 0)
                return r;
        const char *env_dir = getenv("AIDP_KEY_DIR");
        const char *dir = dir_override && *dir_override ? dir_override
                          : env_dir && *env_dir         ? env_dir
                                                        : NULL;
        if (dir) {
                if (strlen(dir) >= sizeof k->dir)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG,
                                              "key directory path too long");
                snprintf(k->dir, sizeof k->dir, "%s", dir);
                /* An explicit key directory means the file provider. */
                k->kind = AIDP_KEYS_FILE;
        }
        return 0;
}

/* ---- file provider ---- */

int aidp_keys_read_file(const char *dir, const char *name, size_t min, size_t max,
                        struct aidp_secret *ret, aidp_error *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key directory %s", dir);
        struct stat st;
        if (fstat(dfd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key directory %s", dir);
        if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key directory %s refused: must be owned by root and not "
                                      "writable by group or other (uid %u, mode %04o)",
                                      dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                              "key '%s' not found in %s", name, dir);
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key file %s/%s", dir, name);
        }
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key file %s/%s", dir, name);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key file %s/%s refused: not a regular file", dir, name);
        if (st.st_uid != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key file %s/%s refused: owned by uid %u, must be owned by "
                                      "root",
                                      dir, name, (unsigned)st.st_uid);
        if (st.st_mode & (S_IRWXG | S_IRWXO))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key file %s/%s refused: mode %04o gives group/other "
                                      "access (want 0400 or 0600)",
                                      dir, name, (unsigned)(st.st_mode & 07777));
        if ((uint64_t)st.st_size < min || (uint64_t)st.st_size > max) {
                if (min == max)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "key file %s/%s refused: %lld bytes, want %zu raw "
                                              "bytes",
                                              dir, name, (long long)st.st_size, min);
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "key file %s/%s refused: %lld bytes, want %zu to %zu", dir,
                                      name, (long long)st.st_size, min, max);
        }
        size_t len = (size_t)st.st_size;
        struct aidp_secret s = {0};
        int r = aidp_secret_alloc(&s, len, err);
        if (r < 0)
                return r;
        ssize_t n = pread(fd, s.p, len, 0);
        if (n < 0 || (size_t)n != len) {
                int e = n < 0 ? errno : EIO;
                aidp_secret_free(&s);
                return aidp_error_errno(err, AIDP_EXIT_DATA, e, "reading key file %s/%s", dir,
                                        name);
        }
        s.len = len;
        *ret = s;
        return 0;
}

int aidp_keys_read_kek(const char *dir, const char *key_id, struct aidp_secret *ret,
                       aidp_error *err)
{
        if (!aidp_sealed_valid_key_id(key_id))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "invalid key id '%s'", key_id);
        return aidp_keys_read_file(dir, key_id, AIDP_SEALED_KEY_LEN, AIDP_SEALED_KEY_LEN, ret, err);
}

int aidp_keys_generate(const char *dir, const char *key_id, aidp_error *err)
{
        if (!aidp_sealed_valid_key_id(key_id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "invalid key id '%s' (want [A-Za-z0-9][A-Za-z0-9._-]*, at "
                                      "most %d bytes)",
                                      key_id, AIDP_SEALED_KEY_ID_MAX);
        /* On a fresh host nothing exists yet: /etc/aidp (0755, policies are
         * readable) and the key directory itself (0700). */
        int mk = aidp_mkdir_p(dir, 0700, 0755);
        if (mk < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, -mk, "creating key directory %s",
                                        dir);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key directory %s", dir);
        _cleanup_secret_ struct aidp_secret s = {0};
        int r = aidp_sealed_new_data_key(&s, err);
        if (r < 0)
                return r;
        /* O_EXCL: never overwrite a KEK, that would orphan every dataset sealed
         * under it. Mode 0400 from the start, so it is never readable by others. */
        _cleanup_close_ int fd =
                openat(dfd, key_id, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "creating key file %s/%s",
                                        dir, key_id);
        if (fchmod(fd, 0400) < 0 || write(fd, s.p, AIDP_SEALED_KEY_LEN) != AIDP_SEALED_KEY_LEN ||
            fsync(fd) < 0) {
                int e = errno ? errno : EIO;
                unlinkat(dfd, key_id, 0);
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, e, "writing key file %s/%s", dir,
                                        key_id);
        }
        return 0;
}

int aidp_keys_wrap(const struct aidp_keys *k, const char *key_id, const struct aidp_secret *dk,
                   enum aidp_key_wrap *ret_alg, uint8_t *out, size_t *ret_len, aidp_error *err)
{
        _cleanup_secret_ struct aidp_secret kek = {0};
        int r = aidp_keys_check_kek(k, key_id, err);
        if (r < 0)
                return r;
        switch (k->kind) {
        case AIDP_KEYS_FILE:
                r = aidp_keys_read_kek(k->dir, key_id, &kek, err);
                if (r < 0)
                        return r;
                r = aidp_sealed_kwp_wrap(kek.p, dk->p, dk->len, out, ret_len, err);
                if (r < 0)
                        return r;
                *ret_alg = AIDP_WRAP_AES256_KWP;
                return 0;
        case AIDP_KEYS_STATIC:
                r = aidp_sealed_kwp_wrap(k->static_kek.p, dk->p, dk->len, out, ret_len, err);
                if (r < 0)
                        return r;
                *ret_alg = AIDP_WRAP_AES256_KWP;
                return 0;
        case AIDP_KEYS_EXEC:
                r = aidp_keys_exec_wrap(k, key_id, dk, out, ret_len, err);
                if (r < 0)
                        return r;
                *ret_alg = AIDP_WRAP_EXTERNAL;
                return 0;
        case AIDP_KEYS_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "no key provider configured");
}

int aidp_keys_unwrap(const struct aidp_keys *k, const char *key_id, enum aidp_key_wrap alg,
                     const uint8_t *wrapped, size_t len, struct aidp_secret *ret, aidp_error *err)
{
        _cleanup_secret_ struct aidp_secret kek = {0};
        int r = aidp_keys_check_kek(k, key_id, err);
        if (r < 0)
                return r;
        switch (k->kind) {
        case AIDP_KEYS_FILE:
        case AIDP_KEYS_STATIC:
                if (alg != AIDP_WRAP_AES256_KWP)
                        return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                              "key '%s' was wrapped by an exec key provider; "
                                              "configure it in %s",
                                              key_id, AIDP_KEYS_DEFAULT_CONFIG);
                if (k->kind == AIDP_KEYS_FILE) {
                        r = aidp_keys_read_kek(k->dir, key_id, &kek, err);
                        if (r < 0)
                                return r;
                }
                r = aidp_sealed_kwp_unwrap(k->kind == AIDP_KEYS_FILE ? kek.p : k->static_kek.p,
                                           wrapped, len, ret, err);
                if (r < 0)
                        return aidp_error_wrap(err, "key '%s'", key_id);
                return 0;
        case AIDP_KEYS_EXEC: return aidp_keys_exec_unwrap(k, key_id, wrapped, len, ret, err);
        case AIDP_KEYS_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "no key provider configured");
}
