/* `aidp lineage` end to end: the built binary on a log written through the library.
 * verify's exit statuses, show/graph/export output, export to a local HTTP sink. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/lineage/lineage.h"
#include "supervisor/run/run_lineage.h"

extern char **environ;

#define AIDP AIDP_BINARY_DIR "/aidp"

static char dir[128], logp[200], keyp[200], outp[200], errp[200];
static char runs[3][AIDP_LINEAGE_RUN_ID_LEN + 1];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(p);
}

/* Three runs: two read imagenet and write model-N; the third reads model-0. */
static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-lineage-cli.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(logp, sizeof logp, "%s/l.jsonl", dir);
        snprintf(keyp, sizeof keyp, "%s/l.key", dir);
        snprintf(outp, sizeof outp, "%s/stdout", dir);
        snprintf(errp, sizeof errp, "%s/stderr", dir);
        setenv(AIDP_LINEAGE_ENV_KEY, keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        struct aidp_lineage_options o = {.path = logp, .key_path = keyp, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        for (int r = 0; r < 3; r++) {
                aidp_lineage_run_id_new(runs[r]);
                for (int t = 0; t < 2; t++) {
                        json_object *ev = aidp_lineage_event_new(
                                t ? AIDP_LINEAGE_COMPLETE : AIDP_LINEAGE_START, runs[r], NULL,
                                r == 2 ? "finetune" : "train");
                        json_object *in =
                                aidp_lineage_add_input(ev, "aidp", r == 2 ? "model-0" : "imagenet");
                        const char *tags[] = {"pii"};
                        aidp_lineage_dataset_set_classification(in, "confidential", tags, 1);
                        aidp_lineage_set_caller(ev, r == 2 ? 1001 : 1000, 1000,
                                                r == 2 ? "bob" : "alice", NULL);
                        /* Run r at noon UTC on the first of month r+1 of 2026. */
                        static const int64_t noon[] = {1767268800, 1769947200, 1772366400};
                        aidp_lineage_event_set_time(ev, (noon[r] + t * 60) * 1000000000LL);
                        if (t) {
                                char name[24];
                                snprintf(name, sizeof name, "model-%d", r);
                                json_object *out = aidp_lineage_add_output(ev, "aidp", name);
                                aidp_lineage_dataset_set_digest(out, "sha256",
                                                                "ababababababababababababababababab"
                                                                "ababababababababababababababab");
                                aidp_lineage_set_exit(ev, 0, 0, 0, "exited");
                        }
                        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
                        json_object_put(ev);
                }
        }
        aidp_lineage_free(lg);
}

static void teardown(void)
{
        nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(lineage_cli, .init = setup, .fini = teardown, .timeout = 120);

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return strdup("");
        char *buf = NULL;
        size_t len = 0;
        ssize_t n = getdelim(&buf, &len, '\0', f);
        cr_assert(n >= 0 || feof(f), "reading %s", path);
        fclose(f);
        if (n < 0) { /* empty */
                free(buf);
                return strdup("");
        }
        return buf;
}

/* Runs aidp with args; stdout/stderr land in outp/errp. Returns the exit status. */
static int run(const char *const *args)
{
        char *argv[16] = {"aidp"};
        size_t n = 1;
        for (; args[n - 1]; n++)
                argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        pid_t pid;
        cr_assert_eq(posix_spawn(&pid, AIDP, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st), "aidp died: %d", st);
        return WEXITSTATUS(st);
}

Test(lineage_cli, verify_intact_log_exits_0)
{
        cr_assert_eq(run((const char *[]){"lineage", "verify", logp, NULL}), 0);
        char *out = slurp(outp);
        cr_assert(
                strstr(out, "OK: 6 record(s); hash chain, authentication tags and anchor verified"),
                "%s", out);
        free(out);
        /* $AIDP_LINEAGE_FILE stands in for FILE. */
        setenv(AIDP_LINEAGE_ENV_PATH, logp, 1);
        cr_assert_eq(run((const char *[]){"lineage", "verify", NULL}), 0);
        unsetenv(AIDP_LINEAGE_ENV_PATH);
}

Test(lineage_cli, verify_tampered_log_exits_1_and_names_the_line)
{
        char *buf = slurp(logp);
        char *third = strchr(strchr(buf, '\n') + 1, '\n') + 1;
        char *p = strstr(third, "alice");
        p[0] = 'A';
        FILE *f = fopen(logp, "we");
        fputs(buf, f);
        fclose(f);
        cr_assert_eq(run((const char *[]){"lineage", "verify", logp, NULL}), 1);
        char *err = slurp(errp);
        cr_assert(strstr(err, "TAMPERED: line 3: authentication tag does not match"), "%s", err);
        free(err);
        cr_assert_eq(run((const char *[]){"lineage", "verify", "--no-key", logp, NULL}), 1);
        err = slurp(errp);
        cr_assert(strstr(err, "TAMPERED: line 4: previous-line hash does not match line 3"), "%s",
                  err);
        free(err);
        free(buf);
}

Test(lineage_cli, verify_tamper_is_reported_to_syslog)
{
        char sock_path[240];
        snprintf(sock_path, sizeof sock_path, "%s/log.sock", dir);
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, sock_path);
        cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
        setenv("AIDP_SYSLOG_SOCKET", sock_path, 1);
        cr_assert_eq(truncate(logp, 10), 0); /* one torn, unanchored first line */
        cr_assert_eq(run((const char *[]){"lineage", "verify", logp, NULL}), 1);
        struct pollfd pf = {.fd = s, .events = POLLIN};
        cr_assert_eq(poll(&pf, 1, 2000), 1, "no syslog message");
        char msg[4096];
        ssize_t n = recv(s, msg, sizeof msg - 1, 0);
        msg[n > 0 ? n : 0] = '\0';
        close(s);
        cr_assert(!strncmp(msg, "<82>1 ", 6), "%s", msg);
        cr_assert(strstr(msg, " TAMPER [aidp@32473 file=\"") && strstr(msg, "line=\"1\""), "%s",
                  msg);
}

