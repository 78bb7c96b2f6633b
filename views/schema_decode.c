/* Decoding the schema's canonical bytes (schema_codec.c) from a sealed
 * header, and the rest of the schema's life: match, free. */
#include <errno.h>
#include <fnmatch.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "views/views_internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static const char *member_str(json_object *o, const char *key)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static json_object *member_array(json_object *o, const char *key)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
                return NULL;
        return v;
}

static int decode_column(json_object *co, struct aidp_schema_column *c)
{
        const char *name =
                json_object_is_type(co, json_type_object) ? member_str(co, "name") : NULL;
        json_object *labels = name ? member_array(co, "labels") : NULL;
        if (!labels || json_object_array_length(labels) > AIDP_VIEW_LABELS_MAX)
                return -EBADMSG;
        if (!(c->name = strdup(name)))
                return -ENOMEM;
        for (size_t l = 0; l < json_object_array_length(labels); l++) {
                json_object *lo = json_object_array_get_idx(labels, l);
                if (!json_object_is_type(lo, json_type_string))
                        return -EBADMSG;
                if (!(c->labels[c->n_labels] = strdup(json_object_get_string(lo))))
                        return -ENOMEM;
                c->n_labels++;
        }
        return 0;
}

static int decode_file(json_object *fo, struct aidp_schema_file *f)
{
        if (!json_object_is_type(fo, json_type_object))
                return -EBADMSG;
        const char *pattern = member_str(fo, "pattern"), *format = member_str(fo, "format");
        json_object *cols = member_array(fo, "columns");
        if (!pattern || !format || !cols || json_object_array_length(cols) > AIDP_VIEW_COLUMNS_MAX)
                return -EBADMSG;
        f->format = !strcmp(format, "csv")     ? AIDP_VIEW_CSV
                    : !strcmp(format, "jsonl") ? AIDP_VIEW_JSONL
                                               : 0;
        if (!(f->pattern = strdup(pattern)))
                return -ENOMEM;
        size_t n = json_object_array_length(cols);
        if (n && !(f->columns = calloc(n, sizeof *f->columns)))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = decode_column(json_object_array_get_idx(cols, i), &f->columns[i]);
                f->n_columns += f->columns[i].name != NULL;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_root(json_object *root, struct aidp_schema *s)
{
        json_object *v, *files = member_array(root, "files");
        if (!json_object_object_get_ex(root, "v", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) != 1 || !files)
                return -EBADMSG;
        size_t n = json_object_array_length(files);
        if (n == 0 || n > AIDP_VIEW_FILES_MAX)
                return -EBADMSG;
        if (!(s->files = calloc(n, sizeof *s->files)))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                s->n_files++;
                int r = decode_file(json_object_array_get_idx(files, i), &s->files[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int aidp_schema_decode(const uint8_t *buf, size_t len, struct aidp_schema *out, aidp_error *err)
{
        if (len == 0 || len > AIDP_VIEW_SCHEMA_ENCODED_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "schema in the header: %zu bytes, expected 1 to %d", len,
                                      AIDP_VIEW_SCHEMA_ENCODED_MAX);
        struct json_tokener *tok = json_tokener_new();
        if (!tok)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        _cleanup_(json_object_putp) json_object *root =
                json_tokener_parse_ex(tok, (const char *)buf, (int)len);
        bool whole = root && json_tokener_get_error(tok) == json_tokener_success &&
                     json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        struct aidp_schema s = {0};
        int r = whole && json_object_is_type(root, json_type_object) ? decode_root(root, &s)
                                                                     : -EBADMSG;
        char msg[512] = "not the canonical schema encoding";
        if (r >= 0 && aidp_schema_check(&s, msg, sizeof msg) < 0)
                r = -EBADMSG;
        if (r >= 0) {
                /* Canonical: only the bytes encode() writes for this schema. */
                uint8_t *again = NULL;
                size_t n = 0;
                aidp_error e2 = {0};
                r = aidp_schema_encode(&s, &again, &n, &e2);
                if (r >= 0 && (n != len || memcmp(again, buf, len)))
                        r = -EBADMSG;
                free(again);
        }
        if (r < 0) {
                aidp_schema_free(&s);
                if (r == -ENOMEM)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG, "schema in the header: %s",
                                      msg);
        }
        *out = s;
        return 0;
}

void aidp_schema_free(struct aidp_schema *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n_files; i++) {
                struct aidp_schema_file *f = &s->files[i];
                for (size_t c = 0; c < f->n_columns; c++) {
                        free(f->columns[c].name);
                        for (size_t l = 0; l < f->columns[c].n_labels; l++)
                                free(f->columns[c].labels[l]);
                }
                free(f->columns);
                free(f->pattern);
        }
        free(s->files);
        memset(s, 0, sizeof *s);
}

const struct aidp_schema_file *aidp_schema_match(const struct aidp_schema *s, const char *relpath)
{
        for (size_t i = 0; s && relpath && i < s->n_files; i++)
                if (fnmatch(s->files[i].pattern, relpath, FNM_PATHNAME) == 0)
                        return &s->files[i];
        return NULL;
}
