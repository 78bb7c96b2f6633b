/* aidp-run's own command line (supervisor/cli/cli_client.c): where the job's
 * command starts is found by run's own parser, so that aidp-run's options
 * (--socket, --detach, --out) after the command are the job's; its help,
 * version and errors under its own name; and the hint of aidp-run, aidp ps,
 * stop and logs when the daemon cannot be reached. With a real unprivileged
 * user and a daemon of the test's own. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/daemon/proto.h"
#include "daemon_util.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"
#include "tests/tpath.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"
#define AIDP_BIN     AIDP_BINARY_DIR "/aidp"

static struct aidp_test_user A;
static struct aidp_proc P, Q, R;
static char *T;
static char sock[100], rundir[1024], logp[1024], keyp[1024], policy[1024];
static pid_t daemon_pid;
static bool ready;

static void setup(void)
{
        if (geteuid() != 0)
                return;
        ready = aidp_test_daemon_fixture(&T, "c", &A, sock, rundir, logp, keyp, policy);
}

static void teardown(void)
{
        if (T)
                aidp_test_daemon_fixture_end(&daemon_pid, sock, rundir, &T);
}

TestSuite(daemon_cli, .init = setup, .fini = teardown, .timeout = 120);

#define NEED()                                                                                     \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready, "test user or files could not be made (%s)",                      \
                          aidp_test_users_why());                                                  \
                char k_[1100];                                                                     \
                TEST_SNPRINTF(k_, "AIDP_LINEAGE_KEY=%s", keyp);                                    \
                const char *env_[] = {k_, NULL};                                                   \
                const char *a_[] = {"--lineage", logp, NULL};                                      \
                daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, a_, env_, true);          \
        } while (0)

/* args[0] (aidp-run, or aidp and its command) --socket sock args... as A. */
static int as_a(struct aidp_proc *p, const char *const *args)
{
        return aidp_test_client_as(p, &A, sock, true, args);
}

/* aidp-run's own options after the job's command, without --, are the job's
 * arguments: echo gets them untouched, the run is not detached and the
 * client still talks to the daemon at sock. */
Test(daemon_cli, own_options_after_the_command_are_the_jobs)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q",       "--no-cwd", "/bin/echo", "hello",   "--out",
                           "x",          "--detach", "--socket", "/tmp/y",    "--out=z", NULL};
        cr_assert_eq(as_a(&P, a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "hello --out x --detach --socket /tmp/y --out=z\n", "%s", P.err);
        /* the same after -- */
        const char *b[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--", "/bin/echo", "--detach", NULL};
        cr_assert_eq(as_a(&P, b), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "--detach\n", "%s", P.err);
}

/* An option's value that looks like an option is its value: the job is
 * named --detach, and the run is not detached. */
Test(daemon_cli, an_options_value_is_never_an_option)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--job-name", "--detach",
                           "--",         "/bin/echo", "hi",       NULL};
        cr_assert_eq(as_a(&P, a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "hi\n", "detached? %s", P.err);
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_assert_not_null(log);
        cr_expect(strstr(log, "\"--detach\"") != NULL, "no job named --detach in lineage");
        free(log);
        /* --socket's value too: the client connects to sock, not elsewhere */
        const char *b[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--job-name",
                           "--socket",   "/bin/echo", "ok",       NULL};
        cr_assert_eq(as_a(&P, b), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "ok\n", "%s", P.err);
}

/* Before the command (with or without --), aidp-run's own options are its
 * own: --detach detaches, --out is run's --output-dir under the name the user
 * typed. */
Test(daemon_cli, own_options_before_the_command)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--detach", "/bin/true", NULL};
        cr_assert_eq(as_a(&P, a), 0, "%s", P.err);
        char run_id[64];
        TEST_SNPRINTF(run_id, "%.36s", P.out);
        cr_assert_eq(strlen(run_id), 36, "no run id: %s / %s", P.out, P.err);
        char *end = aidp_test_wait_lineage(logp, run_id, "COMPLETE", 60000);
        cr_expect_not_null(end, "no end record for %s", run_id);
        free(end);
        const char *b[] = {AIDP_RUN_BIN,        "-q", "--no-cwd",  "--out",
                           "/nonexistent-aidp", "--", "/bin/true", NULL};
        cr_expect_eq(as_a(&P, b), AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "aidp-run: error: --out /nonexistent-aidp: ") != NULL, "%s", P.err);
        char outd[1100];
        TEST_SNPRINTF(outd, "%s/out", T);
        cr_assert_eq(mkdir(outd, 0700), 0);
        cr_assert_eq(chown(outd, A.uid, A.gid), 0);
        const char *o[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--out", outd, "--", "/bin/true", NULL};
        /* the daemon got it as --output-dir, and names it as the user typed it */
        cr_expect_eq(as_a(&P, o), AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "--out without --data needs --output-key-id") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, "--output-dir") == NULL, "%s", P.err);
        const char *c[] = {AIDP_RUN_BIN, "--out",     "/tmp", "--output-dir",
                           "/tmp",       "/bin/true", NULL};
        cr_expect_eq(as_a(&P, c), AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "--out and --output-dir") != NULL, "%s", P.err);
}