Test(lineage_cli, verify_unreadable_exits_lineage_status)
{
        char missing[240];
        snprintf(missing, sizeof missing, "%s/none.jsonl", dir);
        cr_assert_eq(run((const char *[]){"lineage", "verify", missing, NULL}), AIDP_EXIT_LINEAGE);
        char *err = slurp(errp);
        cr_assert(strstr(err, "opening lineage") && strstr(err, "No such file"), "%s", err);
        free(err);
        /* No key, and not told to go without one. */
        cr_assert_eq(run((const char *[]){"lineage", "verify", "--key", missing, logp, NULL}),
                     AIDP_EXIT_LINEAGE);
        err = slurp(errp);
        cr_assert(strstr(err, "--no-key"), "%s", err);
        free(err);
        cr_assert_eq(run((const char *[]){"lineage", "verify", "a", "b", NULL}), AIDP_EXIT_USAGE);
        cr_assert_eq(run((const char *[]){"lineage", "frobnicate", NULL}), AIDP_EXIT_USAGE);
}

Test(lineage_cli, show_summarizes_runs_and_filters)
{
        cr_assert_eq(run((const char *[]){"lineage", "show", "--file", logp, NULL}), 0);
        char *out = slurp(outp);
        for (int r = 0; r < 3; r++) {
                char want[160];
                snprintf(want, sizeof want, "run %s", runs[r]);
                cr_assert(strstr(out, want), "missing %s in\n%s", want, out);
        }
        cr_assert(strstr(out, "job aidp/finetune  (COMPLETE)"), "%s", out);
        cr_assert(strstr(out, "caller    alice (uid 1000, gid 1000)"), "%s", out);
        cr_assert(strstr(out, "input     aidp/imagenet  [confidential]  tags: pii"), "%s", out);
        cr_assert(strstr(out, "START     line 1"), "%s", out);
        cr_assert(strstr(out, "COMPLETE  line 6"), "%s", out);
        free(out);

        char prefix[9];
        snprintf(prefix, sizeof prefix, "%.8s", runs[1]);
        cr_assert_eq(
                run((const char *[]){"lineage", "show", "--file", logp, "--run", prefix, NULL}), 0);
        out = slurp(outp);
        cr_assert(strstr(out, runs[1]) && !strstr(out, runs[0]) && !strstr(out, runs[2]), "%s",
                  out);
        free(out);

        cr_assert_eq(run((const char *[]){"lineage", "show", "--file", logp, "--dataset", "model-0",
                                          NULL}),
                     0);
        out = slurp(outp);
        cr_assert(strstr(out, runs[0]) && !strstr(out, runs[1]) && strstr(out, runs[2]), "%s", out);
        free(out);

        cr_assert_eq(run((const char *[]){"lineage", "show", "--file", logp, "--json", NULL}), 0);
        out = slurp(outp);
        json_object *arr = json_tokener_parse(out);
        cr_assert(json_object_is_type(arr, json_type_array), "%s", out);
        cr_assert_eq(json_object_array_length(arr), 3);
        json_object *r0 = json_object_array_get_idx(arr, 0), *v, *evs;
        cr_assert(json_object_object_get_ex(r0, "runId", &v));
        cr_assert_str_eq(json_object_get_string(v), runs[0]);
        cr_assert(json_object_object_get_ex(r0, "events", &evs));
        cr_assert_eq(json_object_array_length(evs), 2);
        cr_assert(!json_object_object_get_ex(json_object_array_get_idx(evs, 0), "aidp_hmac", NULL));
        json_object_put(arr);
        free(out);
}

