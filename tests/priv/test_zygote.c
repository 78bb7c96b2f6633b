/* The zygote (supervisor/sandbox/zygote.h, docs/run-core.md "The zygote"): a
 * daemon's idle worker starts aidp-init, and the sandbox's pid 1 is cloned
 * from it, not from the worker; a worker without one clones pid 1 itself.
 * With a real unprivileged user and a daemon of the test's own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_util.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"
#include "tests/sealed_util.h"

#define AIDP_RUN_BIN  AIDP_BINARY_DIR "/aidp-run"
#define AIDP_INIT_BIN AIDP_BINARY_DIR "/aidp-init"

static struct aidp_test_user A;
static char *T;
static char sock[100], rundir[1024], logp[1024], keyp[1024], policy[1024];
static pid_t daemon_pid;
static bool ready;

static void setup(void)
{
        if (geteuid() == 0)
                ready = aidp_test_daemon_fixture(&T, "z", &A, sock, rundir, logp, keyp, policy);
}

static void teardown(void)
{
        aidp_test_daemon_fixture_end(&daemon_pid, sock, rundir, &T);
}

TestSuite(zygote, .init = setup, .fini = teardown, .timeout = 120);

/* The test's daemon, with extra (a test-build fault, or NULL) in its
 * environment. */
static void daemon_start_with(const char *extra)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        struct group *g = getgrgid(A.gid);
        cr_assert_not_null(g);
        char kv[1100], pv[1100];
        TEST_SNPRINTF(kv, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(pv, "AIDP_POLICY_DIR=%s", policy);
        const char *env[] = {kv, pv, extra, NULL};
        const char *args[] = {"--lineage", logp, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, args, env, true);
        cr_assert_gt(daemon_pid, 0);
}

static void daemon_start(void)
{
        daemon_start_with(NULL);
}

