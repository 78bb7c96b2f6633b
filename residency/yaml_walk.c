#include "residency/yaml_walk.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/strv.h"

/* libyaml's own position and words; the context says where the construct
 * that failed began ("while parsing a flow sequence" at the '['). */
static int yaml_fail(struct aidp_ywalk *w, const yaml_parser_t *parser)
{
        if (parser->error == YAML_MEMORY_ERROR)
                return aidp_error_set(w->err, AIDP_EXIT_INTERNAL, ENOMEM, "yaml: out of memory");
        if (parser->context)
                return aidp_error_set_at(w->err, AIDP_EXIT_CONFIG, w->file,
                                         (unsigned)parser->problem_mark.line + 1,
                                         (unsigned)parser->problem_mark.column + 1,
                                         "YAML: %s (%s started at line %u column %u)",
                                         parser->problem ? parser->problem : "syntax error",
                                         parser->context, (unsigned)parser->context_mark.line + 1,
                                         (unsigned)parser->context_mark.column + 1);
        return aidp_error_set_at(w->err, AIDP_EXIT_CONFIG, w->file,
                                 (unsigned)parser->problem_mark.line + 1,
                                 (unsigned)parser->problem_mark.column + 1, "YAML: %s",
                                 parser->problem ? parser->problem : "syntax error");
}