/* The daemon's messages, and those of the run it starts, name what the user
 * typed: --out (not run's --output-dir, which the request carries), the
 * working directory the client added as --cwd by that name; --output-dir
 * where the user typed that. */
Test(daemon_cli, daemon_messages_name_options_as_typed)
{
        NEED();
        /* root's, not writable by A: the client opens it (O_PATH), the
         * daemon's check as A refuses it */
        char rootd[1100];
        TEST_SNPRINTF(rootd, "%s/rootout", T);
        cr_assert_eq(mkdir(rootd, 0755), 0);
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--out", rootd, "/bin/true", NULL};
        cr_expect_eq(as_a(&P, a), AIDP_EXIT_USAGE, "%s", P.err);
        char want[1200];
        TEST_SNPRINTF(want, "aidp-run: error: --out %s: ", rootd);
        cr_expect(!strncmp(P.err, want, strlen(want)), "%s", P.err);
        cr_expect(strstr(P.err, "--output-dir") == NULL, "%s", P.err);
        /* aidp-run parsed the options: its help is not what this needs */
        cr_expect(strstr(P.err, "aidp-run --help") == NULL, "%s", P.err);
        const char *b[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--output-dir",
                           rootd,        "/bin/true", NULL};
        cr_expect_eq(as_a(&P, b), AIDP_EXIT_USAGE, "%s", P.err);
        TEST_SNPRINTF(want, "aidp-run: error: --output-dir %s: ", rootd);
        cr_expect(!strncmp(P.err, want, strlen(want)), "%s", P.err);
        /* no --out: the run's warning and result line say how to keep /out */
        const char *c[] = {AIDP_RUN_BIN, "--no-cwd", "--", "/bin/sh", "-c", "echo x >/out/f", NULL};
        cr_expect_eq(as_a(&P, c), 0, "%s", P.err);
        cr_expect(strstr(P.err, "warning: no --out: ") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, "keep it with --out DIR") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, "discarded (no --out)") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, "--output-dir") == NULL, "%s", P.err);
        /* a working directory A may enter but not read: refused by the
         * daemon, under the name the client gave it, not as a --cwd */
        char dir[1100], here[4096];
        TEST_SNPRINTF(dir, "%s/searchonly", T);
        cr_assert_eq(mkdir(dir, 0711), 0);
        cr_assert_not_null(getcwd(here, sizeof here));
        cr_assert_eq(chdir(dir), 0);
        const char *d[] = {AIDP_RUN_BIN, "-q", "/bin/true", NULL};
        int rc = as_a(&P, d);
        cr_assert_eq(chdir(here), 0);
        cr_expect_eq(rc, AIDP_EXIT_USAGE, "%s", P.err);
        TEST_SNPRINTF(want, "aidp-run: error: the working directory %s: ", dir);
        cr_expect(!strncmp(P.err, want, strlen(want)), "%s", P.err);
        cr_expect(strstr(P.err, "--cwd /") == NULL, "%s", P.err);
}

/* An output key that is not there refuses the run before the job, with the
 * file provider too: after the job, /out would be shredded unkept (the run
 * exiting 117 with the user's results gone). */
Test(daemon_cli, a_missing_output_key_refuses_the_run_before_the_job)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        char keys[1100], outd[1100], k[1100], kd[1200];
        TEST_SNPRINTF(keys, "%s/keys", T);
        TEST_SNPRINTF(outd, "%s/results", T);
        cr_assert_eq(mkdir(keys, 0700), 0);
        cr_assert_eq(mkdir(outd, 0700), 0);
        cr_assert_eq(chown(outd, A.uid, A.gid), 0);
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(kd, "AIDP_KEY_DIR=%s", keys);
        const char *env[] = {k, kd, NULL};
        const char *args[] = {"--lineage", logp, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, args, env, true);
        const char *a[] = {AIDP_RUN_BIN,      "-q",     "--no-cwd",  "--out",   outd,
                           "--output-key-id", "nosuch", "/bin/echo", "JOB-RAN", NULL};
        int st = as_a(&P, a);
        cr_expect_neq(st, 0, "%s", P.err);
        cr_expect(strstr(P.out, "JOB-RAN") == NULL, "the job ran: %d %s", st, P.err);
        cr_expect(strstr(P.err, "checked before the job") != NULL, "%s", P.err);
}

