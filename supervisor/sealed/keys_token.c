/* Token keys (keys.yaml purpose tokenize) for column views, from every key
 * provider: see keys.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsdir.h"
#include "supervisor/sealed/keys_internal.h"
#include "views/view.h"

#define WRAPPED_SUFFIX ".wrapped"

static int token_decl(const struct aidp_keys *k, const char *id, aidp_error *err)
{
        if (!aidp_sealed_valid_key_id(id))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "invalid key id '%s'", id);
        const struct aidp_key_decl *decl = aidp_keys_find(k, id);
        if (!decl)
                return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                      "token key %s is not declared in %s (a view tokenizes "
                                      "with it; declare it with `aidp keygen %s --purpose "
                                      "tokenize`)",
                                      id, k->config[0] ? k->config : "keys.yaml", id);
        if (decl->purpose != AIDP_KEY_PURPOSE_TOKENIZE)
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "token key %s has purpose %s in %s, not tokenize: a key "
                                      "has one purpose",
                                      id, aidp_key_purpose_name(decl->purpose), k->config);
        return 0;
}

/* KEY_DIR/<id>.wrapped: the token key as the exec provider wrapped it. */
static void wrapped_name(const char *id, char *out, size_t cap)
{
        snprintf(out, cap, "%s" WRAPPED_SUFFIX, id);
}

/* The exec provider holds no key material aidp may read: the token key is a
 * random key the provider wrapped at keygen (`COMMAND wrap ID`, stored as
 * KEY_DIR/ID.wrapped, root's like a key file), unwrapped for each use by the
 * same configured program (`COMMAND unwrap ID`), exactly as a data key. */
static int exec_token(const struct aidp_keys *k, const char *id, struct aidp_secret *ret,
                      aidp_error *err)
{
        char name[AIDP_SEALED_KEY_ID_MAX + sizeof WRAPPED_SUFFIX];
        wrapped_name(id, name, sizeof name);
        _cleanup_secret_ struct aidp_secret w = {0};
        int r = aidp_keys_read_file(k->dir, name, 1, AIDP_SEALED_WRAPPED_MAX, &w, err);
        if (r < 0)
                return aidp_error_wrap(err,
                                       "its wrapped key (made by `aidp keygen %s --purpose "
                                       "tokenize` with the exec provider)",
                                       id);
        return aidp_keys_exec_unwrap(k, id, w.p, w.len, ret, err);
}

int aidp_keys_read_token(const struct aidp_keys *k, const char *id, struct aidp_token_key *out,
                         aidp_error *err)
{
        int r = token_decl(k, id, err);
        if (r < 0)
                return r;
        _cleanup_secret_ struct aidp_secret s = {0};
        switch (k->kind) {
        case AIDP_KEYS_FILE: r = aidp_keys_read_kek(k->dir, id, &s, err); break;
        case AIDP_KEYS_EXEC: r = exec_token(k, id, &s, err); break;
        case AIDP_KEYS_STATIC:
        case AIDP_KEYS_MAX:
                return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                      "token key %s: an in-process key-encryption key holds no "
                                      "token keys",
                                      id);
        }
        if (r < 0)
                return aidp_error_wrap(err, "token key %s", id);
        if (s.len != sizeof out->key)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "token key %s: %zu bytes, expected %zu", id, s.len,
                                      sizeof out->key);
        snprintf(out->key_id, sizeof out->key_id, "%s", id);
        memcpy(out->key, s.p, sizeof out->key);
        return 0;
}

/* Exec provider: a random key, wrapped by the provider (its output checked:
 * not the key, unwraps back to it) and stored as KEY_DIR/ID.wrapped, 0400,
 * never overwriting. */
static int exec_generate(const struct aidp_keys *k, const char *id, aidp_error *err)
{
        int mk = aidp_mkdir_p(k->dir, 0700, 0755);
        if (mk < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, -mk, "creating key directory %s",
                                        k->dir);
        _cleanup_close_ int dfd = open(k->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key directory %s", k->dir);
        char name[AIDP_SEALED_KEY_ID_MAX + sizeof WRAPPED_SUFFIX];
        wrapped_name(id, name, sizeof name);
        /* Refuse an existing one before the provider is asked for anything. */
        if (faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, EEXIST, "creating %s/%s", k->dir,
                                        name);
        _cleanup_secret_ struct aidp_secret key = {0};
        uint8_t wrapped[AIDP_SEALED_WRAPPED_MAX];
        size_t len = 0;
        int r = aidp_sealed_new_data_key(&key, err);
        if (r < 0 || (r = aidp_keys_exec_wrap(k, id, &key, wrapped, &len, err)) < 0)
                return r;
        _cleanup_close_ int fd =
                openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "creating %s/%s", k->dir,
                                        name);
        if (fchmod(fd, 0400) < 0 || write(fd, wrapped, len) != (ssize_t)len || fsync(fd) < 0) {
                int e = errno ? errno : EIO;
                unlinkat(dfd, name, 0);
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, e, "writing %s/%s", k->dir, name);
        }
        return 0;
}

int aidp_keys_generate_token(const struct aidp_keys *k, const char *id, char *path, size_t cap,
                             aidp_error *err)
{
        if (!aidp_sealed_valid_key_id(id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "invalid key id '%s' (want [A-Za-z0-9][A-Za-z0-9._-]*, at "
                                      "most %d bytes)",
                                      id, AIDP_SEALED_KEY_ID_MAX);
        switch (k->kind) {
        case AIDP_KEYS_FILE:
                snprintf(path, cap, "%s/%s", k->dir, id);
                return aidp_keys_generate(k->dir, id, err);
        case AIDP_KEYS_EXEC:
                snprintf(path, cap, "%s/%s" WRAPPED_SUFFIX, k->dir, id);
                return exec_generate(k, id, err);
        case AIDP_KEYS_STATIC:
        case AIDP_KEYS_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                              "token key %s: this key provider cannot make token keys", id);
}
