/* The one YAML walker: loading, error messages and the node checks every
 * caller shares. The table-driven walk is in yaml_walk.c. */
#include "common/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages and key paths are truncated on purpose when a document nests absurdly deep. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static int mark_err(const char *file, yaml_mark_t m, aidp_error *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int mark_err(const char *file, yaml_mark_t m, aidp_error *err, const char *fmt, ...)
{
        char msg[AIDP_ERROR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return aidp_error_set_at(err, AIDP_EXIT_CONFIG, file, (unsigned)m.line + 1,
                                 (unsigned)m.column + 1, "%s", msg);
}

/* libyaml's own position and words; the context says where the construct
 * that failed began ("while parsing a flow sequence" at the '['). */
static int parser_err(const char *file, const yaml_parser_t *p, aidp_error *err)
{
        if (p->error == YAML_MEMORY_ERROR)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        const char *what = p->problem ? p->problem : "invalid YAML";
        if (p->context)
                return mark_err(file, p->problem_mark, err,
                                "YAML syntax: %s (%s started at line %u column %u)", what,
                                p->context, (unsigned)p->context_mark.line + 1,
                                (unsigned)p->context_mark.column + 1);
        return mark_err(file, p->problem_mark, err, "YAML syntax: %s", what);
}

/* What one event adds to the prescan: an error, or 0. */
static int prescan_event(const struct aidp_yaml *y, const yaml_event_t *ev, int *depth, int *docs,
                         aidp_error *err)
{
        yaml_mark_t m = ev->start_mark;
        const char *anchor = NULL;
        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return mark_err(y->file, m, err,
                                "YAML aliases (*name) are not supported: found an alias, "
                                "expected the value written out");
        case YAML_SCALAR_EVENT: anchor = (const char *)ev->data.scalar.anchor; break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = (const char *)ev->data.sequence_start.anchor;
                (*depth)++;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = (const char *)ev->data.mapping_start.anchor;
                (*depth)++;
                break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: (*depth)--; break;
        case YAML_DOCUMENT_START_EVENT:
                if (++*docs > 1)
                        return mark_err(y->file, m, err,
                                        "found a second YAML document, expected one %s per file",
                                        y->what);
                break;
        case YAML_NO_EVENT:
        case YAML_STREAM_START_EVENT:
        case YAML_STREAM_END_EVENT:
        case YAML_DOCUMENT_END_EVENT: break;
        }
        if (anchor)
                return mark_err(y->file, m, err,
                                "YAML anchors (&%s) are not supported: a %s is reviewed as written",
                                anchor, y->what);
        if (*depth > AIDP_YAML_DEPTH_MAX)
                return mark_err(y->file, m, err, "nesting deeper than %d levels",
                                AIDP_YAML_DEPTH_MAX);
        return 0;
}

/* First pass over the events: refuse what the document API would silently
 * resolve (aliases can blow a small file up into a huge tree, and a second
 * document would be ignored) and bound the nesting. */
static int prescan(const struct aidp_yaml *y, const char *buf, size_t len, aidp_error *err)
{
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
        int depth = 0, docs = 0, rc = 0;
        for (;;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&p, &ev)) {
                        rc = parser_err(y->file, &p, err);
                        break;
                }
                yaml_event_type_t type = ev.type;
                rc = prescan_event(y, &ev, &depth, &docs, err);
                yaml_event_delete(&ev);
                if (rc || type == YAML_STREAM_END_EVENT)
                        break;
        }
        yaml_parser_delete(&p);
        return rc;
}

int aidp_yaml_load(struct aidp_yaml *y, const char *file, const char *what, const char *buf,
                   size_t len, unsigned flags, aidp_error *err)
{
        memset(y, 0, sizeof *y);
        y->what = what ? what : "document";
        y->err = err;
        y->file = strdup(file ? file : "<input>");
        if (!y->file)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (memchr(buf, '\0', len))
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, y->file, 1, 1,
                                         "found a NUL byte, expected a YAML text file");
        int rc = prescan(y, buf, len, err);
        if (rc < 0)
                return rc;
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
        if (!yaml_parser_load(&p, &y->doc)) {
                rc = parser_err(y->file, &p, err);
                yaml_parser_delete(&p);
                return rc;
        }
        yaml_parser_delete(&p);
        y->loaded = true;
        if (!yaml_document_get_root_node(&y->doc) && !(flags & AIDP_YAML_EMPTY_OK))
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, y->file, 1, 1,
                                         "found an empty file, expected a %s", y->what);
        return 0;
}

