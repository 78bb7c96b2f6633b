/* libyaml document tree with positions, and the checks every section uses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/internal.h"

/* Nesting deeper than any profile needs is refused before the tree is built. */
#define MAX_DEPTH 32

static int mark_err(const char *file, yaml_mark_t m, aidp_error *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int mark_err(const char *file, yaml_mark_t m, aidp_error *err, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return aidp_error_set_at(err, AIDP_EXIT_CONFIG, file, (unsigned)m.line + 1,
                                 (unsigned)m.column + 1, "%s", msg);
}

static int parser_err(const char *file, yaml_parser_t *p, aidp_error *err)
{
        const char *what = p->problem ? p->problem : "invalid YAML";
        if (p->context)
                return mark_err(file, p->problem_mark, err, "YAML syntax: %s %s", what, p->context);
        return mark_err(file, p->problem_mark, err, "YAML syntax: %s", what);
}

/* First pass over the events: refuse what the document API would silently
 * resolve (aliases can blow a small file up into a huge tree, and a profile
 * is reviewed as written) and bound the nesting. */
static int prescan(const char *file, const char *buf, size_t len, aidp_error *err)
{
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
        int depth = 0, docs = 0, rc = 0;
        for (;;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&p, &ev)) {
                        rc = parser_err(file, &p, err);
                        break;
                }
                yaml_event_type_t type = ev.type;
                yaml_mark_t m = ev.start_mark;
                const char *anchor = NULL;
                switch (type) {
                case YAML_ALIAS_EVENT:
                        rc = mark_err(file, m, err,
                                      "YAML aliases (*name) are not supported: found an alias, "
                                      "expected the value written out");
                        break;
                case YAML_SCALAR_EVENT: anchor = (const char *)ev.data.scalar.anchor; break;
                case YAML_SEQUENCE_START_EVENT:
                        anchor = (const char *)ev.data.sequence_start.anchor;
                        depth++;
                        break;
                case YAML_MAPPING_START_EVENT:
                        anchor = (const char *)ev.data.mapping_start.anchor;
                        depth++;
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT: depth--; break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++docs > 1)
                                rc = mark_err(file, m, err,
                                              "found a second YAML document, expected one profile "
                                              "per file");
                        break;
                case YAML_NO_EVENT:
                case YAML_STREAM_START_EVENT:
                case YAML_STREAM_END_EVENT:
                case YAML_DOCUMENT_END_EVENT: break;
                }
                if (!rc && anchor)
                        rc = mark_err(file, m, err,
                                      "YAML anchors (&%s) are not supported: profiles are reviewed "
                                      "as written; use `extends` to share",
                                      anchor);
                if (!rc && depth > MAX_DEPTH)
                        rc = mark_err(file, m, err, "nesting deeper than %d levels", MAX_DEPTH);
                yaml_event_delete(&ev);
                if (rc || type == YAML_STREAM_END_EVENT)
                        break;
        }
        yaml_parser_delete(&p);
        return rc;
}

int aidp_profiles_yaml_load(struct aidp_ytree *t, const char *file, const char *buf, size_t len,
                            aidp_error *err)
{
        memset(t, 0, sizeof *t);
        t->file = strdup(file ? file : "<input>");
        if (!t->file)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (memchr(buf, '\0', len))
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, t->file, 1, 1,
                                         "found a NUL byte, expected a YAML text file");
        int rc = prescan(t->file, buf, len, err);
        if (rc < 0)
                return rc;
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
        if (!yaml_parser_load(&p, &t->doc)) {
                rc = parser_err(t->file, &p, err);
                yaml_parser_delete(&p);
                return rc;
        }
        yaml_parser_delete(&p);
        t->loaded = true;
        if (!yaml_document_get_root_node(&t->doc))
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, t->file, 1, 1,
                                         "found an empty file, expected a profile (apiVersion: "
                                         "aidp/v1, kind: Profile)");
        return 0;
}

void aidp_profiles_yaml_free(struct aidp_ytree *t)
{
        if (t->loaded)
                yaml_document_delete(&t->doc);
        free(t->file);
        memset(t, 0, sizeof *t);
}

yaml_node_t *aidp_profiles_yaml_root(struct aidp_ytree *t)
{
        return t->loaded ? yaml_document_get_root_node(&t->doc) : NULL;
}

yaml_node_t *aidp_profiles_yaml_node(struct aidp_ytree *t, int idx)
{
        return yaml_document_get_node(&t->doc, idx);
}

int aidp_profiles_yaml_err(const struct aidp_ytree *t, const yaml_node_t *n, aidp_error *err,
                           const char *path, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        unsigned line = n ? (unsigned)n->start_mark.line + 1 : 1;
        unsigned col = n ? (unsigned)n->start_mark.column + 1 : 1;
        if (path && *path)
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, t->file, line, col, "%s: %s", path,
                                         msg);
        return aidp_error_set_at(err, AIDP_EXIT_CONFIG, t->file, line, col, "%s", msg);
}

