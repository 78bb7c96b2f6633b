#pragma once
/* A strict walk over a libyaml document (internal to residency/).
 *
 * Every error names file:line:col and the key path ("roles.trainer.hours"),
 * unknown and duplicate keys are errors, and a node reached twice (a YAML
 * alias) is refused, so a policy reads exactly as it is written and a
 * "billion laughs" document cannot blow up the walk. */
#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "common/error.h"
#include "residency/policy.h"

#define AIDP_YPATH_MAX      256
#define AIDP_YAML_ITEMS_MAX 4096 /* keys of one mapping, items of one list */

struct aidp_ywalk {
        yaml_document_t doc;
        bool loaded;
        const char *file;
        aidp_error *err;
        unsigned char *seen; /* one byte per node: reached already */
        size_t n_nodes;
};

/* Parse buf as exactly one YAML document. On failure err names the position
 * libyaml reports. */
int aidp_residency_yw_load(struct aidp_ywalk *w, const char *buf, size_t len, const char *file,
                           aidp_error *err);
void aidp_residency_yw_done(struct aidp_ywalk *w);
yaml_node_t *aidp_residency_yw_root(struct aidp_ywalk *w);

/* Error at a node: "file:line:col: path: message". Returns < 0. */
int aidp_residency_yw_fail(struct aidp_ywalk *w, const yaml_node_t *n, const char *path,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void aidp_residency_yw_path_key(char *out, const char *path, const char *key);
void aidp_residency_yw_path_index(char *out, const char *path, size_t i);

/* Scalar accessors. A null value (empty, "~", "null") is refused by these. */
int aidp_residency_yw_str(struct aidp_ywalk *w, yaml_node_t *n, const char *path, const char **ret);
int aidp_residency_yw_strdup(struct aidp_ywalk *w, yaml_node_t *n, const char *path, char **ret);
bool aidp_residency_yw_is_null(const yaml_node_t *n);
/* A sequence of scalars (null = empty); check() may refuse an item (NULL = any). */
int aidp_residency_yw_strlist(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                              bool (*check)(const char *), const char *what, char ***ret,
                              size_t *ret_n);
/* A sequence (null = empty); fn is called per item with its path. */
int aidp_residency_yw_seq(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                          int (*fn)(struct aidp_ywalk *w, yaml_node_t *item, const char *path,
                                    size_t index, void *ctx),
                          void *ctx);

/* A mapping with a fixed set of keys. Handlers run in the order of the table
 * (not of the document), so a field may rely on one listed before it; keys the
 * table does not name are errors listing the expected ones. */
struct aidp_yfield {
        const char *key;
        int (*fn)(struct aidp_ywalk *w, yaml_node_t *value, const char *path, void *ctx);
        bool required;
};
int aidp_residency_yw_fields(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                             const struct aidp_yfield *fields, size_t n_fields, void *ctx);

/* A mapping with free-form keys (role names, user names...), in document order.
 * Duplicate keys are errors. A null value maps to an empty mapping. */
int aidp_residency_yw_map(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                          int (*fn)(struct aidp_ywalk *w, const char *key, yaml_node_t *keynode,
                                    yaml_node_t *value, const char *path, void *ctx),
                          void *ctx);

/* Where a node starts, 1-based (for rule locations in decision reasons). */
static inline unsigned aidp_residency_yw_line(const yaml_node_t *n)
{
        return (unsigned)n->start_mark.line + 1;
}
