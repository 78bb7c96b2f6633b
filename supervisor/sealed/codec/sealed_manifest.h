#pragma once
/* The tree manifest of sealed format v1: the first bytes of the plaintext
 * stream (docs/sealed-format.md). Codec: sealed_manifest.c. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AIDP_TREE_MAGIC       "AIDPTREE"
#define AIDP_TREE_PREFIX_LEN  20
#define AIDP_TREE_ENTRY_FIXED 14
#define AIDP_TREE_MAX_ENTRIES (1u << 24)
#define AIDP_TREE_MAX_LEN     (UINT32_C(1) << 30)
#define AIDP_TREE_PATH_MAX    4095
#define AIDP_TREE_MODE_MASK   01777 /* permission bits and sticky; never set-id */

enum aidp_tree_root { AIDP_ROOT_FILE = 1, AIDP_ROOT_DIR = 2, AIDP_ROOT_MAX };
enum aidp_tree_type { AIDP_ENTRY_FILE = 1, AIDP_ENTRY_DIR = 2, AIDP_ENTRY_MAX };

struct aidp_tree_entry {
        enum aidp_tree_type type;
        uint16_t mode;
        uint64_t size;   /* 0 for directories */
        uint64_t offset; /* derived: where the file's bytes start in the stream */
        char *path;      /* relative, '/'-separated, NUL-terminated */
};

struct aidp_tree {
        enum aidp_tree_root root;
        uint16_t root_mode;
        struct aidp_tree_entry *entries;
        size_t n;
        uint32_t manifest_len;
        uint64_t stream_len; /* manifest_len + sum of file sizes */
};

/* Path rules: 1..4095 bytes, no NUL, no leading or trailing '/', no empty,
 * "." or ".." component, each component at most 255 bytes. */
bool aidp_tree_valid_path(const char *p, size_t len);
/* Sort entries by path (bytewise), compute offsets, manifest_len and
 * stream_len, and validate (as decode does). */
int aidp_tree_finish(struct aidp_tree *t, aidp_error *err);
/* Encode the manifest into a malloc'd buffer of t->manifest_len bytes. */
int aidp_tree_encode(const struct aidp_tree *t, uint8_t **ret, aidp_error *err);
/* Read manifest_len from the first AIDP_TREE_PREFIX_LEN bytes. */
int aidp_tree_manifest_len(const uint8_t *buf, size_t len, uint32_t *ret, aidp_error *err);
/* Parse and validate a manifest (exactly manifest_len bytes). */
int aidp_tree_decode(const uint8_t *buf, size_t len, struct aidp_tree *ret, aidp_error *err);
void aidp_tree_free(struct aidp_tree *t);
/* Index of the first entry whose file bytes end after stream offset off, or t->n. */
size_t aidp_tree_find(const struct aidp_tree *t, uint64_t off);
