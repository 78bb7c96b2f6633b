/* The produced-by record of a sealed output in aidp inspect (cli_schema.h):
 * which runs (or re-seals by hand, aidp seal --derived-from), from which
 * inputs, through which column views, produced it. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/cli/cli_schema.h"

json_object *aidp_cli_produced_json(const struct aidp_sealed_header *h)
{
        json_object *rec = aidp_sealed_produced_json(h);
        if (!rec)
                return NULL;
        json_object *steps = json_object_get(json_object_object_get(rec, "steps"));
        json_object_put(rec);
        return steps;
}

static const char *str(json_object *o, const char *key)
{
        json_object *v = json_object_object_get(o, key);
        return v ? json_object_get_string(v) : NULL;
}

static void input_text(json_object *in)
{
        json_object *views = json_object_object_get(in, "views");
        printf("    input %s (%s): %s", str(in, "dataset"), str(in, "digest"), str(in, "injected"));
        size_t nv = views ? json_object_array_length(views) : 0;
        for (size_t k = 0; k < nv; k++)
                printf("%s%s", k ? "+" : " through ",
                       json_object_get_string(json_object_array_get_idx(views, k)));
        printf("%s\n", views && !nv ? " through no view (labelled columns dropped)" : "");
        json_object *files = json_object_object_get(in, "files");
        for (size_t f = 0; files && f < json_object_array_length(files); f++) {
                json_object *fo = json_object_array_get_idx(files, f);
                printf("      %s (%s)\n", str(fo, "pattern"), str(fo, "format"));
                json_object *cols = json_object_object_get(fo, "columns");
                for (size_t c = 0; c < json_object_array_length(cols); c++) {
                        json_object *co = json_object_array_get_idx(cols, c);
                        json_object *labels = json_object_object_get(co, "labels");
                        printf("        %s", str(co, "column"));
                        for (size_t l = 0; l < json_object_array_length(labels); l++)
                                printf("%s%s", l ? ", " : " [",
                                       json_object_get_string(
                                               json_object_array_get_idx(labels, l)));
                        printf("%s: %s\n", json_object_array_length(labels) ? "]" : "",
                               str(co, "transform"));
                }
        }
}

void aidp_cli_produced_text(const struct aidp_sealed_header *h)
{
        json_object *rec = aidp_sealed_produced_json(h);
        if (!rec) {
                printf("%-16s%s\n",
                       "produced-by:", h->produced_by_len ? "(not readable)" : "(none)");
                return;
        }
        json_object *steps = json_object_object_get(rec, "steps");
        size_t n = json_object_array_length(steps);
        printf("%-16s%zu step%s, newest first\n", "produced-by:", n, n == 1 ? "" : "s");
        for (size_t s = 0; s < n; s++) {
                json_object *st = json_object_array_get_idx(steps, s);
                if (str(st, "run"))
                        printf("  run %s -> %s\n", str(st, "run"), str(st, "output"));
                else
                        printf("  sealed again by %s (aidp seal --derived-from) -> %s\n",
                               str(st, "sealedBy"), str(st, "output"));
                json_object *ins = json_object_object_get(st, "inputs");
                for (size_t i = 0; i < json_object_array_length(ins); i++)
                        input_text(json_object_array_get_idx(ins, i));
        }
        json_object_put(rec);
}
