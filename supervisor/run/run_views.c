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
        /* The output keeps the views that produced it in its sealed header
         * (the same JSON as START's facet), decided here, before START. */
        if (!r->o->output_dir)
                return 0;
        char out_name[AIDP_SEALED_NAME_MAX + 1];
        snprintf(out_name, sizeof out_name, "%s-out", r->res->run_id);
        return aidp_inject_produced(d, out_name, r->res->run_id, r->res->inputs, err);
}

/* START's aidp_view run facet: per input, how it reaches the job and, for a
 * view, per file pattern and column the transform, key id and token domain
 * (aidp_inject_view_json, which the output's produced-by record shares). */
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
                json_object_array_add(ds, aidp_inject_view_json(d, i, &r->res->inputs[i]));
        json_object_object_add(f, "datasets", ds);
}

void aidp_run_annotate(const void *arg, json_object *ev)
{
        const struct run *r = arg;
        aidp_run_policy_annotate(&r->policy, ev);
        views_annotate(r, ev);
}
