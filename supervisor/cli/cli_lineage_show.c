/* aidp lineage show: each run of the log, readable or as JSON. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_lineage.h"

/* ---- show ------------------------------------------------------------------------------ */

static void human_bytes(char *out, size_t n, uint64_t b)
{
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        double v = (double)b;
        size_t u = 0;
        while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static uint64_t u64_of(json_object *o, const char *k)
{
        json_object *v;
        return o && json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

/* How input name reached the job, from START's aidp_view run facet
 * (docs/lineage.md, "Views"): the views it was seen through, or how it was
 * injected whole ("sealed (no schema)", "raw (every column's view is raw)"). */
static void show_view(json_object *view, const char *name)
{
        json_object *arr = NULL;
        if (!view || !name || !json_object_object_get_ex(view, "datasets", &arr))
                return;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *d = json_object_array_get_idx(arr, i), *names = NULL;
                const char *ds = aidp_cli_json_str(d, "dataset", NULL, NULL),
                           *how = aidp_cli_json_str(d, "injected", NULL, NULL);
                if (!ds || strcmp(ds, name))
                        continue;
                if (!how || strcmp(how, "viewed")) {
                        printf("  view: %s", how ? how : "?");
                        return;
                }
                size_t n = json_object_object_get_ex(d, "views", &names)
                                   ? json_object_array_length(names)
                                   : 0;
                /* no view among the granting roles: every labelled column dropped */
                printf("  view: %s", n ? "" : "none (labelled columns dropped)");
                for (size_t k = 0; k < n; k++)
                        printf("%s%s", k ? "+" : "",
                               json_object_get_string(json_object_array_get_idx(names, k)));
                return;
        }
}

/* One line per dataset of arr (an OpenLineage dataset list), each shown once
 * per run; view: the run's aidp_view facet, for inputs. */
static void show_dataset_list(json_object *arr, const char *list, const char *label,
                              json_object *seen, json_object *view)
{
        if (!arr || !json_object_is_type(arr, json_type_array))
                return;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *ds = json_object_array_get_idx(arr, i), *facets = NULL, *f;
                const char *ns = aidp_cli_json_str(ds, "namespace", NULL, NULL),
                           *name = aidp_cli_json_str(ds, "name", NULL, NULL);
                char key[1024];
                snprintf(key, sizeof key, "%s %s/%s", list, ns ? ns : "", name ? name : "");
                if (json_object_object_get_ex(seen, key, NULL))
                        continue;
                json_object_object_add(seen, key, NULL);
                printf("  %-9s %s/%s", label, ns ? ns : "", name ? name : "");
                json_object_object_get_ex(ds, "facets", &facets);
                if (facets && json_object_object_get_ex(facets, "aidp_digest", &f))
                        printf("  %s:%s", aidp_cli_json_str(f, "algorithm", NULL, NULL) ?: "?",
                               aidp_cli_json_str(f, "value", NULL, NULL) ?: "?");
                if (facets && json_object_object_get_ex(facets, "aidp_classification", &f)) {
                        const char *cls = aidp_cli_json_str(f, "classification", NULL, NULL);
                        if (cls)
                                printf("  [%s]", cls);
                        json_object *tags;
                        if (json_object_object_get_ex(f, "tags", &tags) &&
                            json_object_array_length(tags) > 0) {
                                printf("  tags:");
                                for (size_t t = 0; t < json_object_array_length(tags); t++)
                                        printf("%s%s", t ? "," : " ",
                                               json_object_get_string(
                                                       json_object_array_get_idx(tags, t)));
                        }
                }
                show_view(view, name);
                printf("\n");
        }
}

static void show_datasets(json_object *ev, const char *list, const char *label, json_object *seen,
                          json_object *view)
{
        json_object *arr;
        if (json_object_object_get_ex(ev, list, &arr))
                show_dataset_list(arr, list, label, seen, view);
}

/* A denied run read nothing: what it asked for is in the aidp_requested facet. */
static void show_requested(json_object *ev, json_object *seen)
{
        json_object *f = aidp_cli_run_facet(ev, "aidp_requested"), *arr;
        if (f && json_object_object_get_ex(f, "inputs", &arr))
                show_dataset_list(arr, "requested", "requested", seen, NULL);
}

