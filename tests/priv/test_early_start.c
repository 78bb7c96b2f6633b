/* START begun before the plan on the daemon's zygote path (docs/run-core.md,
 * "START before the plan"; supervisor/run/startup.c, invariant 8): a worker
 * that holds a zygote starts START's thread at the end of start-rec, so START
 * is written and committed while the run is prepared, the plan handed over and
 * pid 1 builds its mounts. What must hold: START durable before the go; a crash
 * after START and before the clone left to gc (ABORT, nothing left); a stop
 * request then ends the run before the go; a START that fails leaves nothing
 * and no end record, and when the worker clones pid 1 itself (no usable
 * zygote) it never clones after such a START. With a real unprivileged user and
 * a daemon of the test's own. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"
#include "tests/sealed_util.h"

static struct aidp_test_user A;
static char *T;
static char sock[100], rundir[1024], logp[1024], keyp[1024], policy[1024];
static pid_t daemon_pid;
static bool ready;

static void setup(void)
{
        if (geteuid() == 0)
                ready = aidp_test_daemon_fixture(&T, "e", &A, sock, rundir, logp, keyp, policy);
}

static void teardown(void)
{
        aidp_test_daemon_fixture_end(&daemon_pid, sock, rundir, &T);
}

TestSuite(early_start, .init = setup, .fini = teardown, .timeout = 120);

/* The test's daemon with up to two test-build faults (or NULL) in its
 * environment. */
static void daemon_start_with(const char *f1, const char *f2)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        char kv[1100], pv[1100];
        TEST_SNPRINTF(kv, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(pv, "AIDP_POLICY_DIR=%s", policy);
        const char *env[] = {kv, pv, f1 ? f1 : f2, f1 ? f2 : NULL, NULL};
        const char *args[] = {"--lineage", logp, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, args, env, true);
        cr_assert_gt(daemon_pid, 0);
}

/* Until an idle worker has its zygote: the daemon's children each have an
 * aidp-init child. */
static void wait_zygote(void)
{
        for (int t = 0; t < 3000; t++) {
                struct aidp_test_kid w[16];
                size_t nw = aidp_test_daemon_children(daemon_pid, w, 16);
                for (size_t i = 0; i < nw; i++) {
                        struct aidp_test_kid k[8];
                        if (aidp_test_daemon_children(w[i].pid, k, 8) > 0)
                                return;
                }
                usleep(10000);
        }
        cr_assert_fail("no idle worker started a zygote");
}

/* Whether process pid has a thread named comm. */
static bool has_thread(pid_t pid, const char *comm)
{
        char p[64];
        TEST_SNPRINTF(p, "/proc/%d/task", (int)pid);
        DIR *d = opendir(p);
        if (!d)
                return false;
        bool found = false;
        for (struct dirent *e; !found && (e = readdir(d));) {
                char cp[128], name[64] = "";
                TEST_SNPRINTF(cp, "%s/%s/comm", p, e->d_name);
                FILE *f = e->d_name[0] == '.' ? NULL : fopen(cp, "re");
                if (f && fgets(name, sizeof name, f)) {
                        name[strcspn(name, "\n")] = '\0';
                        found = !strcmp(name, comm);
                }
                if (f)
                        fclose(f);
        }
        closedir(d);
        return found;
}

/* Every idle worker is ready: START's thread made ahead (a connection
 * handed to a worker before it is ready is served without it). */
static void wait_ready(void)
{
        for (int t = 0; t < 3000; t++) {
                struct aidp_test_kid w[16];
                size_t nw = aidp_test_daemon_children(daemon_pid, w, 16), with = 0;
                for (size_t i = 0; i < nw; i++)
                        with += has_thread(w[i].pid, "aidp-start");
                if (nw > 0 && with == nw)
                        return;
                usleep(10000);
        }
        cr_assert_fail("the idle workers did not make START's thread ahead");
}

static pid_t wait_stopped_worker(void)
{
        for (int t = 0; t < 3000; t++) {
                pid_t w = aidp_test_child_in_state(daemon_pid, 'T');
                if (w)
                        return w;
                usleep(10000);
        }
        return 0;
}

/* The run id of the only run journal in the run directory. */
static void journal_run_id(char *out, size_t size)
{
        DIR *d = opendir(rundir);
        cr_assert_not_null(d, "%s: %s", rundir, strerror(errno));
        out[0] = '\0';
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(out, size, "%.*s", (int)(size - 1), e->d_name);
                n++;
        }
        closedir(d);
        cr_assert_eq(n, 1, "%zu entries in %s", n, rundir);
}

