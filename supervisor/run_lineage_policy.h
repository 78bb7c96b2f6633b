#pragma once
/* The policy decision's part of a lineage record (see run_lineage_policy.c). */
#include <json-c/json.h>

struct aidp_decision;

/* Each reason as an aidp_policy.decisions entry (deny/allow/info, rule, message),
 * the whole decision under aidp_policy.decision, the host region in aidp_host. */
void aidp_run_lineage_add_decision(json_object *ev, const struct aidp_decision *d);