static void show_event_details(json_object *ev)
{
        json_object *f;
        const char *pad = "                                     ";
        if ((f = aidp_cli_run_facet(ev, "aidp_exit"))) {
                json_object *v;
                int code =
                        json_object_object_get_ex(f, "exitCode", &v) ? json_object_get_int(v) : -1;
                int sig = json_object_object_get_ex(f, "signal", &v) ? json_object_get_int(v) : 0;
                int st = json_object_object_get_ex(f, "status", &v) ? json_object_get_int(v) : -1;
                printf("%sexit: %s", pad, aidp_cli_json_str(f, "reason", NULL, NULL) ?: "?");
                if (code >= 0)
                        printf(", code %d", code);
                if (sig > 0)
                        printf(", signal %d", sig);
                printf(", status %d\n", st);
        }
        if ((f = aidp_cli_run_facet(ev, "aidp_resources"))) {
                /* null members: the cgroup could not tell */
                char mem[32] = "unknown", cpu[32] = "unknown";
                json_object *v;
                if (json_object_object_get_ex(f, "peakMemoryBytes", &v) && v)
                        human_bytes(mem, sizeof mem, json_object_get_uint64(v));
                if (json_object_object_get_ex(f, "cpuUsec", &v) && v)
                        snprintf(cpu, sizeof cpu, "%.3fs", (double)json_object_get_uint64(v) / 1e6);
                printf("%sresources: wall %.3fs, cpu %s, peak memory %s\n", pad,
                       (double)u64_of(f, "wallUsec") / 1e6, cpu, mem);
        }
        if ((f = aidp_cli_run_facet(ev, "aidp_network"))) {
                printf("%segress denied: %" PRIu64, pad, u64_of(f, "denied"));
                json_object *arr;
                if (json_object_object_get_ex(f, "denials", &arr))
                        for (size_t i = 0; i < json_object_array_length(arr) && i < 8; i++) {
                                json_object *d = json_object_array_get_idx(arr, i);
                                printf("%s%s %s:%" PRIu64 " x%" PRIu64, i ? ", " : " (",
                                       aidp_cli_json_str(d, "protocol", NULL, NULL) ?: "?",
                                       aidp_cli_json_str(d, "destination", NULL, NULL) ?: "?",
                                       u64_of(d, "port"), u64_of(d, "count"));
                                if (i + 1 == json_object_array_length(arr) || i == 7)
                                        printf(")");
                        }
                printf("\n");
        }
        if ((f = aidp_cli_run_facet(ev, "aidp_policy"))) {
                json_object *arr;
                if (json_object_object_get_ex(f, "decisions", &arr))
                        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                                json_object *d = json_object_array_get_idx(arr, i);
                                printf("%s%s %s", pad,
                                       aidp_cli_json_str(d, "decision", NULL, NULL) ?: "?",
                                       aidp_cli_json_str(d, "subject", NULL, NULL) ?: "?");
                                if (aidp_cli_json_str(d, "rule", NULL, NULL))
                                        printf(" (rule %s)",
                                               aidp_cli_json_str(d, "rule", NULL, NULL));
                                if (aidp_cli_json_str(d, "reason", NULL, NULL))
                                        printf(": %s", aidp_cli_json_str(d, "reason", NULL, NULL));
                                printf("\n");
                        }
        }
        if ((f = aidp_cli_run_facet(ev, "aidp_shred"))) {
                char bytes[32];
                human_bytes(bytes, sizeof bytes, u64_of(f, "bytes"));
                json_object *v, *arr;
                bool verified =
                        json_object_object_get_ex(f, "verified", &v) && json_object_get_boolean(v);
                printf("%sshred: %" PRIu64 " file(s), %s overwritten, %s, %.3fs", pad,
                       u64_of(f, "files"), bytes, verified ? "verified" : "NOT VERIFIED",
                       (double)u64_of(f, "durationUsec") / 1e6);
                if (json_object_object_get_ex(f, "removed", &arr) &&
                    json_object_array_length(arr)) {
                        printf("; removed:");
                        for (size_t i = 0; i < json_object_array_length(arr); i++)
                                printf("%s%s", i ? "," : " ",
                                       json_object_get_string(json_object_array_get_idx(arr, i)));
                }
                printf("\n");
        }
}

