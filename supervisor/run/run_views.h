#pragma once
/* Column views of a run (issue 18; docs/sealed-data.md, "Views at injection"):
 * after the policy decision (resolve), each input's schema is resolved against
 * the views of the roles that grant it and the token keys are loaded, before
 * START; START's aidp_view facet records the result. */
#include <json-c/json.h>

#include "common/error.h"

struct run;

/* After aidp_run_policy_decide allowed the run. A missing or wrong-purpose
 * token key refuses the run here (AIDP_EXIT_DATA), before anything exists. */
int aidp_run_views_resolve(struct run *r, aidp_error *err);
/* The lineage annotation of START (and of --dry-run's plan): the policy
 * decision (aidp_run_policy_annotate) and the aidp_view facet. arg: the run. */
void aidp_run_annotate(const void *arg, json_object *ev);
