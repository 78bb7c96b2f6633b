/* --dry-run's plan for its caller (run_plan.h). The START record is built for
 * lineage, which is root's; the plan goes to whoever asked, so it is cut
 * down here to what docs/security.md lets that caller see. */
#include "supervisor/run/run_plan.h"

#include <stdlib.h>
#include <string.h>

#include "residency/decide.h"

static json_object *get(json_object *o, const char *key)
{
        json_object *v = NULL;
        return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static void del(json_object *o, const char *key)
{
        if (o)
                json_object_object_del(o, key);
}

/* The raw plaintext's content digest, wherever START carries it for input i:
 * the standard version facet, aidp_digest, and its entry in the views facet. */
static void drop_digest(json_object *input, json_object *view_entry)
{
        json_object *facets = get(input, "facets");
        if (facets) {
                del(facets, "version");
                json_object *dg = get(facets, "aidp_digest");
                del(dg, "algorithm");
                del(dg, "value");
        }
        del(view_entry, "digest");
}

/* Of the decisions only the denials: each is a failed check, which the
 * denial message names already (the first, and "N more"). A passed check
 * would tell what the header holds beyond that (a classification under the
 * role's maximum, a residency that matched). */
static void keep_failures(json_object *policy)
{
        del(policy, "trail");
        json_object *all = get(policy, "decisions");
        if (!all)
                return;
        json_object *kept = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(all); i++) {
                json_object *d = json_object_array_get_idx(all, i), *v = get(d, "decision");
                if (v && !strcmp(json_object_get_string(v), "deny"))
                        json_object_array_add(kept, json_object_get(d));
        }
        json_object_object_add(policy, "decisions", kept);
}

void aidp_run_plan_redact(json_object *ev, const struct aidp_run_result *res, bool denied)
{
        json_object *facets = get(get(ev, "run"), "facets");
        json_object *inputs = get(ev, "inputs");
        json_object *views = get(get(facets, "aidp_view"), "datasets");
        size_t n = inputs ? json_object_array_length(inputs) : 0;
        if (denied) {
                /* The headers were read to decide; a caller the policy refused
                 * learns nothing from them (as `aidp inspect` refused). */
                for (size_t i = 0; i < n && i < res->n_inputs; i++) {
                        json_object *in = json_object_array_get_idx(inputs, i);
                        json_object_object_add(in, "name",
                                               json_object_new_string(res->inputs[i].path));
                        del(in, "facets");
                }
                del(facets, "aidp_view");
                keep_failures(get(facets, "aidp_policy"));
                return;
        }
        /* The job receives a view, not the plaintext: the plaintext's digest is
         * for callers the policy lets unseal (docs/sealed-data.md, "What the
         * job received"); what the job received has its own digest, known
         * once /data is filled (the run's summary). */
        for (size_t i = 0; i < n && i < res->n_inputs; i++)
                if (res->inputs[i].view[0])
                        drop_digest(json_object_array_get_idx(inputs, i),
                                    views ? json_object_array_get_idx(views, i) : NULL);
}

char *aidp_run_plan_policy_text(const struct aidp_run_policy *p, bool denied)
{
        if (!p->enforced || !p->decided)
                return NULL;
        if (!denied)
                return aidp_residency_decision_to_text(&p->decision);
        /* The same printer on the decision without the inputs' facts, views,
         * output inheritance and key: the request's summary and the failures. */
        const struct aidp_decision *d = &p->decision;
        struct aidp_decision cut = {
                .allow = d->allow,
                .decided = d->decided,
                .audit = d->audit,
                .op = d->op,
                .user = d->user,
                .uid = d->uid,
                .profile = d->profile,
                .host_node = d->host_node,
                .host_region = d->host_region,
                .epoch = d->epoch,
        };
        struct aidp_reason *fails = calloc(d->n_reasons ? d->n_reasons : 1, sizeof *fails);
        if (!fails)
                return NULL;
        for (size_t i = 0; i < d->n_reasons; i++)
                if (d->reasons[i].result == AIDP_REASON_FAIL)
                        fails[cut.n_reasons++] = d->reasons[i];
        cut.reasons = fails;
        char *text = aidp_residency_decision_to_text(&cut);
        free(fails);
        return text;
}
