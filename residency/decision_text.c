/* The decision for a human: a header line, one line per reason, and what
 * the outputs inherit. Built in memory; the caller prints it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/cleanup.h"
#include "residency/decide.h"
#include "residency/decide_internal.h"

static const char *result_label(enum aidp_reason_result r)
{
        switch (r) {
        case AIDP_REASON_PASS: return "pass";
        case AIDP_REASON_FAIL: return "FAIL";
        case AIDP_REASON_INFO: return "info";
        case AIDP_REASON_RESULT_MAX: break;
        }
        return "?";
}

/* "  views of NAME: research (roles.researcher [access.yaml:40]), none
 * (roles.trainer: labelled columns dropped)", when some granting role has a
 * view (a policy without views: nothing, as before views existed). */
static void print_views(FILE *f, const struct aidp_decision *d, size_t i)
{
        const struct aidp_dataset_views *v = d->views ? &d->views[i] : NULL;
        if (!v || v->n_views == 0)
                return;
        fprintf(f, "  views of %s:", d->datasets[i].name);
        for (size_t k = 0; k < v->n_grants; k++) {
                const struct aidp_view_grant *g = &v->grants[k];
                if (g->view)
                        fprintf(f, "%s view %s (roles.%s [%s])", k ? "," : "", g->view, g->role,
                                g->source ? g->source : "?");
                else
                        fprintf(f, "%s no view (roles.%s: labelled columns dropped)", k ? "," : "",
                                g->role);
        }
        fprintf(f, "; per column the least restrictive wins\n");
}

char *aidp_residency_decision_to_text(const struct aidp_decision *d)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        char list[512];
        fprintf(f, "%s%s: %s by user %s", d->audit ? "AUDIT (not enforced) " : "",
                d->allow ? "ALLOW" : "DENY", aidp_residency_op_name(d->op),
                d->user ? d->user : "(unknown)");
        if (d->uid >= 0)
                fprintf(f, " (uid %lld)", (long long)d->uid);
        if (d->profile)
                fprintf(f, " with profile %s", d->profile);
        if (d->host_region)
                fprintf(f, " on %s (region %s)", d->host_node ? d->host_node : "this host",
                        d->host_region);
        fprintf(f, "\n");
        for (size_t i = 0; i < d->n_datasets; i++) {
                const struct aidp_dataset_facts *ds = &d->datasets[i];
                fprintf(f, "  input %s%s%s: %s", ds->name, ds->version ? "@" : "",
                        ds->version ? ds->version : "",
                        aidp_residency_classification_name(ds->tags.classification));
                if (ds->tags.n_residency)
                        fprintf(f, ", residency [%s]",
                                aidp_residency_join(list, sizeof list, ds->tags.residency,
                                                    ds->tags.n_residency));
                if (ds->tags.n_regulations)
                        fprintf(f, ", regulations [%s]",
                                aidp_residency_join(list, sizeof list, ds->tags.regulations,
                                                    ds->tags.n_regulations));
                if (ds->key_id)
                        fprintf(f, ", key %s", ds->key_id);
                fprintf(f, "\n");
                print_views(f, d, i);
        }
        for (size_t i = 0; i < d->n_reasons; i++) {
                const struct aidp_reason *r = &d->reasons[i];
                fprintf(f, "  %-4s %-14s %s", result_label(r->result),
                        aidp_residency_check_name(r->check), r->rule ? r->rule : "-");
                if (r->source)
                        fprintf(f, " [%s]", r->source);
                if (r->dataset)
                        fprintf(f, " dataset %s", r->dataset);
                if (r->attribute)
                        fprintf(f, " (%s)", r->attribute);
                fprintf(f, ": %s\n", r->message);
        }
        if (d->n_datasets) {
                fprintf(f, "  outputs inherit: %s",
                        aidp_residency_classification_name(d->outputs.classification));
                fprintf(f, ", residency [%s]",
                        aidp_residency_join(list, sizeof list, d->outputs.residency,
                                            d->outputs.n_residency));
                fprintf(f, ", regulations [%s]\n",
                        aidp_residency_join(list, sizeof list, d->outputs.regulations,
                                            d->outputs.n_regulations));
        }
        if (d->leak_rule[0])
                fprintf(f, "  output leak scan hits: %s (%s)\n",
                        aidp_residency_leak_action_name(d->leak_action), d->leak_rule);
        if (d->output_key)
                fprintf(f, "  outputs sealed under key %s (%s)\n", d->output_key,
                        d->output_key_rule);
        else if (d->output_key_rule)
                fprintf(f, "  outputs sealed under the key of %s\n", d->output_key_rule);
        if (d->until) {
                time_t t = (time_t)d->until;
                struct tm tm;
                char when[64] = "?";
                if (gmtime_r(&t, &tm))
                        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
                fprintf(f,
                        "  access ends %s: the time window of %s closes (a run is stopped then)\n",
                        when, d->until_rule ? d->until_rule : "its role");
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}
