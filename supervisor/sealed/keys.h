#pragma once
/* Key providers: where the key-encryption key (KEK) named by a dataset's key id
 * comes from, and how the data key is wrapped and unwrapped.
 *
 *  file  /etc/aidp/keys/<key-id>: exactly 32 raw bytes, a regular file owned
 *        by root with no group/other permission bits, in a root-owned
 *        directory that group/other cannot write. Wrap: RFC 5649 (AES-256 KWP).
 *  exec  a configured program, run as `PROGRAM [ARGS...] unwrap KEY-ID` with the
 *        wrapped key on stdin (raw bytes), printing the 32-byte data key on
 *        stdout (raw); and `... wrap KEY-ID` with the data key on stdin,
 *        printing the wrapped key (1-512 bytes, opaque to aidp). Non-zero exit,
 *        wrong output length or the timeout are errors quoting its stderr. It runs
 *        from /, with a fixed minimal environment, default signals, its own
 *        process group (killed when it exits) and a timeout; a wrap that holds
 *        the key or does not unwrap back is refused (keys_exec.c).
 *
 * Configuration: /etc/aidp/keys.yaml (or $AIDP_KEYS_CONFIG, or --keys-config):
 *   provider: file            # or exec
 *   keys:                     # each key's purpose (aidp keygen adds entries)
 *     run-key: {purpose: kek, datasets: [trial-*]}
 *     host-lineage: {purpose: lineage}
 *   key_dir: /etc/aidp/keys   # file provider ($AIDP_KEY_DIR / --key-dir override)
 *   exec:
 *     command: [/usr/local/sbin/aidp-kms, --region, eu]
 *     timeout: 30             # seconds, 1-600
 * The config file and the exec program must be owned by root (or the invoking
 * user) and not writable by group or other.
 *
 * Keys are held in locked memory (struct aidp_secret), wiped after use, and
 * never printed: error messages name the key id and the path only. */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "supervisor/sealed/secret.h"

#define AIDP_KEYS_DEFAULT_CONFIG     "/etc/aidp/keys.yaml"
#define AIDP_KEYS_DEFAULT_DIR        "/etc/aidp/keys"
#define AIDP_KEYS_EXEC_ARGS_MAX      32
#define AIDP_KEYS_DEFAULT_TIMEOUT_MS 30000u
#define AIDP_KEYS_LINEAGE_KEY        "/etc/aidp/lineage.key" /* the host's lineage HMAC key */
#define AIDP_KEYS_MAX_DECLS          1024

/* What a key may be used for (keys.yaml `keys: {ID: {purpose: ...}}`). Only a
 * kek wraps data keys; the lineage key signs the lineage log; tokenize keys
 * are for tokenizing identifiers. One key, one purpose. */
enum aidp_key_purpose {
        AIDP_KEY_PURPOSE_NONE = 0,
        AIDP_KEY_PURPOSE_KEK,
        AIDP_KEY_PURPOSE_LINEAGE,
        AIDP_KEY_PURPOSE_TOKENIZE,
        /* A kek only admins may use: outputs the leak scan quarantined are
         * sealed under it (docs/sealed-data.md, "Output leak scan"); a user
         * is never allowed to unseal or inspect-decrypt with it. */
        AIDP_KEY_PURPOSE_QUARANTINE,
        AIDP_KEY_PURPOSE_MAX
};

struct aidp_key_decl {
        char id[AIDP_SEALED_KEY_ID_MAX + 1];
        enum aidp_key_purpose purpose;
        char **datasets; /* kek only: fnmatch patterns on the dataset name; none = any */
        size_t n_datasets;
};

enum aidp_keys_kind {
        AIDP_KEYS_FILE = 0,
        AIDP_KEYS_EXEC,
        AIDP_KEYS_STATIC, /* in-process KEK: for tests and embedding, never from config */
        AIDP_KEYS_MAX
};

struct aidp_keys {
        enum aidp_keys_kind kind;
        char dir[PATH_MAX];
        char *argv[AIDP_KEYS_EXEC_ARGS_MAX + 1];
        unsigned timeout_ms;
        struct aidp_secret static_kek;
        char config[PATH_MAX]; /* the config file loaded, "" if none */
        /* keys.yaml `keys:`: a key declared with another purpose never wraps
         * data keys; an undeclared key is a kek (files written before purposes
         * existed), except the host's lineage key file, which never is. */
        struct aidp_key_decl *decls;
        size_t n_decls;
        bool declared;
        char lineage_key[PATH_MAX]; /* never a KEK (default AIDP_KEYS_LINEAGE_KEY) */
};

