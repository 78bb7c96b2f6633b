#pragma once
/* The one strict YAML walker (over libyaml's document API) used by profiles,
 * residency policies and the key provider config.
 *
 * Every error reads "FILE:LINE:COL: path.to.key: message" (1-based; the path
 * is left out at the top level) and the message says what was found and what
 * was expected. Anchors, aliases, a second document, NUL bytes and nesting
 * deeper than AIDP_YAML_DEPTH_MAX are refused before the tree is built, so a
 * file reads exactly as it is written and a "billion laughs" document cannot
 * blow up the walk. Unknown and duplicate keys are errors naming the key. */
#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "common/error.h"

#define AIDP_YAML_PATH_MAX  256
#define AIDP_YAML_ITEMS_MAX 4096 /* keys of one mapping, items of one list */
#define AIDP_YAML_DEPTH_MAX 32

struct aidp_yaml {
        yaml_document_t doc;
        bool loaded;
        char *file;
        const char *what; /* "profile", "policy", ...: the document's noun in messages */
        aidp_error *err;  /* where the walkers below report */
        /* Optional, set after aidp_yaml_load: an error the walk can go on
         * after (an unknown key, which is then skipped) is handed here instead
         * of ending the walk; it returns false when it takes no more. */
        bool (*collect)(void *ctx, aidp_error *e);
        void *collect_ctx;
};

/* Hand *e to y's collector: true when it took it (and *e is cleared), false
 * when the walk must end with *e. */
bool aidp_yaml_collect(struct aidp_yaml *y, aidp_error *e);

/* aidp_yaml_load flags. */
#define AIDP_YAML_EMPTY_OK 0x1u /* an empty file loads, with no root node */

/* Parse buf as exactly one YAML document describing a `what` (used in
 * messages: "found an empty file, expected a profile"). Errors go to err,
 * which the walk keeps for the helpers that do not take one. Call
 * aidp_yaml_free afterwards, whether the load failed or not. */
int aidp_yaml_load(struct aidp_yaml *y, const char *file, const char *what, const char *buf,
                   size_t len, unsigned flags, aidp_error *err);
void aidp_yaml_free(struct aidp_yaml *y);
yaml_node_t *aidp_yaml_root(struct aidp_yaml *y);
yaml_node_t *aidp_yaml_node(struct aidp_yaml *y, int idx);

/* "FILE:LINE:COL: PATH: MSG" at node n (position 1:1 when n is NULL). Returns < 0. */
int aidp_yaml_err(const struct aidp_yaml *y, const yaml_node_t *n, aidp_error *err,
                  const char *path, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same into the walk's own err. */
int aidp_yaml_fail(const struct aidp_yaml *y, const yaml_node_t *n, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Key paths: "a.b" and "a[3]" (truncated when absurdly deep). */
void aidp_yaml_path_key(char *out, const char *path, const char *key);
void aidp_yaml_path_index(char *out, const char *path, size_t i);

/* "found ..." description of a node for messages: "'abc'", "a mapping", "a list", "nothing". */
void aidp_yaml_found(const yaml_node_t *n, char *buf, size_t len);
/* The scalar's text, or NULL when n is not a scalar. */
const char *aidp_yaml_str(const yaml_node_t *n);
/* NULL, or a plain empty, "~" or "null" scalar. */
bool aidp_yaml_is_null(const yaml_node_t *n);

/* Expect kinds; on mismatch fill err ("PATH: found X, expected Y"). */
int aidp_yaml_expect(struct aidp_yaml *y, yaml_node_t *n, yaml_node_type_t type, const char *path,
                     const char *expected, aidp_error *err);
/* Scalar string that is not null; err otherwise. */
int aidp_yaml_scalar(struct aidp_yaml *y, yaml_node_t *n, const char *path, const char *expected,
                     const char **out, aidp_error *err);
int aidp_yaml_bool(struct aidp_yaml *y, yaml_node_t *n, const char *path, bool *out,
                   aidp_error *err);
/* Every key of mapping `map` must be a string in `allowed` (NULL-terminated)
 * and appear once; errors name the key and list what is expected. */
int aidp_yaml_check_keys(struct aidp_yaml *y, yaml_node_t *map, const char *path,
                         const char *const *allowed, aidp_error *err);
/* Value node for key, or NULL; *key_node (may be NULL) gets the key node. */
yaml_node_t *aidp_yaml_get(struct aidp_yaml *y, yaml_node_t *map, const char *key,
                           yaml_node_t **key_node);

/* ---- table-driven walk (errors into the walk's err) ---- */

/* A non-null string without NUL bytes. */
int aidp_yaml_string(struct aidp_yaml *y, yaml_node_t *n, const char *path, const char **ret);
int aidp_yaml_strdup(struct aidp_yaml *y, yaml_node_t *n, const char *path, char **ret);
/* A sequence of strings (null = empty); check() may refuse an item (NULL = any);
 * duplicates are refused. */
int aidp_yaml_strlist(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                      bool (*check)(const char *), const char *what, char ***ret, size_t *ret_n);
/* A sequence (null = empty); fn is called per item with its path. */
int aidp_yaml_seq(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                  int (*fn)(struct aidp_yaml *y, yaml_node_t *item, const char *path, size_t index,
                            void *ctx),
                  void *ctx);

/* A mapping with a fixed set of keys. Handlers run in the order of the table
 * (not of the document), so a field may rely on one listed before it; keys the
 * table does not name are errors listing the expected ones. */
struct aidp_yaml_field {
        const char *key;
        int (*fn)(struct aidp_yaml *y, yaml_node_t *value, const char *path, void *ctx);
        bool required;
};
int aidp_yaml_fields(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                     const struct aidp_yaml_field *fields, size_t n_fields, void *ctx);

/* A mapping with free-form keys (role names, user names...), in document order.
 * Duplicate keys are errors. A null value maps to an empty mapping. */
int aidp_yaml_map(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                  int (*fn)(struct aidp_yaml *y, const char *key, yaml_node_t *keynode,
                            yaml_node_t *value, const char *path, void *ctx),
                  void *ctx);

/* Where a node starts, 1-based (for rule locations in decision reasons). */
static inline unsigned aidp_yaml_line(const yaml_node_t *n)
{
        return (unsigned)n->start_mark.line + 1;
}