/* A job stopped by its wall time or killed by its memory limit: the error
 * says what the limit was and which option sets it, with its own status. */
Test(daemon_cli, a_limit_that_ended_the_job_is_named_with_its_option)
{
        NEED();
        const char *t[] = {AIDP_RUN_BIN, "-q",         "--no-cwd", "--timeout",
                           "1s",         "/bin/sleep", "60",       NULL};
        cr_expect_eq(as_a(&P, t), AIDP_EXIT_TIMEOUT, "%s", P.err);
        cr_expect(strstr(P.err, "aidp-run: error: job exceeded its wall time of 1s") != NULL, "%s",
                  P.err);
        cr_expect(strstr(P.err, "--timeout sets it, up to the profile") != NULL, "%s", P.err);
        /* tail keeps a line that never ends: it grows until the limit kills it */
        const char *m[] = {AIDP_RUN_BIN,    "-q",        "--no-cwd", "--memory", "16M",
                           "/usr/bin/tail", "/dev/zero", NULL};
        cr_expect_eq(as_a(&P, m), AIDP_EXIT_OOM, "%s", P.err);
        cr_expect(strstr(P.err, "killed by the memory limit of 16 MiB") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, "--memory sets it, up to the profile") != NULL, "%s", P.err);
}

/* A relative bind source or --cwd is refused with the absolute path to
 * give (the daemon takes only absolute ones: the job sees that path). */
Test(daemon_cli, a_relative_bind_or_cwd_is_told_its_absolute_path)
{
        NEED();
        char dir[1100], here[4096], want[2400];
        TEST_SNPRINTF(dir, "%s/bindme", T);
        cr_assert_eq(mkdir(dir, 0755), 0);
        cr_assert_not_null(getcwd(here, sizeof here));
        cr_assert_eq(chdir(T), 0);
        const char *a[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--ro-bind",
                           "./bindme/",  "/bin/true", NULL};
        int rc = as_a(&P, a);
        const char *b[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--bind",
                           "bindme:/in", "/bin/true", NULL};
        int rc2 = as_a(&Q, b);
        const char *c[] = {AIDP_RUN_BIN, "-q", "--cwd", "bindme", "/bin/true", NULL};
        int rc3 = as_a(&R, c);
        cr_assert_eq(chdir(here), 0);
        cr_expect_eq(rc, AIDP_EXIT_USAGE, "%s", P.err);
        TEST_SNPRINTF(want,
                      "aidp-run: error: --ro-bind ./bindme: a relative path; --ro-bind takes an "
                      "absolute one: --ro-bind %s\n",
                      dir);
        cr_expect_str_eq(P.err, want);
        cr_expect_eq(rc2, AIDP_EXIT_USAGE, "%s", Q.err);
        TEST_SNPRINTF(want, "--bind %s:/in\n", dir);
        cr_expect(strstr(Q.err, want) != NULL, "%s", Q.err);
        cr_expect_eq(rc3, AIDP_EXIT_USAGE, "%s", R.err);
        TEST_SNPRINTF(want,
                      "aidp-run: error: --cwd bindme: a relative path; --cwd takes an absolute "
                      "one: --cwd %s\n",
                      dir);
        cr_expect_str_eq(R.err, want);
}

/* Sealed data on a host without a policy: the user is told who installs
 * one (the example files are the admin's to adapt), status 121. */
Test(daemon_cli, data_without_a_policy_names_the_admin)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        char k[1100], pd[1100], data[1100];
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(pd, "AIDP_POLICY_DIR=%s", policy); /* made, empty */
        const char *env[] = {k, pd, NULL};
        const char *args[] = {"--lineage", logp, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, args, env, true);
        TEST_SNPRINTF(data, "%s/x.sealed", T);
        FILE *f = fopen(data, "we");
        cr_assert_not_null(f);
        fputs("not sealed", f);
        fclose(f);
        cr_assert_eq(chown(data, A.uid, A.gid), 0);
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--data", data, "/bin/true", NULL};
        cr_expect_eq(as_a(&P, a), AIDP_EXIT_DENIED, "%s", P.err);
        cr_expect(strstr(P.err, "ask this host's admin to install one") != NULL, "%s", P.err);
}

/* aidp-run --dry-run of sealed data the access policy denies its user: the
 * plan names the path the user gave and the failed checks, and nothing of
 * the header (digest, name, classification, tags), as text or JSON. */
