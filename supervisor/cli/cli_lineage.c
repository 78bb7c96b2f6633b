/* aidp lineage verify|show|graph|export: the auditor's view of the lineage log.
 * This file: verify, reading the log into runs (shared), the dispatcher. */
#define _GNU_SOURCE
#include "supervisor/cli/cli_lineage.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/cli/cli.h"
#include "supervisor/lineage/seclog.h"

#define FILE_HELP "FILE defaults to $" AIDP_LINEAGE_ENV_PATH " or " AIDP_LINEAGE_DEFAULT_PATH ".\n"

const char *aidp_cli_lineage_path(const char *given)
{
        if (given)
                return given;
        const char *e = getenv(AIDP_LINEAGE_ENV_PATH);
        return e && e[0] ? e : AIDP_LINEAGE_DEFAULT_PATH;
}

/* ---- verify -------------------------------------------------------------------------- */

struct verify_cli {
        const char *key, *anchor;
        bool no_key, no_anchor, quiet, no_follow;
        struct aidp_cli_list witness;
};

#define VC(f) offsetof(struct verify_cli, f)

static const struct aidp_cli_opt verify_opts[] = {
        AIDP_CLI_OPT("key", 'k', AIDP_CLI_STRING, VC(key), "FILE",
                     "HMAC key (default $" AIDP_LINEAGE_ENV_KEY " or " AIDP_LINEAGE_DEFAULT_KEY ")",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("no-key", 0, AIDP_CLI_FLAG, VC(no_key), NULL,
                     "check the hash chain alone, not the authentication tags", AIDP_TRUST_USER),
        AIDP_CLI_OPT("anchor", 'a', AIDP_CLI_STRING, VC(anchor), "FILE",
                     "anchor file (default: FILE.anchor)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("no-anchor", 0, AIDP_CLI_FLAG, VC(no_anchor), NULL,
                     "do not check the anchor (records cut from the end would not show)",
                     AIDP_TRUST_USER),
        AIDP_CLI_OPT("witness", 'w', AIDP_CLI_LIST, VC(witness), "FILE",
                     "compare with what a witness saw (repeatable): its witness file, a\n"
                     "syslog archive holding its HEAD messages, events exported by\n"
                     "`aidp lineage export`, or the TPM counter: tpm (as in witnesses.yaml)\n"
                     "or tpm:INDEX[:TCTI]; finds rollback, substitution, emptying",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("no-follow", 0, AIDP_CLI_FLAG, VC(no_follow), NULL,
                     "do not follow a rotated log back through its archives", AIDP_TRUST_USER),
        AIDP_CLI_OPT("quiet", 'q', AIDP_CLI_FLAG, VC(quiet), NULL, "print nothing when intact",
                     AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_spec verify_spec = {
        .prog = PROG " verify",
        .synopsis = "[--key FILE | --no-key] [--anchor FILE | --no-anchor] [--witness W]...\n"
                    "[--no-follow] [FILE]",
        .about = "Check the hash chain, the authentication tags and the anchor of the log.\n"
                 "Exits 0 when the log is intact, 1 when it was tampered with, 116 when it\n"
                 "cannot be read. See docs/lineage.md.",
        .opts = verify_opts,
        .footer = FILE_HELP,
        .max_args = 1,
        .args = "at most one FILE",
};

static int cmd_verify(int argc, char **argv)
{
        struct verify_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&verify_spec, argc, argv, &c, &pa, &st))
                return st;
        const char *key_path = c.key, *anchor_path = c.anchor;
        bool no_key = c.no_key, no_anchor = c.no_anchor, quiet = c.quiet;
        const char *path = aidp_cli_lineage_path(pa.n_args ? argv[pa.first_arg] : NULL);
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
        struct aidp_lineage_verify v = {0};
        int r = aidp_lineage_verify_file_collect(path, anchor_path, !no_anchor, no_key ? NULL : key,
                                                 c.witness.n > 0, &v, &err);
        int wst = 0;
        /* A log deleted outright is for the witnesses to judge: they know it had records. */
        bool gone = r < 0 && err.errnum == ENOENT;
        if (gone)
                aidp_lineage_verify_init(&v, NULL, NULL); /* no records */
        if (c.witness.n && (gone || (r == 0 && !v.bad_line)))
                wst = aidp_cli_lineage_witnesses(path, &v, &c.witness, no_key ? NULL : key, quiet);
        /* A rotated log names its predecessor: the archives are part of the trail. */
        int fst = 0;
        if (!c.no_follow && r == 0 && !v.bad_line && !wst)
                fst = aidp_cli_lineage_follow(path, no_key ? NULL : key, !no_anchor, quiet);
        aidp_lineage_verify_release(&v);
        memset(key, 0, sizeof key);
        size_t nwitnesses = c.witness.n;
        aidp_cli_list_free(&c.witness);
        if (r < 0 && !(gone && wst == AIDP_EXIT_FAILED))
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
        if (wst)
                return wst;
        if (fst)
                return fst;
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
                if (!nwitnesses)
                        printf("%s: note: no witness given (--witness): a rollback of the log and "
                               "its anchor to an older copy, or its replacement by another log "
                               "of this host, cannot be excluded\n",
                               path);
        }
        return 0;
}

/* ---- reading events (show, graph, export) ------------------------------------------ */

void aidp_cli_events_free(struct events *e)
{
        for (size_t i = 0; i < e->n; i++)
                json_object_put(e->ev[i]);
        free(e->ev);
        free(e->line);
        free(e->head);
}

/* Reads every record; lines that are not records are reported and skipped (verify is
 * the tool that judges the log, these only present it). */
int aidp_cli_events_load(const char *path, struct events *e, aidp_error *err)
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
                        struct aidp_lineage_head *h = realloc(e->head, nc * sizeof *h);
                        if (h)
                                e->head = h;
                        if (!a || !l || !h) {
                                json_object_put(ev);
                                free(buf);
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                      "out of memory");
                        }
                        e->cap = nc;
                }
                struct aidp_lineage_head *h = &e->head[e->n];
                *h = (struct aidp_lineage_head){.seq = rec.seq};
                memcpy(h->log, rec.log, sizeof h->log);
                memcpy(h->hash, rec.hash, sizeof h->hash);
                e->ev[e->n] = ev;
                e->line[e->n++] = no;
        }
        int fe = ferror(f) ? errno : 0;
        free(buf);
        if (fe)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, fe, "reading lineage %s", path);
        return 0;
}

