#pragma once
/* The one host-side decision of `aidp-supervisor run` and `aidp policy
 * explain` (docs/policy.md, "The decision"): the loaded policy set, the time
 * zones it names resolved for the instant, and the pure decision of
 * residency/decide.h. Both callers load the set with aidp_policy_set_load()
 * (which fails closed: a named file that cannot be read is an error) and
 * decide through aidp_policy_decide_with(), so that explain answers exactly
 * what a run would. */
#include <stdint.h>

#include "common/error.h"
#include "residency/decide.h"
#include "supervisor/run/policy_load.h"

struct aidp_policy_query {
        struct aidp_caller caller;
        enum aidp_residency_op op;
        const struct aidp_residency_profile *profile; /* the run's; NULL for other operations */
        const struct aidp_dataset_facts *datasets;
        size_t n_datasets;
        int64_t at; /* the decision instant */
};

/* Whether any of host.yaml, residency.yaml, access.yaml is in the set. */
bool aidp_policy_set_installed(const struct aidp_policy_set *set);

/* Resolve the access policy's time zones for q->at and decide. 0 with *ret
 * filled (allow or deny), < 0 for a time zone missing from the tz database
 * (AIDP_EXIT_CONFIG) or no memory. */
int aidp_policy_decide_with(const struct aidp_policy_set *set, const struct aidp_policy_query *q,
                            struct aidp_decision *ret, aidp_error *err);
