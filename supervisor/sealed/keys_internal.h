#pragma once
/* Private to supervisor/sealed: what keys.c (config, file provider, dispatch)
 * and keys_exec.c (the exec provider) share. */
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <yaml.h>

#include "common/error.h"
#include "common/yaml.h"
#include "supervisor/sealed/keys.h"

/* Owned by root (or by us when not root) and not writable by group/other. */
int aidp_keys_check_trusted(const struct stat *st, const char *path, const char *what,
                            aidp_error *err);

/* A root-owned key file dir/name (regular, no symlink, no group/other
 * access, in a root-owned directory group/other cannot write) of min to max
 * bytes, read into locked memory. */
int aidp_keys_read_file(const char *dir, const char *name, size_t min, size_t max,
                        struct aidp_secret *ret, aidp_error *err);

/* Exec provider: wrap dk and check the result before anyone stores it (not
 * the key, not containing it, unwraps back to it); unwrap into locked memory. */
int aidp_keys_exec_wrap(const struct aidp_keys *k, const char *key_id, const struct aidp_secret *dk,
                        uint8_t *out, size_t *ret_len, aidp_error *err);
int aidp_keys_exec_unwrap(const struct aidp_keys *k, const char *key_id, const uint8_t *wrapped,
                          size_t len, struct aidp_secret *ret, aidp_error *err);

/* keys.yaml `keys:` (keys_purpose.c): a walker field handler, and its free. */
int aidp_keys_parse_decls(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx);
void aidp_keys_decls_free(struct aidp_keys *k);
