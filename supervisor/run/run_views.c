/* Column views of a run (issue 18; docs/sealed-data.md, "Views at
 * injection"): the policy decision's views handed to the injection, and the
 * aidp_view facet of START. */
#define _GNU_SOURCE
#include "supervisor/run/run_views.h"

#include <stdio.h>
#include <string.h>

#include "supervisor/lineage/lineage.h"
#include "supervisor/run/run_internal.h"

/* The views of the roles that grant dataset i. A policy decided the run:
 * those views (none: every labelled column dropped, fail closed). No policy
 * decided (root's own run on a host without one): none applies, the data is
 * injected as sealed, and lineage says so. */
static void decision_views(const struct aidp_run_policy *p, size_t i, struct aidp_inject_view *v)
{
        v->decided = p->enforced && p->decided;
        if (!v->decided || !p->decision.views || i >= p->decision.n_datasets)
                return;
        v->views = (const struct aidp_view *const *)p->decision.views[i].views;
        v->n = p->decision.views[i].n_views;
}

static void name_views(const struct aidp_inject_view *v, char *out, size_t cap)
{
        size_t off = 0;
        out[0] = '\0';
        if (!v->n) {
                snprintf(out, cap, "-");
                return;
        }
        for (size_t k = 0; k < v->n && off < cap; k++)
                off += (size_t)snprintf(out + off, cap - off, "%s%s", k ? "+" : "",
                                        v->views[k]->name ? v->views[k]->name : "?");
}

int aidp_run_views_resolve(struct run *r, aidp_error *err)
{
        struct aidp_inject *d = &r->inject;
        for (size_t i = 0; i < d->n; i++)
                decision_views(&r->policy, i, &d->view[i]);
        int rc = aidp_inject_views_resolve(d, err);
        if (rc < 0)
                return rc;
        for (size_t i = 0; i < d->n; i++)
                if (d->view[i].applies)
                        name_views(&d->view[i], r->res->inputs[i].view,
                                   sizeof r->res->inputs[i].view);
        return 0;
}

static json_object *column_json(const struct aidp_schema_column *sc,
                                const struct aidp_column_view *cv)
{
        json_object *c = json_object_new_object();
        char desc[256];
        aidp_xform_describe(&cv->x, desc, sizeof desc);
        json_object_object_add(c, "column", json_object_new_string(sc->name));
        json_object *labels = json_object_new_array();
        for (size_t l = 0; l < sc->n_labels; l++)
                json_object_array_add(labels, json_object_new_string(sc->labels[l]));
        json_object_object_add(c, "labels", labels);
        json_object_object_add(c, "transform", json_object_new_string(desc));
        if (cv->x.kind == AIDP_XF_TOKENIZE) {
                json_object_object_add(c, "keyId", json_object_new_string(cv->x.key_id));
                json_object_object_add(c, "domain", json_object_new_string(cv->x.domain));
        }
        return c;
}

static json_object *dataset_json(const struct aidp_inject *d, size_t i,
                                 const struct aidp_run_dataset *info)
{
        const struct aidp_inject_view *v = &d->view[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "dataset", json_object_new_string(info->name));
        const char *how = !v->has_schema ? "sealed (no schema)"
                          : !v->decided  ? "sealed (no policy decided a view)"
                          : !v->applies  ? "raw (every column's view is raw)"
                                         : "viewed";
        json_object_object_add(o, "injected", json_object_new_string(how));
        if (!v->decided || !v->has_schema)
                return o;
        json_object *views = json_object_new_array();
        for (size_t k = 0; k < v->n; k++)
                json_object_array_add(views, json_object_new_string(v->views[k]->name));
        json_object_object_add(o, "views", views);
        json_object *files = json_object_new_array();
        for (size_t k = 0; k < v->n_files; k++) {
                const struct aidp_file_view *fv = &v->files[k];
                json_object *f = json_object_new_object();
                json_object_object_add(f, "pattern", json_object_new_string(fv->file->pattern));
                json_object_object_add(f, "format",
                                       json_object_new_string(fv->file->format == AIDP_VIEW_JSONL
                                                                      ? "jsonl"
                                                                      : "csv"));
                json_object *cols = json_object_new_array();
                for (size_t c = 0; c < fv->n_columns; c++)
                        json_object_array_add(cols,
                                              column_json(&fv->file->columns[c], &fv->columns[c]));
                json_object_object_add(f, "columns", cols);
                json_object_array_add(files, f);
        }
        json_object_object_add(o, "files", files);
        return o;
}

/* START's aidp_view run facet: per input, how it reaches the job and, for a
 * view, per file pattern and column the transform, key id and token domain. */
static void views_annotate(const struct run *r, json_object *ev)
{
        const struct aidp_inject *d = &r->inject;
        bool any = false;
        for (size_t i = 0; i < d->n; i++)
                any |= d->view[i].has_schema;
        if (!any)
                return;
        json_object *f = aidp_lineage_run_facet(ev, "aidp_view");
        json_object *ds = json_object_new_array();
        for (size_t i = 0; i < d->n; i++)
                json_object_array_add(ds, dataset_json(d, i, &r->res->inputs[i]));
        json_object_object_add(f, "datasets", ds);
}

void aidp_run_annotate(const void *arg, json_object *ev)
{
        const struct run *r = arg;
        aidp_run_policy_annotate(&r->policy, ev);
        views_annotate(r, ev);
}
