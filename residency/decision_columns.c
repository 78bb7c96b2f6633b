/* The per-column view of a decided dataset (issue 18, `aidp policy explain`):
 * for every file pattern of its schema, each column's labels, the transform
 * the job would see and which role's view rule decided it.
 *
 * The transform is aidp_view_resolve()'s over every granting role's view,
 * exactly what the run applies. Which view and rule decided it is found
 * afterwards: each view is resolved alone, and the first view whose result
 * equals the combined one (the least restrictive) is named, with its column
 * rule, or the label rule that gives that transform. */
#include <errno.h>
#include <fnmatch.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/decide.h"
#include "residency/decide_internal.h"

#define RULE_MAX 160

/* Why one column looks as it does. */
struct column_why {
        const struct aidp_xform *x; /* the combined transform */
        const char *view;           /* the deciding view; NULL: none */
        const char *role;           /* a granting role that holds it */
        char rule[RULE_MAX];        /* "columns.zip", "labels.pii.*", "unlabelled", ... */
};

static bool xform_equal(const struct aidp_xform *a, const struct aidp_xform *b)
{
        if (a->kind != b->kind)
                return false;
        switch (a->kind) {
        case AIDP_XF_TOKENIZE:
                return a->mode == b->mode && !strcmp(a->domain, b->domain) &&
                       !strcmp(a->key_id, b->key_id);
        case AIDP_XF_MASK:
                return a->keep_first == b->keep_first && a->keep_last == b->keep_last &&
                       a->mask_char == b->mask_char && !strcmp(a->mask_with, b->mask_with);
        case AIDP_XF_GENERALIZE:
                if (a->gen != b->gen || a->keep != b->keep || a->width != b->width ||
                    a->n_bands != b->n_bands)
                        return false;
                for (size_t i = 0; i < a->n_bands; i++)
                        if (a->bands[i] != b->bands[i])
                                return false;
                return true;
        case AIDP_XF_RAW:
        case AIDP_XF_NULL:
        case AIDP_XF_DROP: return true;
        }
        return false;
}

static const char *role_of(const struct aidp_dataset_views *v, const char *view)
{
        for (size_t i = 0; i < v->n_grants; i++)
                if (v->grants[i].view && !strcmp(v->grants[i].view, view))
                        return v->grants[i].role;
        return "?";
}

/* The rule of view `vw` that gives column c the transform x. */
static void rule_of(const struct aidp_view *vw, const struct aidp_schema_column *c,
                    const struct aidp_xform *x, char *buf, size_t size)
{
        for (size_t i = 0; i < vw->n_columns; i++)
                if (!strcmp(vw->columns[i].match, c->name)) {
                        snprintf(buf, size, "columns.%s", c->name);
                        return;
                }
        for (size_t l = 0; l < c->n_labels; l++)
                for (size_t i = 0; i < vw->n_labels; i++)
                        if (!fnmatch(vw->labels[i].match, c->labels[l], 0) &&
                            xform_equal(&vw->labels[i].x, x)) {
                                snprintf(buf, size, "labels.%s (label %s)", vw->labels[i].match,
                                         c->labels[l]);
                                return;
                        }
        /* Only a label without any rule makes the view drop a labelled column
         * that no rule of its own drops. */
        for (size_t l = 0; l < c->n_labels; l++) {
                bool ruled = false;
                for (size_t i = 0; i < vw->n_labels && !ruled; i++)
                        ruled = !fnmatch(vw->labels[i].match, c->labels[l], 0);
                if (!ruled) {
                        snprintf(buf, size, "label %s has no rule: drop", c->labels[l]);
                        return;
                }
        }
        snprintf(buf, size, "labels");
}

/* Resolve the file with all views and with each alone; fill why[] per column. */
static int explain_file(const struct aidp_dataset_views *v, const struct aidp_schema_file *file,
                        struct aidp_file_view *all, struct column_why *why, aidp_error *err)
{
        int r = aidp_view_resolve(v->views, v->n_views, file, all, err);
        if (r < 0)
                return r;
        struct aidp_file_view *each = calloc(v->n_views ? v->n_views : 1, sizeof *each);
        if (!each)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t n_each = 0;
        for (; r >= 0 && n_each < v->n_views; n_each++)
                r = aidp_view_resolve(&v->views[n_each], 1, file, &each[n_each], err);
        if (r < 0)
                n_each--; /* the failed one filled nothing */
        for (size_t c = 0; r >= 0 && c < file->n_columns; c++) {
                const struct aidp_schema_column *col = &file->columns[c];
                struct column_why *w = &why[c];
                memset(w, 0, sizeof *w);
                w->x = &all->columns[c].x;
                if (col->n_labels == 0) {
                        snprintf(w->rule, sizeof w->rule, "unlabelled: passed as is");
                        continue;
                }
                if (v->n_views == 0) {
                        snprintf(w->rule, sizeof w->rule,
                                 v->n_grants ? "no granting role has a view: labelled columns "
                                               "are dropped"
                                             : "no role grants the dataset");
                        continue;
                }
                /* Exactly the combined transform first, else the same rank. */
                for (int pass = 0; pass < 2 && !w->view; pass++)
                        for (size_t k = 0; k < n_each && !w->view; k++) {
                                const struct aidp_xform *xk = &each[k].columns[c].x;
                                if (pass == 0 ? xform_equal(xk, w->x)
                                              : aidp_xform_rank(xk) == aidp_xform_rank(w->x)) {
                                        w->view = v->views[k]->name;
                                        w->role = role_of(v, w->view);
                                        rule_of(v->views[k], col, xk, w->rule, sizeof w->rule);
                                }
                        }
        }
        for (size_t k = 0; k < n_each; k++)
                aidp_file_view_free(&each[k]);
        free(each);
        if (r < 0)
                aidp_file_view_free(all);
        return r;
}

