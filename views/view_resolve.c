/* A file's view from the views of every role that grants the dataset
 * (views/view.h, aidp_view_resolve):
 *   - within one view a `columns` rule for the column wins; otherwise each
 *     label takes the most restrictive `labels` rule whose glob matches it,
 *     a label no rule matches is DROP, and the column takes the most
 *     restrictive of its labels';
 *   - across views the least restrictive result wins (each role grants what
 *     it grants; on a tie the first view's rule);
 *   - no view: every labelled column DROP; a column without labels is RAW. */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "views/views_internal.h"

static const struct aidp_xform XF_DROP = {.kind = AIDP_XF_DROP};
static const struct aidp_xform XF_RAW = {.kind = AIDP_XF_RAW};

/* The most restrictive rule of v matching label; NULL when none matches. */
static const struct aidp_xform *label_rule(const struct aidp_view *v, const char *label)
{
        const struct aidp_xform *best = NULL;
        for (size_t i = 0; i < v->n_labels; i++)
                if (fnmatch(v->labels[i].match, label, 0) == 0 &&
                    (!best || aidp_xform_rank(&v->labels[i].x) > aidp_xform_rank(best)))
                        best = &v->labels[i].x;
        return best;
}

static const struct aidp_xform *one_view(const struct aidp_view *v,
                                         const struct aidp_schema_column *c)
{
        for (size_t i = 0; i < v->n_columns; i++)
                if (!strcmp(v->columns[i].match, c->name))
                        return &v->columns[i].x;
        if (c->n_labels == 0)
                return &XF_RAW;
        const struct aidp_xform *worst = NULL;
        for (size_t l = 0; l < c->n_labels; l++) {
                const struct aidp_xform *x = label_rule(v, c->labels[l]);
                if (!x)
                        return &XF_DROP;
                if (!worst || aidp_xform_rank(x) > aidp_xform_rank(worst))
                        worst = x;
        }
        return worst;
}

int aidp_view_resolve(const struct aidp_view *const *views, size_t n,
                      const struct aidp_schema_file *file, struct aidp_file_view *out,
                      aidp_error *err)
{
        memset(out, 0, sizeof *out);
        out->file = file;
        if (file->n_columns && !(out->columns = calloc(file->n_columns, sizeof *out->columns)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t c = 0; c < file->n_columns; c++) {
                const struct aidp_schema_column *col = &file->columns[c];
                const struct aidp_xform *best = col->n_labels ? &XF_DROP : &XF_RAW;
                for (size_t i = 0; i < n; i++) {
                        const struct aidp_xform *x = one_view(views[i], col);
                        if (i == 0 || aidp_xform_rank(x) < aidp_xform_rank(best))
                                best = x;
                }
                out->columns[c].column = col->name;
                out->columns[c].x = *best;
        }
        out->n_columns = file->n_columns;
        return 0;
}

void aidp_file_view_free(struct aidp_file_view *fv)
{
        if (!fv)
                return;
        free(fv->columns);
        memset(fv, 0, sizeof *fv);
}

bool aidp_file_view_is_raw(const struct aidp_file_view *fv)
{
        for (size_t i = 0; i < fv->n_columns; i++)
                if (fv->columns[i].x.kind != AIDP_XF_RAW)
                        return false;
        return true;
}