static bool comm_is(pid_t pid, const char *want)
{
        char p[64], c[32] = "";
        TEST_SNPRINTF(p, "/proc/%d/comm", (int)pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return false;
        bool ok = fgets(c, sizeof c, f) != NULL;
        fclose(f);
        c[strcspn(c, "\n")] = '\0';
        return ok && !strcmp(c, want);
}

/* The zygotes of the daemon's idle workers (their aidp-init children), once
 * each of at least two idle workers has one: their count, pids in z. */
static size_t wait_zygotes(pid_t *z, size_t max)
{
        for (int t = 0; t < 3000; t++) {
                struct aidp_test_kid w[16];
                size_t nw = aidp_test_daemon_children(daemon_pid, w, 16), n = 0, with = 0;
                for (size_t i = 0; i < nw; i++) {
                        struct aidp_test_kid k[8];
                        size_t nk = aidp_test_daemon_children(w[i].pid, k, 8);
                        bool has = false;
                        for (size_t j = 0; j < nk; j++)
                                if (comm_is(k[j].pid, "aidp-init") && n < max) {
                                        z[n++] = k[j].pid;
                                        has = true;
                                }
                        with += has;
                }
                if (nw >= 2 && with == nw)
                        return n;
                usleep(10000);
        }
        return 0;
}

/* Until pid's state (/proc/pid/stat) is one of states, or it is gone: a
 * signal reaches a zygote (SCHED_IDLE, as its idle worker) only once it is
 * scheduled, which on a loaded machine may be after the client's run. */
static void wait_state(pid_t pid, const char *states)
{
        for (int t = 0; t < 3000; t++) {
                char st = aidp_test_proc_state(pid);
                if (!st || strchr(states, st))
                        return;
                usleep(10000);
        }
        cr_assert_fail("%d did not reach state %s", (int)pid, states);
}

/* A started daemon's idle zygotes, each sent sig and seen in one of states
 * (pids in z): their count. */
static size_t signal_zygotes(pid_t *z, size_t max, int sig, const char *states)
{
        size_t nz = wait_zygotes(z, max);
        cr_assert_geq(nz, 2, "the idle workers started no zygote");
        /* Asleep first: waiting for its plan, its greeting sent (a zygote
         * stopped before that is one of another build to the worker). */
        for (size_t i = 0; i < nz; i++)
                wait_state(z[i], "S");
        for (size_t i = 0; i < nz; i++)
                cr_assert_eq(kill(z[i], sig), 0);
        for (size_t i = 0; i < nz; i++)
                wait_state(z[i], states);
        return nz;
}

/* pid 1 of a sandbox the daemon runs: a child of one of its workers. */
static pid_t find_pid1(void)
{
        struct aidp_test_kid w[16];
        size_t nw = aidp_test_daemon_children(daemon_pid, w, 16);
        for (size_t i = 0; i < nw; i++) {
                pid_t p = aidp_test_daemon_pid1_under(w[i].pid);
                if (p)
                        return p;
        }
        return 0;
}

static void exe_of(pid_t pid, char *out, size_t len)
{
        char p[64];
        TEST_SNPRINTF(p, "/proc/%d/exe", (int)pid);
        ssize_t n = readlink(p, out, len - 1);
        cr_assert_gt(n, 0, "readlink %s: %s", p, strerror(errno));
        out[n] = '\0';
}

/* aidp-run as A, not waited for: its job says "started" and sleeps. */
static void client_sleeping(struct aidp_proc *p)
{
        const char *args[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "echo started; sleep 2",
                              NULL};
        aidp_test_daemon_client(p, &A, sock, args);
        cr_assert(aidp_test_wait_output(p, "started", 30000), "the job did not start: %s", p->err);
}

/* The one run on record failed (FAIL, no COMPLETE) and nothing of it is
 * left in the run directory. */
static void expect_failed_run_gone(void)
{
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        const char *run_id = NULL;
        for (size_t i = 0; i < n; i++)
                if (!strcmp(aidp_test_json_str(ev[i], "eventType"), "FAIL"))
                        run_id = aidp_test_json_str(ev[i], "run.runId");
        cr_assert_not_null(run_id, "no FAIL record");
        cr_expect_eq(aidp_test_count_events(logp, "COMPLETE"), 0);
        aidp_test_expect_run_gone(rundir, run_id);
}

/* A client's run whose pid 1 is the worker's own clone, not a zygote's: it
 * completes, with the worker's warning and one COMPLETE record. */
static void expect_run_through_the_worker(struct aidp_proc *p)
{
        client_sleeping(p);
        pid_t pid1 = find_pid1();
        cr_assert_gt(pid1, 0, "no pid 1 under the daemon's workers");
        char exe[PATH_MAX], init[PATH_MAX];
        exe_of(pid1, exe, sizeof exe);
        cr_assert_not_null(realpath(AIDP_INIT_BIN, init));
        cr_expect_str_neq(exe, init, "pid 1 came from a zygote");
        cr_expect_eq(aidp_test_finish(p), 0, "%s", p->err);
        cr_expect_str_eq(p->out, "started\n");
        cr_expect(strstr(p->err, "the worker clones the sandbox itself") != NULL, "stderr: %s",
                  p->err);
        cr_expect_eq(aidp_test_count_events(logp, "COMPLETE"), 1);
}

/* While the job runs, the sandbox's pid 1 (seen from the host) is aidp-init:
 * its executable, its only file mapping (a static program: no libcrypto, no
 * library at all, nothing of the worker's), and its parent is the worker
 * that serves the run (CLONE_PARENT), which reaps it as before. */
Test(zygote, pid1_is_cloned_from_aidp_init_and_shares_nothing_with_the_worker)
{
        daemon_start();
        pid_t z[16];
        cr_assert_geq(wait_zygotes(z, 16), 2, "the idle workers started no zygote");
        struct aidp_proc p;
        client_sleeping(&p);
        pid_t pid1 = find_pid1();
        cr_assert_gt(pid1, 0, "no pid 1 under the daemon's workers");
        char exe[PATH_MAX], want[PATH_MAX];
        exe_of(pid1, exe, sizeof exe);
        cr_assert_not_null(realpath(AIDP_INIT_BIN, want));
        cr_expect_str_eq(exe, want, "pid 1 runs %s", exe);
        char mp[64], line[1024];
        TEST_SNPRINTF(mp, "/proc/%d/maps", (int)pid1);
        FILE *f = fopen(mp, "re");
        cr_assert_not_null(f);
        size_t files = 0;
        while (fgets(line, sizeof line, f)) {
                char *path = strchr(line, '/');
                if (!path)
                        continue; /* heap, stack, vdso, anonymous */
                path[strcspn(path, "\n")] = '\0';
                files++;
                cr_expect_str_eq(path, want, "pid 1 maps %s", path);
        }
        fclose(f);
        cr_expect_gt(files, 0);
        cr_expect_eq(aidp_test_finish(&p), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "started\n");
}

/* A zygote killed before the plan: the worker finds its line closed when it
 * hands the plan over, nothing was cloned, and it clones pid 1 itself (as a
 * direct run does). The run completes and is on record; its pid 1 is the
 * supervisor's clone. */
Test(zygote, a_zygote_killed_before_the_plan_leaves_the_clone_to_the_worker)
{
        daemon_start();
        pid_t z[16];
        signal_zygotes(z, 16, SIGKILL, "ZX");
        struct aidp_proc p;
        expect_run_through_the_worker(&p);
}

/* aidp-supervisor run (no daemon, no zygote): pid 1 is the supervisor's own
 * clone, as before, and the run works. */
Test(zygote, a_direct_run_clones_pid1_itself)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready);
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "65534",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--",
                        "/bin/sh",
                        "-c",
                        "echo started; sleep 2",
                        NULL};
        struct aidp_proc p;
        cr_assert_eq(aidp_test_spawn(&p, argv), 0);
        cr_assert(aidp_test_wait_output(&p, "started", 30000), "the job did not start: %s", p.err);
        pid_t pid1 = aidp_test_daemon_pid1_under(p.pid);
        cr_assert_gt(pid1, 0, "no pid 1 under the supervisor");
        char exe[PATH_MAX], want[PATH_MAX];
        exe_of(pid1, exe, sizeof exe);
        cr_assert_not_null(realpath(AIDP_SUPERVISOR, want));
        cr_expect_str_eq(exe, want, "pid 1 runs %s", exe);
        cr_expect_eq(aidp_test_finish(&p), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "started\n");
}

