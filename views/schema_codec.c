/* The schema's canonical bytes for the sealed header (TLV type 14): compact
 * JSON through json-c,
 *   {"v":1,"files":[{"pattern":P,"format":"csv"|"jsonl",
 *                    "columns":[{"name":N,"labels":[L,...]},...]},...]}
 * Decoding accepts only what encoding produces (it re-encodes and compares),
 * so one schema has one encoding and the header stays canonical. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "views/views_internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

void aidp_schema_sort_labels(struct aidp_schema_column *c)
{
        qsort(c->labels, c->n_labels, sizeof c->labels[0], cmp_str);
}

static int check_file(const struct aidp_schema_file *f, size_t fi, char *msg, size_t len)
{
        if (!f->pattern || !aidp_views_is_pattern(f->pattern))
                return aidp_text_printf(msg, len, "files[%zu]: bad pattern", fi), -1;
        if (f->format != AIDP_VIEW_CSV && f->format != AIDP_VIEW_JSONL)
                return aidp_text_printf(msg, len, "files[%zu]: bad format", fi), -1;
        if (f->n_columns > AIDP_VIEW_COLUMNS_MAX || (f->n_columns && !f->columns))
                return aidp_text_printf(msg, len, "files[%zu]: too many columns", fi), -1;
        for (size_t i = 0; i < f->n_columns; i++) {
                const struct aidp_schema_column *c = &f->columns[i];
                if (!c->name || !c->name[0] ||
                    aidp_views_utf8_check((const uint8_t *)c->name, strlen(c->name)) !=
                            strlen(c->name) ||
                    (f->format == AIDP_VIEW_JSONL && !aidp_views_is_pointer(c->name)))
                        return aidp_text_printf(msg, len, "files[%zu].columns[%zu]: bad name", fi,
                                                i),
                               -1;
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(f->columns[j].name, c->name))
                                return aidp_text_printf(msg, len, "files[%zu]: column '%s' twice",
                                                        fi, c->name),
                                       -1;
                if (c->n_labels > AIDP_VIEW_LABELS_MAX)
                        return aidp_text_printf(msg, len,
                                                "files[%zu].columns[%zu]: too many labels", fi, i),
                               -1;
                for (size_t l = 0; l < c->n_labels; l++)
                        if (!c->labels[l] || !aidp_views_is_label(c->labels[l]) ||
                            (l && strcmp(c->labels[l - 1], c->labels[l]) >= 0))
                                return aidp_text_printf(msg, len,
                                                        "files[%zu].columns[%zu]: labels not "
                                                        "valid, sorted and unique",
                                                        fi, i),
                                       -1;
        }
        return 0;
}

int aidp_schema_check(const struct aidp_schema *s, char *msg, size_t len)
{
        if (s->n_files == 0 || s->n_files > AIDP_VIEW_FILES_MAX || !s->files)
                return aidp_text_printf(msg, len, "expected 1 to %d file entries",
                                        AIDP_VIEW_FILES_MAX),
                       -1;
        for (size_t i = 0; i < s->n_files; i++)
                if (check_file(&s->files[i], i, msg, len) < 0)
                        return -1;
        return 0;
}

static json_object *column_json(const struct aidp_schema_column *c)
{
        json_object *o = json_object_new_object(), *labels = json_object_new_array();
        if (!o || !labels) {
                json_object_put(o);
                json_object_put(labels);
                return NULL;
        }
        json_object_object_add(o, "name", json_object_new_string(c->name));
        for (size_t l = 0; l < c->n_labels; l++)
                json_object_array_add(labels, json_object_new_string(c->labels[l]));
        json_object_object_add(o, "labels", labels);
        return o;
}

static json_object *schema_json(const struct aidp_schema *s)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *files = json_object_new_array();
        if (!root || !files) {
                json_object_put(files);
                return NULL;
        }
        json_object_object_add(root, "v", json_object_new_int(1));
        json_object_object_add(root, "files", files);
        for (size_t i = 0; i < s->n_files; i++) {
                const struct aidp_schema_file *f = &s->files[i];
                json_object *fo = json_object_new_object(), *cols = json_object_new_array();
                if (!fo || !cols) {
                        json_object_put(fo);
                        json_object_put(cols);
                        return NULL;
                }
                json_object_array_add(files, fo);
                json_object_object_add(fo, "pattern", json_object_new_string(f->pattern));
                json_object_object_add(
                        fo, "format",
                        json_object_new_string(f->format == AIDP_VIEW_CSV ? "csv" : "jsonl"));
                json_object_object_add(fo, "columns", cols);
                for (size_t c = 0; c < f->n_columns; c++) {
                        json_object *co = column_json(&f->columns[c]);
                        if (!co || json_object_array_add(cols, co) < 0)
                                return NULL;
                }
        }
        return TAKE_PTR(root);
}

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

int aidp_schema_encode(const struct aidp_schema *s, uint8_t **buf, size_t *len, aidp_error *err)
{
        char msg[512];
        if (aidp_schema_check(s, msg, sizeof msg) < 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "schema: %s", msg);
        _cleanup_(json_object_putp) json_object *root = schema_json(s);
        if (!root)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t n;
        const char *text = json_object_to_json_string_length(root, JSON_FLAGS, &n);
        if (!text)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (n > AIDP_VIEW_SCHEMA_ENCODED_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG,
                                      "schema: %zu bytes encoded, at most %d fit the sealed header",
                                      n, AIDP_VIEW_SCHEMA_ENCODED_MAX);
        uint8_t *b = malloc(n ? n : 1);
        if (!b)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        memcpy(b, text, n);
        *buf = b;
        *len = n;
        return 0;
}
