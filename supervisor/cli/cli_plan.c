/* --dry-run's output: the plan of a run that was resolved and nothing else
 * (supervisor/run/run.c, dry_run; cut down for its caller in run_plan.c): the
 * START record it would write, as JSON (--json) or one line per part for
 * people. */
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

static const char *str(json_object *o, const char *a, const char *b, const char *none)
{
        json_object *v = at(o, a, b);
        return v ? json_object_get_string(v) : none;
}

/* Each line of text indented under the part's label. */
static void indented(FILE *f, const char *text)
{
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                fprintf(f, "    %.*s\n", (int)len, p);
                p += len + (nl != NULL);
        }
}

/* The decision as `aidp policy explain` prints it; without one (no policy
 * installed), the facet's decisions, one a line. */
static void print_policy(FILE *f, json_object *facet, const char *policy)
{
        fprintf(f, "  %-9s %s\n", "policy",
                !facet                                                 ? "?"
                : json_object_get_boolean(at(facet, "enforced", NULL)) ? "enforced"
                                                                       : "not enforced");
        if (at(facet, "enforcement", NULL))
                fprintf(f, "    enforcement %s: %s\n", str(facet, "enforcement", NULL, "?"),
                        str(facet, "audit", NULL, "the verdict is recorded, not enforced"));
        if (policy) {
                indented(f, policy);
                return;
        }
        json_object *all = at(facet, "decisions", NULL);
        for (size_t i = 0; all && i < json_object_array_length(all); i++) {
                json_object *d = json_object_array_get_idx(all, i);
                fprintf(f, "    %s %s (rule %s): %s\n", str(d, "decision", NULL, "?"),
                        str(d, "subject", NULL, "?"), str(d, "rule", NULL, "?"),
                        str(d, "reason", NULL, ""));
        }
}

/* An input: its name, and what START knows of it (a denied plan knows only
 * the path its caller named). */
static void print_dataset(FILE *f, json_object *d)
{
        fprintf(f, "    %s", str(d, "name", NULL, "?"));
        json_object *facets = at(d, "facets", NULL), *dg = at(facets, "aidp_digest", NULL);
        json_object *c = at(facets, "aidp_classification", NULL);
        if (dg)
                fprintf(f, " (%s)", str(dg, "path", NULL, "?"));
        if (at(dg, "datasetVersion", NULL))
                fprintf(f, " version %s", str(dg, "datasetVersion", NULL, ""));
        if (c) {
                fprintf(f, ": %s", str(c, "classification", NULL, "unclassified"));
                const char *res = str(c, "residency", NULL, ""),
                           *reg = str(c, "regulation", NULL, "");
                if (res[0])
                        fprintf(f, ", residency [%s]", res);
                if (reg[0])
                        fprintf(f, ", regulations [%s]", reg);
        }
        if (at(dg, "keyId", NULL))
                fprintf(f, ", key %s", str(dg, "keyId", NULL, ""));
        if (at(dg, "value", NULL))
                fprintf(f, ", content %s:%s", str(dg, "algorithm", NULL, "?"),
                        str(dg, "value", NULL, ""));
        fprintf(f, "\n");
}

void aidp_cli_print_plan(json_object *plan, const char *policy, bool json, FILE *f)
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
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
                fprintf(f, "  %-9s ", parts[i].label);
                put(f, at(facets, parts[i].facet, NULL), parts[i].none);
        }
        print_policy(f, at(facets, "aidp_policy", NULL), policy);
        json_object *in = at(plan, "inputs", NULL);
        size_t n = in ? json_object_array_length(in) : 0;
        fprintf(f, n ? "  datasets\n" : "  %-9s (none)\n", "datasets");
        for (size_t i = 0; i < n; i++)
                print_dataset(f, json_object_array_get_idx(in, i));
}
