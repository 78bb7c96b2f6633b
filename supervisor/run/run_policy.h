#pragma once
/* The access and residency decision of one run (docs/run-core.md step 1, resolve):
 * after every sealed header is authenticated and before any payload byte is
 * decrypted. A denial stops the run there, with AIDP_EXIT_DENIED and an error
 * naming the rule, dataset and attribute, and is recorded in lineage; an
 * allow goes into the START record. docs/policy.md, "In a run". */
#include <json-c/json.h>
#include <stdbool.h>

#include "common/error.h"
#include "profiles/profile.h"
#include "residency/decide.h"
#include "supervisor/run/caller.h"
#include "supervisor/sealed/inject.h"
#include "supervisor/run/policy_load.h"
#include "supervisor/run/run.h"

struct aidp_run_policy {
        /* Some policy file is installed, so the run was decided. With none of
         * host.yaml, residency.yaml and access.yaml the host has no policy
         * and runs are not decided (lineage says so). */
        bool enforced;
        bool decided;
        char dir[1024]; /* where the default files were looked for */
        struct aidp_policy_set set;
        /* the run's caller (borrowed); its groups are looked up for the decision */
        const struct aidp_caller_identity *caller;
        struct aidp_decision decision;
        /* The test build's AIDP_FAULT_CLOCK_OFFSET (seconds added to the
         * policy's clock); 0 otherwise. The run's deadline from the decision's
         * `until` is real time until - clock_offset. */
        int64_t clock_offset;
        /* enforcement: audit and the decision denied (or restricted egress):
         * what was not enforced, for stderr, the summary and lineage */
        char audit_msg[768];
};

/* Load the policies and decide for the caller the run resolved (NULL when that
 * failed, with caller_err saying why: an error only if a policy is installed);
 * the caller's groups are looked up here, and only here. Returns 0 when the run may
 * go on (allowed, or no policy installed); the profile's egress rules are then
 * restricted to the decision's. Returns -EACCES with err set
 * (AIDP_EXIT_DENIED) on a denial, another < 0 for a bad policy file
 * (AIDP_EXIT_CONFIG) or caller (AIDP_EXIT_USAGE/DENIED). */
int aidp_run_policy_decide(struct aidp_run_policy *p, struct aidp_caller_identity *caller,
                           const aidp_error *caller_err, struct aidp_profile *profile,
                           const struct aidp_inject *inject, aidp_error *err);

/* A user's run with sealed data, before any key is touched: 0 when a policy
 * is installed in /etc/aidp (the test build: $AIDP_POLICY_DIR when root
 * started us, as the decision reads it), else AIDP_EXIT_DENIED naming the file to
 * install with a minimal example (docs/security.md, secure defaults). */
int aidp_run_policy_require_for_data(const char *user, aidp_error *err);

/* Add the decision to a lineage event: the aidp_policy facet (one entry per
 * checked rule, the full trail, whether policy was enforced) and the host's
 * region. `p` is a const struct aidp_run_policy * (a lineage callback). */
void aidp_run_policy_annotate(const void *p, json_object *ev);

void aidp_run_policy_free(struct aidp_run_policy *p);

/* Residency's view of a profile (residency does not include the profile
 * model): the network mode and the egress rules, strings borrowed from p.
 * -ENOMEM, or 0 with ret to be freed by aidp_run_policy_profile_view_free. */
int aidp_run_policy_profile_view(const struct aidp_profile *p, struct aidp_residency_profile *ret);
void aidp_run_policy_profile_view_free(struct aidp_residency_profile *v);
/* Root started the supervisor itself (not sudo for another user): its
 * environment and options are an admin's choices. */
bool aidp_run_root_directly(void);