Test(daemon_cli, a_denied_dry_run_shows_nothing_of_the_header)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        char keys[1100], src[1100], data[1100], k[1100], kd[1200], pd[1200];
        TEST_SNPRINTF(keys, "%s/keys", T);
        TEST_SNPRINTF(src, "%s/ward-src", T);
        TEST_SNPRINTF(data, "%s/ward-us.sealed", T);
        cr_assert_eq(mkdir(keys, 0700), 0);
        cr_assert_eq(mkdir(src, 0755), 0);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keys, "ward-key", &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_test_sh("echo a,b > %s/t.csv && %s seal %s -o %s -n ward-secret-name "
                                  "-k ward-key -c confidential -r wardland -g wardreg "
                                  "--key-dir %s -q",
                                  src, AIDP_BIN, src, data, keys),
                     0);
        cr_assert_eq(chown(data, A.uid, A.gid), 0);
        /* the policy knows the tags and grants runs to another user only */
        static const char *const res[] = {"wardland", NULL}, *const reg[] = {"wardreg", NULL};
        aidp_test_policy_allow(policy, "daemon", res, reg);
        unsetenv("AIDP_POLICY_DIR");
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(kd, "AIDP_KEY_DIR=%s", keys);
        TEST_SNPRINTF(pd, "AIDP_POLICY_DIR=%s", policy);
        const char *env[] = {k, kd, pd, NULL};
        const char *args[] = {"--lineage", logp, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, args, env, true);
        static const char *const header[] = {"hmac-sha256",    "ward-secret-name", "confidential",
                                             "wardland",       "wardreg",          "ward-key",
                                             "datasetVersion", "classification"};
        for (int json = 0; json < 2; json++) {
                const char *a[] = {AIDP_RUN_BIN,           "--dry-run", "--no-cwd", "--data", data,
                                   json ? "--json" : "-q", "/bin/true", NULL};
                cr_expect_eq(as_a(&P, a), AIDP_EXIT_DENIED, "%s", P.err);
                cr_expect(strstr(P.out, data) != NULL, "%s", P.out);
                cr_expect(strstr(P.out, "holds no role in the access policy") != NULL, "%s", P.out);
                for (size_t i = 0; i < sizeof header / sizeof *header; i++)
                        cr_expect_null(strstr(P.out, header[i]), "the plan shows '%s':\n%s",
                                       header[i], P.out);
        }
}

/* aidp logs without --follow: the output, then on stderr whether the run is
 * still going (and how to see the rest) or how it ended (with -q the log
 * does not say); its own status 0 either way. */
Test(daemon_cli, logs_says_how_the_run_ended_or_that_it_goes_on)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q",      "--no-cwd", "--detach",
                           "--",         "/bin/sh", "-c",       "echo out; sleep 100",
                           NULL};
        cr_assert_eq(as_a(&P, a), 0, "%s", P.err);
        char run_id[64], want[256];
        TEST_SNPRINTF(run_id, "%.36s", P.out);
        const char *l[] = {AIDP_BIN, "logs", run_id, NULL};
        cr_expect_eq(as_a(&Q, l), 0, "%s", Q.err);
        TEST_SNPRINTF(want, "run %s is still going (aidp logs --follow %s", run_id, run_id);
        cr_expect(strstr(Q.err, want) != NULL, "%s", Q.err);
        const char *stop[] = {AIDP_BIN, "stop", run_id, NULL};
        cr_expect_eq(as_a(&Q, stop), 0, "%s", Q.err);
        const char *f[] = {AIDP_BIN, "logs", "--follow", run_id, NULL};
        cr_expect_eq(as_a(&Q, f), 128 + SIGTERM, "%s", Q.err);
        cr_expect_eq(as_a(&Q, l), 0, "%s", Q.err);
        cr_expect(strstr(Q.out, "out\n") != NULL, "%s", Q.out);
        TEST_SNPRINTF(want, "aidp logs: run %s ended with status %d\n", run_id, 128 + SIGTERM);
        cr_expect(strstr(Q.err, want) != NULL, "%s", Q.err);
}

/* A client that sends its request and then shuts its writing side (socat,
 * nc -N) is served, also when its connection is accepted only after that:
 * the daemon and its idle workers are stopped meanwhile. */
