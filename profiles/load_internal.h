#pragma once
/* The profile loader's own state and helpers, shared by its files only:
 *
 *   profile_load.c   entry points: read the asked-for file, merge, check, digest
 *   load_graph.c     phase 1: the `extends` graph (parents first, each file once)
 *   load_sections.c  phase 2, plain sections: limits, filesystem, devices, user,
 *                    capabilities, data
 *   load_seccomp.c   phase 2, the seccomp section (rules, import, contradictions)
 *   load_network.c   phase 2, the network section (egress rules)
 *   load_helpers.c   lints, origins, path and string helpers
 *
 * Every function that can fail fills ld->err with a positioned message
 * ("file:line:col: PATH: found X, expected Y") and returns < 0. Nothing here
 * reads a file itself: all input arrives through the caller's
 * struct aidp_profile_env. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "profiles/internal.h"

#define AIDP_LD_MAX_LAYERS 32
#define AIDP_LD_MAX_LIST   4096 /* items in one list: more is a mistake, not a profile */

typedef struct aidp_yaml ytree;
typedef yaml_node_t ynode;

/* One file of the extends graph, parsed and kept until the merge is done. */
struct layer {
        ytree t;
        char *source; /* normalised path */
        char *name;   /* metadata.name */
        char *description;
};

/* Where an item of the effective profile was last written ("file:line:col"),
 * keyed by a short tag ("limits.memory", "sc:mmap", "bind:/data"); used to
 * position errors and lints found on the merged profile. */
struct origin {
        char *key;
        char where[320];
};

struct loader {
        const struct aidp_profile_env *env;
        aidp_error *err;
        struct layer *layers; /* parents before children; the asked-for file last */
        size_t n_layers;
        const char *stack[AIDP_LD_MAX_LAYERS]; /* files being read, for cycle reports */
        size_t depth;
        struct origin *origins;
        size_t n_origins;
        struct aidp_lint_list *lints; /* layer-local lints (redundant rules) */
        bool in_root;                 /* applying the file that was asked for */
};

static inline int aidp_ld_oom(aidp_error *err)
{
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
}

/* YAML path text ("seccomp.syscalls[3].args[0].op") into a fixed buffer. It
 * only ever names a place in a message, never a file: a document nested
 * deeper than the buffer gets a shortened name in its error text. */
#define PATHF(buf, ...)       aidp_text_printf(buf, sizeof buf, __VA_ARGS__)
#define YERR(t, n, path, ...) aidp_yaml_err((t), (n), ld->err, (path), __VA_ARGS__)

/* One loop level only, so that `break` inside leaves the whole list: the
 * caller declares `item` (a nested one-pass loop would swallow the break). */
#define SEQ_LEN(seq) ((size_t)((seq)->data.sequence.items.top - (seq)->data.sequence.items.start))
#define FOREACH_ITEM(t, seq, i, item)                                                              \
        for (size_t i = 0; i < SEQ_LEN(seq) &&                                                     \
                           ((item) = aidp_yaml_node((t), (seq)->data.sequence.items.start[i]));    \
             i++)

/* In a FOREACH_ITEM body (not inside a loop nested in it), for an error just
 * put in ld->err by expr: go on with the next item when errors are gathered
 * (profile check), else return it. */
#define ITEM_FAIL(expr)                                                                            \
        {                                                                                          \
                int _item_rc = (expr);                                                             \
                if (!aidp_ld_recover(ld))                                                          \
                        return _item_rc;                                                           \
                continue;                                                                          \
        }

#define FOREACH_PAIR(t, map, k, v)                                                                 \
        for (yaml_node_pair_t *_p = (map)->data.mapping.pairs.start;                               \
             _p < (map)->data.mapping.pairs.top && ((k) = aidp_yaml_node((t), _p->key)) &&         \
             ((v) = aidp_yaml_node((t), _p->value));                                               \
             _p++)

/* ---- load_helpers.c ---- */
/* After an error in *ld->err: true when the load goes on (errors are being
 * gathered for profile check and there is room; the error is kept and
 * *ld->err cleared), false when it must stop with it. */
bool aidp_ld_recover(struct loader *ld);
/* The same as a YAML walker collector (ctx is the loader). */
bool aidp_ld_collect(void *ctx, aidp_error *e);
/* Append a lint (l may be NULL: then nothing is recorded). */
void aidp_ld_lint(struct aidp_lint_list *l, enum aidp_lint_level lvl, const char *code,
                  const char *where, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* "file:line:col" of node n in t becomes the origin of the item named by fmt. */
void aidp_ld_origin_set(struct loader *ld, const ytree *t, const ynode *n, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Lexical normalisation ("a/./b/../c" -> "a/c"); never touches the file system. */
char *aidp_ld_normpath(const char *p);
char *aidp_ld_dirname(const char *path);
/* ref relative to basedir (ref itself when absolute or basedir is NULL),
 * normalised; allocated to size, never truncated. NULL when out of memory. */
char *aidp_ld_join_ref(const char *basedir, const char *ref);
/* Does an extends/profile reference name a file (has '/' or ends .yaml/.yml)? */
bool aidp_ld_is_path_ref(const char *s);
/* A profile name: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
bool aidp_ld_valid_name(const char *s);
bool aidp_ld_path_within(const char *path, const char *dir);
int aidp_ld_replace_str(char **dst, const char *s);
/* n must be a list of at most AIDP_LD_MAX_LIST items. */
int aidp_ld_expect_list(struct loader *ld, ytree *t, ynode *n, const char *path, const char *what);

/* ---- load_graph.c ---- */
/* Find and read a profile by library name or path (relative to basedir).
 * -ENOENT: not found (tried lists where it looked); -EINVAL: not a name. */
int aidp_ld_read_ref(struct loader *ld, const char *ref, const char *basedir, char **source,
                     char **buf, size_t *len, char *tried, size_t tried_len);
/* Parse one file, load its parents first, then append it to ld->layers. */
int aidp_ld_load_layer(struct loader *ld, const char *source, const char *buf, size_t len);

/* ---- the sections (load_sections.c, load_seccomp.c, load_network.c) ---- */
int aidp_ld_apply_limits(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_filesystem(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_devices(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_user(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_caps(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_data(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_seccomp(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
int aidp_ld_apply_network(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p);