/* A denied run read nothing: show lists what it asked for (the aidp_requested
 * facet, as the run core records it) as "requested", never as an input. */
Test(lineage_cli, show_lists_a_denied_runs_requested_datasets)
{
        struct aidp_run_opts o = {.lineage_path = logp, .job_name = "resnet-eu"};
        struct aidp_run_result res = {.n_inputs = 1, .exit_status = 121};
        snprintf(res.run_id, sizeof res.run_id, "denied-1");
        struct aidp_run_dataset *d = &res.inputs[0];
        snprintf(d->name, sizeof d->name, "patients");
        snprintf(d->classification, sizeof d->classification, "restricted");
        snprintf(d->residency, sizeof d->residency, "eu");
        snprintf(d->regulation, sizeof d->regulation, "gdpr");
        snprintf(d->digest, sizeof d->digest, "sha256:%064d", 0);
        aidp_error e = {0};
        cr_assert_eq(aidp_run_lineage_denied(&o, &res, NULL, NULL, NULL, &e), 0, "%s", e.msg);
        cr_assert_eq(run((const char *[]){"lineage", "show", "--file", logp, NULL}), 0);
        char *out = slurp(outp);
        const char *denied = strstr(out, "job aidp/resnet-eu  (OTHER)");
        cr_assert(denied, "%s", out);
        cr_assert(strstr(denied, "  requested aidp/patients  sha256:") &&
                          strstr(denied, "[restricted]  tags: eu,gdpr\n"),
                  "%s", out);
        cr_assert_null(strstr(denied, "  input "), "a denied run shows an input:\n%s", out);
        free(out);
        /* --dataset finds the run by what it asked for. */
        cr_assert_eq(run((const char *[]){"lineage", "show", "--file", logp, "--dataset",
                                          "patients", NULL}),
                     0);
        out = slurp(outp);
        cr_assert(strstr(out, "job aidp/resnet-eu") && !strstr(out, "job aidp/train"), "%s", out);
        free(out);
}

Test(lineage_cli, graph_draws_dataset_run_artifact_edges)
{
        cr_assert_eq(run((const char *[]){"lineage", "graph", "--file", logp, "--dataset",
                                          "imagenet", NULL}),
                     0);
        char *out = slurp(outp);
        char want[160];
        cr_assert(!strncmp(out, "digraph lineage {", 17), "%s", out);
        snprintf(want, sizeof want, "\"ds:aidp/imagenet\" -> \"run:%s\";", runs[0]);
        cr_assert(strstr(out, want), "missing %s", want);
        snprintf(want, sizeof want, "\"run:%s\" -> \"ds:aidp/model-0\";", runs[0]);
        cr_assert(strstr(out, want), "missing %s", want);
        /* Downstream: model-0 went on into the finetune run. */
        snprintf(want, sizeof want, "\"ds:aidp/model-0\" -> \"run:%s\";", runs[2]);
        cr_assert(strstr(out, want), "missing %s", want);
        free(out);
        cr_assert_eq(run((const char *[]){"lineage", "graph", "--file", logp, "--dataset",
                                          "model-1", NULL}),
                     0);
        out = slurp(outp);
        cr_assert(strstr(out, runs[1]) && !strstr(out, runs[0]) && !strstr(out, runs[2]), "%s",
                  out);
        free(out);

        char svg[240];
        snprintf(svg, sizeof svg, "%s/g.svg", dir);
        int rc = run((const char *[]){"lineage", "graph", "--file", logp, "-o", svg, NULL});
        if (access("/usr/bin/dot", X_OK) == 0) {
                cr_assert_eq(rc, 0);
                char *s = slurp(svg);
                cr_assert(strstr(s, "<svg") && strstr(s, "imagenet"), "not an SVG");
                free(s);
        } else {
                cr_assert_eq(rc, 1);
                char *err = slurp(errp);
                cr_assert(strstr(err, "Graphviz 'dot' is not installed"), "%s", err);
                free(err);
                cr_assert(access(svg, F_OK) < 0, "a failed render left %s behind", svg);
        }
}