/* The run's journal exists and names no pid 1. */
static void expect_journal_without_pid1(const char *run_id)
{
        char jp[1200];
        TEST_SNPRINTF(jp, "%s/%s/journal.json", rundir, run_id);
        json_object *j = json_object_from_file(jp);
        cr_assert_not_null(j, "no journal at %s", jp);
        json_object *v;
        cr_expect(!json_object_object_get_ex(j, "pid1", &v), "the journal names a pid 1");
        json_object_put(j);
}

static void expect_log_verifies(void)
{
        struct aidp_proc v;
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_expect_eq(aidp_test_run(&v, verify), 0, "%s%s", v.out, v.err);
}

static const char *const job_args[] = {"-q", "--no-cwd",         "--", "/bin/sh",
                                       "-c", "echo the-job-ran", NULL};

/* Stopped before the plan (AIDP_FAULT_STOP_AT=planned): START is on record,
 * committed and anchored (the log verifies), the journal names no pid 1 and
 * the worker has no child that is a sandbox's pid 1. Returns the worker. */
static pid_t stop_before_the_plan(struct aidp_proc *p, char *run_id, size_t size)
{
        daemon_start_with("AIDP_FAULT_STOP_AT=planned", NULL);
        wait_zygote();
        aidp_test_daemon_client(p, &A, sock, job_args);
        pid_t w = wait_stopped_worker();
        cr_assert_gt(w, 0, "no worker reached the fault point before the plan: %s", p->err);
        journal_run_id(run_id, size);
        /* (a serial start-up writes START after the clone, as a direct run) */
        cr_expect_eq(aidp_test_count_events(logp, "START"), AIDP_SERIAL_STARTUP ? 0 : 1);
        if (!AIDP_SERIAL_STARTUP)
                expect_log_verifies();
        expect_journal_without_pid1(run_id);
        cr_expect_eq(aidp_test_daemon_pid1_under(w), 0, "a pid 1 exists before the plan");
        return w;
}

/* With witnesses the commit publishes heads on threads that may outlive it
 * (a slow TPM, a file witness past its timeout), which joining START's thread
 * before a fallback clone would not join: START then follows the clone, as on
 * the direct path. Stopped before the plan, nothing is on record yet; let go,
 * the run completes with its START and COMPLETE, published to the witness. */
Test(early_start, with_witnesses_start_follows_the_clone)
{
        char cfg[1100], heads[1100], wv[1200];
        TEST_SNPRINTF(cfg, "%s/witnesses.yaml", T);
        TEST_SNPRINTF(heads, "%s/heads.jsonl", T);
        FILE *f = fopen(cfg, "we");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Witnesses\ntimeoutMs: 500\nwitnesses:\n"
                "  - file: %s\n",
                heads);
        fclose(f);
        TEST_SNPRINTF(wv, "AIDP_WITNESS_CONFIG=%s", cfg);
        daemon_start_with("AIDP_FAULT_STOP_AT=planned", wv);
        wait_zygote();
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, job_args);
        pid_t w = wait_stopped_worker();
        cr_assert_gt(w, 0, "no worker reached the fault point before the plan: %s", p.err);
        cr_expect_eq(aidp_test_count_events(logp, "START"), 0,
                     "START was written before the plan with witnesses configured");
        cr_assert_eq(kill(w, SIGCONT), 0);
        int st = aidp_test_finish(&p);
        cr_expect_eq(st, 0, "status %d: %s", st, p.err);
        cr_expect(strstr(p.out, "the-job-ran"), "%s%s", p.out, p.err);
        cr_expect_eq(aidp_test_count_events(logp, "START"), 1);
        cr_expect_eq(aidp_test_count_events(logp, "COMPLETE"), 1);
        struct stat hs;
        cr_expect(stat(heads, &hs) == 0 && hs.st_size > 0, "nothing was published to %s", heads);
        expect_log_verifies();
}

/* A worker killed after START and before pid 1's clone: the daemon's gc
 * (a worker that died of a signal) finds the journal, removes the run's
 * cgroup and appends its ABORT after the START; nothing of the run is left
 * and the job never ran. */
Test(early_start, a_worker_killed_after_start_before_the_clone_is_left_to_gc)
{
        struct aidp_proc p;
        char run_id[128];
        pid_t w = stop_before_the_plan(&p, run_id, sizeof run_id);
        cr_assert_eq(kill(w, SIGKILL), 0);
        char *end = aidp_test_wait_lineage(logp, run_id, "ABORT", 60000);
        cr_assert_not_null(end, "no ABORT for run %s", run_id);
        free(end);
        aidp_test_finish(&p);
        cr_expect(!strstr(p.out, "the-job-ran"), "the job ran: %s", p.out);
        cr_expect_eq(aidp_test_count_events(logp, "START"), AIDP_SERIAL_STARTUP ? 0 : 1);
        cr_expect_eq(aidp_test_count_events(logp, "ABORT"), 1);
        aidp_test_expect_run_gone(rundir, run_id);
        expect_log_verifies();
}