const char *aidp_cli_json_str(json_object *o, const char *a, const char *b, const char *c)
{
        const char *keys[] = {a, b, c};
        for (size_t i = 0; i < 3 && keys[i] && o; i++)
                if (!json_object_object_get_ex(o, keys[i], &o))
                        return NULL;
        return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

json_object *aidp_cli_run_facet(json_object *ev, const char *name)
{
        json_object *run, *facets, *f;
        if (json_object_object_get_ex(ev, "run", &run) &&
            json_object_object_get_ex(run, "facets", &facets) &&
            json_object_object_get_ex(facets, name, &f))
                return f;
        return NULL;
}

const char *aidp_cli_run_id(json_object *ev)
{
        const char *s = aidp_cli_json_str(ev, "run", "runId", NULL);
        return s ? s : "";
}

bool aidp_cli_dataset_matches(json_object *ds, const char *name)
{
        const char *ns = aidp_cli_json_str(ds, "namespace", NULL, NULL),
                   *n = aidp_cli_json_str(ds, "name", NULL, NULL);
        if (!n)
                return false;
        if (!strcmp(n, name))
                return true;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", ns ? ns : "", n);
        return !strcmp(full, name);
}

/* Inputs, outputs, and what a denied run asked for (the aidp_requested facet): a
 * filter on a dataset also finds the attempts that were refused. */
bool aidp_cli_touches_dataset(json_object *ev, const char *name)
{
        static const char *const lists[] = {"inputs", "outputs", "requested"};
        for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
                json_object *arr, *f = aidp_cli_run_facet(ev, "aidp_requested");
                if (l < 2 ? !json_object_object_get_ex(ev, lists[l], &arr)
                          : !f || !json_object_object_get_ex(f, "inputs", &arr) ||
                                    !json_object_is_type(arr, json_type_array))
                        continue;
                for (size_t i = 0; i < json_object_array_length(arr); i++)
                        if (aidp_cli_dataset_matches(json_object_array_get_idx(arr, i), name))
                                return true;
        }
        return false;
}

