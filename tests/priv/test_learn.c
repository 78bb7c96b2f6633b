/* `aidp profile learn` end to end, as root: an allowlist base (strict-cpu-train)
 * and a Docker-import base start the job and end (they used to hang before the
 * job started: the base's own unconditional sendmsg rule swallowed the
 * listener hand-over); SIGTERM and SIGINT to the tool end the run as they end
 * aidp-supervisor run (shred, ABORT), and no profile is written. Every wait
 * has a deadline, after which the test kills what it started by pid. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/tpath.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"
#define LIB(n)    AIDP_SOURCE_DIR "/profiles/" n ".yaml"
#define DATA(n)   AIDP_SOURCE_DIR "/tests/data/profiles/" n ".yaml"

static char dir[64], rundir[128], logp[128], outp[128];
static struct aidp_proc P;

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-learn-test.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        TEST_SNPRINTF(rundir, "%s/run", dir);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", dir);
        TEST_SNPRINTF(outp, "%s/learned.yaml", dir);
        cr_assert_eq(mkdir(rundir, 0700), 0);
}

static void teardown(void)
{
        aidp_test_gc(rundir);
        aidp_test_rm_tree(dir);
}

TestSuite(learn, .init = setup, .fini = teardown, .timeout = 180);

/* The supervisor the tool started (its one child), or 0. */
static pid_t child_of(pid_t pid)
{
        char path[64], buf[64] = "";
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        if (!fgets(buf, sizeof buf, f))
                buf[0] = '\0';
        fclose(f);
        return (pid_t)atoi(buf);
}

/* The tool's exit status, or -1 after `secs` seconds: then the tool and its
 * supervisor are killed by pid (the run's gc in teardown shreds the rest). */
static int finish_within(struct aidp_proc *p, int secs)
{
        for (int i = 0; i < secs * 10; i++) {
                int st;
                pid_t w = waitpid(p->pid, &st, WNOHANG);
                if (w == p->pid) {
                        p->pid = 0;
                        aidp_test_wait_output(p, "\x01", 200); /* collect the rest */
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                }
                if (p->out_fd >= 0 || p->err_fd >= 0)
                        aidp_test_wait_output(p, "\x01", 100);
                else
                        usleep(100 * 1000);
        }
        pid_t sup = child_of(p->pid);
        if (sup > 0)
                kill(sup, SIGKILL);
        kill(p->pid, SIGKILL);
        aidp_test_reap(p);
        return -1;
}

static void start_learn(const char *base, const char *run_id, const char *cmd)
{
        /* learn runs the production aidp-supervisor, which refuses AIDP_*
         * configuration in its environment (the runner sets the lineage
         * variables for the tool; env execs in place, so P.pid is the tool's):
         * the log is an admin's option instead. */
        char *argv[] = {"/usr/bin/env",
                        "-u",
                        "AIDP_LINEAGE_FILE",
                        "-u",
                        "AIDP_LINEAGE_KEY",
                        AIDP_TOOL,
                        "profile",
                        "learn",
                        "--base",
                        (char *)base,
                        "--user",
                        "65534",
                        "--run-id",
                        (char *)run_id,
                        "--run-dir",
                        rundir,
                        "--lineage",
                        logp,
                        "-o",
                        outp,
                        "--",
                        "/bin/sh",
                        "-c",
                        (char *)cmd,
                        NULL};
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
}

static void learns(const char *base, const char *run_id)
{
        start_learn(base, run_id, "echo LEARN-JOB-RAN");
        int st = finish_within(&P, 60);
        cr_assert_neq(st, -1, "learn --base %s did not end within 60s:\n%s\n%s", base, P.out,
                      P.err);
        cr_assert_eq(st, 0, "learn --base %s: %d\n%s\n%s", base, st, P.out, P.err);
        cr_assert(strstr(P.out, "LEARN-JOB-RAN"), "%s", P.out);
        cr_assert_eq(access(outp, F_OK), 0, "no profile written: %s", P.err);
        char *check[] = {AIDP_TOOL, "profile", "check", outp, NULL};
        struct aidp_proc c;
        st = aidp_test_run(&c, check);
        cr_assert_eq(st, 0, "the learned profile does not check: %s%s", c.out, c.err);
}

Test(learn, an_allowlist_base_starts_the_job_and_ends)
{
        AIDP_REQUIRE_ROOT();
        learns(LIB("strict-cpu-train"), "learn-strict");
}

Test(learn, a_docker_import_base_starts_the_job_and_ends)
{
        AIDP_REQUIRE_ROOT();
        learns(DATA("docker-import"), "learn-docker");
}

/* The run's records in the lineage log, in order. */
static size_t records_of(const char *run_id, json_object **ev, size_t max)
{
        size_t len = 0, n = 0;
        char *text = aidp_test_slurp(logp, &len);
        cr_assert_not_null(text, "no lineage log %s", logp);
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && n < max;
             line = strtok_r(NULL, "\n", &save)) {
                json_object *o = json_tokener_parse(line);
                const char *name = aidp_test_json_str_or_null(o, "run.facets.aidp_run.runName");
                if (name && !strcmp(name, run_id))
                        ev[n++] = o;
                else
                        json_object_put(o);
        }
        free(text);
        return n;
}

static void stops_on(int sig, const char *run_id)
{
        start_learn(LIB("strict-cpu-train"), run_id, "echo LEARN-JOB-STARTED; exec sleep 120");
        bool started = aidp_test_wait_output(&P, "LEARN-JOB-STARTED", 60000);
        if (!started) {
                finish_within(&P, 0);
                cr_assert_fail("the job did not start:\n%s\n%s", P.out, P.err);
        }
        cr_assert_eq(kill(P.pid, sig), 0);
        int st = finish_within(&P, 30);
        cr_assert_neq(st, -1, "learn did not end within 30s of signal %d:\n%s\n%s", sig, P.out,
                      P.err);
        cr_assert_eq(st, 128 + sig, "exit %d\n%s", st, P.err);
        cr_assert(strstr(P.err, "no profile was written"), "%s", P.err);
        cr_assert_neq(access(outp, F_OK), 0, "a profile was written after a stop");
        cr_assert(!aidp_test_cgroup_exists(run_id), "the run's cgroup is left");
        char j[256];
        TEST_SNPRINTF(j, "%s/%s", rundir, run_id);
        cr_assert_neq(access(j, F_OK), 0, "the run's journal is left");
        json_object *ev[4] = {0};
        size_t n = records_of(run_id, ev, 4);
        cr_assert_eq(n, 2, "START and ABORT, got %zu", n);
        cr_assert_str_eq(aidp_test_json_str(ev[0], "eventType"), "START");
        cr_assert_str_eq(aidp_test_json_str(ev[1], "eventType"), "ABORT");
        json_object *shred = aidp_test_json_at(ev[1], "run.facets.aidp_shred.verified");
        cr_assert(shred && json_object_get_boolean(shred), "no verified shred in the ABORT");
        json_object *signo = aidp_test_json_at(ev[1], "run.facets.aidp_exit.signal");
        cr_assert(signo && json_object_get_int(signo) == sig);
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

Test(learn, sigterm_ends_the_run_with_a_shred_and_an_abort)
{
        AIDP_REQUIRE_ROOT();
        stops_on(SIGTERM, "learn-sigterm");
}

Test(learn, sigint_ends_the_run_with_a_shred_and_an_abort)
{
        AIDP_REQUIRE_ROOT();
        stops_on(SIGINT, "learn-sigint");
}
