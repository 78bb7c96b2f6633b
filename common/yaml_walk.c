/* The table-driven half of the YAML walker (common/yaml.h): mappings with a
 * fixed or a free set of keys, lists, strings. Every check reports through
 * aidp_yaml_err, so a profile, a policy and a key config fail alike. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strv.h"
#include "common/suggest.h"
#include "common/yaml.h"

/* Key paths are truncated on purpose when a document nests absurdly deep. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

/* "unknown key 'x', expected one of: a, b" at the key's own path. */
static int unknown_key(struct aidp_yaml *y, yaml_node_t *k, const char *path, const char *ks,
                       const char *const *names, size_t n_names, size_t stride, aidp_error *err)
{
        char exp[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < n_names; i++) {
                const char *name = *(const char *const *)((const char *)names + i * stride);
                int w = snprintf(exp + used, sizeof exp - used, "%s%s", i ? ", " : "", name);
                if (w < 0 || (size_t)w >= sizeof exp - used)
                        break;
                used += (size_t)w;
        }
        struct aidp_suggest sg;
        char dym[AIDP_SUGGEST_MAX + 32];
        aidp_suggest_table(&sg, ks, names, n_names, stride);
        char kp[AIDP_YAML_PATH_MAX];
        aidp_yaml_path_key(kp, path, ks);
        return aidp_yaml_err(y, k, err, kp, "unknown key '%s', expected one of: %s%s", ks, exp,
                             aidp_suggest_text(&sg, dym, sizeof dym));
}

bool aidp_yaml_collect(struct aidp_yaml *y, aidp_error *e)
{
        if (!y->collect || e->status != AIDP_EXIT_CONFIG || !y->collect(y->collect_ctx, e))
                return false;
        memset(e, 0, sizeof *e);
        return true;
}

/* Checks every mapping gets: its type, its size, string keys, no key twice. */
static int check_mapping(struct aidp_yaml *y, yaml_node_t *map, const char *path, aidp_error *err)
{
        int rc = aidp_yaml_expect(y, map, YAML_MAPPING_NODE, path, "a mapping", err);
        if (rc < 0)
                return rc;
        /* The duplicate check below is quadratic; real documents are far smaller. */
        if (map->data.mapping.pairs.top - map->data.mapping.pairs.start > AIDP_YAML_ITEMS_MAX)
                return aidp_yaml_err(y, map, err, path, "found more than %d keys, expected fewer",
                                     AIDP_YAML_ITEMS_MAX);
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_yaml_node(y, p->key);
                const char *ks = aidp_yaml_str(k);
                if (!ks || aidp_yaml_is_null(k)) {
                        char found[80];
                        aidp_yaml_found(k, found, sizeof found);
                        return aidp_yaml_err(y, k, err, path,
                                             "found %s as a key, expected a string", found);
                }
                if (strlen(ks) != k->data.scalar.length)
                        return aidp_yaml_err(y, k, err, path,
                                             "found a NUL byte in a key, expected text");
                for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
                        const char *qs = aidp_yaml_str(aidp_yaml_node(y, q->key));
                        if (qs && !strcmp(qs, ks)) {
                                char kp[AIDP_YAML_PATH_MAX];
                                aidp_yaml_path_key(kp, path, ks);
                                return aidp_yaml_err(y, k, err, kp,
                                                     "found the key '%s' twice, expected it once",
                                                     ks);
                        }
                }
        }
        return 0;
}

int aidp_yaml_check_keys(struct aidp_yaml *y, yaml_node_t *map, const char *path,
                         const char *const *allowed, aidp_error *err)
{
        int rc = check_mapping(y, map, path, err);
        if (rc < 0)
                return rc;
        size_t n_allowed = 0;
        while (allowed[n_allowed])
                n_allowed++;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_yaml_node(y, p->key);
                const char *ks = aidp_yaml_str(k);
                bool ok = false;
                for (size_t a = 0; a < n_allowed && !ok; a++)
                        ok = !strcmp(allowed[a], ks);
                if (!ok) {
                        rc = unknown_key(y, k, path, ks, allowed, n_allowed, sizeof *allowed, err);
                        if (!aidp_yaml_collect(y, err))
                                return rc;
                }
        }
        return 0;
}

int aidp_yaml_string(struct aidp_yaml *y, yaml_node_t *n, const char *path, const char **ret)
{
        int r = aidp_yaml_expect(y, n, YAML_SCALAR_NODE, path, "a string", y->err);
        if (r < 0)
                return r;
        const char *v = (const char *)n->data.scalar.value;
        if (strlen(v) != n->data.scalar.length)
                return aidp_yaml_fail(y, n, path, "found a NUL byte in the string, expected text");
        *ret = v;
        return 0;
}

