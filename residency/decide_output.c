/* The output key (docs/policy.md, "Output key"): which key seals what a run
 * writes to /out is the policy's decision, never the order of --data. A
 * regulation tag the outputs carry picks it first (output_keys.regulations),
 * then their classification (output_keys.classifications, that level and
 * above), else the key of the most restricted input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "residency/decide_internal.h"

/* More restricted: higher classification, then more regulation tags, then
 * more residency tags; the first input wins a tie. */
static bool more_restricted(const struct aidp_dataset_facts *a, const struct aidp_dataset_facts *b)
{
        if (a->tags.classification != b->tags.classification)
                return a->tags.classification > b->tags.classification;
        if (a->tags.n_regulations != b->tags.n_regulations)
                return a->tags.n_regulations > b->tags.n_regulations;
        return a->tags.n_residency > b->tags.n_residency;
}

static void set_key(struct aidp_dctx *c, const char *key, const char *rule)
{
        free(c->d->output_key);
        free(c->d->output_key_rule);
        c->d->output_key = key ? strdup(key) : NULL;
        c->d->output_key_rule = strdup(rule);
        if ((key && !c->d->output_key) || !c->d->output_key_rule)
                c->oom = true;
}

/* The regulation rule for the outputs' tags; two that name different keys
 * fail the run (no one key fits both). */
static const struct aidp_output_key_rule *by_regulation(struct aidp_dctx *c)
{
        const struct aidp_residency_policy *rp = c->req->residency;
        const struct aidp_data_tags *o = &c->d->outputs;
        const struct aidp_output_key_rule *hit = NULL;
        for (size_t i = 0; rp && i < rp->n_output_keys; i++) {
                const struct aidp_output_key_rule *k = &rp->output_keys[i];
                if (!k->regulation || !aidp_residency_tags_has_regulation(o, k->regulation))
                        continue;
                if (hit && strcmp(hit->key_id, k->key_id)) {
                        aidp_residency_reason(
                                c, AIDP_REASON_FAIL, AIDP_CHECK_MIX, "output_keys", &k->loc, NULL,
                                "output_key",
                                "the outputs carry regulations '%s' (key %s) and '%s' (key %s): "
                                "no one output key fits both",
                                hit->regulation, hit->key_id, k->regulation, k->key_id);
                        return NULL;
                }
                hit = hit ? hit : k;
        }
        return hit;
}

static const struct aidp_output_key_rule *by_classification(struct aidp_dctx *c)
{
        const struct aidp_residency_policy *rp = c->req->residency;
        const struct aidp_output_key_rule *hit = NULL;
        for (size_t i = 0; rp && i < rp->n_output_keys; i++) {
                const struct aidp_output_key_rule *k = &rp->output_keys[i];
                if (k->regulation || k->level > c->d->outputs.classification)
                        continue;
                if (!hit || k->level > hit->level)
                        hit = k;
        }
        return hit;
}

void aidp_residency_decide_output_key(struct aidp_dctx *c)
{
        const struct aidp_decision_request *req = c->req;
        if (req->op != AIDP_OP_RUN || req->n_datasets == 0)
                return;
        char rule[160];
        const struct aidp_output_key_rule *k = by_regulation(c);
        if (k) {
                snprintf(rule, sizeof rule, "output_keys.regulations.%s", k->regulation);
        } else if ((k = by_classification(c))) {
                snprintf(rule, sizeof rule, "output_keys.classifications.%s",
                         aidp_residency_classification_name(k->level));
        }
        if (k) {
                set_key(c, k->key_id, rule);
                return;
        }
        const struct aidp_dataset_facts *most = &req->datasets[0];
        for (size_t i = 1; i < req->n_datasets; i++)
                if (more_restricted(&req->datasets[i], most))
                        most = &req->datasets[i];
        snprintf(rule, sizeof rule, "input %s (the most restricted)", most->name);
        set_key(c, most->key_id, rule);
}

const char *aidp_residency_leak_action_name(enum aidp_leak_action a)
{
        return a == AIDP_LEAK_QUARANTINE ? "quarantine" : "report";
}

/* The output leak scan's action for the outputs' classification: the rule
 * of that level or the nearest lower level given, else default. */
void aidp_residency_decide_leak_scan(struct aidp_dctx *c)
{
        const struct aidp_access_policy *a = c->req->access;
        struct aidp_decision *d = c->d;
        d->leak_action = AIDP_LEAK_REPORT;
        d->leak_rule[0] = '\0';
        if (!a || !a->has_leak_scan)
                return;
        for (int l = (int)d->outputs.classification; l >= 0 && l < AIDP_CLASS_MAX; l--)
                if (a->leak_scan_set[l]) {
                        d->leak_action = a->leak_scan[l];
                        snprintf(d->leak_rule, sizeof d->leak_rule, "leak_scan.%s",
                                 aidp_residency_classification_name((enum aidp_classification)l));
                        return;
                }
        d->leak_action = a->leak_scan_default;
        snprintf(d->leak_rule, sizeof d->leak_rule, "leak_scan.default");
}