Test(daemon_cli, a_request_followed_by_a_half_close_is_served)
{
        NEED();
        struct aidp_test_kid k[64];
        size_t n = 0;
        for (int i = 0; i < 500 && (n = aidp_test_daemon_children(daemon_pid, k, 64)) < 2; i++)
                usleep(10000);
        usleep(300 * 1000); /* the idle workers ready */
        kill(daemon_pid, SIGSTOP);
        for (size_t i = 0; i < n; i++)
                kill(k[i].pid, SIGSTOP);
        int rp[2];
        cr_assert_eq(pipe(rp), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(rp[0]);
                aidp_test_become(&A);
                int s = aidp_test_daemon_connect(sock);
                json_object *m = aidp_proto_msg("request");
                json_object_object_add(m, "op", json_object_new_string("ps"));
                char line[256] = "cannot send";
                if (aidp_proto_send(s, m, NULL, 0) == 0 && shutdown(s, SHUT_WR) == 0) {
                        if (write(rp[1], "S", 1) != 1)
                                _exit(1);
                        json_object *r = NULL, *t = NULL;
                        size_t nf = 0;
                        aidp_error err = {0};
                        if (aidp_proto_recv(s, 30000, &r, NULL, 0, &nf, &err) > 0 &&
                            json_object_object_get_ex(r, "type", &t))
                                snprintf(line, sizeof line, "%s", json_object_get_string(t));
                        else
                                snprintf(line, sizeof line, "EOF %.200s", err.msg);
                }
                _exit(write(rp[1], line, strlen(line)) > 0 ? 0 : 1);
        }
        close(rp[1]);
        char c;
        cr_expect_eq(read(rp[0], &c, 1), 1, "the client never sent");
        for (size_t i = 0; i < n; i++)
                kill(k[i].pid, SIGCONT);
        kill(daemon_pid, SIGCONT);
        char res[300] = "";
        ssize_t got = read(rp[0], res, sizeof res - 1);
        res[got > 0 ? got : 0] = '\0';
        close(rp[0]);
        waitpid(pid, NULL, 0);
        cr_expect_str_eq(res, "ps");
}

/* A log an older daemon made (owned by its user, no owner attribute) is
 * adopted at the daemon's start: root's from then on, its user's by the
 * attribute, and still its user's to read with `aidp logs`. */
Test(daemon_cli, an_older_daemons_log_is_adopted_at_start)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        const char *id = "0a0a0a0a-1111-2222-3333-444444444444";
        char logs[1100], log[1200];
        TEST_SNPRINTF(logs, "%s/.logs", rundir);
        TEST_SNPRINTF(log, "%s/%s.log", logs, id);
        mkdir(rundir, 0700);
        cr_assert_eq(mkdir(logs, 0700), 0);
        FILE *f = fopen(log, "we");
        cr_assert_not_null(f);
        fputs("old output\n", f);
        fclose(f);
        cr_assert_eq(chown(log, A.uid, A.gid), 0);
        NEED();
        struct stat st;
        cr_assert_eq(stat(log, &st), 0);
        cr_expect_eq(st.st_uid, 0, "the old log is still owned by uid %u", (unsigned)st.st_uid);
        const char *l[] = {AIDP_BIN, "logs", id, NULL};
        cr_expect_eq(as_a(&Q, l), 0, "%s", Q.err);
        cr_expect(strstr(Q.out, "old output") != NULL, "%s / %s", Q.out, Q.err);
}

/* In the client, as A, with the log's fd `aidp logs` got: whether it can
 * reopen it for writing or chmod it. */
static void try_to_write(void *r, const int *fds, size_t n, char *line, size_t size, void *arg)
{
        (void)r;
        (void)arg;
        if (n != 1) {
                snprintf(line, size, "no log fd");
                return;
        }
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", fds[0]);
        int w = open(self, O_WRONLY | O_CLOEXEC);
        int we = errno;
        int c = fchmod(fds[0], 0666);
        int ce = errno;
        snprintf(line, size, "reopen %s, fchmod %s", w >= 0 ? "ok" : strerror(we),
                 c == 0 ? "ok" : strerror(ce));
}

/* A detached run's log is root's: `aidp logs` hands its caller a read-only
 * descriptor, which the caller can neither reopen for writing through
 * /proc/self/fd nor chmod (as the log's owner they could, and grow it past
 * every cap in root's run directory). */
Test(daemon_cli, a_detached_runs_log_cannot_be_reopened_for_writing)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--detach",
                           "--",         "/bin/echo", "out",      NULL};
        cr_assert_eq(as_a(&P, a), 0, "%s", P.err);
        char run_id[64];
        TEST_SNPRINTF(run_id, "%.36s", P.out);
        const char *f[] = {AIDP_BIN, "logs", "--follow", run_id, NULL};
        cr_assert_eq(as_a(&Q, f), 0, "%s", Q.err);
        char log[1200];
        TEST_SNPRINTF(log, "%s/.logs/%s.log", rundir, run_id);
        struct stat st;
        cr_assert_eq(stat(log, &st), 0, "%s", log);
        cr_expect_eq(st.st_uid, 0, "the log is owned by uid %u", (unsigned)st.st_uid);
        char req[200], res[300] = "";
        TEST_SNPRINTF(req, "{\"op\":\"logs\",\"run_id\":\"%s\"}", run_id);
        aidp_test_daemon_raw(&A, sock, req, NULL, try_to_write, NULL, res, sizeof res);
        cr_expect_str_eq(res, "reopen Permission denied, fchmod Operation not permitted");
}

