/* aidp lineage verify|show|graph|export: the auditor's view of the lineage log. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/cli/cli.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/lineage/seclog.h"

extern char **environ;

#define PROG "aidp lineage"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

static void usage(FILE *f)
{
        fprintf(f,
                "usage: aidp lineage verify [--key FILE | --no-key] [--anchor FILE | --no-anchor] "
                "[FILE]\n"
                "       aidp lineage show   [--file FILE] [--run ID] [--dataset NAME] [--json]\n"
                "       aidp lineage graph  [--file FILE] [--dataset NAME] [-o OUT.dot|OUT.svg]\n"
                "       aidp lineage export [--file FILE] [--run ID] [--dataset NAME] [--url URL]\n"
                "\n"
                "FILE defaults to $" AIDP_LINEAGE_ENV_PATH " or " AIDP_LINEAGE_DEFAULT_PATH
                "; the key to\n$" AIDP_LINEAGE_ENV_KEY " or " AIDP_LINEAGE_DEFAULT_KEY ".\n"
                "verify exits 0 when the log is intact, 1 when it was tampered with, %d when it\n"
                "cannot be read. See docs/lineage.md.\n",
                AIDP_EXIT_LINEAGE);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, PROG ": error: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
        usage(stderr);
        return AIDP_EXIT_USAGE;
}

static const char *default_path(const char *given)
{
        if (given)
                return given;
        const char *e = getenv(AIDP_LINEAGE_ENV_PATH);
        return e && e[0] ? e : AIDP_LINEAGE_DEFAULT_PATH;
}

/* ---- verify -------------------------------------------------------------------------- */