static const char *format_name(enum aidp_view_format f)
{
        return f == AIDP_VIEW_CSV ? "csv" : f == AIDP_VIEW_JSONL ? "jsonl" : "?";
}

static void labels_text(const struct aidp_schema_column *c, char *buf, size_t size)
{
        aidp_residency_join(buf, size, c->labels, c->n_labels);
        if (!c->n_labels)
                snprintf(buf, size, "-");
}

static const struct aidp_dataset_views *views_of(const struct aidp_decision *d, size_t i)
{
        static const struct aidp_dataset_views none;
        return d->views && i < d->n_datasets ? &d->views[i] : &none;
}

int aidp_residency_columns_to_text(const struct aidp_decision *d, size_t i,
                                   const struct aidp_schema *schema, char **ret, aidp_error *err)
{
        if (i >= d->n_datasets)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "the decision has no dataset %zu", i);
        const struct aidp_dataset_facts *ds = &d->datasets[i];
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        int r = 0;
        if (!schema || schema->n_files == 0)
                fprintf(f,
                        "  columns of %s: the dataset has no schema: every column is passed raw\n",
                        ds->name);
        for (size_t k = 0; schema && k < schema->n_files && r >= 0; k++) {
                const struct aidp_schema_file *file = &schema->files[k];
                struct aidp_file_view all;
                struct column_why *why = calloc(file->n_columns + 1, sizeof *why);
                if (!why) {
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                        break;
                }
                r = explain_file(views_of(d, i), file, &all, why, err);
                if (r >= 0) {
                        fprintf(f, "  columns of %s, files %s (%s):\n", ds->name, file->pattern,
                                format_name(file->format));
                        for (size_t c = 0; c < file->n_columns; c++) {
                                char labels[256], xf[256];
                                labels_text(&file->columns[c], labels, sizeof labels);
                                aidp_xform_describe(why[c].x, xf, sizeof xf);
                                fprintf(f, "    %-20s [%s] -> %s: ", file->columns[c].name, labels,
                                        xf);
                                if (why[c].view)
                                        fprintf(f, "view %s (roles.%s) %s\n", why[c].view,
                                                why[c].role, why[c].rule);
                                else
                                        fprintf(f, "%s\n", why[c].rule);
                        }
                        aidp_file_view_free(&all);
                }
                free(why);
        }
        if (fclose(f) != 0 && r >= 0)
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put)

static int jpush(struct json_object *a, struct json_object *v)
{
        if (!v || json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return -1;
        }
        return 0;
}

static struct json_object *column_json(const struct aidp_schema_column *c,
                                       const struct column_why *w)
{
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        char xf[256];
        aidp_xform_describe(w->x, xf, sizeof xf);
        if (!o || aidp_residency_json_add_str(o, "column", c->name) < 0)
                return NULL;
        struct json_object *labels = json_object_new_array();
        if (aidp_residency_json_add(o, "labels", labels) < 0)
                return NULL;
        for (size_t l = 0; l < c->n_labels; l++)
                if (jpush(labels, json_object_new_string(c->labels[l])) < 0)
                        return NULL;
        if (aidp_residency_json_add_str(o, "transform", xf) < 0 ||
            aidp_residency_json_add_str(o, "view", w->view) < 0 ||
            aidp_residency_json_add_str(o, "role", w->view ? w->role : NULL) < 0 ||
            aidp_residency_json_add_str(o, "rule", w->rule) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int file_json(const struct aidp_dataset_views *v, const struct aidp_schema_file *file,
                     struct json_object *files, aidp_error *err)
{
        struct json_object *o = json_object_new_object();
        if (jpush(files, o) < 0 || aidp_residency_json_add_str(o, "pattern", file->pattern) < 0 ||
            aidp_residency_json_add_str(o, "format", format_name(file->format)) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct json_object *cols = json_object_new_array();
        if (aidp_residency_json_add(o, "columns", cols) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        _cleanup_free_ struct column_why *why = calloc(file->n_columns + 1, sizeof *why);
        if (!why)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct aidp_file_view all;
        int r = explain_file(v, file, &all, why, err);
        if (r < 0)
                return r;
        for (size_t c = 0; c < file->n_columns && r >= 0; c++)
                r = jpush(cols, column_json(&file->columns[c], &why[c]));
        aidp_file_view_free(&all);
        if (r < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

int aidp_residency_columns_to_json(const struct aidp_decision *d, size_t i,
                                   const struct aidp_schema *schema, struct json_object **ret,
                                   aidp_error *err)
{
        if (i >= d->n_datasets)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "the decision has no dataset %zu", i);
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        struct json_object *files = json_object_new_array();
        if (!o || aidp_residency_json_add_str(o, "dataset", d->datasets[i].name) < 0 ||
            aidp_residency_json_add(o, "schema",
                                    json_object_new_boolean(schema && schema->n_files)) < 0 ||
            aidp_residency_json_add(o, "files", files) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t k = 0; schema && k < schema->n_files; k++) {
                int r = file_json(views_of(d, i), &schema->files[k], files, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}