/* aidp-run's help lists what a user may pass through the daemon and its own
 * options, none that only an admin running the supervisor may use. */
Test(daemon_cli, help_and_version_are_aidp_runs)
{
        AIDP_REQUIRE_ROOT();
        char *h[] = {AIDP_RUN_BIN, "--help", NULL};
        cr_assert_eq(aidp_test_run(&P, h), 0, "%s", P.err);
        cr_expect(!strncmp(P.out, "usage: aidp-run ", 16), "%s", P.out);
        const char *want[] = {"--socket PATH", "--detach",  "--out DIR", "AIDP_SOCKET",
                              "--memory SIZE", "--data",    "--profile", "--version",
                              "--no-cwd",      "--summary", NULL};
        for (size_t i = 0; want[i]; i++)
                cr_expect(strstr(P.out, want[i]) != NULL, "help lacks %s", want[i]);
        /* what a new user trips over: a job writing into its working
         * directory gets EROFS; the wall time is the profile's (baseline:
         * 24h), not none */
        cr_expect(strstr(P.out, "bound into the sandbox read-only") != NULL, "%s", P.out);
        const char *tl = strstr(P.out, "\n  --timeout ");
        cr_expect(tl && strstr(tl, "(default: the") && strstr(tl, "profile's") &&
                          strstr(tl, "profile's") < strstr(tl, "\n  --kill-after"),
                  "%s", P.out);
        /* as options (the help of another may mention one) */
        const char *admin[] = {"\n  --user ",          "\n  --run-id",
                               "\n  --run-dir",        "\n  --lineage",
                               "\n  --keep-env",       "\n  --exec-hook",
                               "\n  --result-fd",      "\n  --key-dir",
                               "aidp-supervisor run ", NULL};
        for (size_t i = 0; admin[i]; i++)
                cr_expect(strstr(P.out, admin[i]) == NULL, "help shows %s", admin[i] + 1);
        char *v[] = {AIDP_RUN_BIN, "--version", NULL};
        cr_assert_eq(aidp_test_run(&P, v), 0, "%s", P.err);
        cr_expect(!strncmp(P.out, "aidp-run ", 9) && strchr(P.out, '.'), "%s", P.out);
        char *av[] = {AIDP_BIN, "--version", NULL};
        cr_assert_eq(aidp_test_run(&Q, av), 0, "%s", Q.err);
        cr_expect_str_eq(P.out + 9, Q.out + 5, "aidp-run %s, aidp %s", P.out, Q.out);
}

/* A metavariable's forms, as a value for a check by value (trust_of):
 * "NAME|FILE" is NAME and FILE, "SRC[:DST]" SRC and SRC:DST; a word that
 * stands for a path (FILE, DIR, PATH, SRC, DST) becomes one. Returns the
 * count written to out[]. */
static size_t metavar_forms(const char *arg, char out[][128], size_t max)
{
        static const char *const paths[] = {"FILE", "DIR", "PATH", "SRC", "DST"};
        size_t n = 0;
        char alts[256];
        TEST_SNPRINTF(alts, "%s", arg);
        for (char *save = NULL, *alt = strtok_r(alts, "|", &save); alt;
             alt = strtok_r(NULL, "|", &save)) {
                unsigned groups = 0;
                for (const char *p = alt; *p; p++)
                        groups += *p == '[';
                /* each [...] part left out (bit 0) or kept (bit 1) */
                for (unsigned mask = 0; mask < (1u << groups) && n < max; mask++) {
                        size_t k = 0, group = 0;
                        bool keep = true;
                        for (const char *p = alt; *p && k + strlen(p) + 4 < 128; p++) {
                                if (*p == '[' || *p == ']') {
                                        keep = *p == ']' || (mask & (1u << group++));
                                        continue;
                                }
                                size_t w = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
                                bool path = false;
                                for (size_t i = 0; i < 5 && w; i++)
                                        path = path ||
                                               (w == strlen(paths[i]) && !strncmp(p, paths[i], w));
                                if (keep && path)
                                        k += (size_t)snprintf(out[n] + k, 128 - k, "/p");
                                else if (keep)
                                        memcpy(out[n] + k, p, w ? w : 1), k += w ? w : 1;
                                p += w ? w - 1 : 0;
                        }
                        out[n++][k] = '\0';
                }
        }
        return n;
}

