/* The one host-side decision shared by the run and `aidp policy explain`. */
#include "supervisor/run/policy_decide.h"

#include "supervisor/run/policy_clock.h"

bool aidp_policy_set_installed(const struct aidp_policy_set *set)
{
        return set->host || set->residency || set->access;
}

int aidp_policy_decide_with(const struct aidp_policy_set *set, const struct aidp_policy_query *q,
                            struct aidp_decision *ret, aidp_error *err)
{
        struct aidp_policy_clock clock = {0};
        int r = aidp_policy_clock_resolve(set->access, q->at, &clock, err);
        if (r < 0)
                return r;
        struct aidp_decision_request req = {
                .caller = q->caller,
                .op = q->op,
                .profile = q->op == AIDP_OP_RUN ? q->profile : NULL,
                .datasets = q->datasets,
                .n_datasets = q->n_datasets,
                .host = set->host,
                .residency = set->residency,
                .access = set->access,
        };
        aidp_policy_clock_view(&clock, q->at, &req.time);
        r = aidp_residency_decide(&req, ret, err);
        aidp_policy_clock_free(&clock);
        return r;
}
