/* Column-level views in the decision (issue 18): per dataset, the views of
 * every held role that grants it. Resolving them against a file's schema is
 * views/view_resolve.c's; the decision only says which views apply. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "residency/decide_internal.h"

static char *dup_or_null(const char *s, bool *oom)
{
        if (!s || *oom)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

void aidp_residency_decide_views(struct aidp_dctx *c, size_t i,
                                 const struct aidp_role *const *roles, size_t n)
{
        struct aidp_dataset_views *v = &c->d->views[i];
        if (c->oom || n == 0)
                return;
        v->grants = calloc(n, sizeof *v->grants);
        v->views = calloc(n, sizeof *v->views);
        if (!v->grants || !v->views) {
                c->oom = true;
                return;
        }
        bool oom = false;
        for (size_t k = 0; k < n && !oom; k++) {
                const struct aidp_policy_view *pv = roles[k]->view;
                struct aidp_view_grant *g = &v->grants[v->n_grants++];
                g->role = dup_or_null(roles[k]->name, &oom);
                if (!pv)
                        continue;
                char src[512];
                snprintf(src, sizeof src, "%s:%u", pv->loc.file ? pv->loc.file : "?", pv->loc.line);
                g->view = dup_or_null(pv->view.name, &oom);
                g->source = dup_or_null(src, &oom);
                /* Two roles with one view: resolving it twice changes nothing. */
                bool dup = false;
                for (size_t j = 0; j < v->n_views && !dup; j++)
                        dup = v->views[j] == &pv->view;
                if (!dup)
                        v->views[v->n_views++] = &pv->view;
        }
        if (oom)
                c->oom = true;
}

void aidp_residency_views_free(struct aidp_dataset_views *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                for (size_t k = 0; k < v[i].n_grants; k++) {
                        free(v[i].grants[k].role);
                        free(v[i].grants[k].view);
                        free(v[i].grants[k].source);
                }
                free(v[i].grants);
                free(v[i].views);
        }
        free(v);
}

int aidp_residency_decision_file_view(const struct aidp_decision *d, size_t i,
                                      const struct aidp_schema_file *file,
                                      struct aidp_file_view *ret, aidp_error *err)
{
        if (i >= d->n_datasets || !d->views)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "the decision has no dataset %zu", i);
        const struct aidp_dataset_views *v = &d->views[i];
        return aidp_view_resolve(v->views, v->n_views, file, ret, err);
}