static int cmd_verify(int argc, char **argv)
{
        static const struct option opts[] = {
                {"key", required_argument, NULL, 'k'},
                {"no-key", no_argument, NULL, 'K'},
                {"anchor", required_argument, NULL, 'a'},
                {"no-anchor", no_argument, NULL, 'A'},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *key_path = NULL, *anchor_path = NULL;
        bool no_key = false, no_anchor = false, quiet = false;
        int c;
        while ((c = getopt_long(argc, argv, "k:a:qh", opts, NULL)) != -1) {
                switch (c) {
                case 'k': key_path = optarg; break;
                case 'K': no_key = true; break;
                case 'a': anchor_path = optarg; break;
                case 'A': no_anchor = true; break;
                case 'q': quiet = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return AIDP_EXIT_USAGE;
                }
        }
        if (argc - optind > 1)
                return usage_error("verify takes at most one FILE, got '%s'", argv[optind + 1]);
        const char *path = default_path(optind < argc ? argv[optind] : NULL);
        aidp_error err = {0};
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        if (!no_key) {
                if (!key_path)
                        key_path = getenv(AIDP_LINEAGE_ENV_KEY);
                if (!key_path || !key_path[0])
                        key_path = AIDP_LINEAGE_DEFAULT_KEY;
                if (aidp_lineage_key_load(key_path, false, key, &err) < 0) {
                        aidp_error_wrap(&err, "cannot check authentication tags (--no-key checks "
                                              "the hash chain alone)");
                        return aidp_cli_fail(PROG, &err);
                }
        }
        struct aidp_lineage_verify v;
        int r = aidp_lineage_verify_file(path, anchor_path, !no_anchor, no_key ? NULL : key, &v,
                                         &err);
        memset(key, 0, sizeof key);
        if (r < 0)
                return aidp_cli_fail(PROG, &err);
        if (v.bad_line) {
                fprintf(stderr, "%s: TAMPERED: %s\n", path, v.reason);
                char line[24];
                snprintf(line, sizeof line, "%" PRIu64, v.bad_line);
                struct aidp_seclog_param p[] = {
                        {"file", path}, {"line", line}, {"reason", v.reason}};
                struct aidp_seclog_msg m = {.severity = LOG_CRIT,
                                            .msgid = "TAMPER",
                                            .params = p,
                                            .nparams = ARRAY_SIZE(p),
                                            .text = "lineage log failed verification"};
                aidp_seclog_send(NULL, &m);
                return AIDP_EXIT_FAILED;
        }
        if (!quiet) {
                printf("%s: OK: %" PRIu64 " record(s); hash chain%s%s verified\n", path, v.records,
                       no_key ? "" : ", authentication tags",
                       no_anchor ? " (no anchor: records cut from the end would not show)"
                                 : " and anchor");
                if (no_key)
                        printf("%s: note: tags not checked (--no-key): a key holder's rewrite "
                               "would not show\n",
                               path);
                if (v.reason[0])
                        printf("%s: note: %s\n", path, v.reason);
        }
        return 0;
}

/* ---- reading events (show, graph, export) ------------------------------------------ */

struct events {
        json_object **ev; /* stripped of the chain members */
        uint64_t *line;
        size_t n, cap;
        size_t skipped;
};

static void events_free(struct events *e)
{
        for (size_t i = 0; i < e->n; i++)
                json_object_put(e->ev[i]);
        free(e->ev);
        free(e->line);
}

/* Reads every record; lines that are not records are reported and skipped (verify is
 * the tool that judges the log, these only present it). */
static int events_load(const char *path, struct events *e, aidp_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "opening lineage %s", path);
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n;
        uint64_t no = 0;
        while ((n = getline(&buf, &cap, f)) > 0) {
                no++;
                bool term = buf[n - 1] == '\n';
                size_t len = (size_t)n - term;
                if (!term) {
                        /* An append interrupted before it committed; verify explains it. */
                        fprintf(stderr,
                                PROG ": note: %s:%" PRIu64 ": incomplete last line ignored\n", path,
                                no);
                        continue;
                }
                struct aidp_lineage_record rec;
                json_object *ev = NULL;
                aidp_error perr = {0};
                if (aidp_lineage_record_parse(buf, len, NULL, &rec, &ev, &perr) < 0) {
                        fprintf(stderr, PROG ": warning: %s:%" PRIu64 ": skipped: %s\n", path, no,
                                perr.msg);
                        e->skipped++;
                        continue;
                }
                aidp_lineage_strip_chain(ev);
                if (e->n == e->cap) {
                        size_t nc = e->cap ? e->cap * 2 : 64;
                        json_object **a = realloc(e->ev, nc * sizeof *a);
                        if (a)
                                e->ev = a;
                        uint64_t *l = realloc(e->line, nc * sizeof *l);
                        if (l)
                                e->line = l;
                        if (!a || !l) {
                                json_object_put(ev);
                                free(buf);
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                      "out of memory");
                        }
                        e->cap = nc;
                }
                e->ev[e->n] = ev;
                e->line[e->n++] = no;
        }
        int fe = ferror(f) ? errno : 0;
        free(buf);
        if (fe)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, fe, "reading lineage %s", path);
        return 0;
}

