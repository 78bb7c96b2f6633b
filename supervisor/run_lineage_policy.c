/* The access/residency decision in a lineage record. A file of its own: the
 * residency headers and the sealed-data headers (through run.h) both define
 * enum aidp_classification, so they cannot meet in one translation unit. */
#include "supervisor/run_lineage_policy.h"

#include <stdio.h>

#include "residency/decide.h"
#include "supervisor/lineage.h"

/* Each reason as a decision line, and the whole decision as the policy layer
 * renders it, so the record stands alone. */
void aidp_run_lineage_add_decision(json_object *ev, const struct aidp_decision *d)
{
        for (size_t i = 0; i < d->n_reasons; i++) {
                const struct aidp_reason *r = &d->reasons[i];
                char subject[256];
                snprintf(subject, sizeof subject, "%s%s%s", aidp_residency_check_name(r->check),
                         r->dataset ? " " : "", r->dataset ? r->dataset : "");
                aidp_lineage_add_decision(ev, subject,
                                          r->result == AIDP_REASON_FAIL   ? "deny"
                                          : r->result == AIDP_REASON_PASS ? "allow"
                                                                          : "info",
                                          r->rule, r->message);
        }
        json_object *f = aidp_lineage_run_facet(ev, "aidp_policy");
        json_object_object_add(f, "allow", json_object_new_boolean(d->allow));
        json_object *full = aidp_residency_decision_to_json(d);
        if (full)
                json_object_object_add(f, "decision", full);
        if (d->host_region) {
                json_object *h = aidp_lineage_run_facet(ev, "aidp_host");
                json_object_object_add(h, "region", json_object_new_string(d->host_region));
        }
}