/* A stop request (SIGTERM to the worker) while START was written, before the
 * plan: the run ends before the go, START then ABORT on record, the job never
 * ran, nothing left. (The zygote's waits end at a stop request, and the worker
 * then does not clone pid 1 itself either.) */
Test(early_start, a_stop_request_during_start_ends_the_run_before_the_go)
{
        struct aidp_proc p;
        char run_id[128];
        pid_t w = stop_before_the_plan(&p, run_id, sizeof run_id);
        cr_assert_eq(kill(w, SIGTERM), 0);
        cr_assert_eq(kill(w, SIGCONT), 0);
        int rc = aidp_test_finish(&p);
        cr_expect_neq(rc, 0, "the run succeeded: %s", p.err);
        cr_expect(strstr(p.err, "interrupted before the job started"), "%s", p.err);
        cr_expect(!strstr(p.out, "the-job-ran"), "the job ran: %s", p.out);
        char *end = aidp_test_wait_lineage(logp, run_id, "ABORT", 10000);
        cr_expect_not_null(end, "no ABORT for run %s", run_id);
        free(end);
        cr_expect_eq(aidp_test_count_events(logp, "START"), 1);
        aidp_test_expect_run_gone(rundir, run_id);
        expect_log_verifies();
}

/* A log with one record, its last line then damaged (one byte of its body,
 * the line kept whole): the next START is refused. The log's bytes in *out. */
static void one_run(void)
{
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock,
                                (const char *const[]){"-q", "--no-cwd", "--", "/bin/true", NULL});
        cr_assert_eq(aidp_test_finish(&p), 0, "%s", p.err);
}

/* The log's last record (a COMPLETE) edited in place, same size. */
static char *damage_last_record(size_t *len)
{
        char *log = aidp_test_slurp(logp, len);
        cr_assert(log && *len > 40);
        char *last = memrchr(log, '\n', *len - 1);
        last = last ? last + 1 : log;
        char *at = strstr(last, "\"eventType\":\"COMPLETE\"");
        cr_assert_not_null(at);
        at[14] = 'c';
        FILE *f = fopen(logp, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(log, 1, *len, f), *len);
        cr_assert_eq(fclose(f), 0);
        return log;
}

static char *damaged_log(size_t *len)
{
        one_run();
        return damage_last_record(len);
}

/* No run journal in the daemon's run directory (its own dot-files aside). */
static void expect_no_journal_left(void)
{
        DIR *d = opendir(rundir);
        size_t left = 0;
        for (struct dirent *e; d && (e = readdir(d));)
                left += e->d_name[0] != '.';
        if (d)
                closedir(d);
        cr_expect_eq(left, 0, "a run journal is left in %s", rundir);
}

/* The refused run: the lineage exit status and the cause named, the job never
 * ran, the log untouched (no end record), no journal or cgroup left. */
static void expect_refused_and_nothing_left(struct aidp_proc *p, int rc, const char *log0,
                                            size_t len0)
{
        cr_expect_eq(rc, AIDP_EXIT_LINEAGE, "exit %d: %s", rc, p->err);
        cr_expect(strstr(p->err, "does not start"), "no clear error: %s", p->err);
        cr_expect(strstr(p->err, "damaged"), "the cause is not named: %s", p->err);
        cr_expect(!strstr(p->out, "the-job-ran"), "the job ran: %s", p->out);
        size_t len1 = 0;
        char *log1 = aidp_test_slurp(logp, &len1);
        cr_assert_eq(len1, len0, "the log changed from %zu to %zu bytes", len0, len1);
        cr_expect_eq(memcmp(log1, log0, len0), 0);
        free(log1);
        expect_no_journal_left();
}

/* START refused on its thread while the zygote clones pid 1: pid 1 is killed
 * before any go, and nothing of the run is left. */
Test(early_start, start_refused_on_the_zygote_path_leaves_nothing)
{
        daemon_start_with(NULL, NULL);
        wait_zygote();
        size_t len0 = 0;
        char *log0 = damaged_log(&len0);
        wait_zygote();
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, job_args);
        int rc = aidp_test_finish(&p);
        expect_refused_and_nothing_left(&p, rc, log0, len0);
        free(log0);
}

/* An idle worker checks the log's tail before its request and keeps the
 * bytes it checked (the warm memo, docs/lineage.md): a last record damaged
 * after that check, keeping its size, must still be refused by the run that
 * worker serves. */