void aidp_cli_runs_free(struct runs *rs)
{
        for (size_t i = 0; i < rs->n; i++)
                free(rs->r[i].idx);
        free(rs->r);
}

int aidp_cli_runs_group(const struct events *e, struct runs *rs)
{
        rs->r = calloc(e->n ? e->n : 1, sizeof *rs->r);
        if (!rs->r)
                return -ENOMEM;
        for (size_t i = 0; i < e->n; i++) {
                const char *id = aidp_cli_run_id(e->ev[i]);
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
int aidp_cli_lineage_parse_since(const char *arg, void *dest, aidp_error *err)
{
        (void)err;
        struct lineage_cli *c = dest;
        c->has_since = true;
        return aidp_cli_parse_time(arg, &c->since);
}

int aidp_cli_lineage_parse_until(const char *arg, void *dest, aidp_error *err)
{
        (void)err;
        struct lineage_cli *c = dest;
        c->has_until = true;
        return aidp_cli_parse_time(arg, &c->until);
}

/* Whether one event passes the per-event filters: dataset, user, time. */
static bool event_in_window(json_object *ev, const struct lineage_cli *c)
{
        if (!c->has_since && !c->has_until)
                return true;
        int64_t t;
        const char *s = aidp_cli_json_str(ev, "eventTime", NULL, NULL);
        if (!s || aidp_cli_parse_time(s, &t) < 0)
                return false;
        return (!c->has_since || t >= c->since) && (!c->has_until || t < c->until);
}

static bool run_matches(const struct events *e, const struct run *r, const struct lineage_cli *c)
{
        const char *name = NULL;
        json_object *f = aidp_cli_run_facet(e->ev[r->idx[0]], "aidp_run");
        if (f)
                name = aidp_cli_json_str(f, "runName", NULL, NULL);
        /* The OpenLineage runId (a prefix is enough) or the supervisor's run id. */
        if (c->run && strncmp(r->id, c->run, strlen(c->run)) && !(name && !strcmp(name, c->run)))
                return false;
        bool ds = !c->dataset, user = !c->user, when = !c->has_since && !c->has_until;
        for (size_t k = 0; k < r->n; k++) {
                json_object *ev = e->ev[r->idx[k]], *caller;
                ds = ds || aidp_cli_touches_dataset(ev, c->dataset);
                caller = aidp_cli_run_facet(ev, "aidp_caller");
                user = user ||
                       (caller &&
                        !strcmp(aidp_cli_json_str(caller, "user", NULL, NULL) ?: "", c->user));
                when = when || event_in_window(ev, c);
        }
        return ds && user && when;
}

void aidp_cli_runs_select(const struct events *e, struct runs *rs, const struct lineage_cli *c)
{
        for (size_t i = 0; i < rs->n; i++)
                rs->r[i].selected = run_matches(e, &rs->r[i], c);
}

int aidp_cli_lineage_read(const char *path, struct events *e, struct runs *rs, aidp_error *err)
{
        int r = aidp_cli_events_load(path, e, err);
        if (r < 0)
                return r;
        if (aidp_cli_runs_group(e, rs) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

int aidp_cli_lineage(int argc, char **argv)
{
        static const struct aidp_cli_cmd cmds[] = {
                {"verify", cmd_verify, "check the log's hash chain, tags and anchor"},
                {"show", aidp_cli_lineage_show, "the runs of the log, readable or as JSON"},
                {"graph", aidp_cli_lineage_graph, "runs and datasets as a DOT or SVG graph"},
                {"export", aidp_cli_lineage_export, "OpenLineage events, to stdout or a URL"},
                {"rotate", aidp_cli_lineage_rotate, "archive the log, start one linked to it"},
                {NULL, NULL, NULL},
        };
        static const struct aidp_cli_group g = {
                .prog = PROG,
                .cmds = cmds,
                .footer = FILE_HELP "The key defaults to $" AIDP_LINEAGE_ENV_KEY
                                    " or " AIDP_LINEAGE_DEFAULT_KEY ". See docs/lineage.md.\n",
        };
        return aidp_cli_dispatch(&g, argc, argv);
}