static const char *str_at(json_object *o, const char *a, const char *b, const char *c)
{
        const char *keys[] = {a, b, c};
        for (size_t i = 0; i < 3 && keys[i] && o; i++)
                if (!json_object_object_get_ex(o, keys[i], &o))
                        return NULL;
        return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static json_object *run_facet(json_object *ev, const char *name)
{
        json_object *run, *facets, *f;
        if (json_object_object_get_ex(ev, "run", &run) &&
            json_object_object_get_ex(run, "facets", &facets) &&
            json_object_object_get_ex(facets, name, &f))
                return f;
        return NULL;
}

static const char *run_id(json_object *ev)
{
        const char *s = str_at(ev, "run", "runId", NULL);
        return s ? s : "";
}

static bool name_matches(json_object *ds, const char *name)
{
        const char *ns = str_at(ds, "namespace", NULL, NULL), *n = str_at(ds, "name", NULL, NULL);
        if (!n)
                return false;
        if (!strcmp(n, name))
                return true;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", ns ? ns : "", n);
        return !strcmp(full, name);
}

static bool touches_dataset(json_object *ev, const char *name)
{
        static const char *const lists[] = {"inputs", "outputs"};
        for (size_t l = 0; l < 2; l++) {
                json_object *arr;
                if (!json_object_object_get_ex(ev, lists[l], &arr))
                        continue;
                for (size_t i = 0; i < json_object_array_length(arr); i++)
                        if (name_matches(json_object_array_get_idx(arr, i), name))
                                return true;
        }
        return false;
}

/* Runs in order of first appearance, each with the indices of its events. */
struct run {
        const char *id;
        size_t *idx;
        size_t n;
        bool selected;
};
struct runs {
        struct run *r;
        size_t n;
};

static void runs_free(struct runs *rs)
{
        for (size_t i = 0; i < rs->n; i++)
                free(rs->r[i].idx);
        free(rs->r);
}

static int runs_group(const struct events *e, struct runs *rs)
{
        rs->r = calloc(e->n ? e->n : 1, sizeof *rs->r);
        if (!rs->r)
                return -ENOMEM;
        for (size_t i = 0; i < e->n; i++) {
                const char *id = run_id(e->ev[i]);
                size_t j;
                /* Linear search from the end: a run's events are usually close together. */
                for (j = rs->n; j > 0; j--)
                        if (!strcmp(rs->r[j - 1].id, id))
                                break;
                struct run *r;
                if (j == 0) {
                        r = &rs->r[rs->n++];
                        r->id = id;
                } else {
                        r = &rs->r[j - 1];
                }
                size_t *a = realloc(r->idx, (r->n + 1) * sizeof *a);
                if (!a)
                        return -ENOMEM;
                r->idx = a;
                r->idx[r->n++] = i;
        }
        return 0;
}

/* --run and --dataset: a run is selected when its id matches (a prefix is enough)
 * and one of its events names the dataset. */
static void runs_select(const struct events *e, struct runs *rs, const char *run,
                        const char *dataset)
{
        for (size_t i = 0; i < rs->n; i++) {
                struct run *r = &rs->r[i];
                const char *name = NULL;
                json_object *f = run_facet(e->ev[r->idx[0]], "aidp_run");
                if (f)
                        name = str_at(f, "runName", NULL, NULL);
                /* The OpenLineage runId (a prefix is enough) or the supervisor's run id. */
                r->selected =
                        !run || !strncmp(r->id, run, strlen(run)) || (name && !strcmp(name, run));
                if (r->selected && dataset) {
                        bool hit = false;
                        for (size_t k = 0; k < r->n && !hit; k++)
                                hit = touches_dataset(e->ev[r->idx[k]], dataset);
                        r->selected = hit;
                }
        }
}

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

static void show_datasets(json_object *ev, const char *list, const char *label, json_object *seen)
{
        json_object *arr;
        if (!json_object_object_get_ex(ev, list, &arr))
                return;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *ds = json_object_array_get_idx(arr, i), *facets = NULL, *f;
                const char *ns = str_at(ds, "namespace", NULL, NULL),
                           *name = str_at(ds, "name", NULL, NULL);
                char key[1024];
                snprintf(key, sizeof key, "%s %s/%s", list, ns ? ns : "", name ? name : "");
                if (json_object_object_get_ex(seen, key, NULL))
                        continue;
                json_object_object_add(seen, key, NULL);
                printf("  %-9s %s/%s", label, ns ? ns : "", name ? name : "");
                json_object_object_get_ex(ds, "facets", &facets);
                if (facets && json_object_object_get_ex(facets, "aidp_digest", &f))
                        printf("  %s:%s", str_at(f, "algorithm", NULL, NULL) ?: "?",
                               str_at(f, "value", NULL, NULL) ?: "?");
                if (facets && json_object_object_get_ex(facets, "aidp_classification", &f)) {
                        const char *cls = str_at(f, "classification", NULL, NULL);
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
                printf("\n");
        }
}

static void show_event_details(json_object *ev)
{
        json_object *f;
        const char *pad = "                                     ";
        if ((f = run_facet(ev, "aidp_exit"))) {
                json_object *v;
                int code =
                        json_object_object_get_ex(f, "exitCode", &v) ? json_object_get_int(v) : -1;
                int sig = json_object_object_get_ex(f, "signal", &v) ? json_object_get_int(v) : 0;
                int st = json_object_object_get_ex(f, "status", &v) ? json_object_get_int(v) : -1;
                printf("%sexit: %s", pad, str_at(f, "reason", NULL, NULL) ?: "?");
                if (code >= 0)
                        printf(", code %d", code);
                if (sig > 0)
                        printf(", signal %d", sig);
                printf(", status %d\n", st);
        }
        if ((f = run_facet(ev, "aidp_resources"))) {
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
        if ((f = run_facet(ev, "aidp_network"))) {
                printf("%segress denied: %" PRIu64, pad, u64_of(f, "denied"));
                json_object *arr;
                if (json_object_object_get_ex(f, "denials", &arr))
                        for (size_t i = 0; i < json_object_array_length(arr) && i < 8; i++) {
                                json_object *d = json_object_array_get_idx(arr, i);
                                printf("%s%s %s:%" PRIu64 " x%" PRIu64, i ? ", " : " (",
                                       str_at(d, "protocol", NULL, NULL) ?: "?",
                                       str_at(d, "destination", NULL, NULL) ?: "?",
                                       u64_of(d, "port"), u64_of(d, "count"));
                                if (i + 1 == json_object_array_length(arr) || i == 7)
                                        printf(")");
                        }
                printf("\n");
        }
        if ((f = run_facet(ev, "aidp_policy"))) {
                json_object *arr;
                if (json_object_object_get_ex(f, "decisions", &arr))
                        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                                json_object *d = json_object_array_get_idx(arr, i);
                                printf("%s%s %s", pad, str_at(d, "decision", NULL, NULL) ?: "?",
                                       str_at(d, "subject", NULL, NULL) ?: "?");
                                if (str_at(d, "rule", NULL, NULL))
                                        printf(" (rule %s)", str_at(d, "rule", NULL, NULL));
                                if (str_at(d, "reason", NULL, NULL))
                                        printf(": %s", str_at(d, "reason", NULL, NULL));
                                printf("\n");
                        }
        }
        if ((f = run_facet(ev, "aidp_shred"))) {
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
        printf("run %s  job %s/%s  (%s)\n", r->id, str_at(first, "job", "namespace", NULL) ?: "?",
               str_at(first, "job", "name", NULL) ?: "?",
               str_at(last, "eventType", NULL, NULL) ?: "?");
        /* Who, where and under what: from the first event that says. */
        json_object *f = NULL;
        for (size_t k = 0; k < r->n && !(f = run_facet(e->ev[r->idx[k]], "aidp_caller")); k++)
                ;
        if (f) {
                printf("  caller    %s (uid %" PRIu64 ", gid %" PRIu64 ")",
                       str_at(f, "user", NULL, NULL) ?: "?", u64_of(f, "uid"), u64_of(f, "gid"));
                if (str_at(f, "schedulerJob", NULL, NULL))
                        printf(", scheduler job %s", str_at(f, "schedulerJob", NULL, NULL));
                printf("\n");
        }
        f = NULL;
        for (size_t k = 0; k < r->n && !(f = run_facet(e->ev[r->idx[k]], "aidp_host")); k++)
                ;
        if (f)
                printf("  host      %s, region %s\n", str_at(f, "hostname", NULL, NULL) ?: "?",
                       str_at(f, "region", NULL, NULL) ?: "?");
        f = NULL;
        for (size_t k = 0; k < r->n && !(f = run_facet(e->ev[r->idx[k]], "aidp_profile")); k++)
                ;
        if (f)
                printf("  profile   %s %s\n", str_at(f, "name", NULL, NULL) ?: "?",
                       str_at(f, "digest", NULL, NULL) ?: "");
        _cleanup_(json_object_putp) json_object *seen = json_object_new_object();
        for (size_t k = 0; k < r->n; k++)
                show_datasets(e->ev[r->idx[k]], "inputs", "input", seen);
        for (size_t k = 0; k < r->n; k++)
                show_datasets(e->ev[r->idx[k]], "outputs", "output", seen);
        for (size_t k = 0; k < r->n; k++) {
                json_object *ev = e->ev[r->idx[k]];
                printf("  %-24s  %-8s  line %" PRIu64 "\n",
                       str_at(ev, "eventTime", NULL, NULL) ?: "?",
                       str_at(ev, "eventType", NULL, NULL) ?: "?", e->line[r->idx[k]]);
                show_event_details(ev);
        }
        printf("\n");
}

static int cmd_show(int argc, char **argv)
{
        static const struct option opts[] = {
                {"file", required_argument, NULL, 'f'},    {"run", required_argument, NULL, 'r'},
                {"dataset", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *run = NULL, *dataset = NULL;
        bool json = false;
        int c;
        while ((c = getopt_long(argc, argv, "f:r:d:jh", opts, NULL)) != -1) {
                switch (c) {
                case 'f': file = optarg; break;
                case 'r': run = optarg; break;
                case 'd': dataset = optarg; break;
                case 'j': json = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return AIDP_EXIT_USAGE;
                }
        }
        if (optind < argc)
                return usage_error("show: unexpected argument '%s'", argv[optind]);
        const char *path = default_path(file);
        aidp_error err = {0};
        struct events e = {0};
        struct runs rs = {0};
        int status = 0;
        if (events_load(path, &e, &err) < 0) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        if (runs_group(&e, &rs) < 0) {
                aidp_error_set(&err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        runs_select(&e, &rs, run, dataset);
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
                        printf("no runs%s%s%s%s in %s\n", run ? " with id " : "", run ? run : "",
                               dataset ? " touching dataset " : "", dataset ? dataset : "", path);
        }
out:
        runs_free(&rs);
        events_free(&e);
        return status;
}

/* ---- graph ------------------------------------------------------------------------------ */

static void dot_escape(FILE *f, const char *s)
{
        for (; s && *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

static void dataset_id(char *out, size_t n, json_object *ds)
{
        snprintf(out, n, "%s/%s", str_at(ds, "namespace", NULL, NULL) ?: "",
                 str_at(ds, "name", NULL, NULL) ?: "");
}

/* --dataset: the runs that read the dataset, what they wrote, the runs that read
 * that, and so on (where the data went), plus the runs that wrote the dataset itself
 * (where it came from). */
static void graph_select(const struct events *e, struct runs *rs, const char *dataset)
{
        _cleanup_(json_object_putp) json_object *reach = json_object_new_object();
        for (size_t i = 0; i < rs->n; i++)
                rs->r[i].selected = !dataset;
        if (!dataset)
                return;
        bool changed = true;
        while (changed) {
                changed = false;
                for (size_t i = 0; i < rs->n; i++) {
                        struct run *r = &rs->r[i];
                        if (r->selected)
                                continue;
                        bool hit = false;
                        for (size_t k = 0; k < r->n && !hit; k++) {
                                json_object *ev = e->ev[r->idx[k]], *arr;
                                static const char *const lists[] = {"inputs", "outputs"};
                                for (size_t l = 0; l < 2 && !hit; l++) {
                                        if (!json_object_object_get_ex(ev, lists[l], &arr))
                                                continue;
                                        for (size_t d = 0;
                                             d < json_object_array_length(arr) && !hit; d++) {
                                                json_object *ds = json_object_array_get_idx(arr, d);
                                                char id[1024];
                                                dataset_id(id, sizeof id, ds);
                                                hit = name_matches(ds, dataset) ||
                                                      (l == 0 &&
                                                       json_object_object_get_ex(reach, id, NULL));
                                        }
                                }
                        }
                        if (!hit)
                                continue;
                        r->selected = true;
                        changed = true;
                        for (size_t k = 0; k < r->n; k++) {
                                json_object *arr;
                                if (!json_object_object_get_ex(e->ev[r->idx[k]], "outputs", &arr))
                                        continue;
                                for (size_t d = 0; d < json_object_array_length(arr); d++) {
                                        char id[1024];
                                        dataset_id(id, sizeof id,
                                                   json_object_array_get_idx(arr, d));
                                        json_object_object_add(reach, id, NULL);
                                }
                        }
                }
        }
}

static void graph_write(FILE *f, const struct events *e, const struct runs *rs)
{
        _cleanup_(json_object_putp) json_object *nodes = json_object_new_object();
        _cleanup_(json_object_putp) json_object *edges = json_object_new_object();
        fprintf(f, "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", "
                   "fontsize=10];\n");
        for (size_t i = 0; i < rs->n; i++) {
                const struct run *r = &rs->r[i];
                if (!r->selected)
                        continue;
                json_object *first = e->ev[r->idx[0]], *last = e->ev[r->idx[r->n - 1]];
                json_object *caller = NULL;
                for (size_t k = 0;
                     k < r->n && !(caller = run_facet(e->ev[r->idx[k]], "aidp_caller")); k++)
                        ;
                fprintf(f, "  \"run:");
                dot_escape(f, r->id);
                fprintf(f, "\" [shape=box, style=\"rounded,filled\", fillcolor=\"%s\", label=\"",
                        !strcmp(str_at(last, "eventType", NULL, NULL) ?: "", "COMPLETE") ? "#d9f2d9"
                        : !strcmp(str_at(last, "eventType", NULL, NULL) ?: "", "START")
                                ? "#fff2cc"
                                : "#f4cccc");
                dot_escape(f, str_at(first, "job", "name", NULL) ?: "?");
                fprintf(f, "\\nrun %.8s\\n", r->id);
                dot_escape(f, str_at(last, "eventType", NULL, NULL) ?: "?");
                if (caller && str_at(caller, "user", NULL, NULL)) {
                        fprintf(f, " by ");
                        dot_escape(f, str_at(caller, "user", NULL, NULL));
                }
                fprintf(f, "\"];\n");
                static const char *const lists[] = {"inputs", "outputs"};
                for (size_t k = 0; k < r->n; k++)
                        for (size_t l = 0; l < 2; l++) {
                                json_object *arr;
                                if (!json_object_object_get_ex(e->ev[r->idx[k]], lists[l], &arr))
                                        continue;
                                for (size_t d = 0; d < json_object_array_length(arr); d++) {
                                        json_object *ds = json_object_array_get_idx(arr, d),
                                                    *facets, *fc;
                                        char id[1024], edge[1200];
                                        dataset_id(id, sizeof id, ds);
                                        if (!json_object_object_get_ex(nodes, id, NULL)) {
                                                json_object_object_add(nodes, id, NULL);
                                                fprintf(f, "  \"ds:");
                                                dot_escape(f, id);
                                                fprintf(f, "\" [shape=%s, label=\"",
                                                        l ? "note" : "ellipse");
                                                dot_escape(f, id);
                                                if (json_object_object_get_ex(ds, "facets",
                                                                              &facets)) {
                                                        if (json_object_object_get_ex(
                                                                    facets, "aidp_digest", &fc))
                                                                fprintf(f, "\\n%.12s...",
                                                                        str_at(fc, "value", NULL,
                                                                               NULL)
                                                                                ?: "");
                                                        if (json_object_object_get_ex(
                                                                    facets, "aidp_classification",
                                                                    &fc) &&
                                                            str_at(fc, "classification", NULL,
                                                                   NULL)) {
                                                                fprintf(f, "\\n[");
                                                                dot_escape(f,
                                                                           str_at(fc,
                                                                                  "classification",
                                                                                  NULL, NULL));
                                                                fprintf(f, "]");
                                                        }
                                                }
                                                fprintf(f, "\"];\n");
                                        }
                                        snprintf(edge, sizeof edge, "%zu %s %s", l, r->id, id);
                                        if (json_object_object_get_ex(edges, edge, NULL))
                                                continue;
                                        json_object_object_add(edges, edge, NULL);
                                        fprintf(f, "  \"%s", l ? "run:" : "ds:");
                                        dot_escape(f, l ? r->id : id);
                                        fprintf(f, "\" -> \"%s", l ? "ds:" : "run:");
                                        dot_escape(f, l ? id : r->id);
                                        fprintf(f, "\";\n");
                                }
                        }
        }
        fprintf(f, "}\n");
}

static bool ends_with(const char *s, const char *suffix)
{
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && !strcmp(s + a - b, suffix);
}

/* Render DOT to SVG with Graphviz's dot(1), fed through a pipe. */
static int render_svg(const struct events *e, const struct runs *rs, const char *out,
                      aidp_error *err)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[0], STDIN_FILENO);
        char *args[] = {"dot", "-Tsvg", "-o", (char *)out, NULL};
        pid_t pid;
        int r = posix_spawnp(&pid, "dot", &fa, NULL, args, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        if (r != 0) {
                close(p[1]);
                if (r == ENOENT)
                        return aidp_error_set(
                                err, AIDP_EXIT_FAILED, ENOENT,
                                "Graphviz 'dot' is not installed: cannot write %s "
                                "(write DOT instead with -o FILE.dot, or install graphviz)",
                                out);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r, "running dot");
        }
        FILE *f = fdopen(p[1], "w");
        if (!f) {
                close(p[1]);
        } else {
                graph_write(f, e, rs);
                fclose(f);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "waiting for dot");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EIO, "dot failed to write %s", out);
        return 0;
}

static int cmd_graph(int argc, char **argv)
{
        static const struct option opts[] = {
                {"file", required_argument, NULL, 'f'},
                {"dataset", required_argument, NULL, 'd'},
                {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *dataset = NULL, *out = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "f:d:o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'f': file = optarg; break;
                case 'd': dataset = optarg; break;
                case 'o': out = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return AIDP_EXIT_USAGE;
                }
        }
        if (optind < argc)
                return usage_error("graph: unexpected argument '%s'", argv[optind]);
        const char *path = default_path(file);
        aidp_error err = {0};
        struct events e = {0};
        struct runs rs = {0};
        int status = 0;
        if (events_load(path, &e, &err) < 0 ||
            (runs_group(&e, &rs) < 0 &&
             aidp_error_set(&err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory"))) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        graph_select(&e, &rs, dataset);
        if (out && ends_with(out, ".svg")) {
                if (render_svg(&e, &rs, out, &err) < 0)
                        status = aidp_cli_fail(PROG, &err);
        } else if (out) {
                FILE *f = fopen(out, "we");
                if (!f) {
                        aidp_error_errno(&err, AIDP_EXIT_FAILED, errno, "writing %s", out);
                        status = aidp_cli_fail(PROG, &err);
                        goto out;
                }
                graph_write(f, &e, &rs);
                if (fclose(f) != 0) {
                        aidp_error_errno(&err, AIDP_EXIT_FAILED, errno, "writing %s", out);
                        status = aidp_cli_fail(PROG, &err);
                }
        } else {
                graph_write(stdout, &e, &rs);
        }
out:
        runs_free(&rs);
        events_free(&e);
        return status;
}

/* ---- export ------------------------------------------------------------------------------ */

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all)

static size_t discard(char *p, size_t size, size_t n, void *u)
{
        (void)p;
        (void)u;
        return size * n;
}

static int post_events(const struct events *e, const struct runs *rs, const char *url,
                       aidp_error *err)
{
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "libcurl initialization failed");
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        _cleanup_(curl_slist_free_allp) struct curl_slist *hdr =
                curl_slist_append(NULL, "Content-Type: application/json");
        if (!h || !hdr)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        char cerr[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(h, CURLOPT_URL, url);
        /* Lineage goes where the operator said, nowhere else: no redirects, only HTTP(S). */
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        size_t sent = 0;
        for (size_t i = 0; i < rs->n; i++) {
                if (!rs->r[i].selected)
                        continue;
                for (size_t k = 0; k < rs->r[i].n; k++) {
                        size_t idx = rs->r[i].idx[k];
                        size_t len = 0;
                        const char *body = json_object_to_json_string_length(
                                e->ev[idx], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                &len);
                        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
                        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
                        CURLcode cc = curl_easy_perform(h);
                        long code = 0;
                        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
                        if (cc != CURLE_OK)
                                return aidp_error_set(err, AIDP_EXIT_FAILED, EIO,
                                                      "POST of line %" PRIu64
                                                      " to %s: %s (%zu event(s) sent before)",
                                                      e->line[idx], url,
                                                      cerr[0] ? cerr : curl_easy_strerror(cc),
                                                      sent);
                        if (code < 200 || code > 299)
                                return aidp_error_set(err, AIDP_EXIT_FAILED, EIO,
                                                      "POST of line %" PRIu64
                                                      " to %s: HTTP %ld (%zu event(s) sent before)",
                                                      e->line[idx], url, code, sent);
                        sent++;
                }
        }
        fprintf(stderr, PROG ": exported %zu event(s) to %s\n", sent, url);
        return 0;
}

static int cmd_export(int argc, char **argv)
{
        static const struct option opts[] = {
                {"file", required_argument, NULL, 'f'},    {"run", required_argument, NULL, 'r'},
                {"dataset", required_argument, NULL, 'd'}, {"url", required_argument, NULL, 'u'},
                {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
        };
        const char *file = NULL, *run = NULL, *dataset = NULL, *url = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "f:r:d:u:h", opts, NULL)) != -1) {
                switch (c) {
                case 'f': file = optarg; break;
                case 'r': run = optarg; break;
                case 'd': dataset = optarg; break;
                case 'u': url = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return AIDP_EXIT_USAGE;
                }
        }
        if (optind < argc)
                return usage_error("export: unexpected argument '%s'", argv[optind]);
        if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
                return usage_error("export: --url must be an http:// or https:// URL, got '%s'",
                                   url);
        const char *path = default_path(file);
        aidp_error err = {0};
        struct events e = {0};
        struct runs rs = {0};
        int status = 0;
        if (events_load(path, &e, &err) < 0 ||
            (runs_group(&e, &rs) < 0 &&
             aidp_error_set(&err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory"))) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        runs_select(&e, &rs, run, dataset);
        if (url) {
                if (post_events(&e, &rs, url, &err) < 0)
                        status = aidp_cli_fail(PROG, &err);
        } else {
                /* Log order, not run order: a consumer replays events as they happened. */
                for (size_t i = 0; i < e.n; i++) {
                        const char *id = run_id(e.ev[i]);
                        bool sel = false;
                        for (size_t j = 0; j < rs.n && !sel; j++)
                                sel = rs.r[j].selected && !strcmp(rs.r[j].id, id);
                        if (sel)
                                printf("%s\n",
                                       json_object_to_json_string_ext(
                                               e.ev[i], JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
                }
        }
        if (status == 0 && e.skipped)
                status = AIDP_EXIT_FAILED;
out:
        runs_free(&rs);
        events_free(&e);
        return status;
}

int aidp_cli_lineage(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return AIDP_EXIT_USAGE;
        }
        const char *sub = argv[1];
        optind = 1;
        if (!strcmp(sub, "verify"))
                return cmd_verify(argc - 1, argv + 1);
        if (!strcmp(sub, "show"))
                return cmd_show(argc - 1, argv + 1);
        if (!strcmp(sub, "graph"))
                return cmd_graph(argc - 1, argv + 1);
        if (!strcmp(sub, "export"))
                return cmd_export(argc - 1, argv + 1);
        if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
                usage(stdout);
                return 0;
        }
        return usage_error("unknown lineage command '%s'", sub);
}