/* -o renders by the extension: the file's first bytes are that format's magic, never
 * DOT text under an image's name. */
Test(lineage_cli, graph_output_format_follows_the_extension)
{
        static const struct {
                const char *name, *magic;
        } cases[] = {
                {"g.dot", "digraph lineage {"},
                {"g.GV", "digraph lineage {"},
                {"g.png", "\x89PNG\r\n\x1a\n"},
                {"g.pdf", "%PDF-"},
        };
        bool have_dot = access("/usr/bin/dot", X_OK) == 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char path[240];
                snprintf(path, sizeof path, "%s/%s", dir, cases[i].name);
                int rc =
                        run((const char *[]){"lineage", "graph", "--file", logp, "-o", path, NULL});
                bool needs_dot = strncmp(cases[i].magic, "digraph", 7) != 0;
                if (needs_dot && !have_dot) {
                        cr_assert_eq(rc, 1, "%s", cases[i].name);
                        continue;
                }
                cr_assert_eq(rc, 0, "%s", cases[i].name);
                char *s = slurp(path);
                cr_assert(!memcmp(s, cases[i].magic, strlen(cases[i].magic)),
                          "%s does not start with its format's magic", cases[i].name);
                free(s);
        }
}

Test(lineage_cli, graph_refuses_an_extension_it_cannot_write)
{
        static const char *const names[] = {"g.jpg", "graph", "g.svg.txt", "dir.svg/g"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                char path[240];
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                cr_assert_eq(
                        run((const char *[]){"lineage", "graph", "--file", logp, "-o", path, NULL}),
                        120, "%s", names[i]);
                cr_assert(access(path, F_OK) < 0, "%s was created", path);
                char *err = slurp(errp);
                cr_assert(strstr(err, "-o takes a file ending in .dot"), "%s", err);
                free(err);
        }
}

static size_t check_exported_lines(char *text, const char *prefix_sep)
{
        size_t n = 0;
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
                if (prefix_sep) {
                        /* "Content-Type\tpath\tbody" from the sink */
                        cr_assert(!strncmp(l, "application/json\t/api/v1/lineage\t", 33), "%s", l);
                        l += 33;
                }
                json_object *ev = json_tokener_parse(l);
                aidp_error e = {0};
                cr_assert_eq(aidp_lineage_event_check(ev, &e), 0, "%s: %s", e.msg, l);
                cr_assert(!json_object_object_get_ex(ev, "aidp_seq", NULL));
                cr_assert(!json_object_object_get_ex(ev, "aidp_prev", NULL));
                cr_assert(!json_object_object_get_ex(ev, "aidp_hmac", NULL));
                json_object_put(ev);
                n++;
        }
        return n;
}

Test(lineage_cli, export_to_stdout_gives_plain_openlineage_events)
{
        cr_assert_eq(run((const char *[]){"lineage", "export", "--file", logp, NULL}), 0);
        char *out = slurp(outp);
        cr_assert_eq(check_exported_lines(out, NULL), 6);
        free(out);
        cr_assert_eq(
                run((const char *[]){"lineage", "export", "--file", logp, "--run", runs[2], NULL}),
                0);
        out = slurp(outp);
        cr_assert_eq(check_exported_lines(out, NULL), 2);
        free(out);
        cr_assert_eq(run((const char *[]){"lineage", "export", "--url", "ftp://x", NULL}),
                     AIDP_EXIT_USAGE);
}