/* The zygote cloned pid 1 but its answer never came (test builds:
 * AIDP_FAULT_ZYGOTE_ANSWER_LOST, as if it had died right after the clone):
 * the worker cannot know whether a pid 1 exists, so it never clones a
 * second; the run fails (125) through teardown with its end record, the
 * unknown pid 1 dies with the run's cgroup, and nothing of the run is left. */
Test(zygote, a_lost_answer_fails_the_run_cleanly_and_leaves_nothing)
{
        daemon_start_with("AIDP_FAULT_ZYGOTE_ANSWER_LOST=1");
        pid_t z[16];
        cr_assert_geq(wait_zygotes(z, 16), 2, "the idle workers started no zygote");
        const char *cargs[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "echo ran", NULL};
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, cargs);
        cr_expect_eq(aidp_test_finish(&p), 125, "%s", p.err);
        cr_expect_str_eq(p.out, "", "the job ran");
        cr_expect(strstr(p.err, "the zygote ended without cloning the sandbox") != NULL, "%s",
                  p.err);
        expect_failed_run_gone();
        pid_t left = 0;
        for (int i = 0; i < 300 && (left = find_pid1()) != 0; i++)
                usleep(10000);
        cr_expect_eq(left, 0, "pid 1 %d of the failed run is still there", (int)left);
}

/* Both idle workers' zygotes stopped (SIGSTOP): the worker hands the plan
 * over (it fits the socket's buffer) and no answer comes. At the deadline
 * (AIDP_ZYGOTE_DEADLINE_MS) it kills its zygote and, as for a lost answer,
 * fails the run (125) through teardown: it ends, on record, and leaves
 * nothing, instead of holding the worker and its client for ever. */
Test(zygote, a_stopped_zygote_is_killed_at_the_deadline_and_the_run_ends)
{
        daemon_start();
        pid_t z[16];
        size_t nz = signal_zygotes(z, 16, SIGSTOP, "tT");
        const char *cargs[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "echo ran", NULL};
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, cargs);
        int rc = aidp_test_finish(&p);
        /* The other idle worker's zygote, still stopped, goes on when the
         * daemon stops (its worker kills it); SIGCONT first so that nothing
         * stopped is left if that worker is gone. Only pids that are still
         * aidp-init: the killed ones are reaped. */
        for (size_t i = 0; i < nz; i++)
                if (comm_is(z[i], "aidp-init"))
                        kill(z[i], SIGCONT);
        cr_expect_eq(rc, 125, "%s", p.err);
        cr_expect_str_eq(p.out, "", "the job ran");
        cr_expect(strstr(p.err, "the zygote did not answer in time") != NULL, "%s", p.err);
        expect_failed_run_gone();
        cr_expect_eq(find_pid1(), 0, "a pid 1 of the failed run is still there");
}

/* A worker whose build is not aidp-init's (test builds:
 * AIDP_FAULT_ZYGOTE_BUILD_ID, as if the daemon were a newer binary than the
 * aidp-init beside it) never hands a plan to it: the run completes through
 * the worker's own clone (pid 1's executable is the supervisor's), and the
 * warning names both builds. */
Test(zygote, a_zygote_of_another_build_is_not_used)
{
        const char *other = "0000000000000000000000000000000000000000000000000000000000000000";
        char fault[100];
        TEST_SNPRINTF(fault, "AIDP_FAULT_ZYGOTE_BUILD_ID=%s", other);
        daemon_start_with(fault);
        pid_t z[16];
        cr_assert_geq(wait_zygotes(z, 16), 2, "the idle workers started no zygote");
        struct aidp_proc p;
        expect_run_through_the_worker(&p);
        char want[200];
        TEST_SNPRINTF(want, "this daemon is build %s: not used", other);
        cr_expect(strstr(p.err, want) != NULL, "stderr: %s", p.err);
        cr_expect(strstr(p.err, "aidp-init is build ") != NULL, "stderr: %s", p.err);
}