const char *aidp_key_purpose_name(enum aidp_key_purpose p);
const struct aidp_key_decl *aidp_keys_find(const struct aidp_keys *k, const char *key_id);
/* The first key declared with purpose quarantine, or NULL. */
const char *aidp_keys_quarantine_key(const struct aidp_keys *k);
bool aidp_keys_is_quarantine(const struct aidp_keys *k, const char *key_id);
/* May key_id wrap/unwrap data keys? Refuses a key declared with another
 * purpose and the host's lineage key file; the error names the key and
 * keys.yaml. */
int aidp_keys_check_kek(const struct aidp_keys *k, const char *key_id, aidp_error *err);
/* May key_id protect dataset `name` (its `datasets:` patterns)? */
int aidp_keys_check_dataset(const struct aidp_keys *k, const char *key_id, const char *name,
                            aidp_error *err);
/* Declare key d in keys.yaml at config_path (created 0644 if missing): one
 * entry appended under `keys:`, everything else kept; re-parsed before it
 * replaces the file. Already declared the same way: nothing to do; otherwise
 * declared: an error. dry_run: only check that it can be done. */
int aidp_keys_declare(const char *config_path, const struct aidp_key_decl *d, bool dry_run,
                      aidp_error *err);
/* The config file aidp_keys_setup reads: explicit ?: $AIDP_KEYS_CONFIG ?: default. */
const char *aidp_keys_config_path(const char *explicit_path);
/* Is the file at path fit to be the lineage key: not one of the provider's
 * key-encryption keys (a key file of key_dir not declared `purpose: lineage`)? */
int aidp_keys_check_lineage_key(const struct aidp_keys *k, const char *path, aidp_error *err);

/* Defaults: file provider in /etc/aidp/keys, no config. */
void aidp_keys_init(struct aidp_keys *k);
void aidp_keys_free(struct aidp_keys *k);

/* Parse a keys.yaml buffer into k (pure: no file access). Errors carry
 * fname:line:col. */
int aidp_keys_parse(const char *buf, size_t len, const char *fname, struct aidp_keys *k,
                    aidp_error *err);
/* The usual set-up: config from config_path ?: $AIDP_KEYS_CONFIG ?:
 * /etc/aidp/keys.yaml (the default may be absent; an explicit one may not),
 * then key_dir from dir_override ?: $AIDP_KEY_DIR ?: the config. */
int aidp_keys_setup(const char *config_path, const char *dir_override, struct aidp_keys *k,
                    aidp_error *err);
/* Use an in-process KEK (copied into locked memory). */
int aidp_keys_set_static(struct aidp_keys *k, const uint8_t kek[AIDP_SEALED_KEY_LEN],
                         aidp_error *err);

/* File provider: read and check the KEK file dir/key_id. */
int aidp_keys_read_kek(const char *dir, const char *key_id, struct aidp_secret *ret,
                       aidp_error *err);
/* Create dir/key_id with 32 random bytes, mode 0400 (dir created 0700 if
 * missing). Refuses to overwrite. */
int aidp_keys_generate(const char *dir, const char *key_id, aidp_error *err);

/* A token key for column views (views/view.h): key_id must be declared in
 * keys.yaml with purpose tokenize (ENOKEY when it is not declared, EPERM for
 * another purpose; AIDP_EXIT_DATA), and its 32 bytes come from the provider:
 *  file  KEY_DIR/<key-id>, a key file like a KEK's;
 *  exec  KEY_DIR/<key-id>.wrapped (a key file of 1-512 bytes: the token key
 *        as `COMMAND wrap KEY-ID` printed it at keygen), unwrapped by the
 *        configured program (`COMMAND unwrap KEY-ID`) like a data key.
 * out should be locked memory (the caller's). */
struct aidp_token_key;
int aidp_keys_read_token(const struct aidp_keys *k, const char *key_id, struct aidp_token_key *out,
                         aidp_error *err);
/* A new token key for key_id from k's provider (file: KEY_DIR/<key-id>;
 * exec: a random key wrapped by the provider, its output checked as every
 * wrap, stored as KEY_DIR/<key-id>.wrapped), mode 0400, never overwriting;
 * path gets the file made. */
int aidp_keys_generate_token(const struct aidp_keys *k, const char *key_id, char *path, size_t cap,
                             aidp_error *err);

/* Wrap a data key for key_id; out holds AIDP_SEALED_WRAPPED_MAX bytes. */
int aidp_keys_wrap(const struct aidp_keys *k, const char *key_id, const struct aidp_secret *dk,
                   enum aidp_key_wrap *ret_alg, uint8_t *out, size_t *ret_len, aidp_error *err);
/* Unwrap a dataset's data key into locked memory. */
int aidp_keys_unwrap(const struct aidp_keys *k, const char *key_id, enum aidp_key_wrap alg,
                     const uint8_t *wrapped, size_t len, struct aidp_secret *ret, aidp_error *err);