/* Filters of show and export: user, time range, combined with run and dataset. */
Test(lineage_cli, show_and_export_filter_by_user_and_time)
{
        static const struct {
                const char *args[6];
                bool want[3];
        } cases[] = {
                {{"--user", "bob"}, {false, false, true}},
                {{"--user", "alice"}, {true, true, false}},
                {{"--user", "carol"}, {false, false, false}},
                {{"--since", "2026-02-01"}, {false, true, true}},
                {{"--until", "2026-02-01"}, {true, false, false}},
                {{"--since", "2026-01-15T00:00:00Z", "--until", "2026-03-01T11:00:00+00:00"},
                 {false, true, false}},
                {{"--since", "2026-03-01T12:01:00Z"}, {false, false, true}}, /* its COMPLETE */
                {{"--since", "@1772366461"}, {false, false, false}},
                {{"--user", "alice", "--dataset", "imagenet", "--since", "2026-02-01"},
                 {false, true, false}},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                for (int cmd = 0; cmd < 2; cmd++) {
                        const char *argv[16] = {"lineage", cmd ? "export" : "show", "--file", logp};
                        size_t n = 4;
                        for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
                                argv[n++] = cases[i].args[k];
                        argv[n] = NULL;
                        cr_assert_eq(run(argv), 0, "case %zu", i);
                        char *out = slurp(outp);
                        size_t lines = 0, want_lines = 0;
                        for (char *p = out; (p = strchr(p, '\n')); p++)
                                lines++;
                        for (int r = 0; r < 3; r++) {
                                want_lines += cases[i].want[r] ? 2 : 0;
                                cr_assert_eq(strstr(out, runs[r]) != NULL, cases[i].want[r],
                                             "case %zu %s run %d:\n%s", i, argv[1], r, out);
                        }
                        if (cmd)
                                cr_assert_eq(lines, want_lines, "case %zu:\n%s", i, out);
                        free(out);
                }
        }
        cr_assert_eq(
                run((const char *[]){"lineage", "show", "--file", logp, "--since", "March", NULL}),
                AIDP_EXIT_USAGE);
        char *err = slurp(errp);
        cr_assert(strstr(err, "--since 'March': expected YYYY-MM-DD"), "%s", err);
        free(err);
}

/* --incremental to stdout: each run of export prints only what the last one did not,
 * remembered in a 0600 state file beside the log. */
Test(lineage_cli, export_incremental_to_stdout_sends_nothing_twice)
{
        char state[240];
        snprintf(state, sizeof state, "%s.export-state", logp);
        cr_assert_eq(
                run((const char *[]){"lineage", "export", "--file", logp, "--incremental", NULL}),
                0);
        char *out = slurp(outp);
        cr_assert_eq(check_exported_lines(out, NULL), 6);
        free(out);
        struct stat sb;
        cr_assert_eq(stat(state, &sb), 0);
        cr_assert_eq(sb.st_mode & 07777, 0600);
        cr_assert_eq(
                run((const char *[]){"lineage", "export", "--file", logp, "--incremental", NULL}),
                0);
        out = slurp(outp);
        cr_assert_str_eq(out, "");
        free(out);
        /* A new run appended: only its events. */
        struct aidp_lineage_options o = {.path = logp, .key_path = keyp};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "later");
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
        aidp_lineage_free(lg);
        cr_assert_eq(
                run((const char *[]){"lineage", "export", "--file", logp, "--incremental", NULL}),
                0);
        out = slurp(outp);
        cr_assert_eq(check_exported_lines(out, NULL), 1);
        free(out);
        out = slurp(outp);
        cr_assert(strstr(out, id), "%s", out);
        free(out);
        /* Filters and --incremental do not mix; a state others can read is refused. */
        cr_assert_eq(run((const char *[]){"lineage", "export", "--file", logp, "--incremental",
                                          "--user", "bob", NULL}),
                     AIDP_EXIT_USAGE);
        cr_assert_eq(chmod(state, 0644), 0);
        cr_assert_eq(
                run((const char *[]){"lineage", "export", "--file", logp, "--incremental", NULL}),
                AIDP_EXIT_LINEAGE);
        char *err = slurp(errp);
        cr_assert(strstr(err, "with mode 0600"), "%s", err);
        free(err);
        unlink(state);
}

static int sink_out = -1;