int aidp_residency_yw_load(struct aidp_ywalk *w, const char *buf, size_t len, const char *file,
                           aidp_error *err)
{
        yaml_parser_t parser;

        memset(w, 0, sizeof *w);
        w->file = file ? file : "<input>";
        w->err = err;
        if (len > AIDP_POLICY_INPUT_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "%s: larger than %u bytes",
                                      w->file, AIDP_POLICY_INPUT_MAX);
        if (!yaml_parser_initialize(&parser))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "yaml: out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

        int r = 0;
        if (!yaml_parser_load(&parser, &w->doc)) {
                r = yaml_fail(w, &parser);
                goto out;
        }
        w->loaded = true;
        if (!yaml_document_get_root_node(&w->doc)) {
                r = aidp_error_set_at(err, AIDP_EXIT_CONFIG, w->file, 1, 1, "empty document");
                goto out;
        }
        /* One document per file: a second one would be silently ignored. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
                r = yaml_fail(w, &parser);
                goto out;
        }
        yaml_node_t *extra = yaml_document_get_root_node(&next);
        if (extra) {
                r = aidp_error_set_at(err, AIDP_EXIT_CONFIG, w->file,
                                      (unsigned)extra->start_mark.line + 1,
                                      (unsigned)extra->start_mark.column + 1,
                                      "more than one YAML document in the file");
                yaml_document_delete(&next);
                goto out;
        }
        yaml_document_delete(&next);

        w->n_nodes = (size_t)(w->doc.nodes.top - w->doc.nodes.start);
        w->seen = calloc(w->n_nodes + 1, 1);
        if (!w->seen)
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
out:
        yaml_parser_delete(&parser);
        if (r < 0)
                aidp_residency_yw_done(w);
        return r;
}

void aidp_residency_yw_done(struct aidp_ywalk *w)
{
        if (w->loaded)
                yaml_document_delete(&w->doc);
        w->loaded = false;
        free(w->seen);
        w->seen = NULL;
}

int aidp_residency_yw_fail(struct aidp_ywalk *w, const yaml_node_t *n, const char *path,
                           const char *fmt, ...)
{
        char msg[AIDP_ERROR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        unsigned line = n ? (unsigned)n->start_mark.line + 1 : 1;
        unsigned col = n ? (unsigned)n->start_mark.column + 1 : 1;
        if (path && path[0])
                return aidp_error_set_at(w->err, AIDP_EXIT_CONFIG, w->file, line, col, "%s: %s",
                                         path, msg);
        return aidp_error_set_at(w->err, AIDP_EXIT_CONFIG, w->file, line, col, "%s", msg);
}

/* Every value is fetched through here: reaching a node twice means an alias. */
static yaml_node_t *get_node(struct aidp_ywalk *w, int id, const yaml_node_t *from,
                             const char *path)
{
        yaml_node_t *n = yaml_document_get_node(&w->doc, id);
        if (!n) {
                aidp_residency_yw_fail(w, from, path, "dangling node");
                return NULL;
        }
        size_t idx = (size_t)(id - 1);
        if (w->seen[idx]) {
                aidp_residency_yw_fail(w, n, path, "YAML aliases are not allowed in policies");
                return NULL;
        }
        w->seen[idx] = 1;
        return n;
}

yaml_node_t *aidp_residency_yw_root(struct aidp_ywalk *w)
{
        return get_node(w, 1, NULL, "");
}

void aidp_residency_yw_path_key(char *out, const char *path, const char *key)
{
        if (path && path[0])
                snprintf(out, AIDP_YPATH_MAX, "%s.%s", path, key);
        else
                snprintf(out, AIDP_YPATH_MAX, "%s", key);
}

void aidp_residency_yw_path_index(char *out, const char *path, size_t i)
{
        snprintf(out, AIDP_YPATH_MAX, "%s[%zu]", path ? path : "", i);
}

bool aidp_residency_yw_is_null(const yaml_node_t *n)
{
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *v = (const char *)n->data.scalar.value;
        return !v[0] || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
               !strcmp(v, "NULL");
}

static const char *type_name(const yaml_node_t *n)
{
        switch (n->type) {
        case YAML_SCALAR_NODE: return "a scalar";
        case YAML_SEQUENCE_NODE: return "a list";
        case YAML_MAPPING_NODE: return "a mapping";
        case YAML_NO_NODE: break;
        }
        return "nothing";
}

int aidp_residency_yw_str(struct aidp_ywalk *w, yaml_node_t *n, const char *path, const char **ret)
{
        if (n->type != YAML_SCALAR_NODE)
                return aidp_residency_yw_fail(w, n, path, "expected a string, got %s",
                                              type_name(n));
        if (aidp_residency_yw_is_null(n))
                return aidp_residency_yw_fail(w, n, path, "missing value");
        const char *v = (const char *)n->data.scalar.value;
        if (strlen(v) != n->data.scalar.length)
                return aidp_residency_yw_fail(w, n, path, "NUL byte in string");
        *ret = v;
        return 0;
}

int aidp_residency_yw_strdup(struct aidp_ywalk *w, yaml_node_t *n, const char *path, char **ret)
{
        const char *v;
        int r = aidp_residency_yw_str(w, n, path, &v);
        if (r < 0)
                return r;
        char *d = strdup(v);
        if (!d)
                return aidp_error_set(w->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        free(*ret); /* a field set twice cannot happen (duplicate keys), but stay leak-free */
        *ret = d;
        return 0;
}

int aidp_residency_yw_seq(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                          int (*fn)(struct aidp_ywalk *w, yaml_node_t *item, const char *path,
                                    size_t index, void *ctx),
                          void *ctx)
{
        if (aidp_residency_yw_is_null(n))
                return 0;
        if (n->type != YAML_SEQUENCE_NODE)
                return aidp_residency_yw_fail(w, n, path, "expected a list, got %s", type_name(n));
        if (n->data.sequence.items.top - n->data.sequence.items.start > AIDP_YAML_ITEMS_MAX)
                return aidp_residency_yw_fail(w, n, path, "more than %d items",
                                              AIDP_YAML_ITEMS_MAX);
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
                char sub[AIDP_YPATH_MAX];
                aidp_residency_yw_path_index(sub, path, i);
                yaml_node_t *item = get_node(w, *it, n, sub);
                if (!item)
                        return -EINVAL;
                int r = fn(w, item, sub, i, ctx);
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

static int strlist_item(struct aidp_ywalk *w, yaml_node_t *item, const char *path, size_t index,
                        void *ctx)
{
        struct strlist_ctx *c = ctx;
        const char *s;
        int r = aidp_residency_yw_str(w, item, path, &s);
        if (r < 0)
                return r;
        if (c->check && !c->check(s))
                return aidp_residency_yw_fail(w, item, path, "invalid %s '%s'", c->what, s);
        if (aidp_strv_contains(c->v, c->n, s))
                return aidp_residency_yw_fail(w, item, path, "duplicate %s '%s'", c->what, s);
        if (aidp_strv_push(&c->v, &c->n, s) < 0)
                return aidp_error_set(w->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

int aidp_residency_yw_strlist(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                              bool (*check)(const char *), const char *what, char ***ret,
                              size_t *ret_n)
{
        struct strlist_ctx c = {.check = check, .what = what ? what : "item"};
        int r = aidp_residency_yw_seq(w, n, path, strlist_item, &c);
        if (r < 0) {
                aidp_strv_free(c.v);
                return r;
        }
        if (!c.v && !(c.v = calloc(1, sizeof *c.v)))
                return aidp_error_set(w->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        aidp_strv_free(*ret);
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

/* Checks shared by both mapping walkers: type, scalar keys, no duplicates. */
static int check_mapping(struct aidp_ywalk *w, yaml_node_t *n, const char *path)
{
        if (n->type != YAML_MAPPING_NODE)
                return aidp_residency_yw_fail(w, n, path, "expected a mapping, got %s",
                                              type_name(n));
        /* The duplicate check below is quadratic; real policies are far smaller. */
        if (n->data.mapping.pairs.top - n->data.mapping.pairs.start > AIDP_YAML_ITEMS_MAX)
                return aidp_residency_yw_fail(w, n, path, "more than %d keys", AIDP_YAML_ITEMS_MAX);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = get_node(w, p->key, n, path);
                if (!k)
                        return -EINVAL;
                const char *ks;
                if (k->type != YAML_SCALAR_NODE)
                        return aidp_residency_yw_fail(w, k, path, "keys must be strings");
                int r = aidp_residency_yw_str(w, k, path, &ks);
                if (r < 0)
                        return r;
                for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
                        yaml_node_t *k2 = yaml_document_get_node(&w->doc, q->key);
                        if (!strcmp((const char *)k2->data.scalar.value, ks))
                                return aidp_residency_yw_fail(
                                        w, k, path, "duplicate key '%s' (first at line %u)", ks,
                                        (unsigned)k2->start_mark.line + 1);
                }
        }
        return 0;
}

int aidp_residency_yw_fields(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                             const struct aidp_yfield *fields, size_t n_fields, void *ctx)
{
        if (aidp_residency_yw_is_null(n)) {
                for (size_t f = 0; f < n_fields; f++)
                        if (fields[f].required)
                                return aidp_residency_yw_fail(w, n, path, "missing key '%s'",
                                                              fields[f].key);
                return 0;
        }
        int r = check_mapping(w, n, path);
        if (r < 0)
                return r;

        /* Unknown keys first, so a typo is reported rather than "missing key". */
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(&w->doc, p->key);
                const char *ks = (const char *)k->data.scalar.value;
                bool known = false;
                for (size_t f = 0; f < n_fields && !known; f++)
                        known = !strcmp(ks, fields[f].key);
                if (!known) {
                        char expected[512] = "";
                        size_t off = 0;
                        for (size_t f = 0; f < n_fields && off < sizeof expected; f++)
                                off += (size_t)snprintf(expected + off, sizeof expected - off,
                                                        "%s%s", f ? ", " : "", fields[f].key);
                        return aidp_residency_yw_fail(
                                w, k, path, "unknown key '%s' (expected one of: %s)", ks, expected);
                }
        }
        for (size_t f = 0; f < n_fields; f++) {
                yaml_node_pair_t *found = NULL;
                for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
                     p < n->data.mapping.pairs.top && !found; p++) {
                        yaml_node_t *k = yaml_document_get_node(&w->doc, p->key);
                        if (!strcmp((const char *)k->data.scalar.value, fields[f].key))
                                found = p;
                }
                if (!found) {
                        if (fields[f].required)
                                return aidp_residency_yw_fail(w, n, path, "missing key '%s'",
                                                              fields[f].key);
                        continue;
                }
                char sub[AIDP_YPATH_MAX];
                aidp_residency_yw_path_key(sub, path, fields[f].key);
                yaml_node_t *v = get_node(w, found->value, n, sub);
                if (!v)
                        return -EINVAL;
                r = fields[f].fn(w, v, sub, ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}

int aidp_residency_yw_map(struct aidp_ywalk *w, yaml_node_t *n, const char *path,
                          int (*fn)(struct aidp_ywalk *w, const char *key, yaml_node_t *keynode,
                                    yaml_node_t *value, const char *path, void *ctx),
                          void *ctx)
{
        if (aidp_residency_yw_is_null(n))
                return 0;
        int r = check_mapping(w, n, path);
        if (r < 0)
                return r;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(&w->doc, p->key);
                const char *ks = (const char *)k->data.scalar.value;
                char sub[AIDP_YPATH_MAX];
                aidp_residency_yw_path_key(sub, path, ks);
                yaml_node_t *v = get_node(w, p->value, n, sub);
                if (!v)
                        return -EINVAL;
                r = fn(w, ks, k, v, sub, ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}