void aidp_yaml_free(struct aidp_yaml *y)
{
        if (y->loaded)
                yaml_document_delete(&y->doc);
        free(y->file);
        memset(y, 0, sizeof *y);
}

yaml_node_t *aidp_yaml_root(struct aidp_yaml *y)
{
        return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

yaml_node_t *aidp_yaml_node(struct aidp_yaml *y, int idx)
{
        return yaml_document_get_node(&y->doc, idx);
}

static int verr(const struct aidp_yaml *y, const yaml_node_t *n, aidp_error *err, const char *path,
                const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static int verr(const struct aidp_yaml *y, const yaml_node_t *n, aidp_error *err, const char *path,
                const char *fmt, va_list ap)
{
        char msg[AIDP_ERROR_MSG_MAX];
        vsnprintf(msg, sizeof msg, fmt, ap);
        unsigned line = n ? (unsigned)n->start_mark.line + 1 : 1;
        unsigned col = n ? (unsigned)n->start_mark.column + 1 : 1;
        if (path && *path)
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, y->file, line, col, "%s: %s", path,
                                         msg);
        return aidp_error_set_at(err, AIDP_EXIT_CONFIG, y->file, line, col, "%s", msg);
}

int aidp_yaml_err(const struct aidp_yaml *y, const yaml_node_t *n, aidp_error *err,
                  const char *path, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = verr(y, n, err, path, fmt, ap);
        va_end(ap);
        return r;
}

int aidp_yaml_fail(const struct aidp_yaml *y, const yaml_node_t *n, const char *path,
                   const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = verr(y, n, y->err, path, fmt, ap);
        va_end(ap);
        return r;
}

void aidp_yaml_path_key(char *out, const char *path, const char *key)
{
        if (path && path[0])
                snprintf(out, AIDP_YAML_PATH_MAX, "%s.%s", path, key);
        else
                snprintf(out, AIDP_YAML_PATH_MAX, "%s", key);
}

void aidp_yaml_path_index(char *out, const char *path, size_t i)
{
        snprintf(out, AIDP_YAML_PATH_MAX, "%s[%zu]", path ? path : "", i);
}

bool aidp_yaml_is_null(const yaml_node_t *n)
{
        if (!n)
                return true;
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *v = (const char *)n->data.scalar.value;
        return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
               !strcmp(v, "NULL");
}

void aidp_yaml_found(const yaml_node_t *n, char *buf, size_t len)
{
        if (!n || aidp_yaml_is_null(n)) {
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

const char *aidp_yaml_str(const yaml_node_t *n)
{
        if (!n || n->type != YAML_SCALAR_NODE)
                return NULL;
        return (const char *)n->data.scalar.value;
}

int aidp_yaml_expect(struct aidp_yaml *y, yaml_node_t *n, yaml_node_type_t type, const char *path,
                     const char *expected, aidp_error *err)
{
        if (n && n->type == type && !(type == YAML_SCALAR_NODE && aidp_yaml_is_null(n)))
                return 0;
        char found[80];
        aidp_yaml_found(n, found, sizeof found);
        return aidp_yaml_err(y, n, err, path, "found %s, expected %s", found, expected);
}

int aidp_yaml_scalar(struct aidp_yaml *y, yaml_node_t *n, const char *path, const char *expected,
                     const char **out, aidp_error *err)
{
        int rc = aidp_yaml_expect(y, n, YAML_SCALAR_NODE, path, expected, err);
        if (rc < 0)
                return rc;
        *out = (const char *)n->data.scalar.value;
        return 0;
}

int aidp_yaml_bool(struct aidp_yaml *y, yaml_node_t *n, const char *path, bool *out,
                   aidp_error *err)
{
        const char *s;
        int rc = aidp_yaml_scalar(y, n, path, "true or false", &s, err);
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
        return aidp_yaml_err(y, n, err, path, "found '%s', expected true or false", s);
}

yaml_node_t *aidp_yaml_get(struct aidp_yaml *y, yaml_node_t *map, const char *key,
                           yaml_node_t **key_node)
{
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_yaml_node(y, p->key);
                const char *ks = aidp_yaml_str(k);
                if (ks && !strcmp(ks, key)) {
                        if (key_node)
                                *key_node = k;
                        return aidp_yaml_node(y, p->value);
                }
        }
        return NULL;
}