/* What aidp-run --help offers, checked against run's trust table: every
 * option of run's shown is a user's and not one of this process's
 * descriptors, and every form its metavariable offers is one a user may
 * give (the table's check by value). aidp-run's own options are not in
 * run's table. */
Test(daemon_cli, help_offers_only_what_a_user_may_give)
{
        AIDP_REQUIRE_ROOT();
        char *h[] = {AIDP_RUN_BIN, "--help", NULL};
        cr_assert_eq(aidp_test_run(&P, h), 0, "%s", P.err);
        size_t shown = 0, by_value = 0;
        for (char *save = NULL, *line = strtok_r(P.out, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *o = !strncmp(line, "  --", 4)                                   ? line + 4
                          : !strncmp(line, "  -", 3) && !strncmp(line + 4, ", --", 4) ? line + 8
                                                                                      : NULL;
                if (!o)
                        continue;
                char name[64] = "", arg[128] = "";
                size_t nl = strcspn(o, " ");
                TEST_SNPRINTF(name, "%.*s", (int)nl, o);
                if (o[nl] == ' ' && o[nl + 1] != ' ')
                        TEST_SNPRINTF(arg, "%.*s", (int)strcspn(o + nl + 1, " "), o + nl + 1);
                const struct aidp_cli_opt *r = aidp_cli_run_spec.opts;
                while (r->name && strcmp(r->name, name))
                        r++;
                if (!r->name)
                        continue; /* aidp-run's own, or --help */
                shown++;
                cr_expect(r->trust == AIDP_TRUST_USER, "help offers --%s, admin-only", name);
                cr_expect(!r->local, "help offers --%s, not through the daemon", name);
                if (!r->trust_of)
                        continue;
                cr_expect(arg[0], "--%s shown without its value", name);
                char forms[16][128];
                size_t n = metavar_forms(arg, forms, 16);
                cr_expect(n > 0, "--%s %s: no form", name, arg);
                for (size_t i = 0; i < n; i++, by_value++)
                        cr_expect(r->trust_of(forms[i]) == AIDP_TRUST_USER,
                                  "help offers --%s %s, and '%s' is admin-only", name, arg,
                                  forms[i]);
        }
        cr_expect(shown > 10 && by_value >= 2, "%zu options, %zu checked by value: %s", shown,
                  by_value, P.out);
}

/* The forms the help does not offer are refused by the daemon, with the
 * one a user may give. */
Test(daemon_cli, a_refused_form_names_the_users)
{
        NEED();
        struct {
                const char *opt, *val, *says;
        } cases[] = {
                {"--env", "HOME", "give --env NAME=VALUE"},
                {"--profile", "./mine.yaml", "give --profile NAME"},
                {"--profile", "/etc/aidp/profiles/baseline.yaml", "give --profile NAME"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const char *a[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", cases[i].opt,
                                   cases[i].val, "/bin/true", NULL};
                cr_expect_eq(as_a(&P, a), AIDP_EXIT_USAGE, "%s %s: %s", cases[i].opt, cases[i].val,
                             P.err);
                cr_expect(strstr(P.err, cases[i].says) != NULL, "%s %s: %s", cases[i].opt,
                          cases[i].val, P.err);
        }
}

/* Usage errors: under aidp-run's name, pointing to aidp-run --help, status
 * 120; nothing reaches a daemon. */
Test(daemon_cli, usage_errors_name_aidp_run)
{
        AIDP_REQUIRE_ROOT();
        struct {
                const char *a, *b, *says;
        } cases[] = {
                {"--memory", "8X", "--memory '8X'"},
                {"--timeout", "0", "--timeout '0'"},
                {"--job-name", "", "--job-name: empty"},
                {"--bogus", NULL, "unknown option '--bogus'"},
                {"-q", NULL, "missing CMD"},
                {"--socket", NULL, "--socket needs an argument"},
                {"--json", NULL,
                 "--json is --dry-run's plan as JSON; a run's result as JSON: "
                 "--summary FILE"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *a[6] = {AIDP_RUN_BIN, (char *)cases[i].a};
                size_t n = 2;
                if (cases[i].b)
                        a[n++] = (char *)cases[i].b;
                if (strcmp(cases[i].a, "-q") && strcmp(cases[i].a, "--socket"))
                        a[n++] = "/bin/true";
                a[n] = NULL;
                cr_expect_eq(aidp_test_run(&P, a), AIDP_EXIT_USAGE, "%s: %s", cases[i].a, P.err);
                char head[128];
                TEST_SNPRINTF(head, "aidp-run: error: %s", cases[i].says);
                cr_expect(!strncmp(P.err, head, strlen(head)), "%s: %s", cases[i].a, P.err);
                cr_expect(strstr(P.err, "Try 'aidp-run --help'") != NULL, "%s", P.err);
                cr_expect(strstr(P.err, "aidp-supervisor") == NULL, "%s", P.err);
        }
}

/* A working directory the user cannot open: said so, with what to do, not
 * as a --cwd the user never gave. */
Test(daemon_cli, unreadable_working_directory)
{
        NEED();
        char locked[1100], inner[1200], here[4096];
        TEST_SNPRINTF(locked, "%s/locked", T);
        TEST_SNPRINTF(inner, "%s/inner", locked);
        cr_assert_eq(mkdir(locked, 0700), 0);
        cr_assert_eq(mkdir(inner, 0755), 0);
        cr_assert_not_null(getcwd(here, sizeof here));
        cr_assert_eq(chdir(inner), 0);
        const char *a[] = {AIDP_RUN_BIN, "-q", "/bin/true", NULL};
        int rc = as_a(&P, a);
        cr_assert_eq(chdir(here), 0);
        cr_expect_eq(rc, AIDP_EXIT_USAGE, "%s", P.err);
        char want[1400];
        TEST_SNPRINTF(want, "aidp-run: error: the working directory %s: ", inner);
        cr_expect(!strncmp(P.err, want, strlen(want)), "%s", P.err);
        cr_expect(strstr(P.err, "--no-cwd") && strstr(P.err, "--cwd DIR"), "%s", P.err);
        cr_expect(strstr(P.err, "--cwd /") == NULL, "%s", P.err);
}

/* No daemon at an explicit socket: aidp-run, ps, stop and logs say so with
 * the same hint, which names systemd's unit only for the default socket. */
Test(daemon_cli, unreachable_daemon_hint)
{
        AIDP_REQUIRE_ROOT();
        const char *s = "/nonexistent-aidp/aidp.sock";
        char *cmds[][8] = {
                {AIDP_RUN_BIN, "--socket", (char *)s, "/bin/true", NULL},
                {AIDP_BIN, "ps", "--socket", (char *)s, NULL},
                {AIDP_BIN, "stop", "--socket", (char *)s, "some-run", NULL},
                {AIDP_BIN, "logs", "--socket", (char *)s, "some-run", NULL},
        };
        for (size_t i = 0; i < 4; i++) {
                cr_expect_eq(aidp_test_run(&P, cmds[i]), AIDP_EXIT_INTERNAL, "%s", P.err);
                cr_expect(strstr(P.err, "cannot reach the aidp daemon at /nonexistent-aidp/") !=
                                  NULL,
                          "%s", P.err);
                cr_expect(strstr(P.err, "is a daemon serving /nonexistent-aidp/aidp.sock?") != NULL,
                          "%s %s: %s", cmds[i][0], cmds[i][1], P.err);
                cr_expect(strstr(P.err, "systemctl") == NULL, "%s", P.err);
        }
}

/* aidp stop --json: one JSON object for the run it stops. */
Test(daemon_cli, stop_json)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd",  "--detach", "--",
                           "/bin/sh",    "-c", "sleep 100", NULL};
        cr_assert_eq(as_a(&P, a), 0, "%s", P.err);
        char run_id[64];
        TEST_SNPRINTF(run_id, "%.36s", P.out);
        cr_assert_eq(strlen(run_id), 36, "no run id: %s / %s", P.out, P.err);
        const char *stop[] = {AIDP_BIN, "stop", "--json", run_id, NULL};
        cr_assert_eq(as_a(&Q, stop), 0, "%s", Q.err);
        char want[128];
        TEST_SNPRINTF(want, "{\"run_id\":\"%s\",\"stopping\":true}\n", run_id);
        cr_expect_str_eq(Q.out, want);
        char *end = aidp_test_wait_lineage(logp, run_id, "ABORT", 60000);
        cr_expect_not_null(end, "no end record for the stopped run %s", run_id);
        free(end);
        /* a run that is not (or no longer) going: where to see how it ended */
        const char *none = "00000000-0000-0000-0000-000000000000";
        const char *again[] = {AIDP_BIN, "stop", none, NULL};
        cr_expect_eq(as_a(&Q, again), AIDP_EXIT_USAGE, "%s", Q.err);
        cr_expect(strstr(Q.err, "is in progress (aidp ps lists them; how a detached one ended: "
                                "aidp logs 00000000-") != NULL,
                  "%s", Q.err);
}