bool aidp_profiles_yaml_is_null(const yaml_node_t *n)
{
        if (!n)
                return true;
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *v = (const char *)n->data.scalar.value;
        return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
               !strcmp(v, "NULL");
}

void aidp_profiles_yaml_found(const yaml_node_t *n, char *buf, size_t len)
{
        if (!n || aidp_profiles_yaml_is_null(n)) {
                snprintf(buf, len, "nothing");
                return;
        }
        switch (n->type) {
        case YAML_SCALAR_NODE: {
                const char *v = (const char *)n->data.scalar.value;
                if (strlen(v) > 60)
                        snprintf(buf, len, "'%.57s...'", v);
                else
                        snprintf(buf, len, "'%s'", v);
                return;
        }
        case YAML_SEQUENCE_NODE: snprintf(buf, len, "a list"); return;
        case YAML_MAPPING_NODE: snprintf(buf, len, "a mapping"); return;
        case YAML_NO_NODE: break;
        }
        snprintf(buf, len, "nothing");
}

const char *aidp_profiles_yaml_str(const yaml_node_t *n)
{
        if (!n || n->type != YAML_SCALAR_NODE)
                return NULL;
        return (const char *)n->data.scalar.value;
}

int aidp_profiles_yaml_expect(struct aidp_ytree *t, yaml_node_t *n, yaml_node_type_t type,
                              const char *path, const char *expected, aidp_error *err)
{
        if (n && n->type == type && !(type == YAML_SCALAR_NODE && aidp_profiles_yaml_is_null(n)))
                return 0;
        char found[80];
        aidp_profiles_yaml_found(n, found, sizeof found);
        return aidp_profiles_yaml_err(t, n, err, path, "found %s, expected %s", found, expected);
}

int aidp_profiles_yaml_scalar(struct aidp_ytree *t, yaml_node_t *n, const char *path,
                              const char *expected, const char **out, aidp_error *err)
{
        int rc = aidp_profiles_yaml_expect(t, n, YAML_SCALAR_NODE, path, expected, err);
        if (rc < 0)
                return rc;
        *out = (const char *)n->data.scalar.value;
        return 0;
}

int aidp_profiles_yaml_bool(struct aidp_ytree *t, yaml_node_t *n, const char *path, bool *out,
                            aidp_error *err)
{
        const char *s;
        int rc = aidp_profiles_yaml_scalar(t, n, path, "true or false", &s, err);
        if (rc < 0)
                return rc;
        if (!strcmp(s, "true")) {
                *out = true;
                return 0;
        }
        if (!strcmp(s, "false")) {
                *out = false;
                return 0;
        }
        return aidp_profiles_yaml_err(t, n, err, path, "found '%s', expected true or false", s);
}

int aidp_profiles_yaml_check_keys(struct aidp_ytree *t, yaml_node_t *map, const char *path,
                                  const char *const *allowed, aidp_error *err)
{
        int rc = aidp_profiles_yaml_expect(t, map, YAML_MAPPING_NODE, path, "a mapping", err);
        if (rc < 0)
                return rc;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_profiles_yaml_node(t, p->key);
                const char *ks = aidp_profiles_yaml_str(k);
                if (!ks || aidp_profiles_yaml_is_null(k))
                        return aidp_profiles_yaml_err(
                                t, k, err, path,
                                "found a non-string key, expected one of the keys below");
                bool ok = false;
                for (const char *const *a = allowed; *a; a++)
                        if (!strcmp(*a, ks))
                                ok = true;
                if (!ok) {
                        char exp[512] = "";
                        size_t used = 0;
                        for (const char *const *a = allowed; *a; a++) {
                                int w = snprintf(exp + used, sizeof exp - used, "%s%s",
                                                 a == allowed ? "" : ", ", *a);
                                if (w < 0 || (size_t)w >= sizeof exp - used)
                                        break;
                                used += (size_t)w;
                        }
                        char kp[512];
                        snprintf(kp, sizeof kp, "%s%s%s", path, *path ? "." : "", ks);
                        return aidp_profiles_yaml_err(
                                t, k, err, kp, "unknown key '%s', expected one of: %s", ks, exp);
                }
                for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
                        const char *qs = aidp_profiles_yaml_str(aidp_profiles_yaml_node(t, q->key));
                        if (qs && !strcmp(qs, ks)) {
                                char kp[512];
                                snprintf(kp, sizeof kp, "%s%s%s", path, *path ? "." : "", ks);
                                return aidp_profiles_yaml_err(
                                        t, k, err, kp, "found the key '%s' twice, expected it once",
                                        ks);
                        }
                }
        }
        return 0;
}

yaml_node_t *aidp_profiles_yaml_get(struct aidp_ytree *t, yaml_node_t *map, const char *key,
                                    yaml_node_t **key_node)
{
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_profiles_yaml_node(t, p->key);
                const char *ks = aidp_profiles_yaml_str(k);
                if (ks && !strcmp(ks, key)) {
                        if (key_node)
                                *key_node = k;
                        return aidp_profiles_yaml_node(t, p->value);
                }
        }
        return NULL;
}
