/* schema.yaml (views/view.h) through the strict walker of common/yaml.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "common/yaml.h"
#include "views/views_internal.h"

#define SCHEMA_API_VERSION "aidp/v1"

static int oom(struct aidp_yaml *y)
{
        return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
}

static int f_api_version(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r >= 0 && strcmp(s, SCHEMA_API_VERSION))
                return aidp_yaml_fail(y, v, path, "found '%s', expected %s", s, SCHEMA_API_VERSION);
        return r;
}

static int f_kind(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r >= 0 && strcmp(s, "Schema"))
                return aidp_yaml_fail(y, v, path, "found '%s', expected Schema", s);
        return r;
}

static int f_pattern(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_schema_file *f = ctx;
        int r = aidp_yaml_strdup(y, v, path, &f->pattern);
        if (r >= 0 && !aidp_views_is_pattern(f->pattern))
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected a relative path glob (no '..', no "
                                      "empty or '.' component)",
                                      f->pattern);
        return r;
}

static int f_format(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_schema_file *f = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "csv"))
                f->format = AIDP_VIEW_CSV;
        else if (!strcmp(s, "jsonl"))
                f->format = AIDP_VIEW_JSONL;
        else
                return aidp_yaml_fail(y, v, path, "found '%s', expected csv or jsonl", s);
        return 0;
}

static int one_column(struct aidp_yaml *y, const char *key, yaml_node_t *keynode,
                      yaml_node_t *value, const char *path, void *ctx)
{
        struct aidp_schema_file *f = ctx;
        if (f->n_columns >= AIDP_VIEW_COLUMNS_MAX)
                return aidp_yaml_fail(y, keynode, path,
                                      "found more than %d columns, expected fewer",
                                      AIDP_VIEW_COLUMNS_MAX);
        if (!key[0])
                return aidp_yaml_fail(y, keynode, path, "found an empty column name");
        if (f->format == AIDP_VIEW_JSONL && !aidp_views_is_pointer(key))
                return aidp_yaml_fail(y, keynode, path,
                                      "found '%s', expected a JSON pointer (\"/a/b\", RFC 6901) "
                                      "for a jsonl file",
                                      key);
        if (aidp_views_utf8_check((const uint8_t *)key, strlen(key)) != strlen(key))
                return aidp_yaml_fail(y, keynode, path, "found a column name that is not UTF-8");
        _cleanup_(aidp_strv_freep) char **labels = NULL;
        size_t n = 0;
        int r = aidp_yaml_strlist(y, value, path, aidp_views_is_label,
                                  "label ([a-z0-9][a-z0-9._-]*, at most 63 characters)", &labels,
                                  &n);
        if (r < 0)
                return r;
        if (n > AIDP_VIEW_LABELS_MAX)
                return aidp_yaml_fail(y, value, path, "found %zu labels, expected at most %d", n,
                                      AIDP_VIEW_LABELS_MAX);
        struct aidp_schema_column *c = &f->columns[f->n_columns];
        memset(c, 0, sizeof *c);
        if (!(c->name = strdup(key)))
                return oom(y);
        f->n_columns++;
        for (size_t i = 0; i < n; i++)
                c->labels[i] = TAKE_PTR(labels[i]);
        c->n_labels = n;
        aidp_schema_sort_labels(c);
        return 0;
}

static int f_columns(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_schema_file *f = ctx;
        if (!f->columns && !(f->columns = calloc(AIDP_VIEW_COLUMNS_MAX, sizeof *f->columns)))
                return oom(y);
        return aidp_yaml_map(y, v, path, one_column, f);
}

static int one_file(struct aidp_yaml *y, yaml_node_t *item, const char *path, size_t index,
                    void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"pattern", f_pattern, true},
                {"format", f_format, true},
                {"columns", f_columns, true},
        };
        struct aidp_schema *s = ctx;
        if (index >= AIDP_VIEW_FILES_MAX)
                return aidp_yaml_fail(y, item, path, "found more than %d files, expected fewer",
                                      AIDP_VIEW_FILES_MAX);
        struct aidp_schema_file *f = &s->files[s->n_files++];
        int r = aidp_yaml_fields(y, item, path, fields, ARRAY_SIZE(fields), f);
        /* The first matching entry wins (aidp_schema_match): a repeated
         * pattern would never apply, and a reader comparing entries by
         * pattern (a re-seal's label check) could be shown the wrong one. */
        for (size_t i = 0; r >= 0 && i + 1 < s->n_files; i++)
                if (!strcmp(s->files[i].pattern, f->pattern))
                        return aidp_yaml_fail(y, item, path,
                                              "found pattern '%s' again (files[%zu] has it), "
                                              "expected each pattern once",
                                              f->pattern, i);
        return r;
}

static int f_files(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_schema *s = ctx;
        if (aidp_yaml_is_null(v) || v->type != YAML_SEQUENCE_NODE ||
            v->data.sequence.items.top == v->data.sequence.items.start)
                return aidp_yaml_fail(y, v, path, "found no file entry, expected a list of them");
        if (!(s->files = calloc(AIDP_VIEW_FILES_MAX, sizeof *s->files)))
                return oom(y);
        return aidp_yaml_seq(y, v, path, one_file, s);
}

int aidp_schema_parse_yaml(const char *buf, size_t len, const char *file, struct aidp_schema *out,
                           aidp_error *err)
{
        static const struct aidp_yaml_field fields[] = {
                {"apiVersion", f_api_version, true},
                {"kind", f_kind, true},
                {"files", f_files, true},
        };
        if (!file)
                file = "<schema>";
        if (len > AIDP_SCHEMA_INPUT_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EBADMSG, "%s: larger than %u bytes",
                                      file, AIDP_SCHEMA_INPUT_MAX);
        struct aidp_yaml y = {0};
        struct aidp_schema s = {0};
        int r = aidp_yaml_load(&y, file, "schema", buf, len, 0, err);
        yaml_node_t *root = r >= 0 ? aidp_yaml_root(&y) : NULL;
        if (r >= 0 && !root)
                r = aidp_error_set(err, AIDP_EXIT_CONFIG, EBADMSG, "%s: empty", file);
        if (r >= 0)
                r = aidp_yaml_fields(&y, root, "", fields, ARRAY_SIZE(fields), &s);
        char msg[512];
        if (r >= 0 && aidp_schema_check(&s, msg, sizeof msg) < 0)
                r = aidp_error_set_at(err, AIDP_EXIT_CONFIG, file, 1, 1, "%s", msg);
        aidp_yaml_free(&y);
        if (r < 0) {
                aidp_schema_free(&s);
                if (err && err->status != AIDP_EXIT_INTERNAL) {
                        err->status = AIDP_EXIT_CONFIG;
                        err->errnum = EBADMSG;
                }
                return err && err->errnum ? -err->errnum : -EBADMSG;
        }
        *out = s;
        return 0;
}