Test(early_start, a_record_damaged_after_the_idle_worker_checked_the_log_is_refused)
{
        daemon_start_with(NULL, NULL);
        wait_zygote();
        struct aidp_test_kid before[16];
        size_t nb = aidp_test_daemon_children(daemon_pid, before, 16);
        one_run();
        /* a worker forked after the run, with its zygote: it checked the
         * log as the run left it (make_ready checks it before the zygote) */
        bool fresh = false;
        for (int t = 0; t < 3000 && !fresh; t++) {
                struct aidp_test_kid w[16], k[8];
                size_t nw = aidp_test_daemon_children(daemon_pid, w, 16);
                for (size_t i = 0; i < nw && !fresh; i++) {
                        bool old = false;
                        for (size_t j = 0; j < nb; j++)
                                old = old || w[i].pid == before[j].pid;
                        fresh = !old && aidp_test_daemon_children(w[i].pid, k, 8) > 0;
                }
                if (!fresh)
                        usleep(10000);
        }
        cr_assert(fresh, "no idle worker was made after the run");
        size_t len0 = 0;
        char *log0 = damage_last_record(&len0);
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, job_args);
        int rc = aidp_test_finish(&p);
        expect_refused_and_nothing_left(&p, rc, log0, len0);
        free(log0);
}

/* A zygote of another build is not used, so the worker clones pid 1 itself:
 * START, begun before the plan, is joined first, and refused it ends the run
 * before any clone. A clone would stop the worker at the pin fault point
 * (AIDP_FAULT_STOP_AT=pin, right after pid 1 is in the journal): the client
 * must end instead. */
Test(early_start, start_refused_before_the_workers_own_clone_clones_nothing)
{
        if (AIDP_SERIAL_STARTUP)
                cr_skip_test("a serial start-up writes START after the worker's own clone");
        const char *other = "AIDP_FAULT_ZYGOTE_BUILD_ID="
                            "0000000000000000000000000000000000000000000000000000000000000000";
        /* the first run (the one that makes the log) clones pid 1 too: a
         * daemon without the pin fault makes it */
        daemon_start_with(other, NULL);
        wait_zygote();
        size_t len0 = 0;
        char *log0 = damaged_log(&len0);
        aidp_test_daemon_stop(daemon_pid, sock);
        daemon_start_with(other, "AIDP_FAULT_STOP_AT=pin");
        wait_zygote();
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, job_args);
        /* until the client exits (not reaped: WNOWAIT) or a worker stops */
        pid_t stopped = 0;
        siginfo_t si = {0};
        while (waitid(P_PID, (id_t)p.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && !si.si_pid &&
               !(stopped = aidp_test_child_in_state(daemon_pid, 'T')))
                usleep(10000);
        if (stopped) {
                kill(stopped, SIGKILL);
                aidp_test_reap(&p);
                cr_assert_fail("the worker cloned pid 1 after a refused START: %s", p.err);
        }
        int rc = aidp_test_finish(&p);
        cr_expect(strstr(p.err, "not used; the worker clones the sandbox itself"), "%s", p.err);
        expect_refused_and_nothing_left(&p, rc, log0, len0);
        free(log0);
}

/* START's thread made ahead by the idle worker (startup.c) ends without
 * writing START (AIDP_FAULT_FAIL_AT=start-ahead): the run must fail before
 * the go with the lineage status, the job never run, not go on as if START
 * were durable (the review of 2026-12-07: a thread that read a stale eventfd
 * left start_rc at 0). The attempt is on record as any run that failed
 * before its START: START then FAIL, written after the failure, in a log that
 * verifies; nothing left. */
Test(early_start, a_start_thread_that_writes_nothing_fails_the_run_before_the_go)
{
        daemon_start_with("AIDP_FAULT_FAIL_AT=start-ahead", NULL);
        wait_zygote();
        wait_ready();
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, job_args);
        int rc = aidp_test_finish(&p);
        cr_expect_eq(rc, AIDP_EXIT_LINEAGE, "exit %d: %s", rc, p.err);
        cr_expect(strstr(p.err, "START's thread ended without writing START"),
                  "the cause is not named: %s", p.err);
        cr_expect(!strstr(p.out, "the-job-ran"), "the job ran without START: %s", p.out);
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_assert_not_null(log, "no lineage log at %s", logp);
        char *start = strstr(log, "\"eventType\":\"START\"");
        char *fail = strstr(log, "\"eventType\":\"FAIL\"");
        cr_expect(start && fail && start < fail, "not START then FAIL: %s", log);
        cr_expect(!strstr(log, "\"eventType\":\"COMPLETE\""), "a COMPLETE: %s", log);
        free(log);
        expect_log_verifies();
        expect_no_journal_left();
}
