/* --dry-run's output: the plan of a run that was resolved and nothing else
 * (supervisor/run/run.c, dry_run): the START record it would write, as JSON
 * (--json) or one line per part for people. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/cli/cli_supervisor.h"

/* o without the OpenLineage bookkeeping (_producer, _schemaURL), on one line. */
static void put(FILE *f, json_object *o, const char *none)
{
        if (!o) {
                fprintf(f, "%s\n", none);
                return;
        }
        json_object *c = json_object_new_object();
        json_object_object_foreach(o, k, v)
        {
                if (k[0] != '_')
                        json_object_object_add(c, k, json_object_get(v));
        }
        fprintf(f, "%s\n",
                json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(c);
}

static json_object *at(json_object *o, const char *a, const char *b)
{
        json_object *x = NULL, *y = NULL;
        if (!json_object_object_get_ex(o, a, &x))
                return NULL;
        if (!b)
                return x;
        return json_object_object_get_ex(x, b, &y) ? y : NULL;
}

void aidp_cli_print_plan(json_object *plan, bool json, FILE *f)
{
        if (json) {
                fprintf(f, "%s\n",
                        json_object_to_json_string_ext(
                                plan, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
                return;
        }
        json_object *facets = at(at(plan, "run", NULL), "facets", NULL);
        json_object *id = at(plan, "run", "runId");
        fprintf(f, "plan of run %s (dry run: nothing was created, decrypted or recorded)\n",
                id ? json_object_get_string(id) : "?");
        static const struct {
                const char *label, *facet, *none;
        } parts[] = {
                {"caller", "aidp_caller", "?"},
                {"host", "aidp_host", "?"},
                {"profile", "aidp_profile", "?"},
                {"network", "aidp_egress", "none (loopback only)"},
                {"policy", "aidp_policy", "?"},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
                fprintf(f, "  %-9s ", parts[i].label);
                put(f, at(facets, parts[i].facet, NULL), parts[i].none);
        }
        json_object *in = at(plan, "inputs", NULL);
        size_t n = in ? json_object_array_length(in) : 0;
        if (!n)
                fprintf(f, "  %-9s (none)\n", "datasets");
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(in, i), *name = at(d, "name", NULL);
                fprintf(f, "  %-9s %s ", i ? "" : "datasets",
                        name ? json_object_get_string(name) : "?");
                put(f, at(d, "facets", NULL), "");
        }
}