int aidp_yaml_strdup(struct aidp_yaml *y, yaml_node_t *n, const char *path, char **ret)
{
        const char *v;
        int r = aidp_yaml_string(y, n, path, &v);
        if (r < 0)
                return r;
        char *d = strdup(v);
        if (!d)
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        free(*ret); /* a field set twice cannot happen (duplicate keys), but stay leak-free */
        *ret = d;
        return 0;
}

int aidp_yaml_seq(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                  int (*fn)(struct aidp_yaml *y, yaml_node_t *item, const char *path, size_t index,
                            void *ctx),
                  void *ctx)
{
        if (aidp_yaml_is_null(n))
                return 0;
        int r = aidp_yaml_expect(y, n, YAML_SEQUENCE_NODE, path, "a list", y->err);
        if (r < 0)
                return r;
        if (n->data.sequence.items.top - n->data.sequence.items.start > AIDP_YAML_ITEMS_MAX)
                return aidp_yaml_fail(y, n, path, "found more than %d items, expected fewer",
                                      AIDP_YAML_ITEMS_MAX);
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
                char sub[AIDP_YAML_PATH_MAX];
                aidp_yaml_path_index(sub, path, i);
                r = fn(y, aidp_yaml_node(y, *it), sub, i, ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}

struct strlist_ctx {
        bool (*check)(const char *);
        const char *what;
        char **v;
        size_t n;
};

static int strlist_item(struct aidp_yaml *y, yaml_node_t *item, const char *path, size_t index,
                        void *ctx)
{
        (void)index;
        struct strlist_ctx *c = ctx;
        const char *s;
        int r = aidp_yaml_string(y, item, path, &s);
        if (r < 0)
                return r;
        if (c->check && !c->check(s))
                return aidp_yaml_fail(y, item, path, "found '%s', expected a valid %s", s, c->what);
        if (aidp_strv_contains(c->v, c->n, s))
                return aidp_yaml_fail(y, item, path, "found the %s '%s' twice, expected it once",
                                      c->what, s);
        if (aidp_strv_push(&c->v, &c->n, s) < 0)
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

int aidp_yaml_strlist(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                      bool (*check)(const char *), const char *what, char ***ret, size_t *ret_n)
{
        struct strlist_ctx c = {.check = check, .what = what ? what : "item"};
        int r = aidp_yaml_seq(y, n, path, strlist_item, &c);
        if (r < 0) {
                aidp_strv_free(c.v);
                return r;
        }
        if (!c.v && !(c.v = calloc(1, sizeof *c.v)))
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        aidp_strv_free(*ret);
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

static int missing_key(struct aidp_yaml *y, yaml_node_t *n, const char *path, const char *key)
{
        return aidp_yaml_fail(y, n, path, "missing key '%s'", key);
}

int aidp_yaml_fields(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                     const struct aidp_yaml_field *fields, size_t n_fields, void *ctx)
{
        if (aidp_yaml_is_null(n)) {
                for (size_t f = 0; f < n_fields; f++)
                        if (fields[f].required)
                                return missing_key(y, n, path, fields[f].key);
                return 0;
        }
        int r = check_mapping(y, n, path, y->err);
        if (r < 0)
                return r;
        /* Unknown keys first, so a typo is reported rather than a missing key. */
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_yaml_node(y, p->key);
                const char *ks = aidp_yaml_str(k);
                bool known = false;
                for (size_t f = 0; f < n_fields && !known; f++)
                        known = !strcmp(ks, fields[f].key);
                if (!known) {
                        r = unknown_key(y, k, path, ks, &fields[0].key, n_fields, sizeof *fields,
                                        y->err);
                        if (!aidp_yaml_collect(y, y->err))
                                return r;
                }
        }
        for (size_t f = 0; f < n_fields; f++) {
                yaml_node_t *v = aidp_yaml_get(y, n, fields[f].key, NULL);
                if (!v) {
                        if (fields[f].required)
                                return missing_key(y, n, path, fields[f].key);
                        continue;
                }
                char sub[AIDP_YAML_PATH_MAX];
                aidp_yaml_path_key(sub, path, fields[f].key);
                r = fields[f].fn(y, v, sub, ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}

int aidp_yaml_map(struct aidp_yaml *y, yaml_node_t *n, const char *path,
                  int (*fn)(struct aidp_yaml *y, const char *key, yaml_node_t *keynode,
                            yaml_node_t *value, const char *path, void *ctx),
                  void *ctx)
{
        if (aidp_yaml_is_null(n))
                return 0;
        int r = check_mapping(y, n, path, y->err);
        if (r < 0)
                return r;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_yaml_node(y, p->key);
                const char *ks = aidp_yaml_str(k);
                char sub[AIDP_YAML_PATH_MAX];
                aidp_yaml_path_key(sub, path, ks);
                r = fn(y, ks, k, aidp_yaml_node(y, p->value), sub, ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}