static void show_run(const struct events *e, const struct run *r)
{
        json_object *first = e->ev[r->idx[0]], *last = e->ev[r->idx[r->n - 1]];
        printf("run %s  job %s/%s  (%s)\n", r->id,
               aidp_cli_json_str(first, "job", "namespace", NULL) ?: "?",
               aidp_cli_json_str(first, "job", "name", NULL) ?: "?",
               aidp_cli_json_str(last, "eventType", NULL, NULL) ?: "?");
        /* Who, where and under what: from the first event that says. */
        json_object *f = NULL;
        for (size_t k = 0; k < r->n && !(f = aidp_cli_run_facet(e->ev[r->idx[k]], "aidp_caller"));
             k++)
                ;
        if (f) {
                printf("  caller    %s (uid %" PRIu64 ", gid %" PRIu64 ")",
                       aidp_cli_json_str(f, "user", NULL, NULL) ?: "?", u64_of(f, "uid"),
                       u64_of(f, "gid"));
                if (aidp_cli_json_str(f, "schedulerJob", NULL, NULL))
                        printf(", scheduler job %s",
                               aidp_cli_json_str(f, "schedulerJob", NULL, NULL));
                printf("\n");
        }
        f = NULL;
        for (size_t k = 0; k < r->n && !(f = aidp_cli_run_facet(e->ev[r->idx[k]], "aidp_host"));
             k++)
                ;
        if (f)
                printf("  host      %s, region %s\n",
                       aidp_cli_json_str(f, "hostname", NULL, NULL) ?: "?",
                       aidp_cli_json_str(f, "region", NULL, NULL) ?: "?");
        f = NULL;
        for (size_t k = 0; k < r->n && !(f = aidp_cli_run_facet(e->ev[r->idx[k]], "aidp_profile"));
             k++)
                ;
        if (f)
                printf("  profile   %s %s\n", aidp_cli_json_str(f, "name", NULL, NULL) ?: "?",
                       aidp_cli_json_str(f, "digest", NULL, NULL) ?: "");
        f = NULL;
        for (size_t k = 0; k < r->n && !(f = aidp_cli_run_facet(e->ev[r->idx[k]], "aidp_view"));
             k++)
                ;
        _cleanup_(json_object_putp) json_object *seen = json_object_new_object();
        for (size_t k = 0; k < r->n; k++)
                show_datasets(e->ev[r->idx[k]], "inputs", "input", seen, f);
        for (size_t k = 0; k < r->n; k++)
                show_requested(e->ev[r->idx[k]], seen);
        for (size_t k = 0; k < r->n; k++)
                show_datasets(e->ev[r->idx[k]], "outputs", "output", seen, NULL);
        for (size_t k = 0; k < r->n; k++) {
                json_object *ev = e->ev[r->idx[k]];
                printf("  %-24s  %-8s  line %" PRIu64 "\n",
                       aidp_cli_json_str(ev, "eventTime", NULL, NULL) ?: "?",
                       aidp_cli_json_str(ev, "eventType", NULL, NULL) ?: "?", e->line[r->idx[k]]);
                show_event_details(ev);
        }
        printf("\n");
}

static const struct aidp_cli_opt show_opts[] = {
        AIDP_CLI_LINEAGE_FILE_OPT,
        AIDP_CLI_LINEAGE_RUN_OPT,
        AIDP_CLI_LINEAGE_DATASET_OPT,
        AIDP_CLI_LINEAGE_USER_OPT,
        AIDP_CLI_LINEAGE_SINCE_OPT,
        AIDP_CLI_LINEAGE_UNTIL_OPT,
        AIDP_CLI_OPT("json", 'j', AIDP_CLI_FLAG, LC(json), NULL, "print the runs as JSON",
                     AIDP_TRUST_USER),
        {0},
};

const struct aidp_cli_spec aidp_cli_lineage_show_spec = {
        .prog = "aidp lineage show",
        .synopsis = "[--file FILE] " AIDP_CLI_LINEAGE_FILTER_SYNOPSIS " [--json]",
        .about = "Each run of the log: who, where, under which profile, on which data, what\n"
                 "came out, its exit, resources, denials and shred report.",
        .opts = show_opts,
        .footer = AIDP_CLI_LINEAGE_FILE_HELP,
};

int aidp_cli_lineage_show(int argc, char **argv)
{
        struct lineage_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&aidp_cli_lineage_show_spec, argc, argv, &c, &pa, &st))
                return st;
        const char *file = c.file;
        bool json = c.json;
        const char *path = aidp_cli_lineage_path(file);
        aidp_error err = {0};
        struct events e = {0};
        struct runs rs = {0};
        int status = 0;
        if (aidp_cli_lineage_read(path, &e, &rs, &err) < 0) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        aidp_cli_runs_select(&e, &rs, &c);
        if (json) {
                _cleanup_(json_object_putp) json_object *arr = json_object_new_array();
                for (size_t i = 0; i < rs.n; i++) {
                        if (!rs.r[i].selected)
                                continue;
                        json_object *o = json_object_new_object(), *evs = json_object_new_array();
                        json_object *first = e.ev[rs.r[i].idx[0]], *job;
                        json_object_object_add(o, "runId", json_object_new_string(rs.r[i].id));
                        if (json_object_object_get_ex(first, "job", &job))
                                json_object_object_add(o, "job", json_object_get(job));
                        for (size_t k = 0; k < rs.r[i].n; k++)
                                json_object_array_add(evs, json_object_get(e.ev[rs.r[i].idx[k]]));
                        json_object_object_add(o, "events", evs);
                        json_object_array_add(arr, o);
                }
                printf("%s\n",
                       json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        } else {
                size_t shown = 0;
                for (size_t i = 0; i < rs.n; i++)
                        if (rs.r[i].selected) {
                                show_run(&e, &rs.r[i]);
                                shown++;
                        }
                if (shown == 0)
                        printf("no runs%s%s%s%s%s%s%s in %s\n", c.run ? " with id " : "",
                               c.run ?: "", c.dataset ? " touching dataset " : "", c.dataset ?: "",
                               c.user ? " by user " : "", c.user ?: "",
                               c.has_since || c.has_until ? " in the time range" : "", path);
        }
out:
        aidp_cli_runs_free(&rs);
        aidp_cli_events_free(&e);
        return status;
}
