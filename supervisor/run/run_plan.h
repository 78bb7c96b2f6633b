#pragma once
/* What --dry-run shows of a resolved run (docs/security.md, "What a caller
 * sees of sealed data"): the START record it would write, cut down to what
 * its caller may see of the datasets' headers, and the policy decision as
 * `aidp policy explain` prints it. */
#include <json-c/json.h>
#include <stdbool.h>

#include "supervisor/run/run.h"
#include "supervisor/run/run_policy.h"

/* Cut ev (a START event) down for the caller. denied: nothing of any
 * header is left, each input is the path its caller named, with no facet; the
 * views facet and the decision's trail go, and of the decisions only the
 * failures stay (what the denial message names, all of them). Allowed: an
 * input the job receives through a column view loses the raw plaintext's
 * content digest (the job never sees that plaintext). */
void aidp_run_plan_redact(json_object *ev, const struct aidp_run_result *res, bool denied);

/* The decision for people, one reason per line (explain's printer,
 * aidp_residency_decision_to_text); denied: its failures only, without the
 * inputs' facts and what outputs would inherit. NULL when no policy decided
 * the run, or out of memory. */
char *aidp_run_plan_policy_text(const struct aidp_run_policy *p, bool denied);