/* Starts the sink; returns its pid, port in *port, its stdin in *in. */
static pid_t start_sink(const char *out_file, const char *status, int *port, int *in)
{
        int pin[2], pout[2];
        cr_assert_eq(pipe2(pin, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(pout, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                dup2(pin[0], 0);
                dup2(pout[1], 1);
                execlp("python3", "python3", AIDP_SOURCE_DIR "/tests/data/openlineage_sink.py",
                       out_file, status, "60", (char *)NULL);
                _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        /* Read the whole first line; the pipe stays open until the sink is stopped,
         * so a late write from it never meets a closed pipe. */
        char buf[32] = "";
        size_t got = 0;
        while (got < sizeof buf - 1 && !strchr(buf, '\n')) {
                struct pollfd pf = {.fd = pout[0], .events = POLLIN};
                cr_assert_eq(poll(&pf, 1, 20000), 1, "sink did not start");
                ssize_t n = read(pout[0], buf + got, sizeof buf - 1 - got);
                cr_assert_gt(n, 0, "sink exited before printing its port");
                got += (size_t)n;
                buf[got] = '\0';
        }
        sink_out = pout[0];
        *port = atoi(buf);
        cr_assert_gt(*port, 0);
        *in = pin[1];
        return pid;
}

static void stop_sink(pid_t pid, int in)
{
        close(in); /* the sink exits when its stdin closes */
        close(sink_out);
        int st;
        for (int i = 0; i < 50; i++) {
                if (waitpid(pid, &st, WNOHANG) == pid)
                        return;
                usleep(100000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
}

Test(lineage_cli, export_posts_each_event_to_an_openlineage_endpoint)
{
        char got[240], url[128];
        snprintf(got, sizeof got, "%s/posted", dir);
        int port, in;
        pid_t pid = start_sink(got, "201", &port, &in);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/lineage", port);
        int rc = run((const char *[]){"lineage", "export", "--file", logp, "--url", url, NULL});
        stop_sink(pid, in);
        char *err = slurp(errp);
        cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
        cr_assert(strstr(err, "exported 6 event(s) to"), "%s", err);
        free(err);
        char *posted = slurp(got);
        cr_assert_eq(check_exported_lines(posted, "\t"), 6);
        free(posted);
}

/* --incremental to an endpoint: a second export posts nothing; a log replaced under the
 * state is refused rather than resent or skipped. */
Test(lineage_cli, export_incremental_posts_each_event_once)
{
        char got[240], url[128];
        snprintf(got, sizeof got, "%s/posted", dir);
        int port, in;
        pid_t pid = start_sink(got, "200", &port, &in);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/lineage", port);
        const char *args[] = {"lineage",       "export", "--file", logp,
                              "--incremental", "--url",  url,      NULL};
        int rc1 = run(args);
        char *err1 = slurp(errp);
        int rc2 = run(args);
        char *err2 = slurp(errp);
        /* Stdout is another destination: it still gets everything. */
        int rc3 = run((const char *[]){"lineage", "export", "--file", logp, "--incremental", NULL});
        char *out3 = slurp(outp);
        stop_sink(pid, in);
        cr_assert_eq(rc1, 0, "%s", err1);
        cr_assert(strstr(err1, "exported 6 event(s)"), "%s", err1);
        cr_assert_eq(rc2, 0, "%s", err2);
        cr_assert(strstr(err2, "exported 0 event(s)"), "%s", err2);
        cr_assert_eq(rc3, 0);
        cr_assert_eq(check_exported_lines(out3, NULL), 6);
        char *posted = slurp(got);
        cr_assert_eq(check_exported_lines(posted, "\t"), 6);
        free(posted);
        free(err1);
        free(err2);
        free(out3);

        /* The log replaced by a shorter one: the state no longer matches it. */
        cr_assert_eq(truncate(logp, 0), 0);
        cr_assert_eq(run(args), AIDP_EXIT_LINEAGE);
        char *err = slurp(errp);
        cr_assert(strstr(err, "is not the event last exported"), "%s", err);
        free(err);
}

Test(lineage_cli, export_reports_an_endpoint_error)
{
        char got[240], url[128];
        snprintf(got, sizeof got, "%s/posted", dir);
        int port, in;
        pid_t pid = start_sink(got, "500", &port, &in);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/lineage", port);
        int rc = run((const char *[]){"lineage", "export", "--file", logp, "--url", url, NULL});
        stop_sink(pid, in);
        cr_assert_eq(rc, 1);
        char *err = slurp(errp);
        cr_assert(strstr(err, "POST of line 1 to") &&
                          strstr(err, "HTTP 500 (0 event(s) sent before)"),
                  "%s", err);
        free(err);
}
